//! Change correlation: `change_impact`, `regression` and `regression_suspect`, maintained
//! incrementally with differential joins and reduces over the changes, the windowed views and
//! the live graph.
//!
//! # Signals
//! Per tenant, service and 5-minute bucket (the `service_call_5m` window), from the other views'
//! rows:
//! - `err_rate`, `p95_ms`, `calls` (requests/s): calls *into* the service (`service_call_5m` rows
//!   whose `dst` is the service; `p95_ms` is the calls-weighted mean of the callers' p95s);
//! - `error_logs`: `log_pattern_5m.count_error` of the service, and `error_log_ratio`: the share
//!   of its lines that are errors (weighted by lines, so a window still filling up is judged
//!   like a full one); `new_patterns`: templates the service logged for the first time in the
//!   bucket (`log_pattern_new`);
//! - `metric:<name>`: `metric_1m` of the service for each metric the job names (sum / count).
//!
//! # change_impact
//! For every change and every service among the changed one (`self`), its callees and its callers
//! in the live graph (`call_graph_active`): per signal, `before` = the mean over the buckets in
//! `[b - before, b)` and `after` over `[b, b + after)`, `b` the change's bucket (rates weighted by
//! calls); `delta = after - before`; `score` = [`impact_score`]. Rows update as the after-window
//! fills and stay once it is final (watermark past `b + after + pairing wait`).
//!
//! # regression
//! A bucket of a service's `err_rate`, `p95_ms` or `error_log_ratio` (or a named metric) is anomalous
//! when it is above `median + max(sensitivity * 1.4826 * MAD, floor)` of the same signal over the
//! previous `baseline` (default 1 hour; at least `min_baseline_buckets` buckets; anomalous buckets
//! never enter a baseline, so a regression lasting longer than the baseline clears when no
//! normal bucket is left in it: the new level becomes the normal), with at least
//! `min_calls` calls (log lines for `error_log_ratio`) in the bucket and in each baseline bucket
//! ([`threshold`]). All regression signals are rates, so a window still filling up (or the
//! partial first window of a series) is judged like a full one once it has the volume.
//! A run of anomalous buckets is a regression: `started_at` its first bucket, `cleared_at` the
//! first later bucket that is not anomalous (null while open).
//!
//! # regression_suspect
//! For every open regression of service S: the changes detected in `[started_at - lookback,
//! started_at + one bucket]` on S itself (0 hops) and on S's downstream dependencies up to
//! `max_hops` (from `blast_radius` on the live graph), ranked by [`suspect_score`]:
//! `0.35 proximity + 0.30 impact + 0.20 distance + 0.15 type`, where proximity is
//! `1 - (started_at - detected_at) / lookback` clamped to [0, 1], impact the change's own best
//! `change_impact` score on its service, distance `1 / (1 + hops)`, type [`type_weight`]. Ties
//! rank by change id. Each row carries its evidence (JSON): the change's summary, the before /
//! after values behind its impact, the score's parts, and the keys of the rows behind them. The
//! rows are retracted when the regression clears.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;
use timely::ExchangeData;
use xxhash_rust::xxh3::Xxh3;

use super::blast_radius::{BlastRadiusRow, Direction};
use super::change_event::{micros, ChangeEventRow};
use super::log_pattern::{LogPattern5mRow, LogPatternNewRow};
use super::metric_1m::Metric1mRow;
use super::service_call_5m::{timestamp_field, ServiceCall5mRow};
use super::{OrdF64, ViewRow};
use crate::record::EventTime;
use crate::window::epoch_by_epoch;

/// Correlation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorrelationConfig {
    /// Bucket of the signals: `service_call_5m`'s window.
    pub bucket_ms: i64,
    /// Before / after windows of `change_impact`.
    pub before_ms: i64,
    pub after_ms: i64,
    /// A regression's baseline: this much history before the bucket.
    pub baseline_ms: i64,
    /// Changes this long before a regression's start are suspects.
    pub lookback_ms: i64,
    /// MADs above the median that make a bucket anomalous.
    pub sensitivity: f64,
    /// Calls a bucket needs to count for `err_rate` / `p95_ms`.
    pub min_calls: f64,
    /// Baseline buckets needed before anything is called anomalous.
    pub min_baseline_buckets: usize,
    /// Downstream hops whose changes are suspects.
    pub max_hops: u32,
    /// The pairing wait: call rows of a bucket settle this long after its end.
    pub wait_ms: i64,
    /// `metric_1m` metrics used as signals (`metric:<name>`).
    pub metrics: Vec<String>,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        Self {
            bucket_ms: 300_000,
            before_ms: 900_000,
            after_ms: 900_000,
            baseline_ms: 3_600_000,
            lookback_ms: 3_600_000,
            sensitivity: 4.0,
            min_calls: 20.0,
            min_baseline_buckets: 1,
            max_hops: 2,
            wait_ms: 0,
            metrics: Vec::new(),
        }
    }
}

