//! `service_call_5m`: calls between services (and virtual nodes) per five minutes.
//!
//! - **Input**: [`Call`]s made by [`pairing`](crate::pairing) from spans: `+1` when a call is
//!   known, `-1` when pairing takes one back (a virtual edge replaced by a late paired one).
//! - **Key**: `bucket` (5-minute tumbling window of the call's event time, UTC), `tenant`, `src`,
//!   `dst` (URNs), `connection_type` (`direct`, `virtual_node`, `database`, `messaging_system`).
//! - **Columns**: `calls` and `errors` (weighted by the sampling multiplier, so a span sampled
//!   at 1-in-10 counts 10), `rps` (`calls` / window seconds), `err_rate` (`errors` / `calls`),
//!   `p50_ms` `p95_ms` `p99_ms` of the call latency (client-side duration when the client span
//!   exists, server-side otherwise), `server_p50_ms` `server_p95_ms` (server-side duration, null
//!   when no call of the row had a server span), `sample_ref` (with the raw archive on: a span
//!   of one of the row's calls, see below; else null).
//! - **Quantiles** come from retractable [`LogHistogram`]s (1% relative error); each call counts
//!   its sampling multiplier rounded to a whole number (at least 1) in them.
//! - **Sample**: the span (the caller's, else the server's) of the row's call with the smallest
//!   `(end time, trace id, span id)`, written `<raw_locator id>#trace_id=<hex>&span_id=<hex>`
//!   ([`raw_archive::span_ref`]): the locator of the archive object holding that span. Calls
//!   taken back (a virtual edge replaced by its late pair) are never the sample; each aggregate
//!   keeps the few smallest candidates and the retracted spans ([`CallSamples`]), so the sample
//!   is the same whatever the order and batching of the calls (when every kept candidate was
//!   taken back, the row has none).
//! - **Time**: the window's watermark is the engine's minus the pairing wait: a call can be
//!   decided as late as one wait after its time, and a window is final only once no decision
//!   about it can still come.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::metric_1m::ExactSum;
use super::{raw_archive, OrdF64, ViewRow};
use crate::histogram::LogHistogram;
use crate::record::{EventTime, Origin};
use crate::window::WindowedView;

/// How two nodes are connected.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConnectionType {
    /// A client span paired with its server span (or a server span with its server parent).
    Direct,
    /// An uninstrumented peer: an external host, a `peer.service`, or the `user` caller.
    VirtualNode,
    /// A database named by `db.system` / `db.name`.
    Database,
    /// A producer/consumer pair, or a queue named by `messaging.system`.
    MessagingSystem,
}

impl ConnectionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Direct => "direct",
            ConnectionType::VirtualNode => "virtual_node",
            ConnectionType::Database => "database",
            ConnectionType::MessagingSystem => "messaging_system",
        }
    }
}

/// One call from `src` to `dst`, as a differential record (`diff` is +1 or -1).
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Call {
    pub tenant: String,
    pub src: String,
    pub dst: String,
    pub connection_type: ConnectionType,
    /// Event time of the call: the caller's span end (the server's when there is no caller span).
    pub ts: EventTime,
    /// Client-side duration when the client span exists, server-side otherwise.
    pub latency_ms: f64,
    /// Server-side duration, when the server span exists.
    pub server_ms: Option<f64>,
    pub error: bool,
    /// Sampling multiplier (adjusted count).
    pub weight: f64,
    pub diff: i32,
    /// The span that fixed the call's time (for dead letters).
    pub origin: Origin,
    /// That span's trace and span id (for `sample_ref`).
    pub span_ids: ([u8; 16], [u8; 8]),
}

impl Call {
    /// The call with the opposite sign.
    pub fn negated(&self) -> Call {
        Call { diff: -self.diff, ..self.clone() }
    }
}

/// `(tenant, src, dst, connection_type)`.
pub type EdgeKey = (String, String, String, ConnectionType);

/// Hash of a call's edge without building the key: decides the worker of every edge view.
pub fn edge_hash(call: &Call) -> u64 {
    edge_hash_of(&call.tenant, &call.src, &call.dst, call.connection_type)
}

/// Hash of an edge `(tenant, src, dst, connection_type)`.
pub fn edge_hash_of(tenant: &str, src: &str, dst: &str, connection_type: ConnectionType) -> u64 {
    let mut h = Xxh3::new();
    for part in [tenant, src, dst] {
        h.update(part.as_bytes());
        h.update(&[0xff]);
    }
    h.update(&[connection_type as u8]);
    h.digest()
}

