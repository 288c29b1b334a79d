//! `ticket bench train`: ONNX Runtime training's step time on the emitted training core against PyTorch eager
//! on the torchvision model, same weights, canvas and RoI count, measured in the same run (`crate::bench::train`).
use super::{print_report, render_pct, render_table};
use crate::bench::train::{Settings, TrainBench};
use crate::bench::train_profile::OrtProfile;
use crate::error::Result;
use crate::graph::train_shape::Pooling;
use crate::train::worker::Device;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub model: PathBuf,
    /// Side of the square canvas (a multiple of 32).
    #[arg(long, default_value_t = 320)]
    pub size: usize,
    /// Box-head RoIs per image (torchvision samples up to 512).
    #[arg(long, default_value_t = 128)]
    pub rois: usize,
    /// Mask / keypoint RoIs per image (the positives among the box RoIs).
    #[arg(long, default_value_t = 32)]
    pub head_rois: usize,
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// cpu, or cuda (the training venv must then hold onnxruntime-training 1.19.2 with the CUDA 11.8 libraries:
    /// tools/requirements-train-cuda.txt).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// The training venv's python (default: $TICKET_TRAIN_PYTHON, else the one `ticket setup` made, else
    /// .venv-train/bin/python).
    #[arg(long)]
    pub train_python: Option<PathBuf>,
    /// Python with torch (default: $TICKET_TORCH_PYTHON, else the one `ticket setup --torch` made, else
    /// .venv-torch/bin/python); "none" skips the torch baseline.
    #[arg(long)]
    pub torch_python: Option<String>,
    /// Folder of the tools/ scripts (default: ./tools in a checkout, else the data folder's).
    #[arg(long)]
    pub tools: Option<PathBuf>,
    /// Also print where a step's time goes: per operator type and per part of the network, forward and backward,
    /// from ONNX Runtime's profiler, beside torch's profiler on the baseline (both run with their profiler on).
    #[arg(long)]
    pub profile: bool,
    /// Also time a distilling step (every `--distill` term, the model as its own teacher: the teacher's forward
    /// on the batch and RoIs, then the step) against the plain step, in the same run.
    #[arg(long)]
    pub distill: bool,
    /// RoIAlign's form in the training core: taps (Gather from a feature table) or planes (two matrix products
    /// per level); default: what training uses at this canvas (planes up to 192 px).
    #[arg(long)]
    pub pooling: Option<Pooling>,
    /// ONNX Runtime intra-op threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl Args {
    fn settings(self) -> Settings {
        Settings {
            model: self.model,
            size: self.size,
            rois: self.rois,
            head_rois: self.head_rois,
            repeat: self.repeat,
            device: self.device,
            train_python: self.train_python,
            torch_python: self.torch_python,
            tools: self.tools,
            profile: self.profile,
            distill: self.distill,
            pooling: self.pooling,
            threads: self.threads,
        }
    }
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let repeat = args.repeat;
    let r = crate::bench::train::run(args.settings(), &mut crate::cli::progress_bar(0, "bench", json))?;
    print_report(json, &r, |r| render(r, repeat));
    Ok(())
}

fn render(r: &TrainBench, repeat: usize) -> String {
    let mut s = format!(
        "{}: one training step, {}² canvas, {} RoIs, RoIAlign as {}\nONNX Runtime training: {:.0} ms (median of {})\n",
        r.model.display(),
        r.size,
        r.rois,
        format!("{:?}", r.pooling).to_lowercase(),
        r.ort_step_ms,
        repeat
    );
    if let (Some(t), Some(x)) = (r.torch_ms(), r.ort_over_torch) {
        s += &format!("PyTorch eager:         {t:.0} ms → ORT / torch = {x:.2}\n");
    }
    if let Some(d) = &r.distill {
        s += &format!(
            "Distilling step:       {:.0} ms = teacher forward {:.0} ms ({:.0}%) + step {:.0} ms → {:.2}× the plain step\n",
            d.teacher_ms + d.step_ms,
            d.teacher_ms,
            100.0 * d.teacher_share,
            d.step_ms,
            d.over_plain
        );
    }
    if let Some(p) = &r.ort_profile {
        s += &render_profile(p, r.step_wall_ms.unwrap_or(0.0), r.torch.as_ref().map(|t| &t["profile"]));
    }
    s
}

/// The ORT step taken apart, with torch's account of its step beside it where the baseline ran.
fn render_profile(p: &OrtProfile, wall: f64, torch: Option<&serde_json::Value>) -> String {
    let ms = |v: f64| format!("{v:.1}");
    let mut s = format!(
        "\nWhere the ORT step goes (ms per step, mean of {} steps after the warm-up, profiler on):\n\
         step as the Rust side sees it {}: training session {} (kernels {}), optimizer session {}, outside ORT {} \
         (the worker's Python, tensors over the pipe, the gradient reset)\n",
        p.steps,
        ms(wall),
        ms(p.train_session_ms),
        ms(p.kernels_ms),
        ms(p.optimizer_ms),
        ms(wall - p.train_session_ms - p.optimizer_ms)
    );
    let torch_parts: Vec<(String, f64)> = torch
        .and_then(|t| t["parts_forward"].as_array())
        .map(|a| a.iter().filter_map(|r| Some((r["part"].as_str()?.to_string(), r["ms"].as_f64()?))).collect())
        .unwrap_or_default();
    let mut rows: Vec<Vec<String>> = p
        .parts
        .iter()
        .map(|r| {
            let t = torch_parts.iter().find(|(n, _)| *n == r.name).map(|(_, v)| ms(*v)).unwrap_or_default();
            vec![r.name.clone(), ms(r.forward_ms), ms(r.backward_ms), ms(r.ms()), render_pct(r.ms() / p.kernels_ms.max(1e-9)), t]
        })
        .collect();
    for (name, v) in torch_parts.iter().filter(|(n, _)| !p.parts.iter().any(|r| r.name == *n)) {
        rows.push(vec![name.clone(), String::new(), String::new(), String::new(), String::new(), ms(*v)]);
    }
    s += &render_table(&["part", "ORT fwd", "ORT bwd", "ORT total", "of kernels", "torch fwd"], &rows);
    let ops: Vec<Vec<String>> = p
        .ops
        .iter()
        .take(15)
        .map(|r| vec![r.name.clone(), ms(r.forward_ms), ms(r.backward_ms), render_pct(r.ms() / p.kernels_ms.max(1e-9))])
        .collect();
    s += "\nORT by operator type (top 15):\n";
    s += &render_table(&["op", "fwd ms", "bwd ms", "of kernels"], &ops);
    if let Some(t) = torch {
        let split = &t["split"];
        s += &format!(
            "\nPyTorch eager (torch.profiler): forward {}, backward {}, optimizer {} ms per step; by operator (self CPU, top 15):\n",
            ms(split["forward"].as_f64().unwrap_or(0.0)),
            ms(split["backward"].as_f64().unwrap_or(0.0)),
            ms(split["optimizer"].as_f64().unwrap_or(0.0))
        );
        let ops: Vec<Vec<String>> = t["ops"]
            .as_array()
            .map(|a| {
                a.iter().take(15).map(|r| vec![r["op"].as_str().unwrap_or("").to_string(), ms(r["ms"].as_f64().unwrap_or(0.0))]).collect()
            })
            .unwrap_or_default();
        s += &render_table(&["op", "ms"], &ops);
    }
    s
}
