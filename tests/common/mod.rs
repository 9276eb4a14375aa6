//! Shared pieces of the end-to-end tests: the real services (from `scripts/test.sh`), unique
//! names, running the `observebridge` binary, and the from-scratch expectation of metric_1m.
#![allow(dead_code)]

pub mod spans;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use observebridge_dataflows::record::Observation;
use observebridge_dataflows::time::window_start;
use observebridge_dataflows::views::metric_1m::{Accumulator, Metric1mRow};

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name} (run scripts/test.sh, which starts the services)"))
}

pub fn pg_url() -> String {
    env("OBSERVEBRIDGE_TEST_PG_URL")
}
pub fn s3_endpoint() -> String {
    env("OBSERVEBRIDGE_TEST_S3_ENDPOINT")
}
pub fn kafka_brokers() -> String {
    env("OBSERVEBRIDGE_TEST_KAFKA_BROKERS")
}

/// A name unique to this test run: lowercase letters, digits and `_`.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// Creates an S3 bucket on the test endpoint (moto accepts unsigned requests).
pub fn create_bucket(bucket: &str) {
    use std::io::{Read, Write};
    let endpoint = s3_endpoint();
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host).expect("connect to s3 endpoint");
    write!(stream, "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "create bucket {bucket}: {response}");
}

/// The engine as a child process.
pub struct Engine {
    pub child: Child,
    pub log: PathBuf,
}

impl Engine {
    pub fn start(job: &Path, log: &Path) -> Engine {
        Engine::start_with(job, log, &[])
    }

    /// `observebridge run JOB EXTRA...` (e.g. `--report`, `--listen ADDR`), logging to `log`.
    pub fn start_with(job: &Path, log: &Path, extra: &[&str]) -> Engine {
        let out = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_observebridge"))
            .args(["run", job.to_str().expect("utf-8 path")])
            .args(extra)
            .env("RUST_LOG", "info,observebridge=debug")
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start observebridge");
        Engine { child, log: log.to_path_buf() }
    }

    /// kill -9: no chance to flush or commit anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "engine exited with {status}: {}", self.log_text());
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("engine did not stop: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("engine exited early with {status}: {}", self.log_text());
        }
    }
}

/// Polls `check` until it returns Some, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A gauge point as the tests produce it: (ms, service, pod, value).
#[derive(Clone, Debug)]
pub struct Point {
    pub ts: i64,
    pub service: String,
    pub pod: String,
    pub value: f64,
}

/// metric_1m from scratch for gauge points named `metric` of services in namespace `shop`.
pub fn expected_metric_1m(points: &[Point], metric: &str) -> BTreeMap<(i64, String, String), Metric1mRow> {
    let mut acc: BTreeMap<(i64, String, String), Accumulator> = BTreeMap::new();
    for p in points {
        let resource = format!("urn:k8s:svc:shop/{}", p.service);
        let series = format!("k8s.pod.name={},service.instance.id={}", p.pod, p.pod);
        acc.entry((window_start(p.ts, 60_000), resource, series)).or_default().add(&Observation::Sample(p.value));
    }
    acc.into_iter()
        .map(|((bucket, resource, series), a)| {
            let key = ("default".to_string(), resource.clone(), metric.to_string(), series.clone());
            ((bucket, resource, series), Metric1mRow::from_accumulator(bucket, &key, &a))
        })
        .collect()
}

/// An OTLP ExportMetricsServiceRequest (protobuf) with one gauge point per given point.
pub fn otlp_gauge_message(points: &[Point], metric: &str) -> Vec<u8> {
    otlp_gauge_message_for(None, points, metric)
}

