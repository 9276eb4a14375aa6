//! Fault test (issue 9, point 4): object storage errors. A small HTTP proxy in front of the S3
//! API (moto) fails about 5% of the requests, on a seeded schedule: 503 SlowDown and 500
//! InternalError answers, connections dropped before the request reaches the store, and
//! connections dropped after the store has written the object but before the answer reaches the
//! engine; one short outage of 5 requests in a row outlasts object_store's own retries so the
//! sink's retry loop runs too. The `observebridge` binary reads OTLP metrics from Kafka into
//! metric_1m with the Parquet sink pointed at the proxy. Then: every final window has exactly
//! one object, each reads back as Parquet with the rows computed from scratch, there is no
//! other object and no unfinished upload, and every injected failure was retried (the proxy's
//! count equals the retries in the engine's log, and `/metrics` counts the sink's own retries).
//!
//! Figures (requests, injected failures, retries, objects) are printed.
//! `OBSERVEBRIDGE_LONG_FAULTS=1` (or `OBSERVEBRIDGE_FAULTS_LONG=1`) runs a day of data (1440
//! windows) instead of 4 hours.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use common::*;
use futures::StreamExt as _;
use observebridge_connectors::kafka::create_topic;
use observebridge_connectors::parquet::{read_parquet, ObjectStoreConfig};
use observebridge_dataflows::views::metric_1m::Metric1mRow;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

const METRIC: &str = "http.server.request.duration";
const PARTITIONS: i32 = 3;
/// 2026-11-25T10:00:00Z.
const T0: i64 = 1_795_600_800_000;
const LATENESS_MS: i64 = 30_000;
/// Probability that a request outside the outage fails: with the outage, about 5% of the
/// requests of the short version fail.
const FAILURE_RATE: f64 = 0.03;
/// Requests in a row the outage fails: more than object_store's own attempts (1 + 3 retries).
const OUTAGE: usize = 5;

fn long() -> bool {
    ["OBSERVEBRIDGE_LONG_FAULTS", "OBSERVEBRIDGE_FAULTS_LONG"].iter().any(|v| std::env::var(v).is_ok_and(|v| v == "1"))
}

/// What the proxy does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// Forwarded, and the answer relayed.
    None,
    /// Answered with this status, never forwarded.
    Status(u16),
    /// The connection is closed without an answer, never forwarded.
    DropBefore,
    /// Forwarded (the store acts on it), then the connection is closed without an answer.
    DropAfter,
}

/// The seeded fault schedule: request `i` (in arrival order) gets `next()`'s `i`-th answer.
struct Schedule {
    rng: rand_chacha::ChaCha8Rng,
    next: usize,
    outage: std::ops::Range<usize>,
}

impl Schedule {
    fn next(&mut self) -> Fault {
        let i = self.next;
        self.next += 1;
        if self.outage.contains(&i) {
            return Fault::Status(503);
        }
        if !self.rng.random_bool(FAILURE_RATE) {
            return Fault::None;
        }
        match self.rng.random_range(0..4) {
            0 => Fault::Status(503),
            1 => Fault::Status(500),
            2 => Fault::DropBefore,
            _ => Fault::DropAfter,
        }
    }
}

#[derive(Default)]
struct ProxyLog {
    /// (method, path, what the proxy did), in arrival order.
    requests: Mutex<Vec<(String, String, Fault)>>,
    connections: AtomicUsize,
}

/// An HTTP/1.1 proxy to `target` that injects the schedule's faults. One request per
/// connection: every answer says `Connection: close`.
struct FaultProxy {
    port: u16,
    log: Arc<ProxyLog>,
}

