//! Training: a Python worker running ONNX Runtime training 1.19.2 (the only engine with training that this
//! environment has, docs/engine-facts.md), driven from Rust. `protocol` documents the wire format and the commands;
//! `worker` starts the process and exposes each command as a typed method with deadlines and clear failures;
//! `session` trains one model at one fixed shape (artifacts, steps, masks, rewinds, trained weights back into
//! the ModelState); `config` what defines a run and its schedule, `run` the loop in a run folder (`folder`,
//! `checkpoints`, `log`), `order` the order a run visits its data in, `step_inputs` one step's graph inputs.
pub mod checkpoints;
pub mod config;
pub mod folder;
pub mod log;
pub mod order;
pub mod protocol;
pub mod pseudo;
pub mod run;
pub mod session;
pub mod step_inputs;
pub mod targets;
pub mod teacher;
pub mod worker;

pub use config::{RunConfig, TrainSettings};
pub use log::StepRecord;
pub use protocol::Tensor;
pub use run::{Run, Start};
pub use session::{Checkpoint, Losses, SessionOptions, TrainSession};
pub use worker::{Artifacts, Device, InputSpec, Optimizer, ParamSpec, Params, SessionInfo, StepOutput, Versions, Worker, WorkerOptions};
