//! `ticket setup`: the Python environments an installed binary needs, made in the user's data folder
//! (`runtime::env::data_dir`), so that `cargo install` gives a tool that works from any folder.
//!
//! - The requirement files and the tool scripts are compiled in (`include_str!`), so nothing is read from a
//!   checkout.
//! - Idempotent: a venv whose recorded requirements equal the embedded ones is left alone.
//! - Nothing half-made: each venv is built in a temporary folder inside the data folder and renamed into place
//!   only once pip has installed everything and the result checks out; a failure removes the temporary folder
//!   and leaves the previous venv (if any) as it was.
//! - One at a time: the data folder is locked (`fsio::DirLock`) while setup runs; a second setup is refused.
//!
//! Progress goes through a callback, one [`Progress`] per step; the CLI prints them.
pub mod doctor;

use crate::error::{one_line, Error, Result, WriteContext};
use crate::runtime::child::output_tied;
use crate::runtime::env::{self, Venv};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Each venv's requirements, as tools/setup.sh installs them in a checkout.
pub fn requirements(venv: Venv) -> &'static str {
    match venv {
        Venv::Check => include_str!("../../tools/requirements.txt"),
        Venv::Train => include_str!("../../tools/requirements-train.txt"),
        Venv::Torch => include_str!("../../tools/requirements-torch.txt"),
    }
}

/// The tool scripts the binary runs (the training worker; the torch baselines of `ticket bench` and what
/// they import) and the exporter a user runs in the torch venv, written into DATA/tools.
pub const TOOLS: [(&str, &str); 5] = [
    ("train_worker.py", include_str!("../../tools/train_worker.py")),
    ("bench_prune_torch.py", include_str!("../../tools/bench_prune_torch.py")),
    ("bench_train_torch.py", include_str!("../../tools/bench_train_torch.py")),
    ("export_models.py", include_str!("../../tools/export_models.py")),
    ("train_reference.py", include_str!("../../tools/train_reference.py")),
];

/// The file inside a finished venv that records the requirements it was built from.
pub const RECORD: &str = ".requirements";

/// What setup makes and with what.
#[derive(Clone, Debug)]
pub struct SetupOptions {
    pub data_dir: PathBuf,
    /// Also the torch venv.
    pub torch: bool,
    /// The Python that creates the venvs (`python3` on PATH unless given).
    pub base_python: PathBuf,
}

/// One step, reported as it starts or ends.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Progress {
    /// `venv`, `venv-train`, `venv-torch` or `tools`.
    pub piece: String,
    pub message: String,
}

/// What `ticket setup` reports: the data folder and what it made there.
#[derive(serde::Serialize)]
pub struct SetupReport {
    pub data_dir: PathBuf,
    pub made: Vec<Made>,
}

/// What setup did to one piece.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Made {
    pub piece: String,
    pub path: PathBuf,
    /// False when it was already up to date.
    pub built: bool,
    pub seconds: f64,
}

/// The venvs a setup makes, in order.
pub fn venvs(torch: bool) -> Vec<Venv> {
    Venv::ALL.into_iter().filter(|v| torch || *v != Venv::Torch).collect()
}

/// Makes what is missing or out of date under `opts.data_dir`; see the module's rules.
pub fn setup(opts: &SetupOptions, on: &mut dyn FnMut(Progress)) -> Result<Vec<Made>> {
    let data = &opts.data_dir;
    prepare_data_dir(data)?;
    let _lock = crate::fsio::DirLock::acquire(data).map_err(|e| match e {
        Error::Input(m) => Error::Runtime(format!("another `ticket setup` is running: {m}")),
        other => other,
    })?;
    remove_leftovers(data, on)?;
    let mut made = Vec::new();
    for venv in venvs(opts.torch) {
        made.push(make_venv(opts, venv, on)?);
    }
    made.push(write_tools(data, on)?);
    Ok(made)
}

/// Removes what a setup killed mid-step (kill -9: no clean-up ran) left in the data folder: a venv's temporary
/// folder (hundreds of MB for the training venv) and the writability probe. Called under the data folder's
/// lock, so no other setup is using them; only those names, only folders and files (not links), only here.
fn remove_leftovers(data: &Path, on: &mut dyn FnMut(Progress)) -> Result<()> {
    let entries = std::fs::read_dir(data).map_err(|e| Error::io(data, e))?;
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(venv) = Venv::ALL.into_iter().find(|v| name.starts_with(&partial_prefix(*v))) else {
            if name.starts_with(WRITE_PROBE) && e.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::remove_file(e.path()).writing(e.path())?;
            }
            continue;
        };
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(e.path()).writing(e.path())?;
            let message = format!("removed {}, the unfinished {} of a setup that was killed", e.path().display(), venv.describe());
            on(Progress { piece: venv.dir_name().to_string(), message });
        }
    }
    Ok(())
}

/// The name prefix of a venv's temporary folder while it is built (make_venv) and of what a killed setup left
/// (remove_leftovers): one definition, so the clean-up finds exactly what the build makes.
fn partial_prefix(venv: Venv) -> String {
    format!(".{}.partial-", venv.dir_name())
}

/// The prefix of the file that proves the data folder writable.
const WRITE_PROBE: &str = ".write-test-";

/// Creates the data folder if needed and proves it writable, or says which folder is not (exit 3).
pub fn prepare_data_dir(data: &Path) -> Result<()> {
    let fault = |e: std::io::Error| {
        Error::Runtime(one_line(&format!(
            "data folder {} is not writable ({e}): set TICKET_HOME to a folder you can write",
            data.display()
        )))
    };
    std::fs::create_dir_all(data).map_err(fault)?;
    tempfile::Builder::new().prefix(WRITE_PROBE).tempfile_in(data).map_err(fault)?;
    Ok(())
}