impl CorrelationConfig {
    /// How long signal points and changes are kept (and re-read after a restart).
    pub fn retention_ms(&self) -> i64 {
        self.baseline_ms.max(self.lookback_ms) + self.before_ms + self.after_ms + 2 * self.bucket_ms + self.wait_ms
    }
}

/// One row of `change_impact`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChangeImpactRow {
    pub tenant: String,
    pub change_id: String,
    /// The service measured.
    pub resource: String,
    pub signal: String,
    /// `self`, `callee` or `caller` (of the changed service).
    pub relation: String,
    pub detected_at: EventTime,
    pub before: Option<OrdF64>,
    pub after: Option<OrdF64>,
    pub delta: Option<OrdF64>,
    pub score: OrdF64,
}

/// One row of `regression`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegressionRow {
    pub tenant: String,
    pub regression_id: String,
    pub service: String,
    pub signal: String,
    pub started_at: EventTime,
    pub cleared_at: Option<EventTime>,
    /// Median of the baseline before the first anomalous bucket.
    pub baseline: OrdF64,
    /// The largest value of the run.
    pub peak: OrdF64,
}

/// One row of `regression_suspect`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegressionSuspectRow {
    pub tenant: String,
    pub regression_id: String,
    pub change_id: String,
    /// The regressed service and signal.
    pub service: String,
    pub signal: String,
    pub started_at: EventTime,
    /// The changed service, the change's type and time.
    pub changed_service: String,
    pub change_type: String,
    pub detected_at: EventTime,
    pub rank: i64,
    pub score: OrdF64,
    pub hops: i64,
    pub evidence: String,
}

/// A signal point: `((tenant, service, signal), (bucket, value, weight))`.
type Point = ((String, String, String), (EventTime, OrdF64, OrdF64));

/// The relative-increase impact of a change on one signal, in [0, 1): `s / (1 + s)` with
/// `s = max(0, after - before) / max(|before|, floor)` (for `calls`, a change either way counts).
/// Floors: err_rate 0.01, p95_ms 5 ms, calls 1 rps, error_logs 5, new_patterns 1, metrics 1e-9.
pub fn impact_score(signal: &str, before: f64, after: f64) -> f64 {
    let floor = match signal {
        "err_rate" => 0.01,
        "p95_ms" => 5.0,
        "calls" => 1.0,
        "error_logs" => 5.0,
        "error_log_ratio" => 0.01,
        "new_patterns" => 1.0,
        _ => 1e-9,
    };
    let rise = if signal == "calls" { (after - before).abs() } else { (after - before).max(0.0) };
    let s = rise / before.abs().max(floor);
    if s.is_finite() { s / (1.0 + s) } else { 1.0 }
}

/// The anomaly threshold of a bucket given its baseline median and MAD:
/// `median + max(sensitivity * 1.4826 * mad, abs_floor, rel_floor * median)`, with floors
/// err_rate (0.02, 0), p95_ms (10 ms, 0.5), error_log_ratio (0.05, 1.0), metrics (0, 0.5).
pub fn threshold(signal: &str, median: f64, mad: f64, sensitivity: f64) -> f64 {
    let (abs_floor, rel_floor) = match signal {
        "err_rate" => (0.02, 0.0),
        "p95_ms" => (10.0, 0.5),
        "error_log_ratio" => (0.05, 1.0),
        _ => (0.0, 0.5),
    };
    median + (sensitivity * 1.4826 * mad).max(abs_floor).max(rel_floor * median.abs())
}

/// Signals regressions are looked for in.
pub fn is_regression_signal(signal: &str) -> bool {
    matches!(signal, "err_rate" | "p95_ms" | "error_log_ratio") || signal.starts_with("metric:")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// A regression found by [`find_regressions`].
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub started_at: EventTime,
    pub cleared_at: Option<EventTime>,
    pub baseline: f64,
    pub peak: f64,
}

