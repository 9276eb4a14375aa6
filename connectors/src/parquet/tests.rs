//! Tests of the Parquet sink: local directories, S3 through moto (`OBSERVEBRIDGE_TEST_S3_ENDPOINT`),
//! configuration rules, and retries against endpoints that refuse, fail, then recover.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use ::parquet::basic::Compression;
use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::TimeZone;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::sink::FinalWindow;

// ---------------------------------------------------------------------------------------------
// helpers

fn s3_endpoint() -> String {
    std::env::var("OBSERVEBRIDGE_TEST_S3_ENDPOINT")
        .unwrap_or_else(|_| panic!("set OBSERVEBRIDGE_TEST_S3_ENDPOINT (run scripts/test.sh)"))
}

/// A bucket name no other test (or earlier run) uses.
fn unique_bucket(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "ob-{test}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `host:port` of an `http://host:port` endpoint.
fn host_port(endpoint: &str) -> String {
    let url = url::Url::parse(endpoint).expect("endpoint is a URL");
    format!(
        "{}:{}",
        url.host_str().expect("endpoint has a host"),
        url.port_or_known_default().expect("port")
    )
}

/// Creates a bucket with a plain `PUT /<bucket>` (moto does not check signatures).
fn create_bucket(endpoint: &str, bucket: &str) {
    let addr = host_port(endpoint);
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect to the S3 endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set timeout");
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send create-bucket request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read create-bucket response");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "create bucket {bucket}: {response}"
    );
}

fn s3_config(endpoint: &str, bucket: &str, prefix: &str) -> ObjectStoreConfig {
    ObjectStoreConfig {
        url: format!("s3://{bucket}/{prefix}"),
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing-secret".into()),
        allow_http: None,
        retry: fast_retry(),
    }
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    }
}

fn local_config(dir: &std::path::Path) -> ObjectStoreConfig {
    ObjectStoreConfig {
        url: dir.display().to_string(),
        retry: fast_retry(),
        ..ObjectStoreConfig::default()
    }
}

fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    chrono::Utc
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid time")
        .timestamp_millis()
}

/// A small window of `metric_1m`-like rows. The schema carries several metadata entries, built in
/// a fresh `HashMap` each call, so that two calls iterate them in different orders.
fn sample_window(start_ms: i64) -> FinalWindow {
    let field_meta: HashMap<String, String> =
        [("unit", "ms"), ("origin", "histogram"), ("kind", "gauge")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
    let schema_meta: HashMap<String, String> = [
        ("view", "metric_1m"),
        ("version", "1"),
        ("key", "bucket,tenant,resource"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    let schema = Arc::new(Schema::new_with_metadata(
        vec![
            Field::new(
                "bucket",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("tenant", DataType::Utf8, false),
            Field::new("resource", DataType::Utf8, false),
            Field::new("count", DataType::Int64, false),
            Field::new("p95", DataType::Float64, true).with_metadata(field_meta),
        ],
        schema_meta,
    ));
    let n = 50;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(vec![start_ms; n]).with_timezone("UTC")),
        Arc::new(StringArray::from(
            (0..n)
                .map(|i| format!("tenant-{}", i % 3))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            (0..n)
                .map(|i| format!("urn:k8s:svc:shop/svc-{i:02}"))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            (0..n as i64).map(|i| i * 7).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            (0..n)
                .map(|i| (i % 5 != 0).then_some(i as f64 * 1.5))
                .collect::<Vec<_>>(),
        )),
    ];
    let rows = RecordBatch::try_new(schema, columns).expect("sample batch");
    FinalWindow {
        view: "metric_1m".into(),
        window_start_ms: start_ms,
        rows,
    }
}

/// Every object under `prefix`, walking "directories" with `list_with_delimiter`.
async fn list_all(store: &dyn ObjectStore, prefix: &Path) -> Vec<String> {
    let mut pending = vec![prefix.clone()];
    let mut objects = Vec::new();
    while let Some(dir) = pending.pop() {
        let listing = store.list_with_delimiter(Some(&dir)).await.expect("list");
        pending.extend(listing.common_prefixes);
        objects.extend(listing.objects.into_iter().map(|o| o.location.to_string()));
    }
    objects.sort();
    objects
}

async fn object_bytes(store: &dyn ObjectStore, key: &str) -> bytes::Bytes {
    store
        .get(&Path::from(key))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
}

fn no_retry(attempt: u32, err: &ParquetError) {
    panic!("unexpected retry {attempt}: {err}");
}

/// Accepts connections; until `fail_until` answers each request with `status` (reading the
/// request first, closing after), afterwards relays the connection to `upstream`.
async fn serve_status_then_proxy(
    listener: TcpListener,
    upstream: String,
    status: &'static str,
    fail_until: Instant,
) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if Instant::now() < fail_until {
                respond_status(sock, status).await;
            } else {
                relay(sock, &upstream).await;
            }
        });
    }
}

