//! One error type for the crate. Every message is one line that names the file, tensor or option at fault,
//! because users read these in CI logs. An I/O failure keeps its `io::Error` as the source, and whose fault it
//! was decides the exit code: a file the user named that cannot be read is bad input (2); an output the
//! environment refuses to take (a full disk, a read-only file system, a folder without write permission) is the
//! environment's (3).
//!
//! A setting the user chose that cannot be used is an [`Error::Setting`]: the library names settings by their own
//! names (the fields of its settings structs: `batch`, `max_map_drop`), and the command line renders them as its
//! flags ([`Error::render_settings`]).
//!
//! [`Context`] adds the path (and what was being read) to a failure, the way tract's `with_context` does:
//! `std::fs::read(path).at(path)?`, `serde_json::from_slice(&b).context(path, "not a COCO file")?`, and
//! [`WriteContext::writing`] for outputs.
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's input (a file, an option, a combination of both) is wrong. Exit code 2.
    #[error("{0}")]
    Input(String),
    /// A setting (or a combination of settings) cannot be used. Exit code 2. `message` is the whole line, and it
    /// writes each setting it names in backticks by its library name: "`batch` 0 is outside 1..=1024", "`rewind`
    /// STEP needs the dense training that `trained` skips". `setting` is the one at fault (the first named).
    #[error("{message}")]
    Setting { setting: &'static str, message: String },
    /// A file or folder the user named cannot be read or used. Exit code 2.
    #[error("{}", at_line(path, what.as_deref(), source))]
    Io {
        path: PathBuf,
        /// What was being read when it failed ("external data file 'w.bin'"), if the path alone does not say.
        what: Option<String>,
        #[source]
        source: io::Error,
    },
    /// An output could not be written for a reason of the environment, not of the input. Exit code 3.
    #[error("{}", at_line(path, Some(what.as_deref().unwrap_or("cannot write")), source))]
    Write {
        path: PathBuf,
        /// What failed ("cannot create the work folder"), where "cannot write" would not say it.
        what: Option<String>,
        #[source]
        source: io::Error,
    },
    /// The environment cannot do the work (ONNX Runtime missing, a worker failed). Exit code 3.
    #[error("{0}")]
    Runtime(String),
    /// The work ran but a check did not hold (outputs differ). Exit code 1.
    #[error("{0}")]
    Check(String),
    /// A check failed after its report was printed (with `--json`, the report says so). Exit code 1.
    #[error("{0}")]
    Reported(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn input(path: impl AsRef<Path>, msg: impl std::fmt::Display) -> Self {
        Error::Input(one_line(&format!("{}: {}", path.as_ref().display(), msg)))
    }

    /// `message` (naming `setting` and any other setting in backticks) about `setting`.
    pub fn setting(setting: &'static str, message: impl std::fmt::Display) -> Self {
        Error::Setting { setting, message: one_line(&message.to_string()) }
    }

    /// [`Error::setting`] about the file or folder `path` ("RUN_DIR: `steps` 5 is below …").
    pub fn setting_at(path: impl AsRef<Path>, setting: &'static str, message: impl std::fmt::Display) -> Self {
        Error::setting(setting, format!("{}: {message}", path.as_ref().display()))
    }

    /// The one-line message with each setting an [`Error::Setting`] names written as `name` spells it (a front
    /// end's flag: `batch` → `--batch`); a backticked word `name` does not know stays as it is. Any other error
    /// is its `Display`.
    pub fn render_settings(&self, name: impl Fn(&str) -> Option<String>) -> String {
        let Error::Setting { message, .. } = self else {
            return self.to_string();
        };
        let mut out = String::with_capacity(message.len());
        let mut rest = message.as_str();
        while let Some(open) = rest.find('`') {
            out += &rest[..open];
            let after = &rest[open + 1..];
            let word = after.find('`').map(|close| &after[..close]).filter(|w| is_setting_name(w));
            match word.and_then(|w| name(w).map(|n| (w.len(), n))) {
                Some((len, n)) => {
                    out += &n;
                    rest = &after[len + 1..];
                }
                None => {
                    out.push('`');
                    rest = after;
                }
            }
        }
        out + rest
    }

    /// Reading (or using) `path` failed: bad input, with the I/O error kept as the source.
    pub fn io(path: impl AsRef<Path>, err: io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), what: None, source: err }
    }

    /// Writing `path` failed. The environment's fault (exit 3) unless the path itself is what is wrong: a folder
    /// that does not exist, a file where a folder should be, a name the file system refuses (exit 2).
    pub fn write(path: impl AsRef<Path>, err: io::Error) -> Self {
        Error::write_what(path.as_ref(), None, err)
    }

    fn write_what(path: &Path, what: Option<String>, err: io::Error) -> Self {
        use io::ErrorKind::*;
        let path = path.to_path_buf();
        match err.kind() {
            NotFound | NotADirectory | IsADirectory | InvalidFilename | InvalidInput | AlreadyExists | DirectoryNotEmpty => {
                Error::Io { path, what, source: err }
            }
            _ => Error::Write { path, what, source: err },
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Check(_) | Error::Reported(_) => 1,
            Error::Input(_) | Error::Setting { .. } | Error::Io { .. } => 2,
            Error::Runtime(_) | Error::Write { .. } => 3,
        }
    }
}

