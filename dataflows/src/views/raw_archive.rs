//! The raw archive and `raw_locator`: every decoded input record, kept as Parquet on object
//! storage one object per signal and minute, and the view that says where each object is.
//!
//! - **Input**: the decoded records of the archived signals ([`Span`], [`LogRecord`],
//!   [`MetricPoint`], [`K8sEvent`]); K8s values that may be secret are already keyed hashes
//!   (see [`crate::decode::k8s`]), so no Secret value can reach an object.
//! - **Admission**: a record is archived exactly when the view that consumes its signal admits
//!   it ([`Admission`]): what that view dead-letters as `late` is not archived, and everything it
//!   counted is, so a replay over the archive sees the records the live views saw. A signal no
//!   view consumes is admitted while its minute is not final, and a later record is
//!   dead-lettered here.
//! - **Objects**: records are exchanged by `(signal, minute of event time)`, so each minute of
//!   each signal lives on one worker. They are held there until no record of the minute can be
//!   admitted any more (the watermark passed the minute's end, or the end of the consuming view's
//!   window when that is later), then written once as one object at [`object_key`]:
//!   `raw/<signal>/date=YYYY-MM-DD/hour=HH/minute=MM/<signal>-YYYYMMDDTHHMMZ.parquet`. Rows
//!   are sorted by a total order over their content ([`ArchiveRow::sort`]; the engine-assigned
//!   origin is not archived), so an object is the same whatever the worker count, the epochs or
//!   the arrival order.
//! - **Columns**: one Arrow schema per signal ([`ArchiveRow::schema`], also in
//!   `schemas/arrow/raw_<signal>.json`), holding every field of the decoded record, so a replay
//!   can run the dataflows over it ([`ArchiveRow::from_batch`] is the way back).
//! - **`raw_locator`**, key `id`: one row per object written: `id` (xxh3-64 of the object key,
//!   16 hex digits), `dataset` (`raw/<signal>`), `object_key` (relative to the Parquet sink's
//!   root), `t_from` and `t_to` (the minute, `[t_from, t_to)`), `query_hint` (a DuckDB /
//!   DataFusion query reading the object). Rows are only ever inserted.
//! - **Evidence**: `service_call_5m.sample_ref` is `<locator id>#trace_id=<hex>&span_id=<hex>`
//!   ([`span_ref`]) and `log_pattern_5m.sample_ref` is `<locator id>#line_id=<hex>` ([`line_ref`]):
//!   the fragment's `column=value` pairs select the example record in the object. Both are set
//!   only while the archive keeps that signal.
//! - **State**: the records of the minutes not written yet (lateness plus the consuming view's
//!   window, and the pairing wait for spans, of event time); a minute leaves memory when written.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, StringArray, StructArray, TimestampMicrosecondArray};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use super::service_call_5m::timestamp_field;
use super::{OrdF64, ViewRow};
use crate::decode::k8s::{K8sEvent, WatchAction};
use crate::pairing::shift;
use crate::record::{DeadLetter, EventTime, LogRecord, MetricPoint, Observation, Origin, Signal, Span, SpanKind};
use crate::time::{window_is_final, window_start};
use crate::window::{epoch_by_epoch, fmt_ms};

/// An archive object holds one minute of event time.
pub const MINUTE_MS: i64 = 60_000;

/// What the raw archive keeps, and how readers name the place it is written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawArchiveConfig {
    /// The signals archived (default: all four). `sample_ref`s are set only for archived signals.
    pub signals: BTreeSet<Signal>,
    /// Where the Parquet sink writes, as a reader names it (`s3://bucket/prefix`, `./data`):
    /// put before the object key in `raw_locator.query_hint`. Empty: hints name the key relative
    /// to the sink's root. Never part of an id.
    pub location: String,
}

impl Default for RawArchiveConfig {
    fn default() -> Self {
        Self { signals: [Signal::Metrics, Signal::Spans, Signal::Logs, Signal::K8s].into_iter().collect(), location: String::new() }
    }
}

impl RawArchiveConfig {
    pub fn archives(&self, signal: Signal) -> bool {
        self.signals.contains(&signal)
    }
}

/// When a record of a signal is admitted to the archive: while its window of `window_ms` is not
/// final under the watermark minus `delay_ms`, exactly the rule of the view that consumes the
/// signal (`metric_1m`, pairing, the miners, change detection). A minute is written once no
/// record of it can be admitted any more.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    pub window_ms: i64,
    pub delay_ms: i64,
    /// Whether the archive dead-letters what it refuses (when no view consumes the signal, no
    /// one else would); otherwise the consuming view does.
    pub dead_letter_late: bool,
}

impl Admission {
    /// A signal no view consumes: minutes, no delay, late records dead-lettered here.
    pub const MINUTE: Admission = Admission { window_ms: MINUTE_MS, delay_ms: 0, dead_letter_late: true };

    fn size(&self) -> i64 {
        self.window_ms.max(1)
    }

    /// True when a record at `ts` is admitted under `watermark` (the watermark known before the
    /// record's epoch, as every view judges it).
    pub fn admits(&self, ts: EventTime, watermark: Option<EventTime>) -> bool {
        let shifted = watermark.map(|w| shift(w, self.delay_ms));
        !window_is_final(window_start(ts, self.size()), self.size(), shifted)
    }

