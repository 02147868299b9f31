//! `/api/v1/audit`: list and filter the audit log; verify its hash chain. Needs the `audit-log`
//! setting (Site and Application Admins, Troubleshooters read-only).

use std::sync::Arc;

use axum::extract::State;
use cryowarden_core::{Action, Resource, Setting};
use serde::Serialize;

use super::error::{ApiResult, Problem};
use super::extract::{ApiQuery, Caller};
use crate::app::AppState;
use crate::audit::{self, Event, Filter, Verification};
use crate::context::Target;

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next: Option<i64>,
}

fn target() -> Target {
    Target { kind: "setting", id: Some(Setting::AuditLog.as_str().into()), name: None }
}

/// Audit events, newest first, filtered and paged.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(Filter), responses((status = 200, body = EventPage), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<Filter>,
) -> ApiResult<axum::Json<EventPage>> {
    let _proof = caller
        .ctx()
        .authorize(&state.db, Action::ReadSetting(Setting::AuditLog), Resource::instance(), &target())
        .await?;
    let (events, next) = audit::list(&state.db, &filter).await?;
    Ok(axum::Json(EventPage { events, next }))
}

/// Verify the hash chain: "ok, N events" or the first event that breaks it.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", responses((status = 200, body = Verification), (status = 403, body = Problem)))]
pub async fn verify(State(state): State<Arc<AppState>>, caller: Caller) -> ApiResult<axum::Json<Verification>> {
    let _proof = caller
        .ctx()
        .authorize(&state.db, Action::ReadSetting(Setting::AuditLog), Resource::instance(), &target())
        .await?;
    Ok(axum::Json(audit::verify(&state.db).await?))
}
