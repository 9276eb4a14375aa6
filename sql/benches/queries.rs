//! Latency of the typical questions over live views at scale, and throughput over pgwire.
//!
//! Fixture (deterministic): `metric_1m` holds 100,000 series x 3 live minutes (300,000 rows,
//! applied in frontiers of 10,000 rows, as the engine would), `service_call_5m` 10,000 edges x 6
//! five-minute buckets (60,000 rows), `topo_edge_time` 10,000 edges, and `metric_1m_history` 60
//! final one-minute windows of 1,000 series as Parquet in a temporary directory.
//!
//! Prints, per query, p50/p99 over 200 runs in-process (parse, plan, run, collect), then the
//! queries per second and p50/p99 of 8 concurrent pgwire clients (sqlx, extended protocol)
//! running the top-5 question for 5 seconds; then criterion's own report of the same queries.
//!
//! `cargo bench -p observebridge-sql --bench queries`; with `OB_BENCH_SQL='SELECT ...'` it times
//! that query instead (mean of `OB_BENCH_N` runs) and prints its `EXPLAIN ANALYZE`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::SchemaRef;
use criterion::Criterion;
use observebridge_connectors::parquet::{ObjectStoreConfig, ParquetSink};
use observebridge_connectors::sink::{FinalWindow, Frontier, TableChanges};
use observebridge_dataflows::views::ViewRow;
use observebridge_dataflows::views::call_graph_active::TopoEdgeTimeRow;
use observebridge_dataflows::views::metric_1m::Metric1mRow;
use observebridge_dataflows::views::service_call_5m::ServiceCall5mRow;
use observebridge_sql::{LiveViews, QueryEngine, SqlConfig, serve};
use sqlx::Connection;

/// The allocator of the `observebridge` binary, which serves SQL in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERIES: usize = 100_000;
const SERIES_PER_RESOURCE: usize = 50;
const LIVE_MINUTES: usize = 3;
const EDGES: usize = 10_000;
const CALL_BUCKETS: usize = 6;
const HISTORY_SERIES: usize = 1_000;
const HISTORY_MINUTES: usize = 60;
/// 2026-11-21T13:00:00Z (µs).
const T0: i64 = 1_795_266_000_000_000;
const MINUTE: i64 = 60_000_000;

const QUERIES: &[(&str, &str)] = &[
    (
        "top5_slowest_deps_30m",
        "SELECT dst, connection_type, sum(calls) AS calls, sum(errors) / sum(calls) AS err_rate, max(p95_ms) AS worst_p95_ms \
         FROM service_call_5m WHERE tenant = 'default' AND src = 'urn:k8s:svc:shop/svc-42' \
         AND bucket >= TIMESTAMP '2026-11-21T13:30:00Z' - INTERVAL '30 minutes' \
         GROUP BY dst, connection_type ORDER BY worst_p95_ms DESC LIMIT 5",
    ),
    (
        "top5_failing_deps_30m",
        "SELECT dst, connection_type, sum(calls) AS calls, sum(errors) / sum(calls) AS err_rate, max(p95_ms) AS worst_p95_ms \
         FROM service_call_5m WHERE tenant = 'default' AND src = 'urn:k8s:svc:shop/svc-42' \
         AND bucket >= TIMESTAMP '2026-11-21T13:30:00Z' - INTERVAL '30 minutes' \
         GROUP BY dst, connection_type ORDER BY err_rate DESC, dst LIMIT 5",
    ),
    (
        "topology_at_t",
        "SELECT src, dst, relation FROM topo_edge_time WHERE tenant = 'default' \
         AND valid_from <= '2026-11-21 13:05:00+00' AND (valid_to IS NULL OR '2026-11-21 13:05:00+00' < valid_to)",
    ),
    (
        "metric_resource_live",
        "SELECT bucket, series, count, avg, p95, max FROM metric_1m \
         WHERE resource = 'urn:k8s:svc:shop/svc-7' AND metric = 'http.server.duration' \
         AND bucket > TIMESTAMP '2026-11-21T13:03:00Z' - INTERVAL '1 hour' ORDER BY bucket, series",
    ),
    (
        "metric_resource_hour_with_history",
        "SELECT bucket, series, p95 FROM metric_1m WHERE resource = 'urn:k8s:svc:shop/svc-7' AND metric = 'http.server.duration' \
         AND bucket >= '2026-11-21T12:03:00Z' \
         UNION SELECT bucket, series, p95 FROM metric_1m_history WHERE resource = 'urn:k8s:svc:shop/svc-7' \
         AND metric = 'http.server.duration' AND bucket >= '2026-11-21T12:03:00Z' ORDER BY bucket, series",
    ),
];