    /// True when no record of the minute starting at `minute` can be admitted any more.
    pub fn minute_is_final(&self, minute: EventTime, watermark: Option<EventTime>) -> bool {
        !self.admits(minute.saturating_add(MINUTE_MS - 1), watermark)
    }
}

/// The admission rule of each signal (see [`Admission`]); the engine derives it from the views
/// it runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Admissions {
    pub metrics: Admission,
    pub spans: Admission,
    pub logs: Admission,
    pub k8s: Admission,
}

impl Default for Admissions {
    fn default() -> Self {
        Self { metrics: Admission::MINUTE, spans: Admission::MINUTE, logs: Admission::MINUTE, k8s: Admission::MINUTE }
    }
}

impl Admissions {
    pub fn of(&self, signal: Signal) -> Admission {
        match signal {
            Signal::Metrics => self.metrics,
            Signal::Spans => self.spans,
            Signal::Logs => self.logs,
            Signal::K8s => self.k8s,
        }
    }
}

/// The dataset of a signal's objects (`raw/<signal>`): the `view` of their final rows, and
/// `raw_locator.dataset`.
pub fn dataset(signal: Signal) -> &'static str {
    match signal {
        Signal::Metrics => "raw/metrics",
        Signal::Spans => "raw/spans",
        Signal::Logs => "raw/logs",
        Signal::K8s => "raw/k8s",
    }
}

/// The key of the object of a signal's minute, relative to the Parquet sink's root:
/// `raw/<signal>/date=YYYY-MM-DD/hour=HH/minute=MM/<signal>-YYYYMMDDTHHMMZ.parquet` (UTC).
///
/// The Parquet sink computes the same key for the final rows of view `raw/<signal>` (a test in
/// `tests/schemas.rs` holds the two together); ids and `sample_ref`s are derived from it.
pub fn object_key(signal: Signal, minute: EventTime) -> String {
    let name = signal.name();
    let t = DateTime::<Utc>::from_timestamp_millis(minute).unwrap_or(if minute < 0 { DateTime::<Utc>::MIN_UTC } else { DateTime::<Utc>::MAX_UTC });
    format!("raw/{name}/date={}/hour={}/minute={}/{name}-{}.parquet", t.format("%Y-%m-%d"), t.format("%H"), t.format("%M"), t.format("%Y%m%dT%H%MZ"))
}

/// The `raw_locator` id of an object: xxh3-64 of its key, 16 hex digits.
pub fn locator_id(object_key: &str) -> String {
    format!("{:016x}", xxh3_64(object_key.as_bytes()))
}

/// The `sample_ref` of a span: the locator of its minute's object, and its ids.
pub fn span_ref(ts: EventTime, trace_id: &[u8; 16], span_id: &[u8; 8]) -> String {
    let key = object_key(Signal::Spans, window_start(ts, MINUTE_MS));
    format!("{}#trace_id={}&span_id={}", locator_id(&key), hex::encode(trace_id), hex::encode(span_id))
}

/// The `line_id` column of a log record: xxh3-64 of its content (what identical lines share).
pub fn line_id(record: &LogRecord) -> u64 {
    let mut h = Xxh3::new();
    for part in [record.tenant.as_bytes(), record.resource.as_bytes(), record.message.as_bytes()] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(&record.ts.to_le_bytes());
    h.update(&[record.severity]);
    match &record.trace_id {
        Some(id) => {
            h.update(&[1]);
            h.update(id);
        }
        None => h.update(&[0]),
    }
    h.digest()
}

/// The `sample_ref` of a log line: the locator of its minute's object, and its `line_id`.
pub fn line_ref(ts: EventTime, line_id: u64) -> String {
    let key = object_key(Signal::Logs, window_start(ts, MINUTE_MS));
    format!("{}#line_id={line_id:016x}", locator_id(&key))
}

// ---------------------------------------------------------------------------------------------
// The archived rows.

/// A record type the archive keeps: its Arrow schema, its total order, and the way to Arrow and
/// back.
///
/// Contract: `from_batch(to_batch(rows))` gives `rows` back with their origin reset to
/// `Origin::default()` (the origin is the engine's, per run, and is not archived); `sort`
/// orders by content only, with event time first, so equal multisets of records make
/// equal batches.
pub trait ArchiveRow: Sized {
    const SIGNAL: Signal;
    fn schema() -> SchemaRef;
    fn sort(rows: &mut [Self]);
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError>;
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError>;
}

fn micros(values: impl Iterator<Item = EventTime>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values.map(|ms| ms.saturating_mul(1000))).with_timezone("UTC"))
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn optional_strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn bad(message: String) -> ArrowError {
    ArrowError::InvalidArgumentError(format!("raw archive batch: {message}"))
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, ArrowError> {
    batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<T>()).ok_or_else(|| bad(format!("column {name} is missing or has another type")))
}

fn ms_at(a: &TimestampMicrosecondArray, i: usize) -> EventTime {
    a.value(i).div_euclid(1000)
}

fn string_at(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_owned())
}

fn f64_at(a: &Float64Array, i: usize) -> Option<f64> {
    a.is_valid(i).then(|| a.value(i))
}

fn ids<const N: usize>(hex_text: &str) -> Result<[u8; N], ArrowError> {
    hex::decode(hex_text).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| bad(format!("{hex_text:?} is not {N} bytes of hex")))
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

