//! The span views through the whole dataflow (decode -> pairing -> service_call_5m, the live
//! graph, blast_radius): the OpenTelemetry Collector's servicegraph fixtures, and properties
//! (arrival order, batching and worker count do not change the result; incremental equals a
//! from-scratch computation at every epoch).

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use observebridge_dataflows::decode::DecodeConfig;
use observebridge_dataflows::engine::{run_epochs, EngineConfig, EpochInput, EpochReport, MetaEvent, ServiceCallConfig};
use observebridge_dataflows::pairing::{CallerNaming, PairingConfig};
use observebridge_dataflows::record::{Encoding, EventTime, Origin, RawMessage, Signal, WireFormat};
use observebridge_dataflows::views::call_graph_active::CallGraphConfig;
use observebridge_dataflows::views::service_call_5m::{CallPart, CallStats, ConnectionType, ServiceCall5mRow};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span as PbSpan, Status};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;

const T0: EventTime = 1_800_000_000_000; // a 5-minute boundary
const WINDOW: i64 = 300_000;

fn config(caller: CallerNaming) -> EngineConfig {
    EngineConfig {
        lateness_ms: 120_000,
        raw_archive: None,
        decode: DecodeConfig::default(),
        metric_1m: None,
        service_call: Some(ServiceCallConfig {
            pairing: PairingConfig { wait_ms: 10_000, window_ms: WINDOW, caller },
            graph: CallGraphConfig::default(),
            max_hops: 16,
        }),
        log_pattern: None,
        changes: None,
    }
}

/// The current contents of a view after applying every epoch's upserts and deletes.
type Table = BTreeMap<Vec<String>, Vec<String>>;

/// Cells as text; timestamps as their raw microseconds ("" when null).
fn cells(batch: &RecordBatch, row: usize, columns: &[usize]) -> Vec<String> {
    columns
        .iter()
        .map(|&c| {
            let col = batch.column(c);
            match col.data_type() {
                arrow::datatypes::DataType::Timestamp(..) => {
                    let ts = col.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
                    if ts.is_null(row) { String::new() } else { ts.value(row).to_string() }
                }
                _ => array_value_to_string(col, row).expect("cell"),
            }
        })
        .collect()
}

fn apply(table: &mut Table, report: &EpochReport, view: &str) {
    for change in report.views.iter().filter(|v| v.view == view) {
        let schema = change.upserts.schema();
        let keys: Vec<usize> = change.key_columns.iter().map(|k| schema.index_of(k).expect("key")).collect();
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        for row in 0..change.deletes.num_rows() {
            let key_idx: Vec<usize> = (0..change.deletes.num_columns()).collect();
            table.remove(&cells(&change.deletes, row, &key_idx));
        }
        for row in 0..change.upserts.num_rows() {
            table.insert(cells(&change.upserts, row, &keys), cells(&change.upserts, row, &all));
        }
    }
}

fn final_table(reports: &[EpochReport], view: &str) -> Table {
    let mut table = Table::new();
    for r in reports {
        apply(&mut table, r, view);
    }
    table
}

// ---------------------------------------------------------------------------------------------
// The Collector's servicegraph fixtures.

fn shared(path: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/otlp/collector-contrib-servicegraph")).join(path);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

fn fixture_message(path: &std::path::Path) -> RawMessage {
    let yaml: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("yaml");
    RawMessage { origin: Origin { partition: 0, offset: 0 }, encoding: Encoding::new(Signal::Spans, WireFormat::OtlpJson), payload: serde_json::to_vec(&yaml).expect("json") }
}

fn one_shot(caller: CallerNaming, messages: Vec<RawMessage>) -> Vec<EpochReport> {
    let epochs: Vec<EpochInput> = vec![
        (messages, vec![MetaEvent::Register { partition: 0, max_ts: None }]),
        (Vec::new(), vec![MetaEvent::Ended { partition: 0 }]),
    ];
    run_epochs(&config(caller), 1, epochs).expect("run")
}

/// `(client, server, connection_type) -> (requests, failed)` from a Collector expected-metrics file.
fn expected_edges(path: &std::path::Path) -> BTreeMap<(String, String, String), (f64, f64)> {
    let doc: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("expected")).expect("yaml");
    let mut edges = BTreeMap::new();
    for rm in doc["resourceMetrics"].as_array().into_iter().flatten() {
        for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
            for m in sm["metrics"].as_array().into_iter().flatten() {
                let name = m["name"].as_str().unwrap_or_default();
                if name != "traces_service_graph_request_total" && name != "traces_service_graph_request_failed_total" {
                    continue;
                }
                for dp in m["sum"]["dataPoints"].as_array().into_iter().flatten() {
                    let attr = |k: &str| {
                        dp["attributes"].as_array().into_iter().flatten().find(|a| a["key"] == k).map(|a| a["value"]["stringValue"].as_str().unwrap_or_default().to_owned()).unwrap_or_default()
                    };
                    let n: f64 = dp["asInt"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0);
                    let entry = edges.entry((attr("client"), attr("server"), attr("connection_type"))).or_insert((0.0, 0.0));
                    if name.ends_with("failed_total") { entry.1 += n } else { entry.0 += n }
                }
            }
        }
    }
    edges
}

