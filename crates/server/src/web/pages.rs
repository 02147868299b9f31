//! Sign-in, sign-out, home, and registration / reset with a token.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::{PageCaller, base_context, message, render, with};
use crate::auth::{LoginOutcome, RegisterRequest};
use crate::http::extract::{Source, constant_time_eq};
use crate::secrets::BOOTSTRAP_PREFIX;
use crate::state::AppState;

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only local paths are followed after sign-in, and absolute URLs on the admin console's
/// external redirect hosts.
async fn safe_next(state: &AppState, next: Option<&str>) -> String {
    let hosts = crate::console::redirects::hosts(&state.db)
        .await
        .unwrap_or_default();
    crate::console::redirects::safe_next(next, &hosts)
}

/// The sign-in page's CSP: the pages' own, with `form-action` also allowing the external
/// redirect hosts (browsers apply `form-action` to the redirect that follows the post).
async fn with_login_csp(state: &AppState, mut r: Response) -> Response {
    let hosts = crate::console::redirects::hosts(&state.db)
        .await
        .unwrap_or_default();
    if !hosts.is_empty() {
        let extra: String = hosts
            .iter()
            .map(|h| format!(" https://{h} http://{h}"))
            .collect();
        let csp = crate::http::headers::PAGE_CSP
            .replace("form-action 'self'", &format!("form-action 'self'{extra}"));
        if let Ok(v) = HeaderValue::from_str(&csp) {
            r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    r
}

/// The pre-session cookie of the sign-in form (login CSRF): a random value set by `GET /login`,
/// echoed in the form's `_login` field, `HttpOnly` and `SameSite=Strict`, scoped to `/login`.
/// A page of another site can neither read it nor make the browser send it cross-site, so its
/// forged sign-in form is refused before any password is checked.
pub const LOGIN_COOKIE: &str = "cw_login";
const LOGIN_PREFIX: &str = "cwl_";

/// The pre-session token the request's cookie carries, if it has the right form.
fn login_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == LOGIN_COOKIE && v.len() == LOGIN_PREFIX.len() + 64 && v.starts_with(LOGIN_PREFIX))
                .then_some(v)
        })
}

/// The form's token: the browser's own, or a new one with the cookie to set.
fn login_token(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(t) = login_cookie(headers) {
        return (t.to_owned(), None);
    }
    let token = crate::secrets::Secret::generate(LOGIN_PREFIX)
        .expose()
        .to_owned();
    let secure = if state.config.base_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{LOGIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/login{secure}");
    (token, HeaderValue::from_str(&cookie).ok())
}

/// Whether a sign-in form post came from this server's own sign-in page: the browser says it
/// is not cross-site or same-site (`Sec-Fetch-Site`, when sent), and the form echoes the
/// pre-session cookie.
fn login_post_is_ours(headers: &HeaderMap, sent: &str) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or(""));
    if fetch_site.is_some_and(|v| !matches!(v, "same-origin" | "none")) {
        return false;
    }
    login_cookie(headers).is_some_and(|c| constant_time_eq(c.as_bytes(), sent.as_bytes()))
}

pub async fn login_form(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let base = base_context(&state, None, "login").await;
    let (login_token, set_cookie) = login_token(&state, &headers);
    let mut r = render(
        "login.html",
        with(
            base,
            context! { next => safe_next(&state, q.next.as_deref()).await, username => "", login_token },
        ),
    );
    if let Some(c) = set_cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    with_login_csp(&state, r).await
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
    /// The "I accept" checkbox of the terms of use.
    accept_terms: Option<String>,
    /// The pre-session token (see [`LOGIN_COOKIE`]).
    #[serde(rename = "_login", default)]
    login_token: String,
}

pub async fn login_submit(
    State(state): State<Arc<AppState>>,
    Source(addr): Source,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let r = sign_in(&state, addr, &headers, f).await;
    with_login_csp(&state, r).await
}

