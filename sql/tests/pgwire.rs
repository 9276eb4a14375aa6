//! The Postgres wire protocol with real clients: psql (the binary on the machine) and sqlx
//! (extended protocol, typed columns, SQLSTATEs), token authentication and tenant isolation,
//! and transactions that read one snapshot.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::*;
use observebridge_sql::{AuthConfig, LiveViews, SqlConfig, SqlServer, serve};
use sqlx::{Connection, PgConnection, Row};

const CALLS: &str = "
bucket               | tenant  | src                       | dst                       | connection_type | calls | errors | rps | err_rate | p50_ms | p95_ms | p99_ms | server_p95_ms
2026-11-21T13:00:00Z | default | urn:k8s:svc:shop/checkout | urn:k8s:svc:shop/payments | direct          | 600   | 6      | 2.0 | 0.01     | 20     | 40.5   | 60     | 30
2026-11-21T13:05:00Z | default | urn:k8s:svc:shop/checkout | urn:k8s:svc:shop/payments | direct          | 600   | 12     | 2.0 | 0.02     | 20     | 45.25  | 60     | NULL
2026-11-21T13:05:00Z | acme    | urn:k8s:svc:shop/checkout | urn:k8s:svc:shop/cart     | direct          | 300   | 0      | 1.0 | 0.0      | 10     | 15     | 20     | NULL
";

const METRICS: &str = r#"
bucket               | tenant  | resource                  | metric               | series   | count | sum  | avg | min | max | p50 | p95 | p99 | labels
2026-11-21T13:00:00Z | default | urn:k8s:svc:shop/checkout | http.server.duration | pod=co-1 | 60    | 1200 | 20  | 5   | 80  | 18  | 50  | 75  | {"pod":"co-1"}
"#;

async fn server(auth: Option<&str>) -> (Arc<LiveViews>, SqlServer) {
    let live = live_views();
    upsert(&live, 0, "service_call_5m", CALLS);
    upsert(&live, 1, "metric_1m", METRICS);
    let mut config = SqlConfig::ephemeral();
    config.http_listen = None;
    if let Some(yaml) = auth {
        let auth: AuthConfig = serde_yaml_ng::from_str(yaml).expect("auth config");
        config.auth = Some(auth);
    }
    let server = serve(config, Arc::clone(&live)).await.expect("serve");
    (live, server)
}

fn url(addr: SocketAddr, user: &str, password: Option<&str>) -> String {
    match password {
        Some(p) => format!("postgres://{user}:{p}@{}:{}/anydb?sslmode=disable", addr.ip(), addr.port()),
        None => format!("postgres://{user}@{}:{}/anydb?sslmode=disable", addr.ip(), addr.port()),
    }
}

