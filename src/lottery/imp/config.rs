//! What defines an IMP run (RUN_DIR/run.json): the settings, their checks, and the record of the settings the
//! run was created with, against which a resume is checked.
use crate::data::spec::check_file;
use crate::data::DataSpec;
use crate::error::{Context, Error, Result};
use crate::fsio::{absolute, fingerprint, write_atomic};
use crate::lottery::random_mask::MaskSource;
use crate::lottery::rewind::Rewind;
use crate::model::ModelState;
use crate::prune::channel::{ChannelParams, ChannelValid, Importance};
use crate::prune::{PruneParams, PruneValid, Scope};
use crate::train::config::LevelDistill;
use crate::train::{folder, RunConfig, TrainSettings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    pub val: DataSpec,
    pub sparsity: f64,
    pub rounds: usize,
    pub scope: Scope,
    pub modules: Option<Vec<String>>,
    pub min_layer_density: Option<f64>,
    pub rewind: Rewind,
    // The lottery controls. Left out of run.json at their defaults, so runs made before them resume.
    /// `magnitude` (the ticket) or `random` (the random-mask control: the magnitude mask's per-tensor counts).
    #[serde(default, skip_serializing_if = "MaskSource::is_magnitude")]
    pub mask: MaskSource,
    /// The tensors `min_layer_density` floors (`None`: every selected tensor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_on: Option<Vec<String>>,
    /// Level 0's training steps; the levels' come from `train.steps`.
    pub dense_steps: u64,
    /// The training settings of every level (model, fingerprint and masks are set per level).
    pub train: RunConfig,
    /// Fractions of dense training at which the level-1 mask is drawn and kept (0: the initial weights' mask).
    pub early_bird: Vec<f64>,
    /// Check the early-bird stop rule every this many dense steps (0: off).
    pub early_stop_every: u64,
    /// The gate for `ticket.onnx`: AP (each IoU type) at most this far below dense.
    pub max_map_drop: f64,
    /// A validation folder without annotations: the dense model's detections scoring at least this are the
    /// reference every level is scored against (its agreement with dense). Absent with a labelled set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_score: Option<f64>,
    /// Score every level on the validation set every this many training steps (`level_L/val_curve.jsonl`; 0: off).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub val_every: u64,
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
    /// The pruned levels learn from a dense teacher (`train::config::LevelDistill`); absent without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<LevelDistill>,
}

/// The most levels a run holds: 100 rounds of IMP at 5% each reach 99.4% sparsity; more is a typo (and each
/// level costs a training run).
pub const MAX_ROUNDS: usize = 100;
/// The most early-bird fractions of one run.
pub const MAX_EARLY_BIRD: usize = 100;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn default_round_to() -> usize {
    8
}

/// What a level removes (`prune`'s choice, kept in run.json).
pub use crate::prune::Structure;

/// The settings of an IMP run a user chooses; [`ImpConfig::new`] resolves them against a model and its data.
#[derive(Clone, Debug, PartialEq)]
pub struct ImpSettings {
    /// Sparsity of the selected weights after the last level, in [0, 1); `None` with `masks_from`.
    pub sparsity: Option<f64>,
    /// Levels: level r keeps (1-S)^(r/K) of the selected weights. 1 = one-shot.
    pub rounds: usize,
    pub scope: Scope,
    /// Module groups to prune (`None`: all).
    pub modules: Option<Vec<String>>,
    pub min_layer_density: Option<f64>,
    pub structure: Structure,
    pub importance: Importance,
    pub round_to: usize,
    pub rewind: Rewind,
    // The lottery controls.
    /// Where a weight level's mask comes from: magnitude (the ticket) or random (same per-tensor counts).
    pub mask: MaskSource,
    /// The tensors `min_layer_density` floors, by name parts (`rpn.head.conv`); `None`: every selected tensor.
    pub floor_on: Option<Vec<String>>,
    /// Level 0's training steps (`None`: the levels' steps).
    pub dense_steps: Option<u64>,
    /// A trained dense model standing in for level 0's training.
    pub trained: Option<PathBuf>,
    pub early_bird: Vec<f64>,
    /// End dense training when the early-bird rule fires, checking it every `eb_every` dense steps (`None`: a
    /// twentieth of dense training).
    pub early_stop_eb: bool,
    pub eb_every: Option<u64>,
    /// Level 1's mask from a file instead of pruning.
    pub masks_from: Option<PathBuf>,
    pub max_map_drop: f64,
    /// With a validation folder without annotations: the dense model's detections scoring at least this are the
    /// reference.
    pub agreement_score: f64,
    /// Score each level on the validation set every this many steps while it trains (0: only when it is done).
    pub val_every: u64,
    /// ORT intra-op threads (0: one per core).
    pub threads: usize,
    /// The training settings of every level.
    pub train: TrainSettings,
}

