//! ticket: dense two-stage detectors in, sparse lottery tickets out.
//!
//! The layers, top to bottom (nothing imports upward; docs/layout.md has the whole map):
//! - [`cli`]: one file per command — parses, calls the library, renders.
//! - [`lottery`]: experiments over the stages — IMP levels, rewinds, early-bird masks, transfers, sweeps, studies,
//!   the experiment report.
//! - [`bench`]: the benchmarks behind `ticket bench` (beside lottery; it does not import it).
//! - [`train`] (the ONNX Runtime training worker, targets, the loop), [`eval`] (hotcoco, VOC, the validate gate),
//!   [`prune`] (magnitude and channel masks), [`export`] (pruned ONNX, compact files), [`report`] (plots, drawings).
//! - [`detect`] (anchors, NMS, RoIAlign, post-processing: detection on CPU) and [`data`] (COCO, VOC, synthetic
//!   and classification sets).
//! - [`sparse`] (sparse conv and Gemm kernels as tract ops), [`runtime`] (tract stages, ONNX Runtime checks,
//!   where the environments are), [`setup`] (making those environments), [`graph`] (the network described once,
//!   emitted as training core and tract stages).
//! - [`imaging`] (the `(height, width)` and box types, box helpers, the resize transform, interpolation, the
//!   bounded image reader, RoIAlign sizes: the geometry detection, data and the training graph share).
//! - [`model`] (ArchSpec, Weights, Masks) over [`onnx`] (the protobuf types, external data, tensors).
//! - [`error`] and [`fsio`] (bounded reads, atomic writes, confined paths) at the base.
pub mod bench;
pub mod choice;
pub mod cli;
pub mod data;
pub mod detect;
pub mod error;
pub mod eval;
pub mod export;
pub mod fsio;
pub mod graph;
pub mod imaging;
pub mod lottery;
pub mod model;
pub mod onnx;
pub mod progress;
pub mod prune;
pub mod report;
pub mod runtime;
pub mod setup;
pub mod sparse;
pub mod train;

pub use error::{Error, Result};
