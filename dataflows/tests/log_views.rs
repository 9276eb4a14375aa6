//! The log views through the whole dataflow (decode -> miners -> log_pattern_5m, log_pattern,
//! log_pattern_new): incremental equals from scratch for the same arrival order, the worker count
//! does not matter, and a replay gives the same fingerprint ids.

use std::collections::BTreeMap;

use observebridge_dataflows::decode::DecodeConfig;
use observebridge_dataflows::engine::{run_epochs, EngineConfig, EpochInput, EpochReport, MetaEvent};
use observebridge_dataflows::logs::drain::{Miner, MinerConfig};
use observebridge_dataflows::record::{Encoding, EventTime, Origin, RawMessage, Signal, WireFormat};
use observebridge_dataflows::views::log_pattern::LogPatternConfig;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

const T0: EventTime = 1_800_000_000_000;
const WINDOW: i64 = 300_000;

fn config() -> EngineConfig {
    EngineConfig { lateness_ms: 120_000, raw_archive: None, decode: DecodeConfig::default(), metric_1m: None, service_call: None, log_pattern: Some(LogPatternConfig::default()), changes: None }
}

#[derive(Clone, Debug)]
struct Line {
    ts: EventTime,
    service: &'static str,
    level: &'static str,
    message: String,
}

fn lines(seed: u64, n: usize, spread_ms: i64) -> Vec<Line> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let services = ["cart", "checkout", "auth"];
    let mut out: Vec<Line> = (0..n)
        .map(|_| {
            let ts = T0 + rng.random_range(0..spread_ms);
            let (level, message) = match rng.random_range(0..6) {
                0 => ("INFO", format!("user {} added item {} to cart in {}ms", rng.random_range(1..9999), rng.random_range(1..500), rng.random_range(1..90))),
                1 => ("INFO", format!("GET /api/v1/items/{} 200 {}ms", rng.random_range(1..500), rng.random_range(1..90))),
                2 => ("WARN", format!("slow query on table orders took {}ms", rng.random_range(100..900))),
                3 => ("ERROR", format!("connection to 10.0.{}.{}:5432 refused after {} retries", rng.random_range(0..9), rng.random_range(1..250), rng.random_range(1..6))),
                4 => ("DEBUG", format!("cache hit for key session:{:08x}", rng.random::<u32>())),
                _ => ("ERROR", format!("payment {} declined: card expired", uuid(&mut rng))),
            };
            Line { ts, service: services[rng.random_range(0..3)], level, message }
        })
        .collect();
    out.sort_by_key(|l| l.ts);
    out
}

fn uuid(rng: &mut rand_chacha::ChaCha8Rng) -> String {
    let b: [u8; 16] = rng.random();
    format!("{}-{}-{}-{}-{}", hex(&b[0..4]), hex(&b[4..6]), hex(&b[6..8]), hex(&b[8..10]), hex(&b[10..16]))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn message(line: &Line, partition: u32, offset: u64) -> RawMessage {
    let payload = serde_json::json!({"ts": line.ts, "service": line.service, "severity": line.level, "message": line.message});
    RawMessage { origin: Origin { partition, offset }, encoding: Encoding::new(Signal::Logs, WireFormat::JsonLines), payload: payload.to_string().into_bytes() }
}

/// Epochs of the given sizes over `partitions` partitions (line `i` on partition `i % partitions`).
fn epochs(lines: &[Line], partitions: u32, sizes: &[usize]) -> Vec<EpochInput> {
    let msgs: Vec<RawMessage> = lines.iter().enumerate().map(|(i, l)| message(l, i as u32 % partitions, i as u64)).collect();
    let mut out: Vec<EpochInput> = Vec::new();
    let mut rest = &msgs[..];
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes[k % sizes.len()].clamp(1, rest.len());
        k += 1;
        let meta = if out.is_empty() { (0..partitions).map(|p| MetaEvent::Register { partition: p, max_ts: None }).collect() } else { Vec::new() };
        out.push((rest[..n].to_vec(), meta));
        rest = &rest[n..];
    }
    out.push((Vec::new(), (0..partitions).map(|p| MetaEvent::Ended { partition: p }).collect()));
    out
}

type Table = BTreeMap<(i64, String, i64), (i64, i64)>;

