//! Engines that run ONNX graphs. ONNX Runtime (through `ort`) checks exports against the original model.
pub mod ort_check;
pub mod tract_stage;
