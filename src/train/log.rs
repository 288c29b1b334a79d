//! A run's `log.jsonl`: one [`StepRecord`] per step, cut back to whole records of the steps kept when a run
//! resumes.
use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The log is a line per step.
const MAX_LOG: u64 = 1 << 30;

/// One line of `log.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub step: u64,
    pub loss: f32,
    #[serde(flatten)]
    pub terms: std::collections::BTreeMap<String, f32>,
    pub lr: f32,
    pub proposals: usize,
    pub positive_rois: usize,
    /// Seconds spent loading images and building targets, in the RPN forward, and in the training step.
    pub data_s: f64,
    pub rpn_s: f64,
    /// Seconds in the teacher's forward; only in distilling runs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub teacher_s: f64,
    pub step_s: f64,
    /// The gradients' global L2 norm before clipping; only in runs that clip (`clip_grad_norm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f32>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// The lines of a log to keep when resuming at `step`: complete records of steps 1..=step, in order. A line
/// cut short (a run killed mid-write), a line that is not a record, or a step out of order is dropped, so the
/// resumed run appends to a log of whole lines.
pub fn kept_log(bytes: &[u8], step: u64) -> String {
    let text = String::from_utf8_lossy(bytes);
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    let mut last = 0;
    let mut out = String::new();
    for line in complete.lines() {
        let Ok(r) = serde_json::from_str::<StepRecord>(line) else { continue };
        if r.step > last && r.step <= step {
            last = r.step;
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The log with lines after `step` dropped (a resumed run rewrites what it redoes).
pub(super) fn open_log(dir: &Path, step: u64) -> Result<std::fs::File> {
    let path = dir.join("log.jsonl");
    let kept = if path.exists() { kept_log(&crate::fsio::read_limited(&path, MAX_LOG)?, step) } else { String::new() };
    write_atomic(&path, kept.as_bytes())?;
    std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))
}
