//! Labs (site groups): a named group of users with a lab role each, the storage roots where
//! its data and projects live, and the Unix account its jobs run as. Managing labs and their
//! memberships is `update-site-groups` (§2); roots and the Unix account are the `storage-roots`
//! setting (§1, Site Admins only). A lab is visible to its members and to every role that opens
//! the admin panel; to anyone else it does not exist.

pub mod browse;
pub mod members;
pub mod roots;
pub mod unix;

use std::collections::HashMap;

pub use cryowarden_core::ImportPolicy;
use cryowarden_core::{
    Activity, Actor, Allowed, ImpersonationScope, LabRole, Resource, username_problem,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row};

use crate::context::{Ctx, Target};
use crate::db::{Db, WriteTx, format_ms, now_ms};
use crate::error::{StoreError, map_unique};

pub const TITLE_MAX: usize = 100;

/// A lab as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Lab {
    pub id: i64,
    pub name: String,
    pub title: String,
    #[schema(value_type = String, example = "all_members")]
    pub import_policy: ImportPolicy,
    pub unix_user: Option<String>,
    pub unix_group: Option<String>,
    pub uid: Option<i64>,
    pub gid: Option<i64>,
    pub data_roots: Vec<String>,
    pub project_root: Option<String>,
    pub member_count: i64,
    pub created_at: String,
}

impl Lab {
    pub fn audit_target(&self) -> Target {
        Target {
            kind: "lab",
            id: Some(self.id.to_string()),
            name: Some(self.name.clone()),
        }
    }
}

/// What the audit log keeps of a lab.
pub fn snapshot(l: &Lab) -> serde_json::Value {
    json!({
        "name": l.name, "title": l.title, "import_policy": l.import_policy, "unix_user": l.unix_user,
        "unix_group": l.unix_group, "uid": l.uid, "gid": l.gid, "data_roots": l.data_roots,
        "project_root": l.project_root,
    })
}

/// What an admin fills in to create a lab.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLab {
    /// 1 to 64 of `a-z A-Z 0-9 . _ -`, unique regardless of case.
    pub name: String,
    /// Display name, at most 100 characters; defaults to the name.
    #[serde(default)]
    pub title: Option<String>,
    /// `all_members` (the default), `managers` or `facility_staff`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub import_policy: Option<ImportPolicy>,
}

/// A change to a lab; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabPatch {
    pub name: Option<String>,
    pub title: Option<String>,
    #[schema(value_type = Option<String>)]
    pub import_policy: Option<ImportPolicy>,
}

const LAB_COLUMNS: &str =
    "id, name, title, import_policy, unix_user, unix_group, uid, gid, created_at";
const UNIQUE_FIELDS: &[(&str, &str)] = &[("name_key", "name")];

fn lab_from_row(r: &sqlx::any::AnyRow) -> Result<Lab, StoreError> {
    let policy: String = r.try_get("import_policy")?;
    Ok(Lab {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        title: r.try_get("title")?,
        import_policy: ImportPolicy::parse(&policy)
            .ok_or_else(|| StoreError::Internal(format!("bad import policy {policy}")))?,
        unix_user: r.try_get("unix_user")?,
        unix_group: r.try_get("unix_group")?,
        uid: r.try_get("uid")?,
        gid: r.try_get("gid")?,
        data_roots: Vec::new(),
        project_root: None,
        member_count: 0,
        created_at: format_ms(r.try_get("created_at")?),
    })
}

