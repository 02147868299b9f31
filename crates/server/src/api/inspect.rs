//! `/api/v1/diagnostics/{key}` and `/api/v1/diagnostics/{key}/{action}`: the Diagnostics of the
//! admin console (`inspect`), served directly. A key that is not a diagnostic is 404 `not-found`;
//! `inspect` authorizes (a refusal is 403 `forbidden`, and audited).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use cryowarden_core::Setting;
use serde_json::Value;

use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{Caller, parse_json};
use crate::inspect;
use crate::state::AppState;

fn diagnostic(key: &str) -> Result<Setting, ApiError> {
    Setting::parse(key)
        .filter(|s| inspect::SETTINGS.contains(s))
        .ok_or_else(|| ApiError::not_found("diagnostic"))
}

/// One diagnostic of the admin console (environment-variables, startup-properties,
/// system-properties, data-sources, memory-usage, running-tasks, queries, site-errors, loggers,
/// check-database, sql-scripts, site-validation, credits), as the caller's §1 access allows.
#[utoipa::path(
    get,
    path = "/api/v1/diagnostics/{key}",
    tag = "diagnostics",
    params(("key" = String, Path)),
    responses(
        (status = 200, body = Object),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
    ),
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let setting = diagnostic(&key)?;
    Ok(axum::Json(
        inspect::view(&state, &caller.ctx(), setting).await?,
    ))
}

/// Run an action of a diagnostic: `queries/reset`, `site-errors/reset`, `loggers/set`
/// (`{"service", "level"}`), `check-database/integrity`, `check-database/vacuum`,
/// `check-database/backup`, `site-validation/run` (`{"project"}`). The body, when there is one,
/// is a JSON object.
#[utoipa::path(
    post,
    path = "/api/v1/diagnostics/{key}/{action}",
    tag = "diagnostics",
    params(("key" = String, Path), ("action" = String, Path)),
    request_body(content = Object, description = "the action's parameters, if it takes any"),
    responses(
        (status = 200, body = Object),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn act(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((key, action)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let setting = diagnostic(&key)?;
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse_json(&body)?
    };
    Ok(axum::Json(
        inspect::act(&state, &caller.ctx(), setting, &action, body).await?,
    ))
}
