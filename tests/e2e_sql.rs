//! End to end, against the real services started by `scripts/test.sh`: OTLP metrics in Kafka ->
//! the `observebridge` binary -> SQL over the Postgres wire protocol. A Postgres driver reads
//! metric_1m and dim_resource, more data arrives and the same query sees it, and once windows
//! are final the live view and `metric_1m_history` (Parquet in a local directory) answer
//! together; HTTP serves the same rows.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use observebridge_connectors::kafka::{create_topic, produce_all};
use sqlx::{Connection, PgConnection};

const METRIC: &str = "http.server.active_requests";
/// 2026-11-25T10:00:00Z.
const T0: i64 = 1_795_600_800_000;

struct Setup {
    topic: String,
    dir: tempfile::TempDir,
    job: std::path::PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let topic = unique("sql_metrics");
        create_topic(&kafka_brokers(), &topic, 1).expect("create topic");
        create_topic(&kafka_brokers(), &format!("{topic}_checkpoints"), 1).expect("create checkpoint topic");
        let dir = tempfile::tempdir().expect("tempdir");
        let job = dir.path().join("job.yaml");
        let spec = format!(
            r#"
name: {name}
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
      group_id: {topic}_group
      start: earliest
      checkpoint_topic: {topic}_checkpoints
views:
  metric_1m: {{}}
sinks:
  parquet:
    url: {parquet}
sql:
  pg_listen: 127.0.0.1:0
  http_listen: 127.0.0.1:0
dead_letter:
  file:
    path: {dead}
"#,
            name = topic,
            brokers = kafka_brokers(),
            parquet = dir.path().join("views").display(),
            dead = dir.path().join("dead.jsonl").display(),
        );
        std::fs::write(&job, spec).expect("write job");
        Setup { topic, dir, job }
    }

    fn produce(&self, points: &[Point]) {
        let mut by_scrape: BTreeMap<(String, i64), Vec<Point>> = BTreeMap::new();
        for p in points {
            by_scrape.entry((p.service.clone(), p.ts)).or_default().push(p.clone());
        }
        for points in by_scrape.into_values() {
            produce_all(&kafka_brokers(), &self.topic, &[(None, otlp_gauge_message(&points, METRIC))], Some(0)).expect("produce");
        }
    }
}

/// Two pods of `service`, one scrape every 10 s, for scrapes `from..to`.
fn scrapes(service: &str, from: i64, to: i64) -> Vec<Point> {
    (from..to)
        .flat_map(|step| (0..2).map(move |pod| (step, pod)))
        .map(|(step, pod)| Point { ts: T0 + step * 10_000, service: service.to_string(), pod: format!("{service}-pod-{pod}"), value: ((step * 7 + pod) % 11) as f64 + 0.5 })
        .collect()
}

/// The address the engine printed for psql (`SQL: psql -h 127.0.0.1 -p <port>`).
fn pg_addr(engine: &mut Engine) -> SocketAddr {
    wait_for("the engine to print how to connect", Duration::from_secs(60), || {
        engine.assert_running();
        let log = engine.log_text();
        let line = log.lines().find(|l| l.starts_with("SQL: psql -h "))?;
        let mut words = line.split_whitespace().skip(3);
        let host = words.next()?;
        let port = words.nth(1)?;
        format!("{host}:{port}").parse().ok()
    })
}

fn http_addr(engine: &Engine) -> SocketAddr {
    let log = engine.log_text();
    let line = log.lines().find(|l| l.starts_with("SQL over HTTP:")).expect("the http line");
    let url = line.split_whitespace().last().expect("url");
    url.trim_start_matches("http://").trim_end_matches("/v1/sql").parse().expect("http address")
}