/// The calls of one edge in one time bucket, merged: what the edge views take, so that the
/// thousands of calls of an epoch cross workers as a handful of records.
///
/// Every field is a retractable sum (or a min/max over the `+1` calls), so folding an
/// `EdgeCalls` into a view state is the same as folding its calls one by one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeCalls {
    pub tenant: String,
    pub src: String,
    pub dst: String,
    pub connection_type: ConnectionType,
    /// Start of the bucket of the calls' times; the bucket size divides every edge view's
    /// window (see [`combine_bucket_ms`]).
    pub bucket: EventTime,
    /// Earliest and latest time of the `+1` calls, if any.
    pub first: Option<EventTime>,
    pub last: Option<EventTime>,
    pub stats: CallStats,
    /// The first call's origin (for dead letters).
    pub origin: Origin,
}

impl EdgeCalls {
    pub fn edge_hash(&self) -> u64 {
        edge_hash_of(&self.tenant, &self.src, &self.dst, self.connection_type)
    }

    fn add(&mut self, call: &Call) {
        self.stats.fold(&CallPart::of(call));
        self.stats.samples.add(SpanRef { ts: call.ts, trace_id: call.span_ids.0, span_id: call.span_ids.1 }, call.diff);
        if call.diff > 0 {
            self.first = Some(self.first.map_or(call.ts, |f| f.min(call.ts)));
            self.last = Some(self.last.map_or(call.ts, |l| l.max(call.ts)));
        }
    }
}

/// The bucket size of [`combine`] for edge views with window `window_ms` and the live graph's
/// minutes: the largest size dividing both.
pub fn combine_bucket_ms(window_ms: i64) -> i64 {
    let (mut a, mut b) = (window_ms.max(1), 60_000i64);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Merges calls by `(edge, bucket of bucket_ms)`, in order of first appearance.
pub fn combine(calls: impl IntoIterator<Item = Call>, bucket_ms: i64) -> Vec<EdgeCalls> {
    let mut index: std::collections::HashMap<(u64, EventTime), Vec<usize>, xxhash_rust::xxh3::Xxh3DefaultBuilder> = Default::default();
    let mut out: Vec<EdgeCalls> = Vec::new();
    for call in calls {
        let bucket = crate::time::window_start(call.ts, bucket_ms);
        let slots = index.entry((edge_hash(&call), bucket)).or_default();
        let found = slots.iter().copied().find(|&i| {
            let e = &out[i];
            e.connection_type == call.connection_type && e.src == call.src && e.dst == call.dst && e.tenant == call.tenant
        });
        match found {
            Some(i) => out[i].add(&call),
            None => {
                slots.push(out.len());
                let mut e = EdgeCalls {
                    stats: CallStats::default(),
                    first: None,
                    last: None,
                    bucket,
                    origin: call.origin,
                    connection_type: call.connection_type,
                    tenant: String::new(),
                    src: String::new(),
                    dst: String::new(),
                };
                e.add(&call);
                let Call { tenant, src, dst, .. } = call;
                (e.tenant, e.src, e.dst) = (tenant, src, dst);
                out.push(e);
            }
        }
    }
    out
}

/// What of a call is folded into an aggregate.
#[derive(Clone, Debug, PartialEq)]
pub struct CallPart {
    pub diff: i32,
    pub weight: f64,
    pub error: bool,
    pub latency_ms: f64,
    pub server_ms: Option<f64>,
}

impl CallPart {
    pub fn of(call: &Call) -> Self {
        Self { diff: call.diff, weight: call.weight, error: call.error, latency_ms: call.latency_ms, server_ms: call.server_ms }
    }
}

/// A retractable aggregate of calls: every field is a sum, so `-1` undoes `+1` exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStats {
    /// Net number of call records.
    pub records: i64,
    pub calls: ExactSum,
    pub errors: ExactSum,
    pub latency: LogHistogram,
    pub server: LogHistogram,
    /// Sample candidates (filled by [`combine`], which knows the calls' spans).
    pub samples: CallSamples,
}

impl CallStats {
    pub fn fold(&mut self, part: &CallPart) {
        let sign = f64::from(part.diff.signum());
        let count = part.weight.round().max(1.0) as u64;
        self.records += i64::from(part.diff.signum());
        self.calls.add(sign * part.weight);
        if part.error {
            self.errors.add(sign * part.weight);
        }
        record(&mut self.latency, part.latency_ms, count, part.diff);
        if let Some(server) = part.server_ms {
            record(&mut self.server, server, count, part.diff);
        }
    }

    pub fn merge(&mut self, other: &CallStats) {
        self.records += other.records;
        self.calls.merge(&other.calls);
        self.errors.merge(&other.errors);
        self.latency.merge(&other.latency);
        self.server.merge(&other.server);
        self.samples.merge(&other.samples);
    }

