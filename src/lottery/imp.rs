//! Iterative magnitude pruning with rewinding, level by level in a run folder (open_lth's layout in spirit).
//!
//! Level 0 trains the model densely (or takes `--trained` as the trained dense model). Level r = 1..K prunes
//! the previous level's trained weights to keep (1-S)^(r/K) of the selected weights (masks cumulative), sets
//! the survivors to the rewind point, trains with the mask held, evaluates on the validation set with tract,
//! and exports the level's ticket. RUN_DIR/run.json holds the settings, each level its folder (`level`), and
//! `summary.json` the table; `ticket.onnx` (+ `.tkt`) is the sparsest level within the AP gate.
//!
//! Resuming: a level with `metrics.json` is finished; otherwise its masks, start weights and trained model are
//! each reused when present, and its training resumes from its last checkpoint. Everything a level writes is
//! derived deterministically from what came before, so a resumed run reaches the same masks and metrics
//! (bit for bit with one ORT thread, as training is).
use super::early_bird::{self, EarlyBirdReport, StopRule};
use super::level::{self, LevelRow, Scores};
use super::rewind::Rewind;
use crate::data::voc::VocDataset;
use crate::data::ClassifyDataset;
use crate::detect::pipeline::DetectParams;
use crate::error::{Error, Result};
use crate::eval::model::{evaluate_model, iou_types_of};
use crate::eval::{CocoGt, EvalOptions, IouType};
use crate::fsio::write_atomic;
use crate::model::{Mask, Masks, ModelState, Role};
use crate::prune::channel::{self, ChannelParams, ChannelValid, Importance, SavedPlan};
use crate::prune::{PruneParams, PruneReport, PruneValid, Scope};
use crate::train::run::{fingerprint, Run, RunConfig, Start, StepRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The validation set every level is scored on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ValSpec {
    Coco {
        annotations: PathBuf,
        images: PathBuf,
    },
    Voc {
        dir: PathBuf,
        images: Option<PathBuf>,
    },
    /// A classification set: a classifier's levels are scored by top-1 accuracy.
    Classify {
        dir: PathBuf,
    },
}

/// Everything that defines an IMP run; saved as RUN_DIR/run.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImpConfig {
    /// The initial weights (`rewind init` restarts from them).
    pub model: PathBuf,
    pub model_fingerprint: String,
    /// A trained dense model standing in for level 0's training.
    pub trained: Option<PathBuf>,
    pub trained_fingerprint: Option<String>,
    /// A given mask for level 1 (an early-bird mask, or any mask file) instead of pruning.
    pub masks_from: Option<PathBuf>,
    pub val: ValSpec,
    pub sparsity: f64,
    pub rounds: usize,
    pub scope: Scope,
    pub modules: Option<Vec<String>>,
    pub min_layer_density: Option<f64>,
    pub rewind: Rewind,
    /// Level 0's training steps; the levels' come from `train.steps`.
    pub dense_steps: u64,
    /// The training settings of every level (model, fingerprint and masks are set per level).
    pub train: RunConfig,
    /// Fractions of dense training at which the level-1 mask is drawn and kept.
    pub early_bird: Vec<f64>,
    /// Check the early-bird stop rule every this many dense steps (0: off).
    pub early_stop_every: u64,
    /// The gate for `ticket.onnx`: AP (each IoU type) at most this far below dense.
    pub max_map_drop: f64,
    /// ORT intra-op threads of every level (0: one per core; 1: bit-for-bit repeatable, resumes included).
    pub threads: usize,
    /// `weight`: magnitude masks (the seed's tickets); `channel`: channels physically removed (channel IMP).
    #[serde(default)]
    pub structure: Structure,
    /// Channel importance and the multiple kept channel counts are rounded to (channel structure only).
    #[serde(default)]
    pub importance: Importance,
    #[serde(default = "default_round_to")]
    pub round_to: usize,
}

/// The most levels a run holds: 100 rounds of IMP at 5% each reach 99.4% sparsity; more is a typo (and each
/// level costs a training run).
pub const MAX_ROUNDS: usize = 100;
/// The most early-bird fractions of one run.
pub const MAX_EARLY_BIRD: usize = 100;

fn default_round_to() -> usize {
    8
}

/// What a level removes (`prune`'s choice, kept in run.json).
pub use crate::prune::Structure;

