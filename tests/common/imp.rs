//! What the `ticket imp` tests share: a miniature synthetic training and validation set, arguments as
//! `OsString`s, a run's `--json` summary and its level folders.
use super::{tempdir, ticket, ticket_json};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The narrow synthetic Mask R-CNN (tools/export_models.py --synth 4) every IMP test trains.
pub const MODEL: &str = "train/maskrcnn_r18_fpn_synth.onnx";

pub struct Data {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub train: PathBuf,
    pub val: PathBuf,
}

/// 4 synthetic training images (seed 5) and 2 validation images (seed 6) in a temporary folder.
pub fn data() -> Data {
    let dir = tempdir();
    let root = dir.path().to_path_buf();
    for (name, n, seed) in [("train", "4", "5"), ("val", "2", "6")] {
        let out = ticket(&[&"data", &"synth", &"--out", &root.join(name), &"--images", &n, &"--seed", &seed]);
        assert!(out.status.success(), "synth: {}", String::from_utf8_lossy(&out.stderr));
    }
    Data { train: root.join("train/annotations.json"), val: root.join("val/annotations.json"), root, _dir: dir }
}

pub fn os(v: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    v.iter().map(|a| a.as_ref().to_owned()).collect()
}

pub fn run_ok(args: &[OsString]) -> serde_json::Value {
    let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
    ticket_json(&refs)
}

pub fn level(run: &Path, l: usize) -> PathBuf {
    run.join(format!("level_{l}"))
}
