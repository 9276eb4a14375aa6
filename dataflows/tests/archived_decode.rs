//! Archived records as engine input (`WireFormat::Archived`), what a replay over the raw archive
//! runs on. Real inputs of every signal (OTLP protobuf and JSON spans, metrics of every kind and
//! logs, JSON lines, Kubernetes watch events with a Secret) are decoded, turned into the raw
//! archive's Arrow rows (its own conversion), into archived payloads, and decoded again: the
//! records equal what the first decode produced. And the engine fed those payloads the way a
//! replay reads them (minute by minute, one partition per signal) computes the same view rows as
//! over the original messages.

mod common;

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;
use observebridge_dataflows::decode::archived;
use observebridge_dataflows::decode::k8s::{decode_k8s, K8sEvent, KeyedHasher};
use observebridge_dataflows::decode::{decode_logs, decode_metrics, decode_spans, DecodeConfig};
use observebridge_dataflows::engine::{run_epochs, ChangesConfig, EngineConfig, EpochInput, EpochReport, MetaEvent, ServiceCallConfig};
use observebridge_dataflows::pairing::{CallerNaming, PairingConfig};
use observebridge_dataflows::record::{Encoding, EventTime, LogRecord, MetricPoint, Observation, Origin, RawMessage, Signal, Span, WireFormat};
use observebridge_dataflows::views::call_graph_active::CallGraphConfig;
use observebridge_dataflows::views::log_pattern::LogPatternConfig;
use observebridge_dataflows::views::metric_1m::Metric1m;
use observebridge_dataflows::views::raw_archive::{object_key, ArchiveRow, RawArchiveConfig, MINUTE_MS};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as PbLog, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point, metric, number_data_point, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span as PbSpan, Status};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use common::table;

const T0: EventTime = 1_800_000_000_000; // a 5-minute boundary
const MIN: i64 = 60_000;
const SPREAD: i64 = 11 * MIN;
const CANARY: &str = "CANARY-archived-s3cr3t";

fn config() -> EngineConfig {
    EngineConfig {
        lateness_ms: 120_000,
        decode: DecodeConfig::default(),
        metric_1m: Some(Metric1m::default()),
        service_call: Some(ServiceCallConfig {
            pairing: PairingConfig { wait_ms: 10_000, window_ms: 300_000, caller: CallerNaming::Peer },
            graph: CallGraphConfig::default(),
            max_hops: 16,
        }),
        log_pattern: Some(LogPatternConfig::default()),
        changes: Some(ChangesConfig::default()),
        raw_archive: Some(RawArchiveConfig::default()),
    }
}

// ---------------------------------------------------------------------------------------------
// Real inputs.

/// One input message and the event time it sits at in the stream.
struct Msg {
    at: EventTime,
    encoding: Encoding,
    payload: Vec<u8>,
}

fn text(value: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) })
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: text(value), ..Default::default() }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource { attributes: vec![kv("service.name", service), kv("k8s.namespace.name", "shop"), kv("k8s.pod.name", &format!("{service}-7d9f"))], ..Default::default() })
}

fn nanos(ms: EventTime) -> u64 {
    u64::try_from(ms).expect("positive") * 1_000_000
}

fn ids(trace: u32, id: u8) -> (Vec<u8>, Vec<u8>) {
    let mut t = vec![0x5a; 16];
    t[12..].copy_from_slice(&trace.to_be_bytes());
    let mut s = vec![0x3c; 8];
    s[3..7].copy_from_slice(&trace.to_be_bytes());
    s[7] = id;
    (t, s)
}

struct SpanSpec {
    id: u8,
    parent: Option<u8>,
    kind: span::SpanKind,
    end: EventTime,
    duration_ms: i64,
    error: bool,
    attributes: Vec<KeyValue>,
}