impl FaultProxy {
    fn start(target: String, schedule: Schedule) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log: Arc<ProxyLog> = Arc::default();
        let schedule = Arc::new(Mutex::new(schedule));
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                log2.connections.fetch_add(1, Ordering::Relaxed);
                let (target, schedule, log) = (target.clone(), Arc::clone(&schedule), Arc::clone(&log2));
                std::thread::spawn(move || {
                    let _ = serve(client, &target, &schedule, &log);
                });
            }
        });
        FaultProxy { port, log }
    }

    fn requests(&self) -> Vec<(String, String, Fault)> {
        self.log.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Reads one request, applies the next fault, closes the connection.
fn serve(client: TcpStream, target: &str, schedule: &Mutex<Schedule>, log: &ProxyLog) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        lines.push(line.trim_end().to_string());
    }
    let Some(request_line) = lines.first().cloned() else { return Ok(()) };
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let header = |name: &str| lines.iter().skip(1).find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()));
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        // Kept as sent: chunk sizes, chunks and the trailer.
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    let fault = schedule.lock().map(|mut s| s.next()).unwrap_or(Fault::None);
    if let Ok(mut requests) = log.requests.lock() {
        requests.push((method.clone(), path.clone(), fault));
    }
    match fault {
        Fault::Status(status) => {
            let (reason, code) = if status == 503 { ("Service Unavailable", "SlowDown") } else { ("Internal Server Error", "InternalError") };
            let xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>");
            write!(writer, "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}", xml.len())?;
            writer.flush()?;
            let _ = writer.shutdown(Shutdown::Both);
            Ok(())
        }
        Fault::DropBefore => writer.shutdown(Shutdown::Both),
        Fault::None | Fault::DropAfter => {
            let mut upstream = TcpStream::connect(target)?;
            let mut head = String::new();
            for line in &lines {
                if line.to_ascii_lowercase().starts_with("connection:") {
                    continue;
                }
                head.push_str(line);
                head.push_str("\r\n");
            }
            head.push_str("Connection: close\r\n\r\n");
            upstream.write_all(head.as_bytes())?;
            upstream.write_all(&body)?;
            upstream.flush()?;
            let mut response = Vec::new();
            upstream.read_to_end(&mut response)?;
            if fault == Fault::DropAfter {
                return writer.shutdown(Shutdown::Both);
            }
            // The answer, with `Connection: close` so that the client never reuses the socket.
            let split = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |p| p + 4);
            let (head, rest) = response.split_at(split);
            let head = String::from_utf8_lossy(head);
            let mut out = String::new();
            for line in head.split("\r\n").filter(|l| !l.is_empty()) {
                if line.to_ascii_lowercase().starts_with("connection:") {
                    continue;
                }
                out.push_str(line);
                out.push_str("\r\n");
            }
            out.push_str("Connection: close\r\n\r\n");
            writer.write_all(out.as_bytes())?;
            writer.write_all(rest)?;
            writer.flush()?;
            let _ = writer.shutdown(Shutdown::Both);
            Ok(())
        }
    }
}

