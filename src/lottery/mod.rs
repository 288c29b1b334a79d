//! Lottery-ticket experiments over the stages below (train, prune, eval, export): iterative magnitude pruning
//! with rewinding, level by level in a resumable run folder (`imp`), and early-bird masks drawn during dense
//! training (`early_bird`), and sweeps of such runs over a grid (`sweep`: the studies, locally or on Slurm). Nothing below imports this layer: the training loop knows no experiment.
pub mod demo;
pub mod early_bird;
pub mod imp;
pub mod level;
pub mod oneshot;
pub mod random_mask;
pub mod report;
pub mod rewind;
pub mod sweep;
pub mod transfer;

pub use imp::{run_imp, ImpConfig, ImpEnv, ImpEvent, ImpSettings, ImpStart, ImpSummary, Structure};
pub use level::LevelRow;
pub use random_mask::MaskSource;
pub use rewind::Rewind;
