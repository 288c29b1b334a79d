//! `ticket demo`: the main job on an embedded default, so a fresh machine sees what the tool is for — a
//! lottery ticket found, checked and exported. The embedded detector is the narrow random-init Mask R-CNN
//! R18-FPN of the training tests (tools/export_models.py --synth 4, 123 k parameters, 0.8 MB); the demo makes
//! its synthetic training and validation sets, runs `ticket imp` (dense training, then levels of global
//! magnitude pruning rewound to init and retrained) towards 80%, exports the sparsest level within the gate,
//! checks the export in ONNX Runtime and its compact file, runs `ticket validate` on it, and prints the table.
//! Re-running resumes the same run folder.
use super::emit;
use crate::error::{Error, Result};
use crate::lottery::{run_imp, ImpConfig, ImpEnv, ImpStart, ImpSummary, Rewind, ValSpec};
use crate::model::ModelState;
use crate::prune::Scope;
use serde::Serialize;
use std::path::{Path, PathBuf};

const DEFAULT_MODEL: &[u8] = include_bytes!("../../tests/fixtures/train/maskrcnn_r18_fpn_synth.onnx");

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder for the outputs (created if missing; an earlier demo there is resumed).
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Sparsity of the last level.
    #[arg(long, default_value_t = 0.8)]
    pub sparsity: f64,
    /// Levels to reach it (each keeps (1-S)^(1/K) of what the previous kept).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Training steps of the dense model and of each level.
    #[arg(long, default_value_t = 800)]
    pub steps: u64,
    /// Synthetic training images (seed 1) and held-out validation images (seed 2).
    #[arg(long, default_value_t = 300)]
    pub train_images: usize,
    #[arg(long, default_value_t = 60)]
    pub val_images: usize,
    /// The gate: the ticket's AP at most this far below dense (bbox and segm).
    #[arg(long, default_value_t = 0.01)]
    pub max_map_drop: f64,
    /// The training venv's python (default: $TICKET_TRAIN_PYTHON, else the one `ticket setup` made, else
    /// .venv-train/bin/python).
    #[arg(long)]
    pub train_python: Option<PathBuf>,
}

#[derive(Serialize)]
struct DemoReport {
    run_dir: PathBuf,
    imp: ImpSummary,
    /// ONNX Runtime on the exported ticket equals the dense graph with the ticket's masks applied.
    ort_equal: Option<bool>,
    compact_round_trip_exact: Option<bool>,
    /// `ticket validate`'s report on the ticket against the dense model.
    validate: Option<serde_json::Value>,
}

fn synth(dir: &Path, images: usize, seed: u64) -> Result<PathBuf> {
    let ann = dir.join("annotations.json");
    if !ann.exists() {
        let opts = crate::data::synth::SynthOptions { images, seed, size: 128 };
        crate::data::synth::write_synth(dir, &opts, &mut crate::progress::silent)?;
    }
    Ok(ann)
}

fn config(a: &Args, model: &Path, train: &Path, val: &Path) -> Result<ImpConfig> {
    let state = ModelState::import(model)?;
    let mut targs = DemoTrain::default().0;
    targs.coco = Some(train.to_path_buf());
    targs.steps = Some(a.steps);
    targs.warmup = a.steps / 15;
    targs.decay_at = vec![a.steps * 2 / 3, a.steps * 13 / 15];
    targs.rois = 64;
    let train_cfg = targs.config(model, &state, None)?;
    Ok(ImpConfig {
        model: model.to_path_buf(),
        model_fingerprint: crate::train::run::fingerprint(model)?,
        trained: None,
        trained_fingerprint: None,
        masks_from: None,
        val: ValSpec::Coco { annotations: val.to_path_buf(), images: val.parent().expect("in a folder").join("images") },
        sparsity: a.sparsity,
        rounds: a.rounds,
        scope: Scope::Global,
        modules: None,
        min_layer_density: None,
        rewind: Rewind::Init,
        dense_steps: a.steps,
        train: train_cfg,
        early_bird: vec![0.5],
        early_stop_every: 0,
        max_map_drop: a.max_map_drop,
        // One thread: the demo's numbers repeat bit for bit on any machine with this build.
        threads: 1,
        structure: crate::lottery::Structure::Weight,
        importance: Default::default(),
        round_to: 8,
    })
}

/// `ticket train`'s defaults, parsed by clap so the demo trains exactly as the command would.
struct DemoTrain(super::train::TrainArgs);

impl Default for DemoTrain {
    fn default() -> Self {
        use clap::{Args as _, FromArgMatches};
        let cmd = super::train::TrainArgs::augment_args(clap::Command::new("demo"));
        let m = cmd.try_get_matches_from(["demo"]).expect("defaults parse");
        DemoTrain(super::train::TrainArgs::from_arg_matches(&m).expect("defaults parse"))
    }
}

