//! End to end, against the real services started by `scripts/test.sh`: JSON-lines log records in
//! Kafka -> the `observebridge` binary -> log_pattern, log_pattern_5m and log_pattern_new in
//! Postgres, final windows as Parquet on S3. Then a restart on new input: the template library
//! is reloaded from Postgres, so the same templates keep their fingerprint ids.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use observebridge_connectors::kafka::{create_topic, produce_all};
use observebridge_connectors::parquet::ObjectStoreConfig;

/// 2026-11-25T10:00:00Z, a 5-minute boundary.
const T0: i64 = 1_795_600_800_000;

fn line(ts: i64, service: &str, level: &str, message: String) -> Vec<u8> {
    serde_json::json!({"ts": ts, "service": service, "severity": level, "message": message}).to_string().into_bytes()
}

/// Three templates over 6 minutes: an INFO one, a WARN one and an ERROR one, on two services.
fn first_batch() -> Vec<Vec<u8>> {
    (0..60)
        .map(|i| {
            let ts = T0 + i * 6_000;
            match i % 3 {
                0 => line(ts, "cart", "INFO", format!("user {} added item {} to cart in {}ms", 1000 + i, i * 7, 5 + i)),
                1 => line(ts, "checkout", "WARN", format!("slow query on table orders took {}ms", 100 + i)),
                _ => line(ts, "checkout", "ERROR", format!("connection to 10.0.0.{}:5432 refused after {} retries", i, i % 5 + 1)),
            }
        })
        .collect()
}

/// `pattern -> (fingerprint_id, lines counted in log_pattern_5m, severity)`.
fn library(schema: &str) -> BTreeMap<String, (i64, i64, String)> {
    let rows: Vec<(String, i64, i64, String)> = query(&schema, "log_pattern_5m",
        "SELECT p.pattern, p.fingerprint_id, (SELECT coalesce(sum(count_total), 0)::bigint FROM {s}.log_pattern_5m c WHERE c.fingerprint_id = p.fingerprint_id), p.severity FROM {s}.log_pattern p",
    );
    rows.into_iter().map(|r| (r.0, (r.1, r.2, r.3))).collect()
}

