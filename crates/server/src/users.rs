//! Users: create (with a registration token), list, show, update, activate / deactivate,
//! delete, and issue reset tokens. Every write takes the proof that `authorize` returned.

use cryowarden_core::{
    Action, Activity, Actor, Allowed, ProjectRole, Resource, SiteRole, UserId, UserStatus, limits,
    username_problem,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row};

use crate::context::{Ctx, Target};
use crate::db::{Db, WriteTx, format_ms, now_ms};
use crate::error::{StoreError, map_unique};
use crate::secrets::{REGISTER_PREFIX, RESET_PREFIX, Secret};

/// A user as the API shows it (never the password hash).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[schema(value_type = String, example = "active")]
    pub status: UserStatus,
    #[schema(value_type = String, example = "none")]
    pub site_role: SiteRole,
    pub job_priority_management: bool,
    pub live_data_management: bool,
    /// The user's own default job priority; `null` means the instance default.
    pub default_job_priority: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub last_login_at: Option<String>,
    pub has_password: bool,
}

impl User {
    pub fn actor(&self) -> Actor {
        Actor::new(UserId(self.id), self.site_role)
    }
    pub fn target(&self) -> Resource {
        Resource::user(UserId(self.id), self.site_role)
    }
    pub fn audit_target(&self) -> Target {
        Target::user(self.id, &self.username)
    }
}

pub(crate) const USER_COLUMNS: &str = "id, username, email, first_name, last_name, status, site_role, \
    job_priority_management, live_data_management, default_job_priority, created_by, created_at, \
    updated_at, last_login_at, password_hash";

pub(crate) fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User, StoreError> {
    let status: String = r.try_get("status")?;
    let role: String = r.try_get("site_role")?;
    let hash: Option<String> = r.try_get("password_hash")?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        email: r.try_get("email")?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Internal(format!("bad status {status}")))?,
        site_role: SiteRole::parse(&role)
            .ok_or_else(|| StoreError::Internal(format!("bad role {role}")))?,
        job_priority_management: r.try_get::<i64, _>("job_priority_management")? != 0,
        live_data_management: r.try_get::<i64, _>("live_data_management")? != 0,
        default_job_priority: r.try_get("default_job_priority")?,
        created_by: r.try_get("created_by")?,
        created_at: format_ms(r.try_get("created_at")?),
        updated_at: format_ms(r.try_get("updated_at")?),
        last_login_at: r.try_get::<Option<i64>, _>("last_login_at")?.map(format_ms),
        has_password: hash.is_some(),
    })
}

/// What an admin fills in to create a user.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// Defaults to `none` (an ordinary user).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub site_role: Option<SiteRole>,
}

/// A token an admin delivers to a user, shown once.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// `register` or `reset`.
    pub kind: String,
    pub token: String,
    pub expires_at: String,
    /// The page where the user redeems it, relative to the server's base URL.
    pub path: String,
}

pub fn validate_email(email: &str) -> Result<String, StoreError> {
    let email = email.trim();
    if email.len() > limits::EMAIL_MAX {
        return Err(StoreError::invalid(
            "email",
            format!("must be at most {} characters", limits::EMAIL_MAX),
        ));
    }
    if !email_address::EmailAddress::is_valid(email) || !email.contains('@') {
        return Err(StoreError::invalid("email", "is not a valid email address"));
    }
    Ok(email.to_owned())
}

pub fn validate_name(field: &'static str, name: &str) -> Result<String, StoreError> {
    let name = name.trim();
    if name.chars().count() > limits::NAME_MAX {
        return Err(StoreError::invalid(
            field,
            format!("must be at most {} characters", limits::NAME_MAX),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

pub fn validate_username(name: &str) -> Result<String, StoreError> {
    match username_problem(name) {
        Some(p) => Err(StoreError::invalid("username", p)),
        None => Ok(name.to_owned()),
    }
}

const UNIQUE_FIELDS: &[(&str, &str)] = &[("username_key", "username"), ("email_key", "email")];

/// Looks up a user by id.
pub async fn get(db: &Db, id: i64) -> Result<User, StoreError> {
    find(db, id)
        .await?
        .ok_or(StoreError::NotFound { what: "user" })
}

pub async fn find(db: &Db, id: i64) -> Result<Option<User>, StoreError> {
    let row = sqlx::query::<Any>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn find_by_username(
    db: &Db,
    username: &str,
) -> Result<Option<(User, Option<String>)>, StoreError> {
    let row = sqlx::query::<Any>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username_key = $1"
    ))
    .bind(username.to_lowercase())
    .fetch_optional(&db.pool)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some((user_from_row(&r)?, r.try_get("password_hash")?))),
    }
}

pub async fn count(db: &Db) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar::<Any, i64>("SELECT COUNT(*) FROM users")
        .fetch_one(&db.pool)
        .await?)
}

