//! File helpers shared by every command: bounded reads of regular files only (a FIFO or /dev/zero as input must
//! fail, not hang or fill memory), paths taken from files confined to their folder, atomic writes (a failed run
//! never leaves a partial output), the checks that keep an output from overwriting an input, and the folder
//! lock that keeps two processes out of one run folder; and writing to the standard streams without `print!`'s
//! panic when they have gone.
use crate::error::{Context, Error, Result, WriteContext};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Reads a whole file, refusing anything larger than `max_bytes` before allocating for it.
pub fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let (f, len) = open_regular(path)?;
    if len > max_bytes {
        return Err(Error::input(path, format!("{len} bytes is larger than the {max_bytes} byte limit")));
    }
    // The file may grow between the check and the read: never take more than the limit.
    let mut out = Vec::with_capacity(len as usize);
    f.take(max_bytes.saturating_add(1)).read_to_end(&mut out).at(path)?;
    if out.len() as u64 > max_bytes {
        return Err(Error::input(path, format!("grew past the {max_bytes} byte limit while being read")));
    }
    Ok(out)
}

/// The records of a JSON-lines file (at most `max_bytes`), blank lines skipped; a line that is not a `what` is an
/// error naming its number.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<T>> {
    let bytes = read_limited(path, max_bytes)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::input(path, "not UTF-8 text"))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| serde_json::from_str(line).with_context(path, || format!("line {}: not {what}", i + 1)))
        .collect()
}

/// [`read_limited`] as UTF-8 text.
pub fn read_text_limited(path: &Path, max_bytes: u64) -> Result<String> {
    String::from_utf8(read_limited(path, max_bytes)?).context(path, "not UTF-8 text")
}

/// Opens a file for reading only if it is a regular file (checked on the open handle, so a FIFO swapped in
/// after a path check is still refused; opened non-blocking so that opening a FIFO cannot wait for a writer).
pub fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    // Checked on the path first too, so that even without O_NONBLOCK a FIFO is never opened.
    if !std::fs::metadata(path).at(path)?.is_file() {
        return Err(Error::input(path, "not a regular file"));
    }
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc_o_nonblock()).open(path).at(path)?;
    let meta = f.metadata().at(path)?;
    if !meta.is_file() {
        return Err(Error::input(path, "not a regular file"));
    }
    Ok((f, meta.len()))
}

/// O_NONBLOCK without the libc crate: the value is fixed per architecture family on Linux.
const fn libc_o_nonblock() -> i32 {
    if cfg!(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64", target_arch = "arm", target_arch = "riscv64")) {
        0o4000
    } else {
        0
    }
}

/// `rel`, a path read from a file (an image `file_name`, a checkpoint name), joined to `dir` if it stays inside:
/// absolute paths and `..` are refused, because an input file must not make the tool read arbitrary files.
/// `what` names the field in the error.
pub fn confined_join(dir: &Path, rel: &str, what: &str) -> std::result::Result<PathBuf, String> {
    let p = Path::new(rel);
    if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(format!("{what} '{rel}' is not a relative path inside {}; refused", dir.display()));
    }
    Ok(dir.join(p))
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
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.writing(path)
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

/// An exclusive lock on a folder for a process's lifetime (a training run, an IMP experiment): a second process
/// that wants the folder gets a one-line error naming the holder's pid instead of writing the same files. The
/// lock is the OS's (flock through `File::try_lock`), so it is released when the holder exits or dies, and a
/// stale lock file left by a killed process does not block anyone. A holder that is dying (killed, its main
/// thread gone) keeps the lock until its last thread has closed its files, milliseconds or, on a loaded
/// machine, longer: that one is waited for (up to [`DYING_HOLDER_WAIT`]) rather than refused, so a run resumed
/// right after a kill (a sweep's rerun of its task) does not fail on the lock of the process it replaces.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
    path: PathBuf,
}

/// The lock file inside a locked folder.
pub const LOCK_FILE: &str = ".lock";

