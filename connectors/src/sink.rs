//! What sinks are handed.

use arrow::record_batch::RecordBatch;

/// The changes of one frontier to one table (a view), as Arrow batches.
///
/// `upserts` holds whole rows (the view's Arrow schema); `deletes` holds only the key columns,
/// in the order of `key_columns`. A key appears at most once across both.
#[derive(Clone, Debug)]
pub struct TableChanges {
    pub table: String,
    pub key_columns: Vec<String>,
    pub upserts: RecordBatch,
    pub deletes: RecordBatch,
}

/// The rows of one window of a view that became final (the watermark passed its end): they will
/// never change again. Append-only sinks (Parquet) write these, one object per window.
#[derive(Clone, Debug)]
pub struct FinalWindow {
    pub view: String,
    /// Start of the window, ms since the Unix epoch (UTC).
    pub window_start_ms: i64,
    /// Rows sorted by primary key, so that the written object is the same on every retry.
    pub rows: RecordBatch,
}

/// A completed frontier of the engine: everything before it has been handed to the sinks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier {
    /// The job's name (the key of its progress row).
    pub job: String,
    /// The engine's epoch counter (restarts from 0 after a process restart).
    pub epoch: u64,
    /// The event-time watermark after this frontier (ms), if any partition has data;
    /// `i64::MAX` once every input has ended (every window is final).
    pub watermark_ms: Option<i64>,
    /// Source positions at this frontier, as JSON (`{"<partition name>": next_offset, ...}`).
    pub positions: serde_json::Value,
}
