//! Masking + template mining throughput on one core, on deterministic input.
//!
//! - `loghub_2k/all`: the eight Loghub 2k samples (HDFS, Hadoop, Spark, Zookeeper, BGL, Apache,
//!   OpenSSH, HealthApp), message contents split off with each system's header format
//!   beforehand; a fresh miner per system per iteration, so cluster creation is included.
//!   Skipped when `../shared/data/loghub_2k` is absent.
//! - `synthetic/steady`: 200,000 service log lines from 24 templates (plain text, logfmt and
//!   JSON lines, with ids, IPs, paths, durations, UUIDs, pod names), through a miner that has
//!   seen them once: the steady state of a tenant whose patterns are known.
//! - `synthetic/cold`: the same lines through a fresh miner each iteration.
//! - `synthetic/mask_only`: masking alone, for the split of the cost.
//! - `generator/cold`: the built-in generator's log lines (20 services, 10 minutes of event
//!   time, the bad deploy's new error template included), decoded from its OTLP messages
//!   beforehand, through a fresh miner each iteration.
//!
//! Throughput is reported in lines per second. Run: `cargo bench --bench log_miner`.

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use observebridge_connectors::generator::{GeneratedSignal, Generator, GeneratorConfig, Pace};
use observebridge_connectors::source::{Poll, Source};
use observebridge_dataflows::decode::{decode_logs, DecodeConfig};
use observebridge_dataflows::record::{Encoding, Origin, RawMessage, Signal, WireFormat};
use observebridge_dataflows::logs::loghub::{read_contents, SYSTEMS};
use observebridge_dataflows::logs::{MaskedLine, Masker, Miner, MinerConfig};

/// The binary's allocator, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SYNTHETIC_LINES: usize = 200_000;

/// xorshift64*: deterministic input without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn hex(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0')).collect()
    }
    fn uuid(&mut self) -> String {
        format!("{}-{}-{}-{}-{}", self.hex(8), self.hex(4), self.hex(4), self.hex(4), self.hex(12))
    }
    fn ip(&mut self) -> String {
        format!("10.{}.{}.{}", self.below(256), self.below(256), self.below(256))
    }
}

