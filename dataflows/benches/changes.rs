//! Kubernetes changes and change correlation at a realistic estate size: 500 services, 5,000
//! Deployments (10 per service), each with a ConfigMap.
//!
//! - `changes/detect`: watch events through decode + change detection (`change_event`) on one
//!   worker: 5,000 ADDED Deployments and ConfigMaps, then a stream of MODIFIED events of which
//!   60% are status-only (noise), 15% image bumps, 10% replica changes and 15% ConfigMap edits.
//!   Throughput in watch events per second.
//! - `suspect latency` (printed once): the same estate with traffic (a call tree over the 500
//!   services, 20 calls per edge and minute) through every view and correlation, one epoch per
//!   minute of event time, a bad deploy on one service at minute 30. Reported: the wall time from
//!   handing the dataflow the first minute of bad traffic to the epoch whose output holds the
//!   bad deploy as rank 1 of a regression, and the event time that had passed by then (the
//!   lateness and the minimum call volume set the floor).
//!
//! Run: `cargo bench -p observebridge-dataflows --bench changes`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use observebridge_dataflows::changes::ChangeConfig;
use observebridge_dataflows::decode::DecodeConfig;
use observebridge_dataflows::engine::{build, ChangesConfig, EngineConfig, EngineEvent, EpochInput, MetaEvent, ServiceCallConfig};
use observebridge_dataflows::pairing::{CallerNaming, PairingConfig};
use observebridge_dataflows::record::{Encoding, EventTime, Origin, RawMessage, Signal, WireFormat};
use observebridge_dataflows::views::call_graph_active::CallGraphConfig;
use observebridge_dataflows::views::correlation::CorrelationConfig;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span as PbSpan, Status};
use prost::Message as _;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERVICES: usize = 500;
const WORKLOADS_PER_SERVICE: usize = 10;
const T0: EventTime = 1_800_000_000_000;
const MIN: i64 = 60_000;

fn at(ms: EventTime) -> String {
    chrono::DateTime::from_timestamp_millis(ms).expect("time").to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn deployment(service: usize, workload: usize, rv: u64, ts: EventTime, version: u32, replicas: i64, status_gen: u64) -> Vec<u8> {
    let name = format!("svc-{service}-w{workload}");
    json!({"type": if rv as usize <= SERVICES * WORKLOADS_PER_SERVICE { "ADDED" } else { "MODIFIED" }, "object": {"kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": format!("ns-{}", service % 20), "uid": format!("uid-{name}"), "resourceVersion": rv.to_string(), "generation": version,
            "labels": {"app.kubernetes.io/name": format!("svc-{service}")}, "managedFields": [{"manager": "kubectl", "operation": "Update", "time": at(ts)}]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": format!("svc-{service}")}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": format!("svc-{service}")}}, "spec": {"containers": [{"name": "app", "image": format!("registry/svc-{service}:{version}"),
                "env": [{"name": "MODE", "value": "fast"}, {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": format!("svc-{service}-db"), "key": "password"}}}],
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}}]}}},
        "status": {"observedGeneration": status_gen, "replicas": replicas, "readyReplicas": replicas}}})
    .to_string()
    .into_bytes()
}

fn configmap(service: usize, workload: usize, rv: u64, ts: EventTime, value: u64, added: bool) -> Vec<u8> {
    let name = format!("svc-{service}-w{workload}-config");
    json!({"type": if added { "ADDED" } else { "MODIFIED" }, "object": {"kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": format!("ns-{}", service % 20), "resourceVersion": rv.to_string(), "labels": {"app": format!("svc-{service}")},
            "managedFields": [{"manager": "kubectl", "operation": "Update", "time": at(ts)}]},
        "data": {"retries": value.to_string(), "timeout": "30s", "feature.flags": "a,b,c"}}})
    .to_string()
    .into_bytes()
}

/// `n` watch events: the estate's ADDED objects, then a mix of MODIFIED ones.
fn watch_events(n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    let mut rv = 0u64;
    for s in 0..SERVICES {
        for w in 0..WORKLOADS_PER_SERVICE {
            rv += 1;
            out.push(deployment(s, w, rv, T0, 1, 3, 1));
        }
    }
    for s in 0..SERVICES {
        for w in 0..WORKLOADS_PER_SERVICE {
            rv += 1;
            out.push(configmap(s, w, rv, T0, 1, true));
        }
    }
    let mut versions = vec![1u32; SERVICES * WORKLOADS_PER_SERVICE];
    let mut i = 0usize;
    while out.len() < n {
        i += 1;
        rv += 1;
        let k = (i * 7919) % (SERVICES * WORKLOADS_PER_SERVICE);
        let (s, w) = (k / WORKLOADS_PER_SERVICE, k % WORKLOADS_PER_SERVICE);
        let ts = T0 + (i as i64) * 50;
        out.push(match i % 20 {
            0..12 => deployment(s, w, rv, ts, versions[k], 3, rv),
            12..15 => {
                versions[k] += 1;
                deployment(s, w, rv, ts, versions[k], 3, rv)
            }
            15..17 => deployment(s, w, rv, ts, versions[k], 3 + (i % 3) as i64, rv),
            _ => configmap(s, w, rv, ts, i as u64, false),
        });
    }
    out
}

