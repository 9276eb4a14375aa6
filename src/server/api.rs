//! The HTTP API of `observebridge serve` (axum). The contract is
//! `schemas/openapi/observebridge.yaml`; `tests/server_api.rs` checks that every route here is
//! in it and the other way round.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/jobs` | submit a spec (YAML or JSON body): 201 + status; 400 with every problem; 409 on a taken name |
//! | `GET /v1/jobs` | every job's status |
//! | `GET /v1/jobs/{id}` | one job's status (404 when unknown) |
//! | `GET /v1/jobs/{id}/spec` | the spec as submitted |
//! | `DELETE /v1/jobs/{id}` | stop after the current frontier is durable (`?purge=true` also forgets it) |
//! | `POST /v1/jobs/{id}/restart` | stop, then start again from the committed offsets |
//! | `POST /v1/jobs/{id}/replays` | replay a window from object storage through the job's dataflows: 202 + status; 400 when refused |
//! | `GET /v1/jobs/{id}/replays/{replay}` | a replay's progress, then its summary or error |
//! | `GET /healthz`, `GET /readyz` | alive; every job running with its sources caught up (no token needed) |
//! | `GET /metrics` | every job's metrics in the Prometheus text format ([`crate::metrics`]; no token needed) |
//!
//! `/v1/*` needs `Authorization: Bearer <token>` when the server has tokens (401 otherwise).
//! Errors are JSON: `{"error": "<message>", "problems": [{"path", "reason"}]?}`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::replays::{ReplayBody, Replays};
use super::{JobError, JobManager};

/// Lag (records per source) under which a running job counts as caught up for `/readyz`.
const READY_MAX_LAG: u64 = 10_000;

#[derive(Clone)]
struct AppState {
    jobs: Arc<JobManager>,
    replays: Arc<Replays>,
    tokens: Arc<Vec<String>>,
}

/// Every (method, path) the router serves; `tests/server_api.rs` holds it against the OpenAPI file.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{id}"),
    ("DELETE", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs/{id}/spec"),
    ("POST", "/v1/jobs/{id}/restart"),
    ("POST", "/v1/jobs/{id}/replays"),
    ("GET", "/v1/jobs/{id}/replays/{replay}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// The API's routes over `jobs`; `tokens` empty = no authentication.
pub fn router(jobs: Arc<JobManager>, tokens: Vec<String>) -> Router {
    let state = AppState { jobs, replays: Arc::default(), tokens: Arc::new(tokens) };
    let v1 = Router::new()
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(status).delete(stop))
        .route("/v1/jobs/{id}/spec", get(spec))
        .route("/v1/jobs/{id}/restart", post(restart))
        .route("/v1/jobs/{id}/replays", post(start_replay))
        .route("/v1/jobs/{id}/replays/{replay}", get(replay_status))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(not_found)
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

impl IntoResponse for JobError {
    fn into_response(self) -> Response {
        match self {
            JobError::Invalid(problems) => {
                let body = serde_json::json!({
                    "error": format!("invalid job spec: {} problem(s)", problems.len()),
                    "problems": problems.iter().map(|p| serde_json::json!({"path": p.path, "reason": p.reason})).collect::<Vec<_>>(),
                });
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
            e @ JobError::Exists(_) => error(StatusCode::CONFLICT, e.to_string()),
            e @ JobError::NotFound(_) => error(StatusCode::NOT_FOUND, e.to_string()),
            JobError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "api request failed");
                error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
            }
        }
    }
}

async fn authenticate(State(state): State<AppState>, headers: HeaderMap, request: Request, next: Next) -> Response {
    if state.tokens.is_empty() {
        return next.run(request).await;
    }
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    match presented {
        Some(token) if state.tokens.iter().any(|t| constant_time_eq(t.as_bytes(), token.as_bytes())) => next.run(request).await,
        Some(_) => unauthorized("the bearer token is not one of this server's tokens"),
        None => unauthorized("missing `Authorization: Bearer <token>`"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn submit(State(state): State<AppState>, body: String) -> Response {
    if body.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "empty body: send a job spec (YAML or JSON)");
    }
    match state.jobs.submit(&body).await {
        Ok(status) => (StatusCode::CREATED, Json(status)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({ "jobs": state.jobs.list() })).into_response()
}

async fn status(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.jobs.status(&id) {
        Ok(status) => Json(status).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn spec(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.jobs.spec_text(&id) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/yaml")], text).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct StopParams {
    /// Forget the job once stopped.
    #[serde(default)]
    purge: bool,
    /// How long to wait for the current frontier, in seconds (default 60).
    wait: Option<u64>,
}

async fn stop(State(state): State<AppState>, Path(id): Path<String>, Query(params): Query<StopParams>) -> Response {
    let wait = Duration::from_secs(params.wait.unwrap_or(60));
    match state.jobs.stop(&id, wait, params.purge).await {
        Ok(status) if status.state == super::JobState::Stopping => (StatusCode::ACCEPTED, Json(status)).into_response(),
        Ok(status) => Json(status).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn restart(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.jobs.restart(&id, Duration::from_secs(60)).await {
        Ok(status) => Json(status).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn start_replay(State(state): State<AppState>, Path(id): Path<String>, body: String) -> Response {
    let spec = match state.jobs.spec_text(&id) {
        Ok(spec) => spec,
        Err(e) => return e.into_response(),
    };
    let request = match serde_json::from_str::<ReplayBody>(&body).map_err(|e| e.to_string()).and_then(ReplayBody::request) {
        Ok(request) => request,
        Err(reason) => return error(StatusCode::BAD_REQUEST, format!("invalid replay request: {reason}")),
    };
    match state.replays.start(&id, &spec, request) {
        Ok(status) => (StatusCode::ACCEPTED, Json(status)).into_response(),
        Err(reason) => error(StatusCode::BAD_REQUEST, format!("replay refused: {reason}")),
    }
}

async fn replay_status(State(state): State<AppState>, Path((id, replay)): Path<(String, String)>) -> Response {
    match state.replays.status(&id, &replay) {
        Some(status) => Json(status).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no replay {replay} of job {id}")),
    }
}

async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let problems = state.jobs.readiness(READY_MAX_LAG);
    if problems.is_empty() {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "not ready", "problems": problems }))).into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], crate::metrics::render(state.jobs.metrics())).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route: see schemas/openapi/observebridge.yaml")
}
