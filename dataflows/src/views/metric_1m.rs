//! `metric_1m`: per resource, metric and series, one-minute statistics.
//!
//! - **Input**: [`MetricPoint`]s (gauge and sum samples, histogram distributions).
//! - **Key**: `bucket` (1-minute tumbling window of event time, UTC), `tenant`, `resource` (URN),
//!   `metric`, `series` (the canonical label set).
//! - **Window**: 1 minute by default ([`Metric1m::window_ms`]); emitted on every update, final once
//!   the watermark passes the window's end. Lateness is the engine's (default 2 minutes), applied
//!   by the watermark; records of final windows are dead-lettered as `late`.
//! - **Columns**: `count` (observations: 1 per sample, the histogram count per distribution),
//!   `sum`, `avg`, `min`, `max`, `p50`, `p95`, `p99`, `labels` (the series as a JSON object).
//! - **Quantiles** come from a [`LogHistogram`]: relative error at most 1% against the exact
//!   nearest-rank quantile of the observations (histogram buckets are represented by one value per
//!   bucket, so for distributions the bound holds against those representative values).
//! - **Sum** is accumulated exactly in fixed point ([`ExactSum`], resolution 2^-40, range
//!   ±1.5e26) so that it does not depend on the order records arrive in: float addition is not
//!   associative, and a view must give the same bits for the same input.
//! - **Rows** exist once a (window, series) has at least one observation: a histogram point with
//!   count 0 adds nothing, so no row has undefined statistics (no NaN quantiles).
//! - **State**: one running aggregate per live (window, key); a window leaves memory when final.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::{OrdF64, ViewRow};
use crate::decode::series_labels_json;
use crate::histogram::LogHistogram;
use crate::record::{EventTime, MetricPoint, Observation, Origin};
use crate::window::WindowedView;

/// The `metric_1m` view and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metric1m {
    pub window_ms: i64,
}

impl Default for Metric1m {
    fn default() -> Self {
        Self { window_ms: 60_000 }
    }
}

/// `(tenant, resource, metric, series)`.
pub type SeriesKey = (String, String, String, String);

/// An order-independent sum of floats: each value is rounded once to a multiple of 2^-40 and
/// the multiples are added as integers (saturating at ±2^127, i.e. about ±1.5e26).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExactSum(i128);

impl ExactSum {
    const SCALE: f64 = (1u64 << 40) as f64;

    pub fn add(&mut self, value: f64) {
        // `as` saturates for out-of-range floats and maps NaN to 0.
        self.0 = self.0.saturating_add((value * Self::SCALE).round() as i128);
    }

    pub fn value(&self) -> f64 {
        self.0 as f64 / Self::SCALE
    }

    /// Adds another sum (exact; commutative and associative).
    pub fn merge(&mut self, other: &ExactSum) {
        self.0 = self.0.saturating_add(other.0);
    }
}

/// Running aggregate of one series in one window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accumulator {
    pub count: u64,
    pub sum: ExactSum,
    pub min: f64,
    pub max: f64,
    pub histogram: LogHistogram,
}

impl Accumulator {
    /// Folds one observation in.
    pub fn add(&mut self, value: &Observation) {
        match value {
            Observation::Sample(v) => {
                self.extend_range(*v, *v);
                self.count += 1;
                self.sum.add(*v);
                self.histogram.record(*v, 1);
            }
            Observation::Distribution { count, sum, min, max, buckets } => {
                if *count == 0 {
                    return;
                }
                let reps = buckets.iter().filter(|(_, n)| *n > 0).map(|(v, _)| *v);
                let lo = min.or_else(|| reps.clone().reduce(f64::min)).unwrap_or(sum / *count as f64);
                let hi = max.or_else(|| reps.reduce(f64::max)).unwrap_or(sum / *count as f64);
                self.extend_range(lo, hi);
                self.count += count;
                self.sum.add(*sum);
                if buckets.is_empty() {
                    self.histogram.record(sum / *count as f64, *count);
                } else {
                    for (v, n) in buckets {
                        if *n > 0 {
                            self.histogram.record(*v, *n);
                        }
                    }
                }
            }
        }
    }

    fn extend_range(&mut self, lo: f64, hi: f64) {
        if self.count == 0 {
            self.min = lo;
            self.max = hi;
        } else {
            self.min = self.min.min(lo);
            self.max = self.max.max(hi);
        }
    }
}