/// `log_pattern_5m` after applying each epoch's changes: (bucket ms, resource, fingerprint) -> (total, errors).
fn apply(table: &mut Table, report: &EpochReport) {
    use arrow::array::AsArray;
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
    for change in report.views.iter().filter(|v| v.view == "log_pattern_5m") {
        let d = &change.deletes;
        for i in 0..d.num_rows() {
            let bucket = d.column(0).as_primitive::<TimestampMicrosecondType>().value(i) / 1000;
            table.remove(&(bucket, d.column(2).as_string::<i32>().value(i).to_owned(), d.column(3).as_primitive::<Int64Type>().value(i)));
        }
        let u = &change.upserts;
        for i in 0..u.num_rows() {
            let bucket = u.column(0).as_primitive::<TimestampMicrosecondType>().value(i) / 1000;
            let key = (bucket, u.column(2).as_string::<i32>().value(i).to_owned(), u.column(3).as_primitive::<Int64Type>().value(i));
            table.insert(key, (u.column(4).as_primitive::<Int64Type>().value(i), u.column(5).as_primitive::<Int64Type>().value(i)));
        }
    }
}

/// From scratch: one miner fed every line that has arrived, in the engine's order (epoch by
/// epoch, sorted by event time then origin), and the counts per window.
fn from_scratch(input: &[EpochInput], through_epoch: usize, lines: &[Line]) -> Table {
    let mut miner = Miner::new("default", MinerConfig::default());
    let mut table = Table::new();
    for (raw, _) in &input[..=through_epoch] {
        let mut batch: Vec<(EventTime, Origin, usize)> = raw.iter().map(|m| (lines[m.origin.offset as usize].ts, m.origin, m.origin.offset as usize)).collect();
        batch.sort();
        for (ts, _, i) in batch {
            let l = &lines[i];
            let id = miner.add(&l.message, ts).id as i64;
            let e = table.entry((ts.div_euclid(WINDOW) * WINDOW, format!("urn:k8s:svc:default/{}", l.service), id)).or_insert((0, 0));
            e.0 += 1;
            if l.level == "ERROR" {
                e.1 += 1;
            }
        }
    }
    table
}

fn run_and_check(lines: &[Line], partitions: u32, sizes: &[usize], workers: usize) -> Table {
    let input = epochs(lines, partitions, sizes);
    let reports = run_epochs(&config(), workers, input.clone()).expect("run");
    assert!(reports.iter().all(|r| r.dead_letters.is_empty()), "{:?}", reports.iter().flat_map(|r| &r.dead_letters).next());
    let mut table = Table::new();
    let last = reports.iter().map(|r| r.epoch).max().unwrap_or(0);
    for epoch in 0..=last {
        for r in reports.iter().filter(|r| r.epoch == epoch) {
            apply(&mut table, r);
        }
        assert_eq!(table, from_scratch(&input, epoch as usize, lines), "epoch {epoch}");
    }
    table
}

#[test]
fn workers_do_not_change_the_counts_or_the_ids() {
    let lines = lines(1, 600, 20 * 60_000);
    let one = run_and_check(&lines, 1, &[50], 1);
    let four = run_and_check(&lines, 3, &[50], 4);
    assert_eq!(one, four);
    // The same input again (a replay): the same ids.
    assert_eq!(one, run_and_check(&lines, 2, &[50], 2));
    let templates: std::collections::BTreeSet<i64> = one.keys().map(|k| k.2).collect();
    assert!((6..=12).contains(&templates.len()), "six kinds of lines make about six templates: {templates:?}");
}

#[test]
fn pattern_rows_and_new_patterns_reach_the_sinks() {
    let lines = lines(2, 200, 10 * 60_000);
    let reports = run_epochs(&config(), 2, epochs(&lines, 2, &[40])).expect("run");
    let upserted: usize = reports.iter().flat_map(|r| &r.views).filter(|v| v.view == "log_pattern").map(|v| v.upserts.num_rows()).sum();
    assert!(upserted > 0);
    let new_rows: usize = reports.iter().flat_map(|r| &r.views).filter(|v| v.view == "log_pattern_new").map(|v| v.upserts.num_rows()).sum();
    assert!(new_rows >= 3, "each service logs its templates for the first time");
    let finals: Vec<i64> = reports.iter().flat_map(|r| &r.finals).filter(|f| f.view == "log_pattern_5m").map(|f| f.window_start).collect();
    assert_eq!(finals.len(), 2, "two final windows, written once each: {finals:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_from_scratch(seed in 0u64..10_000, n in 1usize..300, sizes in proptest::collection::vec(1usize..60, 1..4), workers in 1usize..4, partitions in 1u32..4) {
        let lines = lines(seed, n, 15 * 60_000);
        run_and_check(&lines, partitions, &sizes, workers);
    }
}
