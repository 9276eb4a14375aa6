//! `observebridge serve` and `observebridge job ...`, against a real server on 127.0.0.1:0 and
//! the real services started by `scripts/test.sh`: the API round trip, refused specs (one test per
//! kind of mistake), two jobs side by side, a failing job next to a running one, a server restart
//! that restarts its jobs without duplicate output, and the Kafka view topics against Postgres.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::spans::{kv, message_for, S};
use common::*;
use observebridge::client::{Client, ClientError};
use observebridge::server::{JobManager, JobState, JobStatus};
use observebridge_connectors::kafka::create_topic;
use opentelemetry_proto::tonic::trace::v1::span;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;

const TOKEN: &str = "s3cret-token";
const METRIC: &str = "queue.depth";
/// 2026-11-25T10:00:00Z.
const T0: i64 = 1_795_600_800_000;

/// The server as a child process; its first stdout line names the bound address.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Server {
    fn start(state: &Path, log: &Path) -> Server {
        Server::start_with(state, log, &[])
    }

    fn start_with(state: &Path, log: &Path, extra: &[&str]) -> Server {
        let err = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_observebridge"))
            .args(["serve", "--listen", "127.0.0.1:0", "--state-dir", state.to_str().expect("utf-8"), "--token", TOKEN])
            .args(extra)
            .env("RUST_LOG", "info,observebridge=debug")
            .env_remove("OBSERVEBRIDGE_API_TOKENS")
            .stdout(Stdio::piped())
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .expect("start observebridge serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("server did not print its address: {}", std::fs::read_to_string(log).unwrap_or_default()));
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
        Server { child, url, log: log.to_path_buf() }
    }

    fn client(&self) -> Client {
        Client::new(&self.url, Some(TOKEN.to_string())).expect("client")
    }

    /// `observebridge job ARGS --server URL --token TOKEN`: (exit code, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_observebridge"))
            .args(["job"])
            .args(args)
            .args(["--server", &self.url, "--token", TOKEN])
            .env_remove("OBSERVEBRIDGE_TOKEN")
            .output()
            .expect("run the cli");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// SIGTERM: jobs stop after their current frontier; the server exits 0.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "server exited with {status}: {}", self.log_text());
                return;
            }
            assert!(Instant::now() < deadline, "server did not stop: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(server: &Server, id: &str) -> JobStatus {
    runtime().block_on(server.client().status(id)).unwrap_or_else(|e| panic!("status of {id}: {e}\n{}", server.log_text()))
}

/// Waits until the job made every record of its Kafka topic(s) durable in `sink`.
fn wait_durable(server: &Server, id: &str, sink: &str, messages: u64) -> JobStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status(server, id);
        assert_ne!(s.state, JobState::Failed, "job {id} failed: {:?}\n{}", s.reason, server.log_text());
        let durable: u64 = s.sinks.get(sink).and_then(|p| p.positions.as_object().map(|o| o.values().filter_map(|v| v.as_u64()).sum())).unwrap_or(0);
        if durable >= messages && s.records_in >= messages {
            return s;
        }
        assert!(Instant::now() < deadline, "job {id}: {messages} messages not durable in {sink}: {s:#?}\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn points(tenant_tag: &str, minutes: std::ops::Range<i64>) -> Vec<Point> {
    let mut out = Vec::new();
    for m in minutes {
        for i in 0..4 {
            out.push(Point { ts: T0 + m * 60_000 + i * 7_000, service: format!("svc-{tenant_tag}"), pod: format!("pod-{}", i % 2), value: (m * 10 + i) as f64 });
        }
    }
    out
}

/// One message per point, spread over `partitions`.
fn produce_points(topic: &str, tenant: Option<&str>, points: &[Point], partitions: i32) {
    let messages: Vec<(i32, Vec<u8>)> = points.iter().enumerate().map(|(i, p)| ((i as i32) % partitions, otlp_gauge_message_for(tenant, std::slice::from_ref(p), METRIC))).collect();
    produce(topic, messages);
}

fn metric_job(name: &str, topic: &str, schema: &str, dir: &Path, extra_sinks: &str) -> String {
    kafka_metric_job(&MetricJob { name, topic, schema, workers: 1, lateness: "30s", extra_sinks, dead_letters: &dir.join(format!("{name}-dead.jsonl")) })
}