async fn relay(mut inbound: TcpStream, upstream: &str) {
    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    }
}

async fn respond_status(mut sock: TcpStream, status: &str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let body_end = loop {
        let Ok(n) = sock.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = headers
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            break end + 4 + length;
        }
    };
    while buf.len() < body_end {
        let Ok(n) = sock.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let response = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = sock.write_all(response.as_bytes()).await;
    let _ = sock.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// keys

#[test]
fn key_layout_is_exact() {
    let start = ms(2026, 11, 21, 13, 5, 0);
    assert_eq!(
        ParquetSink::object_key("metric_1m", start),
        "metric_1m/date=2026-11-21/hour=13/metric_1m-20261121T130500Z.parquet"
    );
    assert_eq!(
        ParquetSink::object_key("service_call_5m", ms(2026, 1, 2, 3, 55, 0)),
        "service_call_5m/date=2026-01-02/hour=03/service_call_5m-20260102T035500Z.parquet"
    );
    // Same window, same key.
    assert_eq!(
        ParquetSink::object_key("metric_1m", start),
        ParquetSink::object_key("metric_1m", start)
    );
}

#[test]
fn window_start_reads_back_what_object_key_wrote() {
    let start = ms(2026, 11, 21, 13, 5, 0);
    let key = ParquetSink::object_key("log_pattern_5m", start);
    assert_eq!(ParquetSink::window_start("log_pattern_5m", &key), Some(start));
    assert_eq!(ParquetSink::window_start("log_pattern_5m", &format!("bucket/prefix/{key}")), Some(start));
    // Another view's key, or the raw archive's, names no window of this view.
    assert_eq!(ParquetSink::window_start("log_pattern", &key), None);
    assert_eq!(ParquetSink::window_start("raw/spans", &ParquetSink::object_key("raw/spans", start)), None);
}

#[test]
fn raw_archive_keys_have_a_minute_level() {
    assert_eq!(
        ParquetSink::object_key("raw/spans", ms(2026, 11, 21, 13, 5, 0)),
        "raw/spans/date=2026-11-21/hour=13/minute=05/spans-20261121T1305Z.parquet"
    );
    assert_eq!(
        ParquetSink::object_key("raw/k8s", ms(2026, 1, 2, 3, 59, 0)),
        "raw/k8s/date=2026-01-02/hour=03/minute=59/k8s-20260102T0359Z.parquet"
    );
    // Other views keep their layout.
    assert_eq!(
        ParquetSink::object_key("raw_locator", ms(2026, 11, 21, 13, 5, 0)),
        "raw_locator/date=2026-11-21/hour=13/raw_locator-20261121T130500Z.parquet"
    );
}

#[tokio::test]
async fn raw_archive_minutes_are_written_under_their_minute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ParquetSink::new(&local_config(dir.path())).expect("sink");
    let start = ms(2026, 11, 21, 13, 5, 0);
    let mut window = sample_window(start);
    window.view = "raw/logs".into();
    let key = sink.write(&window, no_retry).await.expect("write");
    assert!(
        key.ends_with("/raw/logs/date=2026-11-21/hour=13/minute=05/logs-20261121T1305Z.parquet"),
        "{key}"
    );
    let again = sink.write(&window, no_retry).await.expect("rewrite");
    assert_eq!(key, again);
    let objects = list_all(sink.store().as_ref(), sink.prefix()).await;
    assert_eq!(objects, vec![key.clone()], "a rewrite replaces the object");
    let read = read_parquet(sink.store().as_ref(), &Path::from(key.as_str()))
        .await
        .expect("read");
    assert_eq!(read, vec![window.rows.clone()]);
    // Raw views need a whole minute and a plain signal name.
    for (view, start) in [
        ("raw/spans", start + 1_000),
        ("raw/", start),
        ("raw/a/b", start),
        ("raw/..", start),
    ] {
        let mut bad = window.clone();
        bad.view = view.into();
        bad.window_start_ms = start;
        let err = sink.write(&bad, no_retry).await.expect_err("refused");
        assert!(
            matches!(err, ParquetError::Window { .. }),
            "{view}@{start}: {err}"
        );
    }
}