fn strings(values: impl Iterator<Item = String>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn floats(n: usize, f: impl Fn(usize) -> f64) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values((0..n).map(f)))
}

fn times(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values).with_timezone("UTC"))
}

/// metric_1m rows for series `range` at `bucket` (µs).
fn metric_rows(schema: &SchemaRef, range: std::ops::Range<usize>, bucket: i64) -> RecordBatch {
    let n = range.len();
    let ids: Vec<usize> = range.collect();
    let columns = vec![
        times(std::iter::repeat_n(bucket, n)),
        strings(std::iter::repeat_n("default".to_string(), n)),
        strings(ids.iter().map(|i| format!("urn:k8s:svc:shop/svc-{}", i / SERIES_PER_RESOURCE))),
        strings(std::iter::repeat_n("http.server.duration".to_string(), n)),
        strings(ids.iter().map(|i| format!("k8s.pod.name=pod-{}", i % SERIES_PER_RESOURCE))),
        Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| 60 + (*i as i64 % 7)))) as ArrayRef,
        floats(n, |i| 1200.0 + i as f64),
        floats(n, |i| 20.0 + (i % 13) as f64),
        floats(n, |_| 1.0),
        floats(n, |i| 80.0 + (i % 17) as f64),
        floats(n, |i| 18.0 + (i % 5) as f64),
        floats(n, |i| 50.0 + (i % 31) as f64),
        floats(n, |i| 75.0 + (i % 37) as f64),
        strings(ids.iter().map(|i| format!("{{\"k8s.pod.name\":\"pod-{}\"}}", i % SERIES_PER_RESOURCE))),
    ];
    RecordBatch::try_new(Arc::clone(schema), columns).expect("metric rows")
}

fn call_rows(schema: &SchemaRef, bucket: i64) -> RecordBatch {
    let n = EDGES;
    let columns = vec![
        times(std::iter::repeat_n(bucket, n)),
        strings(std::iter::repeat_n("default".to_string(), n)),
        strings((0..n).map(|i| format!("urn:k8s:svc:shop/svc-{}", i / 20))),
        strings((0..n).map(|i| format!("urn:k8s:svc:shop/svc-{}", (i * 7 + 3) % 500))),
        strings((0..n).map(|i| if i % 5 == 0 { "database".to_string() } else { "direct".to_string() })),
        floats(n, |i| 600.0 + (i % 100) as f64),
        floats(n, |i| (i % 9) as f64),
        floats(n, |_| 2.0),
        floats(n, |i| (i % 9) as f64 / 600.0),
        floats(n, |i| 10.0 + (i % 10) as f64),
        floats(n, |i| 40.0 + (i % 97) as f64),
        floats(n, |i| 60.0 + (i % 101) as f64),
        Arc::new(Float64Array::from(vec![None; n])) as ArrayRef,
        Arc::new(Float64Array::from(vec![None; n])) as ArrayRef,
        Arc::new(StringArray::from(vec![None::<&str>; n])) as ArrayRef,
    ];
    RecordBatch::try_new(Arc::clone(schema), columns).expect("call rows")
}

