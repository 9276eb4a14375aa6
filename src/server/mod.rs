//! `observebridge serve`: a long-running server hosting many jobs.
//!
//! Every job runs in its own threads with its own dataflow, sources, sinks and consumer group
//! ([`crate::runtime::run`]); a job that fails (a broker it cannot reach, a sink that refuses its
//! rows, a panic) is marked `failed` with the reason and the others go on. Specs are kept in a
//! [`store::JobStore`] (Postgres when configured, else the state directory), so a restarted
//! server restarts the jobs that were running, from their committed offsets.
//!
//! - [`api`]: the HTTP API (`/v1/jobs`, `/healthz`, `/readyz`), documented in
//!   `schemas/openapi/observebridge.yaml`.
//! - [`store`]: where specs are kept.

pub mod api;
pub mod ops;
pub mod replays;
pub mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::job::{JobSpec, SpecError, SpecProblem};
use crate::runtime::{self, PartitionStatus, SinkProgress, Stats};
use store::{JobStore, StoredJob};

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where the HTTP API listens (port 0: any free port; the bound address is printed).
    pub listen: SocketAddr,
    /// Where job specs are kept when there is no Postgres store.
    pub state_dir: PathBuf,
    /// Keep job specs in this Postgres database instead of the state directory...
    pub postgres_url: Option<String>,
    /// ... in this schema.
    pub postgres_schema: String,
    /// Bearer tokens accepted by the API; empty = no authentication.
    pub tokens: Vec<String>,
}

/// A job's life.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Connecting its sources and sinks.
    Starting,
    Running,
    /// Asked to stop; finishing the current frontier.
    Stopping,
    /// Stopped through the API, or its bounded sources ended.
    Stopped,
    /// Stopped by an error: see `reason`.
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Starting => "starting",
            JobState::Running => "running",
            JobState::Stopping => "stopping",
            JobState::Stopped => "stopped",
            JobState::Failed => "failed",
        }
    }
}

/// What `GET /v1/jobs/{id}` answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: String,
    pub state: JobState,
    /// Why the job failed or stopped by itself.
    pub reason: Option<String>,
    pub submitted_at: String,
    pub started_at: Option<String>,
    pub stopped_at: Option<String>,
    pub workers: usize,
    /// The event-time watermark (RFC 3339) and in ms since the Unix epoch.
    pub watermark: Option<String>,
    pub watermark_ms: Option<i64>,
    pub records_in: u64,
    pub records_decoded: u64,
    /// Messages read per second over the last few seconds.
    pub records_per_second: f64,
    pub dead_letters: u64,
    pub late_records: u64,
    pub sink_retries: u64,
    /// Per source: total lag (when known) and its partitions.
    pub sources: Vec<SourceStatus>,
    /// Per sink (`postgres`, `parquet`, `kafka`): the last frontier it made durable.
    pub sinks: BTreeMap<String, SinkProgress>,
    pub warnings: Vec<String>,
}

/// A source of a job, as status shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceStatus {
    pub name: String,
    /// Sum of the partitions' lags; `None` when no partition knows its lag (files, generator).
    pub lag: Option<u64>,
    pub partitions: Vec<PartitionStatus>,
}

/// Why a request about jobs was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("invalid job spec")]
    Invalid(Vec<SpecProblem>),
    #[error("a job named `{0}` exists; stop and purge it first (DELETE /v1/jobs/{0}?purge=true)")]
    Exists(String),
    #[error("no job `{0}`")]
    NotFound(String),
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

/// One run of a job (a restart makes a new one).
struct Run {
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set by the run's thread when it ends: `Ok` = stopped or sources ended, `Err` = reason.
    outcome: Arc<Mutex<Option<Result<String, String>>>>,
    started_at: chrono::DateTime<chrono::Utc>,
    stopped_at: Arc<Mutex<Option<chrono::DateTime<chrono::Utc>>>>,
    /// (when, records_in) of the last rate sample, and the rate then.
    rate: Mutex<(Instant, u64, f64)>,
}

