//! The library's error type. Messages are lowercase, name the operation and the path, then the
//! cause: `failed to write out/pki/ca.key: permission denied`.

use std::fmt;
use std::path::Path;

use crate::diag::Diagnostic;

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// pki.toml (or a template it names) is wrong; already rendered with file, line and column.
    Spec {
        file: String,
        rendered: String,
        diagnostics: Vec<Diagnostic>,
    },
    /// The plan cannot be carried out as it stands (a damaged CA, a template error).
    Blocked(Vec<String>),
    /// Reading or writing a file failed.
    Io {
        op: &'static str,
        path: String,
        cause: String,
    },
    /// Another run holds the output folder.
    Locked(String),
    /// A command-line argument is wrong.
    Usage(String),
    /// Key generation or signing failed.
    Crypto(String),
}

impl Error {
    pub fn io(op: &'static str, path: &Path, e: std::io::Error) -> Error {
        let cause = e.to_string();
        let cause = cause
            .split(" (os error")
            .next()
            .unwrap_or(&cause)
            .to_lowercase();
        Error::Io {
            op,
            path: path.display().to_string(),
            cause,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spec { rendered, .. } => f.write_str(rendered.trim_end()),
            Error::Blocked(problems) => {
                for p in problems {
                    writeln!(f, "error: {p}")?;
                }
                write!(
                    f,
                    "error: {} problem{} the run; nothing was written",
                    problems.len(),
                    if problems.len() == 1 {
                        " stops"
                    } else {
                        "s stop"
                    }
                )
            }
            Error::Io { op, path, cause } => write!(f, "error: failed to {op} {path}: {cause}"),
            Error::Locked(msg) => write!(f, "error: {msg}"),
            Error::Usage(msg) => write!(f, "error: {msg}"),
            Error::Crypto(msg) => write!(f, "error: {msg}"),
        }
    }
}

impl std::error::Error for Error {}