/// Our `service_call_5m` rows in the Collector's terms.
fn our_edges(reports: &[EpochReport]) -> BTreeMap<(String, String, String), (f64, f64)> {
    let collector_name = |urn: &str| match urn {
        "urn:ext:user" => "user".to_owned(),
        "urn:ext:unknown" => "unknown".to_owned(),
        other => other.strip_prefix("urn:k8s:svc:default/").unwrap_or(other).to_owned(),
    };
    let mut edges = BTreeMap::new();
    for (_, row) in final_table(reports, "service_call_5m") {
        // bucket, tenant, src, dst, connection_type, calls, errors, ...
        let ct = if row[4] == "direct" { String::new() } else { row[4].clone() };
        edges.insert((collector_name(&row[2]), collector_name(&row[3]), ct), (row[5].parse().expect("calls"), row[6].parse().expect("errors")));
    }
    edges
}

#[test]
fn collector_servicegraph_fixtures_give_the_collectors_edges() {
    for (trace, expected) in [
        ("virtual-node-label-trace.yaml", "virtual-node-label-expected-metrics.yaml"),
        ("messaging-system-trace.yaml", "messaging-system-trace-expected-metrics.yaml"),
    ] {
        let (Some(trace), Some(expected)) = (shared(trace), shared(expected)) else { return };
        let reports = one_shot(CallerNaming::User, vec![fixture_message(&trace)]);
        assert!(reports.iter().all(|r| r.dead_letters.is_empty()), "{:?}", reports.iter().flat_map(|r| &r.dead_letters).collect::<Vec<_>>());
        assert_eq!(our_edges(&reports), expected_edges(&expected), "{}", trace.display());
    }
}

#[test]
fn peer_naming_goes_past_the_collector_for_uninstrumented_callers() {
    let Some(trace) = shared("virtual-node-label-trace.yaml") else { return };
    let reports = one_shot(CallerNaming::Peer, vec![fixture_message(&trace)]);
    let edges: BTreeSet<_> = our_edges(&reports).into_keys().collect();
    assert!(edges.contains(&("external-platform".into(), "bar-requester".into(), "virtual_node".into())), "{edges:?}");
    assert!(edges.contains(&("foo-server".into(), "unknown".into(), "virtual_node".into())), "{edges:?}");
}

#[test]
fn database_attributes_on_the_collectors_queue_db_fixture() {
    // foo-server's CLIENT span (with messaging.system) is the parent of bar-requester's SERVER
    // span (with db.system): they pair, so the edge is direct between the two services.
    let Some(trace) = shared("extra-dimensions-queue-db-trace.yaml") else { return };
    let reports = one_shot(CallerNaming::Peer, vec![fixture_message(&trace)]);
    let edges: BTreeSet<_> = our_edges(&reports).into_keys().collect();
    assert_eq!(edges, BTreeSet::from([("foo-server".into(), "bar-requester".into(), String::new())]));
}

// ---------------------------------------------------------------------------------------------
// Synthetic traces.

#[derive(Clone, Debug)]
struct TSpan {
    service: &'static str,
    trace: u32,
    id: u8,
    parent: Option<u8>,
    kind: span::SpanKind,
    end_ms: EventTime,
    duration_ms: i64,
    error: bool,
    db: Option<&'static str>,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }), ..Default::default() }
}

