//! The few server-rendered pages this build has: registration and password reset with a token
//! (the first Site Admin registers here from the URL printed at start), and a landing page.
//! Forms post to the same domain code as the API.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use serde::Deserialize;

use crate::api::extract::Source;
use crate::app::AppState;
use crate::auth::RegisterRequest;
use crate::error::StoreError;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t} · cryowarden</title><style>body{{font:16px system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
         label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.4rem;font:inherit}}button{{margin-top:1rem;padding:.5rem 1rem;font:inherit}}\
         .error{{color:#a00}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    ))
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

pub async fn home() -> Html<String> {
    page(
        "cryowarden",
        "<p>The control plane of this cryo-EM facility. The API is at <a href=\"/api/v1/openapi.json\">/api/v1</a>; \
        scripts use the <code>cryowarden</code> command with an API token.</p>",
    )
}

pub async fn register_form(Query(q): Query<TokenQuery>) -> Html<String> {
    register_page(q.token.as_deref().unwrap_or(""), None)
}

fn register_page(token: &str, error: Option<&str>) -> Html<String> {
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let bootstrap = token.starts_with(crate::secrets::BOOTSTRAP_PREFIX);
    let identity = if bootstrap {
        "<p>This registers the first Site Admin of this instance.</p>\
         <label for=username>Username</label><input id=username name=username required maxlength=64 autocomplete=username>\
         <label for=email>Email</label><input id=email name=email type=email required maxlength=254>"
    } else {
        ""
    };
    page(
        "Register",
        &format!(
            "{error}<form method=post action=\"/register\"><input type=hidden name=token value=\"{}\">{identity}\
         <label for=first_name>First name</label><input id=first_name name=first_name maxlength=100>\
         <label for=last_name>Last name</label><input id=last_name name=last_name maxlength=100>\
         <label for=password>Password (at least 12 characters; a passphrase is best)</label>\
         <input id=password name=password type=password required minlength=12 maxlength=256 autocomplete=new-password>\
         <button type=submit>Register</button></form>",
            escape(token)
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
) -> (StatusCode, Html<String>) {
    let bootstrap = f.token.starts_with(crate::secrets::BOOTSTRAP_PREFIX);
    let req = RegisterRequest {
        token: f.token.clone(),
        password: f.password,
        username: if bootstrap { f.username } else { None },
        email: if bootstrap { f.email } else { None },
        first_name: f.first_name.filter(|s| !s.is_empty()),
        last_name: f.last_name.filter(|s| !s.is_empty()),
    };
    match state.auth.register(&state.db, req, addr.to_string()).await {
        Ok(user) => (
            StatusCode::CREATED,
            page("Registered", &format!("<p>Welcome, {}. You can now sign in.</p>", escape(&user.username))),
        ),
        Err(e) => form_error(e, |msg| register_page(&f.token, Some(msg))),
    }
}

pub async fn reset_form(Query(q): Query<TokenQuery>) -> Html<String> {
    reset_page(q.token.as_deref().unwrap_or(""), None)
}

fn reset_page(token: &str, error: Option<&str>) -> Html<String> {
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    page(
        "Reset password",
        &format!(
            "{error}<form method=post action=\"/reset\"><input type=hidden name=token value=\"{}\">\
         <label for=password>New password (at least 12 characters)</label>\
         <input id=password name=password type=password required minlength=12 maxlength=256 autocomplete=new-password>\
         <button type=submit>Set password</button></form>",
            escape(token)
        ),
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
) -> (StatusCode, Html<String>) {
    match state.auth.reset(&state.db, &f.token, f.password, addr.to_string()).await {
        Ok(_) => (
            StatusCode::OK,
            page("Password set", "<p>Your password is set; you were signed out everywhere. Sign in again.</p>"),
        ),
        Err(e) => form_error(e, |msg| reset_page(&f.token, Some(msg))),
    }
}

fn form_error(e: StoreError, render: impl Fn(&str) -> Html<String>) -> (StatusCode, Html<String>) {
    let api = crate::api::error::ApiError::from(e);
    let status = api.status;
    let message =
        if status.is_server_error() { "Something went wrong on the server; try again.".to_owned() } else { api.detail };
    (status, render(&message))
}
