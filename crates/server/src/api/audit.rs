//! `/api/v1/audit`: list, filter and export the audit log; verify its hash chain (the
//! `audit-log` setting: Site and Application Admins, Troubleshooters read-only); retention and
//! archives (the `audit-log-maintenance` setting: Site Admins change, the others read).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cryowarden_core::{Action, Resource, Setting};
use serde::{Deserialize, Serialize};

use super::error::{ApiResult, Problem};
use super::extract::{ApiJson, ApiQuery, Caller, parse_id};
use crate::audit::{
    self, ArchiveOutcome, ArchiveRequest, ArchiveVerification, Event, ExportFormat, Filter,
    Maintenance, Policy, Verification,
};
use crate::context::{Ctx, Target};
use crate::error::StoreError;
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next: Option<i64>,
}

fn target() -> Target {
    Target {
        kind: "setting",
        id: Some(Setting::AuditLog.as_str().into()),
        name: None,
    }
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
    let _proof = caller
        .ctx()
        .authorize(
            &state.db,
            Action::ReadSetting(Setting::AuditLog),
            Resource::instance(),
            &target(),
        )
        .await?;
    let (events, next) = audit::list(&state.db, &filter).await?;
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
    let _proof = caller
        .ctx()
        .authorize(
            &state.db,
            Action::ReadSetting(Setting::AuditLog),
            Resource::instance(),
            &target(),
        )
        .await?;
    Ok(axum::Json(audit::verify(&state.db).await?))
}

/// The export's query: the list's filters (no paging) and the format.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `csv` (default) or `json` (one JSON array of events, as the list gives them).
    pub format: Option<String>,
    pub actor: Option<String>,
    pub impersonator: Option<String>,
    /// Exact, or a prefix ending in `*`.
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339.
    pub from: Option<String>,
    /// RFC 3339.
    pub to: Option<String>,
    /// Only events with seq below this.
    pub before: Option<String>,
}

impl ExportQuery {
    pub fn filter(&self) -> Filter {
        Filter {
            actor: self.actor.clone(),
            impersonator: self.impersonator.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: self.outcome.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            before: self.before.clone(),
            limit: None,
        }
    }
}

/// Checks `audit-log`, records the export (action `export-audit-log`, the filter in the event)
/// and answers the streamed file. Shared by the API and the page's links.
pub async fn export_response(
    state: &AppState,
    ctx: &Ctx,
    q: &ExportQuery,
) -> Result<Response, StoreError> {
    let _proof = ctx
        .authorize(
            &state.db,
            Action::ReadSetting(Setting::AuditLog),
            Resource::instance(),
            &target(),
        )
        .await?;
    let format = ExportFormat::parse(q.format.as_deref().filter(|s| !s.is_empty()))?;
    let filter = q.filter();
    let stream = audit::export_stream(&state.db, &filter, format).await?;
    let given = |k: &str, v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|v| (k.to_owned(), v.into()))
    };
    let asked: serde_json::Map<String, serde_json::Value> = [
        given("actor", &q.actor),
        given("impersonator", &q.impersonator),
        given("action", &q.action),
        given("target", &q.target),
        given("outcome", &q.outcome),
        given("from", &q.from),
        given("to", &q.to),
        given("before", &q.before),
    ]
    .into_iter()
    .flatten()
    .collect();
    ctx.record(
        &state.db,
        "export-audit-log",
        &target(),
        audit::Outcome::Ok,
        None,
        None,
        Some(serde_json::json!({ "format": format.extension(), "filter": asked })),
    )
    .await?;
    let name = format!(
        "cryowarden-audit-{}.{}",
        crate::db::format_ms(crate::db::now_ms()).replace(':', "-"),
        format.extension()
    );
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
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
    Ok(export_response(&state, &caller.ctx(), &q).await?)
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