/// The regressions in one service's signal, from its buckets `(bucket, value, weight)` (any
/// order): the from-scratch definition the differential reduce applies.
pub fn find_regressions(signal: &str, points: &[(EventTime, f64, f64)], cfg: &CorrelationConfig) -> Vec<Run> {
    let mut points: Vec<(EventTime, f64, f64)> = points.to_vec();
    points.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let needs_volume = matches!(signal, "err_rate" | "p95_ms" | "error_log_ratio");
    let counts = |w: f64| !needs_volume || w >= cfg.min_calls;
    let mut runs = Vec::new();
    let mut open: Option<Run> = None;
    // Buckets judged normal (or unjudged for lack of baseline): anomalous ones never enter a
    // baseline, so a long regression does not become its own baseline.
    let mut normal: Vec<(EventTime, f64)> = Vec::new();
    for &(bucket, value, weight) in &points {
        if !counts(weight) {
            continue;
        }
        let mut baseline: Vec<f64> = normal.iter().filter(|p| p.0 >= bucket - cfg.baseline_ms).map(|p| p.1).collect();
        if baseline.len() < cfg.min_baseline_buckets.max(1) {
            normal.push((bucket, value));
            if let Some(mut run) = open.take() {
                run.cleared_at = Some(bucket);
                runs.push(run);
            }
            continue;
        }
        let med = median(&mut baseline);
        let mut deviations: Vec<f64> = baseline.iter().map(|v| (v - med).abs()).collect();
        let mad = median(&mut deviations);
        let anomalous = value > threshold(signal, med, mad, cfg.sensitivity);
        if !anomalous {
            normal.push((bucket, value));
        }
        match (&mut open, anomalous) {
            (Some(run), true) => run.peak = run.peak.max(value),
            (None, true) => open = Some(Run { started_at: bucket, cleared_at: None, baseline: med, peak: value }),
            (Some(_), false) => {
                let mut run = open.take().expect("open run");
                run.cleared_at = Some(bucket);
                runs.push(run);
            }
            (None, false) => {}
        }
    }
    runs.extend(open);
    // Runs whose start is about to leave the horizon are no longer reported (their baseline is
    // going): a shortened run must not reappear as a new regression.
    let latest = points.last().map_or(EventTime::MIN, |p| p.0);
    let keep = cfg.retention_ms() - cfg.baseline_ms - cfg.bucket_ms;
    runs.retain(|r| r.started_at + keep > latest);
    runs
}

/// The weight of a change type in [`suspect_score`].
pub fn type_weight(change_type: &str) -> f64 {
    match change_type {
        "image" => 1.0,
        "env" | "command" => 0.8,
        "configmap" | "secret" => 0.7,
        "resources" | "rollout" => 0.6,
        "event:OOMKilling" | "service" | "deleted" => 0.5,
        t if t.starts_with("event:") => 0.4,
        "scale" => 0.3,
        _ => 0.1,
    }
}

/// The parts of a suspect's score and the score.
pub fn suspect_score(started_at: EventTime, detected_at: EventTime, lookback_ms: i64, impact: f64, hops: i64, change_type: &str) -> (f64, [f64; 4]) {
    let proximity = 1.0 - ((started_at - detected_at) as f64 / lookback_ms.max(1) as f64).clamp(0.0, 1.0);
    let distance = 1.0 / (1.0 + hops as f64);
    let kind = type_weight(change_type);
    let score = 0.35 * proximity + 0.30 * impact + 0.20 * distance + 0.15 * kind;
    (score, [proximity, impact, distance, kind])
}

/// Rounds for output: scores and values in rows are stable to 1e-9.
fn round(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// A stream of `(row, diff)` as a differential collection (the epoch is the time).
fn collection<'s, R: ExchangeData>(stream: StreamVec<'s, u64, (R, isize)>) -> VecCollection<'s, u64, R> {
    stream
        .unary(Pipeline, "as_collection", |_cap, _info| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else { return };
                    let time = *cap.time();
                    output.session(&cap).give_iterator(data.drain(..).map(move |(r, d)| (r, time, d)));
                });
            }
        })
        .as_collection()
}

/// Forwards `(row, diff)` changes and retracts what it forwarded once the watermark is
/// `retention_ms` past the row's time; changes already that old are dropped. Bounded state for
/// the inputs of correlation (the other views' own outputs are not touched).
pub fn expire<'s, R, F>(name: &str, stream: StreamVec<'s, u64, (R, isize)>, watermarks: StreamVec<'s, u64, EventTime>, retention_ms: i64, time_of: F) -> StreamVec<'s, u64, (R, isize)>
where
    R: ExchangeData + Clone + std::hash::Hash + Eq,
    F: Fn(&R) -> EventTime + 'static,
{
    let mut held: BTreeMap<EventTime, HashMap<R, isize>> = BTreeMap::new();
    let mut watermark: Option<EventTime> = None;
    epoch_by_epoch(name, stream, watermarks, hash_route::<R>, move |records, new_wm, out| {
        for (row, diff) in records {
            let t = time_of(&row);
            if watermark.is_some_and(|wm| t.saturating_add(retention_ms) <= wm) {
                continue;
            }
            let slot = held.entry(t).or_default().entry(row.clone()).or_insert(0);
            *slot += diff;
            if *slot == 0 {
                if let Some(m) = held.get_mut(&t) {
                    m.remove(&row);
                }
            }
            out.push((row, diff));
        }
        if let Some(wm) = new_wm {
            watermark = Some(watermark.map_or(wm, |w| w.max(wm)));
        }
        if let Some(wm) = watermark {
            while let Some(first) = held.first_entry() {
                if first.key().saturating_add(retention_ms) > wm {
                    break;
                }
                out.extend(first.remove().into_iter().filter(|(_, d)| *d != 0).map(|(r, d)| (r, -d)));
            }
        }
    })
}

