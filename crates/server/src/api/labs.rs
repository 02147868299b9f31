//! `/api/v1/labs`: labs (site groups), their members, storage roots and Unix account.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, Caller, Id, parse_id};
use crate::labs::members::{self, Member, SetMember};
use crate::labs::roots::{self, SetRoots};
use crate::labs::unix::{self, SetUnixAccount};
use crate::labs::{self, Lab, LabPatch, NewLab};
use crate::state::AppState;

/// Labs the caller may see: all of them for admins and troubleshooters, else their own.
#[utoipa::path(
    get,
    path = "/api/v1/labs",
    tag = "labs",
    responses((status = 200, body = Vec<Lab>), (status = 401, body = Problem)),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<Lab>>> {
    Ok(axum::Json(labs::list(&state.db, &caller.ctx()).await?))
}

/// Create a lab.
#[utoipa::path(
    post,
    path = "/api/v1/labs",
    tag = "labs",
    request_body = NewLab,
    responses(
        (status = 201, body = Lab),
        (status = 403, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(new): ApiJson<NewLab>,
) -> ApiResult<(StatusCode, axum::Json<Lab>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(labs::create(&state.db, &caller.ctx(), new).await?),
    ))
}

/// One lab.
#[utoipa::path(
    get,
    path = "/api/v1/labs/{id}",
    tag = "labs",
    params(("id" = i64, Path)),
    responses((status = 200, body = Lab), (status = 404, body = Problem)),
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<Lab>> {
    Ok(axum::Json(labs::show(&state.db, &caller.ctx(), id).await?))
}

/// Rename a lab, change its title or import policy.
#[utoipa::path(
    patch,
    path = "/api/v1/labs/{id}",
    tag = "labs",
    params(("id" = i64, Path)),
    request_body = LabPatch,
    responses(
        (status = 200, body = Lab),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(patch): ApiJson<LabPatch>,
) -> ApiResult<axum::Json<Lab>> {
    Ok(axum::Json(
        labs::update(&state.db, &caller.ctx(), id, patch).await?,
    ))
}

/// Delete a lab that has no members and no storage roots.
#[utoipa::path(
    delete,
    path = "/api/v1/labs/{id}",
    tag = "labs",
    params(("id" = i64, Path)),
    responses(
        (status = 204),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
    ),
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    labs::delete(&state.db, &caller.ctx(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The members of a lab.
#[utoipa::path(
    get,
    path = "/api/v1/labs/{id}/members",
    tag = "labs",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Member>), (status = 404, body = Problem)),
)]
pub async fn list_members(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<Vec<Member>>> {
    Ok(axum::Json(
        members::list(&state.db, &caller.ctx(), id).await?,
    ))
}

/// Add a member to a lab, or change a member's lab role.
#[utoipa::path(
    post,
    path = "/api/v1/labs/{id}/members",
    tag = "labs",
    params(("id" = i64, Path)),
    request_body = SetMember,
    responses(
        (status = 200, body = Lab),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn set_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(req): ApiJson<SetMember>,
) -> ApiResult<axum::Json<Lab>> {
    Ok(axum::Json(
        members::set(&state.db, &caller.ctx(), id, req).await?,
    ))
}

/// Remove a member from a lab.
#[utoipa::path(
    delete,
    path = "/api/v1/labs/{id}/members/{user_id}",
    tag = "labs",
    params(("id" = i64, Path), ("user_id" = i64, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
)]
pub async fn remove_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, user_id) = (parse_id(&id, "id")?, parse_id(&user_id, "user_id")?);
    members::remove(&state.db, &caller.ctx(), id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The members of a lab as CSV: username, email, first_name, last_name, lab_role.
#[utoipa::path(
    get,
    path = "/api/v1/labs/{id}/members.csv",
    tag = "labs",
    params(("id" = i64, Path)),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
    ),
)]
pub async fn members_csv(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<impl IntoResponse> {
    let (lab, csv) = members::export_csv(&state.db, &caller.ctx(), id).await?;
    let disposition = format!("attachment; filename=\"{}-members.csv\"", lab.name);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    ))
}

/// Replace a lab's storage roots (Site Admins only).
#[utoipa::path(
    put,
    path = "/api/v1/labs/{id}/roots",
    tag = "labs",
    params(("id" = i64, Path)),
    request_body = SetRoots,
    responses(
        (status = 200, body = Lab),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn set_roots(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(req): ApiJson<SetRoots>,
) -> ApiResult<axum::Json<Lab>> {
    Ok(axum::Json(
        roots::set(&state.db, &caller.ctx(), id, req).await?,
    ))
}

/// Set the Unix account a lab's jobs run as (Site Admins only).
#[utoipa::path(
    put,
    path = "/api/v1/labs/{id}/unix-account",
    tag = "labs",
    params(("id" = i64, Path)),
    request_body = SetUnixAccount,
    responses(
        (status = 200, body = Lab),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn set_unix_account(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(req): ApiJson<SetUnixAccount>,
) -> ApiResult<axum::Json<Lab>> {
    Ok(axum::Json(
        unix::set(&state.db, &caller.ctx(), id, req).await?,
    ))
}
