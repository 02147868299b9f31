//! Projects: each belongs to one lab, keeps its files in a directory under the lab's project root
//! (or a custom file root a Site Admin chose), created by the runner as the lab's Unix account,
//! mode 2770. Members hold a project role; project groups give a role to their members; a
//! project's workspaces have folder admins.
//!
//! Who may see or change a project is decided by `authorize()` from the caller's standing
//! ([`standing`]): someone with none gets "not found", never "forbidden", so that another lab's
//! projects do not show through ids, counts or messages.

pub mod data;
pub mod members;
pub mod workspaces;

use std::path::{Path, PathBuf};

use cryowarden_core::{
    Action, Activity, Actor, Allowed, DataAction, DataScope, ImpersonationScope, ImportPolicy,
    LabRole, ProjectRole, Resource,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row};

use crate::context::{Ctx, Target};
use crate::db::{Db, format_ms, now_ms};
use crate::error::{StoreError, map_unique};
use crate::labs::{self, Lab};
use crate::runner::{Account, Runner};

pub const DESCRIPTION_MAX: usize = 2000;

/// Where a project's data stands (live data management).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Active,
    /// Read-only on disk; no new jobs.
    Archived,
    /// The directory was removed; the record stays for the history.
    DataDeleted,
}

impl ProjectStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectStatus::Active => "active",
            ProjectStatus::Archived => "archived",
            ProjectStatus::DataDeleted => "data_deleted",
        }
    }
    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(ProjectStatus::Active),
            "archived" => Ok(ProjectStatus::Archived),
            "data_deleted" => Ok(ProjectStatus::DataDeleted),
            other => Err(StoreError::Internal(format!("bad project status {other}"))),
        }
    }
}

/// A project as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: i64,
    pub lab_id: i64,
    pub lab_name: String,
    pub name: String,
    pub title: String,
    pub description: String,
    /// The project's directory on disk.
    pub path: String,
    /// Set by a Site Admin outside the lab's project root.
    pub custom_file_root: bool,
    /// Every member of the lab may read the project.
    pub lab_members_read: bool,
    pub status: ProjectStatus,
    /// The caller's own role in the project, if any (directly or through a project group).
    #[schema(value_type = Option<String>)]
    pub my_role: Option<ProjectRole>,
    pub created_by: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

impl Project {
    pub fn audit_target(&self) -> Target {
        Target {
            kind: "project",
            id: Some(self.id.to_string()),
            name: Some(format!("{}/{}", self.lab_name, self.name)),
        }
    }
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(&self.path)
    }
    pub(crate) fn parent_and_name(&self) -> (PathBuf, String) {
        let p = Path::new(&self.path);
        (
            p.parent().map(Path::to_owned).unwrap_or_default(),
            p.file_name().and_then(|n| n.to_str()).unwrap_or("").into(),
        )
    }
}

pub fn snapshot(p: &Project) -> serde_json::Value {
    json!({
        "lab": p.lab_name, "name": p.name, "title": p.title, "description": p.description, "path": p.path,
        "custom_file_root": p.custom_file_root, "lab_members_read": p.lab_members_read, "status": p.status,
    })
}

const COLUMNS: &str = "p.id, p.lab_id, l.name AS lab_name, p.name, p.title, p.description, p.parent_dir, \
    p.custom_root, p.dir_name, p.lab_members_read, p.status, p.created_by, p.created_at, p.updated_at";
const FROM: &str = "projects p JOIN labs l ON l.id = p.lab_id";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Project, StoreError> {
    let parent: String = r.try_get("parent_dir")?;
    let dir: String = r.try_get("dir_name")?;
    Ok(Project {
        id: r.try_get("id")?,
        lab_id: r.try_get("lab_id")?,
        lab_name: r.try_get("lab_name")?,
        name: r.try_get("name")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        path: Path::new(&parent).join(dir).to_string_lossy().into_owned(),
        custom_file_root: r.try_get::<i64, _>("custom_root")? != 0,
        lab_members_read: r.try_get::<i64, _>("lab_members_read")? != 0,
        status: ProjectStatus::parse(&r.try_get::<String, _>("status")?)?,
        my_role: None,
        created_by: r.try_get("created_by")?,
        created_at: format_ms(r.try_get("created_at")?),
        updated_at: format_ms(r.try_get("updated_at")?),
    })
}

