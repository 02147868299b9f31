//! The web UI: server-rendered pages (minijinja templates, escaped by default) that call the
//! same domain functions, and so the same authorization, as the REST API. Forms carry the
//! session's CSRF token; the few scripts call the REST API with it.

pub mod admin;
pub mod audit;
pub mod console;
pub mod impersonation;
pub mod jobs;
pub mod labs;
pub mod pages;
pub mod panel;
pub mod projects;

use std::sync::{Arc, LazyLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{Environment, Value, context};

use crate::auth::{Principal, Via};
use crate::http::extract::{Source, constant_time_eq, session_cookie};
use crate::settings::PublicInstance;
use crate::state::AppState;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../../templates/base.html")),
        ("login.html", include_str!("../../templates/login.html")),
        ("home.html", include_str!("../../templates/home.html")),
        ("message.html", include_str!("../../templates/message.html")),
        (
            "register.html",
            include_str!("../../templates/register.html"),
        ),
        ("reset.html", include_str!("../../templates/reset.html")),
        (
            "admin_tabs.html",
            include_str!("../../templates/admin_tabs.html"),
        ),
        (
            "admin_settings.html",
            include_str!("../../templates/admin_settings.html"),
        ),
        (
            "admin_users.html",
            include_str!("../../templates/admin_users.html"),
        ),
        (
            "admin_user_new.html",
            include_str!("../../templates/admin_user_new.html"),
        ),
        (
            "admin_logs.html",
            include_str!("../../templates/admin_logs.html"),
        ),
        (
            "admin_explain.html",
            include_str!("../../templates/admin_explain.html"),
        ),
        (
            "admin_audit.html",
            include_str!("../../templates/admin_audit.html"),
        ),
        ("labs.html", include_str!("../../templates/labs.html")),
        ("lab.html", include_str!("../../templates/lab.html")),
        (
            "projects.html",
            include_str!("../../templates/projects.html"),
        ),
        ("project.html", include_str!("../../templates/project.html")),
        (
            "admin_cluster.html",
            include_str!("../../templates/admin_cluster.html"),
        ),
        (
            "admin_lanes.html",
            include_str!("../../templates/admin_lanes.html"),
        ),
        (
            "admin_jobs.html",
            include_str!("../../templates/admin_jobs.html"),
        ),
        (
            "admin_console.html",
            include_str!("../../templates/admin_console.html"),
        ),
    ] {
        env.add_template(name, source).expect("templates parse");
    }
    env
});

/// Renders a template; a template error is logged and shown as a bare 500.
pub fn render(name: &str, ctx: Value) -> Response {
    match TEMPLATES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "an internal error occurred; it has been logged",
            )
                .into_response()
        }
    }
}

/// The signed-in browser user of a page. No session: a redirect to the sign-in page.
pub struct PageCaller {
    pub principal: Arc<Principal>,
    pub source: std::net::IpAddr,
}

impl PageCaller {
    pub fn csrf(&self) -> &str {
        match &self.principal.via {
            Via::Session { csrf, .. } => csrf,
            Via::Token { .. } => "",
        }
    }
    pub fn ctx(&self) -> crate::context::Ctx {
        self.principal.ctx(self.source.to_string())
    }
    /// Checks a form's `_csrf` field against the session.
    #[expect(
        clippy::result_large_err,
        reason = "the refusal is the page to answer with, as every page handler returns it"
    )]
    pub fn check_csrf(&self, sent: &str) -> Result<(), Response> {
        if !self.csrf().is_empty() && constant_time_eq(sent.as_bytes(), self.csrf().as_bytes()) {
            Ok(())
        } else {
            Err((
                StatusCode::FORBIDDEN,
                "The form's security token does not match your session: reload the page and try again.",
            )
                .into_response())
        }
    }
}

