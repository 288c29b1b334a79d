//! Engines that run ONNX graphs. ONNX Runtime (through `ort`) checks exports against the original model;
//! `env` finds the Python environments and the ORT library; `threads` is the thread-count rule they all follow.
pub mod env;
pub mod ort_check;
pub mod threads;
pub mod tract_stage;