pub async fn count_site_admins(db: &Db) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar::<Any, i64>("SELECT COUNT(*) FROM users WHERE site_role = 'site_admin'")
            .fetch_one(&db.pool)
            .await?,
    )
}

/// Inserts a user row. Guarded: needs the proof for `create-user` (or the bootstrap's).
pub(crate) async fn insert(
    tx: &mut WriteTx,
    proof: &Allowed,
    new: &NewUser,
    status: UserStatus,
    password_hash: Option<&str>,
) -> Result<User, StoreError> {
    proof.require(Action::Activity(Activity::CreateUser))?;
    let now = now_ms();
    let role = new.site_role.unwrap_or(SiteRole::None);
    let row = sqlx::query::<Any>(&format!(
        "INSERT INTO users (username, username_key, email, email_key, first_name, last_name, status, site_role, \
         job_priority_management, live_data_management, default_job_priority, password_hash, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, NULL, $10, $11, $12, $12) RETURNING {USER_COLUMNS}"
    ))
    .bind(&new.username)
    .bind(new.username.to_lowercase())
    .bind(&new.email)
    .bind(new.email.to_lowercase())
    .bind(&new.first_name)
    .bind(&new.last_name)
    .bind(status.as_str())
    .bind(role.as_str())
    .bind(i64::from(role.is_admin()))
    .bind(password_hash)
    .bind(proof.actor().map(|a| a.0))
    .bind(now)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| map_unique(e, UNIQUE_FIELDS))?;
    user_from_row(&row)
}

