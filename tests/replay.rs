//! Batch replay (`observebridge replay`): the same input run live through Kafka and replayed
//! from the raw archive gives the same rows and the same Parquet objects; a replay over output
//! that is already right changes nothing; window bounds, listing, the Collector layout, a
//! lateness change, and unreadable objects.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use object_store::ObjectStoreExt;
use observebridge::job::JobSpec;
use observebridge::replay::{self, ReplayRequest, ReplaySummary};
use observebridge_connectors::archive::{Layout, OnError};
use observebridge_connectors::generator::{GeneratorConfig, Generator};
use observebridge_connectors::parquet::{ObjectStoreConfig, ParquetSink};
use observebridge_connectors::source::{Poll, Source};

const T0: &str = "2026-11-20T10:00:00Z";

fn ms(rfc3339: &str) -> i64 {
    replay::parse_time(rfc3339).expect("time")
}

fn run_replay(spec_yaml: &str, request: &ReplayRequest) -> anyhow::Result<ReplaySummary> {
    let spec = JobSpec::parse(spec_yaml, "test").expect("spec");
    replay::replay(spec, request, Arc::new(AtomicBool::new(false)), |_| {})
}

/// Every row of `schema.table` whose `anchor` lies in `[from, to)`, as JSON text, sorted.
fn rows(schema: &str, table: &str, anchor: &str, from: i64, to: i64) -> Vec<String> {
    runtime().block_on(async {
        let pool = sqlx::PgPool::connect(&pg_url()).await.expect("connect");
        let sql = format!(
            "SELECT row_to_json(t)::text FROM \"{schema}\".\"{table}\" t WHERE {anchor} >= TIMESTAMPTZ 'epoch' + $1 * INTERVAL '1 millisecond' \
             AND {anchor} < TIMESTAMPTZ 'epoch' + $2 * INTERVAL '1 millisecond' ORDER BY 1"
        );
        let mut out: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).fetch_all(&pool).await.expect("rows");
        out.sort();
        out
    })
}

/// Every object under `prefix` of the store: relative key -> bytes.
fn objects(store: &ObjectStoreConfig) -> BTreeMap<String, Vec<u8>> {
    let sink = ParquetSink::new(store).expect("store");
    runtime().block_on(async {
        let mut out = BTreeMap::new();
        for location in list_keys(sink.store().as_ref(), sink.prefix()).await {
            let bytes = sink.store().get(&location).await.expect("get").bytes().await.expect("bytes");
            let relative = location.as_ref().strip_prefix(sink.prefix().as_ref()).unwrap_or(location.as_ref()).trim_start_matches('/').to_string();
            out.insert(relative, bytes.to_vec());
        }
        out
    })
}

fn s3(bucket: &str, prefix: &str) -> ObjectStoreConfig {
    ObjectStoreConfig { url: format!("s3://{bucket}/{prefix}"), endpoint: Some(s3_endpoint()), allow_http: Some(true), ..ObjectStoreConfig::default() }
}

/// The views a replay rewrites and the column that places their rows in a window.
const ANCHORED: &[(&str, &str)] = &[
    ("metric_1m", "bucket"),
    ("service_call_5m", "bucket"),
    ("log_pattern_5m", "bucket"),
    ("change_event", "detected_at"),
    ("raw_locator", "t_from"),
];

fn estate_job(name: &str, schema: &str, bucket: &str, prefix: &str, sources: &str, dead: &Path) -> String {
    format!(
        r#"
name: {name}
workers: 2
lateness: 2m
idle_timeout: 3s
epochs: {{ interval: 200ms, max_records: 100 }}
sql: {{ enabled: false }}
sources:
{sources}
views:
  metric_1m: {{}}
  service_call_5m: {{}}
  log_pattern_5m: {{}}
  change_event: {{}}
  change_correlation: {{}}
  raw_archive: {{}}
sinks:
  postgres:
    url: {pg}
    schema: {schema}
  parquet:
    url: s3://{bucket}/{prefix}
    endpoint: {endpoint}
    allow_http: true
dead_letter:
  file:
    path: {dead}
"#,
        pg = pg_url(),
        endpoint = s3_endpoint(),
        dead = dead.display()
    )
}

