//! One worker's dataflow: epoch inputs in, per-epoch reports out.
//!
//! The driver (outside timely) cuts the sources' records into *epochs* and hands every worker,
//! for every epoch, its share of the raw messages (by input partition) and the same
//! [`MetaEvent`]s (partition registration, idleness, end). Inside:
//!
//! ```text
//! raw ─► decode ─┬─ points ─(exchange by series)─► metric_1m window ─┬─ changes ─► upserts/deletes (Arrow)
//!                ├─ dead letters                                       ├─ finals ─(to worker 0)─► one batch per window
//!                └─ max event time per partition ─(broadcast)─► watermark ┘  └─ late ─► dead letters
//! meta ─────────────────────────────────────────────────────────► watermark
//! ```
//!
//! With the raw archive on, the decoded records also go (exchanged by signal and minute) to
//! [`raw_archive`](crate::views::raw_archive), which emits one final batch per signal and minute
//! (view `raw/<signal>`) and the `raw_locator` rows.
//!
//! A capture operator gathers everything an epoch produced on this worker into one
//! [`EpochReport`] and sends it, followed by the worker's new frontier, on the engine's channel;
//! the coordinator knows an epoch is complete once every worker's frontier has passed it.

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;
use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::{Broadcast, Map, Partition};
use timely::dataflow::operators::{Concatenate, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle, StreamVec};
use timely::worker::Worker;

use crate::changes::{detect_changes, ChangeConfig, DetectEvent};
use crate::decode::k8s::{decode_k8s, redact_payload, K8sEvent, KeyedHasher};
use crate::decode::{decode_logs, decode_metrics, decode_spans, DecodeConfig};
use crate::pairing::{pairing, shift, PairEvent, PairingConfig};
use crate::record::{DeadLetter, EventTime, LogRecord, MetricPoint, RawMessage, Signal, Span};
use crate::time::WatermarkTracker;
use crate::views::blast_radius::{blast_radius, BlastRadiusRow};
use crate::views::call_graph_active::{active_graph, CallGraphActiveRow, CallGraphConfig, GraphEvent, TopoEdgeTimeRow};
use crate::views::log_pattern::{mine, LogPattern5m, LogPattern5mRow, LogPatternConfig, LogPatternNewRow, LogPatternRow, MineEvent};
use crate::views::metric_1m::Metric1m;
use crate::views::service_call_5m::{combine, combine_bucket_ms, ServiceCall5m, ServiceCall5mRow};
use crate::views::change_event::ChangeEventRow;
use crate::views::correlation::{correlate, ChangeImpactRow, CorrelationConfig, CorrelationInputs, RegressionRow, RegressionSuspectRow};
use crate::views::metric_1m::Metric1mRow;
use crate::views::raw_archive::{dataset, raw_archive, Admission, Admissions, ArchiveEvent, ArchiveRecord, RawArchiveConfig, RawLocatorRow};
use crate::views::ViewRow;
use crate::window::{windowed, WindowEvent, WindowedView};

/// What the dataflow computes, and how.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Allowed lateness in ms (the watermark trails the largest event time by this much).
    pub lateness_ms: i64,
    pub decode: DecodeConfig,
    /// `metric_1m`, when the job asks for it.
    pub metric_1m: Option<Metric1m>,
    /// `service_call_5m`, `call_graph_active`, `topo_edge_time` and `blast_radius`, when the
    /// job asks for them.
    pub service_call: Option<ServiceCallConfig>,
    /// `log_pattern`, `log_pattern_5m` and `log_pattern_new`, when the job asks for them.
    pub log_pattern: Option<LogPatternConfig>,
    /// `change_event`, and with `correlation` also `change_impact`, `regression` and
    /// `regression_suspect`, when the job asks for them.
    pub changes: Option<ChangesConfig>,
    /// The raw archive (`raw/<signal>` objects) and `raw_locator`, and with them the views'
    /// `sample_ref`s; `None`: off.
    pub raw_archive: Option<RawArchiveConfig>,
}

impl EngineConfig {
    /// How the raw archive admits each signal: as the view that consumes it does (so it keeps
    /// exactly what that view counted), by minute for signals no view consumes.
    pub fn archive_admissions(&self) -> Admissions {
        let view = |window_ms: i64, delay_ms: i64| Admission { window_ms, delay_ms, dead_letter_late: false };
        Admissions {
            metrics: self.metric_1m.as_ref().map_or(Admission::MINUTE, |m| view(m.window_ms, 0)),
            spans: self.service_call.as_ref().map_or(Admission::MINUTE, |c| view(c.pairing.window_ms, c.pairing.wait_ms)),
            logs: self.log_pattern.as_ref().map_or(Admission::MINUTE, |l| view(l.window_ms, 0)),
            // Change detection refuses events before the watermark.
            k8s: self.changes.as_ref().map_or(Admission::MINUTE, |_| view(1, 0)),
        }
    }

