//! `/api/v1/settings/instance` (admin console) and `/api/v1/instance` (what every page shows).

use std::sync::Arc;

use axum::extract::State;

use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, Caller};
use crate::settings::{self, PublicInstance, SettingsPatch, VisibleSettings};
use crate::state::AppState;

/// The instance settings the caller may see (groups they have no access to are left out).
#[utoipa::path(
    get,
    path = "/api/v1/settings/instance",
    tag = "settings",
    responses((status = 200, body = VisibleSettings)),
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<axum::Json<VisibleSettings>> {
    let current = state.settings.get(&state.db).await?;
    Ok(axum::Json(settings::visible_to(
        &current,
        &caller.principal.actor(),
    )))
}

/// Change instance settings; each field needs its setting's `all` access.
#[utoipa::path(
    patch,
    path = "/api/v1/settings/instance",
    tag = "settings",
    request_body = SettingsPatch,
    responses(
        (status = 200, body = VisibleSettings),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> ApiResult<axum::Json<VisibleSettings>> {
    let after = settings::update(&state.db, &state.settings, &caller.ctx(), patch).await?;
    Ok(axum::Json(settings::visible_to(
        &after,
        &caller.principal.actor(),
    )))
}

/// Public facts about this instance.
#[utoipa::path(
    get,
    path = "/api/v1/instance",
    tag = "settings",
    responses((status = 200, body = PublicInstance)),
)]
pub async fn public(State(state): State<Arc<AppState>>) -> ApiResult<axum::Json<PublicInstance>> {
    Ok(axum::Json(PublicInstance::from(
        &*state.settings.get(&state.db).await?,
    )))
}