/// Makes a single-use token of `kind` for `user_id`, retiring that user's earlier unused ones.
pub(crate) async fn issue_token(
    tx: &mut WriteTx,
    user_id: Option<i64>,
    kind: &str,
    ttl_ms: i64,
    created_by: Option<i64>,
) -> Result<(Secret, i64), StoreError> {
    let prefix = match kind {
        "register" => REGISTER_PREFIX,
        "reset" => RESET_PREFIX,
        _ => crate::secrets::BOOTSTRAP_PREFIX,
    };
    let now = now_ms();
    match user_id {
        Some(id) => {
            sqlx::query("UPDATE user_tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx.tx)
                .await?
        }
        None => {
            sqlx::query("UPDATE user_tokens SET used_at = $1 WHERE user_id IS NULL AND kind = $2 AND used_at IS NULL")
                .bind(now)
                .bind(kind)
                .execute(&mut *tx.tx)
                .await?
        }
    };
    let secret = Secret::generate(prefix);
    let expires = now + ttl_ms;
    sqlx::query("INSERT INTO user_tokens (user_id, kind, token_hash, expires_at, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(user_id)
        .bind(kind)
        .bind(secret.hash())
        .bind(expires)
        .bind(created_by)
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
    Ok((secret, expires))
}

fn issued(kind: &str, secret: &Secret, expires: i64) -> IssuedToken {
    let page = if kind == "reset" { "reset" } else { "register" };
    IssuedToken {
        kind: kind.to_owned(),
        token: secret.expose().to_owned(),
        expires_at: format_ms(expires),
        path: format!("/{page}?token={}", secret.expose()),
    }
}

/// The scoped facts of §2 that the caller looks up for `authorize()`: whether the actor is
/// Project Admin and whether they are Folder Admin *of something that covers the target*.
///
/// How "users of their project" and "users of their workspace" are read here:
/// - the **users of a project** are its direct members, the members of its project groups, and
///   the folder admins of its workspaces (`projects/members.rs`, `projects/workspaces.rs`);
/// - a Project Admin is a member whose project role is `project_admin`, given directly or
///   through a project group;
/// - a workspace has no membership of its own — `projects/workspaces.rs` keeps only its folder
///   admins, and whoever may see a project reaches all of its workspaces — so the **users of a
///   workspace** are the users of the project the workspace belongs to. A Folder Admin of any
///   workspace of project P therefore holds the Folder Admin column for the users of P.
///
/// For an instance-wide row with no target (create-user), the facts are "Project Admin of any
/// project" and "Folder Admin of any workspace".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub project_admin: bool,
    pub folder_admin: bool,
}

/// Which of a user's projects [`projects_of_sql`] selects.
#[derive(Clone, Copy)]
enum Standing {
    /// Every project they belong to: as a member, through a project group, or as folder admin
    /// of one of its workspaces.
    Any,
    /// Those they administer, directly or through a project group.
    ProjectAdmin,
    /// Those with a workspace of which they are folder admin.
    FolderAdmin,
}

/// The ids of `user`'s projects with `standing`, each route on a user index (SQL).
fn projects_of_sql(user: i64, standing: Standing) -> String {
    let members = |admin_only: bool| {
        let (direct, group) = if admin_only {
            let role = ProjectRole::ProjectAdmin.as_str();
            (
                format!(" AND pm.role = '{role}'"),
                format!(" AND pg.role = '{role}'"),
            )
        } else {
            (String::new(), String::new())
        };
        format!(
            "SELECT pm.project_id FROM project_members pm WHERE pm.user_id = {user}{direct} \
             UNION SELECT pg.project_id FROM project_group_members pgm JOIN project_groups pg ON pg.id = pgm.group_id \
             WHERE pgm.user_id = {user}{group}"
        )
    };
    let folders = format!(
        "SELECT fw.project_id FROM workspace_admins fa JOIN workspaces fw ON fw.id = fa.workspace_id WHERE fa.user_id = {user}"
    );
    match standing {
        Standing::Any => format!("{} UNION {folders}", members(false)),
        Standing::ProjectAdmin => members(true),
        Standing::FolderAdmin => folders,
    }
}

/// The users of the projects `projects` selects (see [`Scope`]): SQL, user ids only.
fn project_users_sql(projects: &str) -> String {
    format!(
        "SELECT um.user_id FROM project_members um WHERE um.project_id IN ({projects}) \
         UNION SELECT ugm.user_id FROM project_group_members ugm JOIN project_groups ug ON ug.id = ugm.group_id \
         WHERE ug.project_id IN ({projects}) \
         UNION SELECT ua.user_id FROM workspace_admins ua JOIN workspaces uw ON uw.id = ua.workspace_id \
         WHERE uw.project_id IN ({projects})"
    )
}

/// The first project (by id) of `target`'s that `me` administers — as project admin, or with
/// `folder` as folder admin of one of its workspaces — among `only` when given: the project a
/// project or folder admin's impersonation of `target` is confined to.
pub async fn administered_project_of(
    db: &Db,
    me: i64,
    target: i64,
    folder: bool,
    only: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let mine = projects_of_sql(
        me,
        if folder {
            Standing::FolderAdmin
        } else {
            Standing::ProjectAdmin
        },
    );
    let only = only.map_or(String::new(), |p| format!(" AND x.project_id = {p}"));
    let sql = format!(
        "SELECT x.project_id FROM ({}) x WHERE x.project_id IN ({mine}){only} ORDER BY x.project_id LIMIT 1",
        projects_of_sql(target, Standing::Any)
    );
    Ok(sqlx::query_scalar::<Any, i64>(&sql)
        .fetch_optional(&db.pool)
        .await?)
}

/// Looks up the [`Scope`] of actor `me` over `target` (a user id), or over the whole instance
/// (`None`: project admin of any project, folder admin of any workspace). One round trip, on
/// the user indexes of both sides: the target's projects meet the actor's.
pub async fn scope(db: &Db, me: i64, target: Option<i64>) -> Result<Scope, StoreError> {
    let count = |mine: String| match target {
        Some(t) => {
            format!(
                "SELECT COUNT(*) FROM ({}) x WHERE x.project_id IN ({mine})",
                projects_of_sql(t, Standing::Any)
            )
        }
        None => format!("SELECT COUNT(*) FROM ({mine}) x"),
    };
    let (pa, fa) = (
        count(projects_of_sql(me, Standing::ProjectAdmin)),
        count(projects_of_sql(me, Standing::FolderAdmin)),
    );
    let row = sqlx::query::<Any>(&format!("SELECT ({pa}) AS pa, ({fa}) AS fa"))
        .fetch_one(&db.pool)
        .await?;
    Ok(Scope {
        project_admin: row.try_get::<i64, _>("pa")? > 0,
        folder_admin: row.try_get::<i64, _>("fa")? > 0,
    })
}

/// The resource of an action on `user` by the caller, with the caller's scoped facts.
pub async fn scoped_target(db: &Db, ctx: &Ctx, user: &User) -> Result<Resource, StoreError> {
    match ctx.actor {
        Some(actor) => with_facts(db, &actor, user.target(), Some(user.id)).await,
        None => Ok(user.target()),
    }
}

/// `resource` with the [`Scope`] of each side of `actor` over `target` (a user id, or the whole
/// instance): the acting side's own facts, and while impersonating the impersonator's own,
/// each looked up for its own person — never one side's facts for the other (issue 11).
pub async fn with_facts(
    db: &Db,
    actor: &Actor,
    resource: Resource,
    target: Option<i64>,
) -> Result<Resource, StoreError> {
    let facts = |me: i64| async move {
        if target == Some(me) {
            // Oneself: the scoped columns add nothing the user column does not decide.
            return Ok::<_, StoreError>(Scope::default());
        }
        scope(db, me, target).await
    };
    let mine = facts(actor.user.0).await?;
    let mut resource = resource.scoped(mine.project_admin, mine.folder_admin);
    if let Some(by) = actor.impersonator() {
        let theirs = if by == actor.user {
            mine
        } else {
            facts(by.0).await?
        };
        resource = resource.impersonator_scoped(theirs.project_admin, theirs.folder_admin);
    }
    Ok(resource)
}

/// Creates an invited user and the registration token an admin delivers to them.
pub async fn create(
    db: &Db,
    ctx: &Ctx,
    new: NewUser,
    register_ttl_ms: i64,
) -> Result<(User, IssuedToken), StoreError> {
    let role = new.site_role.unwrap_or(SiteRole::None);
    let target = Target {
        kind: "user",
        id: None,
        name: Some(new.username.clone()),
    };
    let actor = ctx
        .actor
        .ok_or_else(|| StoreError::Internal("create a user with no actor".into()))?;
    let instance = with_facts(db, &actor, Resource::instance(), None).await?;
    let proof = ctx
        .authorize(db, Activity::CreateUser.into(), instance, &target)
        .await?;
    // Creating someone with a site role also needs the right to grant that role.
    let role_proof = if role == SiteRole::None {
        None
    } else {
        let action = Action::ChangeSiteRole {
            from: SiteRole::None,
            to: role,
        };
        Some(
            ctx.authorize(
                db,
                action,
                Resource::user(UserId(-1), SiteRole::None),
                &target,
            )
            .await?,
        )
    };
    let new = NewUser {
        username: validate_username(&new.username)?,
        email: validate_email(&new.email)?,
        first_name: validate_name("first_name", &new.first_name)?,
        last_name: validate_name("last_name", &new.last_name)?,
        site_role: Some(role),
    };
    let mut tx = db.begin_write().await?;
    crate::console::active_users::check_seat(&mut tx, crate::console::active_users::Seat::New)
        .await?;
    let user = insert(&mut tx, &proof, &new, UserStatus::Invited, None).await?;
    let _ = role_proof;
    let (secret, expires) = issue_token(
        &mut tx,
        Some(user.id),
        "register",
        register_ttl_ms,
        proof.actor().map(|a| a.0),
    )
    .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Activity::CreateUser,
        &user.audit_target(),
        None,
        Some(snapshot(&user)),
    )
    .await?;
    tx.commit().await?;
    Ok((user, issued("register", &secret, expires)))
}

