//! Early-bird tickets (You et al., ICLR 2020) for weight masks: the mask a level-1 prune would draw, taken
//! during dense training. Two uses: masks saved at chosen fractions of training, each compared with the final
//! mask (the seed reports IoU ≈ 0.96 by mid-training); and the automatic rule that ends dense training once
//! the mask stops moving — the newest mask within normalised Hamming distance 0.1 of each of the 4 before it
//! (a FIFO of 5, checked every `every` steps).
use crate::error::{Context, Result, WriteContext};
use crate::model::{Masks, ModelState};
use crate::prune::{ops, PruneValid};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

pub const FOLDER: &str = "early_bird";
/// The FIFO length and distance bound of You et al.
pub const WINDOW: usize = 5;
pub const THRESHOLD: f64 = 0.1;
/// Every check's distance, for the report (the mask files themselves are kept only for the FIFO).
const CHECKS: &str = "checks.json";

/// The mask `params` draws from `state`'s current weights (level 1's prune of them).
pub fn draw(state: &ModelState, params: &PruneValid) -> Result<Masks> {
    let mut s = state.clone();
    s.masks = Masks::default();
    crate::prune::prune(&mut s, params)?;
    Ok(s.masks)
}

/// The steps of dense training at which `fractions` of `steps` fall: step 0 (the initial weights) for 0, else at
/// least step 1.
pub fn points(fractions: &[f64], steps: u64) -> Vec<(f64, u64)> {
    fractions.iter().map(|&f| (f, if f == 0.0 { 0 } else { ((f * steps as f64).round() as u64).clamp(1, steps) })).collect()
}

/// The file of the mask saved at `fraction`: named by the fraction's shortest exact spelling (`eb-0.5`,
/// `eb-0.0005`), so two fractions never share a file.
pub fn mask_file(level0: &Path, fraction: f64) -> PathBuf {
    level0.join(FOLDER).join(format!("eb-{fraction}.safetensors"))
}

/// The name runs made before [`mask_file`] used (three decimals), read when it can stand for one fraction only.
fn legacy_mask_file(level0: &Path, fraction: f64, all: &[f64]) -> Option<PathBuf> {
    let name = |f: f64| format!("eb-{f:.3}.safetensors");
    let p = level0.join(FOLDER).join(name(fraction));
    (all.iter().filter(|f| name(**f) == name(fraction)).count() == 1 && p.is_file()).then_some(p)
}

fn check_file(level0: &Path, step: u64) -> PathBuf {
    level0.join(FOLDER).join(format!("check-{step:06}.safetensors"))
}

/// One early-bird mask against the final one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EarlyBirdMask {
    pub fraction: f64,
    pub step: u64,
    pub file: PathBuf,
    pub iou_with_final: f64,
    pub hamming_to_final: f64,
}

/// What level 0's `metrics.json` records about early-bird masks.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EarlyBirdReport {
    pub masks: Vec<EarlyBirdMask>,
    /// (step, largest distance from the newest mask to the 4 before it) at every check of the stop rule.
    pub checks: Vec<(u64, f64)>,
    /// The step at which the stop rule fired and dense training ended.
    pub stopped_at: Option<u64>,
}

/// Compares each saved early-bird mask with the final mask.
pub fn compare(level0: &Path, points: &[(f64, u64)], last: &Masks) -> Result<Vec<EarlyBirdMask>> {
    points
        .iter()
        .map(|&(fraction, step)| {
            let mut file = mask_file(level0, fraction);
            if !file.exists() {
                let all: Vec<f64> = points.iter().map(|p| p.0).collect();
                file = legacy_mask_file(level0, fraction, &all).unwrap_or(file);
            }
            let m = Masks::load(&file)?;
            let iou = ops::iou(&m, &file, last, Path::new("final mask"))?.iou;
            Ok(EarlyBirdMask { fraction, step, file, iou_with_final: iou, hamming_to_final: ops::hamming(&m, last) })
        })
        .collect()
}

/// The stop rule's state: the last `WINDOW` masks, kept on disk too so that a resumed run sees the same FIFO.
pub struct StopRule {
    level0: PathBuf,
    pub every: u64,
    window: VecDeque<(u64, Masks)>,
    pub checks: Vec<(u64, f64)>,
}

impl StopRule {
    /// Rebuilds the FIFO from the check masks saved at or before `step` (a resumed run's position).
    pub fn open(level0: &Path, every: u64, step: u64) -> Result<Self> {
        let dir = level0.join(FOLDER);
        let mut saved: Vec<u64> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.strip_prefix("check-")?.strip_suffix(".safetensors")?.parse().ok())
                .filter(|&s| s <= step && s % every == 0)
                .collect(),
            Err(_) => Vec::new(),
        };
        saved.sort_unstable();
        let mut rule = StopRule { level0: level0.to_path_buf(), every, window: VecDeque::new(), checks: Vec::new() };
        for s in saved {
            let m = Masks::load(&check_file(level0, s))?;
            rule.window.push_back((s, m));
        }
        while rule.window.len() > WINDOW {
            rule.window.pop_front();
        }
        let checks = dir.join(CHECKS);
        if checks.exists() {
            let all: Vec<(u64, f64)> =
                serde_json::from_slice(&crate::fsio::read_limited(&checks, 16 << 20)?).context(&checks, "not an early-bird check list")?;
            rule.checks = all.into_iter().filter(|(s, _)| *s <= step).collect();
        }
        Ok(rule)
    }

    fn push(&mut self, step: u64, masks: Masks) -> Option<f64> {
        self.window.push_back((step, masks));
        while self.window.len() > WINDOW {
            self.window.pop_front();
        }
        if self.window.len() < WINDOW {
            return None;
        }
        let newest = &self.window[WINDOW - 1].1;
        let d = self.window.iter().take(WINDOW - 1).map(|(_, m)| ops::hamming(newest, m)).fold(0.0, f64::max);
        self.checks.push((step, d));
        Some(d)
    }

    /// Records the mask of `step` (saved first, so a resume finds it); true when the rule fires.
    pub fn observe(&mut self, step: u64, masks: Masks) -> Result<bool> {
        // Seen already (a run resumed at this step): the verdict stands.
        if self.window.back().is_some_and(|(s, _)| *s == step) {
            return Ok(self.checks.last().is_some_and(|(s, d)| *s == step && *d <= THRESHOLD));
        }
        let dir = self.level0.join(FOLDER);
        std::fs::create_dir_all(&dir).writing(&dir)?;
        masks.save(&check_file(&self.level0, step), &[("step", step.to_string())])?;
        // Only the FIFO is needed on disk.
        if let Some((old, _)) = self.window.front().filter(|_| self.window.len() == WINDOW) {
            let _ = std::fs::remove_file(check_file(&self.level0, *old));
        }
        let d = self.push(step, masks);
        crate::fsio::write_atomic(&dir.join(CHECKS), serde_json::to_string(&self.checks).expect("serialises").as_bytes())?;
        Ok(d.is_some_and(|d| d <= THRESHOLD))
    }
}
