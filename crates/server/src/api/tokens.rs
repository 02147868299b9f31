//! `/api/v1/tokens`: the caller's API tokens for scripts.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::auth::{ApiToken, NewApiToken};
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, Caller, Id};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: ApiToken,
    /// The secret, shown this once: send it as `Authorization: Bearer ...`.
    pub secret: String,
}

/// Create an API token.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body = NewApiToken,
    responses((status = 201, body = CreatedToken), (status = 422, body = Problem)),
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(req): ApiJson<NewApiToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    let (token, secret) = state
        .auth
        .create_api_token(&state.db, &caller.principal, req, caller.source.to_string())
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            token,
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// The caller's API tokens (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    responses((status = 200, body = [ApiToken])),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<ApiToken>>> {
    Ok(axum::Json(
        state
            .auth
            .list_api_tokens(&state.db, &caller.principal)
            .await?,
    ))
}

/// Revoke one of the caller's API tokens.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem)),
)]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    state
        .auth
        .revoke_api_token(&state.db, &caller.principal, id, caller.source.to_string())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
