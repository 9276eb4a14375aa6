//! The source contract.

use std::time::Duration;

/// One message read from a source: its bytes and where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    /// Index of the partition in the source's own partition table ([`Source::partitions`]).
    pub partition: u32,
    /// Kafka offset, file line number (from 1) or generator sequence number.
    pub offset: u64,
    pub payload: Vec<u8>,
}

/// A partition of a source, as [`Source::partitions`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Human-readable, stable name: `kafka:<topic>/<partition>`, `file:<path>`, `generator:<stream>`.
    pub name: String,
    /// Where reading starts after a restart: records below `replay_until` were already processed
    /// before (their dead letters written, their windows partly built) and are re-read only to
    /// rebuild window state. `None` when nothing was committed before.
    pub replay_until: Option<u64>,
    /// The largest event time (ms) seen on this partition as of the last commit, if any: restores
    /// the watermark after a restart.
    pub max_event_time: Option<i64>,
}

/// What the engine commits for one partition once every sink has made a frontier durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionCommit {
    pub partition: u32,
    /// The next offset to read (last processed + 1).
    pub next_offset: u64,
    /// The first offset to re-read after a restart so that open windows can be rebuilt
    /// (`<= next_offset`).
    pub restart_offset: u64,
    /// The largest event time seen on the partition up to `next_offset`.
    pub max_event_time: Option<i64>,
}

/// What a poll found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Poll {
    /// The source may have more records later.
    Open,
    /// A bounded source has handed out its last record.
    Exhausted,
}

/// Errors of sources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("kafka source {name}: {message}")]
    Kafka { name: String, message: String },
    #[error("file source {path}: {source}")]
    File { path: String, #[source] source: std::io::Error },
    #[error("source {name}: {message}")]
    Other { name: String, message: String },
}

/// A source of raw records.
///
/// Called from one driver thread: `poll` repeatedly, `commit` after sinks made a frontier durable.
/// Contract:
/// - `poll` appends at most `max` records to `out`, waiting at most `timeout` when none is ready,
///   and returns [`Poll::Exhausted`] only once a bounded source has nothing more.
/// - Within a partition, offsets handed out are strictly increasing.
/// - `partitions` may grow over time (a Kafka topic gains partitions); indices never change.
/// - `commit` is durable when it returns `Ok` (a no-op for sources that cannot commit).
pub trait Source: Send {
    fn poll(&mut self, max: usize, timeout: Duration, out: &mut Vec<RawRecord>) -> Result<Poll, SourceError>;
    fn partitions(&self) -> Vec<PartitionInfo>;
    fn commit(&mut self, commits: &[PartitionCommit]) -> Result<(), SourceError>;
    /// Per partition (indexed like [`Source::partitions`]), the offset after the last record the
    /// source knows exists (Kafka's high watermark), when known: `end - next offset` is the
    /// partition's lag. Cheap (no request); the default knows nothing.
    fn end_offsets(&self) -> Vec<Option<u64>> {
        Vec::new()
    }
}