fn trace_id(trace: u32) -> Vec<u8> {
    let mut id = vec![0xab; 16];
    id[12..].copy_from_slice(&trace.to_be_bytes());
    id
}

fn span_id(trace: u32, id: u8) -> Vec<u8> {
    let mut out = vec![0xcd; 8];
    out[3..7].copy_from_slice(&trace.to_be_bytes());
    out[7] = id;
    out
}

/// One OTLP protobuf message holding one span.
fn encode(s: &TSpan) -> Vec<u8> {
    let end_ns = (s.end_ms as u64) * 1_000_000;
    let mut attributes = Vec::new();
    if let Some(db) = s.db {
        attributes.push(kv("db.system", "postgresql"));
        attributes.push(kv("db.name", db));
    }
    let pb = PbSpan {
        trace_id: trace_id(s.trace),
        span_id: span_id(s.trace, s.id),
        parent_span_id: s.parent.map(|p| span_id(s.trace, p)).unwrap_or_default(),
        name: "op".into(),
        kind: s.kind as i32,
        start_time_unix_nano: end_ns - (s.duration_ms as u64) * 1_000_000,
        end_time_unix_nano: end_ns,
        attributes,
        status: s.error.then(|| Status { code: status::StatusCode::Error as i32, message: String::new() }),
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![kv("service.name", s.service), kv("k8s.namespace.name", "shop")], ..Default::default() }),
            scope_spans: vec![ScopeSpans { spans: vec![pb], ..Default::default() }],
            ..Default::default()
        }],
    };
    prost::Message::encode_to_vec(&request)
}

/// A trace: frontend (root SERVER) -> client -> checkout SERVER -> client -> a random next hop
/// (cart, or a database client span), with random errors and durations.
fn make_traces(seed: u64, count: u32, spread_ms: i64) -> Vec<TSpan> {
    use rand::Rng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut spans = Vec::new();
    for trace in 0..count {
        let t = T0 + rng.random_range(0..spread_ms);
        let err = |rng: &mut rand_chacha::ChaCha8Rng| rng.random_bool(0.2);
        let d = |rng: &mut rand_chacha::ChaCha8Rng| rng.random_range(1..500i64);
        spans.push(TSpan { service: "frontend", trace, id: 1, parent: None, kind: span::SpanKind::Server, end_ms: t + 900, duration_ms: d(&mut rng), error: false, db: None });
        spans.push(TSpan { service: "frontend", trace, id: 2, parent: Some(1), kind: span::SpanKind::Client, end_ms: t + 800, duration_ms: d(&mut rng), error: err(&mut rng), db: None });
        spans.push(TSpan { service: "checkout", trace, id: 3, parent: Some(2), kind: span::SpanKind::Server, end_ms: t + 700, duration_ms: d(&mut rng), error: err(&mut rng), db: None });
        match rng.random_range(0..3) {
            0 => spans.push(TSpan { service: "checkout", trace, id: 4, parent: Some(3), kind: span::SpanKind::Client, end_ms: t + 600, duration_ms: d(&mut rng), error: err(&mut rng), db: Some("orders") }),
            1 => {
                spans.push(TSpan { service: "checkout", trace, id: 4, parent: Some(3), kind: span::SpanKind::Client, end_ms: t + 600, duration_ms: d(&mut rng), error: false, db: None });
                spans.push(TSpan { service: "cart", trace, id: 5, parent: Some(4), kind: span::SpanKind::Server, end_ms: t + 500, duration_ms: d(&mut rng), error: err(&mut rng), db: None });
            }
            _ => {}
        }
    }
    spans.sort_by_key(|s| (s.end_ms, s.trace, s.id));
    spans
}

/// Shuffles within consecutive chunks of `chunk_ms` of event time (bounded disorder: less than
/// the lateness, so no span is late and no partner arrives after its wait).
fn shuffle_in_chunks(spans: &mut [TSpan], chunk_ms: i64, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut start = 0;
    while start < spans.len() {
        let chunk = (spans[start].end_ms - T0).div_euclid(chunk_ms);
        let end = start + spans[start..].iter().take_while(|s| (s.end_ms - T0).div_euclid(chunk_ms) == chunk).count();
        spans[start..end].shuffle(&mut rng);
        start = end;
    }
}

