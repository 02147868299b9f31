//! Impersonation (`spec/roles.md` §2): a browser session acts as another user, or as a site
//! role, until it stops, the session logs out, or the time limit passes.
//!
//! Who may impersonate whom is `authorize(impersonate)` on the target, with the facts looked up
//! here: whether the impersonator is project admin of a project the target belongs to, or folder
//! admin of a workspace of such a project ("users of their workspace" are the members of the
//! workspace's project). The column that allowed it fixes the [`ImpersonationScope`]; from then
//! on every decision of the session is the target's capped by the impersonator's own
//! (`cryowarden_core::authorize`), and a scoped impersonation is confined to its project
//! ([`Ctx::project_scope`]) with the data standing of both intersected.
//!
//! Only a browser session impersonates (an API token never does), and while it does, API tokens
//! can be neither created, listed nor revoked: the target's credentials stay out of reach.

use cryowarden_core::{Activity, ImpersonationScope, Resource, SiteRole, UserId, UserStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row};

use crate::audit::Who;
use crate::auth::{Principal, Via};
use crate::context::{Ctx, Target};
use crate::db::{Db, format_ms, now_ms};
use crate::error::StoreError;
use crate::users::{self, User};

/// Who or what to impersonate.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// A user's id.
    pub user: Option<i64>,
    /// A site role (`site_admin`, `application_admin`, `impersonating_troubleshooter`,
    /// `troubleshooter`, `none`): act as oneself holding only that role.
    pub role: Option<String>,
    /// A group (a lab's id): act as oneself, a plain member of that lab and of nothing else.
    pub group: Option<i64>,
    /// For a project admin: the project whose user the target is (found when omitted).
    pub project: Option<i64>,
    /// For a folder admin: the workspace whose user the target is (found when omitted).
    pub workspace: Option<i64>,
}

/// An impersonation in progress, as the session carries it.
#[derive(Clone, Debug)]
pub struct Impersonating {
    pub id: i64,
    /// The real person.
    pub by: User,
    /// The role impersonated, for a role impersonation.
    pub role: Option<SiteRole>,
    /// The group impersonated (lab id and name), for a group impersonation.
    pub group: Option<(i64, String)>,
    pub scope: ImpersonationScope,
    /// The project a scoped impersonation is confined to.
    pub project_id: Option<i64>,
    pub started_at: i64,
    pub expires_at: i64,
}

/// What the API and the banner show.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    pub id: i64,
    /// The real person's username.
    pub impersonator: String,
    /// The username acted as, or `role:<role>`.
    pub acting_as: String,
    /// `site`, `scoped` or `break-glass`.
    pub scope: String,
    pub project_id: Option<i64>,
    pub started_at: String,
    pub expires_at: String,
}

impl Impersonating {
    pub fn status(&self, acting_as: &User) -> Status {
        Status {
            id: self.id,
            impersonator: self.by.username.clone(),
            acting_as: match (self.role, &self.group) {
                (Some(r), _) => format!("role:{r}"),
                (None, Some((_, lab))) => format!("group:{lab}"),
                (None, None) => acting_as.username.clone(),
            },
            scope: self.scope.as_str().to_owned(),
            project_id: self.project_id,
            started_at: format_ms(self.started_at),
            expires_at: format_ms(self.expires_at),
        }
    }
}