fn parse_kind(name: &str) -> Result<SpanKind, ArrowError> {
    [SpanKind::Unspecified, SpanKind::Internal, SpanKind::Server, SpanKind::Client, SpanKind::Producer, SpanKind::Consumer]
        .into_iter()
        .find(|k| kind_name(*k) == name)
        .ok_or_else(|| bad(format!("unknown span kind {name:?}")))
}

/// The peer attributes, in their column order.
const PEER_COLUMNS: [&str; 7] = ["peer_service", "server_address", "db_system", "db_name", "messaging_system", "messaging_destination", "client_address"];

fn peer_field(peer: &crate::record::Peer, column: usize) -> Option<&str> {
    let f = match column {
        0 => &peer.peer_service,
        1 => &peer.server_address,
        2 => &peer.db_system,
        3 => &peer.db_name,
        4 => &peer.messaging_system,
        5 => &peer.messaging_destination,
        _ => &peer.client_address,
    };
    f.as_deref()
}

fn cmp_span(a: &Span, b: &Span) -> Ordering {
    (a.ts, &a.tenant, &a.trace_id, &a.span_id, &a.service, &a.parent_span_id, a.kind)
        .cmp(&(b.ts, &b.tenant, &b.trace_id, &b.span_id, &b.service, &b.parent_span_id, b.kind))
        .then_with(|| (OrdF64(a.duration_ms), a.error, OrdF64(a.weight)).cmp(&(OrdF64(b.duration_ms), b.error, OrdF64(b.weight))))
        .then_with(|| a.peer.cmp(&b.peer))
}

/// Spans: every field of [`Span`]; ids as lowercase hex; the peer attributes as columns (all null
/// when the span has none, which is how the decoder says "no peer").
impl ArchiveRow for Span {
    const SIGNAL: Signal = Signal::Spans;

    fn schema() -> SchemaRef {
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        let mut fields = vec![
            timestamp_field("ts", false),
            text("tenant"),
            text("service"),
            text("trace_id"),
            text("span_id"),
            Field::new("parent_span_id", DataType::Utf8, true),
            text("kind"),
            Field::new("duration_ms", DataType::Float64, false),
            Field::new("error", DataType::Boolean, false),
            Field::new("weight", DataType::Float64, false),
        ];
        fields.extend(PEER_COLUMNS.iter().map(|name| Field::new(*name, DataType::Utf8, true)));
        Arc::new(Schema::new(fields))
    }

    fn sort(rows: &mut [Self]) {
        rows.sort_by(cmp_span);
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let hexes = |f: fn(&Span) -> String| Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef;
        let mut columns: Vec<ArrayRef> = vec![
            micros(rows.iter().map(|s| s.ts)),
            strings(rows.iter().map(|s| s.tenant.as_str())),
            strings(rows.iter().map(|s| s.service.as_str())),
            hexes(|s| hex::encode(s.trace_id)),
            hexes(|s| hex::encode(s.span_id)),
            Arc::new(rows.iter().map(|s| s.parent_span_id.map(hex::encode)).collect::<StringArray>()),
            strings(rows.iter().map(|s| kind_name(s.kind))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|s| s.duration_ms))),
            Arc::new(rows.iter().map(|s| Some(s.error)).collect::<BooleanArray>()),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|s| s.weight))),
        ];
        for c in 0..PEER_COLUMNS.len() {
            columns.push(optional_strings(rows.iter().map(|s| s.peer.as_deref().and_then(|p| peer_field(p, c)))));
        }
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        let ts = column::<TimestampMicrosecondArray>(batch, "ts")?;
        let tenant = column::<StringArray>(batch, "tenant")?;
        let service = column::<StringArray>(batch, "service")?;
        let trace_id = column::<StringArray>(batch, "trace_id")?;
        let span_id = column::<StringArray>(batch, "span_id")?;
        let parent = column::<StringArray>(batch, "parent_span_id")?;
        let kind = column::<StringArray>(batch, "kind")?;
        let duration = column::<Float64Array>(batch, "duration_ms")?;
        let error = column::<BooleanArray>(batch, "error")?;
        let weight = column::<Float64Array>(batch, "weight")?;
        let peers = PEER_COLUMNS.iter().map(|name| column::<StringArray>(batch, name)).collect::<Result<Vec<_>, _>>()?;
        (0..batch.num_rows())
            .map(|i| {
                let p: Vec<Option<String>> = peers.iter().map(|c| string_at(c, i)).collect();
                let peer = p.iter().any(Option::is_some).then(|| {
                    let mut p = p.into_iter();
                    let mut next = || p.next().flatten();
                    Box::new(crate::record::Peer {
                        peer_service: next(),
                        server_address: next(),
                        db_system: next(),
                        db_name: next(),
                        messaging_system: next(),
                        messaging_destination: next(),
                        client_address: next(),
                    })
                });
                Ok(Span {
                    tenant: tenant.value(i).to_owned(),
                    service: service.value(i).to_owned(),
                    trace_id: ids(trace_id.value(i))?,
                    span_id: ids(span_id.value(i))?,
                    parent_span_id: string_at(parent, i).map(|p| ids(&p)).transpose()?,
                    kind: parse_kind(kind.value(i))?,
                    ts: ms_at(ts, i),
                    duration_ms: duration.value(i),
                    error: error.value(i),
                    weight: weight.value(i),
                    peer,
                    origin: Origin::default(),
                })
            })
            .collect()
    }
}