/// One trace's spans of one service as an OTLP request, protobuf or JSON.
fn spans_msg(service: &str, trace: u32, specs: &[SpanSpec], json_encoded: bool) -> Msg {
    let spans = specs
        .iter()
        .map(|s| PbSpan {
            trace_id: ids(trace, 0).0,
            span_id: ids(trace, s.id).1,
            parent_span_id: s.parent.map(|p| ids(trace, p).1).unwrap_or_default(),
            name: format!("op-{}", s.id),
            kind: s.kind as i32,
            start_time_unix_nano: nanos(s.end - s.duration_ms) + 137,
            end_time_unix_nano: nanos(s.end),
            attributes: s.attributes.clone(),
            status: s.error.then(|| Status { code: status::StatusCode::Error as i32, message: "boom".into() }),
            ..Default::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans { resource: resource(service), scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() }],
    };
    let at = specs.iter().map(|s| s.end).max().expect("a span");
    if json_encoded {
        Msg { at, encoding: Encoding::new(Signal::Spans, WireFormat::OtlpJson), payload: serde_json::to_vec(&request).expect("json") }
    } else {
        Msg { at, encoding: Encoding::new(Signal::Spans, WireFormat::OtlpProto), payload: prost::Message::encode_to_vec(&request) }
    }
}

fn traces(rng: &mut rand_chacha::ChaCha8Rng, out: &mut Vec<Msg>) {
    use span::SpanKind::{Client, Server};
    for trace in 0..120u32 {
        let t = T0 + rng.random_range(0..SPREAD - 5_000);
        let mut d = || rng.random_range(1..300i64);
        let (d1, d2, d3, d4) = (d(), d(), d(), d());
        let error = rng.random_bool(0.2);
        let sampled = if trace % 5 == 0 { vec![KeyValue { key: "sampling.adjusted_count".into(), value: Some(AnyValue { value: Some(any_value::Value::IntValue(4)) }), ..Default::default() }] } else { Vec::new() };
        let frontend = [
            SpanSpec { id: 1, parent: None, kind: Server, end: t + 900, duration_ms: d1, error: false, attributes: vec![kv("client.address", "10.1.2.3")] },
            SpanSpec { id: 2, parent: Some(1), kind: Client, end: t + 800, duration_ms: d2, error, attributes: sampled.clone() },
        ];
        let mut checkout = vec![SpanSpec { id: 3, parent: Some(2), kind: Server, end: t + 700, duration_ms: d3, error, attributes: sampled }];
        checkout.push(match trace % 3 {
            0 => SpanSpec { id: 4, parent: Some(3), kind: Client, end: t + 600, duration_ms: d4, error: false, attributes: vec![kv("db.system", "postgresql"), kv("db.name", "orders")] },
            1 => SpanSpec { id: 4, parent: Some(3), kind: Client, end: t + 600, duration_ms: d4, error: false, attributes: vec![kv("server.address", "api.stripe.com"), kv("http.response.status_code", "503")] },
            _ => SpanSpec { id: 4, parent: Some(3), kind: span::SpanKind::Producer, end: t + 600, duration_ms: d4, error: false, attributes: vec![kv("messaging.system", "kafka"), kv("messaging.destination.name", "orders")] },
        });
        out.push(spans_msg("frontend", trace, &frontend, trace % 4 == 0));
        out.push(spans_msg("checkout", trace, &checkout, false));
    }
}

fn number(ts: EventTime, value: number_data_point::Value, route: &str) -> NumberDataPoint {
    NumberDataPoint { attributes: vec![kv("http.route", route)], time_unix_nano: nanos(ts), value: Some(value), ..Default::default() }
}

