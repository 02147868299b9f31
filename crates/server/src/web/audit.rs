//! The admin panel's Audit Log tab (`/admin/audit`, the `audit-log` setting): the filter form,
//! the events newest first with a cursor to older ones, export links (the API's streamed
//! export, recorded as `export-audit-log`), whether the hash chain verifies, and the
//! maintenance section (`audit-log-maintenance`: policy and archives; the forms only where
//! `authorize()` would allow the change — Site Admins; the domain functions check again).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cryowarden_core::{Action, Resource, Setting};
use minijinja::{Value, context};
use serde::Deserialize;

use super::panel::gate;
use super::{PageCaller, allows, render, urlencode, with};
use crate::audit::{self, ArchiveRequest, Filter, Policy};
use crate::state::AppState;

const READ: Action = Action::ReadSetting(Setting::AuditLog);
const READ_MAINT: Action = Action::ReadSetting(Setting::AuditLogMaintenance);
const CHANGE_MAINT: Action = Action::ChangeSetting {
    setting: Setting::AuditLogMaintenance,
    field: None,
};

/// The page's query: the list's filters, and a notice after a form.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PageQuery {
    actor: Option<String>,
    impersonator: Option<String>,
    action: Option<String>,
    target: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    limit: Option<String>,
    notice: Option<String>,
    /// `1`: verify the whole chain from its anchor (else only the events since the last check).
    full: Option<String>,
}

impl PageQuery {
    fn filter(&self) -> Filter {
        Filter {
            actor: self.actor.clone(),
            impersonator: self.impersonator.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: self.outcome.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            before: self.before.clone(),
            limit: self.limit.clone(),
        }
    }

