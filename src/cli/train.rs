//! `ticket train`: fine-tune a detector on a COCO or VOC dataset in ONNX Runtime training, with the targets
//! computed in Rust; RUN_DIR gets the log, checkpoints and the trained model (see `train::run`).
use super::emit;
use crate::detect::pipeline::DetectParams;
use crate::error::{Error, Result};
use crate::eval::model::default_images;
use crate::graph::train_core::TrainShape;
use crate::model::ModelState;
use crate::train::run::{fingerprint, DataSpec, Run, RunConfig, Start, StepRecord};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    /// Training steps (default 1000; on resume: the new total).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Base learning rate for the default batch of 2 (the README's runs on random-init detectors).
    #[arg(long, default_value_t = 0.01)]
    pub lr: f32,
    /// sgd (momentum + weight decay, torchvision's recipe) or adamw.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Weight decay of SGD (ORT's AdamW, as its artifact generator makes it, has none).
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f32,
    /// Linear warmup steps (from 0.001 · lr).
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// Steps after which the learning rate is multiplied by --gamma (comma separated; each below --steps).
    #[arg(long, value_delimiter = ',')]
    pub decay_at: Vec<u64>,
    /// Learning-rate factor at each --decay-at step.
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f32,
    /// Images per step.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Box-head RoIs sampled per image (torchvision: 512); mask/keypoint heads take the positives (a quarter).
    #[arg(long, default_value_t = 128)]
    pub rois: usize,
    /// Canvas side (multiple of 32; default: the model's max_size rounded up).
    #[arg(long)]
    pub canvas: Option<usize>,
    /// Backbone stages that train, 0..=5 (torchvision's trainable_backbone_layers). Default 5, all: no
    /// pretrained backbone exists here, and a random-init stem must learn; use 3 to fine-tune a pretrained one.
    #[arg(long, default_value_t = 5)]
    pub trainable_layers: usize,
    /// Probability of a horizontal flip per image.
    #[arg(long, default_value_t = 0.5)]
    pub flip: f64,
    /// Seeds the data order, flips and RoI sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, or cuda (needs onnxruntime-training with CUDA in the training venv).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Checkpoint every N steps (and at the last).
    #[arg(long, default_value_t = 100)]
    pub save_every: u64,
    /// ONNX Runtime intra-op threads (0: one per core). 1 makes a run bit-for-bit repeatable: ORT's
    /// multi-threaded reductions differ in the last bit from run to run, and RoI sampling can amplify that.
    #[arg(long, default_value_t = 0, value_parser = crate::runtime::threads::parse_threads)]
    pub threads: usize,
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

#[derive(Serialize)]
struct TrainReport {
    run_dir: PathBuf,
    model: PathBuf,
    steps: u64,
    resumed_from: u64,
    first: Option<StepRecord>,
    last: Option<StepRecord>,
    wall_s: f64,
    images_per_s: f64,
}

impl TrainArgs {
    /// The data the options name (a new run needs one of --coco or --voc).
    pub fn data(&self) -> Result<DataSpec> {
        match (&self.coco, &self.voc, &self.classify) {
            (Some(c), None, None) => {
                Ok(DataSpec::Coco { annotations: c.clone(), images: self.images.clone().unwrap_or_else(|| default_images(c)) })
            }
            (None, Some(v), None) => Ok(DataSpec::Voc { dir: v.clone(), images: self.images.clone() }),
            (None, None, Some(d)) => Ok(DataSpec::Classify { dir: d.clone() }),
            _ => Err(Error::Input("a new run needs --coco GT.json, --voc DIR or --classify DIR".into())),
        }
    }

