//! Project members and project groups. Every change is `update-project-groups` (§2) aimed at
//! the member: Site Admins, Application Admins (not for Site Admins) and the project's admins.
//! A project's members must belong to its lab, so that a project never opens a lab's data to
//! someone outside it; nobody changes their own membership.

use cryowarden_core::Event;
use cryowarden_core::{Action, Activity, DataAction, ProjectRole, Resource};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row};

use super::{Project, access};
use crate::context::{Ctx, Target};
use crate::db::Db;
use crate::error::{StoreError, map_unique};
use crate::{labs, users};

const ACTION: Action = Action::Activity(Activity::UpdateProjectGroups);

/// A member of a project as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectMember {
    pub user_id: i64,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    /// The role given directly (`null` when the role comes only from groups).
    #[schema(value_type = Option<String>)]
    pub role: Option<ProjectRole>,
    /// The groups the user belongs to in this project.
    pub groups: Vec<String>,
}

/// A project group: its members hold its role in the project.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectGroup {
    pub id: i64,
    pub name: String,
    #[schema(value_type = String)]
    pub role: ProjectRole,
    pub members: Vec<String>,
}

/// Adds a member to a project or changes a member's role.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetProjectMember {
    pub user_id: i64,
    /// `project_admin`, `editor` or `reader`.
    #[schema(value_type = String)]
    pub role: ProjectRole,
}

/// Creates a project group.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[schema(value_type = String)]
    pub role: ProjectRole,
}

fn member_target(p: &Project, user: &users::User) -> Target {
    Target {
        kind: "project-member",
        id: Some(format!("{}:{}", p.id, user.id)),
        name: Some(format!("{}/{}/{}", p.lab_name, p.name, user.username)),
    }
}

/// Authorizes a change of `user`'s membership in project `id`; returns the project and the user.
async fn authorize_on(
    db: &Db,
    ctx: &Ctx,
    id: i64,
    user_id: i64,
) -> Result<(Project, users::User, cryowarden_core::Allowed), StoreError> {
    let (project, scope, _) = access(db, ctx, id, DataAction::ViewProject).await?;
    let user = users::get(db, user_id)
        .await
        .map_err(|_| StoreError::NotFound { what: "user" })?;
    let target = member_target(&project, &user);
    let mut resource = Resource::user(cryowarden_core::UserId(user.id), user.site_role);
    resource.data = scope;
    let resource = resource.scoped(scope.project_role == Some(ProjectRole::ProjectAdmin), false);
    let resource = super::with_impersonator_facts(db, ctx, &project, None, resource).await?;
    let proof = ctx.authorize(db, ACTION, resource, &target).await?;
    if ctx.actor.is_some_and(|a| a.user.0 == user.id) {
        ctx.record(
            db,
            ACTION,
            &target,
            crate::audit::Outcome::Denied,
            Some("own membership".into()),
            None,
            None,
        )
        .await?;
        return Err(StoreError::invalid(
            "user_id",
            "you cannot change your own membership of a project",
        ));
    }
    Ok((project, user, proof))
}

async fn require_lab_member(
    db: &Db,
    project: &Project,
    user: &users::User,
) -> Result<(), StoreError> {
    if labs::role_of(db, project.lab_id, user.id).await?.is_none() {
        return Err(StoreError::invalid(
            "user_id",
            format!(
                "`{}` is not a member of lab `{}`: add them to the lab first",
                user.username, project.lab_name
            ),
        ));
    }
    Ok(())
}

