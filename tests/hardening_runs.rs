//! Regression tests for the run-folder, sweep and report defects of issue 17, one named after each: every bad
//! setting or tampered file fails with exit 2 (3 where the environment is at fault) and one line, before
//! anything is written, with no input changed and no saved work lost.
//!
//! A finished miniature IMP run (the narrow synthetic Mask R-CNN, one level, two steps) is made once and copied
//! by the tests that tamper with a run folder; the other cases are refused before any training starts.
mod common;
use common::sweep::{mini_data, MODEL};
use common::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Runs ticket with `--json` and a deadline (a hang fails the test instead of blocking it).
fn run(args: &[&dyn AsRef<OsStr>], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticket"));
    cmd.args(args.iter().map(|a| a.as_ref())).arg("--json");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("ticket {:?} hung (killed after 120 s)", shown(args));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).trim().to_string())
}

fn shown(args: &[&dyn AsRef<OsStr>]) -> Vec<String> {
    args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect()
}

/// Asserts exit `code` with a one-line error containing every `expect`; returns it.
fn refused_with(code: i32, args: &[&dyn AsRef<OsStr>], expect: &[&str]) -> String {
    let (got, err) = run(args, &[]);
    assert_eq!(got, Some(code), "{:?}: exit {got:?}, stderr: {err}", shown(args));
    assert_eq!(err.lines().count(), 1, "one-line error expected: {err}");
    for e in expect {
        assert!(err.contains(e), "'{e}' not in: {err}");
    }
    err
}

fn refused(args: &[&dyn AsRef<OsStr>], expect: &[&str]) -> String {
    refused_with(2, args, expect)
}

fn copy_dir(from: &Path, to: &Path) {
    for (rel, bytes) in snapshot(from) {
        std::fs::create_dir_all(to.join(&rel).parent().unwrap()).unwrap();
        std::fs::write(to.join(&rel), bytes).unwrap();
    }
}

/// Synthetic train (4 images) and val (2 images) sets, and a finished one-level IMP run on them.
struct Finished {
    root: PathBuf,
    run: PathBuf,
}

fn finished() -> &'static Finished {
    static F: OnceLock<Finished> = OnceLock::new();
    F.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hardening_runs");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        mini_data(&root);
        let run = root.join("run");
        ticket_json(&[
            &"imp",
            &fixture(MODEL),
            &"--coco",
            &root.join("train/annotations.json"),
            &"--val-coco",
            &root.join("val/annotations.json"),
            &"--sparsity",
            &"0.8",
            &"--steps",
            &"2",
            &"--warmup",
            &"1",
            &"--rois",
            &"32",
            &"--threads",
            &"1",
            &"--max-map-drop",
            &"1",
            &"-o",
            &run,
        ]);
        Finished { root, run }
    })
}

/// A copy of the finished run in a fresh temporary folder.
fn run_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let run = dir.path().join("run");
    copy_dir(&finished().run, &run);
    (dir, run)
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// `ticket imp` on the mini data with `extra` settings, into `out`.
fn imp_args(out: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let f = finished();
    let mut v: Vec<std::ffi::OsString> =
        vec!["imp".into(), fixture(MODEL).into(), "--coco".into(), f.root.join("train/annotations.json").into(), "--val-coco".into()];
    v.push(f.root.join("val/annotations.json").into());
    v.extend(["--sparsity", "0.8", "--steps", "2", "--rois", "32", "--threads", "1"].iter().map(Into::into));
    v.extend(extra.iter().map(Into::into));
    v.extend(["-o".into(), out.as_os_str().to_owned()]);
    v
}

fn refs(v: &[std::ffi::OsString]) -> Vec<&dyn AsRef<OsStr>> {
    v.iter().map(|a| a as &dyn AsRef<OsStr>).collect()
}

// ---------------------------------------------------------------- 1. rounds beyond any run's size

#[test]
fn huge_rounds_are_refused_before_run_json_is_written() {
    let dir = tempdir();
    let out = dir.path().join("run");
    for rounds in ["1000000000000000", "100000000000000000"] {
        refused(&refs(&imp_args(&out, &["--rounds", rounds])), &["--rounds", rounds, "100"]);
        assert!(!out.exists(), "a refused run wrote {}", out.display());
    }
    // The same number in a run.json: resume and report refuse it, and change nothing.
    let (_d, run) = run_copy();
    edit_json(&run.join("run.json"), |v| v["rounds"] = serde_json::json!(1_000_000_000_000_000u64));
    let before = snapshot(&run);
    refused(&[&"imp", &"--resume", &run], &["run.json", "--rounds"]);
    let rep = dir.path().join("rep");
    refused(&[&"report", &run, &"-o", &rep], &["run.json", "--rounds"]);
    assert!(snapshot(&run) == before && !rep.exists());
}