/// The open impersonation of a session, with the user it acts as; `None` when there is none or
/// it has just ended (time limit, or either side no longer active — recorded here).
pub(crate) async fn load(
    db: &Db,
    session_id: i64,
    me: &User,
) -> Result<Option<(Impersonating, User)>, StoreError> {
    let Some(row) = sqlx::query::<Any>(
        "SELECT i.id, i.target_user_id, i.target_role, i.target_lab_id, l.name AS lab_name, i.scope, i.project_id, \
         i.started_at, i.expires_at FROM impersonations i LEFT JOIN labs l ON l.id = i.target_lab_id \
         WHERE i.session_id = $1 AND i.ended_at IS NULL ORDER BY i.id DESC LIMIT 1",
    )
    .bind(session_id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let role = row
        .try_get::<Option<String>, _>("target_role")?
        .as_deref()
        .and_then(SiteRole::parse);
    let group = match row.try_get::<Option<i64>, _>("target_lab_id")? {
        Some(id) => Some((
            id,
            row.try_get::<Option<String>, _>("lab_name")?
                .unwrap_or_default(),
        )),
        None => None,
    };
    let imp = Impersonating {
        id: row.try_get("id")?,
        by: me.clone(),
        role,
        group: group.clone(),
        scope: ImpersonationScope::parse(&row.try_get::<String, _>("scope")?)
            .ok_or_else(|| StoreError::Internal("stored impersonation scope".into()))?,
        project_id: row.try_get("project_id")?,
        started_at: row.try_get("started_at")?,
        expires_at: row.try_get("expires_at")?,
    };
    let target = match (role, row.try_get::<Option<i64>, _>("target_user_id")?) {
        (Some(role), _) => User {
            site_role: role,
            ..me.clone()
        },
        (None, None) if group.is_some() => User {
            site_role: SiteRole::None,
            ..me.clone()
        },
        (None, Some(id)) => match users::find(db, id).await? {
            Some(u) => u,
            None => return Ok(None), // deleted: the row went with it (ON DELETE CASCADE)
        },
        (None, None) => {
            return Err(StoreError::Internal(
                "impersonation without a target".into(),
            ));
        }
    };
    let reason = if now_ms() >= imp.expires_at {
        Some("time-limit")
    } else if target.status != UserStatus::Active {
        Some("ended")
    } else {
        None
    };
    if let Some(reason) = reason {
        end(
            db,
            &imp,
            &target,
            reason,
            Ctx::system("impersonation", "local"),
        )
        .await?;
        return Ok(None);
    }
    Ok(Some((imp, target)))
}

/// The Ctx of a request made while impersonating: the target acts, the impersonator is named.
pub(crate) fn who(imp: &Impersonating, acting_as: &User) -> (Who, Who) {
    let acting = match (imp.role, &imp.group) {
        (Some(r), _) => Who {
            id: Some(acting_as.id),
            name: format!("{} (as role {r})", imp.by.username),
        },
        (None, Some((_, lab))) => Who {
            id: Some(acting_as.id),
            name: format!("{} (as group {lab})", imp.by.username),
        },
        (None, None) => Who {
            id: Some(acting_as.id),
            name: acting_as.username.clone(),
        },
    };
    (
        acting,
        Who {
            id: Some(imp.by.id),
            name: imp.by.username.clone(),
        },
    )
}

/// The facts of an impersonate request: the project of the target's that `me` administers as
/// project admin, and the one where `me` is folder admin of a workspace (the workspace's project
/// when one is named): "users of their project / workspace" as the user routes read it.
async fn scope_facts(
    db: &Db,
    me: i64,
    target: i64,
    project: Option<i64>,
    workspace: Option<i64>,
) -> Result<(Option<i64>, Option<i64>), StoreError> {
    let workspace_project = match workspace {
        Some(w) => Some(
            sqlx::query_scalar::<Any, i64>("SELECT project_id FROM workspaces WHERE id = $1")
                .bind(w)
                .fetch_optional(&db.pool)
                .await?
                .ok_or(StoreError::NotFound { what: "workspace" })?,
        ),
        None => None,
    };
    Ok((
        users::administered_project_of(db, me, target, false, project).await?,
        users::administered_project_of(db, me, target, true, workspace_project.or(project)).await?,
    ))
}

/// What `impersonate` of user `target` by `me` is decided on: the target with `me`'s facts
/// (project admin of one of the target's projects, folder admin of a workspace of one; only
/// `project` / `workspace`'s when named), and the project the impersonation would be confined
/// to. [`start`] decides with it, and so does the permission explainer.
pub async fn user_resource(
    db: &Db,
    me: i64,
    target: &User,
    project: Option<i64>,
    workspace: Option<i64>,
) -> Result<(Resource, Option<i64>), StoreError> {
    let (pa, fa) = scope_facts(db, me, target.id, project, workspace).await?;
    Ok((
        target.target().scoped(pa.is_some(), fa.is_some()),
        pa.or(fa),
    ))
}

/// Starts impersonating for the caller's browser session.
pub async fn start(
    db: &Db,
    principal: &Principal,
    ctx: &Ctx,
    req: StartRequest,
    minutes: i64,
) -> Result<Status, StoreError> {
    let Via::Session { id: session_id, .. } = principal.via else {
        return Err(StoreError::invalid(
            "authorization",
            "impersonation belongs to a browser session: sign in with a password, not an API token",
        ));
    };
    if principal.impersonating.is_some() {
        return Err(StoreError::Impersonating(
            "this session already impersonates: stop first (DELETE /api/v1/impersonation)",
        ));
    }
    let me = &principal.user;
    let (target_user, role, resource, project) = match (req.user, req.role.as_deref(), req.group) {
        (Some(id), None, None) => {
            let Some(target) = users::find(db, id).await? else {
                return Err(StoreError::NotFound { what: "user" });
            };
            if target.status != UserStatus::Active {
                return Err(StoreError::invalid(
                    "user",
                    "only an active user can be impersonated",
                ));
            }
            let (resource, project) =
                user_resource(db, me.id, &target, req.project, req.workspace).await?;
            (Some(target), None, resource, project)
        }
        (None, Some(r), None) => {
            let role = SiteRole::parse(r).ok_or_else(|| {
                StoreError::invalid(
                    "role",
                    "must be site_admin, application_admin, impersonating_troubleshooter, troubleshooter or none",
                )
            })?;
            if req.project.is_some() || req.workspace.is_some() {
                return Err(StoreError::invalid(
                    "project",
                    "a role is impersonated site-wide, with no project",
                ));
            }
            // A role is impersonated as a phantom user holding it (id 0 is nobody).
            (None, Some(role), Resource::user(UserId(0), role), None)
        }
        (None, None, Some(_)) => {
            if req.project.is_some() || req.workspace.is_some() {
                return Err(StoreError::invalid(
                    "project",
                    "a group is impersonated site-wide, with no project",
                ));
            }
            // A group, as a phantom ordinary user: Site and Application Admins only.
            (None, None, Resource::user(UserId(0), SiteRole::None), None)
        }
        _ => {
            return Err(StoreError::invalid(
                "user",
                "name exactly one of `user` (an id), `role` or `group` (a lab id)",
            ));
        }
    };
    let group = match req.group {
        Some(id) => Some((id, crate::labs::get(db, id).await?.name)),
        None => None,
    };
    let target_name = match (&target_user, role, &group) {
        (Some(t), _, _) => t.audit_target(),
        (None, Some(r), _) => Target {
            kind: "role",
            id: Some(r.as_str().into()),
            name: Some(r.as_str().into()),
        },
        (None, None, Some((id, lab))) => Target {
            kind: "lab",
            id: Some(id.to_string()),
            name: Some(lab.clone()),
        },
        _ => unreachable!("one of user, role or group was checked above"),
    };
    let proof = ctx
        .authorize(db, Activity::Impersonate.into(), resource, &target_name)
        .await?;
    let scope = ImpersonationScope::granted_by(&proof)
        .ok_or_else(|| StoreError::Internal("an impersonate proof without a scope".into()))?;
    let project = if scope == ImpersonationScope::Scoped {
        project
    } else {
        None
    };
    if !(1..=24 * 60).contains(&minutes) {
        return Err(StoreError::Internal(format!(
            "impersonation time limit {minutes} min out of range"
        )));
    }
    let now = now_ms();
    let expires = now + minutes * 60_000;
    let mut tx = db.begin_write().await?;
    proof.require(Activity::Impersonate.into())?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO impersonations (session_id, impersonator_id, kind, target_user_id, target_role, target_lab_id, \
         scope, project_id, workspace_id, started_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(session_id)
    .bind(me.id)
    .bind(match (role, &group) {
        (Some(_), _) => "role",
        (None, Some(_)) => "group",
        _ => "user",
    })
    .bind(target_user.as_ref().map(|t| t.id))
    .bind(role.map(cryowarden_core::SiteRole::as_str))
    .bind(group.as_ref().map(|g| g.0))
    .bind(scope.as_str())
    .bind(project)
    .bind(req.workspace.filter(|_| project.is_some()))
    .bind(now)
    .bind(expires)
    .fetch_one(&mut *tx.tx)
    .await?;
    let imp = Impersonating {
        id,
        by: me.clone(),
        role,
        group,
        scope,
        project_id: project,
        started_at: now,
        expires_at: expires,
    };
    let acting_as = target_user.unwrap_or_else(|| User {
        site_role: role.unwrap_or(SiteRole::None),
        ..me.clone()
    });
    let status = imp.status(&acting_as);
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::StartImpersonation,
        &target_name,
        None,
        Some(
            json!({ "scope": scope.as_str(), "project": project, "expires_at": status.expires_at }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(status)
}

/// Ends an impersonation, recording why, with both names (the ctx of the impersonating
/// request, or the system's for a time limit).
async fn end(
    db: &Db,
    imp: &Impersonating,
    acting_as: &User,
    reason: &str,
    ctx: Ctx,
) -> Result<bool, StoreError> {
    let mut tx = db.begin_write().await?;
    let done =
        sqlx::query("UPDATE impersonations SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL")
            .bind(now_ms())
            .bind(reason)
            .bind(imp.id)
            .execute(&mut *tx.tx)
            .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let (acting, by) = who(imp, acting_as);
    let ctx = Ctx {
        who: acting,
        impersonator: Some(by),
        ..ctx
    };
    let target = match (imp.role, &imp.group) {
        (Some(r), _) => Target {
            kind: "role",
            id: Some(r.as_str().into()),
            name: Some(r.as_str().into()),
        },
        (None, Some((id, lab))) => Target {
            kind: "lab",
            id: Some(id.to_string()),
            name: Some(lab.clone()),
        },
        (None, None) => acting_as.audit_target(),
    };
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::StopImpersonation,
        &target,
        None,
        Some(json!({ "reason": reason })),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Stops the caller's impersonation (`stopped`) or ends it at logout (`logout`).
pub async fn stop(
    db: &Db,
    principal: &Principal,
    source: String,
    reason: &str,
) -> Result<bool, StoreError> {
    let Some(imp) = &principal.impersonating else {
        return Ok(false);
    };
    end(db, imp, &principal.user, reason, principal.ctx(source)).await
}