pub(crate) fn actor(ctx: &Ctx) -> Result<Actor, StoreError> {
    ctx.actor
        .ok_or_else(|| StoreError::Internal("a project operation with no actor".into()))
}

/// The caller's standing in a project: lab role, effective project role, the lab's policy, the
/// project's lab-read switch and the caller's live-data-management flag (one round trip).
pub async fn standing(db: &Db, user: i64, project: &Project) -> Result<DataScope, StoreError> {
    let rows = sqlx::query::<Any>(
        "SELECT 'lab' AS kind, role FROM lab_members WHERE lab_id = $1 AND user_id = $2 \
         UNION ALL SELECT 'project', role FROM project_members WHERE project_id = $3 AND user_id = $2 \
         UNION ALL SELECT 'project', g.role FROM project_groups g JOIN project_group_members m ON m.group_id = g.id \
             WHERE g.project_id = $3 AND m.user_id = $2 \
         UNION ALL SELECT 'policy', import_policy FROM labs WHERE id = $1 \
         UNION ALL SELECT 'live', CASE WHEN live_data_management <> 0 THEN 'yes' ELSE 'no' END FROM users WHERE id = $2",
    )
    .bind(project.lab_id)
    .bind(user)
    .bind(project.id)
    .fetch_all(&db.pool)
    .await?;
    let mut scope = DataScope {
        lab_members_read: project.lab_members_read,
        ..DataScope::default()
    };
    for r in rows {
        let kind: String = r.try_get("kind")?;
        let value: String = r.try_get("role")?;
        match kind.as_str() {
            "lab" => scope.lab_role = LabRole::parse(&value),
            // ProjectRole orders the strongest first.
            "project" => {
                scope.project_role = scope
                    .project_role
                    .into_iter()
                    .chain(ProjectRole::parse(&value))
                    .min();
            }
            "policy" => scope.import_policy = ImportPolicy::parse(&value).unwrap_or_default(),
            "live" => scope.live_data_management = value == "yes",
            _ => {}
        }
    }
    Ok(scope)
}

/// The caller's standing in a project; while a project or folder admin impersonates, capped by
/// the impersonator's own standing there (impersonation never adds rights); while a group is
/// impersonated, a plain member's of that lab (no project role).
pub async fn standing_for(db: &Db, ctx: &Ctx, project: &Project) -> Result<DataScope, StoreError> {
    let actor = actor(ctx)?;
    if let Some(group) = ctx.group_scope {
        // Nobody's standing (id 0 is no user) gives the lab's policy and the project's switch.
        let nobody = standing(db, 0, project).await?;
        return Ok(DataScope {
            lab_role: (project.lab_id == group).then_some(LabRole::Member),
            ..nobody
        });
    }
    let theirs = standing(db, actor.user.0, project).await?;
    match actor.impersonation {
        Some(i) if i.scope == ImpersonationScope::Scoped => {
            Ok(theirs.intersect(standing(db, i.by.0, project).await?))
        }
        _ => Ok(theirs),
    }
}

/// `resource` (about `project`, and `workspace` when given) with the impersonator's own §2 facts
/// while the caller impersonates: project admin of `project` by their own standing, folder
/// admin of `workspace` by their own assignment. The acting side's facts never serve the
/// impersonator's check (issue 11).
pub(crate) async fn with_impersonator_facts(
    db: &Db,
    ctx: &Ctx,
    project: &Project,
    workspace: Option<i64>,
    resource: Resource,
) -> Result<Resource, StoreError> {
    let Some(by) = ctx.actor.and_then(|a| a.impersonator()) else {
        return Ok(resource);
    };
    let own = standing(db, by.0, project).await?;
    let folder_admin = match workspace {
        Some(w) => workspaces::is_folder_admin_of(db, w, by.0).await?,
        None => false,
    };
    Ok(resource.impersonator_scoped(
        own.project_role == Some(ProjectRole::ProjectAdmin),
        folder_admin,
    ))
}