impl DirLock {
    /// Locks `dir` (which must exist), or fails at once with who holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).writing(&path)?;
        let deadline = std::time::Instant::now() + DYING_HOLDER_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = lock_holder(&mut file);
                    if holder.is_some_and(dying) && std::time::Instant::now() < deadline {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                    let who = holder.map_or("another process".to_string(), |pid| format!("process {pid}"));
                    return Err(Error::input(
                        dir,
                        format!("is in use by {who} (lock {}); wait for it to finish or stop it", path.display()),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::write(&path, e)),
            }
        }
        // The holder's pid, for the error above; written only once the lock is ours.
        let written = file.set_len(0).and_then(|_| {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(0))?;
            write!(file, "{}", std::process::id())?;
            file.flush()
        });
        written.writing(&path)?;
        Ok(DirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How long a lock held by a dying process is waited for before the folder is refused as in use.
pub const DYING_HOLDER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The pid a lock file names (its holder's, written once the lock was taken).
fn lock_holder(file: &mut std::fs::File) -> Option<u32> {
    use std::io::Seek;
    let mut text = String::new();
    file.seek(std::io::SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The process is exiting: its main thread is a zombie (its other threads may still be closing its files).
/// False for a live process and for one this machine cannot see (a holder on another node of a shared
/// filesystem: refused at once).
fn dying(pid: u32) -> bool {
    process_state(pid).is_some_and(|c| c == 'Z' || c == 'X')
}

/// A process's state letter from /proc/PID/stat (R, S, T, Z, …; its main thread's), None where that cannot be
/// read (no such process here, or not Linux).
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMMAND) STATE …": the command may hold spaces and parentheses, the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Creates the folder `out` from what `fill` writes into a temporary folder beside it, moved into place once
/// `fill` succeeds: `out` must be new or empty (a dataset is never mixed with an older one's files), and a
/// failed run leaves nothing behind.
pub fn write_dir_atomic<T>(out: &Path, fill: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::input(out, "is not empty: give a new or empty folder (nothing was written)"));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(out, e)),
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).writing(&parent)?;
    let name = out.file_name().ok_or_else(|| Error::input(out, "not a folder path"))?.to_string_lossy().into_owned();
    let tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).tempdir_in(&parent).writing(&parent)?;
    let value = fill(tmp.path()).map_err(|e| named_in(e, tmp.path(), out))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // tempdir makes the folder private (0700); a dataset is an ordinary folder.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).writing(out)?;
    }
    // rename(2) replaces an empty folder, so an empty `out` (checked above) is taken over as it is.
    std::fs::rename(tmp.path(), out).writing(out)?;
    // Moved: nothing is left for the guard to remove.
    let _ = tmp.keep();
    Ok(value)
}

/// FNV-1a 64 of a file, as 16 hex digits: cheap, stable across platforms and Rust versions.
pub fn fingerprint(path: &Path) -> Result<String> {
    Ok(format!("{:016x}", fnv_file(path)?.0))
}

/// FNV-1a 64 and length of a regular file, streamed (checkpoints are hundreds of MB).
pub fn fnv_file(path: &Path) -> Result<(u64, u64)> {
    let (mut r, _) = open_regular(path)?;
    let mut h = FNV_OFFSET;
    let mut len = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h = fnv1a(h, &buf[..n]);
        len += n as u64;
    }
    Ok((h, len))
}

/// FNV-1a 64's starting value; [`fnv1a`] continues a hash over more bytes. Stable across Rust versions and
/// machines (std's hashers are not), so names derived from it (fingerprints, sweep task folders) stay valid.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A path made absolute (a run.json holds absolute paths, so a resume works from any folder); as given when the
/// working folder cannot be read.
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A failed write inside the temporary folder of [`write_dir_atomic`], named by where the file was going: the
/// temporary folder is gone by the time the user reads the error.
fn named_in(e: Error, tmp: &Path, out: &Path) -> Error {
    match e {
        Error::Write { path, what, source } => match path.strip_prefix(tmp) {
            Ok(rel) => Error::Write { path: out.join(rel), what, source },
            Err(_) => Error::Write { path, what, source },
        },
        other => other,
    }
}

/// Writes `text` to stdout and flushes it, returning the error `print!` would panic on (a closed pipe, a full
/// disk behind `> report.json`).
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// `eprintln!` that cannot panic: a stderr that has gone (`ticket … 2>&1 | tee log` after tee is killed, a full
/// disk behind `2> log`) loses the line, not the run, and not the command's exit code.
pub fn stderr_line(line: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