#[test]
fn log_templates_from_kafka_survive_a_restart_with_the_same_ids() {
    let name = unique("e2e_logs");
    let topic = format!("{name}_logs");
    let bucket = name.replace('_', "-");
    create_topic(&kafka_brokers(), &topic, 1).expect("create topic");
    create_topic(&kafka_brokers(), &format!("{topic}_checkpoints"), 1).expect("create checkpoint topic");
    create_bucket(&bucket);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        format!(
            r#"
name: {name}
workers: 2
lateness: 30s
idle_timeout: 2s
epochs:
  interval: 100ms
sources:
  - name: logs
    signal: logs
    format: json_lines
    kafka:
      brokers: {brokers}
      topics: [{topic}]
      group_id: {name}
      start: earliest
      checkpoint_topic: {topic}_checkpoints
views:
  log_pattern_5m: {{}}
sinks:
  postgres:
    url: {pg}
    schema: {name}
  parquet:
    url: s3://{bucket}/views
    endpoint: {s3}
    region: us-east-1
    access_key_id: testing
    secret_access_key: testing
dead_letter:
  file:
    path: {dead}
"#,
            brokers = kafka_brokers(),
            pg = pg_url(),
            s3 = s3_endpoint(),
            dead = dir.path().join("dead.jsonl").display(),
        ),
    )
    .expect("job");

    for payload in first_batch() {
        produce_all(&kafka_brokers(), &topic, &[(None, payload)], Some(0)).expect("produce");
    }
    produce_all(&kafka_brokers(), &topic, &[(None, b"{\"ts\": true}".to_vec())], Some(0)).expect("produce");
    // A line at 10:10:40 moves the watermark (lateness 30s) past both windows.
    produce_all(&kafka_brokers(), &topic, &[(None, line(T0 + 640_000, "cart", "INFO", "tick".into()))], Some(0)).expect("produce");

    let mut engine = Engine::start(&job, &dir.path().join("engine-1.log"));
    let cart = "urn:k8s:svc:default/cart".to_string();
    let checkout = "urn:k8s:svc:default/checkout".to_string();
    let counts = wait_for("log_pattern_5m counts", Duration::from_secs(120), || {
        engine.assert_running();
        let rows: Vec<(chrono::DateTime<chrono::Utc>, String, i64, i64, i64)> =
            query(&name, "log_pattern_5m", "SELECT bucket, resource, fingerprint_id, count_total, count_error FROM {s}.log_pattern_5m WHERE bucket < '2026-11-25 10:10:00+00'");
        let total: i64 = rows.iter().map(|r| r.3).sum();
        (total == 60).then_some(rows)
    });
    // 50 lines in [10:00, 10:05), 10 in [10:05, 10:10); per window and service: cart INFO,
    // checkout WARN and ERROR templates.
    let by_window: BTreeMap<(i64, String), (i64, i64)> = counts.iter().fold(BTreeMap::new(), |mut m, r| {
        let e = m.entry((r.0.timestamp_millis(), r.1.clone())).or_insert((0, 0));
        e.0 += r.3;
        e.1 += r.4;
        m
    });
    assert_eq!(
        by_window,
        BTreeMap::from([((T0, cart.clone()), (17, 0)), ((T0, checkout.clone()), (33, 16)), ((T0 + 300_000, cart.clone()), (3, 0)), ((T0 + 300_000, checkout.clone()), (7, 4))])
    );
    let before = wait_for("the library", Duration::from_secs(30), || {
        let lib = library(&name);
        (lib.values().map(|v| v.1).sum::<i64>() == 61).then_some(lib)
    });
    let error_template = before.iter().find(|(_, v)| v.2 == "ERROR").map(|(p, v)| (p.clone(), v.0)).expect("an ERROR template");
    assert!(error_template.0.starts_with("connection to <*>") && error_template.0.ends_with("refused after <*> retries"), "{error_template:?}");
    let new: Vec<(String, i64)> = query(&name, "log_pattern_5m", "SELECT resource, fingerprint_id FROM {s}.log_pattern_new ORDER BY 1, 2");
    assert_eq!(new.iter().filter(|r| r.0 == checkout).count(), 2, "checkout's two templates are new: {new:?}");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap_or_default();
    assert!(dead.contains("ts"), "the malformed line is a dead letter naming the field: {dead}");

    // Parquet: both final windows.
    let cfg: ObjectStoreConfig = serde_yaml_ng::from_str(&format!(
        "url: s3://{bucket}/views\nendpoint: {}\nregion: us-east-1\naccess_key_id: testing\nsecret_access_key: testing\n",
        s3_endpoint()
    ))
    .expect("config");
    let (store, prefix) = cfg.build().expect("store");
    wait_for("log_pattern_5m objects", Duration::from_secs(30), || {
        let keys: BTreeSet<String> = runtime().block_on(async {
            let mut listing = store.list(Some(&prefix));
            let mut keys = BTreeSet::new();
            while let Some(meta) = listing.next().await {
                keys.insert(meta.expect("list").location.to_string());
            }
            keys
        });
        let want = [
            "views/log_pattern_5m/date=2026-11-25/hour=10/log_pattern_5m-20261125T100000Z.parquet",
            "views/log_pattern_5m/date=2026-11-25/hour=10/log_pattern_5m-20261125T100500Z.parquet",
        ];
        want.iter().all(|w| keys.contains(*w)).then_some(())
    });
    engine.stop();

    // Restart on new lines of the same templates (and one new template): the miners start from
    // the library in Postgres, so the old templates keep their ids.
    for i in 0..6 {
        let ts = T0 + 11 * 60_000 + i * 1_000;
        produce_all(&kafka_brokers(), &topic, &[(None, line(ts, "checkout", "ERROR", format!("connection to 10.9.9.{i}:5432 refused after {} retries", i + 2)))], Some(0))
            .expect("produce");
    }
    produce_all(&kafka_brokers(), &topic, &[(None, line(T0 + 12 * 60_000, "cart", "ERROR", "HikariPool-1 - Connection is not available, request timed out after 30000ms".into()))], Some(0))
        .expect("produce");
    let mut engine = Engine::start(&job, &dir.path().join("engine-2.log"));
    let after = wait_for("the library after the restart", Duration::from_secs(120), || {
        engine.assert_running();
        let lib = library(&name);
        (lib.len() == before.len() + 1 && lib.values().map(|v| v.1).sum::<i64>() == 61 + 7).then_some(lib)
    });
    assert!(engine.log_text().contains("log template library loaded"));
    let (pattern, id) = error_template;
    assert_eq!(after.get(&pattern).map(|v| (v.0, v.1)), Some((id, before[&pattern].1 + 6)), "same id, six more lines");
    for (p, (id, _, _)) in &before {
        assert_eq!(after.get(p).map(|v| v.0), Some(*id), "{p} kept its id");
    }
    engine.stop();
}
