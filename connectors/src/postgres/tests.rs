//! The sink against a real Postgres (`OBSERVEBRIDGE_TEST_PG_URL`), each test in a fresh schema
//! of its own so that tests run in parallel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, LargeStringArray, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;

use super::*;

const SNAKEOIL_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
const JOB: &str = "test-job";
/// 2026-01-01T00:00:00Z in microseconds.
const BASE_US: i64 = 1_767_225_600_000_000;
const MINUTE_US: i64 = 60_000_000;

fn pg_url() -> String {
    std::env::var("OBSERVEBRIDGE_TEST_PG_URL")
        .unwrap_or_else(|_| panic!("set OBSERVEBRIDGE_TEST_PG_URL (run scripts/test.sh)"))
}

/// A schema name no other test (or run) uses.
fn unique_schema(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "obt_{test}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn test_config(test: &str) -> PostgresConfig {
    PostgresConfig {
        schema: unique_schema(test),
        ..PostgresConfig::new(pg_url())
    }
}

/// A connected, migrated sink in a fresh schema.
async fn migrated_sink(test: &str) -> PostgresSink {
    sink_with(test_config(test)).await
}

async fn sink_with(cfg: PostgresConfig) -> PostgresSink {
    let sink = PostgresSink::connect(&cfg).await.unwrap();
    sink.migrate().await.unwrap();
    sink
}

/// Drops the test's schema (left behind when a test fails, for a look).
async fn cleanup(sink: PostgresSink) {
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA {} CASCADE",
        quote_ident(sink.schema())
    )))
    .execute(sink.pool())
    .await
    .unwrap();
    sink.pool().close().await;
}

fn frontier(epoch: u64) -> Frontier {
    Frontier {
        job: JOB.to_owned(),
        epoch,
        watermark_ms: Some(BASE_US / 1000 + epoch as i64 * 60_000),
        positions: json!({ "metrics-0": epoch * 100, "metrics-1": epoch * 10 }),
    }
}

// ---------------------------------------------------------------------------------------------
// metric_1m rows as Arrow batches and as read back

const METRIC_KEYS: [&str; 5] = ["bucket", "tenant", "resource", "metric", "series"];

#[derive(Clone, Debug, PartialEq)]
struct Metric {
    bucket_us: i64,
    tenant: String,
    resource: String,
    metric: String,
    series: String,
    count: i64,
    sum: f64,
    avg: f64,
    min: f64,
    max: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    labels: serde_json::Value,
}

impl Metric {
    /// Row `i` (distinct keys for distinct `i`), with values derived from `v`.
    fn new(i: usize, v: f64) -> Self {
        let (tenant, resource) = match i % 3 {
            0 => ("acme", "urn:k8s:svc:shop/checkout"),
            1 => ("acme", "urn:host:node-1"),
            _ => ("globex", "urn:k8s:deploy:payments/ledger"),
        };
        Metric {
            bucket_us: BASE_US + (i as i64 % 7) * MINUTE_US,
            tenant: tenant.to_owned(),
            resource: resource.to_owned(),
            metric: "http.server.duration".to_owned(),
            series: format!("route=/r{i}"),
            count: i as i64 + 1,
            sum: v * 10.0,
            avg: v,
            min: v - 1.0,
            max: v + 1.0,
            p50: v,
            p95: v + 0.5,
            p99: v + 0.9,
            labels: json!({ "route": format!("/r{i}"), "code": "200" }),
        }
    }