    /// The run settings for `model` (already imported as `state`), trained with `masks`.
    pub fn config(&self, model: &Path, state: &ModelState, masks: Option<PathBuf>) -> Result<RunConfig> {
        let data = self.data()?;
        let (canvas, min_size, max_size) = match &data {
            DataSpec::Classify { dir } => {
                let side = match self.canvas {
                    Some(c) => crate::data::classify::check_side(c).map_err(|m| Error::Input(format!("--canvas: {m}")))?,
                    None => crate::data::ClassifyDataset::load(dir)?.side()?,
                };
                (side, side, side)
            }
            _ => {
                let detect = DetectParams::from_model(state);
                let canvas = self.canvas.unwrap_or(detect.max_size.div_ceil(32) * 32);
                (canvas, detect.min_size.min(canvas), detect.max_size.min(canvas))
            }
        };
        let head = self.rois.div_ceil(4);
        Ok(RunConfig {
            model: std::path::absolute(model).unwrap_or(model.to_path_buf()),
            model_fingerprint: fingerprint(model)?,
            data,
            masks,
            steps: self.steps.unwrap_or(1000),
            lr: self.lr,
            optimizer: self.optimizer.clone(),
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            warmup: self.warmup,
            warmup_factor: 1e-3,
            decay_at: self.decay_at.clone(),
            gamma: self.gamma,
            shape: TrainShape {
                batch: self.batch,
                height: canvas,
                width: canvas,
                rois_per_image: self.rois,
                mask_rois_per_image: head,
                keypoint_rois_per_image: head,
            },
            min_size,
            max_size,
            trainable_layers: self.trainable_layers,
            flip: self.flip,
            seed: self.seed,
            save_every: self.save_every,
            device: self.device.clone(),
        })
    }

    /// The training venv's python: the one given, else `runtime::env`'s (exit 3 naming `ticket setup`).
    pub fn python(&self) -> Result<PathBuf> {
        crate::runtime::env::train_python(self.train_python.as_deref())
    }
}

pub fn run(a: Args, json: bool) -> Result<()> {
    let (dir, start) = match (&a.resume, &a.out) {
        (Some(d), _) => {
            if a.train.coco.is_some() || a.train.voc.is_some() || a.train.classify.is_some() || a.masks.is_some() {
                return Err(Error::Input(
                    "--resume takes its data and masks from RUN_DIR/run.json; drop --coco/--voc/--classify/--masks".into(),
                ));
            }
            (d.clone(), Start::Resume { steps: a.train.steps })
        }
        (None, Some(o)) => {
            let state = ModelState::import(&a.model)?;
            (o.clone(), Start::Fresh(a.train.config(&a.model, &state, a.masks.clone())?))
        }
        (None, None) => return Err(Error::Input("give -o RUN_DIR for a new run or --resume RUN_DIR".into())),
    };
    let mut run = Run::open(&a.model, &dir, start, &a.train.python()?, a.train.threads)?;
    let resumed_from = run.step;
    let total = run.config.steps;
    let view = super::steps::StepView::new("train", total, run.step, run.config.shape.batch, json);
    let t0 = Instant::now();
    let (mut first, mut last) = (None, None);
    while run.step < total {
        let r = run.next()?;
        view.show(&r, total);
        first.get_or_insert(r.clone());
        last = Some(r);
    }
    view.finish();
    let wall = t0.elapsed().as_secs_f64();
    let images = (total - resumed_from) as f64 * run.config.shape.batch as f64;
    let model = run.finish()?;
    let report = TrainReport {
        run_dir: dir,
        model,
        steps: total,
        resumed_from,
        first,
        last,
        wall_s: wall,
        images_per_s: if wall > 0.0 { images / wall } else { 0.0 },
    };
    emit(json, &report, |r| {
        let mut s = format!("trained {} → {}\n", a.model.display(), r.model.display());
        if let (Some(f), Some(l)) = (&r.first, &r.last) {
            s += &format!("steps {}..{}: loss {:.4} → {:.4}\n", f.step, l.step, f.loss, l.loss);
        }
        s += &format!("{:.1} s, {:.2} images/s; log in {}\n", r.wall_s, r.images_per_s, r.run_dir.join("log.jsonl").display());
        s
    });
    Ok(())
}
