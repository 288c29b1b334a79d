//! What defines a training run (`run.json`): the settings, the learning-rate schedule and their checks.
use super::worker::{Device, Optimizer};
use crate::choice::Choice;
use crate::data::{ClassifyDataset, DataSpec};
use crate::detect::pipeline::DetectParams;
use crate::error::{Error, Result};
use crate::fsio::fingerprint;
use crate::graph::distill::Term;
use crate::graph::train_core::TrainShape;
use crate::model::ModelState;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything that defines a run; saved as `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub model: PathBuf,
    /// FNV-1a 64 of the model file: a resume checks it.
    pub model_fingerprint: String,
    pub data: DataSpec,
    pub masks: Option<PathBuf>,
    pub steps: u64,
    pub lr: f32,
    /// `sgd` (momentum + weight decay, torch's SGD) or `adamw` (ORT's AdamW).
    pub optimizer: String,
    pub momentum: f32,
    pub weight_decay: f32,
    /// SGD only: the gradients are scaled down so their global L2 norm is at most this (torch's
    /// `clip_grad_norm_`). Absent: no clipping (and in run.json files older than it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f32>,
    /// Set when a resume started (or changed) the clip: the step it resumed from, whose steps were trained
    /// without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_from_step: Option<u64>,
    /// Linear warmup from `warmup_factor · lr` over this many steps (torchvision's reference recipe).
    pub warmup: u64,
    pub warmup_factor: f32,
    /// Steps after which the learning rate is multiplied by `gamma`.
    pub decay_at: Vec<u64>,
    pub gamma: f32,
    pub shape: TrainShape,
    pub min_size: usize,
    pub max_size: usize,
    pub trainable_layers: usize,
    pub flip: f64,
    pub seed: u64,
    pub save_every: u64,
    pub device: String,
    /// Distillation from a teacher (absent in runs without one, and in run.json files older than it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillConfig>,
    /// ORT intra-op threads the run was started with (0: one per core), which a resume reuses unless told
    /// otherwise: with 1 a run is bit-for-bit repeatable only if its resumes also run on 1. Absent in run.json
    /// files older than it (a resume then takes the command's, else one per core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

/// A run's teacher and what it distils (`graph::distill`); with `unlabeled` data the teacher's detections are
/// also the ground truth (`train::pseudo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    pub teacher: PathBuf,
    /// FNV-1a 64 of the teacher file: a resume checks it.
    pub teacher_fingerprint: String,
    pub terms: Vec<Term>,
    pub weight: f32,
    pub temperature: f32,
    /// Teacher detections scoring at least this are the pseudo ground truth of unlabeled images.
    pub pseudo_score: f64,
}

/// Distillation settings as a user gives them.
#[derive(Clone, Debug, PartialEq)]
pub struct DistillSettings {
    /// The terms; none: no distillation (with `unlabeled` data: all three).
    pub terms: Vec<Term>,
    pub weight: f32,
    pub temperature: f32,
    /// The dense model to learn from (`imp`: level 0's trained model unless given).
    pub teacher: Option<PathBuf>,
    pub pseudo_score: f64,
}

impl Default for DistillSettings {
    fn default() -> Self {
        DistillSettings { terms: Vec::new(), weight: 1.0, temperature: 1.0, teacher: None, pseudo_score: 0.5 }
    }
}

impl DistillSettings {
    /// The run's distillation: None without a teacher; terms, teacher and data checked against each other.
    pub fn config(&self, data: &DataSpec) -> Result<Option<DistillConfig>> {
        let unlabeled = matches!(data, DataSpec::Unlabeled { .. });
        if self.teacher.is_none() {
            if unlabeled {
                return Err(Error::setting("teacher", "training on `unlabeled` images needs a `teacher`: its detections are the labels"));
            }
            if !self.terms.is_empty() {
                return Err(Error::setting("distill", "`distill` needs a `teacher` (the dense model to learn from)"));
            }
            return Ok(None);
        }
        if self.terms.is_empty() && !unlabeled {
            return Err(Error::setting("teacher", "a `teacher` is used through `distill` terms (or `unlabeled` images): give `distill`"));
        }
        let (path, fingerprint) = self.given_teacher()?.expect("a teacher is given");
        Ok(Some(self.levels(None).with_teacher(path, fingerprint)))
    }

