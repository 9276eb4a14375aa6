//! `POST /v1/sql`: the query in the body, one statement; rows as JSON by default, as an Arrow
//! IPC stream with `Accept: application/vnd.apache.arrow.stream`.
//!
//! - 200: JSON, an array of row objects (`[{"bucket": "2026-11-21T13:05:00Z", "p95": 12.5}]`,
//!   nulls written out), or the Arrow stream (schema, then the batches).
//! - 400: the query failed: `{"error": "<message>", "code": "<SQLSTATE>"}`.
//! - 401: auth is on and the request has no `Authorization: Bearer <token>` with a known token:
//!   `{"error": "..."}`.

use std::sync::Arc;

use arrow::ipc::writer::StreamWriter;
use arrow::json::{WriterBuilder, writer::JsonArray};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::config::AuthConfig;
use crate::engine::{QueryEngine, QueryOutput};
use crate::error::{QueryError, sqlstate};

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Clone)]
struct HttpState {
    engine: Arc<QueryEngine>,
    auth: Option<Arc<AuthConfig>>,
}

pub(crate) fn router(engine: Arc<QueryEngine>, auth: Option<Arc<AuthConfig>>) -> Router {
    Router::new().route("/v1/sql", post(sql)).with_state(HttpState { engine, auth })
}

async fn sql(State(state): State<HttpState>, headers: HeaderMap, body: String) -> Response {
    let tenant = match &state.auth {
        None => None,
        Some(auth) => match bearer(&headers).and_then(|token| auth.scope_of(token)) {
            Some(tenant) => tenant,
            None => {
                let message = if bearer(&headers).is_some() { "unknown access token" } else { "authentication required: send Authorization: Bearer <token>" };
                let mut response = json_error(StatusCode::UNAUTHORIZED, message, None);
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
        },
    };
    let result = state.engine.query(&body, tenant.as_deref()).await;
    let wants_arrow = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains(ARROW_STREAM));
    let encoded = result.and_then(|output| if wants_arrow { arrow_stream(&output) } else { json_rows(&output) });
    match encoded {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(code = error.code, error = %error.message, "sql query over http failed");
            json_error(StatusCode::BAD_REQUEST, &error.message, Some(error.code))
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn json_rows(output: &QueryOutput) -> Result<Response, QueryError> {
    let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(Vec::new());
    for batch in &output.batches {
        writer.write(batch).map_err(encode_error)?;
    }
    writer.finish().map_err(encode_error)?;
    let mut body = writer.into_inner();
    if body.is_empty() {
        body = b"[]".to_vec();
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn arrow_stream(output: &QueryOutput) -> Result<Response, QueryError> {
    let mut writer = StreamWriter::try_new(Vec::new(), &output.schema).map_err(encode_error)?;
    for batch in &output.batches {
        writer.write(batch).map_err(encode_error)?;
    }
    writer.finish().map_err(encode_error)?;
    let body = writer.into_inner().map_err(encode_error)?;
    Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], body).into_response())
}

fn encode_error(error: arrow::error::ArrowError) -> QueryError {
    QueryError::new(sqlstate::INTERNAL, format!("encoding the result: {error}"))
}

fn json_error(status: StatusCode, message: &str, code: Option<&str>) -> Response {
    let body = match code {
        Some(code) => serde_json::json!({ "error": message, "code": code }),
        None => serde_json::json!({ "error": message }),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
