//! tools/cuda_check.sh's CPU half, as CI can run it: `--cpu-only` on the narrow Mask R-CNN fixture with two
//! steps — the training run twice from the same start, compared step by step, and one short `ticket imp` level —
//! ending in the summary table with an "ok" verdict.
mod common;
use common::*;

#[test]
fn cuda_check_cpu_half_runs_and_compares() {
    let t = tempdir();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .arg(root.join("tools/cuda_check.sh"))
        .args(["--cpu-only", "--steps", "2", "--out"])
        .arg(t.path().join("check"))
        .arg(fixture("train/maskrcnn_r18_fpn_synth.onnx"))
        .env("TICKET", env!("CARGO_BIN_EXE_ticket"))
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cuda_check.sh --cpu-only failed ({:?}): {stdout}\n{stderr}", out.status.code());
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| 1 |") || l.starts_with("| 2 |")).collect();
    assert_eq!(rows.len(), 2, "one row per step: {stdout}");
    assert!(rows.iter().all(|r| r.ends_with("| yes |")), "{stdout}");
    assert!(stdout.contains("| imp, dense + one level at 50%, --device cpu | ok (2 levels"), "{stdout}");
    assert!(stdout.contains("| verdict | ok |"), "{stdout}");
}
