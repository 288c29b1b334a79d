//! One file per command. Each command computes a serialisable report; `print_report` prints it as JSON (`--json`) or
//! as the command's text form.
mod bench;
mod bench_detect;
mod bench_sparse;
mod bench_train;
mod check;
mod choice;
mod data;
mod demo;
mod detect;
mod eval;
mod imp;
mod inspect;
mod mask;
mod progress;
mod prune;
mod report;
mod setup;
mod study;
mod study_transfer;
mod sweep;
mod train;
mod transfer;
mod unpack;
mod validate;

pub use imp::Args as ImpArgs;
pub(crate) use progress::{progress, progress_bar};

use crate::error::Result;
use clap::{Parser, Subcommand};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(name = "ticket", version, about = "Turn dense two-stage detectors (ONNX) into sparse lottery tickets for CPU inference")]
pub struct Cli {
    /// Print a machine-readable JSON report on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

// One value per process, parsed once: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the detected architecture and, per module group, parameters, prunable weights and sparsity.
    Inspect(inspect::Args),
    /// Magnitude-prune a model (global or layer-wise, chosen modules, IMP rounds) and export it.
    Prune(prune::Args),
    /// Mask files: statistics, IoU, applying one to a model, transferring a classifier's backbone mask.
    #[command(subcommand)]
    Mask(mask::MaskCommand),
    /// Turn a compact ticket file back into a plain ONNX model.
    Unpack(unpack::Args),
    /// Detect objects on CPU (tract stages + Rust post-processing); writes COCO results, optionally drawn.
    Detect(detect::Args),
    /// CI gate: a ticket against its dense model on sparsity, mAP and latency (exit 1 when a gate fails).
    Validate(validate::Args),
    /// Run a model in ONNX Runtime, and compare it with a reference model (with masks applied) if given.
    Check(check::Args),
    /// The main job: find a lottery ticket for the embedded miniature Mask R-CNN on synthetic data, end to end.
    ///
    /// Writes synthetic training and held-out images, runs `ticket imp` (dense training, then levels of global
    /// magnitude pruning towards --sparsity, each rewound to init, retrained and scored with tract), exports the
    /// sparsest level within --max-map-drop of dense as OUT/run/ticket.onnx and ticket.tkt, checks the export in
    /// ONNX Runtime and the compact file's round trip, runs `ticket validate` on it and prints the table.
    /// Running it again resumes the same run folder.
    Demo(demo::Args),
    /// Benchmarks that print ratios against baselines measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// COCO metrics (bbox, segm, keypoints; per category, per size, TIDE) or Pascal VOC AP for detections.
    Eval(eval::Args),
    /// Training data: write a synthetic COCO dataset, or check a COCO/VOC dataset as training loads it.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Fine-tune a detector on COCO or VOC data in ONNX Runtime training (masks stay zero); RUN_DIR gets the
    /// log, checkpoints and the trained ONNX.
    Train(train::Args),
    /// Find a lottery ticket: dense training, then levels of magnitude pruning, rewinding, retraining and
    /// scoring (resumable); RUN_DIR/ticket.onnx is the sparsest level within the AP gate.
    Imp(imp::Args),
    /// A Markdown report with plots (PNG, SVG) from IMP run folders: AP vs sparsity, per layer, size, category, TIDE, loss.
    Report(report::Args),
    /// A grid of IMP runs from a spec (TOML), here (--local N) or as a Slurm job array (--slurm); resumable,
    /// with --status, --retry-failed and --dry-run.
    Sweep(sweep::Args),
    /// One of the paper's studies (modules, rounds, scope, rewind, early-bird, width, transfer) as a sweep, run and reported.
    Study(study::Args),
    /// A detector with a classifier's body as its backbone: pretrained backbone, transfer ticket or mask
    /// transfer (with --masks), for `ticket imp --masks-from`.
    ///
    /// The setting follows from the inputs: the dense pretrained classifier alone → pretrained backbone; a
    /// classifier ticket's trained pruned weights with its --masks → transfer ticket (seed §4.2); the dense
    /// pretrained classifier with a ticket's --masks → mask transfer (App. A). Then train the detector with
    /// `ticket imp OUT.onnx --masks-from OUT.safetensors --rewind init|none …`.
    Transfer(transfer::Args),
    /// Make the Python environments ticket needs (ONNX Runtime, training; torch with --torch) in the data
    /// folder ($TICKET_HOME, else $XDG_DATA_HOME/ticket, else ~/.local/share/ticket); idempotent.
    Setup(setup::SetupArgs),
    /// Show what was found where: ONNX Runtime, the training environment and its CUDA provider, cores, SIMD.
    Doctor(setup::DoctorArgs),
}

