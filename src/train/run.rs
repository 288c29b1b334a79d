//! A training run in a folder: the loop `ticket train` drives, its schedule, its log and its checkpoints.
//!
//! RUN_DIR holds
//! - `run.json`: the settings and the source model's fingerprint (a resume with another model is refused);
//! - `log.jsonl`: one line per step (`step`, `loss`, each term, `lr`, timings);
//! - `state.json`: the last complete checkpoint (written after the checkpoint, atomically, so a run killed at
//!   any moment resumes from a checkpoint that is whole);
//! - `checkpoints/step-NNNNNN.ckpt` (+ `.momentum.npz` for SGD with momentum): the two most recent;
//! - `work/`: the training core, ORT's artifacts and the RPN forward graph (regenerated on resume);
//! - `model.onnx` at the end: the user's graph with the trained initializers, nothing else changed.
use super::batch::{StepBuilder, StepStats};
use super::batches::{BatchItem, Batches};
use crate::data::{Canvas, CanvasSample, Dataset};
use super::session::{Losses, SessionOptions, TrainSession};
use super::worker::{Device, Optimizer};
use super::Tensor;
use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::graph::train::{TrainOptions, TrainShape};
use crate::model::{Masks, ModelKind, ModelState};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the annotations are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataSpec {
    Coco { annotations: PathBuf, images: PathBuf },
    Voc { dir: PathBuf, images: Option<PathBuf> },
}

impl DataSpec {
    pub fn load(&self) -> Result<Dataset> {
        match self {
            DataSpec::Coco { annotations, images } => Dataset::from_coco(annotations, images),
            DataSpec::Voc { dir, images } => Dataset::from_voc(dir, images.as_deref()),
        }
    }
}

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
}

impl RunConfig {
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

    fn optimizer(&self) -> Result<Optimizer> {
        match self.optimizer.as_str() {
            "sgd" => Ok(Optimizer::Momentum { momentum: self.momentum, weight_decay: self.weight_decay }),
            "adamw" => Ok(Optimizer::AdamW),
            o => Err(Error::Input(format!("--optimizer must be sgd or adamw, got '{o}'"))),
        }
    }

    fn device(&self) -> Result<Device> {
        self.device.parse()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Input(m));
        if self.steps == 0 {
            return bad("--steps must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("--lr must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) || !(0.0..1.0).contains(&self.weight_decay) {
            return bad(format!("--momentum {} and --weight-decay {} must lie in [0, 1)", self.momentum, self.weight_decay));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) || !(self.warmup_factor > 0.0 && self.warmup_factor <= 1.0) {
            return bad(format!("--gamma {} and the warmup factor {} must lie in (0, 1]", self.gamma, self.warmup_factor));
        }
        if let Some(d) = self.decay_at.iter().find(|&&d| d >= self.steps) {
            return bad(format!("--decay-at {d} is not below --steps {}: the decay would never apply", self.steps));
        }
        if self.save_every == 0 {
            return bad("--save-every must be at least 1".into());
        }
        self.optimizer()?;
        self.device()?;
        Ok(())
    }
}

/// FNV-1a 64 of a file, as 16 hex digits: cheap, stable across platforms and Rust versions.
pub fn fingerprint(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(format!("{h:016x}"))
}

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
    pub step_s: f64,
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    step: u64,
    checkpoint: String,
}

/// How a run is opened.
pub enum Start {
    /// A new run in an empty (or missing) folder.
    Fresh(RunConfig),
    /// Continue the run in the folder; `steps`, when given, replaces the planned step count.
    Resume { steps: Option<u64> },
}

pub struct Run {
    pub config: RunConfig,
    dir: PathBuf,
    state: ModelState,
    dataset: Dataset,
    canvas: Canvas,
    batches: Batches,
    /// The shuffled batches of the epoch being trained (regenerated from the seed once per epoch).
    epoch: (u64, Vec<Vec<BatchItem>>),
    session: TrainSession,
    builder: StepBuilder,
    rpn_model: PathBuf,
    flip_map: Vec<usize>,
    log: std::fs::File,
    /// The last step done (0 before the first).
    pub step: u64,
}

