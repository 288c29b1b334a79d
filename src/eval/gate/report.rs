//! The gate's report: both models' sparsity, scores and latency, the mAP drop per IoU type, and the gates.
use super::{Gate, Latency};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// AP@[.50:.95] and AP50 of one IoU type.
#[derive(Serialize)]
pub struct Scores {
    pub ap: f64,
    pub ap50: f64,
}

#[derive(Serialize)]
pub struct ModelRow {
    pub model: PathBuf,
    pub sparsity: f64,
    /// IoU type → AP@[.50:.95] and AP50.
    pub scores: BTreeMap<String, Scores>,
    /// `None` when the dense detections were read from a results file (nothing was timed).
    pub latency: Option<Latency>,
}

#[derive(Serialize)]
pub struct ValidateReport {
    /// "annotations" or "agreement with the dense model".
    pub reference: String,
    pub images: usize,
    /// Where the dense detections came from: "run", "file FILE" (--dense-dets), or "cache FILE (reused)",
    /// "(written)" or "(stale: recomputed)".
    pub dense_detections: String,
    pub dense: ModelRow,
    pub candidate: ModelRow,
    /// IoU type → dense mAP minus candidate mAP.
    pub map_drop: BTreeMap<String, f64>,
    pub gates: Vec<Gate>,
    pub passed: bool,
}

impl ValidateReport {
    /// The gates that failed, each as "NAME VALUE (limit LIMIT)".
    pub fn failed(&self) -> Vec<String> {
        self.gates.iter().filter(|g| !g.passed).map(|g| format!("{} {:.4} (limit {})", g.name, g.value, g.limit)).collect()
    }
}
