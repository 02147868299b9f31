//! `/api/v1/console`: the Admin Console's rows for the caller, each row's value, changes and
//! actions (`crate::console`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cryowarden_core::{Action, Setting};
use serde::Serialize;
use serde_json::Value;

use crate::console::{self, Row};
use crate::error::StoreError;
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, Caller};
use crate::state::AppState;

fn setting(key: &str) -> ApiResult<Setting> {
    Setting::parse(key).ok_or_else(|| ApiError::not_found("setting"))
}

/// A refusal of one field of a partial row names the field.
fn map_err(e: StoreError) -> ApiError {
    let field = match &e {
        StoreError::Denied(d) => match d.action {
            Action::ChangeSetting { field: Some(f), .. } => Some(f),
            _ => None,
        },
        _ => None,
    };
    let api = ApiError::from(e);
    match field {
        Some(f) => api.field(f),
        None => api,
    }
}

/// The rows of the Admin Console the caller sees: `all` or `read-only` (rows with no access are
/// absent); 403 for those with no console at all.
#[utoipa::path(
    get,
    path = "/api/v1/console",
    tag = "console",
    responses((status = 200, body = Vec<Row>), (status = 403, body = Problem)),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<Row>>> {
    let ctx = caller.ctx();
    console::require_console(&state, &ctx)
        .await
        .map_err(map_err)?;
    Ok(axum::Json(console::rows(&caller.principal.actor())))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RowValue {
    pub key: String,
    /// `all` or `read-only`.
    pub access: String,
    pub read_only_fields: Vec<String>,
    /// The content (secrets are `"***"` when set).
    pub value: Value,
}

async fn row_value(
    state: &AppState,
    caller: &Caller,
    s: Setting,
    value: Value,
) -> ApiResult<RowValue> {
    let _ = state;
    let access = console::access(&caller.principal.actor(), s)
        .ok_or_else(|| ApiError::not_found("setting"))?;
    Ok(RowValue {
        key: s.as_str().to_owned(),
        access: access.access.to_owned(),
        read_only_fields: access
            .read_only_fields
            .iter()
            .map(|f| (*f).to_owned())
            .collect(),
        value,
    })
}

/// One row's content, if the caller may read it (403 otherwise; unknown key 404).
#[utoipa::path(
    get,
    path = "/api/v1/console/{key}",
    tag = "console",
    params(("key" = String, Path)),
    responses(
        (status = 200, body = RowValue),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
    ),
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<axum::Json<RowValue>> {
    let s = setting(&key)?;
    let value = console::view(&state, &caller.ctx(), s)
        .await
        .map_err(map_err)?;
    Ok(axum::Json(row_value(&state, &caller, s, value).await?))
}

/// Change a row with a JSON object of its fields; answers the new value. 403 for read-only and
/// absent rows and for a partial row's read-only field (named); 422 naming a bad field.
#[utoipa::path(
    put,
    path = "/api/v1/console/{key}",
    tag = "console",
    params(("key" = String, Path)),
    request_body = Object,
    responses(
        (status = 200, body = RowValue),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn put(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<axum::Json<RowValue>> {
    let s = setting(&key)?;
    let value = console::update(&state, &caller.ctx(), s, body)
        .await
        .map_err(map_err)?;
    Ok(axum::Json(row_value(&state, &caller, s, value).await?))
}

/// Run an action of a row: `email/test {"to": ...}` (502 `smtp-failed` with the server's
/// reply), `limit-active-users/apply`, or a diagnostic's.
#[utoipa::path(
    post,
    path = "/api/v1/console/{key}/{action}",
    tag = "console",
    params(("key" = String, Path), ("action" = String, Path)),
    request_body = Object,
    responses(
        (status = 200, body = Object),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
        (status = 502, body = Problem),
    ),
)]
pub async fn act(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((key, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let s = setting(&key)?;
    let body: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        crate::http::extract::parse_json(&body)?
    };
    let out = console::act(&state, &caller.ctx(), s, &action, body)
        .await
        .map_err(map_err)?;
    Ok((StatusCode::OK, axum::Json(out)))
}