/// Logs: every field of [`LogRecord`], and `line_id` ([`line_id`], what `sample_ref`s name).
impl ArchiveRow for LogRecord {
    const SIGNAL: Signal = Signal::Logs;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            timestamp_field("ts", false),
            Field::new("tenant", DataType::Utf8, false),
            Field::new("resource", DataType::Utf8, false),
            Field::new("severity", DataType::Int32, false),
            Field::new("message", DataType::Utf8, false),
            Field::new("trace_id", DataType::Utf8, true),
            Field::new("line_id", DataType::Utf8, false),
        ]))
    }

    fn sort(rows: &mut [Self]) {
        rows.sort_by(|a, b| (a.ts, &a.tenant, &a.resource, a.severity, &a.message, &a.trace_id).cmp(&(b.ts, &b.tenant, &b.resource, b.severity, &b.message, &b.trace_id)));
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            micros(rows.iter().map(|r| r.ts)),
            strings(rows.iter().map(|r| r.tenant.as_str())),
            strings(rows.iter().map(|r| r.resource.as_str())),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| i32::from(r.severity)))),
            strings(rows.iter().map(|r| r.message.as_str())),
            Arc::new(rows.iter().map(|r| r.trace_id.map(hex::encode)).collect::<StringArray>()),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("{:016x}", line_id(r))))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        let ts = column::<TimestampMicrosecondArray>(batch, "ts")?;
        let tenant = column::<StringArray>(batch, "tenant")?;
        let resource = column::<StringArray>(batch, "resource")?;
        let severity = column::<Int32Array>(batch, "severity")?;
        let message = column::<StringArray>(batch, "message")?;
        let trace_id = column::<StringArray>(batch, "trace_id")?;
        (0..batch.num_rows())
            .map(|i| {
                Ok(LogRecord {
                    tenant: tenant.value(i).to_owned(),
                    resource: resource.value(i).to_owned(),
                    ts: ms_at(ts, i),
                    severity: u8::try_from(severity.value(i)).map_err(|_| bad(format!("severity {} is out of range", severity.value(i))))?,
                    message: message.value(i).to_owned(),
                    trace_id: string_at(trace_id, i).map(|t| ids(&t)).transpose()?,
                    origin: Origin::default(),
                })
            })
            .collect()
    }
}

fn cmp_observation(a: &Observation, b: &Observation) -> Ordering {
    match (a, b) {
        (Observation::Sample(x), Observation::Sample(y)) => x.total_cmp(y),
        (Observation::Sample(_), Observation::Distribution { .. }) => Ordering::Less,
        (Observation::Distribution { .. }, Observation::Sample(_)) => Ordering::Greater,
        (
            Observation::Distribution { count: c1, sum: s1, min: lo1, max: hi1, buckets: b1 },
            Observation::Distribution { count: c2, sum: s2, min: lo2, max: hi2, buckets: b2 },
        ) => (c1, OrdF64(*s1), lo1.map(OrdF64), hi1.map(OrdF64))
            .cmp(&(c2, OrdF64(*s2), lo2.map(OrdF64), hi2.map(OrdF64)))
            .then_with(|| b1.iter().map(|(v, n)| (OrdF64(*v), *n)).cmp(b2.iter().map(|(v, n)| (OrdF64(*v), *n)))),
    }
}

fn bucket_fields() -> Fields {
    Fields::from(vec![Field::new("value", DataType::Float64, false), Field::new("count", DataType::Int64, false)])
}

fn bucket_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(bucket_fields()), false))
}

