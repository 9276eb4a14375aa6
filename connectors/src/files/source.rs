//! The JSON-lines file source.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Duration;

use super::config::FileSourceConfig;
use crate::source::{PartitionCommit, PartitionInfo, Poll, RawRecord, Source, SourceError};

/// Reads JSON-lines files one after the other, each file a partition (its index in
/// [`FileSourceConfig::paths`]), each line a record whose offset is its line number from 1.
/// Blank lines are skipped but still counted, so offsets are the line numbers an editor shows.
///
/// The source is bounded: [`Poll::Exhausted`] comes with (or after) the last line of the last
/// file; records appended by that call are valid. Files are read through a buffer, one line at a
/// time, never whole. Lines are handed out as bytes (without the line ending); whether they are
/// JSON is for the decoder to say. Nothing is committed: a restarted run reads the files again.
pub struct JsonLinesSource {
    name: String,
    paths: Vec<PathBuf>,
    infos: Vec<PartitionInfo>,
    /// The file being read (index into `paths`); `paths.len()` once all are read.
    current: usize,
    reader: Option<BufReader<File>>,
    /// Number of the last line read from the current file.
    line: u64,
}

impl JsonLinesSource {
    /// Validates `cfg` and checks that every file exists, so a typo fails before the run starts.
    /// `name` names the source in errors.
    pub fn new(name: &str, cfg: &FileSourceConfig) -> Result<Self, SourceError> {
        cfg.validate().map_err(|e| SourceError::Other {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        for path in &cfg.paths {
            let metadata = std::fs::metadata(path).map_err(|source| file_error(path, source))?;
            if metadata.is_dir() {
                let source = std::io::Error::new(
                    std::io::ErrorKind::IsADirectory,
                    "is a directory, not a JSON-lines file",
                );
                return Err(file_error(path, source));
            }
        }
        let infos = cfg
            .paths
            .iter()
            .map(|p| PartitionInfo {
                name: format!("file:{}", p.display()),
                replay_until: None,
                max_event_time: None,
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            paths: cfg.paths.clone(),
            infos,
            current: 0,
            reader: None,
            line: 0,
        })
    }

    /// The next non-blank line of the current file, or `None` at its end.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, SourceError> {
        let path = &self.paths[self.current];
        let reader = match &mut self.reader {
            Some(reader) => reader,
            None => {
                let file = File::open(path).map_err(|source| file_error(path, source))?;
                tracing::debug!(source = self.name.as_str(), path = %path.display(), "reading file");
                self.line = 0;
                self.reader.insert(BufReader::new(file))
            }
        };
        loop {
            let mut line = Vec::new();
            if reader
                .read_until(b'\n', &mut line)
                .map_err(|source| file_error(path, source))?
                == 0
            {
                return Ok(None);
            }
            self.line += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            if self.line == 1 && line.starts_with(b"\xEF\xBB\xBF") {
                line.drain(..3);
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(line));
            }
        }
    }
}

impl Source for JsonLinesSource {
    /// Appends up to `max` lines; never waits (`timeout` is unused).
    fn poll(
        &mut self,
        max: usize,
        _timeout: Duration,
        out: &mut Vec<RawRecord>,
    ) -> Result<Poll, SourceError> {
        let mut taken = 0;
        while taken < max || self.current >= self.paths.len() {
            if self.current >= self.paths.len() {
                return Ok(Poll::Exhausted);
            }
            match self.next_line()? {
                Some(payload) => {
                    // One partition per configured path: far fewer than 2^32.
                    let partition = u32::try_from(self.current).unwrap_or(u32::MAX);
                    out.push(RawRecord {
                        partition,
                        offset: self.line,
                        payload,
                    });
                    taken += 1;
                }
                None => {
                    self.reader = None;
                    self.current += 1;
                }
            }
        }
        Ok(Poll::Open)
    }

    fn partitions(&self) -> Vec<PartitionInfo> {
        self.infos.clone()
    }

    /// Files keep no offsets: a no-op.
    fn commit(&mut self, _commits: &[PartitionCommit]) -> Result<(), SourceError> {
        Ok(())
    }
}

fn file_error(path: &std::path::Path, source: std::io::Error) -> SourceError {
    SourceError::File {
        path: path.display().to_string(),
        source,
    }
}
