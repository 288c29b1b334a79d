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
use super::batch::{StepBuilder, StepStats};
use super::batches::{BatchItem, Batches};
use super::session::{Losses, SessionOptions, TrainSession};
use super::worker::{Device, Optimizer};
use super::Tensor;
use crate::data::{Canvas, CanvasSample, ClassifyDataset, Dataset};
use crate::error::{Error, Result};
use crate::fsio::{write_atomic, DirLock};
use crate::graph::train_core::{TrainOptions, TrainShape};
use crate::model::{Masks, ModelKind, ModelState};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the annotations are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataSpec {
    Coco {
        annotations: PathBuf,
        images: PathBuf,
    },
    Voc {
        dir: PathBuf,
        images: Option<PathBuf>,
    },
    /// A classification set (`data::classify`): a classifier trains on it.
    Classify {
        dir: PathBuf,
    },
}

impl DataSpec {
    /// The detection dataset (COCO or VOC).
    pub fn load(&self) -> Result<Dataset> {
        match self {
            DataSpec::Coco { annotations, images } => Dataset::from_coco(annotations, images),
            DataSpec::Voc { dir, images } => Dataset::from_voc(dir, images.as_deref()),
            DataSpec::Classify { dir } => {
                Err(Error::input(dir, "is a classification set; a detector trains on COCO or VOC data (--coco, --voc)"))
            }
        }
    }
}

/// The data of a run, loaded and checked before the folder is touched.
enum Loaded {
    Detect(Dataset),
    Classify(ClassifyDataset),
}

/// What a run trains: a detector (images through the RPN forward, targets built in Rust, the detection
/// core) or a classifier (images and labels, the cross-entropy core of `graph::classify`).
enum Task {
    Detect { dataset: Dataset, canvas: Canvas, builder: StepBuilder, rpn_model: PathBuf, flip_map: Vec<usize> },
    Classify { data: ClassifyDataset },
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
        let s = &self.shape;
        if s.batch == 0 || s.batch > MAX_BATCH {
            return bad(format!("--batch {} is outside 1..={MAX_BATCH}", s.batch));
        }
        // A detector's FPN upsamples exactly only on multiples of 32; a classifier takes any side from 32 up.
        let classify = matches!(self.data, DataSpec::Classify { .. });
        for side in [s.height, s.width] {
            if !(32..=MAX_CANVAS).contains(&side) || (!classify && !side.is_multiple_of(32)) {
                let what = if classify { "a side" } else { "a multiple of 32" };
                return bad(format!("--canvas {side} must be {what} in 32..={MAX_CANVAS}"));
            }
        }
        if s.rois_per_image == 0 || s.rois_per_image > MAX_ROIS || s.mask_rois_per_image == 0 || s.keypoint_rois_per_image == 0 {
            return bad(format!("--rois {} is outside 1..={MAX_ROIS}", s.rois_per_image));
        }
        if self.min_size == 0 || self.max_size < self.min_size {
            return bad(format!(
                "the resize range {}..={} is empty (min_size must be at least 1 and at most max_size)",
                self.min_size, self.max_size
            ));
        }
        if self.trainable_layers > 5 {
            return bad(format!("--trainable-layers {} is outside 0..=5 (torchvision's trainable backbone stages)", self.trainable_layers));
        }
        if !(0.0..=1.0).contains(&self.flip) {
            return bad(format!("--flip {} is not a probability in [0, 1]", self.flip));
        }
        self.optimizer()?;
        self.device()?;
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

/// FNV-1a 64 of a file, as 16 hex digits: cheap, stable across platforms and Rust versions.
pub fn fingerprint(path: &Path) -> Result<String> {
    Ok(format!("{:016x}", fnv_file(path)?.0))
}

/// FNV-1a 64 and length of a regular file, streamed (checkpoints are hundreds of MB).
fn fnv_file(path: &Path) -> Result<(u64, u64)> {
    use std::io::Read;
    let (mut r, _) = crate::fsio::open_regular(path)?;
    let mut h = FNV_OFFSET;
    let mut len = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h = fnv1a(h, &buf[..n]);
        len += n as u64;
    }
    Ok((h, len))
}

/// FNV-1a 64's starting value; [`fnv1a`] continues a hash over more bytes. Stable across Rust versions and
/// machines (std's hashers are not), so names derived from it (fingerprints, sweep task folders) stay valid.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
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