/// A setting's library name: a word of lowercase letters, digits and underscores.
fn is_setting_name(w: &str) -> bool {
    !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `PATH: WHAT: ERROR` on one line.
fn at_line(path: &Path, what: Option<&str>, err: &dyn std::fmt::Display) -> String {
    match what {
        Some(w) => one_line(&format!("{}: {w}: {err}", path.display())),
        None => one_line(&format!("{}: {err}", path.display())),
    }
}

/// Shorthand for turning a message into an input error inside an `Option`/`Result` chain.
pub fn bad_input(msg: impl Into<String>) -> Error {
    Error::Input(one_line(&msg.into()))
}

/// Messages quote other libraries' errors and bytes from the user's files, which may hold line breaks (an
/// XML parser quoting the document): they are folded so that every error stays one line.
pub fn one_line(msg: &str) -> String {
    if !msg.contains(['\n', '\r']) {
        return msg.to_string();
    }
    msg.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// `WHAT: MSG`, or `MSG` alone.
fn with_what(what: Option<String>, msg: impl std::fmt::Display) -> String {
    match what {
        Some(w) => format!("{w}: {msg}"),
        None => msg.to_string(),
    }
}

/// A failure that becomes bad input naming a path: an I/O error stays the source ([`Error::Io`]); any other
/// error (a parser's, a message) is kept as its text.
pub trait Cause: std::fmt::Display + Sized {
    fn at_path(self, path: &Path, what: Option<String>) -> Error {
        Error::input(path, with_what(what, self))
    }
}

impl Cause for io::Error {
    fn at_path(self, path: &Path, what: Option<String>) -> Error {
        Error::Io { path: path.to_path_buf(), what, source: self }
    }
}

impl Cause for String {}
impl Cause for &str {}
impl Cause for serde_json::Error {}
impl Cause for safetensors::SafeTensorError {}
impl Cause for image::ImageError {}
impl Cause for std::string::FromUtf8Error {}
impl Cause for hotcoco::Error {}
impl Cause for hotcoco::convert::ConvertError {}
/// An error of this crate's under another path ("model.onnx: initializer 'w': w.bin: …"), kept as its text; a
/// setting's error stays one, so that the settings it names are still rendered by the front end.
impl Cause for Error {
    fn at_path(self, path: &Path, what: Option<String>) -> Error {
        match self {
            Error::Setting { setting, message } => Error::setting_at(path, setting, with_what(what, message)),
            e => Error::input(path, with_what(what, e)),
        }
    }
}

/// The path (and what was being read) added to a failure: bad input, exit 2.
pub trait Context<T> {
    /// `PATH: ERROR`.
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
    /// `PATH: WHAT: ERROR`.
    fn context(self, path: impl AsRef<Path>, what: impl std::fmt::Display) -> Result<T>;
    /// [`Context::context`] with `what` made only on failure (inside loops over tensors).
    fn with_context<D: std::fmt::Display>(self, path: impl AsRef<Path>, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Cause> Context<T> for std::result::Result<T, E> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| e.at_path(path.as_ref(), None))
    }

    fn context(self, path: impl AsRef<Path>, what: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| e.at_path(path.as_ref(), Some(what.to_string())))
    }

    fn with_context<D: std::fmt::Display>(self, path: impl AsRef<Path>, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.at_path(path.as_ref(), Some(what().to_string())))
    }
}

