//! ticket: dense two-stage detectors in, sparse lottery tickets out.
//!
//! The layers, top to bottom, as README's "Layers" block lists them (a module imports only modules on a lower
//! line; tests/layers.rs holds the tree to it; docs/layout.md has the file-by-file map):
//! - [`cli`]: one file per command — its arguments, a `run` that calls the library, and rendering.
//! - [`lottery`] (experiments over the stages: IMP levels, rewinds, early-bird masks, transfers, sweeps,
//!   studies, one-shot pruning of a file, the demo's checks, the experiment report) and [`bench`] (the
//!   benchmarks behind `ticket bench`).
//! - [`setup`]: making the Python environments (`ticket setup`, `ticket doctor`).
//! - [`train`] (settings → RunConfig, the run folder, the ONNX Runtime training worker, targets, the loop) and
//!   [`eval`] (hotcoco, VOC, scoring a model, the validate gate).
//! - [`prune`] (magnitude and channel masks), [`export`] (the one path a model is written through, compact
//!   files, the ONNX Runtime check of an export), [`report`] (plots, drawings).
//! - [`detect`] (anchors, NMS, RoIAlign, post-processing: detection on CPU) and [`data`] (COCO, VOC, synthetic
//!   and classification sets, `DataSpec`, class checks).
//! - [`runtime`] (tract stages, ONNX Runtime sessions, thread counts, where the environments are) and [`graph`]
//!   (the network described once, emitted as training core and tract stages).
//! - [`imaging`] (the `(height, width)` and box types, the resize transform, interpolation, the bounded image
//!   reader, RoIAlign sizes), [`sparse`] (sparse conv and Gemm kernels as tract ops) and [`model`] (ArchSpec,
//!   Weights, Masks).
//! - [`onnx`]: the protobuf types, external data, tensors, the compact format's reader.
//! - [`fsio`]: bounded reads, atomic writes, confined paths, file fingerprints.
//! - [`error`] (one error type, exit codes, context traits), [`progress`] (the events long work reports through a
//!   callback) and [`choice`] (settings named by a word: FromStr/Display from one table).
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