/// What `step-NNNNNN.ckpt.json` says about its checkpoint: the step and every file of it.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct CheckpointInfo {
    step: u64,
    files: Vec<CheckpointFile>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct CheckpointFile {
    /// A file name inside `checkpoints/`.
    name: String,
    bytes: u64,
    fnv: String,
}

const CHECKPOINTS: &str = "checkpoints";
/// run.json, state.json and a checkpoint's description are a few hundred bytes; the log is a line per step.
const MAX_SMALL_FILE: u64 = 1 << 20;
const MAX_LOG: u64 = 1 << 30;

fn checkpoint_name(step: u64) -> String {
    format!("step-{step:06}.ckpt")
}

/// The step a checkpoint file name stands for (`step-000006.ckpt` → 6); `None` for any other name.
fn step_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?.strip_suffix(".ckpt")?;
    (digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// Where a resumed run starts: the newest intact checkpoint, and the saved checkpoints newer than it that
/// are damaged (they are kept, renamed `*.broken`, once the run really starts).
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePoint {
    pub step: u64,
    /// The checkpoint file, inside RUN_DIR/checkpoints.
    pub checkpoint: PathBuf,
    /// Checkpoint files newer than `step` that do not match their description (or have none).
    pub damaged: Vec<PathBuf>,
}

/// Writes `step-NNNNNN.ckpt.json` for the checkpoint of `step` in `ckdir` (the checkpoint and its momentum
/// file, when there is one), after they are complete: from then on a resume may start from it.
pub fn describe_checkpoint(ckdir: &Path, step: u64) -> Result<PathBuf> {
    let name = checkpoint_name(step);
    let mut files = Vec::new();
    for f in [name.clone(), format!("{name}.momentum.npz")] {
        let p = ckdir.join(&f);
        if p.is_file() {
            let (h, bytes) = fnv_file(&p)?;
            files.push(CheckpointFile { name: f, bytes, fnv: format!("{h:016x}") });
        }
    }
    if files.is_empty() {
        return Err(Error::input(ckdir.join(&name), "no checkpoint to describe"));
    }
    let info = CheckpointInfo { step, files };
    let path = ckdir.join(format!("{name}.json"));
    write_atomic(&path, serde_json::to_string_pretty(&info).expect("serialises").as_bytes())?;
    Ok(path)
}

/// Checks a checkpoint against its description; the error says what does not match.
fn verify_checkpoint(dir: &Path, name: &str, step: u64) -> std::result::Result<(), String> {
    let desc = dir.join(format!("{name}.json"));
    let text = crate::fsio::read_text_limited(&desc, MAX_SMALL_FILE).map_err(|e| format!("no description ({e})"))?;
    let info: CheckpointInfo = serde_json::from_str(&text).map_err(|e| format!("{}: not a checkpoint description: {e}", desc.display()))?;
    if info.step != step {
        return Err(format!("{} says step {}, the file name says {step}", desc.display(), info.step));
    }
    if !info.files.iter().any(|f| f.name == name) {
        return Err(format!("{} does not describe {name}", desc.display()));
    }
    for f in &info.files {
        // Names come from a file: only siblings of the checkpoint, never a path elsewhere.
        if !f.name.starts_with(name) || f.name.contains('/') || f.name.contains('\\') || f.name.contains("..") {
            return Err(format!("{} names '{}', which is not a file of this checkpoint", desc.display(), f.name));
        }
        let (h, len) = fnv_file(&dir.join(&f.name)).map_err(|e| e.to_string())?;
        if len != f.bytes || format!("{h:016x}") != f.fnv {
            return Err(format!("{} has {len} bytes (hash {h:016x}), its description says {} bytes (hash {})", f.name, f.bytes, f.fnv));
        }
    }
    Ok(())
}

/// Finds where a run folder resumes (see the module comment); `None` when the run never saved a checkpoint.
/// Reads only: a run folder as found, damaged or not, is left as it is.
pub fn resume_point(dir: &Path) -> Result<Option<ResumePoint>> {
    let ckdir = dir.join(CHECKPOINTS);
    let mut saved: Vec<(u64, String)> = match std::fs::read_dir(&ckdir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                step_of(&name).map(|s| (s, name))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(&ckdir, e)),
    };
    saved.sort();
    let state_path = dir.join("state.json");
    let named = if state_path.exists() {
        let text = crate::fsio::read_text_limited(&state_path, MAX_SMALL_FILE)?;
        let st: SavedState = serde_json::from_str(&text).map_err(|e| Error::input(&state_path, format!("not a run state: {e}")))?;
        // state.json is read, not trusted: its checkpoint must be one of this folder's, of the step it says.
        let name = st.checkpoint.strip_prefix("checkpoints/").filter(|n| step_of(n).is_some()).ok_or_else(|| {
            Error::input(
                &state_path,
                format!("names checkpoint '{}', which is not checkpoints/step-NNNNNN.ckpt of this run", st.checkpoint),
            )
        })?;
        if step_of(name) != Some(st.step) {
            return Err(Error::input(&state_path, format!("says step {} but names checkpoint {}", st.step, st.checkpoint)));
        }
        Some(st.step)
    } else {
        None
    };
    let mut damaged = Vec::new();
    let mut reasons = Vec::new();
    for (step, name) in saved.iter().rev() {
        match verify_checkpoint(&ckdir, name, *step) {
            Ok(()) => {
                damaged.reverse();
                return Ok(Some(ResumePoint { step: *step, checkpoint: ckdir.join(name), damaged }));
            }
            Err(why) => {
                damaged.push(ckdir.join(name));
                reasons.push(format!("{name}: {why}"));
            }
        }
    }
    if !saved.is_empty() {
        return Err(Error::input(
            dir,
            format!("has saved checkpoints but none is intact, so it cannot resume ({}); nothing was changed", reasons.join("; ")),
        ));
    }
    if let Some(step) = named {
        return Err(Error::input(&state_path, format!("names the checkpoint of step {step}, which is missing; nothing was changed")));
    }
    Ok(None)
}

