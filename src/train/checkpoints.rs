//! A run's checkpoint store: `checkpoints/step-NNNNNN.ckpt` (+ `.momentum.npz`), each described by
//! `step-NNNNNN.ckpt.json` (its step and the size and FNV-1a hash of each of its files), and `state.json`
//! naming the last complete one. A resume starts from the newest checkpoint whose files match their
//! description, whatever `state.json` says; a damaged checkpoint newer than that is renamed `*.broken`, never
//! deleted.
use super::folder::{CHECKPOINTS, MAX_SMALL_FILE};
use crate::error::{Error, Result, WriteContext};
use crate::fsio::{fnv_file, write_atomic};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct SavedState {
    step: u64,
    checkpoint: String,
}

/// What `step-NNNNNN.ckpt.json` says about its checkpoint: the step and every file of it.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct CheckpointInfo {
    step: u64,
    files: Vec<CheckpointFile>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct CheckpointFile {
    /// A file name inside `checkpoints/`.
    name: String,
    bytes: u64,
    fnv: String,
}

/// The checkpoint file of `step` inside a run folder.
pub(super) fn checkpoint_path(dir: &Path, step: u64) -> PathBuf {
    dir.join(CHECKPOINTS).join(checkpoint_name(step))
}

fn checkpoint_name(step: u64) -> String {
    format!("step-{step:06}.ckpt")
}

/// The step a checkpoint file name stands for (`step-000006.ckpt` → 6); `None` for any other name.
fn step_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?.strip_suffix(".ckpt")?;
    (digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// Where a resumed run starts: the newest intact checkpoint, and the saved checkpoints newer than it that
/// are damaged (they are kept, renamed `*.broken`, once the run really starts).
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePoint {
    pub step: u64,
    /// The checkpoint file, inside RUN_DIR/checkpoints.
    pub checkpoint: PathBuf,
    /// Checkpoint files newer than `step` that do not match their description (or have none).
    pub damaged: Vec<PathBuf>,
}

/// Writes `step-NNNNNN.ckpt.json` for the checkpoint of `step` in `ckdir` (the checkpoint and its momentum
/// file, when there is one), after they are complete: from then on a resume may start from it.
pub fn describe_checkpoint(ckdir: &Path, step: u64) -> Result<PathBuf> {
    let name = checkpoint_name(step);
    let mut files = Vec::new();
    for f in [name.clone(), format!("{name}.momentum.npz")] {
        let p = ckdir.join(&f);
        if p.is_file() {
            let (h, bytes) = fnv_file(&p)?;
            files.push(CheckpointFile { name: f, bytes, fnv: format!("{h:016x}") });
        }
    }
    if files.is_empty() {
        return Err(Error::input(ckdir.join(&name), "no checkpoint to describe"));
    }
    let info = CheckpointInfo { step, files };
    let path = ckdir.join(format!("{name}.json"));
    write_atomic(&path, serde_json::to_string_pretty(&info).expect("serialises").as_bytes())?;
    Ok(path)
}

/// Checks a checkpoint against its description; the error says what does not match.
fn verify_checkpoint(dir: &Path, name: &str, step: u64) -> std::result::Result<(), String> {
    let desc = dir.join(format!("{name}.json"));
    let text = crate::fsio::read_text_limited(&desc, MAX_SMALL_FILE).map_err(|e| format!("no description ({e})"))?;
    let info: CheckpointInfo = serde_json::from_str(&text).map_err(|e| format!("{}: not a checkpoint description: {e}", desc.display()))?;
    if info.step != step {
        return Err(format!("{} says step {}, the file name says {step}", desc.display(), info.step));
    }
    if !info.files.iter().any(|f| f.name == name) {
        return Err(format!("{} does not describe {name}", desc.display()));
    }
    for f in &info.files {
        // Names come from a file: only siblings of the checkpoint, never a path elsewhere.
        if !f.name.starts_with(name) || f.name.contains('/') || f.name.contains('\\') || f.name.contains("..") {
            return Err(format!("{} names '{}', which is not a file of this checkpoint", desc.display(), f.name));
        }
        let (h, len) = fnv_file(&dir.join(&f.name)).map_err(|e| e.to_string())?;
        if len != f.bytes || format!("{h:016x}") != f.fnv {
            return Err(format!("{} has {len} bytes (hash {h:016x}), its description says {} bytes (hash {})", f.name, f.bytes, f.fnv));
        }
    }
    Ok(())
}

/// Finds where a run folder resumes (see the module comment); `None` when the run never saved a checkpoint.
/// Reads only: a run folder as found, damaged or not, is left as it is.
pub fn resume_point(dir: &Path) -> Result<Option<ResumePoint>> {
    let ckdir = dir.join(CHECKPOINTS);
    let saved = match listed(&ckdir) {
        Ok(saved) => saved,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(&ckdir, e)),
    };
    let state_path = dir.join("state.json");
    let named = if state_path.exists() {
        let text = crate::fsio::read_text_limited(&state_path, MAX_SMALL_FILE)?;
        let st: SavedState = serde_json::from_str(&text).map_err(|e| Error::input(&state_path, format!("not a run state: {e}")))?;
        // state.json is read, not trusted: its checkpoint must be one of this folder's, of the step it says.
        let name = st.checkpoint.strip_prefix("checkpoints/").filter(|n| step_of(n).is_some()).ok_or_else(|| {
            Error::input(
                &state_path,
                format!("names checkpoint '{}', which is not checkpoints/step-NNNNNN.ckpt of this run", st.checkpoint),
            )
        })?;
        if step_of(name) != Some(st.step) {
            return Err(Error::input(&state_path, format!("says step {} but names checkpoint {}", st.step, st.checkpoint)));
        }
        Some(st.step)
    } else {
        None
    };
    let mut damaged = Vec::new();
    let mut reasons = Vec::new();
    for (step, name) in saved.iter().rev() {
        match verify_checkpoint(&ckdir, name, *step) {
            Ok(()) => {
                damaged.reverse();
                return Ok(Some(ResumePoint { step: *step, checkpoint: ckdir.join(name), damaged }));
            }
            Err(why) => {
                damaged.push(ckdir.join(name));
                reasons.push(format!("{name}: {why}"));
            }
        }
    }
    if !saved.is_empty() {
        return Err(Error::input(
            dir,
            format!("has saved checkpoints but none is intact, so it cannot resume ({}); nothing was changed", reasons.join("; ")),
        ));
    }
    if let Some(step) = named {
        return Err(Error::input(&state_path, format!("names the checkpoint of step {step}, which is missing; nothing was changed")));
    }
    Ok(None)
}