/// Service log lines from 24 templates, deterministic for a seed.
fn synthetic_lines(n: usize, seed: u64) -> Vec<String> {
    const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
    const SERVICES: &[&str] = &["checkout", "payments", "orders", "inventory", "search", "auth"];
    const PATHS: &[&str] = &["/api/v1/users", "/api/v1/orders", "/api/v2/cart", "/healthz", "/api/v1/search"];
    const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
    let mut r = Rng(seed | 1);
    (0..n)
        .map(|_| {
            let svc = r.pick(SERVICES);
            match r.below(24) {
                0 => format!("{} {}/{} {} {}ms", r.pick(METHODS), r.pick(PATHS), r.below(100_000), [200, 201, 404, 500][r.below(4) as usize], r.below(2000)),
                1 => format!("user={} action=login ip={} status=ok duration={}ms", r.pick(USERS), r.ip(), r.below(900)),
                2 => format!(r#"{{"ts":"2026-11-20T10:{:02}:{:02}.{:03}Z","level":"info","msg":"request completed","path":"{}/{}","status":200,"duration_ms":{}}}"#, r.below(60), r.below(60), r.below(1000), r.pick(PATHS), r.below(9999), r.below(500)),
                3 => format!("connection to db-{}.prod.internal:5432 established in {}ms", r.below(4), r.below(80)),
                4 => format!("order {} created for customer {} total={}.{:02} currency=EUR", r.uuid(), r.below(1_000_000), r.below(500), r.below(100)),
                5 => format!("cache miss for key session:{} (ttl 300s)", r.hex(16)),
                6 => format!("worker-{} processed batch {} of {} items in {}.{}s", r.below(16), r.below(10_000), r.below(500), r.below(10), r.below(10)),
                7 => format!("retrying request {} after 503 from {}.svc.cluster.local (attempt {}/5)", r.uuid(), svc, r.below(5) + 1),
                8 => format!("pod {}-{}-{} restarted: OOMKilled", svc, r.hex(9), r.hex(5)),
                9 => format!("ERROR failed to write to /var/lib/{}/{}.db: disk quota exceeded", svc, r.below(100)),
                10 => format!("ts=2026-11-20T10:00:{:02}Z level=warn caller=pool.go:{} msg=\"pool exhausted\" active={} idle=0 wait={}ms", r.below(60), r.below(400), r.below(64), r.below(3000)),
                11 => format!("Accepted publickey for {} from {} port {} ssh2", r.pick(USERS), r.ip(), 1024 + r.below(60_000)),
                12 => format!("GC pause {}.{}ms heap {}MB -> {}MB", r.below(50), r.below(10), 200 + r.below(800), 100 + r.below(400)),
                13 => format!("kafka consumer group {}-consumers rebalanced: partitions [{}, {}, {}] assigned", svc, r.below(12), r.below(12), r.below(12)),
                14 => format!("upstream {}:8080 returned 502 Bad Gateway for trace_id={}", r.ip(), r.hex(32)),
                15 => format!("scheduled job cleanup-{} finished: removed {} files, freed {}KB", r.below(7), r.below(5000), r.below(1_000_000)),
                16 => format!("WARN slow query took {}ms: SELECT * FROM orders WHERE id = {}", 500 + r.below(5000), r.below(1_000_000)),
                17 => format!("TLS handshake with {} failed: certificate expired at 2026-{:02}-{:02}", r.ip(), 1 + r.below(12), 1 + r.below(28)),
                18 => format!("user {} logged out after {} requests", r.pick(USERS), r.below(1000)),
                19 => format!("feature flag {} evaluated to {} for tenant t-{}", ["new-checkout", "dark-mode", "fast-search"][r.below(3) as usize], ["true", "false"][r.below(2) as usize], r.below(50)),
                20 => format!("deployment {} scaled from {} to {} replicas", svc, r.below(10), r.below(10)),
                21 => format!(r#"{{"level":"error","msg":"payment declined","order":"{}","amount":{},"reason":"insufficient funds"}}"#, r.uuid(), r.below(10_000)),
                22 => format!("rate limit exceeded for api key {}... ({} req/s > 100)", r.hex(8), 100 + r.below(400)),
                _ => format!("heartbeat from node-{} ok, lag {}ms, queue depth {}", r.below(32), r.below(100), r.below(1000)),
            }
        })
        .collect()
}

fn loghub(c: &mut Criterion) {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/loghub_2k"));
    let mut systems = Vec::new();
    for system in SYSTEMS {
        let log = dir.join(system.name).join(format!("{}_2k.log", system.name));
        if let Ok(contents) = read_contents(&system, &log) {
            systems.push((system.name, contents));
        }
    }
    if systems.is_empty() {
        eprintln!("log_miner: {} is absent; skipping the Loghub benchmark", dir.display());
        return;
    }
    let lines: usize = systems.iter().map(|(_, c)| c.len()).sum();
    let mut group = c.benchmark_group("loghub_2k");
    group.sample_size(10).measurement_time(Duration::from_secs(5)).throughput(Throughput::Elements(lines as u64));
    group.bench_function("all", |b| {
        b.iter(|| {
            for (name, contents) in &systems {
                let mut miner = Miner::new(*name, MinerConfig::default());
                for (i, line) in contents.iter().enumerate() {
                    std::hint::black_box(miner.add(line, i as i64));
                }
            }
        })
    });
    group.finish();
}

fn synthetic(c: &mut Criterion) {
    let lines = synthetic_lines(SYNTHETIC_LINES, 7);
    let mut group = c.benchmark_group("synthetic");
    group.sample_size(10).measurement_time(Duration::from_secs(5)).throughput(Throughput::Elements(lines.len() as u64));
    let mut warm = Miner::new("bench", MinerConfig::default());
    for (i, line) in lines.iter().enumerate() {
        warm.add(line, i as i64);
    }
    eprintln!("synthetic: {} lines, {} clusters", lines.len(), warm.len());
    group.bench_function("steady", |b| {
        b.iter(|| {
            for (i, line) in lines.iter().enumerate() {
                std::hint::black_box(warm.add(line, i as i64));
            }
        })
    });
    group.bench_function("cold", |b| {
        b.iter(|| {
            let mut miner = Miner::new("bench", MinerConfig::default());
            for (i, line) in lines.iter().enumerate() {
                std::hint::black_box(miner.add(line, i as i64));
            }
        })
    });
    let masker = Masker::default();
    let mut out = MaskedLine::new();
    group.bench_function("mask_only", |b| {
        b.iter(|| {
            for line in &lines {
                masker.mask_into(line, &mut out);
                std::hint::black_box(out.len());
            }
        })
    });
    group.finish();
}

/// The generator's log messages, decoded: what `observebridge run` mines.
fn generator_lines() -> Vec<String> {
    let cfg = GeneratorConfig {
        seed: 7,
        services: 20,
        start: Some("2026-11-20T00:00:00Z".parse().expect("start")),
        pace: Pace::Fast,
        duration: Some(Duration::from_secs(10 * 60)),
        signals: vec![GeneratedSignal::Logs],
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(&cfg).expect("generator");
    let mut records = Vec::new();
    while generator.poll(10_000, Duration::ZERO, &mut records).expect("poll") != Poll::Exhausted {}
    let (mut logs, mut errors) = (Vec::new(), Vec::new());
    for r in records {
        let msg = RawMessage { origin: Origin { partition: 0, offset: r.offset }, encoding: Encoding::new(Signal::Logs, WireFormat::OtlpProto), payload: r.payload };
        decode_logs(&msg, &DecodeConfig::default(), &mut logs, &mut errors);
    }
    assert!(errors.is_empty(), "{errors:?}");
    logs.into_iter().map(|l| l.message).collect()
}

fn generator(c: &mut Criterion) {
    let lines = generator_lines();
    let mut group = c.benchmark_group("generator");
    group.sample_size(10).measurement_time(Duration::from_secs(5)).throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("cold", |b| {
        b.iter(|| {
            let mut miner = Miner::new("bench", MinerConfig::default());
            for (i, line) in lines.iter().enumerate() {
                std::hint::black_box(miner.add(line, i as i64));
            }
            miner.len()
        })
    });
    group.finish();
}

criterion_group!(benches, loghub, synthetic, generator);
criterion_main!(benches);
