//! `/api/v1/logs/{service}` (the Instance Logs tail) and `/api/v1/report` (the diagnostic zip).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cryowarden_core::{Action, Resource, Setting};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiQuery, Caller};
use crate::audit::Outcome;
use crate::context::{Ctx, Target};
use crate::logs::{self, LINE_COUNTS, Service};
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

/// Validates a service name and line count as the Instance Logs view offers them.
pub fn parse_tail(service: &str, lines: Option<&str>) -> Result<(Service, usize), ApiError> {
    let svc = Service::parse(service).ok_or_else(|| {
        let names: Vec<&str> = Service::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            format!(
                "service `{}` does not exist: choose one of {}",
                service.chars().take(40).collect::<String>(),
                names.join(", ")
            ),
        )
        .field("service")
    })?;
    let n = match lines {
        None => 100,
        Some(n) => logs::parse_line_count(n).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                format!("lines must be one of {LINE_COUNTS:?}"),
            )
            .field("lines")
        })?,
    };
    Ok((svc, n))
}

/// Reads the tail of a service's log off the async threads.
pub async fn read_tail(
    state: &AppState,
    service: Service,
    lines: usize,
) -> Result<Vec<String>, ApiError> {
    let dir = logs::log_dir(&state.config.data_dir);
    tokio::task::spawn_blocking(move || logs::tail(&dir, service, lines))
        .await
        .map_err(|e| crate::error::StoreError::Internal(e.to_string()))?
        .map_err(|e| {
            ApiError::from(crate::error::StoreError::Internal(format!(
                "reading the {service:?} log: {e}"
            )))
        })
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
    let target = Target {
        kind: "setting",
        id: Some(Setting::InstanceLogs.as_str().into()),
        name: Some(service.chars().take(40).collect()),
    };
    let _proof = caller
        .ctx()
        .authorize(
            &state.db,
            Action::ReadSetting(Setting::InstanceLogs),
            Resource::instance(),
            &target,
        )
        .await?;
    let (svc, n) = parse_tail(&service, q.lines.as_deref())?;
    let lines = read_tail(&state, svc, n).await?;
    Ok(axum::Json(LogTail {
        service: svc.as_str().into(),
        lines,
        services: Service::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
    }))
}

/// Database statistics and the instance's configuration (no secrets) for the runtime report.
pub async fn report_extra(state: &AppState) -> Value {
    let mut counts = serde_json::Map::new();
    for table in [
        "users",
        "sessions",
        "api_tokens",
        "user_tokens",
        "audit_events",
    ] {
        let n: Result<i64, _> = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&state.db.pool)
            .await;
        counts.insert(table.into(), n.map(Value::from).unwrap_or(Value::Null));
    }
    json!({
        "database": { "backend": state.db.backend.name(), "url": state.config.redacted_database_url(), "rows": counts },
        "lanes": [],
        "uptime_seconds": state.started.elapsed().as_secs(),
    })
}

/// The diagnostic zip as a streamed download, after the `diagnostic-report` check.
pub async fn report_response(
    state: &AppState,
    ctx: &Ctx,
    browser: Value,
) -> Result<Response, ApiError> {
    let target = Target {
        kind: "setting",
        id: Some(Setting::DiagnosticReport.as_str().into()),
        name: None,
    };
    let _proof = ctx
        .authorize(
            &state.db,
            Action::ReadSetting(Setting::DiagnosticReport),
            Resource::instance(),
            &target,
        )
        .await?;
    ctx.record(
        &state.db,
        "download-report",
        &target,
        Outcome::Ok,
        None,
        None,
        None,
    )
    .await?;
    let runtime = logs::runtime_diagnostics(report_extra(state).await);
    let stream = logs::report_stream(logs::log_dir(&state.config.data_dir), runtime, browser);
    let name = format!(
        "cryowarden-report-{}.zip",
        crate::db::format_ms(crate::db::now_ms()).replace(':', "-")
    );
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
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
    report_response(&state, &caller.ctx(), browser).await
}