    /// How long (event time) a record can stay in the raw archive's state before its minute is
    /// written: the runtime's restart horizon must cover it. 0 when the archive is off.
    pub fn archive_horizon_ms(&self) -> i64 {
        let Some(archive) = &self.raw_archive else { return 0 };
        let admissions = self.archive_admissions();
        archive.signals.iter().map(|s| admissions.of(*s)).map(|a| a.window_ms.max(1) + a.delay_ms + crate::views::raw_archive::MINUTE_MS).max().unwrap_or(0)
    }
}

/// The change views' parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangesConfig {
    pub detect: ChangeConfig,
    /// Correlation with the other views (needs `service_call_5m`).
    pub correlation: Option<CorrelationConfig>,
}

/// The span views' parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceCallConfig {
    /// Pairing (its `window_ms` is `service_call_5m`'s window).
    pub pairing: PairingConfig,
    pub graph: CallGraphConfig,
    /// How far `blast_radius` follows paths.
    pub max_hops: u32,
}

/// Partition bookkeeping the driver hands every worker, identically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaEvent {
    /// A partition exists (it holds the watermark back until it produces or goes idle);
    /// `max_ts` restores its clock after a restart.
    Register { partition: u32, max_ts: Option<EventTime> },
    /// The partition produced nothing for the idle timeout (`true`), or is back (`false`).
    Idle { partition: u32, idle: bool },
    /// A bounded partition has no more records.
    Ended { partition: u32 },
}

/// The changes of one view in one epoch, as Arrow: upserts (whole rows) and deletes (key columns).
#[derive(Clone, Debug)]
pub struct ViewChanges {
    pub view: &'static str,
    pub key_columns: &'static [&'static str],
    pub upserts: RecordBatch,
    pub deletes: RecordBatch,
}

/// The rows of a window that became final, sorted by primary key (emitted by worker 0 only);
/// or, for the raw archive (`view` = `raw/<signal>`), the sorted records of one minute of one
/// signal (emitted by the worker that holds the minute).
#[derive(Clone, Debug)]
pub struct FinalRows {
    pub view: &'static str,
    pub window_start: EventTime,
    pub rows: RecordBatch,
}

