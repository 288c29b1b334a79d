//! `ticket setup` and `ticket doctor`: where the binary finds its Python environments (variables, then the data
//! folder, then the checkout's venvs), what it says when one is missing (exit 3, one line naming `ticket
//! setup`), and setup's faults — a data folder it cannot write, a second setup while one runs, a pip that
//! fails, a setup killed mid-step — each leaving nothing half-made or running. No test installs anything: the
//! data folders here hold fake venvs (a python that is a shell script, an empty libonnxruntime file), and pip is
//! pointed at an index that does not answer.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The variables that would short-cut discovery.
const VARS: [&str; 5] = ["ORT_DYLIB_PATH", "TICKET_PYTHON", "TICKET_TRAIN_PYTHON", "TICKET_TORCH_PYTHON", "XDG_DATA_HOME"];

/// Runs ticket with TICKET_HOME=`home`, none of [`VARS`] but those given, in `cwd` (outside the checkout, so its
/// .venv folders are not found).
fn ticket_in(cwd: &Path, home: &Path, vars: &[(&str, &Path)], args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticket"));
    for v in VARS {
        cmd.env_remove(v);
    }
    cmd.env("TICKET_HOME", home).current_dir(cwd);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.output().expect("run ticket")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// A venv layout with a python that fails at once, as `ticket setup` leaves it finished (requirements
/// recorded); the ONNX Runtime venv (`venv`, or a checkout's `.venv`) also gets a libonnxruntime file (empty: it
/// will not load).
fn fake_venv(data: &Path, name: &str, requirements: &str) -> PathBuf {
    let dir = data.join(name);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let python = dir.join("bin/python");
    std::fs::write(&python, "#!/bin/sh\necho 'not a real python' >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join(".requirements"),
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools").join(requirements)).unwrap(),
    )
    .unwrap();
    if name.ends_with("venv") {
        let capi = dir.join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime.so.1.19.2"), b"").unwrap();
    }
    python
}

fn fake_data_dir(data: &Path) {
    fake_venv(data, "venv", "requirements.txt");
    fake_venv(data, "venv-train", "requirements-train.txt");
}

fn doctor(cwd: &Path, home: &Path, vars: &[(&str, &Path)]) -> (Option<i32>, serde_json::Value) {
    let o = ticket_in(cwd, home, vars, &[&"doctor", &"--json"]);
    let report = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}): {}", stderr(&o)));
    (o.status.code(), report)
}

#[test]
fn doctor_finds_the_environments_in_the_data_folder() {
    let t = tempdir();
    let data = t.path().join("data");
    fake_data_dir(&data);
    let (code, r) = doctor(t.path(), &data, &[]);
    assert_eq!(r["data_dir"], data.to_str().unwrap());
    assert_eq!(
        r["ort"]["found"]["path"],
        data.join("venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.19.2").to_str().unwrap()
    );
    assert_eq!(r["ort"]["found"]["source"], "data_dir");
    assert_eq!(r["ort_version"], "1.19.2");
    assert_eq!(r["train"]["found"]["path"], data.join("venv-train/bin/python").to_str().unwrap());
    assert_eq!(r["train"]["found"]["source"], "data_dir");
    // Found but not working (an empty library, a python that exits): said, one line each; the check fails (1).
    assert_eq!(r["ort"]["ok"], false);
    assert_eq!(r["train"]["ok"], false);
    assert_eq!(r["ort"]["error"].as_str().unwrap().lines().count(), 1);
    assert_eq!(r["cuda"], false);
    assert!(r["cores"].as_u64().unwrap() >= 1);
    assert!(!r["simd"].as_str().unwrap().is_empty());
    assert_eq!(code, Some(1));
}

