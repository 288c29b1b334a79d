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
    /// The ticket and the dense model on CPU with tract, on the same synthetic image.
    tract: Vec<TractRun>,
}

#[derive(Serialize)]
struct TractRun {
    model: PathBuf,
    detections: usize,
    latency_ms: f64,
}

/// A deterministic 128×128 test card (gradients and blocks), so the demo needs no image files.
fn test_card() -> image::RgbImage {
    image::RgbImage::from_fn(128, 128, |x, y| {
        let block = ((x / 32 + y / 32) % 2) as u8 * 120;
        image::Rgb([(x * 2) as u8 ^ block, (y * 2) as u8, block.wrapping_add((x + y) as u8)])
    })
}

fn run_tract(state: ModelState, path: &std::path::Path, img: &image::RgbImage) -> Result<TractRun> {
    let params = crate::detect::pipeline::DetectParams::from_model(&state);
    let mut det = crate::detect::pipeline::Detector::new(state, params)?;
    det.detect_rgb(img)?; // plan warm-up
    let t = std::time::Instant::now();
    let d = det.detect_rgb(img)?;
    Ok(TractRun { model: path.to_path_buf(), detections: d.boxes.len(), latency_ms: t.elapsed().as_secs_f64() * 1e3 })
}

pub fn run(args: Args, json: bool) -> Result<()> {
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let dense = args.out.join("dense.onnx");
    crate::fsio::write_atomic(&dense, DEFAULT_MODEL)?;
    let (ticket, masks, compact) = (args.out.join("ticket.onnx"), args.out.join("masks.safetensors"), args.out.join("ticket.tkt"));
    let bar = super::progress(5, "demo", json);
    let mut state = ModelState::import(&dense)?;
    let inspect = super::inspect::report(&state, false);
    bar.inc(1);
    let params = PruneParams { sparsity: args.sparsity, scope: Scope::Global, modules: None, rounds: 1, round: 1, include_bias: false, min_layer_density: None }.check()?;
    let report = crate::prune::prune(&mut state, &params)?;
    let sizes = crate::export::write_outputs(&state, &ticket, Some(&masks), Some(&compact), &[&dense])?;
    bar.inc(1);
    let verify = crate::runtime::ort_check::verify_export(&state, &ticket)?;
    bar.inc(1);
    let from_compact = ModelState::import(&compact)?;
    let exact = from_compact.weights.tensors.iter().zip(&state.weights.tensors).all(|(a, b)| a.values == b.values);
    if !exact {
        return Err(Error::Check(format!("{}: the compact file does not restore the pruned weights exactly", compact.display())));
    }
    bar.inc(1);
    let card = test_card();
    let tract = vec![run_tract(ModelState::import(&dense)?, &dense, &card)?, run_tract(from_compact, &compact, &card)?];
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
        tract,
    };
    emit(json, &r, |r| {
        let mut s = format!(
            "{}\n{}compact file {} restores every weight exactly\n",
            super::inspect::text(&r.inspect),
            super::prune::text(&r.prune),
            r.compact.display()
        );
        for t in &r.tract {
            s += &format!("tract on CPU: {} → {} detections in {:.0} ms\n", t.model.display(), t.detections, t.latency_ms);
        }
        s
    });
    Ok(())
}
