//! Rewriting a replay's window: the rows of `[from, to)` become exactly what the replay produced.

use arrow::record_batch::RecordBatch;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use super::columns::{self, qualified, quote_ident};
use super::{PostgresError, PostgresSink, dims};

/// How a replay writes one view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewriteMode {
    /// The rows whose `column` (a `timestamptz`) lies in `[from_ms, to_ms)` are the window's:
    /// those the replay did not produce are deleted, the others inserted, or updated where they
    /// differ. Produced rows outside the window are ignored.
    Window { column: String, from_ms: i64, to_ms: i64 },
    /// Rows are merged by key: new keys are inserted; for existing ones the `least` columns keep
    /// the smaller value and the `greatest` columns the larger, every other column stays. Nothing
    /// is deleted (the log template library: it outlives any window).
    Merge { least: Vec<String>, greatest: Vec<String> },
}

/// One view's part of a rewrite.
#[derive(Clone, Debug)]
pub struct ViewRewrite {
    pub table: String,
    pub key_columns: Vec<String>,
    /// The replay's rows (any number of batches of the table's Arrow schema).
    pub rows: Vec<RecordBatch>,
    pub mode: RewriteMode,
}

/// What a rewrite did to one view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RewriteCounts {
    /// Rows of the window the replay did not produce, deleted.
    pub removed: u64,
    /// Rows inserted, or updated because they differed.
    pub changed: u64,
    /// Rows produced that were there already, equal.
    pub unchanged: u64,
}

impl PostgresSink {
    /// Rewrites every view of `rewrites` in ONE transaction (all of it or none), with the
    /// dimension rows of what was written. Running it again with the same rows changes nothing
    /// (every count but `unchanged` is 0).
    pub async fn rewrite(&self, rewrites: &[ViewRewrite]) -> Result<Vec<RewriteCounts>, PostgresError> {
        let tx_error = |action| move |source| PostgresError::Statement { action, table: "transaction".to_owned(), source };
        let mut tx = self.pool.begin().await.map_err(tx_error("begin"))?;
        let mut counts = Vec::with_capacity(rewrites.len());
        let mut dims = dims::Dims::default();
        for (i, rewrite) in rewrites.iter().enumerate() {
            counts.push(self.rewrite_view(&mut tx, i, rewrite).await?);
            if self.dimensions {
                for batch in &rewrite.rows {
                    dims.collect(&rewrite.table, batch);
                }
            }
        }
        dims.write(&mut tx, &self.schema).await?;
        tx.commit().await.map_err(tx_error("commit"))?;
        Ok(counts)
    }