// ---------------------------------------------------------------- 2. extreme AP values in a report

#[test]
fn report_with_ap_of_plus_and_minus_1e308_ends() {
    let (dir, run) = run_copy();
    edit_json(&run.join("level_0/metrics.json"), |v| v["row"]["scores"]["bbox"]["ap"] = serde_json::json!(-1e308));
    edit_json(&run.join("level_1/metrics.json"), |v| v["row"]["scores"]["bbox"]["ap"] = serde_json::json!(1e308));
    let rep = dir.path().join("rep");
    refused(&[&"report", &run, &"-o", &rep], &["level_0/metrics.json", "scores.bbox.ap", "1e308"]);
    assert!(!rep.exists());

    // The plot itself keeps a finite range whatever its values (a deadline: it used to spin).
    use ticket::report::chart::{LinePlot, Plot, Series};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let series = vec![Series { label: "ticket".into(), points: vec![(0.0, -1e308, 0.0), (50.0, 1e308, 1e308), (80.0, f64::MAX, 0.0)] }];
        let plot = Plot::Line(LinePlot {
            title: "AP".into(),
            x_label: "sparsity".into(),
            y_label: "AP".into(),
            series,
            bands: vec![],
            markers: true,
            x_range: None,
            y_range: None,
        });
        let _ = tx.send(plot.render("extreme").map(|(png, svg)| png.len() + svg.len()));
    });
    let bytes = rx.recv_timeout(Duration::from_secs(60)).expect("rendering a plot of ±1e308 did not finish in 60 s").unwrap();
    assert!(bytes > 0);
}

// ---------------------------------------------------------------- 7. a grid of a million cells