/// Looks a project up by id, whoever asks (for the server's own use).
pub async fn get(db: &Db, id: i64) -> Result<Project, StoreError> {
    let row = sqlx::query::<Any>(&format!("SELECT {COLUMNS} FROM {FROM} WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound { what: "project" })?;
    from_row(&row)
}

/// A project the caller may see, their standing in it, and the proof for `action` (checked
/// after `view-project`, so that a caller who may not see it always gets "not found").
pub async fn access(
    db: &Db,
    ctx: &Ctx,
    id: i64,
    action: DataAction,
) -> Result<(Project, DataScope, Allowed), StoreError> {
    let mut project = get(db, id).await?;
    if ctx.outside_scope(project.id) {
        let reason = Some("outside the project this impersonation is confined to".to_owned());
        ctx.record(
            db,
            action,
            &project.audit_target(),
            crate::audit::Outcome::Denied,
            reason,
            None,
            None,
        )
        .await?;
        return Err(StoreError::NotFound { what: "project" });
    }
    let scope = standing_for(db, ctx, &project).await?;
    project.my_role = scope.project_role;
    let target = project.audit_target();
    let resource = Resource::data(scope);
    let view = ctx
        .authorize(db, DataAction::ViewProject.into(), resource, &target)
        .await?;
    let proof = if action == DataAction::ViewProject {
        view
    } else {
        ctx.authorize(db, action.into(), resource, &target).await?
    };
    Ok((project, scope, proof))
}

/// One project, if the caller may see it.
pub async fn show(db: &Db, ctx: &Ctx, id: i64) -> Result<Project, StoreError> {
    Ok(access(db, ctx, id, DataAction::ViewProject).await?.0)
}

/// Filters and paging of the project list.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this lab's projects.
    pub lab: Option<i64>,
    /// Case-insensitive substring of the name or title.
    pub q: Option<String>,
    /// `active`, `archived` or `data_deleted`.
    pub status: Option<String>,
    /// Page number from 1.
    pub page: Option<i64>,
    /// Rows per page, 1..=500 (default 50).
    pub per_page: Option<i64>,
    /// The `next` of the previous page: the page after it, as fast however deep (instead of `page`).
    pub after: Option<String>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectPage {
    pub projects: Vec<Project>,
    /// How many projects the caller may see with these filters.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// A position in the name order: `ID:NAME_KEY` of the last row of a page.
fn parse_cursor(raw: &str) -> Result<(i64, String), StoreError> {
    let bad = || {
        StoreError::invalid(
            "after",
            "is not a cursor: pass the `next` of the previous page",
        )
    };
    let (id, key) = raw.split_once(':').ok_or_else(bad)?;
    let id: i64 = id.parse().map_err(|_| bad())?;
    if key.is_empty() || key.len() > 64 || labs::validate_name(key).is_err() {
        return Err(bad());
    }
    Ok((id, key.to_owned()))
}

/// Whether the actor sees every project (facility staff and troubleshooters), decided by
/// `authorize()` with no standing at all.
fn sees_all(actor: &Actor) -> bool {
    cryowarden_core::authorize(
        actor,
        DataAction::ViewProject.into(),
        &Resource::data(DataScope::default()),
    )
    .is_allowed()
}

/// The projects the caller may see, by name.
pub async fn list(db: &Db, ctx: &Ctx, q: &ListQuery) -> Result<ProjectPage, StoreError> {
    let actor = actor(ctx)?;
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=500).contains(&per_page) {
        return Err(StoreError::invalid("per_page", "must be between 1 and 500"));
    }
    let page = q.page.unwrap_or(1);
    if !(1..=1_000_000).contains(&page) {
        return Err(StoreError::invalid("page", "must be at least 1"));
    }
    // The filters, applied to the table aliased `p` wherever it is read.
    let mut filter = String::new();
    if let Some(only) = ctx.project_scope {
        filter.push_str(&format!(" AND p.id = {only}"));
    }
    // A group impersonated: what a plain member of that lab reads, and nothing else.
    if let Some(group) = ctx.group_scope {
        filter.push_str(&format!(
            " AND p.lab_id = {group} AND p.lab_members_read = 1"
        ));
    }
    let mut binds: Vec<String> = Vec::new();
    if let Some(lab) = q.lab {
        filter.push_str(&format!(" AND p.lab_id = {lab}"));
    }
    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
        if text.len() > 200 {
            return Err(StoreError::invalid("q", "must be at most 200 characters"));
        }
        binds.push(format!("%{}%", text.to_lowercase().replace(['%', '_'], "")));
        let n = binds.len();
        filter.push_str(&format!(
            " AND (p.name_key LIKE ${n} OR LOWER(p.title) LIKE ${n})"
        ));
    }
    if let Some(s) = &q.status {
        ProjectStatus::parse(s).map_err(|_| {
            StoreError::invalid("status", "must be active, archived or data_deleted")
        })?;
        binds.push(s.clone());
        filter.push_str(&format!(" AND p.status = ${}", binds.len()));
    }
    if q.page.is_some() && q.after.is_some() {
        return Err(StoreError::invalid("after", "cannot be combined with page"));
    }
    // The cursor narrows the listing, not the count.
    let mut cursor = String::new();
    let mut list_binds = binds.clone();
    if let Some((id, key)) = q.after.as_deref().map(parse_cursor).transpose()? {
        list_binds.push(key);
        let n = list_binds.len();
        cursor = format!(" AND (p.name_key > ${n} OR (p.name_key = ${n} AND p.id > {id}))");
    }
    let offset = (page - 1) * per_page;
    // One row more than the page, to know whether a next page exists.
    let fetch = per_page + 1;
    // Who sees what: everything for staff; else three routes: the readable projects of the
    // caller's labs (cut, in name order, to the rows the page can need, from the covering index
    // projects_lab_read), direct membership and group membership (a few rows each). The page is
    // chosen from ids and names before any row is joined.
    let (count_sql, list_sql) = if sees_all(&actor) || ctx.group_scope.is_some() {
        (
            format!("SELECT COUNT(*) FROM projects p WHERE 1 = 1{filter}"),
            format!(
                "SELECT {COLUMNS} FROM {FROM} WHERE 1 = 1{filter}{cursor} \
                 ORDER BY p.name_key, p.id LIMIT {fetch} OFFSET {offset}"
            ),
        )
    } else {
        let me = actor.user.0;
        let lab_route = |f: &str| {
            format!(
                "SELECT p.id, p.name_key FROM lab_members lm JOIN projects p ON p.lab_id = lm.lab_id \
                 AND p.lab_members_read = 1 WHERE lm.user_id = {me}{f}"
            )
        };
        let member_routes = |f: &str| {
            format!(
                "SELECT p.id, p.name_key FROM project_members m JOIN projects p ON p.id = m.project_id \
                 WHERE m.user_id = {me}{f} \
                 UNION SELECT p.id, p.name_key FROM project_group_members gm \
                 JOIN project_groups g ON g.id = gm.group_id JOIN projects p ON p.id = g.project_id \
                 WHERE gm.user_id = {me}{f}"
            )
        };
        let narrowed = format!("{filter}{cursor}");
        (
            // The lab route counted on its covering index, plus memberships outside it.
            format!(
                "SELECT (SELECT COUNT(*) FROM ({}) a) + (SELECT COUNT(*) FROM ({}) v \
                 JOIN projects p ON p.id = v.id WHERE NOT (p.lab_members_read = 1 AND p.lab_id IN \
                 (SELECT lab_id FROM lab_members WHERE user_id = {me})))",
                lab_route(&filter),
                member_routes(&filter)
            ),
            format!(
                "SELECT {COLUMNS} FROM (SELECT id, name_key FROM \
                 (SELECT * FROM ({} ORDER BY p.name_key, p.id LIMIT {}) a \
                  UNION SELECT * FROM ({}) b) u \
                 ORDER BY name_key, id LIMIT {fetch} OFFSET {offset}) v \
                 JOIN projects p ON p.id = v.id JOIN labs l ON l.id = p.lab_id ORDER BY p.name_key, p.id",
                lab_route(&narrowed),
                offset + fetch,
                member_routes(&narrowed)
            ),
        )
    };
    let mut count_q = sqlx::query_scalar::<Any, i64>(&count_sql);
    for b in &binds {
        count_q = count_q.bind(b.clone());
    }
    let total = count_q.fetch_one(&db.pool).await?;
    let mut list_q = sqlx::query::<Any>(&list_sql);
    for b in &list_binds {
        list_q = list_q.bind(b.clone());
    }
    let mut projects: Vec<Project> = list_q
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(from_row)
        .collect::<Result<_, _>>()?;
    let next = if projects.len() as i64 > per_page {
        projects.truncate(per_page as usize);
        projects
            .last()
            .map(|p| format!("{}:{}", p.id, p.name.to_lowercase()))
    } else {
        None
    };
    fill_my_roles(db, actor.user.0, &mut projects).await?;
    Ok(ProjectPage {
        projects,
        total,
        page,
        per_page,
        next,
    })
}

/// Fills in the caller's role in each project of a page (one query).
async fn fill_my_roles(db: &Db, user: i64, projects: &mut [Project]) -> Result<(), StoreError> {
    if projects.is_empty() {
        return Ok(());
    }
    let ids = projects
        .iter()
        .map(|p| p.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT project_id, role FROM project_members WHERE user_id = $1 AND project_id IN ({ids}) \
         UNION ALL SELECT g.project_id, g.role FROM project_groups g JOIN project_group_members m ON m.group_id = g.id \
         WHERE m.user_id = $1 AND g.project_id IN ({ids})"
    );
    for r in sqlx::query::<Any>(&sql)
        .bind(user)
        .fetch_all(&db.pool)
        .await?
    {
        let id: i64 = r.try_get("project_id")?;
        let role = ProjectRole::parse(&r.try_get::<String, _>("role")?);
        if let Some(p) = projects.iter_mut().find(|p| p.id == id) {
            p.my_role = p.my_role.into_iter().chain(role).min();
        }
    }
    Ok(())
}

/// What a user fills in to create a project.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// The lab that owns the project.
    pub lab_id: i64,
    /// 1 to 64 of `a-z A-Z 0-9 . _ -`, unique in the lab regardless of case; also the name of the
    /// project's directory.
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Every member of the lab may read the project (default true).
    #[serde(default)]
    pub lab_members_read: Option<bool>,
    /// A directory outside the lab's project root to hold the project's directory: Site Admins only.
    #[serde(default)]
    pub file_root: Option<String>,
}