/// [`otlp_gauge_message`] of a tenant's services (resource attribute `tenant.id`).
pub fn otlp_gauge_message_for(tenant: Option<&str>, points: &[Point], metric: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    let kv = |k: &str, v: &str| KeyValue { key: k.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }), ..Default::default() };
    let resource_metrics = points
        .iter()
        .map(|p| ResourceMetrics {
            resource: Some(Resource {
                attributes: [kv("service.name", &p.service), kv("k8s.namespace.name", "shop"), kv("k8s.pod.name", &p.pod), kv("service.instance.id", &p.pod)]
                    .into_iter()
                    .chain(tenant.map(|t| kv("tenant.id", t)))
                    .collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: metric.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint { time_unix_nano: (p.ts as u64) * 1_000_000, value: Some(number_data_point::Value::AsDouble(p.value)), ..Default::default() }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }.encode_to_vec()
}

/// A single-threaded tokio runtime for the tests' async calls.
/// Every key under `prefix` of `store`, in listing order.
pub async fn list_keys(store: &dyn object_store::ObjectStore, prefix: &object_store::path::Path) -> Vec<object_store::path::Path> {
    use futures::TryStreamExt as _;
    store.list(Some(prefix)).map_ok(|meta| meta.location).try_collect().await.expect("list")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Rows of `sql` in the job's schema (`{s}` in `sql` stands for the quoted schema); no rows while
/// `table` does not exist yet (the engine has not migrated).
pub fn query<T>(schema: &str, table: &str, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    runtime().block_on(async {
        let pool = sqlx::PgPool::connect(&pg_url()).await.expect("connect");
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text").bind(format!("\"{schema}\".{table}")).fetch_one(&pool).await.expect("regclass");
        if exists.is_none() {
            return Vec::new();
        }
        sqlx::query_as(sqlx::AssertSqlSafe(sql.replace("{s}", &format!("\"{schema}\"")))).fetch_all(&pool).await.expect("select")
    })
}

/// Produces each (partition, payload), in order within a partition (one producer per partition).
pub fn produce(topic: &str, messages: Vec<(i32, Vec<u8>)>) {
    let mut by_partition: BTreeMap<i32, Vec<(Option<Vec<u8>>, Vec<u8>)>> = BTreeMap::new();
    for (partition, payload) in messages {
        by_partition.entry(partition).or_default().push((None, payload));
    }
    for (partition, batch) in by_partition {
        observebridge_connectors::kafka::produce_all(&kafka_brokers(), topic, &batch, Some(partition)).expect("produce");
    }
}

/// A job reading OTLP metrics from a Kafka topic into metric_1m in Postgres (schema `schema`),
/// dead letters to a file, SQL off; `extra_sinks` is YAML indented under `sinks:`.
pub struct MetricJob<'a> {
    pub name: &'a str,
    pub topic: &'a str,
    pub schema: &'a str,
    pub workers: usize,
    pub lateness: &'a str,
    pub extra_sinks: &'a str,
    pub dead_letters: &'a Path,
}

/// The spec of a [`MetricJob`]; creates the source's checkpoint topic (tansu drops commit
/// metadata).
pub fn kafka_metric_job(job: &MetricJob<'_>) -> String {
    let MetricJob { name, topic, schema, workers, lateness, extra_sinks, dead_letters } = job;
    observebridge_connectors::kafka::create_topic(&kafka_brokers(), &format!("{topic}_checkpoints"), 1).expect("checkpoint topic");
    format!(
        r#"
name: {name}
workers: {workers}
lateness: {lateness}
idle_timeout: 2s
epochs:
  interval: 100ms
sql: {{ enabled: false }}
sources:
  - name: otlp
    signal: metrics
    format: otlp_proto
    kafka:
      brokers: {brokers}
      topics: [{topic}]
      group_id: {name}
      start: earliest
      checkpoint_topic: {topic}_checkpoints
views:
  metric_1m: {{}}
sinks:
  postgres:
    url: {pg}
    schema: {schema}
{extra_sinks}
dead_letter:
  file:
    path: {dead}
"#,
        brokers = kafka_brokers(),
        pg = pg_url(),
        dead = dead_letters.display(),
    )
}