/// What the audit log keeps of a user (no secrets).
pub fn snapshot(u: &User) -> serde_json::Value {
    json!({
        "username": u.username, "email": u.email, "first_name": u.first_name, "last_name": u.last_name,
        "status": u.status, "site_role": u.site_role, "job_priority_management": u.job_priority_management,
        "live_data_management": u.live_data_management, "default_job_priority": u.default_job_priority,
    })
}

/// Sorting and filtering for the user list.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Matches username, email, first or last name (case-insensitive substring).
    pub q: Option<String>,
    /// `username` (default), `email`, `created_at`, `last_name`; prefix `-` for descending.
    pub sort: Option<String>,
    /// Page number from 1.
    pub page: Option<i64>,
    /// Rows per page, 1..=500 (default 50).
    pub per_page: Option<i64>,
    pub status: Option<String>,
    pub site_role: Option<String>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub users: Vec<User>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Users the caller may see: everyone for admins and troubleshooters; else oneself, plus the
/// users of the projects they administer and of the projects where they are folder admin
/// (see [`Scope`]), each route kept only if `authorize()` lets its column see another user.
/// Count and pages are computed over exactly those users.
pub async fn list(db: &Db, ctx: &Ctx, q: &ListQuery) -> Result<UserPage, StoreError> {
    let actor = ctx
        .actor
        .ok_or_else(|| StoreError::Internal("list users with no actor".into()))?;
    // Who is visible to each side of the caller, on that side's own facts (while impersonating,
    // the users both sides may see): display questions asked of authorize(), not audited.
    let (acting, impersonator) = actor.sides();
    let visible_to = |side: Actor| -> Option<String> {
        let sees = |r: &Resource| {
            cryowarden_core::authorize(&side, Activity::ViewUser.into(), r).is_allowed()
        };
        if sees(&Resource::instance()) {
            return None;
        }
        // Whether the Project Admin / Folder Admin column lets this side see someone else of
        // their scope.
        let other = Resource::user(UserId(0), SiteRole::None);
        let me = side.user.0;
        let mut routes = vec![format!("id = {me}")];
        if sees(&other.scoped(true, false)) {
            routes.push(format!(
                "id IN ({})",
                project_users_sql(&projects_of_sql(me, Standing::ProjectAdmin))
            ));
        }
        if sees(&other.scoped(false, true)) {
            routes.push(format!(
                "id IN ({})",
                project_users_sql(&projects_of_sql(me, Standing::FolderAdmin))
            ));
        }
        Some(format!("({})", routes.join(" OR ")))
    };
    let visible: Vec<String> = std::iter::once(acting)
        .chain(impersonator)
        .filter_map(visible_to)
        .collect();
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=500).contains(&per_page) {
        return Err(StoreError::invalid("per_page", "must be between 1 and 500"));
    }
    let page = q.page.unwrap_or(1);
    if !(1..=1_000_000).contains(&page) {
        return Err(StoreError::invalid("page", "must be at least 1"));
    }
    let (column, desc) = match q.sort.as_deref().unwrap_or("username") {
        s if s.starts_with('-') => (&s[1..], true),
        s => (s, false),
    };
    let order = match column {
        "username" => "username_key",
        "email" => "email_key",
        "created_at" => "created_at",
        "last_name" => "last_name",
        "id" => "id",
        _ => {
            return Err(StoreError::invalid(
                "sort",
                "must be one of username, email, created_at, last_name, id (prefix - for descending)",
            ));
        }
    };
    if let Some(s) = &q.status
        && UserStatus::parse(s).is_none()
    {
        return Err(StoreError::invalid(
            "status",
            "must be invited, active or deactivated",
        ));
    }
    if let Some(r) = &q.site_role
        && SiteRole::parse(r).is_none()
    {
        return Err(StoreError::invalid("site_role", "is not a site role"));
    }
    let mut where_sql = String::from(" WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    for routes in &visible {
        where_sql.push_str(&format!(" AND {routes}"));
    }
    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
        if text.len() > 200 {
            return Err(StoreError::invalid("q", "must be at most 200 characters"));
        }
        let pattern = format!("%{}%", text.to_lowercase().replace(['%', '_'], ""));
        let n = binds.len() + 1;
        where_sql.push_str(&format!(
            " AND (username_key LIKE ${n} OR email_key LIKE ${n} OR LOWER(first_name) LIKE ${n} OR LOWER(last_name) LIKE ${n})"
        ));
        binds.push(pattern);
    }
    if let Some(s) = &q.status {
        binds.push(s.clone());
        where_sql.push_str(&format!(" AND status = ${}", binds.len()));
    }
    if let Some(r) = &q.site_role {
        binds.push(r.clone());
        where_sql.push_str(&format!(" AND site_role = ${}", binds.len()));
    }
    let count_sql = format!("SELECT COUNT(*) FROM users{where_sql}");
    let mut count_q = sqlx::query_scalar::<Any, i64>(&count_sql);
    for b in &binds {
        count_q = count_q.bind(b.clone());
    }
    let total = count_q.fetch_one(&db.pool).await?;
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users{where_sql} ORDER BY {order} {}, id LIMIT {per_page} OFFSET {}",
        if desc { "DESC" } else { "ASC" },
        (page - 1) * per_page
    );
    let mut list_q = sqlx::query::<Any>(&sql);
    for b in &binds {
        list_q = list_q.bind(b.clone());
    }
    let users = list_q
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(user_from_row)
        .collect::<Result<_, _>>()?;
    Ok(UserPage {
        users,
        total,
        page,
        per_page,
    })
}