/// Adds a member or changes a member's role.
pub async fn set(
    db: &Db,
    ctx: &Ctx,
    id: i64,
    req: SetProjectMember,
) -> Result<Vec<ProjectMember>, StoreError> {
    let (project, user, proof) = authorize_on(db, ctx, id, req.user_id).await?;
    require_lab_member(db, &project, &user).await?;
    let before: Option<String> = sqlx::query_scalar(
        "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user.id)
    .fetch_optional(&db.pool)
    .await?;
    if before.as_deref() == Some(req.role.as_str()) {
        return list(db, ctx, id).await;
    }
    let mut tx = db.begin_write().await?;
    proof.require(ACTION)?;
    sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
        .bind(id)
        .bind(user.id)
        .execute(&mut *tx.tx)
        .await?;
    sqlx::query("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(user.id)
        .bind(req.role.as_str())
        .execute(&mut *tx.tx)
        .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::SetProjectMember,
        &member_target(&project, &user),
        before.map(|r| json!({ "role": r })),
        Some(json!({ "role": req.role })),
    )
    .await?;
    tx.commit().await?;
    list(db, ctx, id).await
}

/// Removes a member's direct role (group memberships stay).
pub async fn remove(db: &Db, ctx: &Ctx, id: i64, user_id: i64) -> Result<(), StoreError> {
    let (project, user, proof) = authorize_on(db, ctx, id, user_id).await?;
    let mut tx = db.begin_write().await?;
    proof.require(ACTION)?;
    let before: Option<String> = sqlx::query_scalar(
        "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2 RETURNING role",
    )
    .bind(id)
    .bind(user.id)
    .fetch_optional(&mut *tx.tx)
    .await?;
    let Some(before) = before else {
        return Err(StoreError::NotFound {
            what: "project member",
        });
    };
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::RemoveProjectMember,
        &member_target(&project, &user),
        Some(json!({ "role": before })),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The members of a project, with their direct roles and groups.
pub async fn list(db: &Db, ctx: &Ctx, id: i64) -> Result<Vec<ProjectMember>, StoreError> {
    super::show(db, ctx, id).await?;
    let rows = sqlx::query::<Any>(
        "SELECT u.id, u.username, u.first_name, u.last_name, m.role, NULL AS grp FROM project_members m \
           JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 \
         UNION ALL SELECT u.id, u.username, u.first_name, u.last_name, NULL, g.name FROM project_groups g \
           JOIN project_group_members gm ON gm.group_id = g.id JOIN users u ON u.id = gm.user_id WHERE g.project_id = $1",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    let mut out: Vec<ProjectMember> = Vec::new();
    for r in rows {
        let user_id: i64 = r.try_get("id")?;
        let role = r
            .try_get::<Option<String>, _>("role")?
            .as_deref()
            .and_then(ProjectRole::parse);
        let group: Option<String> = r.try_get("grp")?;
        let i = match out.iter().position(|m| m.user_id == user_id) {
            Some(i) => i,
            None => {
                out.push(ProjectMember {
                    user_id,
                    username: r.try_get("username")?,
                    first_name: r.try_get("first_name")?,
                    last_name: r.try_get("last_name")?,
                    role: None,
                    groups: Vec::new(),
                });
                out.len() - 1
            }
        };
        out[i].role = out[i].role.or(role);
        out[i].groups.extend(group);
    }
    out.sort_by_key(|a| a.username.to_lowercase());
    Ok(out)
}

fn group_target(p: &Project, name: &str) -> Target {
    Target {
        kind: "project-group",
        id: None,
        name: Some(format!("{}/{}/{}", p.lab_name, p.name, name)),
    }
}

/// The groups of a project.
pub async fn groups(db: &Db, ctx: &Ctx, id: i64) -> Result<Vec<ProjectGroup>, StoreError> {
    super::show(db, ctx, id).await?;
    let rows = sqlx::query::<Any>(
        "SELECT g.id, g.name, g.role, u.username FROM project_groups g \
         LEFT JOIN project_group_members gm ON gm.group_id = g.id LEFT JOIN users u ON u.id = gm.user_id \
         WHERE g.project_id = $1 ORDER BY g.name_key, u.username_key",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    let mut out: Vec<ProjectGroup> = Vec::new();
    for r in rows {
        let gid: i64 = r.try_get("id")?;
        if out.last().is_none_or(|g| g.id != gid) {
            let role: String = r.try_get("role")?;
            out.push(ProjectGroup {
                id: gid,
                name: r.try_get("name")?,
                role: ProjectRole::parse(&role)
                    .ok_or_else(|| StoreError::Internal(format!("bad role {role}")))?,
                members: Vec::new(),
            });
        }
        if let Some(u) = r.try_get::<Option<String>, _>("username")? {
            out.last_mut().expect("pushed above").members.push(u);
        }
    }
    Ok(out)
}

/// Authorizes a change to a project's groups as a whole (no target user).
async fn authorize_groups(
    db: &Db,
    ctx: &Ctx,
    id: i64,
    target: impl Fn(&Project) -> Target,
) -> Result<(Project, cryowarden_core::Allowed), StoreError> {
    let (project, scope, _) = access(db, ctx, id, DataAction::ViewProject).await?;
    let resource =
        super::with_impersonator_facts(db, ctx, &project, None, Resource::data(scope)).await?;
    let proof = ctx
        .authorize(db, ACTION, resource, &target(&project))
        .await?;
    Ok((project, proof))
}

/// Creates a project group.
pub async fn create_group(
    db: &Db,
    ctx: &Ctx,
    id: i64,
    new: NewGroup,
) -> Result<Vec<ProjectGroup>, StoreError> {
    let (project, proof) = authorize_groups(db, ctx, id, |p| group_target(p, &new.name)).await?;
    let name = labs::validate_name(&new.name)?;
    let mut tx = db.begin_write().await?;
    proof.require(ACTION)?;
    sqlx::query(
        "INSERT INTO project_groups (project_id, name, name_key, role) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(new.role.as_str())
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| map_unique(e, &[("name_key", "name")]))?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::CreateProjectGroup,
        &group_target(&project, &name),
        None,
        Some(json!({ "role": new.role })),
    )
    .await?;
    tx.commit().await?;
    groups(db, ctx, id).await
}

async fn group_name(db: &Db, project: i64, group: i64) -> Result<String, StoreError> {
    sqlx::query_scalar("SELECT name FROM project_groups WHERE id = $1 AND project_id = $2")
        .bind(group)
        .bind(project)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound {
            what: "project group",
        })
}

/// Deletes a project group; its members lose the role it gave them.
pub async fn delete_group(db: &Db, ctx: &Ctx, id: i64, group: i64) -> Result<(), StoreError> {
    super::show(db, ctx, id).await?;
    let name = group_name(db, id, group).await?;
    let (project, proof) = authorize_groups(db, ctx, id, |p| group_target(p, &name)).await?;
    let mut tx = db.begin_write().await?;
    proof.require(ACTION)?;
    sqlx::query("DELETE FROM project_groups WHERE id = $1")
        .bind(group)
        .execute(&mut *tx.tx)
        .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::DeleteProjectGroup,
        &group_target(&project, &name),
        Some(json!({ "name": name })),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Adds a user to a project group, or removes them (`add` false).
pub async fn set_group_member(
    db: &Db,
    ctx: &Ctx,
    id: i64,
    group: i64,
    user_id: i64,
    add: bool,
) -> Result<Vec<ProjectGroup>, StoreError> {
    super::show(db, ctx, id).await?;
    let name = group_name(db, id, group).await?;
    let (project, user, proof) = authorize_on(db, ctx, id, user_id).await?;
    if add {
        require_lab_member(db, &project, &user).await?;
    }
    let target = Target {
        kind: "project-group-member",
        id: Some(format!("{group}:{}", user.id)),
        name: Some(format!(
            "{}/{}/{}/{}",
            project.lab_name, project.name, name, user.username
        )),
    };
    let mut tx = db.begin_write().await?;
    proof.require(ACTION)?;
    let changed = if add {
        sqlx::query("INSERT INTO project_group_members (group_id, user_id) VALUES ($1, $2)")
            .bind(group)
            .bind(user.id)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| map_unique(e, &[("", "user_id")]))?
            .rows_affected()
    } else {
        sqlx::query("DELETE FROM project_group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group)
            .bind(user.id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected()
    };
    if changed == 0 {
        return Err(StoreError::NotFound {
            what: "group member",
        });
    }
    let action = if add {
        Event::AddProjectGroupMember
    } else {
        Event::RemoveProjectGroupMember
    };
    ctx.audit_ok(&mut tx, action, &target, None, None).await?;
    tx.commit().await?;
    groups(db, ctx, id).await
}