fn topo_rows(schema: &SchemaRef) -> RecordBatch {
    let n = EDGES;
    let columns = vec![
        strings(std::iter::repeat_n("default".to_string(), n)),
        strings((0..n).map(|i| format!("urn:k8s:svc:shop/svc-{}", i / 20))),
        strings((0..n).map(|i| format!("urn:k8s:svc:shop/svc-{}", (i * 7 + 3) % 500))),
        strings(std::iter::repeat_n("direct".to_string(), n)),
        times((0..n).map(|i| T0 - (i as i64 % 120) * MINUTE)),
        Arc::new(TimestampMicrosecondArray::from((0..n).map(|i| (i % 3 == 0).then_some(T0 + (i as i64 % 20) * MINUTE)).collect::<Vec<_>>()).with_timezone("UTC")) as ArrayRef,
    ];
    RecordBatch::try_new(Arc::clone(schema), columns).expect("topo rows")
}

fn no_keys(schema: &SchemaRef, keys: &[&str]) -> RecordBatch {
    let indices: Vec<usize> = keys.iter().map(|k| schema.index_of(k).expect("key")).collect();
    RecordBatch::new_empty(Arc::new(schema.project(&indices).expect("project")))
}

fn change<R: ViewRow>(rows: RecordBatch) -> TableChanges {
    TableChanges { table: R::VIEW.into(), key_columns: R::KEY_COLUMNS.iter().map(|k| k.to_string()).collect(), upserts: rows, deletes: no_keys(&R::schema(), R::KEY_COLUMNS) }
}

fn frontier(epoch: u64) -> Frontier {
    Frontier { job: "bench".into(), epoch, watermark_ms: None, positions: serde_json::Value::Null }
}

/// The live views at scale; returns them and how long the applies took (ms per 10K rows).
fn fixture() -> (Arc<LiveViews>, f64) {
    let live = LiveViews::new();
    live.register(Metric1mRow::VIEW, Metric1mRow::schema(), Metric1mRow::KEY_COLUMNS).expect("register");
    live.register(ServiceCall5mRow::VIEW, ServiceCall5mRow::schema(), ServiceCall5mRow::KEY_COLUMNS).expect("register");
    live.register(TopoEdgeTimeRow::VIEW, TopoEdgeTimeRow::schema(), TopoEdgeTimeRow::KEY_COLUMNS).expect("register");
    let mut epoch = 0;
    let metric_schema = Metric1mRow::schema();
    let started = Instant::now();
    let mut applies = 0;
    for minute in 0..LIVE_MINUTES {
        for start in (0..SERIES).step_by(10_000) {
            let rows = metric_rows(&metric_schema, start..start + 10_000, T0 + minute as i64 * MINUTE);
            live.apply(&frontier(epoch), &[change::<Metric1mRow>(rows)]).expect("apply");
            epoch += 1;
            applies += 1;
        }
    }
    let per_apply_ms = started.elapsed().as_secs_f64() * 1000.0 / applies as f64;
    let call_schema = ServiceCall5mRow::schema();
    for bucket in 0..CALL_BUCKETS {
        let rows = call_rows(&call_schema, T0 + bucket as i64 * 5 * MINUTE);
        live.apply(&frontier(epoch), &[change::<ServiceCall5mRow>(rows)]).expect("apply");
        epoch += 1;
    }
    live.apply(&frontier(epoch), &[change::<TopoEdgeTimeRow>(topo_rows(&TopoEdgeTimeRow::schema()))]).expect("apply");
    (live, per_apply_ms)
}