    pub fn err_rate(&self) -> f64 {
        let calls = self.calls.value();
        if calls > 0.0 { self.errors.value() / calls } else { 0.0 }
    }
}

/// A span as a `sample_ref` names it: its end time and ids.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SpanRef {
    pub ts: EventTime,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// How many of the smallest added spans an aggregate keeps as sample candidates.
const SAMPLE_CANDIDATES: usize = 4;

/// The sample of an aggregate of calls, retractable and independent of the order in which calls
/// and aggregates are merged: the few (4) smallest spans of the `+1` calls (with
/// multiplicity: a producer's span may make several calls), and every span of a `-1` call.
///
/// The kept candidates are exactly the smallest distinct spans of all `+1` calls with their full
/// counts, whatever the merge order; so [`sample`](Self::sample), the smallest candidate not
/// cancelled by retractions, is the smallest span with a net call, or `None` when every
/// candidate was taken back (retractions are rare corrections).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSamples {
    added: Vec<(SpanRef, u32)>,
    retracted: Vec<(SpanRef, u32)>,
}

impl CallSamples {
    /// Counts one call's span (`diff` +1 or -1).
    pub fn add(&mut self, span: SpanRef, diff: i32) {
        match diff.signum() {
            1 => insert_counted(&mut self.added, span, diff.unsigned_abs(), SAMPLE_CANDIDATES),
            -1 => insert_counted(&mut self.retracted, span, diff.unsigned_abs(), usize::MAX),
            _ => {}
        }
    }

    pub fn merge(&mut self, other: &CallSamples) {
        for (span, n) in &other.added {
            insert_counted(&mut self.added, *span, *n, SAMPLE_CANDIDATES);
        }
        for (span, n) in &other.retracted {
            insert_counted(&mut self.retracted, *span, *n, usize::MAX);
        }
    }

    /// The smallest span with a net call among the candidates.
    pub fn sample(&self) -> Option<SpanRef> {
        let retracted = |span: &SpanRef| self.retracted.binary_search_by(|(s, _)| s.cmp(span)).map_or(0, |i| self.retracted[i].1);
        self.added.iter().find(|(span, n)| *n > retracted(span)).map(|(span, _)| *span)
    }
}

/// Adds `n` to `span`'s count in a sorted list that keeps at most `cap` distinct spans (the
/// smallest).
fn insert_counted(list: &mut Vec<(SpanRef, u32)>, span: SpanRef, n: u32, cap: usize) {
    match list.binary_search_by(|(s, _)| s.cmp(&span)) {
        Ok(i) => list[i].1 = list[i].1.saturating_add(n),
        Err(i) if i < cap => {
            list.insert(i, (span, n));
            list.truncate(cap);
        }
        Err(_) => {}
    }
}

fn record(h: &mut LogHistogram, value: f64, count: u64, diff: i32) {
    if !value.is_finite() {
        return;
    }
    if diff > 0 {
        h.record(value, count);
    } else {
        let mut one = LogHistogram::new();
        one.record(value, count);
        h.retract(&one);
    }
}

/// The `service_call_5m` view and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceCall5m {
    pub window_ms: i64,
    /// Whether rows carry a `sample_ref` (the raw archive keeps spans).
    pub samples: bool,
}

impl Default for ServiceCall5m {
    fn default() -> Self {
        Self { window_ms: 300_000, samples: false }
    }
}

/// One row of `service_call_5m`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceCall5mRow {
    pub bucket: EventTime,
    pub tenant: String,
    pub src: String,
    pub dst: String,
    pub connection_type: ConnectionType,
    pub calls: OrdF64,
    pub errors: OrdF64,
    pub rps: OrdF64,
    pub err_rate: OrdF64,
    pub p50_ms: OrdF64,
    pub p95_ms: OrdF64,
    pub p99_ms: OrdF64,
    pub server_p50_ms: Option<OrdF64>,
    pub server_p95_ms: Option<OrdF64>,
    pub sample_ref: Option<String>,
}

