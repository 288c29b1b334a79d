//! ticket: dense two-stage detectors in, sparse lottery tickets out. The pipeline runs one way:
//! import (onnx → model) → prune → export, with runtime checks in ONNX Runtime.
pub mod error;
pub mod eval;
pub mod export;
pub mod cli;
pub mod data;
pub mod detect;
pub mod fsio;
pub mod graph;
pub mod lottery;
pub mod model;
pub mod onnx;
pub mod prune;
pub mod report;
pub mod runtime;
pub mod sparse;
pub mod train;

pub use error::{Error, Result};