/// Metric points: every field of [`MetricPoint`]. A sample sets `value`; a distribution sets
/// `count`, `sum`, `min` and `max` when reported, and `buckets` (representative value and
/// count per bucket, as the decoder made them).
impl ArchiveRow for MetricPoint {
    const SIGNAL: Signal = Signal::Metrics;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            timestamp_field("ts", false),
            Field::new("tenant", DataType::Utf8, false),
            Field::new("resource", DataType::Utf8, false),
            Field::new("metric", DataType::Utf8, false),
            Field::new("series", DataType::Utf8, false),
            Field::new("value", DataType::Float64, true),
            Field::new("count", DataType::Int64, true),
            Field::new("sum", DataType::Float64, true),
            Field::new("min", DataType::Float64, true),
            Field::new("max", DataType::Float64, true),
            Field::new("buckets", DataType::List(bucket_item()), true),
        ]))
    }

    fn sort(rows: &mut [Self]) {
        rows.sort_by(|a, b| {
            (a.ts, &a.tenant, &a.resource, &a.metric, &a.series).cmp(&(b.ts, &b.tenant, &b.resource, &b.metric, &b.series)).then_with(|| cmp_observation(&a.value, &b.value))
        });
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let sample = |p: &MetricPoint| if let Observation::Sample(v) = p.value { Some(v) } else { None };
        let dist = |p: &MetricPoint| match &p.value {
            Observation::Distribution { count, sum, min, max, .. } => Some((*count, *sum, *min, *max)),
            Observation::Sample(_) => None,
        };
        let (mut offsets, mut values, mut counts, mut valid) = (vec![0i32], Vec::new(), Vec::new(), Vec::with_capacity(rows.len()));
        for p in rows {
            if let Observation::Distribution { buckets, .. } = &p.value {
                for (v, n) in buckets {
                    values.push(*v);
                    counts.push(i64::try_from(*n).unwrap_or(i64::MAX));
                }
            }
            valid.push(matches!(p.value, Observation::Distribution { .. }));
            offsets.push(i32::try_from(values.len()).map_err(|_| bad("too many histogram buckets in one minute".to_string()))?);
        }
        let items = StructArray::try_new(bucket_fields(), vec![Arc::new(Float64Array::from(values)), Arc::new(Int64Array::from(counts))], None)?;
        let buckets = ListArray::try_new(bucket_item(), OffsetBuffer::new(ScalarBuffer::from(offsets)), Arc::new(items), Some(NullBuffer::from(valid)))?;
        let columns: Vec<ArrayRef> = vec![
            micros(rows.iter().map(|p| p.ts)),
            strings(rows.iter().map(|p| p.tenant.as_str())),
            strings(rows.iter().map(|p| p.resource.as_str())),
            strings(rows.iter().map(|p| p.metric.as_str())),
            strings(rows.iter().map(|p| p.series.as_str())),
            Arc::new(rows.iter().map(sample).collect::<Float64Array>()),
            Arc::new(rows.iter().map(|p| dist(p).map(|d| i64::try_from(d.0).unwrap_or(i64::MAX))).collect::<Int64Array>()),
            Arc::new(rows.iter().map(|p| dist(p).map(|d| d.1)).collect::<Float64Array>()),
            Arc::new(rows.iter().map(|p| dist(p).and_then(|d| d.2)).collect::<Float64Array>()),
            Arc::new(rows.iter().map(|p| dist(p).and_then(|d| d.3)).collect::<Float64Array>()),
            Arc::new(buckets),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        let ts = column::<TimestampMicrosecondArray>(batch, "ts")?;
        let tenant = column::<StringArray>(batch, "tenant")?;
        let resource = column::<StringArray>(batch, "resource")?;
        let metric = column::<StringArray>(batch, "metric")?;
        let series = column::<StringArray>(batch, "series")?;
        let value = column::<Float64Array>(batch, "value")?;
        let count = column::<Int64Array>(batch, "count")?;
        let sum = column::<Float64Array>(batch, "sum")?;
        let min = column::<Float64Array>(batch, "min")?;
        let max = column::<Float64Array>(batch, "max")?;
        let buckets = column::<ListArray>(batch, "buckets")?;
        (0..batch.num_rows())
            .map(|i| {
                let observation = if count.is_valid(i) {
                    let mut pairs = Vec::new();
                    if buckets.is_valid(i) {
                        let items = buckets.value(i);
                        let items = items.as_any().downcast_ref::<StructArray>().ok_or_else(|| bad("buckets are not structs".to_string()))?;
                        let v = items.column_by_name("value").and_then(|c| c.as_any().downcast_ref::<Float64Array>()).ok_or_else(|| bad("bucket values".to_string()))?;
                        let n = items.column_by_name("count").and_then(|c| c.as_any().downcast_ref::<Int64Array>()).ok_or_else(|| bad("bucket counts".to_string()))?;
                        pairs = (0..items.len()).map(|j| (v.value(j), u64::try_from(n.value(j)).unwrap_or(0))).collect();
                    }
                    Observation::Distribution { count: u64::try_from(count.value(i)).unwrap_or(0), sum: f64_at(sum, i).unwrap_or(0.0), min: f64_at(min, i), max: f64_at(max, i), buckets: pairs }
                } else {
                    Observation::Sample(f64_at(value, i).ok_or_else(|| bad("a point has neither a value nor a count".to_string()))?)
                };
                Ok(MetricPoint {
                    tenant: tenant.value(i).to_owned(),
                    resource: resource.value(i).to_owned(),
                    metric: metric.value(i).to_owned(),
                    series: series.value(i).to_owned(),
                    ts: ms_at(ts, i),
                    value: observation,
                    origin: Origin::default(),
                })
            })
            .collect()
    }
}

fn action_name(action: WatchAction) -> &'static str {
    match action {
        WatchAction::Added => "ADDED",
        WatchAction::Modified => "MODIFIED",
        WatchAction::Deleted => "DELETED",
    }
}

/// The event as JSON, without its origin (the engine's, not archived).
fn event_json(event: &K8sEvent) -> Result<String, ArrowError> {
    let mut value = serde_json::to_value(event).map_err(|e| bad(format!("k8s event not serialisable: {e}")))?;
    if let Some(map) = value.as_object_mut() {
        map.remove("origin");
    }
    Ok(value.to_string())
}

/// K8s watch events: the identifying fields as columns, and `event`, the whole decoded event as
/// JSON (its secret-bearing values are the decoder's keyed hashes, never the values).
impl ArchiveRow for K8sEvent {
    const SIGNAL: Signal = Signal::K8s;

    fn schema() -> SchemaRef {
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        Arc::new(Schema::new(vec![
            timestamp_field("ts", false),
            text("tenant"),
            text("action"),
            text("kind"),
            text("namespace"),
            text("name"),
            text("uid"),
            Field::new("resource_version", DataType::Int64, false),
            text("event"),
        ]))
    }