/// metric_1m rows of a schema: (bucket ms, tenant, resource, series) -> count.
fn metric_rows(schema: &str) -> BTreeMap<(i64, String, String, String), i64> {
    let rows: Vec<(chrono::DateTime<chrono::Utc>, String, String, String, i64)> = query(schema, "metric_1m", "SELECT bucket, tenant, resource, series, count FROM {s}.metric_1m");
    rows.into_iter().map(|r| ((r.0.timestamp_millis(), r.1, r.2, r.3), r.4)).collect()
}

#[test]
fn api_round_trip_submit_list_status_stop_with_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("state"), &dir.path().join("server.log"));
    let name = unique("roundtrip");
    let topic = unique("rt_metrics");
    create_topic(&kafka_brokers(), &topic, 2).expect("topic");
    let pts = points("a", 0..3);
    produce_points(&topic, None, &pts, 2);
    let spec = dir.path().join("job.yaml");
    std::fs::write(&spec, metric_job(&name, &topic, &name, dir.path(), "")).expect("spec");

    // Without a token, or with a wrong one: 401, exit code 5.
    let anonymous = Client::new(&server.url, None).expect("client");
    match runtime().block_on(anonymous.list()) {
        Err(e @ ClientError::Refused { status: 401, .. }) => assert_eq!(e.exit_code(), 5),
        other => panic!("expected 401, got {other:?}"),
    }
    let wrong = Client::new(&server.url, Some("nope".into())).expect("client");
    assert!(matches!(runtime().block_on(wrong.status("x")), Err(ClientError::Refused { status: 401, .. })));

    let (code, out, err) = server.cli(&["submit", spec.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "submit: {out}{err}");
    assert!(out.contains(&format!("submitted job `{name}`")), "{out}");

    let s = wait_durable(&server, &name, "postgres", pts.len() as u64);
    assert_eq!(s.state, JobState::Running);
    assert_eq!(s.sources.len(), 1);
    assert_eq!(s.sources[0].partitions.len(), 2, "{:?}", s.sources);
    assert!(s.watermark_ms.is_some());
    // Lag comes from librdkafka's statistics (every 5 s): caught up, every partition at 0.
    wait_for("per-partition lag in the status", Duration::from_secs(30), || {
        let s = status(&server, &name);
        (s.sources[0].lag == Some(0) && s.sources[0].partitions.iter().all(|p| p.lag == Some(0))).then_some(())
    });

    let (code, out, _) = server.cli(&["list"]);
    assert_eq!(code, 0);
    let line = out.lines().find(|l| l.starts_with(&name)).unwrap_or_else(|| panic!("{name} not listed: {out}"));
    assert!(line.contains("running"), "{line}");

    let (code, out, _) = server.cli(&["status", &name]);
    assert_eq!(code, 0, "{out}");
    for part in ["state", "running", "postgres", &format!("kafka:{topic}/0"), &format!("kafka:{topic}/1"), "watermark"] {
        assert!(out.contains(part), "`{part}` missing from status:\n{out}");
    }

    // Restart: stopped after its frontier, started again from the committed offsets.
    let (code, out, err) = server.cli(&["restart", &name]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restarted"), "{out}");
    let s = wait_durable(&server, &name, "postgres", pts.len() as u64);
    assert_eq!(s.state, JobState::Running);

    // A second submit of the same name: 409, exit code 4.
    let (code, _, err) = server.cli(&["submit", spec.to_str().expect("utf-8")]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("exists"), "{err}");
    // Unknown job: exit code 3.
    assert_eq!(server.cli(&["status", "no-such-job"]).0, 3);

    let (code, out, err) = server.cli(&["stop", &name]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("stopped"), "{out}");
    let s = status(&server, &name);
    assert_eq!(s.state, JobState::Stopped);
    assert_eq!(s.reason.as_deref(), Some("stopped"));
    let expected = expected_metric_1m(&pts, METRIC);
    let got = metric_rows(&name);
    assert_eq!(got.len(), expected.len());
    for ((bucket, resource, series), row) in &expected {
        assert_eq!(got.get(&(*bucket, "default".to_string(), resource.clone(), series.clone())), Some(&(row.count as i64)), "{bucket} {resource} {series}");
    }

    // Purged: gone from the list, and the name can be used again.
    let (code, out, _) = server.cli(&["stop", &name, "--purge"]);
    assert_eq!(code, 0, "{out}");
    assert!(runtime().block_on(server.client().list()).expect("list").iter().all(|j| j.id != name));
    assert_eq!(server.cli(&["submit", spec.to_str().expect("utf-8")]).0, 0);
    assert_eq!(server.cli(&["stop", &name]).0, 0);
}

// ---- Refused specs: an in-process server (the same router) on 127.0.0.1:0. ----

/// Submits `body` to a fresh in-process server; the status code and the problems (path, reason).
fn submit_raw(body: &str) -> (u16, String, Vec<(String, String)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    rt.block_on(async {
        let store = observebridge::server::store::FileStore::open(dir.path()).expect("store");
        let manager = Arc::new(JobManager::new(Box::new(store)));
        let app = observebridge::server::api::router(manager, vec![TOKEN.into()]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = Client::new(&url, Some(TOKEN.into())).expect("client");
        match client.submit(body.to_string()).await {
            Ok(s) => (201, format!("{:?}", s.state), Vec::new()),
            Err(ClientError::Refused { status, message, problems }) => (status, message, problems),
            Err(e) => panic!("{e}"),
        }
    })
}

/// A valid spec (a file source) with `change` applied to its text.
fn spec_with(change: impl Fn(String) -> String) -> String {
    let base = "name: refused\nworkers: 1\nsql: { enabled: false }\nsources:\n  - name: f\n    signal: metrics\n    format: json_lines\n    file: { paths: [/nonexistent/metrics.jsonl] }\nviews:\n  metric_1m: {}\ndead_letter:\n  file: { path: /tmp/refused-dead.jsonl }\n".to_string();
    change(base)
}

fn assert_refused(body: &str, path: &str, reason: &str) {
    let (status, message, problems) = submit_raw(body);
    assert_eq!(status, 400, "expected 400 for {body}: {message}");
    assert!(problems.iter().any(|(p, r)| p == path && r.contains(reason)), "no problem at `{path}` with `{reason}`: {problems:?}");
}

#[test]
fn refused_spec_unknown_field_names_the_field() {
    assert_refused(&spec_with(|s| s.replace("workers: 1", "workers: 1\nworkerz: 2")), "workerz", "unknown field `workerz`");
}

#[test]
fn refused_spec_wrong_type_names_the_field() {
    assert_refused(&spec_with(|s| s.replace("workers: 1", "workers: many")), "workers", "invalid type");
}

#[test]
fn refused_spec_bad_duration_names_the_field() {
    assert_refused(&spec_with(|s| s.replace("workers: 1", "workers: 1\nlateness: 2 parsecs")), "lateness", "");
}

#[test]
fn refused_spec_missing_field_is_named() {
    assert_refused(&spec_with(|s| s.replace("views:\n  metric_1m: {}\n", "")), "(root)", "missing field `views`");
}

#[test]
fn refused_spec_out_of_range_value() {
    assert_refused(&spec_with(|s| s.replace("workers: 1", "workers: 0")), "workers", "between 1 and 256");
}

#[test]
fn refused_spec_nested_source_config() {
    let body = spec_with(|s| s.replace("    file: { paths: [/nonexistent/metrics.jsonl] }", "    kafka: { brokers: '', topics: [t], group_id: g }"));
    let (status, _, problems) = submit_raw(&body);
    assert_eq!(status, 400);
    assert!(problems.iter().any(|(p, r)| p.starts_with("sources[0].kafka") && r.contains("brokers")), "{problems:?}");
}

#[test]
fn refused_spec_view_without_its_input() {
    assert_refused(&spec_with(|s| s.replace("  metric_1m: {}", "  metric_1m: {}\n  change_correlation: {}")), "views.change_correlation", "needs `change_event`");
}

#[test]
fn refused_spec_lists_every_problem() {
    let body = spec_with(|s| s.replace("workers: 1", "workers: 0\nlateness: 48h\nidle_timeout: 0s"));
    let (status, message, problems) = submit_raw(&body);
    assert_eq!(status, 400);
    let paths: BTreeSet<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, BTreeSet::from(["workers", "lateness", "idle_timeout"]), "{problems:?}");
    assert!(message.contains("3 problem"), "{message}");
}

#[test]
fn refused_spec_that_is_not_yaml_or_empty() {
    let (status, _, problems) = submit_raw("name: [unclosed");
    assert_eq!(status, 400);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let (status, message, _) = submit_raw("  \n");
    assert_eq!(status, 400);
    assert!(message.contains("empty body"), "{message}");
}

#[test]
fn refused_spec_bad_sink_config() {
    let body = spec_with(|s| s.replace("dead_letter:", "sinks:\n  kafka: { brokers: 'localhost:9092', topic_prefix: '' }\ndead_letter:"));
    let (status, _, problems) = submit_raw(&body);
    assert_eq!(status, 400);
    assert!(problems.iter().any(|(p, _)| p.starts_with("sinks.kafka")), "{problems:?}");
}

#[test]
fn accepted_spec_as_json() {
    let json = r#"{"name":"as-json","workers":1,"sql":{"enabled":false},"sources":[{"name":"f","signal":"metrics","format":"json_lines","file":{"paths":["/nonexistent/m.jsonl"]}}],"views":{"metric_1m":{}},"dead_letter":{"file":{"path":"/tmp/as-json-dead.jsonl"}}}"#;
    let (status, message, problems) = submit_raw(json);
    assert_eq!(status, 201, "{message} {problems:?}");
}

// ---- Jobs side by side. ----

fn kafka_sink(prefix: &str) -> String {
    format!("  kafka:\n    brokers: {}\n    topic_prefix: {prefix}\n", kafka_brokers())
}

/// Every message of `topic` (read_committed): (key, value or None for a tombstone). The topic
/// is complete when this is called (its frontiers are durable): read until it stays quiet.
fn read_topic(topic: &str) -> Vec<(String, Option<String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning).expect("tpl");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(3) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = String::from_utf8(m.key().unwrap_or_default().to_vec()).expect("utf-8 key");
                let value = m.payload().map(|v| String::from_utf8(v.to_vec()).expect("utf-8 value"));
                out.push((key, value));
                quiet_since = Instant::now();
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// The current view a compacted topic stands for: the last value of each key, tombstones removed.
fn fold(messages: &[(String, Option<String>)]) -> BTreeMap<String, serde_json::Value> {
    let mut view = BTreeMap::new();
    for (key, value) in messages {
        match value {
            Some(v) => {
                view.insert(key.clone(), serde_json::from_str(v).expect("json value"));
            }
            None => {
                view.remove(key);
            }
        }
    }
    view
}

#[test]
fn two_jobs_side_by_side_with_their_own_tenants_and_sinks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("state"), &dir.path().join("server.log"));
    let (a, b) = (unique("alpha"), unique("beta"));
    let (topic_a, topic_b) = (unique("alpha_in"), unique("beta_in"));
    create_topic(&kafka_brokers(), &topic_a, 1).expect("topic");
    create_topic(&kafka_brokers(), &topic_b, 1).expect("topic");
    let (pa, pb) = (points("a", 0..2), points("b", 0..3));
    produce_points(&topic_a, Some("alpha"), &pa, 1);
    produce_points(&topic_b, Some("beta"), &pb, 1);
    let prefix = format!("{b}.");
    let client = server.client();
    runtime().block_on(client.submit(metric_job(&a, &topic_a, &a, dir.path(), ""))).expect("submit a");
    runtime().block_on(client.submit(metric_job(&b, &topic_b, &b, dir.path(), &kafka_sink(&prefix)))).expect("submit b");
    wait_durable(&server, &a, "postgres", pa.len() as u64);
    let sb = wait_durable(&server, &b, "kafka", pb.len() as u64);
    assert!(sb.sinks.contains_key("postgres"));

    let rows_a = metric_rows(&a);
    let rows_b = metric_rows(&b);
    assert_eq!(rows_a.keys().map(|k| k.1.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["alpha"]));
    assert_eq!(rows_b.keys().map(|k| k.1.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["beta"]));
    assert_eq!(rows_a.len(), expected_metric_1m(&pa, METRIC).len());
    assert_eq!(rows_b.len(), expected_metric_1m(&pb, METRIC).len());
    // Only job b publishes, and only beta's rows.
    let messages = read_topic(&format!("{prefix}metric_1m"));
    let view = fold(&messages);
    assert_eq!(view.len(), rows_b.len(), "{messages:#?}");
    assert!(view.values().all(|v| v["tenant"] == "beta"), "{view:?}");
    for id in [&a, &b] {
        runtime().block_on(client.stop(id, true)).expect("stop");
    }
}