async fn write_history(cfg: &ObjectStoreConfig) {
    let sink = ParquetSink::new(cfg).expect("sink");
    let schema = Metric1mRow::schema();
    for minute in 0..HISTORY_MINUTES {
        let start = T0 - (HISTORY_MINUTES - minute) as i64 * MINUTE;
        let rows = metric_rows(&schema, 0..HISTORY_SERIES, start);
        sink.write(&FinalWindow { view: Metric1mRow::VIEW.into(), window_start_ms: start / 1000, rows }, |_, _| {}).await.expect("write");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (live, apply_ms) = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let history = ObjectStoreConfig { url: dir.path().display().to_string(), ..ObjectStoreConfig::default() };
    runtime.block_on(write_history(&history));
    let engine = Arc::new(QueryEngine::new(Arc::clone(&live), Some(&history)).expect("engine"));
    println!("fixture: metric_1m {} rows ({SERIES} series x {LIVE_MINUTES} min), service_call_5m {} rows ({EDGES} edges x {CALL_BUCKETS}), topo_edge_time {EDGES}, history {HISTORY_MINUTES} windows x {HISTORY_SERIES} series",
        SERIES * LIVE_MINUTES, EDGES * CALL_BUCKETS);
    println!("apply: {apply_ms:.2} ms per frontier of 10,000 metric_1m rows");
    // One query of your own over the same fixture (for profiling): its mean time over `OB_BENCH_N`
    // runs (default 20) after as many warm-up runs, and its EXPLAIN ANALYZE.
    if let Ok(sql) = std::env::var("OB_BENCH_SQL") {
        let runs: usize = std::env::var("OB_BENCH_N").ok().and_then(|n| n.parse().ok()).unwrap_or(20).max(1);
        for _ in 0..runs {
            runtime.block_on(engine.query(&sql, None)).unwrap_or_else(|e| panic!("{e}"));
        }
        let started = Instant::now();
        for _ in 0..runs {
            runtime.block_on(engine.query(&sql, None)).unwrap_or_else(|e| panic!("{e}"));
        }
        println!("mean {:.2} ms over {runs} runs", started.elapsed().as_secs_f64() * 1000.0 / runs as f64);
        let plan = runtime.block_on(engine.query(&format!("EXPLAIN ANALYZE {sql}"), None)).unwrap_or_else(|e| panic!("{e}"));
        println!("{}", arrow::util::pretty::pretty_format_batches(&plan.batches).expect("format"));
        return;
    }

    println!("\n{:<36} {:>8} {:>8} {:>6}", "query (in-process, 200 runs)", "p50 ms", "p99 ms", "rows");
    for (name, sql) in QUERIES {
        let mut times = Vec::with_capacity(200);
        let mut rows = 0;
        for _ in 0..210 {
            let started = Instant::now();
            let output = runtime.block_on(engine.query(sql, None)).unwrap_or_else(|e| panic!("{name}: {e}"));
            times.push(started.elapsed());
            rows = output.num_rows();
        }
        let mut times = times.split_off(10); // warm-up
        times.sort();
        println!("{name:<36} {:>8.2} {:>8.2} {rows:>6}", percentile(&times, 0.5), percentile(&times, 0.99));
    }

    // 8 concurrent clients over pgwire.
    runtime.block_on(async {
        let mut config = SqlConfig::ephemeral();
        config.http_listen = None;
        config.history = Some(history.clone());
        let server = serve(config, Arc::clone(&live)).await.expect("serve");
        let addr = server.pg_addr().expect("pg");
        let url = format!("postgres://bench@{}:{}/db?sslmode=disable", addr.ip(), addr.port());
        let run_for = Duration::from_secs(5);
        let mut clients = Vec::new();
        for _ in 0..8 {
            let url = url.clone();
            clients.push(tokio::spawn(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                let mut times = Vec::new();
                let started = Instant::now();
                while started.elapsed() < run_for {
                    let t = Instant::now();
                    let rows = sqlx::query(QUERIES[0].1).fetch_all(&mut conn).await.expect("query");
                    assert_eq!(rows.len(), 5);
                    times.push(t.elapsed());
                }
                times
            }));
        }
        let started = Instant::now();
        let mut all = Vec::new();
        for client in clients {
            all.extend(client.await.expect("client"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort();
        println!(
            "\npgwire, 8 concurrent clients, {} for {:.1} s: {} queries, {:.0} queries/s, p50 {:.2} ms, p99 {:.2} ms",
            QUERIES[0].0,
            elapsed,
            all.len(),
            all.len() as f64 / elapsed,
            percentile(&all, 0.5),
            percentile(&all, 0.99)
        );
        server.shutdown().await;
    });

    let mut criterion = Criterion::default().configure_from_args().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (name, sql) in QUERIES {
        criterion.bench_function(name, |b| b.iter(|| runtime.block_on(engine.query(sql, None)).expect("query")));
    }
    criterion.final_summary();
}
