//! `call_graph_active` and `topo_edge_time`: the live call graph and its history.
//!
//! - **`call_graph_active`**, key `tenant, src, dst, connection_type`: every edge with calls in
//!   the last `active` (default 10 minutes) of event time, with `first_seen` (the first call of
//!   its current run of activity), `last_seen`, `calls`, `rps` (calls / active seconds),
//!   `err_rate` and `p95_ms` over that span. "Now" is the call views' watermark (the engine
//!   watermark minus the pairing wait); calls are counted per minute, so the span slides by whole
//!   minutes. When an edge has no call left in the span it goes idle: its row is retracted
//!   (sinks delete it).
//! - **`topo_edge_time`**, key `tenant, src, dst, relation, valid_from`: one row per run of
//!   activity of an edge, `[valid_from, valid_to)`: `valid_from` is the run's first call,
//!   `valid_to` is null while the edge is active and `last_seen + active` once it is idle, so
//!   "the topology at time T" is `valid_from <= T AND (valid_to IS NULL OR T < valid_to)`.
//!   A closed row is final: it stays in Postgres, goes to Parquet once the 5-minute bucket of its
//!   `valid_to` is final, and leaves memory.
//! - **Edge changes** (`+1` when an edge becomes active, `-1` when it goes idle) feed the graph
//!   questions of [`blast_radius`](super::blast_radius).
//!
//! State: per active edge, one aggregate per minute of the active span; idle edges leave memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::service_call_5m::{combine, timestamp_field, Call, CallStats, ConnectionType, EdgeCalls, EdgeKey};
use super::{OrdF64, ViewRow};
use crate::record::EventTime;
use crate::time::{window_is_final, window_start};
use crate::window::epoch_by_epoch;

const MINUTE: i64 = 60_000;
/// Closed `topo_edge_time` rows are written to Parquet per 5-minute bucket of `valid_to`.
pub const TOPO_BUCKET_MS: i64 = 300_000;

/// Parameters of the live graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallGraphConfig {
    /// How long an edge stays active after its last call (event time; default 10 minutes).
    pub active_ms: i64,
}

impl Default for CallGraphConfig {
    fn default() -> Self {
        Self { active_ms: 600_000 }
    }
}

/// One row of `call_graph_active`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallGraphActiveRow {
    pub tenant: String,
    pub src: String,
    pub dst: String,
    pub connection_type: ConnectionType,
    pub first_seen: EventTime,
    pub last_seen: EventTime,
    pub calls: OrdF64,
    pub rps: OrdF64,
    pub err_rate: OrdF64,
    pub p95_ms: OrdF64,
}

/// One row of `topo_edge_time`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopoEdgeTimeRow {
    pub tenant: String,
    pub src: String,
    pub dst: String,
    pub relation: ConnectionType,
    pub valid_from: EventTime,
    pub valid_to: Option<EventTime>,
}

/// What the live-graph operator emits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GraphEvent {
    Active(CallGraphActiveRow, isize),
    Topo(TopoEdgeTimeRow, isize),
    /// A closed interval whose bucket is final (for Parquet).
    TopoFinal(TopoEdgeTimeRow),
    /// `(tenant, src, dst)` became active (+1) or idle (-1) for one connection type.
    Edge((String, String, String), isize),
    /// Active edges held by this worker.
    Live(u64),
}

#[derive(Default)]
struct Minute {
    stats: CallStats,
}

#[derive(Default)]
struct EdgeState {
    minutes: BTreeMap<EventTime, Minute>,
    emitted: Option<CallGraphActiveRow>,
    open: Option<TopoEdgeTimeRow>,
    /// First and last call of the current run of activity (kept when minutes leave the span, so
    /// a run that starts and ends between two watermarks still gets its interval).
    run_first: Option<EventTime>,
    last_seen: Option<EventTime>,
}

/// The live graph's state on one worker (usable without timely, for tests).
pub struct ActiveGraph {
    cfg: CallGraphConfig,
    watermark: Option<EventTime>,
    edges: HashMap<EdgeKey, EdgeState, Xxh3DefaultBuilder>,
    closed: BTreeMap<EventTime, Vec<TopoEdgeTimeRow>>,
}

impl ActiveGraph {
    pub fn new(cfg: CallGraphConfig) -> Self {
        Self { cfg, watermark: None, edges: HashMap::default(), closed: BTreeMap::new() }
    }

