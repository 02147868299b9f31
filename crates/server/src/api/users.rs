//! `/api/v1/users`: the user table, create with a registration token, show, change, delete,
//! and reset tokens.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiQuery, Caller, Id};
use crate::state::AppState;
use crate::users::{self, IssuedToken, ListQuery, NewUser, User, UserPage, UserPatch};

/// The signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "users",
    responses((status = 200, body = User), (status = 401, body = Problem)),
)]
pub async fn me(caller: Caller) -> axum::Json<User> {
    axum::Json(caller.principal.user.clone())
}

/// Users the caller may see, paged, sorted and filtered.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    params(ListQuery),
    responses((status = 200, body = UserPage), (status = 400, body = Problem)),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<axum::Json<UserPage>> {
    Ok(axum::Json(users::list(&state.db, &caller.ctx(), &q).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedUser {
    pub user: User,
    /// The registration token to deliver to the user (shown once).
    pub registration: IssuedToken,
}

/// Create a user; they register with the returned token.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, body = CreatedUser),
        (status = 403, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(new): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, axum::Json<CreatedUser>)> {
    let (user, registration) = users::create(
        &state.db,
        &caller.ctx(),
        new,
        state.config.lifetimes().register_ms,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedUser { user, registration }),
    ))
}

/// One user.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = i64, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem)),
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<User>> {
    Ok(axum::Json(users::show(&state.db, &caller.ctx(), id).await?))
}

/// Change a user's details, role, status or permissions.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = i64, Path)),
    request_body = UserPatch,
    responses(
        (status = 200, body = User),
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
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<axum::Json<User>> {
    let (user, _revoked) = users::update(&state.db, &caller.ctx(), id, patch).await?;
    state.auth.forget_user(id);
    Ok(axum::Json(user))
}

/// Delete a user at once and permanently.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    users::delete(&state.db, &caller.ctx(), id).await?;
    state.auth.forget_user(id);
    Ok(StatusCode::NO_CONTENT)
}

/// Issue a new registration (invited users) or reset token for a user to deliver to them.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/reset-token",
    tag = "users",
    params(("id" = i64, Path)),
    responses(
        (status = 201, body = IssuedToken),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
    ),
)]
pub async fn reset_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<(StatusCode, axum::Json<IssuedToken>)> {
    let l = state.config.lifetimes();
    let token = users::issue_reset(&state.db, &caller.ctx(), id, l.register_ms, l.reset_ms).await?;
    Ok((StatusCode::CREATED, axum::Json(token)))
}
