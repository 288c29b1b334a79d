//! `ticket train`: fine-tune a detector on a COCO or VOC dataset in ONNX Runtime training, with the targets
//! computed in Rust; RUN_DIR gets the log, checkpoints and the trained model (see `train::run`).
use super::print_report;
use crate::data::DataSpec;
use crate::error::{Error, Result};
use crate::graph::distill::Term;
use crate::model::ModelState;
use crate::train::config::DistillSettings;
use crate::train::run::TrainReport;
use crate::train::{Run, RunConfig, Start, TrainSettings};
use std::path::{Path, PathBuf};

/// The training options `ticket train` and `ticket imp` share: data, schedule, optimizer, shapes, engine.
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("truth").args(["coco", "voc", "classify"])))]
pub struct TrainArgs {
    /// COCO annotation json (required unless resuming).
    #[arg(long)]
    pub coco: Option<PathBuf>,
    /// Image folder of the COCO json (default: `images` next to it) or of a VOC folder (default JPEGImages).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Pascal VOC folder.
    #[arg(long)]
    pub voc: Option<PathBuf>,
    /// A classification set (DIR/labels.json + DIR/images, see `ticket data synth --help`): trains a
    /// torchvision ResNet classifier with cross-entropy (canvas: the first image's side unless --canvas).
    #[arg(long)]
    pub classify: Option<PathBuf>,
    /// A folder of images without annotations: the --teacher's detections scoring at least --pseudo-score are the
    /// labels, and the student also learns from the teacher's signals (--distill; default all three terms). With
    /// --coco or --voc, those images train beside these with their own labels (an image in both trains once, on
    /// its labels, and the teacher does not label it).
    #[arg(long, conflicts_with = "classify")]
    pub unlabeled: Option<PathBuf>,
    /// Distil from the --teacher (`ticket imp`: level 0's trained model unless --teacher is given): comma-separated
    /// terms of features (FPN imitation, PKD), logits (class KL at --temperature, box deltas, mask logits),
    /// objectness (the RPN's).
    #[arg(long, value_delimiter = ',', value_parser = parse_term)]
    pub distill: Vec<Term>,
    /// The dense model to distil from (ONNX, the same detector kind, classes and anchors; widths may differ).
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Weight of every distillation term in the loss. Against an accurate teacher the logits and objectness terms
    /// repeat the task losses, so at 1 they double the heads' step: halve --lr when distilling every term
    /// (docs/distill.md).
    #[arg(long, default_value_t = DistillSettings::default().weight)]
    pub distill_weight: f32,
    /// Temperature of the logits term's softmax.
    #[arg(long, default_value_t = DistillSettings::default().temperature)]
    pub temperature: f32,
    /// With --unlabeled: the teacher's detections scoring at least this are the pseudo ground truth.
    #[arg(long, default_value_t = DistillSettings::default().pseudo_score)]
    pub pseudo_score: f64,
    /// Training steps (default 1000; on resume: the new total).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Base learning rate for the default batch of 2 (the README's runs on random-init detectors).
    #[arg(long, default_value_t = TrainSettings::default().lr)]
    pub lr: f32,
    /// sgd (momentum + weight decay, torchvision's recipe) or adamw.
    #[arg(long, default_value_t = TrainSettings::default().optimizer)]
    pub optimizer: String,
    /// SGD momentum.
    #[arg(long, default_value_t = TrainSettings::default().momentum)]
    pub momentum: f32,
    /// Weight decay of SGD (ORT's AdamW, as its artifact generator makes it, has none).
    #[arg(long, default_value_t = TrainSettings::default().weight_decay)]
    pub weight_decay: f32,
    /// With sgd: scale each step's gradients down to this global L2 norm when they exceed it (torch's
    /// clip_grad_norm_), and log their norm (grad_norm in log.jsonl). A remedy for a loss that spikes and then
    /// diverges; off by default, as in torchvision's recipe. With --resume: clip from the last checkpoint on (a
    /// run that diverged continues from there; run.json notes the step).
    #[arg(long)]
    pub clip_grad_norm: Option<f32>,
    /// Linear warmup steps (from 0.001 · lr).
    #[arg(long, default_value_t = TrainSettings::default().warmup)]
    pub warmup: u64,
    /// Steps after which the learning rate is multiplied by --gamma (comma separated; each below --steps).
    #[arg(long, value_delimiter = ',')]
    pub decay_at: Vec<u64>,
    /// Learning-rate factor at each --decay-at step.
    #[arg(long, default_value_t = TrainSettings::default().gamma)]
    pub gamma: f32,
    /// Images per step.
    #[arg(long, default_value_t = TrainSettings::default().batch)]
    pub batch: usize,
    /// Box-head RoIs sampled per image (torchvision: 512); mask/keypoint heads take the positives (a quarter).
    #[arg(long, default_value_t = TrainSettings::default().rois)]
    pub rois: usize,
    /// Canvas side (multiple of 32; default: the model's max_size rounded up).
    #[arg(long)]
    pub canvas: Option<usize>,
    /// Backbone stages that train, 0..=5 (torchvision's trainable_backbone_layers). Default 5, all: no
    /// pretrained backbone exists here, and a random-init stem must learn; use 3 to fine-tune a pretrained one.
    #[arg(long, default_value_t = TrainSettings::default().trainable_layers)]
    pub trainable_layers: usize,
    /// Probability of a horizontal flip per image.
    #[arg(long, default_value_t = TrainSettings::default().flip)]
    pub flip: f64,
    /// Seeds the data order, flips and RoI sampling.
    #[arg(long, default_value_t = TrainSettings::default().seed)]
    pub seed: u64,
    /// cpu, or cuda (needs onnxruntime-training with CUDA in the training venv).
    #[arg(long, default_value_t = TrainSettings::default().device)]
    pub device: String,
    /// Checkpoint every N steps (and at the last).
    #[arg(long, default_value_t = TrainSettings::default().save_every)]
    pub save_every: u64,
    /// ONNX Runtime intra-op threads (0, the default: one per core). 1 makes a run bit-for-bit repeatable: ORT's
    /// multi-threaded reductions differ in the last bit from run to run, and RoI sampling can amplify that.
    /// Kept in run.json: a resume runs on the same number unless given another.
    #[arg(long, value_parser = crate::runtime::threads::parse_threads)]
    pub threads: Option<usize>,
    /// The training venv's python (default: $TICKET_TRAIN_PYTHON, else the one `ticket setup` made, else
    /// .venv-train/bin/python).
    #[arg(long)]
    pub train_python: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The detector to train (a torchvision Faster/Mask/Keypoint R-CNN with a ResNet-FPN backbone, as ONNX), or
    /// with --classify a torchvision ResNet classifier.
    pub model: PathBuf,
    #[command(flatten)]
    pub train: TrainArgs,
    /// Pruning masks (safetensors): masked weights stay exactly zero through training.
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Continue the run in RUN_DIR from its last checkpoint (settings from its run.json).
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// RUN_DIR for a new run.
    #[arg(short = 'o', long = "output")]
    pub out: Option<PathBuf>,
}

