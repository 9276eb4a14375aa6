//! The raw archive through the whole dataflow: a mixed workload (spans with a late-completed
//! pair, logs, metric samples and histograms, K8s events with Secret values) through every view
//! with the archive on. The archived objects equal a from-scratch computation over the decoded
//! records whatever the worker count and epochs; late records stay out; each minute is written
//! once, when final; `raw_locator` names every object; every `sample_ref` resolves to a record
//! of its row; no Secret value reaches an object; and the archive changes no other column.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use arrow::record_batch::RecordBatch;
use observebridge_dataflows::decode::k8s::{decode_k8s, K8sEvent, KeyedHasher};
use observebridge_dataflows::decode::{decode_logs, decode_metrics, decode_spans, DecodeConfig};
use observebridge_dataflows::engine::{run_epochs, ChangesConfig, EngineConfig, EpochInput, EpochReport, MetaEvent, ServiceCallConfig};
use observebridge_dataflows::pairing::{CallerNaming, PairingConfig};
use observebridge_dataflows::record::{Encoding, EventTime, LogRecord, MetricPoint, Origin, RawMessage, Signal, Span, SpanKind, WireFormat};
use observebridge_dataflows::views::call_graph_active::CallGraphConfig;
use observebridge_dataflows::views::log_pattern::LogPatternConfig;
use observebridge_dataflows::views::metric_1m::Metric1m;
use observebridge_dataflows::views::service_call_5m::{CallSamples, SpanRef};
use observebridge_dataflows::views::raw_archive::{dataset, locator_id, object_key, ArchiveRow, RawArchiveConfig, MINUTE_MS};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span as PbSpan, Status};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use common::{cell, table};

const T0: EventTime = 1_800_000_000_000; // a 5-minute boundary
const MIN: i64 = 60_000;
const WINDOW: i64 = 300_000;
const SPREAD: i64 = 12 * MIN;
const CANARY: &str = "CANARY-raw-archive-s3cr3t";
const PARTITIONS: u32 = 3;

fn config(archive: bool) -> EngineConfig {
    EngineConfig {
        lateness_ms: 120_000,
        decode: DecodeConfig::default(),
        metric_1m: Some(Metric1m::default()),
        service_call: Some(ServiceCallConfig {
            pairing: PairingConfig { wait_ms: 10_000, window_ms: WINDOW, caller: CallerNaming::Peer },
            graph: CallGraphConfig::default(),
            max_hops: 16,
        }),
        log_pattern: Some(LogPatternConfig::default()),
        changes: Some(ChangesConfig::default()),
        raw_archive: archive.then(RawArchiveConfig::default),
    }
}

/// Only the archive: no view consumes any signal.
fn archive_only() -> EngineConfig {
    EngineConfig { metric_1m: None, service_call: None, log_pattern: None, changes: None, ..config(true) }
}

// ---------------------------------------------------------------------------------------------
// The workload.

/// One input message, with the event time it is placed in the stream by.
#[derive(Clone, Debug)]
struct Msg {
    /// Where in the stream the message goes (event time of the data around it).
    at: EventTime,
    encoding: Encoding,
    payload: Vec<u8>,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }), ..Default::default() }
}

fn ids(trace: u32, id: u8) -> (Vec<u8>, Vec<u8>) {
    let mut t = vec![0xab; 16];
    t[12..].copy_from_slice(&trace.to_be_bytes());
    let mut s = vec![0xcd; 8];
    s[3..7].copy_from_slice(&trace.to_be_bytes());
    s[7] = id;
    (t, s)
}

#[allow(clippy::too_many_arguments)]
fn span_msg(service: &str, trace: u32, id: u8, parent: Option<u8>, kind: span::SpanKind, end_ms: EventTime, duration_ms: i64, error: bool, db: Option<&str>) -> Msg {
    let end_ns = (end_ms as u64) * 1_000_000;
    let mut attributes = Vec::new();
    if let Some(db) = db {
        attributes.push(kv("db.system", "postgresql"));
        attributes.push(kv("db.name", db));
    }
    let (trace_id, span_id) = ids(trace, id);
    let pb = PbSpan {
        trace_id,
        span_id,
        parent_span_id: parent.map(|p| ids(trace, p).1).unwrap_or_default(),
        name: "op".into(),
        kind: kind as i32,
        start_time_unix_nano: end_ns - (duration_ms as u64) * 1_000_000,
        end_time_unix_nano: end_ns,
        attributes,
        status: error.then(|| Status { code: status::StatusCode::Error as i32, message: String::new() }),
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![kv("service.name", service), kv("k8s.namespace.name", "shop")], ..Default::default() }),
            scope_spans: vec![ScopeSpans { spans: vec![pb], ..Default::default() }],
            ..Default::default()
        }],
    };
    Msg { at: end_ms, encoding: Encoding::new(Signal::Spans, WireFormat::OtlpProto), payload: prost::Message::encode_to_vec(&request) }
}