/// Keeps a damaged checkpoint (and its companions) as `*.broken`, out of the way of the steps redone.
pub(super) fn set_aside(path: &Path) -> Result<()> {
    let Some(dir) = path.parent() else { return Ok(()) };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in entries.filter_map(|e| e.ok()) {
        let f = e.file_name().to_string_lossy().into_owned();
        if f == name || (f.starts_with(&format!("{name}.")) && !f.ends_with(".broken")) {
            let mut to = dir.join(format!("{f}.broken"));
            let mut k = 1;
            while to.exists() {
                to = dir.join(format!("{f}.{k}.broken"));
                k += 1;
            }
            std::fs::rename(e.path(), &to).writing(e.path())?;
        }
    }
    Ok(())
}

/// Once the checkpoint of `step` is complete in `dir`'s store: its description, then `state.json`; older
/// checkpoints beyond the last two are removed.
pub(super) fn commit(dir: &Path, step: u64) -> Result<()> {
    let ckdir = dir.join(CHECKPOINTS);
    let name = checkpoint_name(step);
    describe_checkpoint(&ckdir, step)?;
    let saved = SavedState { step, checkpoint: format!("{CHECKPOINTS}/{name}") };
    write_atomic(&dir.join("state.json"), serde_json::to_string(&saved).expect("serialises").as_bytes())?;
    let old: Vec<(u64, String)> = listed(&ckdir).map_err(|e| Error::io(dir, e))?.into_iter().filter(|(s, _)| *s < step).collect();
    // The newest two are this one and the one before it; older ones go, with their companions.
    for (_, n) in old.iter().rev().skip(1) {
        for f in [n.clone(), format!("{n}.momentum.npz"), format!("{n}.json")] {
            let _ = std::fs::remove_file(ckdir.join(f));
        }
    }
    Ok(())
}

/// The checkpoint files in `ckdir` with their steps, oldest first.
fn listed(ckdir: &Path) -> std::io::Result<Vec<(u64, String)>> {
    let mut saved: Vec<(u64, String)> = std::fs::read_dir(ckdir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            step_of(&name).map(|s| (s, name))
        })
        .collect();
    saved.sort();
    Ok(saved)
}

/// The step `state.json` names (0 before any checkpoint, or when it cannot be read): where a run stands,
/// for a caller that only needs to know how far it got.
pub fn saved_step(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}
