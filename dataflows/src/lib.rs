//! ObserveBridge dataflows: decoders, event time and the views, on timely + differential.
//!
//! # Layout
//! - [`record`]: what sources hand in ([`record::RawMessage`]) and what decoders make of it.
//! - [`decode`]: wire formats to typed records; failures become dead letters.
//! - [`histogram`]: the mergeable, retractable log-bucket histogram behind every quantile.
//! - [`pairing`]: spans to calls (client/server pairs, virtual nodes) in event time.
//! - [`time`]: windows and watermarks in event time.
//! - [`logs`]: log header formats, masking and the template miner (pure Rust, no timely).
//! - [`window`]: the windowed-aggregate operator every windowed view is built on.
//! - [`views`]: the views, one file each; [`views::raw_archive`] also keeps every decoded record
//!   as Parquet (one object per signal and minute) with `raw_locator` pointing at each object.
//! - [`changes`]: Kubernetes watch events to change records (object state, field-level diffs).
//! - [`engine`]: one worker's dataflow: inputs per epoch, the views, and what it hands the sinks.

pub mod changes;
pub mod decode;
pub mod engine;
pub mod histogram;
pub mod logs;
pub mod pairing;
pub mod record;
pub mod time;
pub mod views;
pub mod window;
