//! `/api/v1/logs/{service}` (the Instance Logs tail) and `/api/v1/report` (the diagnostic zip).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::logs::{self, Service};
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TailQuery {
    /// 50, 100, 200 or 500 (default 100).
    pub lines: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LogTail {
    pub service: String,
    /// The last lines, newest last.
    pub lines: Vec<String>,
    pub services: Vec<String>,
}

/// The last lines of one service's log.
#[utoipa::path(
    get,
    path = "/api/v1/logs/{service}",
    tag = "logs",
    params(("service" = String, Path), TailQuery),
    responses(
        (status = 200, body = LogTail),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn tail(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(service): Path<String>,
    ApiQuery(q): ApiQuery<TailQuery>,
) -> ApiResult<axum::Json<LogTail>> {
    let tail = logs::view::tail(&state, &caller.ctx(), &service, q.lines.as_deref()).await?;
    Ok(axum::Json(LogTail {
        service: tail.service.as_str().into(),
        lines: tail.lines,
        services: Service::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
    }))
}

/// Download the diagnostic report: every log file, runtime diagnostics, and the browser
/// diagnostics sent in the body (any JSON object).
#[utoipa::path(
    post,
    path = "/api/v1/report",
    tag = "logs",
    request_body = Object,
    responses(
        (status = 200, content_type = "application/zip", body = Vec<u8>),
        (status = 403, body = Problem),
    ),
)]
pub async fn report(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(browser): ApiJson<Value>,
) -> ApiResult<Response> {
    let report = logs::view::report(&state, &caller.ctx(), browser).await?;
    Ok(crate::http::download::attachment(
        "application/zip",
        &report.file_name,
        report.zip,
    ))
}