/// The generator's messages in arrival order: (signal, payload).
fn generated(start: &str, duration: &str, late_fraction: f64) -> Vec<(String, Vec<u8>)> {
    let config: GeneratorConfig = serde_yaml_ng::from_str(&format!(
        "{{ seed: 11, services: 10, pods_per_service: 1, scrape_interval: 10s, start: {start}, pace: fast, duration: {duration}, \
           disorder: {{ max_delay: 40s, late_fraction: {late_fraction}, late_by: 3m }} }}"
    ))
    .expect("generator config");
    let mut generator = Generator::new(&config).expect("generator");
    let mut out = Vec::new();
    let mut buffer = Vec::new();
    while generator.poll(10_000, Duration::from_millis(10), &mut buffer).expect("poll") == Poll::Open || !buffer.is_empty() {
        for record in buffer.drain(..) {
            let signal = Generator::partition_signal(record.partition).expect("signal").name().to_string();
            // One trace in 16: enough edges, and a debug build keeps up.
            let payload = if signal == "spans" { common::spans::sample_traces(&record.payload, 16) } else { Some(record.payload) };
            if let Some(payload) = payload {
                out.push((signal, payload));
            }
        }
    }
    out
}

#[test]
fn stream_through_kafka_equals_replay_from_the_archive_and_a_second_replay_changes_nothing() {
    let id = unique("rpl");
    let bucket = id.replace('_', "-");
    create_bucket(&bucket);
    let dir = tempfile::tempdir().expect("tempdir");
    let signals = [("metrics", "otlp_proto"), ("spans", "otlp_proto"), ("logs", "otlp_proto"), ("k8s", "json_lines")];
    let mut sources = String::new();
    for (signal, format) in signals {
        let topic = format!("{id}_{signal}");
        observebridge_connectors::kafka::create_topic(&kafka_brokers(), &topic, 1).expect("topic");
        observebridge_connectors::kafka::create_topic(&kafka_brokers(), &format!("{topic}_checkpoints"), 1).expect("checkpoint topic");
        sources.push_str(&format!(
            "  - name: {signal}\n    signal: {signal}\n    format: {format}\n    kafka: {{ brokers: {b}, topics: [{topic}], group_id: {id}_{signal}, start: earliest, checkpoint_topic: {topic}_checkpoints }}\n",
            b = kafka_brokers()
        ));
    }
    // Ten minutes of the estate, out of order (arrivals up to 40 s late), then a little of it an
    // hour later so that every minute of the first part becomes final.
    let mut messages = generated(T0, "10m", 0.0);
    let body = messages.len();
    messages.extend(generated("2026-11-20T11:00:00Z", "30s", 0.0));
    let produce_all = |messages: Vec<(String, Vec<u8>)>| {
        let mut by_topic: BTreeMap<String, Vec<(i32, Vec<u8>)>> = BTreeMap::new();
        for (signal, payload) in messages {
            by_topic.entry(format!("{id}_{signal}")).or_default().push((0, payload));
        }
        for (topic, batch) in by_topic {
            produce(&topic, batch);
        }
    };
    produce_all(messages);

    let live_schema = format!("{id}_live");
    let live_dead = dir.path().join("live_dead.jsonl");
    let live_job = estate_job(&format!("{id}_live"), &live_schema, &bucket, "live", &sources, &live_dead);
    let job_path = dir.path().join("live.yaml");
    std::fs::write(&job_path, &live_job).expect("job");
    let engine = Engine::start(&job_path, &dir.path().join("live.log"));
    // Done once the watermark passed the hour (all of the first part is final and archived).
    wait_for("the live job's watermark past 10:50", Duration::from_secs(600), || {
        let progress: Vec<String> = runtime().block_on(async {
            let pool = sqlx::PgPool::connect(&pg_url()).await.ok()?;
            let sql = format!("SELECT watermark::text FROM \"{live_schema}\".ob_progress WHERE watermark >= '2026-11-20T10:50:00Z'");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.ok()
        })?;
        (!progress.is_empty()).then_some(())
    });
    // Records of 10:02 arriving now, an hour behind the watermark: late, dead-lettered, in no
    // view and not in the archive.
    produce_all(generated("2026-11-20T10:02:00Z", "20s", 0.0));
    let late = wait_for("late records dead-lettered", Duration::from_secs(120), || {
        let late = std::fs::read_to_string(&live_dead).unwrap_or_default().lines().filter(|l| l.contains("\"late\"")).count();
        (late > 0).then_some(late)
    });
    std::thread::sleep(Duration::from_secs(3));
    engine.stop();

    // Replay [10:00, 10:10) from the live run's raw archive into a fresh schema and prefix.
    let (from, to) = (ms(T0), ms("2026-11-20T10:10:00Z"));
    let replay_schema = format!("{id}_replay");
    let replay_job = estate_job(&format!("{id}_replay"), &replay_schema, &bucket, "replay", "  - { name: unused, generator: { duration: 1s } }\n", &dir.path().join("replay_dead.jsonl"));
    let request = ReplayRequest { from_ms: from, to_ms: to, source: Some(format!("s3://{bucket}/live")), layout: Layout::RawArchive, partition_format: None, on_error: OnError::Stop };
    // The template library lives in Postgres and a replay starts from it, so that fingerprint ids
    // are those of the live run (Drain's clusters depend on the order lines come in): the fresh
    // schema gets the live run's library, as a replay into the job's own database has it.
    runtime().block_on(async {
        let cfg: observebridge_connectors::postgres::PostgresConfig = serde_json::from_value(serde_json::json!({"url": pg_url(), "schema": replay_schema})).expect("pg config");
        let sink = observebridge_connectors::postgres::PostgresSink::connect(&cfg).await.expect("connect");
        sink.migrate().await.expect("migrate");
        let sql = format!("INSERT INTO \"{replay_schema}\".log_pattern SELECT * FROM \"{live_schema}\".log_pattern");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(sink.pool()).await.expect("copy the template library");
    });
    let summary = run_replay(&replay_job, &request).expect("replay");
    println!("stream = replay: {body} messages produced, {late} late; replay read {} objects, {} records in {:.2} s", summary.objects, summary.records, summary.seconds);
    assert!(summary.records > 0 && summary.skipped.is_empty());

    let mut compared = 0;
    for (view, anchor) in ANCHORED {
        let live = rows(&live_schema, view, anchor, from, to);
        let replayed = rows(&replay_schema, view, anchor, 0, 4_000_000_000_000);
        assert_eq!(live, replayed, "{view}: live rows of the window differ from the replay's");
        compared += live.len();
        println!("  {view}: {} rows equal", live.len());
    }
    assert!(rows(&live_schema, "service_call_5m", "bucket", from, to).len() > 10 && compared > 1000, "the window must hold real output");

    // Parquet: every view window in [from, to) has the same object, byte for byte.
    let live_objects = objects(&s3(&bucket, "live"));
    let replay_objects = objects(&s3(&bucket, "replay"));
    let in_window = |key: &str| -> bool {
        let view = key.split('/').next().unwrap_or_default();
        view != "topo_edge_time" && ParquetSink::window_start(view, key).is_some_and(|at| at >= from && at < to)
    };
    let live_window: BTreeMap<&String, &Vec<u8>> = live_objects.iter().filter(|(k, _)| in_window(k)).collect();
    let replay_window: BTreeMap<&String, &Vec<u8>> = replay_objects.iter().filter(|(k, _)| !k.starts_with("raw/")).collect();
    assert_eq!(live_window.keys().collect::<Vec<_>>(), replay_window.keys().collect::<Vec<_>>(), "the same Parquet objects");
    for (key, bytes) in &live_window {
        assert!(replay_window[key] == *bytes, "{key}: the replay's object differs from the live run's");
    }
    // Ten metric_1m minutes, two 5-minute windows each of service_call_5m and log_pattern_5m.
    assert!(live_window.len() >= 14, "metric_1m, service_call_5m and log_pattern_5m windows: {}", live_window.len());
    assert!(!replay_objects.keys().any(|k| k.starts_with("raw/")), "a replay of the raw archive does not write the archive again");

    // The same replay over the live job's own output changes nothing.
    let again = run_replay(&live_job, &ReplayRequest { source: None, ..request }).expect("second replay");
    for (view, counts) in &again.postgres {
        assert_eq!((counts.changed, counts.removed), (0, 0), "{view}: a replay of the same input changed rows: {counts:?}");
    }
    assert!(again.parquet_deleted.is_empty());
    assert_eq!(objects(&s3(&bucket, "live")), live_objects, "Parquet objects are rewritten with the same bytes");
    println!("second replay over the live output: {} views, 0 rows changed, 0 removed", again.postgres.len());
}