impl Default for ImpSettings {
    fn default() -> Self {
        ImpSettings {
            sparsity: None,
            rounds: 1,
            scope: Scope::Global,
            modules: None,
            min_layer_density: None,
            structure: Structure::Weight,
            importance: Importance::L1,
            round_to: default_round_to(),
            rewind: Rewind::Init,
            mask: MaskSource::Magnitude,
            floor_on: None,
            dense_steps: None,
            trained: None,
            early_bird: Vec::new(),
            early_stop_eb: false,
            eb_every: None,
            masks_from: None,
            max_map_drop: 0.01,
            agreement_score: crate::eval::gate::DEFAULT_AGREEMENT_SCORE,
            val_every: 0,
            threads: 0,
            train: TrainSettings::default(),
        }
    }
}

impl ImpConfig {
    /// The run that prunes `model` (the initial weights) level by level, training on `data` and scoring on `val`;
    /// paths are made absolute. Not yet validated ([`ImpConfig::validate`]).
    pub fn new(model: &Path, val: DataSpec, data: DataSpec, s: &ImpSettings) -> Result<ImpConfig> {
        // Conflicts are checked here rather than by a parser, whose usage errors span several lines.
        if s.trained.is_some() && s.dense_steps.is_some() {
            return Err(Error::setting(
                "trained",
                "`trained` gives level 0's trained model; `dense_steps` would train it: give one of them",
            ));
        }
        if s.masks_from.is_some() && s.sparsity.is_some() {
            return Err(Error::setting("masks_from", "`masks_from` gives level 1's mask; `sparsity` would draw one: give one of them"));
        }
        let state = ModelState::import(model)?;
        let sparsity = match (s.sparsity, &s.masks_from) {
            (Some(x), None) => x,
            // The given mask decides; the schedule's sparsity only names what level 1 would have drawn.
            (None, Some(_)) => 0.0,
            _ => return Err(Error::setting("sparsity", "give `sparsity` S (or `masks_from` FILE for level 1's mask)")),
        };
        let distill = s.train.distill.for_levels(&data)?;
        let train = RunConfig::without_distill(model, &state, data.absolute(), None, &s.train)?;
        let dense_steps = s.dense_steps.unwrap_or(train.steps);
        if s.eb_every == Some(0) {
            return Err(Error::setting(
                "eb_every",
                "`eb_every` 0: the early-bird rule is checked every N dense steps, so N must be at least 1",
            ));
        }
        Ok(ImpConfig {
            model: absolute(model),
            model_fingerprint: fingerprint(model)?,
            trained: s.trained.as_deref().map(absolute),
            trained_fingerprint: s.trained.as_deref().map(fingerprint).transpose()?,
            masks_from: s.masks_from.as_deref().map(absolute),
            val: val.absolute(),
            sparsity,
            rounds: s.rounds,
            scope: s.scope,
            modules: s.modules.clone(),
            min_layer_density: s.min_layer_density,
            rewind: s.rewind,
            mask: s.mask,
            floor_on: s.floor_on.clone(),
            dense_steps,
            train,
            early_bird: s.early_bird.clone(),
            early_stop_every: if s.early_stop_eb { s.eb_every.unwrap_or((dense_steps / 20).max(1)) } else { 0 },
            max_map_drop: s.max_map_drop,
            agreement_score: matches!(val, DataSpec::Unlabeled { .. }).then_some(s.agreement_score),
            val_every: s.val_every,
            threads: s.threads,
            structure: s.structure,
            importance: s.importance,
            round_to: s.round_to,
            distill,
        })
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |setting, m: String| Err(Error::setting(setting, m));
        if self.rounds == 0 || self.rounds > MAX_ROUNDS {
            return bad(
                "rounds",
                format!(
                    "`rounds` {} is outside 1..={MAX_ROUNDS} (each round is a level: a pruned, retrained and scored model)",
                    self.rounds
                ),
            );
        }
        if self.masks_from.is_some() && self.rounds != 1 {
            return bad("masks_from", "`masks_from` gives level 1's mask: it takes no `rounds`".into());
        }
        self.prune_params(1)?;
        if self.trained.is_some() {
            if let Rewind::Step(_) = self.rewind {
                return bad("rewind", "`rewind` STEP needs the dense training that `trained` skips".into());
            }
            if !self.early_bird.is_empty() || self.early_stop_every > 0 {
                return bad("early_bird", "`early_bird` and `early_stop_eb` watch dense training, which `trained` skips".into());
            }
        }
        if let Rewind::Step(k) = self.rewind {
            if k == 0 || k > self.dense_steps {
                return bad("rewind", format!("`rewind` {k} is outside the dense training's steps 1..={}", self.dense_steps));
            }
        }
        self.check_controls()?;
        if self.structure == Structure::Channel {
            if self.masks_from.is_some() || self.min_layer_density.is_some() || !self.early_bird.is_empty() || self.early_stop_every > 0 {
                return bad(
                    "structure",
                    "`structure` channel removes channels by group importance: `masks_from`, `min_layer_density` and the early-bird options are for weight masks".into(),
                );
            }
            self.channel_params()?;
        }
        if self.dense_steps == 0 {
            return bad("dense_steps", "`dense_steps` must be at least 1".into());
        }
        if let Some(f) = self.early_bird.iter().find(|f| !(**f >= 0.0 && **f <= 1.0)) {
            return bad("early_bird", format!("`early_bird` fraction {f} is outside [0, 1]"));
        }
        if self.early_bird.len() > MAX_EARLY_BIRD {
            return bad(
                "early_bird",
                format!(
                    "`early_bird` lists {} fractions; at most {MAX_EARLY_BIRD} (each saves a mask of the whole network)",
                    self.early_bird.len()
                ),
            );
        }
        if let Some(f) = self.early_bird.iter().enumerate().find_map(|(i, f)| self.early_bird[..i].contains(f).then_some(f)) {
            return bad("early_bird", format!("`early_bird` fraction {f} is given twice"));
        }
        // run.json stores it: JSON has no infinity, and a run whose settings do not read back is lost.
        if !(self.max_map_drop.is_finite() && self.max_map_drop >= 0.0) {
            return bad("max_map_drop", format!("`max_map_drop` {} must be a finite number ≥ 0", self.max_map_drop));
        }
        if let Some(a) = self.agreement_score.filter(|a| !(*a >= 0.0 && *a <= 1.0)) {
            return bad("agreement_score", format!("`agreement_score` {a} is outside [0, 1]"));
        }
        if self.round_to == 0 || self.round_to > crate::prune::channel::MAX_ROUND_TO {
            return bad("round_to", format!("`round_to` {} is outside 1..={}", self.round_to, crate::prune::channel::MAX_ROUND_TO));
        }
        if matches!(self.train.data, DataSpec::Unlabeled { .. }) && self.trained.is_none() {
            return bad(
                "unlabeled",
                "`unlabeled` images train the pruned levels from the dense model: give it as `trained` (level 0 is not trained without labels)"
                    .into(),
            );
        }
        self.train.validate()?;
        self.dense_config().validate()
    }

