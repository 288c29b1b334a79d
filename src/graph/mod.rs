//! Graph emitters: the network is described once in `net`, and each purpose (tract inference stages, ORT
//! training cores) assembles it with its own inputs, outputs and way of holding parameters.
pub mod builder;
pub mod classify;
pub mod distill;
pub(crate) mod loss_ops;
pub mod net;
pub mod proposals;
pub(crate) mod roi_pool;
pub mod stages;
pub mod train_core;
pub mod train_shape;