#[test]
fn variables_win_over_the_data_folder() {
    let t = tempdir();
    let data = t.path().join("data");
    fake_data_dir(&data);
    let other = t.path().join("other");
    let other_python = fake_venv(&other, "venv-train", "requirements-train.txt");
    let other_lib = other.join("libonnxruntime.so.1.31.1");
    std::fs::write(&other_lib, b"").unwrap();
    let (_, r) = doctor(t.path(), &data, &[("ORT_DYLIB_PATH", &other_lib), ("TICKET_TRAIN_PYTHON", &other_python)]);
    assert_eq!(r["ort"]["found"]["path"], other_lib.to_str().unwrap());
    assert_eq!(r["ort"]["found"]["source"]["variable"], "ORT_DYLIB_PATH");
    assert_eq!(r["ort_version"], "1.31.1");
    assert_eq!(r["train"]["found"]["path"], other_python.to_str().unwrap());
    assert_eq!(r["train"]["found"]["source"]["variable"], "TICKET_TRAIN_PYTHON");
}

#[test]
fn the_data_folder_wins_over_the_checkout_and_the_checkout_is_the_last_resort() {
    let t = tempdir();
    // The current folder is a checkout with its own venvs (tools/setup.sh's names).
    fake_venv(t.path(), ".venv", "requirements.txt");
    fake_venv(t.path(), ".venv-train", "requirements-train.txt");
    let (_, r) = doctor(t.path(), &t.path().join("empty"), &[]);
    assert_eq!(r["ort"]["found"]["source"], "checkout");
    assert_eq!(
        r["ort"]["found"]["path"],
        t.path().join(".venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.19.2").to_str().unwrap()
    );
    assert_eq!(r["train"]["found"]["source"], "checkout");
    let data = t.path().join("data");
    fake_data_dir(&data);
    let (_, r) = doctor(t.path(), &data, &[]);
    assert_eq!(r["ort"]["found"]["source"], "data_dir");
    assert_eq!(r["train"]["found"]["path"], data.join("venv-train/bin/python").to_str().unwrap());
}