    /// Folds one epoch's calls, then applies the epoch's new call watermark, if any.
    pub fn step(&mut self, calls: Vec<Call>, watermark: Option<EventTime>, out: &mut Vec<GraphEvent>) {
        self.step_edges(combine(calls, MINUTE), watermark, out);
    }

    /// [`step`](Self::step) with the epoch's calls already merged per edge and bucket (the
    /// bucket size must divide a minute).
    pub fn step_edges(&mut self, calls: Vec<EdgeCalls>, watermark: Option<EventTime>, out: &mut Vec<GraphEvent>) {
        let mut touched: Vec<EdgeKey> = Vec::new();
        for calls in calls {
            let minute = window_start(calls.bucket, MINUTE);
            let key = (calls.tenant, calls.src, calls.dst, calls.connection_type);
            let edge = self.edges.entry(key.clone()).or_default();
            touched.push(key);
            let m = edge.minutes.entry(minute).or_default();
            m.stats.merge(&calls.stats);
            if let Some(first) = calls.first {
                edge.run_first = Some(edge.run_first.map_or(first, |f| f.min(first)));
            }
            if let Some(last) = calls.last {
                edge.last_seen = Some(edge.last_seen.map_or(last, |l| l.max(last)));
            }
        }
        if let Some(wm) = watermark {
            let wm = self.watermark.map_or(wm, |w| w.max(wm));
            self.watermark = Some(wm);
            let horizon = wm.saturating_sub(self.cfg.active_ms);
            for (key, edge) in self.edges.iter_mut() {
                let before = edge.minutes.len();
                while let Some(first) = edge.minutes.first_entry() {
                    if first.key() + MINUTE > horizon {
                        break;
                    }
                    first.remove();
                }
                if edge.minutes.len() != before {
                    touched.push(key.clone());
                }
            }
        }
        touched.sort();
        touched.dedup();
        for key in touched {
            self.refresh(&key, out);
        }
        if let Some(wm) = self.watermark {
            while let Some(first) = self.closed.first_entry() {
                if !window_is_final(*first.key(), TOPO_BUCKET_MS, Some(wm)) {
                    break;
                }
                for row in first.remove() {
                    out.push(GraphEvent::TopoFinal(row));
                }
            }
        }
        out.push(GraphEvent::Live(self.edges.len() as u64));
    }

    fn refresh(&mut self, key: &EdgeKey, out: &mut Vec<GraphEvent>) {
        let Some(edge) = self.edges.get_mut(key) else { return };
        edge.minutes.retain(|_, m| m.stats.records > 0);
        let mut stats = CallStats::default();
        for m in edge.minutes.values() {
            stats.merge(&m.stats);
        }
        let edge_id = (key.0.clone(), key.1.clone(), key.2.clone());
        if edge.minutes.is_empty() {
            if let Some(old) = edge.emitted.take() {
                out.push(GraphEvent::Active(old, -1));
                out.push(GraphEvent::Edge(edge_id, -1));
            }
            // Close the run's interval; a run that began and ended between two watermarks was
            // never open, and gets its closed row directly.
            if let (Some(first), Some(last)) = (edge.run_first, edge.last_seen) {
                let valid_to = last + self.cfg.active_ms;
                let closed = match edge.open.take() {
                    Some(open) => {
                        let closed = TopoEdgeTimeRow { valid_to: Some(valid_to), ..open.clone() };
                        out.push(GraphEvent::Topo(open, -1));
                        closed
                    }
                    None => TopoEdgeTimeRow { tenant: key.0.clone(), src: key.1.clone(), dst: key.2.clone(), relation: key.3, valid_from: first, valid_to: Some(valid_to) },
                };
                out.push(GraphEvent::Topo(closed.clone(), 1));
                self.closed.entry(window_start(valid_to, TOPO_BUCKET_MS)).or_default().push(closed);
            }
            self.edges.remove(key);
            return;
        }
        let last_seen = edge.last_seen.unwrap_or_default();
        let run_first = edge.run_first.unwrap_or(last_seen);
        let open = edge.open.get_or_insert_with(|| {
            let row = TopoEdgeTimeRow { tenant: key.0.clone(), src: key.1.clone(), dst: key.2.clone(), relation: key.3, valid_from: run_first, valid_to: None };
            out.push(GraphEvent::Topo(row.clone(), 1));
            out.push(GraphEvent::Edge(edge_id.clone(), 1));
            row
        });
        let calls = stats.calls.value();
        let row = CallGraphActiveRow {
            tenant: key.0.clone(),
            src: key.1.clone(),
            dst: key.2.clone(),
            connection_type: key.3,
            first_seen: open.valid_from,
            last_seen,
            calls: OrdF64(calls),
            rps: OrdF64(calls / (self.cfg.active_ms as f64 / 1000.0)),
            err_rate: OrdF64(stats.err_rate()),
            p95_ms: OrdF64(stats.latency.quantile(0.95).unwrap_or(0.0)),
        };
        if edge.emitted.as_ref() != Some(&row) {
            if let Some(old) = edge.emitted.take() {
                out.push(GraphEvent::Active(old, -1));
            }
            out.push(GraphEvent::Active(row.clone(), 1));
            edge.emitted = Some(row);
        }
    }
}