/// Cuts spans (one message each, over `partitions` partitions) into epochs of the given sizes.
fn epochs(spans: &[TSpan], partitions: u32, sizes: &[usize]) -> Vec<EpochInput> {
    let mut offsets = vec![0u64; partitions as usize];
    let mut messages: Vec<RawMessage> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let partition = (i as u32 * 7 + s.trace) % partitions;
            let offset = offsets[partition as usize];
            offsets[partition as usize] += 1;
            RawMessage { origin: Origin { partition, offset }, encoding: Encoding::new(Signal::Spans, WireFormat::OtlpProto), payload: encode(s) }
        })
        .collect();
    messages.reverse();
    let mut out: Vec<EpochInput> = Vec::new();
    let mut first = true;
    let mut i = 0;
    while !messages.is_empty() {
        let n = sizes[i % sizes.len()].max(1).min(messages.len());
        i += 1;
        let batch: Vec<RawMessage> = (0..n).filter_map(|_| messages.pop()).collect();
        let meta = if first { (0..partitions).map(|p| MetaEvent::Register { partition: p, max_ts: None }).collect() } else { Vec::new() };
        first = false;
        out.push((batch, meta));
    }
    out.push((Vec::new(), (0..partitions).map(|p| MetaEvent::Ended { partition: p }).collect()));
    out
}

/// The from-scratch `service_call_5m` of the spans that have arrived, under watermark `wm`:
/// pairs whose two spans have arrived, virtual edges for clients without an arrived server whose
/// wait has passed, and `user` for root servers — aggregated per window and edge.
fn from_scratch(arrived: &[TSpan], wm: Option<EventTime>) -> Table {
    let urn = |s: &str| format!("urn:k8s:svc:shop/{s}");
    let by_id: BTreeMap<(u32, u8), &TSpan> = arrived.iter().map(|s| ((s.trace, s.id), s)).collect();
    let mut stats: BTreeMap<(EventTime, String, String, ConnectionType), CallStats> = BTreeMap::new();
    let mut add = |ts: EventTime, src: String, dst: String, ct, part: CallPart| {
        stats.entry((ts.div_euclid(WINDOW) * WINDOW, src, dst, ct)).or_default().fold(&part);
    };
    for s in arrived {
        let part = |latency: i64, server: Option<i64>, error: bool| CallPart { diff: 1, weight: 1.0, error, latency_ms: latency as f64, server_ms: server.map(|v| v as f64) };
        match s.kind {
            span::SpanKind::Server => match s.parent {
                None => add(s.end_ms, "urn:ext:user".into(), urn(s.service), ConnectionType::VirtualNode, part(s.duration_ms, Some(s.duration_ms), s.error)),
                Some(p) => {
                    if let Some(c) = by_id.get(&(s.trace, p)) {
                        add(c.end_ms, urn(c.service), urn(s.service), ConnectionType::Direct, part(c.duration_ms, Some(s.duration_ms), c.error || s.error));
                    }
                }
            },
            span::SpanKind::Client => {
                let has_server = arrived.iter().any(|x| x.trace == s.trace && x.parent == Some(s.id) && x.kind == span::SpanKind::Server);
                if !has_server && wm.is_some_and(|w| w >= s.end_ms + 10_000) {
                    let (dst, ct) = match s.db {
                        Some(db) => (format!("urn:db:postgresql/{db}"), ConnectionType::Database),
                        None => ("urn:ext:unknown".to_owned(), ConnectionType::VirtualNode),
                    };
                    add(s.end_ms, urn(s.service), dst, ct, part(s.duration_ms, None, s.error));
                }
            }
            _ => {}
        }
    }
    let mut table = Table::new();
    for ((bucket, src, dst, ct), st) in stats {
        let Some(row) = ServiceCall5mRow::from_stats(bucket, WINDOW, &("default".into(), src, dst, ct), &st) else { continue };
        let batch = <ServiceCall5mRow as observebridge_dataflows::views::ViewRow>::to_batch(&[&row]).expect("batch");
        let all: Vec<usize> = (0..batch.num_columns()).collect();
        table.insert(cells(&batch, 0, &[0, 1, 2, 3, 4]), cells(&batch, 0, &all));
    }
    table
}

