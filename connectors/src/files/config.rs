//! Configuration of the JSON-lines file source and the dead-letter file: serde data, checked by
//! `validate()` before any file is opened.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A configuration field breaks a rule; found by `validate()` before any I/O.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file config {field}: {message}")]
pub struct ConfigError {
    /// The offending field (`paths`, `paths[2]`, `path`).
    pub field: String,
    /// What is wrong with it, and a hint.
    pub message: String,
}

/// Configuration of a [`JsonLinesSource`](super::JsonLinesSource).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// JSON-lines files to read, in this order; each file is one partition (its index here).
    pub paths: Vec<PathBuf>,
}

impl FileSourceConfig {
    /// Checks every rule that can be checked without touching the file system.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.paths.is_empty() {
            return Err(ConfigError {
                field: "paths".into(),
                message: "no file given. Name at least one file.".into(),
            });
        }
        for (i, path) in self.paths.iter().enumerate() {
            if path.as_os_str().is_empty() {
                return Err(ConfigError {
                    field: format!("paths[{i}]"),
                    message: "is empty".into(),
                });
            }
            if self.paths[..i].contains(path) {
                return Err(ConfigError {
                    field: format!("paths[{i}]"),
                    message: format!("{} is listed twice", path.display()),
                });
            }
        }
        Ok(())
    }
}

/// Configuration of a [`FileDeadLetterSink`](super::FileDeadLetterSink).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDeadLetterConfig {
    /// The JSON-lines file dead letters are appended to; it and its parent directories are
    /// created when missing.
    pub path: PathBuf,
}

impl FileDeadLetterConfig {
    /// Checks every rule that can be checked without touching the file system.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError {
                field: "path".into(),
                message: "is empty. Name the dead-letter file.".into(),
            });
        }
        Ok(())
    }
}