/// Runs psql with `args` against `addr`; returns (success, stdout, stderr).
async fn psql(addr: SocketAddr, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new("psql");
    command.args(["-X", "-h", &addr.ip().to_string(), "-p", &addr.port().to_string(), "-U", "grafana_reader", "-d", "whatever", "-v", "ON_ERROR_STOP=1"]).args(args);
    command.env("PGCONNECT_TIMEOUT", "10").env_remove("PGPASSWORD").env("PGSSLMODE", "disable");
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run psql (Debian's postgresql-client)");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).to_string(), String::from_utf8_lossy(&output.stderr).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_describes_and_queries_views() {
    let (_live, server) = server(None).await;
    let addr = server.pg_addr().expect("pg address");

    let (ok, out, err) = psql(addr, &["-c", "\\dt"]).await;
    assert!(ok, "\\dt failed: {err}");
    for table in ["metric_1m", "service_call_5m", "topo_edge_time", "dim_resource", "log_pattern_new"] {
        assert!(out.lines().any(|l| l.split('|').nth(1).is_some_and(|c| c.trim() == table)), "\\dt lacks {table}:\n{out}");
    }

    let (ok, out, err) = psql(addr, &["-c", "\\d service_call_5m"]).await;
    assert!(ok, "\\d service_call_5m failed: {err}");
    for (column, pg_type) in [("bucket", "timestamp with time zone"), ("tenant", "text"), ("calls", "double precision"), ("server_p95_ms", "double precision")] {
        assert!(
            out.lines().any(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                cells.first() == Some(&column) && cells.get(1) == Some(&pg_type)
            }),
            "\\d service_call_5m lacks `{column} | {pg_type}`:\n{out}"
        );
    }
    let (ok, out, err) = psql(addr, &["-c", "\\d metric_1m"]).await;
    assert!(ok && out.contains("count") && out.contains("bigint"), "\\d metric_1m: {err}\n{out}");

    let (ok, out, err) = psql(addr, &["-A", "-t", "-c", "SELECT bucket, calls, p95_ms, server_p95_ms FROM service_call_5m WHERE tenant = 'default' ORDER BY bucket"]).await;
    assert!(ok, "select failed: {err}");
    // pgwire's text encoding: microseconds always, floats with a decimal point.
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["2026-11-21 13:00:00.000000+00|600.0|40.5|30.0", "2026-11-21 13:05:00.000000+00|600.0|45.25|"]);

    let (ok, _, err) = psql(addr, &["-c", "INSERT INTO metric_1m (tenant) VALUES ('x')"]).await;
    assert!(!ok && err.contains("ERROR:  cannot execute INSERT: ObserveBridge SQL is read-only"), "{err}");
    let (ok, _, err) = psql(addr, &["-c", "SELECT * FROM nope"]).await;
    assert!(!ok && err.contains("ERROR:  table 'observebridge.public.nope' not found"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_extended_protocol_with_typed_columns_and_parameters() {
    let (_live, server) = server(None).await;
    let mut conn = PgConnection::connect(&url(server.pg_addr().expect("addr"), "anyone", None)).await.expect("connect");
    let since: DateTime<Utc> = "2026-11-21T13:05:00Z".parse().expect("time");
    let rows = sqlx::query("SELECT bucket, tenant, calls, p95_ms, server_p95_ms, count(*) OVER () AS n FROM service_call_5m WHERE tenant = $1 AND bucket >= $2 ORDER BY bucket")
        .bind("default")
        .bind(since)
        .fetch_all(&mut conn)
        .await
        .expect("query");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.get::<DateTime<Utc>, _>("bucket"), since);
    assert_eq!(row.get::<String, _>("tenant"), "default");
    assert_eq!(row.get::<f64, _>("calls"), 600.0);
    assert_eq!(row.get::<f64, _>("p95_ms"), 45.25);
    assert_eq!(row.get::<Option<f64>, _>("server_p95_ms"), None);
    assert_eq!(row.get::<i64, _>("n"), 1);

    // int8 and jsonb-as-text columns, and the same statement run twice (prepared, cached).
    for _ in 0..2 {
        let (count, labels): (i64, String) = sqlx::query_as("SELECT count, labels FROM metric_1m WHERE series = $1").bind("pod=co-1").fetch_one(&mut conn).await.expect("metric");
        assert_eq!((count, labels.as_str()), (60, r#"{"pod":"co-1"}"#));
    }

    // Errors carry their SQLSTATE, and the connection stays usable.
    let code = |e: sqlx::Error| e.as_database_error().and_then(|d| d.code()).map(|c| c.to_string()).unwrap_or_default();
    let err = sqlx::query("SELECT * FROM nope").fetch_all(&mut conn).await.expect_err("unknown table");
    assert_eq!(code(err), "42P01");
    let err = sqlx::query("DELETE FROM metric_1m").execute(&mut conn).await.expect_err("read-only");
    assert_eq!(code(err), "25006");
    let err = sqlx::query("SELECT no_such_column FROM metric_1m").fetch_all(&mut conn).await.expect_err("unknown column");
    assert_eq!(code(err), "42703");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM service_call_5m").fetch_one(&mut conn).await.expect("still usable");
    assert_eq!(n, 3);
    conn.close().await.expect("close");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_is_a_token_that_scopes_the_tenant() {
    let (_live, server) = server(Some("tokens: { token-acme-0001: acme, token-admin-001: '*' }")).await;
    let addr = server.pg_addr().expect("addr");

    let err = PgConnection::connect(&url(addr, "anyone", None)).await.expect_err("no password");
    assert!(err.to_string().contains("password"), "{err}");
    let err = PgConnection::connect(&url(addr, "anyone", Some("wrong-token-1"))).await.expect_err("bad token");
    assert_eq!(err.as_database_error().and_then(|d| d.code()).map(|c| c.to_string()).as_deref(), Some("28P01"), "{err}");

    let mut acme = PgConnection::connect(&url(addr, "anyone", Some("token-acme-0001"))).await.expect("acme");
    let tenants: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant FROM service_call_5m").fetch_all(&mut acme).await.expect("query");
    assert_eq!(tenants, vec!["acme".to_string()]);
    let cross: i64 = sqlx::query_scalar("SELECT count(*) FROM service_call_5m WHERE tenant = 'default'").fetch_one(&mut acme).await.expect("query");
    assert_eq!(cross, 0);
    let metrics: i64 = sqlx::query_scalar("SELECT count(*) FROM metric_1m").fetch_one(&mut acme).await.expect("query");
    assert_eq!(metrics, 0);

    let mut admin = PgConnection::connect(&url(addr, "ops", Some("token-admin-001"))).await.expect("admin");
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM service_call_5m").fetch_one(&mut admin).await.expect("query");
    assert_eq!(all, 3);

    // psql too: the token is the password.
    let mut command = Command::new("psql");
    command.args(["-X", "-A", "-t", "-h", &addr.ip().to_string(), "-p", &addr.port().to_string(), "-U", "me", "-d", "db", "-c", "SELECT count(*) FROM service_call_5m"]);
    command.env("PGPASSWORD", "token-acme-0001").env("PGSSLMODE", "disable");
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("psql");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1", "{}", String::from_utf8_lossy(&output.stderr));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_reads_one_frontier() {
    let (live, server) = server(None).await;
    let mut conn = PgConnection::connect(&url(server.pg_addr().expect("addr"), "anyone", None)).await.expect("connect");
    let count = "SELECT count(*) FROM metric_1m";
    let more = r#"
bucket               | tenant  | resource                  | metric               | series   | count | sum | avg | min | max | p50 | p95 | p99 | labels
2026-11-21T13:01:00Z | default | urn:k8s:svc:shop/checkout | http.server.duration | pod=co-1 | 1     | 1   | 1   | 1   | 1   | 1   | 1   | 1   | {}
"#;
    sqlx::query("BEGIN").execute(&mut conn).await.expect("begin");
    let before: i64 = sqlx::query_scalar(count).fetch_one(&mut conn).await.expect("count");
    upsert(&live, 2, "metric_1m", more);
    let inside: i64 = sqlx::query_scalar(count).fetch_one(&mut conn).await.expect("count");
    assert_eq!(inside, before, "a transaction reads the frontier its first query read");
    sqlx::query("COMMIT").execute(&mut conn).await.expect("commit");
    let after: i64 = sqlx::query_scalar(count).fetch_one(&mut conn).await.expect("count");
    assert_eq!(after, before + 1);
    server.shutdown().await;
}