/// Runs the live graph over calls (exchanged by edge) with the call views' watermark stream.
pub fn active_graph<'scope>(
    cfg: CallGraphConfig,
    calls: StreamVec<'scope, u64, EdgeCalls>,
    watermarks: StreamVec<'scope, u64, EventTime>,
) -> StreamVec<'scope, u64, GraphEvent> {
    let mut graph = ActiveGraph::new(cfg);
    epoch_by_epoch("call_graph_active", calls, watermarks, EdgeCalls::edge_hash, move |calls, watermark, out| graph.step_edges(calls, watermark, out))
}

fn micros(rows: &[&impl Sized], f: impl Fn(usize) -> Option<EventTime>) -> ArrayRef {
    Arc::new((0..rows.len()).map(|i| f(i).map(|ms| ms * 1000)).collect::<TimestampMicrosecondArray>().with_timezone("UTC"))
}

impl ViewRow for CallGraphActiveRow {
    const VIEW: &'static str = "call_graph_active";
    const KEY_COLUMNS: &'static [&'static str] = &["tenant", "src", "dst", "connection_type"];
    type Key = (String, String, String, ConnectionType);

    fn key(&self) -> Self::Key {
        (self.tenant.clone(), self.src.clone(), self.dst.clone(), self.connection_type)
    }
    fn window_start(&self) -> Option<EventTime> {
        None
    }
    fn schema() -> SchemaRef {
        let f = |name: &str| Field::new(name, DataType::Float64, false);
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("src", DataType::Utf8, false),
            Field::new("dst", DataType::Utf8, false),
            Field::new("connection_type", DataType::Utf8, false),
            timestamp_field("first_seen", false),
            timestamp_field("last_seen", false),
            f("calls"),
            f("rps"),
            f("err_rate"),
            f("p95_ms"),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let strings = |f: fn(&Self) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef;
        let floats = |f: fn(&Self) -> OrdF64| Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| f(r).0))) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            strings(|r| &r.tenant),
            strings(|r| &r.src),
            strings(|r| &r.dst),
            strings(|r| r.connection_type.as_str()),
            micros(rows, |i| Some(rows[i].first_seen)),
            micros(rows, |i| Some(rows[i].last_seen)),
            floats(|r| r.calls),
            floats(|r| r.rps),
            floats(|r| r.err_rate),
            floats(|r| r.p95_ms),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}

impl ViewRow for TopoEdgeTimeRow {
    const VIEW: &'static str = "topo_edge_time";
    const KEY_COLUMNS: &'static [&'static str] = &["tenant", "src", "dst", "relation", "valid_from"];
    type Key = (String, String, String, ConnectionType, EventTime);

    fn key(&self) -> Self::Key {
        (self.tenant.clone(), self.src.clone(), self.dst.clone(), self.relation, self.valid_from)
    }
    /// Closed rows are written per 5-minute bucket of `valid_to`.
    fn window_start(&self) -> Option<EventTime> {
        self.valid_to.map(|t| window_start(t, TOPO_BUCKET_MS))
    }
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("src", DataType::Utf8, false),
            Field::new("dst", DataType::Utf8, false),
            Field::new("relation", DataType::Utf8, false),
            timestamp_field("valid_from", false),
            timestamp_field("valid_to", true),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let strings = |f: fn(&Self) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            strings(|r| &r.tenant),
            strings(|r| &r.src),
            strings(|r| &r.dst),
            strings(|r| r.relation.as_str()),
            micros(rows, |i| Some(rows[i].valid_from)),
            micros(rows, |i| rows[i].valid_to),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}