impl FromRequestParts<Arc<AppState>> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        let Source(source) = Source::from_request_parts(parts, state)
            .await
            .unwrap_or(Source([127, 0, 0, 1].into()));
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(axum::http::uri::PathAndQuery::as_str)
                .unwrap_or("/");
            Redirect::to(&format!("/login?next={}", urlencode(next))).into_response()
        };
        let Some(cookie) = session_cookie(parts) else {
            return Err(to_login());
        };
        match state.auth.resolve(&state.db, cookie).await {
            Ok(Some(principal)) if matches!(principal.via, Via::Session { .. }) => {
                Ok(PageCaller { principal, source })
            }
            Ok(_) => Err(to_login()),
            Err(e) => Err(crate::http::error::ApiError::from(e).into_response()),
        }
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The context every page shares: instance name, banner, maintenance notice, user, CSRF token.
pub async fn base_context(state: &AppState, caller: Option<&PageCaller>, nav: &str) -> Value {
    let settings = state.settings.get(&state.db).await.unwrap_or_default();
    let instance = PublicInstance::from(&settings);
    match caller {
        Some(c) => context! {
            instance => Value::from_serialize(&instance),
            user => Value::from_serialize(&c.principal.user),
            csrf => c.csrf(),
            admin_panel => opens_admin_panel(&c.principal.actor()),
            impersonating => c.principal.impersonating.as_ref().map(|i| Value::from_serialize(i.status(&c.principal.user))),
            nav => nav,
        },
        None => context! { instance => Value::from_serialize(&instance), nav => nav },
    }
}

/// Whether the admin panel (the key icon) is for this actor: they may read at least one setting
/// of the admin console (`spec/roles.md` §1), as `authorize()` decides.
pub fn opens_admin_panel(actor: &cryowarden_core::Actor) -> bool {
    use cryowarden_core::{Action, Resource, Setting, permits};
    Setting::ALL
        .iter()
        .any(|s| permits(actor, Action::ReadSetting(*s), &Resource::instance()))
}

/// Merges extra values into a base context.
pub fn with(base: Value, extra: Value) -> Value {
    context! { ..base, ..extra }
}

/// A page that says one thing.
pub fn message(base: Value, status: StatusCode, heading: &str, text: &str) -> Response {
    let mut r = render("message.html", with(base, context! { heading, text }));
    *r.status_mut() = status;
    r
}

/// A page for a domain error, with the API's status and message: a refusal that conceals (another
/// lab's project) is the same 404 page as an id that never existed; server errors say only that
/// something went wrong.
pub fn error_page(base: Value, e: crate::error::StoreError) -> Response {
    form_error(e, |text, status| {
        let heading = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            s if s.is_server_error() => "Something went wrong",
            _ => "Cannot show this page",
        };
        message(base.clone(), status, heading, &text)
    })
}

/// The id in a page's path; anything but a positive integer is no id at all.
pub fn page_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// Whether `authorize()` allows the action: for what a page merely shows (not audited).
pub fn allows(
    actor: &cryowarden_core::Actor,
    action: impl Into<cryowarden_core::Action>,
    resource: &cryowarden_core::Resource,
) -> bool {
    cryowarden_core::permits(actor, action.into(), resource)
}

/// The static files of the UI.
pub async fn static_file(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, ctype) = match name.as_str() {
        "style.css" => (
            include_str!("../../static/style.css"),
            "text/css; charset=utf-8",
        ),
        "admin.js" => (
            include_str!("../../static/admin.js"),
            "text/javascript; charset=utf-8",
        ),
        "logs.js" => (
            include_str!("../../static/logs.js"),
            "text/javascript; charset=utf-8",
        ),
        "errors.js" => (
            include_str!("../../static/errors.js"),
            "text/javascript; charset=utf-8",
        ),
        "browser.js" => (
            include_str!("../../static/browser.js"),
            "text/javascript; charset=utf-8",
        ),
        "manage.js" => (
            include_str!("../../static/manage.js"),
            "text/javascript; charset=utf-8",
        ),
        "jobs.js" => (
            include_str!("../../static/jobs.js"),
            "text/javascript; charset=utf-8",
        ),
        "console.js" => (
            include_str!("../../static/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Shows a domain error in the form it came from, with the API's status and message.
pub fn form_error(
    e: crate::error::StoreError,
    render: impl Fn(String, StatusCode) -> Response,
) -> Response {
    let api = crate::http::error::ApiError::from(e);
    let message = if api.status.is_server_error() {
        "Something went wrong on the server; try again.".to_owned()
    } else {
        api.detail
    };
    render(message, api.status)
}