/// OTLP JSON metrics, one gauge point per file, laid out as the Collector's S3 exporter writes
/// them: `year=/month=/day=/hour=/minute=/metrics_<n>.json` by the minute the file was written.
fn collector_file(root: &Path, written_at: i64, n: usize, point_ms: i64, value: f64) {
    let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(written_at).expect("time");
    let dir = root.join(at.format("year=%Y/month=%m/day=%d/hour=%H/minute=%M").to_string());
    std::fs::create_dir_all(&dir).expect("dir");
    let body = serde_json::json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeMetrics": [{"metrics": [{"name": "queue_depth", "gauge": {"dataPoints": [
            {"timeUnixNano": (point_ms as i128 * 1_000_000).to_string(), "asDouble": value}
        ]}}]}]
    }]});
    let mut file = std::fs::File::create(dir.join(format!("metrics_{n}.json"))).expect("file");
    writeln!(file, "{body}").expect("write");
}

fn metric_job(name: &str, schema: &str, parquet: &Path, lateness: &str, dead: &Path) -> String {
    format!(
        r#"
name: {name}
workers: 1
lateness: {lateness}
epochs: {{ max_records: 1 }}
sql: {{ enabled: false }}
sources:
  - {{ name: unused, generator: {{ duration: 1s }} }}
views:
  metric_1m: {{}}
sinks:
  postgres: {{ url: {pg}, schema: {schema} }}
  parquet: {{ url: {parquet} }}
dead_letter: {{ file: {{ path: {dead} }} }}
"#,
        pg = pg_url(),
        parquet = parquet.display(),
        dead = dead.display()
    )
}

