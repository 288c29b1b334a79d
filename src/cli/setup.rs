//! `ticket setup` (the Python environments in the data folder) and `ticket doctor` (what was found where).
use super::print_report;
use crate::error::{Error, Result};
use crate::runtime::env;
use crate::setup::doctor::{self, Doctor, Piece};
use crate::setup::{self as lib, Progress, SetupOptions, SetupReport};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    /// Also the torch environment (torch, torchvision: exporting your own models, the torch benchmark baselines).
    #[arg(long)]
    pub torch: bool,
    /// The Python that creates the environments (onnxruntime-training 1.19.2 has no wheels for the newest
    /// CPython releases; 3.11 works).
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Only report what is there (as `ticket doctor`); make nothing.
    #[arg(long)]
    pub check: bool,
}

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {}

pub fn run_setup(a: SetupArgs, json: bool) -> Result<()> {
    if a.check {
        return run_doctor(DoctorArgs {}, json);
    }
    let data_dir = env::require_data_dir()?;
    let opts = SetupOptions { data_dir: data_dir.clone(), torch: a.torch, base_python: a.python };
    let mut on = |p: Progress| {
        if !json {
            crate::fsio::stderr_line(format_args!("setup {:>10}: {}", p.piece, p.message));
        }
    };
    let made = lib::setup(&opts, &mut on)?;
    print_report(json, &SetupReport { data_dir, made }, |r| {
        format!("ticket is set up in {} (`ticket doctor` shows what was found where)\n", r.data_dir.display())
    });
    Ok(())
}

pub fn run_doctor(_a: DoctorArgs, json: bool) -> Result<()> {
    let d = doctor::examine();
    print_report(json, &d, render_doctor);
    let missing = d.missing();
    if missing.is_empty() {
        Ok(())
    } else {
        // A check that failed after its report (exit 1), as `validate`'s gates: doctor needs nothing itself.
        Err(Error::Reported(format!("{} missing: run `ticket setup`", missing.join(" and "))))
    }
}

fn render_doctor(d: &Doctor) -> String {
    let place = |p: &Piece| match (&p.found, &p.error) {
        (Some(f), None) => format!("{} ({})", f.path.display(), f.source),
        (Some(f), Some(e)) => format!("{} ({}): {e}", f.path.display(), f.source),
        (None, Some(e)) => e.clone(),
        (None, None) => "not found".into(),
    };
    let yes = |ok: bool| if ok { "ok" } else { "MISSING" };
    let rows = [
        vec![
            "data folder".into(),
            "".into(),
            d.data_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none (set TICKET_HOME)".into()),
        ],
        vec![
            "ONNX Runtime library".into(),
            yes(d.ort.ok).into(),
            d.ort_version.as_ref().map_or_else(|| place(&d.ort), |v| format!("{v} at {}", place(&d.ort))),
        ],
        vec![
            "training environment".into(),
            yes(d.train.ok).into(),
            d.train_onnxruntime.as_ref().map_or_else(|| place(&d.train), |v| format!("onnxruntime {v} at {}", place(&d.train))),
        ],
        vec![
            "CUDA provider (--device cuda)".into(),
            if d.cuda { "yes" } else { "no" }.into(),
            if d.train_providers.is_empty() { "-".into() } else { d.train_providers.join(", ") },
        ],
        vec!["torch environment (optional)".into(), if d.torch.ok { "ok" } else { "-" }.into(), place(&d.torch)],
        vec!["tool scripts".into(), "".into(), d.tools_dir.display().to_string()],
        vec!["cores".into(), "".into(), d.cores.to_string()],
        vec!["tract SIMD".into(), "".into(), d.simd.into()],
    ];
    // Left-aligned: the last column holds paths and sentences.
    rows.iter().map(|r| format!("{:<30} {:<8} {}\n", r[0], r[1], r[2])).collect()
}
