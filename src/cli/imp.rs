//! `ticket imp`: find a lottery ticket — dense training, then K levels of magnitude pruning, rewinding,
//! retraining and evaluation — in a resumable run folder (`lottery::imp`), and print whether it wins.
use super::progress::progress_steps;
use super::train::TrainArgs;
use super::{print_report, render_pct, render_table};
use crate::data::DataSpec;
use crate::error::{Error, Result};
use crate::lottery::sweep::{OptionInfo, OptionTable};
use crate::lottery::{run_imp, ImpConfig, ImpEnv, ImpEvent, ImpSettings, ImpStart, ImpSummary, MaskSource, Rewind};
use crate::prune::Scope;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("val").args(["val_coco", "val_voc", "val_classify"])))]
pub struct Args {
    /// The detector's initial weights (ONNX): level 0 trains them densely, `--rewind init` restarts from them.
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub train: TrainArgs,
    /// Validation ground truth (COCO json) every level is scored on, with tract.
    #[arg(long)]
    pub val_coco: Option<PathBuf>,
    /// Image folder of --val-coco (default: `images` next to it). Alone, a validation set without annotations:
    /// every level is scored by its agreement with dense (the AP of its detections against the dense model's
    /// scoring at least --agreement-score, kept in RUN_DIR/val_reference.json).
    #[arg(long)]
    pub val_images: Option<PathBuf>,
    /// With --val-images alone: the dense model's detections scoring at least this are the reference.
    #[arg(long, default_value_t = ImpSettings::default().agreement_score)]
    pub agreement_score: f64,
    /// Score every level on the validation set every N training steps as well as at its end: validation AP over
    /// steps in level_L/val_curve.jsonl (convergence and dense's plateau on held-out data; `ticket report` plots it).
    #[arg(long, default_value_t = 0)]
    pub val_every: u64,
    /// Validation set as a Pascal VOC folder (scored by VOC AP at IoU 0.5).
    #[arg(long)]
    pub val_voc: Option<PathBuf>,
    /// Validation set of a classifier (a classification set, as --classify): levels are scored by top-1
    /// accuracy (the `top1` entry of each level's scores; --max-map-drop is then in accuracy).
    #[arg(long)]
    pub val_classify: Option<PathBuf>,
    /// Sparsity of the selected weights after the last level, in [0, 1).
    #[arg(long)]
    pub sparsity: Option<f64>,
    /// Levels (IMP rounds): level r keeps (1-S)^(r/K) of the selected weights. 1 = one-shot.
    #[arg(long, default_value_t = ImpSettings::default().rounds)]
    pub rounds: usize,
    #[arg(long, value_parser = super::choice::parse_choice::<Scope>(), default_value_t = ImpSettings::default().scope)]
    pub scope: Scope,
    /// Comma-separated module groups to prune (base, fpn, rpn, box_head, box_predictor, mask_head, …). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub modules: Option<Vec<String>>,
    /// Keep at least this fraction of every selected tensor (global scope), so no layer collapses.
    #[arg(long)]
    pub min_layer_density: Option<f64>,
    /// Weight masks (the seed's tickets) or channel IMP, where each level cuts the previous level's trained model
    /// and the rewind point alike.
    #[command(flatten)]
    pub what: super::prune::StructureArgs,
    /// Where survivors restart: init (the lottery ticket), a step of dense training (late resetting), none
    /// (keep the trained weights: prune + fine-tune), or random (a fresh draw of the model's initialiser, each
    /// tensor at its initial scale, seeded by --seed: the random re-initialisation control).
    #[arg(long, default_value = "init")]
    pub rewind: Rewind,
    /// Where a level's mask comes from: magnitude (the ticket), or random (the random-mask control: as many
    /// weights per tensor as the magnitude mask keeps, drawn at random with --seed; weight structure only).
    #[arg(long, value_parser = super::choice::parse_choice::<MaskSource>(), default_value_t = ImpSettings::default().mask)]
    pub mask: MaskSource,
    /// Comma-separated tensors --min-layer-density floors, by whole parts of their names (rpn.head.conv,
    /// box_head.fc6); the rest are ranked by plain global magnitude. Default: every selected tensor.
    #[arg(long, value_delimiter = ',', requires = "min_layer_density")]
    pub floor_on: Option<Vec<String>>,
    /// Dense training steps of level 0 (default: --steps).
    #[arg(long)]
    pub dense_steps: Option<u64>,
    /// The trained dense model: level 0 is scored, not trained (MODEL stays the initial weights).
    #[arg(long)]
    pub trained: Option<PathBuf>,
    /// Fractions of dense training (comma separated; 0 is the initial weights) at which to save the mask level 1
    /// would draw; level 0's metrics record each one's IoU with the final mask.
    #[arg(long, value_delimiter = ',')]
    pub early_bird: Vec<f64>,
    /// End dense training when the early-bird rule fires (mask within Hamming 0.1 of the previous 4 checks).
    #[arg(long)]
    pub early_stop_eb: bool,
    /// Dense steps between early-bird checks (default: a twentieth of dense training).
    #[arg(long, requires = "early_stop_eb")]
    pub eb_every: Option<u64>,
    /// Level 1's mask from a file (an early-bird mask, or any mask) instead of pruning.
    #[arg(long)]
    pub masks_from: Option<PathBuf>,
    /// The gate for RUN_DIR/ticket.onnx: AP at most this far below dense, for every IoU type (0.01 = 1 point).
    #[arg(long, default_value_t = ImpSettings::default().max_map_drop)]
    pub max_map_drop: f64,
    /// Continue the run in RUN_DIR where it stopped (settings, --threads included, from its run.json).
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// RUN_DIR for a new run.
    #[arg(short = 'o', long = "output")]
    pub out: Option<PathBuf>,
}