fn spec(root: &Path, name: &str, grid: &str, fixed_extra: &str) -> PathBuf {
    let f = finished();
    let text = format!(
        "name = \"{name}\"\n[fixed]\nmodel = {:?}\ncoco = {:?}\nval-coco = {:?}\nsteps = 2\nwarmup = 1\nrois = 32\nthreads = 1\nmax-map-drop = 1\n{fixed_extra}\n[grid]\n{grid}\n",
        fixture(MODEL).to_string_lossy(),
        f.root.join("train/annotations.json").to_string_lossy(),
        f.root.join("val/annotations.json").to_string_lossy(),
    );
    let p = root.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn values(n: usize, f: impl Fn(usize) -> String) -> String {
    format!("[{}]", (0..n).map(f).collect::<Vec<_>>().join(", "))
}

#[test]
fn sweep_grid_of_a_million_cells_is_refused_before_it_is_expanded() {
    let dir = tempdir();
    let out = dir.path().join("sweep");
    let sparsity = values(1000, |i| format!("{}", i as f64 / 1000.0));
    let seed = values(1000, |i| i.to_string());
    let lr = values(1000, |i| format!("{}", (i + 1) as f64 / 1e4));
    let square = spec(dir.path(), "square", &format!("sparsity = {sparsity}\nseed = {seed}"), "");
    let cube = spec(dir.path(), "cube", &format!("sparsity = {sparsity}\nseed = {seed}\nlr = {lr}"), "");
    let t0 = Instant::now();
    refused(&[&"sweep", &square, &"-o", &out], &["1000000 tasks", "--max-tasks"]);
    refused(&[&"sweep", &cube, &"-o", &out, &"--dry-run"], &["1000000000 tasks", "--max-tasks"]);
    assert!(t0.elapsed() < Duration::from_secs(30), "refused only after {:?}", t0.elapsed());
    // The cap is the user's to raise.
    let small = spec(dir.path(), "small", "sparsity = [0.5, 0.8]\nseed = [1, 2, 3]", "");
    refused(&[&"sweep", &small, &"-o", &out, &"--max-tasks", &"5"], &["6 tasks", "limit of 5"]);
    let (code, err) = run(&[&"sweep", &small, &"-o", &out, &"--max-tasks", &"6", &"--dry-run"], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.exists(), "a refused or dry-run sweep wrote {}", out.display());
}

// ---------------------------------------------------------------- 10. --max-map-drop inf

#[test]
fn max_map_drop_inf_is_refused_not_saved_as_null() {
    let dir = tempdir();
    let out = dir.path().join("run");
    for v in ["inf", "NaN", "-inf"] {
        let flag = format!("--max-map-drop={v}");
        refused(&refs(&imp_args(&out, &[flag.as_str()])), &["--max-map-drop"]);
        assert!(!out.exists());
    }
    // A run.json that holds null there (as an older ticket wrote inf) is refused in one line, unchanged.
    let (_d, run) = run_copy();
    edit_json(&run.join("run.json"), |v| v["max_map_drop"] = serde_json::Value::Null);
    let before = snapshot(&run);
    refused(&[&"imp", &"--resume", &run], &["run.json"]);
    assert!(snapshot(&run) == before);
}

// ---------------------------------------------------------------- 11. bad training settings found late

#[test]
fn bad_training_settings_leave_no_run_folder_behind() {
    let dir = tempdir();
    let out = dir.path().join("run");
    let f = finished();
    let train_ann = f.root.join("train/annotations.json");
    let cases: [(&[&str], &str); 6] = [
        (&["--batch", "5"], "fewer than one batch of 5"),
        (&["--batch", "0"], "--batch 0"),
        (&["--flip", "nan"], "--flip"),
        (&["--canvas", "0"], "--canvas 0"),
        (&["--trainable-layers", "99"], "--trainable-layers 99"),
        (&["--canvas", "100"], "multiple of 32"),
    ];
    for (extra, says) in cases {
        refused(&refs(&imp_args(&out, extra)), &[says]);
        assert!(!out.exists(), "imp {extra:?} wrote {}", out.display());
        let mut t: Vec<std::ffi::OsString> =
            vec!["train".into(), fixture(MODEL).into(), "--coco".into(), train_ann.clone().into(), "--steps".into(), "2".into()];
        t.extend(extra.iter().map(Into::into));
        t.extend(["-o".into(), out.clone().into()]);
        refused(&refs(&t), &[says]);
        assert!(!out.exists(), "train {extra:?} wrote {}", out.display());
    }
    // A training Python that is missing, or that does not start: the environment's fault (exit 3), found before
    // the folder is made; an existing empty folder stays empty (no .lock, no checkpoints/).
    std::fs::create_dir_all(&out).unwrap();
    for python in [dir.path().join("no-python"), PathBuf::from("/bin/false")] {
        let py = python.to_string_lossy().into_owned();
        refused_with(3, &refs(&imp_args(&out, &["--train-python", py.as_str()])), &[py.as_str()]);
        refused_with(
            3,
            &[&"train", &fixture(MODEL), &"--coco", &train_ann, &"--steps", &"2", &"--train-python", &python, &"-o", &out],
            &[py.as_str()],
        );
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "a failed start left files in {}", out.display());
    }
    // The folder is then a new run's like any empty folder; `sweep --local 0` makes no sweep folder.
    let sweep_out = dir.path().join("sweep");
    let s = spec(dir.path(), "local0", "sparsity = [0.5, 0.8]", "");
    refused(&[&"sweep", &s, &"-o", &sweep_out, &"--local", &"0"], &["--local"]);
    assert!(!sweep_out.exists());
}

// ---------------------------------------------------------------- 12. a sweep whose data is missing

#[test]
fn sweep_precheck_refuses_missing_data() {
    let dir = tempdir();
    let out = dir.path().join("sweep");
    let missing = dir.path().join("nowhere/val.json");
    let s = spec(dir.path(), "nodata", "sparsity = [0.5, 0.8]", "");
    let text = std::fs::read_to_string(&s).unwrap();
    let val = finished().root.join("val/annotations.json").to_string_lossy().into_owned();
    std::fs::write(&s, text.replace(&val, &missing.to_string_lossy())).unwrap();
    let m = missing.to_string_lossy().into_owned();
    refused(&[&"sweep", &s, &"-o", &out, &"--dry-run"], &["task 0", &m]);
    refused(&[&"sweep", &s, &"-o", &out], &["task 0", &m]);
    assert!(!out.exists(), "a refused sweep wrote {}", out.display());
}

// ---------------------------------------------------------------- 13. a tampered sweep.json

/// A sweep folder whose two tasks failed at once (their training Python does not exist): made in a second.
fn failed_sweep(root: &Path) -> PathBuf {
    let out = root.join("sweep");
    let py = format!("train-python = {:?}", root.join("no-python").to_string_lossy());
    let s = spec(root, "failing", "sparsity = [0.5, 0.8]", &py);
    let (code, err) = run(&[&"sweep", &s, &"-o", &out], &[]);
    assert_eq!(code, Some(1), "{err}");
    out
}