/// (bucket ms, count, max) of metric_1m.
fn buckets(schema: &str) -> Vec<(i64, i64, f64)> {
    runtime().block_on(async {
        let pool = sqlx::PgPool::connect(&pg_url()).await.expect("connect");
        let sql = format!("SELECT (extract(epoch FROM bucket) * 1000)::bigint, count, max FROM \"{schema}\".metric_1m ORDER BY 1");
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.expect("rows")
    })
}

#[test]
fn collector_files_window_bounds_listing_lateness_change_and_unreadable_objects() {
    let id = unique("rplc");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("otel");
    let (t1, t2) = (ms(T0), ms("2026-11-20T10:10:00Z"));
    let minute = 60_000;
    // Records exactly on the bounds and next to them, each file written in its point's minute.
    collector_file(&input, t1 - 1, 1, t1 - 1, 1.0);
    collector_file(&input, t1, 2, t1, 2.0);
    collector_file(&input, t1 + 5 * minute, 3, t1 + 5 * minute, 3.0);
    collector_file(&input, t2 - 1, 4, t2 - 1, 4.0);
    collector_file(&input, t2, 5, t2, 5.0);
    // Written at 10:08 about 10:01: later than a 2-minute lateness (the watermark is at 10:03
    // after the 10:05 record), within a 10-minute one.
    collector_file(&input, t1 + 8 * minute, 6, t1 + minute + 1, 60.0);
    // Far outside the window: never listed.
    collector_file(&input, t1 - 5 * 3_600_000, 7, t1 - 5 * 3_600_000, 7.0);
    collector_file(&input, t2 + 3 * 3_600_000, 8, t2 + 3 * 3_600_000, 8.0);

    let schema = id.clone();
    let job = metric_job(&id, &schema, &dir.path().join("out"), "2m", &dir.path().join("dead.jsonl"));
    let request = ReplayRequest {
        from_ms: t1,
        to_ms: t2,
        source: Some(input.display().to_string()),
        layout: Layout::Collector,
        partition_format: None,
        on_error: OnError::Stop,
    };
    let summary = run_replay(&job, &request).expect("replay");
    // Read range [09:59, 10:12): hours 09 and 10 of one signal, two list requests; the six
    // files of that range, not the two hours away.
    assert_eq!(summary.list_requests, 2, "{summary:?}");
    assert_eq!(summary.objects, 6, "{summary:?}");
    let got = buckets(&schema);
    let bucket_of = |t: i64| t - t.rem_euclid(minute);
    assert_eq!(
        got,
        vec![(t1, 1, 2.0), (t1 + 5 * minute, 1, 3.0), (bucket_of(t2 - 1), 1, 4.0)],
        "a record at T1 counts, one at T2 does not; nothing outside [T1, T2); the late record is dropped"
    );
    assert_eq!(summary.dead_letters, 1, "the record later than the lateness is a dead letter");
    let unchanged = summary.postgres["metric_1m"];
    assert_eq!((unchanged.changed, unchanged.removed), (3, 0));

    // The same window with a 10-minute lateness: exactly the 10:01 row is new.
    let job10 = metric_job(&id, &schema, &dir.path().join("out"), "10m", &dir.path().join("dead.jsonl"));
    let summary = run_replay(&job10, &request).expect("replay with the new lateness");
    let counts = summary.postgres["metric_1m"];
    assert_eq!((counts.changed, counts.removed, counts.unchanged), (1, 0, 3), "only the affected row is rewritten: {counts:?}");
    assert!(buckets(&schema).contains(&(t1 + minute, 1, 60.0)), "{:?}", buckets(&schema));

    // An unreadable object: `stop` fails naming it and writes nothing; `skip` reports it and goes on.
    let bad_dir = input.join("year=2026/month=11/day=20/hour=10/minute=07");
    std::fs::create_dir_all(&bad_dir).expect("dir");
    std::fs::write(bad_dir.join("metrics_bad.json.gz"), b"\x1f\x8b\x08\x00 not a gzip stream").expect("corrupt file");
    let error = run_replay(&job10, &request).expect_err("a corrupt object stops the replay");
    assert!(format!("{error:#}").contains("metrics_bad.json.gz"), "the error names the object: {error:#}");
    let summary = run_replay(&job10, &ReplayRequest { on_error: OnError::Skip, ..request.clone() }).expect("replay skipping");
    assert_eq!(summary.skipped.len(), 1, "{summary:?}");
    assert!(summary.skipped[0].0.ends_with("metrics_bad.json.gz"), "{:?}", summary.skipped);
    assert_eq!(summary.postgres["metric_1m"].changed, 0, "the skipped object held no row of the window");

    // A file that is not OTLP JSON is read, and its record is a dead letter naming the reason.
    std::fs::write(bad_dir.join("metrics_garbage.json"), b"{\"resourceMetrics\": [ truncated").expect("garbage file");
    let summary = run_replay(&job10, &ReplayRequest { on_error: OnError::Skip, ..request.clone() }).expect("replay with a garbage record");
    assert_eq!(summary.dead_letters, 1, "{summary:?}");
    assert_eq!(summary.postgres["metric_1m"].changed, 0);

    // A window that cuts a view's window is refused before anything is read.
    let error = run_replay(&job10, &ReplayRequest { from_ms: t1 + 30_000, ..request }).expect_err("off a boundary");
    assert!(format!("{error:#}").contains("--from"), "{error:#}");
}