/// Everything one worker produced for one epoch.
#[derive(Clone, Debug, Default)]
pub struct EpochReport {
    pub worker: usize,
    pub epoch: u64,
    /// The watermark after this epoch, when it changed.
    pub watermark: Option<EventTime>,
    pub views: Vec<ViewChanges>,
    pub finals: Vec<FinalRows>,
    pub dead_letters: Vec<DeadLetter>,
    /// Largest event time per input partition among this worker's records of the epoch.
    pub partition_max: Vec<(u32, EventTime)>,
    /// Records decoded (metric points, ...).
    pub decoded: u64,
    /// Live window aggregates held by this worker after the epoch, per view (bounded state).
    pub live_state: Vec<(&'static str, u64)>,
    /// Named counters of this worker after the epoch (cumulative), e.g. pairing's.
    pub counters: Vec<(&'static str, u64)>,
}

/// What workers send the coordinator.
#[derive(Clone, Debug)]
pub enum EngineEvent {
    Epoch(EpochReport),
    /// The worker's output frontier advanced: every epoch before `frontier` is reported
    /// (`None`: the worker is done).
    Frontier { worker: usize, frontier: Option<u64> },
}

/// The input handles of one worker's dataflow.
pub struct Inputs {
    pub raw: InputHandleVec<u64, RawMessage>,
    pub meta: InputHandleVec<u64, MetaEvent>,
}

#[derive(Clone, Debug)]
enum Decoded {
    Point(MetricPoint),
    Span(Span),
    Log(LogRecord),
    K8s(K8sEvent),
    Dead(DeadLetter),
    Max(u32, EventTime),
    Count(u64),
}

#[derive(Clone, Debug)]
enum Out {
    View(ViewChanges),
    Final(FinalRows),
    Dead(DeadLetter),
    Max(u32, EventTime),
    Watermark(EventTime),
    Count(u64),
    Live(&'static str, u64),
    Counters(Vec<(&'static str, u64)>),
}

/// Builds the dataflow on `worker` and returns its inputs and a probe on its output.
///
/// Called once per worker thread by the runtime (and by tests); `events` is the channel to the
/// coordinator.
pub fn build(
    worker: &mut Worker,
    config: &EngineConfig,
    events: Sender<EngineEvent>,
) -> (Inputs, ProbeHandle<u64>) {
    let mut raw_input = InputHandleVec::new();
    let mut meta_input = InputHandleVec::new();
    let probe = ProbeHandle::new();
    let index = worker.index();
    let config = config.clone();
    worker.dataflow::<u64, _, _>(|scope| {
        use timely::dataflow::operators::vec::Input;
        let raw = scope.input_from(&mut raw_input);
        let meta = scope.input_from(&mut meta_input);

        let decoded = decode(raw, config.decode.clone());
        let mut parts = decoded.partition(7, |d| match d {
            Decoded::Point(_) => (0, d),
            Decoded::Max(..) => (1, d),
            Decoded::Dead(_) => (2, d),
            Decoded::Count(_) => (3, d),
            Decoded::Span(_) => (4, d),
            Decoded::Log(_) => (5, d),
            Decoded::K8s(_) => (6, d),
        });
        let k8s_events = parts.pop().expect("7 parts").flat_map(|d| if let Decoded::K8s(e) = d { Some(e) } else { None });
        let logs = parts.pop().expect("7 parts").flat_map(|d| if let Decoded::Log(l) = d { Some(l) } else { None });
        let spans = parts.pop().expect("7 parts").flat_map(|d| if let Decoded::Span(s) = d { Some(s) } else { None });
        let counts = parts.pop().expect("7 parts").flat_map(|d| if let Decoded::Count(n) = d { Some(Out::Count(n)) } else { None });
        let decode_dead = parts.pop().expect("7 parts").flat_map(|d| if let Decoded::Dead(x) = d { Some(Out::Dead(x)) } else { None });
        let maxima = parts.pop().expect("7 parts").flat_map(|d| if let Decoded::Max(p, t) = d { Some((p, t)) } else { None });
        let points = parts.pop().expect("7 parts").flat_map(|d| if let Decoded::Point(p) = d { Some(p) } else { None });

        let watermarks = watermark(maxima.clone().broadcast(), meta, config.lateness_ms);
        let mut outs = vec![
            counts,
            decode_dead,
            maxima.map(|(p, t)| Out::Max(p, t)),
            watermarks.clone().map(Out::Watermark),
        ];
        if let Some(archive) = config.raw_archive.clone() {
            let mut records = Vec::new();
            if archive.archives(Signal::Metrics) {
                records.push(points.clone().map(ArchiveRecord::Point));
            }
            if archive.archives(Signal::Spans) {
                records.push(spans.clone().map(ArchiveRecord::Span));
            }
            if archive.archives(Signal::Logs) {
                records.push(logs.clone().map(ArchiveRecord::Log));
            }
            if archive.archives(Signal::K8s) {
                records.push(k8s_events.clone().map(|e| ArchiveRecord::K8s(Box::new(e))));
            }
            let admissions = config.archive_admissions();
            outs.extend(archive_views(archive, admissions, scope.concatenate(records), watermarks.clone()));
        }
        let archives = |signal: Signal| config.raw_archive.as_ref().is_some_and(|a| a.archives(signal));
        let mut metric_rows = None;
        if let Some(view) = config.metric_1m.clone() {
            let (more, rows) = windowed_view(view, points, watermarks.clone());
            outs.extend(more);
            metric_rows = Some(rows);
        }
        let mut span_rows = None;
        if let Some(calls) = config.service_call.clone() {
            let (more, rows) = span_views(calls, archives(Signal::Spans), spans, watermarks.clone());
            outs.extend(more);
            span_rows = Some(rows);
        }
        let mut log_rows = None;
        if let Some(patterns) = config.log_pattern.clone() {
            let (more, rows) = log_views(patterns, archives(Signal::Logs), logs, watermarks.clone());
            outs.extend(more);
            log_rows = Some(rows);
        }
        if let Some(changes) = config.changes.clone() {
            outs.extend(change_views(changes, k8s_events, watermarks, metric_rows, span_rows, log_rows));
        }
        scope.concatenate(outs).probe_with(&probe).sink(Pipeline, "capture", {
            let mut reports: BTreeMap<u64, EpochReport> = BTreeMap::new();
            let mut reported: Option<Option<u64>> = None;
            move |(input, frontier)| {
                input.for_each(|cap, data| {
                    let Some(&epoch) = cap.least() else { return };
                    let report = reports.entry(epoch).or_insert_with(|| EpochReport { worker: index, epoch, ..Default::default() });
                    for out in data.drain(..) {
                        match out {
                            Out::View(v) => report.views.push(v),
                            Out::Final(f) => report.finals.push(f),
                            Out::Dead(d) => report.dead_letters.push(d),
                            Out::Max(p, t) => report.partition_max.push((p, t)),
                            Out::Watermark(w) => report.watermark = Some(report.watermark.map_or(w, |x: EventTime| x.max(w))),
                            Out::Count(n) => report.decoded += n,
                            Out::Live(view, n) => report.live_state.push((view, n)),
                            Out::Counters(c) => report.counters.extend(c),
                        }
                    }
                });
                let current = frontier.frontier().first().copied();
                while let Some(entry) = reports.first_entry() {
                    if current.is_some_and(|f| f <= *entry.key()) {
                        break;
                    }
                    // The coordinator outlives the workers; a closed channel means shutdown.
                    let _ = events.send(EngineEvent::Epoch(entry.remove()));
                }
                if reported != Some(current) {
                    reported = Some(current);
                    let _ = events.send(EngineEvent::Frontier { worker: index, frontier: current });
                }
            }
        });
    });
    (Inputs { raw: raw_input, meta: meta_input }, probe)
}

/// Decodes raw messages; emits points, dead letters, the largest event time per partition and
/// the number of records decoded.
fn decode<'s>(raw: StreamVec<'s, u64, RawMessage>, config: DecodeConfig) -> StreamVec<'s, u64, Decoded> {
    raw.unary(Pipeline, "decode", move |_cap, _info| {
        let mut points = Vec::new();
        let mut spans = Vec::new();
        let mut logs = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        let (mut metric_errors, mut span_errors, mut log_errors) = (Vec::new(), Vec::new(), Vec::new());
        let mut k8s = Vec::new();
        let mut k8s_errors = Vec::new();
        let hasher = KeyedHasher::new(&config.secret_hash_key.0);
        move |input, output| {
            input.for_each(|cap, data| {
                let mut session = output.session(&cap);
                let mut maxima: BTreeMap<u32, EventTime> = BTreeMap::new();
                let mut count = 0u64;
                for msg in data.drain(..) {
                    match msg.encoding.signal {
                        Signal::Metrics => {
                            decode_metrics(&msg, &config, &mut points, &mut metric_errors);
                            errors.extend(metric_errors.drain(..).map(|e| e.to_string()));
                        }
                        Signal::Spans => {
                            decode_spans(&msg, &config, &mut spans, &mut span_errors);
                            errors.extend(span_errors.drain(..).map(|e| e.to_string()));
                        }
                        Signal::Logs => {
                            decode_logs(&msg, &config, &mut logs, &mut log_errors);
                            errors.extend(log_errors.drain(..).map(|e| e.to_string()));
                        }
                        Signal::K8s => {
                            decode_k8s(&msg, &config, &hasher, &mut k8s, &mut k8s_errors);
                            errors.extend(k8s_errors.drain(..).map(|e| e.to_string()));
                        }
                    }
                    count += (points.len() + spans.len() + logs.len() + k8s.len()) as u64;
                    let mut observe = |partition: u32, ts: EventTime| {
                        let max = maxima.entry(partition).or_insert(ts);
                        *max = (*max).max(ts);
                    };
                    for point in points.drain(..) {
                        observe(point.origin.partition, point.ts);
                        session.give(Decoded::Point(point));
                    }
                    for span in spans.drain(..) {
                        observe(span.origin.partition, span.ts);
                        session.give(Decoded::Span(span));
                    }
                    for log in logs.drain(..) {
                        observe(log.origin.partition, log.ts);
                        session.give(Decoded::Log(log));
                    }
                    for event in k8s.drain(..) {
                        observe(event.origin.partition, event.ts);
                        session.give(Decoded::K8s(event));
                    }
                    for error in errors.drain(..) {
                        // A K8s message may hold Secret values: its dead letter carries the
                        // redacted form only.
                        let payload = if msg.encoding.signal == Signal::K8s { redact_payload(&msg.payload, &hasher) } else { msg.payload.clone() };
                        session.give(Decoded::Dead(DeadLetter { kind: "decode".to_string(), reason: error, origin: msg.origin, payload }));
                    }
                }
                for (partition, max) in maxima {
                    session.give(Decoded::Max(partition, max));
                }
                if count > 0 {
                    session.give(Decoded::Count(count));
                }
            });
        }
    })
}

/// The engine's watermark: emitted at each epoch where it changed, identically on every worker
/// (every worker sees all partitions' maxima, broadcast, and the same meta events).
fn watermark<'s>(
    maxima: StreamVec<'s, u64, (u32, EventTime)>,
    meta: StreamVec<'s, u64, MetaEvent>,
    lateness_ms: i64,
) -> StreamVec<'s, u64, EventTime> {
    maxima.binary_frontier(meta, Pipeline, Pipeline, "watermark", move |_cap, _info| {
        let mut tracker = WatermarkTracker::new(lateness_ms);
        let mut last: Option<EventTime> = None;
        type Stash = (Vec<(u32, EventTime)>, Vec<MetaEvent>);
        let mut pending: BTreeMap<u64, (timely::dataflow::operators::Capability<u64>, Stash)> = BTreeMap::new();
        move |(maxima, f1), (meta, f2), output| {
            maxima.for_each(|cap, data| {
                if let Some(cap) = cap.retain_least(0) {
                    pending.entry(*cap.time()).or_insert_with(|| (cap, Default::default())).1 .0.append(data);
                }
            });
            meta.for_each(|cap, data| {
                if let Some(cap) = cap.retain_least(0) {
                    pending.entry(*cap.time()).or_insert_with(|| (cap, Default::default())).1 .1.append(data);
                }
            });
            while let Some(entry) = pending.first_entry() {
                let time = *entry.key();
                if f1.less_equal(&time) || f2.less_equal(&time) {
                    break;
                }
                let (cap, (maxima, metas)) = entry.remove();
                for event in metas {
                    match event {
                        MetaEvent::Register { partition, max_ts } => tracker.register(partition, max_ts),
                        MetaEvent::Idle { partition, idle } => tracker.set_idle(partition, idle),
                        MetaEvent::Ended { partition } => tracker.set_ended(partition),
                    }
                }
                for (partition, ts) in maxima {
                    tracker.observe(partition, ts);
                }
                let wm = tracker.watermark();
                if wm.is_some() && wm != last {
                    last = wm;
                    output.session(&cap).give_iterator(wm.into_iter());
                }
            }
        }
    })
}

/// Runs one windowed view and turns its events into capture outputs: Arrow changes per epoch,
/// final windows (gathered on worker 0), and late records as dead letters.
fn windowed_view<'s, V>(view: V, records: StreamVec<'s, u64, V::Input>, watermarks: StreamVec<'s, u64, EventTime>) -> (Vec<StreamVec<'s, u64, Out>>, StreamVec<'s, u64, (V::Row, isize)>)
where
    V: WindowedView,
    V::Row: ViewRow,
{
    let name = <V::Row as ViewRow>::VIEW;
    let events = windowed(view, name, records, watermarks);
    let mut parts = events.partition(3, |e| match e {
        WindowEvent::Change(..) => (0, e),
        WindowEvent::Final(_) => (1, e),
        WindowEvent::Late(_) | WindowEvent::Live(_) => (2, e),
    });
    let late = parts.pop().expect("3 parts").flat_map(move |e| match e {
        WindowEvent::Late(d) => Some(Out::Dead(d)),
        WindowEvent::Live(n) => Some(Out::Live(name, n)),
        _ => None,
    });
    let finals = parts.pop().expect("3 parts").flat_map(|e| if let WindowEvent::Final(r) = e { Some(r) } else { None });
    let changes = parts.pop().expect("3 parts").flat_map(|e| if let WindowEvent::Change(r, d) = e { Some((r, d)) } else { None });
    (vec![late, view_changes::<V::Row>(changes.clone()), final_windows::<V::Row>(finals)], changes)
}

/// The span views' row changes, for correlation.
struct SpanRows<'s> {
    calls: StreamVec<'s, u64, (ServiceCall5mRow, isize)>,
    edges: StreamVec<'s, u64, ((String, String, String), isize)>,
    blast: StreamVec<'s, u64, (BlastRadiusRow, isize)>,
}