pub fn run(a: Args, json: bool) -> Result<()> {
    let python = crate::runtime::env::train_python(a.train_python.as_deref())?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let out = std::path::absolute(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let model = out.join("initial.onnx");
    if !model.exists() {
        crate::fsio::write_atomic(&model, DEFAULT_MODEL)?;
    }
    let train = synth(&out.join("train"), a.train_images, 1)?;
    let val = synth(&out.join("val"), a.val_images, 2)?;
    let run_dir = out.join("run");
    let start = if run_dir.join("run.json").exists() {
        ImpStart::Resume { model: None }
    } else {
        ImpStart::Fresh(Box::new(config(&a, &model, &train, &val)?))
    };
    let mut on = super::imp::progress(json);
    let imp = run_imp(&run_dir, start, &ImpEnv { python }, &mut on)?;
    let mut report = DemoReport { run_dir: run_dir.clone(), imp, ort_equal: None, compact_round_trip_exact: None, validate: None };
    if let Some(r) = report.imp.ticket_level {
        let level = crate::lottery::level::dir(&run_dir, r);
        // The exported ticket in ORT equals the dense graph with the ticket's masks applied.
        let mut masked = ModelState::import(&level.join(crate::lottery::level::MODEL))?;
        let masks = crate::model::Masks::load(&level.join(crate::lottery::level::MASKS))?;
        masked.apply_masks(masks, &level)?;
        report.ort_equal = Some(crate::runtime::ort_check::verify_export(&masked, &run_dir.join("ticket.onnx")).is_ok());
        let packed = ModelState::import(&run_dir.join("ticket.tkt"))?;
        report.compact_round_trip_exact =
            Some(packed.weights.tensors.iter().zip(&masked.weights.tensors).all(|(x, y)| x.values == y.values));
        report.validate = Some(validate(&run_dir, &val, report.imp.levels[r].selected_sparsity - 1e-3, report.imp.max_map_drop)?);
    }
    emit(json, &report, text);
    if report.imp.ticket_level.is_none() {
        return Err(Error::Reported(format!("no level is within {} AP of dense", report.imp.max_map_drop)));
    }
    if report.validate.as_ref().is_some_and(|v| v["passed"] != true)
        || report.ort_equal == Some(false)
        || report.compact_round_trip_exact == Some(false)
    {
        return Err(Error::Reported("a check on the exported ticket failed (see above)".into()));
    }
    Ok(())
}

/// `ticket validate` on the ticket against the dense model, as a user would run it in CI.
fn validate(run_dir: &Path, val: &Path, min_sparsity: f64, max_map_drop: f64) -> Result<serde_json::Value> {
    let exe = std::env::current_exe().map_err(|e| Error::Runtime(format!("cannot find the ticket binary: {e}")))?;
    let out = std::process::Command::new(exe)
        .arg("validate")
        .arg(run_dir.join("ticket.onnx"))
        .arg("--dense")
        .arg(crate::lottery::level::dir(run_dir, 0).join(crate::lottery::level::MODEL))
        .arg("--coco")
        .arg(val)
        .arg("--images")
        .arg(val.parent().expect("in a folder").join("images"))
        .arg("--min-sparsity")
        .arg(min_sparsity.to_string())
        .arg("--max-map-drop")
        .arg(max_map_drop.to_string())
        .arg("--json")
        .output()
        .map_err(|e| Error::Runtime(format!("cannot run ticket validate: {e}")))?;
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Runtime(format!("ticket validate printed no report ({e}): {}", String::from_utf8_lossy(&out.stderr).trim())))
}

fn text(r: &DemoReport) -> String {
    let mut s = super::imp::text(&r.imp);
    if let Some(v) = &r.validate {
        let verdict = if v["passed"].as_bool().unwrap_or(false) { "passed" } else { "FAILED" };
        let drops: Vec<String> = v["map_drop"]
            .as_object()
            .map(|m| m.iter().map(|(k, d)| format!("{k} {:.3}", d.as_f64().unwrap_or(f64::NAN))).collect())
            .unwrap_or_default();
        s += &format!("ticket validate (sparsity and mAP-drop gates on the held-out images): {verdict}; mAP drop {}\n", drops.join(", "));
    }
    if let Some(eq) = r.ort_equal {
        s += &format!(
            "ONNX Runtime: the exported ticket {} the dense graph with its masks applied\n",
            if eq { "equals" } else { "DIFFERS from" }
        );
    }
    if let Some(c) = r.compact_round_trip_exact {
        s += &format!("compact file: {}\n", if c { "restores every weight exactly" } else { "DOES NOT restore the weights" });
    }
    s += &format!("run folder: {} (resume or inspect it; summary.json has every number)\n", r.run_dir.display());
    s
}
