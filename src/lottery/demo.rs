//! `ticket demo`'s pieces: the embedded detector and the synthetic sets it trains and is scored on, the dense
//! references its verdict names (level 0, and a dense model trained as long as the ticket's lineage), and the
//! checks on the ticket it exports — ONNX Runtime against the dense graph with the ticket's masks, the compact
//! file's round trip, and the validate gate on the held-out images.
use super::{level, ImpEnv, ImpEvent, ImpSummary};
use crate::error::{Result, WriteContext};
use crate::eval::gate::{DetectRun, GateSettings};
use crate::model::{Masks, ModelState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The narrow random-init Mask R-CNN R18-FPN of the training tests (tools/export_models.py --synth 4, 123 k
/// parameters, 0.8 MB).
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../tests/fixtures/train/maskrcnn_r18_fpn_synth.onnx");

#[derive(Serialize)]
pub struct DemoReport {
    pub run_dir: PathBuf,
    pub imp: ImpSummary,
    /// ONNX Runtime on the exported ticket equals the dense graph with the ticket's masks applied.
    pub ort_equal: Option<bool>,
    pub compact_round_trip_exact: Option<bool>,
    /// `ticket validate`'s report on the ticket against the dense model, as a JSON value (its keys in the order
    /// a JSON object holds them, as when the report was read back from `ticket validate --json`).
    pub validate: Option<serde_json::Value>,
    /// What the ticket was judged against, and by how much it passed.
    pub reference: Option<DenseReference>,
}

/// The dense model the demo's verdict compares with (level 0), how long it trained against the ticket's whole
/// lineage (dense training, then every level up to the ticket's), and the ticket's margin against it.
#[derive(Serialize)]
pub struct DenseReference {
    pub dense_steps: u64,
    pub ticket_level: usize,
    pub lineage_steps: u64,
    /// The dense reference trained at least as long as the ticket's lineage.
    pub compute_matched: bool,
    /// The ticket's AP minus dense's per IoU type; the gate asks each to be at least −`max_map_drop`.
    pub margin: BTreeMap<String, f64>,
    /// The initial weights trained as long as the ticket's lineage, and the ticket's margin against them.
    pub matched: Option<MatchedDense>,
}

/// A dense model trained as long as the ticket's whole lineage: extra training delivered through the mask is no
/// advantage against it.
#[derive(Serialize)]
pub struct MatchedDense {
    pub steps: u64,
    /// Its AP (AP50 for VOC) per IoU type, and the ticket's minus it.
    pub ap: BTreeMap<String, f64>,
    pub margin: BTreeMap<String, f64>,
}

/// Where the demo trains the compute-matched dense model of `steps` steps (beside the run; kept and resumed).
pub fn matched_dir(out: &Path, steps: u64) -> PathBuf {
    out.join(format!("dense_{steps}"))
}

/// Trains (or resumes, or reuses) the initial weights for the chosen ticket's lineage in [`matched_dir`], with
/// level 0's schedule scaled to the longer run, and scores it as the levels are; `None` without a ticket or
/// when level 0 already trained that long.
pub fn train_matched(
    out: &Path,
    run_dir: &Path,
    imp: &ImpSummary,
    env: &ImpEnv,
    on: &mut dyn FnMut(ImpEvent),
) -> Result<Option<MatchedDense>> {
    let Some(reference) = DenseReference::of(imp) else { return Ok(None) };
    if reference.compute_matched {
        return Ok(None);
    }
    let config = crate::lottery::imp::read_config(run_dir)?;
    let steps = reference.lineage_steps;
    let dir = matched_dir(out, steps);
    if !dir.join(level::MODEL).exists() {
        std::fs::create_dir_all(&dir).writing(&dir)?;
        let run = config.dense_config_for(steps);
        crate::lottery::imp::train(&config.model, &dir, run, 0, env, on, config.threads, |_, _| Ok(false))?;
    }
    on(ImpEvent::Phase { level: 0, what: "evaluating the compute-matched dense model" });
    let (scores, _, _) = crate::lottery::imp::evaluate(&config, run_dir, ModelState::import(&dir.join(level::MODEL))?)?;
    let ap: BTreeMap<String, f64> = scores.iter().filter_map(|(t, s)| Some((t.clone(), s.primary()?))).collect();
    let ticket = &imp.levels[reference.ticket_level];
    let margin = ticket.scores.iter().filter_map(|(t, s)| Some((t.clone(), s.primary()? - ap.get(t)?))).collect();
    Ok(Some(MatchedDense { steps, ap, margin }))
}

impl DenseReference {
    /// The reference of a run's chosen ticket; `None` when no level passed the gate.
    pub fn of(imp: &ImpSummary) -> Option<DenseReference> {
        let r = imp.ticket_level?;
        let dense_steps = imp.levels[0].steps;
        let lineage_steps = imp.levels[..=r].iter().map(|l| l.steps).sum();
        Some(DenseReference {
            dense_steps,
            ticket_level: r,
            lineage_steps,
            compute_matched: dense_steps >= lineage_steps,
            margin: imp.delta[r].clone(),
            matched: None,
        })
    }
}

impl DemoReport {
    /// Whether a check on the exported ticket failed.
    pub fn check_failed(&self) -> bool {
        self.validate.as_ref().is_some_and(|v| v["passed"] != true)
            || self.ort_equal == Some(false)
            || self.compact_round_trip_exact == Some(false)
    }
}

/// The demo's inputs in `out`: the embedded model (initial.onnx) and the synthetic training (seed 1) and
/// held-out (seed 2) sets; each one kept when an earlier demo wrote it. Returns (model, train json, val json).
pub fn prepare(out: &Path, train_images: usize, val_images: usize) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let model = out.join("initial.onnx");
    if !model.exists() {
        crate::fsio::write_atomic(&model, DEFAULT_MODEL)?;
    }
    let train = synth(&out.join("train"), train_images, 1)?;
    let val = synth(&out.join("val"), val_images, 2)?;
    Ok((model, train, val))
}

fn synth(dir: &Path, images: usize, seed: u64) -> Result<PathBuf> {
    let ann = dir.join("annotations.json");
    if !ann.exists() {
        let opts = crate::data::synth::SynthOptions { images, seed, size: 128 };
        crate::data::synth::write_synth(dir, &opts, &mut crate::progress::silent)?;
    }
    Ok(ann)
}

/// The report of a finished IMP run, with the exported ticket checked when there is one: in ONNX Runtime, its
/// compact file, and the validate gate (sparsity at least the level's, the run's mAP drop) on `val`.
pub fn check_ticket(run_dir: &Path, imp: ImpSummary, val: &Path, matched: Option<MatchedDense>) -> Result<DemoReport> {
    let reference = DenseReference::of(&imp).map(|r| DenseReference { matched, ..r });
    let mut report =
        DemoReport { run_dir: run_dir.to_path_buf(), imp, ort_equal: None, compact_round_trip_exact: None, validate: None, reference };
    let Some(r) = report.imp.ticket_level else {
        return Ok(report);
    };
    let ldir = level::dir(run_dir, r);
    // The exported ticket in ORT equals the dense graph with the ticket's masks applied.
    let mut masked = ModelState::import(&ldir.join(level::MODEL))?;
    masked.apply_masks(Masks::load(&ldir.join(level::MASKS))?, &ldir)?;
    report.ort_equal = Some(crate::export::verify_export(&masked, &run_dir.join("ticket.onnx")).is_ok());
    let packed = ModelState::import(&run_dir.join("ticket.tkt"))?;
    report.compact_round_trip_exact = Some(packed.weights.tensors.iter().zip(&masked.weights.tensors).all(|(x, y)| x.values == y.values));
    let settings = GateSettings {
        coco: Some(val.to_path_buf()),
        images: Some(val.parent().unwrap_or(Path::new(".")).join("images")),
        min_sparsity: Some(report.imp.levels[r].selected_sparsity - 1e-3),
        max_map_drop: Some(report.imp.max_map_drop),
        ..GateSettings::new(run_dir.join("ticket.onnx"), level::dir(run_dir, 0).join(level::MODEL))
    };
    let gate = crate::eval::gate::validate(&settings, &mut DetectRun::default())?;
    report.validate = Some(serde_json::to_value(&gate).expect("serialises"));
    Ok(report)
}

/// The demo's IMP settings: the user's sparsity, levels, steps and gate over a fixed schedule (warmup over the
/// first 1/15 of the steps, decays at 2/3 and 13/15, 64 RoIs, early-bird at half of dense training).
pub fn imp_settings(sparsity: f64, rounds: usize, steps: u64, max_map_drop: f64) -> crate::lottery::ImpSettings {
    crate::lottery::ImpSettings {
        sparsity: Some(sparsity),
        rounds,
        dense_steps: Some(steps),
        early_bird: vec![0.5],
        max_map_drop,
        // One thread: the demo's numbers repeat bit for bit on any machine with this build.
        threads: 1,
        train: crate::train::TrainSettings {
            steps,
            warmup: steps / 15,
            decay_at: vec![steps * 2 / 3, steps * 13 / 15],
            rois: 64,
            ..crate::train::TrainSettings::default()
        },
        ..crate::lottery::ImpSettings::default()
    }
}