impl ImpConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Input(m));
        if self.rounds == 0 || self.rounds > MAX_ROUNDS {
            return bad(format!(
                "--rounds {} is outside 1..={MAX_ROUNDS} (each round is a level: a pruned, retrained and scored model)",
                self.rounds
            ));
        }
        if self.masks_from.is_some() && self.rounds != 1 {
            return bad("--masks-from gives level 1's mask: it takes no --rounds".into());
        }
        self.prune_params(1)?;
        if self.trained.is_some() {
            if let Rewind::Step(_) = self.rewind {
                return bad("--rewind STEP needs the dense training that --trained skips".into());
            }
            if !self.early_bird.is_empty() || self.early_stop_every > 0 {
                return bad("--early-bird and --early-stop-eb watch dense training, which --trained skips".into());
            }
        }
        if let Rewind::Step(k) = self.rewind {
            if k == 0 || k > self.dense_steps {
                return bad(format!("--rewind {k} is outside the dense training's steps 1..={}", self.dense_steps));
            }
        }
        if self.structure == Structure::Channel {
            if self.masks_from.is_some() || self.min_layer_density.is_some() || !self.early_bird.is_empty() || self.early_stop_every > 0 {
                return bad("--structure channel removes channels by group importance: --masks-from, --min-layer-density and the early-bird options are for weight masks".into());
            }
            self.channel_params()?;
        }
        if self.dense_steps == 0 {
            return bad("--dense-steps must be at least 1".into());
        }
        if let Some(f) = self.early_bird.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
            return bad(format!("--early-bird fraction {f} is outside (0, 1]"));
        }
        if self.early_bird.len() > MAX_EARLY_BIRD {
            return bad(format!(
                "--early-bird lists {} fractions; at most {MAX_EARLY_BIRD} (each saves a mask of the whole network)",
                self.early_bird.len()
            ));
        }
        if let Some(f) = self.early_bird.iter().enumerate().find_map(|(i, f)| self.early_bird[..i].contains(f).then_some(f)) {
            return bad(format!("--early-bird fraction {f} is given twice"));
        }
        // run.json stores it: JSON has no infinity, and a run whose settings do not read back is lost.
        if !(self.max_map_drop.is_finite() && self.max_map_drop >= 0.0) {
            return bad(format!("--max-map-drop {} must be a finite number ≥ 0", self.max_map_drop));
        }
        if self.round_to == 0 || self.round_to > crate::prune::channel::MAX_ROUND_TO {
            return bad(format!("--round-to {} is outside 1..={}", self.round_to, crate::prune::channel::MAX_ROUND_TO));
        }
        self.train.validate()?;
        self.dense_config().validate()
    }

    /// The files and folders the settings name exist and are of their kind: a sweep checks each task's before it
    /// creates anything, so a missing dataset is refused at once instead of failing every task.
    pub fn check_files(&self) -> Result<()> {
        use crate::train::run::DataSpec;
        let file = |p: &Path| match std::fs::metadata(p) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(Error::input(p, "not a regular file")),
            Err(e) => Err(Error::io(p, e)),
        };
        let folder = |p: &Path| match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::input(p, "not a folder")),
            Err(e) => Err(Error::io(p, e)),
        };
        file(&self.model)?;
        for p in self.trained.iter().chain(&self.masks_from) {
            file(p)?;
        }
        match &self.val {
            ValSpec::Coco { annotations, images } => file(annotations).and_then(|_| folder(images))?,
            ValSpec::Voc { dir, images } => folder(dir).and_then(|_| images.as_deref().map_or(Ok(()), folder))?,
            ValSpec::Classify { dir } => folder(dir)?,
        }
        match &self.train.data {
            DataSpec::Coco { annotations, images } => file(annotations).and_then(|_| folder(images)),
            DataSpec::Voc { dir, images } => folder(dir).and_then(|_| images.as_deref().map_or(Ok(()), folder)),
            DataSpec::Classify { dir } => folder(dir),
        }
    }

    /// The prune of level `r`: keeps (1-S)^(r/K) of the selected weights.
    pub fn prune_params(&self, r: usize) -> Result<PruneValid> {
        PruneParams {
            sparsity: self.sparsity,
            scope: self.scope,
            modules: self.modules.clone(),
            rounds: self.rounds,
            round: r,
            include_bias: false,
            min_layer_density: self.min_layer_density,
        }
        .check()
    }

    /// The channel prune of every level: the fraction of the current channels that leaves (1-S)^(r/K) after r.
    pub fn channel_params(&self) -> Result<ChannelValid> {
        ChannelParams {
            sparsity: 1.0 - (1.0 - self.sparsity).powf(1.0 / self.rounds as f64),
            scope: self.scope,
            modules: self.modules.clone(),
            importance: self.importance,
            round_to: self.round_to,
            flops_at: Default::default(),
        }
        .check()
    }

    /// Level 0's training settings: `dense_steps`, with the decay points scaled from the levels' schedule.
    fn dense_config(&self) -> RunConfig {
        let mut c = self.train.clone();
        if c.steps != self.dense_steps {
            let scale = self.dense_steps as f64 / c.steps as f64;
            c.decay_at = c.decay_at.iter().map(|&d| ((d as f64 * scale).round() as u64).min(self.dense_steps.saturating_sub(1))).collect();
            c.warmup = ((c.warmup as f64 * scale).round() as u64).min(self.dense_steps);
            c.steps = self.dense_steps;
        }
        c
    }
}

/// Where the training worker is (a property of the machine, not of the run).
pub struct ImpEnv {
    pub python: PathBuf,
}

pub enum ImpStart {
    Fresh(Box<ImpConfig>),
    /// Continue the run; a model given here must be the one the run was started from.
    Resume {
        model: Option<PathBuf>,
    },
}