#[test]
fn a_failing_job_shows_failed_with_the_reason_while_the_other_runs_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("state"), &dir.path().join("server.log"));
    let (good, bad) = (unique("good"), unique("bad"));
    let topic = unique("good_in");
    create_topic(&kafka_brokers(), &topic, 1).expect("topic");
    let first = points("g", 0..2);
    produce_points(&topic, None, &first, 1);
    let client = server.client();
    runtime().block_on(client.submit(metric_job(&good, &topic, &good, dir.path(), ""))).expect("submit good");
    // A broker nobody listens on.
    let bad_spec = metric_job(&bad, &topic, &bad, dir.path(), "").replace(&format!("brokers: {}", kafka_brokers()), "brokers: 127.0.0.1:1");
    runtime().block_on(client.submit(bad_spec)).expect("submit bad");
    let failed = wait_for("the bad job to fail", Duration::from_secs(120), || {
        let s = status(&server, &bad);
        (s.state == JobState::Failed).then_some(s)
    });
    let reason = failed.reason.expect("a reason");
    assert!(reason.contains("127.0.0.1:1") || reason.contains("reach"), "reason does not name the broker: {reason}");
    // The good job goes on: more input, more output.
    wait_durable(&server, &good, "postgres", first.len() as u64);
    let more = points("g", 2..4);
    produce_points(&topic, None, &more, 1);
    let s = wait_durable(&server, &good, "postgres", (first.len() + more.len()) as u64);
    assert_eq!(s.state, JobState::Running);
    let (code, out, _) = server.cli(&["status", &bad]);
    assert_eq!(code, 6, "a failed job's status exits 6: {out}");
    assert!(out.contains("failed"), "{out}");
    let all: Vec<JobStatus> = runtime().block_on(client.list()).expect("list");
    assert_eq!(all.iter().find(|j| j.id == good).map(|j| j.state), Some(JobState::Running));
    runtime().block_on(client.stop(&good, true)).expect("stop");
}