    fn sort(rows: &mut [Self]) {
        // The derived order compares the origin last; archived events carry none.
        rows.sort_by(|a, b| (a.ts, a).cmp(&(b.ts, b)));
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let events = rows.iter().map(event_json).collect::<Result<Vec<_>, _>>()?;
        let columns: Vec<ArrayRef> = vec![
            micros(rows.iter().map(|e| e.ts)),
            strings(rows.iter().map(|e| e.tenant.as_str())),
            strings(rows.iter().map(|e| action_name(e.action))),
            strings(rows.iter().map(|e| e.kind.as_str())),
            strings(rows.iter().map(|e| e.namespace.as_str())),
            strings(rows.iter().map(|e| e.name.as_str())),
            strings(rows.iter().map(|e| e.uid.as_str())),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|e| i64::try_from(e.resource_version).unwrap_or(i64::MAX)))),
            strings(events.iter().map(String::as_str)),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        let event = column::<StringArray>(batch, "event")?;
        (0..batch.num_rows())
            .map(|i| {
                let mut value: serde_json::Value = serde_json::from_str(event.value(i)).map_err(|e| bad(format!("event {i} is not JSON: {e}")))?;
                if let Some(map) = value.as_object_mut() {
                    map.insert("origin".into(), serde_json::json!(Origin::default()));
                }
                serde_json::from_value(value).map_err(|e| bad(format!("event {i} is not a k8s event: {e}")))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// raw_locator.

/// One row of `raw_locator`: where one archive object is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RawLocatorRow {
    pub id: String,
    pub dataset: String,
    pub object_key: String,
    pub t_from: EventTime,
    pub t_to: EventTime,
    pub query_hint: String,
}

impl RawLocatorRow {
    /// The locator of the object of `signal`'s minute at `minute`; `location` as in
    /// [`RawArchiveConfig::location`].
    pub fn for_object(signal: Signal, minute: EventTime, location: &str) -> Self {
        let object_key = object_key(signal, minute);
        let path = if location.is_empty() { object_key.clone() } else { format!("{}/{object_key}", location.trim_end_matches('/')) };
        let at = |ms: EventTime| DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S+00").to_string()).unwrap_or_default();
        let query_hint = format!(
            "SELECT * FROM read_parquet('{}') WHERE ts >= TIMESTAMPTZ '{}' AND ts < TIMESTAMPTZ '{}'",
            path.replace('\'', "''"),
            at(minute),
            at(minute + MINUTE_MS)
        );
        Self { id: locator_id(&object_key), dataset: dataset(signal).to_owned(), object_key, t_from: minute, t_to: minute + MINUTE_MS, query_hint }
    }
}

impl ViewRow for RawLocatorRow {
    const VIEW: &'static str = "raw_locator";
    const KEY_COLUMNS: &'static [&'static str] = &["id"];
    type Key = String;

    fn key(&self) -> String {
        self.id.clone()
    }
    fn window_start(&self) -> Option<EventTime> {
        None
    }
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("dataset", DataType::Utf8, false),
            Field::new("object_key", DataType::Utf8, false),
            timestamp_field("t_from", false),
            timestamp_field("t_to", false),
            Field::new("query_hint", DataType::Utf8, false),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            strings(rows.iter().map(|r| r.id.as_str())),
            strings(rows.iter().map(|r| r.dataset.as_str())),
            strings(rows.iter().map(|r| r.object_key.as_str())),
            micros(rows.iter().map(|r| r.t_from)),
            micros(rows.iter().map(|r| r.t_to)),
            strings(rows.iter().map(|r| r.query_hint.as_str())),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}

// ---------------------------------------------------------------------------------------------
// The operator.

/// A decoded record on its way to the archive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ArchiveRecord {
    Point(MetricPoint),
    Span(Span),
    Log(LogRecord),
    /// Boxed: watch events are large and rare.
    K8s(Box<K8sEvent>),
}

impl ArchiveRecord {
    pub fn signal(&self) -> Signal {
        match self {
            ArchiveRecord::Point(_) => Signal::Metrics,
            ArchiveRecord::Span(_) => Signal::Spans,
            ArchiveRecord::Log(_) => Signal::Logs,
            ArchiveRecord::K8s(_) => Signal::K8s,
        }
    }

    pub fn ts(&self) -> EventTime {
        match self {
            ArchiveRecord::Point(r) => r.ts,
            ArchiveRecord::Span(r) => r.ts,
            ArchiveRecord::Log(r) => r.ts,
            ArchiveRecord::K8s(r) => r.ts,
        }
    }

    fn origin_mut(&mut self) -> &mut Origin {
        match self {
            ArchiveRecord::Point(r) => &mut r.origin,
            ArchiveRecord::Span(r) => &mut r.origin,
            ArchiveRecord::Log(r) => &mut r.origin,
            ArchiveRecord::K8s(r) => &mut r.origin,
        }
    }

    fn payload(&self) -> Vec<u8> {
        let json = match self {
            ArchiveRecord::Point(r) => serde_json::to_vec(r),
            ArchiveRecord::Span(r) => serde_json::to_vec(r),
            ArchiveRecord::Log(r) => serde_json::to_vec(r),
            ArchiveRecord::K8s(r) => serde_json::to_vec(r),
        };
        json.unwrap_or_default()
    }
}

/// What the archive counted, cumulative per worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiveCounters {
    /// Records written.
    pub records: u64,
    /// Objects written.
    pub objects: u64,
    /// Records refused as late.
    pub late: u64,
}