#[test]
fn tampered_sweep_json_cannot_write_outside_the_sweep_folder() {
    let dir = tempdir();
    let sweep = failed_sweep(dir.path());
    let plan = sweep.join("sweep.json");
    let original = std::fs::read(&plan).unwrap();
    let outside = dir.path().join("x");
    for hash in ["../../x", "/tmp/x", "0000000000000000"] {
        edit_json(&plan, |v| v["tasks"][0]["hash"] = serde_json::json!(hash));
        let before = snapshot(&sweep);
        refused(&[&"sweep", &"--task", &sweep, &"--index", &"0"], &["sweep.json", "task 0"]);
        refused(&[&"sweep", &"--retry-failed", &sweep, &"--local", &"1"], &["sweep.json", "task 0"]);
        refused(&[&"sweep", &"--status", &sweep], &["sweep.json", "task 0"]);
        refused(&[&"report", &sweep, &"-o", &dir.path().join("rep")], &["sweep.json", "task 0"]);
        assert!(snapshot(&sweep) == before && !outside.exists() && !dir.path().join("rep").exists());
        std::fs::write(&plan, &original).unwrap();
    }
    // Arguments the task's settings do not name (another training Python, an output folder) are not run.
    for extra in [["--train-python", "/bin/sh"], ["--output", "/tmp/elsewhere"]] {
        edit_json(&plan, |v| v["tasks"][1]["argv"].as_array_mut().unwrap().extend(extra.iter().map(|a| serde_json::json!(a))));
        refused(&[&"sweep", &"--task", &sweep, &"--index", &"1"], &["sweep.json", "task 1"]);
        std::fs::write(&plan, &original).unwrap();
    }
    // A name with a line break would be a line of the sbatch script.
    edit_json(&plan, |v| v["name"] = serde_json::json!("x\n#SBATCH --wrap=evil"));
    refused(&[&"sweep", &"--retry-failed", &sweep, &"--slurm", &"--dry-run"], &["sweep.json", "name"]);
    std::fs::write(&plan, &original).unwrap();
    // A task folder that is a link elsewhere is not written through.
    let v: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let task = sweep.join("tasks").join(v["tasks"][0]["hash"].as_str().unwrap());
    let moved = dir.path().join("moved");
    std::fs::rename(&task, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &task).unwrap();
    std::fs::remove_file(moved.join("failed.json")).unwrap();
    let before = snapshot(&moved);
    refused(&[&"sweep", &"--task", &sweep, &"--index", &"0"], &["symbolic link"]);
    assert!(snapshot(&moved) == before);
}