impl Args {
    /// The validation set the options name.
    pub fn val(&self) -> Result<DataSpec> {
        DataSpec::validation(self.val_coco.as_deref(), self.val_voc.as_deref(), self.val_classify.as_deref(), self.val_images.as_deref())
            .ok_or_else(|| {
                Error::Input(
                    "imp scores every level on a validation set: give --val-coco VAL.json, --val-voc DIR, --val-classify DIR or --val-images DIR alone (agreement with dense)".into(),
                )
            })
    }

    /// The flags as the library's IMP settings.
    pub fn settings(&self) -> ImpSettings {
        ImpSettings {
            sparsity: self.sparsity,
            rounds: self.rounds,
            scope: self.scope,
            modules: self.modules.clone(),
            min_layer_density: self.min_layer_density,
            structure: self.what.structure,
            importance: self.what.importance,
            round_to: self.what.round_to,
            rewind: self.rewind,
            mask: self.mask,
            floor_on: self.floor_on.clone(),
            dense_steps: self.dense_steps,
            trained: self.trained.clone(),
            early_bird: self.early_bird.clone(),
            early_stop_eb: self.early_stop_eb,
            eb_every: self.eb_every,
            masks_from: self.masks_from.clone(),
            max_map_drop: self.max_map_drop,
            agreement_score: self.agreement_score,
            val_every: self.val_every,
            threads: self.train.threads.unwrap_or(0),
            train: self.train.settings(),
        }
    }

    /// `ticket imp`'s options as clap names them, for the sweep (which checks the values through the library).
    pub fn option_table() -> OptionTable {
        let cmd = <Args as clap::Args>::augment_args(clap::Command::new("imp"));
        let model = OptionInfo { takes_value: true, is_path: true, positional: true, default: None };
        let options = cmd.get_arguments().filter_map(|a| {
            let defaults: Vec<String> = a.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            let info = OptionInfo {
                takes_value: a.get_action().takes_values(),
                is_path: a.get_value_parser().type_id() == std::any::TypeId::of::<PathBuf>(),
                positional: false,
                default: (!defaults.is_empty()).then(|| defaults.join(",")),
            };
            Some((a.get_long()?.to_string(), info))
        });
        OptionTable::new(std::iter::once(("model".to_string(), model)).chain(options))
    }

    /// The run the options define, for `model`.
    pub fn config(&self, model: &Path) -> Result<ImpConfig> {
        ImpConfig::new(model, self.val()?, self.train.data()?, &self.settings())
    }
}

pub fn run(a: Args, json: bool) -> Result<()> {
    let (dir, start) = match (&a.resume, &a.out) {
        (Some(d), _) => {
            let given = a.train.coco.is_some()
                || a.train.voc.is_some()
                || a.train.classify.is_some()
                || a.val_coco.is_some()
                || a.val_voc.is_some()
                || a.val_classify.is_some()
                || a.val_images.is_some()
                || a.sparsity.is_some();
            if given {
                return Err(Error::Input(
                    "--resume takes the data and settings from RUN_DIR/run.json; give only [MODEL] --resume RUN_DIR".into(),
                ));
            }
            (d.clone(), ImpStart::Resume { model: a.model.clone(), clip_grad_norm: a.train.clip_grad_norm })
        }
        (None, Some(o)) => {
            let model = a.model.as_ref().ok_or_else(|| Error::Input("give MODEL (the initial weights) for a new run".into()))?;
            (o.clone(), ImpStart::Fresh(Box::new(a.config(model)?)))
        }
        (None, None) => return Err(Error::Input("give -o RUN_DIR for a new run or --resume RUN_DIR".into())),
    };
    let env = ImpEnv { python: a.train.python()? };
    let mut on = progress(json);
    let summary = run_imp(&dir, start, &env, &mut on)?;
    print_report(json, &summary, render_summary);
    if summary.ticket_level.is_none() {
        return Err(Error::Reported(format!(
            "no level is within {} of dense (see {})",
            render_drop(summary.max_map_drop),
            dir.join("summary.json").display()
        )));
    }
    Ok(())
}