#[test]
fn a_restarted_server_restarts_its_jobs_without_duplicate_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let log = dir.path().join("server.log");
    let name = unique("restart");
    let topic = unique("restart_in");
    create_topic(&kafka_brokers(), &topic, 2).expect("topic");
    let prefix = format!("{name}.");
    let first = points("r", 0..3);
    produce_points(&topic, None, &first, 2);

    let server = Server::start(&state, &log);
    runtime().block_on(server.client().submit(metric_job(&name, &topic, &name, dir.path(), &kafka_sink(&prefix)))).expect("submit");
    wait_durable(&server, &name, "kafka", first.len() as u64);
    server.stop();

    let server = Server::start(&state, &log);
    let s = status(&server, &name);
    assert!(matches!(s.state, JobState::Starting | JobState::Running), "restored job is {:?}: {:?}", s.state, s.reason);
    let second = points("r", 3..6);
    produce_points(&topic, None, &second, 2);
    wait_durable(&server, &name, "kafka", (first.len() + second.len()) as u64);
    runtime().block_on(server.client().stop(&name, false)).expect("stop");

    let all: Vec<Point> = first.iter().chain(&second).cloned().collect();
    let expected = expected_metric_1m(&all, METRIC);
    let rows = metric_rows(&name);
    assert_eq!(rows.len(), expected.len(), "postgres rows");
    for ((bucket, resource, series), row) in &expected {
        assert_eq!(rows.get(&(*bucket, "default".to_string(), resource.clone(), series.clone())), Some(&(row.count as i64)));
    }
    // The topic: the same view, and no message published twice.
    let messages = read_topic(&format!("{prefix}metric_1m"));
    let mut seen = BTreeSet::new();
    for (key, value) in &messages {
        assert!(seen.insert((key.clone(), value.clone())), "published twice: {key} = {value:?}");
    }
    let view = fold(&messages);
    assert_eq!(view.len(), expected.len());
    for v in view.values() {
        let bucket = chrono::DateTime::parse_from_rfc3339(v["bucket"].as_str().expect("bucket")).expect("rfc3339").timestamp_millis();
        let key = (bucket, "default".to_string(), v["resource"].as_str().expect("resource").to_string(), v["series"].as_str().expect("series").to_string());
        assert_eq!(rows.get(&key).copied(), v["count"].as_f64().map(|c| c as i64), "{v}");
    }
}

