//! `/api/v1/audit`: list, filter and export the audit log; verify its hash chain (the
//! `audit-log` setting: Site and Application Admins, Troubleshooters read-only); retention and
//! archives (the `audit-log-maintenance` setting: Site Admins change, the others read).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Serialize;

use crate::audit::{
    self, ArchiveOutcome, ArchiveRequest, ArchiveVerification, Event, Filter, Maintenance, Policy,
    Verification,
};
use crate::audit_log::{self, ExportQuery};
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiQuery, Caller, parse_id};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next: Option<i64>,
}

/// Audit events, newest first, filtered and paged.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(Filter),
    responses(
        (status = 200, body = EventPage),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<Filter>,
) -> ApiResult<axum::Json<EventPage>> {
    let (events, next) = audit_log::list(&state, &caller.ctx(), &filter).await?;
    Ok(axum::Json(EventPage { events, next }))
}

/// Verify the hash chain: "ok, N events" or the first event that breaks it.
#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    responses((status = 200, body = Verification), (status = 403, body = Problem)),
)]
pub async fn verify(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<axum::Json<Verification>> {
    Ok(axum::Json(audit_log::verify(&state, &caller.ctx()).await?))
}

/// Export the whole filtered set (oldest first) as CSV or a JSON array, streamed. The export is
/// itself recorded in the audit log (`export-audit-log`).
#[utoipa::path(
    get,
    path = "/api/v1/audit/export",
    tag = "audit",
    params(ExportQuery),
    responses(
        (status = 200, description = "Every event of the filtered set, oldest first: CSV (`format=csv`, the default) or a JSON array (`format=json`)", content((String = "text/csv"), (Vec<crate::audit::Event> = "application/json"))),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn export(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let export = audit_log::export(&state, &caller.ctx(), &q).await?;
    Ok(crate::http::download::attachment(
        export.content_type,
        &export.file_name,
        export.stream,
    ))
}

/// The retention policy and the archives (`audit-log-maintenance`, read).
#[utoipa::path(
    get,
    path = "/api/v1/audit/maintenance",
    tag = "audit",
    responses((status = 200, body = Maintenance), (status = 403, body = Problem)),
)]
pub async fn maintenance(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<axum::Json<Maintenance>> {
    Ok(axum::Json(
        audit::maintenance(&state.db, &state.config.data_dir, &caller.ctx()).await?,
    ))
}

/// Set the retention policy (`audit-log-maintenance`, change: Site Admins).
#[utoipa::path(
    put,
    path = "/api/v1/audit/maintenance",
    tag = "audit",
    request_body = Policy,
    responses(
        (status = 200, body = Policy),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn set_maintenance(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(policy): ApiJson<Policy>,
) -> ApiResult<axum::Json<Policy>> {
    Ok(axum::Json(
        audit::set_policy(&state.db, &caller.ctx(), policy).await?,
    ))
}

/// Archive the events before `before` (or the policy's cut-off) to a file under
/// `<data_dir>/audit-archive/`; the live chain then verifies from the archive's anchor.
#[utoipa::path(
    post,
    path = "/api/v1/audit/archive",
    tag = "audit",
    request_body = ArchiveRequest,
    responses(
        (status = 200, body = ArchiveOutcome),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn archive(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(req): ApiJson<ArchiveRequest>,
) -> ApiResult<axum::Json<ArchiveOutcome>> {
    Ok(axum::Json(
        audit::archive(&state.db, &state.config.data_dir, &caller.ctx(), req).await?,
    ))
}

/// Verify one archive file on its own: its SHA-256 and its chain from the previous anchor.
#[utoipa::path(
    get,
    path = "/api/v1/audit/archives/{id}/verify",
    tag = "audit",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = ArchiveVerification),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
    ),
)]
pub async fn verify_archive(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<ArchiveVerification>> {
    let id = parse_id(&raw, "id")?;
    Ok(axum::Json(
        audit::verify_archive(&state.db, &state.config.data_dir, &caller.ctx(), id).await?,
    ))
}
