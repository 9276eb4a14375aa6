//! The views, one file each. A view is a function from collections to collections; this module
//! holds what every view's output shares: the [`ViewRow`] contract that lets sinks apply rows by
//! primary key, and [`OrdF64`], the float that differential data can hold.

use std::fmt::Debug;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::record::EventTime;

pub mod blast_radius;
pub mod change_event;
pub mod correlation;
pub mod call_graph_active;
pub mod log_pattern;
pub mod metric_1m;
pub mod raw_archive;
pub mod service_call_5m;

/// A row of a view, as sinks see it.
///
/// The row type, its Arrow schema ([`ViewRow::schema`], also written to
/// `schemas/arrow/<view>.json`) and the view's Postgres table agree column for column; a test
/// checks each view.
pub trait ViewRow: timely::ExchangeData + Ord + Clone + Debug {
    /// Table and topic name of the view.
    const VIEW: &'static str;
    /// Primary key columns, in schema order.
    const KEY_COLUMNS: &'static [&'static str];
    /// The primary key: rows with equal keys replace each other.
    type Key: Ord + Clone;
    fn key(&self) -> Self::Key;
    /// Start of the row's window, for windowed views (decides its Parquet object).
    fn window_start(&self) -> Option<EventTime>;
    fn schema() -> SchemaRef;
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError>;
}

/// An `f64` with a total order (IEEE 754 `totalOrder`), equality and hash by bits, so that rows
/// holding floats can be differential data.
#[derive(Copy, Clone, Debug, Default, Serialize, Deserialize)]
pub struct OrdF64(pub f64);

impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for OrdF64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}