#[test]
fn replay_command_prints_progress_and_a_summary() {
    let id = unique("rplcli");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("otel");
    let t1 = ms(T0);
    for i in 0..5 {
        collector_file(&input, t1 + i * 60_000, i as usize, t1 + i * 60_000 + 5, i as f64);
    }
    let job = dir.path().join("job.yaml");
    std::fs::write(&job, metric_job(&id, &id, &dir.path().join("out"), "2m", &dir.path().join("dead.jsonl"))).expect("job");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_observebridge"))
        .args(["replay", "--job", job.to_str().expect("utf-8"), "--from", T0, "--to", "2026-11-20T10:05:00Z", "--layout", "collector", "--json", "--source"])
        .arg(&input)
        .output()
        .expect("run replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary JSON on stdout");
    assert_eq!(summary["records"], 5, "{summary}");
    assert_eq!(summary["postgres"]["metric_1m"]["changed"], 5, "{summary}");
    assert!(stderr.contains("replay done: 5 objects"), "{stderr}");
    assert!(stderr.contains("postgres metric_1m: 5 changed, 0 removed"), "{stderr}");
    let parquet = std::fs::read_dir(dir.path().join("out/metric_1m/date=2026-11-20/hour=10")).expect("parquet dir").count();
    assert_eq!(parquet, 5, "one object per replayed minute");
}

