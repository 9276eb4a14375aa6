//! Snapshot consistency under concurrent applies: a writer applies frontiers that each move an
//! amount between two tables (a fixed total) and stamp both with the frontier's epoch; queries
//! running meanwhile, in-process and over pgwire, always see the total and one epoch in both
//! tables, never half a frontier.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use common::*;
use observebridge_connectors::sink::TableChanges;
use observebridge_sql::{LiveViews, QueryEngine, SqlConfig, serve};
use sqlx::{Connection, PgConnection, Row};

const ACCOUNTS: i64 = 50;
const START: i64 = 1_000;
const TOTAL: i64 = ACCOUNTS * START;
const FRONTIERS: u64 = 400;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("tenant", DataType::Utf8, false),
        Field::new("account", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
        Field::new("epoch", DataType::Int64, false),
    ]))
}

fn rows(rows: &[(String, i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec!["t"; rows.len()])),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .expect("batch")
}

fn keys(accounts: &[String]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("tenant", DataType::Utf8, false), Field::new("account", DataType::Utf8, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["t"; accounts.len()])), Arc::new(StringArray::from_iter_values(accounts.iter().map(String::as_str)))]).expect("keys")
}

fn change(table: &str, upserts: RecordBatch, deletes: RecordBatch) -> TableChanges {
    TableChanges { table: table.into(), key_columns: vec!["tenant".into(), "account".into()], upserts, deletes }
}

/// Frontier `epoch` moves `amount` of account `i` from a to b. Every few frontiers the account
/// row in b is deleted and its amount re-created under a new account name (deletes too).
/// Both tables get a `marker` row with the epoch.
fn writer(live: Arc<LiveViews>, done: Arc<AtomicBool>) {
    let mut a: Vec<i64> = vec![START; ACCOUNTS as usize];
    let mut b: Vec<(String, i64)> = (0..ACCOUNTS).map(|i| (format!("b{i}"), 0)).collect();
    let mut renamed = 0;
    for epoch in 1..=FRONTIERS {
        let e = epoch as i64;
        let i = (epoch as usize * 7) % ACCOUNTS as usize;
        let amount = (e * 13) % 50;
        let moved = amount.min(a[i]);
        a[i] -= moved;
        b[i].1 += moved;
        let mut b_deletes = Vec::new();
        if epoch % 5 == 0 {
            b_deletes.push(b[i].0.clone());
            renamed += 1;
            b[i].0 = format!("b{i}-{renamed}");
        }
        let a_rows = vec![(format!("a{i}"), a[i], e), ("marker".to_string(), 0, e)];
        let b_rows = vec![(b[i].0.clone(), b[i].1, e), ("marker".to_string(), 0, e)];
        let changes = [change("ledger_a", rows(&a_rows), keys(&[])), change("ledger_b", rows(&b_rows), keys(&b_deletes))];
        live.apply(&frontier(epoch), &changes).expect("apply");
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
    done.store(true, Ordering::SeqCst);
}

const CHECK: &str = "SELECT (SELECT sum(amount) FROM ledger_a) + (SELECT sum(amount) FROM ledger_b) AS total, \
                     (SELECT max(epoch) FROM ledger_a) AS epoch_a, (SELECT max(epoch) FROM ledger_b) AS epoch_b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_never_see_half_a_frontier() {
    let live = LiveViews::new();
    live.register("ledger_a", schema(), &["tenant", "account"]).expect("register");
    live.register("ledger_b", schema(), &["tenant", "account"]).expect("register");
    let initial_a: Vec<(String, i64, i64)> = (0..ACCOUNTS).map(|i| (format!("a{i}"), START, 0)).collect();
    let initial_b: Vec<(String, i64, i64)> = (0..ACCOUNTS).map(|i| (format!("b{i}"), 0, 0)).collect();
    live.apply(&frontier(0), &[change("ledger_a", rows(&initial_a), keys(&[])), change("ledger_b", rows(&initial_b), keys(&[]))]).expect("initial");

    let engine = Arc::new(QueryEngine::new(Arc::clone(&live), None).expect("engine"));
    let mut config = SqlConfig::ephemeral();
    config.http_listen = None;
    let server = serve(config, Arc::clone(&live)).await.expect("serve");
    let addr = server.pg_addr().expect("pg");

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (live, done) = (Arc::clone(&live), Arc::clone(&done));
        std::thread::spawn(move || writer(live, done))
    };

    let mut readers = Vec::new();
    for _ in 0..3 {
        let (engine, done) = (Arc::clone(&engine), Arc::clone(&done));
        readers.push(tokio::spawn(async move {
            let mut epochs = std::collections::BTreeSet::new();
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) || reads < 5 {
                let output = engine.query(CHECK, None).await.expect("query");
                let batch = &output.batches[0];
                let get = |c: usize| batch.column(c).as_any().downcast_ref::<Int64Array>().expect("i64").value(0);
                let (total, epoch_a, epoch_b) = (get(0), get(1), get(2));
                assert_eq!(total, TOTAL, "a query saw half a frontier (epochs {epoch_a}/{epoch_b})");
                assert_eq!(epoch_a, epoch_b, "a query read two frontiers");
                epochs.insert(epoch_a);
                reads += 1;
            }
            (reads, epochs.len())
        }));
    }
    let pg_reader = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut conn = PgConnection::connect(&format!("postgres://reader@{}:{}/db?sslmode=disable", addr.ip(), addr.port())).await.expect("connect");
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) || reads < 5 {
                let row = sqlx::query(CHECK).fetch_one(&mut conn).await.expect("query");
                let (total, epoch_a, epoch_b): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
                assert_eq!(total, TOTAL, "a pgwire query saw half a frontier (epochs {epoch_a}/{epoch_b})");
                assert_eq!(epoch_a, epoch_b);
                reads += 1;
            }
            reads
        })
    };
    tokio::task::spawn_blocking(move || writer.join().expect("writer")).await.expect("join");
    let mut distinct = 0;
    for reader in readers {
        let (reads, epochs) = reader.await.expect("reader");
        assert!(reads >= 5);
        distinct = distinct.max(epochs);
    }
    assert!(pg_reader.await.expect("pg reader") >= 5);
    // The reads did overlap the writes: they saw several frontiers.
    assert!(distinct >= 2, "readers saw only {distinct} frontier(s)");
    let output = engine.query(CHECK, None).await.expect("final");
    assert_eq!(render(&output.batches), vec![format!("{TOTAL} | {FRONTIERS} | {FRONTIERS}")]);
    server.shutdown().await;
}