/// Runs the spans and checks, at every epoch, the incremental view against [`from_scratch`].
fn run_and_check(spans: &[TSpan], partitions: u32, sizes: &[usize], workers: usize) -> Table {
    let input = epochs(spans, partitions, sizes);
    // Which spans arrive by the end of each epoch.
    let mut arrived_by_epoch = Vec::new();
    let mut count = 0usize;
    for (raw, _) in &input {
        count += raw.len();
        arrived_by_epoch.push(count);
    }
    let reports = run_epochs(&config(CallerNaming::Peer), workers, input).expect("run");
    assert!(reports.iter().all(|r| r.dead_letters.is_empty()), "{:?}", reports.iter().flat_map(|r| &r.dead_letters).next());
    let mut table = Table::new();
    let mut wm: Option<EventTime> = None;
    let last_epoch = reports.iter().map(|r| r.epoch).max().unwrap_or(0);
    for epoch in 0..=last_epoch {
        for r in reports.iter().filter(|r| r.epoch == epoch) {
            apply(&mut table, r, "service_call_5m");
            wm = wm.max(r.watermark);
        }
        let expected = from_scratch(&spans[..arrived_by_epoch[epoch as usize]], wm);
        assert_eq!(table, expected, "epoch {epoch} (watermark {wm:?})");
    }
    table
}

#[test]
fn every_edge_kind_in_the_views_and_the_graph() {
    let spans = make_traces(1, 40, 20 * 60_000);
    let input = epochs(&spans, 2, &[17]);
    let reports = run_epochs(&config(CallerNaming::Peer), 2, input).expect("run");
    let calls = final_table(&reports, "service_call_5m");
    let edges: BTreeSet<(String, String, String)> = calls.values().map(|r| (r[2].clone(), r[3].clone(), r[4].clone())).collect();
    assert!(edges.contains(&("urn:ext:user".into(), "urn:k8s:svc:shop/frontend".into(), "virtual_node".into())));
    assert!(edges.contains(&("urn:k8s:svc:shop/frontend".into(), "urn:k8s:svc:shop/checkout".into(), "direct".into())));
    assert!(edges.contains(&("urn:k8s:svc:shop/checkout".into(), "urn:db:postgresql/orders".into(), "database".into())));
    // The whole input ended: every edge went idle, so the live graph is empty and every
    // validity interval is closed (and was written as final).
    assert!(final_table(&reports, "call_graph_active").is_empty());
    let topo = final_table(&reports, "topo_edge_time");
    assert!(!topo.is_empty() && topo.values().all(|r| r[5] != ""), "{topo:?}");
    let finals: usize = reports.iter().flat_map(|r| &r.finals).filter(|f| f.view == "topo_edge_time").map(|f| f.rows.num_rows()).sum();
    assert_eq!(finals, topo.len());
    assert!(final_table(&reports, "blast_radius").is_empty(), "no active edge, no reach");
    let counters: BTreeMap<&str, u64> = reports.iter().filter(|r| r.epoch == reports.last().map_or(0, |l| l.epoch)).flat_map(|r| r.counters.iter().copied()).fold(BTreeMap::new(), |mut m, (k, v)| {
        *m.entry(k).or_default() += v;
        m
    });
    assert_eq!(counters["pairing.waiting"], 0, "no span is held at the end");
    assert_eq!(counters["pairing.late"], 0);
}

