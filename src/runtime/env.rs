//! Where the Python side lives: the ONNX Runtime library the `ort` crate loads, the checking Python, the
//! training Python and the torch Python. Each is looked up in this order, and the first that holds wins:
//! 1. its environment variable (ORT_DYLIB_PATH, TICKET_PYTHON, TICKET_TRAIN_PYTHON, TICKET_TORCH_PYTHON), as
//!    tools/env.sh sets them in a checkout — taken as given, even when it names nothing;
//! 2. the user's data folder, where `ticket setup` builds the environments ([`data_dir`]), so that an installed
//!    binary works from any folder;
//! 3. the checkout's venvs in the current folder (.venv, .venv-train, .venv-torch, as tools/setup.sh makes them).
//!
//! A piece found nowhere is an environment fault (exit 3) whose one-line message names `ticket setup`.
use crate::error::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to run to make the missing pieces.
pub const SETUP_HINT: &str = "run `ticket setup` (or tools/setup.sh in a checkout)";

/// The environments `ticket setup` makes, by folder name inside the data folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Venv {
    /// onnx, onnxruntime (its libonnxruntime is what `ort` loads), numpy, safetensors, pycocotools.
    Check,
    /// onnxruntime-training 1.19.2 for the training worker (it cannot share a venv with `onnxruntime`).
    Train,
    /// torch and torchvision: exporting models, the torch benchmark baselines.
    Torch,
}

impl Venv {
    pub const ALL: [Venv; 3] = [Venv::Check, Venv::Train, Venv::Torch];

    /// The folder inside the data folder.
    pub fn dir_name(self) -> &'static str {
        match self {
            Venv::Check => "venv",
            Venv::Train => "venv-train",
            Venv::Torch => "venv-torch",
        }
    }

    /// The venv a checkout's tools/setup.sh makes for the same purpose.
    pub fn checkout_dir(self) -> &'static str {
        match self {
            Venv::Check => ".venv",
            Venv::Train => ".venv-train",
            Venv::Torch => ".venv-torch",
        }
    }

    /// The variable that names this venv's Python.
    pub fn python_var(self) -> &'static str {
        match self {
            Venv::Check => "TICKET_PYTHON",
            Venv::Train => "TICKET_TRAIN_PYTHON",
            Venv::Torch => "TICKET_TORCH_PYTHON",
        }
    }

    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Venv::Check => "ONNX Runtime environment",
            Venv::Train => "training environment",
            Venv::Torch => "torch environment",
        }
    }
}

/// Where a piece was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The environment variable of that name.
    Variable(String),
    /// The data folder (`ticket setup`).
    DataDir,
    /// The checkout's venv in the current folder (tools/setup.sh).
    Checkout,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Variable(v) => write!(f, "${v}"),
            Source::DataDir => f.write_str("data folder"),
            Source::Checkout => f.write_str("checkout"),
        }
    }
}

/// A piece found: its path and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Found {
    pub path: PathBuf,
    pub source: Source,
}

/// The user's data folder: $TICKET_HOME, else $XDG_DATA_HOME/ticket, else ~/.local/share/ticket. None only
/// when none of TICKET_HOME, XDG_DATA_HOME and HOME is set.
pub fn data_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("TICKET_HOME")
        .or_else(|| var("XDG_DATA_HOME").map(|d| d.join("ticket")))
        .or_else(|| var("HOME").map(|h| h.join(".local/share/ticket")))
}

/// The data folder, or an environment error saying how to name one.
pub fn require_data_dir() -> Result<PathBuf> {
    data_dir().ok_or_else(|| Error::Runtime("no data folder: set TICKET_HOME (or HOME, or XDG_DATA_HOME)".into()))
}

/// A venv's Python inside `venv`.
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The libonnxruntime shared library of the `onnxruntime` wheel installed in `venv`
/// (lib/python3.X/site-packages/onnxruntime/capi/libonnxruntime.so.VERSION, or .dylib on macOS).
pub fn venv_ort_library(venv: &Path) -> Option<PathBuf> {
    let mut libs: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .filter_map(|e| std::fs::read_dir(e.path().join("site-packages/onnxruntime/capi")).ok())
        .flat_map(|d| d.flatten())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (name.starts_with("libonnxruntime.so.") || (name.starts_with("libonnxruntime.") && name.ends_with(".dylib"))) && p.is_file()
        })
        .collect();
    libs.sort();
    libs.pop()
}

