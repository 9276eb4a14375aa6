//! Tests of the replay input against S3 (moto, `OBSERVEBRIDGE_TEST_S3_ENDPOINT`) and a local
//! directory: listing limited to the window, window boundaries, the Collector S3 exporter layout
//! with otlp_json and otlp_proto files (plain and gzip-compressed), and corrupt or missing
//! objects with `stop` and `skip`.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

use super::*;
use crate::parquet::{ObjectStoreConfig, ParquetSink, RetryConfig};
use crate::sink::FinalWindow;
use crate::source::{Poll, RawRecord, Source, SourceError};

// ---------------------------------------------------------------------------------------------
// helpers

/// 2026-11-21T13:00:00Z.
const H13: i64 = 1_795_266_000_000;
const MIN: i64 = 60_000;

fn s3_endpoint() -> String {
    std::env::var("OBSERVEBRIDGE_TEST_S3_ENDPOINT").unwrap_or_else(|_| panic!("set OBSERVEBRIDGE_TEST_S3_ENDPOINT (run scripts/test.sh)"))
}

/// A bucket name no other test (or earlier run) uses.
fn unique_bucket(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    format!("ob-arc-{test}-{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Creates a bucket with a plain `PUT /<bucket>` (moto does not check signatures).
fn create_bucket(endpoint: &str, bucket: &str) {
    let url = url::Url::parse(endpoint).expect("endpoint is a URL");
    let addr = format!("{}:{}", url.host_str().expect("host"), url.port_or_known_default().expect("port"));
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect to the S3 endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("set timeout");
    write!(stream, "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").expect("send create-bucket request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read create-bucket response");
    assert!(response.starts_with("HTTP/1.1 200"), "create bucket {bucket}: {response}");
}

/// A fresh bucket; the store config names `s3://<bucket>/<prefix>`.
fn s3_store(test: &str, prefix: &str) -> ObjectStoreConfig {
    let endpoint = s3_endpoint();
    let bucket = unique_bucket(test);
    create_bucket(&endpoint, &bucket);
    ObjectStoreConfig {
        url: format!("s3://{bucket}/{prefix}"),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing-secret".into()),
        allow_http: None,
        retry: RetryConfig { initial_backoff: Duration::from_millis(50), max_backoff: Duration::from_millis(200) },
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Rows of a test raw archive object: `ts` (µs, UTC) and `n`.
fn rows(minute: i64, n: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false), Field::new("n", DataType::Int64, false)]));
    let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(n.iter().map(|k| (minute + k * 1000) * 1000)).with_timezone("UTC"));
    RecordBatch::try_new(schema, vec![ts, Arc::new(Int64Array::from(n.to_vec()))]).expect("batch")
}

/// Writes one raw archive object of `signal` at `minute` with the Parquet sink (its real key),
/// returning the full key.
fn write_raw(rt: &tokio::runtime::Runtime, sink: &ParquetSink, signal: ArchiveSignal, minute: i64, n: &[i64]) -> String {
    let window = FinalWindow { view: format!("raw/{}", signal.name()), window_start_ms: minute, rows: rows(minute, n) };
    rt.block_on(sink.write(&window, |_, _| {})).expect("write")
}

/// The test's row encoder: `<signal>:<ts ms>:<n>` per row; refuses batches without those columns.
fn encoder() -> RowEncoder {
    Arc::new(|signal: ArchiveSignal, batch: &RecordBatch| -> Result<Vec<Vec<u8>>, String> {
        let ts = batch.column_by_name("ts").and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>()).ok_or("column ts is missing")?;
        let n = batch.column_by_name("n").and_then(|c| c.as_any().downcast_ref::<Int64Array>()).ok_or("column n is missing")?;
        Ok((0..batch.num_rows()).map(|i| format!("{}:{}:{}", signal.name(), ts.value(i) / 1000, n.value(i)).into_bytes()).collect())
    })
}