impl ServiceCall5mRow {
    /// The row of an aggregate (the from-scratch definition tests compare against); `None` when
    /// it holds no call. Its `sample_ref` is null (the view sets it when the archive is on).
    pub fn from_stats(bucket: EventTime, window_ms: i64, key: &EdgeKey, stats: &CallStats) -> Option<Self> {
        if stats.records <= 0 {
            return None;
        }
        let q = |h: &LogHistogram, p: f64| h.quantile(p).map(OrdF64);
        let calls = stats.calls.value();
        Some(Self {
            bucket,
            tenant: key.0.clone(),
            src: key.1.clone(),
            dst: key.2.clone(),
            connection_type: key.3,
            calls: OrdF64(calls),
            errors: OrdF64(stats.errors.value()),
            rps: OrdF64(calls / (window_ms as f64 / 1000.0)),
            err_rate: OrdF64(stats.err_rate()),
            p50_ms: q(&stats.latency, 0.50).unwrap_or(OrdF64(0.0)),
            p95_ms: q(&stats.latency, 0.95).unwrap_or(OrdF64(0.0)),
            p99_ms: q(&stats.latency, 0.99).unwrap_or(OrdF64(0.0)),
            server_p50_ms: q(&stats.server, 0.50),
            server_p95_ms: q(&stats.server, 0.95),
            sample_ref: None,
        })
    }
}

/// The view takes calls merged per edge and bucket ([`combine`]); the bucket size must divide
/// the window.
impl WindowedView for ServiceCall5m {
    type Input = EdgeCalls;
    type Key = EdgeKey;
    type Part = CallStats;
    type State = CallStats;
    type Row = ServiceCall5mRow;

    fn window_ms(&self) -> i64 {
        self.window_ms
    }
    fn event_time(&self, input: &EdgeCalls) -> EventTime {
        input.bucket
    }
    fn origin(&self, input: &EdgeCalls) -> Origin {
        input.origin
    }
    fn route(&self, input: &EdgeCalls) -> u64 {
        input.edge_hash()
    }
    fn split(&self, input: EdgeCalls) -> (EdgeKey, CallStats) {
        ((input.tenant, input.src, input.dst, input.connection_type), input.stats)
    }
    fn new_state(&self) -> CallStats {
        CallStats::default()
    }
    fn fold(&self, state: &mut CallStats, part: CallStats) {
        state.merge(&part);
    }
    fn row(&self, window_start: EventTime, key: &EdgeKey, state: &CallStats) -> Option<ServiceCall5mRow> {
        let mut row = ServiceCall5mRow::from_stats(window_start, self.window_ms, key, state)?;
        if self.samples {
            row.sample_ref = state.samples.sample().map(|s| raw_archive::span_ref(s.ts, &s.trace_id, &s.span_id));
        }
        Some(row)
    }
}

pub(crate) fn timestamp_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), nullable)
}

impl ViewRow for ServiceCall5mRow {
    const VIEW: &'static str = "service_call_5m";
    const KEY_COLUMNS: &'static [&'static str] = &["bucket", "tenant", "src", "dst", "connection_type"];
    type Key = (EventTime, String, String, String, ConnectionType);

    fn key(&self) -> Self::Key {
        (self.bucket, self.tenant.clone(), self.src.clone(), self.dst.clone(), self.connection_type)
    }
    fn window_start(&self) -> Option<EventTime> {
        Some(self.bucket)
    }
    fn schema() -> SchemaRef {
        let f = |name: &str| Field::new(name, DataType::Float64, false);
        let nf = |name: &str| Field::new(name, DataType::Float64, true);
        Arc::new(Schema::new(vec![
            timestamp_field("bucket", false),
            Field::new("tenant", DataType::Utf8, false),
            Field::new("src", DataType::Utf8, false),
            Field::new("dst", DataType::Utf8, false),
            Field::new("connection_type", DataType::Utf8, false),
            f("calls"),
            f("errors"),
            f("rps"),
            f("err_rate"),
            f("p50_ms"),
            f("p95_ms"),
            f("p99_ms"),
            nf("server_p50_ms"),
            nf("server_p95_ms"),
            Field::new("sample_ref", DataType::Utf8, true),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let strings = |f: fn(&Self) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef;
        let floats = |f: fn(&Self) -> OrdF64| Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| f(r).0))) as ArrayRef;
        let nullable = |f: fn(&Self) -> Option<OrdF64>| Arc::new(rows.iter().map(|r| f(r).map(|v| v.0)).collect::<Float64Array>()) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.bucket * 1000)).with_timezone("UTC")),
            strings(|r| &r.tenant),
            strings(|r| &r.src),
            strings(|r| &r.dst),
            strings(|r| r.connection_type.as_str()),
            floats(|r| r.calls),
            floats(|r| r.errors),
            floats(|r| r.rps),
            floats(|r| r.err_rate),
            floats(|r| r.p50_ms),
            floats(|r| r.p95_ms),
            floats(|r| r.p99_ms),
            nullable(|r| r.server_p50_ms),
            nullable(|r| r.server_p95_ms),
            Arc::new(rows.iter().map(|r| r.sample_ref.as_deref()).collect::<StringArray>()),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}
