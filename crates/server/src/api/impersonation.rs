//! `/api/v1/impersonation`: start, show and stop impersonating a user or a role from a browser
//! session (`crate::impersonation`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, Caller};
use crate::impersonation::{self, StartRequest, Status};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Current {
    /// The impersonation in progress; `null` when the session acts as itself.
    pub impersonating: Option<Status>,
}

/// Start impersonating a user (`{"user": id}`) or a role (`{"role": "troubleshooter"}`).
/// Browser sessions only; the time limit is `impersonation_minutes` of the console's site settings.
#[utoipa::path(
    post,
    path = "/api/v1/impersonation",
    tag = "impersonation",
    request_body = StartRequest,
    responses(
        (status = 201, body = Status),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn start(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(req): ApiJson<StartRequest>,
) -> ApiResult<(StatusCode, axum::Json<Status>)> {
    let minutes = crate::console::site::impersonation_minutes(&state.db).await?;
    let status =
        impersonation::start(&state.db, &caller.principal, &caller.ctx(), req, minutes).await?;
    state.auth.forget_user(caller.principal.real_user().id);
    Ok((StatusCode::CREATED, axum::Json(status)))
}

/// The session's impersonation, if any.
#[utoipa::path(
    get,
    path = "/api/v1/impersonation",
    tag = "impersonation",
    responses((status = 200, body = Current)),
)]
pub async fn current(caller: Caller) -> ApiResult<axum::Json<Current>> {
    let p = &caller.principal;
    Ok(axum::Json(Current {
        impersonating: p.impersonating.as_ref().map(|i| i.status(&p.user)),
    }))
}

/// Stop impersonating.
#[utoipa::path(
    delete,
    path = "/api/v1/impersonation",
    tag = "impersonation",
    responses((status = 204), (status = 404, body = Problem)),
)]
pub async fn stop(State(state): State<Arc<AppState>>, caller: Caller) -> ApiResult<StatusCode> {
    let stopped = impersonation::stop(
        &state.db,
        &caller.principal,
        caller.source.to_string(),
        "stopped",
    )
    .await?;
    state.auth.forget_user(caller.principal.real_user().id);
    if stopped {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(crate::error::StoreError::NotFound {
            what: "impersonation",
        }
        .into())
    }
}