/// The log views' row changes, for correlation.
struct LogRows<'s> {
    counts: StreamVec<'s, u64, (LogPattern5mRow, isize)>,
    new: StreamVec<'s, u64, (LogPatternNewRow, isize)>,
}

/// `change_event` from the K8s watch events, then correlation with the other views.
fn change_views<'s>(
    config: ChangesConfig,
    events: StreamVec<'s, u64, K8sEvent>,
    watermarks: StreamVec<'s, u64, EventTime>,
    metrics: Option<StreamVec<'s, u64, (Metric1mRow, isize)>>,
    spans: Option<SpanRows<'s>>,
    logs: Option<LogRows<'s>>,
) -> Vec<StreamVec<'s, u64, Out>> {
    let detected = detect_changes(config.detect.clone(), events, watermarks.clone());
    let mut parts = detected.partition(3, |e| match e {
        DetectEvent::Change(_) => (0, e),
        DetectEvent::Final(_) => (1, e),
        _ => (2, e),
    });
    let other = parts.pop().expect("3 parts").flat_map(|e| match e {
        DetectEvent::Late(d) => Some(Out::Dead(d)),
        DetectEvent::Counters(c) => Some(Out::Counters(vec![
            ("k8s.events", c.events),
            ("k8s.changes", c.changes),
            ("k8s.repeats", c.repeats),
            ("k8s.late", c.late),
            ("k8s.noise", c.noise),
            ("k8s.owned", c.owned),
            ("k8s.baselines", c.baselines),
            ("k8s.evicted", c.evicted),
            ("k8s.objects", c.objects),
        ])),
        _ => None,
    });
    let finals = parts.pop().expect("3 parts").flat_map(|e| if let DetectEvent::Final(r) = e { Some(r) } else { None });
    let changes = parts.pop().expect("3 parts").flat_map(|e| if let DetectEvent::Change(r) = e { Some((r, 1isize)) } else { None });
    let mut outs = vec![other, view_changes::<ChangeEventRow>(changes.clone()), final_windows::<ChangeEventRow>(finals)];
    if let Some(cfg) = config.correlation {
        let (calls, edges, blast) = match spans {
            Some(s) => (Some(s.calls), Some(s.edges), Some(s.blast)),
            None => (None, None, None),
        };
        let (log_counts, new_patterns) = match logs {
            Some(l) => (Some(l.counts), Some(l.new)),
            None => (None, None),
        };
        let inputs = CorrelationInputs { changes, calls, edges, blast, log_counts, new_patterns, metrics };
        let out = correlate(cfg, inputs, watermarks);
        outs.push(view_changes::<ChangeImpactRow>(out.impact));
        outs.push(view_changes::<RegressionRow>(out.regressions));
        outs.push(view_changes::<RegressionSuspectRow>(out.suspects));
    }
    outs
}