/// Polls until the source ends or fails, a few records at a time.
fn drain(source: &mut ArchiveSource) -> (Vec<RawRecord>, Option<SourceError>) {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let before = out.len();
        match source.poll(3, Duration::from_millis(200), &mut out) {
            Ok(Poll::Exhausted) => return (out, None),
            Ok(Poll::Open) => {
                assert!(out.len() - before <= 3, "poll appended more than max");
                assert!(Instant::now() < deadline, "the replay did not end");
            }
            Err(e) => return (out, Some(e)),
        }
    }
}

fn text(records: &[RawRecord]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8(r.payload.clone()).expect("utf-8")).collect()
}

fn keys(listing: &Listing) -> Vec<String> {
    listing.objects.iter().map(|o| o.key.clone()).collect()
}

async fn put(store: &dyn ObjectStore, key: &str, bytes: Vec<u8>) {
    store.put(&Path::parse(key).expect("key"), PutPayload::from(bytes)).await.expect("put");
}

// ---------------------------------------------------------------------------------------------
// The raw archive.

#[test]
fn raw_archive_listing_is_limited_to_the_window_and_reads_in_event_time_order() {
    let store = s3_store("window", "obs");
    let sink = ParquetSink::new(&store).expect("sink");
    let rt = runtime();
    use ArchiveSignal::{Logs, Metrics, Spans};
    // The window is [13:58, 14:03): its hours are 13 and 14.
    let (from, to) = (H13 + 58 * MIN, H13 + 63 * MIN);
    let key = |signal: ArchiveSignal, minute: i64| write_raw(&rt, &sink, signal, minute, &[1, 2]);
    let before_hour = key(Spans, H13 - MIN); // 12:59, another hour
    let before = key(Spans, from - MIN); // 13:57
    let first = key(Spans, from); // 13:58, a record at exactly `from` lives here
    let first_metrics = key(Metrics, from);
    let middle = key(Metrics, from + 3 * MIN); // 14:01
    let last_logs = key(Logs, to - MIN); // 14:02
    let last = key(Spans, to - MIN); // 14:02
    let at_to = key(Spans, to); // 14:03, out
    let after_hour = key(Spans, H13 + 120 * MIN); // 15:00
    let next_day = key(Spans, from + 24 * 60 * MIN);
    rt.block_on(put(sink.store().as_ref(), "obs/raw/spans/date=2026-11-21/hour=13/minute=59/notes.txt", b"not an object of the archive".to_vec()));

    let config = ArchiveConfig::new(store.clone());
    let listing = list(&config, &Window::new(from, to)).expect("list");
    let hours: Vec<String> = ["metrics", "spans", "logs", "k8s"]
        .iter()
        .flat_map(|s| [13, 14].map(|h| format!("obs/raw/{s}/date=2026-11-21/hour={h}")))
        .collect();
    assert_eq!(listing.prefixes, hours, "one list request per signal and hour of the window");
    assert_eq!(keys(&listing), [first_metrics.clone(), first.clone(), middle.clone(), last_logs.clone(), last.clone()]);
    assert_eq!(listing.ignored, [("obs/raw/spans/date=2026-11-21/hour=13/minute=59/notes.txt".to_owned(), "not a .parquet object".to_owned())]);
    assert_eq!(listing.outside, 2, "13:57 and 14:03 are in listed hours, outside the window");
    for never in [&before, &at_to, &before_hour, &after_hour, &next_day] {
        assert!(!keys(&listing).contains(never), "{never} listed");
    }
    assert!(listing.objects.iter().all(|o| o.format == ArchiveFormat::Archived && o.size > 0 && !o.gzip));
    assert_eq!(listing.objects.iter().map(|o| o.minute).collect::<Vec<_>>(), [from, from, from + 3 * MIN, to - MIN, to - MIN]);

    // A warm-up reaches back: two minutes take 13:57 in, an hour adds hour 12's prefixes.
    let warm = list(&config, &Window { warmup_ms: 2 * MIN, ..Window::new(from, to) }).expect("list");
    assert_eq!(warm.prefixes, hours);
    assert_eq!(keys(&warm)[0], before);
    let hour_back = list(&config, &Window { warmup_ms: 60 * MIN, ..Window::new(from, to) }).expect("list");
    assert_eq!(hour_back.prefixes.len(), 12);
    assert!(hour_back.prefixes.contains(&"obs/raw/spans/date=2026-11-21/hour=12".to_owned()));
    assert_eq!(keys(&hour_back)[0], before_hour);
    // Signals can be left out.
    let spans_only = ArchiveConfig { signals: Some([Spans].into()), ..config.clone() };
    let listed = list(&spans_only, &Window::new(from, to)).expect("list");
    assert_eq!(listed.prefixes, hours[2..4]);
    assert_eq!(keys(&listed), [first.clone(), last.clone()]);

    // Reading: event-time order, one partition per signal, offsets naming object and row.
    let mut source = ArchiveSource::new("replay", &config, listing.clone(), encoder()).expect("source");
    let progress = source.progress();
    let names: Vec<String> = source.partitions().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["archive:metrics/archived", "archive:spans/archived", "archive:logs/archived"]);
    assert_eq!(source.partition_encoding(1), Some((Spans, ArchiveFormat::Archived)));
    assert_eq!(source.partition_encoding(3), None);
    let (records, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    let ts = |m: i64, n: i64| format!("{}", m + n * 1000);
    assert_eq!(
        text(&records),
        [
            format!("metrics:{}:1", ts(from, 1)),
            format!("metrics:{}:2", ts(from, 2)),
            format!("spans:{}:1", ts(from, 1)),
            format!("spans:{}:2", ts(from, 2)),
            format!("metrics:{}:1", ts(from + 3 * MIN, 1)),
            format!("metrics:{}:2", ts(from + 3 * MIN, 2)),
            format!("logs:{}:1", ts(to - MIN, 1)),
            format!("logs:{}:2", ts(to - MIN, 2)),
            format!("spans:{}:1", ts(to - MIN, 1)),
            format!("spans:{}:2", ts(to - MIN, 2)),
        ]
    );
    assert_eq!(records.iter().map(|r| r.partition).collect::<Vec<_>>(), [0, 0, 1, 1, 0, 0, 2, 2, 1, 1]);
    assert_eq!(records[3].offset, (1 << 32) | 1);
    let (object, row) = listing.locate(records[9].offset).expect("located");
    assert_eq!((object.key.as_str(), row), (last.as_str(), 1));
    for p in 0..3 {
        let offsets: Vec<u64> = records.iter().filter(|r| r.partition == p).map(|r| r.offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets of partition {p} increase");
    }
    let done = progress.snapshot();
    assert_eq!(
        done,
        ProgressSnapshot { objects_total: 5, objects_done: 5, bytes_total: listing.total_bytes(), bytes_done: listing.total_bytes(), records: 10, skipped: 0 }
    );
    // Exhausted stays exhausted.
    assert_eq!(source.poll(10, Duration::ZERO, &mut Vec::new()).expect("poll"), Poll::Exhausted);
}

#[test]
fn a_local_directory_archive_replays_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStoreConfig { url: dir.path().display().to_string(), ..ObjectStoreConfig::default() };
    let sink = ParquetSink::new(&store).expect("sink");
    let rt = runtime();
    let key = write_raw(&rt, &sink, ArchiveSignal::K8s, H13 + 5 * MIN, &[7]);
    write_raw(&rt, &sink, ArchiveSignal::K8s, H13 + 6 * MIN, &[8]);
    let config = ArchiveConfig::new(store);
    let window = Window::new(H13, H13 + 6 * MIN);
    let listing = list(&config, &window).expect("list");
    assert_eq!(keys(&listing), [key]);
    assert_eq!(listing.prefixes.len(), 4);
    let mut source = ArchiveSource::open("local", &config, &window, encoder()).expect("open");
    let (records, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text(&records), [format!("k8s:{}:7", H13 + 5 * MIN + 7000)]);
}

