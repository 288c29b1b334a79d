//! `ticket demo`, the main job, in miniature (a few steps, one level, a few images): it finds and gates a
//! ticket, checks the export in ONNX Runtime and its compact file, runs `ticket validate` on it, and a second
//! call resumes the finished run instead of training again.
mod common;
use common::*;

#[test]
fn the_demo_finds_checks_and_validates_a_ticket() {
    let t = tempdir();
    let out = t.path().join("demo");
    let args: [&dyn AsRef<std::ffi::OsStr>; 14] =
        [&"demo", &"--out", &out, &"--steps", &"4", &"--rounds", &"1", &"--train-images", &"4", &"--val-images", &"2", &"--max-map-drop", &"1", &"--json"];
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
}
