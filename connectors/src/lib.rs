//! ObserveBridge connectors: sources that move bytes in, sinks that take Arrow batches out.
//!
//! # Layout
//! - [`source`]: the [`Source`](source::Source) trait every input implements, and its record type.
//! - [`sink`]: what sinks are handed: [`TableChanges`](sink::TableChanges) (upserts and deletes of
//!   one frontier), [`FinalWindow`](sink::FinalWindow) (the rows of a window that can no longer
//!   change) and the [`Frontier`](sink::Frontier) they belong to.
//! - [`kafka`]: Kafka source (assigned partitions, committed offsets with restart metadata), the
//!   Kafka dead-letter producer and the view changelog sink.
//! - [`archive`]: reading a time window back from object storage (the raw archive, or the
//!   OpenTelemetry Collector S3 exporter's files) as a bounded source, for replay.
//! - [`files`]: JSON-lines file source and the JSON-lines dead-letter file.
//! - [`generator`]: the embedded demo estate, deterministic for a seed.
//! - [`postgres`]: the Postgres sink (migrations, one transaction per frontier, retries).
//! - [`parquet`]: Parquet on object storage (`file://`, plain paths, `s3://`).
//! - [`dead_letter`]: the dead-letter record and the trait its destinations implement.
//! - [`retry`]: the backoff every sink retries transient failures with.
//!
//! Connectors know nothing of timely or of the views they carry: a source yields
//! [`RawRecord`](source::RawRecord)s, a sink is handed Arrow batches with table names and keys.

pub mod archive;
pub mod dead_letter;
pub mod files;
pub mod generator;
pub mod kafka;
pub mod parquet;
pub mod postgres;
pub mod retry;
pub mod sink;
pub mod source;