/// Spans of one call `src -> dst` ending at `at` ms: a client span in `src`, a server span in `dst`.
fn call(trace: u32, src: &str, dst: &str, at: i64) -> Vec<(i32, Vec<u8>)> {
    vec![
        (0, message_for(src, None, &[S(trace, 1, None, span::SpanKind::Client, at, 20, trace % 4 == 0, vec![kv("peer.service", dst)])])),
        (0, message_for(dst, None, &[S(trace, 2, Some(1), span::SpanKind::Server, at - 2, 15, trace % 4 == 0, vec![])])),
    ]
}

#[test]
fn kafka_view_topics_equal_the_postgres_views_including_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("state"), &dir.path().join("server.log"));
    let name = unique("topics");
    let topic = unique("topics_in");
    create_topic(&kafka_brokers(), &topic, 1).expect("topic");
    create_topic(&kafka_brokers(), &format!("{topic}_checkpoints"), 1).expect("checkpoint topic");
    // frontend -> checkout for 3 minutes, then only web -> search 20 minutes later: the first
    // edge leaves the active graph (a delete, a tombstone on the topic).
    let mut first = Vec::new();
    for t in 0..12u32 {
        first.extend(call(t, "frontend", "checkout", T0 + i64::from(t) * 15_000 + 1_000));
    }
    let mut later = Vec::new();
    for t in 100..112u32 {
        later.extend(call(t, "web", "search", T0 + 20 * 60_000 + i64::from(t - 100) * 15_000 + 1_000));
    }
    let (first_count, count) = (first.len() as u64, (first.len() + later.len()) as u64);
    produce(&topic, first);
    let prefix = format!("{name}.");
    let spec = format!(
        r#"
name: {name}
workers: 2
lateness: 10s
idle_timeout: 2s
epochs:
  interval: 100ms
sql: {{ enabled: false }}
sources:
  - name: spans
    signal: spans
    format: otlp_proto
    kafka:
      brokers: {brokers}
      topics: [{topic}]
      group_id: {name}
      start: earliest
      checkpoint_topic: {topic}_checkpoints
views:
  service_call_5m: {{ pairing_wait: 5s }}
sinks:
  postgres:
    url: {pg}
    schema: {name}
{kafka}
dead_letter:
  file:
    path: {dead}
"#,
        brokers = kafka_brokers(),
        pg = pg_url(),
        kafka = kafka_sink(&prefix),
        dead = dir.path().join("dead.jsonl").display(),
    );
    runtime().block_on(server.client().submit(spec)).expect("submit");
    // The first edge is published before the later traffic expires it.
    wait_durable(&server, &name, "kafka", first_count);
    wait_for("the first edge on the topic", Duration::from_secs(60), || {
        read_topic(&format!("{prefix}call_graph_active")).iter().any(|(k, v)| v.is_some() && k.contains("frontend")).then_some(())
    });
    produce(&topic, later);
    wait_durable(&server, &name, "kafka", count);
    // Stop: the last frontier is durable in both sinks.
    let s = runtime().block_on(server.client().stop(&name, false)).expect("stop");
    assert_eq!(s.sinks["kafka"].epoch, s.sinks["postgres"].epoch, "{:?}", s.sinks);

    let edges: Vec<(String, String, String)> = query(&name, "call_graph_active", "SELECT tenant, src, dst FROM {s}.call_graph_active");
    let edges: BTreeSet<(String, String, String)> = edges.into_iter().collect();
    assert!(edges.iter().any(|e| e.1.ends_with("/web") && e.2.ends_with("/search")), "{edges:?}");
    assert!(!edges.iter().any(|e| e.1.ends_with("/frontend")), "frontend -> checkout should have left the active graph: {edges:?}");
    let graph_messages = read_topic(&format!("{prefix}call_graph_active"));
    assert!(graph_messages.iter().any(|(k, v)| v.is_none() && k.contains("frontend")), "no tombstone for the expired edge: {graph_messages:?}");
    let topic_edges: BTreeSet<(String, String, String)> = fold(&graph_messages)
        .values()
        .map(|v| (v["tenant"].as_str().unwrap_or_default().to_string(), v["src"].as_str().unwrap_or_default().to_string(), v["dst"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(topic_edges, edges);

    let calls: Vec<(chrono::DateTime<chrono::Utc>, String, String, f64)> = query(&name, "service_call_5m", "SELECT bucket, src, dst, calls FROM {s}.service_call_5m");
    let calls: BTreeSet<(i64, String, String, i64)> = calls.into_iter().map(|r| (r.0.timestamp_millis(), r.1, r.2, r.3 as i64)).collect();
    let topic_calls: BTreeSet<(i64, String, String, i64)> = fold(&read_topic(&format!("{prefix}service_call_5m")))
        .values()
        .map(|v| {
            let bucket = chrono::DateTime::parse_from_rfc3339(v["bucket"].as_str().expect("bucket")).expect("rfc3339").timestamp_millis();
            (bucket, v["src"].as_str().unwrap_or_default().to_string(), v["dst"].as_str().unwrap_or_default().to_string(), v["calls"].as_f64().unwrap_or_default() as i64)
        })
        .collect();
    assert!(!calls.is_empty());
    assert_eq!(topic_calls, calls);
}

/// Every path and method of `schemas/openapi/observebridge.yaml` is served by the router (not the
/// fallback, not 405), and the API serves nothing the file does not document.
#[test]
fn the_openapi_file_documents_exactly_the_routes() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/openapi/observebridge.yaml")).expect("openapi file");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("openapi yaml");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        for (method, _) in item.as_mapping().expect("path item") {
            let method = method.as_str().expect("method");
            if ["get", "post", "put", "delete", "patch"].contains(&method) {
                documented.insert((method.to_uppercase(), path.as_str().expect("path").to_string()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = observebridge::server::api::ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, served);

    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    rt.block_on(async {
        let store = observebridge::server::store::FileStore::open(dir.path()).expect("store");
        let app = observebridge::server::api::router(Arc::new(JobManager::new(Box::new(store))), vec![TOKEN.into()]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        for (method, path) in &documented {
            let request = http.request(method.parse().expect("method"), format!("{url}{}", path.replace("{id}", "no-such-job"))).bearer_auth(TOKEN);
            let response = request.body("name: x").send().await.expect("request");
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path} is not routed");
            assert!(!body.contains("no such route"), "{method} {path} fell through to the fallback: {body}");
        }
    });
}

/// The value of the sample of `name` whose label set contains every `labels` pair.
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name || !labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            return None;
        }
        value.parse().ok()
    })
}