/// An output's path added to a failed write: [`Error::write`] decides whose fault it was.
pub trait WriteContext<T> {
    /// `PATH: cannot write: ERROR`.
    fn writing(self, path: impl AsRef<Path>) -> Result<T>;
    /// `PATH: WHAT: ERROR`, for a step that is not a plain write (making a folder, clearing one).
    fn writing_context(self, path: impl AsRef<Path>, what: &str) -> Result<T>;
}

impl<T> WriteContext<T> for io::Result<T> {
    fn writing(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::write(path, e))
    }

    fn writing_context(self, path: impl AsRef<Path>, what: &str) -> Result<T> {
        self.map_err(|e| Error::write_what(path.as_ref(), Some(what.to_string()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_failures_keep_their_source_and_name_the_path() {
        let e = std::fs::read("/nonexistent/x.onnx").at("/nonexistent/x.onnx").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("/nonexistent/x.onnx: No such file"), "{e}");
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<io::Error>()).expect("an io::Error source");
        assert_eq!(source.kind(), io::ErrorKind::NotFound);
        let e = Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)).context("m.onnx", "external data file 'w.bin'").unwrap_err();
        assert!(e.to_string().starts_with("m.onnx: external data file 'w.bin': "), "{e}");
    }

    #[test]
    fn a_write_the_environment_refuses_exits_3_and_a_wrong_path_2() {
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::ReadOnlyFilesystem, io::ErrorKind::PermissionDenied] {
            let e = Err::<(), _>(io::Error::from(kind)).writing("out/x.onnx").unwrap_err();
            assert_eq!(e.exit_code(), 3, "{kind:?}");
            assert!(e.to_string().starts_with("out/x.onnx: cannot write: "), "{e}");
        }
        let e = Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)).writing("nowhere/x.onnx").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e =
            Err::<(), _>(io::Error::from(io::ErrorKind::StorageFull)).writing_context("work", "cannot create the work folder").unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().starts_with("work: cannot create the work folder: "), "{e}");
    }

    #[test]
    fn a_setting_error_names_the_setting_and_a_front_end_renders_it() {
        let e = Error::setting("max_map_drop", "`max_map_drop` -1 must be ≥ 0, with `rounds` > 1");
        assert!(matches!(e, Error::Setting { setting: "max_map_drop", .. }));
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.to_string(), "`max_map_drop` -1 must be ≥ 0, with `rounds` > 1");
        let flag = |k: &str| (k != "rounds").then(|| format!("--{}", k.replace('_', "-")));
        assert_eq!(e.render_settings(flag), "--max-map-drop -1 must be ≥ 0, with `rounds` > 1");
        // Under a path, through the context helpers, it stays a setting's error.
        let e = Err::<(), _>(e).context("run.json", "holds settings a run cannot have").unwrap_err();
        assert!(matches!(e, Error::Setting { setting: "max_map_drop", .. }));
        assert_eq!(e.render_settings(flag), "run.json: holds settings a run cannot have: --max-map-drop -1 must be ≥ 0, with `rounds` > 1");
        // A lone backtick, or one that closes nothing the front end knows, is left alone.
        let e = Error::setting_at("a`b", "batch", "`batch` 0 is outside `x");
        assert_eq!(e.render_settings(flag), "a`b: --batch 0 is outside `x");
        assert_eq!(Error::Input("`batch`".into()).render_settings(flag), "`batch`");
    }

    #[test]
    fn other_causes_become_one_line_input_errors() {
        let e = serde_json::from_str::<u32>("x").context("a.json", "not a number").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("a.json: not a number: expected value"), "{e}");
        let e = Err::<(), _>("line 1\nline 2".to_string()).at("b.xml").unwrap_err();
        assert_eq!(e.to_string(), "b.xml: line 1 line 2");
    }
}
