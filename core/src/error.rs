//! One error type for the library. Every variant names the object that failed
//! (a path, a byte offset, a shape, a config field) so the CLI can print one
//! clear line.

use std::path::PathBuf;

/// Errors returned by curvlab's core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that must exist is absent.
    #[error("{path}: file not found ({what})")]
    MissingFile { path: PathBuf, what: String },

    /// A path exists but is not what is needed there: a regular file where a
    /// directory is expected, a FIFO where a file is, …
    #[error("{path}: is {found}, not {expected} ({what})")]
    WrongKind {
        path: PathBuf,
        /// What the path is: "a regular file", "a directory", "a FIFO", …
        found: &'static str,
        /// What it must be: "a directory" or "a regular file".
        expected: &'static str,
        what: String,
    },

    /// A file exists but could not be read or written. The I/O error is part
    /// of this message and deliberately not also its `source()`, so that a
    /// printed error chain (`{:#}`) states the cause once.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    /// A binary dataset file whose length is not a whole number of records.
    #[error("{path}: truncated or wrong record size: {len} bytes is not a multiple of the {record}-byte record (last record starts at offset {offset})")]
    RecordSize {
        path: PathBuf,
        len: u64,
        record: usize,
        offset: u64,
    },

    /// A label outside 0..classes.
    #[error("{path}: record {record} (offset {offset}): label {label} out of range 0..{classes}")]
    LabelOutOfRange {
        path: PathBuf,
        record: usize,
        offset: u64,
        label: u32,
        classes: usize,
    },

    /// Tensor shapes that cannot work together.
    #[error("shape error: {0}")]
    Shape(String),

    /// A configuration value that cannot work.
    #[error("config error: {0}")]
    Config(String),

    /// Weights file problems (format, names, shapes).
    #[error("{path}: {msg}")]
    Weights { path: PathBuf, msg: String },

    /// The compute backend failed (e.g. no wgpu adapter).
    #[error("backend error: {0}")]
    Backend(String),
}

/// Result alias for curvlab's core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        if cause.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.into(),
                what: cause.to_string(),
            }
        } else {
            Error::Io {
                path: path.into(),
                cause,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cause of an I/O error is printed once, also in a chain (`{:#}`,
    /// as the CLI prints errors), never "…: Permission denied (os error 13):
    /// Permission denied (os error 13)".
    #[test]
    fn an_io_cause_is_stated_once() {
        let e = Error::io(
            "/x/train.bin",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(std::error::Error::source(&e).is_none());
        let cause = std::io::Error::from(std::io::ErrorKind::PermissionDenied).to_string();
        let line = format!("{e}");
        assert_eq!(line, format!("/x/train.bin: {cause}"));
        assert_eq!(line.matches(&cause).count(), 1, "{line}");
    }
}