// ---------------------------------------------------------------------------------------------
// The Collector's S3 exporter.

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }), ..Default::default() }
}

fn resource() -> Option<Resource> {
    Some(Resource { attributes: vec![kv("service.name", "checkout"), kv("k8s.namespace.name", "shop")], ..Default::default() })
}

fn traces(ms: i64) -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: vec![0xab; 16],
        span_id: vec![0xcd; 8],
        name: "GET /pay".into(),
        kind: 2,
        start_time_unix_nano: (ms as u64 - 20) * 1_000_000,
        end_time_unix_nano: ms as u64 * 1_000_000,
        ..Default::default()
    };
    ExportTraceServiceRequest { resource_spans: vec![ResourceSpans { resource: resource(), scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }], ..Default::default() }] }
}

fn metrics(ms: i64) -> ExportMetricsServiceRequest {
    let point = NumberDataPoint { time_unix_nano: ms as u64 * 1_000_000, value: Some(number_data_point::Value::AsDouble(0.75)), ..Default::default() };
    let gauge = Metric { name: "cpu.utilization".into(), data: Some(metric::Data::Gauge(Gauge { data_points: vec![point] })), ..Default::default() };
    ExportMetricsServiceRequest { resource_metrics: vec![ResourceMetrics { resource: resource(), scope_metrics: vec![ScopeMetrics { metrics: vec![gauge], ..Default::default() }], ..Default::default() }] }
}