/// Fills in roots and member counts of `labs` (two queries, whatever the number of labs).
async fn complete(db: &Db, mut labs: Vec<Lab>) -> Result<Vec<Lab>, StoreError> {
    if labs.is_empty() {
        return Ok(labs);
    }
    let ids = labs
        .iter()
        .map(|l| l.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut index: HashMap<i64, usize> = HashMap::new();
    for (i, l) in labs.iter().enumerate() {
        index.insert(l.id, i);
    }
    let sql =
        format!("SELECT lab_id, kind, path FROM lab_roots WHERE lab_id IN ({ids}) ORDER BY path");
    for r in sqlx::query::<Any>(&sql).fetch_all(&db.pool).await? {
        let Some(&i) = index.get(&r.try_get::<i64, _>("lab_id")?) else {
            continue;
        };
        let kind: String = r.try_get("kind")?;
        let path: String = r.try_get("path")?;
        if kind == "project" {
            labs[i].project_root = Some(path);
        } else {
            labs[i].data_roots.push(path);
        }
    }
    let sql = format!(
        "SELECT lab_id, COUNT(*) AS n FROM lab_members WHERE lab_id IN ({ids}) GROUP BY lab_id"
    );
    for r in sqlx::query::<Any>(&sql).fetch_all(&db.pool).await? {
        if let Some(&i) = index.get(&r.try_get::<i64, _>("lab_id")?) {
            labs[i].member_count = r.try_get("n")?;
        }
    }
    Ok(labs)
}

/// Looks a lab up by id, whoever asks.
pub async fn get(db: &Db, id: i64) -> Result<Lab, StoreError> {
    let row = sqlx::query::<Any>(&format!("SELECT {LAB_COLUMNS} FROM labs WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound { what: "lab" })?;
    Ok(complete(db, vec![lab_from_row(&row)?]).await?.remove(0))
}

fn actor(ctx: &Ctx) -> Result<Actor, StoreError> {
    ctx.actor
        .ok_or_else(|| StoreError::Internal("a lab operation with no actor".into()))
}

/// Who sees every lab: a lab shows its members' details, so whoever may see every user's details
/// (`view-user` on the whole instance: admins and troubleshooters) — decided by `authorize()`.
fn sees_all(actor: &Actor) -> bool {
    cryowarden_core::authorize(actor, Activity::ViewUser.into(), &Resource::instance()).is_allowed()
}

/// The lab's role of `user_id`, if they belong to it.
pub async fn role_of(db: &Db, lab_id: i64, user_id: i64) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar::<Any, String>(
        "SELECT role FROM lab_members WHERE lab_id = $1 AND user_id = $2",
    )
    .bind(lab_id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?)
}

/// The caller's role in a lab; while a project or folder admin impersonates, the weaker of the
/// impersonated user's and the impersonator's own (impersonation never adds rights); while a
/// group is impersonated, `member` of that lab and nothing elsewhere.
pub async fn role_for(db: &Db, lab_id: i64, ctx: &Ctx) -> Result<Option<LabRole>, StoreError> {
    let actor = actor(ctx)?;
    if let Some(group) = ctx.group_scope {
        return Ok((group == lab_id).then_some(LabRole::Member));
    }
    let role = |user| async move {
        Ok::<_, StoreError>(
            role_of(db, lab_id, user)
                .await?
                .as_deref()
                .and_then(LabRole::parse),
        )
    };
    let theirs = role(actor.user.0).await?;
    match actor.impersonation {
        Some(i) if i.scope == ImpersonationScope::Scoped => {
            // The roles order the strongest first: the weaker is the greater.
            let mine = role(i.by.0).await?;
            Ok(theirs.zip(mine).map(|(a, b)| a.max(b)))
        }
        _ => Ok(theirs),
    }
}

/// One lab, if the caller may see it; a lab they may not see is "not found".
pub async fn show(db: &Db, ctx: &Ctx, id: i64) -> Result<Lab, StoreError> {
    let actor = actor(ctx)?;
    let lab = get(db, id).await?;
    if sees_all(&actor) || role_for(db, id, ctx).await?.is_some() {
        Ok(lab)
    } else {
        // Audited like every refusal, and answered like a lab that does not exist.
        let reason = Some("not a member of this lab".to_owned());
        ctx.record(
            db,
            cryowarden_core::Event::ViewLab,
            &lab.audit_target(),
            crate::audit::Outcome::Denied,
            reason,
            None,
            None,
        )
        .await?;
        Err(StoreError::NotFound { what: "lab" })
    }
}

/// The labs the caller may see, by name.
pub async fn list(db: &Db, ctx: &Ctx) -> Result<Vec<Lab>, StoreError> {
    let actor = actor(ctx)?;
    let rows = if let Some(group) = ctx.group_scope {
        sqlx::query::<Any>(&format!("SELECT {LAB_COLUMNS} FROM labs WHERE id = $1"))
            .bind(group)
            .fetch_all(&db.pool)
            .await?
    } else if sees_all(&actor) {
        sqlx::query::<Any>(&format!("SELECT {LAB_COLUMNS} FROM labs ORDER BY name_key"))
            .fetch_all(&db.pool)
            .await?
    } else {
        // While a project or folder admin impersonates, only the labs both belong to.
        let by = actor
            .impersonation
            .filter(|i| i.scope == ImpersonationScope::Scoped)
            .map_or(actor.user.0, |i| i.by.0);
        sqlx::query::<Any>(&format!(
            "SELECT {LAB_COLUMNS} FROM labs WHERE id IN (SELECT lab_id FROM lab_members WHERE user_id = $1) \
             AND id IN (SELECT lab_id FROM lab_members WHERE user_id = $2) ORDER BY name_key"
        ))
        .bind(actor.user.0)
        .bind(by)
        .fetch_all(&db.pool)
        .await?
    };
    complete(db, rows.iter().map(lab_from_row).collect::<Result<_, _>>()?).await
}

pub fn validate_name(name: &str) -> Result<String, StoreError> {
    match username_problem(name) {
        Some(p) => Err(StoreError::invalid("name", p)),
        None => Ok(name.to_owned()),
    }
}

pub fn validate_title(title: &str) -> Result<String, StoreError> {
    let title = title.trim();
    if title.chars().count() > TITLE_MAX {
        return Err(StoreError::invalid(
            "title",
            format!("must be at most {TITLE_MAX} characters"),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            "title",
            "must not contain control characters",
        ));
    }
    Ok(title.to_owned())
}

async fn authorize_groups(db: &Db, ctx: &Ctx, target: &Target) -> Result<Allowed, StoreError> {
    ctx.authorize(
        db,
        Activity::UpdateSiteGroups.into(),
        Resource::instance(),
        target,
    )
    .await
}

/// Creates a lab with no members and no roots.
pub async fn create(db: &Db, ctx: &Ctx, new: NewLab) -> Result<Lab, StoreError> {
    let target = Target {
        kind: "lab",
        id: None,
        name: Some(new.name.clone()),
    };
    let proof = authorize_groups(db, ctx, &target).await?;
    let name = validate_name(&new.name)?;
    let title = match new.title.as_deref().map(validate_title).transpose()? {
        Some(t) if !t.is_empty() => t,
        _ => name.clone(),
    };
    let policy = match new.import_policy {
        Some(p) => p,
        None => crate::settings::load(db).await?.default_import_policy,
    };
    let mut tx = db.begin_write().await?;
    proof.require(Activity::UpdateSiteGroups.into())?;
    let now = now_ms();
    let row = sqlx::query::<Any>(&format!(
        "INSERT INTO labs (name, name_key, title, import_policy, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING {LAB_COLUMNS}"
    ))
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(&title)
    .bind(policy.as_str())
    .bind(now)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| map_unique(e, UNIQUE_FIELDS))?;
    let lab = lab_from_row(&row)?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::CreateLab,
        &lab.audit_target(),
        None,
        Some(snapshot(&lab)),
    )
    .await?;
    tx.commit().await?;
    Ok(lab)
}