impl TrainArgs {
    /// The data the options name (a new run needs --coco, --voc, --classify or --unlabeled).
    pub fn data(&self) -> Result<DataSpec> {
        DataSpec::training(
            self.coco.as_deref(),
            self.voc.as_deref(),
            self.classify.as_deref(),
            self.images.as_deref(),
            self.unlabeled.as_deref(),
        )
    }

    /// The flags as the library's training settings.
    pub fn settings(&self) -> TrainSettings {
        TrainSettings {
            steps: self.steps.unwrap_or(TrainSettings::default().steps),
            lr: self.lr,
            optimizer: self.optimizer.clone(),
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            clip_grad_norm: self.clip_grad_norm,
            warmup: self.warmup,
            decay_at: self.decay_at.clone(),
            gamma: self.gamma,
            batch: self.batch,
            rois: self.rois,
            canvas: self.canvas,
            trainable_layers: self.trainable_layers,
            flip: self.flip,
            seed: self.seed,
            device: self.device.clone(),
            save_every: self.save_every,
            distill: DistillSettings {
                terms: self.distill.clone(),
                weight: self.distill_weight,
                temperature: self.temperature,
                teacher: self.teacher.clone(),
                pseudo_score: self.pseudo_score,
            },
            ..TrainSettings::default()
        }
    }

    /// The training venv's python: the one given, else `runtime::env`'s (exit 3 naming `ticket setup`).
    pub fn python(&self) -> Result<PathBuf> {
        crate::runtime::env::train_python(self.train_python.as_deref())
    }
}

pub fn run(a: Args, json: bool) -> Result<()> {
    let (dir, start) = match (&a.resume, &a.out) {
        (Some(d), _) => {
            let t = &a.train;
            if t.coco.is_some()
                || t.voc.is_some()
                || t.classify.is_some()
                || t.unlabeled.is_some()
                || a.masks.is_some()
                || t.teacher.is_some()
            {
                return Err(Error::Input(
                    "--resume takes its data, masks and teacher from RUN_DIR/run.json; drop --coco/--voc/--classify/--unlabeled/--masks/--teacher"
                        .into(),
                ));
            }
            (d.clone(), Start::Resume { steps: a.train.steps, clip_grad_norm: a.train.clip_grad_norm })
        }
        (None, Some(o)) => {
            let state = ModelState::import(&a.model)?;
            (o.clone(), Start::Fresh(Box::new(RunConfig::new(&a.model, &state, a.train.data()?, a.masks.clone(), &a.train.settings())?)))
        }
        (None, None) => return Err(Error::Input("give -o RUN_DIR for a new run or --resume RUN_DIR".into())),
    };
    let run = Run::open(&a.model, &dir, start, &a.train.python()?, a.train.threads)?;
    let total = run.config.steps;
    let view = super::progress::progress_steps("train", total, run.step, run.config.shape.batch, json);
    let report = run.train_to_end(&mut |r| view(Some(r)))?;
    view(None);
    print_report(json, &report, |r| render_report(&a.model, r));
    Ok(())
}

fn parse_term(s: &str) -> std::result::Result<Term, String> {
    s.parse()
}

fn render_report(model: &Path, r: &TrainReport) -> String {
    let mut s = format!("trained {} → {}\n", model.display(), r.model.display());
    if let (Some(f), Some(l)) = (&r.first, &r.last) {
        s += &format!("steps {}..{}: loss {:.4} → {:.4}\n", f.step, l.step, f.loss, l.loss);
    }
    s += &format!("{:.1} s, {:.2} images/s; log in {}\n", r.wall_s, r.images_per_s, r.run_dir.join("log.jsonl").display());
    if r.pseudo_labelled > 0 {
        let own = r.train_images - r.pseudo_labelled;
        s += &format!("{} training images: {own} with their own labels, {} with the teacher's\n", r.train_images, r.pseudo_labelled);
    }
    s
}
