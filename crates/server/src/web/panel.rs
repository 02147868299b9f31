//! The admin panel's frame: which tabs a viewer sees, and the one gate every tab passes (a clear
//! 403 page for a role the tab is not open to, the refusal audited through `Ctx::authorize`).

use axum::http::StatusCode;
use axum::response::Response;
use cryowarden_core::{Action, Activity, Actor, DataAction, DataScope, Resource, Setting};
use minijinja::{Value, context};

use super::{PageCaller, allows, base_context, message, opens_admin_panel, with};
use crate::state::AppState;

/// Reading the Cluster Configuration tab.
pub(crate) const READ_VARS: Action = Action::ReadSetting(Setting::ClusterCustomVariables);
/// Reading the Lane Restrictions tab.
pub(crate) const READ_LANES: Action = Action::ReadSetting(Setting::LaneRestrictions);

fn allowed_here(actor: &Actor, action: Action, resource: Resource) -> bool {
    allows(actor, action, &resource)
}

/// The question `jobs::list` asks before listing the whole instance's jobs: may the actor see
/// every project (a project in which they have no standing)?
pub(crate) fn sees_every_project(actor: &Actor) -> bool {
    allows(
        actor,
        DataAction::ViewProject,
        &Resource::data(DataScope::default()),
    )
}

/// The tabs this viewer sees: every page of the admin panel, whichever module renders it, lists
/// these.
pub(crate) fn tabs(actor: &Actor) -> Value {
    let mut tabs = Vec::new();
    let read = |s| allowed_here(actor, Action::ReadSetting(s), Resource::instance());
    if crate::console::opens(actor) {
        tabs.push(context! { id => "console", title => "Admin Console", href => "/admin/console" });
    }
    if read(Setting::LookAndFeel) || read(Setting::Scheduler) || read(Setting::SystemMaintenance) {
        tabs.push(
            context! { id => "settings", title => "Instance Settings", href => "/admin/settings" },
        );
    }
    if read(Setting::InstanceLogs) {
        tabs.push(context! { id => "logs", title => "Instance Logs", href => "/admin/logs" });
    }
    if allowed_here(actor, Activity::ViewUser.into(), Resource::instance()) {
        tabs.push(context! { id => "users", title => "User Management", href => "/admin/users" });
    }
    if allowed_here(actor, Activity::CreateUser.into(), Resource::instance()) {
        tabs.push(
            context! { id => "new-user", title => "Create New User", href => "/admin/users/new" },
        );
    }
    if allowed_here(
        actor,
        Activity::UpdateSitePermissions.into(),
        Resource::instance(),
    ) {
        tabs.push(
            context! { id => "explain", title => "Permission Explainer", href => "/admin/explain" },
        );
    }
    if read(Setting::AuditLog) {
        tabs.push(context! { id => "audit", title => "Audit Log", href => "/admin/audit" });
    }
    if allows(actor, READ_VARS, &Resource::instance()) {
        tabs.push(context! { id => "cluster", title => "Cluster Configuration", href => "/admin/cluster" });
    }
    if allows(actor, READ_LANES, &Resource::instance()) {
        tabs.push(context! { id => "lanes", title => "Lane Restrictions", href => "/admin/lanes" });
    }
    if sees_every_project(actor) {
        tabs.push(context! { id => "jobs", title => "Current Jobs", href => "/admin/jobs" });
    }
    Value::from(tabs)
}

/// Refuses a tab to those without its access: a clear 403 page, and the refusal audited through
/// `Ctx::authorize`. Allowed, the page's base context with the viewer's tabs.
pub(crate) async fn gate(
    state: &AppState,
    caller: &PageCaller,
    needed: Action,
    resource: Resource,
) -> Result<Value, Response> {
    let actor = caller.principal.actor();
    let base = base_context(state, Some(caller), "admin").await;
    if !opens_admin_panel(&actor) || !allows(&actor, needed, &resource) {
        crate::console::record_tab_refusal(state, &caller.ctx(), needed, resource).await;
        return Err(message(
            base,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This part of the admin panel is not open to your role. Ask a facility admin if you need it.",
        ));
    }
    Ok(with(base, context! { tabs => tabs(&actor) }))
}
