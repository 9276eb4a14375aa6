//! End to end, against the real services started by `scripts/test.sh`: Kubernetes watch events in
//! Kafka -> the `observebridge` binary -> change_event in Postgres and Parquet on S3, malformed
//! events as dead letters. Canary values planted in a Secret (data, stringData, the
//! last-applied-configuration annotation), in an env value and in a malformed message are found
//! in no output: no Postgres row, no Parquet object, no dead letter, no log line.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use object_store::ObjectStoreExt as _;
use observebridge_connectors::kafka::{create_topic, produce_all};
use observebridge_connectors::parquet::ObjectStoreConfig;
use serde_json::json;

/// 2026-11-25T10:00:00Z.
const T0: i64 = 1_795_600_800_000;
const CANARY: &str = "CANARY-7d1e-hunter2";

fn at(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).expect("time").to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn event(kind: &str, object: serde_json::Value) -> Vec<u8> {
    json!({"type": kind, "object": object}).to_string().into_bytes()
}

fn meta(name: &str, rv: u64, ts: i64) -> serde_json::Value {
    json!({"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "resourceVersion": rv.to_string(), "creationTimestamp": at(T0),
        "labels": {"app.kubernetes.io/name": "payments"},
        "managedFields": [{"manager": "kubectl", "operation": "Update", "time": at(ts)}]})
}

fn secret(rv: u64, ts: i64, password: &str) -> serde_json::Value {
    let mut m = meta("payments-db", rv, ts);
    // kubectl apply keeps the whole last applied object, values included, in an annotation.
    m["annotations"] = json!({"kubectl.kubernetes.io/last-applied-configuration": json!({"data": {"password": b64(password)}}).to_string()});
    json!({"kind": "Secret", "apiVersion": "v1", "metadata": m, "type": "Opaque", "data": {"password": b64(password), "user": b64("payments")}, "stringData": {"token": password}})
}

fn deployment(rv: u64, ts: i64, image: &str, env_value: &str) -> serde_json::Value {
    json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": meta("payments", rv, ts), "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app.kubernetes.io/name": "payments"}},
        "spec": {"containers": [{"name": "app", "image": image, "env": [{"name": "API_KEY", "value": env_value}]}]}}}, "status": {"replicas": 2}})
}

