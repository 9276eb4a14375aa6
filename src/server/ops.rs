//! The operations endpoints of `observebridge run` (one job in the foreground): `/metrics`,
//! `/healthz` and `/readyz`, on `--listen` (default 127.0.0.1:7070). `observebridge serve`
//! serves the same endpoints from its API router.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::{self, JobMetrics};
use crate::runtime::Stats;

/// Lag (records per partition) under which the job counts as caught up.
const READY_MAX_LAG: u64 = 10_000;

#[derive(Clone)]
struct Ops {
    job: String,
    stats: Arc<Stats>,
}

/// Why the job is not ready (empty: ready): sources connected and caught up.
pub fn readiness(stats: &Stats, max_lag: u64) -> Vec<String> {
    if !stats.running.load(Ordering::Relaxed) {
        return vec!["sources and sinks are still connecting".to_string()];
    }
    stats
        .partitions
        .lock()
        .map(|p| p.iter().filter(|p| p.lag.is_some_and(|l| l > max_lag)).map(|p| format!("{} is {} records behind", p.partition, p.lag.unwrap_or(0))).collect())
        .unwrap_or_default()
}

fn router(ops: Ops) -> Router {
    Router::new()
        .route("/metrics", get(|State(o): State<Ops>| async move {
            let state = if o.stats.running.load(Ordering::Relaxed) { "running" } else { "starting" };
            ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::render(vec![JobMetrics { job: o.job.clone(), state, stats: Arc::clone(&o.stats) }])).into_response()
        }))
        .route("/healthz", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route("/readyz", get(|State(o): State<Ops>| async move {
            let problems = readiness(&o.stats, READY_MAX_LAG);
            if problems.is_empty() {
                Json(serde_json::json!({ "status": "ready" })).into_response()
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "not ready", "problems": problems }))).into_response()
            }
        }))
        .with_state(ops)
}

/// Serves the endpoints for one job on its own thread until the process ends. A port that is
/// taken is reported and the job runs without them (returns the bound address otherwise).
pub fn serve_in_background(listen: SocketAddr, job: String, stats: Arc<Stats>) -> Option<SocketAddr> {
    let std_listener = match std::net::TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%listen, error = %e, "metrics and health endpoints not served");
            stats.warn(format!("/metrics not served: cannot bind {listen}: {e}"));
            return None;
        }
    };
    let addr = std_listener.local_addr().ok()?;
    std_listener.set_nonblocking(true).ok()?;
    let app = router(Ops { job, stats });
    let spawned = std::thread::Builder::new().name("ops-http".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            match tokio::net::TcpListener::from_std(std_listener) {
                Ok(listener) => {
                    let _ = axum::serve(listener, app).await;
                }
                Err(e) => tracing::warn!(error = %e, "metrics endpoint failed"),
            }
        });
    });
    spawned.ok().map(|_| addr)
}
