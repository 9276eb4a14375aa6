//! End to end, against the real services started by `scripts/test.sh`: OTLP metric messages in
//! Kafka -> the `observebridge` binary -> metric_1m in Postgres and Parquet on S3, dead letters
//! in a file, offsets committed in Kafka; and a kill -9 in the middle changes nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arrow::array::{Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use common::*;
use futures::StreamExt as _;
use observebridge_connectors::kafka::{create_topic, produce_all};
use observebridge_connectors::parquet::{read_parquet, ObjectStoreConfig};
use observebridge_dataflows::views::metric_1m::Metric1mRow;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

const METRIC: &str = "http.server.active_requests";
const PARTITIONS: i32 = 3;
/// 2026-11-20T10:00:00Z.
const T0: i64 = 1_795_600_800_000;

struct Setup {
    topic: String,
    group: String,
    schema: String,
    bucket: String,
    dir: tempfile::TempDir,
    job: std::path::PathBuf,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let topic = unique(&format!("{name}_metrics"));
        let group = unique(&format!("{name}_group"));
        let schema = unique(name);
        let bucket = unique(name).replace('_', "-");
        create_topic(&kafka_brokers(), &topic, PARTITIONS).expect("create topic");
        // tansu keeps commits but drops their metadata: the restart offsets go to a checkpoint topic.
        create_topic(&kafka_brokers(), &format!("{topic}_checkpoints"), 1).expect("create checkpoint topic");
        create_bucket(&bucket);
        let dir = tempfile::tempdir().expect("tempdir");
        let job = dir.path().join("job.yaml");
        let spec = format!(
            r#"
name: {schema}
workers: 2
lateness: 30s
idle_timeout: 2s
epochs:
  interval: 100ms
sources:
  - name: otlp
    signal: metrics
    format: otlp_proto
    kafka:
      brokers: {brokers}
      topics: [{topic}]
      group_id: {group}
      start: earliest
      checkpoint_topic: {topic}_checkpoints
views:
  metric_1m: {{}}
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
            dead = dir.path().join("dead.jsonl").display(),
        );
        std::fs::write(&job, spec).expect("write job");
        Setup { topic, group, schema, bucket, dir, job }
    }

    /// Produces gauge points: one message per (service, scrape) with both pods, keyed to a
    /// partition by service.
    fn produce(&self, points: &[Point]) {
        let mut by_message: BTreeMap<(usize, i64), Vec<Point>> = BTreeMap::new();
        for p in points {
            let service: usize = p.service.trim_start_matches("svc-").parse().unwrap_or(0);
            by_message.entry((service, p.ts)).or_default().push(p.clone());
        }
        for ((service, _), points) in by_message {
            let message = otlp_gauge_message(&points, METRIC);
            produce_all(&kafka_brokers(), &self.topic, &[(None, message)], Some(service as i32 % PARTITIONS)).expect("produce");
        }
    }

    fn produce_garbage(&self, n: usize) {
        for i in 0..n {
            let payload = format!("not otlp #{i} \u{1f4a5}").into_bytes();
            produce_all(&kafka_brokers(), &self.topic, &[(None, payload)], Some(i as i32 % PARTITIONS)).expect("produce");
        }
    }

    /// One point per partition far ahead, so that the watermark passes every data window.
    fn produce_ticks(&self, at: i64) {
        for partition in 0..PARTITIONS {
            let tick = Point { ts: at, service: format!("svc-{partition}"), pod: "tick".into(), value: 0.0 };
            produce_all(&kafka_brokers(), &self.topic, &[(None, otlp_gauge_message(&[tick], METRIC))], Some(partition)).expect("produce");
        }
    }

    fn dead_letters(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("dead.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("dead letter json"))
            .collect()
    }
}

/// Points of 4 services x 2 pods, one scrape every 10 s, for scrapes `from..to` (6 per minute).
fn scrapes(from: i64, to: i64) -> Vec<Point> {
    let mut out = Vec::new();
    for step in from..to {
        for service in 0..4 {
            for pod in 0..2 {
                let value = ((step * 7 + service * 3 + pod) % 23) as f64 * 1.5 + 0.25;
                out.push(Point { ts: T0 + step * 10_000, service: format!("svc-{service}"), pod: format!("svc-{service}-pod-{pod}"), value });
            }
        }
    }
    out
}

type PgRow = (i64, String, String, i64, f64, f64, f64, f64, f64, f64, f64, String);

/// metric_1m as Postgres holds it, keyed like [`expected_metric_1m`].
fn postgres_rows(schema: &str) -> BTreeMap<(i64, String, String), PgRow> {
    runtime().block_on(async {
        let pool = sqlx::PgPool::connect(&pg_url()).await.expect("connect");
        let table = format!("\"{schema}\".metric_1m");
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text").bind(&table).fetch_one(&pool).await.expect("regclass");
        if exists.is_none() {
            return BTreeMap::new();
        }
        let rows: Vec<(chrono::DateTime<chrono::Utc>, String, String, String, i64, f64, f64, f64, f64, f64, f64, f64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT bucket, tenant, resource, series, count, sum, avg, min, max, p50, p95, p99, labels::text FROM {table}"
        )))
        .fetch_all(&pool)
        .await
        .expect("select");
        rows.into_iter()
            .map(|r| ((r.0.timestamp_millis(), r.2.clone(), r.3.clone()), (r.0.timestamp_millis(), r.1, r.2, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11, r.12)))
            .collect()
    })
}

