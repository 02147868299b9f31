//! Lab memberships: add or change a member's lab role, remove a member, list and export them.
//! Each change is `update-site-groups` aimed at the member, so an Application Admin is refused
//! for the memberships of Site Admins (§2).

use cryowarden_core::Event;
pub use cryowarden_core::LabRole;
use cryowarden_core::{Activity, SiteRole};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row};

use super::{Lab, show};
use crate::audit::Outcome;
use crate::context::{Ctx, Target};
use crate::db::Db;
use crate::error::StoreError;
use crate::users;

/// A member of a lab as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[schema(value_type = String)]
    pub site_role: SiteRole,
    pub lab_role: String,
}

/// Adds a member, or changes the role of one.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    pub user_id: i64,
    /// `manager` or `member`.
    #[schema(value_type = String)]
    pub role: LabRole,
}

fn membership_target(lab: &Lab, user: &users::User) -> Target {
    Target {
        kind: "lab-member",
        id: Some(format!("{}:{}", lab.id, user.id)),
        name: Some(format!("{}/{}", lab.name, user.username)),
    }
}

/// The members of a lab the caller may see, by username.
pub async fn list(db: &Db, ctx: &Ctx, lab_id: i64) -> Result<Vec<Member>, StoreError> {
    show(db, ctx, lab_id).await?;
    load(db, lab_id).await
}

async fn load(db: &Db, lab_id: i64) -> Result<Vec<Member>, StoreError> {
    let rows = sqlx::query::<Any>(
        "SELECT u.id, u.username, u.email, u.first_name, u.last_name, u.site_role, m.role FROM lab_members m \
         JOIN users u ON u.id = m.user_id WHERE m.lab_id = $1 ORDER BY u.username_key",
    )
    .bind(lab_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let role: String = r.try_get("site_role")?;
            Ok(Member {
                user_id: r.try_get("id")?,
                username: r.try_get("username")?,
                email: r.try_get("email")?,
                first_name: r.try_get("first_name")?,
                last_name: r.try_get("last_name")?,
                site_role: SiteRole::parse(&role)
                    .ok_or_else(|| StoreError::Internal(format!("bad role {role}")))?,
                lab_role: r.try_get("role")?,
            })
        })
        .collect()
}

/// Makes `user_id` a member of the lab with `role` (or changes their role). Returns the lab.
pub async fn set(db: &Db, ctx: &Ctx, lab_id: i64, req: SetMember) -> Result<Lab, StoreError> {
    let lab = show(db, ctx, lab_id).await?;
    let user = users::get(db, req.user_id).await.map_err(|e| match e {
        StoreError::NotFound { .. } => StoreError::invalid(
            "user_id",
            format!("there is no user with id {}", req.user_id),
        ),
        e => e,
    })?;
    let target = membership_target(&lab, &user);
    let proof = ctx
        .authorize(
            db,
            Activity::UpdateSiteGroups.into(),
            user.target(),
            &target,
        )
        .await?;
    let before = super::role_of(db, lab_id, user.id).await?;
    if before.as_deref() == Some(req.role.as_str()) {
        return Ok(lab);
    }
    let mut tx = db.begin_write().await?;
    proof.require(Activity::UpdateSiteGroups.into())?;
    sqlx::query(
        "INSERT INTO lab_members (lab_id, user_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (lab_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(lab_id)
    .bind(user.id)
    .bind(req.role.as_str())
    .execute(&mut *tx.tx)
    .await?;
    super::touch(&mut tx, lab_id).await?;
    let action = if before.is_some() {
        Event::ChangeLabMemberRole
    } else {
        Event::AddLabMember
    };
    ctx.audit_ok(
        &mut tx,
        action,
        &target,
        before.map(|r| json!({ "lab_role": r })),
        Some(json!({ "lab_role": req.role.as_str() })),
    )
    .await?;
    tx.commit().await?;
    super::get(db, lab_id).await
}

/// Removes `user_id` from the lab.
pub async fn remove(db: &Db, ctx: &Ctx, lab_id: i64, user_id: i64) -> Result<(), StoreError> {
    let lab = show(db, ctx, lab_id).await?;
    let user = users::get(db, user_id).await?;
    let target = membership_target(&lab, &user);
    let proof = ctx
        .authorize(
            db,
            Activity::UpdateSiteGroups.into(),
            user.target(),
            &target,
        )
        .await?;
    let mut tx = db.begin_write().await?;
    proof.require(Activity::UpdateSiteGroups.into())?;
    let before: Option<String> =
        sqlx::query_scalar("SELECT role FROM lab_members WHERE lab_id = $1 AND user_id = $2")
            .bind(lab_id)
            .bind(user_id)
            .fetch_optional(&mut *tx.tx)
            .await?;
    let Some(before) = before else {
        return Err(StoreError::NotFound { what: "lab member" });
    };
    sqlx::query("DELETE FROM lab_members WHERE lab_id = $1 AND user_id = $2")
        .bind(lab_id)
        .bind(user_id)
        .execute(&mut *tx.tx)
        .await?;
    super::touch(&mut tx, lab_id).await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::RemoveLabMember,
        &target,
        Some(json!({ "lab_role": before })),
        None,
    )
    .await?;
    tx.commit().await
}

/// The members as CSV (`username,email,first_name,last_name,lab_role`): exporting members is
/// part of `update-site-groups`, and each export is recorded.
pub async fn export_csv(db: &Db, ctx: &Ctx, lab_id: i64) -> Result<(Lab, String), StoreError> {
    let lab = show(db, ctx, lab_id).await?;
    let proof = ctx
        .authorize(
            db,
            Activity::UpdateSiteGroups.into(),
            cryowarden_core::Resource::instance(),
            &lab.audit_target(),
        )
        .await?;
    proof.require(Activity::UpdateSiteGroups.into())?;
    let members = load(db, lab_id).await?;
    let mut out = String::from("username,email,first_name,last_name,lab_role\r\n");
    for m in &members {
        let cells = [
            &m.username,
            &m.email,
            &m.first_name,
            &m.last_name,
            &m.lab_role,
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    let after = json!({ "members": members.len() });
    ctx.record(
        db,
        cryowarden_core::Event::ExportLabMembers,
        &lab.audit_target(),
        Outcome::Ok,
        None,
        None,
        Some(after),
    )
    .await?;
    Ok((lab, out))
}

/// One RFC 4180 cell. A cell a spreadsheet would read as a formula gets a leading `'`.
fn csv_cell(s: &str) -> String {
    let s = cryowarden_store::csv::defuse_formula(s);
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=1+2"), "'=1+2");
    }
}