fn logs(ms: i64, message: &str) -> ExportLogsServiceRequest {
    let record = LogRecord {
        time_unix_nano: ms as u64 * 1_000_000,
        severity_number: 17,
        body: Some(AnyValue { value: Some(any_value::Value::StringValue(message.into())) }),
        ..Default::default()
    };
    ExportLogsServiceRequest { resource_logs: vec![ResourceLogs { resource: resource(), scope_logs: vec![ScopeLogs { log_records: vec![record], ..Default::default() }], ..Default::default() }] }
}

#[test]
fn collector_exporter_files_are_listed_by_minute_and_read_as_otlp() {
    let store = s3_store("otel", "otel");
    let (s3, _root) = store.build().expect("store");
    let rt = runtime();
    let dir = |hour: u32, minute: u32| format!("otel/year=2026/month=11/day=21/hour={hour:02}/minute={minute:02}");
    // Minute 13:05: traces as otlp_json, metrics as otlp_proto.
    let trace_json = serde_json::to_vec(&traces(H13 + 5 * MIN + 100)).expect("json");
    let metric_proto = metrics(H13 + 5 * MIN + 200).encode_to_vec();
    // Minute 13:06: logs as JSON lines (the exporter's batching marshaler), a gzip file cut short
    // after its header (unreadable; whole .gz files are read in the tests below), a stray file.
    let log_lines = [logs(H13 + 6 * MIN, "connection refused"), logs(H13 + 6 * MIN + 5, "retrying")].map(|r| serde_json::to_vec(&r).expect("json"));
    let mut jsonl = log_lines.join(&b'\n');
    jsonl.push(b'\n');
    let files = [
        (format!("{}/traces_AbC123xyz.json", dir(13, 5)), trace_json.clone()),
        (format!("{}/metrics_Q9w8e7r6t.binpb", dir(13, 5)), metric_proto.clone()),
        (format!("{}/logs_Zx1c2v3b4.json", dir(13, 6)), jsonl),
        (format!("{}/traces_Gz0000000.json.gz", dir(13, 6)), vec![0x1f, 0x8b, 8, 0]),
        (format!("{}/README.txt", dir(13, 6)), b"hello".to_vec()),
        (format!("{}/traces_Late00000.json", dir(13, 10)), trace_json.clone()),
        (format!("{}/traces_Early0000.json", dir(12, 59)), trace_json.clone()),
    ];
    for (key, bytes) in &files {
        rt.block_on(put(s3.as_ref(), key, bytes.clone()));
    }

    let config = ArchiveConfig { layout: Layout::Collector, on_error: OnError::Skip, ..ArchiveConfig::new(store) };
    let window = Window::new(H13 + 5 * MIN, H13 + 10 * MIN);
    let listing = list(&config, &window).expect("list");
    assert_eq!(listing.prefixes, ["otel/year=2026/month=11/day=21/hour=13"]);
    assert_eq!(keys(&listing), [files[1].0.clone(), files[0].0.clone(), files[2].0.clone(), files[3].0.clone()]);
    assert_eq!(listing.ignored.len(), 1);
    assert_eq!(listing.ignored[0].0, files[4].0);
    assert_eq!(listing.outside, 1);
    let described: Vec<(ArchiveSignal, ArchiveFormat, bool)> = listing.objects.iter().map(|o| (o.signal, o.format, o.gzip)).collect();
    assert_eq!(
        described,
        [
            (ArchiveSignal::Metrics, ArchiveFormat::OtlpProto, false),
            (ArchiveSignal::Spans, ArchiveFormat::OtlpJson, false),
            (ArchiveSignal::Logs, ArchiveFormat::OtlpJson, false),
            (ArchiveSignal::Spans, ArchiveFormat::OtlpJson, true),
        ]
    );
    // The tail reaches the files written after `to` (13:10 here).
    let tail = list(&config, &Window { tail_ms: MIN, ..window }).expect("list");
    assert_eq!(keys(&tail).last(), Some(&files[5].0));

    let mut source = ArchiveSource::new("otel", &config, listing.clone(), encoder()).expect("source");
    let encodings = source.partition_encodings().to_vec();
    assert_eq!(
        encodings,
        [(ArchiveSignal::Metrics, ArchiveFormat::OtlpProto), (ArchiveSignal::Spans, ArchiveFormat::OtlpJson), (ArchiveSignal::Logs, ArchiveFormat::OtlpJson)]
    );
    assert_eq!(source.partitions()[0].name, "archive:metrics/otlp_proto");
    let progress = source.progress();
    let (records, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].partition, 0);
    assert_eq!(ExportMetricsServiceRequest::decode(records[0].payload.as_slice()).expect("proto"), metrics(H13 + 5 * MIN + 200));
    assert_eq!((records[1].partition, &records[1].payload), (1, &trace_json));
    assert_eq!((records[2].partition, &records[2].payload, records[2].offset), (2, &log_lines[0], 2 << 32));
    assert_eq!((records[3].partition, &records[3].payload, records[3].offset), (2, &log_lines[1], (2 << 32) | 1));
    let skipped = progress.skipped();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].key, files[3].0);
    assert!(skipped[0].reason.contains("gzip"), "{}", skipped[0].reason);
    let done = progress.snapshot();
    assert_eq!((done.objects_done, done.objects_total, done.bytes_done, done.records, done.skipped), (4, 4, listing.total_bytes(), 4, 1));
}