fn as_pg_row(r: &Metric1mRow) -> PgRow {
    let labels: serde_json::Value = serde_json::from_str(&r.labels).expect("labels json");
    (r.bucket, r.tenant.clone(), r.resource.clone(), r.count, r.sum.0, r.avg.0, r.min.0, r.max.0, r.p50.0, r.p95.0, r.p99.0, labels.to_string())
}

/// Normalises Postgres' jsonb text rendering so it compares with serde_json's.
fn normalise(rows: BTreeMap<(i64, String, String), PgRow>) -> BTreeMap<(i64, String, String), PgRow> {
    rows.into_iter()
        .map(|(k, mut v)| {
            let labels: serde_json::Value = serde_json::from_str(&v.11).expect("labels json");
            v.11 = labels.to_string();
            (k, v)
        })
        .collect()
}

/// Every Parquet object of metric_1m: key -> (bucket, resource, series, count, sum, max) rows.
fn parquet_objects(setup: &Setup) -> BTreeMap<String, Vec<(i64, String, String, i64, f64, f64)>> {
    let cfg: ObjectStoreConfig = serde_yaml_ng::from_str(&format!(
        "url: s3://{}/views\nendpoint: {}\nregion: us-east-1\naccess_key_id: testing\nsecret_access_key: testing\n",
        setup.bucket,
        s3_endpoint()
    ))
    .expect("config");
    let (store, prefix) = cfg.build().expect("store");
    runtime().block_on(async {
        let mut listing = store.list(Some(&prefix));
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            keys.push(meta.expect("list").location);
        }
        let mut out = BTreeMap::new();
        for key in keys {
            let batches = read_parquet(store.as_ref(), &key).await.expect("read parquet");
            let mut rows = Vec::new();
            for b in batches {
                let col = |name: &str| b.column(b.schema().index_of(name).expect("column")).clone();
                let bucket = col("bucket");
                let bucket = bucket.as_any().downcast_ref::<TimestampMicrosecondArray>().expect("bucket");
                let resource = col("resource");
                let resource = resource.as_any().downcast_ref::<StringArray>().expect("resource");
                let series = col("series");
                let series = series.as_any().downcast_ref::<StringArray>().expect("series");
                let count = col("count");
                let count = count.as_any().downcast_ref::<Int64Array>().expect("count");
                let sum = col("sum");
                let sum = sum.as_any().downcast_ref::<Float64Array>().expect("sum");
                let max = col("max");
                let max = max.as_any().downcast_ref::<Float64Array>().expect("max");
                for i in 0..b.num_rows() {
                    rows.push((bucket.value(i) / 1000, resource.value(i).to_string(), series.value(i).to_string(), count.value(i), sum.value(i), max.value(i)));
                }
                assert_eq!(bucket.null_count(), 0);
            }
            out.insert(key.to_string(), rows);
        }
        out
    })
}

/// What the Parquet objects must hold: the expected rows of every final window.
fn expected_objects(expected: &BTreeMap<(i64, String, String), Metric1mRow>, final_before: i64) -> BTreeMap<String, Vec<(i64, String, String, i64, f64, f64)>> {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for row in expected.values().filter(|r| r.bucket + 60_000 <= final_before) {
        let t = chrono::DateTime::from_timestamp_millis(row.bucket).expect("time");
        let key = format!("views/metric_1m/date={}/hour={}/metric_1m-{}.parquet", t.format("%Y-%m-%d"), t.format("%H"), t.format("%Y%m%dT%H%M%SZ"));
        out.entry(key).or_default().push((row.bucket, row.resource.clone(), row.series.clone(), row.count, row.sum.0, row.max.0));
    }
    out
}

