//! `change_event`: one row per change of a Kubernetes object (see [`crate::changes`]).
//!
//! Key `tenant, change_id`; columns `resource` (the object's URN, `urn:k8s:deploy:<ns>/<name>`),
//! `service` (the service it maps to, `urn:k8s:svc:<ns>/<name>`), `kind`, `change_type`,
//! `detected_at` (the change's event time), `summary` (one line) and `diff` (a JSON array of
//! `{field, change, old?, new?}`; Secret and ConfigMap values, env values and annotation values
//! appear as keyed hashes only). Rows are only ever added: a change does not change.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::service_call_5m::timestamp_field;
use super::ViewRow;
use crate::record::EventTime;

/// One row of `change_event`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChangeEventRow {
    pub tenant: String,
    /// 16 hex digits, a hash of the object and its resourceVersion: the same in every replay.
    pub change_id: String,
    pub resource: String,
    pub service: String,
    pub kind: String,
    pub change_type: String,
    pub detected_at: EventTime,
    pub summary: String,
    pub diff: String,
}

pub(crate) fn micros(values: impl Iterator<Item = EventTime>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values.map(|ms| ms * 1000)).with_timezone("UTC"))
}

impl ViewRow for ChangeEventRow {
    const VIEW: &'static str = "change_event";
    const KEY_COLUMNS: &'static [&'static str] = &["tenant", "change_id"];
    type Key = (String, String);

    fn key(&self) -> Self::Key {
        (self.tenant.clone(), self.change_id.clone())
    }
    /// Parquet groups change rows by the hour they were detected in.
    fn window_start(&self) -> Option<EventTime> {
        Some(self.detected_at.div_euclid(3_600_000) * 3_600_000)
    }
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("change_id", DataType::Utf8, false),
            Field::new("resource", DataType::Utf8, false),
            Field::new("service", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("change_type", DataType::Utf8, false),
            timestamp_field("detected_at", false),
            Field::new("summary", DataType::Utf8, false),
            Field::new("diff", DataType::Utf8, false),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let strings = |f: fn(&Self) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            strings(|r| &r.tenant),
            strings(|r| &r.change_id),
            strings(|r| &r.resource),
            strings(|r| &r.service),
            strings(|r| &r.kind),
            strings(|r| &r.change_type),
            micros(rows.iter().map(|r| r.detected_at)),
            strings(|r| &r.summary),
            strings(|r| &r.diff),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}
