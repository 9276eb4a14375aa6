//! Shared pieces of the SQL tests: the real views' schemas, fixtures written as pipe tables,
//! rendering results as text, and the services' environment.
#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use observebridge_connectors::sink::{FinalWindow, Frontier, TableChanges};
use observebridge_dataflows::views::ViewRow;
use observebridge_dataflows::views::blast_radius::BlastRadiusRow;
use observebridge_dataflows::views::call_graph_active::{CallGraphActiveRow, TopoEdgeTimeRow};
use observebridge_dataflows::views::log_pattern::{LogPattern5mRow, LogPatternNewRow, LogPatternRow};
use observebridge_dataflows::views::metric_1m::Metric1mRow;
use observebridge_dataflows::views::service_call_5m::ServiceCall5mRow;
use observebridge_sql::LiveViews;

/// Registers one view type the way the engine does.
fn register<R: ViewRow>(live: &LiveViews) {
    live.register(R::VIEW, R::schema(), R::KEY_COLUMNS).expect("register view");
}

/// Registers every view the engine computes today.
pub fn register_views(live: &LiveViews) {
    register::<Metric1mRow>(live);
    register::<ServiceCall5mRow>(live);
    register::<CallGraphActiveRow>(live);
    register::<TopoEdgeTimeRow>(live);
    register::<BlastRadiusRow>(live);
    register::<LogPatternRow>(live);
    register::<LogPattern5mRow>(live);
    register::<LogPatternNewRow>(live);
}

/// A live set of every view.
pub fn live_views() -> Arc<LiveViews> {
    let live = LiveViews::new();
    register_views(&live);
    live
}

/// The schema and key columns of a registered table.
pub fn table_schema(live: &LiveViews, view: &str) -> (SchemaRef, Vec<String>) {
    let snapshot = live.snapshot();
    let table = snapshot.table(view).unwrap_or_else(|| panic!("no view {view}"));
    (Arc::clone(table.schema()), table.key_columns().to_vec())
}

/// Rows written as a pipe table: a header of column names, then one line per row; cells are
/// converted to the column's type (`NULL` is null). Columns not in the header are null, which
/// only nullable ones may be.
pub fn pipe_table(schema: &SchemaRef, text: &str) -> RecordBatch {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let header: Vec<String> = lines.next().expect("a header line").split('|').map(|c| c.trim().to_string()).collect();
    let rows: Vec<Vec<String>> = lines.map(|l| l.split('|').map(|c| c.trim().to_string()).collect()).collect();
    for (n, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), header.len(), "row {} has {} cells for {} columns: {row:?}", n + 1, row.len(), header.len());
    }
    let mut columns: Vec<ArrayRef> = Vec::new();
    let columns_by_name: Vec<(String, ArrayRef)> = header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let text = StringArray::from(rows.iter().map(|r| (r[i] != "NULL").then(|| r[i].clone())).collect::<Vec<_>>());
            let field = schema.field_with_name(name).unwrap_or_else(|_| panic!("column {name} is not in the schema"));
            let converted = cast(&text, field.data_type()).unwrap_or_else(|e| panic!("column {name}: {e}"));
            (name.clone(), converted)
        })
        .collect();
    for field in schema.fields() {
        match columns_by_name.iter().find(|(n, _)| n == field.name()) {
            Some((_, column)) => columns.push(Arc::clone(column)),
            None => {
                assert!(field.is_nullable(), "column {} is missing and not nullable", field.name());
                columns.push(arrow::array::new_null_array(field.data_type(), rows.len()));
            }
        }
    }
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap_or_else(|e| panic!("rows do not fit the schema: {e}"))
}

/// Key rows of `view` written as a pipe table of key columns (for deletes).
pub fn key_table(live: &LiveViews, view: &str, text: &str) -> RecordBatch {
    let (schema, keys) = table_schema(live, view);
    let key_schema = Arc::new(schema.project(&keys.iter().map(|k| schema.index_of(k).expect("key")).collect::<Vec<_>>()).expect("project"));
    pipe_table(&key_schema, text)
}

/// The empty key batch of `view`.
pub fn no_keys(live: &LiveViews, view: &str) -> RecordBatch {
    let (schema, keys) = table_schema(live, view);
    let key_schema = Arc::new(schema.project(&keys.iter().map(|k| schema.index_of(k).expect("key")).collect::<Vec<_>>()).expect("project"));
    RecordBatch::new_empty(key_schema)
}

pub fn frontier(epoch: u64) -> Frontier {
    Frontier { job: "test".into(), epoch, watermark_ms: None, positions: serde_json::Value::Null }
}

/// Applies upserts (a pipe table) to `view` as frontier `epoch`.
pub fn upsert(live: &LiveViews, epoch: u64, view: &str, rows: &str) {
    let (schema, keys) = table_schema(live, view);
    let change = TableChanges { table: view.into(), key_columns: keys, upserts: pipe_table(&schema, rows), deletes: no_keys(live, view) };
    live.apply(&frontier(epoch), &[change]).expect("apply");
}

/// The final windows of `rows` (one per distinct `bucket`), as the Parquet sink is handed them.
pub fn final_windows(view: &str, rows: &RecordBatch) -> Vec<FinalWindow> {
    let buckets = rows.column_by_name("bucket").expect("history rows need a bucket");
    let buckets = cast(buckets, &DataType::Int64).expect("bucket as i64");
    let buckets = buckets.as_any().downcast_ref::<arrow::array::Int64Array>().expect("i64");
    let mut starts: Vec<i64> = buckets.values().iter().map(|us| us / 1000).collect();
    starts.sort_unstable();
    starts.dedup();
    starts
        .into_iter()
        .map(|start| {
            let mask = arrow::array::BooleanArray::from(buckets.values().iter().map(|us| us / 1000 == start).collect::<Vec<_>>());
            let rows = arrow::compute::filter_record_batch(rows, &mask).expect("filter");
            FinalWindow { view: view.into(), window_start_ms: start, rows }
        })
        .collect()
}

/// Result rows as text lines: cells joined by ` | `, nulls as `NULL`.
pub fn render(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut lines = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter")).collect();
        for row in 0..batch.num_rows() {
            lines.push(formatters.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join(" | "));
        }
    }
    lines
}

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name} (run scripts/test.sh, which starts the services)"))
}

/// Creates an S3 bucket on the test endpoint (moto accepts unsigned requests).
pub fn create_bucket(bucket: &str) {
    use std::io::{Read, Write};
    let endpoint = env("OBSERVEBRIDGE_TEST_S3_ENDPOINT");
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host).expect("connect to s3 endpoint");
    write!(stream, "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "create bucket {bucket}: {response}");
}

/// A name unique to this test run: lowercase letters, digits and `-`.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// One HTTP/1.1 request; returns (status, headers, body).
pub fn http_post(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    stream.write_all(body).expect("send body");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut body = response[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
    out
}
