//! The JSON-lines dead-letter file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};


use super::config::FileDeadLetterConfig;
use crate::dead_letter::{DeadLetterError, DeadLetterRecord, DeadLetterSink};

/// Appends dead letters to a file, one JSON [`DeadLetterRecord`] per line.
///
/// [`write`](DeadLetterSink::write) appends the whole batch with one write and `fsync`s it, so the
/// records are durable when it returns `Ok`. A failed write is cut back off the file, so a later
/// successful write never follows a torn line.
pub struct FileDeadLetterSink {
    path: PathBuf,
    file: File,
}

impl FileDeadLetterSink {
    /// Validates `cfg`, creates the parent directories and opens the file for appending (creating
    /// it when missing).
    pub fn new(cfg: &FileDeadLetterConfig) -> Result<Self, DeadLetterError> {
        let path = cfg.path.clone();
        cfg.validate().map_err(|e| {
            file_error(
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
            )
        })?;
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent {
            std::fs::create_dir_all(parent).map_err(|e| file_error(&path, e))?;
        }
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| file_error(&path, e))?;
        if !existed {
            // Make the new directory entry itself durable.
            sync_dir(parent.unwrap_or_else(|| Path::new("."))).map_err(|e| file_error(&path, e))?;
        }
        Ok(Self { path, file })
    }
}

impl DeadLetterSink for FileDeadLetterSink {
    fn write(&mut self, records: &[DeadLetterRecord]) -> Result<(), DeadLetterError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(records.len() * 256);
        for record in records {
            serde_json::to_writer(&mut buf, record)
                .map_err(|e| file_error(&self.path, std::io::Error::other(e)))?;
            buf.push(b'\n');
        }
        let len_before = self
            .file
            .metadata()
            .map_err(|e| file_error(&self.path, e))?
            .len();
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            if let Err(cut) = self.file.set_len(len_before) {
                tracing::error!(path = %self.path.display(), error = %cut, "cannot cut a failed dead-letter write off the file");
            }
            return Err(file_error(&self.path, e));
        }
        tracing::debug!(path = %self.path.display(), records = records.len(), "dead letters written to file");
        Ok(())
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

fn file_error(path: &Path, source: std::io::Error) -> DeadLetterError {
    DeadLetterError::File {
        path: path.display().to_string(),
        source,
    }
}