/// Keeps a damaged checkpoint (and its companions) as `*.broken`, out of the way of the steps redone.
fn set_aside(path: &Path) -> Result<()> {
    let Some(dir) = path.parent() else { return Ok(()) };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in entries.filter_map(|e| e.ok()) {
        let f = e.file_name().to_string_lossy().into_owned();
        if f == name || (f.starts_with(&format!("{name}.")) && !f.ends_with(".broken")) {
            let mut to = dir.join(format!("{f}.broken"));
            let mut k = 1;
            while to.exists() {
                to = dir.join(format!("{f}.{k}.broken"));
                k += 1;
            }
            std::fs::rename(e.path(), &to).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}

/// What a fresh run found missing before it created its folder, `checkpoints/`, `work/` and `.lock`: a run
/// that fails before its `run.json` is written removes them again, so the folder can be used as if the
/// command had never run.
struct Created {
    dir: PathBuf,
    dir_existed: bool,
    checkpoints_existed: bool,
    work_existed: bool,
    lock_existed: bool,
}

impl Created {
    fn note(dir: &Path) -> Created {
        let has = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        Created {
            dir: dir.to_path_buf(),
            dir_existed: has(dir),
            checkpoints_existed: has(&dir.join(CHECKPOINTS)),
            work_existed: has(&dir.join("work")),
            lock_existed: has(&dir.join(crate::fsio::LOCK_FILE)),
        }
    }

    /// Removes what this process created (only for a fresh run: a resumed run's folder keeps its files).
    fn undo(&self, fresh: bool) {
        if !fresh || self.dir.join("run.json").exists() {
            return;
        }
        if !self.work_existed {
            let _ = std::fs::remove_dir_all(self.dir.join("work"));
        }
        if !self.checkpoints_existed {
            // Only when empty: a checkpoint is never deleted.
            let _ = std::fs::remove_dir(self.dir.join(CHECKPOINTS));
        }
        if !self.lock_existed {
            let _ = std::fs::remove_file(self.dir.join(crate::fsio::LOCK_FILE));
        }
        if !self.dir_existed {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
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
    task: Task,
    batches: Batches,
    /// The shuffled batches of the epoch being trained (regenerated from the seed once per epoch).
    epoch: (u64, Vec<Vec<BatchItem>>),
    session: TrainSession,
    log: std::fs::File,
    /// The last step done (0 before the first).
    pub step: u64,
    /// Held for the run's lifetime (see the module comment).
    _lock: DirLock,
}

impl Run {
    /// Opens a run in `dir` from `model`. A fresh run refuses a folder that already holds one; a resumed run
    /// refuses a model whose fingerprint differs from the one it was started with. `threads` are ORT's intra-op
    /// threads (0: one per core); with 1, steps are bit-for-bit repeatable (ORT's parallel reductions are not).
    pub fn open(model: &Path, dir: &Path, start: Start, python: &Path, threads: usize) -> Result<Run> {
        let fresh = matches!(start, Start::Fresh(_));
        let (config, saved) = match start {
            Start::Fresh(config) => {
                refuse_existing_run(dir)?;
                config.validate()?;
                (config, None)
            }
            Start::Resume { steps } => {
                let path = dir.join("run.json");
                if !path.is_file() {
                    return Err(Error::input(&path, "cannot read the run to resume: no run.json in the folder"));
                }
                let text = crate::fsio::read_text_limited(&path, MAX_SMALL_FILE)
                    .map_err(|e| Error::input(&path, format!("cannot read the run to resume: {e}")))?;
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
                let saved = resume_point(dir)?;
                let at = saved.as_ref().map_or(0, |s| s.step);
                if config.steps < at {
                    return Err(Error::input(dir, format!("--steps {} is below the step of its last checkpoint, {at}", config.steps)));
                }
                (config, saved)
            }
        };
        let mut state = ModelState::import(model)?;
        if let Some(m) = &config.masks {
            state.apply_masks(Masks::load(m)?, m)?;
        }
        // A missing or broken image fails here, in one line, not hours into the run.
        let data = match &config.data {
            DataSpec::Classify { dir } => {
                let data = ClassifyDataset::load(dir)?;
                check_classify_classes(&state, &data)?;
                data.verify()?;
                Loaded::Classify(data)
            }
            _ => {
                let dataset = config.data.load()?;
                check_classes(&state, &dataset)?;
                dataset.verify(&indicatif::ProgressBar::hidden())?;
                Loaded::Detect(dataset)
            }
        };
        let (len, source) = match &data {
            Loaded::Classify(c) => (c.len(), c.source.clone()),
            Loaded::Detect(d) => (d.len(), d.source.clone()),
        };
        let batches = Batches::new(len, config.shape.batch, config.seed, config.flip)?;
        check_batch_fits(len, &source, config.shape.batch)?;

        // Everything above only reads; a bad model, dataset or resume folder leaves RUN_DIR as it was. A fresh
        // run that fails from here on (the worker does not start, say) takes back what it created.
        let created = Created::note(dir);
        std::fs::create_dir_all(dir.join(CHECKPOINTS)).map_err(|e| Error::io(dir, e))?;
        // The folder is locked once everything above has read it (a refused command leaves it as it was, lock
        // file included): a run still training there is refused here, not found out when both write the same
        // checkpoints. What was read is checked again under the lock, in case another process wrote meanwhile.
        // (Refused here, another process holds the folder: what is in it is that process's.)
        let lock = DirLock::acquire(dir)?;
        let opened = Self::start(dir, fresh, config, saved, state, data, batches, python, threads, lock);
        if opened.is_err() {
            created.undo(fresh);
        }
        opened
    }

    /// The second half of [`Run::open`], once the folder exists and is locked: the worker, the session, the
    /// checkpoint loaded, `run.json` (fresh) and the log.
    #[allow(clippy::too_many_arguments)]
    fn start(
        dir: &Path,
        fresh: bool,
        config: RunConfig,
        saved: Option<ResumePoint>,
        state: ModelState,
        data: Loaded,
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
                eprintln!("warning: {} does not match its description; kept as .broken, resuming from step {}", d.display(), saved.step);
                set_aside(d)?;
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
            Loaded::Classify(data) => {
                let graph = crate::graph::classify::training_graph(&state, config.shape.batch, config.shape.height)?;
                let session = TrainSession::from_graph(&state, graph, &config.shape, &options)?;
                (session, Task::Classify { data })
            }
            Loaded::Detect(dataset) => {
                let train = TrainOptions { trainable_layers: config.trainable_layers };
                let session = TrainSession::new(&state, &config.shape, &train, &options)?;
                let rpn_model = work.join("rpn_forward.onnx");
                let rpn = crate::graph::proposals::rpn_forward(&state, config.shape.batch, config.shape.height, config.shape.width)?;
                write_atomic(&rpn_model, &prost::Message::encode_to_vec(&rpn))?;
                let builder = StepBuilder::new(&state.arch, &config.shape, &session.feature_hw, config.seed)?;
                let flip_map = dataset.flip_map();
                let canvas = Canvas { min_size: config.min_size, max_size: config.max_size, hw: (config.shape.height, config.shape.width) };
                (session, Task::Detect { dataset, canvas, builder, rpn_model, flip_map })
            }
        };
        if let Some(saved) = &saved {
            session.load(&saved.checkpoint)?;
            session.set_lr(config.lr_at(step + 1))?;
        }
        if fresh {
            write_atomic(&dir.join("run.json"), serde_json::to_string_pretty(&config).expect("serialises").as_bytes())?;
        }
        let log = open_log(dir, step)?;
        let epoch = (0, batches.epoch(0));
        Ok(Run { config, dir: dir.to_path_buf(), state, task, batches, epoch, session, log, step, _lock: lock })
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
            Task::Detect { dataset, canvas, builder, rpn_model, flip_map } => {
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
                let (inputs, stats) = builder.inputs(step, &batch, images, &rpn)?;
                Ok((inputs, stats, (t1 - t0).as_secs_f64() + t2.elapsed().as_secs_f64(), (t2 - t1).as_secs_f64()))
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
    pub fn next(&mut self) -> Result<StepRecord> {
        let step = self.step + 1;
        let (inputs, stats, data_s, rpn_s) = self.step_inputs(step)?;
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
            data_s,
            rpn_s,
            step_s: (t4 - t3).as_secs_f64(),
        };
        let line = serde_json::to_string(&record).expect("serialises");
        writeln!(self.log, "{line}").and_then(|_| self.log.flush()).map_err(|e| Error::io(&self.dir.join("log.jsonl"), e))?;
        if step % self.config.save_every == 0 || step == self.config.steps {
            self.save()?;
        }
        Ok(record)
    }

    /// A checkpoint of the current step (with optimizer state), its description, then `state.json`; older
    /// checkpoints beyond the last two are removed.
    pub fn save(&mut self) -> Result<PathBuf> {
        let ckdir = self.dir.join(CHECKPOINTS);
        let name = checkpoint_name(self.step);
        let path = ckdir.join(&name);
        self.session.save(&path, true)?;
        describe_checkpoint(&ckdir, self.step)?;
        let saved = SavedState { step: self.step, checkpoint: format!("{CHECKPOINTS}/{name}") };
        write_atomic(&self.dir.join("state.json"), serde_json::to_string(&saved).expect("serialises").as_bytes())?;
        let mut old: Vec<(u64, String)> = std::fs::read_dir(&ckdir)
            .map_err(|e| Error::io(&self.dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                step_of(&n).map(|s| (s, n))
            })
            .filter(|(s, _)| *s < self.step)
            .collect();
        old.sort();
        // The newest two are this one and the one before it; older ones go, with their companions.
        for (_, n) in old.iter().rev().skip(1) {
            for f in [n.clone(), format!("{n}.momentum.npz"), format!("{n}.json")] {
                let _ = std::fs::remove_file(ckdir.join(f));
            }
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

/// A fresh run never starts over saved work: a folder with a run, its state or any checkpoint is refused.
fn refuse_existing_run(dir: &Path) -> Result<()> {
    if dir.join("run.json").exists() {
        return Err(Error::input(dir, "already holds a training run (run.json); use --resume to continue it, or another folder"));
    }
    let has_checkpoints = std::fs::read_dir(dir.join(CHECKPOINTS)).is_ok_and(|mut d| d.next().is_some());
    if dir.join("state.json").exists() || has_checkpoints {
        return Err(Error::input(
            dir,
            "holds checkpoints of a training run but no run.json; refusing to start a new run over them (use another folder)",
        ));
    }
    Ok(())
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
fn open_log(dir: &Path, step: u64) -> Result<std::fs::File> {
    let path = dir.join("log.jsonl");
    let kept = if path.exists() { kept_log(&crate::fsio::read_limited(&path, MAX_LOG)?, step) } else { String::new() };
    write_atomic(&path, kept.as_bytes())?;
    std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))
}

/// A classifier predicts one class per category of its set (no background).
pub fn check_classify_classes(state: &ModelState, data: &ClassifyDataset) -> Result<()> {
    if state.arch.kind != ModelKind::Classifier {
        return Err(Error::input(
            &data.source,
            format!(
                "is a classification set, but {} is a {}; a detector trains on COCO or VOC data",
                state.path().display(),
                state.arch.kind.label()
            ),
        ));
    }
    let want = state.arch.num_classes.unwrap_or(0);
    if want != data.categories.len() {
        return Err(Error::input(
            &data.source,
            format!(
                "has {} categories but {} predicts {want} classes: the classes do not match the model",
                data.categories.len(),
                state.path().display()
            ),
        ));
    }
    Ok(())
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