fn k8s_epochs(events: &[Vec<u8>], per_epoch: usize) -> Vec<EpochInput> {
    let mut epochs: Vec<EpochInput> = vec![(Vec::new(), vec![MetaEvent::Register { partition: 0, max_ts: None }])];
    for (e, chunk) in events.chunks(per_epoch).enumerate() {
        let raw = chunk
            .iter()
            .enumerate()
            .map(|(i, p)| RawMessage { origin: Origin { partition: 0, offset: (e * per_epoch + i) as u64 }, encoding: Encoding::new(Signal::K8s, WireFormat::JsonLines), payload: p.clone() })
            .collect();
        epochs.push((raw, Vec::new()));
    }
    epochs.push((Vec::new(), vec![MetaEvent::Ended { partition: 0 }]));
    epochs
}

fn engine_config(correlation: bool) -> EngineConfig {
    EngineConfig {
        lateness_ms: 120_000,
        raw_archive: None,
        decode: DecodeConfig::default(),
        metric_1m: None,
        service_call: correlation.then(|| ServiceCallConfig {
            pairing: PairingConfig { wait_ms: 10_000, window_ms: 300_000, caller: CallerNaming::Peer },
            graph: CallGraphConfig::default(),
            max_hops: 16,
        }),
        log_pattern: None,
        changes: Some(ChangesConfig { detect: ChangeConfig::default(), correlation: correlation.then(|| CorrelationConfig { wait_ms: 10_000, ..CorrelationConfig::default() }) }),
    }
}

fn detect(c: &mut Criterion) {
    const EVENTS: usize = 100_000;
    let events = watch_events(EVENTS);
    let epochs = k8s_epochs(&events, 5_000);
    let config = engine_config(false);
    let mut group = c.benchmark_group("changes");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("detect", |b| {
        b.iter(|| {
            let reports = observebridge_dataflows::engine::run_epochs(&config, 1, epochs.clone()).expect("run");
            assert!(reports.iter().any(|r| r.views.iter().any(|v| v.view == "change_event")));
        })
    });
    group.finish();
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }), ..Default::default() }
}

/// One minute of calls over the call tree (service i calls 2i+1 and 2i+2), 20 per edge, one
/// message per caller; `bad` raises errors and latency of calls into it.
fn traffic(minute: i64, bad: Option<usize>, seq: &mut u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for caller in 0..SERVICES {
        let mut by_service: Vec<(usize, Vec<PbSpan>)> = Vec::new();
        for callee in [2 * caller + 1, 2 * caller + 2].into_iter().filter(|c| *c < SERVICES) {
            for i in 0..20u64 {
                *seq += 1;
                let n = *seq;
                let ts = (T0 + minute * MIN + (i as i64) * 2_900) as u64 * 1_000_000;
                let slow = bad == Some(callee);
                let error = slow && n % 4 == 0;
                let dur: u64 = if slow { 90 } else { 15 } * 1_000_000;
                let trace: Vec<u8> = n.to_le_bytes().into_iter().chain(n.to_be_bytes()).collect();
                let mk = |id: u8, parent: Option<u8>, kind: span::SpanKind| PbSpan {
                    trace_id: trace.clone(),
                    span_id: vec![id, 0, 0, 0, 0, 0, 0, 1],
                    parent_span_id: parent.map(|p| vec![p, 0, 0, 0, 0, 0, 0, 1]).unwrap_or_default(),
                    name: "call".into(),
                    kind: kind as i32,
                    start_time_unix_nano: ts - dur,
                    end_time_unix_nano: ts,
                    status: Some(Status { code: if error { status::StatusCode::Error as i32 } else { status::StatusCode::Ok as i32 }, ..Default::default() }),
                    ..Default::default()
                };
                by_service.push((caller, vec![mk(1, None, span::SpanKind::Client)]));
                by_service.push((callee, vec![mk(2, Some(1), span::SpanKind::Server)]));
            }
        }
        let resource_spans = by_service
            .into_iter()
            .map(|(s, spans)| ResourceSpans {
                resource: Some(Resource { attributes: vec![kv("service.name", &format!("svc-{s}")), kv("k8s.namespace.name", &format!("ns-{}", s % 20))], ..Default::default() }),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            })
            .collect();
        out.push(ExportTraceServiceRequest { resource_spans }.encode_to_vec());
    }
    out
}