#[test]
fn live_graph_and_blast_radius_while_edges_are_active() {
    let spans = make_traces(2, 30, 60_000);
    let mut input = epochs(&spans, 1, &[1000]);
    input.pop(); // no end of input: the watermark stays behind, edges stay active
    // Let time pass far enough for virtual edges to be made (a later span from the same
    // partition moves the watermark), but not for edges to go idle.
    let later = TSpan { service: "frontend", trace: 9999, id: 1, parent: None, kind: span::SpanKind::Server, end_ms: T0 + 60_000 + 120_000 + 20_000, duration_ms: 1, error: false, db: None };
    input.push((vec![RawMessage { origin: Origin { partition: 0, offset: 10_000 }, encoding: Encoding::new(Signal::Spans, WireFormat::OtlpProto), payload: encode(&later) }], Vec::new()));
    let reports = run_epochs(&config(CallerNaming::Peer), 2, input).expect("run");
    let active = final_table(&reports, "call_graph_active");
    let keys: BTreeSet<(String, String)> = active.values().map(|r| (r[1].clone(), r[2].clone())).collect();
    assert!(keys.contains(&("urn:k8s:svc:shop/frontend".into(), "urn:k8s:svc:shop/checkout".into())), "{keys:?}");
    assert!(keys.contains(&("urn:k8s:svc:shop/checkout".into(), "urn:db:postgresql/orders".into())), "{keys:?}");
    let open = final_table(&reports, "topo_edge_time");
    assert!(open.values().all(|r| r[5] == ""), "active edges have open intervals: {open:?}");
    let reach: BTreeMap<(String, String, String), String> =
        final_table(&reports, "blast_radius").into_values().map(|r| ((r[1].clone(), r[2].clone(), r[3].clone()), r[4].clone())).collect();
    let svc = |s: &str| format!("urn:k8s:svc:shop/{s}");
    assert_eq!(reach.get(&(svc("frontend"), "downstream".into(), svc("checkout"))).map(String::as_str), Some("1"));
    assert_eq!(reach.get(&(svc("frontend"), "downstream".into(), svc("cart"))).map(String::as_str), Some("2"));
    assert_eq!(reach.get(&(svc("frontend"), "downstream".into(), "urn:db:postgresql/orders".into())).map(String::as_str), Some("2"));
    assert_eq!(reach.get(&("urn:db:postgresql/orders".into(), "upstream".into(), "urn:ext:user".into())).map(String::as_str), Some("3"), "blast radius of the database reaches the users");
    assert_eq!(reach.get(&(svc("cart"), "upstream".into(), svc("frontend"))).map(String::as_str), Some("2"));
    assert!(!reach.contains_key(&(svc("cart"), "downstream".into(), svc("frontend"))));
}

#[test]
fn order_batching_and_workers_do_not_change_the_result() {
    let spans = make_traces(3, 60, 20 * 60_000);
    let mut shuffled = spans.clone();
    shuffle_in_chunks(&mut shuffled, 60_000, 3);
    let a = run_and_check(&spans, 1, &[1000], 1);
    let b = run_and_check(&shuffled, 3, &[7, 1, 30], 4);
    let c = run_and_check(&shuffled, 2, &[1], 2);
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a, from_scratch(&spans, Some(EventTime::MAX)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_from_scratch(seed in 0u64..10_000, traces in 1u32..40, sizes in proptest::collection::vec(1usize..40, 1..4), workers in 1usize..4, partitions in 1u32..4) {
        let mut spans = make_traces(seed, traces, 15 * 60_000);
        shuffle_in_chunks(&mut spans, 60_000, seed);
        let table = run_and_check(&spans, partitions, &sizes, workers);
        prop_assert_eq!(table, from_scratch(&spans, Some(EventTime::MAX)));
    }
}

#[test]
fn sampling_multiplier_scales_calls_and_errors() {
    let s = TSpan { service: "frontend", trace: 1, id: 1, parent: None, kind: span::SpanKind::Server, end_ms: T0 + 1000, duration_ms: 5, error: true, db: None };
    let mut payload_req: ExportTraceServiceRequest = prost::Message::decode(encode(&s).as_slice()).expect("decode");
    payload_req.resource_spans[0].scope_spans[0].spans[0].attributes.push(KeyValue {
        key: "sampling.adjusted_count".into(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(20)) }),
        ..Default::default()
    });
    let msg = RawMessage { origin: Origin { partition: 0, offset: 0 }, encoding: Encoding::new(Signal::Spans, WireFormat::OtlpProto), payload: prost::Message::encode_to_vec(&payload_req) };
    let reports = one_shot(CallerNaming::Peer, vec![msg]);
    let changes: Vec<&RecordBatch> = reports.iter().flat_map(|r| &r.views).filter(|v| v.view == "service_call_5m").map(|v| &v.upserts).collect();
    let last = changes.last().expect("a row");
    let calls = last.column_by_name("calls").expect("calls").as_primitive::<Float64Type>().value(0);
    let errors = last.column_by_name("errors").expect("errors").as_primitive::<Float64Type>().value(0);
    let rps = last.column_by_name("rps").expect("rps").as_primitive::<Float64Type>().value(0);
    assert_eq!((calls, errors), (20.0, 20.0));
    assert!((rps - 20.0 / 300.0).abs() < 1e-12);
}
