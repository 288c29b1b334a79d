//! One level of an IMP run: its folder, what it holds, and the row it adds to the summary.
//!
//! `level_L/` holds `masks.safetensors` (level 0: all ones), `start.onnx` (levels ≥ 1: the rewind point with
//! the mask applied), the training run of `ticket train` (`run.json`, `log.jsonl`, `state.json`,
//! `checkpoints/`), `model.onnx` (the trained level: a pruned ONNX, masked weights +0.0), `ticket.tkt` (its
//! compact form) and `metrics.json` (written last: a level with it is finished and never recomputed).
use crate::error::{Context, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const MASKS: &str = "masks.safetensors";
pub const START: &str = "start.onnx";
pub const MODEL: &str = "model.onnx";
pub const COMPACT: &str = "ticket.tkt";
pub const METRICS: &str = "metrics.json";
/// Beside a channel level: the plan drawn on the previous level's trained model.
pub const CHANNELS: &str = "channels.json";
/// In level 0, set when early-bird's stop rule ended dense training: holds the step.
pub const STOPPED: &str = "early_stop.txt";
/// In level 0: its weights at the late-rewinding step.
pub const REWIND: &str = "rewind.onnx";
/// In level 0: the random re-initialisation (`rewind random`), drawn from the initial weights' scales with the
/// run's seed.
pub const RANDOM_INIT: &str = "random_init.onnx";

pub fn dir(run: &Path, level: usize) -> PathBuf {
    run.join(format!("level_{level}"))
}

/// The headline numbers of one IoU type (COCO) or of VOC (AP50 only). A classifier's level has one entry,
/// `top1`, whose `ap` is the top-1 accuracy on the validation set (so the gate, deltas and reports need no
/// second table type) and whose other fields are empty.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Scores {
    pub ap: Option<f64>,
    pub ap50: Option<f64>,
    pub ap75: Option<f64>,
    pub ap_small: Option<f64>,
    pub ap_medium: Option<f64>,
    pub ap_large: Option<f64>,
}

impl Scores {
    /// The number a level is judged by: AP@[.50:.95], or AP50 where only that exists (VOC).
    pub fn primary(&self) -> Option<f64> {
        self.ap.or(self.ap50)
    }
}

/// One row of the summary; `metrics.json` holds it under `row`, beside the full evaluation reports.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LevelRow {
    pub level: usize,
    /// Sparsity of the weights selected for pruning, and of every parameter of the network.
    pub selected_sparsity: f64,
    pub network_sparsity: f64,
    /// Channel levels: the fraction of the dense model's FLOPs (detect's count at 512²) that is gone.
    #[serde(default)]
    pub flops_removed: Option<f64>,
    /// IoU type (`bbox`, `segm`, `keypoints`, or `voc`), or `top1` for a classifier → scores on the validation set.
    pub scores: BTreeMap<String, Scores>,
    /// Training steps of this level and their summed time (data, RPN forward, step), resumes included.
    pub steps: u64,
    pub train_s: f64,
    /// Median tract latency per validation image.
    pub latency_ms: f64,
    pub model_bytes: u64,
    pub compact_bytes: Option<u64>,
    /// Selected tensors pruned beyond 99%: the layer has all but collapsed.
    pub collapsed: Vec<String>,
}

impl LevelRow {
    /// A row read back from a file holds what `ticket imp` writes: fractions and scores in [-1, 1] (COCO writes
    /// -1 for "no data"), times finite and ≥ 0. Anything else was edited or damaged, and would reach the gate,
    /// the tables and the plot ranges.
    pub fn check(&self) -> std::result::Result<(), String> {
        // Huge numbers in the message as 1e308, not 309 digits.
        let num = |v: f64| if v.abs() < 1e6 { v.to_string() } else { format!("{v:e}") };
        let fraction = |name: String, v: f64| {
            if v.is_finite() && (-1.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} is {}, outside [-1, 1]", num(v)))
            }
        };
        fraction("selected_sparsity".into(), self.selected_sparsity)?;
        fraction("network_sparsity".into(), self.network_sparsity)?;
        if let Some(f) = self.flops_removed {
            fraction("flops_removed".into(), f)?;
        }
        for (t, s) in &self.scores {
            for (name, v) in [
                ("ap", s.ap),
                ("ap50", s.ap50),
                ("ap75", s.ap75),
                ("ap_small", s.ap_small),
                ("ap_medium", s.ap_medium),
                ("ap_large", s.ap_large),
            ] {
                if let Some(v) = v {
                    fraction(format!("scores.{t}.{name}"), v)?;
                }
            }
        }
        for (name, v) in [("train_s", self.train_s), ("latency_ms", self.latency_ms)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} is {}, not a time", num(v)));
            }
        }
        Ok(())
    }

    /// `primary` of this level minus the dense level's, per IoU type present in both.
    pub fn delta(&self, dense: &LevelRow) -> BTreeMap<String, f64> {
        self.scores.iter().filter_map(|(k, s)| Some((k.clone(), s.primary()? - dense.scores.get(k)?.primary()?))).collect()
    }
}

/// The row of a finished level, or `None` when the level has no metrics yet.
pub fn read_row(run: &Path, level: usize) -> Result<Option<LevelRow>> {
    let path = dir(run, level).join(METRICS);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = crate::fsio::read_limited(&path, 64 << 20)?;
    #[derive(Deserialize)]
    struct File {
        row: LevelRow,
    }
    let f: File = serde_json::from_slice(&bytes).context(&path, "not a level metrics file")?;
    if f.row.level != level {
        return Err(Error::input(&path, format!("holds level {}, expected {level}", f.row.level)));
    }
    f.row.check().at(&path)?;
    Ok(Some(f.row))
}

/// Training steps and their summed seconds from a run's `log.jsonl`.
pub fn train_time(level_dir: &Path) -> (u64, f64) {
    let Ok(text) = std::fs::read_to_string(level_dir.join("log.jsonl")) else { return (0, 0.0) };
    let mut steps = 0;
    let mut secs = 0.0;
    for v in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        steps = steps.max(v["step"].as_u64().unwrap_or(0));
        secs += ["data_s", "rpn_s", "step_s"].iter().map(|k| v[k].as_f64().unwrap_or(0.0)).sum::<f64>();
    }
    (steps, secs)
}