impl Run {
    /// Where the run is: its outcome once it ended, else whether it was asked to stop or is
    /// connected yet.
    fn state(&self) -> JobState {
        match &*self.outcome.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Ok(_)) => JobState::Stopped,
            Some(Err(_)) => JobState::Failed,
            None if self.stop.load(Ordering::Relaxed) => JobState::Stopping,
            None if self.stats.running.load(Ordering::Relaxed) => JobState::Running,
            None => JobState::Starting,
        }
    }
}

struct JobEntry {
    stored: StoredJob,
    /// `None` for a stored spec that no longer validates (it is listed as failed, not run).
    spec: Option<JobSpec>,
    run: Option<Run>,
}

/// The jobs of a server.
pub struct JobManager {
    jobs: Mutex<BTreeMap<String, JobEntry>>,
    store: Box<dyn JobStore>,
}

impl JobManager {
    pub fn new(store: Box<dyn JobStore>) -> Self {
        Self { jobs: Mutex::new(BTreeMap::new()), store }
    }

    /// Loads the stored jobs and starts those that were running. A stored spec that no longer
    /// validates (after an upgrade) is listed as failed with the problems.
    pub async fn restore(&self) -> Result<usize> {
        let stored = self.store.load().await?;
        let mut started = 0;
        for job in stored {
            let spec = match JobSpec::parse(&job.spec, &format!("stored job {}", job.id)) {
                Ok(spec) => spec,
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "stored job spec is invalid; not started");
                    let run = failed_run(format!("{e}"));
                    self.lock().insert(job.id.clone(), JobEntry { stored: job, spec: None, run: Some(run) });
                    continue;
                }
            };
            let running = job.running;
            let id = job.id.clone();
            self.lock().insert(id.clone(), JobEntry { stored: job, spec: Some(spec), run: None });
            if running {
                self.start(&id)?;
                started += 1;
            }
        }
        Ok(started)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, JobEntry>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Validates and starts a job. The spec is stored before it starts.
    pub async fn submit(&self, text: &str) -> Result<JobStatus, JobError> {
        let spec = match JobSpec::parse(text, "request body") {
            Ok(spec) => spec,
            Err(SpecError::Invalid { problems, .. }) => return Err(JobError::Invalid(problems)),
            Err(e) => return Err(JobError::Internal(e.into())),
        };
        let id = spec.name.clone();
        let stored = StoredJob { id: id.clone(), spec: text.to_string(), running: true, submitted_at_ms: chrono::Utc::now().timestamp_millis() };
        {
            let mut jobs = self.lock();
            if jobs.contains_key(&id) {
                return Err(JobError::Exists(id));
            }
            // Reserve the name while the spec is stored.
            jobs.insert(id.clone(), JobEntry { stored: stored.clone(), spec: Some(spec), run: None });
        }
        if let Err(e) = self.store.put(&stored).await {
            self.lock().remove(&id);
            return Err(JobError::Internal(e.context("storing the job")));
        }
        self.start(&id).map_err(JobError::Internal)?;
        tracing::info!(job = %id, "job submitted");
        self.status(&id)
    }

    /// Starts a run of a stored job (not running).
    fn start(&self, id: &str) -> Result<()> {
        let mut jobs = self.lock();
        let entry = jobs.get_mut(id).with_context(|| format!("no job {id}"))?;
        let spec = entry.spec.clone().with_context(|| format!("job {id} has no valid spec"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let outcome: Arc<Mutex<Option<Result<String, String>>>> = Arc::default();
        let stopped_at: Arc<Mutex<Option<chrono::DateTime<chrono::Utc>>>> = Arc::default();
        let thread = {
            let (stop, stats, outcome, stopped_at) = (Arc::clone(&stop), Arc::clone(&stats), Arc::clone(&outcome), Arc::clone(&stopped_at));
            let id = id.to_string();
            std::thread::Builder::new().name(format!("job-{id}")).spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime::run(spec, Arc::clone(&stop), stats)));
                let result = match result {
                    Ok(Ok(summary)) => {
                        let why = if stop.load(Ordering::Relaxed) { "stopped".to_string() } else { format!("every source ended after {} records", summary.records_in) };
                        tracing::info!(job = %id, why, "job ended");
                        Ok(why)
                    }
                    Ok(Err(e)) => {
                        tracing::error!(job = %id, error = format!("{e:#}"), "job failed");
                        Err(format!("{e:#}"))
                    }
                    Err(panic) => {
                        let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                        tracing::error!(job = %id, message, "job panicked");
                        Err(format!("panicked: {message}"))
                    }
                };
                *stopped_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(chrono::Utc::now());
                *outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
            })?
        };
        entry.run = Some(Run {
            stop,
            stats,
            thread: Some(thread),
            outcome,
            started_at: chrono::Utc::now(),
            stopped_at,
            rate: Mutex::new((Instant::now(), 0, 0.0)),
        });
        Ok(())
    }

    /// Stops a job once its current frontier is durable and waits up to `wait` for it. With
    /// `purge`, the job is forgotten afterwards (its name can be used again).
    pub async fn stop(&self, id: &str, wait: Duration, purge: bool) -> Result<JobStatus, JobError> {
        let thread = {
            let mut jobs = self.lock();
            let entry = jobs.get_mut(id).ok_or_else(|| JobError::NotFound(id.to_string()))?;
            entry.stored.running = false;
            entry.run.as_mut().and_then(|run| {
                run.stop.store(true, Ordering::Relaxed);
                run.thread.take()
            })
        };
        let stored = self.lock().get(id).map(|e| e.stored.clone());
        if let Some(stored) = stored {
            self.store.put(&stored).await.map_err(JobError::Internal)?;
        }
        if let Some(thread) = thread {
            let joined = tokio::task::spawn_blocking(move || {
                let deadline = Instant::now() + wait;
                while !thread.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if thread.is_finished() {
                    let _ = thread.join();
                    None
                } else {
                    Some(thread)
                }
            })
            .await
            .map_err(|e| JobError::Internal(e.into()))?;
            if let Some(thread) = joined {
                // Still finishing: keep the handle so a later stop can wait again.
                if let Some(run) = self.lock().get_mut(id).and_then(|e| e.run.as_mut()) {
                    run.thread = Some(thread);
                }
            }
        }
        let status = self.status(id)?;
        if purge && status.state != JobState::Stopping {
            self.store.remove(id).await.map_err(JobError::Internal)?;
            self.lock().remove(id);
            tracing::info!(job = %id, "job purged");
        }
        Ok(status)
    }

    /// Stops (waiting up to `wait`) and starts a job again.
    pub async fn restart(&self, id: &str, wait: Duration) -> Result<JobStatus, JobError> {
        let status = self.stop(id, wait, false).await?;
        if status.state == JobState::Stopping {
            return Err(JobError::Internal(anyhow::anyhow!("job {id} did not stop within {}s; try again", wait.as_secs())));
        }
        let stored = {
            let mut jobs = self.lock();
            let entry = jobs.get_mut(id).ok_or_else(|| JobError::NotFound(id.to_string()))?;
            // The stored text is the truth (a job restored from a spec that no longer parses
            // runs nothing until it is fixed and resubmitted).
            entry.spec = match JobSpec::parse(&entry.stored.spec, &format!("stored job {id}")) {
                Ok(spec) => Some(spec),
                Err(SpecError::Invalid { problems, .. }) => return Err(JobError::Invalid(problems)),
                Err(e) => return Err(JobError::Internal(e.into())),
            };
            entry.stored.running = true;
            entry.stored.clone()
        };
        self.store.put(&stored).await.map_err(JobError::Internal)?;
        self.start(id).map_err(JobError::Internal)?;
        tracing::info!(job = %id, "job restarted");
        self.status(id)
    }

    /// Stops every job (each after its current frontier is durable) without changing what is
    /// stored: a restarted server starts the same jobs again.
    pub fn shutdown(&self, wait: Duration) {
        let threads: Vec<(String, std::thread::JoinHandle<()>)> = {
            let mut jobs = self.lock();
            jobs.iter_mut()
                .filter_map(|(id, e)| {
                    let run = e.run.as_mut()?;
                    run.stop.store(true, Ordering::Relaxed);
                    run.thread.take().map(|t| (id.clone(), t))
                })
                .collect()
        };
        let deadline = Instant::now() + wait;
        for (id, thread) in threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!(job = %id, "job did not stop in time; its last frontier is replayed at the next start");
            }
        }
    }

    /// Every job's status, by id.
    pub fn list(&self) -> Vec<JobStatus> {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.iter().filter_map(|id| self.status(id).ok()).collect()
    }

    /// Whether every job that should run is running with its sources caught up (lag at most
    /// `max_lag` records per source); the reasons when not.
    pub fn readiness(&self, max_lag: u64) -> Vec<String> {
        let mut problems = Vec::new();
        for status in self.list() {
            match status.state {
                JobState::Running => {
                    for source in &status.sources {
                        if let Some(lag) = source.lag.filter(|l| *l > max_lag) {
                            problems.push(format!("job {}: source {} is {lag} records behind", status.id, source.name));
                        }
                    }
                }
                JobState::Stopped => {}
                state => problems.push(format!("job {} is {}", status.id, state.as_str())),
            }
        }
        problems
    }

    /// A job's status.
    pub fn status(&self, id: &str) -> Result<JobStatus, JobError> {
        let jobs = self.lock();
        let entry = jobs.get(id).ok_or_else(|| JobError::NotFound(id.to_string()))?;
        let submitted_at = chrono::DateTime::from_timestamp_millis(entry.stored.submitted_at_ms).unwrap_or_default().to_rfc3339();
        let mut status = JobStatus {
            id: id.to_string(),
            state: JobState::Stopped,
            reason: None,
            submitted_at,
            started_at: None,
            stopped_at: None,
            workers: entry.spec.as_ref().map_or(0, |s| s.workers),
            watermark: None,
            watermark_ms: None,
            records_in: 0,
            records_decoded: 0,
            records_per_second: 0.0,
            dead_letters: 0,
            late_records: 0,
            sink_retries: 0,
            sources: Vec::new(),
            sinks: BTreeMap::new(),
            warnings: Vec::new(),
        };
        let Some(run) = &entry.run else { return Ok(status) };
        let outcome = run.outcome.lock().unwrap_or_else(|p| p.into_inner()).clone();
        status.state = run.state();
        status.reason = match outcome {
            Some(Ok(why)) => Some(why),
            Some(Err(why)) => Some(why),
            None => None,
        };
        status.started_at = Some(run.started_at.to_rfc3339());
        status.stopped_at = run.stopped_at.lock().unwrap_or_else(|p| p.into_inner()).map(|t| t.to_rfc3339());
        let stats = &run.stats;
        let wm = stats.watermark.load(Ordering::Relaxed);
        if wm != i64::MIN && wm != 0 {
            status.watermark_ms = Some(wm);
            status.watermark = chrono::DateTime::from_timestamp_millis(wm).map(|t| t.to_rfc3339());
        }
        status.records_in = stats.records_in.load(Ordering::Relaxed);
        status.records_decoded = stats.decoded.load(Ordering::Relaxed);
        status.dead_letters = stats.dead_letters.load(Ordering::Relaxed);
        status.late_records = stats.late.load(Ordering::Relaxed);
        status.sink_retries = stats.sink_retries.load(Ordering::Relaxed);
        status.records_per_second = {
            let mut rate = run.rate.lock().unwrap_or_else(|p| p.into_inner());
            let elapsed = rate.0.elapsed().as_secs_f64();
            if elapsed >= 1.0 {
                rate.2 = status.records_in.saturating_sub(rate.1) as f64 / elapsed;
                *rate = (Instant::now(), status.records_in, rate.2);
            }
            rate.2
        };
        let partitions = stats.partitions.lock().map(|p| p.clone()).unwrap_or_default();
        for source in entry.spec.iter().flat_map(|s| &s.sources) {
            let mine: Vec<PartitionStatus> = partitions.iter().filter(|p| p.source == source.name).cloned().collect();
            let lags: Vec<u64> = mine.iter().filter_map(|p| p.lag).collect();
            let lag = if lags.is_empty() { None } else { Some(lags.iter().sum()) };
            status.sources.push(SourceStatus { name: source.name.clone(), lag, partitions: mine });
        }
        status.sinks = stats.sinks.lock().map(|s| s.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()).unwrap_or_default();
        status.warnings = stats.warnings.lock().map(|w| w.clone()).unwrap_or_default();
        Ok(status)
    }

    /// The spec text of a job as submitted.
    pub fn spec_text(&self, id: &str) -> Result<String, JobError> {
        self.lock().get(id).map(|e| e.stored.spec.clone()).ok_or_else(|| JobError::NotFound(id.to_string()))
    }

    /// Every job's current run, for `/metrics`.
    pub fn metrics(&self) -> Vec<crate::metrics::JobMetrics> {
        self.lock()
            .iter()
            .filter_map(|(id, e)| {
                let run = e.run.as_ref()?;
                Some(crate::metrics::JobMetrics { job: id.clone(), state: run.state().as_str(), stats: Arc::clone(&run.stats) })
            })
            .collect()
    }

    pub fn store_description(&self) -> String {
        self.store.describe()
    }
}