/// What the run reports while it works; the CLI turns these into bars and lines.
pub enum ImpEvent<'a> {
    /// A level begins `what` (pruning, training, evaluating, exporting).
    Phase {
        level: usize,
        what: &'a str,
    },
    TrainStart {
        level: usize,
        total: u64,
        start: u64,
        batch: usize,
    },
    Step {
        level: usize,
        total: u64,
        record: &'a StepRecord,
    },
    TrainEnd {
        level: usize,
    },
    /// Early-bird's stop rule ended dense training at this step.
    EarlyStop {
        step: u64,
    },
    Level(&'a LevelRow),
}

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
}

pub const SUMMARY: &str = "summary.json";

/// Runs (or resumes) the IMP experiment in `dir`.
pub fn run_imp(dir: &Path, start: ImpStart, env: &ImpEnv, on: &mut dyn FnMut(ImpEvent)) -> Result<ImpSummary> {
    let (config, _lock) = open(dir, start, env)?;
    let mut rows = Vec::with_capacity(config.rounds + 1);
    let mut early = None;
    for r in 0..=config.rounds {
        let row = match level::read_row(dir, r)? {
            Some(row) => row,
            None => {
                let (row, eb) = run_level(dir, &config, r, env, on)?;
                early = early.or(eb);
                row
            }
        };
        on(ImpEvent::Level(&row));
        rows.push(row);
    }
    if early.is_none() && (!config.early_bird.is_empty() || config.early_stop_every > 0) {
        early = read_early_bird(dir)?;
    }
    summarize(dir, &config, rows, early)
}

/// Checks the settings and the folder, then locks it for this process (a second `imp` on the same folder gets a
/// one-line error naming the holder); a fresh run writes run.json only after every input was read and the
/// training worker has started once, so a refused run leaves nothing behind.
fn open(dir: &Path, start: ImpStart, env: &ImpEnv) -> Result<(ImpConfig, crate::fsio::DirLock)> {
    let run_json = dir.join("run.json");
    let config = match start {
        ImpStart::Fresh(config) => {
            if run_json.exists() {
                return Err(Error::input(dir, "already holds an IMP run (run.json); use --resume to continue it, or another folder"));
            }
            config.validate()?;
            config.check_files()?;
            refuse_linked_levels(dir, config.rounds)?;
            let state = ModelState::import(&config.model)?;
            if !state.arch.kind.is_detector() && state.arch.kind != crate::model::ModelKind::Classifier {
                return Err(Error::input(
                    &config.model,
                    "is neither a torchvision detector (Faster/Mask/Keypoint R-CNN) nor a ResNet classifier; imp trains and scores those",
                ));
            }
            if let Some(t) = &config.trained {
                let trained = ModelState::import(t)?;
                same_parameters(&state, &trained, t)?;
            }
            if let Some(m) = &config.masks_from {
                let mut s = state.clone();
                s.apply_masks(Masks::load(m)?, m)?;
            }
            check_val(&config.val, &state)?;
            let (len, source) = match &config.train.data {
                crate::train::run::DataSpec::Classify { dir } => {
                    let data = ClassifyDataset::load(dir)?;
                    crate::train::run::check_classify_classes(&state, &data)?;
                    (data.len(), data.source.clone())
                }
                data => {
                    let data = data.load()?;
                    crate::train::run::check_classes(&state, &data)?;
                    (data.len(), data.source.clone())
                }
            };
            crate::train::run::check_batch_fits(len, &source, config.train.shape.batch)?;
            crate::train::run::check_worker(&env.python, &config.train.device)?;
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let lock = crate::fsio::DirLock::acquire(dir)?;
            if run_json.exists() {
                return Err(Error::input(dir, "already holds an IMP run (run.json); use --resume to continue it, or another folder"));
            }
            save_config(dir, &config)?;
            (*config, lock)
        }
        ImpStart::Resume { model } => {
            let config = read_config(dir)?;
            let given = model.unwrap_or_else(|| config.model.clone());
            let have = fingerprint(&given)?;
            if have != config.model_fingerprint {
                return Err(Error::input(
                    dir,
                    format!(
                        "was started from another model ({} has fingerprint {have}; the run was started from {} with {})",
                        given.display(),
                        config.model.display(),
                        config.model_fingerprint
                    ),
                ));
            }
            if let (Some(t), Some(f)) = (&config.trained, &config.trained_fingerprint) {
                if &fingerprint(t)? != f {
                    return Err(Error::input(dir, format!("its trained dense model {} has changed since the run started", t.display())));
                }
            }
            refuse_linked_levels(dir, config.rounds)?;
            (config, crate::fsio::DirLock::acquire(dir)?)
        }
    };
    Ok(config)
}

/// run.json's record of the settings the run was created with: a hash of each, so that an edit is refused
/// naming the setting (a `sparsity` changed mid-run would make later levels disagree with finished ones).
const CREATED_WITH: &str = "created_with";

