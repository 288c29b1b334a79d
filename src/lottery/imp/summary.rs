//! The end of an IMP run: the table of levels, each level's score against dense, the ticket chosen (the
//! sparsest level within the gate, copied to RUN_DIR/ticket.onnx + ticket.tkt), the early-bird report.
use super::ImpConfig;
use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::lottery::early_bird::{self, EarlyBirdReport, StopRule};
use crate::lottery::level::{self, LevelRow};
use crate::model::{Masks, ModelState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize)]
pub struct ImpSummary {
    pub run_dir: PathBuf,
    pub levels: Vec<LevelRow>,
    /// Per level: primary score minus dense, per IoU type.
    pub delta: Vec<BTreeMap<String, f64>>,
    pub max_map_drop: f64,
    /// The sparsest level within the gate, copied to RUN_DIR/ticket.onnx (+ ticket.tkt).
    pub ticket_level: Option<usize>,
    pub ticket: Option<PathBuf>,
    pub early_bird: Option<EarlyBirdReport>,
    /// With a validation folder without annotations: the reference the scores are agreement with (the dense
    /// model's detections scoring at least `agreement_score`, in RUN_DIR/val_reference.json).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_with: Option<PathBuf>,
}

pub const SUMMARY: &str = "summary.json";

pub(super) fn early_bird_report(dir: &Path, config: &ImpConfig) -> Result<Option<EarlyBirdReport>> {
    if config.early_bird.is_empty() && config.early_stop_every == 0 {
        return Ok(None);
    }
    let l0 = level::dir(dir, 0);
    let mut state = ModelState::import(&l0.join(level::MODEL))?;
    state.masks = Masks::default();
    let last = early_bird::draw(&state, &config.prune_params(1)?)?;
    let points = early_bird::points(&config.early_bird, config.dense_steps);
    let masks = early_bird::compare(&l0, &points, &last)?;
    let stopped_at = std::fs::read_to_string(l0.join(level::STOPPED)).ok().and_then(|s| s.trim().parse().ok());
    let checks = if config.early_stop_every > 0 { StopRule::open(&l0, config.early_stop_every, u64::MAX)?.checks } else { Vec::new() };
    Ok(Some(EarlyBirdReport { masks, checks, stopped_at }))
}

pub(super) fn read_early_bird(dir: &Path) -> Result<Option<EarlyBirdReport>> {
    let path = level::dir(dir, 0).join(level::METRICS);
    let bytes = crate::fsio::read_limited(&path, 64 << 20)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::input(&path, e))?;
    Ok(serde_json::from_value(v["early_bird"].clone()).ok())
}

pub(super) fn summarize(dir: &Path, config: &ImpConfig, levels: Vec<LevelRow>, early_bird: Option<EarlyBirdReport>) -> Result<ImpSummary> {
    let dense = levels[0].clone();
    let delta: Vec<BTreeMap<String, f64>> = levels.iter().map(|l| l.delta(&dense)).collect();
    // Sparsest level whose every IoU type stays within the gate.
    let ticket_level =
        (1..levels.len()).rev().find(|&r| !delta[r].is_empty() && delta[r].values().all(|d| *d >= -config.max_map_drop - 1e-12));
    let ticket = match ticket_level {
        Some(r) => {
            let l = level::dir(dir, r);
            // The level wrote (and checked) its model and compact file through export's one path already: the
            // ticket is a copy of them, and never one without the other.
            let (out, compact) = (dir.join("ticket.onnx"), dir.join("ticket.tkt"));
            let copy = |from: &str, to: &Path| write_atomic(to, &crate::fsio::read_limited(&l.join(from), 16 << 30)?);
            if let Err(e) = copy(level::MODEL, &out).and_then(|_| copy(level::COMPACT, &compact)) {
                let _ = std::fs::remove_file(&out);
                return Err(e);
            }
            Some(out)
        }
        None => {
            let _ = std::fs::remove_file(dir.join("ticket.onnx"));
            let _ = std::fs::remove_file(dir.join("ticket.tkt"));
            None
        }
    };
    let agreement_with = config.agreement_score.map(|_| dir.join(super::score::VAL_REFERENCE));
    let summary = ImpSummary {
        run_dir: dir.to_path_buf(),
        levels,
        delta,
        max_map_drop: config.max_map_drop,
        ticket_level,
        ticket,
        early_bird,
        agreement_with,
    };
    write_atomic(&dir.join(SUMMARY), serde_json::to_string_pretty(&summary).expect("serialises").as_bytes())?;
    Ok(summary)
}
