//! SQL behaviour in `.slt`-style files (`tests/slt/*.slt`): fixed view contents, each query
//! next to its expected rows or its expected error. One test per file.
//!
//! A file is a list of blocks separated by blank lines; `#` starts a comment line.
//!
//! ```text
//! apply <view>                 upserts, as a pipe table (header of column names, one row per
//! bucket | tenant | ...        line, `NULL` for null); each apply is one frontier
//! 2026-11-21T13:00:00Z | a | ...
//!
//! delete <view>                deletes, as a pipe table of key columns
//!
//! history <view>               rows written as Parquet final windows (one object per bucket)
//!                              under the history directory, as the Parquet sink writes them
//!
//! garbage <view> <date> <hour> an object that is not Parquet in that partition: a query that
//!                              does not prune the partition fails on it
//!
//! tenant <name>|*              later queries run with this tenant's scope (`*`: all)
//!
//! query [rowsort]              a query, `----`, then the expected rows: cells joined by ` | `
//! SELECT ...
//! ----
//! a | 1
//!
//! error <SQLSTATE> <text>      the query fails with this SQLSTATE and a message containing <text>
//! SELECT ...
//!
//! explain                      EXPLAIN of the query; after `----`, lines that must occur in
//! SELECT ...                   the plan text (a leading `!`: must not occur)
//! ----
//! full_filters=[...]
//! ```
//!
//! `SLT_PRINT=1` prints every query's actual rows (for writing a new file).

mod common;

use std::sync::Arc;

use common::*;
use observebridge_connectors::parquet::{ObjectStoreConfig, ParquetSink};
use observebridge_connectors::sink::TableChanges;
use observebridge_sql::{LiveViews, QueryEngine};

struct Runner {
    live: Arc<LiveViews>,
    engine: QueryEngine,
    history: ObjectStoreConfig,
    dir: tempfile::TempDir,
    tenant: Option<String>,
    epoch: u64,
    print: bool,
}

impl Runner {
    fn new() -> Runner {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = ObjectStoreConfig { url: dir.path().display().to_string(), ..ObjectStoreConfig::default() };
        let live = live_views();
        let engine = QueryEngine::new(Arc::clone(&live), Some(&history)).expect("engine");
        Runner { live, engine, history, dir, tenant: None, epoch: 0, print: std::env::var_os("SLT_PRINT").is_some() }
    }