/// Polls `sql` (one bigint) over pgwire until it returns `want`.
fn wait_for_count(addr: SocketAddr, engine: &mut Engine, what: &str, sql: &'static str, want: i64) {
    let url = format!("postgres://anyone@{}:{}/whatever?sslmode=disable", addr.ip(), addr.port());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        engine.assert_running();
        let got: i64 = runtime().block_on(async {
            let mut conn = PgConnection::connect(&url).await.expect("connect over pgwire");
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("query over pgwire")
        });
        if got == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}: {sql} returned {got}, want {want}\n{}", engine.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sql_sees_the_views_and_their_updates() {
    let setup = Setup::new();
    let first = scrapes("svc-0", 0, 18); // minutes 0..3 of svc-0
    setup.produce(&first);
    let mut engine = Engine::start(&setup.job, &setup.dir.path().join("engine.log"));
    let addr = pg_addr(&mut engine);

    let expected = expected_metric_1m(&first, METRIC);
    wait_for_count(addr, &mut engine, "svc-0's windows", "SELECT count(*) FROM metric_1m WHERE resource = 'urn:k8s:svc:shop/svc-0'", expected.len() as i64);

    // The rows are the view's: compare with metric_1m computed from scratch.
    let url = format!("postgres://anyone@{}:{}/whatever?sslmode=disable", addr.ip(), addr.port());
    let rows: Vec<(chrono::DateTime<chrono::Utc>, String, i64, f64, f64)> = runtime().block_on(async {
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        sqlx::query_as("SELECT bucket, series, count, avg, max FROM metric_1m WHERE resource = $1 ORDER BY bucket, series")
            .bind("urn:k8s:svc:shop/svc-0")
            .fetch_all(&mut conn)
            .await
            .expect("select")
    });
    let want: Vec<(i64, String, i64, f64, f64)> = expected.values().map(|r| (r.bucket, r.series.clone(), r.count, r.avg.0, r.max.0)).collect();
    let got: Vec<(i64, String, i64, f64, f64)> = rows.into_iter().map(|r| (r.0.timestamp_millis(), r.1, r.2, r.3, r.4)).collect();
    assert_eq!(got, want);

    // Ingest more: a new service, after the first one's data (earlier windows are final); the
    // same queries see it.
    let second = scrapes("svc-1", 18, 30);
    setup.produce(&second);
    let expected_second = expected_metric_1m(&second, METRIC);
    wait_for_count(addr, &mut engine, "svc-1's windows", "SELECT count(*) FROM metric_1m WHERE resource = 'urn:k8s:svc:shop/svc-1'", expected_second.len() as i64);
    wait_for_count(addr, &mut engine, "svc-1 in dim_resource", "SELECT count(*) FROM dim_resource WHERE kind = 'svc' AND namespace = 'shop' AND name = 'svc-1'", 1);

    // Far ahead: every window above becomes final and goes to Parquet; live and history together
    // still hold each window of svc-0 once.
    setup.produce(&scrapes("svc-9", 120, 121));
    wait_for_count(
        addr,
        &mut engine,
        "svc-0's windows in metric_1m_history",
        "SELECT count(*) FROM metric_1m_history WHERE resource = 'urn:k8s:svc:shop/svc-0'",
        expected.len() as i64,
    );
    wait_for_count(
        addr,
        &mut engine,
        "svc-0's windows, live and history",
        "SELECT count(*) FROM (SELECT bucket, series FROM metric_1m WHERE resource = 'urn:k8s:svc:shop/svc-0' \
         UNION SELECT bucket, series FROM metric_1m_history WHERE resource = 'urn:k8s:svc:shop/svc-0') AS w",
        expected.len() as i64,
    );

    wait_for_count(
        addr,
        &mut engine,
        "svc-1's windows in metric_1m_history",
        "SELECT count(*) FROM metric_1m_history WHERE resource = 'urn:k8s:svc:shop/svc-1'",
        expected_second.len() as i64,
    );

    // HTTP serves the same tables; writes are refused.
    let http = http_addr(&engine);
    let (status, body) = http_post(http, "SELECT count(*) AS n FROM metric_1m_history WHERE resource = 'urn:k8s:svc:shop/svc-1'");
    assert_eq!(status, 200, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(rows, serde_json::json!([{ "n": expected_second.len() }]));
    let (status, body) = http_post(http, "DELETE FROM metric_1m");
    assert_eq!(status, 400);
    assert!(body.contains("25006"), "{body}");
    engine.stop();
}

/// POST /v1/sql with `sql`; (status, body).
fn http_post(addr: SocketAddr, sql: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect http");
    write!(stream, "POST /v1/sql HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sql}", sql.len()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