    /// The given teacher, checked to be a file, as an absolute path and its fingerprint.
    fn given_teacher(&self) -> Result<Option<(PathBuf, String)>> {
        self.teacher
            .as_deref()
            .map(|t| {
                crate::data::spec::check_file(t)?;
                Ok((crate::fsio::absolute(t), fingerprint(t)?))
            })
            .transpose()
    }

    /// The settings with `teacher`; no terms named means every term (unlabeled images learn from all of them).
    fn levels(&self, teacher: Option<(PathBuf, String)>) -> LevelDistill {
        let terms = if self.terms.is_empty() { Term::all().to_vec() } else { self.terms.clone() };
        LevelDistill { teacher, terms, weight: self.weight, temperature: self.temperature, pseudo_score: self.pseudo_score }
    }
}

/// An IMP run's distillation: the settings, with the teacher left open when it is level 0's trained model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelDistill {
    /// A given teacher and its fingerprint; None: level 0's trained model.
    pub teacher: Option<(PathBuf, String)>,
    pub terms: Vec<Term>,
    pub weight: f32,
    pub temperature: f32,
    pub pseudo_score: f64,
}

impl DistillSettings {
    /// An IMP run's distillation (None: no terms and labelled data): the teacher is level 0's model unless given.
    pub fn for_levels(&self, data: &DataSpec) -> Result<Option<LevelDistill>> {
        let unlabeled = matches!(data, DataSpec::Unlabeled { .. });
        if self.terms.is_empty() && !unlabeled {
            if self.teacher.is_some() {
                return Err(Error::setting(
                    "teacher",
                    "a `teacher` is used through `distill` terms (or `unlabeled` images): give `distill`",
                ));
            }
            return Ok(None);
        }
        let d = self.levels(self.given_teacher()?);
        d.with_teacher(PathBuf::new(), String::new()).validate()?;
        Ok(Some(d))
    }
}

impl LevelDistill {
    /// The level's distillation, taught by the given teacher or else by `level0` (its trained model).
    pub fn for_level(&self, level0: &Path) -> Result<DistillConfig> {
        Ok(match &self.teacher {
            Some((t, f)) => self.with_teacher(t.clone(), f.clone()),
            None => self.with_teacher(crate::fsio::absolute(level0), fingerprint(level0)?),
        })
    }

    fn with_teacher(&self, teacher: PathBuf, teacher_fingerprint: String) -> DistillConfig {
        DistillConfig {
            teacher,
            teacher_fingerprint,
            terms: self.terms.clone(),
            weight: self.weight,
            temperature: self.temperature,
            pseudo_score: self.pseudo_score,
        }
    }
}

impl DistillConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |setting, m: String| Err(Error::setting(setting, m));
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return bad("distill_weight", format!("`distill_weight` must be a number ≥ 0, got {}", self.weight));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad("temperature", format!("`temperature` must be a positive number, got {}", self.temperature));
        }
        if !(self.pseudo_score > 0.0 && self.pseudo_score < 1.0) {
            return bad("pseudo_score", format!("`pseudo_score` must lie in (0, 1), got {}", self.pseudo_score));
        }
        if self.terms.is_empty() {
            return bad("distill", "`distill` names no term".into());
        }
        Ok(())
    }
}

/// The settings of a training run a user chooses; [`RunConfig::new`] resolves them against a model and its data
/// (the canvas, the resize range, the heads' RoIs) into the run's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSettings {
    pub steps: u64,
    /// Base learning rate for the default batch of 2.
    pub lr: f32,
    /// `sgd` (momentum + weight decay, torchvision's recipe) or `adamw`.
    pub optimizer: String,
    pub momentum: f32,
    pub weight_decay: f32,
    /// With `sgd`: the largest global L2 norm of the gradients a step applies (larger ones are scaled down to it);
    /// a remedy for a run whose loss spikes and then diverges. None: no clipping (torchvision's recipe).
    pub clip_grad_norm: Option<f32>,
    /// Linear warmup steps, from `warmup_factor · lr`.
    pub warmup: u64,
    pub warmup_factor: f32,
    /// Steps after which the learning rate is multiplied by `gamma`.
    pub decay_at: Vec<u64>,
    pub gamma: f32,
    /// Images per step.
    pub batch: usize,
    /// Box-head RoIs sampled per image (torchvision: 512); the mask and keypoint heads take a quarter.
    pub rois: usize,
    /// Canvas side; `None`: the model's max_size rounded up to a multiple of 32 (a detector), the first
    /// image's side (a classifier).
    pub canvas: Option<usize>,
    /// Backbone stages that train, 0..=5. All by default: no pretrained backbone exists here, and a
    /// random-init stem must learn; 3 fine-tunes a pretrained one.
    pub trainable_layers: usize,
    /// Probability of a horizontal flip per image.
    pub flip: f64,
    /// Seeds the data order, flips and RoI sampling.
    pub seed: u64,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Checkpoint every this many steps (and at the last).
    pub save_every: u64,
    pub distill: DistillSettings,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            steps: 1000,
            lr: 0.01,
            optimizer: "sgd".into(),
            momentum: 0.9,
            weight_decay: 1e-4,
            clip_grad_norm: None,
            warmup: 100,
            warmup_factor: 1e-3,
            decay_at: Vec::new(),
            gamma: 0.1,
            batch: 2,
            rois: 128,
            canvas: None,
            trainable_layers: 5,
            flip: 0.5,
            seed: 0,
            device: "cpu".into(),
            save_every: 100,
            distill: DistillSettings::default(),
        }
    }
}

