//! A Postgres outage pauses ingestion and loses nothing: the engine reads a JSON-lines file while
//! Postgres is unreachable (a proxy in front of it refuses connections), retries with backoff, and
//! once Postgres is back every row arrives exactly as computed from scratch.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// A TCP proxy to `target`. While `up` is false it refuses new connections and cuts the ones it
/// carries (as a network partition or a Postgres restart would).
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (Arc::clone(&up), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    if let Ok(mut open) = open2.lock() {
                        open.push(c);
                        open.push(s);
                    }
                }
                for (mut from, mut to) in [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())].into_iter().filter_map(|(a, b)| Some((a.ok()?, b.ok()?))) {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, up, open }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut open) = self.open.lock() {
            for stream in open.drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A job on the paced generator (deterministic for its seed and start) writing to `pg_url`.
fn job(dir: &std::path::Path, name: &str, schema: &str, pg_url: &str) -> std::path::PathBuf {
    let job = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &job,
        format!(
            "name: {schema}\nworkers: 2\nepochs:\n  interval: 50ms\n  max_inflight: 2\nsources:\n  - name: estate\n    generator:\n      seed: 11\n      services: 10\n      pods_per_service: 2\n      start: 2026-11-20T10:00:00Z\n      pace: realtime\n      speed: 100\n      duration: 12m\n      signals: [metrics]\nviews:\n  metric_1m: {{}}\nsinks:\n  postgres:\n    url: {pg_url}\n    schema: {schema}\n    retry: {{ initial_backoff: 50ms, max_backoff: 500ms }}\ndead_letter:\n  file:\n    path: {dead}\n",
            dead = dir.join(format!("{name}-dead.jsonl")).display(),
        ),
    )
    .expect("write job");
    job
}

type Row = (chrono::DateTime<chrono::Utc>, String, String, String, i64, f64, f64, f64, f64);

fn table(rt: &tokio::runtime::Runtime, pool: &sqlx::PgPool, schema: &str) -> Vec<Row> {
    rt.block_on(async {
        let table: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text").bind(format!("\"{schema}\".metric_1m")).fetch_one(pool).await.ok()?;
        table?;
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT bucket, resource, metric, series, count, sum, min, max, p95 FROM \"{schema}\".metric_1m ORDER BY 1, 2, 3, 4"))).fetch_all(pool).await.ok()
    })
    .unwrap_or_default()
}

#[test]
fn postgres_outage_pauses_ingestion_and_drops_nothing() {
    let url = url::Url::parse(&pg_url()).expect("pg url");
    let target = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432));
    let proxy = Proxy::start(target);
    let mut proxied = url.clone();
    proxied.set_port(Some(proxy.port)).expect("port");
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let pool = rt.block_on(sqlx::PgPool::connect(&pg_url())).expect("connect");

    // The reference: the same job, uninterrupted.
    let reference = unique("outage_ref");
    let mut engine = Engine::start(&job(dir.path(), "reference", &reference, url.as_str()), &dir.path().join("reference.log"));
    let status = wait_for("the reference run to finish", Duration::from_secs(120), || engine.child.try_wait().ok().flatten());
    assert!(status.success(), "{}", engine.log_text());
    let expected = table(&rt, &pool, &reference);
    assert!(expected.len() > 100, "{} rows", expected.len());

    // The same job through the proxy, which goes down for 3 s in the middle of the run.
    let schema = unique("outage");
    let mut engine = Engine::start(&job(dir.path(), "outage", &schema, proxied.as_str()), &dir.path().join("outage.log"));
    wait_for("the first rows", Duration::from_secs(60), || (!table(&rt, &pool, &schema).is_empty()).then_some(()));
    proxy.down();
    let during = table(&rt, &pool, &schema).len();
    std::thread::sleep(Duration::from_secs(3));
    engine.assert_running();
    // Paused, not dropping: nothing reached Postgres meanwhile, the sink said it is retrying.
    assert_eq!(table(&rt, &pool, &schema).len(), during);
    assert!(during < expected.len(), "the outage must hit the middle of the run");
    proxy.restore();
    let status = wait_for("the engine to finish", Duration::from_secs(120), || engine.child.try_wait().ok().flatten());
    assert!(status.success(), "{}", engine.log_text());
    assert!(engine.log_text().contains("retrying"), "{}", engine.log_text());
    let got = table(&rt, &pool, &schema);
    let missing: Vec<_> = expected.iter().filter(|r| !got.contains(r)).take(3).collect();
    let extra: Vec<_> = got.iter().filter(|r| !expected.contains(r)).take(3).collect();
    assert!(missing.is_empty() && extra.is_empty() && got.len() == expected.len(), "{} rows, {} expected; missing {missing:#?}; unexpected {extra:#?}", got.len(), expected.len());
}