/// One row of `metric_1m`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Metric1mRow {
    /// Window start, ms since the Unix epoch.
    pub bucket: EventTime,
    pub tenant: String,
    pub resource: String,
    pub metric: String,
    pub series: String,
    pub count: i64,
    pub sum: OrdF64,
    pub avg: OrdF64,
    pub min: OrdF64,
    pub max: OrdF64,
    pub p50: OrdF64,
    pub p95: OrdF64,
    pub p99: OrdF64,
    /// The series' labels as a JSON object.
    pub labels: String,
}

impl Metric1mRow {
    /// The row for an accumulated window (the from-scratch definition tests compare against).
    pub fn from_accumulator(bucket: EventTime, key: &SeriesKey, acc: &Accumulator) -> Self {
        let q = |p: f64| OrdF64(acc.histogram.quantile(p).unwrap_or(f64::NAN));
        Self {
            bucket,
            tenant: key.0.clone(),
            resource: key.1.clone(),
            metric: key.2.clone(),
            series: key.3.clone(),
            count: acc.count as i64,
            sum: OrdF64(acc.sum.value()),
            avg: OrdF64(if acc.count == 0 { 0.0 } else { acc.sum.value() / acc.count as f64 }),
            min: OrdF64(acc.min),
            max: OrdF64(acc.max),
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
            labels: series_labels_json(&key.3),
        }
    }
}

/// Hash of a point's series key without building the key.
fn series_hash(p: &MetricPoint) -> u64 {
    let mut h = Xxh3::new();
    for part in [&p.tenant, &p.resource, &p.metric, &p.series] {
        h.update(part.as_bytes());
        h.update(&[0xff]);
    }
    h.digest()
}

impl WindowedView for Metric1m {
    type Input = MetricPoint;
    type Key = SeriesKey;
    type Part = Observation;
    type State = Accumulator;
    type Row = Metric1mRow;

    fn window_ms(&self) -> i64 {
        self.window_ms
    }
    fn event_time(&self, input: &MetricPoint) -> EventTime {
        input.ts
    }
    fn origin(&self, input: &MetricPoint) -> Origin {
        input.origin
    }
    fn route(&self, input: &MetricPoint) -> u64 {
        series_hash(input)
    }
    fn split(&self, input: MetricPoint) -> (SeriesKey, Observation) {
        ((input.tenant, input.resource, input.metric, input.series), input.value)
    }
    fn new_state(&self) -> Accumulator {
        Accumulator::default()
    }
    fn fold(&self, state: &mut Accumulator, value: Observation) {
        state.add(&value);
    }
    fn row(&self, window_start: EventTime, key: &SeriesKey, state: &Accumulator) -> Option<Metric1mRow> {
        // A series that only reported empty histograms has no statistics to show.
        (state.count > 0).then(|| Metric1mRow::from_accumulator(window_start, key, state))
    }
}