/// The span views: pairing, then `service_call_5m` (windowed), the live graph with its history,
/// and the graph questions on it.
fn span_views<'s>(config: ServiceCallConfig, samples: bool, spans: StreamVec<'s, u64, Span>, watermarks: StreamVec<'s, u64, EventTime>) -> (Vec<StreamVec<'s, u64, Out>>, SpanRows<'s>) {
    let wait = config.pairing.wait_ms;
    let view = ServiceCall5m { window_ms: config.pairing.window_ms, samples };
    let events = pairing(config.pairing.clone(), spans, watermarks.clone());
    let mut parts = events.partition(2, |e| match e {
        PairEvent::Call(_) => (0, e),
        _ => (1, e),
    });
    let other = parts.pop().expect("2 parts").flat_map(|e| match e {
        PairEvent::Late(d) => Some(Out::Dead(d)),
        PairEvent::Counters(c) => Some(Out::Counters(vec![
            ("pairing.paired", c.paired),
            ("pairing.server_to_server", c.server_to_server),
            ("pairing.root_callers", c.root_callers),
            ("pairing.virtual_edges", c.virtual_edges),
            ("pairing.corrected", c.corrected),
            ("pairing.expired_unpaired", c.expired_unpaired),
            ("pairing.late", c.late),
            ("pairing.duplicates", c.duplicates),
            ("pairing.waiting", c.waiting),
            ("pairing.correctable", c.correctable),
        ])),
        PairEvent::Call(_) => None,
    });
    let calls = parts.pop().expect("2 parts").flat_map(|e| if let PairEvent::Call(c) = e { Some(c) } else { None });
    let call_watermarks = watermarks.map(move |w| shift(w, wait));
    // Calls are merged per worker and epoch by (edge, bucket) before they are exchanged by edge:
    // both edge views take the merged records (their fold is a merge of retractable sums).
    // Each epoch's calls merged on this worker by (edge, bucket) before the exchange by edge.
    let bucket_ms = combine_bucket_ms(config.pairing.window_ms);
    let edges = per_epoch(calls, Pipeline, "combine_calls", move |calls| combine(calls, bucket_ms));
    let mut outs = vec![other];
    let (more, call_rows) = windowed_view(view, edges.clone(), call_watermarks.clone());
    outs.extend(more);

    let graph = active_graph(config.graph.clone(), edges, call_watermarks);
    let mut parts = graph.partition(5, |e| match e {
        GraphEvent::Active(..) => (0, e),
        GraphEvent::Topo(..) => (1, e),
        GraphEvent::TopoFinal(_) => (2, e),
        GraphEvent::Edge(..) => (3, e),
        GraphEvent::Live(_) => (4, e),
    });
    let live = parts.pop().expect("5 parts").flat_map(|e| if let GraphEvent::Live(n) = e { Some(Out::Live(CallGraphActiveRow::VIEW, n)) } else { None });
    let edges = parts.pop().expect("5 parts").flat_map(|e| if let GraphEvent::Edge(k, d) = e { Some((k, d)) } else { None });
    let topo_finals = parts.pop().expect("5 parts").flat_map(|e| if let GraphEvent::TopoFinal(r) = e { Some(r) } else { None });
    let topo = parts.pop().expect("5 parts").flat_map(|e| if let GraphEvent::Topo(r, d) = e { Some((r, d)) } else { None });
    let active = parts.pop().expect("5 parts").flat_map(|e| if let GraphEvent::Active(r, d) = e { Some((r, d)) } else { None });
    outs.push(live);
    outs.push(view_changes::<CallGraphActiveRow>(active));
    outs.push(view_changes::<TopoEdgeTimeRow>(topo));
    outs.push(final_windows::<TopoEdgeTimeRow>(topo_finals));
    let blast = blast_radius(edges.clone(), config.max_hops);
    outs.push(view_changes::<BlastRadiusRow>(blast.clone()));
    (outs, SpanRows { calls: call_rows, edges, blast })
}