fn hash_route<R: std::hash::Hash>(r: &(R, isize)) -> u64 {
    use std::hash::BuildHasher;
    xxhash_rust::xxh3::Xxh3DefaultBuilder.hash_one(&r.0)
}

/// Drops the changes of rows that are final under the watermark known before the epoch: what
/// was written for them stays (a final `change_impact` row, a cleared `regression`). Changes are
/// exchanged by primary key, so the retraction and the new version of a row meet on one worker
/// (and reach the sinks as one upsert).
fn freeze<'s, R, F>(name: &str, stream: StreamVec<'s, u64, (R, isize)>, watermarks: StreamVec<'s, u64, EventTime>, is_final: F) -> StreamVec<'s, u64, (R, isize)>
where
    R: ExchangeData + Clone + ViewRow,
    R::Key: std::hash::Hash,
    F: Fn(&R, EventTime) -> bool + 'static,
{
    let mut watermark: Option<EventTime> = None;
    let route = |(r, _): &(R, isize)| {
        use std::hash::BuildHasher;
        xxhash_rust::xxh3::Xxh3DefaultBuilder.hash_one(r.key())
    };
    epoch_by_epoch(name, stream, watermarks, route, move |records, new_wm, out| {
        out.extend(records.into_iter().filter(|(r, _)| !watermark.is_some_and(|wm| is_final(r, wm))));
        if let Some(wm) = new_wm {
            watermark = Some(watermark.map_or(wm, |w| w.max(wm)));
        }
    })
}

/// What correlation reads: the other views' changes as `(row, diff)` streams.
pub struct CorrelationInputs<'s> {
    pub changes: StreamVec<'s, u64, (ChangeEventRow, isize)>,
    pub calls: Option<StreamVec<'s, u64, (ServiceCall5mRow, isize)>>,
    /// Active edges `((tenant, src, dst), diff)`, one per connection type.
    pub edges: Option<StreamVec<'s, u64, ((String, String, String), isize)>>,
    pub blast: Option<StreamVec<'s, u64, (BlastRadiusRow, isize)>>,
    pub log_counts: Option<StreamVec<'s, u64, (LogPattern5mRow, isize)>>,
    pub new_patterns: Option<StreamVec<'s, u64, (LogPatternNewRow, isize)>>,
    pub metrics: Option<StreamVec<'s, u64, (Metric1mRow, isize)>>,
}

/// What correlation produces.
pub struct CorrelationOutputs<'s> {
    pub impact: StreamVec<'s, u64, (ChangeImpactRow, isize)>,
    pub regressions: StreamVec<'s, u64, (RegressionRow, isize)>,
    pub suspects: StreamVec<'s, u64, (RegressionSuspectRow, isize)>,
}

fn svc(s: &str) -> bool {
    s.starts_with("urn:k8s:svc:")
}

fn hex_id(parts: &[&str], n: i64) -> String {
    let mut h = Xxh3::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(&[0xff]);
    }
    h.update(&n.to_le_bytes());
    format!("{:016x}", h.digest())
}