    /// The filters as a query string (without `before`, `limit` and the notice).
    fn filter_query(&self) -> String {
        [
            ("actor", &self.actor),
            ("impersonator", &self.impersonator),
            ("action", &self.action),
            ("target", &self.target),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", urlencode(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// A domain error as the page says it: its text and the API's status (server errors say only
/// that something went wrong, as `pages::form_error` does).
fn problem(e: crate::error::StoreError) -> (String, StatusCode) {
    let api = crate::http::error::ApiError::from(e);
    let text = if api.status.is_server_error() {
        "Something went wrong on the server; try again.".to_owned()
    } else {
        api.detail
    };
    (text, api.status)
}

fn join_query(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("&")
}

async fn page(
    state: &AppState,
    caller: &PageCaller,
    base: Value,
    q: PageQuery,
    error: Option<String>,
) -> Response {
    let actor = caller.principal.actor();
    let (events, next, mut status, mut error) = match audit::list(&state.db, &q.filter()).await {
        Ok((events, next)) => (events, next, StatusCode::OK, error),
        Err(e) => {
            let (text, status) = problem(e);
            (Vec::new(), None, status, Some(text))
        }
    };
    if error.is_some() && status == StatusCode::OK {
        status = StatusCode::UNPROCESSABLE_ENTITY;
    }
    let full = q.full.as_deref().is_some_and(|f| !f.is_empty() && f != "0");
    let chain = match audit::verify_for_page(&state.db, full).await {
        Ok(p) => {
            let v = p.verification;
            context! {
                ok => v.ok, events => v.events, first_broken => v.first_broken, problem => v.problem,
                anchored_after => v.anchored_after, full => p.full, last_full => p.last_full,
                last_full_seq => p.last_full_seq, verified_through => p.verified_through,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "audit page: verification failed to run");
            error.get_or_insert_with(|| {
                "The chain could not be checked; see the server log.".into()
            });
            context! { ok => false, events => 0, problem => "the check did not run" }
        }
    };
    let rows: Vec<Value> = events
        .into_iter()
        .map(|e| {
            let by = match &e.impersonator {
                Some(i) => format!("{i} as {}", e.actor),
                None => String::new(),
            };
            let target = match (&e.target, &e.target_id) {
                (Some(t), Some(id)) if t != id => format!("{} {t} (#{id})", e.target_kind),
                (Some(t), _) => format!("{} {t}", e.target_kind),
                (None, Some(id)) => format!("{} {id}", e.target_kind),
                (None, None) => e.target_kind.clone(),
            };
            context! { seq => e.seq, at => e.at, actor => e.actor, impersonated => by, action => e.action, target, outcome => e.outcome, reason => e.reason }
        })
        .collect();
    let filters = q.filter_query();
    let limit = q
        .limit
        .as_deref()
        .filter(|l| !l.is_empty())
        .map(|l| format!("limit={}", urlencode(l)));
    let next_href = next.map(|n| {
        let before = format!("before={n}");
        format!(
            "/admin/audit?{}",
            join_query(&[&filters, limit.as_deref().unwrap_or(""), &before])
        )
    });
    let export = |format: &str| {
        let f = format!("format={format}");
        format!("/api/v1/audit/export?{}", join_query(&[&f, &filters]))
    };
    let maintenance = if allows(&actor, READ_MAINT, &Resource::instance()) {
        match audit::maintenance(&state.db, &state.config.data_dir, &caller.ctx()).await {
            Ok(m) => Value::from_serialize(&m),
            Err(e) => {
                tracing::error!(error = %e, "audit page: maintenance failed to load");
                Value::from(())
            }
        }
    } else {
        Value::from(())
    };
    let mut r = render(
        "admin_audit.html",
        with(
            base,
            context! {
                current_tab => "audit", rows, next_href, chain, error, maintenance,
                notice => q.notice.clone().filter(|n| !n.is_empty()),
                export_csv => export("csv"), export_json => export("json"),
                q => context! {
                    actor => q.actor.clone().unwrap_or_default(), impersonator => q.impersonator.clone().unwrap_or_default(),
                    action => q.action.clone().unwrap_or_default(), target => q.target.clone().unwrap_or_default(),
                    outcome => q.outcome.clone().unwrap_or_default(), from => q.from.clone().unwrap_or_default(),
                    to => q.to.clone().unwrap_or_default(),
                },
                can_maintain => allows(&actor, CHANGE_MAINT, &Resource::instance()),
            },
        ),
    );
    if status != StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}

/// `/admin/audit`.
pub async fn audit_page(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Query(q): Query<PageQuery>,
) -> Response {
    let base = match gate(&state, &caller, READ, Resource::instance()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    page(&state, &caller, base, q, None).await
}

#[derive(Deserialize)]
pub struct PolicyForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    keep_days: String,
}

/// The maintenance section's policy form.
pub async fn policy_submit(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Form(f): Form<PolicyForm>,
) -> Response {
    let base = match gate(&state, &caller, READ, Resource::instance()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = caller.check_csrf(&f.csrf) {
        return r;
    }
    let result = match f.keep_days.trim().parse::<i64>() {
        Ok(keep_days) => audit::set_policy(&state.db, &caller.ctx(), Policy { keep_days })
            .await
            .map(|_| ()),
        Err(_) => Err(crate::error::StoreError::invalid(
            "keep_days",
            "must be a whole number of days (0 keeps all)",
        )),
    };
    match result {
        Ok(()) => Redirect::to("/admin/audit?notice=Retention+policy+saved.").into_response(),
        Err(e) => failed(&state, &caller, base, e).await,
    }
}

#[derive(Deserialize)]
pub struct ArchiveForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    before: String,
}

/// The maintenance section's archive button.
pub async fn archive_submit(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Form(f): Form<ArchiveForm>,
) -> Response {
    let base = match gate(&state, &caller, READ, Resource::instance()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = caller.check_csrf(&f.csrf) {
        return r;
    }
    let before = Some(f.before.trim().to_owned()).filter(|b| !b.is_empty());
    match audit::archive(
        &state.db,
        &state.config.data_dir,
        &caller.ctx(),
        ArchiveRequest { before },
    )
    .await
    {
        Ok(out) => {
            let notice = match out.anchor {
                Some(a) => format!(
                    "Archived {} events (#{}..#{}) to {}.",
                    out.archived, a.first_seq, a.seq, a.file
                ),
                None => format!("No events before {} to archive.", out.before),
            };
            Redirect::to(&format!("/admin/audit?notice={}", urlencode(&notice))).into_response()
        }
        Err(e) => failed(&state, &caller, base, e).await,
    }
}

/// The page again, with what is stored (nothing changed) and the reason.
async fn failed(
    state: &AppState,
    caller: &PageCaller,
    base: Value,
    e: crate::error::StoreError,
) -> Response {
    let (text, code) = problem(e);
    let mut r = page(state, caller, base, PageQuery::default(), Some(text)).await;
    *r.status_mut() = code;
    r
}
