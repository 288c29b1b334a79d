//! `ticket demo`: the main job on the embedded default model (a narrow Mask R-CNN R18-FPN exported from
//! torchvision with random weights by tools/export_models.py), so a fresh machine can see the whole pipeline.
use super::emit;
use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::prune::{PruneParams, Scope};
use serde::Serialize;
use std::path::PathBuf;

const DEFAULT_MODEL: &[u8] = include_bytes!("../../tests/fixtures/maskrcnn_r18_fpn.onnx");

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder for the outputs (created if missing).
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0.8)]
    pub sparsity: f64,
}

#[derive(Serialize)]
struct DemoReport {
    dense: PathBuf,
    ticket: PathBuf,
    masks: PathBuf,
    compact: PathBuf,
    inspect: super::inspect::InspectReport,
    prune: super::prune::PruneOutput,
    compact_round_trip_exact: bool,
}

pub fn run(args: Args, json: bool) -> Result<()> {
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let dense = args.out.join("dense.onnx");
    crate::fsio::write_atomic(&dense, DEFAULT_MODEL)?;
    let (ticket, masks, compact) = (args.out.join("ticket.onnx"), args.out.join("masks.safetensors"), args.out.join("ticket.tkt"));
    let bar = super::progress(4, "demo", json);
    let mut state = ModelState::import(&dense)?;
    let inspect = super::inspect::report(&state, false);
    bar.inc(1);
    let params = PruneParams { sparsity: args.sparsity, scope: Scope::Global, modules: None, rounds: 1, round: 1, include_bias: false }.check()?;
    let report = crate::prune::prune(&mut state, &params)?;
    let sizes = super::prune::write_outputs(&state, &ticket, Some(&masks), Some(&compact), &[&dense])?;
    bar.inc(1);
    let verify = super::prune::verify(&state, &ticket)?;
    bar.inc(1);
    let from_compact = ModelState::import(&compact)?;
    let exact = from_compact.weights.tensors.iter().zip(&state.weights.tensors).all(|(a, b)| a.values == b.values);
    if !exact {
        return Err(Error::Check(format!("{}: the compact file does not restore the pruned weights exactly", compact.display())));
    }
    bar.inc(1);
    bar.finish_and_clear();
    let r = DemoReport {
        dense: dense.clone(),
        ticket: ticket.clone(),
        masks,
        compact,
        inspect,
        prune: super::prune::PruneOutput { model: dense, output: ticket, prune: report, sizes, verify: Some(verify) },
        compact_round_trip_exact: exact,
    };
    emit(json, &r, |r| {
        format!(
            "{}\n{}compact file {} restores every weight exactly\n",
            super::inspect::text(&r.inspect),
            super::prune::text(&r.prune),
            r.compact.display()
        )
    });
    Ok(())
}