async fn sign_in(
    state: &Arc<AppState>,
    addr: std::net::IpAddr,
    headers: &HeaderMap,
    f: LoginForm,
) -> Response {
    let state = state.clone();
    let base = base_context(&state, None, "login").await;
    if !login_post_is_ours(headers, &f.login_token) {
        tracing::warn!(source = %addr, "sign-in form refused: not posted from this server's sign-in page");
        let mut r = render(
            "message.html",
            with(
                base,
                context! { heading => "Sign-in refused",
                text => "This sign-in form did not come from this server's sign-in page (another site sent it, or the page is stale). Open the sign-in page and sign in there.",
                link => context! { href => "/login", text => "Go to the sign-in page" } },
            ),
        );
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let next = safe_next(&state, f.next.as_deref()).await;
    let login_token = f.login_token.clone();
    let again = |status: StatusCode, error: String| {
        let mut r = render(
            "login.html",
            with(
                base.clone(),
                context! { next => next.clone(), username => f.username.clone(), error, login_token => login_token.clone() },
            ),
        );
        *r.status_mut() = status;
        r
    };
    if f.username.is_empty() || f.username.len() > 64 || f.password.len() > 1024 {
        return again(
            StatusCode::UNAUTHORIZED,
            "Wrong username or password.".into(),
        );
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let accept = f.accept_terms.as_deref() == Some("on");
    match state
        .auth
        .login(&state.db, &f.username, f.password.clone(), addr, ua, accept)
        .await
    {
        Ok(LoginOutcome::TermsRequired { text, version }) => {
            let mut r = render(
                "login.html",
                with(
                    base.clone(),
                    context! { next => next.clone(), username => f.username.clone(), terms => context! { text, version },
                    login_token => login_token.clone(),
                    error => if accept { "" } else { "Accept the terms of use to sign in." } },
                ),
            );
            *r.status_mut() = StatusCode::FORBIDDEN;
            r
        }
        Ok(LoginOutcome::Session {
            token, expires_at, ..
        }) => {
            let secure = if state.config.base_url().starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let max_age = (expires_at - crate::db::now_ms()) / 1000;
            let cookie = format!(
                "cw_session={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
                token.expose()
            );
            let target = if next == "/" {
                "/?welcome=1".to_owned()
            } else {
                next.clone()
            };
            // `safe_next` gives a valid header value; should it ever not, home rather than a 500.
            let location =
                HeaderValue::from_str(&target).unwrap_or(HeaderValue::from_static("/?welcome=1"));
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(LoginOutcome::Refused) => again(
            StatusCode::UNAUTHORIZED,
            "Wrong username or password, or the account is not active.".into(),
        ),
        Ok(LoginOutcome::Throttled(wait)) => again(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-ins: wait {} seconds and try again.",
                wait.as_secs().max(1)
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "login failed");
            again(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on the server; try again.".into(),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = caller.check_csrf(&f.csrf) {
        return r;
    }
    if let Err(e) = state
        .auth
        .logout(&state.db, &caller.principal, caller.source.to_string())
        .await
    {
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

pub async fn home(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Query(q): Query<HomeQuery>,
) -> Response {
    let base = base_context(&state, Some(&caller), "home").await;
    let settings = state.settings.get(&state.db).await.unwrap_or_default();
    let login_message = (q.welcome.is_some() && settings.login_message.active)
        .then(|| settings.login_message.clone());
    render(
        "home.html",
        with(
            base,
            context! { login_message => minijinja::Value::from_serialize(&login_message) },
        ),
    )
}

#[derive(Deserialize, Default)]
pub struct TokenQuery {
    token: Option<String>,
}

pub async fn register_form(
    State(state): State<Arc<AppState>>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    let base = base_context(&state, None, "register").await;
    render(
        "register.html",
        with(
            base,
            context! { bootstrap => token.starts_with(BOOTSTRAP_PREFIX), token },
        ),
    )
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
        Err(e) => super::form_error(e, |error, status| {
            let mut r = render(
                "register.html",
                with(
                    base.clone(),
                    context! { bootstrap, token => f.token.clone(), error },
                ),
            );
            *r.status_mut() = status;
            r
        }),
    }
}

pub async fn reset_form(
    State(state): State<Arc<AppState>>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let base = base_context(&state, None, "reset").await;
    render(
        "reset.html",
        with(base, context! { token => q.token.unwrap_or_default() }),
    )
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
    match state
        .auth
        .reset(&state.db, &f.token, f.password, addr.to_string())
        .await
    {
        Ok(_) => message(
            base,
            StatusCode::OK,
            "Password set",
            "Your password is set and you were signed out everywhere. Sign in again.",
        ),
        Err(e) => super::form_error(e, |error, status| {
            let mut r = render(
                "reset.html",
                with(base.clone(), context! { token => f.token.clone(), error }),
            );
            *r.status_mut() = status;
            r
        }),
    }
}