impl Command {
    /// tract's threads for the commands that run tract stages (0: one per core); None for the others.
    fn tract_threads(&self) -> Option<usize> {
        match self {
            Command::Detect(a) => Some(a.opts.tract_threads()),
            Command::Eval(a) => Some(a.opts.tract_threads()),
            Command::Bench(c) => c.tract_threads(),
            // Validation, the demo and IMP's level scoring detect with one thread per core.
            Command::Validate(_) | Command::Demo(_) | Command::Imp(_) => Some(0),
            _ => None,
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    // tract's executor is process-wide: the command sets it once, before any stage runs.
    if let Some(n) = cli.command.tract_threads() {
        crate::runtime::tract_stage::set_threads(n);
    }
    match cli.command {
        Command::Inspect(a) => inspect::run(a, json),
        Command::Prune(a) => prune::run(a, json),
        Command::Mask(c) => mask::run(c, json),
        Command::Unpack(a) => unpack::run(a, json),
        Command::Check(a) => check::run(a, json),
        Command::Detect(a) => detect::run(a, json),
        Command::Validate(a) => validate::run(a, json),
        Command::Demo(a) => demo::run(a, json),
        Command::Bench(c) => bench::run(c, json),
        Command::Eval(a) => eval::run(a, json),
        Command::Data(c) => data::run(c, json),
        Command::Train(a) => train::run(a, json),
        Command::Imp(a) => imp::run(a, json),
        Command::Report(a) => report::run(a, json),
        Command::Sweep(a) => sweep::run(a, json),
        Command::Study(a) => study::run(a, json),
        Command::Transfer(a) => transfer::run(a, json),
        Command::Setup(a) => setup::run_setup(a, json),
        Command::Doctor(a) => setup::run_doctor(a, json),
    }
}

/// An error's one line as the command line says it: each setting a library error names, as its flag.
pub fn render_error(e: &crate::Error) -> String {
    e.render_settings(render_flag)
}

/// The flag of a setting a library error names: the setting's name with dashes (`max_map_drop` →
/// `--max-map-drop`), the same in every command. The list holds every setting the library's errors name
/// (tests/setting_errors.rs checks it against src/); one left out would print as the library writes it.
fn render_flag(setting: &str) -> Option<String> {
    const SETTINGS: &str = "agreement_score batch canvas classifier classify clip_grad_norm coco cpus_per_task decay_at dense_steps densities \
         device distill distill_weight early_bird early_stop_eb eb_every flip floor floor_on gamma gres head_rois images \
         include_bias index iou_type kernels lr mask masks masks_from max_map_drop max_parallel min_layer_density \
         min_sparsity modules momentum nms_thresh norm_images optimizer partition pooling profile pseudo_score rare_category \
         rare_fraction repeat resume rewind rois round round_to rounds save_every scales scope score_thresh seeds set size \
         sparsity steps structure task teacher temperature time trainable_layers trained unlabeled val_classify val_coco val_every val_images \
         val_voc voc weight_decay weight_sparsities";
    SETTINGS.split_whitespace().any(|s| s == setting).then(|| format!("--{}", setting.replace('_', "-")))
}

/// Prints a report: JSON when asked, else the text the command renders.
pub(crate) fn print_report<T: Serialize>(json: bool, report: &T, text: impl FnOnce(&T) -> String) {
    let out = if json { serde_json::to_string_pretty(report).expect("reports serialise") + "\n" } else { text(report) };
    print_output(&out);
}

/// Writes a command's output. A reader that has gone (`ticket … --json | head -1` closes the pipe) is no failure
/// of the command: the rest is dropped and the command's own exit code stands. Any other failure (a full disk
/// behind `> report.json`) would leave a cut report that reads as a whole one: one line, exit 3.
pub(crate) fn print_output(text: &str) {
    match crate::fsio::write_stdout(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            crate::fsio::stderr_line(format_args!("error: cannot write the output to stdout: {e}"));
            std::process::exit(3);
        }
        _ => {}
    }
}

pub(crate) fn render_pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// Renders rows as an aligned text table (first column left-aligned, the rest right-aligned).
pub(crate) fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == 0 { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(header.iter().map(|s| s.to_string()).collect());
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        out += &line(r.clone());
    }
    out
}