/// Each setting's FNV-1a, by name: top-level keys, and the keys of the `train` object one by one.
/// `threads` is left out: it changes where a run executes, not what it computes.
pub(crate) fn settings_record(v: &serde_json::Value) -> BTreeMap<String, String> {
    use crate::train::run::{fnv1a, FNV_OFFSET};
    let mut out = BTreeMap::new();
    let hash = |x: &serde_json::Value| format!("{:016x}", fnv1a(FNV_OFFSET, x.to_string().as_bytes()));
    if let serde_json::Value::Object(m) = v {
        for (k, x) in m.iter().filter(|(k, _)| k.as_str() != "threads") {
            match x {
                serde_json::Value::Object(inner) if k == "train" => {
                    for (ik, ix) in inner {
                        out.insert(format!("{k}.{ik}"), hash(ix));
                    }
                }
                _ => {
                    out.insert(k.clone(), hash(x));
                }
            }
        }
    }
    out
}

/// The settings whose record differs (changed, added or removed).
pub(crate) fn changed_settings(was: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = was.keys().chain(now.keys()).collect();
    keys.into_iter().filter(|k| was.get(*k) != now.get(*k)).cloned().collect()
}

/// Writes RUN_DIR/run.json: the settings and their record ([`CREATED_WITH`]).
pub fn save_config(dir: &Path, config: &ImpConfig) -> Result<()> {
    #[derive(Serialize)]
    struct Saved<'a> {
        #[serde(flatten)]
        config: &'a ImpConfig,
        created_with: BTreeMap<String, String>,
    }
    let created_with = settings_record(&serde_json::to_value(config).expect("serialises"));
    let text = serde_json::to_string_pretty(&Saved { config, created_with }).expect("serialises");
    write_atomic(&dir.join("run.json"), text.as_bytes())
}

