//! A miniature sweep shared by tests/sweep.rs (the local executor) and tests/slurm.rs (a one-node Slurm
//! cluster): 4 IMP tasks (sparsity × seed) on the narrow synthetic Mask R-CNN, a few steps each, one ORT
//! thread so that any two executions of a task are bit for bit the same.
use super::*;
use std::path::{Path, PathBuf};
use ticket::model::Masks;

pub const MODEL: &str = "train/maskrcnn_r18_fpn_synth.onnx";

/// Synthetic train (4 images) and val (2 images) sets under `root`.
pub fn mini_data(root: &Path) {
    for (name, n, seed) in [("train", "4", "5"), ("val", "2", "6")] {
        let out = ticket(&[&"data", &"synth", &"--out", &root.join(name), &"--images", &n, &"--seed", &seed]);
        assert!(out.status.success(), "synth: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Writes ROOT/NAME.toml: a grid of 2 sparsities × 2 seeds, `steps` steps a level, relative data paths.
pub fn mini_spec(root: &Path, name: &str, steps: u32, extra: &str) -> PathBuf {
    let spec = format!(
        "name = \"{name}\"\n[fixed]\nmodel = {:?}\ncoco = \"train/annotations.json\"\nval-coco = \"val/annotations.json\"\n\
         steps = {steps}\nwarmup = 1\nsave-every = 2\nrois = 32\nthreads = 1\nmax-map-drop = 1\n{extra}\n\
         [grid]\nsparsity = [0.5, 0.8]\nseed = [1, 2]\n",
        fixture(MODEL).to_string_lossy()
    );
    let path = root.join(format!("{name}.toml"));
    std::fs::write(&path, spec).unwrap();
    path
}

pub fn plan(sweep_dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(sweep_dir.join("sweep.json")).unwrap()).unwrap()
}

/// The task folders of a sweep, in task order.
pub fn task_dirs(sweep_dir: &Path) -> Vec<PathBuf> {
    plan(sweep_dir)["tasks"].as_array().unwrap().iter().map(|t| sweep_dir.join("tasks").join(t["hash"].as_str().unwrap())).collect()
}

/// Asserts two executions of one task reached the same masks, models and scores at every level.
pub fn assert_same_task(a: &Path, b: &Path) {
    let summary = |d: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(d.join("run/summary.json")).unwrap()).unwrap() };
    let (sa, sb) = (summary(a), summary(b));
    let (la, lb) = (sa["levels"].as_array().unwrap(), sb["levels"].as_array().unwrap());
    assert_eq!(la.len(), lb.len(), "{} and {} have different level counts", a.display(), b.display());
    for (l, (ra, rb)) in la.iter().zip(lb).enumerate() {
        for k in ["scores", "selected_sparsity", "network_sparsity", "steps", "collapsed"] {
            assert_eq!(ra[k], rb[k], "level {l} {k} differs between {} and {}", a.display(), b.display());
        }
        let level = |d: &Path| d.join(format!("run/level_{l}"));
        if l > 0 {
            let masks = |d: &Path| Masks::load(&level(d).join("masks.safetensors")).unwrap();
            assert!(masks(a) == masks(b), "level {l} masks differ between {} and {}", a.display(), b.display());
        }
        let model = |d: &Path| std::fs::read(level(d).join("model.onnx")).unwrap();
        assert!(model(a) == model(b), "level {l} model.onnx differs between {} and {}", a.display(), b.display());
    }
}