/// The log views: the miners, then `log_pattern_5m` (windowed), `log_pattern` and
/// `log_pattern_new`.
fn log_views<'s>(config: LogPatternConfig, samples: bool, logs: StreamVec<'s, u64, LogRecord>, watermarks: StreamVec<'s, u64, EventTime>) -> (Vec<StreamVec<'s, u64, Out>>, LogRows<'s>) {
    let view = LogPattern5m { window_ms: config.window_ms, samples };
    let events = mine(config, logs, watermarks.clone());
    let mut parts = events.partition(4, |e| match e {
        MineEvent::Hit(_) => (0, e),
        MineEvent::Pattern(..) => (1, e),
        MineEvent::New(..) => (2, e),
        _ => (3, e),
    });
    let other = parts.pop().expect("4 parts").flat_map(|e| match e {
        MineEvent::Late(d) => Some(Out::Dead(d)),
        MineEvent::Counters(c) => Some(Out::Counters(vec![
            ("miner.lines", c[0]),
            ("miner.clusters_created", c[1]),
            ("miner.generalisations", c[2]),
            ("miner.evictions", c[3]),
            ("miner.truncations", c[4]),
        ])),
        _ => None,
    });
    let new = parts.pop().expect("4 parts").flat_map(|e| if let MineEvent::New(r, d) = e { Some((r, d)) } else { None });
    let patterns = parts.pop().expect("4 parts").flat_map(|e| if let MineEvent::Pattern(r, d) = e { Some((r, d)) } else { None });
    let hits = parts.pop().expect("4 parts").flat_map(|e| if let MineEvent::Hit(h) = e { Some(h) } else { None });
    let mut outs = vec![other, view_changes::<LogPatternRow>(patterns), view_changes::<LogPatternNewRow>(new.clone())];
    let (more, counts) = windowed_view(view, hits, watermarks);
    outs.extend(more);
    (outs, LogRows { counts, new })
}