/// How an IMP run shows itself: a line per phase and per finished level, a step view while training.
pub(crate) fn progress(json: bool) -> impl FnMut(ImpEvent) {
    // Each level's training gets its own view at TrainStart; this one is never shown.
    let mut view = progress_steps("", 0, 0, 1, true);
    move |e: ImpEvent| match e {
        ImpEvent::Phase { level, what } => {
            if !json {
                crate::fsio::stderr_line(format_args!("level {level}: {what}"));
            }
        }
        ImpEvent::TrainStart { level, total, start, batch } => view = progress_steps(&format!("level {level}"), total, start, batch, json),
        ImpEvent::Step { record, .. } => {
            view(Some(record));
        }
        ImpEvent::TrainEnd { .. } => {
            view(None);
        }
        ImpEvent::EarlyStop { step } => {
            crate::fsio::stderr_line(format_args!("early-bird: the mask stopped moving; dense training ends at step {step}"))
        }
        ImpEvent::Level(row) => {
            if !json {
                let s: Vec<String> =
                    row.scores.iter().map(|(k, s)| format!("{} {}", render_score_name(k), render_num(s.primary()))).collect();
                crate::fsio::stderr_line(format_args!(
                    "level {} done: sparsity {} ({})",
                    row.level,
                    render_pct(row.selected_sparsity),
                    s.join(", ")
                ));
            }
        }
    }
}

/// A level score's column name: `bbox AP`, …, or `top-1` for a classifier's `top1` entry (its `ap`).
fn render_score_name(t: &str) -> String {
    if t == "top1" {
        "top-1".into()
    } else {
        format!("{t} AP")
    }
}

fn render_num(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

/// The gate in AP and in points: "1 AP" read as one point when the gate was the whole scale.
pub(crate) fn render_drop(d: f64) -> String {
    let points = (d * 10_000.0).round() / 100.0; // 0.07 × 100 is 7.000000000000001 in f64
    format!("{d} AP ({points} point{})", if points == 1.0 { "" } else { "s" })
}

pub fn render_summary(s: &ImpSummary) -> String {
    let types: Vec<String> = s.levels[0].scores.keys().cloned().collect();
    let flops = s.levels.iter().any(|l| l.flops_removed.is_some());
    let mut header: Vec<String> = vec!["Level".into(), "Selected".into(), "Network".into()];
    if flops {
        header.push("FLOPs cut".into());
    }
    for t in &types {
        if t == "top1" {
            // A classifier's one number: no AP50.
            header.extend([render_score_name(t), "Δtop-1".into()]);
        } else {
            header.extend([render_score_name(t), format!("{t} AP50"), format!("{t} ΔAP")]);
        }
    }
    header.extend(["Steps".into(), "Train s".into(), "Latency ms".into(), "Compact B".into()]);
    let rows: Vec<Vec<String>> = s
        .levels
        .iter()
        .zip(&s.delta)
        .map(|(l, d)| {
            let mut row = vec![l.level.to_string(), render_pct(l.selected_sparsity), render_pct(l.network_sparsity)];
            if flops {
                row.push(l.flops_removed.map_or("-".into(), render_pct));
            }
            for t in &types {
                let sc = l.scores.get(t);
                row.push(render_num(sc.and_then(|x| x.primary())));
                if t != "top1" {
                    row.push(render_num(sc.and_then(|x| x.ap50)));
                }
                row.push(if l.level == 0 { "-".into() } else { d.get(t).map_or("-".into(), |v| format!("{v:+.3}")) });
            }
            row.extend([
                l.steps.to_string(),
                format!("{:.0}", l.train_s),
                format!("{:.0}", l.latency_ms),
                l.compact_bytes.map_or("-".into(), |b| b.to_string()),
            ]);
            row
        })
        .collect();
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut out = render_table(&header_refs, &rows);
    if let Some(r) = &s.agreement_with {
        out += &format!("scores are agreement with the dense model: AP against its confident detections ({})\n", r.display());
    }
    for l in &s.levels {
        for name in &l.collapsed {
            out += &format!("warning: level {}: {name} is more than 99% pruned (the layer has all but collapsed)\n", l.level);
        }
    }
    if let Some(eb) = &s.early_bird {
        for m in &eb.masks {
            out += &format!(
                "early-bird mask at {:.0}% of dense training (step {}): IoU {:.3} with the final mask\n",
                100.0 * m.fraction,
                m.step,
                m.iou_with_final
            );
        }
        if let Some(step) = eb.stopped_at {
            out += &format!("early-bird stop rule ended dense training at step {step}\n");
        }
    }
    out += &match (&s.ticket_level, &s.ticket) {
        (Some(r), Some(p)) => format!(
            "ticket: level {r} ({} of the selected weights pruned) is within {} of dense → {}\n",
            render_pct(s.levels[*r].selected_sparsity),
            render_drop(s.max_map_drop),
            p.display()
        ),
        _ => format!("no level is within {} of dense: no ticket written\n", render_drop(s.max_map_drop)),
    };
    out
}
