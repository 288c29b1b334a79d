//! examples/real_model.sh, the way from a torchvision model to a validated ticket, run as a user would on COCO
//! files: with an exported model (`--onnx`: no torch here, nothing downloaded), a few steps and one level, it
//! finds a ticket, `ticket validate` passes it and it says what to ship. The exporter it calls refuses to run
//! without being told where the weights come from (its own file, torchvision's download, or random).
mod common;
use common::*;

#[test]
fn the_real_model_example_runs_from_an_exported_model() {
    let t = tempdir();
    for (name, n, seed) in [("train", "4", "1"), ("val", "2", "2")] {
        let o = ticket(&[&"data", &"synth", &"--out", &t.path().join(name), &"--images", &n, &"--seed", &seed]);
        assert!(o.status.success());
    }
    let out = std::process::Command::new("bash")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/real_model.sh"))
        .arg("--onnx")
        .arg(fixture("train/maskrcnn_r18_fpn_synth.onnx"))
        .args(["train/annotations.json", "val/annotations.json", "ex"])
        .current_dir(t.path())
        .env("TICKET", env!("CARGO_BIN_EXE_ticket"))
        .env("STEPS", "15")
        .env("ROUNDS", "1")
        .env("SPARSITY", "0.3")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "example failed ({:?}): {stdout}\n{stderr}", out.status.code());
    assert!(stdout.contains("mask_rcnn") || stdout.contains("Mask R-CNN"), "inspect did not run: {stdout}");
    assert!(stdout.contains("mAP drop"), "validate did not run: {stdout}");
    assert!(stdout.contains("ship ") && t.path().join("ex/run/ticket.tkt").is_file(), "{stdout}");
}

#[test]
fn the_exporter_needs_to_be_told_where_the_weights_come_from() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/export_torchvision.py");
    let out = std::process::Command::new(python()).arg(&script).args(["-o", "x.onnx"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("one of the arguments --weights --download --random is required"), "{err}");
}
