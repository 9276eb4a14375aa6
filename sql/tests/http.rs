//! `POST /v1/sql`: JSON rows, Arrow IPC on request, errors as JSON, bearer tokens and tenants.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::ipc::reader::StreamReader;
use common::*;
use observebridge_sql::{ARROW_STREAM, AuthConfig, SqlConfig, SqlServer, serve};

const EDGES: &str = "
tenant | src                       | dst                       | connection_type | first_seen           | last_seen            | calls | rps | err_rate | p95_ms
acme   | urn:k8s:svc:shop/checkout | urn:k8s:svc:shop/payments | direct          | 2026-11-21T13:00:00Z | 2026-11-21T13:09:00Z | 600   | 1.0 | 0.0      | 40.5
acme   | urn:k8s:svc:shop/checkout | urn:k8s:svc:shop/cart     | direct          | 2026-11-21T13:00:00Z | 2026-11-21T13:09:00Z | 300   | 0.5 | 0.01     | 20
globex | urn:k8s:svc:bank/ledger   | urn:db:postgresql/ledger  | database        | 2026-11-21T13:00:00Z | 2026-11-21T13:09:00Z | 900   | 1.5 | 0.0      | 5
";

async fn server(auth: Option<&str>) -> SqlServer {
    let live = live_views();
    upsert(&live, 0, "call_graph_active", EDGES);
    let mut config = SqlConfig::ephemeral();
    config.pg_listen = None;
    config.auth = auth.map(|yaml| serde_yaml_ng::from_str::<AuthConfig>(yaml).expect("auth"));
    serve(config, Arc::clone(&live)).await.expect("serve")
}

async fn post(addr: SocketAddr, headers: &[(&str, &str)], sql: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let body = sql.as_bytes().to_vec();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http_post(addr, "/v1/sql", &refs, &body)
    })
    .await
    .expect("join")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_come_back_as_json_by_default() {
    let server = server(None).await;
    let addr = server.http_addr().expect("http");
    let (status, headers, body) = post(addr, &[], "SELECT tenant, dst, p95_ms, last_seen, NULL AS nothing FROM call_graph_active WHERE tenant = 'acme' ORDER BY dst").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(
        json(&body),
        serde_json::json!([
            {"tenant": "acme", "dst": "urn:k8s:svc:shop/cart", "p95_ms": 20.0, "last_seen": "2026-11-21T13:09:00Z", "nothing": null},
            {"tenant": "acme", "dst": "urn:k8s:svc:shop/payments", "p95_ms": 40.5, "last_seen": "2026-11-21T13:09:00Z", "nothing": null},
        ])
    );
    let (status, _, body) = post(addr, &[], "SELECT * FROM call_graph_active WHERE false").await;
    assert_eq!((status, json(&body)), (200, serde_json::json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_ipc_when_asked() {
    let server = server(None).await;
    let addr = server.http_addr().expect("http");
    let (status, headers, body) = post(addr, &[("Accept", ARROW_STREAM)], "SELECT dst, calls, first_seen FROM call_graph_active ORDER BY dst").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "content-type"), Some(ARROW_STREAM));
    let reader = StreamReader::try_new(std::io::Cursor::new(body), None).expect("arrow stream");
    let schema = reader.schema();
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(1).data_type(), &DataType::Float64);
    assert_eq!(schema.field(2).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
    let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("batches");
    let dsts: Vec<String> = batches.iter().flat_map(|b| (0..b.num_rows()).map(|i| b.column(0).as_string::<i32>().value(i).to_string()).collect::<Vec<_>>()).collect();
    assert_eq!(dsts, vec!["urn:db:postgresql/ledger", "urn:k8s:svc:shop/cart", "urn:k8s:svc:shop/payments"]);
    assert!(batches.iter().all(|b| b.column(1).null_count() == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_400() {
    let server = server(None).await;
    let addr = server.http_addr().expect("http");
    let (status, headers, body) = post(addr, &[], "SELECT * FROM nope").await;
    assert_eq!(status, 400);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(json(&body), serde_json::json!({"error": "table 'observebridge.public.nope' not found", "code": "42P01"}));
    let (status, _, body) = post(addr, &[], "DROP TABLE call_graph_active").await;
    assert_eq!(status, 400);
    assert_eq!(json(&body)["code"], "25006");
    let (status, _, body) = post(addr, &[], "").await;
    assert_eq!(status, 400);
    assert!(json(&body)["error"].as_str().is_some_and(|e| e.contains("expected one statement, got 0")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_authenticate_and_scope_the_tenant() {
    let server = server(Some("tokens: { token-acme-0001: acme, token-admin-001: '*' }")).await;
    let addr = server.http_addr().expect("http");
    let count = "SELECT count(*) AS n FROM call_graph_active";

    let (status, headers, body) = post(addr, &[], count).await;
    assert_eq!(status, 401);
    assert_eq!(header(&headers, "www-authenticate"), Some("Bearer"));
    assert!(json(&body)["error"].as_str().is_some_and(|e| e.contains("Authorization: Bearer")));
    let (status, _, body) = post(addr, &[("Authorization", "Bearer not-a-token")], count).await;
    assert_eq!((status, json(&body)), (401, serde_json::json!({"error": "unknown access token"})));

    let (status, _, body) = post(addr, &[("Authorization", "Bearer token-acme-0001")], count).await;
    assert_eq!((status, json(&body)), (200, serde_json::json!([{"n": 2}])));
    let (_, _, body) = post(addr, &[("Authorization", "Bearer token-acme-0001")], "SELECT count(*) AS n FROM call_graph_active WHERE tenant = 'globex'").await;
    assert_eq!(json(&body), serde_json::json!([{"n": 0}]));
    let (_, _, body) = post(addr, &[("Authorization", "Bearer token-acme-0001")], "SELECT DISTINCT tenant FROM dim_resource").await;
    assert_eq!(json(&body), serde_json::json!([{"tenant": "acme"}]));
    let (_, _, body) = post(addr, &[("Authorization", "bearer token-admin-001")], count).await;
    assert_eq!(json(&body), serde_json::json!([{"n": 3}]));
}
