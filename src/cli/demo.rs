//! `ticket demo`: the main job on an embedded default, so a fresh machine sees what the tool is for — a
//! lottery ticket found, checked and exported. The embedded detector is the narrow random-init Mask R-CNN
//! R18-FPN of the training tests (tools/export_models.py --synth 4, 123 k parameters, 0.8 MB); the demo makes
//! its synthetic training and validation sets, runs `ticket imp` (dense training, then levels of global
//! magnitude pruning rewound to init and retrained) towards 80%, exports the sparsest level within the gate,
//! trains a dense model as long as the ticket's lineage (the compute-matched reference), checks the export in
//! ONNX Runtime and its compact file, runs `ticket validate` on it, and prints the table with the ticket's margin
//! against level 0 and against the compute-matched model.
//! Re-running resumes the same run folder.
use super::print_report;
use crate::data::DataSpec;
use crate::error::{Error, Result, WriteContext};
use crate::lottery::demo::{DemoReport, DenseReference};
use crate::lottery::{run_imp, ImpConfig, ImpEnv, ImpStart};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder for the outputs (created if missing; an earlier demo there is resumed).
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Sparsity of the last level.
    #[arg(long, default_value_t = 0.8)]
    pub sparsity: f64,
    /// Levels to reach it (each keeps (1-S)^(1/K) of what the previous kept).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Training steps of the dense model and of each level.
    #[arg(long, default_value_t = 800)]
    pub steps: u64,
    /// Synthetic training images (seed 1) and held-out validation images (seed 2).
    #[arg(long, default_value_t = 300)]
    pub train_images: usize,
    #[arg(long, default_value_t = 60)]
    pub val_images: usize,
    /// The gate: the ticket's AP at most this far below dense (bbox and segm).
    #[arg(long, default_value_t = 0.01)]
    pub max_map_drop: f64,
    /// The training venv's python (default: $TICKET_TRAIN_PYTHON, else the one `ticket setup` made, else
    /// .venv-train/bin/python).
    #[arg(long)]
    pub train_python: Option<PathBuf>,
}

pub fn run(a: Args, json: bool) -> Result<()> {
    let python = crate::runtime::env::train_python(a.train_python.as_deref())?;
    std::fs::create_dir_all(&a.out).writing(&a.out)?;
    let out = std::path::absolute(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let (model, train, val) = crate::lottery::demo::prepare(&out, a.train_images, a.val_images)?;
    let run_dir = out.join("run");
    let start = if run_dir.join("run.json").exists() {
        ImpStart::Resume { model: None, clip_grad_norm: None }
    } else {
        {
            let settings = crate::lottery::demo::imp_settings(a.sparsity, a.rounds, a.steps, a.max_map_drop);
            ImpStart::Fresh(Box::new(ImpConfig::new(&model, DataSpec::coco(&val, None), DataSpec::coco(&train, None), &settings)?))
        }
    };
    let mut on = super::imp::progress(json);
    let env = ImpEnv { python };
    let imp = run_imp(&run_dir, start, &env, &mut on)?;
    let matched = crate::lottery::demo::train_matched(&out, &run_dir, &imp, &env, &mut on)?;
    let report = crate::lottery::demo::check_ticket(&run_dir, imp, &val, matched)?;
    print_report(json, &report, render);
    if report.imp.ticket_level.is_none() {
        return Err(Error::Reported(format!("no level is within {} of dense", super::imp::render_drop(report.imp.max_map_drop))));
    }
    if report.check_failed() {
        return Err(Error::Reported("a check on the exported ticket failed (see above)".into()));
    }
    Ok(())
}

fn render(r: &DemoReport) -> String {
    let mut s = super::imp::render_summary(&r.imp);
    if let Some(d) = &r.reference {
        s += &render_reference(d, r.imp.max_map_drop);
    }
    if let Some(v) = &r.validate {
        let verdict = if v["passed"].as_bool().unwrap_or(false) { "passed" } else { "FAILED" };
        let drops: Vec<String> = v["map_drop"]
            .as_object()
            .map(|m| m.iter().map(|(k, d)| format!("{k} {:.3}", d.as_f64().unwrap_or(f64::NAN))).collect())
            .unwrap_or_default();
        s += &format!("ticket validate (sparsity and mAP-drop gates on the held-out images): {verdict}; mAP drop {}\n", drops.join(", "));
    }
    if let Some(eq) = r.ort_equal {
        s += &format!(
            "ONNX Runtime: the exported ticket {} the dense graph with its masks applied\n",
            if eq { "equals" } else { "DIFFERS from" }
        );
    }
    if let Some(c) = r.compact_round_trip_exact {
        s += &format!("compact file: {}\n", if c { "restores every weight exactly" } else { "DOES NOT restore the weights" });
    }
    s += &format!("run folder: {} (resume or inspect it; summary.json has every number)\n", r.run_dir.display());
    s
}

/// The verdict's reference: the dense model's training against the ticket's lineage, and the ticket's margin.
fn render_reference(d: &DenseReference, max_map_drop: f64) -> String {
    let margins: Vec<String> = d.margin.iter().map(|(t, m)| format!("{t} {m:+.3}")).collect();
    let matched = if d.compute_matched {
        "trained at least as long as the ticket's lineage".to_string()
    } else {
        format!(
            "not compute-matched: the ticket's lineage (dense training, then levels 1..={}) trained {} steps",
            d.ticket_level, d.lineage_steps
        )
    };
    let mut s = format!(
        "dense reference: level 0, {} training steps ({matched})\nticket level {} against it: AP margin {} (the gate: each at least -{max_map_drop})\n",
        d.dense_steps,
        d.ticket_level,
        margins.join(", ")
    );
    if let Some(m) = &d.matched {
        let list = |v: &std::collections::BTreeMap<String, f64>, sign: bool| -> Vec<String> {
            v.iter().map(|(t, x)| if sign { format!("{t} {x:+.3}") } else { format!("{t} {x:.3}") }).collect()
        };
        s += &format!(
            "compute-matched dense model: the initial weights trained {} steps, as long as the ticket's lineage (AP {})\nticket level {} against it: AP margin {}\n",
            m.steps,
            list(&m.ap, false).join(", "),
            d.ticket_level,
            list(&m.margin, true).join(", ")
        );
    }
    s
}