/// True when `dir` is a finished venv built from `venv`'s current requirements.
pub fn is_current(dir: &Path, venv: Venv) -> bool {
    env::venv_python(dir).is_file() && std::fs::read_to_string(dir.join(RECORD)).is_ok_and(|r| r == requirements(venv))
}

fn make_venv(opts: &SetupOptions, venv: Venv, on: &mut dyn FnMut(Progress)) -> Result<Made> {
    let started = Instant::now();
    let piece = venv.dir_name().to_string();
    let target = opts.data_dir.join(&piece);
    let mut say = |message: String| on(Progress { piece: piece.clone(), message });
    if is_current(&target, venv) {
        say(format!("the {} is up to date ({})", venv.describe(), target.display()));
        return Ok(Made { piece: piece.clone(), path: target, built: false, seconds: started.elapsed().as_secs_f64() });
    }
    // A folder of our own next to the target (same filesystem, so the final rename is atomic); removed on
    // every way out but success.
    let tmp = tempfile::Builder::new()
        .prefix(&partial_prefix(venv))
        .tempdir_in(&opts.data_dir)
        .writing_context(&opts.data_dir, "cannot make a temporary folder")?;
    let work = tmp.path().join(&piece);
    say(format!("creating the {} with {}", venv.describe(), opts.base_python.display()));
    let mut make = python_cmd(&opts.base_python, ["-m", "venv"]);
    make.arg(&work);
    run(make, &format!("{} -m venv", opts.base_python.display()))?;
    let req = tmp.path().join("requirements.txt");
    std::fs::write(&req, requirements(venv)).writing(&req)?;
    let packages = requirements(venv).lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).count();
    say(format!("installing {packages} packages (pip; this takes minutes the first time)"));
    let python = env::venv_python(&work);
    let mut pip = python_cmd(&python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "-r"]);
    pip.arg(&req);
    run(pip, &format!("pip install for the {} (is a package index reachable?)", venv.describe()))?;
    say("checking what was installed".into());
    check_venv(venv, &work)?;
    std::fs::write(work.join(RECORD), requirements(venv)).writing(work.join(RECORD))?;
    replace_dir(&work, &target, tmp.path())?;
    let seconds = started.elapsed().as_secs_f64();
    say(format!("the {} is ready, {seconds:.0} s ({})", venv.describe(), target.display()));
    Ok(Made { piece: piece.clone(), path: target, built: true, seconds })
}

/// What a finished venv must hold: the ONNX Runtime library, or the training API's import.
fn check_venv(venv: Venv, dir: &Path) -> Result<()> {
    let python = env::venv_python(dir);
    match venv {
        Venv::Check => {
            env::venv_ort_library(dir)
                .ok_or_else(|| Error::Runtime(format!("{}: no libonnxruntime in the installed onnxruntime wheel", dir.display())))?;
        }
        Venv::Train => run(
            python_cmd(&python, ["-c", "import onnxruntime, onnx; assert onnxruntime.__version__ == '1.19.2'"]),
            "the training environment's onnxruntime",
        )?,
        Venv::Torch => run(python_cmd(&python, ["-c", "import torch, torchvision"]), "the torch environment's torch")?,
    }
    Ok(())
}

/// Moves the finished `work` venv to `target`: an older venv there is moved aside into `scratch` first (and
/// removed with it), so `target` is always either the old complete venv or the new one.
fn replace_dir(work: &Path, target: &Path, scratch: &Path) -> Result<()> {
    let fault = |e: std::io::Error| Error::Runtime(format!("{}: cannot move the new environment into place ({e})", target.display()));
    if target.exists() {
        std::fs::rename(target, scratch.join("old")).map_err(fault)?;
    }
    std::fs::rename(work, target).map_err(fault)
}

fn write_tools(data: &Path, on: &mut dyn FnMut(Progress)) -> Result<Made> {
    let started = Instant::now();
    let dir = data.join("tools");
    std::fs::create_dir_all(&dir).writing(&dir)?;
    let mut built = false;
    for (name, text) in TOOLS {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            continue;
        }
        crate::fsio::write_atomic(&path, text.as_bytes()).map_err(|e| Error::Runtime(e.to_string()))?;
        built = true;
    }
    on(Progress {
        piece: "tools".into(),
        message: format!("tool scripts {} ({})", if built { "written" } else { "up to date" }, dir.display()),
    });
    Ok(Made { piece: "tools".into(), path: dir, built, seconds: started.elapsed().as_secs_f64() })
}

/// `python ARGS…`.
fn python_cmd(python: &Path, args: impl IntoIterator<Item = &'static str>) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(args);
    cmd
}

/// Runs a setup step; a failure is one line: what failed and the last line it printed (pip's first ERROR line
/// where there is one). The step dies with this process: a setup killed mid-install leaves no pip running.
fn run(cmd: Command, what: &str) -> Result<()> {
    let out = output_tied(cmd).map_err(|e| Error::Runtime(format!("{what}: cannot start ({e})")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stderr.lines().chain(stdout.lines()).rfind(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string();
    // pip's most telling line is its first ERROR, not a trailing notice.
    let reason = stderr.lines().find(|l| l.starts_with("ERROR:")).map(str::trim).map(String::from).unwrap_or(last);
    Err(Error::Runtime(one_line(&format!("{what} failed ({}): {reason}; nothing was changed", out.status))))
}
