//! Impersonation from the pages: the "Impersonate" buttons of User Management (a user, or a role
//! for those who may), and the banner's "Stop impersonating" (`crate::impersonation`).

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{PageCaller, base_context, error_page, message};
use crate::impersonation::{self, StartRequest};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct StartForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    user: Option<i64>,
    role: Option<String>,
    group: Option<i64>,
}

pub async fn start(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Form(f): Form<StartForm>,
) -> Response {
    if let Err(r) = caller.check_csrf(&f.csrf) {
        return r;
    }
    let base = base_context(&state, Some(&caller), "admin").await;
    let minutes = match crate::console::site::impersonation_minutes(&state.db).await {
        Ok(m) => m,
        Err(e) => return error_page(base, e),
    };
    let req = StartRequest {
        user: f.user,
        role: f.role.filter(|r| !r.is_empty()),
        group: f.group,
        project: None,
        workspace: None,
    };
    match impersonation::start(&state.db, &caller.principal, &caller.ctx(), req, minutes).await {
        Ok(_) => {
            state.auth.forget_user(caller.principal.real_user().id);
            Redirect::to("/").into_response()
        }
        Err(e) => error_page(base, e),
    }
}

#[derive(Deserialize)]
pub struct StopForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

pub async fn stop(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Form(f): Form<StopForm>,
) -> Response {
    if let Err(r) = caller.check_csrf(&f.csrf) {
        return r;
    }
    match impersonation::stop(
        &state.db,
        &caller.principal,
        caller.source.to_string(),
        "stopped",
    )
    .await
    {
        Ok(_) => {
            state.auth.forget_user(caller.principal.real_user().id);
            Redirect::to("/").into_response()
        }
        Err(e) => {
            let base = base_context(&state, Some(&caller), "home").await;
            tracing::error!(error = %e, "stopping an impersonation failed");
            message(
                base,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Sign out to end the impersonation.",
            )
        }
    }
}
