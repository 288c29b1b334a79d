//! tools/results.py, which computes the tables of docs/RESULTS.md from `ticket imp` run folders: run on a small
//! committed run set (tests/fixtures/results_runs, written by tools/results_fixture.py), its output is the
//! committed tests/fixtures/results_runs.md byte for byte, so a change to what it computes shows here.
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn results_tables_are_reproduced_bit_for_bit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Relative paths from the checkout's root: the report names the folder it read.
    let out = Command::new(python()).current_dir(root).args(["tools/results.py", "tests/fixtures/results_runs"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got = String::from_utf8(out.stdout).unwrap();
    assert_same_text(&got, &root.join("tests/fixtures/results_runs.md"));
    // Every section computed something (none failed), and the unfinished runs are named, not counted.
    assert!(!got.contains("failed:"), "{got}");
    for section in ["## (a)", "## (b)", "## (c)", "## (e)", "## (g)", "## (h)", "## TIDE", "## (d)", "## App. B"] {
        assert!(got.contains(section), "{section}");
    }
    assert!(stderr.contains("seed_1/channel: unfinished"), "{stderr}");
}

/// The result tables committed beside their raw runs (docs/results/…/tables.md, and tables_test.md from the same
/// models scored on the larger test set of tools/test_scores.sh) are what the summary scripts compute from the
/// committed archives today: a table cannot drift from the runs it cites, and an archive whose
/// checksum no longer holds is refused.
#[test]
fn committed_run_archives_reproduce_their_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (script, dir, table) in [
        ("tools/distill_summary.py", "docs/results/distill/dense3000", "tables.md"),
        ("tools/distill_summary.py", "docs/results/distill/faster16000", "tables.md"),
        ("tools/distill_summary.py", "docs/results/distill/channel58", "tables.md"),
        ("tools/distill_summary.py", "docs/results/distill/channel58_lr005", "tables.md"),
        ("tools/distill_summary.py", "docs/results/distill/channel58_lr002", "tables.md"),
        ("tools/distill_summary.py", "docs/results/distill/channel58_8k", "tables.md"),
        ("tools/distill_summary.py", "docs/results/distill/channel58_w16", "tables.md"),
        ("tools/distill_summary.py", "docs/results/distill/channel58_w16_16k", "tables.md"),
        ("tools/distill_summary.py --test", "docs/results/distill/channel58_w16_16k", "tables_test.md"),
        ("tools/distill_summary.py", "docs/results/distill/channel52_w16_16k", "tables.md"),
        ("tools/distill_summary.py --test", "docs/results/distill/channel52_w16_16k", "tables_test.md"),
        ("tools/distill_summary.py", "docs/results/distill/channel58_w16_scarce", "tables.md"),
        ("tools/converged_summary.py", "docs/results/converged", "tables.md"),
        ("tools/converged_summary.py --test", "docs/results/converged", "tables_test.md"),
        ("tools/pretrained_summary.py", "docs/results/pretrained", "tables.md"),
        ("tools/claim_g_summary.py", "docs/results/claim_g", "tables.md"),
        ("tools/width_summary.py", "docs/results/width", "tables.md"),
    ] {
        let archive = format!("{dir}/runs.tar.gz");
        let mut args: Vec<&str> = script.split(' ').collect();
        args.push(&archive);
        let out = Command::new(python()).current_dir(root).args(&args).output().unwrap();
        assert!(out.status.success(), "{script} {archive}: {}", String::from_utf8_lossy(&out.stderr));
        let got = String::from_utf8(out.stdout).unwrap();
        assert!(got.starts_with(&format!("{archive}: ")), "{got}");
        assert_same_text(&got, &root.join(dir).join(table));
    }
}

/// `got` is the file's text, or the first line that differs is shown.
fn assert_same_text(got: &str, want: &Path) {
    let text = std::fs::read_to_string(want).unwrap();
    if got != text {
        let line = got.lines().zip(text.lines()).position(|(a, b)| a != b).unwrap_or(got.lines().count().min(text.lines().count()));
        panic!(
            "the output differs from {} from line {}:\n got: {:?}\nwant: {:?}",
            want.display(),
            line + 1,
            got.lines().nth(line),
            text.lines().nth(line)
        );
    }
}

/// tools/pack_runs.py: a run set packed twice is the same bytes (the archive a results table cites does not
/// depend on when it was packed), its checksum holds, a changed byte is caught, and unpacking gives back the run
/// files and nothing else (no model, no checkpoint).
#[test]
fn packed_runs_are_deterministic_and_checked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = tempdir();
    let src = t.path().join("runs");
    let run = src.join("seed_1/ticket");
    std::fs::create_dir_all(run.join("level_1/checkpoints")).unwrap();
    std::fs::write(run.join("run.json"), "{}").unwrap();
    std::fs::write(run.join("level_1/metrics.json"), "{\"row\": 1}").unwrap();
    std::fs::write(run.join("level_1/log.jsonl"), "{\"step\": 1}\n").unwrap();
    std::fs::write(run.join("level_1/model.onnx"), "weights").unwrap();
    std::fs::write(run.join("level_1/checkpoints/metrics.json"), "{}").unwrap();
    let pack = |args: &[&Path]| {
        let mut c = Command::new(python());
        c.arg(root.join("tools/pack_runs.py")).args(args);
        c.output().unwrap()
    };
    let (a, b) = (t.path().join("a/runs.tar.gz"), t.path().join("b/runs.tar.gz"));
    for out in [&a, &b] {
        let o = pack(&[&src, out]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(pack(&[Path::new("--check"), &a]).status.success());
    let dest = t.path().join("unpacked");
    assert!(pack(&[Path::new("--unpack"), &a, &dest]).status.success());
    let mut got: Vec<String> = walk(&dest).into_iter().map(|p| p.strip_prefix(&dest).unwrap().display().to_string()).collect();
    got.sort();
    assert_eq!(got, ["seed_1/ticket/level_1/log.jsonl", "seed_1/ticket/level_1/metrics.json", "seed_1/ticket/run.json"]);
    // --add: another seed's run joins the archive (its log left out), the archive's own files kept, the checksum renewed.
    let more = t.path().join("more");
    std::fs::create_dir_all(more.join("seed_2/ticket/level_1")).unwrap();
    std::fs::write(more.join("seed_2/ticket/run.json"), "{}").unwrap();
    std::fs::write(more.join("seed_2/ticket/level_1/log.jsonl"), "{}\n").unwrap();
    std::fs::write(more.join("seed_2/ticket/level_1/model.onnx"), "weights").unwrap();
    assert!(pack(&[Path::new("--add"), Path::new("--no-logs"), &a, &more]).status.success());
    assert!(pack(&[Path::new("--check"), &a]).status.success());
    let dest = t.path().join("added");
    assert!(pack(&[Path::new("--unpack"), &a, &dest]).status.success());
    let mut got: Vec<String> = walk(&dest).into_iter().map(|p| p.strip_prefix(&dest).unwrap().display().to_string()).collect();
    got.sort();
    assert_eq!(
        got,
        ["seed_1/ticket/level_1/log.jsonl", "seed_1/ticket/level_1/metrics.json", "seed_1/ticket/run.json", "seed_2/ticket/run.json"]
    );
    let mut bytes = std::fs::read(&a).unwrap();
    let last = bytes.len() - 9;
    bytes[last] ^= 1;
    std::fs::write(&a, bytes).unwrap();
    let o = pack(&[Path::new("--check"), &a]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("sha256"), "a changed archive passed its check");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