#[test]
fn replay_through_the_jobs_api_is_checked_started_and_reports_its_summary() {
    use observebridge::server::JobManager;
    let id = unique("rplapi");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("otel");
    let t1 = ms(T0);
    for i in 0..3 {
        collector_file(&input, t1 + i * 60_000, i as usize, t1 + i * 60_000 + 7, 10.0 + i as f64);
    }
    // The job reads an empty file; the replay reads the Collector files.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, b"").expect("empty input");
    let spec = metric_job(&id, &id, &dir.path().join("out"), "2m", &dir.path().join("dead.jsonl"))
        .replace("  - { name: unused, generator: { duration: 1s } }", &format!("  - {{ name: f, signal: metrics, format: json_lines, file: {{ paths: [{}] }} }}", empty.display()));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async {
        let store = observebridge::server::store::FileStore::open(&dir.path().join("state")).expect("store");
        let manager = Arc::new(JobManager::new(Box::new(store)));
        manager.submit(&spec).await.expect("submit");
        let app = observebridge::server::api::router(manager, vec!["t0ken".into()]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/v1/jobs/{id}/replays", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let post = |body: serde_json::Value| http.post(&url).bearer_auth("t0ken").header("content-type", "application/json").body(body.to_string()).send();

        // Refused before anything starts: a bound off metric_1m's minute, and a bad time.
        let refused = post(serde_json::json!({"from": "2026-11-20T10:00:30Z", "to": "2026-11-20T10:03:00Z"})).await.expect("post");
        assert_eq!(refused.status().as_u16(), 400);
        assert!(refused.text().await.expect("body").contains("--from"));
        let refused = post(serde_json::json!({"from": "yesterday", "to": 1})).await.expect("post");
        assert_eq!(refused.status().as_u16(), 400);
        assert!(refused.text().await.expect("body").contains("from"));

        let started = post(serde_json::json!({"from": T0, "to": "2026-11-20T10:03:00Z", "source": input.display().to_string(), "layout": "collector"})).await.expect("post");
        assert_eq!(started.status().as_u16(), 202);
        let started: serde_json::Value = serde_json::from_str(&started.text().await.expect("body")).expect("status");
        let replay = started["id"].as_str().expect("replay id").to_string();
        let done = loop {
            let text = http.get(format!("{url}/{replay}")).bearer_auth("t0ken").send().await.expect("get").text().await.expect("body");
            let status: serde_json::Value = serde_json::from_str(&text).expect("json");
            if status["state"] != "running" {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["records"], 3, "{done}");
        assert_eq!(done["summary"]["postgres"]["metric_1m"]["changed"], 3, "{done}");
        let missing = http.get(format!("{url}/r999")).bearer_auth("t0ken").send().await.expect("get");
        assert_eq!(missing.status().as_u16(), 404);
    });
}
