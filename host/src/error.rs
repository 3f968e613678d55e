//! The host's error: one line, as every command prints it after `error: `. Each kind keeps
//! what the line names (the file and line of a configuration, the plugin file, the path of an
//! I/O failure, the run that diverged), so a caller can tell them apart without reading the
//! text; deep inside training and the plugin session messages stay plain strings, which `?`
//! turns into [`Error::Message`].

use std::path::{Path, PathBuf};

use crate::plugin::loader::LoadError;

/// An error of a host command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration (a run file, a suite file, `--set`) that cannot be used; `line` (from 1)
    /// is the line to blame, when one is.
    #[error("{origin}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Config {
        /// The file (or flag) the configuration came from.
        origin: String,
        /// The line to blame.
        line: Option<usize>,
        /// What is wrong with it.
        message: String,
    },
    /// A plugin file that cannot be loaded.
    #[error(transparent)]
    Plugin(#[from] LoadError),
    /// A file or folder that cannot be read, written or created.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What failed: `read`, `write`, `create`, `lock`, ...
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A run whose loss or parameters became NaN or infinite.
    #[error("{0}")]
    Diverged(String),
    /// Any other failure, as one line.
    #[error("{0}")]
    Message(String),
}

impl Error {
    /// A configuration error at `line` of `origin`.
    pub fn config(origin: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Error::Config {
            origin: origin.to_string(),
            line,
            message: message.into(),
        }
    }

    /// An I/O error: `action` (`read`, `write`, `create`, ...) on `path` failed.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::Message(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::Message(message.to_string())
    }
}

/// The line itself, for code that still passes errors as strings.
impl From<Error> for String {
    fn from(e: Error) -> Self {
        e.to_string()
    }
}