    fn key(&self) -> (i64, String, String, String, String) {
        (
            self.bucket_us,
            self.tenant.clone(),
            self.resource.clone(),
            self.metric.clone(),
            self.series.clone(),
        )
    }
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn metric_batch(rows: &[Metric]) -> RecordBatch {
    let f64s = |f: fn(&Metric) -> f64| {
        Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let strs = |f: fn(&Metric) -> String| {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let schema = Schema::new(vec![
        Field::new("bucket", utc_micros(), false),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("resource", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("series", DataType::Utf8, false),
        Field::new("count", DataType::Int64, false),
        Field::new("sum", DataType::Float64, false),
        Field::new("avg", DataType::Float64, false),
        Field::new("min", DataType::Float64, false),
        Field::new("max", DataType::Float64, false),
        Field::new("p50", DataType::Float64, false),
        Field::new("p95", DataType::Float64, false),
        Field::new("p99", DataType::Float64, false),
        Field::new("labels", DataType::Utf8, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|r| r.bucket_us).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        strs(|r| r.tenant.clone()),
        strs(|r| r.resource.clone()),
        strs(|r| r.metric.clone()),
        strs(|r| r.series.clone()),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.count).collect::<Vec<_>>(),
        )),
        f64s(|r| r.sum),
        f64s(|r| r.avg),
        f64s(|r| r.min),
        f64s(|r| r.max),
        f64s(|r| r.p50),
        f64s(|r| r.p95),
        f64s(|r| r.p99),
        strs(|r| r.labels.to_string()),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

fn metric_key_batch(rows: &[Metric]) -> RecordBatch {
    let full = metric_batch(rows);
    let indices: Vec<usize> = METRIC_KEYS
        .iter()
        .map(|k| full.schema().index_of(k).unwrap())
        .collect();
    full.project(&indices).unwrap()
}

fn metric_changes(upserts: &[Metric], deletes: &[Metric]) -> TableChanges {
    TableChanges {
        table: "metric_1m".to_owned(),
        key_columns: METRIC_KEYS.iter().map(|k| k.to_string()).collect(),
        upserts: metric_batch(upserts),
        deletes: metric_key_batch(deletes),
    }
}

type MetricTuple = (
    DateTime<Utc>,
    String,
    String,
    String,
    String,
    i64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    String,
);

/// The table's contents, sorted by key.
async fn metric_rows(sink: &PostgresSink) -> Vec<Metric> {
    let rows: Vec<MetricTuple> = sqlx::query_as(
        "SELECT bucket, tenant, resource, metric, series, count, sum, avg, min, max, p50, p95, p99, labels::text \
         FROM metric_1m",
    )
    .fetch_all(sink.pool())
    .await
    .unwrap();
    sorted(
        rows.into_iter()
            .map(|r| Metric {
                bucket_us: r.0.timestamp_micros(),
                tenant: r.1,
                resource: r.2,
                metric: r.3,
                series: r.4,
                count: r.5,
                sum: r.6,
                avg: r.7,
                min: r.8,
                max: r.9,
                p50: r.10,
                p95: r.11,
                p99: r.12,
                labels: serde_json::from_str(&r.13).unwrap(),
            })
            .collect(),
    )
}

fn sorted(mut rows: Vec<Metric>) -> Vec<Metric> {
    rows.sort_by_key(Metric::key);
    rows
}

async fn count(sink: &PostgresSink, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(sink.pool())
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// migrations

async fn primary_key(sink: &PostgresSink, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT a.attname::text
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
          WHERE i.indisprimary AND n.nspname = $1 AND c.relname = $2
          ORDER BY array_position(i.indkey::int2[], a.attnum)",
    )
    .bind(sink.schema())
    .bind(table)
    .fetch_all(sink.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn migrate_creates_tables_with_primary_keys() {
    let sink = migrated_sink("migrate").await;
    // Running again is a no-op.
    sink.migrate().await.unwrap();
    assert_eq!(primary_key(&sink, "dim_tenant").await, ["tenant"]);
    assert_eq!(primary_key(&sink, "dim_resource").await, ["tenant", "urn"]);
    assert_eq!(primary_key(&sink, "ob_progress").await, ["job", "sink"]);
    assert_eq!(primary_key(&sink, "metric_1m").await, METRIC_KEYS);
    // The migration bookkeeping lives in the sink's schema, not in public.
    let in_schema: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = '_sqlx_migrations')",
    )
    .bind(sink.schema())
    .fetch_one(sink.pool())
    .await
    .unwrap();
    assert!(in_schema);
    cleanup(sink).await;
}

#[tokio::test]
async fn connect_refuses_an_invalid_config_before_any_io() {
    // Port 1 has no server: had the sink tried to connect, the error would be a Connect error.
    let cfg = PostgresConfig {
        schema: "bad schema".to_owned(),
        ..PostgresConfig::new("postgres://u:p@127.0.0.1:1/db")
    };
    let err = PostgresSink::connect(&cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            PostgresError::InvalidConfig {
                field: "schema",
                ..
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// apply

#[tokio::test]
async fn apply_inserts_rows_exactly() {
    let sink = migrated_sink("insert").await;
    let rows: Vec<Metric> = (0..5).map(|i| Metric::new(i, 1.5 * i as f64)).collect();
    sink.apply(&frontier(1), &[metric_changes(&rows, &[])])
        .await
        .unwrap();
    assert_eq!(metric_rows(&sink).await, sorted(rows));
    cleanup(sink).await;
}

#[tokio::test]
async fn upsert_of_an_existing_key_updates_it() {
    let sink = migrated_sink("upsert").await;
    let rows: Vec<Metric> = (0..3).map(|i| Metric::new(i, 1.0)).collect();
    sink.apply(&frontier(1), &[metric_changes(&rows, &[])])
        .await
        .unwrap();

    let mut changed = Metric::new(1, 42.0);
    changed.labels = json!({ "route": "/r1", "code": "500" });
    sink.apply(
        &frontier(2),
        &[metric_changes(std::slice::from_ref(&changed), &[])],
    )
    .await
    .unwrap();

    assert_eq!(
        metric_rows(&sink).await,
        sorted(vec![rows[0].clone(), changed, rows[2].clone()])
    );
    cleanup(sink).await;
}

#[tokio::test]
async fn deletes_remove_by_key() {
    let sink = migrated_sink("delete").await;
    let rows: Vec<Metric> = (0..4).map(|i| Metric::new(i, 2.0)).collect();
    sink.apply(&frontier(1), &[metric_changes(&rows, &[])])
        .await
        .unwrap();

    // Values of a delete batch do not matter, only its keys; an absent key is no error.
    let absent = Metric::new(99, 0.0);
    sink.apply(
        &frontier(2),
        &[metric_changes(
            &[],
            &[rows[0].clone(), rows[2].clone(), absent],
        )],
    )
    .await
    .unwrap();

    assert_eq!(
        metric_rows(&sink).await,
        sorted(vec![rows[1].clone(), rows[3].clone()])
    );
    cleanup(sink).await;
}

#[tokio::test]
async fn applying_the_same_frontier_twice_leaves_the_same_contents() {
    let sink = migrated_sink("twice").await;
    let rows: Vec<Metric> = (0..6).map(|i| Metric::new(i, 3.0)).collect();
    sink.apply(&frontier(1), &[metric_changes(&rows, &[])])
        .await
        .unwrap();

    let second = [metric_changes(
        &[Metric::new(0, 7.0), Metric::new(6, 7.0)],
        &[rows[3].clone()],
    )];
    sink.apply(&frontier(2), &second).await.unwrap();
    let once = metric_rows(&sink).await;
    let progress_once = sink.progress(JOB).await.unwrap().unwrap().frontier;

    sink.apply(&frontier(2), &second).await.unwrap();
    assert_eq!(metric_rows(&sink).await, once);
    assert_eq!(
        sink.progress(JOB).await.unwrap().unwrap().frontier,
        progress_once
    );
    assert_eq!(once.len(), 6);
    cleanup(sink).await;
}

#[tokio::test]
async fn a_failing_table_rolls_back_the_whole_frontier() {
    let sink = migrated_sink("rollback").await;
    let rows: Vec<Metric> = (0..3).map(|i| Metric::new(i, 1.0)).collect();
    sink.apply(&frontier(1), &[metric_changes(&rows, &[])])
        .await
        .unwrap();
    let before = metric_rows(&sink).await;
    let dims_before = count(&sink, "SELECT count(*) FROM dim_resource").await;

    // First table fine (an update, a delete and a new row with a new tenant), second missing.
    let first = metric_changes(
        &[Metric::new(0, 9.0), Metric::new(10, 9.0)],
        &[rows[1].clone()],
    );
    let mut missing = metric_changes(&[Metric::new(0, 1.0)], &[]);
    missing.table = "no_such_table".to_owned();
    let err = sink
        .apply(&frontier(2), &[first.clone(), missing])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PostgresError::TableNotFound { table, .. } if table == "no_such_table"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert!(err.to_string().contains("no_such_table"), "{err}");

    // Second table failing inside Postgres this time (labels that are not JSON).
    let mut bad = Metric::new(20, 1.0);
    bad.series = "bad".to_owned();
    let mut bad_batch = metric_changes(&[bad], &[]);
    let labels = bad_batch.upserts.schema().index_of("labels").unwrap();
    let mut columns = bad_batch.upserts.columns().to_vec();
    columns[labels] = Arc::new(StringArray::from(vec!["{not json"]));
    bad_batch.upserts = RecordBatch::try_new(bad_batch.upserts.schema(), columns).unwrap();
    let err = sink
        .apply(&frontier(2), &[first, bad_batch])
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate().as_deref(), Some("22P02"), "{err}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("metric_1m"), "{err}");

    assert_eq!(metric_rows(&sink).await, before);
    assert_eq!(
        count(&sink, "SELECT count(*) FROM dim_resource").await,
        dims_before
    );
    assert_eq!(
        sink.progress(JOB).await.unwrap().unwrap().frontier,
        frontier(1)
    );
    cleanup(sink).await;
}

#[tokio::test]
async fn progress_row_is_written_with_the_frontier() {
    let sink = migrated_sink("progress").await;
    assert_eq!(sink.progress(JOB).await.unwrap(), None);

    let f1 = frontier(1);
    sink.apply(&f1, &[metric_changes(&[Metric::new(0, 1.0)], &[])])
        .await
        .unwrap();
    let stored = sink.progress(JOB).await.unwrap().unwrap();
    assert_eq!(stored.frontier, f1);

    // An empty frontier still moves the progress; a watermark can be absent.
    let f2 = Frontier {
        watermark_ms: None,
        positions: json!({}),
        ..frontier(2)
    };
    sink.apply(&f2, &[]).await.unwrap();
    assert_eq!(sink.progress(JOB).await.unwrap().unwrap().frontier, f2);

    // The end of a bounded input (watermark +infinity) is stored as 'infinity' and read back.
    let f3 = Frontier { watermark_ms: Some(i64::MAX), ..frontier(3) };
    sink.apply(&f3, &[]).await.unwrap();
    assert_eq!(sink.progress(JOB).await.unwrap().unwrap().frontier, f3);
    let infinite: bool = sqlx::query_scalar("SELECT watermark = 'infinity'::timestamptz FROM ob_progress")
        .fetch_one(sink.pool())
        .await
        .unwrap();
    assert!(infinite);

    let (sink_name, rows): (String, i64) =
        sqlx::query_as("SELECT min(sink), count(*) FROM ob_progress")
            .fetch_one(sink.pool())
            .await
            .unwrap();
    assert_eq!((sink_name.as_str(), rows), ("postgres", 1));
    assert_eq!(sink.progress("other-job").await.unwrap(), None);
    cleanup(sink).await;
}

type DimResource = (
    String,
    String,
    String,
    Option<String>,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

async fn dim_resources(sink: &PostgresSink) -> Vec<DimResource> {
    sqlx::query_as(
        "SELECT tenant, urn, kind, namespace, name, first_seen, last_seen FROM dim_resource ORDER BY tenant, urn",
    )
    .fetch_all(sink.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn dimensions_are_filled_from_upserts() {
    let sink = migrated_sink("dims").await;
    let rows: Vec<Metric> = (0..6).map(|i| Metric::new(i, 1.0)).collect();
    sink.apply(&frontier(1), &[metric_changes(&rows, &[])])
        .await
        .unwrap();

    let tenants: Vec<String> = sqlx::query_scalar("SELECT tenant FROM dim_tenant ORDER BY tenant")
        .fetch_all(sink.pool())
        .await
        .unwrap();
    assert_eq!(tenants, ["acme", "globex"]);
    let first = dim_resources(&sink).await;
    let parsed: Vec<_> = first
        .iter()
        .map(|r| {
            (
                r.0.as_str(),
                r.1.as_str(),
                r.2.as_str(),
                r.3.as_deref(),
                r.4.as_str(),
            )
        })
        .collect();
    assert_eq!(
        parsed,
        [
            ("acme", "urn:host:node-1", "host", None, "node-1"),
            (
                "acme",
                "urn:k8s:svc:shop/checkout",
                "svc",
                Some("shop"),
                "checkout"
            ),
            (
                "globex",
                "urn:k8s:deploy:payments/ledger",
                "deploy",
                Some("payments"),
                "ledger"
            ),
        ]
    );

    // Seen again later: first_seen kept, last_seen moves on.
    tokio::time::sleep(Duration::from_millis(20)).await;
    sink.apply(&frontier(2), &[metric_changes(&rows[..1], &[])])
        .await
        .unwrap();
    let second = dim_resources(&sink).await;
    for (before, after) in first.iter().zip(&second) {
        assert_eq!(before.5, after.5, "first_seen of {}", before.1);
    }
    let checkout = |rows: &[DimResource]| {
        rows.iter()
            .find(|r| r.1 == "urn:k8s:svc:shop/checkout")
            .unwrap()
            .6
    };
    assert!(checkout(&second) > checkout(&first));
    cleanup(sink).await;
}

#[tokio::test]
async fn dimensions_can_be_turned_off() {
    let sink = sink_with(PostgresConfig {
        dimensions: false,
        ..test_config("nodims")
    })
    .await;
    sink.apply(&frontier(1), &[metric_changes(&[Metric::new(0, 1.0)], &[])])
        .await
        .unwrap();
    assert_eq!(count(&sink, "SELECT count(*) FROM metric_1m").await, 1);
    assert_eq!(count(&sink, "SELECT count(*) FROM dim_tenant").await, 0);
    assert_eq!(count(&sink, "SELECT count(*) FROM dim_resource").await, 0);
    cleanup(sink).await;
}

#[tokio::test]
async fn ten_thousand_rows_take_one_statement_per_table() {
    let sink = migrated_sink("bulk").await;
    // Statement-level triggers count the INSERT and DELETE statements that reach metric_1m.
    for sql in [
        "CREATE TABLE stmt_count (op text PRIMARY KEY, n int NOT NULL)",
        "CREATE FUNCTION count_stmt() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           INSERT INTO stmt_count VALUES (TG_OP, 1) ON CONFLICT (op) DO UPDATE SET n = stmt_count.n + 1; \
           RETURN NULL; END $$",
        "CREATE TRIGGER metric_1m_stmt AFTER INSERT OR DELETE ON metric_1m \
           FOR EACH STATEMENT EXECUTE FUNCTION count_stmt()",
    ] {
        sqlx::query(sql).execute(sink.pool()).await.unwrap();
    }
    let rows: Vec<Metric> = (0..10_000)
        .map(|i| Metric::new(i, i as f64 / 7.0))
        .collect();
    let changes = [metric_changes(&rows, &[])];

    let started = Instant::now();
    sink.apply(&frontier(1), &changes).await.unwrap();
    let inserted_in = started.elapsed();
    let started = Instant::now();
    sink.apply(&frontier(2), &[metric_changes(&[], &rows[..5_000])])
        .await
        .unwrap();
    let deleted_in = started.elapsed();
    println!("10000-row upsert: {inserted_in:?}; 5000-row delete: {deleted_in:?}");

    let statements: Vec<(String, i32)> = sqlx::query_as("SELECT op, n FROM stmt_count ORDER BY op")
        .fetch_all(sink.pool())
        .await
        .unwrap();
    assert_eq!(
        statements,
        [("DELETE".to_owned(), 1), ("INSERT".to_owned(), 1)]
    );
    assert_eq!(count(&sink, "SELECT count(*) FROM metric_1m").await, 5_000);
    assert_eq!(metric_rows(&sink).await, sorted(rows[5_000..].to_vec()));
    cleanup(sink).await;
}

#[tokio::test]
async fn arrow_types_bind_with_nulls_and_casts() {
    let sink = migrated_sink("types").await;
    sqlx::query(
        "CREATE TABLE typed (id bigint PRIMARY KEY, small int, ratio double precision, flag boolean, \
         at_ms timestamptz, at_us timestamptz, wall timestamp, note text, doc jsonb, big text)",
    )
    .execute(sink.pool())
    .await
    .unwrap();
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("small", DataType::Int32, true),
        Field::new("ratio", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new(
            "at_ms",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("at_us", utc_micros(), true),
        Field::new(
            "wall",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new("note", DataType::Utf8, true),
        Field::new("doc", DataType::LargeUtf8, true),
        // An Int64 written to a text column: Postgres casts.
        Field::new("big", DataType::Int64, true),
    ]);
    let ms = BASE_US / 1000 + 123;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2])),
        Arc::new(Int32Array::from(vec![Some(7), None])),
        Arc::new(Float64Array::from(vec![None, Some(0.25)])),
        Arc::new(BooleanArray::from(vec![Some(true), None])),
        Arc::new(TimestampMillisecondArray::from(vec![Some(ms), None]).with_timezone("UTC")),
        Arc::new(
            TimestampMicrosecondArray::from(vec![None, Some(BASE_US + 1)]).with_timezone("UTC"),
        ),
        Arc::new(TimestampMicrosecondArray::from(vec![Some(BASE_US), None])),
        Arc::new(StringArray::from(vec![Some("it's \"quoted\""), None])),
        Arc::new(LargeStringArray::from(vec![None, Some(r#"{"a":[1,2]}"#)])),
        Arc::new(Int64Array::from(vec![Some(i64::MAX), None])),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
    let empty_keys = RecordBatch::new_empty(Arc::new(Schema::new(vec![Field::new(
        "id",
        DataType::Int64,
        false,
    )])));
    let changes = TableChanges {
        table: "typed".to_owned(),
        key_columns: vec!["id".to_owned()],
        upserts: batch,
        deletes: empty_keys,
    };
    sink.apply(&frontier(1), &[changes]).await.unwrap();

    type Typed = (
        i64,
        Option<i32>,
        Option<f64>,
        Option<bool>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<NaiveDateTime>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Typed> = sqlx::query_as(
        "SELECT id, small, ratio, flag, at_ms, at_us, wall, note, doc::text, big FROM typed ORDER BY id",
    )
    .fetch_all(sink.pool())
    .await
    .unwrap();
    let at = |us: i64| DateTime::from_timestamp_micros(us).unwrap();
    assert_eq!(
        rows,
        [
            (
                1,
                Some(7),
                None,
                Some(true),
                Some(at(ms * 1000)),
                None,
                Some(at(BASE_US).naive_utc()),
                Some("it's \"quoted\"".to_owned()),
                None,
                Some(i64::MAX.to_string()),
            ),
            (
                2,
                None,
                Some(0.25),
                None,
                None,
                Some(at(BASE_US + 1)),
                None,
                None,
                Some(r#"{"a": [1, 2]}"#.to_owned()),
                None
            ),
        ]
    );
    // No tenant column: no dimensions, no error.
    assert_eq!(count(&sink, "SELECT count(*) FROM dim_tenant").await, 0);
    cleanup(sink).await;
}

#[tokio::test]
async fn unknown_columns_and_types_are_permanent_errors_naming_table_and_column() {
    let sink = migrated_sink("badcols").await;
    let schema = Schema::new(vec![
        Field::new("bucket", utc_micros(), false),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("colour", DataType::Utf8, false),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(TimestampMicrosecondArray::from(vec![BASE_US]).with_timezone("UTC")),
            Arc::new(StringArray::from(vec!["acme"])),
            Arc::new(StringArray::from(vec!["blue"])),
        ],
    )
    .unwrap();
    let changes = TableChanges {
        table: "metric_1m".to_owned(),
        key_columns: vec!["bucket".to_owned(), "tenant".to_owned()],
        upserts: batch,
        deletes: metric_key_batch(&[]),
    };
    let mut retries = 0;
    let err = sink
        .apply_with_retry(&frontier(1), &[changes], |_, _| retries += 1)
        .await
        .unwrap_err();
    assert_eq!(retries, 0, "a permanent error is not retried");
    assert!(
        matches!(&err, PostgresError::UnknownColumn { table, column, .. } if table == "metric_1m" && column == "colour"),
        "{err}"
    );

    let schema = Schema::new(vec![Field::new("series", DataType::Date32, false)]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(arrow::array::Date32Array::from(vec![1]))],
    )
    .unwrap();
    let changes = TableChanges {
        table: "metric_1m".to_owned(),
        key_columns: vec!["series".to_owned()],
        upserts: batch,
        deletes: metric_key_batch(&[]),
    };
    let err = sink.apply(&frontier(1), &[changes]).await.unwrap_err();
    assert!(
        matches!(&err, PostgresError::UnsupportedType { table, column, .. } if table == "metric_1m" && column == "series"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(sink.progress(JOB).await.unwrap(), None);
    cleanup(sink).await;
}

// ---------------------------------------------------------------------------------------------
// outage: a TCP proxy in front of Postgres that can be stopped (killing its connections) and
// started again on the same port

struct Proxy {
    listen: std::net::SocketAddr,
    upstream: String,
    running: AsyncMutex<Option<ProxyRun>>,
}

struct ProxyRun {
    accept: JoinHandle<()>,
    connections: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start_new(upstream: String) -> Arc<Proxy> {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = probe.local_addr().unwrap();
        drop(probe);
        let proxy = Arc::new(Proxy {
            listen,
            upstream,
            running: AsyncMutex::new(None),
        });
        proxy.start().await;
        proxy
    }

    async fn start(&self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.listen).unwrap();
        let listener = socket.listen(64).unwrap();
        let connections: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let upstream = self.upstream.clone();
        let tracked = Arc::clone(&connections);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(pipe);
            }
        });
        *self.running.lock().await = Some(ProxyRun {
            accept,
            connections,
        });
    }

    /// Stops listening and kills every open connection.
    async fn stop(&self) {
        let Some(run) = self.running.lock().await.take() else {
            return;
        };
        run.accept.abort();
        let _ = run.accept.await;
        let pipes: Vec<_> = run.connections.lock().unwrap().drain(..).collect();
        for pipe in pipes {
            pipe.abort();
            let _ = pipe.await;
        }
    }

    fn url(&self) -> String {
        let mut url = url::Url::parse(&pg_url()).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.listen.port())).unwrap();
        url.to_string()
    }
}

fn upstream_addr() -> String {
    let url = url::Url::parse(&pg_url()).unwrap();
    format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_retry_rides_out_an_outage() {
    let proxy = Proxy::start_new(upstream_addr()).await;
    let cfg = PostgresConfig {
        connect_timeout: Duration::from_millis(300),
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
        },
        ..PostgresConfig {
            url: proxy.url(),
            ..test_config("outage")
        }
    };
    let sink = Arc::new(sink_with(cfg).await);
    // Live connections in the pool, which the outage will kill.
    sink.apply(&frontier(1), &[metric_changes(&[Metric::new(0, 1.0)], &[])])
        .await
        .unwrap();

    proxy.stop().await;
    let retries = Arc::new(AtomicU32::new(0));
    let rows: Vec<Metric> = (1..50).map(|i| Metric::new(i, 2.0)).collect();
    let task = {
        let (sink, retries, rows) = (Arc::clone(&sink), Arc::clone(&retries), rows.clone());
        tokio::spawn(async move {
            let changes = [metric_changes(&rows, &[])];
            sink.apply_with_retry(&frontier(2), &changes, |attempt, error| {
                assert!(error.is_transient(), "{error}");
                retries.store(attempt, Ordering::SeqCst);
            })
            .await
        })
    };

    let deadline = Instant::now() + Duration::from_secs(30);
    while retries.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "apply_with_retry did not retry while the proxy was down"
        );
        assert!(
            !task.is_finished(),
            "apply_with_retry returned while the proxy was down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.start().await;
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let attempts = retries.load(Ordering::SeqCst);
    println!("on_retry called {attempts} times during the outage");
    assert!(attempts >= 2);

    let mut expected = vec![Metric::new(0, 1.0)];
    expected.extend(rows);
    assert_eq!(metric_rows(&sink).await, sorted(expected));
    assert_eq!(
        sink.progress(JOB).await.unwrap().unwrap().frontier,
        frontier(2)
    );
    let sink = Arc::into_inner(sink).unwrap();
    cleanup(sink).await;
    proxy.stop().await;
}

// ---------------------------------------------------------------------------------------------
// TLS

#[tokio::test]
async fn tls_require_connects_over_tls() {
    let cfg = PostgresConfig {
        tls: TlsConfig {
            mode: TlsMode::Require,
            ca_file: None,
        },
        ..test_config("tlsreq")
    };
    let sink = PostgresSink::connect(&cfg).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(sink.pool())
        .await
        .unwrap();
    assert!(ssl, "the connection is not encrypted");
    cleanup(sink).await;
}

#[tokio::test]
async fn tls_verify_full_refuses_a_certificate_not_issued_for_the_host() {
    assert!(
        std::path::Path::new(SNAKEOIL_CERT).exists(),
        "{SNAKEOIL_CERT} is missing (Debian's ssl-cert package)"
    );
    let mut url = url::Url::parse(&pg_url()).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    let cfg = PostgresConfig {
        url: url.to_string(),
        tls: TlsConfig {
            mode: TlsMode::VerifyFull,
            ca_file: Some(SNAKEOIL_CERT.into()),
        },
        ..test_config("tlsfull")
    };
    let err = PostgresSink::connect(&cfg).await.unwrap_err();
    // sqlx reports rustls' verdict as a TLS error or as an I/O error of kind InvalidData.
    let cause = match &err {
        PostgresError::Connect {
            source: sqlx::Error::Tls(cause),
            ..
        } => cause.to_string(),
        PostgresError::Connect {
            source: sqlx::Error::Io(cause),
            ..
        } if cause.kind() == std::io::ErrorKind::InvalidData => cause.to_string(),
        _ => panic!("expected a TLS connect error, got {err:?}"),
    };
    println!("verify-full refused: {err}");
    assert!(
        cause.contains("certificate") && cause.contains("127.0.0.1"),
        "{cause}"
    );
    assert!(err.to_string().contains("TLS failed"), "{err}");
    // A certificate problem is permanent: apply_with_retry must not wait forever on it.
    assert!(!err.is_transient());
    assert!(
        !err.to_string().contains(":observebridge@"),
        "the password must not show: {err}"
    );
}

#[tokio::test]
async fn tls_verify_full_accepts_the_certificate_for_its_own_name() {
    // The snakeoil certificate is issued for `localhost`: with it as the CA, verify-full passes
    // for that name, which shows `ca_file` is what the connection trusts.
    let mut url = url::Url::parse(&pg_url()).unwrap();
    url.set_host(Some("localhost")).unwrap();
    let cfg = PostgresConfig {
        url: url.to_string(),
        tls: TlsConfig {
            mode: TlsMode::VerifyFull,
            ca_file: Some(SNAKEOIL_CERT.into()),
        },
        ..test_config("tlsok")
    };
    let sink = PostgresSink::connect(&cfg).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(sink.pool())
        .await
        .unwrap();
    assert!(ssl);
    cleanup(sink).await;
}