/// One user, if the caller may see them. Someone the caller may not see is "not found".
pub async fn show(db: &Db, ctx: &Ctx, id: i64) -> Result<User, StoreError> {
    Ok(visible(db, ctx, id).await?.0)
}

/// A user the caller may see, with the resource (and the caller's scoped facts) that every
/// further decision about them uses. Someone the caller may not see is "not found" (the
/// refusal is still audited).
pub(crate) async fn visible(db: &Db, ctx: &Ctx, id: i64) -> Result<(User, Resource), StoreError> {
    let user = get(db, id).await?;
    let resource = scoped_target(db, ctx, &user).await?;
    match ctx
        .authorize(
            db,
            Activity::ViewUser.into(),
            resource,
            &user.audit_target(),
        )
        .await
    {
        Ok(_) => Ok((user, resource)),
        Err(StoreError::Denied(_)) => Err(StoreError::NotFound { what: "user" }),
        Err(e) => Err(e),
    }
}

/// A change to a user; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[schema(value_type = Option<String>)]
    pub site_role: Option<SiteRole>,
    /// `active` or `deactivated`.
    #[schema(value_type = Option<String>)]
    pub status: Option<UserStatus>,
    pub job_priority_management: Option<bool>,
    pub live_data_management: Option<bool>,
    /// 0..=100, or `null` for the instance default.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub default_job_priority: Option<Option<i64>>,
    /// Confirms a change that asks for it (leaving the Application Admin role yourself).
    #[serde(default)]
    pub confirm: bool,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// One part of a user update, each authorized and audited on its own.