impl Run {
    /// Opens a run in `dir` from `model`. A fresh run refuses a folder that already holds one; a resumed run
    /// refuses a model whose fingerprint differs from the one it was started with. `threads` are ORT's intra-op
    /// threads (0: one per core); with 1, steps are bit-for-bit repeatable (ORT's parallel reductions are not).
    pub fn open(model: &Path, dir: &Path, start: Start, python: &Path, threads: usize) -> Result<Run> {
        let fresh = matches!(start, Start::Fresh(_));
        let (config, saved) = match start {
            Start::Fresh(config) => {
                if dir.join("run.json").exists() {
                    return Err(Error::input(dir, "already holds a training run (run.json); use --resume to continue it, or another folder"));
                }
                config.validate()?;
                (config, None)
            }
            Start::Resume { steps } => {
                let path = dir.join("run.json");
                let text = std::fs::read_to_string(&path).map_err(|e| Error::input(&path, format!("cannot read the run to resume: {e}")))?;
                let mut config: RunConfig = serde_json::from_str(&text).map_err(|e| Error::input(&path, format!("not a run file: {e}")))?;
                let have = fingerprint(model)?;
                if have != config.model_fingerprint {
                    return Err(Error::input(
                        dir,
                        format!(
                            "was trained from another model ({} has fingerprint {have}, the run was started from {} with {})",
                            model.display(),
                            config.model.display(),
                            config.model_fingerprint
                        ),
                    ));
                }
                if let Some(s) = steps {
                    config.steps = s;
                }
                config.validate()?;
                let saved = read_saved(dir)?;
                let at = saved.as_ref().map_or(0, |s| s.step);
                if config.steps < at {
                    return Err(Error::input(dir, format!("--steps {} is below the step of its last checkpoint, {at}", config.steps)));
                }
                (config, saved)
            }
        };
        let step = saved.as_ref().map_or(0, |s| s.step);
        let mut state = ModelState::import(model)?;
        if let Some(m) = &config.masks {
            state.apply_masks(Masks::load(m)?, m)?;
        }
        let dataset = config.data.load()?;
        check_classes(&state, &dataset)?;
        // A missing or broken image fails here, in one line, not hours into the run.
        dataset.verify(&indicatif::ProgressBar::hidden())?;
        let canvas = Canvas { min_size: config.min_size, max_size: config.max_size, hw: (config.shape.height, config.shape.width) };
        let batches = Batches::new(dataset.len(), config.shape.batch, config.seed, config.flip)?;
        if dataset.len() < config.shape.batch {
            return Err(Error::input(&dataset.source, format!("has {} images, fewer than one batch of {}", dataset.len(), config.shape.batch)));
        }

        // Everything above only reads; a bad model, dataset or resume folder leaves RUN_DIR as it was.
        std::fs::create_dir_all(dir.join("checkpoints")).map_err(|e| Error::io(dir, e))?;
        let work = dir.join("work");
        let mut options = SessionOptions::new(python);
        options.device = config.device()?;
        options.optimizer = config.optimizer()?;
        options.lr = config.lr_at(step + 1);
        options.work_dir = Some(work.clone());
        options.worker.threads = threads;
        let train = TrainOptions { trainable_layers: config.trainable_layers };
        let mut session = TrainSession::new(&state, &config.shape, &train, &options)?;
        let rpn_model = work.join("rpn_forward.onnx");
        let rpn = crate::graph::proposals::rpn_forward(&state, config.shape.batch, config.shape.height, config.shape.width)?;
        write_atomic(&rpn_model, &prost::Message::encode_to_vec(&rpn))?;
        if let Some(saved) = &saved {
            session.load(&dir.join(&saved.checkpoint))?;
            session.set_lr(config.lr_at(step + 1))?;
        }
        let builder = StepBuilder::new(&state.arch, &config.shape, &session.feature_hw, config.seed)?;
        if fresh {
            write_atomic(&dir.join("run.json"), serde_json::to_string_pretty(&config).expect("serialises").as_bytes())?;
        }
        let log = open_log(dir, step)?;
        let flip_map = dataset.flip_map();
        let epoch = (0, batches.epoch(0));
        Ok(Run { config, dir: dir.to_path_buf(), state, dataset, canvas, batches, epoch, session, builder, rpn_model, flip_map, log, step })
    }

    /// The batch of step `step` (1-based): epochs of full batches in the seeded order.
    fn batch(&mut self, step: u64) -> Result<Vec<CanvasSample>> {
        let per_epoch = (self.dataset.len() / self.config.shape.batch) as u64;
        let (epoch, k) = ((step - 1) / per_epoch, ((step - 1) % per_epoch) as usize);
        if self.epoch.0 != epoch {
            self.epoch = (epoch, self.batches.epoch(epoch));
        }
        self.epoch.1[k]
            .iter()
            .map(|it| {
                let s = self.dataset.sample(it.index)?;
                let s = if it.flip { s.hflip(&self.flip_map) } else { s };
                s.to_canvas(&self.canvas)
            })
            .collect()
    }