/// What the archive operator emits.
#[derive(Clone, Debug)]
pub enum ArchiveEvent {
    /// The rows of a minute that became final, sorted: one object.
    Object { signal: Signal, minute: EventTime, rows: RecordBatch },
    /// The locator of an object just emitted.
    Locator(RawLocatorRow),
    /// A record refused as late, for a signal no view consumes.
    Late(DeadLetter),
    /// Records held by this worker after the epoch.
    Live(u64),
    Counters(ArchiveCounters),
}

/// The archive state of one worker (usable without timely, for tests): feed it each epoch's
/// records and the epoch's new watermark with [`step`](Self::step).
pub struct RawArchive {
    config: RawArchiveConfig,
    admissions: Admissions,
    watermark: Option<EventTime>,
    held: BTreeMap<(Signal, EventTime), Vec<ArchiveRecord>>,
    live: u64,
    counters: ArchiveCounters,
    reported: Option<ArchiveCounters>,
}

impl RawArchive {
    pub fn new(config: RawArchiveConfig, admissions: Admissions) -> Self {
        Self { config, admissions, watermark: None, held: BTreeMap::new(), live: 0, counters: ArchiveCounters::default(), reported: None }
    }

    /// Admits one epoch's records (judged against the watermark before the epoch), then applies
    /// the epoch's new watermark: every minute it makes final is written and leaves memory.
    pub fn step(&mut self, records: Vec<ArchiveRecord>, watermark: Option<EventTime>, out: &mut Vec<ArchiveEvent>) {
        for mut record in records {
            let signal = record.signal();
            if !self.config.archives(signal) {
                continue;
            }
            let admission = self.admissions.of(signal);
            let ts = record.ts();
            if !admission.admits(ts, self.watermark) {
                self.counters.late += 1;
                if admission.dead_letter_late {
                    out.push(ArchiveEvent::Late(DeadLetter {
                        kind: "late".to_string(),
                        reason: format!(
                            "late {} record: event time {} is in minute [{}, {}), which the watermark {} has already made final; it is not archived",
                            signal.name(),
                            fmt_ms(ts),
                            fmt_ms(window_start(ts, MINUTE_MS)),
                            fmt_ms(window_start(ts, MINUTE_MS) + MINUTE_MS),
                            self.watermark.map_or_else(String::new, fmt_ms)
                        ),
                        origin: *record.origin_mut(),
                        payload: record.payload(),
                    }));
                }
                continue;
            }
            *record.origin_mut() = Origin::default();
            self.held.entry((signal, window_start(ts, MINUTE_MS))).or_default().push(record);
            self.live += 1;
        }
        if let Some(wm) = watermark {
            self.watermark = Some(self.watermark.map_or(wm, |w| w.max(wm)));
            let done: Vec<(Signal, EventTime)> = self.held.keys().filter(|(s, m)| self.admissions.of(*s).minute_is_final(*m, self.watermark)).copied().collect();
            for key in done {
                if let Some(records) = self.held.remove(&key) {
                    self.live -= records.len() as u64;
                    self.write(key.0, key.1, records, out);
                }
            }
        }
        out.push(ArchiveEvent::Live(self.live));
        if self.reported != Some(self.counters) {
            self.reported = Some(self.counters);
            out.push(ArchiveEvent::Counters(self.counters));
        }
    }

    fn write(&mut self, signal: Signal, minute: EventTime, records: Vec<ArchiveRecord>, out: &mut Vec<ArchiveEvent>) {
        let n = records.len() as u64;
        match encode(signal, records) {
            Ok(rows) => {
                self.counters.records += n;
                self.counters.objects += 1;
                out.push(ArchiveEvent::Object { signal, minute, rows });
                out.push(ArchiveEvent::Locator(RawLocatorRow::for_object(signal, minute, &self.config.location)));
            }
            Err(error) => tracing::error!(dataset = dataset(signal), minute = %fmt_ms(minute), %error, "raw archive rows do not fit the archive's arrow schema"),
        }
    }
}

/// The sorted batch of one minute's records of one signal.
pub fn encode(signal: Signal, records: Vec<ArchiveRecord>) -> Result<RecordBatch, ArrowError> {
    fn typed<R: ArchiveRow>(records: Vec<ArchiveRecord>, take: fn(ArchiveRecord) -> Option<R>) -> Result<RecordBatch, ArrowError> {
        let mut rows: Vec<R> = records.into_iter().filter_map(take).collect();
        R::sort(&mut rows);
        R::to_batch(&rows)
    }
    match signal {
        Signal::Metrics => typed::<MetricPoint>(records, |r| if let ArchiveRecord::Point(p) = r { Some(p) } else { None }),
        Signal::Spans => typed::<Span>(records, |r| if let ArchiveRecord::Span(s) = r { Some(s) } else { None }),
        Signal::Logs => typed::<LogRecord>(records, |r| if let ArchiveRecord::Log(l) = r { Some(l) } else { None }),
        Signal::K8s => typed::<K8sEvent>(records, |r| if let ArchiveRecord::K8s(e) = r { Some(*e) } else { None }),
    }
}

fn route(record: &ArchiveRecord) -> u64 {
    let mut h = Xxh3::new();
    h.update(record.signal().name().as_bytes());
    h.update(&window_start(record.ts(), MINUTE_MS).to_le_bytes());
    h.digest()
}