#[test]
fn non_numeric_slurm_array_task_id_does_not_hide_job_completion_index() {
    let dir = tempdir();
    let sweep = failed_sweep(dir.path());
    // Task 0 is failed: the runner reports it (exit 1, naming task 0) without running it again.
    let (code, err) = run(&[&"sweep", &"--task", &sweep], &[("SLURM_ARRAY_TASK_ID", "abc"), ("JOB_COMPLETION_INDEX", "0")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("task 0 failed"), "{err}");
    let (code, err) = run(&[&"sweep", &"--task", &sweep], &[("SLURM_ARRAY_TASK_ID", "abc")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("SLURM_ARRAY_TASK_ID=\"abc\""), "{err}");
}

// ---------------------------------------------------------------- 14. edits to run.json on resume

#[test]
fn run_json_edits_are_refused_on_resume() {
    let cases: [(&str, serde_json::Value, &str); 4] = [
        ("sparsity", serde_json::json!(0.5), "`sparsity`"),
        ("rounds", serde_json::json!(2), "`rounds`"),
        ("early_bird", serde_json::json!([0.5]), "`early_bird`"),
        ("created_with", serde_json::Value::Null, "created_with"),
    ];
    for (key, value, says) in cases {
        let (_d, run) = run_copy();
        edit_json(&run.join("run.json"), |v| {
            if value.is_null() {
                v.as_object_mut().unwrap().remove(key);
            } else {
                v[key] = value.clone();
            }
        });
        let before = snapshot(&run);
        refused(&[&"imp", &"--resume", &run], &["run.json", says]);
        assert!(snapshot(&run) == before, "a refused resume ({key}) changed the run (ticket.onnx, summary.json)");
    }
    // A nested setting is named too.
    let (_d, run) = run_copy();
    edit_json(&run.join("run.json"), |v| v["train"]["lr"] = serde_json::json!(0.5));
    refused(&[&"imp", &"--resume", &run], &["`train.lr`"]);

    // A level's own training settings, edited while the level is unfinished.
    let (_d, run) = run_copy();
    for f in ["metrics.json", "model.onnx"] {
        std::fs::remove_file(run.join("level_1").join(f)).unwrap();
    }
    edit_json(&run.join("level_1/run.json"), |v| v["flip"] = serde_json::json!(0.0));
    let before = snapshot(&run);
    refused(&[&"imp", &"--resume", &run], &["level_1/run.json", "`flip`"]);
    assert!(snapshot(&run) == before);

    // A level folder that is a link elsewhere.
    let (d, run) = run_copy();
    let elsewhere = d.path().join("elsewhere");
    std::fs::rename(run.join("level_1"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, run.join("level_1")).unwrap();
    std::fs::remove_file(elsewhere.join("metrics.json")).unwrap();
    let before = snapshot(&elsewhere);
    refused(&[&"imp", &"--resume", &run], &["level_1", "symbolic link"]);
    assert!(snapshot(&elsewhere) == before);

    // Threads change where a run executes, not what it computes: a resume with another count is accepted.
    let (_d, run) = run_copy();
    edit_json(&run.join("run.json"), |v| v["threads"] = serde_json::json!(2));
    let (code, err) = self::run(&[&"imp", &"--resume", &run], &[]);
    assert_eq!(code, Some(0), "{err}");
}

// ---------------------------------------------------------------- 15. report inputs and output

#[test]
fn report_refuses_its_input_as_output_and_counts_a_run_once() {
    let (dir, run) = run_copy();
    let before = snapshot(&run);
    refused(&[&"report", &run, &"-o", &run], &["input"]);
    refused(&[&"report", &run, &"-o", &run.join("level_1/report")], &["input"]);
    assert!(snapshot(&run) == before, "a refused report wrote into its input");

    // `run run ./run/` is one run, not three replicates.
    let rep = dir.path().join("rep");
    let dotted = dir.path().join(".").join("run").join("");
    let r = ticket_json(&[&"report", &run, &run, &dotted, &"-o", &rep]);
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{r}");
    assert_eq!(groups[0]["runs"].as_array().unwrap().len(), 1, "{r}");
}

// ---------------------------------------------------------------- minor

#[test]
fn early_bird_masks_of_close_fractions_have_their_own_files() {
    let l0 = Path::new("level_0");
    let names: Vec<PathBuf> = [0.0005, 0.0014, 0.001, 0.5].iter().map(|f| ticket::lottery::early_bird::mask_file(l0, *f)).collect();
    for (i, a) in names.iter().enumerate() {
        assert!(names[i + 1..].iter().all(|b| a != b), "{a:?} is shared: {names:?}");
    }
}

#[test]
fn newline_in_partition_or_time_is_refused() {
    let dir = tempdir();
    let out = dir.path().join("sweep");
    let s = spec(dir.path(), "slurm", "sparsity = [0.5, 0.8]", "");
    refused(
        &[&"sweep", &s, &"-o", &out, &"--slurm", &"--dry-run", &"--partition", &"gpu\n#SBATCH --wrap=evil"],
        &["--partition", "one word"],
    );
    refused(&[&"sweep", &s, &"-o", &out, &"--slurm", &"--dry-run", &"--time", &"1:00:00\nrm -rf ~"], &["--time", "one word"]);
    assert!(!out.exists());
}

#[test]
fn round_to_beyond_the_cap_is_refused() {
    let dir = tempdir();
    let out = dir.path().join("out.onnx");
    refused(
        &[
            &"prune",
            &fixture("resnet18.onnx"),
            &"--structure",
            &"channel",
            &"--sparsity",
            &"0.5",
            &"--round-to",
            &"1000000000",
            &"-o",
            &out,
        ],
        &["--round-to 1000000000", "512"],
    );
    assert!(!out.exists());
    let run = dir.path().join("run");
    refused(&refs(&imp_args(&run, &["--structure", "channel", "--round-to", "1000000000"])), &["--round-to 1000000000"]);
    assert!(!run.exists());
}

#[test]
fn eb_every_0_is_refused() {
    let dir = tempdir();
    let run = dir.path().join("run");
    refused(&refs(&imp_args(&run, &["--early-stop-eb", "--eb-every", "0"])), &["--eb-every 0"]);
    assert!(!run.exists());
}
