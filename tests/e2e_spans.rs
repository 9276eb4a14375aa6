//! End to end, against the real services started by `scripts/test.sh`: OTLP span messages in
//! Kafka -> the `observebridge` binary -> service_call_5m, call_graph_active, topo_edge_time
//! and blast_radius in Postgres, final windows as Parquet on S3, dead letters in a file. The
//! expected rows are what the same dataflow computes in-process from the same messages, and a
//! few are checked by hand.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use observebridge_connectors::kafka::{create_topic, produce_all};
use observebridge_connectors::parquet::{read_parquet, ObjectStoreConfig};
use common::spans::{kv, message, S};
use opentelemetry_proto::tonic::trace::v1::span;

const PARTITIONS: i32 = 2;
/// 2026-11-25T10:00:00Z, a 5-minute boundary.
const T0: i64 = 1_795_600_800_000;
/// 30 traces over 3 minutes: user -> frontend -> checkout (every 5th fails) -> postgres.
fn traffic() -> Vec<(i32, Vec<u8>)> {
    let mut out = Vec::new();
    for t in 0..30u32 {
        let at = T0 + i64::from(t) * 6_000;
        let fails = t % 5 == 0;
        let frontend = [
            S(t, 1, None, span::SpanKind::Server, at + 100, 90, false, vec![]),
            S(t, 2, Some(1), span::SpanKind::Client, at + 90, 50 + u64::from(t), false, vec![]),
        ];
        let checkout = [
            S(t, 3, Some(2), span::SpanKind::Server, at + 80, 40, fails, vec![]),
            S(t, 4, Some(3), span::SpanKind::Client, at + 60, 5, false, vec![kv("db.system", "postgresql"), kv("db.name", "orders")]),
        ];
        // The two services' messages go to different partitions, in either order.
        out.push((0, message("frontend", &frontend)));
        out.push((1, message("checkout", &checkout)));
    }
    out
}

fn job(setup_dir: &std::path::Path, schema: &str, topic: &str, bucket: &str) -> std::path::PathBuf {
    let path = setup_dir.join("job.yaml");
    let spec = format!(
        r#"
name: {schema}
workers: 2
lateness: 30s
idle_timeout: 2s
epochs:
  interval: 100ms
sources:
  - name: spans
    signal: spans
    format: otlp_proto
    kafka:
      brokers: {brokers}
      topics: [{topic}]
      group_id: {schema}
      start: earliest
      checkpoint_topic: {topic}_checkpoints
views:
  service_call_5m: {{ pairing_wait: 10s }}
sinks:
  postgres:
    url: {pg}
    schema: {schema}
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
        dead = setup_dir.join("dead.jsonl").display(),
    );
    std::fs::write(&path, spec).expect("write job");
    path
}

fn calls(schema: &str) -> BTreeSet<(i64, String, String, String, i64, i64)> {
    let rows: Vec<(chrono::DateTime<chrono::Utc>, String, String, String, f64, f64)> =
        query(&schema, "service_call_5m", "SELECT bucket, src, dst, connection_type, calls, errors FROM {s}.service_call_5m WHERE src <> 'urn:ext:user' OR dst <> 'urn:k8s:svc:shop/ticker'");
    rows.into_iter().map(|r| (r.0.timestamp_millis(), r.1, r.2, r.3, r.4 as i64, r.5 as i64)).collect()
}

