//! Workspaces (LabKey's subfolders) of a project, nested under a parent workspace or at the top,
//! with folder admins. Creating and deleting them is `create-workspace` / `delete-workspace` (§2):
//! Site and Application Admins, the project's admins, and the folder admins of the workspace
//! (for a new workspace: of its parent). Renaming a workspace (its name or title) is
//! `update-project-settings` scoped to it: the folder admins of the workspace or of an ancestor;
//! naming folder admins is `update-project-settings` scoped to the parent, so a folder admin
//! names the admins of their subfolders, never their own or a sibling's. A folder admin's
//! column applies only within their subtree: a sibling workspace, the project's top level and
//! the project's own settings are outside it.

use cryowarden_core::{Action, Activity, DataAction, ProjectRole, Resource};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row};

use super::{Project, access};
use crate::context::{Ctx, Target};
use crate::db::{Db, format_ms, now_ms};
use crate::error::{StoreError, map_unique};
use crate::{labs, users};

/// A workspace as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Workspace {
    pub id: i64,
    pub project_id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub title: String,
    /// Usernames of the folder admins.
    pub folder_admins: Vec<String>,
    pub created_by: Option<i64>,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    /// 1 to 64 of `a-z A-Z 0-9 . _ -`, unique in the project regardless of case.
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    /// Create it inside this workspace.
    #[serde(default)]
    pub parent_id: Option<i64>,
}

/// A change to a workspace: a new name and/or title; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatch {
    /// 1 to 64 of `a-z A-Z 0-9 . _ -`, unique in the project regardless of case.
    pub name: Option<String>,
    pub title: Option<String>,
}

/// The folder admins of a workspace, replacing the current ones.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFolderAdmins {
    pub user_ids: Vec<i64>,
}

fn target(p: &Project, name: &str) -> Target {
    Target {
        kind: "workspace",
        id: None,
        name: Some(format!("{}/{}/{}", p.lab_name, p.name, name)),
    }
}

/// Whether `user` is folder admin of `workspace` or of one of its ancestors.
pub(super) async fn is_folder_admin_of(
    db: &Db,
    workspace: i64,
    user: i64,
) -> Result<bool, StoreError> {
    let mut current = Some(workspace);
    let mut depth = 0;
    while let Some(w) = current {
        let row = sqlx::query::<Any>(
            "SELECT parent_id, (SELECT COUNT(*) FROM workspace_admins WHERE workspace_id = $1 AND user_id = $2) AS n \
             FROM workspaces WHERE id = $1",
        )
        .bind(w)
        .bind(user)
        .fetch_optional(&db.pool)
        .await?;
        let Some(row) = row else { return Ok(false) };
        if row.try_get::<i64, _>("n")? > 0 {
            return Ok(true);
        }
        current = row.try_get("parent_id")?;
        depth += 1;
        if depth > 64 {
            return Ok(false);
        }
    }
    Ok(false)
}

async fn get(db: &Db, project: i64, id: i64) -> Result<Workspace, StoreError> {
    list_where(db, project, Some(id))
        .await?
        .pop()
        .ok_or(StoreError::NotFound { what: "workspace" })
}

async fn list_where(
    db: &Db,
    project: i64,
    only: Option<i64>,
) -> Result<Vec<Workspace>, StoreError> {
    let filter = only
        .map(|id| format!(" AND w.id = {id}"))
        .unwrap_or_default();
    let rows = sqlx::query::<Any>(&format!(
        "SELECT w.id, w.parent_id, w.name, w.title, w.created_by, w.created_at, u.username FROM workspaces w \
         LEFT JOIN workspace_admins a ON a.workspace_id = w.id LEFT JOIN users u ON u.id = a.user_id \
         WHERE w.project_id = $1{filter} ORDER BY w.name_key, u.username_key"
    ))
    .bind(project)
    .fetch_all(&db.pool)
    .await?;
    let mut out: Vec<Workspace> = Vec::new();
    for r in rows {
        let id: i64 = r.try_get("id")?;
        if out.last().is_none_or(|w| w.id != id) {
            out.push(Workspace {
                id,
                project_id: project,
                parent_id: r.try_get("parent_id")?,
                name: r.try_get("name")?,
                title: r.try_get("title")?,
                folder_admins: Vec::new(),
                created_by: r.try_get("created_by")?,
                created_at: format_ms(r.try_get("created_at")?),
            });
        }
        if let Some(u) = r.try_get::<Option<String>, _>("username")? {
            out.last_mut().expect("pushed above").folder_admins.push(u);
        }
    }
    Ok(out)
}

/// The workspaces of a project the caller may see.
pub async fn list(db: &Db, ctx: &Ctx, project: i64) -> Result<Vec<Workspace>, StoreError> {
    super::show(db, ctx, project).await?;
    list_where(db, project, None).await
}

/// Authorizes `activity` on a workspace (or, with `workspace` None, on the project's top level).
async fn authorize_in(
    db: &Db,
    ctx: &Ctx,
    project: i64,
    workspace: Option<i64>,
    action: Action,
    name: &str,
) -> Result<(Project, cryowarden_core::Allowed), StoreError> {
    let (p, scope, _) = access(db, ctx, project, DataAction::ViewProject).await?;
    let user = super::actor(ctx)?.user.0;
    let folder_admin = match workspace {
        Some(w) => is_folder_admin_of(db, w, user).await?,
        None => false,
    };
    let resource = Resource::data(scope).scoped(
        scope.project_role == Some(ProjectRole::ProjectAdmin),
        folder_admin,
    );
    let resource = super::with_impersonator_facts(db, ctx, &p, workspace, resource).await?;
    let proof = ctx
        .authorize(db, action, resource, &target(&p, name))
        .await?;
    Ok((p, proof))
}