/// The raw archive: one final batch per signal and minute (view `raw/<signal>`), `raw_locator`
/// as view changes, late records of signals no view consumes as dead letters.
fn archive_views<'s>(config: RawArchiveConfig, admissions: Admissions, records: StreamVec<'s, u64, ArchiveRecord>, watermarks: StreamVec<'s, u64, EventTime>) -> Vec<StreamVec<'s, u64, Out>> {
    let events = raw_archive(config, admissions, records, watermarks);
    let mut parts = events.partition(2, |e| match e {
        ArchiveEvent::Locator(_) => (0, e),
        _ => (1, e),
    });
    let other = parts.pop().expect("2 parts").flat_map(|e| match e {
        ArchiveEvent::Object { signal, minute, rows } => Some(Out::Final(FinalRows { view: dataset(signal), window_start: minute, rows })),
        ArchiveEvent::Late(d) => Some(Out::Dead(d)),
        ArchiveEvent::Live(n) => Some(Out::Live("raw_archive", n)),
        ArchiveEvent::Counters(c) => Some(Out::Counters(vec![("raw_archive.records", c.records), ("raw_archive.objects", c.objects), ("raw_archive.late", c.late)])),
        ArchiveEvent::Locator(_) => None,
    });
    let locators = parts.pop().expect("2 parts").flat_map(|e| if let ArchiveEvent::Locator(r) = e { Some((r, 1isize)) } else { None });
    vec![other, view_changes::<RawLocatorRow>(locators)]
}

/// Consolidates a view's `(row, diff)` changes per epoch into upserts and deletes by primary key.
fn view_changes<'s, R: ViewRow>(changes: StreamVec<'s, u64, (R, isize)>) -> StreamVec<'s, u64, Out> {
    per_epoch(changes, Pipeline, &format!("{}_changes", R::VIEW), |mut rows: Vec<(R, isize)>| {
        let (upserts, deletes) = upserts_and_deletes(&mut rows);
        if upserts.is_empty() && deletes.is_empty() {
            return Vec::new();
        }
        let batch = |rows: &[&R]| R::to_batch(rows);
        match (batch(&upserts), batch(&deletes).and_then(|d| d.project(&key_indices::<R>()))) {
            (Ok(upserts), Ok(deletes)) => vec![Out::View(ViewChanges { view: R::VIEW, key_columns: R::KEY_COLUMNS, upserts, deletes })],
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(view = R::VIEW, error = %e, "view rows do not fit the view's arrow schema");
                Vec::new()
            }
        }
    })
}

