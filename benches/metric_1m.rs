//! Decode + metric_1m throughput on one timely worker, on deterministic input.
//!
//! - `otlp_proto`: the generator's estate (20 services x 5 pods, OTLP protobuf, one message per
//!   pod and scrape: a delta histogram, a counter and two gauges), 30 minutes of event time.
//! - `json_lines`: 2,000 gauge series, one JSON line per point.
//!
//! Throughput is reported in metric points per second (decoded data points; a histogram point
//! counts once). Run: `cargo bench --bench metric_1m`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use observebridge_connectors::generator::{GeneratedSignal, Generator, GeneratorConfig, Pace};
use observebridge_connectors::source::{Poll, Source};
use observebridge_dataflows::decode::DecodeConfig;
use observebridge_dataflows::engine::{run_epochs, EngineConfig, EpochInput, MetaEvent};
use observebridge_dataflows::record::{Encoding, Origin, RawMessage, Signal, WireFormat};
use observebridge_dataflows::views::metric_1m::Metric1m;

const MESSAGES_PER_EPOCH: usize = 2_000;

/// The binary's allocator, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config() -> EngineConfig {
    EngineConfig { lateness_ms: 120_000, raw_archive: None, decode: DecodeConfig::default(), metric_1m: Some(Metric1m::default()), service_call: None, log_pattern: None, changes: None }
}

fn epochs(messages: Vec<RawMessage>) -> Vec<EpochInput> {
    let mut epochs: Vec<EpochInput> = vec![(Vec::new(), vec![MetaEvent::Register { partition: 0, max_ts: None }])];
    let mut messages = messages.into_iter().peekable();
    while messages.peek().is_some() {
        epochs.push((messages.by_ref().take(MESSAGES_PER_EPOCH).collect(), Vec::new()));
    }
    epochs.push((Vec::new(), vec![MetaEvent::Ended { partition: 0 }]));
    epochs
}

fn generator_input() -> Vec<EpochInput> {
    let cfg = GeneratorConfig {
        seed: 7,
        services: 20,
        pods_per_service: 5,
        start: Some("2026-11-20T00:00:00Z".parse().expect("start")),
        pace: Pace::Fast,
        duration: Some(Duration::from_secs(30 * 60)),
        signals: vec![GeneratedSignal::Metrics],
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(&cfg).expect("generator");
    let mut records = Vec::new();
    loop {
        let poll = generator.poll(10_000, Duration::ZERO, &mut records).expect("poll");
        if poll == Poll::Exhausted {
            break;
        }
    }
    let encoding = Encoding::new(Signal::Metrics, WireFormat::OtlpProto);
    epochs(records.into_iter().map(|r| RawMessage { origin: Origin { partition: 0, offset: r.offset }, encoding, payload: r.payload }).collect())
}

fn json_lines_input() -> Vec<EpochInput> {
    let encoding = Encoding::new(Signal::Metrics, WireFormat::JsonLines);
    let t0: i64 = 1_795_564_800_000;
    let mut messages = Vec::new();
    for step in 0..100i64 {
        for series in 0..2_000u64 {
            let payload = format!(
                r#"{{"ts":{},"resource":"urn:k8s:svc:shop/svc-{}","metric":"queue.depth","value":{},"labels":{{"pod":"pod-{}"}}}}"#,
                t0 + step * 15_000,
                series % 50,
                (series * 31 + step as u64 * 7) % 1000,
                series
            );
            messages.push(RawMessage { origin: Origin { partition: 0, offset: messages.len() as u64 }, encoding, payload: payload.into_bytes() });
        }
    }
    epochs(messages)
}

fn points(input: &[EpochInput]) -> u64 {
    run_epochs(&config(), 1, input.to_vec()).expect("run").iter().map(|r| r.decoded).sum()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_metric_1m_one_worker");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, input) in [("otlp_proto", generator_input()), ("json_lines", json_lines_input())] {
        group.throughput(Throughput::Elements(points(&input)));
        group.bench_function(name, |b| b.iter(|| run_epochs(&config(), 1, input.clone()).expect("run")));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