#[derive(Clone, Copy)]
enum Part {
    /// E-mail and names (`edit-user`).
    Details,
    /// The site role (`change-site-role`).
    SiteRole,
    /// Active or deactivated (`set-user-active`).
    Status,
    /// Job priority and live data management (`update-site-permissions`).
    Permissions,
}

impl Part {
    fn audit_action(self) -> cryowarden_core::AuditAction {
        match self {
            Part::Details => Activity::EditUser.into(),
            Part::SiteRole => cryowarden_core::Event::ChangeSiteRole.into(),
            Part::Status => Activity::SetUserActive.into(),
            Part::Permissions => Activity::UpdateSitePermissions.into(),
        }
    }
}

/// Applies `patch`: each part is authorized on its own, all before anything is written; then
/// everything commits in one transaction with one audit event per part. A change of role or a
/// deactivation revokes the user's sessions and API tokens. Returns the updated user and
/// whether their credentials were revoked.
pub async fn update(
    db: &Db,
    ctx: &Ctx,
    id: i64,
    patch: UserPatch,
) -> Result<(User, bool), StoreError> {
    let (before, resource) = visible(db, ctx, id).await?;
    let target = before.audit_target();
    let mut parts: Vec<(Allowed, Part)> = Vec::new();

    let details = patch.email.is_some() || patch.first_name.is_some() || patch.last_name.is_some();
    if details {
        parts.push((
            ctx.authorize(db, Activity::EditUser.into(), resource, &target)
                .await?,
            Part::Details,
        ));
    }
    if let Some(role) = patch.site_role.filter(|r| *r != before.site_role) {
        let proof = ctx
            .authorize(
                db,
                Action::ChangeSiteRole {
                    from: before.site_role,
                    to: role,
                },
                resource,
                &target,
            )
            .await?;
        if proof.has(cryowarden_core::Bound::RequiresConfirmation) && !patch.confirm {
            return Err(StoreError::invalid(
                "confirm",
                "you are removing your own Application Admin role: send `confirm: true` to go ahead",
            ));
        }
        parts.push((proof, Part::SiteRole));
    }
    if let Some(status) = patch.status.filter(|s| *s != before.status) {
        if status == UserStatus::Invited {
            return Err(StoreError::invalid(
                "status",
                "must be `active` or `deactivated`",
            ));
        }
        parts.push((
            ctx.authorize(db, Activity::SetUserActive.into(), resource, &target)
                .await?,
            Part::Status,
        ));
    }
    let permissions = patch
        .job_priority_management
        .is_some_and(|v| v != before.job_priority_management)
        || patch
            .live_data_management
            .is_some_and(|v| v != before.live_data_management)
        || patch
            .default_job_priority
            .is_some_and(|v| v != before.default_job_priority);
    if permissions {
        parts.push((
            ctx.authorize(
                db,
                Activity::UpdateSitePermissions.into(),
                resource,
                &target,
            )
            .await?,
            Part::Permissions,
        ));
    }

    let email = patch.email.as_deref().map(validate_email).transpose()?;
    let first_name = patch
        .first_name
        .as_deref()
        .map(|n| validate_name("first_name", n))
        .transpose()?;
    let last_name = patch
        .last_name
        .as_deref()
        .map(|n| validate_name("last_name", n))
        .transpose()?;
    if let Some(Some(p)) = patch.default_job_priority
        && !(0..=limits::PRIORITY_MAX).contains(&p)
    {
        return Err(StoreError::invalid(
            "default_job_priority",
            "must be an integer from 0 to 100, or null for the instance default",
        ));
    }
    if parts.is_empty() {
        return Ok((before, false));
    }

    let mut tx = db.begin_write().await?;
    let now = now_ms();
    let mut revoke = false;
    for (proof, part) in &parts {
        match *part {
            Part::Details => {
                proof.require(Activity::EditUser.into())?;
                let email = email.clone().unwrap_or_else(|| before.email.clone());
                sqlx::query("UPDATE users SET email = $1, email_key = $2, first_name = $3, last_name = $4, updated_at = $5 WHERE id = $6")
                    .bind(&email)
                    .bind(email.to_lowercase())
                    .bind(first_name.clone().unwrap_or_else(|| before.first_name.clone()))
                    .bind(last_name.clone().unwrap_or_else(|| before.last_name.clone()))
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx.tx)
                    .await
                    .map_err(|e| map_unique(e, UNIQUE_FIELDS))?;
            }
            Part::SiteRole => {
                let role = patch.site_role.unwrap_or(before.site_role);
                proof.require(Action::ChangeSiteRole {
                    from: before.site_role,
                    to: role,
                })?;
                sqlx::query("UPDATE users SET site_role = $1, updated_at = $2 WHERE id = $3")
                    .bind(role.as_str())
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx.tx)
                    .await?;
                revoke = true;
            }
            Part::Status => {
                proof.require(Activity::SetUserActive.into())?;
                let mut status = patch.status.unwrap_or(before.status);
                // Someone who never registered goes back to waiting for their token.
                if status == UserStatus::Active && !before.has_password {
                    status = UserStatus::Invited;
                }
                if before.status == UserStatus::Deactivated && status != UserStatus::Deactivated {
                    crate::console::active_users::check_seat(
                        &mut tx,
                        crate::console::active_users::Seat::New,
                    )
                    .await?;
                }
                sqlx::query("UPDATE users SET status = $1, updated_at = $2 WHERE id = $3")
                    .bind(status.as_str())
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx.tx)
                    .await?;
                revoke |= status == UserStatus::Deactivated;
            }
            _ => {
                proof.require(Activity::UpdateSitePermissions.into())?;
                sqlx::query("UPDATE users SET job_priority_management = $1, live_data_management = $2, default_job_priority = $3, updated_at = $4 WHERE id = $5")
                    .bind(i64::from(patch.job_priority_management.unwrap_or(before.job_priority_management)))
                    .bind(i64::from(patch.live_data_management.unwrap_or(before.live_data_management)))
                    .bind(patch.default_job_priority.unwrap_or(before.default_job_priority))
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx.tx)
                    .await?;
            }
        }
    }
    if revoke {
        revoke_credentials(&mut tx, id, now).await?;
    }
    let row = sqlx::query::<Any>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx.tx)
        .await?;
    let after = user_from_row(&row)?;
    for (_, part) in &parts {
        ctx.audit_ok(
            &mut tx,
            part.audit_action(),
            &target,
            Some(snapshot(&before)),
            Some(snapshot(&after)),
        )
        .await?;
    }
    tx.commit().await?;
    Ok((after, revoke))
}