    /// Runs one block; `Err` describes a mismatch.
    async fn run(&mut self, head: &str, body: &[&str]) -> Result<(), String> {
        let words: Vec<&str> = head.split_whitespace().collect();
        match words.as_slice() {
            ["apply", view] => {
                let (schema, keys) = table_schema(&self.live, view);
                let change = TableChanges { table: view.to_string(), key_columns: keys, upserts: pipe_table(&schema, &body.join("\n")), deletes: no_keys(&self.live, view) };
                self.apply(change)
            }
            ["delete", view] => {
                let (schema, keys) = table_schema(&self.live, view);
                let change = TableChanges { table: view.to_string(), key_columns: keys, upserts: arrow::array::RecordBatch::new_empty(schema), deletes: key_table(&self.live, view, &body.join("\n")) };
                self.apply(change)
            }
            ["history", view] => {
                let (schema, _) = table_schema(&self.live, view);
                let rows = pipe_table(&schema, &body.join("\n"));
                let sink = ParquetSink::new(&self.history).map_err(|e| e.to_string())?;
                for window in final_windows(view, &rows) {
                    sink.write(&window, |_, _| {}).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            ["garbage", view, date, hour] => {
                let dir = self.dir.path().join(view).join(format!("date={date}")).join(format!("hour={hour}"));
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                std::fs::write(dir.join(format!("{view}-garbage.parquet")), b"this is not parquet").map_err(|e| e.to_string())
            }
            ["tenant", "*"] => {
                self.tenant = None;
                Ok(())
            }
            ["tenant", name] => {
                self.tenant = Some(name.to_string());
                Ok(())
            }
            ["query", options @ ..] => {
                let (sql, expected) = split_expected(body)?;
                let mut actual = self.rows(&sql).await?;
                let mut expected: Vec<String> = expected.iter().map(|l| l.trim().to_string()).collect();
                if options.contains(&"rowsort") {
                    actual.sort();
                    expected.sort();
                }
                if self.print {
                    println!("{sql}\n----\n{}\n", actual.join("\n"));
                }
                if actual != expected {
                    return Err(format!("{sql}\nexpected:\n{}\nactual:\n{}", expected.join("\n"), actual.join("\n")));
                }
                Ok(())
            }
            ["error", code, text @ ..] => {
                let sql = body.join("\n");
                let text = text.join(" ");
                match self.engine.query(&sql, self.tenant.as_deref()).await {
                    Ok(output) => Err(format!("{sql}\nexpected error {code} {text:?}, got {} rows", output.num_rows())),
                    Err(e) if e.code == *code && e.message.contains(&text) => Ok(()),
                    Err(e) => Err(format!("{sql}\nexpected error {code} containing {text:?}, got {}: {}", e.code, e.message)),
                }
            }
            ["explain"] => {
                let (sql, expected) = split_expected(body)?;
                let plan = self.rows(&format!("EXPLAIN {sql}")).await?.join("\n");
                if self.print {
                    println!("EXPLAIN {sql}\n----\n{plan}\n");
                }
                for line in expected {
                    let line = line.trim();
                    let (negated, needle) = match line.strip_prefix('!') {
                        Some(rest) => (true, rest.trim()),
                        None => (false, line),
                    };
                    if plan.contains(needle) == negated {
                        return Err(format!("EXPLAIN {sql}\n{} {needle:?} in:\n{plan}", if negated { "unexpected" } else { "missing" }));
                    }
                }
                Ok(())
            }
            _ => Err(format!("unknown directive {head:?}")),
        }
    }

    fn apply(&mut self, change: TableChanges) -> Result<(), String> {
        self.live.apply(&frontier(self.epoch), &[change]).map_err(|e| e.to_string())?;
        self.epoch += 1;
        Ok(())
    }

    async fn rows(&self, sql: &str) -> Result<Vec<String>, String> {
        let output = self.engine.query(sql, self.tenant.as_deref()).await.map_err(|e| format!("{sql}\nfailed: {} {}", e.code, e.message))?;
        Ok(render(&output.batches))
    }
}

/// The SQL before `----` and the expected lines after it.
fn split_expected<'a>(body: &[&'a str]) -> Result<(String, Vec<&'a str>), String> {
    let at = body.iter().position(|l| l.trim() == "----").ok_or("a query block needs a `----` line")?;
    Ok((body[..at].join("\n"), body[at + 1..].to_vec()))
}

async fn run_file(name: &str) {
    let path = format!("{}/tests/slt/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut runner = Runner::new();
    let mut failures = Vec::new();
    let mut block: Vec<(usize, &str)> = Vec::new();
    let lines: Vec<(usize, &str)> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim_start().starts_with('#')).collect();
    let mut blocks = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else {
            block.push((n, line));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    for block in blocks {
        let (line, head) = block[0];
        let body: Vec<&str> = block[1..].iter().map(|(_, l)| *l).collect();
        if let Err(e) = runner.run(head.trim(), &body).await {
            failures.push(format!("{name}:{line}: {head}\n{e}"));
        }
    }
    assert!(failures.is_empty(), "{} of the blocks in {name} failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typical_questions() {
    run_file("questions.slt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_are_pushed_down() {
    run_file("pushdown.slt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused() {
    run_file("read_only.slt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_problem() {
    run_file("errors.slt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_only_see_their_rows() {
    run_file("tenants.slt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_queries_of_psql_and_grafana() {
    run_file("catalog.slt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tables_follow_applies() {
    run_file("live.slt").await;
}