#[test]
fn a_missing_piece_exits_3_naming_ticket_setup() {
    let t = tempdir();
    let empty = t.path().join("empty");
    let model = fixture("train/maskrcnn_r18_fpn_synth.onnx");
    let synth = ticket_in(t.path(), &empty, &[], &[&"data", &"synth", &"--out", &"data", &"--images", &"2"]);
    assert!(synth.status.success(), "{}", stderr(&synth));
    let runs: [&[&dyn AsRef<std::ffi::OsStr>]; 4] = [
        &[&"check", &model],
        &[&"train", &model, &"--coco", &"data/annotations.json", &"--steps", &"2", &"-o", &"run"],
        &[
            &"imp",
            &model,
            &"--coco",
            &"data/annotations.json",
            &"--val-coco",
            &"data/annotations.json",
            &"--sparsity",
            &"0.5",
            &"-o",
            &"imp",
        ],
        &[&"doctor"],
    ];
    for args in runs {
        let o = ticket_in(t.path(), &empty, &[], args);
        let err = stderr(&o);
        // doctor needs nothing itself: its check fails (1); the others cannot work (3).
        let code = if args[0].as_ref() == "doctor" { 1 } else { 3 };
        assert_eq!(o.status.code(), Some(code), "{:?}: {err}", args[0].as_ref());
        let last = err.lines().last().unwrap();
        assert!(last.contains("ticket setup"), "{:?}: {err}", args[0].as_ref());
        if args[0].as_ref() != "doctor" {
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
    assert!(!t.path().join("run").exists() && !t.path().join("imp").exists(), "a refused run left a folder");
}

#[test]
fn a_data_folder_that_cannot_be_written_exits_3_naming_it() {
    let t = tempdir();
    // A regular file where a folder should be: no user (root included) can make the data folder under it.
    let blocker = t.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let data = blocker.join("ticket");
    let o = ticket_in(t.path(), &data, &[], &[&"setup"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(data.to_str().unwrap()) && err.contains("not writable"), "{err}");
}

#[test]
fn setup_with_finished_environments_changes_nothing_and_writes_the_tools() {
    let t = tempdir();
    let data = t.path().join("data");
    fake_data_dir(&data);
    let before = std::fs::read(data.join("venv-train/bin/python")).unwrap();
    let o = ticket_in(t.path(), &data, &[], &[&"setup"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let progress = stderr(&o);
    assert_eq!(progress.lines().filter(|l| l.contains("environment is up to date")).count(), 2, "{progress}");
    assert!(progress.contains("tool scripts written"), "{progress}");
    assert_eq!(std::fs::read(data.join("venv-train/bin/python")).unwrap(), before);
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    for name in ["train_worker.py", "bench_prune_torch.py", "bench_train_torch.py", "export_models.py", "train_reference.py"] {
        assert_eq!(std::fs::read(data.join("tools").join(name)).unwrap(), std::fs::read(tools.join(name)).unwrap(), "{name}");
    }
    // Twice: the same.
    let again = ticket_in(t.path(), &data, &[], &[&"setup", &"--json"]);
    let r: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(r["made"].as_array().unwrap().iter().all(|m| m["built"] == false), "{r}");
}

#[test]
fn a_second_setup_while_one_runs_is_refused() {
    let t = tempdir();
    let data = t.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let held = ticket::fsio::DirLock::acquire(&data).unwrap();
    let o = ticket_in(t.path(), &data, &[], &[&"setup"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("another `ticket setup` is running"), "{err}");
    assert!(!data.join("venv").exists() && !data.join("tools").exists(), "the refused setup made something");
    drop(held);
}

/// The venv is really created (python3 -m venv, offline), then pip meets an index that does not answer: exit
/// 3 in one line, and the data folder holds no environment, finished or half-made.
#[test]
fn a_failing_pip_leaves_nothing_half_made() {
    let t = tempdir();
    let data = t.path().join("data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticket"));
    for v in VARS.iter().chain(&["PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"]) {
        cmd.env_remove(v);
    }
    let o = cmd
        .env("TICKET_HOME", &data)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
        .env("PIP_RETRIES", "0")
        .env("PIP_TIMEOUT", "2")
        .current_dir(t.path())
        .arg("setup")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("error: pip install") && last.contains("nothing was changed"), "{err}");
    let left: Vec<String> =
        std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n != ".lock").collect();
    assert!(left.is_empty(), "setup left {left:?} behind");
}

/// Setup killed (kill -9) while a step runs: the step dies with it, as a pip mid-install would, instead of going
/// on writing into the data folder, and the next setup removes the unfinished venv it left. The base Python
/// here is a script that sleeps in place of `-m venv`.
#[test]
fn a_killed_setup_leaves_no_step_running() {
    use common::procs::{only_child, require_gone};
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    let t = tempdir();
    let data = t.path().join("data");
    let python = t.path().join("slow-python");
    std::fs::write(&python, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticket"));
    for v in VARS {
        cmd.env_remove(v);
    }
    let mut setup = cmd
        .env("TICKET_HOME", &data)
        .current_dir(t.path())
        .args(["setup".as_ref(), "--python".as_ref(), python.as_os_str()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while common::procs::children_of(setup.id()).is_empty() {
        assert!(setup.try_wait().unwrap().is_none(), "setup ended before its first step");
        assert!(t0.elapsed() < Duration::from_secs(120), "setup started no step in two minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    let step = only_child(setup.id(), "setup step");
    setup.kill().unwrap();
    setup.wait().unwrap();
    require_gone(step, "the setup step outlived the killed setup");
    // The killed setup could not clean up: its venv's temporary folder is left. The next setup removes it (here
    // one whose Python fails at once, so it stops at the same step, cleaning up after itself).
    let partial = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".partial-"))
            .collect()
    };
    assert_eq!(partial(&data).len(), 1, "{:?}", partial(&data));
    std::fs::write(&python, "#!/bin/sh\nexit 1\n").unwrap();
    let o = ticket_in(t.path(), &data, &[], &[&"setup", &"--python", &python]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("of a setup that was killed"), "{}", stderr(&o));
    assert_eq!(partial(&data), Vec::<String>::new(), "the killed setup's folder is still there");
}
