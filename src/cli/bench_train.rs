//! `ticket bench train`: ONNX Runtime training's step time on the emitted training core against PyTorch eager
//! on the torchvision model, same weights, canvas and RoI count, measured in the same run (`crate::bench::train`).
use super::print_report;
use crate::bench::train::{Settings, TrainBench};
use crate::error::Result;
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
        "{}: one training step, {}² canvas, {} RoIs\nONNX Runtime training: {:.0} ms (median of {})\n",
        r.model.display(),
        r.size,
        r.rois,
        r.ort_step_ms,
        repeat
    );
    if let (Some(t), Some(x)) = (r.torch_ms(), r.ort_over_torch) {
        s += &format!("PyTorch eager:         {t:.0} ms → ORT / torch = {x:.2}\n");
    }
    s
}
