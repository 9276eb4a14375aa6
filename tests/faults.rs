//! Fault tests (issue 9, point 4), short versions that run in CI and assert the same things as
//! the long ones. Each prints its figures.
//!
//! - `malformed_records_mixed_into_valid_load`: 5% malformed messages in a valid metric load
//!   through Kafka: the dead-letter count equals the injected count (each with its reason and
//!   origin) and every valid record is reflected in metric_1m (equal to a from-scratch
//!   computation). `OBSERVEBRIDGE_FAULTS_LONG=1` runs 20x the load.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use observebridge_connectors::dead_letter::DeadLetterRecord;
use observebridge_connectors::kafka::create_topic;
use rand::{Rng, SeedableRng};

const METRIC: &str = "jvm.threads";
/// 2026-11-25T10:00:00Z.
const T0: i64 = 1_795_600_800_000;

fn long() -> bool {
    std::env::var("OBSERVEBRIDGE_FAULTS_LONG").is_ok_and(|v| v == "1")
}

#[test]
fn malformed_records_mixed_into_valid_load() {
    let scale = if long() { 20 } else { 1 };
    let valid_count = 600 * scale;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let points: Vec<Point> = (0..valid_count)
        .map(|i| Point { ts: T0 + (i as i64 * 997) % (10 * 60_000), service: format!("svc-{}", i % 7), pod: format!("pod-{}", i % 3), value: rng.random_range(0.0..100.0) })
        .collect();
    // 5% of the messages are malformed, at random places: garbage bytes, truncated protobuf,
    // an empty message.
    let malformed_count = valid_count / 19;
    let mut messages: Vec<(i32, Vec<u8>, bool)> = points.iter().map(|p| (0, otlp_gauge_message(std::slice::from_ref(p), METRIC), true)).collect();
    for i in 0..malformed_count {
        let bad = match i % 3 {
            0 => b"\xde\xad\xbe\xef not protobuf".to_vec(),
            1 => {
                let mut m = otlp_gauge_message(&points[i % points.len()..=i % points.len()], METRIC);
                m.truncate(m.len() / 2);
                m
            }
            _ => vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
        };
        let at = rng.random_range(0..=messages.len());
        messages.insert(at, (0, bad, false));
    }
    for (i, m) in messages.iter_mut().enumerate() {
        m.0 = (i % 3) as i32;
    }

    let topic = unique("faults_malformed");
    create_topic(&kafka_brokers(), &topic, 3).expect("topic");
    produce(&topic, messages.iter().map(|(partition, payload, _)| (*partition, payload.clone())).collect());
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = unique("faults");
    let dead = dir.path().join("dead.jsonl");
    let job = dir.path().join("job.yaml");
    let spec = kafka_metric_job(&MetricJob { name: &schema, topic: &topic, schema: &schema, workers: 2, lateness: "15m", extra_sinks: "", dead_letters: &dead });
    std::fs::write(&job, spec).expect("job");
    let mut engine = Engine::start(&job, &dir.path().join("engine.log"));
    let expected = expected_metric_1m(&points, METRIC);
    let rows = wait_for("every valid point in metric_1m", Duration::from_secs(180), || {
        engine.assert_running();
        let rows: Vec<(chrono::DateTime<chrono::Utc>, String, String, i64)> = query(&schema, "metric_1m", "SELECT bucket, resource, series, count FROM {s}.metric_1m");
        let total: i64 = rows.iter().map(|r| r.3).sum();
        (total == valid_count as i64).then_some(rows)
    });
    let dead_letters: Vec<DeadLetterRecord> = wait_for("the dead letters", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&dead).unwrap_or_default();
        let lines: Vec<DeadLetterRecord> = text.lines().map(|l| serde_json::from_str(l).expect("dead letter json")).collect();
        (lines.len() >= malformed_count).then_some(lines)
    });
    engine.stop();

    let got: BTreeMap<(i64, String, String), i64> = rows.into_iter().map(|r| ((r.0.timestamp_millis(), r.1, r.2), r.3)).collect();
    assert_eq!(got.len(), expected.len());
    for (key, row) in &expected {
        assert_eq!(got.get(key), Some(&(row.count as i64)), "{key:?}");
    }
    let final_dead: usize = std::fs::read_to_string(&dead).unwrap_or_default().lines().count();
    assert_eq!(final_dead, malformed_count, "dead letters");
    assert!(dead_letters.iter().all(|d| !d.reason.is_empty() && d.source.starts_with(&format!("kafka:{topic}/"))), "{dead_letters:?}");
    eprintln!(
        "faults: malformed: {} messages, {malformed_count} malformed ({:.1}%) -> {final_dead} dead letters; {valid_count} valid points -> {} metric_1m rows, counts equal from scratch",
        messages.len(),
        100.0 * malformed_count as f64 / messages.len() as f64,
        got.len()
    );
}