#[tokio::test]
async fn bad_windows_are_refused_before_any_io() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ParquetSink::new(&local_config(dir.path())).expect("sink");
    for (view, start) in [
        ("", 0),
        ("metric/1m", 0),
        ("../up", 0),
        ("metric_1m", 1_500),
        ("metric_1m", i64::MAX),
    ] {
        let mut window = sample_window(0);
        window.view = view.into();
        window.window_start_ms = start;
        let err = sink
            .write(&window, no_retry)
            .await
            .expect_err("bad window refused");
        assert!(
            matches!(err, ParquetError::Window { .. }),
            "{view}@{start}: {err}"
        );
        assert!(!err.is_transient());
    }
    assert!(
        list_all(sink.store().as_ref(), sink.prefix())
            .await
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// local directory

#[tokio::test]
async fn local_write_reads_back_the_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("nested/out");
    let sink = ParquetSink::new(&local_config(&out)).expect("sink");
    assert!(out.is_dir(), "build creates the directory");

    let window = sample_window(ms(2026, 11, 21, 13, 5, 0));
    let key = sink.write(&window, no_retry).await.expect("write");
    assert!(
        key.ends_with("/metric_1m/date=2026-11-21/hour=13/metric_1m-20261121T130500Z.parquet"),
        "{key}"
    );
    assert!(
        key.starts_with(sink.prefix().as_ref()),
        "{key} under {}",
        sink.prefix()
    );
    assert!(
        out.join("metric_1m/date=2026-11-21/hour=13/metric_1m-20261121T130500Z.parquet")
            .is_file()
    );

    let batches = read_parquet(sink.store().as_ref(), &Path::from(key.as_str()))
        .await
        .expect("read back");
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0], window.rows,
        "rows and schema (with its metadata) round-trip"
    );
}

#[tokio::test]
async fn file_url_and_relative_paths_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = url::Url::from_directory_path(dir.path().join("viaurl")).expect("file url");
    let cfg = ObjectStoreConfig {
        url: url.to_string(),
        retry: fast_retry(),
        ..ObjectStoreConfig::default()
    };
    let sink = ParquetSink::new(&cfg).expect("sink");
    let window = sample_window(ms(2026, 11, 21, 0, 0, 0));
    let key = sink.write(&window, no_retry).await.expect("write");
    assert!(
        dir.path()
            .join("viaurl/metric_1m/date=2026-11-21/hour=00/metric_1m-20261121T000000Z.parquet")
            .is_file()
    );
    let batches = read_parquet(sink.store().as_ref(), &Path::from(key.as_str()))
        .await
        .expect("read");
    assert_eq!(batches, vec![window.rows]);

    // A relative path resolves against the working directory, to an absolute prefix. The path
    // climbs from the working directory to the root and back down into the temporary directory.
    let cwd = std::env::current_dir().expect("working directory");
    let up = "../".repeat(cwd.components().count().saturating_sub(1));
    let target = dir.path().join("relative");
    let relative = format!(
        "./{up}{}",
        target.display().to_string().trim_start_matches('/')
    );
    let cfg = ObjectStoreConfig {
        url: relative.clone(),
        ..ObjectStoreConfig::default()
    };
    let (_, prefix) = cfg.build().expect("relative path builds");
    assert!(target.is_dir(), "{relative} created");
    let expected = Path::from_absolute_path(std::fs::canonicalize(&target).expect("canonical"))
        .expect("object path");
    assert_eq!(prefix, expected, "{relative}");
}