fn http_get(url: &str) -> (u16, String) {
    runtime().block_on(async {
        let response = reqwest::get(url).await.expect("get");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    })
}

#[test]
fn metrics_health_and_readiness_of_served_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("state"), &dir.path().join("server.log"));
    let name = unique("metrics");
    let topic = unique("metrics_in");
    create_topic(&kafka_brokers(), &topic, 2).expect("topic");
    let pts = points("m", 0..3);
    produce_points(&topic, None, &pts, 2);
    produce(&topic, vec![(0, b"not a protobuf".to_vec()), (1, b"\xff\xfe".to_vec())]);
    let total = pts.len() as u64 + 2;
    assert_eq!(http_get(&format!("{}/healthz", server.url)).0, 200);
    runtime().block_on(server.client().submit(metric_job(&name, &topic, &name, dir.path(), ""))).expect("submit");
    wait_durable(&server, &name, "postgres", total);
    wait_for("ready", Duration::from_secs(30), || (http_get(&format!("{}/readyz", server.url)).0 == 200).then_some(()));

    let (code, text) = http_get(&format!("{}/metrics", server.url));
    assert_eq!(code, 200);
    let job = [("job", name.as_str())];
    let received: f64 = (0..2)
        .map(|p| sample(&text, "observebridge_records_received_total", &[("job", &name), ("partition", &format!("kafka:{topic}/{p}")), ("signal", "metrics")]).unwrap_or_else(|| panic!("partition {p} missing:\n{text}")))
        .sum();
    assert_eq!(received as u64, total);
    assert_eq!(sample(&text, "observebridge_records_decoded_total", &job), Some(pts.len() as f64), "{text}");
    assert_eq!(sample(&text, "observebridge_decode_errors_total", &job), Some(2.0), "{text}");
    let dead: f64 = text.lines().filter(|l| l.starts_with("observebridge_dead_letters_total{") && l.contains(&name)).filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok()).sum();
    assert_eq!(dead, 2.0, "{text}");
    assert_eq!(sample(&text, "observebridge_job_info", &[("job", &name), ("state", "running")]), Some(1.0));
    assert!(sample(&text, "observebridge_sink_commits_total", &[("job", &name), ("sink", "postgres")]).is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "observebridge_view_freshness_seconds", &[("job", &name), ("view", "metric_1m")]).is_some_and(|s| s >= 0.0), "{text}");
    assert!(sample(&text, "observebridge_watermark_delay_seconds", &job).is_some(), "{text}");
    assert!(sample(&text, "observebridge_view_state_records", &job).is_some(), "no state size:\n{text}");
    runtime().block_on(server.client().stop(&name, true)).expect("stop");
}