    /// Runs the next step, logs it, and saves a checkpoint when it falls on `save_every` or is the last.
    pub fn next(&mut self) -> Result<StepRecord> {
        let step = self.step + 1;
        let t0 = Instant::now();
        let batch = self.batch(step)?;
        let images = self.builder.images(&batch)?;
        let t1 = Instant::now();
        let rpn = self.session.worker().forward(&self.rpn_model, &[("images", &images)])?;
        let t2 = Instant::now();
        let (inputs, stats): (Vec<(String, Tensor)>, StepStats) = self.builder.inputs(step, &batch, images, &rpn)?;
        let t3 = Instant::now();
        let lr = self.config.lr_at(step);
        if (self.session.lr() - lr).abs() > f32::EPSILON * lr {
            self.session.set_lr(lr)?;
        }
        let (names, tensors): (Vec<String>, Vec<Tensor>) = inputs.into_iter().unzip();
        let refs: Vec<(&str, Tensor)> = names.iter().map(String::as_str).zip(tensors).collect();
        let losses: Losses = self.session.step(&refs)?;
        let t4 = Instant::now();
        self.step = step;
        let record = StepRecord {
            step,
            loss: losses.total,
            terms: losses.terms.iter().cloned().collect(),
            lr,
            proposals: stats.proposals,
            positive_rois: stats.positive_rois,
            data_s: (t1 - t0).as_secs_f64() + (t3 - t2).as_secs_f64(),
            rpn_s: (t2 - t1).as_secs_f64(),
            step_s: (t4 - t3).as_secs_f64(),
        };
        let line = serde_json::to_string(&record).expect("serialises");
        writeln!(self.log, "{line}").and_then(|_| self.log.flush()).map_err(|e| Error::io(&self.dir.join("log.jsonl"), e))?;
        if step % self.config.save_every == 0 || step == self.config.steps {
            self.save()?;
        }
        Ok(record)
    }

    /// A checkpoint of the current step (with optimizer state), then `state.json`; older checkpoints beyond
    /// the last two are removed.
    pub fn save(&mut self) -> Result<PathBuf> {
        let name = format!("checkpoints/step-{:06}.ckpt", self.step);
        let path = self.dir.join(&name);
        self.session.save(&path, true)?;
        let saved = SavedState { step: self.step, checkpoint: name };
        write_atomic(&self.dir.join("state.json"), serde_json::to_string(&saved).expect("serialises").as_bytes())?;
        let mut old: Vec<PathBuf> = std::fs::read_dir(self.dir.join("checkpoints"))
            .map_err(|e| Error::io(&self.dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ckpt"))
            .collect();
        old.sort();
        for p in old.iter().rev().skip(2) {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_file(p.with_extension("ckpt.momentum.npz"));
        }
        Ok(path)
    }

    /// The model with the weights of the last step done (masked entries +0.0): a snapshot the caller can prune
    /// or save (late-rewinding points, early-bird masks) without stopping the run.
    pub fn current_state(&mut self) -> Result<ModelState> {
        let mut state = self.state.clone();
        self.session.update_state(&mut state)?;
        Ok(state)
    }

    /// The folder the run lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the trained model as RUN_DIR/model.onnx (the user's graph, trained initializers) and stops the
    /// worker.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.session.update_state(&mut self.state)?;
        let out = self.dir.join("model.onnx");
        crate::export::write_onnx(&self.state, &out)?;
        self.session.shutdown()?;
        Ok(out)
    }
}

fn read_saved(dir: &Path) -> Result<Option<SavedState>> {
    let path = dir.join("state.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let s: SavedState = serde_json::from_str(&text).map_err(|e| Error::input(&path, format!("not a run state: {e}")))?;
    if !dir.join(&s.checkpoint).is_file() {
        return Err(Error::input(&path, format!("names checkpoint {} which is missing", s.checkpoint)));
    }
    Ok(Some(s))
}

/// The log with lines after `step` dropped (a resumed run rewrites what it redoes).
fn open_log(dir: &Path, step: u64) -> Result<std::fs::File> {
    let path = dir.join("log.jsonl");
    let kept: String = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s <= step))
            .map(|l| format!("{l}\n"))
            .collect(),
        Err(_) => String::new(),
    };
    write_atomic(&path, kept.as_bytes())?;
    std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))
}

/// The dataset's classes (and keypoints) must be the model's: K categories for K + 1 outputs.
pub fn check_classes(state: &ModelState, data: &Dataset) -> Result<()> {
    let want = state.arch.num_classes.unwrap_or(0);
    let have = data.categories.len() + 1;
    if want != have {
        return Err(Error::input(
            &data.source,
            format!(
                "has {} categories but {} predicts {} classes (background + {}): the classes do not match the model",
                data.categories.len(),
                state.path().display(),
                want,
                want.saturating_sub(1)
            ),
        ));
    }
    if state.arch.kind == ModelKind::MaskRcnn && !data.has_masks {
        return Err(Error::input(&data.source, "has no segmentation for every object; a Mask R-CNN trains on instance masks"));
    }
    if state.arch.kind == ModelKind::KeypointRcnn {
        let k = state.arch.num_keypoints.unwrap_or(0);
        if data.num_keypoints != k {
            return Err(Error::input(&data.source, format!("has {} keypoints per object, the model predicts {k}", data.num_keypoints)));
        }
    }
    Ok(())
}