/// Builds the three views (see the module documentation).
pub fn correlate<'s>(cfg: CorrelationConfig, inputs: CorrelationInputs<'s>, watermarks: StreamVec<'s, u64, EventTime>) -> CorrelationOutputs<'s> {
    let retention = cfg.retention_ms();
    let bucket_ms = cfg.bucket_ms;
    let bucket_of = move |t: EventTime| t.div_euclid(bucket_ms) * bucket_ms;
    let scope = inputs.changes.scope();

    // Signal contributions ((tenant, service, signal, bucket), (a, b)), summed per key.
    type Contribution = ((String, String, String, EventTime), (OrdF64, OrdF64));
    let mut parts: Vec<StreamVec<'s, u64, (Contribution, isize)>> = Vec::new();
    if let Some(calls) = inputs.calls {
        let calls = expire("correlation_calls", calls, watermarks.clone(), retention, |r: &ServiceCall5mRow| r.bucket);
        parts.push(calls.flat_map(|(r, d)| {
            let mut out = Vec::new();
            if svc(&r.dst) {
                let key = |s: &str| (r.tenant.clone(), r.dst.clone(), s.to_owned(), r.bucket);
                out.push(((key("err_rate"), (r.errors, r.calls)), d));
                out.push(((key("p95_ms"), (OrdF64(r.p95_ms.0 * r.calls.0), r.calls)), d));
                out.push(((key("calls"), (r.rps, OrdF64(0.0))), d));
            }
            out
        }));
    }
    if let Some(logs) = inputs.log_counts {
        let logs = expire("correlation_logs", logs, watermarks.clone(), retention, |r: &LogPattern5mRow| r.bucket);
        parts.push(logs.flat_map(|(r, d)| {
            let part = (OrdF64(r.count_error as f64), OrdF64(r.count_total as f64));
            [
                (((r.tenant.clone(), r.resource.clone(), "error_logs".to_owned(), r.bucket), part), d),
                (((r.tenant, r.resource, "error_log_ratio".to_owned(), r.bucket), part), d),
            ]
        }));
    }
    if let Some(new) = inputs.new_patterns {
        let new = expire("correlation_new_patterns", new, watermarks.clone(), retention, |r: &LogPatternNewRow| r.first_seen);
        parts.push(new.map(move |(r, d)| (((r.tenant, r.resource, "new_patterns".to_owned(), bucket_of(r.first_seen)), (OrdF64(1.0), OrdF64(0.0))), d)));
    }
    if let Some(metrics) = inputs.metrics {
        let names = cfg.metrics.clone();
        let metrics = metrics.flat_map(move |(r, d)| names.contains(&r.metric).then_some((r, d)));
        let metrics = expire("correlation_metrics", metrics, watermarks.clone(), retention, |r: &Metric1mRow| r.bucket);
        parts.push(metrics.map(move |(r, d)| (((r.tenant, r.resource, format!("metric:{}", r.metric), bucket_of(r.bucket)), (r.sum, OrdF64(r.count as f64))), d)));
    }
    use timely::dataflow::operators::Concatenate;
    let contributions = collection(scope.concatenate(parts));
    let points: VecCollection<'s, u64, Point> = contributions
        .reduce(|_key, input, output| {
            let (mut a, mut b) = (0.0, 0.0);
            for ((x, y), n) in input {
                a += x.0 * *n as f64;
                b += y.0 * *n as f64;
            }
            output.push(((OrdF64(a), OrdF64(b)), 1isize));
        })
        .flat_map(|((tenant, service, signal, bucket), (a, b))| {
            let (value, weight) = match signal.as_str() {
                "err_rate" | "p95_ms" | "error_log_ratio" => (if b.0 > 0.0 { a.0 / b.0 } else { 0.0 }, b.0),
                "calls" | "new_patterns" | "error_logs" => (a.0, 1.0),
                _ => (if b.0 > 0.0 { a.0 / b.0 } else { 0.0 }, b.0),
            };
            (b.0 > 0.0 || matches!(signal.as_str(), "calls" | "new_patterns" | "error_logs")).then(|| ((tenant, service, signal), (bucket, OrdF64(round(value)), OrdF64(round(weight)))))
        });

    // Changes, kept for the horizon.
    let changes = collection(expire("correlation_changes", inputs.changes, watermarks.clone(), retention, |c: &ChangeEventRow| c.detected_at));
    let by_service = changes.clone().map(|c| ((c.tenant.clone(), c.service.clone()), c));

    // change_impact: the changed service, its callees and callers, joined with their points.
    let edges = inputs.edges.map(|e| collection(e).distinct());
    let mut neighbours = by_service.clone().map(|(k, c)| (k, (c.change_id, c.detected_at, 0u8)));
    if let Some(edges) = &edges {
        let callees = edges.clone().map(|(t, src, dst)| ((t, src), dst));
        let callers = edges.clone().map(|(t, src, dst)| ((t, dst), src));
        let down = by_service.clone().join_map(callees, |(t, _), c, dst| ((t.clone(), dst.clone()), (c.change_id.clone(), c.detected_at, 1u8)));
        let up = by_service.clone().join_map(callers, |(t, _), c, src| ((t.clone(), src.clone()), (c.change_id.clone(), c.detected_at, 2u8)));
        neighbours = neighbours.concat(down).concat(up);
    }
    let points_by_service = points.clone().map(|((t, s, sig), v)| ((t, s), (sig, v)));
    let (before_ms, after_ms) = (cfg.before_ms, cfg.after_ms);
    let impact = neighbours
        .join_map(points_by_service, move |(t, s), (id, at, rel), (sig, (b, v, w))| {
            let cb = bucket_of(*at);
            let side = if *b >= cb - before_ms && *b < cb { Some(0u8) } else if *b >= cb && *b < cb + after_ms { Some(1u8) } else { None };
            ((t.clone(), id.clone(), s.clone(), sig.clone()), (*rel, *at, side, *b, *v, *w))
        })
        .filter(|(_, (_, _, side, _, _, _))| side.is_some())
        .reduce(|(_, _, _, signal), input, output| {
            let relation = input.iter().map(|((rel, ..), _)| *rel).min().unwrap_or(0);
            let detected_at = input.first().map(|((_, at, ..), _)| *at).unwrap_or_default();
            let mut sums = [(0.0f64, 0.0f64); 2];
            for ((_, _, side, _, v, w), n) in input {
                let Some(side) = side else { continue };
                let s = &mut sums[*side as usize];
                s.0 += v.0 * w.0 * *n as f64;
                s.1 += w.0 * *n as f64;
            }
            let mean = |(a, b): (f64, f64)| (b > 0.0).then(|| round(a / b));
            let (before, after) = (mean(sums[0]), mean(sums[1]));
            let delta = before.zip(after).map(|(b, a)| round(a - b));
            let score = before.zip(after).map_or(0.0, |(b, a)| round(impact_score(signal, b, a)));
            let relation = ["self", "callee", "caller"][relation.min(2) as usize].to_owned();
            output.push(((relation, detected_at, before.map(OrdF64), after.map(OrdF64), delta.map(OrdF64), OrdF64(score)), 1isize));
        })
        .map(|((tenant, change_id, resource, signal), (relation, detected_at, before, after, delta, score))| ChangeImpactRow {
            tenant,
            change_id,
            resource,
            signal,
            relation,
            detected_at,
            before,
            after,
            delta,
            score,
        });

    // Each change's own impact: its best self signal (a change without any scores 0).
    let self_impact = impact
        .clone()
        .filter(|r| r.relation == "self")
        .map(|r| ((r.tenant.clone(), r.change_id.clone()), Some((r.score, r.signal.clone(), r.before, r.after))))
        .concat(changes.clone().map(|c| ((c.tenant, c.change_id), None)))
        .reduce(|_key, input, output| {
            let best = input.iter().filter_map(|(v, _)| v.as_ref()).max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1))).cloned();
            output.push((best, 1isize));
        });

    // regression: per (tenant, service, signal), from-scratch over its kept buckets.
    let reg_cfg = cfg.clone();
    let regressions = points
        .filter(|((_, _, signal), _)| is_regression_signal(signal))
        .reduce(move |(_, _, signal), input, output| {
            let pts: Vec<(EventTime, f64, f64)> = input.iter().map(|((b, v, w), _)| (*b, v.0, w.0)).collect();
            for run in find_regressions(signal, &pts, &reg_cfg) {
                output.push(((run.started_at, run.cleared_at, OrdF64(round(run.baseline)), OrdF64(round(run.peak))), 1isize));
            }
        })
        .map(|((tenant, service, signal), (started_at, cleared_at, baseline, peak))| RegressionRow {
            regression_id: hex_id(&[&tenant, &service, &signal], started_at),
            tenant,
            service,
            signal,
            started_at,
            cleared_at,
            baseline,
            peak,
        });

    // regression_suspect: open regressions x (self + downstream) x changes in the lookback.
    let open = regressions.clone().filter(|r| r.cleared_at.is_none()).map(|r| ((r.tenant.clone(), r.service.clone()), r));
    let mut candidates = open.clone().map(|(k, r)| (k, (r, 0i64)));
    if let Some(blast) = inputs.blast {
        let max_hops = i64::from(cfg.max_hops);
        let down = collection(blast).filter(move |b| b.direction == Direction::Downstream && b.hops <= max_hops).map(|b| ((b.tenant, b.service), (b.affected, b.hops)));
        candidates = candidates.concat(open.join_map(down, |(t, _), r, (affected, hops)| ((t.clone(), affected.clone()), (r.clone(), *hops))));
    }
    let (lookback, grace) = (cfg.lookback_ms, cfg.bucket_ms);
    let suspects = candidates
        .join_map(by_service, |_, (r, hops), c| ((c.tenant.clone(), c.change_id.clone()), (r.clone(), *hops, c.clone())))
        .filter(move |(_, (r, _, c))| c.detected_at >= r.started_at - lookback && c.detected_at <= r.started_at + grace)
        .join_map(self_impact, |(t, _), (r, hops, c), best| ((t.clone(), r.regression_id.clone()), (r.clone(), *hops, c.clone(), best.clone())))
        .reduce(move |_key, input, output| {
            // Per change: the fewest hops.
            let mut by_change: BTreeMap<&str, (&RegressionRow, i64, &ChangeEventRow, &Option<(OrdF64, String, Option<OrdF64>, Option<OrdF64>)>)> = BTreeMap::new();
            for ((r, hops, c, best), _) in input {
                let entry = by_change.entry(c.change_id.as_str()).or_insert((r, *hops, c, best));
                if *hops < entry.1 {
                    *entry = (r, *hops, c, best);
                }
            }
            let mut scored: Vec<(f64, &str, RegressionSuspectRow)> = by_change
                .into_iter()
                .map(|(id, (r, hops, c, best))| {
                    let impact = best.as_ref().map_or(0.0, |b| b.0 .0);
                    let (score, p) = suspect_score(r.started_at, c.detected_at, lookback, impact, hops, &c.change_type);
                    let evidence = serde_json::json!({
                        "summary": c.summary,
                        "change_type": c.change_type,
                        "resource": c.resource,
                        "impact": best.as_ref().map(|b| serde_json::json!({"signal": b.1, "before": b.2.map(|v| v.0), "after": b.3.map(|v| v.0), "score": b.0 .0})),
                        "regression": {"signal": r.signal, "baseline": r.baseline.0, "peak": r.peak.0},
                        "score_parts": {"proximity": round(p[0]), "impact": round(p[1]), "distance": round(p[2]), "type": round(p[3])},
                        "rows": {
                            "change_event": {"tenant": c.tenant, "change_id": c.change_id},
                            "change_impact": best.as_ref().map(|b| serde_json::json!({"tenant": c.tenant, "change_id": c.change_id, "resource": c.service, "signal": b.1})),
                            "regression": {"tenant": r.tenant, "regression_id": r.regression_id},
                            "service_call_5m": {"bucket": crate::window::fmt_ms(r.started_at), "tenant": r.tenant, "dst": r.service},
                        },
                    })
                    .to_string();
                    let row = RegressionSuspectRow {
                        tenant: r.tenant.clone(),
                        regression_id: r.regression_id.clone(),
                        change_id: id.to_owned(),
                        service: r.service.clone(),
                        signal: r.signal.clone(),
                        started_at: r.started_at,
                        changed_service: c.service.clone(),
                        change_type: c.change_type.clone(),
                        detected_at: c.detected_at,
                        rank: 0,
                        score: OrdF64(round(score)),
                        hops,
                        evidence,
                    };
                    (round(score), id, row)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
            for (i, (_, _, mut row)) in scored.into_iter().enumerate() {
                row.rank = i as i64 + 1;
                output.push((row, 1isize));
            }
        })
        .map(|(_, row)| row);

    let wait = cfg.wait_ms;
    let impact = freeze("change_impact_final", impact.inner.map(|(r, _, d)| (r, d)), watermarks.clone(), move |r: &ChangeImpactRow, wm| bucket_of(r.detected_at) + after_ms + wait <= wm);
    let regressions = freeze("regression_final", regressions.inner.map(|(r, _, d)| (r, d)), watermarks, move |r: &RegressionRow, wm| r.cleared_at.is_some_and(|c| c + bucket_ms + wait <= wm));
    CorrelationOutputs { impact, regressions, suspects: suspects.inner.map(|(r, _, d)| (r, d)) }
}

fn opt_f64(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(values.collect::<Float64Array>())
}

impl ViewRow for ChangeImpactRow {
    const VIEW: &'static str = "change_impact";
    const KEY_COLUMNS: &'static [&'static str] = &["tenant", "change_id", "resource", "signal"];
    type Key = (String, String, String, String);

    fn key(&self) -> Self::Key {
        (self.tenant.clone(), self.change_id.clone(), self.resource.clone(), self.signal.clone())
    }
    fn window_start(&self) -> Option<EventTime> {
        None
    }
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("change_id", DataType::Utf8, false),
            Field::new("resource", DataType::Utf8, false),
            Field::new("signal", DataType::Utf8, false),
            Field::new("relation", DataType::Utf8, false),
            timestamp_field("detected_at", false),
            Field::new("before", DataType::Float64, true),
            Field::new("after", DataType::Float64, true),
            Field::new("delta", DataType::Float64, true),
            Field::new("score", DataType::Float64, false),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let strings = |f: fn(&Self) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            strings(|r| &r.tenant),
            strings(|r| &r.change_id),
            strings(|r| &r.resource),
            strings(|r| &r.signal),
            strings(|r| &r.relation),
            micros(rows.iter().map(|r| r.detected_at)),
            opt_f64(rows.iter().map(|r| r.before.map(|v| v.0))),
            opt_f64(rows.iter().map(|r| r.after.map(|v| v.0))),
            opt_f64(rows.iter().map(|r| r.delta.map(|v| v.0))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.score.0))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}