fn metrics(rng: &mut rand_chacha::ChaCha8Rng, out: &mut Vec<Msg>) {
    for i in 0..90u32 {
        let ts = T0 + rng.random_range(0..SPREAD);
        let service = ["checkout", "cart"][i as usize % 2];
        let count = rng.random_range(1..20u64);
        let data = vec![
            Metric { name: "cpu.utilization".into(), data: Some(metric::Data::Gauge(Gauge { data_points: vec![number(ts, number_data_point::Value::AsDouble(rng.random_range(0.0..1.0)), "/")] })), ..Default::default() },
            Metric {
                name: "http.requests".into(),
                data: Some(metric::Data::Sum(Sum { data_points: vec![number(ts, number_data_point::Value::AsInt(rng.random_range(0..10_000)), "/pay")], aggregation_temporality: 2, is_monotonic: true })),
                ..Default::default()
            },
            Metric {
                name: "http.server.duration".into(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: vec![kv("http.route", "/pay")],
                        time_unix_nano: nanos(ts),
                        count,
                        sum: Some(count as f64 * rng.random_range(1.0..40.0)),
                        bucket_counts: vec![count / 3, count / 3, count - 2 * (count / 3)],
                        explicit_bounds: vec![5.0, 25.0],
                        min: Some(0.7),
                        max: Some(61.3),
                        ..Default::default()
                    }],
                    aggregation_temporality: 1,
                })),
                ..Default::default()
            },
            Metric {
                name: "rpc.duration".into(),
                data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        time_unix_nano: nanos(ts),
                        count: 7,
                        sum: Some(0.1 + 0.2 + rng.random_range(1.0..3.0)),
                        scale: 3,
                        zero_count: 1,
                        positive: Some(exponential_histogram_data_point::Buckets { offset: -2, bucket_counts: vec![1, 0, 3, 2] }),
                        ..Default::default()
                    }],
                    aggregation_temporality: 1,
                })),
                ..Default::default()
            },
        ];
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics { resource: resource(service), scope_metrics: vec![ScopeMetrics { metrics: data, ..Default::default() }], ..Default::default() }],
        };
        out.push(Msg { at: ts, encoding: Encoding::new(Signal::Metrics, WireFormat::OtlpProto), payload: prost::Message::encode_to_vec(&request) });
    }
    for _ in 0..60 {
        let ts = T0 + rng.random_range(0..SPREAD);
        let payload = json!({"ts": ts, "resource": format!("urn:host:node-{}", rng.random_range(0..3)), "metric": "disk.used", "value": rng.random_range(-1e6..1e9), "labels": {"device": "sda,1"}});
        out.push(Msg { at: ts, encoding: Encoding::new(Signal::Metrics, WireFormat::JsonLines), payload: payload.to_string().into_bytes() });
    }
}

fn logs(rng: &mut rand_chacha::ChaCha8Rng, out: &mut Vec<Msg>) {
    type Family = (i32, fn(&mut rand_chacha::ChaCha8Rng) -> String);
    let families: [Family; 4] = [
        (9, |r| format!("user {} added item {} to cart", r.random_range(1..9999), r.random_range(1..500))),
        (17, |r| format!("connection refused to 10.0.{}.{}:5432 after {} retries", r.random_range(0..9), r.random_range(1..250), r.random_range(1..6))),
        (13, |r| format!("slow query on orders took {} ms", r.random_range(100..900))),
        (21, |r| format!("panic: index out of range [{}] with length {}", r.random_range(5..9), r.random_range(0..5))),
    ];
    for i in 0..80u32 {
        let ts = T0 + rng.random_range(0..SPREAD);
        let service = ["cart", "checkout", "auth"][i as usize % 3];
        let records = (0..3)
            .map(|k| {
                let (severity, make) = families[rng.random_range(0..families.len())];
                PbLog {
                    time_unix_nano: nanos(ts + k),
                    severity_number: severity,
                    body: text(&make(rng)),
                    trace_id: if k == 0 { ids(i, 0).0 } else { Vec::new() },
                    ..Default::default()
                }
            })
            .collect();
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs { resource: resource(service), scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }], ..Default::default() }],
        };
        out.push(Msg { at: ts, encoding: Encoding::new(Signal::Logs, WireFormat::OtlpProto), payload: prost::Message::encode_to_vec(&request) });
    }
    for _ in 0..60 {
        let ts = T0 + rng.random_range(0..SPREAD);
        let (level, make) = [("INFO", families[0].1), ("ERROR", families[1].1)][rng.random_range(0..2)];
        let payload = json!({"ts": ts, "service": "payments", "severity": level, "message": make(rng), "attributes": {"k8s.namespace.name": "shop"}});
        out.push(Msg { at: ts, encoding: Encoding::new(Signal::Logs, WireFormat::JsonLines), payload: payload.to_string().into_bytes() });
    }
}

