//! Parquet on object storage: where objects go ([`ObjectStoreConfig`]) and the append-only sink
//! that writes final windows ([`ParquetSink`]).
//!
//! # Layout
//! - `config`: [`ObjectStoreConfig`] (a plain path, `file://` URL or `s3://bucket/prefix`, with
//!   endpoint, region, credentials) and [`RetryConfig`]; `validate()` runs before any I/O and
//!   `build()` turns the config into an `object_store` client plus the prefix under which
//!   objects go.
//! - `sink`: [`ParquetSink`] (one object per final window, deterministic key and bytes, retried
//!   puts) and [`read_parquet`] (reads an object back into record batches).
//! - `error`: [`ParquetError`], shared by both.
//!
//! # Example
//!
//! A final window of `metric_1m` starting at 2026-11-21T13:05:00Z, written under `./data`, lands at
//! `./data/metric_1m/date=2026-11-21/hour=13/metric_1m-20261121T130500Z.parquet`:
//!
//! ```no_run
//! # async fn demo(window: observebridge_connectors::sink::FinalWindow) -> Result<(), observebridge_connectors::parquet::ParquetError> {
//! use observebridge_connectors::parquet::{ObjectStoreConfig, ParquetSink};
//!
//! let cfg = ObjectStoreConfig { url: "./data".into(), ..ObjectStoreConfig::default() };
//! let sink = ParquetSink::new(&cfg)?;
//! let key = sink.write(&window, |attempt, err| eprintln!("retry {attempt}: {err}")).await?;
//! # let _ = key; Ok(()) }
//! ```
//!
//! Writing the same window again (a retry, a replay, a restart) puts the same bytes at the same
//! key, so the history never holds a duplicate, and since a put is atomic readers never see half
//! an object.

mod config;
mod error;
mod sink;

#[cfg(test)]
mod tests;

pub use crate::retry::RetryConfig;
pub use config::ObjectStoreConfig;
pub use error::ParquetError;
pub use sink::{ParquetSink, read_parquet};