impl RunConfig {
    /// The run that trains `model` (already imported as `state`) on `data` with `masks` held: the settings with
    /// what they leave open derived from the model (a detector's canvas and resize range) or the data (a
    /// classifier's side). Not yet validated ([`RunConfig::validate`]).
    pub fn new(model: &Path, state: &ModelState, data: DataSpec, masks: Option<PathBuf>, s: &TrainSettings) -> Result<RunConfig> {
        let distill = s.distill.config(&data)?;
        Ok(RunConfig { distill, ..Self::without_distill(model, state, data, masks, s)? })
    }

    /// [`RunConfig::new`] with the distillation settings left out: an IMP run's template, whose teacher (level
    /// 0's trained model) exists only once level 0 is done.
    pub fn without_distill(
        model: &Path,
        state: &ModelState,
        data: DataSpec,
        masks: Option<PathBuf>,
        s: &TrainSettings,
    ) -> Result<RunConfig> {
        let (canvas, min_size, max_size) = match &data {
            DataSpec::Classify { dir } => {
                let side = match s.canvas {
                    Some(c) => crate::data::classify::check_side(c).map_err(|m| Error::setting("canvas", format!("`canvas`: {m}")))?,
                    None => ClassifyDataset::load(dir)?.side()?,
                };
                (side, side, side)
            }
            _ => {
                let detect = DetectParams::from_model(state);
                let canvas = s.canvas.unwrap_or(detect.max_size.div_ceil(32) * 32);
                (canvas, detect.min_size.min(canvas), detect.max_size.min(canvas))
            }
        };
        let head = s.rois.div_ceil(4);
        Ok(RunConfig {
            model: crate::fsio::absolute(model),
            model_fingerprint: fingerprint(model)?,
            data,
            masks,
            steps: s.steps,
            lr: s.lr,
            optimizer: s.optimizer.clone(),
            momentum: s.momentum,
            weight_decay: s.weight_decay,
            clip_grad_norm: s.clip_grad_norm,
            clip_from_step: None,
            warmup: s.warmup,
            warmup_factor: s.warmup_factor,
            decay_at: s.decay_at.clone(),
            gamma: s.gamma,
            shape: TrainShape {
                batch: s.batch,
                height: canvas,
                width: canvas,
                rois_per_image: s.rois,
                mask_rois_per_image: head,
                keypoint_rois_per_image: head,
                pooling: None,
            },
            min_size,
            max_size,
            trainable_layers: s.trainable_layers,
            flip: s.flip,
            seed: s.seed,
            save_every: s.save_every,
            device: s.device.clone(),
            distill: None,
            threads: None,
        })
    }

    /// The learning rate of step `step` (1-based): warmup, then step decay.
    pub fn lr_at(&self, step: u64) -> f32 {
        let warm = if self.warmup > 0 && step <= self.warmup {
            let alpha = (step - 1) as f32 / self.warmup as f32;
            self.warmup_factor * (1.0 - alpha) + alpha
        } else {
            1.0
        };
        let decays = self.decay_at.iter().filter(|&&d| step > d).count() as i32;
        self.lr * warm * self.gamma.powi(decays)
    }

