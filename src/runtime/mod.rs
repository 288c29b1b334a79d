//! Engines that run ONNX graphs. ONNX Runtime (through `ort`) runs models and compares outputs (export's
//! check against the original model, `ticket check`, the benchmarks' baselines);
//! `env` finds the Python environments and the ORT library; `threads` is the thread-count rule they all follow;
//! `heap` keeps freed activation memory for reuse; `child` starts the processes that must die with this one.
pub mod child;
pub mod env;
pub mod heap;
pub mod ort_check;
pub mod threads;
pub mod tract_stage;
