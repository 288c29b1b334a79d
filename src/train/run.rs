//! A training run in a folder: the loop `ticket train` drives, its schedule, its log and its checkpoints.
//!
//! RUN_DIR holds
//! - `run.json`: the settings and the source model's fingerprint (a resume with another model is refused);
//! - `log.jsonl`: one line per step (`step`, `loss`, each term, `lr`, timings);
//! - `state.json`: the last complete checkpoint (written after the checkpoint, atomically, so a run killed at
//!   any moment resumes from a checkpoint that is whole);
//! - `checkpoints/step-NNNNNN.ckpt` (+ `.momentum.npz` for SGD with momentum): the two most recent, each with
//!   `step-NNNNNN.ckpt.json`, which makes it self-describing: its step and the size and FNV-1a hash of each of
//!   its files. A resume starts from the newest checkpoint whose files match their description, whatever
//!   `state.json` says (lost, or naming a checkpoint that was cut short); it refuses a folder where saved
//!   checkpoints exist but none is intact, and it never deletes one: a damaged checkpoint newer than the
//!   resume point is renamed `*.broken`, not overwritten;
//! - `.lock`: held (flock) by the process training in the folder, so a second one is refused;
//! - `work/`: the training core, ORT's artifacts and the RPN forward graph (regenerated on resume);
//! - `model.onnx` at the end: the user's graph with the trained initializers, nothing else changed.
use super::checkpoints::{self, resume_point, ResumePoint};
use super::config::{check_batch_fits, DistillConfig, RunConfig};
use super::folder::{self, refuse_existing_run, Created, CHECKPOINTS, MAX_SMALL_FILE};
use super::log::{open_log, StepRecord};
use super::order::{BatchItem, Batches};
use super::session::{Losses, SessionOptions, TrainSession};
use super::step_inputs::{StepBuilder, StepStats};
use super::teacher::{check_teacher, Teacher};
use super::Tensor;
use crate::data::{check_classes, check_classify_classes, Canvas, CanvasSample, ClassifyDataset, DataSpec, Dataset};
use crate::error::{Context, Error, Result, WriteContext};
use crate::fsio::{write_atomic, DirLock};
use crate::graph::distill::Distill;
use crate::graph::train_core::TrainOptions;
use crate::model::{Masks, ModelState};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A run's training data, loaded and checked against the model (its classes, keypoints and masks) before the
/// folder is touched.
pub enum TrainData {
    Detect(Dataset),
    Classify(ClassifyDataset),
}

impl TrainData {
    pub fn load(state: &ModelState, spec: &DataSpec) -> Result<TrainData> {
        Ok(match spec {
            DataSpec::Classify { dir } => {
                let data = ClassifyDataset::load(dir)?;
                check_classify_classes(state, &data)?;
                TrainData::Classify(data)
            }
            _ => TrainData::Detect(detection_set(state, spec)?),
        })
    }

