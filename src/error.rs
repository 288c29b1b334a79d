//! One error type for the crate. Every message is one line that names the file, tensor or option at fault,
//! because users read these in CI logs. `anyhow` appears only at the CLI edge.
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's input (a file, an option, a combination of both) is wrong. Exit code 2.
    #[error("{0}")]
    Input(String),
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

    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Error::input(path, err)
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Check(_) | Error::Reported(_) => 1,
            Error::Input(_) => 2,
            Error::Runtime(_) => 3,
        }
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