fn rfc3339(ts: EventTime) -> String {
    chrono::DateTime::from_timestamp_millis(ts).expect("time").to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn watch(ts: EventTime, action: &str, kind: &str, name: &str, rv: u64, extra: serde_json::Value) -> Msg {
    let mut object = json!({"kind": kind, "apiVersion": "v1", "metadata": {
        "name": name, "namespace": "shop", "uid": format!("uid-{name}"), "resourceVersion": rv.to_string(),
        "labels": {"app.kubernetes.io/name": "payments"},
        "annotations": {"team": "payments", "vault.hashicorp.com/secret": CANARY},
        "creationTimestamp": "2027-01-15T08:00:00Z",
        "managedFields": [{"manager": "kubectl", "operation": "Update", "time": rfc3339(ts)}],
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

fn k8s(out: &mut Vec<Msg>) {
    let deployment = |image: &str, replicas: u32| {
        json!({"spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app.kubernetes.io/name": "payments"}}, "spec": {"containers": [{"name": "payments", "image": image,
            "env": [{"name": "API_TOKEN", "value": CANARY}, {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "payments-db", "key": "password"}}}],
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}}]}}}})
    };
    out.push(watch(T0 + 20_000, "ADDED", "Deployment", "payments", 101, deployment("registry/payments:1.0.0", 3)));
    out.push(watch(T0 + 40_000, "ADDED", "Secret", "payments-db", 102, json!({"type": "Opaque", "data": {"password": base64_of(CANARY)}, "stringData": {"token": CANARY}})));
    out.push(watch(T0 + 3 * MIN, "ADDED", "ConfigMap", "payments-config", 103, json!({"data": {"retries": "3", "password": CANARY}})));
    out.push(watch(T0 + 5 * MIN + 7_000, "MODIFIED", "Secret", "payments-db", 104, json!({"type": "Opaque", "data": {"password": base64_of(&format!("{CANARY}-2"))}})));
    out.push(watch(T0 + 6 * MIN, "MODIFIED", "Deployment", "payments", 105, deployment("registry/payments:2.0.0", 5)));
    let event = json!({"involvedObject": {"kind": "Pod", "namespace": "shop", "name": "payments-7d9f"}, "reason": "BackOff",
        "message": "Back-off restarting failed container payments", "type": "Warning", "count": 4, "lastTimestamp": rfc3339(T0 + 7 * MIN)});
    out.push(watch(T0 + 7 * MIN, "ADDED", "Event", "payments-7d9f.17a", 106, event));
    out.push(watch(T0 + 9 * MIN, "DELETED", "ConfigMap", "payments-config", 107, json!({"data": {"retries": "3"}})));
}

/// Signal -> partition, as the live run reads them (one Kafka topic per signal).
fn live_partition(signal: Signal) -> u32 {
    match signal {
        Signal::Metrics => 0,
        Signal::Spans => 1,
        Signal::Logs => 2,
        Signal::K8s => 3,
    }
}

