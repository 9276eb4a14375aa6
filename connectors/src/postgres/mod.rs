//! The Postgres sink: each frontier's view changes in one transaction, with the frontier itself.
//!
//! The engine hands the sink, per completed [`Frontier`], a [`TableChanges`] per view. The sink
//! applies all of them in ONE transaction: per table the deletes (by key), then the upserts
//! (`INSERT .. ON CONFLICT (keys) DO UPDATE`), each as a single statement over Arrow columns bound
//! as Postgres arrays (see `columns`); then the dimension rows (`dim_tenant`, `dim_resource`,
//! see `dims`); then the `ob_progress` row of the job. Either all of it commits or nothing does,
//! and replaying a frontier leaves the tables as they were, so after a crash the engine can
//! re-send everything after the last frontier it knows is durable ([`PostgresSink::progress`]).
//!
//! ```no_run
//! # use observebridge_connectors::postgres::{PostgresConfig, PostgresSink, PostgresError};
//! # use observebridge_connectors::sink::{Frontier, TableChanges};
//! # async fn run(frontier: Frontier, changes: Vec<TableChanges>) -> Result<(), PostgresError> {
//! let cfg = PostgresConfig::new("postgres://observebridge:secret@db:5432/observebridge");
//! let sink = PostgresSink::connect(&cfg).await?; // validates, creates the schema
//! sink.migrate().await?;                          // schemas/migrations, embedded
//! sink.apply_with_retry(&frontier, &changes, |attempt, error| {
//!     eprintln!("postgres unavailable (attempt {attempt}): {error}");
//! })
//! .await?; // Err only for permanent errors: stop the job
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: [`PostgresConfig`] (serde, `validate()`, redacted `Debug`) and TLS/retry settings.
//! - [`error`]: [`PostgresError`] and which errors are transient.
//! - `columns`: table columns from the catalog, Arrow column -> array parameter, the SQL.
//! - `dims`: URN parsing and the dimension upserts.
//! - `tests` (test only): against a real Postgres, each test in a schema of its own.

mod columns;
pub mod config;
mod dims;
pub mod error;
mod rewrite;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};

use crate::sink::{Frontier, TableChanges};
use columns::{TableColumns, qualified, quote_ident};
pub use crate::retry::RetryConfig;
pub use config::{PostgresConfig, TlsConfig, TlsMode};
pub use dims::{RESOURCE_COLUMNS, ResourceName, parse_urn};
pub use error::PostgresError;
pub use rewrite::{RewriteCounts, RewriteMode, ViewRewrite};

/// The migrations in `schemas/migrations`, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("../schemas/migrations");

/// The `sink` column of this sink's `ob_progress` rows.
const SINK_NAME: &str = "postgres";

/// The last frontier the sink committed for a job, as stored in `ob_progress`.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The frontier as it was handed to [`PostgresSink::apply`].
    pub frontier: Frontier,
    /// When it was committed (the server's transaction time).
    pub updated_at: DateTime<Utc>,
}

/// An `ob_progress` row: epoch, watermark, positions (as text), updated_at.
type ProgressRow = (i64, Option<DateTime<Utc>>, Option<bool>, String, DateTime<Utc>);

/// A `log_pattern` row as [`PostgresSink::log_library`] returns it: `(tenant, fingerprint_id,
/// pattern, sample_message, severity, first_seen ms, last_seen ms)`.
pub type LibraryRow = (String, i64, String, String, String, i64, i64);

/// Writes view changes to Postgres, one transaction per frontier.
///
/// Cheap to share (`&self` everywhere); the pool opens connections as needed. Table column types
/// are read from the catalog on first use and cached; the cache is dropped after `migrate` and
/// after any permanent error, so a migrated table is seen afresh.
pub struct PostgresSink {
    pool: PgPool,
    schema: String,
    dimensions: bool,
    retry: RetryConfig,
    target: String,
    tables: Mutex<HashMap<String, Arc<TableColumns>>>,
}

