//! The REST API under `/api/v1`, and its OpenAPI document generated from the handlers.

pub mod audit;
pub mod auth;
pub mod authz;
pub mod console;
pub mod impersonation;
pub mod inspect;
pub mod jobs;
pub mod labs;
pub mod logs;
pub mod projects;
pub mod settings;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "cryowarden", description = "Control plane of a shared cryo-EM processing facility. Errors are application/problem+json with a stable `code`. Browser sessions use an HttpOnly cookie and must send `X-CSRF-Token` on writes; scripts send `Authorization: Bearer cwt_...`."),
    components(schemas(Problem)),
    tags((name = "auth"), (name = "users"), (name = "labs"), (name = "projects"), (name = "jobs"), (name = "tokens"), (name = "impersonation"), (name = "audit"), (name = "settings"), (name = "console"), (name = "logs"), (name = "diagnostics"), (name = "health"))
)]
struct ApiDoc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub database: String,
}

/// Liveness and database reachability.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Problem)),
)]
async fn health(State(state): State<Arc<AppState>>) -> ApiResult<axum::Json<Health>> {
    state.db.ping().await.map_err(|e| {
        tracing::error!(error = %e, "health check: database unreachable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is not answering",
        )
    })?;
    Ok(axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: state.db.backend.name().into(),
    }))
}

/// The API routes and the OpenAPI document describing them.
pub fn router() -> axum::Router<Arc<AppState>> {
    let (router, openapi) = parts();
    let openapi = Arc::new(finish(openapi));
    router.route(
        "/api/v1/openapi.json",
        get(move || {
            let o = openapi.clone();
            async move { axum::Json((*o).clone()) }
        }),
    )
}

/// The OpenAPI document served at `/api/v1/openapi.json`.
pub fn openapi() -> serde_json::Value {
    finish(parts().1)
}

/// What every operation shares, written once rather than on each handler: a problem is
/// `application/problem+json` (utoipa writes `application/json` for any body), and every operation
/// may answer a problem (401 without credentials, 403, 404, 413, 422, 429, 500, 503...) that its
/// own list does not name, as the `default` response.
fn finish(openapi: utoipa::openapi::OpenApi) -> serde_json::Value {
    const PROBLEM: &str = "#/components/schemas/Problem";
    let mut doc = serde_json::to_value(openapi).expect("the OpenAPI document is JSON");
    for item in doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            let Some(responses) = op
                .get_mut("responses")
                .and_then(serde_json::Value::as_object_mut)
            else {
                continue;
            };
            for response in responses.values_mut() {
                let Some(content) = response
                    .get_mut("content")
                    .and_then(serde_json::Value::as_object_mut)
                else {
                    continue;
                };
                let is_problem = content
                    .get("application/json")
                    .is_some_and(|c| c["schema"]["$ref"] == PROBLEM);
                if is_problem && let Some(problem) = content.remove("application/json") {
                    content.insert("application/problem+json".into(), problem);
                }
            }
            responses.entry("default").or_insert_with(|| {
                serde_json::json!({
                    "description": "A problem: `code` says which (stable), `field` the part of the request at fault",
                    "content": { "application/problem+json": { "schema": { "$ref": PROBLEM } } }
                })
            });
        }
    }
    doc
}

fn parts() -> (axum::Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::<Arc<AppState>>::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::session))
        .routes(routes!(auth::register))
        .routes(routes!(auth::reset))
        .routes(routes!(users::me))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::show, users::update, users::delete))
        .routes(routes!(users::reset_token))
        .routes(routes!(labs::list, labs::create))
        .routes(routes!(labs::show, labs::update, labs::delete))
        .routes(routes!(labs::list_members, labs::set_member))
        .routes(routes!(labs::remove_member))
        .routes(routes!(labs::members_csv))
        .routes(routes!(labs::set_roots))
        .routes(routes!(labs::set_unix_account))
        .routes(routes!(projects::browse_lab))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::show, projects::update, projects::delete))
        .routes(routes!(projects::list_members, projects::set_member))
        .routes(routes!(projects::remove_member))
        .routes(routes!(projects::list_groups, projects::create_group))
        .routes(routes!(projects::delete_group))
        .routes(routes!(
            projects::add_group_member,
            projects::remove_group_member
        ))
        .routes(routes!(
            projects::list_workspaces,
            projects::create_workspace
        ))
        .routes(routes!(
            projects::delete_workspace,
            projects::update_workspace
        ))
        .routes(routes!(projects::set_folder_admins))
        .routes(routes!(projects::browse_project))
        .routes(routes!(projects::archive_data))
        .routes(routes!(projects::delete_data))
        .routes(routes!(jobs::list_lanes, jobs::create_lane))
        .routes(routes!(jobs::remove_lane))
        .routes(routes!(jobs::add_target))
        .routes(routes!(jobs::connect_cluster))
        .routes(routes!(jobs::cluster_info))
        .routes(routes!(jobs::exposures))
        .routes(routes!(jobs::set_target_vars))
        .routes(routes!(jobs::instance_vars, jobs::set_instance_vars))
        .routes(routes!(jobs::user_lanes, jobs::set_user_lanes))
        .routes(routes!(jobs::list_commands, jobs::put_command))
        .routes(routes!(jobs::list, jobs::create))
        .routes(routes!(jobs::show))
        .routes(routes!(jobs::queue))
        .routes(routes!(jobs::queue_many))
        .routes(routes!(jobs::kill))
        .routes(routes!(jobs::clear))
        .routes(routes!(jobs::log))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(authz::explain))
        .routes(routes!(
            impersonation::start,
            impersonation::current,
            impersonation::stop
        ))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::export))
        .routes(routes!(audit::maintenance, audit::set_maintenance))
        .routes(routes!(audit::archive))
        .routes(routes!(audit::verify_archive))
        .routes(routes!(settings::get, settings::update))
        .routes(routes!(settings::public))
        .routes(routes!(console::list))
        .routes(routes!(console::get, console::put))
        .routes(routes!(console::act))
        .routes(routes!(logs::tail))
        .routes(routes!(logs::report))
        .routes(routes!(inspect::show))
        .routes(routes!(inspect::act))
        .split_for_parts()
}