/// A free local port for the engine's `/metrics`.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// One GET on plain HTTP, the body as text.
fn http_get(host: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(host).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

/// `observebridge_sink_retries_total{...sink="parquet"}` from `/metrics` (0 when absent).
fn parquet_retries_metric(metrics: u16) -> u64 {
    let text = http_get(&format!("127.0.0.1:{metrics}"), "/metrics");
    text.lines()
        .filter(|l| l.starts_with("observebridge_sink_retries_total{") && l.contains("sink=\"parquet\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .map(|v| v as u64)
        .sum()
}

/// Gauge points of 3 services x 2 pods, two scrapes a minute at seeded moments, one message per
/// service and minute (service `i` on partition `i`).
fn load(minutes: i64, rng: &mut rand_chacha::ChaCha8Rng) -> (Vec<Point>, Vec<(i32, Vec<u8>)>) {
    let mut points = Vec::new();
    let mut messages = Vec::new();
    for minute in 0..minutes {
        for service in 0..PARTITIONS {
            let mut batch = Vec::new();
            for scrape in 0..2 {
                for pod in 0..2 {
                    let ts = T0 + minute * 60_000 + scrape * 30_000 + rng.random_range(0..30_000);
                    let value = (rng.random_range(0.0..250.0f64) * 1000.0).round() / 1000.0;
                    batch.push(Point { ts, service: format!("svc-{service}"), pod: format!("svc-{service}-pod-{pod}"), value });
                }
            }
            messages.push((service, otlp_gauge_message(&batch, METRIC)));
            points.extend(batch);
        }
    }
    (points, messages)
}

/// The object key of a window relative to the bucket.
fn key_of(prefix: &str, bucket_ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(bucket_ms).expect("time");
    format!("{prefix}/metric_1m/date={}/hour={}/metric_1m-{}.parquet", t.format("%Y-%m-%d"), t.format("%H"), t.format("%Y%m%dT%H%M%SZ"))
}

type Row = (i64, String, String, i64, f64, f64, f64, f64, f64, f64, f64);

fn as_row(r: &Metric1mRow) -> Row {
    (r.bucket, r.resource.clone(), r.series.clone(), r.count, r.sum.0, r.avg.0, r.min.0, r.max.0, r.p50.0, r.p95.0, r.p99.0)
}

/// Every object under the prefix, read directly from moto: key -> rows (None: not readable).
fn objects(bucket: &str, prefix: &str) -> (BTreeMap<String, Result<Vec<Row>, String>>, usize) {
    let cfg: ObjectStoreConfig = serde_yaml_ng::from_str(&format!(
        "url: s3://{bucket}/{prefix}\nendpoint: {}\nregion: us-east-1\naccess_key_id: testing\nsecret_access_key: testing\n",
        s3_endpoint()
    ))
    .expect("config");
    let (store, root) = cfg.build().expect("store");
    runtime().block_on(async {
        let keys = list_keys(store.as_ref(), &root).await;
        let listed = keys.len();
        let mut out = BTreeMap::new();
        for key in keys {
            let rows = match read_parquet(store.as_ref(), &key).await {
                Err(e) => Err(e.to_string()),
                Ok(batches) => {
                    let mut rows = Vec::new();
                    for b in batches {
                        let col = |name: &str| b.column(b.schema().index_of(name).expect("column")).clone();
                        let f = |name: &str| col(name).as_any().downcast_ref::<Float64Array>().expect("f64").clone();
                        let s = |name: &str| col(name).as_any().downcast_ref::<StringArray>().expect("string").clone();
                        let bucket = col("bucket");
                        let bucket = bucket.as_any().downcast_ref::<TimestampMicrosecondArray>().expect("bucket");
                        let count = col("count");
                        let count = count.as_any().downcast_ref::<Int64Array>().expect("count");
                        let (resource, series) = (s("resource"), s("series"));
                        let (sum, avg, min, max, p50, p95, p99) = (f("sum"), f("avg"), f("min"), f("max"), f("p50"), f("p95"), f("p99"));
                        for i in 0..b.num_rows() {
                            rows.push((bucket.value(i) / 1000, resource.value(i).to_string(), series.value(i).to_string(), count.value(i), sum.value(i), avg.value(i), min.value(i), max.value(i), p50.value(i), p95.value(i), p99.value(i)));
                        }
                    }
                    Ok(rows)
                }
            };
            out.insert(key.to_string(), rows);
        }
        (out, listed)
    })
}

/// How many objects are under the prefix (a listing, no reads).
fn object_count(bucket: &str, prefix: &str) -> usize {
    let cfg: ObjectStoreConfig = serde_yaml_ng::from_str(&format!(
        "url: s3://{bucket}/{prefix}\nendpoint: {}\nregion: us-east-1\naccess_key_id: testing\nsecret_access_key: testing\n",
        s3_endpoint()
    ))
    .expect("config");
    let (store, root) = cfg.build().expect("store");
    runtime().block_on(async { store.list(Some(&root)).count().await })
}

/// Multipart uploads started and never completed or aborted in the bucket.
fn unfinished_uploads(bucket: &str) -> usize {
    let host = s3_endpoint().trim_start_matches("http://").trim_end_matches('/').to_string();
    let response = http_get(&host, &format!("/{bucket}?uploads"));
    assert!(response.starts_with("HTTP/1.1 200"), "list multipart uploads: {response}");
    response.matches("<Upload>").count()
}

fn committed_to_end(topic: &str, group: &str) -> bool {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", kafka_brokers()).set("group.id", group).create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let Ok(committed) = consumer.committed_offsets(tpl, Duration::from_secs(10)) else { return false };
    (0..PARTITIONS).all(|p| {
        let end = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).map(|w| w.1).unwrap_or(-1);
        matches!(committed.find_partition(topic, p).map(|e| e.offset()), Some(rdkafka::Offset::Offset(o)) if o == end)
    })
}

#[test]
fn object_store_errors_leave_exactly_one_readable_object_per_final_window() {
    let started = Instant::now();
    let minutes: i64 = if long() { 1440 } else { 240 };
    let seed: u64 = std::env::var("OBSERVEBRIDGE_S3_FAULTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

    let name = unique("s3_faults");
    let topic = format!("{name}_metrics");
    let bucket = name.replace('_', "-");
    create_topic(&kafka_brokers(), &topic, PARTITIONS).expect("topic");
    create_bucket(&bucket);
    let dir = tempfile::tempdir().expect("tempdir");

    let (mut points, messages) = load(minutes, &mut rng);
    let tick_at = T0 + (minutes + 5) * 60_000;
    let ticks: Vec<Point> = (0..PARTITIONS).map(|p| Point { ts: tick_at, service: format!("svc-{p}"), pod: "tick".into(), value: 0.0 }).collect();
    let message_count = messages.len() + ticks.len();
    produce(&topic, messages);
    produce(&topic, ticks.iter().enumerate().map(|(p, t)| (p as i32, otlp_gauge_message(std::slice::from_ref(t), METRIC))).collect());
    points.extend(ticks);

    // What must be in the bucket: one object per final window (the ticks' window stays open),
    // with the rows computed from scratch.
    let expected = expected_metric_1m(&points, METRIC);
    let final_before = tick_at - LATENESS_MS;
    let mut want: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for row in expected.values().filter(|r| r.bucket + 60_000 <= final_before) {
        want.entry(key_of("views", row.bucket)).or_default().push(as_row(row));
    }
    assert_eq!(want.len() as i64, minutes);

    let outage_at = rng.random_range(20..60);
    let proxy = FaultProxy::start(
        s3_endpoint().trim_start_matches("http://").trim_end_matches('/').to_string(),
        Schedule { rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(1)), next: 0, outage: outage_at..outage_at + OUTAGE },
    );
    let parquet = format!(
        "  parquet:\n    url: s3://{bucket}/views\n    endpoint: http://127.0.0.1:{}\n    region: us-east-1\n    access_key_id: testing\n    secret_access_key: testing\n    retry: {{ initial_backoff: 20ms, max_backoff: 200ms }}",
        proxy.port
    );
    let job = dir.path().join("job.yaml");
    let dead = dir.path().join("dead.jsonl");
    std::fs::write(&job, kafka_metric_job(&MetricJob { name: &name, topic: &topic, schema: &name, workers: 2, lateness: "30s", extra_sinks: &parquet, dead_letters: &dead })).expect("job");

    let metrics_port = free_port();
    let engine_started = Instant::now();
    let mut engine = Engine::start_with(&job, &dir.path().join("engine.log"), &["--report", "--listen", &format!("127.0.0.1:{metrics_port}")]);
    let timeout = Duration::from_secs(if long() { 900 } else { 180 });
    wait_for("every final window in the bucket and every offset committed", timeout, || {
        engine.assert_running();
        (object_count(&bucket, "views") >= want.len() && committed_to_end(&topic, &name)).then_some(())
    });
    let engine_time = engine_started.elapsed();
    // Nothing more comes: the proxy sees no request for a second.
    let settled = proxy.requests().len();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(proxy.requests().len(), settled, "requests after every window was written");
    let sink_retries_metric = parquet_retries_metric(metrics_port);
    engine.stop();
    let log = std::fs::read_to_string(dir.path().join("engine.log")).unwrap_or_default();

    // Figures.
    let requests = proxy.requests();
    let injected = requests.iter().filter(|r| r.2 != Fault::None).count();
    let by_fault = requests.iter().fold(BTreeMap::<String, usize>::new(), |mut m, r| {
        *m.entry(format!("{:?}", r.2)).or_default() += 1;
        m
    });
    let puts = requests.iter().filter(|r| r.0 == "PUT").count();
    let injected_puts = requests.iter().filter(|r| r.0 == "PUT" && r.2 != Fault::None).count();
    let methods = requests.iter().fold(BTreeMap::<String, usize>::new(), |mut m, r| {
        *m.entry(r.0.clone()).or_default() += 1;
        m
    });
    // object_store's own retries (one log line per retry), then the sink's loop's.
    let store_retries = log.matches("backing off for").count();
    let sink_retries = log.matches("parquet put failed, retrying").count();
    let report: Option<serde_json::Value> = log.lines().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).last();
    let report_retries = report.as_ref().and_then(|r| r["sink_retries"].as_u64());
    let windows_written = report.as_ref().and_then(|r| r["windows_written"].as_u64());
    let puts_per_key = requests.iter().filter(|r| r.0 == "PUT").fold(BTreeMap::<String, usize>::new(), |mut m, r| {
        *m.entry(r.1.clone()).or_default() += 1;
        m
    });
    let stored_twice = requests.iter().filter(|r| r.0 == "PUT" && r.2 == Fault::DropAfter).count();

    let (got, listed) = objects(&bucket, "views");
    let unreadable: Vec<(&String, &String)> = got.iter().filter_map(|(k, v)| v.as_ref().err().map(|e| (k, e))).collect();
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let wrong: Vec<&String> = want.keys().filter(|k| got.get(*k).is_some_and(|g| g.as_ref().ok() != Some(&want[*k]))).collect();
    let uploads = unfinished_uploads(&bucket);
    let rows: usize = got.values().filter_map(|v| v.as_ref().ok()).map(Vec::len).sum();

    eprintln!(
        "s3_faults: seed {seed}; input: {} points in {message_count} Kafka messages over {minutes} min -> {} final windows expected",
        points.len(),
        want.len()
    );
    eprintln!(
        "s3_faults: proxy: {} requests {methods:?} on {} connections; injected {injected} failures ({:.1}%): {by_fault:?}, including an outage of {OUTAGE} requests in a row from request #{outage_at}",
        requests.len(),
        proxy.log.connections.load(Ordering::Relaxed),
        100.0 * injected as f64 / requests.len().max(1) as f64
    );
    eprintln!(
        "s3_faults: retries: {store_retries} by object_store inside a put + {sink_retries} by the sink's loop = {} (injected {injected}); /metrics observebridge_sink_retries_total{{sink=\"parquet\"}} = {sink_retries_metric}; end-of-run report sink_retries = {report_retries:?}",
        store_retries + sink_retries
    );
    eprintln!(
        "s3_faults: objects: {} in the bucket ({listed} listed, {rows} rows), {} expected; {} missing, {} unexpected, {} with wrong rows, {} unreadable, {uploads} unfinished uploads; {puts} PUTs for {} keys (max {} per key), {stored_twice} stored but unanswered; windows written (report) {windows_written:?}",
        got.len(),
        want.len(),
        missing.len(),
        extra.len(),
        wrong.len(),
        unreadable.len(),
        puts_per_key.len(),
        puts_per_key.values().max().copied().unwrap_or_default()
    );
    eprintln!("s3_faults: wall time {:.1}s (engine until every window was written {:.1}s)", started.elapsed().as_secs_f64(), engine_time.as_secs_f64());

    // Every final window in exactly one readable object, with the rows computed from scratch.
    assert!(unreadable.is_empty(), "unreadable objects: {unreadable:?}");
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, unexpected {extra:?}");
    assert_eq!(listed, got.len(), "a key listed twice");
    if let Some(k) = wrong.first() {
        panic!("{} objects with wrong rows, e.g. {k}: want {:?}, got {:?}", wrong.len(), want[*k], got[*k]);
    }
    assert_eq!(uploads, 0, "unfinished multipart uploads");
    // The fault path ran: failures were injected, on both layers of retries, and every one was
    // retried (one more PUT each) and no window was written twice otherwise.
    assert!(injected > 0 && injected_puts > 0, "no fault injected: {by_fault:?}");
    assert_eq!(store_retries + sink_retries, injected, "retries in the log against injected failures");
    assert!(store_retries > 0, "object_store never retried");
    assert!(sink_retries > 0 && sink_retries_metric > 0, "the sink's retry loop never ran (log {sink_retries}, /metrics {sink_retries_metric})");
    assert_eq!(report_retries, Some(sink_retries_metric), "the end-of-run report and /metrics disagree");
    assert_eq!(puts, want.len() + injected_puts, "PUTs = one per window + one per failed PUT");
    assert_eq!(windows_written, Some(want.len() as u64), "windows written");
    assert!(std::fs::read_to_string(&dead).unwrap_or_default().is_empty(), "dead letters of a clean input");
}