#[test]
fn run_serves_metrics_and_health_for_its_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("runops");
    let topic = unique("runops_in");
    create_topic(&kafka_brokers(), &topic, 1).expect("topic");
    let pts = points("o", 0..2);
    produce_points(&topic, None, &pts, 1);
    let spec = dir.path().join("job.yaml");
    std::fs::write(&spec, metric_job(&name, &topic, &name, dir.path(), "")).expect("spec");
    let log = dir.path().join("run.log");
    let err = std::fs::File::create(&log).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_observebridge"))
        .args(["run", spec.to_str().expect("utf-8"), "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("run");
    let url = wait_for("the metrics address", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix("metrics: ").and_then(|r| r.split_whitespace().next()).map(|u| u.trim_end_matches("/metrics").to_string()))
    });
    assert_eq!(http_get(&format!("{url}/healthz")).0, 200);
    wait_for("the records on /metrics", Duration::from_secs(60), || {
        let (_, text) = http_get(&format!("{url}/metrics"));
        (sample(&text, "observebridge_records_received_total", &[("job", &name)]) == Some(pts.len() as f64)).then_some(())
    });
    wait_for("ready", Duration::from_secs(30), || (http_get(&format!("{url}/readyz")).0 == 200).then_some(()));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{}", std::fs::read_to_string(&log).unwrap_or_default());
}