// ---------------------------------------------------------------------------------------------
// Missing and corrupt objects.

#[test]
fn corrupt_and_missing_objects_are_reported_with_their_keys() {
    let store = s3_store("errors", "");
    let sink = ParquetSink::new(&store).expect("sink");
    let rt = runtime();
    let spans = ArchiveSignal::Spans;
    let good = write_raw(&rt, &sink, spans, H13, &[1, 2]);
    let corrupt = ParquetSink::object_key("raw/spans", H13 + MIN);
    rt.block_on(put(sink.store().as_ref(), &corrupt, b"PAR1 these are not the bytes of a parquet file".to_vec()));
    let missing = write_raw(&rt, &sink, spans, H13 + 2 * MIN, &[3]);
    let fine = write_raw(&rt, &sink, spans, H13 + 3 * MIN, &[4, 5]);
    // A Parquet object whose rows are not archive rows (the encoder refuses them).
    let alien = {
        let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, false)])), vec![Arc::new(StringArray::from(vec!["a"]))]).expect("batch");
        rt.block_on(sink.write(&FinalWindow { view: "raw/spans".into(), window_start_ms: H13 + 4 * MIN, rows: batch }, |_, _| {})).expect("write")
    };

    let config = ArchiveConfig::new(store);
    let window = Window::new(H13, H13 + 5 * MIN);
    let listing = list(&config, &window).expect("list");
    assert_eq!(keys(&listing), [good.clone(), corrupt.clone(), missing.clone(), fine.clone(), alien.clone()]);
    // Listed, then deleted before reading.
    rt.block_on(sink.store().delete(&Path::parse(&missing).expect("key"))).expect("delete");

    // stop (the default): the records before the corrupt object, then an error naming it.
    let mut stopping = ArchiveSource::new("replay", &config, listing.clone(), encoder()).expect("source");
    let (records, error) = drain(&mut stopping);
    assert_eq!(text(&records), [format!("spans:{}:1", H13 + 1000), format!("spans:{}:2", H13 + 2000)]);
    let message = error.expect("an error").to_string();
    assert!(message.contains(&corrupt) && message.contains("Parquet"), "{message}");
    let again = stopping.poll(10, Duration::ZERO, &mut Vec::new()).expect_err("still failed").to_string();
    assert_eq!(again, message);

    // A missing object stops a replay too, naming its key.
    let after_corrupt = Listing { objects: listing.objects[2..].to_vec(), ..listing.clone() };
    let (_, error) = drain(&mut ArchiveSource::new("replay", &config, after_corrupt, encoder()).expect("source"));
    let message = error.expect("an error").to_string();
    assert!(message.contains(&missing) && message.contains("not found"), "{message}");

    // skip: every readable record, and each bad object reported with its key and reason.
    let skipping = ArchiveConfig { on_error: OnError::Skip, ..config };
    let mut source = ArchiveSource::new("replay", &skipping, listing.clone(), encoder()).expect("source");
    let progress = source.progress();
    let (records, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        text(&records),
        [format!("spans:{}:1", H13 + 1000), format!("spans:{}:2", H13 + 2000), format!("spans:{}:4", H13 + 3 * MIN + 4000), format!("spans:{}:5", H13 + 3 * MIN + 5000)]
    );
    let skipped = progress.skipped();
    assert_eq!(skipped.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), [corrupt.as_str(), missing.as_str(), alien.as_str()]);
    assert!(skipped[0].reason.contains("Parquet"), "{}", skipped[0].reason);
    assert!(skipped[1].reason.contains("not found"), "{}", skipped[1].reason);
    assert!(skipped[2].reason.contains("not spans archive rows") && skipped[2].reason.contains("column ts is missing"), "{}", skipped[2].reason);
    let done = progress.snapshot();
    assert_eq!((done.objects_done, done.objects_total, done.records, done.skipped), (5, 5, 4, 3));
    assert_eq!(done.bytes_done, done.bytes_total);
}