/// The live input: every message in stream order (event time, shuffled within 5 s), with
/// Kafka-like origins.
fn live_messages(seed: u64) -> Vec<RawMessage> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut msgs = Vec::new();
    traces(&mut rng, &mut msgs);
    metrics(&mut rng, &mut msgs);
    logs(&mut rng, &mut msgs);
    k8s(&mut msgs);
    msgs.sort_by_key(|m| m.at);
    let mut start = 0;
    while start < msgs.len() {
        let chunk = (msgs[start].at - T0).div_euclid(5_000);
        let end = start + msgs[start..].iter().take_while(|m| (m.at - T0).div_euclid(5_000) == chunk).count();
        msgs[start..end].shuffle(&mut rng);
        start = end;
    }
    let mut offsets = [0u64; 4];
    msgs.into_iter()
        .map(|m| {
            let partition = live_partition(m.encoding.signal);
            let offset = offsets[partition as usize];
            offsets[partition as usize] += 1;
            RawMessage { origin: Origin { partition, offset }, encoding: m.encoding, payload: m.payload }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Decoding, archiving, replaying.

#[derive(Debug, Default, PartialEq)]
struct Records {
    points: Vec<MetricPoint>,
    spans: Vec<Span>,
    logs: Vec<LogRecord>,
    events: Vec<K8sEvent>,
}

impl Records {
    fn without_origins(mut self) -> Self {
        self.points.iter_mut().for_each(|r| r.origin = Origin::default());
        self.spans.iter_mut().for_each(|r| r.origin = Origin::default());
        self.logs.iter_mut().for_each(|r| r.origin = Origin::default());
        self.events.iter_mut().for_each(|r| r.origin = Origin::default());
        self
    }

    /// Sorted by the archive's total order over content, so two multisets compare equal.
    fn sorted(mut self) -> Self {
        MetricPoint::sort(&mut self.points);
        Span::sort(&mut self.spans);
        LogRecord::sort(&mut self.logs);
        K8sEvent::sort(&mut self.events);
        self
    }
}

/// Decodes every message with the engine's decoders; every message must decode cleanly.
fn decode_all(msgs: &[RawMessage]) -> Records {
    let cfg = DecodeConfig::default();
    let hasher = KeyedHasher::new(&cfg.secret_hash_key.0);
    let mut r = Records::default();
    for m in msgs {
        let errors = match m.encoding.signal {
            Signal::Metrics => {
                let mut e = Vec::new();
                decode_metrics(m, &cfg, &mut r.points, &mut e);
                e.iter().map(ToString::to_string).collect::<Vec<_>>()
            }
            Signal::Spans => {
                let mut e = Vec::new();
                decode_spans(m, &cfg, &mut r.spans, &mut e);
                e.iter().map(ToString::to_string).collect()
            }
            Signal::Logs => {
                let mut e = Vec::new();
                decode_logs(m, &cfg, &mut r.logs, &mut e);
                e.iter().map(ToString::to_string).collect()
            }
            Signal::K8s => {
                let mut e = Vec::new();
                decode_k8s(m, &cfg, &hasher, &mut r.events, &mut e);
                e.iter().map(ToString::to_string).collect()
            }
        };
        assert!(errors.is_empty(), "{:?} at {:?}: {errors:?}", m.encoding, m.origin);
    }
    r
}

/// One archive object: its key, signal and minute, and its rows as the archive writes them.
struct Object {
    key: String,
    signal: Signal,
    minute: EventTime,
    rows: RecordBatch,
}

fn objects_of<R: ArchiveRow + Clone>(records: &[R], ts: fn(&R) -> EventTime, out: &mut Vec<Object>) {
    let mut by_minute: BTreeMap<EventTime, Vec<R>> = BTreeMap::new();
    for r in records {
        by_minute.entry(ts(r).div_euclid(MINUTE_MS) * MINUTE_MS).or_default().push(r.clone());
    }
    for (minute, mut rows) in by_minute {
        R::sort(&mut rows);
        let batch = R::to_batch(&rows).expect("archive rows");
        assert_eq!(batch.schema(), R::schema());
        out.push(Object { key: object_key(R::SIGNAL, minute), signal: R::SIGNAL, minute, rows: batch });
    }
}

/// The raw archive of the decoded records (origins reset, as archived): one object per signal
/// and minute, in the order a replay reads them (by minute, then key).
fn archive(records: &Records) -> Vec<Object> {
    let mut out = Vec::new();
    objects_of(&records.points, |r| r.ts, &mut out);
    objects_of(&records.spans, |r| r.ts, &mut out);
    objects_of(&records.logs, |r| r.ts, &mut out);
    objects_of(&records.events, |r| r.ts, &mut out);
    out.sort_by(|a, b| (a.minute, &a.key).cmp(&(b.minute, &b.key)));
    out
}

/// The replay's messages: each row of each object one archived message, on the partition of its
/// signal (in the order the replay lists them), offset `(object index << 32) | row`.
fn replay_messages(objects: &[Object]) -> Vec<RawMessage> {
    let partition = |s: Signal| [Signal::Metrics, Signal::Spans, Signal::Logs, Signal::K8s].iter().position(|x| *x == s).expect("signal") as u32;
    let mut out = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let payloads = archived::payloads(object.signal, &object.rows).expect("payloads");
        assert_eq!(payloads.len(), object.rows.num_rows());
        for (row, payload) in payloads.into_iter().enumerate() {
            out.push(RawMessage {
                origin: Origin { partition: partition(object.signal), offset: ((i as u64) << 32) | row as u64 },
                encoding: Encoding::new(object.signal, WireFormat::Archived),
                payload,
            });
        }
    }
    out
}

fn epochs(msgs: &[RawMessage], size: usize) -> Vec<EpochInput> {
    let mut out: Vec<EpochInput> = vec![(Vec::new(), (0..4).map(|p| MetaEvent::Register { partition: p, max_ts: None }).collect())];
    out.extend(msgs.chunks(size).map(|c| (c.to_vec(), Vec::new())));
    out.push((Vec::new(), (0..4).map(|p| MetaEvent::Ended { partition: p }).collect()));
    out
}

// ---------------------------------------------------------------------------------------------
// Reading the reports.

/// The rows of the final windows of a view (or the archive objects of `raw/<signal>`).
fn finals(reports: &[EpochReport], view: &str) -> BTreeMap<EventTime, RecordBatch> {
    let mut out = BTreeMap::new();
    for r in reports {
        for f in r.finals.iter().filter(|f| f.view == view) {
            assert!(out.insert(f.window_start, f.rows.clone()).is_none(), "{view} {} final twice", f.window_start);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn archived_payloads_decode_to_the_records_of_the_original_decode() {
    let live = live_messages(11);
    let original = decode_all(&live).without_origins().sorted();
    assert!(original.points.iter().any(|p| matches!(p.value, Observation::Distribution { .. })) && original.points.iter().any(|p| matches!(p.value, Observation::Sample(_))));
    assert!(original.spans.iter().any(|s| s.peer.is_some()) && original.spans.iter().any(|s| s.weight > 1.0) && original.spans.iter().any(|s| s.error));
    assert!(original.logs.iter().any(|l| l.trace_id.is_some()) && original.events.iter().any(|e| e.kind.as_str() == "Secret"));
    assert_eq!(original.events.len(), 7);

    let objects = archive(&original);
    let replay = replay_messages(&objects);
    assert_eq!(replay.len(), original.points.len() + original.spans.len() + original.logs.len() + original.events.len());

    // Each archived message decodes to one record carrying the message's own origin ...
    let decoded = decode_all(&replay);
    let origins: Vec<Origin> = decoded.points.iter().map(|r| r.origin).chain(decoded.spans.iter().map(|r| r.origin)).chain(decoded.logs.iter().map(|r| r.origin)).chain(decoded.events.iter().map(|r| r.origin)).collect();
    let mut expected: Vec<Origin> = replay.iter().map(|m| m.origin).collect();
    let mut got = origins;
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    // ... and, origins aside, the records are exactly those of the original decode.
    let decoded = decoded.without_origins().sorted();
    assert_eq!(decoded.points, original.points);
    assert_eq!(decoded.spans, original.spans);
    assert_eq!(decoded.logs, original.logs);
    assert_eq!(decoded.events, original.events);
    // Floats bit for bit (`==` would accept -0.0 for 0.0).
    let bits = |p: &MetricPoint| match &p.value {
        Observation::Sample(v) => vec![v.to_bits()],
        Observation::Distribution { sum, buckets, .. } => std::iter::once(sum.to_bits()).chain(buckets.iter().map(|(v, _)| v.to_bits())).collect(),
    };
    assert_eq!(decoded.points.iter().map(bits).collect::<Vec<_>>(), original.points.iter().map(bits).collect::<Vec<_>>());
    assert_eq!(decoded.spans.iter().map(|s| s.duration_ms.to_bits()).collect::<Vec<_>>(), original.spans.iter().map(|s| s.duration_ms.to_bits()).collect::<Vec<_>>());

    // No Secret value reached a payload.
    assert!(replay.iter().all(|m| !String::from_utf8_lossy(&m.payload).contains(CANARY)));
    assert!(!replay.iter().any(|m| String::from_utf8_lossy(&m.payload).contains(&base64_of(CANARY))));
}

#[test]
fn a_damaged_archived_payload_is_a_decode_error_naming_the_signal() {
    let live = live_messages(3);
    let objects = archive(&decode_all(&live).without_origins().sorted());
    let mut replay = replay_messages(&objects);
    let cfg = DecodeConfig::default();
    let hasher = KeyedHasher::new(&cfg.secret_hash_key.0);
    for m in replay.iter_mut().filter(|m| m.origin.offset & 0xffff_ffff == 0) {
        m.payload.truncate(m.payload.len() - 1);
        let error = match m.encoding.signal {
            Signal::Metrics => {
                let mut e = Vec::new();
                decode_metrics(m, &cfg, &mut Vec::new(), &mut e);
                e.iter().map(ToString::to_string).collect::<Vec<_>>()
            }
            Signal::Spans => {
                let mut e = Vec::new();
                decode_spans(m, &cfg, &mut Vec::new(), &mut e);
                e.iter().map(ToString::to_string).collect()
            }
            Signal::Logs => {
                let mut e = Vec::new();
                decode_logs(m, &cfg, &mut Vec::new(), &mut e);
                e.iter().map(ToString::to_string).collect()
            }
            Signal::K8s => {
                let mut e = Vec::new();
                decode_k8s(m, &cfg, &hasher, &mut Vec::new(), &mut e);
                e.iter().map(ToString::to_string).collect()
            }
        };
        let prefix = match m.encoding.signal {
            Signal::Metrics => "archived metric point: ",
            Signal::Spans => "archived span: ",
            Signal::Logs => "archived log record: ",
            Signal::K8s => "archived k8s event: ",
        };
        assert_eq!(error.len(), 1, "{error:?}");
        assert!(error[0].starts_with(prefix), "{}", error[0]);
    }
}

#[test]
fn the_engine_over_archived_payloads_computes_the_live_rows() {
    let live = live_messages(29);
    let objects = archive(&decode_all(&live).without_origins().sorted());
    let replay = replay_messages(&objects);

    let live_reports = run_epochs(&config(), 1, epochs(&live, 23)).expect("live run");
    let replay_reports = run_epochs(&config(), 2, epochs(&replay, 97)).expect("replay run");
    for reports in [&live_reports, &replay_reports] {
        let dead: Vec<_> = reports.iter().flat_map(|r| &r.dead_letters).collect();
        assert!(dead.is_empty(), "{dead:?}");
    }
    for view in ["metric_1m", "service_call_5m", "log_pattern_5m", "log_pattern", "change_event", "topo_edge_time"] {
        let (a, b) = (table(&live_reports, view), table(&replay_reports, view));
        assert!(!a.is_empty(), "{view} is empty");
        assert_eq!(a, b, "{view}");
    }
    for view in ["metric_1m", "service_call_5m", "log_pattern_5m", "raw/spans", "raw/logs", "raw/metrics", "raw/k8s"] {
        let (a, b) = (finals(&live_reports, view), finals(&replay_reports, view));
        assert!(!a.is_empty(), "{view} has no final window");
        assert_eq!(a, b, "final windows of {view}");
    }
    // The replay archived exactly the objects it read.
    let archived: BTreeMap<(String, EventTime), RecordBatch> = objects.iter().map(|o| ((format!("raw/{}", o.signal.name()), o.minute), o.rows.clone())).collect();
    let rewritten: BTreeMap<(String, EventTime), RecordBatch> =
        replay_reports.iter().flat_map(|r| &r.finals).filter(|f| f.view.starts_with("raw/")).map(|f| ((f.view.to_string(), f.window_start), f.rows.clone())).collect();
    assert_eq!(rewritten, archived);
}