    /// Every image reads: a missing or broken one fails here, in one line, not hours into the run.
    pub fn verify(&self) -> Result<()> {
        match self {
            TrainData::Classify(data) => data.verify(),
            TrainData::Detect(dataset) => dataset.verify(&mut crate::progress::silent),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TrainData::Classify(c) => c.len(),
            TrainData::Detect(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set holds at least one batch.
    pub fn check_batch(&self, batch: usize) -> Result<()> {
        let source = match self {
            TrainData::Classify(c) => &c.source,
            TrainData::Detect(d) => &d.source,
        };
        check_batch_fits(self.len(), source, batch)
    }
}

/// The detection set `spec` names, loaded and checked against the model's classes, masks and keypoints.
fn detection_set(state: &ModelState, spec: &DataSpec) -> Result<Dataset> {
    let dataset = spec.load()?;
    check_classes(state, &dataset)?;
    Ok(dataset)
}

/// What a run trains: a detector (images through the RPN forward, targets built in Rust, the detection
/// core) or a classifier (images and labels, the cross-entropy core of `graph::classify`). One per run, so
/// the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Task {
    Detect { dataset: Dataset, canvas: Canvas, builder: StepBuilder, rpn_model: PathBuf, flip_map: Vec<usize>, teacher: Option<Teacher> },
    Classify { data: ClassifyDataset },
}

/// A distilling run's teacher (checked against the student) and, for unlabeled images, the pseudo ground truth
/// made from it that the run folder does not hold yet and how many of the training images learn from it.
struct Taught {
    teacher: Option<ModelState>,
    pseudo: Option<Vec<u8>>,
    pseudo_images: usize,
}

/// The run's teacher, checked: unchanged since the run started (a resume), and able to teach the student.
fn open_teacher(dir: &Path, d: &DistillConfig, student: &ModelState, fresh: bool) -> Result<ModelState> {
    if !fresh {
        folder::check_model(dir, &d.teacher, &d.teacher, &d.teacher_fingerprint)?;
    }
    let teacher = ModelState::import(&d.teacher)?;
    check_teacher(&teacher, student)?;
    Ok(teacher)
}

/// What a run reports when it has trained to its last step (`ticket train --json`).
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub run_dir: PathBuf,
    /// RUN_DIR/model.onnx, the trained model.
    pub model: PathBuf,
    pub steps: u64,
    /// The step the run resumed from (0 for a fresh run).
    pub resumed_from: u64,
    /// The first and last step trained by this process.
    pub first: Option<StepRecord>,
    pub last: Option<StepRecord>,
    pub wall_s: f64,
    pub images_per_s: f64,
    /// The training set's images, and how many of them learn from the teacher's labels (`--unlabeled`) rather
    /// than their own.
    pub train_images: usize,
    pub pseudo_labelled: usize,
}

/// How a run is opened.
pub enum Start {
    /// A new run in an empty (or missing) folder.
    Fresh(Box<RunConfig>),
    /// Continue the run in the folder; `steps`, when given, replaces the planned step count, and
    /// `clip_grad_norm` starts (or changes) gradient clipping from the resumed step on (a run that diverged
    /// continues from its last intact checkpoint). Either is written to run.json once the run has opened.
    Resume { steps: Option<u64>, clip_grad_norm: Option<f32> },
}

pub struct Run {
    pub config: RunConfig,
    dir: PathBuf,
    state: ModelState,
    task: Task,
    batches: Batches,
    /// The shuffled batches of the epoch being trained (regenerated from the seed once per epoch).
    epoch: (u64, Vec<Vec<BatchItem>>),
    session: TrainSession,
    log: std::fs::File,
    /// The last step done (0 before the first).
    pub step: u64,
    /// How many training images learn from the teacher's labels (the rest from their own).
    pseudo_images: usize,
    /// Held for the run's lifetime (see the module comment).
    _lock: DirLock,
}

impl Run {
    /// Opens a run in `dir` from `model`. A fresh run refuses a folder that already holds one; a resumed run
    /// refuses a model whose fingerprint differs from the one it was started with. `threads` are ORT's intra-op
    /// threads (0: one per core); with 1, steps are bit-for-bit repeatable (ORT's parallel reductions are not).
    /// A fresh run keeps them in run.json (none given: one per core) and a resume without `threads` reuses them.
    pub fn open(model: &Path, dir: &Path, start: Start, python: &Path, threads: Option<usize>) -> Result<Run> {
        let fresh = matches!(start, Start::Fresh(_));
        let mut changed = false;
        let (config, saved) = match start {
            Start::Fresh(mut config) => {
                refuse_existing_run(dir)?;
                config.validate()?;
                config.threads = Some(threads.unwrap_or(0));
                (*config, None)
            }
            Start::Resume { steps, clip_grad_norm } => {
                let path = dir.join(folder::RUN_JSON);
                let bytes = folder::read_run_json(dir, MAX_SMALL_FILE)?;
                let mut config: RunConfig = serde_json::from_slice(&bytes).context(&path, "not a run file")?;
                folder::check_model(dir, model, &config.model, &config.model_fingerprint)?;
                let saved = resume_point(dir)?;
                let at = saved.as_ref().map_or(0, |s| s.step);
                if let Some(s) = steps.filter(|&s| s != config.steps) {
                    config.steps = s;
                    changed = true;
                }
                if let Some(c) = clip_grad_norm.filter(|&c| Some(c) != config.clip_grad_norm) {
                    // The steps before `at` were trained without this clip: run.json says from where it holds.
                    config.clip_grad_norm = Some(c);
                    config.clip_from_step = (at > 0).then_some(at);
                    changed = true;
                }
                config.validate()?;
                if config.steps < at {
                    return Err(Error::setting_at(
                        dir,
                        "steps",
                        format!("`steps` {} is below the step of its last checkpoint, {at}", config.steps),
                    ));
                }
                (config, saved)
            }
        };
        let mut state = ModelState::import(model)?;
        if let Some(m) = &config.masks {
            state.apply_masks(Masks::load(m)?, m)?;
        }
        let teacher = match &config.distill {
            Some(d) => Some(open_teacher(dir, d, &state, fresh)?),
            None => None,
        };
        let (data, pseudo, pseudo_images) = match (&config.data, &teacher, &config.distill) {
            (DataSpec::Unlabeled { dir: images, labelled }, Some(t), Some(d)) => {
                // The labelled set first: a bad one fails before the teacher labels every image.
                let labelled = labelled.as_deref().map(|spec| detection_set(&state, spec)).transpose()?;
                let (pseudo, bytes) = super::pseudo::labelled(dir, images, labelled.as_ref(), t, d.pseudo_score, fresh)?;
                check_classes(&state, &pseudo)?;
                let own = labelled.as_ref().map_or(0, Dataset::len);
                let dataset = match labelled {
                    Some(l) => l.joined(pseudo)?,
                    None => pseudo,
                };
                let pseudo_images = dataset.len() - own;
                (TrainData::Detect(dataset), bytes, pseudo_images)
            }
            _ => (TrainData::load(&state, &config.data)?, None, 0),
        };
        data.verify()?;
        let batches = Batches::new(data.len(), config.shape.batch, config.seed, config.flip)?;
        data.check_batch(config.shape.batch)?;

        // Everything above only reads; a bad model, dataset or resume folder leaves RUN_DIR as it was. A fresh
        // run that fails from here on (the worker does not start, say) takes back what it created.
        let created = Created::note(dir);
        std::fs::create_dir_all(dir.join(CHECKPOINTS)).writing(dir)?;
        // The folder is locked once everything above has read it (a refused command leaves it as it was, lock
        // file included): a run still training there is refused here, not found out when both write the same
        // checkpoints. What was read is checked again under the lock, in case another process wrote meanwhile.
        // (Refused here, another process holds the folder: what is in it is that process's.)
        let lock = DirLock::acquire(dir)?;
        let teacher = Taught { teacher, pseudo, pseudo_images };
        let threads = threads.or(config.threads).unwrap_or(0);
        let write_config = fresh || changed;
        let opened = Self::start(dir, fresh, write_config, config, saved, state, data, teacher, batches, python, threads, lock);
        if opened.is_err() {
            created.undo(fresh);
        }
        opened
    }

