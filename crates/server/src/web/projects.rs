//! The Projects pages: the projects the viewer may see (paged and searchable, rendered from
//! `projects::list`), the form to create one in a lab where `authorize()` allows
//! `create-lab-project`, and a project's page — details, members, workspaces, the file browser and
//! data management. What each control shows is asked of `authorize()` with the viewer's standing
//! (`projects::standing`); a project the viewer may not see is the same 404 page as an unknown id.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use cryowarden_core::{
    Activity, Actor, DataAction, DataScope, LabRole, ProjectRole, Resource, SiteRole, TargetUser,
    UserId,
};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{PageCaller, allows, base_context, error_page, page_id, render, with};
use crate::context::Ctx;
use crate::error::StoreError;
use crate::labs::{self, Lab};
use crate::projects::{self, ListQuery, Project, ProjectStatus, members, workspaces};
use crate::state::AppState;

pub const PER_PAGE: i64 = 50;

/// The page's query, read leniently: the filter form sends empty fields.
#[derive(Deserialize, Default)]
pub struct ProjectsQuery {
    q: Option<String>,
    lab: Option<String>,
    status: Option<String>,
    page: Option<String>,
    /// The cursor of the previous page (the Next link sends it, so deep pages stay fast).
    after: Option<String>,
}

/// The labs in which the viewer may create a project (`create-lab-project` with their lab role).
async fn creatable_labs(
    state: &AppState,
    ctx: &Ctx,
    actor: &Actor,
    visible: &[Lab],
) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::new();
    for lab in visible {
        let may = |role: Option<LabRole>| {
            allows(
                actor,
                DataAction::CreateLabProject,
                &Resource::data(DataScope::lab(role, lab.import_policy)),
            )
        };
        // Facility staff may without a lab role: no need to look theirs up.
        let allowed = may(None) || may(labs::role_for(&state.db, lab.id, ctx).await?);
        if allowed {
            out.push(
                context! { id => lab.id, name => lab.name.clone(), title => lab.title.clone() },
            );
        }
    }
    Ok(out)
}

/// `/projects`: the projects the viewer may see, a page at a time.
pub async fn projects_page(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Query(q): Query<ProjectsQuery>,
) -> Response {
    let base = base_context(&state, Some(&caller), "projects").await;
    let ctx = caller.ctx();
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let lab = nonempty(&q.lab).and_then(|l| l.parse::<i64>().ok());
    let page_no = nonempty(&q.page)
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 1_000_000);
    let after = nonempty(&q.after);
    let query = ListQuery {
        lab,
        q: nonempty(&q.q),
        status: nonempty(&q.status),
        page: if after.is_some() { None } else { Some(page_no) },
        per_page: Some(PER_PAGE),
        after,
    };
    let page = match projects::list(&state.db, &ctx, &query).await {
        Ok(p) => p,
        Err(e) => return error_page(base, e),
    };
    let visible_labs = match labs::list(&state.db, &ctx).await {
        Ok(l) => l,
        Err(e) => return error_page(base, e),
    };
    let actor = caller.principal.actor();
    let creatable = match creatable_labs(&state, &caller.ctx(), &actor, &visible_labs).await {
        Ok(c) => c,
        Err(e) => return error_page(base, e),
    };
    let lab_options: Vec<Value> = visible_labs
        .iter()
        .map(|l| context! { id => l.id, name => l.name.clone(), title => l.title.clone() })
        .collect();
    let pages = ((page.total + PER_PAGE - 1) / PER_PAGE).max(1);
    let statuses: Vec<&str> = [
        ProjectStatus::Active,
        ProjectStatus::Archived,
        ProjectStatus::DataDeleted,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    render(
        "projects.html",
        with(
            base,
            context! {
                projects => Value::from_serialize(&page.projects),
                total => page.total,
                page => page_no,
                next => page.next.clone(),
                pages,
                q => query.q.clone().unwrap_or_default(),
                lab => lab,
                status => query.status.clone().unwrap_or_default(),
                statuses,
                labs => lab_options,
                creatable_labs => creatable,
            },
        ),
    )
}

/// The resource of a membership change aimed at `user`, as `projects::members` builds it.
fn membership(scope: DataScope, user: i64, site_role: SiteRole) -> Resource {
    Resource {
        target: Some(TargetUser {
            id: UserId(user),
            site_role,
        }),
        ..Resource::data(scope)
    }
}

/// `/projects/{id}`: a project the viewer may see.
pub async fn project_page(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Path(raw): Path<String>,
) -> Response {
    let base = base_context(&state, Some(&caller), "projects").await;
    let Some(id) = page_id(&raw) else {
        return error_page(base, StoreError::NotFound { what: "project" });
    };
    let ctx = caller.ctx();
    let project: Project = match projects::show(&state.db, &ctx, id).await {
        Ok(p) => p,
        Err(e) => return error_page(base, e),
    };
    let actor = caller.principal.actor();
    let loaded = async {
        let scope = projects::standing_for(&state.db, &ctx, &project).await?;
        let project_members = members::list(&state.db, &ctx, id).await?;
        let spaces = workspaces::list(&state.db, &ctx, id).await?;
        Ok::<_, StoreError>((scope, project_members, spaces))
    }
    .await;
    let (scope, project_members, spaces) = match loaded {
        Ok(v) => v,
        Err(e) => return error_page(base, e),
    };
    let me = actor.user.0;
    // Whom the viewer could add: the lab's members (a project's members come from its lab),
    // looked up only when the viewer may change memberships at all and may see the lab.
    let may_change_some = allows(
        &actor,
        Activity::UpdateProjectGroups,
        &membership(scope, -1, SiteRole::None),
    );
    let sees_lab =
        scope.lab_role.is_some() || allows(&actor, Activity::ViewUser, &Resource::instance());
    let lab_members = if may_change_some && sees_lab {
        labs::members::list(&state.db, &ctx, project.lab_id)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let site_roles: HashMap<i64, SiteRole> = lab_members
        .iter()
        .map(|m| (m.user_id, m.site_role))
        .collect();
    let may_change = |user: i64| {
        user != me
            && site_roles.get(&user).is_some_and(|r| {
                allows(
                    &actor,
                    Activity::UpdateProjectGroups,
                    &membership(scope, user, *r),
                )
            })
    };
    let candidates: Vec<Value> = lab_members
        .iter()
        .filter(|m| may_change(m.user_id))
        .map(|m| context! { user_id => m.user_id, username => m.username.clone(), name => format!("{} {}", m.first_name, m.last_name) })
        .collect();
    let member_rows: Vec<Value> = project_members
        .iter()
        .map(|m| context! { member => Value::from_serialize(m), manage => may_change(m.user_id), is_self => m.user_id == me })
        .collect();
    let data = Resource::data(scope);
    let can = context! {
        add_member => !candidates.is_empty(),
        create_workspace => allows(&actor, Activity::CreateWorkspace, &data),
        manage_data => allows(&actor, DataAction::ManageProjectData, &data),
    };
    let roles: Vec<&str> = ProjectRole::ALL.iter().map(|r| r.as_str()).collect();
    let jobs = match super::jobs::project_section(&state, &ctx, &actor, &project, scope).await {
        Ok(j) => j,
        Err(e) => return error_page(base, e),
    };
    render(
        "project.html",
        with(
            base,
            context! {
                project => Value::from_serialize(&project),
                members => member_rows,
                candidates,
                workspaces => Value::from_serialize(&spaces),
                roles,
                can,
                files => project.status != ProjectStatus::DataDeleted,
                jobs,
            },
        ),
    )
}