#[tokio::test]
async fn repeated_write_leaves_one_identical_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ParquetSink::new(&local_config(dir.path())).expect("sink");
    let start = ms(2026, 11, 21, 13, 5, 0);

    let first_key = sink
        .write(&sample_window(start), no_retry)
        .await
        .expect("first write");
    let first = object_bytes(sink.store().as_ref(), &first_key).await;
    // The same rows again, rebuilt from scratch (fresh schema metadata maps).
    let second_key = sink
        .write(&sample_window(start), no_retry)
        .await
        .expect("second write");
    let second = object_bytes(sink.store().as_ref(), &second_key).await;

    assert_eq!(first_key, second_key);
    assert_eq!(first, second, "byte-for-byte identical");
    assert_eq!(
        list_all(sink.store().as_ref(), sink.prefix()).await,
        vec![first_key.clone()],
        "exactly one object"
    );

    // A different window is a different object.
    let other = sink
        .write(&sample_window(start + 60_000), no_retry)
        .await
        .expect("next window");
    assert_ne!(other, first_key);
    assert_eq!(
        list_all(sink.store().as_ref(), sink.prefix()).await.len(),
        2
    );
}

#[tokio::test]
async fn objects_are_zstd_with_the_arrow_schema_embedded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ParquetSink::new(&local_config(dir.path())).expect("sink");
    let key = sink
        .write(&sample_window(ms(2026, 11, 21, 13, 5, 0)), no_retry)
        .await
        .expect("write");
    let data = object_bytes(sink.store().as_ref(), &key).await;
    let builder = ParquetRecordBatchReaderBuilder::try_new(data).expect("parquet footer");
    let metadata = builder.metadata();
    assert!(metadata.num_row_groups() >= 1);
    for row_group in metadata.row_groups() {
        for column in row_group.columns() {
            assert!(
                matches!(column.compression(), Compression::ZSTD(_)),
                "{}: {:?}",
                column.column_path(),
                column.compression()
            );
        }
    }
    let kv = metadata
        .file_metadata()
        .key_value_metadata()
        .expect("key-value metadata");
    assert!(
        kv.iter().any(|kv| kv.key == "ARROW:schema"),
        "arrow schema embedded"
    );
}

// ---------------------------------------------------------------------------------------------
// S3 (moto)

#[tokio::test]
async fn s3_write_list_and_read_back() {
    let endpoint = s3_endpoint();
    let bucket = unique_bucket("write");
    create_bucket(&endpoint, &bucket);
    let sink = ParquetSink::new(&s3_config(&endpoint, &bucket, "history/v1")).expect("sink");
    assert_eq!(sink.prefix().as_ref(), "history/v1");

    let window = sample_window(ms(2026, 11, 21, 13, 5, 0));
    let key = tokio::time::timeout(Duration::from_secs(60), sink.write(&window, no_retry))
        .await
        .expect("write in time")
        .expect("write");
    assert_eq!(
        key,
        "history/v1/metric_1m/date=2026-11-21/hour=13/metric_1m-20261121T130500Z.parquet"
    );
    // Again: still one object, same bytes.
    let first = object_bytes(sink.store().as_ref(), &key).await;
    sink.write(&window, no_retry).await.expect("second write");
    assert_eq!(object_bytes(sink.store().as_ref(), &key).await, first);
    assert_eq!(
        list_all(sink.store().as_ref(), sink.prefix()).await,
        vec![key.clone()]
    );

    let batches = read_parquet(sink.store().as_ref(), &Path::from(key.as_str()))
        .await
        .expect("read back");
    assert_eq!(batches, vec![window.rows]);
}