    /// The second half of [`Run::open`], once the folder exists and is locked: the worker, the session, the
    /// checkpoint loaded, `run.json` (fresh, or a resume with new settings) and the log.
    #[allow(clippy::too_many_arguments)]
    fn start(
        dir: &Path,
        fresh: bool,
        write_config: bool,
        config: RunConfig,
        saved: Option<ResumePoint>,
        state: ModelState,
        data: TrainData,
        taught: Taught,
        batches: Batches,
        python: &Path,
        threads: usize,
        lock: DirLock,
    ) -> Result<Run> {
        let step = saved.as_ref().map_or(0, |s| s.step);
        if fresh {
            refuse_existing_run(dir)?;
        } else if resume_point(dir)? != saved {
            return Err(Error::input(dir, "changed while the run was being opened (another process?); try again"));
        }
        if let Some(saved) = &saved {
            for d in &saved.damaged {
                crate::fsio::stderr_line(format_args!(
                    "warning: {} does not match its description; kept as .broken, resuming from step {}",
                    d.display(),
                    saved.step
                ));
                checkpoints::set_aside(d)?;
            }
        }
        let work = dir.join("work");
        let mut options = SessionOptions::new(python);
        options.device = config.device()?;
        options.optimizer = config.optimizer()?;
        options.lr = config.lr_at(step + 1);
        options.work_dir = Some(work.clone());
        options.worker.threads = threads;
        let (mut session, task) = match data {
            TrainData::Classify(data) => {
                let graph = crate::graph::classify::training_graph(&state, config.shape.batch, config.shape.height)?;
                let session = TrainSession::from_graph(&state, graph, &config.shape, &options)?;
                (session, Task::Classify { data })
            }
            TrainData::Detect(dataset) => {
                if let Some(bytes) = &taught.pseudo {
                    write_atomic(&dir.join(super::pseudo::PSEUDO_GT), bytes)?;
                }
                let distill = match (&taught.teacher, &config.distill) {
                    (Some(t), Some(d)) => Some(Distill {
                        terms: d.terms.clone(),
                        weight: d.weight,
                        temperature: d.temperature,
                        teacher_channels: t.arch.fpn_channels.unwrap_or(0),
                    }),
                    _ => None,
                };
                let train = TrainOptions { trainable_layers: config.trainable_layers, distill: distill.clone() };
                let session = TrainSession::new(&state, &config.shape, &train, &options)?;
                let teacher = match (&taught.teacher, distill) {
                    (Some(t), Some(d)) => Some(Teacher::prepare(t, &config.shape, d, &work)?),
                    _ => None,
                };
                let rpn_model = work.join("rpn_forward.onnx");
                let rpn = crate::graph::proposals::rpn_forward(&state, config.shape.batch, config.shape.height, config.shape.width)?;
                write_atomic(&rpn_model, &prost::Message::encode_to_vec(&rpn))?;
                let builder = StepBuilder::new(&state.arch, &config.shape, &session.feature_hw, config.seed)?;
                let flip_map = dataset.flip_map();
                let canvas = Canvas { min_size: config.min_size, max_size: config.max_size, hw: (config.shape.height, config.shape.width) };
                (session, Task::Detect { dataset, canvas, builder, rpn_model, flip_map, teacher })
            }
        };
        if let Some(saved) = &saved {
            session.load(&saved.checkpoint)?;
            session.set_lr(config.lr_at(step + 1))?;
        }
        // A fresh run's settings, or a resume's new ones, are written once the session has opened and loaded its
        // checkpoint: a refused resume leaves run.json as it was.
        if write_config {
            write_atomic(&dir.join(folder::RUN_JSON), serde_json::to_string_pretty(&config).expect("serialises").as_bytes())?;
        }
        let log = open_log(dir, step)?;
        let epoch = (0, batches.epoch(0));
        let pseudo_images = taught.pseudo_images;
        Ok(Run { config, dir: dir.to_path_buf(), state, task, batches, epoch, session, log, step, pseudo_images, _lock: lock })
    }

