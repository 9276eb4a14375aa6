//! Files: the JSON-lines source and the JSON-lines dead-letter file.
//!
//! ```
//! use std::time::Duration;
//! use observebridge_connectors::files::{FileSourceConfig, JsonLinesSource};
//! use observebridge_connectors::source::{Poll, Source};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("logs.jsonl");
//! std::fs::write(&path, "{\"a\":1}\n\n{\"a\":2}\n")?;
//! let mut source = JsonLinesSource::new("logs", &FileSourceConfig { paths: vec![path] })?;
//! let mut records = Vec::new();
//! while source.poll(100, Duration::ZERO, &mut records)? == Poll::Open {}
//! // Line numbers are offsets; the blank line 2 is skipped.
//! assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), [1, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - `config`: [`FileSourceConfig`], [`FileDeadLetterConfig`] and their validation.
//! - `source`: [`JsonLinesSource`].
//! - `dead_letter`: [`FileDeadLetterSink`]; [`DeadLetterRecord::new`](crate::dead_letter::DeadLetterRecord::new) builds a dead letter from a
//!   payload (UTF-8 or base64).

mod config;
mod dead_letter;
mod source;

#[cfg(test)]
mod tests;

pub use config::{ConfigError, FileDeadLetterConfig, FileSourceConfig};
pub use dead_letter::FileDeadLetterSink;
pub use source::JsonLinesSource;