/// Runs the archive over the decoded records, exchanged by `(signal, minute)`, with the
/// engine's watermark stream.
pub fn raw_archive<'scope>(
    config: RawArchiveConfig,
    admissions: Admissions,
    records: StreamVec<'scope, u64, ArchiveRecord>,
    watermarks: StreamVec<'scope, u64, EventTime>,
) -> StreamVec<'scope, u64, ArchiveEvent> {
    let mut archive = RawArchive::new(config, admissions);
    epoch_by_epoch("raw_archive", records, watermarks, route, move |records, watermark, out| archive.step(records, watermark, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: EventTime = 1_795_266_300_000; // 2026-11-21T13:05:00Z

    fn log(ts: EventTime, message: &str, offset: u64) -> LogRecord {
        LogRecord { tenant: "default".into(), resource: "urn:k8s:svc:shop/cart".into(), ts, severity: 9, message: message.into(), trace_id: None, origin: Origin { partition: 3, offset } }
    }

    #[test]
    fn object_keys_locators_and_refs() {
        assert_eq!(object_key(Signal::Spans, T0), "raw/spans/date=2026-11-21/hour=13/minute=05/spans-20261121T1305Z.parquet");
        let row = RawLocatorRow::for_object(Signal::Spans, T0, "s3://bucket/prefix/");
        assert_eq!(row.id, locator_id(&row.object_key));
        assert_eq!(row.id.len(), 16);
        assert_eq!((row.dataset.as_str(), row.t_from, row.t_to), ("raw/spans", T0, T0 + MINUTE_MS));
        assert_eq!(
            row.query_hint,
            "SELECT * FROM read_parquet('s3://bucket/prefix/raw/spans/date=2026-11-21/hour=13/minute=05/spans-20261121T1305Z.parquet') WHERE ts >= TIMESTAMPTZ '2026-11-21 13:05:00+00' AND ts < TIMESTAMPTZ '2026-11-21 13:06:00+00'"
        );
        let r = span_ref(T0 + 59_999, &[0xab; 16], &[0xcd; 8]);
        assert_eq!(r, format!("{}#trace_id={}&span_id={}", row.id, "ab".repeat(16), "cd".repeat(8)));
        assert!(line_ref(T0, 7).ends_with("#line_id=0000000000000007"));
    }

    #[test]
    fn admission_follows_the_consuming_view() {
        let five = Admission { window_ms: 300_000, delay_ms: 10_000, dead_letter_late: false };
        // Watermark 2 minutes into the window, minus the wait: still open.
        assert!(five.admits(T0 + 1, Some(T0 + 300_000)));
        assert!(!five.admits(T0 + 1, Some(T0 + 310_000)));
        assert!(!five.minute_is_final(T0, Some(T0 + 309_999)));
        assert!(five.minute_is_final(T0 + 4 * MINUTE_MS, Some(T0 + 310_000)));
        // Change detection's rule: late when before the watermark.
        let k8s = Admission { window_ms: 1, delay_ms: 0, dead_letter_late: false };
        assert!(k8s.admits(T0, Some(T0)) && !k8s.admits(T0 - 1, Some(T0)));
        assert!(!k8s.minute_is_final(T0, Some(T0 + MINUTE_MS - 1)) && k8s.minute_is_final(T0, Some(T0 + MINUTE_MS)));
        assert!(Admission::MINUTE.minute_is_final(T0, Some(T0 + MINUTE_MS)));
    }

    #[test]
    fn a_minute_is_written_once_final_sorted_and_late_records_stay_out() {
        let mut archive = RawArchive::new(RawArchiveConfig::default(), Admissions::default());
        let mut out = Vec::new();
        archive.step(vec![ArchiveRecord::Log(log(T0 + 5, "b", 2)), ArchiveRecord::Log(log(T0 + 5, "a", 1)), ArchiveRecord::Log(log(T0 + MINUTE_MS, "c", 3))], Some(T0 + 59_999), &mut out);
        assert!(!out.iter().any(|e| matches!(e, ArchiveEvent::Object { .. })));
        out.clear();
        archive.step(vec![ArchiveRecord::Log(log(T0 + 7, "d", 4))], Some(T0 + MINUTE_MS), &mut out);
        let objects: Vec<&RecordBatch> = out.iter().filter_map(|e| if let ArchiveEvent::Object { rows, .. } = e { Some(rows) } else { None }).collect();
        assert_eq!(objects.len(), 1);
        let rows = LogRecord::from_batch(objects[0]).expect("rows");
        assert_eq!(rows.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(), ["a", "b", "d"]);
        assert!(rows.iter().all(|r| r.origin == Origin::default()));
        assert!(matches!(out.iter().find(|e| matches!(e, ArchiveEvent::Live(_))), Some(ArchiveEvent::Live(1))));
        out.clear();
        archive.step(vec![ArchiveRecord::Log(log(T0 + 9, "late", 5))], None, &mut out);
        let late: Vec<&DeadLetter> = out.iter().filter_map(|e| if let ArchiveEvent::Late(d) = e { Some(d) } else { None }).collect();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].origin, Origin { partition: 3, offset: 5 });
        assert!(late[0].reason.contains("not archived"), "{}", late[0].reason);
    }
}