#[test]
fn jobs_kept_in_postgres_survive_a_server_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_schema = unique("jobstore");
    let extra = ["--postgres-url", &pg_url(), "--postgres-schema", &store_schema];
    let (running, stopped) = (unique("kept"), unique("stopped"));
    let topic = unique("kept_in");
    create_topic(&kafka_brokers(), &topic, 1).expect("topic");
    let first = points("k", 0..2);
    produce_points(&topic, None, &first, 1);

    let server = Server::start_with(&dir.path().join("unused-state"), &dir.path().join("server.log"), &extra);
    let client = server.client();
    runtime().block_on(client.submit(metric_job(&running, &topic, &running, dir.path(), ""))).expect("submit");
    runtime().block_on(client.submit(metric_job(&stopped, &topic, &stopped, dir.path(), ""))).expect("submit");
    wait_durable(&server, &running, "postgres", first.len() as u64);
    runtime().block_on(client.stop(&stopped, false)).expect("stop");
    server.stop();
    let stored: Vec<(String, bool)> = query(&store_schema, "observebridge_jobs", "SELECT id, running FROM {s}.observebridge_jobs ORDER BY id");
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(!dir.path().join("unused-state").join("jobs").exists(), "the state dir is not used with a Postgres store");

    let server = Server::start_with(&dir.path().join("unused-state"), &dir.path().join("server.log"), &extra);
    assert_eq!(status(&server, &stopped).state, JobState::Stopped, "a stopped job stays stopped");
    let more = points("k", 2..4);
    produce_points(&topic, None, &more, 1);
    let s = wait_durable(&server, &running, "postgres", (first.len() + more.len()) as u64);
    assert_eq!(s.state, JobState::Running);
    let all: Vec<Point> = first.iter().chain(&more).cloned().collect();
    let rows = metric_rows(&running);
    let expected = expected_metric_1m(&all, METRIC);
    assert_eq!(rows.len(), expected.len());
    for ((bucket, resource, series), row) in &expected {
        assert_eq!(rows.get(&(*bucket, "default".to_string(), resource.clone(), series.clone())), Some(&(row.count as i64)));
    }
    runtime().block_on(server.client().stop(&running, true)).expect("stop");
}

#[test]
fn a_stored_spec_that_no_longer_validates_is_listed_failed_and_not_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    rt.block_on(async {
        let store = observebridge::server::store::FileStore::open(dir.path()).expect("store");
        let stale = observebridge::server::store::StoredJob { id: "stale".into(), spec: spec_with(|s| s.replace("name: refused", "name: stale").replace("workers: 1", "workers: 0")), running: true, submitted_at_ms: 0 };
        observebridge::server::store::JobStore::put(&store, &stale).await.expect("put");
        let manager = JobManager::new(Box::new(observebridge::server::store::FileStore::open(dir.path()).expect("store")));
        assert_eq!(manager.restore().await.expect("restore"), 0, "an invalid stored spec is not started");
        let status = manager.status("stale").expect("listed");
        assert_eq!(status.state, JobState::Failed);
        assert!(status.reason.as_deref().is_some_and(|r| r.contains("workers")), "{:?}", status.reason);
        match manager.restart("stale", Duration::from_secs(1)).await {
            Err(observebridge::server::JobError::Invalid(problems)) => assert!(problems.iter().any(|p| p.path == "workers"), "{problems:?}"),
            other => panic!("restart of an invalid stored spec: {other:?}"),
        }
    });
}