#[tokio::test]
async fn s3_missing_bucket_fails_without_retrying() {
    let endpoint = s3_endpoint();
    let bucket = unique_bucket("missing");
    let sink = ParquetSink::new(&s3_config(&endpoint, &bucket, "")).expect("sink");
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        sink.write(&sample_window(0), no_retry),
    )
    .await
    .expect("fails in time");
    let err = result.expect_err("missing bucket is an error");
    assert!(
        matches!(
            &err,
            ParquetError::Put {
                source: object_store::Error::NotFound { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn put_retries_until_the_endpoint_comes_up() {
    let endpoint = s3_endpoint();
    let bucket = unique_bucket("retry");
    create_bucket(&endpoint, &bucket);

    // A free port where nothing listens yet; a relay to moto opens on it after a delay.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let upstream = host_port(&endpoint);
    let relay_task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind relay");
        serve_status_then_proxy(
            listener,
            upstream,
            "503 Service Unavailable",
            Instant::now(),
        )
        .await;
    });

    let sink = ParquetSink::new(&s3_config(
        &format!("http://127.0.0.1:{port}"),
        &bucket,
        "p",
    ))
    .expect("sink");
    let mut attempts = Vec::new();
    let window = sample_window(ms(2026, 11, 21, 13, 5, 0));
    let key = tokio::time::timeout(
        Duration::from_secs(60),
        sink.write(&window, |attempt, err| {
            assert!(err.is_transient(), "{err}");
            attempts.push(attempt);
        }),
    )
    .await
    .expect("write in time")
    .expect("write eventually succeeds");

    assert!(!attempts.is_empty(), "on_retry was called");
    assert_eq!(
        attempts,
        (1..=attempts.len() as u32).collect::<Vec<_>>(),
        "attempts count from 1"
    );
    let batches = read_parquet(sink.store().as_ref(), &Path::from(key.as_str()))
        .await
        .expect("read back");
    assert_eq!(batches, vec![window.rows]);
    relay_task.abort();
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let endpoint = s3_endpoint();
    let bucket = unique_bucket("fivexx");
    create_bucket(&endpoint, &bucket);

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let fail_until = Instant::now() + Duration::from_millis(1500);
    let server = tokio::spawn(serve_status_then_proxy(
        listener,
        host_port(&endpoint),
        "503 Service Unavailable",
        fail_until,
    ));

    let sink = ParquetSink::new(&s3_config(
        &format!("http://127.0.0.1:{port}"),
        &bucket,
        "p",
    ))
    .expect("sink");
    let mut retries = 0;
    let key = tokio::time::timeout(
        Duration::from_secs(60),
        sink.write(&sample_window(0), |_, err| {
            assert!(err.is_transient(), "{err}");
            retries += 1;
        }),
    )
    .await
    .expect("write in time")
    .expect("write eventually succeeds");
    server.abort();
    assert!(retries >= 1, "503s reached the sink's own retry loop");
    assert_eq!(
        key,
        "p/metric_1m/date=1970-01-01/hour=00/metric_1m-19700101T000000Z.parquet"
    );
}

#[tokio::test]
async fn client_errors_fail_without_retrying() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let far_future = Instant::now() + Duration::from_secs(3600);
    let server = tokio::spawn(serve_status_then_proxy(
        listener,
        String::new(),
        "400 Bad Request",
        far_future,
    ));

    let sink = ParquetSink::new(&s3_config(
        &format!("http://127.0.0.1:{port}"),
        "ob-bad-request",
        "",
    ))
    .expect("sink");
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        sink.write(&sample_window(0), no_retry),
    )
    .await
    .expect("fails in time");
    server.abort();
    let err = result.expect_err("400 is an error");
    assert!(!err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .starts_with("parquet object metric_1m/date=1970-01-01/"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// configuration

fn field_of(cfg: &ObjectStoreConfig) -> &'static str {
    match cfg.validate() {
        Err(ParquetError::Config { field, .. }) => field,
        other => panic!("{cfg:?}: expected a config error, got {other:?}"),
    }
}

#[test]
fn validate_accepts_the_documented_forms() {
    for url in [
        "./data",
        "/abs/dir",
        "relative/dir",
        "file:///abs/dir",
        "file://localhost/abs/dir",
        "s3://bucket",
        "s3://bucket/",
        "s3://my.bucket-1/a/b/c/",
    ] {
        let cfg = ObjectStoreConfig {
            url: url.into(),
            ..ObjectStoreConfig::default()
        };
        cfg.validate().unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    let cfg = s3_config("https://minio.example:9000", "bucket", "prefix");
    cfg.validate().expect("s3 with https endpoint");
    assert_eq!(ObjectStoreConfig::default().url, "./data");

    let parsed = |url: &str| {
        ObjectStoreConfig {
            url: url.into(),
            ..ObjectStoreConfig::default()
        }
        .location_for_test()
        .expect("valid")
    };
    assert_eq!(
        parsed("s3://bucket/a/b/"),
        (false, "bucket".into(), "a/b".into())
    );
    assert_eq!(
        parsed("s3://bucket"),
        (false, "bucket".into(), String::new())
    );
    assert_eq!(
        parsed("file:///abs/dir"),
        (true, String::new(), "/abs/dir".into())
    );
    assert_eq!(parsed("./data"), (true, String::new(), "./data".into()));
}

#[test]
fn validate_names_the_broken_rule() {
    let local = |url: &str| ObjectStoreConfig {
        url: url.into(),
        ..ObjectStoreConfig::default()
    };
    let s3 = || s3_config("http://127.0.0.1:5555", "bucket", "prefix");
    let cases: Vec<(&str, ObjectStoreConfig, &str)> = vec![
        ("empty url", local(""), "url"),
        ("whitespace around url", local(" ./data"), "url"),
        ("bad scheme", local("gs://bucket/prefix"), "url"),
        ("http is not a store", local("http://host/dir"), "url"),
        ("s3 url without bucket", local("s3:///prefix"), "url"),
        ("s3 url with empty bucket", local("s3://"), "url"),
        ("invalid bucket name", local("s3://My_Bucket/prefix"), "url"),
        ("bucket too short", local("s3://ab/prefix"), "url"),
        ("empty prefix segment", local("s3://bucket/a//b"), "url"),
        (
            "credentials in url",
            local("s3://key:secret@bucket/prefix"),
            "url",
        ),
        ("query in url", local("s3://bucket/prefix?x=1"), "url"),
        ("remote file host", local("file://otherhost/dir"), "url"),
        (
            "endpoint not a url",
            ObjectStoreConfig {
                endpoint: Some("127.0.0.1:5555 x".into()),
                ..s3()
            },
            "endpoint",
        ),
        (
            "endpoint without scheme",
            ObjectStoreConfig {
                endpoint: Some("localhost".into()),
                ..s3()
            },
            "endpoint",
        ),
        (
            "endpoint not http",
            ObjectStoreConfig {
                endpoint: Some("ftp://host".into()),
                ..s3()
            },
            "endpoint",
        ),
        (
            "http endpoint, http forbidden",
            ObjectStoreConfig {
                allow_http: Some(false),
                ..s3()
            },
            "allow_http",
        ),
        (
            "empty region",
            ObjectStoreConfig {
                region: Some(" ".into()),
                ..s3()
            },
            "region",
        ),
        (
            "key id without secret",
            ObjectStoreConfig {
                secret_access_key: None,
                ..s3()
            },
            "secret_access_key",
        ),
        (
            "secret without key id",
            ObjectStoreConfig {
                access_key_id: None,
                ..s3()
            },
            "access_key_id",
        ),
        (
            "empty key id",
            ObjectStoreConfig {
                access_key_id: Some(String::new()),
                ..s3()
            },
            "access_key_id",
        ),
        (
            "empty secret",
            ObjectStoreConfig {
                secret_access_key: Some(String::new()),
                ..s3()
            },
            "secret_access_key",
        ),
        (
            "endpoint for a local path",
            ObjectStoreConfig {
                endpoint: Some("http://127.0.0.1:5555".into()),
                ..local("./data")
            },
            "endpoint",
        ),
        (
            "region for a local path",
            ObjectStoreConfig {
                region: Some("eu-west-1".into()),
                ..local("./data")
            },
            "region",
        ),
        (
            "credentials for a local path",
            ObjectStoreConfig {
                access_key_id: Some("a".into()),
                secret_access_key: Some("b".into()),
                ..local("./data")
            },
            "access_key_id",
        ),
        (
            "zero initial backoff",
            ObjectStoreConfig {
                retry: RetryConfig {
                    initial_backoff: Duration::ZERO,
                    ..RetryConfig::default()
                },
                ..s3()
            },
            "retry.initial_backoff",
        ),
        (
            "max backoff below initial",
            ObjectStoreConfig {
                retry: RetryConfig {
                    initial_backoff: Duration::from_secs(5),
                    max_backoff: Duration::from_secs(1),
                },
                ..s3()
            },
            "retry.max_backoff",
        ),
    ];
    for (name, cfg, field) in cases {
        assert_eq!(field_of(&cfg), field, "{name}");
        // build() refuses the same config before any I/O.
        assert!(
            matches!(cfg.build(), Err(ParquetError::Config { .. })),
            "{name}"
        );
    }
    // Messages are lowercase and name the field.
    let err = local("gs://bucket").validate().expect_err("bad scheme");
    assert_eq!(
        err.to_string(),
        "object store config url: unsupported scheme \"gs\"; use a directory, file:///dir or s3://bucket/prefix"
    );
}

#[test]
fn debug_redacts_the_secret() {
    let cfg = s3_config("http://127.0.0.1:5555", "bucket", "prefix");
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("testing-secret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(shown.contains("s3://bucket/prefix"), "{shown}");

    let sink = ParquetSink::new(&cfg).expect("sink");
    let shown = format!("{sink:?}");
    assert!(!shown.contains("testing-secret"), "{shown}");
}

#[test]
fn config_deserializes_with_defaults_and_refuses_unknown_fields() {
    let cfg: ObjectStoreConfig = serde_json::from_value(serde_json::json!({
        "url": "s3://bucket/prefix",
        "endpoint": "http://127.0.0.1:5555",
        "access_key_id": "id",
        "secret_access_key": "secret",
        "retry": { "initial_backoff": "250ms", "max_backoff": "1m" }
    }))
    .expect("valid config");
    assert_eq!(cfg.retry.initial_backoff, Duration::from_millis(250));
    assert_eq!(cfg.retry.max_backoff, Duration::from_secs(60));
    assert_eq!(cfg.region, None);
    cfg.validate().expect("valid");

    let cfg: ObjectStoreConfig =
        serde_json::from_value(serde_json::json!({})).expect("all defaults");
    assert_eq!(cfg.url, "./data");
    assert_eq!(cfg.retry, RetryConfig::default());

    let cfg: ObjectStoreConfig =
        serde_json::from_value(serde_json::json!({ "retry": { "max_backoff": "2s" } }))
            .expect("partial retry");
    assert_eq!(cfg.retry.initial_backoff, Duration::from_millis(200));
    assert_eq!(cfg.retry.max_backoff, Duration::from_secs(2));

    for bad in [
        serde_json::json!({ "url": "./data", "bucket": "x" }),
        serde_json::json!({ "retry": { "initial_backoff": "1s", "jitter": true } }),
        serde_json::json!({ "retry": { "initial_backoff": "soon" } }),
    ] {
        assert!(
            serde_json::from_value::<ObjectStoreConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}