#[test]
fn k8s_changes_from_kafka_keep_secret_values_out_of_every_output() {
    let name = unique("e2e_changes");
    let topic = format!("{name}_k8s");
    let bucket = name.replace('_', "-");
    create_topic(&kafka_brokers(), &topic, 1).expect("create topic");
    create_topic(&kafka_brokers(), &format!("{topic}_checkpoints"), 1).expect("create checkpoint topic");
    create_bucket(&bucket);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = dir.path().join("job.yaml");
    let dead = dir.path().join("dead.jsonl");
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
decode:
  secret_hash_key: test-key-for-e2e
sources:
  - name: k8s
    signal: k8s
    format: json_lines
    kafka:
      brokers: {brokers}
      topics: [{topic}]
      group_id: {name}
      start: earliest
      checkpoint_topic: {topic}_checkpoints
views:
  change_event: {{}}
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
            dead = dead.display(),
        ),
    )
    .expect("job");

    let messages = vec![
        event("ADDED", secret(10, T0, "old-password")),
        event("ADDED", deployment(11, T0, "r/payments:1.0.0", CANARY)),
        // A rotation to the canary, and an image bump with a new (canary-derived) env value.
        event("MODIFIED", secret(12, T0 + 60_000, CANARY)),
        event("MODIFIED", deployment(13, T0 + 120_000, "r/payments:1.1.0", &format!("{CANARY}-2"))),
        // The same event again: a repeat, no second change.
        event("MODIFIED", deployment(13, T0 + 120_000, "r/payments:1.1.0", &format!("{CANARY}-2"))),
        // Malformed: not JSON (with a canary in it), no object, an unsupported kind.
        format!("{{\"type\":\"MODIFIED\",\"object\":{{\"kind\":\"Secret\",\"data\":{{\"password\":\"{CANARY}\"").into_bytes(),
        br#"{"type":"MODIFIED"}"#.to_vec(),
        event("ADDED", json!({"kind": "Endpoints", "metadata": {"name": "payments", "resourceVersion": "14", "creationTimestamp": at(T0)}})),
        // An event two hours later moves the watermark past the hour: change rows go to Parquet.
        event("MODIFIED", deployment(15, T0 + 2 * 3_600_000, "r/payments:1.1.0", &format!("{CANARY}-2"))),
    ];
    for payload in messages {
        produce_all(&kafka_brokers(), &topic, &[(None, payload)], Some(0)).expect("produce");
    }

    let mut engine = Engine::start(&job, &dir.path().join("engine.log"));
    let rows: Vec<(String, String, String, String)> = wait_for("change_event rows", Duration::from_secs(120), || {
        engine.assert_running();
        let rows: Vec<(String, String, String, String)> = query(&name, "change_event", "SELECT kind, change_type, summary, diff::text FROM {s}.change_event ORDER BY detected_at");
        (rows.len() == 2).then_some(rows)
    });
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("Secret", "secret"), "{rows:?}");
    assert!(rows[0].3.contains("data.password") && rows[0].3.contains("hmac:"), "{rows:?}");
    assert!(rows[0].3.contains("data.token"), "stringData keys are diffed too: {rows:?}");
    assert_eq!((rows[1].0.as_str(), rows[1].1.as_str()), ("Deployment", "image"), "{rows:?}");
    assert!(rows[1].2.contains("r/payments:1.0.0 -> r/payments:1.1.0"), "{rows:?}");
    assert!(rows[1].3.contains("containers[app].env.API_KEY"), "{rows:?}");

    let dead_text = wait_for("three dead letters", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&dead).unwrap_or_default();
        (text.lines().count() == 3).then_some(text)
    });
    assert!(dead_text.contains("not JSON") && dead_text.contains("`object` is missing") && dead_text.contains("unsupported kind \\\"Endpoints\\\""), "{dead_text}");

    // Parquet: the hour's change rows.
    let cfg: ObjectStoreConfig = serde_yaml_ng::from_str(&format!(
        "url: s3://{bucket}/views\nendpoint: {}\nregion: us-east-1\naccess_key_id: testing\nsecret_access_key: testing\n",
        s3_endpoint()
    ))
    .expect("config");
    let (store, prefix) = cfg.build().expect("store");
    let key = "views/change_event/date=2026-11-25/hour=10/change_event-20261125T100000Z.parquet";
    let parquet_text = wait_for("the change_event object", Duration::from_secs(60), || {
        runtime().block_on(async {
            let mut listing = store.list(Some(&prefix));
            let mut found = None;
            while let Some(meta) = listing.next().await {
                let meta = meta.expect("list");
                if meta.location.to_string() == key {
                    let bytes = store.get(&meta.location).await.expect("get").bytes().await.expect("bytes");
                    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).expect("parquet").build().expect("reader");
                    let batches: Vec<arrow::record_batch::RecordBatch> = reader.collect::<Result<_, _>>().expect("batches");
                    found = Some(arrow::util::pretty::pretty_format_batches(&batches).expect("format").to_string());
                }
            }
            found
        })
    });
    assert!(parquet_text.contains("hmac:") && parquet_text.contains("r/payments:1.1.0"), "{parquet_text}");
    let log = engine.log_text();
    engine.stop();

    // The canary (and its base64 form) is nowhere.
    let everything: Vec<(String,)> = query(&name, "change_event", "SELECT row_to_json(c)::text FROM {s}.change_event c");
    for (what, text) in [("postgres", everything.iter().map(|r| r.0.clone()).collect::<Vec<_>>().join("\n")), ("parquet", parquet_text), ("dead letters", dead_text), ("log", log)] {
        assert!(!text.contains(CANARY) && !text.contains(&b64(CANARY)) && !text.contains(&b64(&format!("{CANARY}-2"))), "the canary leaked into the {what}");
    }
}