    async fn rewrite_view(&self, conn: &mut PgConnection, index: usize, rewrite: &ViewRewrite) -> Result<RewriteCounts, PostgresError> {
        let table = rewrite.table.as_str();
        let statement = |action: &'static str| move |source| PostgresError::Statement { action, table: table.to_owned(), source };
        let columns = self.table_columns(conn, table).await?;
        let target = qualified(&self.schema, table);
        let staging = format!("ob_replay_{index}");
        let staged = qualified("pg_temp", &staging);
        let create = format!("CREATE TEMP TABLE {} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP", quote_ident(&staging));
        sqlx::query(AssertSqlSafe(create)).execute(&mut *conn).await.map_err(statement("create staging table"))?;
        let mut produced = 0_u64;
        let mut names: Vec<String> = Vec::new();
        for batch in rewrite.rows.iter().filter(|b| b.num_rows() > 0) {
            let sql = columns::insert_sql("pg_temp", &staging, table, batch, &columns)?;
            produced += columns::execute_batch(conn, sql, table, batch, "stage").await?;
            if names.is_empty() {
                names = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            }
        }
        let keys: Vec<String> = rewrite.key_columns.iter().map(|k| quote_ident(k)).collect();
        let quoted: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
        let same_key = keys.iter().map(|k| format!("r.{k} = t.{k}")).collect::<Vec<_>>().join(" AND ");
        let mut counts = RewriteCounts::default();
        match &rewrite.mode {
            RewriteMode::Window { column, from_ms, to_ms } => {
                let column = quote_ident(column);
                let range = |alias: &str| format!("{alias}.{column} >= TIMESTAMPTZ 'epoch' + $1 * INTERVAL '1 millisecond' AND {alias}.{column} < TIMESTAMPTZ 'epoch' + $2 * INTERVAL '1 millisecond'");
                let delete = format!("DELETE FROM {target} AS t WHERE {} AND NOT EXISTS (SELECT 1 FROM {staged} AS r WHERE {same_key})", range("t"));
                counts.removed = sqlx::query(AssertSqlSafe(delete)).bind(from_ms).bind(to_ms).execute(&mut *conn).await.map_err(statement("delete rows not replayed"))?.rows_affected();
                if !names.is_empty() {
                    let in_window = format!("SELECT {} FROM {staged} AS r WHERE {}", quoted.iter().map(|n| format!("r.{n}")).collect::<Vec<_>>().join(", "), range("r"));
                    let (set, differs) = upsert_clauses(&quoted, &keys);
                    let upsert = format!("INSERT INTO {target} AS t ({}) {in_window} ON CONFLICT ({}) {set} {differs}", quoted.join(", "), keys.join(", "));
                    counts.changed = sqlx::query(AssertSqlSafe(upsert)).bind(from_ms).bind(to_ms).execute(&mut *conn).await.map_err(statement("upsert replayed rows"))?.rows_affected();
                    let count = format!("SELECT count(*) FROM {staged} AS r WHERE {}", range("r"));
                    let (in_range,): (i64,) = sqlx::query_as(AssertSqlSafe(count)).bind(from_ms).bind(to_ms).fetch_one(&mut *conn).await.map_err(statement("count replayed rows"))?;
                    counts.unchanged = (in_range as u64).saturating_sub(counts.changed);
                }
            }
            RewriteMode::Merge { least, greatest } => {
                if !names.is_empty() {
                    let mut sets = Vec::new();
                    let mut differs = Vec::new();
                    for (columns, function) in [(least, "LEAST"), (greatest, "GREATEST")] {
                        for c in columns {
                            let c = quote_ident(c);
                            sets.push(format!("{c} = {function}(t.{c}, EXCLUDED.{c})"));
                            differs.push(format!("{function}(t.{c}, EXCLUDED.{c}) IS DISTINCT FROM t.{c}"));
                        }
                    }
                    let action = if sets.is_empty() { "DO NOTHING".to_owned() } else { format!("DO UPDATE SET {} WHERE {}", sets.join(", "), differs.join(" OR ")) };
                    let merge = format!("INSERT INTO {target} AS t ({}) SELECT {} FROM {staged} ON CONFLICT ({}) {action}", quoted.join(", "), quoted.join(", "), keys.join(", "));
                    counts.changed = sqlx::query(AssertSqlSafe(merge)).execute(&mut *conn).await.map_err(statement("merge replayed rows"))?.rows_affected();
                    counts.unchanged = produced.saturating_sub(counts.changed);
                }
            }
        }
        let drop = format!("DROP TABLE {staged}");
        sqlx::query(AssertSqlSafe(drop)).execute(&mut *conn).await.map_err(statement("drop staging table"))?;
        Ok(counts)
    }
}

/// `DO UPDATE SET c = EXCLUDED.c, ..` and `WHERE (t.c, ..) IS DISTINCT FROM (EXCLUDED.c, ..)`
/// over the non-key columns: a row that is equal is not touched.
fn upsert_clauses(columns: &[String], keys: &[String]) -> (String, String) {
    let values: Vec<&String> = columns.iter().filter(|c| !keys.contains(c)).collect();
    if values.is_empty() {
        return ("DO NOTHING".to_owned(), String::new());
    }
    let set = values.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect::<Vec<_>>().join(", ");
    let old = values.iter().map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ");
    let new = values.iter().map(|c| format!("EXCLUDED.{c}")).collect::<Vec<_>>().join(", ");
    (format!("DO UPDATE SET {set}"), format!("WHERE ROW({old}) IS DISTINCT FROM ROW({new})"))
}