impl ViewRow for RegressionRow {
    const VIEW: &'static str = "regression";
    const KEY_COLUMNS: &'static [&'static str] = &["tenant", "regression_id"];
    type Key = (String, String);

    fn key(&self) -> Self::Key {
        (self.tenant.clone(), self.regression_id.clone())
    }
    fn window_start(&self) -> Option<EventTime> {
        None
    }
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("regression_id", DataType::Utf8, false),
            Field::new("service", DataType::Utf8, false),
            Field::new("signal", DataType::Utf8, false),
            timestamp_field("started_at", false),
            timestamp_field("cleared_at", true),
            Field::new("baseline", DataType::Float64, false),
            Field::new("peak", DataType::Float64, false),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let strings = |f: fn(&Self) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef;
        let cleared: ArrayRef = Arc::new(arrow::array::TimestampMicrosecondArray::from(rows.iter().map(|r| r.cleared_at.map(|c| c * 1000)).collect::<Vec<_>>()).with_timezone("UTC"));
        let columns: Vec<ArrayRef> = vec![
            strings(|r| &r.tenant),
            strings(|r| &r.regression_id),
            strings(|r| &r.service),
            strings(|r| &r.signal),
            micros(rows.iter().map(|r| r.started_at)),
            cleared,
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.baseline.0))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.peak.0))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}

