//! An output the environment refuses — a full file system, a read-only one — is the environment's fault: exit 3
//! with one line that names the output, never exit 2 ("bad input") and never a partial file. The file systems
//! are real: a tmpfs of 16 KiB and a read-only tmpfs, mounted in a user + mount namespace (`unshare -rm`) so the
//! test needs no privileges and works as root too (root ignores folder permissions, not a read-only mount).
mod common;
use common::fixture;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `ticket ARGS` with a fresh tmpfs (`mount -o OPTS`) over `dir`, inside its own namespace. Fails the test,
/// with the reason, when the namespace or the mount cannot be made.
fn ticket_over_tmpfs(dir: &Path, opts: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new("unshare");
    // The mount first; only if it worked, ticket replaces the shell (its exit code is the command's). A failed
    // mount exits 100, which ticket never does.
    cmd.args(["-rm", "sh", "-c", r#"mount -t tmpfs -o "$1" tmpfs "$2" || exit 100; shift 2; exec "$@""#, "sh", opts])
        .arg(dir)
        .arg(env!("CARGO_BIN_EXE_ticket"));
    for a in args {
        cmd.arg(a.as_ref());
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run unshare (util-linux) to make a mount namespace: {e}"));
    assert_ne!(
        out.status.code(),
        Some(100),
        "cannot mount a tmpfs ({opts}) in a user namespace, so this test cannot run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.code().is_some(), "unshare was killed: {:?}", out.status);
    out
}

/// `ticket ARGS` writing under a folder with a tmpfs (`mount -o OPTS`) over it: exit 3 and one line on stderr
/// that says `reason` and names `names`. `args` gets the folder and returns the arguments and what the error
/// must name. With `--json` among the arguments, the report on stdout says exit 3 too.
fn refused_by_the_environment(opts: &str, reason: &str, args: impl FnOnce(&Path) -> (Vec<OsString>, PathBuf)) {
    let t = tempfile::tempdir().unwrap();
    let mount = t.path().join("out");
    std::fs::create_dir(&mount).unwrap();
    let (args, names) = args(&mount);
    let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as _).collect();
    let out = ticket_over_tmpfs(&mount, opts, &args);
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(out.status.code(), Some(3), "expected exit 3: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("error: ") && err.contains(names.to_str().unwrap()), "does not name {}: {err}", names.display());
    assert!(err.contains(reason), "does not say '{reason}': {err}");
    if args.iter().any(|a| a.as_ref() == "--json") {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error report");
        assert_eq!(v["exit_code"], 3, "{v}");
    }
}

fn os(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    args.iter().map(|a| a.as_ref().to_os_string()).collect()
}

const READ_ONLY: &str = "Read-only file system";
const FULL: &str = "No space left on device";

#[test]
fn a_pruned_model_into_a_read_only_folder_exits_3_naming_it() {
    let model = fixture("resnet18.onnx");
    refused_by_the_environment("ro", READ_ONLY, |dir| {
        (os(&[&"prune", &model, &"--sparsity", &"0.5", &"-o", &dir.join("pruned.onnx"), &"--json"]), dir.to_path_buf())
    });
}

#[test]
fn a_pruned_model_into_a_full_file_system_exits_3_naming_it() {
    // The model is megabytes; the file system holds 16 KiB.
    let model = fixture("resnet18.onnx");
    refused_by_the_environment("size=16k", FULL, |dir| {
        (os(&[&"prune", &model, &"--sparsity", &"0.5", &"-o", &dir.join("pruned.onnx")]), dir.join("pruned.onnx"))
    });
}

#[test]
fn a_synthetic_dataset_into_a_full_file_system_exits_3_naming_its_folder() {
    refused_by_the_environment("size=16k", FULL, |dir| {
        let out = dir.join("synth");
        (os(&[&"data", &"synth", &"--out", &out, &"--images", &"8", &"--json"]), out)
    });
}

#[test]
fn a_synthetic_dataset_into_a_read_only_file_system_exits_3_naming_its_folder() {
    refused_by_the_environment("ro", READ_ONLY, |dir| {
        (os(&[&"data", &"synth", &"--out", &dir.join("synth"), &"--images", &"2"]), dir.to_path_buf())
    });
}

#[test]
fn detections_into_a_read_only_folder_exit_3_naming_it() {
    let model = fixture("fasterrcnn_r18_fpn_voc.onnx");
    let images = tempfile::tempdir().unwrap();
    let image = common::noise_images(images.path(), &[(128, 128)], 1).remove(0);
    refused_by_the_environment("ro", READ_ONLY, |dir| {
        (os(&[&"detect", &model, &image, &"-o", &dir.join("dets.json"), &"--json"]), dir.to_path_buf())
    });
}

#[test]
fn a_missing_output_folder_stays_bad_input() {
    // The user's path is wrong, not the environment: exit 2 as before, here on a working file system.
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("no/such/folder/pruned.onnx");
    let err = common::run_err(&[&"prune", &fixture("resnet18.onnx"), &"--sparsity", &"0.5", &"-o", &out]);
    assert!(err.contains("no/such/folder"), "{err}");
}

/// `ticket ARGS` with its stdout and stderr where they are given.
fn ticket_with(stdout: std::process::Stdio, stderr: std::process::Stdio, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticket"));
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.stdout(stdout).stderr(stderr).output().unwrap()
}

/// `ticket ARGS` with its stdout on `out`, its stderr captured: (exit code, stderr).
fn ticket_with_stdout(out: impl Into<std::process::Stdio>, args: &[&dyn AsRef<std::ffi::OsStr>]) -> (Option<i32>, String) {
    let out = ticket_with(out.into(), std::process::Stdio::piped(), args);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A pipe whose reader is already gone, as after `ticket … | head -1`: every write to it fails with a broken pipe.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

#[test]
fn a_report_into_a_closed_pipe_is_dropped_and_the_exit_code_stands() {
    for json in [true, false] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"inspect", &"--layers"];
        let model = fixture("resnet18.onnx");
        args.push(&model);
        if json {
            args.push(&"--json");
        }
        let (code, err) = ticket_with_stdout(closed_pipe(), &args);
        assert_eq!(code, Some(0), "json {json}: {err}");
        assert!(err.is_empty(), "json {json}: nothing on stderr expected: {err}");
    }
    // An error keeps its code and its line on stderr when stdout (the JSON error report) is gone.
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing.onnx");
    let (code, err) = ticket_with_stdout(closed_pipe(), &[&"inspect", &missing, &"--json"]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("missing.onnx"), "{err}");
    // So does a usage error.
    let (code, err) = ticket_with_stdout(closed_pipe(), &[&"inspect", &"--no-such-flag", &"--json"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("error: ") && !err.contains("panicked"), "{err}");
}

#[test]
fn a_report_into_a_full_stdout_exits_3() {
    // `> report.json` on a full disk: a cut report must not pass for a whole one.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let (code, err) = ticket_with_stdout(full, &[&"inspect", &fixture("resnet18.onnx"), &"--json"]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("stdout") && err.contains(FULL), "{err}");
}

#[test]
fn an_error_keeps_its_exit_code_when_stderr_is_gone() {
    // Its one line is lost with the stderr that cannot take it; the exit code still says what happened.
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing.onnx");
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    for (what, stderr) in [("closed pipe", std::process::Stdio::from(closed_pipe())), ("full", full().into())] {
        let out = ticket_with(std::process::Stdio::piped(), stderr, &[&"inspect", &missing]);
        assert_eq!(out.status.code(), Some(2), "stderr {what}");
    }
}