/// Reads RUN_DIR/run.json for a resume: untrusted, so it is checked as a new run's settings are, and against its
/// record of the settings the run was created with.
pub fn read_config(dir: &Path) -> Result<ImpConfig> {
    let run_json = dir.join("run.json");
    let bytes = crate::fsio::read_limited(&run_json, 16 << 20).map_err(|e| Error::input(dir, format!("cannot resume: {e}")))?;
    let mut v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::input(&run_json, format!("not an IMP run file: {e}")))?;
    let record = v.as_object_mut().and_then(|m| m.remove(CREATED_WITH));
    let config: ImpConfig = serde_json::from_value(v).map_err(|e| Error::input(&run_json, format!("not an IMP run file: {e}")))?;
    config.validate().map_err(|e| Error::input(&run_json, format!("holds settings a run cannot have: {e}")))?;
    let Some(record) = record else {
        return Err(Error::input(&run_json, format!("has no `{CREATED_WITH}` record of the settings the run was created with (edited, or written by an older ticket): start the run again in a new folder")));
    };
    let was: BTreeMap<String, String> =
        serde_json::from_value(record).map_err(|e| Error::input(&run_json, format!("`{CREATED_WITH}` is not a settings record: {e}")))?;
    let changed = changed_settings(&was, &settings_record(&serde_json::to_value(&config).expect("serialises")));
    if !changed.is_empty() {
        return Err(Error::input(
            &run_json,
            format!(
                "{} changed since the run was created: its finished levels were made with the old value; restore it, or start a new run in another folder",
                changed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(config)
}

/// A level folder, or a folder a level writes into, must be a real folder inside the run: through a symbolic
/// link a run would write its levels elsewhere.
fn refuse_linked_levels(dir: &Path, rounds: usize) -> Result<()> {
    for r in 0..=rounds {
        let l = level::dir(dir, r);
        for p in [l.clone(), l.join("checkpoints"), l.join("work"), l.join(early_bird::FOLDER)] {
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink() || !m.is_dir()) {
                return Err(Error::input(&p, "is a symbolic link or not a folder: a run's levels are written only inside its folder"));
            }
        }
    }
    Ok(())
}

fn same_parameters(a: &ModelState, b: &ModelState, b_path: &Path) -> Result<()> {
    let shapes = |s: &ModelState| s.weights.tensors.iter().map(|w| (w.name.clone(), w.shape.clone())).collect::<Vec<_>>();
    if shapes(a) != shapes(b) {
        return Err(Error::input(
            b_path,
            format!("has other parameters than {} (names or shapes differ): --trained must be MODEL after training", a.path().display()),
        ));
    }
    Ok(())
}

fn check_val(val: &ValSpec, state: &ModelState) -> Result<()> {
    if state.arch.kind.is_detector() == matches!(val, ValSpec::Classify { .. }) {
        return Err(Error::input(
            state.path(),
            format!(
                "is a {}: score it on {}",
                state.arch.kind.label(),
                if state.arch.kind.is_detector() { "--val-coco or --val-voc" } else { "--val-classify" }
            ),
        ));
    }
    match val {
        ValSpec::Classify { dir } => {
            let data = ClassifyDataset::load(dir)?;
            crate::train::run::check_classify_classes(state, &data)?;
            data.verify()?;
        }
        ValSpec::Coco { annotations, images } => {
            let gt = CocoGt::load(annotations)?;
            crate::eval::model::check_classes(state, &gt)?;
            crate::eval::model::coco_images(&gt, images)?;
        }
        ValSpec::Voc { dir, .. } => {
            let voc = VocDataset::load(dir)?;
            let k = state.arch.num_classes.unwrap_or(0);
            if k != voc.classes.len() + 1 {
                return Err(Error::input(
                    dir,
                    format!(
                        "the validation set has {} classes but {} predicts {}",
                        voc.classes.len(),
                        state.path().display(),
                        k.saturating_sub(1)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Masks of every prunable weight, all ones: level 0's.
fn ones(state: &ModelState) -> Masks {
    Masks { map: state.weights.tensors.iter().filter(|w| w.role == Role::Weight).map(|w| (w.name.clone(), Mask::ones(&w.shape))).collect() }
}

fn run_level(
    dir: &Path,
    config: &ImpConfig,
    r: usize,
    env: &ImpEnv,
    on: &mut dyn FnMut(ImpEvent),
) -> Result<(LevelRow, Option<EarlyBirdReport>)> {
    let ldir = level::dir(dir, r);
    std::fs::create_dir_all(&ldir).map_err(|e| Error::io(&ldir, e))?;
    let model = ldir.join(level::MODEL);
    let masks_path = ldir.join(level::MASKS);
    let mut early = None;
    let mut prune_report = None;
    if r == 0 {
        if !masks_path.exists() {
            ones(&ModelState::import(&config.model)?).save(&masks_path, &[("level", "0".into())])?;
        }
        match &config.trained {
            Some(t) if !model.exists() => {
                let bytes = crate::fsio::read_limited(t, 16 << 30)?;
                write_atomic(&model, &bytes)?;
            }
            Some(_) => {}
            None => {
                if !model.exists() {
                    train_dense(dir, config, env, on)?;
                }
                early = early_bird_report(dir, config)?;
            }
        }
    } else {
        on(ImpEvent::Phase { level: r, what: "pruning" });
        let start = ldir.join(level::START);
        if config.structure == Structure::Channel {
            channel_start(dir, config, r)?;
        } else {
            if !masks_path.exists() {
                let (masks, report) = level_masks(dir, config, r)?;
                masks.save(&masks_path, &[("level", r.to_string())])?;
                prune_report = Some(report);
            }
            let masks = Masks::load(&masks_path)?;
            if !start.exists() {
                let mut s = ModelState::import(&rewind_point(dir, config, r))?;
                s.masks = Masks::default();
                s.apply_masks(masks, &masks_path)?;
                crate::export::write_onnx(&s, &start)?;
            }
        }
        if !model.exists() {
            let mut c = config.train.clone();
            c.model = std::path::absolute(&start).unwrap_or(start.clone());
            c.model_fingerprint = fingerprint(&start)?;
            c.masks = Some(std::path::absolute(&masks_path).unwrap_or(masks_path.clone()));
            train(&start, &ldir, c, r, env, on, config.threads, |_, _| Ok(false))?;
        }
    }
    on(ImpEvent::Phase { level: r, what: "evaluating" });
    let state = ModelState::import(&model)?;
    let masks = Masks::load(&masks_path)?;
    let (scores, reports, latency_ms) = evaluate(config, state.clone())?;
    on(ImpEvent::Phase { level: r, what: "exporting" });
    let compact = ldir.join(level::COMPACT);
    let compact_bytes =
        if r == 0 { None } else { Some(crate::export::compact::pack(&state.source, &Default::default(), &compact)?.compact_bytes) };
    let (steps, train_s) = level::train_time(&ldir);
    let row = level_row(config, &state, &masks, r, scores, steps, train_s, latency_ms, compact_bytes)?;
    let metrics = serde_json::json!({
        "row": row,
        "reports": reports,
        "prune": prune_report,
        "early_bird": early,
    });
    write_atomic(&ldir.join(level::METRICS), serde_json::to_string_pretty(&metrics).expect("serialises").as_bytes())?;
    // The training core and ORT's artifacts are regenerated on demand; a finished level does not need them.
    let _ = std::fs::remove_dir_all(ldir.join("work"));
    Ok((row, early))
}

/// Level 0: dense training with the snapshots the later levels and the early-bird report need.
fn train_dense(dir: &Path, config: &ImpConfig, env: &ImpEnv, on: &mut dyn FnMut(ImpEvent)) -> Result<()> {
    let l0 = level::dir(dir, 0);
    let dense = config.dense_config();
    let points = early_bird::points(&config.early_bird, config.dense_steps);
    let level1 = config.prune_params(1)?;
    let rewind_at = match config.rewind {
        Rewind::Step(k) => Some(k),
        _ => None,
    };
    let mut stop = if config.early_stop_every > 0 { Some(StopRule::open(&l0, config.early_stop_every, step_of(&l0))?) } else { None };
    let hook = |run: &mut Run, step: u64| -> Result<bool> {
        let wants_mask = points.iter().any(|(f, s)| *s == step && !early_bird::mask_file(&l0, *f).exists())
            || stop.as_ref().is_some_and(|s| step % s.every == 0);
        let wants_rewind = rewind_at == Some(step) && !l0.join(REWIND).exists();
        if !wants_mask && !wants_rewind {
            return Ok(false);
        }
        let state = run.current_state()?;
        if wants_rewind {
            crate::export::write_onnx(&state, &l0.join(REWIND))?;
        }
        if !wants_mask {
            return Ok(false);
        }
        let masks = early_bird::draw(&state, &level1)?;
        for (f, _) in points.iter().filter(|(_, s)| *s == step) {
            let file = early_bird::mask_file(&l0, *f);
            std::fs::create_dir_all(file.parent().expect("in a folder")).map_err(|e| Error::io(&file, e))?;
            masks.save(&file, &[("step", step.to_string())])?;
        }
        match stop.as_mut().filter(|s| step % s.every == 0) {
            Some(rule) => rule.observe(step, masks),
            None => Ok(false),
        }
    };
    if let Some(step) = train(&config.model, &l0, dense, 0, env, on, config.threads, hook)? {
        on(ImpEvent::EarlyStop { step });
    }
    Ok(())
}

/// A started level's training settings (`level_L/run.json`) must be the ones this run gives the level: an edit
/// there would train the rest of the level on other settings. Its paths may differ (a moved run folder).
fn check_level_settings(ldir: &Path, want: &RunConfig) -> Result<()> {
    let path = ldir.join("run.json");
    let bytes = crate::fsio::read_limited(&path, 1 << 20)?;
    let have: RunConfig = serde_json::from_slice(&bytes).map_err(|e| Error::input(&path, format!("not a training run file: {e}")))?;
    let record = |c: &RunConfig| {
        let mut r = settings_record(&serde_json::to_value(c).expect("serialises"));
        r.remove("model");
        r.remove("masks");
        r
    };
    let changed = changed_settings(&record(&have), &record(want));
    if !changed.is_empty() {
        let names = changed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        return Err(Error::input(
            &path,
            format!("{names} differ from what the IMP run's run.json gives this level: restore the level's run.json, or start a new run"),
        ));
    }
    Ok(())
}

/// Set when early-bird's stop rule ended dense training: holds the step.
const STOPPED: &str = "early_stop.txt";
/// Level 0's weights at the late-rewinding step.
pub const REWIND: &str = "rewind.onnx";

/// The step of a level's last checkpoint (0 before any).
fn step_of(ldir: &Path) -> u64 {
    std::fs::read_to_string(ldir.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}

/// Trains `model` in `ldir` (fresh or resumed) until its steps are done or `hook` (called after each step,
/// and once at the resumed step) says stop; writes `ldir/model.onnx`. An early stop is checkpointed and then
/// marked in `ldir/early_stop.txt`, so a resumed run finishes at that step instead of training on; the step
/// is returned.
fn train(
    model: &Path,
    ldir: &Path,
    config: RunConfig,
    level: usize,
    env: &ImpEnv,
    on: &mut dyn FnMut(ImpEvent),
    threads: usize,
    mut hook: impl FnMut(&mut Run, u64) -> Result<bool>,
) -> Result<Option<u64>> {
    on(ImpEvent::Phase { level, what: "training" });
    let start = if ldir.join("run.json").exists() {
        check_level_settings(ldir, &config)?;
        Start::Resume { steps: None }
    } else {
        Start::Fresh(config)
    };
    let mut run = Run::open(model, ldir, start, &env.python, threads)?;
    let total = run.config.steps;
    on(ImpEvent::TrainStart { level, total, start: run.step, batch: run.config.shape.batch });
    // A snapshot due at the step the run resumed from was either written before the kill or is taken now
    // from the same weights (the checkpoint of that step).
    let marker = ldir.join(STOPPED);
    let mut stopped = std::fs::read_to_string(&marker).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let at = run.step;
    if stopped.is_none() && at > 0 && hook(&mut run, at)? {
        stopped = Some(run.step);
    }
    while stopped.is_none() && run.step < total {
        let record = run.next()?;
        on(ImpEvent::Step { level, total, record: &record });
        if hook(&mut run, record.step)? {
            stopped = Some(record.step);
        }
    }
    if let Some(step) = stopped.filter(|_| !marker.exists()) {
        if step % run.config.save_every != 0 && step != total {
            run.save()?;
        }
        write_atomic(&marker, step.to_string().as_bytes())?;
    }
    on(ImpEvent::TrainEnd { level });
    run.finish()?;
    Ok(stopped)
}

/// Saved beside a channel level: the plan drawn on the previous level's trained model.
pub const CHANNELS: &str = "channels.json";

/// A channel level's plan (from the previous level's trained model), its start — the rewind point cut to the
/// same channels: the initial weights cut by every plan so far (`init`), likewise the late-rewinding snapshot,
/// or the trained model itself (`none`) — and its all-ones masks. Each is reused when present.
fn channel_start(dir: &Path, config: &ImpConfig, r: usize) -> Result<()> {
    let ldir = level::dir(dir, r);
    let plan_path = ldir.join(CHANNELS);
    let plans: Vec<SavedPlan> = if plan_path.exists() {
        serde_json::from_slice(&crate::fsio::read_limited(&plan_path, 64 << 20)?)
            .map_err(|e| Error::input(&plan_path, format!("not a channel plan: {e}")))?
    } else {
        let prev = ModelState::import(&level::dir(dir, r - 1).join(level::MODEL))?;
        let (_, plans) = channel::plan(&prev, &config.channel_params()?)?;
        let saved: Vec<SavedPlan> = plans.iter().map(SavedPlan::from).collect();
        write_atomic(&plan_path, serde_json::to_string(&saved).expect("serialises").as_bytes())?;
        saved
    };
    let start = ldir.join(level::START);
    if !start.exists() {
        let base = match (config.rewind, r) {
            (Rewind::None, _) => level::dir(dir, r - 1).join(level::MODEL),
            (_, 1) => rewind_point(dir, config, 1),
            _ => level::dir(dir, r - 1).join(level::START),
        };
        let narrow = channel::apply_plans(&ModelState::import(&base)?, &plans)?;
        crate::export::write_onnx(&narrow, &start)?;
    }
    let masks_path = ldir.join(level::MASKS);
    if !masks_path.exists() {
        ones(&ModelState::import(&start)?).save(&masks_path, &[("level", r.to_string())])?;
    }
    Ok(())
}

/// Level r's cumulative mask: the previous level's trained weights pruned (or the given mask at level 1).
fn level_masks(dir: &Path, config: &ImpConfig, r: usize) -> Result<(Masks, Option<PruneReport>)> {
    if let (1, Some(m)) = (r, &config.masks_from) {
        return Ok((Masks::load(m)?, None));
    }
    let prev = level::dir(dir, r - 1);
    let mut state = ModelState::import(&prev.join(level::MODEL))?;
    state.masks = Masks::default();
    if r > 1 {
        let m = prev.join(level::MASKS);
        state.apply_masks(Masks::load(&m)?, &m)?;
    }
    let report = crate::prune::prune(&mut state, &config.prune_params(r)?)?;
    Ok((state.masks, Some(report)))
}

fn rewind_point(dir: &Path, config: &ImpConfig, r: usize) -> PathBuf {
    match config.rewind {
        Rewind::Init => config.model.clone(),
        Rewind::Step(_) => level::dir(dir, 0).join(REWIND),
        Rewind::None => level::dir(dir, r - 1).join(level::MODEL),
    }
}

/// Scores, full reports (as JSON) and median latency of a model on the validation set, one detection run.
fn evaluate(config: &ImpConfig, state: ModelState) -> Result<(BTreeMap<String, Scores>, serde_json::Value, f64)> {
    if let ValSpec::Classify { dir } = &config.val {
        let report =
            crate::eval::classify::top1(&state, &ClassifyDataset::load(dir)?, config.train.shape.height, &mut crate::progress::silent)?;
        let s = Scores { ap: Some(report.top1), ap50: None, ap75: None, ap_small: None, ap_medium: None, ap_large: None };
        return Ok((BTreeMap::from([("top1".to_string(), s)]), serde_json::to_value(&report).expect("serialises"), report.latency_ms));
    }
    let params = DetectParams::from_model(&state);
    match &config.val {
        ValSpec::Classify { .. } => unreachable!("scored above"),
        ValSpec::Coco { annotations, images } => {
            let gt = CocoGt::load(annotations)?;
            let types = iou_types_of(&state);
            let ev = evaluate_model(state, params, &gt, images, &types, &EvalOptions::default(), &mut crate::progress::silent)?;
            let scores = types
                .iter()
                .zip(&ev.reports)
                .map(|(t, r)| {
                    let size = |name: &str| r.metric(name);
                    let name = match t {
                        IouType::Bbox => "bbox",
                        IouType::Segm => "segm",
                        IouType::Keypoints => "keypoints",
                    };
                    (
                        name.to_string(),
                        Scores {
                            ap: size("AP"),
                            ap50: size("AP50"),
                            ap75: size("AP75"),
                            ap_small: size("APs"),
                            ap_medium: size("APm"),
                            ap_large: size("APl"),
                        },
                    )
                })
                .collect();
            Ok((scores, serde_json::to_value(&ev.reports).expect("serialises"), crate::eval::model::median(&ev.latency_ms)))
        }
        ValSpec::Voc { dir, images } => {
            let voc = VocDataset::load(dir)?;
            let images_dir = images.clone().unwrap_or_else(|| dir.join("JPEGImages"));
            let list = voc.image_paths(&images_dir)?;
            let mut det = crate::detect::pipeline::Detector::new(state, params)?;
            let (dets, latency) = crate::detect::images::detect_images(&mut det, &list, &mut crate::progress::silent, |_, _, _| Ok(()))?;
            let records = dets.iter().map(crate::detect::results::CocoResult::to_detection).collect();
            let report = voc.evaluate(crate::eval::DetSource::Records(records), &mut crate::progress::silent)?;
            let s = Scores { ap: None, ap50: report.map_area, ap75: None, ap_small: None, ap_medium: None, ap_large: None };
            Ok((
                BTreeMap::from([("voc".to_string(), s)]),
                serde_json::to_value(&report).expect("serialises"),
                crate::eval::model::median(&latency),
            ))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn level_row(
    config: &ImpConfig,
    state: &ModelState,
    masks: &Masks,
    r: usize,
    scores: BTreeMap<String, Scores>,
    steps: u64,
    train_s: f64,
    latency_ms: f64,
    compact_bytes: Option<u64>,
) -> Result<LevelRow> {
    // Selected = the weights the prune ranks (its modules); the network counts every parameter.
    let groups: Option<Vec<String>> =
        config.modules.as_ref().map(|m| m.iter().map(|g| crate::model::ModuleGroup::parse(g.trim()).key()).collect());
    let (mut sel_n, mut sel_kept) = (0usize, 0usize);
    let mut collapsed = Vec::new();
    for w in state.weights.tensors.iter().filter(|w| w.role == Role::Weight) {
        if groups.as_ref().is_some_and(|g| !g.contains(&w.group.key())) {
            continue;
        }
        let kept = masks.map.get(&w.name).map_or(w.numel(), Mask::kept);
        sel_n += w.numel();
        sel_kept += kept;
        if r > 0 && (kept as f64) < (1.0 - crate::prune::NEAR_COLLAPSE) * w.numel() as f64 {
            collapsed.push(w.name.clone());
        }
    }
    let network_pruned = masks.total() - masks.kept();
    let model_bytes = std::fs::metadata(state.path()).map(|m| m.len()).unwrap_or(0);
    let (mut selected_sparsity, mut network_sparsity) =
        (1.0 - sel_kept as f64 / sel_n.max(1) as f64, network_pruned as f64 / state.weights.total().max(1) as f64);
    let mut flops_removed = None;
    if config.structure == Structure::Channel {
        // Channels leave the graph: count against the dense model, weights and FLOPs alike.
        let dense = ModelState::import(&config.model)?;
        let prunable = |s: &ModelState| s.prunable().map(|w| w.numel()).sum::<usize>();
        selected_sparsity = 1.0 - prunable(state) as f64 / prunable(&dense).max(1) as f64;
        network_sparsity = 1.0 - state.weights.total() as f64 / dense.weights.total().max(1) as f64;
        let flops = |s: &ModelState| channel::costs(s, &Default::default()).values().map(|c| c.flops).sum::<u64>();
        flops_removed = Some(1.0 - flops(state) as f64 / flops(&dense).max(1) as f64);
    }
    Ok(LevelRow {
        level: r,
        selected_sparsity,
        network_sparsity,
        flops_removed,
        scores,
        steps,
        train_s,
        latency_ms,
        model_bytes,
        compact_bytes,
        collapsed,
    })
}

fn early_bird_report(dir: &Path, config: &ImpConfig) -> Result<Option<EarlyBirdReport>> {
    if config.early_bird.is_empty() && config.early_stop_every == 0 {
        return Ok(None);
    }
    let l0 = level::dir(dir, 0);
    let mut state = ModelState::import(&l0.join(level::MODEL))?;
    state.masks = Masks::default();
    let last = early_bird::draw(&state, &config.prune_params(1)?)?;
    let points = early_bird::points(&config.early_bird, config.dense_steps);
    let masks = early_bird::compare(&l0, &points, &last)?;
    let stopped_at = std::fs::read_to_string(l0.join(STOPPED)).ok().and_then(|s| s.trim().parse().ok());
    let checks = if config.early_stop_every > 0 { StopRule::open(&l0, config.early_stop_every, u64::MAX)?.checks } else { Vec::new() };
    Ok(Some(EarlyBirdReport { masks, checks, stopped_at }))
}

fn read_early_bird(dir: &Path) -> Result<Option<EarlyBirdReport>> {
    let path = level::dir(dir, 0).join(level::METRICS);
    let bytes = crate::fsio::read_limited(&path, 64 << 20)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::input(&path, e))?;
    Ok(serde_json::from_value(v["early_bird"].clone()).ok())
}

fn summarize(dir: &Path, config: &ImpConfig, levels: Vec<LevelRow>, early_bird: Option<EarlyBirdReport>) -> Result<ImpSummary> {
    let dense = levels[0].clone();
    let delta: Vec<BTreeMap<String, f64>> = levels.iter().map(|l| l.delta(&dense)).collect();
    // Sparsest level whose every IoU type stays within the gate.
    let ticket_level =
        (1..levels.len()).rev().find(|&r| !delta[r].is_empty() && delta[r].values().all(|d| *d >= -config.max_map_drop - 1e-12));
    let ticket = match ticket_level {
        Some(r) => {
            let l = level::dir(dir, r);
            let out = dir.join("ticket.onnx");
            write_atomic(&out, &crate::fsio::read_limited(&l.join(level::MODEL), 16 << 30)?)?;
            write_atomic(&dir.join("ticket.tkt"), &crate::fsio::read_limited(&l.join(level::COMPACT), 16 << 30)?)?;
            Some(out)
        }
        None => {
            let _ = std::fs::remove_file(dir.join("ticket.onnx"));
            let _ = std::fs::remove_file(dir.join("ticket.tkt"));
            None
        }
    };
    let summary =
        ImpSummary { run_dir: dir.to_path_buf(), levels, delta, max_map_drop: config.max_map_drop, ticket_level, ticket, early_bird };
    write_atomic(&dir.join(SUMMARY), serde_json::to_string_pretty(&summary).expect("serialises").as_bytes())?;
    Ok(summary)
}
