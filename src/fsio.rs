//! File helpers shared by every command: atomic writes (a failed run never leaves a partial output) and the
//! checks that keep an output from overwriting an input.
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Reads a whole file, refusing anything larger than `max_bytes` before allocating for it.
pub fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::input(path, "not a regular file"));
    }
    if meta.len() > max_bytes {
        return Err(Error::input(path, format!("{} bytes is larger than the {} byte limit", meta.len(), max_bytes)));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so readers see either
/// the old file or the complete new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::input(path, "the output folder does not exist"));
    }
    let name = path.file_name().ok_or_else(|| Error::input(path, "not a file path"))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// True when two paths name the same file (or would, once the output exists).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), canonical_output(b)) {
        (Ok(a), Some(b)) => a == b,
        _ => false,
    }
}

fn canonical_output(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = std::fs::canonicalize(p) {
        return Some(c);
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
}

/// Refuses an output path that would overwrite any of the inputs.
pub fn ensure_distinct(output: &Path, inputs: &[&Path]) -> Result<()> {
    for input in inputs {
        if same_file(input, output) {
            return Err(Error::input(output, format!("output path is the same file as the input {}", input.display())));
        }
    }
    Ok(())
}
