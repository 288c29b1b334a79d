//! `ticket demo`, the main job, in miniature (a few steps, one level, a few images): it finds and gates a
//! ticket, checks the export in ONNX Runtime and its compact file, runs `ticket validate` on it, judges it against
//! dense models trained as long as level 0 and as long as its lineage, and a second call resumes the finished
//! run instead of training again.
mod common;
use common::*;

#[test]
fn the_demo_finds_checks_and_validates_a_ticket() {
    let t = tempdir();
    let out = t.path().join("demo");
    let args: [&dyn AsRef<std::ffi::OsStr>; 14] = [
        &"demo",
        &"--out",
        &out,
        &"--steps",
        &"4",
        &"--rounds",
        &"1",
        &"--train-images",
        &"4",
        &"--val-images",
        &"2",
        &"--max-map-drop",
        &"1",
        &"--json",
    ];
    let first = ticket(&args);
    assert!(first.status.success(), "demo failed: {}", String::from_utf8_lossy(&first.stderr));
    let r: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(r["imp"]["ticket_level"], 1);
    assert_eq!(r["ort_equal"], true);
    assert_eq!(r["compact_round_trip_exact"], true);
    assert!(r["validate"]["candidate"]["sparsity"].as_f64().unwrap() > 0.79, "validate saw the ticket: {}", r["validate"]);
    for f in ["run/run.json", "run/summary.json", "run/ticket.onnx", "run/ticket.tkt", "run/level_1/metrics.json", "initial.onnx"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let log = std::fs::read_to_string(out.join("run/level_1/log.jsonl")).unwrap();
    // Again: the finished run is resumed, nothing retrained, the same summary.
    let second = ticket(&args);
    assert!(second.status.success());
    let r2: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(r2["imp"]["levels"], r["imp"]["levels"]);
    assert_eq!(std::fs::read_to_string(out.join("run/level_1/log.jsonl")).unwrap(), log);

    // The verdict names its dense reference (4 steps, against the ticket lineage's 8) and the ticket's margin.
    let reference = &r["reference"];
    assert_eq!((reference["dense_steps"].as_u64(), reference["lineage_steps"].as_u64()), (Some(4), Some(8)), "{reference}");
    assert_eq!(reference["compute_matched"], false);
    assert_eq!(reference["margin"], r["imp"]["delta"][1]);
    // ... and trains the compute-matched dense model (the lineage's 8 steps) once, beside the run.
    let matched = &reference["matched"];
    assert_eq!(matched["steps"], 8, "{reference}");
    let steps = std::fs::read_to_string(out.join("dense_8/log.jsonl")).unwrap();
    assert_eq!(steps.lines().count(), 8);
    for t in ["bbox", "segm"] {
        let (ticket, dense) = (r["imp"]["levels"][1]["scores"][t]["ap"].as_f64().unwrap(), matched["ap"][t].as_f64().unwrap());
        assert!((matched["margin"][t].as_f64().unwrap() - (ticket - dense)).abs() < 1e-12, "{matched}");
    }
    assert_eq!(r2["reference"]["matched"], *matched, "the resumed demo reuses the compute-matched model");
    assert_eq!(std::fs::read_to_string(out.join("dense_8/log.jsonl")).unwrap(), steps);
    let text = ticket(&args[..13]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("dense reference: level 0, 4 training steps (not compute-matched"), "{text}");
    let bbox = reference["margin"]["bbox"].as_f64().unwrap();
    assert!(text.contains(&format!("ticket level 1 against it: AP margin bbox {bbox:+.3}, segm")), "{text}");
    assert!(text.contains("compute-matched dense model: the initial weights trained 8 steps"), "{text}");
}

/// The copyable example runs as written on a user's COCO files (a few steps, one level): it finds a ticket
/// within the gate and `ticket validate` passes it.
#[test]
fn the_find_a_ticket_example_runs() {
    let t = tempdir();
    for (name, n, seed) in [("train", "4", "1"), ("val", "2", "2")] {
        let o = ticket(&[&"data", &"synth", &"--out", &t.path().join(name), &"--images", &n, &"--seed", &seed]);
        assert!(o.status.success());
    }
    let out = std::process::Command::new("bash")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/find_a_ticket.sh"))
        .current_dir(t.path())
        .env("TICKET", env!("CARGO_BIN_EXE_ticket"))
        .env("STEPS", "15")
        .env("ROUNDS", "1")
        .env("SPARSITY", "0.3")
        .arg(fixture("train/maskrcnn_r18_fpn_synth.onnx"))
        .args(["train/annotations.json", "val/annotations.json", "ex"])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "example failed ({:?}): {stderr}", out.status.code());
    assert!(t.path().join("ex/run/ticket.onnx").is_file(), "no ticket: {stdout}");
    assert!(stdout.contains("mAP drop"), "validate did not run: {stdout}");
}
