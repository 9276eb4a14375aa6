//! Spans through decode + pairing + the span views, on one timely worker, and the memory that
//! pairing and the live graph hold.
//!
//! - `spans/generator`: the generator's estate (20 services, OTLP protobuf, one message per
//!   service and tick, spans of one trace in different messages), 10 minutes of event time,
//!   through decode -> pairing -> service_call_5m + call_graph_active + topo_edge_time +
//!   blast_radius. Throughput is in spans per second (decoded client/server/producer/consumer
//!   spans).
//! - `spans/pairing_only`: the same spans, already decoded, through the [`Pairer`] alone.
//! - memory: live heap bytes per waiting span (a client span held for its wait) and per active
//!   edge of the live graph, measured with a counting allocator; printed once per run.
//!
//! Run: `cargo bench --bench spans`.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use observebridge_connectors::generator::{GeneratedSignal, Generator, GeneratorConfig, Pace};
use observebridge_connectors::source::{Poll, Source};
use observebridge_dataflows::decode::{decode_spans, DecodeConfig};
use observebridge_dataflows::engine::{run_epochs, EngineConfig, EpochInput, MetaEvent, ServiceCallConfig};
use observebridge_dataflows::pairing::{Pairer, PairingConfig};
use observebridge_dataflows::record::{Encoding, Origin, RawMessage, Signal, Span, SpanKind, WireFormat};
use observebridge_dataflows::views::call_graph_active::{ActiveGraph, CallGraphConfig};
use observebridge_dataflows::views::service_call_5m::{Call, ConnectionType};

const MESSAGES_PER_EPOCH: usize = 500;

/// The binary's allocator, with a count of live bytes for the memory figures.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { INNER.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn config() -> EngineConfig {
    EngineConfig {
        lateness_ms: 120_000,
        raw_archive: None,
        decode: DecodeConfig::default(),
        metric_1m: None,
        service_call: Some(ServiceCallConfig { pairing: PairingConfig::default(), graph: CallGraphConfig::default(), max_hops: 16 }),
        log_pattern: None,
        changes: None,
    }
}

fn messages() -> Vec<RawMessage> {
    let cfg = GeneratorConfig {
        seed: 7,
        services: 20,
        start: Some("2026-11-20T00:00:00Z".parse().expect("start")),
        pace: Pace::Fast,
        duration: Some(Duration::from_secs(10 * 60)),
        signals: vec![GeneratedSignal::Spans],
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(&cfg).expect("generator");
    let mut records = Vec::new();
    while generator.poll(10_000, Duration::ZERO, &mut records).expect("poll") != Poll::Exhausted {}
    let encoding = Encoding::new(Signal::Spans, WireFormat::OtlpProto);
    records.into_iter().map(|r| RawMessage { origin: Origin { partition: 0, offset: r.offset }, encoding, payload: r.payload }).collect()
}

fn epochs(messages: &[RawMessage]) -> Vec<EpochInput> {
    let mut epochs: Vec<EpochInput> = vec![(Vec::new(), vec![MetaEvent::Register { partition: 0, max_ts: None }])];
    for chunk in messages.chunks(MESSAGES_PER_EPOCH) {
        epochs.push((chunk.to_vec(), Vec::new()));
    }
    epochs.push((Vec::new(), vec![MetaEvent::Ended { partition: 0 }]));
    epochs
}

fn decoded(messages: &[RawMessage]) -> Vec<Span> {
    let (mut spans, mut errors) = (Vec::new(), Vec::new());
    for m in messages {
        decode_spans(m, &DecodeConfig::default(), &mut spans, &mut errors);
    }
    assert!(errors.is_empty(), "{errors:?}");
    spans
}

fn memory_figures(spans: &[Span]) {
    // Waiting spans: client spans whose partner never comes, held for their wait. Measured from
    // before the spans are built, so their strings count; the input vector is freed by `arrive`.
    let before = LIVE.load(Ordering::Relaxed);
    let clients: Vec<Span> = spans.iter().filter(|s| s.kind == SpanKind::Client).take(50_000).cloned().collect();
    let n = clients.len();
    let mut pairer = Pairer::new(PairingConfig::default());
    let mut out = Vec::new();
    pairer.arrive(clients, &mut out);
    let held = LIVE.load(Ordering::Relaxed) - before;
    eprintln!("memory: {:.0} bytes per waiting span ({n} client spans held, {held} bytes live)", held as f64 / n as f64);
    drop(pairer);

    // Active edges: distinct edges of the live graph.
    let edges = 20_000usize;
    let before = LIVE.load(Ordering::Relaxed);
    let calls: Vec<Call> = (0..edges)
        .map(|i| Call {
            span_ids: ([0; 16], [0; 8]),
            tenant: "default".into(),
            src: format!("urn:k8s:svc:shop/service-{}", i / 20),
            dst: format!("urn:k8s:svc:shop/service-{}", i % 1000 + 1000),
            connection_type: ConnectionType::Direct,
            ts: 1_795_564_800_000 + (i as i64 % 60) * 1000,
            latency_ms: 1.0 + (i % 500) as f64,
            server_ms: Some(1.0),
            error: i % 17 == 0,
            weight: 1.0,
            diff: 1,
            origin: Origin::default(),
        })
        .collect();
    let mut graph = ActiveGraph::new(CallGraphConfig::default());
    let mut events = Vec::new();
    graph.step(calls, None, &mut events);
    drop(events);
    let held = LIVE.load(Ordering::Relaxed) - before;
    eprintln!("memory: {:.0} bytes per active edge ({edges} edges, {held} bytes live)", held as f64 / edges as f64);
}

fn bench(c: &mut Criterion) {
    let messages = messages();
    let spans = decoded(&messages);
    memory_figures(&spans);
    let input = epochs(&messages);
    let mut group = c.benchmark_group("spans");
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.sample_size(10);
    group.bench_function("generator", |b| {
        b.iter(|| run_epochs(&config(), 1, input.clone()).expect("run"));
    });
    group.bench_function("pairing_only", |b| {
        b.iter(|| {
            let mut pairer = Pairer::new(PairingConfig::default());
            let mut out = Vec::new();
            for chunk in spans.chunks(5_000) {
                pairer.arrive(chunk.to_vec(), &mut out);
                out.clear();
            }
            pairer.advance(i64::MAX, &mut out);
            out.len()
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