fn failed_run(reason: String) -> Run {
    Run {
        stop: Arc::new(AtomicBool::new(true)),
        stats: Arc::new(Stats::default()),
        thread: None,
        outcome: Arc::new(Mutex::new(Some(Err(reason)))),
        started_at: chrono::Utc::now(),
        stopped_at: Arc::new(Mutex::new(Some(chrono::Utc::now()))),
        rate: Mutex::new((Instant::now(), 0, 0.0)),
    }
}

/// Runs the server until SIGINT/SIGTERM: restores stored jobs, serves the API, and on the way
/// out stops every job after its current frontier is durable (they start again with the server).
pub fn serve(config: ServerConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the server runtime")?;
    rt.block_on(async move {
        let store: Box<dyn JobStore> = match &config.postgres_url {
            Some(url) => Box::new(store::PgStore::connect(url, &config.postgres_schema).await?),
            None => Box::new(store::FileStore::open(&config.state_dir)?),
        };
        let manager = Arc::new(JobManager::new(store));
        let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding the API to {}", config.listen))?;
        let addr = listener.local_addr()?;
        if config.tokens.is_empty() {
            tracing::warn!("the API has no tokens (--token / OBSERVEBRIDGE_API_TOKENS): anyone who reaches {addr} can submit jobs");
        }
        let restored = manager.restore().await?;
        // The first line on stdout is the address: scripts and tests read it (port 0).
        println!("observebridge serve: API on http://{addr} (jobs kept in {}; {restored} job(s) restored)", manager.store_description());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let app = api::router(Arc::clone(&manager), config.tokens.clone());
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            tracing::info!("shutting down: stopping jobs after their current frontier");
        };
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("serving the API")?;
        let m = Arc::clone(&manager);
        tokio::task::spawn_blocking(move || m.shutdown(Duration::from_secs(60))).await?;
        Ok(())
    })
}
