//! Where `observebridge serve` keeps its jobs across restarts: the spec text as submitted and
//! whether the job should be running. In Postgres when the server has a database
//! (`--postgres-url`), else as one JSON file per job in the state directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredJob {
    pub id: String,
    /// The spec text as submitted (YAML or JSON).
    pub spec: String,
    /// Whether the job runs after a server restart (`false` once stopped through the API).
    pub running: bool,
    /// When it was submitted (ms since the Unix epoch).
    pub submitted_at_ms: i64,
}

/// Keeps jobs.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync {
    /// Every stored job, by id.
    async fn load(&self) -> Result<Vec<StoredJob>>;
    /// Inserts or replaces a job; durable when `Ok`.
    async fn put(&self, job: &StoredJob) -> Result<()>;
    /// Forgets a job (no error when it is not there).
    async fn remove(&self, id: &str) -> Result<()>;
    /// For people: where the jobs are kept.
    fn describe(&self) -> String;
}

/// One `<id>.json` per job under `<state_dir>/jobs/`, written to a temporary file and renamed,
/// so a crash leaves the old or the new version, never half of one.
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn open(state_dir: &Path) -> Result<Self> {
        let dir = state_dir.join("jobs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating the job store {}", dir.display()))?;
        Ok(Self { dir })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
}

#[async_trait::async_trait]
impl JobStore for FileStore {
    async fn load(&self) -> Result<Vec<StoredJob>> {
        let mut jobs = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await.with_context(|| format!("reading {}", self.dir.display()))?;
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = tokio::fs::read_to_string(&path).await.with_context(|| format!("reading {}", path.display()))?;
            let job: StoredJob = serde_json::from_str(&text).with_context(|| format!("{} is not a stored job", path.display()))?;
            jobs.push(job);
        }
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(jobs)
    }

    async fn put(&self, job: &StoredJob) -> Result<()> {
        let path = self.path(&job.id);
        let tmp = self.dir.join(format!(".{}.json.tmp", job.id));
        let text = serde_json::to_vec_pretty(job)?;
        let mut file = tokio::fs::File::create(&tmp).await.with_context(|| format!("writing {}", tmp.display()))?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &text).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, &path).await.with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        match tokio::fs::remove_file(self.path(id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing job {id}")),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("files under {}", self.dir.display())
    }
}

/// The table `<schema>.observebridge_jobs` in the server's Postgres database (schema and table
/// created when missing).
pub struct PgStore {
    pool: sqlx::PgPool,
    /// `"<schema>".observebridge_jobs`, quoted.
    table: String,
}

impl PgStore {
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            anyhow::bail!("postgres schema `{schema}`: use letters, digits and `_`");
        }
        let table = format!("\"{schema}\".observebridge_jobs");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect(url)
            .await
            .context("connecting to the job store's Postgres")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")))
            .execute(&pool)
            .await
            .with_context(|| format!("creating schema {schema}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                id text PRIMARY KEY,
                spec text NOT NULL,
                running boolean NOT NULL,
                submitted_at_ms bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now())"
        )))
        .execute(&pool)
        .await
        .with_context(|| format!("creating table {table}"))?;
        Ok(Self { pool, table })
    }
}

#[async_trait::async_trait]
impl JobStore for PgStore {
    async fn load(&self) -> Result<Vec<StoredJob>> {
        let rows: Vec<(String, String, bool, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT id, spec, running, submitted_at_ms FROM {} ORDER BY id", self.table)))
            .fetch_all(&self.pool)
            .await
            .context("reading observebridge_jobs")?;
        Ok(rows.into_iter().map(|(id, spec, running, submitted_at_ms)| StoredJob { id, spec, running, submitted_at_ms }).collect())
    }

    async fn put(&self, job: &StoredJob) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (id, spec, running, submitted_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET spec = EXCLUDED.spec, running = EXCLUDED.running,
               submitted_at_ms = EXCLUDED.submitted_at_ms, updated_at = now()",
            self.table
        )))
        .bind(&job.id)
        .bind(&job.spec)
        .bind(job.running)
        .bind(job.submitted_at_ms)
        .execute(&self.pool)
        .await
        .with_context(|| format!("storing job {}", job.id))?;
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {} WHERE id = $1", self.table))).bind(id).execute(&self.pool).await.with_context(|| format!("removing job {id}"))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("table {} in Postgres", self.table)
    }
}