impl PostgresSink {
    /// Validates `cfg`, opens the pool (TLS as configured, `search_path` set on every
    /// connection) and creates the schema if it is missing.
    pub async fn connect(cfg: &PostgresConfig) -> Result<Self, PostgresError> {
        cfg.validate()?;
        let target = cfg.redacted_url();
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(cfg.connect_timeout)
            .connect_with(cfg.connect_options()?)
            .await
            .map_err(|source| PostgresError::Connect {
                target: target.clone(),
                source,
            })?;
        let sink = Self {
            pool,
            schema: cfg.schema.clone(),
            dimensions: cfg.dimensions,
            retry: cfg.retry.clone(),
            target,
            tables: Mutex::new(HashMap::new()),
        };
        sink.ensure_schema().await?;
        tracing::info!(url = %sink.target, schema = %sink.schema, tls = cfg.tls.mode.as_str(), "postgres sink connected");
        Ok(sink)
    }

    /// Runs the embedded migrations (`schemas/migrations`) in the sink's schema, recording them
    /// in that schema's `_sqlx_migrations`. Safe to call on every start: applied migrations are
    /// skipped, and concurrent callers wait on an advisory lock.
    pub async fn migrate(&self) -> Result<(), PostgresError> {
        let started = Instant::now();
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|source| PostgresError::Migrate {
                schema: self.schema.clone(),
                source,
            })?;
        self.forget_tables();
        tracing::info!(
            schema = %self.schema,
            migrations = MIGRATOR.iter().count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "postgres migrations applied"
        );
        Ok(())
    }

    /// Applies one frontier's changes in ONE transaction: for each [`TableChanges`] its deletes
    /// (by key) and then its upserts, each a single statement whatever the batch size; then the
    /// dimension rows; then the job's `ob_progress` row. All of it commits together or not at
    /// all. Applying the same frontier twice leaves the view tables as once (dimension rows get
    /// their `last_seen` bumped).
    pub async fn apply(
        &self,
        frontier: &Frontier,
        changes: &[TableChanges],
    ) -> Result<(), PostgresError> {
        let started = Instant::now();
        match self.apply_once(frontier, changes).await {
            Ok((upserted, deleted)) => {
                tracing::debug!(
                    job = %frontier.job,
                    epoch = frontier.epoch,
                    tables = changes.len(),
                    upserted,
                    deleted,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "postgres frontier committed"
                );
                Ok(())
            }
            Err(error) => {
                if !error.is_transient() {
                    self.forget_tables();
                }
                Err(error)
            }
        }
    }

    /// Like [`apply`](Self::apply), but waits and tries again after a transient error
    /// ([`PostgresError::is_transient`]: connection refused or reset, pool timeout, serialization
    /// failure, server shutdown, ...) for as long as it takes, with exponential backoff from
    /// `retry.initial_backoff` up to `retry.max_backoff`. The caller awaits meanwhile, which
    /// is what pauses ingestion (backpressure). `on_retry(attempt, &error)` is called before each
    /// wait, attempts counting from 1.
    ///
    /// Returns `Err` only for a permanent error (a missing table or column, a type mismatch, a
    /// certificate problem), after which the caller should stop the job.
    pub async fn apply_with_retry(
        &self,
        frontier: &Frontier,
        changes: &[TableChanges],
        mut on_retry: impl FnMut(u32, &PostgresError),
    ) -> Result<(), PostgresError> {
        let mut attempt: u32 = 0;
        let mut backoff = self.retry.initial_backoff;
        loop {
            match self.apply(frontier, changes).await {
                Ok(()) => {
                    if attempt > 0 {
                        tracing::info!(job = %frontier.job, epoch = frontier.epoch, attempts = attempt + 1, "postgres sink recovered");
                    }
                    return Ok(());
                }
                Err(error) if error.is_transient() => {
                    attempt = attempt.saturating_add(1);
                    on_retry(attempt, &error);
                    tracing::warn!(
                        job = %frontier.job,
                        epoch = frontier.epoch,
                        attempt,
                        backoff_ms = backoff.as_millis() as u64,
                        %error,
                        "postgres apply failed; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = self.retry.next(backoff);
                }
                Err(error) => {
                    tracing::error!(job = %frontier.job, epoch = frontier.epoch, %error, "postgres apply failed permanently");
                    return Err(error);
                }
            }
        }
    }

    /// The last frontier committed for `job` by this sink, if any. Called at start-up to know
    /// from where the sources must resume.
    pub async fn progress(&self, job: &str) -> Result<Option<Progress>, PostgresError> {
        let sql = format!(
            "SELECT epoch, CASE WHEN isfinite(watermark) THEN watermark END, watermark = 'infinity'::timestamptz, \
             positions::text, updated_at FROM {} WHERE job = $1 AND sink = $2",
            qualified(&self.schema, "ob_progress")
        );
        let row: Option<ProgressRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(job)
            .bind(SINK_NAME)
            .fetch_optional(&self.pool)
            .await
            .map_err(|source| PostgresError::Statement {
                action: "select",
                table: "ob_progress".to_owned(),
                source,
            })?;
        let Some((epoch, watermark, ended, positions, updated_at)) = row else {
            return Ok(None);
        };
        let bad = |reason: String| PostgresError::BadProgress {
            job: job.to_owned(),
            reason,
        };
        Ok(Some(Progress {
            frontier: Frontier {
                job: job.to_owned(),
                epoch: u64::try_from(epoch).map_err(|_| bad(format!("negative epoch {epoch}")))?,
                watermark_ms: if ended == Some(true) { Some(i64::MAX) } else { watermark.map(|w| w.timestamp_millis()) },
                positions: serde_json::from_str(&positions)
                    .map_err(|e| bad(format!("positions: {e}")))?,
            },
            updated_at,
        }))
    }

    /// The log template library as `log_pattern` holds it, for the miners to start from:
    /// `(tenant, fingerprint_id, pattern, sample_message, severity, first_seen ms, last_seen ms)`,
    /// ordered by tenant and first_seen.
    pub async fn log_library(&self) -> Result<Vec<LibraryRow>, PostgresError> {
        let sql = format!(
            "SELECT tenant, fingerprint_id, pattern, sample_message, severity,              (extract(epoch from first_seen) * 1000)::bigint, (extract(epoch from last_seen) * 1000)::bigint              FROM {} ORDER BY tenant, first_seen, fingerprint_id",
            qualified(&self.schema, "log_pattern")
        );
        sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&self.pool).await.map_err(|source| PostgresError::Statement {
            action: "select",
            table: "log_pattern".to_owned(),
            source,
        })
    }

    /// The connection pool (for health checks and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema the sink writes to.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Creates the schema unless it exists; checking first keeps a role without CREATE on the
    /// database working with a schema made for it.
    async fn ensure_schema(&self) -> Result<(), PostgresError> {
        let statement_error = |action| {
            move |source| PostgresError::Statement {
                action,
                table: self.schema.clone(),
                source,
            }
        };
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        )
        .bind(&self.schema)
        .fetch_one(&self.pool)
        .await
        .map_err(statement_error("look up schema"))?;
        if exists {
            return Ok(());
        }
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&self.schema));
        match sqlx::query(AssertSqlSafe(sql)).execute(&self.pool).await {
            Ok(_) => {
                tracing::info!(schema = %self.schema, "postgres schema created");
                Ok(())
            }
            // Created concurrently by another sink between the check and here.
            Err(e)
                if matches!(
                    e.as_database_error().and_then(|d| d.code()).as_deref(),
                    Some("42P06" | "23505")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(statement_error("create schema")(e)),
        }
    }

    async fn apply_once(
        &self,
        frontier: &Frontier,
        changes: &[TableChanges],
    ) -> Result<(u64, u64), PostgresError> {
        let tx_error = |action| {
            move |source| PostgresError::Statement {
                action,
                table: "transaction".to_owned(),
                source,
            }
        };
        let mut tx = self.pool.begin().await.map_err(tx_error("begin"))?;
        let (mut upserted, mut deleted) = (0_u64, 0_u64);
        let mut dims = dims::Dims::default();
        for change in changes {
            let columns = self.table_columns(&mut tx, &change.table).await?;
            if change.deletes.num_rows() > 0 {
                let sql = columns::delete_sql(
                    &self.schema,
                    &change.table,
                    &change.key_columns,
                    &change.deletes,
                    &columns,
                )?;
                deleted +=
                    columns::execute_batch(&mut tx, sql, &change.table, &change.deletes, "delete")
                        .await?;
            }
            if change.upserts.num_rows() > 0 {
                let sql = columns::upsert_sql(
                    &self.schema,
                    &change.table,
                    &change.key_columns,
                    &change.upserts,
                    &columns,
                )?;
                upserted +=
                    columns::execute_batch(&mut tx, sql, &change.table, &change.upserts, "upsert")
                        .await?;
                if self.dimensions {
                    dims.collect(&change.table, &change.upserts);
                }
            }
            tracing::trace!(
                table = %change.table,
                upserts = change.upserts.num_rows(),
                deletes = change.deletes.num_rows(),
                "postgres table changes applied"
            );
        }
        dims.write(&mut tx, &self.schema).await?;
        self.write_progress(&mut tx, frontier).await?;
        tx.commit().await.map_err(tx_error("commit"))?;
        Ok((upserted, deleted))
    }

    async fn write_progress(
        &self,
        conn: &mut PgConnection,
        frontier: &Frontier,
    ) -> Result<(), PostgresError> {
        let out_of_range = |column: &str, reason: String| PostgresError::OutOfRange {
            table: "ob_progress".to_owned(),
            column: column.to_owned(),
            reason,
        };
        let epoch = i64::try_from(frontier.epoch).map_err(|_| {
            out_of_range("epoch", format!("{} does not fit a bigint", frontier.epoch))
        })?;
        // The end of a bounded input (every window final) is stored as 'infinity'.
        let ended = frontier.watermark_ms == Some(i64::MAX);
        let watermark = frontier
            .watermark_ms
            .filter(|_| !ended)
            .map(|ms| {
                DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(|| {
                    out_of_range("watermark", format!("{ms} ms is not a representable time"))
                })
            })
            .transpose()?;
        let sql = format!(
            "INSERT INTO {} (job, sink, epoch, watermark, positions, updated_at) \
             VALUES ($1, $2, $3, CASE WHEN $6 THEN 'infinity'::timestamptz ELSE $4 END, $5::jsonb, now()) \
             ON CONFLICT (job, sink) DO UPDATE SET epoch = EXCLUDED.epoch, watermark = EXCLUDED.watermark, \
             positions = EXCLUDED.positions, updated_at = EXCLUDED.updated_at",
            qualified(&self.schema, "ob_progress")
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&frontier.job)
            .bind(SINK_NAME)
            .bind(epoch)
            .bind(watermark)
            .bind(frontier.positions.to_string())
            .bind(ended)
            .execute(&mut *conn)
            .await
            .map_err(|source| PostgresError::Statement {
                action: "upsert",
                table: "ob_progress".to_owned(),
                source,
            })?;
        Ok(())
    }

    async fn table_columns(
        &self,
        conn: &mut PgConnection,
        table: &str,
    ) -> Result<Arc<TableColumns>, PostgresError> {
        if let Some(found) = self
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(table)
        {
            return Ok(Arc::clone(found));
        }
        let loaded = TableColumns::load(conn, &self.schema, table)
            .await
            .map_err(|source| PostgresError::Statement {
                action: "read columns",
                table: table.to_owned(),
                source,
            })?
            .ok_or_else(|| PostgresError::TableNotFound {
                schema: self.schema.clone(),
                table: table.to_owned(),
            })?;
        let loaded = Arc::new(loaded);
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(table.to_owned(), Arc::clone(&loaded));
        Ok(loaded)
    }

    fn forget_tables(&self) {
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("target", &self.target)
            .field("schema", &self.schema)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