#[test]
fn spans_from_kafka_become_call_views_in_postgres_and_parquet() {
    let name = unique("e2e_spans");
    let topic = format!("{name}_spans");
    let bucket = name.replace('_', "-");
    create_topic(&kafka_brokers(), &topic, PARTITIONS).expect("create topic");
    create_topic(&kafka_brokers(), &format!("{topic}_checkpoints"), 1).expect("create checkpoint topic");
    create_bucket(&bucket);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job(dir.path(), &name, &topic, &bucket);

    for (partition, payload) in traffic() {
        produce_all(&kafka_brokers(), &topic, &[(None, payload)], Some(partition)).expect("produce");
    }
    produce_all(&kafka_brokers(), &topic, &[(None, b"not a span".to_vec())], Some(0)).expect("produce");
    // Ticks 20 minutes later on both partitions move the watermark past every data window and
    // past the active span of every data edge.
    for partition in 0..PARTITIONS {
        let tick = message("ticker", &[S(9_000 + partition as u32, 1, None, span::SpanKind::Server, T0 + 20 * 60_000, 1, false, vec![])]);
        produce_all(&kafka_brokers(), &topic, &[(None, tick)], Some(partition)).expect("produce");
    }

    let mut engine = Engine::start(&job, &dir.path().join("engine.log"));
    let shop = |s: &str| format!("urn:k8s:svc:shop/{s}");
    let expected: BTreeSet<(i64, String, String, String, i64, i64)> = BTreeSet::from([
        (T0, "urn:ext:user".into(), shop("frontend"), "virtual_node".into(), 30, 0),
        (T0, shop("frontend"), shop("checkout"), "direct".into(), 30, 6),
        (T0, shop("checkout"), "urn:db:postgresql/orders".into(), "database".into(), 30, 0),
    ]);
    wait_for("service_call_5m rows", Duration::from_secs(120), || {
        engine.assert_running();
        (calls(&name) == expected).then_some(())
    });
    // Every data edge went idle 10 minutes after its last call: the live graph only holds the
    // ticker's edge, and each data edge has one closed validity interval.
    let topo = wait_for("closed topo_edge_time rows", Duration::from_secs(60), || {
        let rows: Vec<(String, String, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>)> =
            query(&name, "service_call_5m", "SELECT src, dst, valid_from, valid_to FROM {s}.topo_edge_time WHERE dst <> 'urn:k8s:svc:shop/ticker'");
        (rows.len() == 3 && rows.iter().all(|r| r.3.is_some())).then_some(rows)
    });
    let checkout_edge = topo.iter().find(|r| r.1 == shop("checkout")).expect("frontend->checkout");
    assert_eq!(checkout_edge.2.timestamp_millis(), T0 + 90, "valid_from is the first call");
    assert_eq!(checkout_edge.3.expect("closed").timestamp_millis(), T0 + 29 * 6_000 + 90 + 600_000, "valid_to is the last call + 10 minutes");
    let active: Vec<(String, String)> = query(&name, "service_call_5m", "SELECT src, dst FROM {s}.call_graph_active");
    assert_eq!(active, vec![("urn:ext:user".to_string(), shop("ticker"))]);
    let reach: Vec<(String, String, String, i64)> = query(&name, "service_call_5m", "SELECT service, direction, affected, hops FROM {s}.blast_radius ORDER BY 1, 2, 3");
    assert_eq!(reach, vec![("urn:ext:user".into(), "downstream".into(), shop("ticker"), 1), (shop("ticker"), "upstream".into(), "urn:ext:user".into(), 1)]);
    let dims: Vec<(String, String)> = query(&name, "service_call_5m", "SELECT urn, kind FROM {s}.dim_resource WHERE urn LIKE 'urn:db:%'");
    assert_eq!(dims, vec![("urn:db:postgresql/orders".to_string(), "db".to_string())]);

    // Parquet: the final 5-minute window of service_call_5m, and the closed intervals.
    let cfg: ObjectStoreConfig = serde_yaml_ng::from_str(&format!(
        "url: s3://{bucket}/views\nendpoint: {}\nregion: us-east-1\naccess_key_id: testing\nsecret_access_key: testing\n",
        s3_endpoint()
    ))
    .expect("config");
    let (store, prefix) = cfg.build().expect("store");
    let objects = wait_for("parquet objects", Duration::from_secs(60), || {
        let keys: Vec<String> = runtime().block_on(async {
            let mut listing = store.list(Some(&prefix));
            let mut keys = Vec::new();
            while let Some(meta) = listing.next().await {
                keys.push(meta.expect("list").location.to_string());
            }
            keys
        });
        // The intervals close at T0 + 2m54.09s + 10m, in the bucket of 10:10.
        let want = ["views/service_call_5m/date=2026-11-25/hour=10/service_call_5m-20261125T100000Z.parquet", "views/topo_edge_time/date=2026-11-25/hour=10/topo_edge_time-20261125T101000Z.parquet"];
        want.iter().all(|w| keys.iter().any(|k| k == w)).then_some(keys)
    });
    let rows: usize = runtime().block_on(async {
        let key = object_store::path::Path::from("views/service_call_5m/date=2026-11-25/hour=10/service_call_5m-20261125T100000Z.parquet");
        read_parquet(store.as_ref(), &key).await.expect("read").iter().map(|b| b.num_rows()).sum()
    });
    assert_eq!(rows, 3, "{objects:?}");

    let dead: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap_or_default().lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].to_string().contains("ExportTraceServiceRequest"), "{dead:?}");
    let by_kind: BTreeMap<String, usize> = dead.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(d["kind"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        m
    });
    assert_eq!(by_kind.get("decode"), Some(&1));
    engine.stop();
}