/// Gathers the rows of windows that became final on worker 0, one sorted batch per window.
fn final_windows<'s, R: ViewRow>(finals: StreamVec<'s, u64, R>) -> StreamVec<'s, u64, Out> {
    per_epoch(finals, Exchange::new(|_: &R| 0), &format!("{}_finals", R::VIEW), |mut rows: Vec<R>| {
        rows.sort();
        let mut by_window: BTreeMap<EventTime, Vec<&R>> = BTreeMap::new();
        for row in &rows {
            by_window.entry(row.window_start().unwrap_or_default()).or_default().push(row);
        }
        by_window
            .into_iter()
            .filter_map(|(window_start, rows)| match R::to_batch(&rows) {
                Ok(rows) => Some(Out::Final(FinalRows { view: R::VIEW, window_start, rows })),
                Err(e) => {
                    tracing::error!(view = R::VIEW, error = %e, "final rows do not fit the view's arrow schema");
                    None
                }
            })
            .collect()
    })
}

/// Collects each epoch's records and calls `logic` once per complete epoch, in epoch order.
fn per_epoch<'s, D, O, P, L>(stream: StreamVec<'s, u64, D>, pact: P, name: &str, mut logic: L) -> StreamVec<'s, u64, O>
where
    D: Clone + 'static,
    O: Clone + 'static,
    P: timely::dataflow::channels::pact::ParallelizationContract<u64, Vec<D>>,
    L: FnMut(Vec<D>) -> Vec<O> + 'static,
{
    stream.unary_frontier(pact, name, move |_cap, _info| {
        let mut pending: BTreeMap<u64, (timely::dataflow::operators::Capability<u64>, Vec<D>)> = BTreeMap::new();
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                if let Some(cap) = cap.retain_least(0) {
                    pending.entry(*cap.time()).or_insert_with(|| (cap, Vec::new())).1.append(data);
                }
            });
            while let Some(entry) = pending.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (cap, data) = entry.remove();
                let outs = logic(data);
                if !outs.is_empty() {
                    output.session(&cap).give_iterator(outs.into_iter());
                }
            }
        }
    })
}

/// Consolidates `(row, diff)` pairs and splits them by primary key: a key whose net change
/// includes a row with positive multiplicity is upserted with that row; a key with only
/// retractions is deleted (the delete carries the retracted row, for its key columns).
pub fn upserts_and_deletes<R: ViewRow>(changes: &mut Vec<(R, isize)>) -> (Vec<&R>, Vec<&R>) {
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    changes.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
    changes.retain(|(_, d)| *d != 0);
    let mut by_key: BTreeMap<R::Key, (Option<&R>, Option<&R>)> = BTreeMap::new();
    for (row, diff) in changes.iter() {
        let slot = by_key.entry(row.key()).or_default();
        if *diff > 0 {
            slot.0 = Some(row);
        } else {
            slot.1 = Some(row);
        }
    }
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    for (_, (insert, retract)) in by_key {
        match (insert, retract) {
            (Some(row), _) => upserts.push(row),
            (None, Some(row)) => deletes.push(row),
            (None, None) => {}
        }
    }
    (upserts, deletes)
}

fn key_indices<R: ViewRow>() -> Vec<usize> {
    let schema = R::schema();
    R::KEY_COLUMNS.iter().filter_map(|k| schema.index_of(k).ok()).collect()
}

/// One epoch of input for [`run_epochs`]: raw messages and meta events.
pub type EpochInput = (Vec<RawMessage>, Vec<MetaEvent>);

/// Runs the dataflow in this process with `workers` threads over epochs cut in advance, and
/// returns every worker's reports sorted by (epoch, worker).
///
/// Messages go to worker `partition % workers`, as the runtime's driver does. Used by the views'
/// tests (same input through 1 and 4 workers, different batchings) and by the benchmarks.
pub fn run_epochs(config: &EngineConfig, workers: usize, epochs: Vec<EpochInput>) -> Result<Vec<EpochReport>, String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let epochs = std::sync::Arc::new(epochs);
    let config = config.clone();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (mut inputs, probe) = build(worker, &config, tx.clone());
        let (index, peers) = (worker.index(), worker.peers());
        for (epoch, (raw, meta)) in epochs.iter().enumerate() {
            for msg in raw.iter().filter(|m| m.origin.partition as usize % peers == index) {
                inputs.raw.send(msg.clone());
            }
            for event in meta {
                inputs.meta.send(event.clone());
            }
            inputs.raw.advance_to(epoch as u64 + 1);
            inputs.meta.advance_to(epoch as u64 + 1);
            while probe.less_than(inputs.raw.time()) {
                worker.step();
            }
        }
    })?;
    guards.join().into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut reports: Vec<EpochReport> = rx.try_iter().filter_map(|e| if let EngineEvent::Epoch(r) = e { Some(r) } else { None }).collect();
    reports.sort_by_key(|r| (r.epoch, r.worker));
    Ok(reports)
}
