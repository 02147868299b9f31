//! `/api/v1/auth`: login, logout, the current session, registration and reset with tokens.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::auth::{LoginOutcome, RegisterRequest, Via};
use crate::db::format_ms;
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, Caller, SESSION_COOKIE, Source};
use crate::state::AppState;
use crate::users::User;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// Accepts the site-wide terms of use shown in a `terms-not-accepted` answer.
    #[serde(default)]
    pub accept_terms: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// The user whose rights apply (while impersonating, the one impersonated).
    pub user: User,
    /// The impersonation in progress, if any (`impersonating.impersonator` is the real person).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonating: Option<crate::impersonation::Status>,
    /// Send this in `X-CSRF-Token` with every cookie-authenticated request that changes state.
    pub csrf_token: String,
    pub expires_at: String,
}

/// Sign in with a password; sets an HttpOnly, SameSite=Strict session cookie.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = SessionInfo),
        (status = 401, body = Problem),
        (status = 403, description = "terms-not-accepted: the problem carries `terms` {version, text}", body = Problem),
        (status = 429, body = Problem),
    ),
)]
pub async fn login(
    State(state): State<Arc<AppState>>,
    Source(addr): Source,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    if req.username.is_empty() || req.username.len() > 64 || req.password.len() > 1024 {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            "wrong username or password",
        ));
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match state
        .auth
        .login(
            &state.db,
            &req.username,
            req.password,
            addr,
            ua,
            req.accept_terms,
        )
        .await?
    {
        LoginOutcome::TermsRequired { text, version } => {
            let body = serde_json::json!({
                "type": "/problems/terms-not-accepted", "title": "Forbidden", "status": 403,
                "code": "terms-not-accepted",
                "detail": "accept the site's terms of use: sign in again with `accept_terms: true`",
                "terms": { "version": version, "text": text },
            });
            let mut r = (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            Ok(r)
        }
        LoginOutcome::Throttled(wait) => {
            let secs = wait.as_secs().max(1);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                format!("too many failed sign-ins: wait {secs} s before trying again"),
            );
            e.retry_after = Some(secs);
            Err(e)
        }
        LoginOutcome::Refused => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            "wrong username or password, or the account is not active",
        )),
        LoginOutcome::Session {
            token,
            csrf,
            user,
            expires_at,
        } => {
            let secure = if state.config.base_url().starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let max_age = (expires_at - crate::db::now_ms()) / 1000;
            let cookie = format!(
                "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
                token.expose()
            );
            let body = SessionInfo {
                user,
                impersonating: None,
                csrf_token: csrf,
                expires_at: format_ms(expires_at),
            };
            let mut response = axum::Json(body).into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie)
                    .map_err(|e| crate::error::StoreError::Internal(e.to_string()))?,
            );
            Ok(response)
        }
    }
}

/// End the current browser session.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    responses((status = 204), (status = 401, body = Problem)),
)]
pub async fn logout(State(state): State<Arc<AppState>>, caller: Caller) -> ApiResult<Response> {
    state
        .auth
        .logout(&state.db, &caller.principal, caller.source.to_string())
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cw_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(response)
}

/// The current browser session and its CSRF token.
#[utoipa::path(
    get,
    path = "/api/v1/auth/session",
    tag = "auth",
    responses((status = 200, body = SessionInfo), (status = 401, body = Problem)),
)]
pub async fn session(caller: Caller) -> ApiResult<axum::Json<SessionInfo>> {
    match &caller.principal.via {
        Via::Session { csrf, .. } => Ok(axum::Json(SessionInfo {
            user: caller.principal.user.clone(),
            impersonating: caller
                .principal
                .impersonating
                .as_ref()
                .map(|i| i.status(&caller.principal.user)),
            csrf_token: csrf.clone(),
            expires_at: String::new(),
        })),
        Via::Token { .. } => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not-a-session",
            "this request is authenticated by an API token, not a browser session",
        )),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RegisteredUser {
    pub user: User,
}

/// Set a password with a registration token (or register the first Site Admin with the
/// bootstrap token printed at start).
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisteredUser),
        (status = 400, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn register(
    State(state): State<Arc<AppState>>,
    Source(addr): Source,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, axum::Json<RegisteredUser>)> {
    check_token_shape(&req.token)?;
    let user = state
        .auth
        .register(&state.db, req, addr.to_string())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(RegisteredUser { user })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub token: String,
    pub password: String,
}

/// Set a new password with a reset token; ends every session and API token of the user.
#[utoipa::path(
    post,
    path = "/api/v1/auth/reset",
    tag = "auth",
    request_body = ResetRequest,
    responses(
        (status = 200, body = RegisteredUser),
        (status = 400, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn reset(
    State(state): State<Arc<AppState>>,
    Source(addr): Source,
    ApiJson(req): ApiJson<ResetRequest>,
) -> ApiResult<axum::Json<RegisteredUser>> {
    check_token_shape(&req.token)?;
    let user = state
        .auth
        .reset(&state.db, &req.token, req.password, addr.to_string())
        .await?;
    Ok(axum::Json(RegisteredUser { user }))
}

fn check_token_shape(token: &str) -> ApiResult<()> {
    if token.is_empty() || token.len() > 200 {
        return Err(ApiError::from(crate::error::StoreError::BadToken));
    }
    Ok(())
}
