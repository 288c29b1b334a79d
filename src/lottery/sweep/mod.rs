//! Sweeps: a grid of IMP runs (a spec, or one of the paper's studies) expanded once into tasks, and run by
//! either of two executors — N at a time on this machine, or as a Slurm job array — over the same task folders,
//! so a sweep started on one resumes on the other and `ticket report SWEEP_DIR` reads it whichever ran it.
pub mod folder;
pub mod local;
pub mod share;
pub mod slurm;
pub mod spec;
pub mod status;
pub mod study;
pub mod task;
pub mod transfer;

pub use folder::TaskState;
pub use spec::{parse_spec, read_spec, CommandOptions, OptionInfo, OptionTable, Plan, TaskDef};
pub use status::{SweepReport, TaskRow};