/// Renames a lab, changes its title or its import policy.
pub async fn update(db: &Db, ctx: &Ctx, id: i64, patch: LabPatch) -> Result<Lab, StoreError> {
    let before = show(db, ctx, id).await?;
    let proof = authorize_groups(db, ctx, &before.audit_target()).await?;
    let name = patch
        .name
        .as_deref()
        .map(validate_name)
        .transpose()?
        .unwrap_or_else(|| before.name.clone());
    let title = match patch.title.as_deref().map(validate_title).transpose()? {
        Some(t) if t.is_empty() => name.clone(),
        Some(t) => t,
        None => before.title.clone(),
    };
    let policy = patch.import_policy.unwrap_or(before.import_policy);
    if name == before.name && title == before.title && policy == before.import_policy {
        return Ok(before);
    }
    let mut tx = db.begin_write().await?;
    proof.require(Activity::UpdateSiteGroups.into())?;
    sqlx::query(
        "UPDATE labs SET name = $1, name_key = $2, title = $3, import_policy = $4, updated_at = $5 WHERE id = $6",
    )
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(&title)
    .bind(policy.as_str())
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| map_unique(e, UNIQUE_FIELDS))?;
    let after = Lab {
        name,
        title,
        import_policy: policy,
        ..before.clone()
    };
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::UpdateLab,
        &after.audit_target(),
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Deletes a lab that has no members and no storage roots left.
pub async fn delete(db: &Db, ctx: &Ctx, id: i64) -> Result<Lab, StoreError> {
    let lab = show(db, ctx, id).await?;
    let proof = authorize_groups(db, ctx, &lab.audit_target()).await?;
    let mut tx = db.begin_write().await?;
    proof.require(Activity::UpdateSiteGroups.into())?;
    let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lab_members WHERE lab_id = $1")
        .bind(id)
        .fetch_one(&mut *tx.tx)
        .await?;
    let roots: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lab_roots WHERE lab_id = $1")
        .bind(id)
        .fetch_one(&mut *tx.tx)
        .await?;
    if members > 0 || roots > 0 {
        return Err(StoreError::InUse {
            field: "lab",
            message: format!(
                "`{}` still has {members} member(s) and {roots} storage root(s): remove its members and storage roots first",
                lab.name
            ),
        });
    }
    sqlx::query("DELETE FROM labs WHERE id = $1")
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::DeleteLab,
        &lab.audit_target(),
        Some(snapshot(&lab)),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(lab)
}

/// Marks a lab changed (its members or storage roots) inside the change's transaction.
pub(crate) async fn touch(tx: &mut WriteTx, lab_id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE labs SET updated_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(lab_id)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}
