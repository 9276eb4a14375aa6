//! Replays started through the API (`POST /v1/jobs/{id}/replays`): each runs in its own thread
//! over the job's stored spec, its progress and summary kept for `GET .../replays/{replay}`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::replay::{self, ReplayRequest, ReplaySummary};

/// The body of `POST /v1/jobs/{id}/replays`. Times are RFC 3339 strings or ms since the epoch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    pub from: serde_json::Value,
    pub to: serde_json::Value,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub layout: observebridge_connectors::archive::Layout,
    #[serde(default)]
    pub partition_format: Option<String>,
    #[serde(default)]
    pub on_error: observebridge_connectors::archive::OnError,
}

impl ReplayBody {
    /// The request, or what is wrong with the body.
    pub fn request(self) -> Result<ReplayRequest, String> {
        let time = |field: &str, value: &serde_json::Value| match value {
            serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| format!("{field}: {n} is not whole milliseconds")),
            serde_json::Value::String(s) => replay::parse_time(s).map_err(|e| format!("{field}: {e}")),
            other => Err(format!("{field}: expected an RFC 3339 string or milliseconds, got {other}")),
        };
        Ok(ReplayRequest {
            from_ms: time("from", &self.from)?,
            to_ms: time("to", &self.to)?,
            source: self.source,
            layout: self.layout,
            partition_format: self.partition_format,
            on_error: self.on_error,
        })
    }
}

/// A replay as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayStatus {
    pub id: String,
    pub job: String,
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    pub from: String,
    pub to: String,
    pub objects_done: u64,
    pub objects_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub records: u64,
    pub skipped: u64,
    /// When done.
    pub summary: Option<ReplaySummary>,
    /// When failed: why.
    pub error: Option<String>,
}

/// The server's replays.
#[derive(Default)]
pub struct Replays {
    next: AtomicU64,
    runs: Mutex<BTreeMap<String, Arc<Mutex<ReplayStatus>>>>,
}

impl Replays {
    /// Checks the request against the job's spec (refused before anything starts), then starts
    /// the replay in its own thread.
    pub fn start(&self, job: &str, spec_text: &str, request: ReplayRequest) -> Result<ReplayStatus, String> {
        let spec = crate::job::JobSpec::parse(spec_text, job).map_err(|e| e.to_string())?;
        replay::plan(&spec, &request).map_err(|e| format!("{e:#}"))?;
        let id = format!("r{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let status = Arc::new(Mutex::new(ReplayStatus {
            id: id.clone(),
            job: job.to_owned(),
            state: "running",
            from: replay::format_ms(request.from_ms),
            to: replay::format_ms(request.to_ms),
            objects_done: 0,
            objects_total: 0,
            bytes_done: 0,
            bytes_total: 0,
            records: 0,
            skipped: 0,
            summary: None,
            error: None,
        }));
        self.runs.lock().unwrap_or_else(PoisonError::into_inner).insert(key(job, &id), Arc::clone(&status));
        // Runs to the end: a replay is not stopped by the API (a stopped replay rewrites nothing).
        let stop = Arc::new(AtomicBool::new(false));
        let shown = status.lock().unwrap_or_else(PoisonError::into_inner).clone();
        std::thread::Builder::new()
            .name(format!("replay-{job}-{id}"))
            .spawn(move || {
                let progress_status = Arc::clone(&status);
                let result = replay::replay(spec, &request, stop, move |p| {
                    let mut s = progress_status.lock().unwrap_or_else(PoisonError::into_inner);
                    (s.objects_done, s.objects_total, s.bytes_done, s.bytes_total, s.records, s.skipped) = (p.objects_done, p.objects_total, p.bytes_done, p.bytes_total, p.records, p.skipped);
                });
                let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
                match result {
                    Ok(summary) => {
                        tracing::info!(job = s.job.as_str(), replay = s.id.as_str(), records = summary.records, "replay done");
                        s.state = "done";
                        s.summary = Some(summary);
                    }
                    Err(e) => {
                        tracing::error!(job = s.job.as_str(), replay = s.id.as_str(), error = format!("{e:#}"), "replay failed");
                        s.state = "failed";
                        s.error = Some(format!("{e:#}"));
                    }
                }
            })
            .map_err(|e| format!("starting the replay: {e}"))?;
        Ok(shown)
    }

    pub fn status(&self, job: &str, id: &str) -> Option<ReplayStatus> {
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        runs.get(&key(job, id)).map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

fn key(job: &str, id: &str) -> String {
    format!("{job}/{id}")
}