    /// The random-mask control draws a weight mask: not a channel plan, and not over a given mask.
    fn check_controls(&self) -> Result<()> {
        if self.mask == MaskSource::Random && self.structure == Structure::Channel {
            return Err(Error::setting(
                "mask",
                "`mask` random draws weight masks; `structure` channel removes whole channels: use it with `structure` weight",
            ));
        }
        if self.mask == MaskSource::Random && self.masks_from.is_some() {
            return Err(Error::setting("mask", "`mask` random draws level 1's mask; `masks_from` gives it: give one of them"));
        }
        Ok(())
    }

    /// The files and folders the settings name exist and are of their kind: a sweep checks each task's before it
    /// creates anything, so a missing dataset is refused at once instead of failing every task.
    pub fn check_files(&self) -> Result<()> {
        check_file(&self.model)?;
        for p in self.trained.iter().chain(&self.masks_from) {
            check_file(p)?;
        }
        self.val.check_files()?;
        self.train.data.check_files()
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
        .check()?
        .with_floor_on(self.floor_on.clone())
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
    pub(super) fn dense_config(&self) -> RunConfig {
        self.dense_config_for(self.dense_steps)
    }

    /// Dense training of `steps` steps, the decay points and warm-up scaled from the levels' schedule (level 0's,
    /// or a longer, compute-matched dense model's).
    pub fn dense_config_for(&self, steps: u64) -> RunConfig {
        let mut c = self.train.clone();
        if c.steps != steps {
            let scale = steps as f64 / c.steps as f64;
            c.decay_at = c.decay_at.iter().map(|&d| ((d as f64 * scale).round() as u64).min(steps.saturating_sub(1))).collect();
            c.warmup = ((c.warmup as f64 * scale).round() as u64).min(steps);
            c.steps = steps;
        }
        c
    }
}

/// run.json's record of the settings the run was created with: a hash of each, so that an edit is refused
/// naming the setting (a `sparsity` changed mid-run would make later levels disagree with finished ones).
const CREATED_WITH: &str = "created_with";

/// Each setting's FNV-1a, by name: top-level keys, and the keys of the `train` object one by one.
/// `threads` is left out: it changes where a run executes, not what it computes.
pub(crate) fn settings_record(v: &serde_json::Value) -> BTreeMap<String, String> {
    use crate::fsio::{fnv1a, FNV_OFFSET};
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
    let run_json = dir.join(folder::RUN_JSON);
    let bytes = folder::read_run_json(dir, 16 << 20)?;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).context(&run_json, "not an IMP run file")?;
    let record = v.as_object_mut().and_then(|m| m.remove(CREATED_WITH));
    let config: ImpConfig = serde_json::from_value(v).context(&run_json, "not an IMP run file")?;
    config.validate().context(&run_json, "holds settings a run cannot have")?;
    let Some(record) = record else {
        return Err(Error::input(&run_json, format!("has no `{CREATED_WITH}` record of the settings the run was created with (edited, or written by an older ticket): start the run again in a new folder")));
    };
    let was: BTreeMap<String, String> =
        serde_json::from_value(record).with_context(&run_json, || format!("`{CREATED_WITH}` is not a settings record"))?;
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