impl ViewRow for Metric1mRow {
    const VIEW: &'static str = "metric_1m";
    const KEY_COLUMNS: &'static [&'static str] = &["bucket", "tenant", "resource", "metric", "series"];
    type Key = (EventTime, String, String, String, String);

    fn key(&self) -> Self::Key {
        (self.bucket, self.tenant.clone(), self.resource.clone(), self.metric.clone(), self.series.clone())
    }
    fn window_start(&self) -> Option<EventTime> {
        Some(self.bucket)
    }
    fn schema() -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let f = |name: &str| Field::new(name, DataType::Float64, false);
        Arc::new(Schema::new(vec![
            Field::new("bucket", ts, false),
            Field::new("tenant", DataType::Utf8, false),
            Field::new("resource", DataType::Utf8, false),
            Field::new("metric", DataType::Utf8, false),
            Field::new("series", DataType::Utf8, false),
            Field::new("count", DataType::Int64, false),
            f("sum"),
            f("avg"),
            f("min"),
            f("max"),
            f("p50"),
            f("p95"),
            f("p99"),
            Field::new("labels", DataType::Utf8, false),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let strings = |f: fn(&Self) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef;
        let floats = |f: fn(&Self) -> OrdF64| Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| f(r).0))) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.bucket * 1000)).with_timezone("UTC")),
            strings(|r| &r.tenant),
            strings(|r| &r.resource),
            strings(|r| &r.metric),
            strings(|r| &r.series),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.count))),
            floats(|r| r.sum),
            floats(|r| r.avg),
            floats(|r| r.min),
            floats(|r| r.max),
            floats(|r| r.p50),
            floats(|r| r.p95),
            floats(|r| r.p99),
            strings(|r| &r.labels),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::util::display::array_value_to_string;
    use proptest::prelude::*;

    use super::*;
    use crate::decode::DecodeConfig;
    use crate::engine::{run_epochs, EngineConfig, EpochInput, EpochReport, MetaEvent};
    use crate::record::{Encoding, RawMessage, Signal, WireFormat};
    use crate::time::window_start;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_763_700_000_000; // 2025-11-21T04:40:00Z, a minute boundary

    /// A JSON-lines metric message.
    fn msg(partition: u32, offset: u64, ts: i64, resource: &str, value: f64) -> RawMessage {
        let payload = format!(r#"{{"ts":{ts},"resource":"{resource}","metric":"latency","value":{value},"labels":{{"pod":"p1"}}}}"#);
        RawMessage {
            origin: Origin { partition, offset },
            encoding: Encoding::new(Signal::Metrics, WireFormat::JsonLines),
            payload: payload.into_bytes(),
        }
    }

    fn config(lateness_ms: i64) -> EngineConfig {
        EngineConfig { lateness_ms, raw_archive: None, decode: DecodeConfig::default(), metric_1m: Some(Metric1m::default()), service_call: None, log_pattern: None, changes: None }
    }

    fn register(partitions: u32) -> Vec<MetaEvent> {
        (0..partitions).map(|partition| MetaEvent::Register { partition, max_ts: None }).collect()
    }

    fn ended(partitions: u32) -> Vec<MetaEvent> {
        (0..partitions).map(|partition| MetaEvent::Ended { partition }).collect()
    }

    /// Rows of a batch as strings, column by column (timestamps as RFC 3339).
    fn rows_of(batch: &arrow::record_batch::RecordBatch) -> Vec<Vec<String>> {
        let cell = |c: &arrow::array::ArrayRef, i: usize| match c.as_any().downcast_ref::<TimestampMicrosecondArray>() {
            Some(ts) => chrono::DateTime::from_timestamp_micros(ts.value(i)).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default(),
            None => array_value_to_string(c, i).expect("displayable"),
        };
        (0..batch.num_rows()).map(|i| batch.columns().iter().map(|c| cell(c, i)).collect()).collect()
    }

    /// Applies every epoch's upserts and deletes as a sink would; returns the table after each epoch.
    fn sink_states(reports: &[EpochReport], epochs: usize) -> Vec<BTreeMap<Vec<String>, Vec<String>>> {
        let mut table = BTreeMap::new();
        let mut states = Vec::new();
        for epoch in 0..epochs as u64 {
            for report in reports.iter().filter(|r| r.epoch == epoch) {
                for view in &report.views {
                    for key in rows_of(&view.deletes) {
                        table.remove(&key);
                    }
                    for row in rows_of(&view.upserts) {
                        table.insert(row[..5].to_vec(), row);
                    }
                }
            }
            states.push(table.clone());
        }
        states
    }

    /// Final windows as written: window start -> rows, and how often each window was written.
    fn finals(reports: &[EpochReport]) -> (BTreeMap<i64, Vec<Vec<String>>>, BTreeMap<i64, usize>) {
        let mut rows = BTreeMap::new();
        let mut writes = BTreeMap::new();
        for report in reports {
            for f in &report.finals {
                rows.insert(f.window_start, rows_of(&f.rows));
                *writes.entry(f.window_start).or_insert(0) += 1;
            }
        }
        (rows, writes)
    }

    /// The from-scratch definition: metric_1m of a set of (ts, resource, value) points.
    fn from_scratch(points: &[(i64, String, f64)]) -> BTreeMap<Vec<String>, Vec<String>> {
        let mut acc: BTreeMap<(i64, String), Accumulator> = BTreeMap::new();
        for (ts, resource, value) in points {
            acc.entry((window_start(*ts, MIN), resource.clone())).or_default().add(&Observation::Sample(*value));
        }
        acc.iter()
            .map(|((bucket, resource), a)| {
                let key = ("default".to_string(), resource.clone(), "latency".to_string(), "pod=p1".to_string());
                let row = Metric1mRow::from_accumulator(*bucket, &key, a);
                let batch = Metric1mRow::to_batch(&[&row]).expect("batch");
                let r = rows_of(&batch).remove(0);
                (r[..5].to_vec(), r)
            })
            .collect()
    }

    #[test]
    fn exact_rows_late_correction_and_late_dead_letter() {
        let r = "urn:k8s:svc:shop/checkout";
        let epochs: Vec<EpochInput> = vec![
            (vec![], register(1)),
            (vec![msg(0, 0, T0 + 1_000, r, 10.0), msg(0, 1, T0 + 2_000, r, 30.0), msg(0, 2, T0 + MIN + 5_000, r, 7.0)], vec![]),
            // Watermark is now T0+65s-30s = T0+35s: window [T0, T0+60s) still open, a late point corrects it.
            (vec![msg(0, 3, T0 + 59_000, r, 20.0)], vec![]),
            // Moves the watermark to T0+3m-30s: [T0, T0+1m) and [T0+1m, T0+2m) become final.
            (vec![msg(0, 4, T0 + 3 * MIN, r, 1.0)], vec![]),
            // Too late: its window is final.
            (vec![msg(0, 5, T0 + 10_000, r, 1_000.0)], vec![]),
            (vec![], ended(1)),
        ];
        let reports = run_epochs(&config(30_000), 1, epochs).expect("run");
        let states = sink_states(&reports, 6);
        let first = [format!("{}", "2025-11-21T04:40:00Z"), "default".into(), r.into(), "latency".into(), "pod=p1".into()].to_vec();
        let row = &states[1][&first];
        assert_eq!(&row[5..9], &["2", "40.0", "20.0", "10.0"]);
        assert_eq!(row[9], "30.0");
        assert_eq!(row[13], r#"{"pod":"p1"}"#);
        // p50 of {10, 30} by nearest rank is 10 (within 1%).
        let p50: f64 = row[10].parse().expect("p50");
        assert!((p50 - 10.0).abs() <= 0.1, "p50 {p50}");
        // The late point within lateness corrected the window: count 3, sum 60.
        assert_eq!(&states[2][&first][5..7], &["3", "60.0"]);
        // The too-late point changed nothing and became a dead letter naming the window.
        assert_eq!(states[4], states[5]);
        let dead: Vec<_> = reports.iter().flat_map(|r| r.dead_letters.iter()).collect();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].kind, "late");
        assert_eq!(dead[0].origin, Origin { partition: 0, offset: 5 });
        assert!(dead[0].reason.contains("2025-11-21T04:40:00.000Z"), "{}", dead[0].reason);
        // Each window is final exactly once, with the rows the sink holds.
        let (rows, writes) = finals(&reports);
        assert_eq!(writes.values().copied().collect::<Vec<_>>(), vec![1, 1, 1]);
        assert_eq!(rows[&T0], vec![states[5][&first].clone()]);
        // The final of [T0, T0+1m) came at epoch 3, when the watermark passed its end.
        assert!(reports.iter().any(|r| r.epoch == 3 && r.finals.iter().any(|f| f.window_start == T0)));
    }

    #[test]
    fn empty_histograms_make_no_row() {
        let mut acc = Accumulator::default();
        acc.add(&Observation::Distribution { count: 0, sum: 0.0, min: None, max: None, buckets: vec![] });
        let view = Metric1m::default();
        let key = ("t".to_string(), "r".to_string(), "m".to_string(), String::new());
        assert_eq!(view.row(T0, &key, &acc), None);
        acc.add(&Observation::Distribution { count: 2, sum: 3.0, min: Some(1.0), max: Some(2.0), buckets: vec![(1.0, 1), (2.0, 1)] });
        let row = view.row(T0, &key, &acc).expect("row");
        assert_eq!((row.count, row.sum.0, row.min.0, row.max.0, row.avg.0), (2, 3.0, 1.0, 2.0, 1.5));
        assert!((row.p99.0 - 2.0).abs() <= 0.02);
    }

    #[test]
    fn state_is_bounded_at_a_steady_load() {
        // 30 minutes of one point per second for 5 series; lateness 2 minutes.
        let series = 5;
        let mut epochs: Vec<EpochInput> = vec![(vec![], register(1))];
        let mut offset = 0;
        for second in 0..1_800i64 {
            let raw = (0..series).map(|s| { offset += 1; msg(0, offset, T0 + second * 1_000, &format!("urn:host:h{s}"), 1.0) }).collect();
            epochs.push((raw, vec![]));
        }
        let reports = run_epochs(&config(120_000), 1, epochs).expect("run");
        let live: Vec<u64> = reports.iter().flat_map(|r| r.live_state.iter().map(|(_, n)| *n)).collect();
        // Window + lateness: at most 4 open minutes per series, whatever the uptime.
        let max = live.iter().copied().max().expect("live state reported");
        assert!(max <= 4 * series as u64, "live state {max}");
        assert_eq!(live.last().copied(), Some(3 * series as u64));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        /// Incremental = from scratch at every frontier, for shuffled, late and differently
        /// batched input; and 1 worker = 4 workers.
        #[test]
        fn incremental_equals_from_scratch(
            points in proptest::collection::vec((0i64..600_000, 0usize..3, -1e3f64..1e6, 0u32..3), 1..160),
            cuts in proptest::collection::vec(1usize..20, 1..40),
        ) {
            let lateness = 45_000;
            let partitions = 3;
            let mut epochs: Vec<EpochInput> = vec![(vec![], register(partitions))];
            let mut offsets = [0u64; 3];
            let mut it = points.iter().peekable();
            let mut c = cuts.iter().cycle();
            while it.peek().is_some() {
                let n = *c.next().unwrap_or(&1);
                let raw = it.by_ref().take(n).map(|(ts, r, v, p)| {
                    offsets[*p as usize] += 1;
                    msg(*p, offsets[*p as usize], T0 + ts, &format!("urn:host:h{r}"), *v)
                }).collect();
                epochs.push((raw, vec![]));
            }
            epochs.push((vec![], ended(partitions)));

            // The reference: replay the watermark rule and keep only the records it accepts.
            let mut seen_max: BTreeMap<u32, i64> = BTreeMap::new();
            let mut wm: Option<i64> = None;
            let mut accepted = Vec::new();
            let mut expected_states = Vec::new();
            for (raw, _) in &epochs {
                let mut epoch_max: BTreeMap<u32, i64> = BTreeMap::new();
                for m in raw {
                    let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("json");
                    let ts = v["ts"].as_i64().expect("ts");
                    let resource = v["resource"].as_str().expect("resource").to_string();
                    let e = epoch_max.entry(m.origin.partition).or_insert(ts);
                    *e = (*e).max(ts);
                    if !crate::time::window_is_final(window_start(ts, MIN), MIN, wm) {
                        accepted.push((ts, resource, v["value"].as_f64().expect("value")));
                    }
                }
                for (p, t) in epoch_max {
                    let e = seen_max.entry(p).or_insert(t);
                    *e = (*e).max(t);
                }
                if seen_max.len() == partitions as usize {
                    let candidate = seen_max.values().min().copied().map(|m| m - lateness);
                    wm = wm.max(candidate);
                }
                expected_states.push(from_scratch(&accepted));
            }

            let one = run_epochs(&config(lateness), 1, epochs.clone()).expect("run");
            let four = run_epochs(&config(lateness), 4, epochs.clone()).expect("run");
            let states = sink_states(&one, epochs.len());
            prop_assert_eq!(&states, &expected_states);
            prop_assert_eq!(&sink_states(&four, epochs.len()), &expected_states);
            // Every window is written once, when final, with exactly its from-scratch rows.
            let (rows, writes) = finals(&one);
            prop_assert!(writes.values().all(|n| *n == 1));
            let last = expected_states.last().cloned().unwrap_or_default();
            let mut by_window: BTreeMap<i64, Vec<Vec<String>>> = BTreeMap::new();
            for row in last.values() {
                let bucket = chrono::DateTime::parse_from_rfc3339(&row[0]).expect("bucket").timestamp_millis();
                by_window.entry(bucket).or_default().push(row.clone());
            }
            prop_assert_eq!(&rows, &by_window);
            prop_assert_eq!(finals(&four).0, rows);
            // Late records are dead-lettered, the others counted.
            let late = one.iter().flat_map(|r| r.dead_letters.iter()).filter(|d| d.kind == "late").count();
            prop_assert_eq!(late + accepted.len(), points.len());
        }
    }
}
