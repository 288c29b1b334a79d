//! `ticket sweep` with the local executor and `ticket study`, end to end with the real ORT worker and tract:
//! a 4-task grid runs 2 at a time, a rerun does no work, a task killed mid-run resumes to the same result as
//! an uninterrupted run, a failed task is reported with its log and retried alone, `ticket report SWEEP_DIR`
//! aggregates the replicates, a study expands into such a sweep; and bad specs are refused before anything runs.
mod common;
use common::procs::*;
use common::sweep::*;
use common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sweep_json(args: &[&dyn AsRef<std::ffi::OsStr>]) -> serde_json::Value {
    ticket_json(args)
}

fn states(report: &serde_json::Value) -> Vec<String> {
    report["tasks"].as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap().to_string()).collect()
}

#[test]
fn local_sweep_runs_resumes_retries_and_reports() {
    let dir = tempdir();
    let root = dir.path();
    mini_data(root);
    let spec = mini_spec(root, "mini", 6, "");
    let out = root.join("sweep");

    // --dry-run: the plan, nothing written.
    let dry = sweep_json(&[&"sweep", &spec, &"-o", &out, &"--dry-run"]);
    assert_eq!(states(&dry), vec!["pending"; 4]);
    // The plan says which tasks train a dense model and which start from another's.
    let from: Vec<&serde_json::Value> = dry["tasks"].as_array().unwrap().iter().map(|t| &t["level_0_from"]).collect();
    assert_eq!(from, [&serde_json::Value::Null, &serde_json::json!(0), &serde_json::Value::Null, &serde_json::json!(2)]);
    assert!(!out.exists(), "--dry-run wrote {}", out.display());

    let r = sweep_json(&[&"sweep", &spec, &"-o", &out, &"--local", &"2"]);
    assert_eq!(states(&r), vec!["done"; 4]);
    let tasks = task_dirs(&out);
    // Folder names are the hash of the non-default settings: one per cell, stable across runs.
    let cells: Vec<String> = r["tasks"].as_array().unwrap().iter().map(|t| format!("{}", t["cell"])).collect();
    assert_eq!(cells[0], r#"{"seed":"1","sparsity":"0.5"}"#);
    for t in &tasks {
        let task: serde_json::Value = serde_json::from_slice(&std::fs::read(t.join("task.json")).unwrap()).unwrap();
        assert_eq!(task["settings"]["steps"], "6");
        assert!(t.join("run/summary.json").is_file() && t.join("done.json").is_file());
    }

    // Cells that differ only in how they prune share their seed's dense model: the 80% task of each seed starts
    // from the 50% task's level 0 (`--trained`) instead of training its own, and scores it the same.
    let json = |p: PathBuf| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    for (leader, follower) in [(0, 1), (2, 3)] {
        let (lt, ft) = (&tasks[leader], &tasks[follower]);
        let log = std::fs::read_to_string(ft.join("log.txt")).unwrap();
        assert!(log.contains(&format!("(level 0 from task {leader})")), "task {follower} trained its own level 0: {log}");
        assert!(!std::fs::read_to_string(lt.join("log.txt")).unwrap().contains("level 0 from"), "task {leader} is a leader");
        let trained = lt.join("run/level_0/model.onnx");
        assert_eq!(json(ft.join("run/run.json"))["trained"], trained.to_string_lossy().as_ref());
        let (ls, fs) = (json(lt.join("run/summary.json")), json(ft.join("run/summary.json")));
        assert_eq!(fs["levels"][0]["scores"], ls["levels"][0]["scores"], "the shared dense model scores differently");
        assert_eq!((ls["levels"][0]["steps"].as_u64(), fs["levels"][0]["steps"].as_u64()), (Some(6), Some(0)));
        assert_ne!(fs["levels"][1]["selected_sparsity"], ls["levels"][1]["selected_sparsity"]);
    }

    // A rerun of the same spec finds everything finished and runs nothing.
    let logs: Vec<Vec<u8>> = tasks.iter().map(|t| std::fs::read(t.join("log.txt")).unwrap()).collect();
    let again = sweep_json(&[&"sweep", &spec, &"-o", &out, &"--local", &"2"]);
    assert_eq!(states(&again), vec!["done"; 4]);
    for (t, before) in tasks.iter().zip(&logs) {
        assert_eq!(&std::fs::read(t.join("log.txt")).unwrap(), before, "{} ran again", t.display());
    }

    // The report aggregates the sweep: two groups (the sparsities), each two seeds, numbers from the runs.
    let rep = ticket_json(&[&"report", &out, &"-o", &root.join("report")]);
    let groups = rep["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{rep}");
    assert!(groups.iter().all(|g| g["runs"].as_array().unwrap().len() == 2), "{rep}");
    let md = std::fs::read_to_string(root.join("report/report.md")).unwrap();
    assert!(md.contains("sparsity=0.5") && md.contains("sparsity=0.8"), "{md}");

    // Killed mid-run, the task resumes on the next run and ends where an uninterrupted run of it ends (a second
    // sweep of the same spec is the reference).
    let out_b = root.join("sweep_b");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticket"))
        .args([std::ffi::OsStr::new("sweep"), spec.as_os_str(), "-o".as_ref(), out_b.as_os_str(), "--local".as_ref(), "1".as_ref()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = || task_dirs(&out_b)[0].join("run/level_1/state.json");
    let t0 = Instant::now();
    while !out_b.join("sweep.json").exists() || !first().exists() {
        assert!(child.try_wait().unwrap().is_none(), "sweep ended before task 0's level 1 checkpointed");
        assert!(t0.elapsed() < Duration::from_secs(300), "task 0 never reached level 1");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The sweep alone is killed (kill -9 of its pid, as the OOM killer does), its imp stopped first so that it
    // can end only by dying with the sweep: an imp left running would keep its run locked, and the task's rerun
    // would find the run in use and record the task as failed. (The sweep stays in the test's process group:
    // in a group of its own, its death would orphan the group and the kernel would hang up the stopped imp.)
    let imp = only_child(child.id(), "imp task");
    let workers = children_of(imp);
    signal(imp, "STOP");
    child.kill().unwrap();
    child.wait().unwrap();
    require_gone(imp, "the sweep's imp task outlived the killed sweep");
    for w in workers {
        require_gone(w, "the imp's training worker outlived it");
    }
    let st = sweep_json(&[&"sweep", &"--status", &out_b]);
    assert_eq!(states(&st)[0], "interrupted", "{st}");
    assert_eq!(&states(&st)[1..], &["pending", "pending", "pending"]);
    // Task 0 resumed by the job-array entry point, its index from a Kubernetes Indexed Job's variable.
    let k8s = Command::new(env!("CARGO_BIN_EXE_ticket"))
        .args(["sweep".as_ref(), "--task".as_ref(), out_b.as_os_str()])
        .env("JOB_COMPLETION_INDEX", "0")
        .output()
        .unwrap();
    let task_log = || std::fs::read_to_string(task_dirs(&out_b)[0].join("log.txt")).unwrap_or_default();
    assert!(k8s.status.success(), "{}; task 0's log:\n{}", String::from_utf8_lossy(&k8s.stderr), task_log());
    assert_eq!(states(&sweep_json(&[&"sweep", &"--status", &out_b]))[..2], ["done", "pending"]);
    let done = sweep_json(&[&"sweep", &spec, &"-o", &out_b, &"--local", &"2"]);
    assert_eq!(states(&done), vec!["done"; 4]);
    let log = std::fs::read_to_string(task_dirs(&out_b)[0].join("log.txt")).unwrap();
    assert!(log.contains("# resume on"), "task 0 was not resumed: {log}");
    for (a, b) in task_dirs(&out).iter().zip(task_dirs(&out_b)) {
        assert_same_task(a, &b);
    }

    // A failing task: its training python fails; reported with its log's end (exit 1), retried alone.
    let flaky = root.join("python.sh");
    std::fs::write(&flaky, "#!/bin/sh\necho 'the training python is broken' >&2\nexit 7\n").unwrap();
    std::fs::set_permissions(&flaky, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let real = std::env::var("TICKET_TRAIN_PYTHON").expect("tools/test.sh sets TICKET_TRAIN_PYTHON");
    let spec_f = root.join("flaky.toml");
    std::fs::write(
        &spec_f,
        std::fs::read_to_string(&spec).unwrap().replace(
            "[grid]\nsparsity = [0.5, 0.8]\nseed = [1, 2]",
            &format!("sparsity = 0.5\n[grid]\nseed = [1]\ntrain-python = [{real:?}, {:?}]", flaky.to_string_lossy()),
        ),
    )
    .unwrap();
    let out_f = root.join("sweep_f");
    let failed = ticket(&[&"sweep", &spec_f, &"-o", &out_f, &"--json"]);
    assert_eq!(failed.status.code(), Some(1), "{}", String::from_utf8_lossy(&failed.stderr));
    let r: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(states(&r), ["done", "failed"]);
    let tail = format!("{}", r["tasks"][1]["tail"]);
    assert!(tail.contains("the training python is broken") || tail.contains("exit"), "{tail}");
    let text = String::from_utf8_lossy(&ticket(&[&"sweep", &"--status", &out_f]).stdout).into_owned();
    assert!(text.contains("task 1 failed") && text.contains("  | "), "{text}");
    // A plain rerun leaves it failed; --retry-failed runs it again (now that its python works).
    let logs0 = std::fs::read(task_dirs(&out_f)[0].join("log.txt")).unwrap();
    std::fs::write(&flaky, format!("#!/bin/sh\nexec {real:?} \"$@\"\n")).unwrap();
    assert_eq!(ticket(&[&"sweep", &spec_f, &"-o", &out_f]).status.code(), Some(1));
    let retried = sweep_json(&[&"sweep", &"--retry-failed", &out_f]);
    assert_eq!(states(&retried), ["done", "done"]);
    assert_eq!(std::fs::read(task_dirs(&out_f)[0].join("log.txt")).unwrap(), logs0, "the finished task ran again");
}

#[test]
fn study_expands_into_a_sweep_and_reports() {
    let dir = tempdir();
    let root = dir.path();
    mini_data(root);
    let model = fixture(MODEL);
    let common_args = |study: &'static str| -> Vec<std::ffi::OsString> {
        [
            study.as_ref(),
            model.as_os_str(),
            "--coco".as_ref(),
            root.join("train/annotations.json").as_os_str(),
            "--val-coco".as_ref(),
            root.join("val/annotations.json").as_os_str(),
        ]
        .iter()
        .map(|s| s.to_os_string())
        .collect()
    };
    // Every study's spec parses and checks (printed, not run).
    for study in ["modules", "rounds", "scope", "rewind", "early-bird", "controls", "floor"] {
        let mut args = vec![std::ffi::OsString::from("study")];
        args.extend(common_args(study));
        args.push("--print-spec".into());
        let out = Command::new(env!("CARGO_BIN_EXE_ticket")).args(&args).output().unwrap();
        assert!(out.status.success(), "{study}: {}", String::from_utf8_lossy(&out.stderr));
        let spec = String::from_utf8_lossy(&out.stdout);
        assert!(spec.contains("[grid]") && spec.contains("seed = [1, 2, 3]"), "{study}: {spec}");
        // The controls' and the floor ablation's variants are cells.
        match study {
            "controls" => assert!(spec.contains("rewind = \"random\"") && spec.contains("mask = \"random\""), "{spec}"),
            "floor" => assert!(spec.contains("floor-on = [\"rpn.head.conv\"]") && spec.contains("floor-on = [\"box_head.fc6\"]"), "{spec}"),
            _ => {}
        }
    }
    // The modules study adds modules from the input upwards (Table 3), with the mask head last.
    let mut args = vec![std::ffi::OsString::from("study")];
    args.extend(common_args("modules"));
    args.push("--print-spec".into());
    let spec = String::from_utf8(Command::new(env!("CARGO_BIN_EXE_ticket")).args(&args).output().unwrap().stdout).unwrap();
    assert!(spec.contains(r#"modules = [["base"], ["base", "fpn"], ["base", "fpn", "rpn"], ["base", "fpn", "rpn", "box_head", "box_predictor"], ["base", "fpn", "rpn", "box_head", "box_predictor", "mask_head"]]"#), "{spec}");

    // The rewind study at 6 steps: init, step 1, step 3 (the percentages that round to the same step merge), none.
    let study_dir = root.join("rewind");
    let mut args = vec![std::ffi::OsString::from("study")];
    args.extend(common_args("rewind"));
    for a in [
        "--seeds",
        "1",
        "--steps",
        "6",
        "--set",
        "warmup=1",
        "--set",
        "rois=32",
        "--set",
        "threads=1",
        "--set",
        "max-map-drop=1",
        "--local",
        "2",
        "--json",
        "-o",
    ] {
        args.push(a.into());
    }
    args.push(study_dir.clone().into());
    let out = Command::new(env!("CARGO_BIN_EXE_ticket")).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["tasks"], 4);
    let labels: Vec<String> = r["report"]["groups"].as_array().unwrap().iter().map(|g| g["label"].as_str().unwrap().to_string()).collect();
    assert_eq!(labels, ["rewind=init", "rewind=1", "rewind=3", "rewind=none"]);
    assert!(study_dir.join("report/report.md").is_file() && study_dir.join("study.toml").is_file());
    // The written spec is a sweep spec: `ticket sweep` on it finds the study's tasks finished.
    let st = sweep_json(&[&"sweep", &study_dir.join("study.toml"), &"-o", &study_dir.join("sweep"), &"--dry-run"]);
    assert_eq!(states(&st), vec!["done"; 4]);
}

#[test]
fn bad_specs_are_refused_before_anything_runs() {
    let dir = tempdir();
    let root = dir.path();
    mini_data(root);
    let spec = mini_spec(root, "mini", 6, "");
    let text = std::fs::read_to_string(&spec).unwrap();
    let variant = |name: &str, from: &str, to: &str| {
        let p = root.join(name);
        assert!(text.contains(from), "{from}");
        std::fs::write(&p, text.replace(from, to)).unwrap();
        p
    };
    let out = root.join("out");
    // Each spec variant, and what its one-line error (exit 2) must say.
    let cases: [(&str, &str, &str, &[&str]); 6] = [
        ("unknown.toml", "rois = 32", "roiz = 32", &["unknown.toml", "unknown setting `roiz`"]),
        ("empty.toml", "seed = [1, 2]", "seed = []", &["empty list"]),
        ("nogrid.toml", "[grid]\nsparsity = [0.5, 0.8]\nseed = [1, 2]\n", "", &["[grid] is empty"]),
        ("badvalue.toml", "steps = 6", "steps = \"six\"", &["task 0", "--steps"]),
        (
            "cells.toml",
            "seed = [1, 2]\n",
            "seed = [1, 2]\n[[cells]]\nsteps = 3\n",
            &["[[cells]] entry 1: steps is also in [fixed] or [grid]"],
        ),
        ("badrewind.toml", "threads = 1", "threads = 1\nrewind = 50", &["--rewind 50"]),
    ];
    for (name, from, to, says) in cases {
        let err = run_err(&[&"sweep", &variant(name, from, to), &"-o", &out]);
        assert!(says.iter().all(|s| err.contains(s)), "{name}: {err}");
    }
    assert!(!out.exists(), "a refused spec wrote {}", out.display());

    // A SWEEP_DIR made from another spec is refused, and left as it was. The first spec's folder is made
    // without training: its training python is missing, so every task fails at once (exit 1).
    let other = variant("other.toml", "seed = [1, 2]", "seed = [1, 3]");
    let first =
        variant("first.toml", "threads = 1", &format!("threads = 1\ntrain-python = {:?}", root.join("missing-python").to_string_lossy()));
    let r = ticket(&[&"sweep", &first, &"-o", &out]);
    assert_eq!(r.status.code(), Some(1), "{}", String::from_utf8_lossy(&r.stderr));
    let before = std::fs::read(out.join("sweep.json")).unwrap();
    let err = run_err(&[&"sweep", &other, &"-o", &out]);
    assert!(err.contains("made from another spec"), "{err}");
    assert_eq!(std::fs::read(out.join("sweep.json")).unwrap(), before);

    // --slurm without sbatch on PATH: exit 3, nothing written or submitted.
    let empty_path = root.join("empty-path");
    std::fs::create_dir_all(&empty_path).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ticket"))
        .args(["sweep".as_ref(), spec.as_os_str(), "-o".as_ref(), root.join("slurm").as_os_str(), "--slurm".as_ref()])
        .env("PATH", &empty_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("sbatch not found on PATH") && err.lines().count() == 1, "{err}");
    assert!(!root.join("slurm").exists());

    // Unknown study; report over a sweep with nothing finished; status of a folder that is no sweep.
    let err = run_err(&[&"study", &"lottery", &fixture(MODEL), &"--print-spec"]);
    assert!(err.contains("no study named `lottery`") && err.contains("rounds"), "{err}");
    let err = run_err(&[&"report", &out, &"-o", &root.join("rep")]);
    assert!(err.contains("no task of this sweep has finished"), "{err}");
    let err = run_err(&[&"sweep", &"--status", &root.join("train")]);
    assert!(err.contains("not a sweep folder"), "{err}");
}

/// `ticket study transfer` end to end in miniature: the classifier is pretrained and pruned, its body, ticket and
/// mask are moved onto the detector (DIR/prep), and the four arms — direct pruning of the backbone, late resetting,
/// transfer ticket, mask transfer — run as a sweep of cells and are reported as four groups. A second run finds
/// everything done. A classification set smaller than one batch is bad input (exit 2).
#[test]
fn transfer_study_prepares_runs_and_reports() {
    let dir = tempdir();
    let root = dir.path();
    mini_data(root);
    for (name, n, seed) in [("ctrain", "8", "1"), ("cval", "4", "2")] {
        let out =
            ticket(&[&"data", &"synth", &"--classify", &"--out", &root.join(name), &"--images", &n, &"--seed", &seed, &"--size", &"32"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let study = root.join("transfer");
    let args = |batch: &'static str| -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = vec![
            "study".into(),
            "transfer".into(),
            fixture(MODEL).into(),
            "--classifier".into(),
            fixture("train/resnet18_synth.onnx").into(),
        ];
        v.extend(["--classify".into(), root.join("ctrain").into(), "--val-classify".into(), root.join("cval").into()]);
        for a in
            ["--cls-steps", "4", "--cls-ticket-steps", "2", "--cls-batch", batch, "--seeds", "1", "--steps", "6", "--local", "2", "--json"]
        {
            v.push(a.into());
        }
        for a in ["warmup=1", "rois=32", "threads=1", "max-map-drop=1", "lr=0.001"] {
            v.extend(["--set".into(), a.into()]);
        }
        v.extend([
            "--coco".into(),
            root.join("train/annotations.json").into(),
            "--val-coco".into(),
            root.join("val/annotations.json").into(),
        ]);
        v.extend(["-o".into(), study.clone().into()]);
        v
    };
    let bad = Command::new(env!("CARGO_BIN_EXE_ticket")).args(args("32")).output().unwrap();
    let err = String::from_utf8_lossy(&bad.stderr).trim().to_string();
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("classifier pretraining") && err.contains("fewer than one batch") && err.lines().count() == 1, "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_ticket")).args(args("4")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["tasks"], 4);
    let labels: Vec<String> = r["report"]["groups"].as_array().unwrap().iter().map(|g| g["label"].as_str().unwrap().to_string()).collect();
    assert_eq!(labels.len(), 4, "{labels:?}");
    assert!(labels[1].contains("rewind=1") && labels[2].contains("det_tt.onnx") && labels[3].contains("det_mt.onnx"), "{labels:?}");
    let prep = study.join("prep/seed_1");
    for f in [
        "cls_pretrain/model.onnx",
        "cls_ticket/summary.json",
        "det_pretrained.onnx",
        "det_tt.onnx",
        "det_tt.safetensors",
        "det_mt.onnx",
        "det_mt.safetensors",
    ] {
        assert!(prep.join(f).is_file(), "{f}");
    }
    // The transfer ticket's detector carries the classifier ticket's zeros in its body.
    let masks = ticket::model::Masks::load(&prep.join("det_tt.safetensors")).unwrap();
    assert!(masks.map.keys().all(|k| k.starts_with("backbone.body.")) && !masks.map.is_empty());
    // Everything is done: a second run prepares and trains nothing.
    let log = std::fs::read(prep.join("log.txt")).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_ticket")).args(args("4")).output().unwrap();
    assert!(again.status.success());
    assert_eq!(std::fs::read(prep.join("log.txt")).unwrap(), log, "the preparation ran again");
}

/// A sweep cell's settings go through the library's own check, which must know every option of `ticket imp`
/// (clap only names them) and reach the run `ticket imp` itself would start from the same options.
#[test]
fn sweep_cells_are_checked_by_the_library_as_ticket_imp_builds_its_run() {
    use std::collections::BTreeMap;
    use ticket::lottery::imp::options::check_settings;
    let table = ticket::cli::ImpArgs::option_table();
    let names: Vec<&str> = table.names().collect();
    assert!(names.contains(&"sparsity") && names.contains(&"val-coco") && names.contains(&"early-stop-eb"), "{names:?}");
    for name in names {
        if ["output", "resume"].contains(&name) {
            continue;
        }
        let value = if name == "early-stop-eb" { "true" } else { "1" };
        let err = check_settings(&BTreeMap::from([(name.to_string(), value.to_string())])).unwrap_err();
        assert!(!err.contains("is not a setting"), "{name}: {err}");
    }

    let dir = tempdir();
    let root = dir.path();
    mini_data(root);
    let model = fixture(MODEL);
    let train = root.join("train/annotations.json");
    let val = root.join("val/annotations.json");
    let settings = [
        ("coco", train.to_str().unwrap()),
        ("val-coco", val.to_str().unwrap()),
        ("sparsity", "0.8"),
        ("rounds", "2"),
        ("steps", "6"),
        ("decay-at", "3,5"),
        ("early-bird", "0.25,0.5"),
        ("rewind", "2"),
        ("scope", "layer"),
        ("rois", "32"),
        ("threads", "1"),
    ];
    let mut map: BTreeMap<String, String> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    map.insert("model".into(), model.to_string_lossy().into_owned());
    let from_cell = check_settings(&map).unwrap();
    // The same options through clap, as `ticket imp` parses its command line.
    use clap::{Args as _, FromArgMatches};
    let mut argv = vec!["imp".to_string(), model.to_string_lossy().into_owned()];
    for (k, v) in settings {
        argv.extend([format!("--{k}"), v.to_string()]);
    }
    let m = ticket::cli::ImpArgs::augment_args(clap::Command::new("imp")).try_get_matches_from(argv).unwrap();
    let args = ticket::cli::ImpArgs::from_arg_matches(&m).unwrap();
    assert_eq!(from_cell, args.config(&model).unwrap());
    assert_eq!(from_cell.train.decay_at, [3, 5]);
    assert_eq!(from_cell.scope, ticket::prune::Scope::Layer);

    // What clap refused by itself before is refused by the library.
    map.insert("eb-every".into(), "2".into());
    assert!(check_settings(&map).unwrap_err().contains("--early-stop-eb"));
    map.remove("eb-every");
    map.insert("val-voc".into(), root.to_string_lossy().into_owned());
    assert!(check_settings(&map).unwrap_err().contains("--val-coco VAL.json, --val-voc DIR, --val-classify DIR or --val-images DIR alone"));
}
