//! The CLI's side of the jobs API: `observebridge job submit|list|status|stop|restart`.
//!
//! Exit codes scripts can rely on (see [`ClientError::exit_code`]): 0 done, 1 the server could
//! not be reached or failed, 2 the spec is invalid, 3 no such job, 4 the name is taken, 5 the
//! token was refused; `job status` exits 6 when the job has failed.

use std::time::Duration;

use serde::Deserialize;

use crate::server::{JobState, JobStatus};

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{message}{}", problems.iter().map(|(p, r)| format!("\n  - {p}: {r}")).collect::<String>())]
    Refused { status: u16, message: String, problems: Vec<(String, String)> },
    #[error("unexpected answer from the server ({status}): {message}")]
    Unexpected { status: u16, message: String },
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Refused { status: 400, .. } => 2,
            ClientError::Refused { status: 404, .. } => 3,
            ClientError::Refused { status: 409, .. } => 4,
            ClientError::Refused { status: 401, .. } => 5,
            _ => 1,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    problems: Vec<ProblemBody>,
}

#[derive(Deserialize)]
struct ProblemBody {
    path: String,
    reason: String,
}

#[derive(Deserialize)]
struct JobList {
    jobs: Vec<JobStatus>,
}

/// A client of one server.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// `server` is the API's base URL (`http://127.0.0.1:7070`).
    pub fn new(server: &str, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| ClientError::Unreachable { url: server.to_string(), message: e.to_string() })?;
        Ok(Self { base: server.trim_end_matches('/').to_string(), token, http })
    }

    async fn call<T: for<'de> Deserialize<'de>>(&self, method: reqwest::Method, path: &str, body: Option<String>) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/yaml").body(body);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable { url: url.clone(), message: error_chain(&e) })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| ClientError::Unreachable { url: url.clone(), message: error_chain(&e) })?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| ClientError::Unexpected { status, message: format!("{e}: {text}") });
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) if (400..500).contains(&status) => {
                Err(ClientError::Refused { status, message: body.error, problems: body.problems.into_iter().map(|p| (p.path, p.reason)).collect() })
            }
            Ok(body) => Err(ClientError::Unexpected { status, message: body.error }),
            Err(_) => Err(ClientError::Unexpected { status, message: text }),
        }
    }

    pub async fn submit(&self, spec: String) -> Result<JobStatus, ClientError> {
        self.call(reqwest::Method::POST, "/v1/jobs", Some(spec)).await
    }

    pub async fn list(&self) -> Result<Vec<JobStatus>, ClientError> {
        self.call::<JobList>(reqwest::Method::GET, "/v1/jobs", None).await.map(|l| l.jobs)
    }

    pub async fn status(&self, id: &str) -> Result<JobStatus, ClientError> {
        self.call(reqwest::Method::GET, &format!("/v1/jobs/{id}"), None).await
    }

    pub async fn stop(&self, id: &str, purge: bool) -> Result<JobStatus, ClientError> {
        self.call(reqwest::Method::DELETE, &format!("/v1/jobs/{id}?purge={purge}"), None).await
    }

    pub async fn restart(&self, id: &str) -> Result<JobStatus, ClientError> {
        self.call(reqwest::Method::POST, &format!("/v1/jobs/{id}/restart"), None).await
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// `job list`: one line per job.
pub fn format_list(jobs: &[JobStatus]) -> String {
    let mut rows = vec![["ID", "STATE", "RECORDS", "REC/S", "LAG", "DEAD LETTERS", "WATERMARK", "REASON"].map(String::from).to_vec()];
    for job in jobs {
        let lag: Option<u64> = job.sources.iter().filter_map(|s| s.lag).reduce(|a, b| a + b);
        rows.push(vec![
            job.id.clone(),
            job.state.as_str().to_string(),
            job.records_in.to_string(),
            format!("{:.0}", job.records_per_second),
            lag.map_or("-".into(), |l| l.to_string()),
            job.dead_letters.to_string(),
            job.watermark.clone().unwrap_or_else(|| "-".into()),
            job.reason.clone().unwrap_or_default(),
        ]);
    }
    table(&rows)
}

/// `job status`: the job, its sources' partitions and its sinks' frontiers.
pub fn format_status(job: &JobStatus) -> String {
    let mut out = String::new();
    let field = |out: &mut String, name: &str, value: String| out.push_str(&format!("{name:<18}{value}\n"));
    field(&mut out, "job", job.id.clone());
    field(&mut out, "state", job.state.as_str().to_string());
    if let Some(reason) = &job.reason {
        field(&mut out, "reason", reason.clone());
    }
    field(&mut out, "submitted", job.submitted_at.clone());
    field(&mut out, "started", job.started_at.clone().unwrap_or_else(|| "-".into()));
    if let Some(stopped) = &job.stopped_at {
        field(&mut out, "stopped", stopped.clone());
    }
    field(&mut out, "workers", job.workers.to_string());
    field(&mut out, "watermark", job.watermark.clone().unwrap_or_else(|| "-".into()));
    field(&mut out, "records", format!("{} read, {} decoded, {:.0}/s", job.records_in, job.records_decoded, job.records_per_second));
    field(&mut out, "dead letters", format!("{} ({} late)", job.dead_letters, job.late_records));
    field(&mut out, "sink retries", job.sink_retries.to_string());
    for warning in &job.warnings {
        field(&mut out, "warning", warning.clone());
    }
    if !job.sources.is_empty() {
        let mut rows = vec![["SOURCE", "PARTITION", "POSITION", "LAG"].map(String::from).to_vec()];
        for source in &job.sources {
            for p in &source.partitions {
                rows.push(vec![source.name.clone(), p.partition.clone(), p.position.map_or("-".into(), |v| v.to_string()), p.lag.map_or("-".into(), |v| v.to_string())]);
            }
            if source.partitions.is_empty() {
                rows.push(vec![source.name.clone(), "-".into(), "-".into(), "-".into()]);
            }
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    if !job.sinks.is_empty() {
        let mut rows = vec![["SINK", "FRONTIER", "WATERMARK", "COMMITTED AT"].map(String::from).to_vec()];
        for (sink, p) in &job.sinks {
            let wm = p.watermark_ms.and_then(chrono::DateTime::from_timestamp_millis).map_or("-".into(), |t| t.to_rfc3339());
            let at = chrono::DateTime::from_timestamp_millis(p.committed_at_ms).map_or("-".into(), |t| t.to_rfc3339());
            rows.push(vec![sink.clone(), p.epoch.to_string(), wm, at]);
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    out
}

/// The exit code of `job status` for a job in `state`.
pub fn status_exit_code(state: JobState) -> i32 {
    if state == JobState::Failed { 6 } else { 0 }
}

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|v| v.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().enumerate().map(|(c, v)| format!("{v:<w$}", w = widths[c])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
