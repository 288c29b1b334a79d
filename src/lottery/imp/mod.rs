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
mod config;
mod levels;
pub mod options;
mod score;
mod summary;
pub mod val_curve;

pub use crate::lottery::level::{CHANNELS, RANDOM_INIT, REWIND};
pub use config::{read_config, save_config, ImpConfig, ImpSettings, Structure, MAX_EARLY_BIRD, MAX_ROUNDS};
pub use summary::{ImpSummary, SUMMARY};
pub(in crate::lottery) use {levels::train, score::evaluate};

use super::early_bird;
use super::level::{self, LevelRow};
use crate::data::voc::VocDataset;
use crate::data::{ClassifyDataset, DataSpec};
use crate::error::{Error, Result, WriteContext};
use crate::eval::CocoGt;
use crate::fsio::DirLock;
use crate::model::{Masks, ModelState};
use crate::train::folder;
use crate::train::run::TrainData;
use crate::train::StepRecord;
use std::path::{Path, PathBuf};

/// Where the training worker is (a property of the machine, not of the run).
pub struct ImpEnv {
    pub python: PathBuf,
}

pub enum ImpStart {
    Fresh(Box<ImpConfig>),
    /// Continue the run; a model given here must be the one the run was started from. `clip_grad_norm` clips the
    /// gradients of every level trained from now on, a level in progress from its last checkpoint (a level that
    /// diverged continues); run.json keeps it, and each level's run.json says from which step it held.
    Resume {
        model: Option<PathBuf>,
        clip_grad_norm: Option<f32>,
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

/// Runs (or resumes) the IMP experiment in `dir`.
pub fn run_imp(dir: &Path, start: ImpStart, env: &ImpEnv, on: &mut dyn FnMut(ImpEvent)) -> Result<ImpSummary> {
    let (config, _lock) = open(dir, start, env)?;
    let mut rows = Vec::with_capacity(config.rounds + 1);
    let mut early = None;
    for r in 0..=config.rounds {
        let row = match level::read_row(dir, r)? {
            Some(row) => row,
            None => {
                let (row, eb) = levels::run_level(dir, &config, r, env, on)?;
                early = early.or(eb);
                row
            }
        };
        on(ImpEvent::Level(&row));
        rows.push(row);
    }
    if early.is_none() && (!config.early_bird.is_empty() || config.early_stop_every > 0) {
        early = summary::read_early_bird(dir)?;
    }
    summary::summarize(dir, &config, rows, early)
}

/// Checks the settings and the folder, then locks it for this process (a second `imp` on the same folder gets a
/// one-line error naming the holder); a fresh run writes run.json only after every input was read and the
/// training worker has started once, so a refused run leaves nothing behind.
fn open(dir: &Path, start: ImpStart, env: &ImpEnv) -> Result<(ImpConfig, DirLock)> {
    let config = match start {
        ImpStart::Fresh(config) => {
            folder::refuse_existing(dir, "an IMP run")?;
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
            if config.structure == Structure::Weight {
                config.prune_params(1)?.check_on(&state)?;
            }
            let trained = match &config.trained {
                Some(t) => {
                    let trained = ModelState::import(t)?;
                    same_parameters(&state, &trained, t)?;
                    Some(trained)
                }
                None => None,
            };
            if let Some(m) = &config.masks_from {
                let mut s = state.clone();
                s.apply_masks(Masks::load(m)?, m)?;
            }
            check_val(&config.val, &state)?;
            // With the trained dense model given, a validation folder's reference is made (and checked) now.
            let reference = match (&trained, config.agreement_score) {
                (Some(t), Some(_)) => Some(score::reference(&config, t)?),
                _ => None,
            };
            match &config.train.data {
                DataSpec::Unlabeled { dir: images, labelled } => {
                    // The teacher labels the folder when a level trains; a labelled set beside it is checked now.
                    let mut n = crate::detect::images::folder_images(images)?.len();
                    if let Some(l) = labelled {
                        n += TrainData::load(&state, l)?.len();
                    }
                    crate::train::config::check_batch_fits(n, images, config.train.shape.batch)?;
                }
                data => TrainData::load(&state, data)?.check_batch(config.train.shape.batch)?,
            }
            if let Some((t, _)) = config.distill.as_ref().and_then(|d| d.teacher.as_ref()) {
                crate::train::teacher::check_teacher(&ModelState::import(t)?, &state)?;
            }
            crate::train::config::check_worker(&env.python, &config.train.device)?;
            std::fs::create_dir_all(dir).writing(dir)?;
            let lock = DirLock::acquire(dir)?;
            folder::refuse_existing(dir, "an IMP run")?;
            save_config(dir, &config)?;
            if let Some(bytes) = reference {
                crate::fsio::write_atomic(&dir.join(score::VAL_REFERENCE), &bytes)?;
            }
            (*config, lock)
        }
        ImpStart::Resume { model, clip_grad_norm } => {
            let mut config = read_config(dir)?;
            let given = model.unwrap_or_else(|| config.model.clone());
            folder::check_model(dir, &given, &config.model, &config.model_fingerprint)?;
            if let (Some(t), Some(f)) = (&config.trained, &config.trained_fingerprint) {
                if &crate::fsio::fingerprint(t)? != f {
                    return Err(Error::input(dir, format!("its trained dense model {} has changed since the run started", t.display())));
                }
            }
            refuse_linked_levels(dir, config.rounds)?;
            let lock = DirLock::acquire(dir)?;
            if let Some(c) = clip_grad_norm.filter(|&c| Some(c) != config.train.clip_grad_norm) {
                config.train.clip_grad_norm = Some(c);
                config.validate()?;
                save_config(dir, &config)?;
            }
            (config, lock)
        }
    };
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
        return Err(Error::setting_at(
            b_path,
            "trained",
            format!("has other parameters than {} (names or shapes differ): `trained` must be MODEL after training", a.path().display()),
        ));
    }
    Ok(())
}

fn check_val(val: &DataSpec, state: &ModelState) -> Result<()> {
    if state.arch.kind.is_detector() == matches!(val, DataSpec::Classify { .. }) {
        let (setting, on) =
            if state.arch.kind.is_detector() { ("val_coco", "`val_coco` or `val_voc`") } else { ("val_classify", "`val_classify`") };
        return Err(Error::setting_at(state.path(), setting, format!("is a {}: score it on {on}", state.arch.kind.label())));
    }
    match val {
        DataSpec::Unlabeled { dir, .. } => {
            if !state.arch.kind.is_detector() {
                return Err(Error::setting_at(state.path(), "val_classify", "is a classifier: score it on `val_classify`"));
            }
            // Every image is read when the reference is made; here, that there are images at all.
            crate::detect::images::folder_images(dir)?;
        }
        DataSpec::Classify { dir } => {
            let data = ClassifyDataset::load(dir)?;
            crate::data::check_classify_classes(state, &data)?;
            data.verify()?;
        }
        DataSpec::Coco { annotations, images } => {
            let gt = CocoGt::load(annotations)?;
            crate::eval::model::check_classes(state, &gt)?;
            crate::eval::model::coco_images(&gt, images)?;
        }
        DataSpec::Voc { dir, .. } => {
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
