//! Sign-in, sign-out, home, and registration / reset with a token.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::{PageCaller, base_context, message, render, with};
use crate::api::extract::Source;
use crate::app::AppState;
use crate::auth::{LoginOutcome, RegisterRequest};
use crate::error::StoreError;
use crate::secrets::BOOTSTRAP_PREFIX;

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only local paths are followed after sign-in, and absolute URLs on the admin console's
/// external redirect hosts.
async fn safe_next(state: &AppState, next: Option<&str>) -> String {
    let hosts = crate::console::redirects::hosts(&state.db).await.unwrap_or_default();
    crate::console::redirects::safe_next(next, &hosts)
}

pub async fn login_form(State(state): State<Arc<AppState>>, Query(q): Query<LoginQuery>) -> Response {
    let base = base_context(&state, None, "login").await;
    render("login.html", with(base, context! { next => safe_next(&state, q.next.as_deref()).await, username => "" }))
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
    /// The "I accept" checkbox of the terms of use.
    accept_terms: Option<String>,
}

pub async fn login_submit(
    State(state): State<Arc<AppState>>,
    Source(addr): Source,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(&state, f.next.as_deref()).await;
    let base = base_context(&state, None, "login").await;
    let again = |status: StatusCode, error: String| {
        let mut r = render(
            "login.html",
            with(base.clone(), context! { next => next.clone(), username => f.username.clone(), error }),
        );
        *r.status_mut() = status;
        r
    };
    if f.username.is_empty() || f.username.len() > 64 || f.password.len() > 1024 {
        return again(StatusCode::UNAUTHORIZED, "Wrong username or password.".into());
    }
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let accept = f.accept_terms.as_deref() == Some("on");
    match state.auth.login(&state.db, &f.username, f.password.clone(), addr, ua, accept).await {
        Ok(LoginOutcome::TermsRequired { text, version }) => {
            let mut r = render(
                "login.html",
                with(
                    base.clone(),
                    context! { next => next.clone(), username => f.username.clone(), terms => context! { text, version },
                    error => if accept { "" } else { "Accept the terms of use to sign in." } },
                ),
            );
            *r.status_mut() = StatusCode::FORBIDDEN;
            r
        }
        Ok(LoginOutcome::Session { token, expires_at, .. }) => {
            let secure = if state.config.base_url().starts_with("https://") { "; Secure" } else { "" };
            let max_age = (expires_at - crate::db::now_ms()) / 1000;
            let cookie =
                format!("cw_session={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}", token.expose());
            let target = if next == "/" { "/?welcome=1".to_owned() } else { next.clone() };
            let mut r = Redirect::to(&target).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(LoginOutcome::Refused) => {
            again(StatusCode::UNAUTHORIZED, "Wrong username or password, or the account is not active.".into())
        }
        Ok(LoginOutcome::Throttled(wait)) => again(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed sign-ins: wait {} seconds and try again.", wait.as_secs().max(1)),
        ),
        Err(e) => {
            tracing::error!(error = %e, "login failed");
            again(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on the server; try again.".into())
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

pub async fn logout(State(state): State<Arc<AppState>>, caller: PageCaller, Form(f): Form<CsrfForm>) -> Response {
    if let Err(r) = caller.check_csrf(&f.csrf) {
        return r;
    }
    if let Err(e) = state.auth.logout(&state.db, &caller.principal, caller.source.to_string()).await {
        tracing::error!(error = %e, "logout failed");
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cw_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

#[derive(Deserialize, Default)]
pub struct HomeQuery {
    welcome: Option<String>,
}

pub async fn home(State(state): State<Arc<AppState>>, caller: PageCaller, Query(q): Query<HomeQuery>) -> Response {
    let base = base_context(&state, Some(&caller), "home").await;
    let settings = state.settings.get(&state.db).await.unwrap_or_default();
    let login_message = (q.welcome.is_some() && settings.login_message.active).then(|| settings.login_message.clone());
    render("home.html", with(base, context! { login_message => minijinja::Value::from_serialize(&login_message) }))
}

#[derive(Deserialize, Default)]
pub struct TokenQuery {
    token: Option<String>,
}

pub async fn register_form(State(state): State<Arc<AppState>>, Query(q): Query<TokenQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    let base = base_context(&state, None, "register").await;
    render("register.html", with(base, context! { bootstrap => token.starts_with(BOOTSTRAP_PREFIX), token }))
}

#[derive(Deserialize)]
pub struct RegisterForm {
    token: String,
    password: String,
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

pub async fn register_submit(
    State(state): State<Arc<AppState>>,
    Source(addr): Source,
    Form(f): Form<RegisterForm>,
) -> Response {
    let bootstrap = f.token.starts_with(BOOTSTRAP_PREFIX);
    let req = RegisterRequest {
        token: f.token.clone(),
        password: f.password,
        username: if bootstrap { f.username } else { None },
        email: if bootstrap { f.email } else { None },
        first_name: f.first_name.filter(|s| !s.is_empty()),
        last_name: f.last_name.filter(|s| !s.is_empty()),
    };
    let base = base_context(&state, None, "register").await;
    match state.auth.register(&state.db, req, addr.to_string()).await {
        Ok(user) => {
            let text = format!("Welcome, {}. You can now sign in.", user.username);
            let mut r = render(
                "message.html",
                with(
                    base,
                    context! { heading => "Registered", text, link => context! { href => "/login", text => "Sign in" } },
                ),
            );
            *r.status_mut() = StatusCode::CREATED;
            r
        }
        Err(e) => form_error(e, |error, status| {
            let mut r =
                render("register.html", with(base.clone(), context! { bootstrap, token => f.token.clone(), error }));
            *r.status_mut() = status;
            r
        }),
    }
}

pub async fn reset_form(State(state): State<Arc<AppState>>, Query(q): Query<TokenQuery>) -> Response {
    let base = base_context(&state, None, "reset").await;
    render("reset.html", with(base, context! { token => q.token.unwrap_or_default() }))
}

#[derive(Deserialize)]
pub struct ResetForm {
    token: String,
    password: String,
}

pub async fn reset_submit(
    State(state): State<Arc<AppState>>,
    Source(addr): Source,
    Form(f): Form<ResetForm>,
) -> Response {
    let base = base_context(&state, None, "reset").await;
    match state.auth.reset(&state.db, &f.token, f.password, addr.to_string()).await {
        Ok(_) => message(
            base,
            StatusCode::OK,
            "Password set",
            "Your password is set and you were signed out everywhere. Sign in again.",
        ),
        Err(e) => form_error(e, |error, status| {
            let mut r = render("reset.html", with(base.clone(), context! { token => f.token.clone(), error }));
            *r.status_mut() = status;
            r
        }),
    }
}

/// Shows a domain error in the form it came from, with the API's status and message.
pub fn form_error(e: StoreError, render: impl Fn(String, StatusCode) -> Response) -> Response {
    let api = crate::api::error::ApiError::from(e);
    let message = if api.status.is_server_error() {
        "Something went wrong on the server; try again.".to_owned()
    } else {
        api.detail
    };
    render(message, api.status)
}
