//! `<view>_history` over the real S3 API (moto, started by scripts/test.sh): the Parquet sink
//! writes final windows to a bucket, SQL reads them back with partition pruning and tenants,
//! and a window written after the engine started is visible to the next query.

mod common;

use std::sync::Arc;

use common::*;
use observebridge_connectors::parquet::{ObjectStoreConfig, ParquetSink};
use observebridge_sql::QueryEngine;

const WINDOWS: &str = r#"
bucket               | tenant  | resource                  | metric  | series | count | sum | avg | min | max | p50 | p95 | p99 | labels
2026-11-21T11:59:00Z | default | urn:k8s:svc:shop/checkout | latency | pod=a  | 2     | 20  | 10  | 5   | 15  | 10  | 15  | 15  | {"pod":"a"}
2026-11-21T12:00:00Z | default | urn:k8s:svc:shop/checkout | latency | pod=a  | 2     | 40  | 20  | 10  | 30  | 20  | 30  | 30  | {"pod":"a"}
2026-11-21T12:01:00Z | default | urn:k8s:svc:shop/checkout | latency | pod=a  | 2     | 60  | 30  | 20  | 40  | 30  | 40  | 40  | {"pod":"a"}
2026-11-21T12:01:00Z | acme    | urn:k8s:svc:shop/checkout | latency | pod=z  | 1     | 99  | 99  | 99  | 99  | 99  | 99  | 99  | {"pod":"z"}
"#;

fn config(bucket: &str) -> ObjectStoreConfig {
    let yaml = format!(
        "url: s3://{bucket}/views\nendpoint: {}\nregion: us-east-1\naccess_key_id: testing\nsecret_access_key: testing\n",
        env("OBSERVEBRIDGE_TEST_S3_ENDPOINT")
    );
    serde_yaml_ng::from_str(&yaml).expect("object store config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_tables_read_parquet_on_s3() {
    let bucket = unique("sql-history");
    create_bucket(&bucket);
    let cfg = config(&bucket);
    let live = live_views();
    let engine = QueryEngine::new(Arc::clone(&live), Some(&cfg)).expect("engine");

    // Nothing written yet: an empty table, not an error.
    let empty = engine.query("SELECT count(*) FROM metric_1m_history", None).await.expect("empty history");
    assert_eq!(render(&empty.batches), vec!["0"]);

    let (schema, _) = table_schema(&live, "metric_1m");
    let rows = pipe_table(&schema, WINDOWS);
    let sink = ParquetSink::new(&cfg).expect("sink");
    for window in final_windows("metric_1m", &rows) {
        sink.write(&window, |_, _| {}).await.expect("write window");
    }

    let hour = engine
        .query("SELECT bucket, p95, date, hour FROM metric_1m_history WHERE tenant = 'default' AND bucket >= '2026-11-21T12:00:00Z' ORDER BY bucket", None)
        .await
        .expect("query");
    assert_eq!(render(&hour.batches), vec!["2026-11-21T12:00:00Z | 30.0 | 2026-11-21 | 12", "2026-11-21T12:01:00Z | 40.0 | 2026-11-21 | 12"]);

    let plan = engine.query("EXPLAIN SELECT p95 FROM metric_1m_history WHERE bucket >= '2026-11-21T12:00:00Z'", None).await.expect("explain");
    let plan = render(&plan.batches).join("\n");
    assert!(plan.contains("hour=12") && !plan.contains("hour=11"), "the 11:00 partition is pruned:\n{plan}");

    let acme = engine.query("SELECT tenant, series FROM metric_1m_history", Some("acme")).await.expect("tenant query");
    assert_eq!(render(&acme.batches), vec!["acme | pod=z"]);
    let cross = engine.query("SELECT count(*) FROM metric_1m_history WHERE tenant = 'default'", Some("acme")).await.expect("tenant query");
    assert_eq!(render(&cross.batches), vec!["0"]);

    // Live and history in one query.
    upsert(&live, 0, "metric_1m", &WINDOWS.replace("2026-11-21T12:01:00Z | default", "2026-11-21T12:02:00Z | default"));
    let both = engine
        .query(
            "SELECT bucket FROM metric_1m WHERE tenant = 'default' AND bucket >= '2026-11-21T12:01:00Z' \
             UNION SELECT bucket FROM metric_1m_history WHERE tenant = 'default' AND bucket >= '2026-11-21T12:01:00Z' ORDER BY bucket",
            None,
        )
        .await
        .expect("union");
    assert_eq!(render(&both.batches), vec!["2026-11-21T12:01:00Z", "2026-11-21T12:02:00Z"]);
}
