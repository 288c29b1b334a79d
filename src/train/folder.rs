//! A run folder (a training run's, an IMP run's): `run.json` written once and read back on resume, the model
//! fingerprint a resume is checked against, the lock held by the process working in it, and what a fresh run
//! created and takes back when it fails before `run.json` exists.
use crate::error::{Context, Error, Result};
use crate::fsio::fingerprint;
use std::path::{Path, PathBuf};

/// The settings of the run, written when a fresh run has started and read back by every resume.
pub const RUN_JSON: &str = "run.json";

/// The checkpoints' folder inside a run folder.
pub const CHECKPOINTS: &str = "checkpoints";

/// run.json, state.json and a checkpoint's description are a few hundred bytes.
pub const MAX_SMALL_FILE: u64 = 1 << 20;

/// What a fresh run found missing before it created its folder, `checkpoints/`, `work/` and `.lock`: a run
/// that fails before its `run.json` is written removes them again, so the folder can be used as if the
/// command had never run.
pub(super) struct Created {
    dir: PathBuf,
    dir_existed: bool,
    checkpoints_existed: bool,
    work_existed: bool,
    lock_existed: bool,
}

impl Created {
    pub(super) fn note(dir: &Path) -> Created {
        let has = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        Created {
            dir: dir.to_path_buf(),
            dir_existed: has(dir),
            checkpoints_existed: has(&dir.join(CHECKPOINTS)),
            work_existed: has(&dir.join("work")),
            lock_existed: has(&dir.join(crate::fsio::LOCK_FILE)),
        }
    }

    /// Removes what this process created (only for a fresh run: a resumed run's folder keeps its files).
    pub(super) fn undo(&self, fresh: bool) {
        if !fresh || self.dir.join(RUN_JSON).exists() {
            return;
        }
        if !self.work_existed {
            let _ = std::fs::remove_dir_all(self.dir.join("work"));
        }
        if !self.checkpoints_existed {
            // Only when empty: a checkpoint is never deleted.
            let _ = std::fs::remove_dir(self.dir.join(CHECKPOINTS));
        }
        if !self.lock_existed {
            let _ = std::fs::remove_file(self.dir.join(crate::fsio::LOCK_FILE));
        }
        if !self.dir_existed {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// A fresh run never starts over saved work: a folder with a run, its state or any checkpoint is refused.
pub(super) fn refuse_existing_run(dir: &Path) -> Result<()> {
    refuse_existing(dir, "a training run")?;
    let has_checkpoints = std::fs::read_dir(dir.join(CHECKPOINTS)).is_ok_and(|mut d| d.next().is_some());
    if dir.join("state.json").exists() || has_checkpoints {
        return Err(Error::input(
            dir,
            "holds checkpoints of a training run but no run.json; refusing to start a new run over them (use another folder)",
        ));
    }
    Ok(())
}

/// A fresh run never starts over another: a folder with a `run.json` is refused (`kind`: "a training run",
/// "an IMP run").
pub fn refuse_existing(dir: &Path, kind: &str) -> Result<()> {
    if dir.join(RUN_JSON).exists() {
        return Err(Error::setting_at(
            dir,
            "resume",
            format!("already holds {kind} (run.json); use `resume` to continue it, or another folder"),
        ));
    }
    Ok(())
}

/// The bytes of `dir/run.json` for a resume (at most `max_bytes`); the error names the file.
pub fn read_run_json(dir: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let path = dir.join(RUN_JSON);
    if !path.is_file() {
        return Err(Error::input(&path, "cannot read the run to resume: no run.json in the folder"));
    }
    crate::fsio::read_limited(&path, max_bytes).context(&path, "cannot read the run to resume")
}

/// A resume's model must be the one the run was started from (`started_from`, whose fingerprint was
/// `recorded`): another model would continue the run on other weights.
pub fn check_model(dir: &Path, given: &Path, started_from: &Path, recorded: &str) -> Result<()> {
    let have = fingerprint(given)?;
    if have != recorded {
        return Err(Error::input(
            dir,
            format!(
                "was started from another model ({} has fingerprint {have}; the run was started from {} with {recorded})",
                given.display(),
                started_from.display()
            ),
        ));
    }
    Ok(())
}