/// Committed offsets of the group and the topic's end offsets, per partition.
fn offsets(setup: &Setup) -> (Vec<i64>, Vec<i64>) {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", kafka_brokers()).set("group.id", &setup.group).create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(&setup.topic, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).expect("committed");
    let committed = (0..PARTITIONS)
        .map(|p| match committed.find_partition(&setup.topic, p).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect();
    let ends = (0..PARTITIONS).map(|p| consumer.fetch_watermarks(&setup.topic, p, Duration::from_secs(10)).expect("watermarks").1).collect();
    (committed, ends)
}

fn wait_for_output(setup: &Setup, engine: &mut Engine, expected: &BTreeMap<(i64, String, String), Metric1mRow>, objects: usize) {
    let want: BTreeMap<_, _> = expected.iter().map(|(k, r)| (k.clone(), as_pg_row(r))).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        engine.assert_running();
        let rows = normalise(postgres_rows(&setup.schema));
        if rows == want {
            break;
        }
        if std::time::Instant::now() > deadline {
            let wrong: Vec<_> = want.iter().filter(|(k, v)| rows.get(*k) != Some(*v)).map(|(k, v)| (k, v, rows.get(k))).take(5).collect();
            let log = engine.log_text();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!("postgres never matched: {} rows, {} expected; first differences (key, want, got): {wrong:#?}\nengine log (last lines, newest first):\n{}", rows.len(), want.len(), tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for("every final window in parquet", Duration::from_secs(60), || {
        engine.assert_running();
        (parquet_objects(setup).len() >= objects).then_some(())
    });
    wait_for("offsets committed up to the end", Duration::from_secs(60), || {
        engine.assert_running();
        let (committed, ends) = offsets(setup);
        (committed == ends).then_some(())
    });
}

#[test]
fn otlp_metrics_from_kafka_reach_postgres_parquet_and_dead_letters() {
    let setup = Setup::new("e2e_metrics");
    let data = scrapes(0, 48);
    setup.produce(&data);
    setup.produce_garbage(5);
    let tick_at = T0 + 10 * 60_000;
    setup.produce_ticks(tick_at);

    let mut all = data.clone();
    all.extend((0..PARTITIONS).map(|p| Point { ts: tick_at, service: format!("svc-{p}"), pod: "tick".into(), value: 0.0 }));
    let expected = expected_metric_1m(&all, METRIC);
    let final_before = tick_at - 30_000;
    let want_objects = expected_objects(&expected, final_before);
    assert_eq!(want_objects.len(), 8);

    let mut engine = Engine::start(&setup.job, &setup.dir.path().join("engine.log"));
    wait_for_output(&setup, &mut engine, &expected, want_objects.len());
    // Dead letters: every malformed message, with its reason and origin; nothing else.
    let dead = wait_for("5 dead letters", Duration::from_secs(30), || {
        let dead = setup.dead_letters();
        (dead.len() >= 5).then_some(dead)
    });
    engine.stop();

    assert_eq!(normalise(postgres_rows(&setup.schema)).len(), expected.len());
    assert_eq!(parquet_objects(&setup), want_objects);
    assert_eq!(dead.len(), 5, "{dead:?}");
    for d in &dead {
        assert_eq!(d["kind"], "decode");
        assert!(d["reason"].as_str().unwrap_or_default().contains("otlp protobuf"), "{d}");
        assert!(d["source"].as_str().unwrap_or_default().starts_with(&format!("kafka:{}/", setup.topic)), "{d}");
        assert!(d["payload"].as_str().unwrap_or_default().starts_with("not otlp #"), "{d}");
    }
    let (committed, ends) = offsets(&setup);
    assert_eq!(committed, ends);
    // The progress row records the last frontier.
    let progress: (i64,) = runtime().block_on(async {
        let pool = sqlx::PgPool::connect(&pg_url()).await.expect("connect");
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT epoch FROM \"{}\".ob_progress WHERE job = $1 AND sink = 'postgres'", setup.schema))).bind(&setup.schema).fetch_one(&pool).await.expect("progress")
    });
    assert!(progress.0 > 0);
}

#[test]
fn kill_9_in_the_middle_loses_and_duplicates_nothing() {
    let setup = Setup::new("e2e_restart");
    // The kill falls inside the window [4m, 5m): its first half is read before, its second after.
    let first = scrapes(0, 27);
    let second = scrapes(27, 48);
    let tick_at = T0 + 10 * 60_000;
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    all.extend((0..PARTITIONS).map(|p| Point { ts: tick_at, service: format!("svc-{p}"), pod: "tick".into(), value: 0.0 }));
    let expected = expected_metric_1m(&all, METRIC);
    let want_objects = expected_objects(&expected, tick_at - 30_000);

    setup.produce(&first);
    let mut engine = Engine::start(&setup.job, &setup.dir.path().join("engine-1.log"));
    // Let the first half be processed and committed, with the last minutes' windows still open.
    let first_expected = expected_metric_1m(&first, METRIC);
    wait_for("first half in postgres", Duration::from_secs(120), || {
        engine.assert_running();
        (postgres_rows(&setup.schema).len() == first_expected.len()).then_some(())
    });
    wait_for("first half committed", Duration::from_secs(60), || {
        let (committed, ends) = offsets(&setup);
        (committed == ends).then_some(())
    });
    let objects_before: BTreeSet<String> = parquet_objects(&setup).into_keys().collect();
    assert!(objects_before.len() < want_objects.len(), "windows at the end of the first half must still be open");
    engine.kill9();

    setup.produce(&second);
    setup.produce_ticks(tick_at);
    let mut engine = Engine::start(&setup.job, &setup.dir.path().join("engine-2.log"));
    wait_for_output(&setup, &mut engine, &expected, want_objects.len());
    engine.stop();

    // Exactly the uninterrupted result: every row complete (no missing input), one object per window.
    let want: BTreeMap<_, _> = expected.iter().map(|(k, r)| (k.clone(), as_pg_row(r))).collect();
    assert_eq!(normalise(postgres_rows(&setup.schema)), want);
    assert_eq!(parquet_objects(&setup), want_objects);
    assert!(setup.dead_letters().is_empty(), "{:?}", setup.dead_letters());
}