/// Revokes every session and API token of a user.
pub(crate) async fn revoke_credentials(
    tx: &mut WriteTx,
    user_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx.tx)
        .await?;
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}

/// Deletes a user at once and permanently, with their sessions, tokens and API tokens.
pub async fn delete(db: &Db, ctx: &Ctx, id: i64) -> Result<User, StoreError> {
    let (user, resource) = visible(db, ctx, id).await?;
    let proof = ctx
        .authorize(
            db,
            Activity::DeleteUser.into(),
            resource,
            &user.audit_target(),
        )
        .await?;
    proof.require(Activity::DeleteUser.into())?;
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Activity::DeleteUser,
        &user.audit_target(),
        Some(snapshot(&user)),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Issues a new token for a user to set their password: a registration token while they are
/// invited, else a reset token. Earlier unused tokens of theirs stop working.
pub async fn issue_reset(
    db: &Db,
    ctx: &Ctx,
    id: i64,
    register_ttl_ms: i64,
    reset_ttl_ms: i64,
) -> Result<IssuedToken, StoreError> {
    let (user, resource) = visible(db, ctx, id).await?;
    let proof = ctx
        .authorize(
            db,
            Activity::ChangePassword.into(),
            resource,
            &user.audit_target(),
        )
        .await?;
    proof.require(Activity::ChangePassword.into())?;
    let (kind, ttl) = if user.status == UserStatus::Invited {
        ("register", register_ttl_ms)
    } else {
        ("reset", reset_ttl_ms)
    };
    let mut tx = db.begin_write().await?;
    let (secret, expires) =
        issue_token(&mut tx, Some(id), kind, ttl, proof.actor().map(|a| a.0)).await?;
    let action = if kind == "register" {
        cryowarden_core::Event::IssueRegisterToken
    } else {
        cryowarden_core::Event::IssueResetToken
    };
    ctx.audit_ok(
        &mut tx,
        action,
        &user.audit_target(),
        None,
        Some(json!({ "expires_at": format_ms(expires) })),
    )
    .await?;
    tx.commit().await?;
    Ok(issued(kind, &secret, expires))
}

/// The newest pending (unused, unexpired) registration or reset token of each of `ids`:
/// its kind and expiry, for the admin table (the token itself is never stored).
pub async fn pending_tokens(
    db: &Db,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, (String, String)>, StoreError> {
    let mut out = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT user_id, kind, expires_at FROM user_tokens WHERE used_at IS NULL AND expires_at > $1 AND user_id IN ({list}) ORDER BY id"
    );
    for r in sqlx::query::<Any>(&sql)
        .bind(now_ms())
        .fetch_all(&db.pool)
        .await?
    {
        let id: i64 = r.try_get("user_id")?;
        out.insert(
            id,
            (r.try_get("kind")?, format_ms(r.try_get("expires_at")?)),
        );
    }
    Ok(out)
}