    /// The items of step `step` (1-based): epochs of full batches in the seeded order.
    fn items(&mut self, step: u64) -> Vec<BatchItem> {
        let per_epoch = (self.batches_len() / self.config.shape.batch) as u64;
        let (epoch, k) = ((step - 1) / per_epoch, ((step - 1) % per_epoch) as usize);
        if self.epoch.0 != epoch {
            self.epoch = (epoch, self.batches.epoch(epoch));
        }
        self.epoch.1[k].clone()
    }

    fn batches_len(&self) -> usize {
        match &self.task {
            Task::Detect { dataset, .. } => dataset.len(),
            Task::Classify { data } => data.len(),
        }
    }

    /// The graph inputs of step `step`, the step's statistics, and the seconds spent on data and in the RPN
    /// forward.
    fn step_inputs(&mut self, step: u64) -> Result<(Vec<(String, Tensor)>, StepStats, f64, f64)> {
        let items = self.items(step);
        let t0 = Instant::now();
        match &mut self.task {
            Task::Detect { dataset, canvas, builder, rpn_model, flip_map, teacher } => {
                let batch = items
                    .iter()
                    .map(|it| {
                        let s = dataset.sample(it.index)?;
                        let s = if it.flip { s.hflip(flip_map) } else { s };
                        s.to_canvas(canvas)
                    })
                    .collect::<Result<Vec<CanvasSample>>>()?;
                let images = builder.images(&batch)?;
                let t1 = Instant::now();
                let rpn = self.session.worker().forward(rpn_model, &[("images", &images)])?;
                let t2 = Instant::now();
                let (mut inputs, mut stats) = builder.inputs(step, &batch, images, &rpn)?;
                let t3 = Instant::now();
                if let Some(teacher) = teacher {
                    let signals = teacher.signals(self.session.worker(), &inputs)?;
                    inputs.extend(signals);
                    stats.teacher_s = t3.elapsed().as_secs_f64();
                }
                Ok((inputs, stats, (t1 - t0).as_secs_f64() + (t3 - t2).as_secs_f64(), (t2 - t1).as_secs_f64()))
            }
            Task::Classify { data } => {
                let side = self.config.shape.height;
                let mut images = ndarray::Array4::<f32>::zeros((items.len(), 3, side, side));
                let mut labels = ndarray::Array1::<i64>::zeros(items.len());
                for (i, it) in items.iter().enumerate() {
                    let (img, label) = data.sample(it.index, side)?;
                    // torchvision's RandomHorizontalFlip: the image mirrored, the label unchanged.
                    let img = if it.flip { img.slice(ndarray::s![.., .., ..;-1]).to_owned() } else { img };
                    images.index_axis_mut(ndarray::Axis(0), i).assign(&img);
                    labels[i] = label as i64;
                }
                let inputs =
                    vec![("images".to_string(), Tensor::F32(images.into_dyn())), ("labels".to_string(), Tensor::I64(labels.into_dyn()))];
                Ok((inputs, StepStats::default(), t0.elapsed().as_secs_f64(), 0.0))
            }
        }
    }

