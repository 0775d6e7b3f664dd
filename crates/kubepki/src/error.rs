//! The library's error type. Messages are lowercase, name the operation and the path, then the
//! cause: `failed to write out/pki/ca.key: permission denied`. `Display` is the message alone (an
//! embedder prints it as it likes); `report::error_text` is what the command line prints.

use std::fmt;
use std::path::Path;

use crate::diag::Diagnostic;
use crate::plan::Problem;

/// Everything that can stop a run.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// pki.toml (or a template it names) is wrong.
    Spec {
        /// The spec file as the user names it.
        file: String,
        /// Every diagnostic, rendered with file, line, column and the offending line.
        rendered: String,
        /// The diagnostics themselves.
        diagnostics: Vec<Diagnostic>,
    },
    /// The plan cannot be carried out as it stands (a damaged CA, a template error).
    Blocked(Vec<Problem>),
    /// As `Blocked`, for a run that asked for a machine-readable `--format`: the problems, and
    /// the plan in that format with its problems in it, which the command line prints on stdout
    /// (for a bot to post) beside the error on stderr.
    BlockedPlan {
        /// What stops the run.
        problems: Vec<Problem>,
        /// The plan as `--format` prints it.
        document: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// What was being done (`read`, `write`, `create`...).
        op: &'static str,
        /// The file it was done to.
        path: String,
        /// What went wrong, in lowercase words.
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
    /// An I/O error of `op` on `path`, its cause without the OS error number.
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
            Error::Spec {
                file, diagnostics, ..
            } => {
                let n = diagnostics.len();
                write!(f, "{file} has {n} error{}", if n == 1 { "" } else { "s" })?;
                for d in diagnostics {
                    write!(f, "; {}", d.message)?;
                }
                Ok(())
            }
            Error::Blocked(problems) | Error::BlockedPlan { problems, .. } => {
                let n = problems.len();
                write!(
                    f,
                    "{n} problem{} the run",
                    if n == 1 { " stops" } else { "s stop" }
                )?;
                for p in problems {
                    write!(f, "; {p}")?;
                }
                Ok(())
            }
            Error::Io { op, path, cause } => write!(f, "failed to {op} {path}: {cause}"),
            Error::Locked(msg) | Error::Usage(msg) | Error::Crypto(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}