impl ViewRow for RegressionSuspectRow {
    const VIEW: &'static str = "regression_suspect";
    const KEY_COLUMNS: &'static [&'static str] = &["tenant", "regression_id", "change_id"];
    type Key = (String, String, String);

    fn key(&self) -> Self::Key {
        (self.tenant.clone(), self.regression_id.clone(), self.change_id.clone())
    }
    fn window_start(&self) -> Option<EventTime> {
        None
    }
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("regression_id", DataType::Utf8, false),
            Field::new("change_id", DataType::Utf8, false),
            Field::new("service", DataType::Utf8, false),
            Field::new("signal", DataType::Utf8, false),
            timestamp_field("started_at", false),
            Field::new("changed_service", DataType::Utf8, false),
            Field::new("change_type", DataType::Utf8, false),
            timestamp_field("detected_at", false),
            Field::new("rank", DataType::Int64, false),
            Field::new("score", DataType::Float64, false),
            Field::new("hops", DataType::Int64, false),
            Field::new("evidence", DataType::Utf8, false),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let strings = |f: fn(&Self) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            strings(|r| &r.tenant),
            strings(|r| &r.regression_id),
            strings(|r| &r.change_id),
            strings(|r| &r.service),
            strings(|r| &r.signal),
            micros(rows.iter().map(|r| r.started_at)),
            strings(|r| &r.changed_service),
            strings(|r| &r.change_type),
            micros(rows.iter().map(|r| r.detected_at)),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.rank))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.score.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.hops))),
            strings(|r| &r.evidence),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_up_is_one_regression_that_clears() {
        let cfg = CorrelationConfig::default();
        let b = |i: i64| i * 300_000;
        let mut pts: Vec<(EventTime, f64, f64)> = (0..6).map(|i| (b(i), 0.01 + 0.001 * (i % 2) as f64, 100.0)).collect();
        pts.extend((6..9).map(|i| (b(i), 0.12, 100.0)));
        pts.push((b(9), 0.011, 100.0));
        let runs = find_regressions("err_rate", &pts, &cfg);
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].started_at, b(6));
        assert_eq!(runs[0].cleared_at, Some(b(9)));
        assert!((runs[0].peak - 0.12).abs() < 1e-12);
        // Still open without the recovery bucket; order of points does not matter.
        let mut open: Vec<_> = pts[..9].to_vec();
        open.reverse();
        assert_eq!(find_regressions("err_rate", &open, &cfg)[0].cleared_at, None);
        // Too few calls: nothing.
        let quiet: Vec<_> = pts.iter().map(|(t, v, _)| (*t, *v, 5.0)).collect();
        assert!(find_regressions("err_rate", &quiet, &cfg).is_empty());
    }

    #[test]
    fn noise_within_the_floor_is_not_a_regression() {
        let cfg = CorrelationConfig::default();
        let pts: Vec<_> = (0..12).map(|i| (i * 300_000, 100.0 + 8.0 * ((i * 7) % 3) as f64, 500.0)).collect();
        assert!(find_regressions("p95_ms", &pts, &cfg).is_empty());
    }

    #[test]
    fn scores_order_the_obvious_cases() {
        assert!(impact_score("err_rate", 0.01, 0.1) > 0.8);
        assert_eq!(impact_score("err_rate", 0.1, 0.01), 0.0);
        assert!(impact_score("calls", 10.0, 5.0) > 0.0);
        let bad = suspect_score(600_000, 600_000, 3_600_000, 0.9, 1, "image").0;
        let decoy_scale = suspect_score(600_000, 480_000, 3_600_000, 0.0, 1, "scale").0;
        let decoy_early = suspect_score(600_000, 0, 3_600_000, 0.9, 1, "image").0;
        assert!(bad > decoy_scale && bad > decoy_early, "{bad} {decoy_scale} {decoy_early}");
    }
}