// ---------------------------------------------------------------------------------------------
// gzip-compressed Collector files (`compression: gzip`), in a local directory.

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("compress");
    encoder.finish().expect("compress")
}

/// Writes `files` (key relative to the store's directory, bytes) under `dir`.
fn write_files(dir: &std::path::Path, files: &[(String, Vec<u8>)]) {
    for (key, bytes) in files {
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
    }
}

fn local_collector(dir: &std::path::Path, on_error: OnError) -> ArchiveConfig {
    let store = ObjectStoreConfig { url: dir.display().to_string(), ..ObjectStoreConfig::default() };
    ArchiveConfig { layout: Layout::Collector, on_error, ..ArchiveConfig::new(store) }
}

/// The exporter's default partition directory of a minute of hour 13.
fn collector_dir(minute: u32) -> String {
    format!("year=2026/month=11/day=21/hour=13/minute={minute:02}")
}

/// A file name relative to the store's root, for comparing keys (the local store's keys are
/// absolute paths).
fn file_name(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, name)| name)
}

#[test]
fn gzip_collector_files_read_as_their_uncompressed_twins() {
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let gz_dir = tempfile::tempdir().expect("tempdir");
    // The same exporter output written twice, without and with `compression: gzip`: traces as
    // one otlp_json request, metrics as otlp_proto, logs as JSON lines (two requests), and a
    // second metrics file in the next minute.
    let trace_json = serde_json::to_vec(&traces(H13 + 5 * MIN + 100)).expect("json");
    let metric_proto = metrics(H13 + 5 * MIN + 200).encode_to_vec();
    let log_lines = [logs(H13 + 6 * MIN, "connection refused"), logs(H13 + 6 * MIN + 5, "retrying")].map(|r| serde_json::to_vec(&r).expect("json"));
    let mut jsonl = log_lines.join(&b'\n');
    jsonl.push(b'\n');
    let later_proto = metrics(H13 + 7 * MIN + 300).encode_to_vec();
    let plain = [
        (format!("{}/traces_AbC123xyz.json", collector_dir(5)), trace_json.clone()),
        (format!("{}/metrics_Q9w8e7r6t.binpb", collector_dir(5)), metric_proto.clone()),
        (format!("{}/logs_Zx1c2v3b4.json", collector_dir(6)), jsonl.clone()),
        (format!("{}/metrics_P0o9i8u7y.binpb", collector_dir(7)), later_proto.clone()),
    ];
    let compressed: Vec<(String, Vec<u8>)> = plain.iter().map(|(key, bytes)| (format!("{key}.gz"), gzip(bytes))).collect();
    write_files(plain_dir.path(), &plain);
    write_files(gz_dir.path(), &compressed);

    let window = Window::new(H13 + 5 * MIN, H13 + 10 * MIN);
    let read = |dir: &std::path::Path| {
        let config = local_collector(dir, OnError::Stop);
        let listing = list(&config, &window).expect("list");
        let mut source = ArchiveSource::new("otel", &config, listing.clone(), encoder()).expect("source");
        let progress = source.progress();
        let encodings = source.partition_encodings().to_vec();
        let partitions: Vec<String> = source.partitions().into_iter().map(|p| p.name).collect();
        let (records, error) = drain(&mut source);
        assert!(error.is_none(), "{error:?}");
        (listing, encodings, partitions, records, progress.snapshot())
    };
    let (plain_listing, plain_encodings, plain_partitions, plain_records, plain_done) = read(plain_dir.path());
    let (gz_listing, gz_encodings, gz_partitions, gz_records, gz_done) = read(gz_dir.path());

    // Listed alike (the .gz marked), in the same order.
    let names = |listing: &Listing| listing.objects.iter().map(|o| file_name(&o.key).to_owned()).collect::<Vec<_>>();
    assert_eq!(names(&plain_listing), ["metrics_Q9w8e7r6t.binpb", "traces_AbC123xyz.json", "logs_Zx1c2v3b4.json", "metrics_P0o9i8u7y.binpb"]);
    assert_eq!(names(&gz_listing), names(&plain_listing).iter().map(|n| format!("{n}.gz")).collect::<Vec<_>>());
    assert!(gz_listing.objects.iter().all(|o| o.gzip) && plain_listing.objects.iter().all(|o| !o.gzip));
    assert!(gz_listing.ignored.is_empty(), "{:?}", gz_listing.ignored);
    let described = |listing: &Listing| listing.objects.iter().map(|o| (o.signal, o.format, o.minute)).collect::<Vec<_>>();
    assert_eq!(described(&gz_listing), described(&plain_listing));

    // The same partitions and the same records (partition, offset, payload), byte for byte.
    assert_eq!(gz_encodings, plain_encodings);
    assert_eq!(gz_partitions, ["archive:metrics/otlp_proto", "archive:spans/otlp_json", "archive:logs/otlp_json"]);
    assert_eq!(gz_partitions, plain_partitions);
    let triples = |records: &[RawRecord]| records.iter().map(|r| (r.partition, r.offset, r.payload.clone())).collect::<Vec<_>>();
    assert_eq!(gz_records.len(), 5);
    assert_eq!(triples(&gz_records), triples(&plain_records));
    // ... and they are the requests that were written.
    assert_eq!(ExportMetricsServiceRequest::decode(gz_records[0].payload.as_slice()).expect("proto"), metrics(H13 + 5 * MIN + 200));
    assert_eq!(gz_records[1].payload, trace_json);
    let trace: ExportTraceServiceRequest = serde_json::from_slice(&gz_records[1].payload).expect("json");
    assert_eq!(trace, traces(H13 + 5 * MIN + 100));
    assert_eq!((&gz_records[2].payload, &gz_records[3].payload), (&log_lines[0], &log_lines[1]));
    assert_eq!((gz_records[3].partition, gz_records[3].offset), (2, (2 << 32) | 1));
    assert_eq!(ExportMetricsServiceRequest::decode(gz_records[4].payload.as_slice()).expect("proto"), metrics(H13 + 7 * MIN + 300));

    // Progress counts the bytes as stored (compressed) and the same records.
    assert_eq!((gz_done.objects_done, gz_done.objects_total, gz_done.records, gz_done.skipped), (4, 4, 5, 0));
    assert_eq!((gz_done.bytes_done, gz_done.bytes_total), (gz_listing.total_bytes(), compressed.iter().map(|(_, b)| b.len() as u64).sum()));
    assert_eq!((plain_done.records, plain_done.objects_done), (gz_done.records, gz_done.objects_done));
}