/// Creates a workspace.
pub async fn create(
    db: &Db,
    ctx: &Ctx,
    project: i64,
    new: NewWorkspace,
) -> Result<Workspace, StoreError> {
    super::show(db, ctx, project).await?;
    if let Some(parent) = new.parent_id {
        get(db, project, parent)
            .await
            .map_err(|_| StoreError::invalid("parent_id", "is not a workspace of this project"))?;
    }
    let action: Action = Activity::CreateWorkspace.into();
    let (p, proof) = authorize_in(db, ctx, project, new.parent_id, action, &new.name).await?;
    let name = labs::validate_name(&new.name)?;
    let title = match new.title.as_deref().map(labs::validate_title).transpose()? {
        Some(t) if !t.is_empty() => t,
        _ => name.clone(),
    };
    let mut tx = db.begin_write().await?;
    proof.require(action)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO workspaces (project_id, parent_id, name, name_key, title, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(project)
    .bind(new.parent_id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(&title)
    .bind(super::actor(ctx)?.user.0)
    .bind(now_ms())
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| map_unique(e, &[("name_key", "name")]))?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Activity::CreateWorkspace,
        &target(&p, &name),
        None,
        Some(json!({ "title": title, "parent_id": new.parent_id })),
    )
    .await?;
    tx.commit().await?;
    get(db, project, id).await
}

/// Deletes a workspace and its subfolders.
pub async fn delete(db: &Db, ctx: &Ctx, project: i64, id: i64) -> Result<(), StoreError> {
    super::show(db, ctx, project).await?;
    let w = get(db, project, id).await?;
    let action: Action = Activity::DeleteWorkspace.into();
    let (p, proof) = authorize_in(db, ctx, project, Some(id), action, &w.name).await?;
    let mut tx = db.begin_write().await?;
    proof.require(action)?;
    sqlx::query("DELETE FROM workspaces WHERE id = $1")
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Activity::DeleteWorkspace,
        &target(&p, &w.name),
        Some(json!({ "title": w.title })),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Renames a workspace or changes its title (`update-project-settings` scoped to the workspace).
pub async fn update(
    db: &Db,
    ctx: &Ctx,
    project: i64,
    id: i64,
    patch: WorkspacePatch,
) -> Result<Workspace, StoreError> {
    super::show(db, ctx, project).await?;
    let before = get(db, project, id).await?;
    let action: Action = Activity::UpdateProjectSettings.into();
    let (p, proof) = authorize_in(db, ctx, project, Some(id), action, &before.name).await?;
    let name = patch
        .name
        .as_deref()
        .map(labs::validate_name)
        .transpose()?
        .unwrap_or_else(|| before.name.clone());
    let title = match patch
        .title
        .as_deref()
        .map(labs::validate_title)
        .transpose()?
    {
        Some(t) if t.is_empty() => name.clone(),
        Some(t) => t,
        None => before.title.clone(),
    };
    if name == before.name && title == before.title {
        return Ok(before);
    }
    let mut tx = db.begin_write().await?;
    proof.require(action)?;
    sqlx::query("UPDATE workspaces SET name = $1, name_key = $2, title = $3 WHERE id = $4 AND project_id = $5")
        .bind(&name)
        .bind(name.to_lowercase())
        .bind(&title)
        .bind(id)
        .bind(project)
        .execute(&mut *tx.tx)
        .await
        .map_err(|e| map_unique(e, &[("name_key", "name")]))?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::UpdateWorkspace,
        &target(&p, &name),
        Some(json!({ "name": before.name, "title": before.title })),
        Some(json!({ "name": name, "title": title })),
    )
    .await?;
    tx.commit().await?;
    get(db, project, id).await
}

/// Replaces the folder admins of a workspace; each must be a member of the project's lab.
pub async fn set_admins(
    db: &Db,
    ctx: &Ctx,
    project: i64,
    id: i64,
    req: SetFolderAdmins,
) -> Result<Workspace, StoreError> {
    super::show(db, ctx, project).await?;
    let w = get(db, project, id).await?;
    let action: Action = Activity::UpdateProjectSettings.into();
    // The folder admins of a workspace are named by those who manage its parent.
    let (p, proof) = authorize_in(db, ctx, project, w.parent_id, action, &w.name).await?;
    if req.user_ids.len() > 100 {
        return Err(StoreError::invalid(
            "user_ids",
            "must hold at most 100 users",
        ));
    }
    let mut names = Vec::new();
    for &uid in &req.user_ids {
        let user = users::get(db, uid)
            .await
            .map_err(|_| StoreError::invalid("user_ids", format!("no user {uid}")))?;
        if labs::role_of(db, p.lab_id, uid).await?.is_none() {
            return Err(StoreError::invalid(
                "user_ids",
                format!(
                    "`{}` is not a member of lab `{}`: add them to the lab first",
                    user.username, p.lab_name
                ),
            ));
        }
        names.push(user.username);
    }
    let mut tx = db.begin_write().await?;
    proof.require(action)?;
    sqlx::query("DELETE FROM workspace_admins WHERE workspace_id = $1")
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
    for &uid in &req.user_ids {
        sqlx::query("INSERT INTO workspace_admins (workspace_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(uid)
            .execute(&mut *tx.tx)
            .await?;
    }
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::SetFolderAdmins,
        &target(&p, &w.name),
        Some(json!({ "folder_admins": w.folder_admins })),
        Some(json!({ "folder_admins": names })),
    )
    .await?;
    tx.commit().await?;
    get(db, project, id).await
}