/// A change to a project's settings; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub lab_members_read: Option<bool>,
    /// Refused: a project's file root is chosen when it is created.
    pub file_root: Option<String>,
}

fn validate_description(text: &str) -> Result<String, StoreError> {
    if text.chars().count() > DESCRIPTION_MAX {
        return Err(StoreError::invalid(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(StoreError::invalid(
            "description",
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// The Unix account a lab's file operations run as, or a conflict saying what to configure.
pub fn lab_account(lab: &Lab) -> Result<Account, StoreError> {
    match (&lab.unix_user, lab.uid, lab.gid) {
        (Some(user), Some(uid), Some(gid)) => Ok(Account {
            user: user.clone(),
            uid: u32::try_from(uid).map_err(|_| StoreError::Internal(format!("lab uid {uid}")))?,
            gid: u32::try_from(gid).map_err(|_| StoreError::Internal(format!("lab gid {gid}")))?,
        }),
        _ => Err(StoreError::InUse {
            field: "lab",
            message: format!(
                "lab `{}` has no Unix account yet: a Site Admin must set one (`cryowarden lab set-unix-account`)",
                lab.name
            ),
        }),
    }
}

/// Creates a project: its directory first (as the lab's account, through the runner), then its
/// record, its creator as project admin, and the audit event in one transaction.
pub async fn create(
    db: &Db,
    runner: &Runner,
    ctx: &Ctx,
    new: NewProject,
) -> Result<Project, StoreError> {
    let lab = labs::get(db, new.lab_id)
        .await
        .map_err(|_| StoreError::NotFound { what: "lab" })?;
    let lab_role = labs::role_for(db, lab.id, ctx).await?;
    let target = Target {
        kind: "project",
        id: None,
        name: Some(format!("{}/{}", lab.name, new.name)),
    };
    let resource = Resource::data(DataScope::lab(lab_role, lab.import_policy));
    let proof = ctx
        .authorize(db, DataAction::CreateLabProject.into(), resource, &target)
        .await?;
    let custom_root = match &new.file_root {
        Some(root) => {
            let proof = ctx
                .authorize(
                    db,
                    Activity::SetCustomFileRoot.into(),
                    Resource::instance(),
                    &target,
                )
                .await?;
            Some((custom_file_root(db, lab.id, root).await?, proof))
        }
        None => None,
    };
    let name = labs::validate_name(&new.name)?;
    let title = match new.title.as_deref().map(labs::validate_title).transpose()? {
        Some(t) if !t.is_empty() => t,
        _ => name.clone(),
    };
    let description = validate_description(new.description.as_deref().unwrap_or(""))?;
    let account = lab_account(&lab)?;
    let parent = match (&custom_root, &lab.project_root) {
        (Some((c, _)), _) => c.clone(),
        (None, Some(root)) => root.clone(),
        (None, None) => {
            return Err(StoreError::InUse {
                field: "lab",
                message: format!(
                    "lab `{}` has no project root yet: a Site Admin must set one (`cryowarden lab set-roots`)",
                    lab.name
                ),
            });
        }
    };
    let taken: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM projects WHERE lab_id = $1 AND name_key = $2")
            .bind(lab.id)
            .bind(name.to_lowercase())
            .fetch_one(&db.pool)
            .await?;
    if taken > 0 {
        return Err(StoreError::Conflict { field: "name" });
    }
    runner
        .create_project_dir(&account, Path::new(&parent), &name)
        .await?;

    let custom_proof = custom_root.map(|(_, proof)| proof);
    let inserted = insert(
        db,
        ctx,
        &proof,
        custom_proof.as_ref(),
        &lab,
        &name,
        &title,
        &description,
        &parent,
        &new,
    )
    .await;
    match inserted {
        Ok(p) => Ok(p),
        Err(e) => {
            // The record did not commit: remove the empty directory made for it.
            if let Err(cleanup) = runner
                .delete_tree(&account, Path::new(&parent), &name)
                .await
            {
                tracing::error!(error = %cleanup, dir = %Path::new(&parent).join(&name).display(), "cannot remove the directory of a project that failed to be created");
            }
            Err(e)
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the fields of one page of projects, named at every call site"
)]
async fn insert(
    db: &Db,
    ctx: &Ctx,
    proof: &Allowed,
    custom_root_proof: Option<&Allowed>,
    lab: &Lab,
    name: &str,
    title: &str,
    description: &str,
    parent: &str,
    new: &NewProject,
) -> Result<Project, StoreError> {
    let actor = actor(ctx)?;
    let custom_root = custom_root_proof.is_some();
    let mut tx = db.begin_write().await?;
    proof.require(DataAction::CreateLabProject.into())?;
    if let Some(p) = custom_root_proof {
        p.require(Activity::SetCustomFileRoot.into())?;
    }
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO projects (lab_id, name, name_key, title, description, parent_dir, custom_root, dir_name, \
         lab_members_read, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $2, $8, $9, $10, $10) \
         RETURNING id",
    )
    .bind(lab.id)
    .bind(name)
    .bind(name.to_lowercase())
    .bind(title)
    .bind(description)
    .bind(parent)
    .bind(i64::from(custom_root))
    .bind(i64::from(new.lab_members_read.unwrap_or(true)))
    .bind(actor.user.0)
    .bind(now)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| map_unique(e, &[("name_key", "name"), ("dir", "name")]))?;
    sqlx::query("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(actor.user.0)
        .bind(ProjectRole::ProjectAdmin.as_str())
        .execute(&mut *tx.tx)
        .await?;
    let project = Project {
        id,
        lab_id: lab.id,
        lab_name: lab.name.clone(),
        name: name.to_owned(),
        title: title.to_owned(),
        description: description.to_owned(),
        path: Path::new(parent).join(name).to_string_lossy().into_owned(),
        custom_file_root: custom_root,
        lab_members_read: new.lab_members_read.unwrap_or(true),
        status: ProjectStatus::Active,
        my_role: Some(ProjectRole::ProjectAdmin),
        created_by: Some(actor.user.0),
        created_at: format_ms(now),
        updated_at: format_ms(now),
    };
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Activity::CreateProject,
        &project.audit_target(),
        None,
        Some(snapshot(&project)),
    )
    .await?;
    tx.commit().await?;
    Ok(project)
}

/// Checks a custom file root: an existing directory, outside every other lab's storage roots.
async fn custom_file_root(db: &Db, lab_id: i64, root: &str) -> Result<String, StoreError> {
    let root = root.to_owned();
    let canon = tokio::task::spawn_blocking(move || labs::roots::check_root("file_root", &root))
        .await
        .map_err(|e| StoreError::Internal(format!("root check: {e}")))??;
    let others = sqlx::query::<Any>("SELECT path FROM lab_roots WHERE lab_id <> $1")
        .bind(lab_id)
        .fetch_all(&db.pool)
        .await?;
    for r in others {
        let other: String = r.try_get("path")?;
        if labs::roots::nested(&canon, Path::new(&other)) {
            return Err(StoreError::invalid(
                "file_root",
                format!(
                    "`{}` overlaps another lab's storage root: choose a directory of this lab",
                    canon.display()
                ),
            ));
        }
    }
    canon
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::invalid("file_root", "is not valid UTF-8"))
}

/// Changes a project's title, description or lab-read switch (`update-project-settings`).
pub async fn update(
    db: &Db,
    ctx: &Ctx,
    id: i64,
    patch: ProjectPatch,
) -> Result<Project, StoreError> {
    let (before, scope, _) = access(db, ctx, id, DataAction::ViewProject).await?;
    // The Folder Admin column applies within the admin's workspace (see `workspaces`): a
    // workspace's own settings are changed there; the project's are outside it.
    let resource =
        Resource::data(scope).scoped(scope.project_role == Some(ProjectRole::ProjectAdmin), false);
    let resource = with_impersonator_facts(db, ctx, &before, None, resource).await?;
    let target = before.audit_target();
    if patch.file_root.is_some() {
        let _may_set_root = ctx
            .authorize(db, Activity::SetCustomFileRoot.into(), resource, &target)
            .await?;
        return Err(StoreError::invalid(
            "file_root",
            "is chosen when the project is created and cannot be moved: create a new project with the file root",
        ));
    }
    let action: Action = Activity::UpdateProjectSettings.into();
    let proof = ctx.authorize(db, action, resource, &target).await?;
    let title = match patch
        .title
        .as_deref()
        .map(labs::validate_title)
        .transpose()?
    {
        Some(t) if t.is_empty() => before.name.clone(),
        Some(t) => t,
        None => before.title.clone(),
    };
    let description = patch
        .description
        .as_deref()
        .map(validate_description)
        .transpose()?
        .unwrap_or_else(|| before.description.clone());
    let lab_members_read = patch.lab_members_read.unwrap_or(before.lab_members_read);
    let after = Project {
        title,
        description,
        lab_members_read,
        ..before.clone()
    };
    if after.title == before.title
        && after.description == before.description
        && lab_members_read == before.lab_members_read
    {
        return Ok(before);
    }
    let mut tx = db.begin_write().await?;
    proof.require(action)?;
    sqlx::query(
        "UPDATE projects SET title = $1, description = $2, lab_members_read = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(&after.title)
    .bind(&after.description)
    .bind(i64::from(lab_members_read))
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx.tx)
    .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::UpdateProject,
        &target,
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Deletes a project's record (`delete-project`: Site and Application Admins). Its data must have
/// been deleted first, unless `keep_data` says to leave the directory on disk.
pub async fn delete(db: &Db, ctx: &Ctx, id: i64, keep_data: bool) -> Result<Project, StoreError> {
    let (project, scope, _) = access(db, ctx, id, DataAction::ViewProject).await?;
    let action: Action = Activity::DeleteProject.into();
    let resource = with_impersonator_facts(db, ctx, &project, None, Resource::data(scope)).await?;
    let proof = ctx
        .authorize(db, action, resource, &project.audit_target())
        .await?;
    if project.status != ProjectStatus::DataDeleted && !keep_data {
        return Err(StoreError::InUse {
            field: "project",
            message: format!(
                "`{}` still has its data at {}: delete the data first (data management), or pass keep_data=true to leave the directory on disk",
                project.name, project.path
            ),
        });
    }
    let mut tx = db.begin_write().await?;
    proof.require(action)?;
    sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
    let mut before = snapshot(&project);
    before["data_left_on_disk"] = json!(project.status != ProjectStatus::DataDeleted);
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Activity::DeleteProject,
        &project.audit_target(),
        Some(before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(project)
}