#[test]
fn a_truncated_gz_file_is_reported_with_its_key_under_skip_and_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metric_proto = metrics(H13 + 5 * MIN + 200).encode_to_vec();
    let trace_json = serde_json::to_vec(&traces(H13 + 6 * MIN + 100)).expect("json");
    let whole_traces = gzip(&trace_json);
    let log_json = serde_json::to_vec(&logs(H13 + 8 * MIN, "retrying")).expect("json");
    let files = [
        (format!("{}/metrics_Good00001.binpb.gz", collector_dir(5)), gzip(&metric_proto)),
        // Cut short, as by an interrupted upload: header and part of the deflate stream.
        (format!("{}/traces_Trunc0001.json.gz", collector_dir(6)), whole_traces[..whole_traces.len() / 2].to_vec()),
        // Named .gz but written without compression.
        (format!("{}/traces_NotGz0001.json.gz", collector_dir(7)), trace_json.clone()),
        (format!("{}/logs_Good00002.json.gz", collector_dir(8)), gzip(&log_json)),
    ];
    write_files(dir.path(), &files);
    let window = Window::new(H13 + 5 * MIN, H13 + 10 * MIN);
    let listing = list(&local_collector(dir.path(), OnError::Stop), &window).expect("list");
    let listed: Vec<&str> = listing.objects.iter().map(|o| file_name(&o.key)).collect();
    assert_eq!(listed, ["metrics_Good00001.binpb.gz", "traces_Trunc0001.json.gz", "traces_NotGz0001.json.gz", "logs_Good00002.json.gz"]);
    let truncated = listing.objects[1].key.clone();
    let not_gzip = listing.objects[2].key.clone();
    assert!(truncated.ends_with(&files[1].0), "{truncated}");

    // stop (the default): the records before the truncated file, then an error naming it.
    let mut stopping = ArchiveSource::new("otel", &local_collector(dir.path(), OnError::Stop), listing.clone(), encoder()).expect("source");
    let progress = stopping.progress();
    let (records, error) = drain(&mut stopping);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].payload, metric_proto);
    let message = error.expect("an error").to_string();
    assert!(message.contains(&truncated) && message.contains("gzip"), "{message}");
    let again = stopping.poll(10, Duration::ZERO, &mut Vec::new()).expect_err("still failed").to_string();
    assert_eq!(again, message);
    assert!(progress.skipped().is_empty());
    assert_eq!(progress.snapshot().objects_done, 1);

    // skip: the readable files' records, and each bad .gz reported with its key and reason.
    let mut skipping = ArchiveSource::new("otel", &local_collector(dir.path(), OnError::Skip), listing.clone(), encoder()).expect("source");
    let progress = skipping.progress();
    let (records, error) = drain(&mut skipping);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(records.iter().map(|r| (r.partition, r.offset, r.payload.clone())).collect::<Vec<_>>(), [(0, 0, metric_proto), (2, 3 << 32, log_json)]);
    let skipped = progress.skipped();
    assert_eq!(skipped.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), [truncated.as_str(), not_gzip.as_str()]);
    for s in &skipped {
        assert!(s.reason.contains("not a readable gzip stream"), "{}: {}", s.key, s.reason);
    }
    let done = progress.snapshot();
    assert_eq!((done.objects_done, done.objects_total, done.records, done.skipped), (4, 4, 2, 2));
    assert_eq!(done.bytes_done, done.bytes_total);
}
