//! Graph emitters: the network is described once in `net`, and each purpose (tract inference stages here,
//! training cores later) assembles it with its own inputs and outputs.
pub mod builder;
pub mod net;
pub mod stages;
