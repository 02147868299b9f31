//! The Labs pages: every user sees the labs they may see (their own, or all of them for admins and
//! troubleshooters) read-only; the controls appear where `authorize()` allows them — managing labs
//! and memberships (`update-site-groups`), storage roots and the Unix account (the
//! `storage-roots` setting), browsing the data roots (`import-data` under the lab's policy). The
//! controls call the REST API (static/manage.js, static/browser.js), whose domain functions check
//! again.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use cryowarden_core::{
    Activity, Actor, DataAction, DataScope, ImportPolicy, LabRole, Resource, TargetUser, UserId,
};
use minijinja::{Value, context};

use super::{PageCaller, allows, base_context, error_page, page_id, render, with};
use crate::error::StoreError;
use crate::labs::{self, members, roots};
use crate::state::AppState;

/// Whether the viewer manages labs: creates, renames, deletes them and exports their members.
fn manages_labs(actor: &Actor) -> bool {
    allows(actor, Activity::UpdateSiteGroups, &Resource::instance())
}

fn policies() -> Vec<&'static str> {
    ImportPolicy::ALL.iter().map(|p| p.as_str()).collect()
}

fn lab_roles() -> Vec<&'static str> {
    LabRole::ALL.iter().map(|r| r.as_str()).collect()
}

/// `/labs`: the labs the viewer may see, and the form to create one.
pub async fn labs_page(State(state): State<Arc<AppState>>, caller: PageCaller) -> Response {
    let base = base_context(&state, Some(&caller), "labs").await;
    let list = match labs::list(&state.db, &caller.ctx()).await {
        Ok(l) => l,
        Err(e) => return error_page(base, e),
    };
    let actor = caller.principal.actor();
    render(
        "labs.html",
        with(
            base,
            context! {
                labs => Value::from_serialize(&list),
                can => context! { create => manages_labs(&actor) },
                policies => policies(),
            },
        ),
    )
}

/// `/labs/{id}`: one lab, its members, its storage, and the browser of its data roots.
pub async fn lab_page(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Path(raw): Path<String>,
) -> Response {
    let base = base_context(&state, Some(&caller), "labs").await;
    let Some(id) = page_id(&raw) else {
        return error_page(base, StoreError::NotFound { what: "lab" });
    };
    let ctx = caller.ctx();
    let lab = match labs::show(&state.db, &ctx, id).await {
        Ok(l) => l,
        Err(e) => return error_page(base, e),
    };
    let list = match members::list(&state.db, &ctx, id).await {
        Ok(m) => m,
        Err(e) => return error_page(base, e),
    };
    let actor = caller.principal.actor();
    let my_role = list
        .iter()
        .find(|m| m.user_id == actor.user.0)
        .and_then(|m| LabRole::parse(&m.lab_role));
    let rows: Vec<Value> = list
        .iter()
        .map(|m| {
            let target = Resource {
                target: Some(TargetUser {
                    id: UserId(m.user_id),
                    site_role: m.site_role,
                }),
                ..Resource::instance()
            };
            context! {
                member => Value::from_serialize(m),
                manage => allows(&actor, Activity::UpdateSiteGroups, &target),
            }
        })
        .collect();
    let import = allows(
        &actor,
        DataAction::ImportData,
        &Resource::data(DataScope::lab(my_role, lab.import_policy)),
    );
    let can = context! {
        manage => manages_labs(&actor),
        storage => allows(&actor, roots::ACTION, &Resource::instance()),
        browse => import,
    };
    render(
        "lab.html",
        with(
            base,
            context! {
                lab => Value::from_serialize(&lab),
                members => rows,
                my_role => my_role.map(cryowarden_core::LabRole::as_str),
                can,
                policies => policies(),
                lab_roles => lab_roles(),
                data_roots_text => lab.data_roots.join("\n"),
            },
        ),
    )
}