/// The wall time from the first bad minute to the bad deploy's rank-1 suspect row.
fn suspect_latency() {
    const BAD_MINUTE: i64 = 30;
    const MINUTES: i64 = 42;
    let victim = 7usize;
    let config = engine_config(true);
    let (tx, rx) = crossbeam_channel::unbounded();
    let k8s = watch_events(SERVICES * WORKLOADS_PER_SERVICE * 2);
    let bad_deploy = deployment(victim, 0, 1_000_000, T0 + BAD_MINUTE * MIN, 99, 3, 1_000_000);
    let result = timely::execute(timely::Config::process(1), move |worker| {
        let (mut inputs, probe) = build(worker, &config, tx.clone());
        let mut seq = 0u64;
        let mut offsets = [0u64; 2];
        let send_meta = |inputs: &mut observebridge_dataflows::engine::Inputs, events: Vec<MetaEvent>| {
            for e in events {
                inputs.meta.send(e);
            }
        };
        send_meta(&mut inputs, vec![MetaEvent::Register { partition: 0, max_ts: None }, MetaEvent::Register { partition: 1, max_ts: None }]);
        let mut started: Option<Instant> = None;
        let mut found: Option<(Duration, i64)> = None;
        for minute in 0..MINUTES {
            let bad = (minute >= BAD_MINUTE).then_some(victim);
            for payload in traffic(minute, bad, &mut seq) {
                offsets[0] += 1;
                inputs.raw.send(RawMessage { origin: Origin { partition: 0, offset: offsets[0] }, encoding: Encoding::new(Signal::Spans, WireFormat::OtlpProto), payload });
            }
            let mut k8s_now = if minute == 0 { k8s.clone() } else { Vec::new() };
            if minute == BAD_MINUTE {
                k8s_now.push(bad_deploy.clone());
                started = Some(Instant::now());
            }
            let any = !k8s_now.is_empty();
            for payload in k8s_now {
                offsets[1] += 1;
                inputs.raw.send(RawMessage { origin: Origin { partition: 1, offset: offsets[1] }, encoding: Encoding::new(Signal::K8s, WireFormat::JsonLines), payload });
            }
            send_meta(&mut inputs, vec![MetaEvent::Idle { partition: 1, idle: !any }]);
            let next = inputs.raw.time() + 1;
            inputs.raw.advance_to(next);
            inputs.meta.advance_to(next);
            while probe.less_than(inputs.raw.time()) {
                worker.step();
            }
            if let Some(t) = started {
                for event in rx.try_iter() {
                    if let EngineEvent::Epoch(report) = event {
                        let rank1 = report.views.iter().filter(|v| v.view == "regression_suspect").any(|v| {
                            use arrow::array::AsArray;
                            let b = &v.upserts;
                            let (rank, change_type, changed) = (b.column_by_name("rank"), b.column_by_name("change_type"), b.column_by_name("changed_service"));
                            match (rank, change_type, changed) {
                                (Some(r), Some(t), Some(c)) => (0..b.num_rows()).any(|i| {
                                    r.as_primitive::<arrow::datatypes::Int64Type>().value(i) == 1
                                        && t.as_string::<i32>().value(i) == "image"
                                        && c.as_string::<i32>().value(i).ends_with(&format!("/svc-{victim}"))
                                }),
                                _ => false,
                            }
                        });
                        if rank1 && found.is_none() {
                            found = Some((t.elapsed(), minute - BAD_MINUTE + 1));
                        }
                    }
                }
            } else {
                rx.try_iter().for_each(drop);
            }
        }
        found
    })
    .expect("timely");
    let found = result.join().into_iter().next().and_then(|r| r.ok()).flatten();
    match found {
        Some((wall, minutes)) => println!(
            "suspect latency: {SERVICES} services, {} workloads: the bad deploy was rank 1 after {minutes} minutes of event time (lateness 2m + pairing wait + min calls), {:.0} ms of processing after its first bad minute was handed in",
            SERVICES * WORKLOADS_PER_SERVICE,
            wall.as_secs_f64() * 1000.0
        ),
        None => println!("suspect latency: the bad deploy was not ranked first within {} minutes", MINUTES - BAD_MINUTE),
    }
}

fn benches(c: &mut Criterion) {
    suspect_latency();
    detect(c);
}

criterion_group!(group, benches);
criterion_main!(group);
