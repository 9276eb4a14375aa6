//! Replay input: a time window of telemetry read back from object storage, from ObserveBridge's
//! raw archive or from the OpenTelemetry Collector's S3 exporter files.
//!
//! A replay first lists the window ([`list`]): per signal and hour of
//! `[from - warmup, to + tail)`, one list request under the hour's prefix (never the bucket),
//! keeping the objects whose minute meets the range. Then [`ArchiveSource`] reads them in
//! event-time order as [`RawRecord`](crate::source::RawRecord)s, one partition per signal and
//! format, with counters for a progress bar ([`ArchiveProgress`]).
//!
//! | layout | objects | one record is |
//! |---|---|---|
//! | `raw_archive` | `raw/<signal>/date=YYYY-MM-DD/hour=HH/minute=MM/<signal>-YYYYMMDDTHHMMZ.parquet` | a row, as the [`RowEncoder`] encodes it (the engine's `archived` wire format) |
//! | `collector` | `<partition_format>/<prefix><traces\|metrics\|logs>_<unique>.binpb` | the file (`otlp_proto`) |
//! | `collector` | `<partition_format>/<prefix><traces\|metrics\|logs>_<unique>.json` | a JSON value of the file (`otlp_json`) |
//!
//! ```no_run
//! # fn demo(encoder: observebridge_connectors::archive::RowEncoder) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use observebridge_connectors::archive::{ArchiveConfig, ArchiveSource, Window, list};
//! use observebridge_connectors::parquet::ObjectStoreConfig;
//! use observebridge_connectors::source::{Poll, Source};
//!
//! let config = ArchiveConfig::new(ObjectStoreConfig { url: "./data".into(), ..ObjectStoreConfig::default() });
//! let window = Window { warmup_ms: 600_000, ..Window::new(1_795_266_000_000, 1_795_269_600_000) };
//! let listing = list(&config, &window)?;
//! println!("{} objects, {} bytes", listing.objects.len(), listing.total_bytes());
//! let mut source = ArchiveSource::new("replay", &config, listing, encoder)?;
//! let progress = source.progress();
//! let mut records = Vec::new();
//! while source.poll(10_000, Duration::from_millis(100), &mut records)? == Poll::Open {
//!     // hand `records` to the engine, each partition decoded as `source.partition_encoding(p)` says
//!     records.clear();
//!     let _now = progress.snapshot();
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `config`: [`ArchiveConfig`] (the Parquet sink's [`ObjectStoreConfig`], the layout, the
//!   signals, `on_error`, prefetch), [`Window`] and the signal and format names.
//! - `listing`: [`list`] / [`list_window`] and what they return ([`Listing`], [`ListedObject`]).
//! - `source`: [`ArchiveSource`], its [`ArchiveProgress`] and the [`RowEncoder`] it is given.
//!
//! [`ObjectStoreConfig`]: crate::parquet::ObjectStoreConfig

mod config;
mod listing;
mod source;

#[cfg(test)]
mod tests;

pub use config::{ArchiveConfig, ArchiveFormat, ArchiveSignal, COLLECTOR_PARTITION_FORMAT, Layout, OnError, Window};
pub use listing::{ListedObject, Listing, list, list_window};
pub use source::{ArchiveProgress, ArchiveSource, ProgressSnapshot, RowEncoder, SkippedObject};

use crate::parquet::ParquetError;

/// Errors of listing and opening a replay's input (reading errors name their object in a
/// [`SourceError`](crate::source::SourceError)).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A configuration rule is broken; names the field.
    #[error("archive source: {field} {message}")]
    Config { field: String, message: String },
    /// The object store settings are invalid or the client cannot be built.
    #[error("archive source: {0}")]
    Store(#[from] ParquetError),
    /// The window is empty or out of range.
    #[error("archive window: {0}")]
    Window(String),
    /// A list request failed.
    #[error("archive source: listing {prefix} failed: {source}")]
    List {
        prefix: String,
        #[source]
        source: object_store::Error,
    },
    /// The source's thread or runtime could not start.
    #[error("archive source: {0}")]
    Runtime(String),
}