    /// Runs the next step, logs it, and saves a checkpoint when it falls on `save_every` or is the last.
    pub fn train_step(&mut self) -> Result<StepRecord> {
        let step = self.step + 1;
        let (inputs, stats, data_s, rpn_s) = self.step_inputs(step)?;
        let t3 = Instant::now();
        let lr = self.config.lr_at(step);
        if (self.session.lr() - lr).abs() > f32::EPSILON * lr {
            self.session.set_lr(lr)?;
        }
        let (names, tensors): (Vec<String>, Vec<Tensor>) = inputs.into_iter().unzip();
        let refs: Vec<(&str, Tensor)> = names.iter().map(String::as_str).zip(tensors).collect();
        let losses: Losses = self.session.step(&refs).map_err(|e| match e {
            Error::Check(m) => Error::Check(format!("training step {step}: {m}")),
            e => e,
        })?;
        let t4 = Instant::now();
        self.step = step;
        let record = StepRecord {
            step,
            loss: losses.total,
            terms: losses.terms.iter().cloned().collect(),
            lr,
            proposals: stats.proposals,
            positive_rois: stats.positive_rois,
            data_s,
            rpn_s,
            teacher_s: stats.teacher_s,
            step_s: (t4 - t3).as_secs_f64(),
            grad_norm: losses.grad_norm,
        };
        let line = serde_json::to_string(&record).expect("serialises");
        writeln!(self.log, "{line}").and_then(|_| self.log.flush()).writing(self.dir.join("log.jsonl"))?;
        if step.is_multiple_of(self.config.save_every) || step == self.config.steps {
            self.save()?;
        }
        Ok(record)
    }

    /// A checkpoint of the current step (with optimizer state), its description, then `state.json`; older
    /// checkpoints beyond the last two are removed.
    pub fn save(&mut self) -> Result<PathBuf> {
        let path = checkpoints::checkpoint_path(&self.dir, self.step);
        self.session.save(&path, true)?;
        checkpoints::commit(&self.dir, self.step)?;
        Ok(path)
    }

    /// The model with the weights of the last step done (masked entries +0.0): a snapshot the caller can prune
    /// or save (late-rewinding points, early-bird masks) without stopping the run.
    pub fn current_state(&mut self) -> Result<ModelState> {
        let mut state = self.state.clone();
        self.session.update_state(&mut state)?;
        Ok(state)
    }

    /// Trains the remaining steps, calling `on_step` after each, then [`Run::finish`]es.
    pub fn train_to_end(mut self, on_step: &mut dyn FnMut(&StepRecord)) -> Result<TrainReport> {
        let resumed_from = self.step;
        let total = self.config.steps;
        let t0 = Instant::now();
        let (mut first, mut last) = (None, None);
        while self.step < total {
            let r = self.train_step()?;
            on_step(&r);
            first.get_or_insert(r.clone());
            last = Some(r);
        }
        let wall_s = t0.elapsed().as_secs_f64();
        let images = (total - resumed_from) as f64 * self.config.shape.batch as f64;
        let run_dir = self.dir.clone();
        let (train_images, pseudo_labelled) = (self.batches_len(), self.pseudo_images);
        let model = self.finish()?;
        let images_per_s = if wall_s > 0.0 { images / wall_s } else { 0.0 };
        Ok(TrainReport { run_dir, model, steps: total, resumed_from, first, last, wall_s, images_per_s, train_images, pseudo_labelled })
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
