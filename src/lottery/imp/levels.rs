//! Running one level of an IMP run: its masks (pruned from the previous level, or given), its start (the
//! rewind point with the masks applied, or cut to the level's channels), its training, its scores and its
//! export, each reused when a resumed run finds it.
use super::config::{changed_settings, settings_record};
use super::score::{evaluate, level_row};
use super::val_curve;
use super::{ImpConfig, ImpEnv, ImpEvent, Structure};
use crate::error::{Error, Result, WriteContext};
use crate::fsio::{fingerprint, write_atomic};
use crate::lottery::early_bird::{self, EarlyBirdReport, StopRule};
use crate::lottery::level::{self, LevelRow, CHANNELS, RANDOM_INIT, REWIND, STOPPED};
use crate::lottery::random_mask::{random_masks, MaskSource};
use crate::lottery::rewind::Rewind;
use crate::model::{Mask, Masks, ModelState, Role};
use crate::prune::channel::{self, SavedPlan};
use crate::prune::PruneReport;
use crate::train::checkpoints::saved_step;
use crate::train::{Run, RunConfig, Start};
use std::path::{Path, PathBuf};

/// Masks of every prunable weight, all ones: level 0's.
fn ones(state: &ModelState) -> Masks {
    Masks { map: state.weights.tensors.iter().filter(|w| w.role == Role::Weight).map(|w| (w.name.clone(), Mask::ones(&w.shape))).collect() }
}

pub(super) fn run_level(
    dir: &Path,
    config: &ImpConfig,
    r: usize,
    env: &ImpEnv,
    on: &mut dyn FnMut(ImpEvent),
) -> Result<(LevelRow, Option<EarlyBirdReport>)> {
    let ldir = level::dir(dir, r);
    std::fs::create_dir_all(&ldir).writing(&ldir)?;
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
                early = super::summary::early_bird_report(dir, config)?;
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
                let mut s = ModelState::import(&rewind_point(dir, config, r)?)?;
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
            c.distill = config.distill.as_ref().map(|d| d.for_level(&level::dir(dir, 0).join(level::MODEL))).transpose()?;
            let total = c.steps;
            train(&start, &ldir, c, r, env, on, config.threads, |run, step| {
                if val_curve::due(config, dir, step, total) {
                    val_curve::score(config, dir, &ldir, step, run.current_state()?)?;
                }
                Ok(false)
            })?;
        }
    }
    on(ImpEvent::Phase { level: r, what: "evaluating" });
    let state = ModelState::import(&model)?;
    let masks = Masks::load(&masks_path)?;
    super::score::ensure_reference(dir, config)?;
    let (scores, reports, latency_ms) = evaluate(config, dir, state.clone())?;
    let (steps, train_s) = level::train_time(&ldir);
    // The curve ends at the level's own scores (a level that trained; level 0 given as `trained` has no curve).
    if config.val_every > 0 && steps > 0 {
        val_curve::add(&ldir, val_curve::CurvePoint { step: steps, scores: scores.clone() })?;
    }
    on(ImpEvent::Phase { level: r, what: "exporting" });
    let compact = ldir.join(level::COMPACT);
    let compact_bytes =
        if r == 0 { None } else { Some(crate::export::compact::pack(&state.source, &Default::default(), &compact)?.compact_bytes) };
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
pub(super) fn train_dense(dir: &Path, config: &ImpConfig, env: &ImpEnv, on: &mut dyn FnMut(ImpEvent)) -> Result<()> {
    let l0 = level::dir(dir, 0);
    let dense = config.dense_config();
    let points = early_bird::points(&config.early_bird, config.dense_steps);
    let level1 = config.prune_params(1)?;
    let rewind_at = match config.rewind {
        Rewind::Step(k) => Some(k),
        _ => None,
    };
    // Step 0's mask is the initial weights': no training step passes it.
    let at_init: Vec<f64> = points.iter().filter(|(f, s)| *s == 0 && !early_bird::mask_file(&l0, *f).exists()).map(|p| p.0).collect();
    if !at_init.is_empty() {
        let masks = early_bird::draw(&ModelState::import(&config.model)?, &level1)?;
        for f in at_init {
            save_early_bird(&masks, &early_bird::mask_file(&l0, f), 0)?;
        }
    }
    let mut stop = if config.early_stop_every > 0 { Some(StopRule::open(&l0, config.early_stop_every, saved_step(&l0))?) } else { None };
    let total = dense.steps;
    let hook = |run: &mut Run, step: u64| -> Result<bool> {
        if val_curve::due(config, dir, step, total) {
            val_curve::score(config, dir, &l0, step, run.current_state()?)?;
        }
        let wants_mask = points.iter().any(|(f, s)| *s == step && !early_bird::mask_file(&l0, *f).exists())
            || stop.as_ref().is_some_and(|s| step.is_multiple_of(s.every));
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
            save_early_bird(&masks, &early_bird::mask_file(&l0, *f), step)?;
        }
        match stop.as_mut().filter(|s| step.is_multiple_of(s.every)) {
            Some(rule) => rule.observe(step, masks),
            None => Ok(false),
        }
    };
    if let Some(step) = train(&config.model, &l0, dense, 0, env, on, config.threads, hook)? {
        on(ImpEvent::EarlyStop { step });
    }
    Ok(())
}