fn log_msg(ts: EventTime, service: &str, level: &str, message: &str, trace: Option<u32>) -> Msg {
    let mut payload = json!({"ts": ts, "service": service, "severity": level, "message": message});
    if let Some(t) = trace {
        payload["trace_id"] = json!(hex::encode(ids(t, 0).0));
    }
    Msg { at: ts, encoding: Encoding::new(Signal::Logs, WireFormat::JsonLines), payload: payload.to_string().into_bytes() }
}

fn sample_msg(ts: EventTime, resource: &str, value: f64) -> Msg {
    let payload = json!({"ts": ts, "resource": resource, "metric": "latency", "value": value, "labels": {"pod": "p1"}});
    Msg { at: ts, encoding: Encoding::new(Signal::Metrics, WireFormat::JsonLines), payload: payload.to_string().into_bytes() }
}

fn histogram_msg(ts: EventTime, service: &str, counts: [u64; 3]) -> Msg {
    let count: u64 = counts.iter().sum();
    let point = HistogramDataPoint {
        time_unix_nano: (ts as u64) * 1_000_000,
        count,
        sum: Some(count as f64 * 7.5),
        bucket_counts: counts.to_vec(),
        explicit_bounds: vec![5.0, 10.0],
        min: Some(1.0),
        max: Some(30.0),
        ..Default::default()
    };
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource { attributes: vec![kv("service.name", service), kv("k8s.namespace.name", "shop")], ..Default::default() }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric { name: "http.server.duration".into(), data: Some(metric::Data::Histogram(Histogram { data_points: vec![point], aggregation_temporality: 1 })), ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Msg { at: ts, encoding: Encoding::new(Signal::Metrics, WireFormat::OtlpProto), payload: prost::Message::encode_to_vec(&request) }
}

fn k8s_msg(ts: EventTime, action: &str, kind: &str, name: &str, rv: u64, extra: serde_json::Value) -> Msg {
    let time = chrono::DateTime::from_timestamp_millis(ts).expect("time").to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut object = json!({"kind": kind, "apiVersion": "v1", "metadata": {
        "name": name, "namespace": "shop", "uid": format!("uid-{name}"), "resourceVersion": rv.to_string(),
        "labels": {"app.kubernetes.io/name": "payments"},
        "creationTimestamp": "2027-01-15T08:00:00Z",
        "managedFields": [{"manager": "kubectl", "operation": "Update", "time": time}],
    }});
    for (k, v) in extra.as_object().expect("object") {
        object[k] = v.clone();
    }
    Msg { at: ts, encoding: Encoding::new(Signal::K8s, WireFormat::JsonLines), payload: json!({"type": action, "object": object}).to_string().into_bytes() }
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The workload, in stream order (bounded disorder: shuffled within 5 s of event time).
fn workload(seed: u64) -> Vec<Msg> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut msgs = Vec::new();
    use span::SpanKind::{Client, Server};
    for trace in 0..150u32 {
        let t = T0 + rng.random_range(0..SPREAD - 30_000);
        let d = |rng: &mut rand_chacha::ChaCha8Rng| rng.random_range(1..400i64);
        let e = |rng: &mut rand_chacha::ChaCha8Rng| rng.random_bool(0.15);
        msgs.push(span_msg("frontend", trace, 1, None, Server, t + 900, d(&mut rng), false, None));
        msgs.push(span_msg("frontend", trace, 2, Some(1), Client, t + 800, d(&mut rng), e(&mut rng), None));
        msgs.push(span_msg("checkout", trace, 3, Some(2), Server, t + 700, d(&mut rng), e(&mut rng), None));
        match rng.random_range(0..3) {
            0 => msgs.push(span_msg("checkout", trace, 4, Some(3), Client, t + 600, d(&mut rng), e(&mut rng), Some("orders"))),
            1 => {
                msgs.push(span_msg("checkout", trace, 4, Some(3), Client, t + 600, d(&mut rng), false, None));
                msgs.push(span_msg("cart", trace, 5, Some(4), Server, t + 500, d(&mut rng), e(&mut rng), None));
            }
            _ => {}
        }
    }
    // A pair completed late: the client expires into a virtual edge (its wait passes), then its
    // server arrives two minutes of stream later, within its call window: the virtual edge is
    // taken back. The server's minute is final under the watermark by then, its 5-minute
    // window is not: it is archived, as pairing counted it.
    let t = T0 + 6 * MIN;
    msgs.push(span_msg("checkout", 9_000, 4, Some(3), Client, t, 40, false, None));
    let mut late_server = span_msg("payments", 9_000, 5, Some(4), Server, t - 5, 30, false, None);
    late_server.at = t + 4 * MIN;
    msgs.push(late_server);

    type Family = (&'static str, fn(&mut rand_chacha::ChaCha8Rng) -> String);
    let families: [Family; 4] = [
        ("INFO", |r| format!("user {} added item {} to cart", r.random_range(1..9999), r.random_range(1..500))),
        ("ERROR", |r| format!("connection refused after {} retries", r.random_range(1..6))),
        ("WARN", |r| format!("slow query on orders took {} ms", r.random_range(100..900))),
        ("DEBUG", |r| format!("cache warmed in {} ms", r.random_range(1..90))),
    ];
    for i in 0..300u32 {
        let ts = T0 + rng.random_range(0..SPREAD);
        let (level, make) = families[rng.random_range(0..families.len())];
        let service = ["cart", "checkout", "auth"][rng.random_range(0..3)];
        msgs.push(log_msg(ts, service, level, &make(&mut rng), (i % 4 == 0).then_some(i)));
    }
    for _ in 0..200 {
        let ts = T0 + rng.random_range(0..SPREAD);
        msgs.push(sample_msg(ts, &format!("urn:host:h{}", rng.random_range(0..3)), rng.random_range(-5.0..500.0)));
    }
    for _ in 0..20 {
        let ts = T0 + rng.random_range(0..SPREAD);
        msgs.push(histogram_msg(ts, "checkout", [rng.random_range(0..4), rng.random_range(0..4), rng.random_range(1..4)]));
    }
    let deployment = |image: &str, secret_env: &str| {
        json!({"spec": {"replicas": 3, "template": {"metadata": {"labels": {"app.kubernetes.io/name": "payments"}}, "spec": {"containers": [{"name": "payments", "image": image,
            "env": [{"name": "API_TOKEN", "value": secret_env}]}]}}}})
    };
    msgs.push(k8s_msg(T0 + 30_000, "ADDED", "Deployment", "payments", 101, deployment("r/payments:1.0.0", CANARY)));
    msgs.push(k8s_msg(T0 + 40_000, "ADDED", "Secret", "payments-db", 102, json!({"data": {"password": base64_of(CANARY)}, "stringData": {"token": CANARY}})));
    msgs.push(k8s_msg(T0 + 5 * MIN, "MODIFIED", "Secret", "payments-db", 103, json!({"data": {"password": base64_of(&format!("{CANARY}-2"))}})));
    msgs.push(k8s_msg(T0 + 7 * MIN, "MODIFIED", "Deployment", "payments", 104, deployment("r/payments:2.0.0", CANARY)));
    msgs.push(k8s_msg(T0 + 8 * MIN, "ADDED", "ConfigMap", "payments-config", 105, json!({"data": {"retries": "3", "password": CANARY}})));

    msgs.sort_by_key(|m| m.at);
    let mut start = 0;
    while start < msgs.len() {
        let chunk = (msgs[start].at - T0).div_euclid(5_000);
        let end = start + msgs[start..].iter().take_while(|m| (m.at - T0).div_euclid(5_000) == chunk).count();
        msgs[start..end].shuffle(&mut rng);
        start = end;
    }
    msgs
}

/// Records far behind the watermark once the workload has run: late for every view.
fn late_messages() -> Vec<Msg> {
    vec![
        log_msg(T0 + 5_000, "cart", "INFO", "user 1 added item 2 to cart", None),
        span_msg("frontend", 9_999, 2, Some(1), span::SpanKind::Client, T0 + 5_000, 10, false, None),
        sample_msg(T0 + 5_000, "urn:host:h0", 1.0),
    ]
}

/// The messages with their origins (message `i` on partition `i % 3`).
fn messages(msgs: &[Msg]) -> Vec<RawMessage> {
    let mut offsets = [0u64; PARTITIONS as usize];
    msgs.iter()
        .enumerate()
        .map(|(i, m)| {
            let partition = i as u32 % PARTITIONS;
            let offset = offsets[partition as usize];
            offsets[partition as usize] += 1;
            RawMessage { origin: Origin { partition, offset }, encoding: m.encoding, payload: m.payload.clone() }
        })
        .collect()
}

/// Epochs of the given sizes, then the late records in an epoch of their own, then the end.
fn epochs(raw: &[RawMessage], late: &[RawMessage], sizes: &[usize]) -> Vec<EpochInput> {
    let mut out: Vec<EpochInput> = Vec::new();
    let mut rest = raw;
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes[k % sizes.len()].clamp(1, rest.len());
        k += 1;
        let meta = if out.is_empty() { (0..PARTITIONS).map(|p| MetaEvent::Register { partition: p, max_ts: None }).collect() } else { Vec::new() };
        out.push((rest[..n].to_vec(), meta));
        rest = &rest[n..];
    }
    out.push((late.to_vec(), Vec::new()));
    out.push((Vec::new(), (0..PARTITIONS).map(|p| MetaEvent::Ended { partition: p }).collect()));
    out
}

/// The workload's messages and its late messages (numbered after it).
fn inputs(seed: u64) -> (Vec<RawMessage>, Vec<RawMessage>) {
    let mut all = workload(seed);
    let n = all.len();
    all.extend(late_messages());
    let mut raw = messages(&all);
    let late = raw.split_off(n);
    (raw, late)
}

// ---------------------------------------------------------------------------------------------
// Reading the reports.

/// Archive objects: (dataset, minute) -> (epoch written, rows); panics on a second write.
fn objects(reports: &[EpochReport]) -> BTreeMap<(String, EventTime), (u64, RecordBatch)> {
    let mut out = BTreeMap::new();
    for r in reports {
        for f in r.finals.iter().filter(|f| f.view.starts_with("raw/")) {
            let previous = out.insert((f.view.to_string(), f.window_start), (r.epoch, f.rows.clone()));
            assert!(previous.is_none(), "{} {} written twice", f.view, f.window_start);
        }
    }
    out
}

fn rows_only(objects: &BTreeMap<(String, EventTime), (u64, RecordBatch)>) -> BTreeMap<(String, EventTime), RecordBatch> {
    objects.iter().map(|(k, (_, b))| (k.clone(), b.clone())).collect()
}

/// The watermark after each epoch (the largest any report carried up to it).
fn watermarks(reports: &[EpochReport], epochs: usize) -> Vec<Option<EventTime>> {
    let mut wm = None;
    (0..epochs as u64)
        .map(|e| {
            for w in reports.iter().filter(|r| r.epoch == e).filter_map(|r| r.watermark) {
                wm = Some(wm.map_or(w, |x: EventTime| x.max(w)));
            }
            wm
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// From scratch.

fn minute(ts: EventTime) -> EventTime {
    ts.div_euclid(MINUTE_MS) * MINUTE_MS
}

fn group<R: ArchiveRow>(records: Vec<R>, ts: fn(&R) -> EventTime, out: &mut BTreeMap<(String, EventTime), RecordBatch>) {
    let mut by_minute: BTreeMap<EventTime, Vec<R>> = BTreeMap::new();
    for r in records {
        by_minute.entry(minute(ts(&r))).or_default().push(r);
    }
    for (m, mut rows) in by_minute {
        R::sort(&mut rows);
        out.insert((dataset(R::SIGNAL).to_string(), m), R::to_batch(&rows).expect("batch"));
    }
}

/// The decoded records of each signal (origins reset, as archived).
type Decoded = (Vec<Span>, Vec<LogRecord>, Vec<MetricPoint>, Vec<K8sEvent>);

/// Every record of `raw` decoded, grouped by signal and minute, sorted: the archive's definition.
fn from_scratch(raw: &[RawMessage]) -> (BTreeMap<(String, EventTime), RecordBatch>, Decoded) {
    let cfg = DecodeConfig::default();
    let hasher = KeyedHasher::new(&cfg.secret_hash_key.0);
    let (mut spans, mut logs, mut points, mut events) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for m in raw {
        match m.encoding.signal {
            Signal::Spans => decode_spans(m, &cfg, &mut spans, &mut Vec::new()),
            Signal::Logs => decode_logs(m, &cfg, &mut logs, &mut Vec::new()),
            Signal::Metrics => decode_metrics(m, &cfg, &mut points, &mut Vec::new()),
            Signal::K8s => decode_k8s(m, &cfg, &hasher, &mut events, &mut Vec::new()),
        }
    }
    spans.iter_mut().for_each(|r: &mut Span| r.origin = Origin::default());
    logs.iter_mut().for_each(|r: &mut LogRecord| r.origin = Origin::default());
    points.iter_mut().for_each(|r: &mut MetricPoint| r.origin = Origin::default());
    events.iter_mut().for_each(|r: &mut K8sEvent| r.origin = Origin::default());
    let mut out = BTreeMap::new();
    group(spans.clone(), |r| r.ts, &mut out);
    group(logs.clone(), |r| r.ts, &mut out);
    group(points.clone(), |r| r.ts, &mut out);
    group(events.clone(), |r| r.ts, &mut out);
    (out, (spans, logs, points, events))
}

fn sorted<R: ArchiveRow + Clone>(mut rows: Vec<R>) -> Vec<R> {
    R::sort(&mut rows);
    rows
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn archived_objects_equal_from_scratch_for_any_workers_and_epochs() {
    let (raw, late) = inputs(7);
    let small = epochs(&raw, &late, &[3, 7, 1, 5]);
    let large = epochs(&raw, &late, &[400]);
    let one = run_epochs(&config(true), 1, small.clone()).expect("run");
    let three = run_epochs(&config(true), 3, large).expect("run");
    let written = objects(&one);
    let (expected, (spans, logs, points, events)) = from_scratch(&raw);
    assert_eq!(rows_only(&written), expected, "archive = from scratch (1 worker, small epochs)");
    assert_eq!(rows_only(&objects(&three)), expected, "archive = from scratch (3 workers, large epochs)");
    assert!(expected.keys().any(|(d, _)| d == "raw/k8s") && expected.keys().any(|(d, _)| d == "raw/metrics"));

    // Arrow -> records gives the decoded records back (origin aside), for every signal.
    let read = |d: &str| written.iter().filter(|((ds, _), _)| ds == d).map(|(_, (_, b))| b.clone()).collect::<Vec<_>>();
    let back_spans: Vec<Span> = read("raw/spans").iter().flat_map(|b| Span::from_batch(b).expect("spans")).collect();
    assert_eq!(sorted(back_spans), sorted(spans.clone()));
    let back_logs: Vec<LogRecord> = read("raw/logs").iter().flat_map(|b| LogRecord::from_batch(b).expect("logs")).collect();
    assert_eq!(sorted(back_logs), sorted(logs));
    let back_points: Vec<MetricPoint> = read("raw/metrics").iter().flat_map(|b| MetricPoint::from_batch(b).expect("points")).collect();
    assert!(points.iter().any(|p| matches!(p.value, observebridge_dataflows::record::Observation::Distribution { .. })));
    assert_eq!(sorted(back_points), sorted(points));
    let back_events: Vec<K8sEvent> = read("raw/k8s").iter().flat_map(|b| K8sEvent::from_batch(b).expect("events")).collect();
    assert_eq!(sorted(back_events), sorted(events));
    // ... and back to the same batch.
    for ((d, _), (_, batch)) in &written {
        let again = match d.as_str() {
            "raw/spans" => Span::to_batch(&Span::from_batch(batch).expect("read")),
            "raw/logs" => LogRecord::to_batch(&LogRecord::from_batch(batch).expect("read")),
            "raw/metrics" => MetricPoint::to_batch(&MetricPoint::from_batch(batch).expect("read")),
            _ => K8sEvent::to_batch(&K8sEvent::from_batch(batch).expect("read")),
        };
        assert_eq!(&again.expect("batch"), batch, "{d}");
    }
    // The late-completed pair's server span is archived (pairing counted it).
    assert!(spans.iter().any(|s| s.service == "urn:k8s:svc:shop/payments" && s.kind == SpanKind::Server));
}

#[test]
fn late_records_are_not_archived() {
    let (raw, late) = inputs(11);
    // The late-completed pair's server span arrives after its minute is final: without the span
    // views (whose 5-minute window still admits it) the archive refuses it too.
    let server = |m: &RawMessage| {
        let mut spans = Vec::new();
        decode_spans(m, &DecodeConfig::default(), &mut spans, &mut Vec::new());
        spans.iter().any(|s| s.service == "urn:k8s:svc:shop/payments")
    };
    let late_server: Vec<RawMessage> = raw.iter().filter(|m| m.encoding.signal == Signal::Spans && server(m)).cloned().collect();
    assert_eq!(late_server.len(), 1);
    for (name, cfg) in [("views", config(true)), ("archive only", archive_only())] {
        let reports = run_epochs(&cfg, 2, epochs(&raw, &late, &[50])).expect("run");
        let views = cfg.service_call.is_some();
        let admitted: Vec<RawMessage> = raw.iter().filter(|m| views || !late_server.contains(m)).cloned().collect();
        let (expected, ..) = from_scratch(&admitted);
        assert_eq!(rows_only(&objects(&reports)), expected, "{name}: only admitted records are archived");
        // Each late record is dead-lettered exactly once: by its view, else by the archive.
        let mut refused: Vec<Origin> = late.iter().map(|m| m.origin).collect();
        if !views {
            refused.push(late_server[0].origin);
        }
        let dead: Vec<_> = reports.iter().flat_map(|r| r.dead_letters.iter()).filter(|d| d.kind == "late").collect();
        assert_eq!(dead.len(), refused.len(), "{name}: {dead:?}");
        let origins: BTreeSet<Origin> = dead.iter().map(|d| d.origin).collect();
        assert_eq!(origins, refused.into_iter().collect(), "{name}");
        let counted: u64 = reports.iter().flat_map(|r| r.counters.iter()).filter(|(n, _)| *n == "raw_archive.late").map(|(_, v)| *v).max().unwrap_or(0);
        assert!(counted >= 1, "{name}: late records are counted");
    }
}

#[test]
fn minutes_are_written_once_when_final_and_state_drains() {
    let (raw, late) = inputs(3);
    let cfg = config(true);
    let epochs = epochs(&raw, &late, &[9, 2, 13]);
    let n = epochs.len();
    let reports = run_epochs(&cfg, 2, epochs).expect("run");
    let wm = watermarks(&reports, n);
    let admissions = cfg.archive_admissions();
    let signal = |d: &str| [Signal::Metrics, Signal::Spans, Signal::Logs, Signal::K8s].into_iter().find(|s| dataset(*s) == d).expect("dataset");
    let written = objects(&reports);
    for ((d, m), (epoch, _)) in &written {
        let a = admissions.of(signal(d));
        let before = if *epoch == 0 { None } else { wm[*epoch as usize - 1] };
        assert!(a.minute_is_final(*m, wm[*epoch as usize]), "{d} {m} written at epoch {epoch} before it was final");
        assert!(!a.minute_is_final(*m, before), "{d} {m} final before epoch {epoch} but written only then");
    }
    // Spans wait for their call window (5 minutes plus the wait), the others for their minute.
    let first_span = written.iter().find(|((d, _), _)| d == "raw/spans").expect("spans");
    assert!(wm[first_span.1 .0 as usize].is_some_and(|w| w >= first_span.0 .1 + 10_000 + MIN));
    // State: nothing is held once the input has ended; it never held everything at once.
    let live = |e: u64| reports.iter().filter(|r| r.epoch == e).flat_map(|r| r.live_state.iter()).filter(|(v, _)| *v == "raw_archive").map(|(_, n)| *n).sum::<u64>();
    assert_eq!(live(n as u64 - 1), 0);
    let peak = (0..n as u64).map(live).max().unwrap_or(0);
    assert!(peak < raw.len() as u64 * 3 / 4, "peak {peak} of {}", raw.len());
}

#[test]
fn locators_name_the_objects() {
    let (raw, late) = inputs(5);
    let reports = run_epochs(&config(true), 3, epochs(&raw, &late, &[40])).expect("run");
    let written = objects(&reports);
    let locators = table(&reports, "raw_locator");
    assert!(reports.iter().flat_map(|r| r.views.iter()).filter(|v| v.view == "raw_locator").all(|v| v.deletes.num_rows() == 0));
    let expected: BTreeSet<Vec<String>> = written
        .keys()
        .map(|(d, m)| {
            let signal = [Signal::Metrics, Signal::Spans, Signal::Logs, Signal::K8s].into_iter().find(|s| dataset(*s) == d).expect("signal");
            let key = object_key(signal, *m);
            vec![locator_id(&key), d.clone(), key, m.to_string(), (m + MINUTE_MS).to_string()]
        })
        .collect();
    let got: BTreeSet<Vec<String>> = locators.values().map(|r| ["id", "dataset", "object_key", "t_from", "t_to"].iter().map(|c| r[*c].clone()).collect()).collect();
    assert_eq!(got, expected);
    for row in locators.values() {
        assert!(row["query_hint"].starts_with(&format!("SELECT * FROM read_parquet('{}')", row["object_key"])), "{}", row["query_hint"]);
    }
    // A locator comes in the epoch its object is written.
    for r in &reports {
        for f in r.finals.iter().filter(|f| f.view.starts_with("raw/")) {
            let signal = [Signal::Metrics, Signal::Spans, Signal::Logs, Signal::K8s].into_iter().find(|s| dataset(*s) == f.view).expect("signal");
            let id = locator_id(&object_key(signal, f.window_start));
            let same_epoch = reports.iter().filter(|x| x.epoch == r.epoch).flat_map(|x| x.views.iter()).filter(|v| v.view == "raw_locator").any(|v| (0..v.upserts.num_rows()).any(|i| cell(&v.upserts, i, "id") == id));
            assert!(same_epoch, "{} {}", f.view, f.window_start);
        }
    }
}

/// `<id>#k=v&k=v` -> (id, {k: v}).
fn parse_ref(r: &str) -> (String, BTreeMap<String, String>) {
    let (id, fragment) = r.split_once('#').expect("fragment");
    let params = fragment.split('&').map(|kv| kv.split_once('=').expect("k=v")).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    (id.to_string(), params)
}

/// Whether `message` fits a template, `<*>` standing for any non-empty text.
fn fits(pattern: &str, message: &str) -> bool {
    let parts: Vec<&str> = pattern.split("<*>").collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == message;
    }
    let Some(mut rest) = message.strip_prefix(first) else { return false };
    for middle in &parts[1..parts.len() - 1] {
        match rest.get(1..).and_then(|r| r.find(middle)) {
            Some(i) => rest = &rest[1 + i + middle.len()..],
            None => return false,
        }
    }
    rest.len() > last.len() && rest.ends_with(last)
}

#[test]
fn sample_refs_resolve_to_a_record_of_their_row() {
    let (raw, late) = inputs(13);
    let one = run_epochs(&config(true), 1, epochs(&raw, &late, &[5, 2, 11])).expect("run");
    let three = run_epochs(&config(true), 3, epochs(&raw, &late, &[300])).expect("run");
    let written = objects(&one);
    let by_id: BTreeMap<String, RecordBatch> = written
        .iter()
        .map(|((d, m), (_, b))| {
            let signal = [Signal::Metrics, Signal::Spans, Signal::Logs, Signal::K8s].into_iter().find(|s| dataset(*s) == d).expect("signal");
            (locator_id(&object_key(signal, *m)), b.clone())
        })
        .collect();
    let locators = table(&one, "raw_locator");

    let calls = table(&one, "service_call_5m");
    assert!(!calls.is_empty());
    assert_eq!(calls, table(&three, "service_call_5m"), "sample refs do not depend on workers or epochs");
    for row in calls.values() {
        let r = &row["sample_ref"];
        assert!(!r.is_empty(), "every edge has a sample: {row:?}");
        let (id, params) = parse_ref(r);
        assert!(locators.contains_key(&vec![id.clone()]), "{r} names a locator");
        let spans = Span::from_batch(&by_id[&id]).expect("spans");
        let span = spans.iter().find(|s| hex::encode(s.trace_id) == params["trace_id"] && hex::encode(s.span_id) == params["span_id"]).unwrap_or_else(|| panic!("{r} is in its object"));
        let bucket: i64 = row["bucket"].parse().expect("bucket");
        assert!((bucket..bucket + WINDOW).contains(&span.ts), "{r} in the row's window");
        match span.kind {
            SpanKind::Client | SpanKind::Producer => assert_eq!(span.service, row["src"], "{r}"),
            _ => assert_eq!(span.service, row["dst"], "{r}"),
        }
    }
    // The late-completed pair: its virtual edge was made and taken back (in the small epochs),
    // and is gone; its direct edge's sample is real.
    let corrected = one.iter().flat_map(|r| r.counters.iter()).filter(|(n, _)| *n == "pairing.corrected").map(|(_, v)| *v).max();
    assert_eq!(corrected, Some(1));
    assert!(!calls.values().any(|r| r["dst"] == "urn:ext:unknown" && r["src"] == "urn:k8s:svc:shop/checkout"));
    assert!(calls.values().any(|r| r["dst"] == "urn:k8s:svc:shop/payments"));

    let patterns = table(&one, "log_pattern");
    let counts = table(&one, "log_pattern_5m");
    assert!(!counts.is_empty());
    assert_eq!(counts, table(&three, "log_pattern_5m"));
    for row in counts.values() {
        let r = &row["sample_ref"];
        let (id, params) = parse_ref(r);
        let batch = &by_id[&id];
        let lines = LogRecord::from_batch(batch).expect("logs");
        let i = (0..batch.num_rows()).find(|&i| cell(batch, i, "line_id") == params["line_id"]).unwrap_or_else(|| panic!("{r} is in its object"));
        let line = &lines[i];
        let bucket: i64 = row["bucket"].parse().expect("bucket");
        assert!((bucket..bucket + WINDOW).contains(&line.ts) && line.resource == row["resource"], "{r}: {line:?}");
        let pattern = &patterns[&vec![row["tenant"].clone(), row["fingerprint_id"].clone()]]["pattern"];
        assert!(fits(pattern, &line.message), "{pattern} / {}", line.message);
    }
}

#[test]
fn no_secret_value_is_archived() {
    let (raw, late) = inputs(17);
    let reports = run_epochs(&config(true), 2, epochs(&raw, &late, &[25])).expect("run");
    let written = objects(&reports);
    assert!(written.keys().any(|(d, _)| d == "raw/k8s"));
    let forbidden = [CANARY.to_string(), base64_of(CANARY), base64_of(&format!("{CANARY}-2"))];
    let mut cells = 0;
    for ((d, _), (_, batch)) in &written {
        for f in batch.schema().fields() {
            for i in 0..batch.num_rows() {
                let text = cell(batch, i, f.name());
                cells += 1;
                assert!(!forbidden.iter().any(|f| text.contains(f.as_str())), "{d}: {text}");
            }
        }
    }
    assert!(cells > 0);
    // The Secret's keys are there, as keyed hashes.
    let events: Vec<K8sEvent> = written.iter().filter(|((d, _), _)| d == "raw/k8s").flat_map(|(_, (_, b))| K8sEvent::from_batch(b).expect("events")).collect();
    assert!(events.iter().any(|e| e.name == "payments-db" && format!("{:?}", e.body).contains("hmac:")));
}

#[test]
fn the_archive_changes_no_other_column() {
    let (raw, late) = inputs(19);
    let on = run_epochs(&config(true), 2, epochs(&raw, &late, &[30])).expect("run");
    let off = run_epochs(&config(false), 2, epochs(&raw, &late, &[30])).expect("run");
    assert!(objects(&off).is_empty());
    assert!(table(&off, "raw_locator").is_empty());
    // call_graph_active is empty once every edge has aged out at the end of the input.
    for (view, has_rows) in [("service_call_5m", true), ("log_pattern_5m", true), ("metric_1m", true), ("log_pattern", true), ("change_event", true), ("call_graph_active", false), ("topo_edge_time", true)] {
        let strip = |t: BTreeMap<Vec<String>, BTreeMap<String, String>>, archive: bool| -> BTreeMap<Vec<String>, BTreeMap<String, String>> {
            t.into_iter()
                .map(|(k, mut row)| {
                    if let Some(r) = row.remove("sample_ref") {
                        assert_eq!(r.is_empty(), !archive, "{view}: sample_ref set only with the archive on");
                    }
                    (k, row)
                })
                .collect()
        };
        let (a, b) = (strip(table(&on, view), true), strip(table(&off, view), false));
        assert!(a.len() >= usize::from(has_rows), "{view}");
        assert_eq!(a, b, "{view}");
    }
    // The same final windows of the views, too (the sample aside).
    let finals = |reports: &[EpochReport]| -> BTreeMap<(String, EventTime), usize> {
        reports.iter().flat_map(|r| r.finals.iter()).filter(|f| !f.view.starts_with("raw/")).map(|f| ((f.view.to_string(), f.window_start), f.rows.num_rows())).collect()
    };
    assert_eq!(finals(&on), finals(&off));
}

/// The sample of an aggregate does not depend on how calls are grouped and merged, and is the
/// smallest span with a net call (or none, when every kept candidate was taken back).
#[test]
fn call_samples_are_order_independent_and_retractable() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
    for _ in 0..300 {
        let spans: Vec<SpanRef> = (0..rng.random_range(1..12u8)).map(|i| SpanRef { ts: rng.random_range(0..5), trace_id: [rng.random_range(0..3); 16], span_id: [i; 8] }).collect();
        // Every span is added once or twice; some additions are taken back.
        let mut calls: Vec<(SpanRef, i32)> = Vec::new();
        for s in &spans {
            for _ in 0..rng.random_range(1..3) {
                calls.push((*s, 1));
                if rng.random_bool(0.3) {
                    calls.push((*s, -1));
                }
            }
        }
        let net: BTreeMap<SpanRef, i32> = calls.iter().fold(BTreeMap::new(), |mut m, (s, d)| {
            *m.entry(*s).or_default() += d;
            m
        });
        let exact = net.iter().find(|(_, n)| **n > 0).map(|(s, _)| *s);
        let mut results = BTreeSet::new();
        for _ in 0..6 {
            calls.shuffle(&mut rng);
            // Random groups, each folded, then merged in a random order.
            let mut groups: Vec<CallSamples> = Vec::new();
            for chunk in calls.chunks(rng.random_range(1..5)) {
                let mut g = CallSamples::default();
                for (s, d) in chunk {
                    g.add(*s, *d);
                }
                groups.push(g);
            }
            groups.shuffle(&mut rng);
            let mut all = CallSamples::default();
            for g in &groups {
                all.merge(g);
            }
            results.insert(all.sample());
        }
        assert_eq!(results.len(), 1, "{calls:?}: {results:?}");
        let got = results.into_iter().next().flatten();
        match got {
            Some(s) => assert_eq!(Some(s), exact),
            // None only when the few smallest spans (the kept candidates) were all taken back.
            None => assert!(net.values().take(4).all(|n| *n <= 0), "{net:?}"),
        }
    }
}
