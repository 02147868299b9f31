//! `/api/v1/settings/instance` (admin console) and `/api/v1/instance` (what every page shows).

use std::sync::Arc;

use axum::extract::State;
use serde::Serialize;

use super::error::{ApiResult, Problem};
use super::extract::{ApiJson, Caller};
use crate::settings::{
    self, Banner, InstanceSettings, Maintenance, SettingsPatch, VisibleSettings,
};
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

/// What every visitor sees: the instance name, and the banner and maintenance notice when on.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicInstance {
    pub instance_name: String,
    pub banner: Option<Banner>,
    pub maintenance: Option<Maintenance>,
}

impl PublicInstance {
    pub fn from(s: &InstanceSettings) -> PublicInstance {
        PublicInstance {
            instance_name: s.instance_name.clone(),
            banner: s.banner.active.then(|| s.banner.clone()),
            maintenance: s.maintenance.active.then(|| s.maintenance.clone()),
        }
    }
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