    pub fn optimizer(&self) -> Result<Optimizer> {
        match self.optimizer.as_str() {
            "sgd" => {
                Ok(Optimizer::Momentum { momentum: self.momentum, weight_decay: self.weight_decay, clip_grad_norm: self.clip_grad_norm })
            }
            "adamw" if self.clip_grad_norm.is_some() => Err(Error::setting(
                "clip_grad_norm",
                "`clip_grad_norm` needs the sgd optimizer: ORT's AdamW applies its update inside its own graph, out of reach",
            )),
            "adamw" => Ok(Optimizer::AdamW),
            o => Err(Error::setting("optimizer", format!("`optimizer` must be sgd or adamw, got '{o}'"))),
        }
    }

    pub fn device(&self) -> Result<Device> {
        self.device.parse()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |setting, m: String| Err(Error::setting(setting, m));
        if self.steps == 0 {
            return bad("steps", "`steps` must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("`lr` must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) || !(0.0..1.0).contains(&self.weight_decay) {
            return bad("momentum", format!("`momentum` {} and `weight_decay` {} must lie in [0, 1)", self.momentum, self.weight_decay));
        }
        if let Some(c) = self.clip_grad_norm.filter(|c| !(c.is_finite() && *c > 0.0)) {
            return bad("clip_grad_norm", format!("`clip_grad_norm` must be a positive number, got {c}"));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0 && self.warmup_factor > 0.0 && self.warmup_factor <= 1.0) {
            return bad("gamma", format!("`gamma` {} and the warmup factor {} must lie in (0, 1]", self.gamma, self.warmup_factor));
        }
        if let Some(d) = self.decay_at.iter().find(|&&d| d >= self.steps) {
            return bad("decay_at", format!("`decay_at` {d} is not below `steps` {}: the decay would never apply", self.steps));
        }
        if self.save_every == 0 {
            return bad("save_every", "`save_every` must be at least 1".into());
        }
        let s = &self.shape;
        if s.batch == 0 || s.batch > MAX_BATCH {
            return bad("batch", format!("`batch` {} is outside 1..={MAX_BATCH}", s.batch));
        }
        // A detector's FPN upsamples exactly only on multiples of 32; a classifier takes any side from 32 up.
        let classify = matches!(self.data, DataSpec::Classify { .. });
        for side in [s.height, s.width] {
            if !(32..=MAX_CANVAS).contains(&side) || (!classify && !side.is_multiple_of(32)) {
                let what = if classify { "a side" } else { "a multiple of 32" };
                return bad("canvas", format!("`canvas` {side} must be {what} in 32..={MAX_CANVAS}"));
            }
        }
        if s.rois_per_image == 0 || s.rois_per_image > MAX_ROIS || s.mask_rois_per_image == 0 || s.keypoint_rois_per_image == 0 {
            return bad("rois", format!("`rois` {} is outside 1..={MAX_ROIS}", s.rois_per_image));
        }
        if self.min_size == 0 || self.max_size < self.min_size {
            return Err(Error::Input(format!(
                "the resize range {}..={} is empty (min_size must be at least 1 and at most max_size)",
                self.min_size, self.max_size
            )));
        }
        if self.trainable_layers > 5 {
            return bad(
                "trainable_layers",
                format!("`trainable_layers` {} is outside 0..=5 (torchvision's trainable backbone stages)", self.trainable_layers),
            );
        }
        if !(0.0..=1.0).contains(&self.flip) {
            return bad("flip", format!("`flip` {} is not a probability in [0, 1]", self.flip));
        }
        self.optimizer()?;
        self.device()?;
        if let Some(d) = &self.distill {
            d.validate()?;
        }
        Ok(())
    }
}

/// Bounds on the training shape: beyond them a step would not fit in memory (a batch of 4096 images, a canvas
/// of 8192² per image) and the error would come from the allocator, hours in, not from the option.
pub const MAX_BATCH: usize = 1024;
pub const MAX_CANVAS: usize = 4096;
pub const MAX_ROIS: usize = 4096;

/// A training set of `len` images (read from `source`) holds at least one batch.
pub fn check_batch_fits(len: usize, source: &Path, batch: usize) -> Result<()> {
    if len < batch {
        return Err(Error::input(source, format!("has {len} images, fewer than one batch of {batch}")));
    }
    Ok(())
}

/// Starts the training worker once and stops it: a missing or broken training Python (or `--device cuda`
/// without CUDA) is found before a run folder is written, not after (exit 3: the environment is at fault).
pub fn check_worker(python: &Path, device: &str) -> Result<()> {
    let device: Device = device.parse()?;
    super::worker::Worker::start(python, device)?.shutdown()
}