/// The ONNX Runtime version in a library file name (libonnxruntime.so.1.19.2 → 1.19.2).
pub fn ort_library_version(lib: &Path) -> Option<String> {
    let name = lib.file_name()?.to_string_lossy().into_owned();
    let v = name.strip_prefix("libonnxruntime.so.").or_else(|| name.strip_prefix("libonnxruntime.")?.strip_suffix(".dylib"))?;
    (!v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.')).then(|| v.to_string())
}

fn from_var(var: &str) -> Option<Found> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(|v| Found { path: PathBuf::from(v), source: Source::Variable(var.into()) })
}

/// The folder `ticket setup` puts `venv` in, when it has finished one there.
fn data_venv(venv: Venv) -> Option<PathBuf> {
    let dir = data_dir()?.join(venv.dir_name());
    venv_python(&dir).is_file().then_some(dir)
}

fn checkout_venv(venv: Venv) -> Option<PathBuf> {
    let dir = PathBuf::from(venv.checkout_dir());
    venv_python(&dir).is_file().then(|| std::path::absolute(&dir).unwrap_or(dir))
}

/// The ONNX Runtime library: $ORT_DYLIB_PATH, else the data folder's, else the checkout's .venv's.
pub fn find_ort_library() -> Option<Found> {
    from_var("ORT_DYLIB_PATH")
        .or_else(|| data_venv(Venv::Check).and_then(|v| venv_ort_library(&v)).map(|path| Found { path, source: Source::DataDir }))
        .or_else(|| checkout_venv(Venv::Check).and_then(|v| venv_ort_library(&v)).map(|path| Found { path, source: Source::Checkout }))
}

/// A venv's Python: its variable, else the data folder's, else the checkout's.
pub fn find_python(venv: Venv) -> Option<Found> {
    from_var(venv.python_var())
        .or_else(|| data_venv(venv).map(|v| Found { path: venv_python(&v), source: Source::DataDir }))
        .or_else(|| checkout_venv(venv).map(|v| Found { path: venv_python(&v), source: Source::Checkout }))
}

/// The ONNX Runtime library, or the one-line error that names `ticket setup`.
pub fn ort_library() -> Result<PathBuf> {
    let found = find_ort_library().ok_or_else(|| missing("ONNX Runtime library", "ORT_DYLIB_PATH", Venv::Check))?;
    if !found.path.is_file() {
        return Err(Error::Runtime(format!(
            "ONNX Runtime library not found: {}={} is not a file; {SETUP_HINT}",
            found.source,
            found.path.display()
        )));
    }
    Ok(found.path)
}

/// A venv's Python, or the one-line error that names `ticket setup` (`--torch` for the torch venv).
pub fn python(venv: Venv) -> Result<PathBuf> {
    find_python(venv).map(|f| f.path).ok_or_else(|| missing(&format!("{}'s Python", venv.describe()), venv.python_var(), venv))
}

/// The training Python: the one given (an option), else [`python`]`(Venv::Train)`.
pub fn train_python(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => python(Venv::Train),
    }
}

fn missing(what: &str, var: &str, venv: Venv) -> Error {
    let place = data_dir().map(|d| d.join(venv.dir_name()).display().to_string()).unwrap_or_else(|| "the data folder".into());
    let setup = if venv == Venv::Torch { "run `ticket setup --torch`" } else { "run `ticket setup`" };
    Error::Runtime(format!("{what} not found ({var} is not set, nothing in {place} or ./{}): {setup}", venv.checkout_dir()))
}

/// Tool scripts the binary runs (written into the data folder's `tools/` by `ticket setup`); a checkout's
/// tools/ holds the same files.
pub fn tools_dir() -> PathBuf {
    if Path::new("tools/train_worker.py").is_file() {
        return PathBuf::from("tools");
    }
    data_dir().map(|d| d.join("tools")).unwrap_or_else(|| PathBuf::from("tools"))
}

/// The SIMD level tract's matmul kernels run at on this CPU.
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return "avx2+fma";
        }
        if std::arch::is_x86_feature_detected!("avx") {
            return "avx";
        }
        "sse2 (generic kernels)"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "neon"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "generic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_version_from_its_name() {
        assert_eq!(ort_library_version(Path::new("/x/libonnxruntime.so.1.19.2")).as_deref(), Some("1.19.2"));
        assert_eq!(ort_library_version(Path::new("libonnxruntime.1.31.1.dylib")).as_deref(), Some("1.31.1"));
        assert_eq!(ort_library_version(Path::new("libonnxruntime.so")), None);
    }
}