fn save_early_bird(masks: &Masks, file: &Path, step: u64) -> Result<()> {
    std::fs::create_dir_all(file.parent().expect("in a folder")).writing(file)?;
    masks.save(file, &[("step", step.to_string())])?;
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
        // A clip added by a resume holds from the level's checkpoint on, which its run.json records.
        r.remove("clip_grad_norm");
        r.remove("clip_from_step");
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

/// Trains `model` in `ldir` (fresh or resumed) until its steps are done or `hook` (called after each step,
/// and once at the resumed step) says stop; writes `ldir/model.onnx`. An early stop is checkpointed and then
/// marked in `ldir/early_stop.txt`, so a resumed run finishes at that step instead of training on; the step
/// is returned.
#[allow(clippy::too_many_arguments)]
pub(in crate::lottery) fn train(
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
        Start::Resume { steps: None, clip_grad_norm: config.clip_grad_norm }
    } else {
        Start::Fresh(Box::new(config))
    };
    let mut run = Run::open(model, ldir, start, &env.python, Some(threads))?;
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
        let record = run.train_step()?;
        on(ImpEvent::Step { level, total, record: &record });
        if hook(&mut run, record.step)? {
            stopped = Some(record.step);
        }
    }
    if let Some(step) = stopped.filter(|_| !marker.exists()) {
        if !step.is_multiple_of(run.config.save_every) && step != total {
            run.save()?;
        }
        write_atomic(&marker, step.to_string().as_bytes())?;
    }
    on(ImpEvent::TrainEnd { level });
    run.finish()?;
    Ok(stopped)
}

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
            (_, 1) => rewind_point(dir, config, 1)?,
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
    let prev_masks = state.masks.clone();
    let report = crate::prune::prune(&mut state, &config.prune_params(r)?)?;
    if config.mask == MaskSource::Random {
        return Ok((random_masks(&state.masks, (r > 1).then_some(&prev_masks), config.train.seed, r), Some(report)));
    }
    Ok((state.masks, Some(report)))
}

/// The weights level `r`'s survivors restart from; `random` draws them once into level 0's folder.
fn rewind_point(dir: &Path, config: &ImpConfig, r: usize) -> Result<PathBuf> {
    Ok(match config.rewind {
        Rewind::Init => config.model.clone(),
        Rewind::Step(_) => level::dir(dir, 0).join(REWIND),
        Rewind::None => level::dir(dir, r - 1).join(level::MODEL),
        Rewind::Random => {
            let path = level::dir(dir, 0).join(RANDOM_INIT);
            if !path.exists() {
                let drawn = crate::lottery::rewind::random_init(&ModelState::import(&config.model)?, config.train.seed);
                crate::export::write_onnx(&drawn, &path)?;
            }
            path
        }
    })
}
