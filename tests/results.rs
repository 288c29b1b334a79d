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
    let want = std::fs::read_to_string(root.join("tests/fixtures/results_runs.md")).unwrap();
    let got = String::from_utf8(out.stdout).unwrap();
    if got != want {
        let line = got.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "results.py's output differs from tests/fixtures/results_runs.md from line {}:\n got: {:?}\nwant: {:?}",
            line + 1,
            got.lines().nth(line),
            want.lines().nth(line)
        );
    }
    // Every section computed something (none failed), and the unfinished runs are named, not counted.
    assert!(!got.contains("failed:"), "{got}");
    for section in ["## (a)", "## (b)", "## (c)", "## (e)", "## (g)", "## (h)", "## TIDE", "## (d)", "## App. B"] {
        assert!(got.contains(section), "{section}");
    }
    assert!(stderr.contains("seed_1/channel: unfinished"), "{stderr}");
}
