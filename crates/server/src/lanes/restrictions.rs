//! Lane restrictions (the admin panel's Lane Restrictions tab): the lanes each user may not
//! queue to. Whoever may change the restrictions is not bound by them (admins queue anywhere).

use std::collections::HashSet;

use cryowarden_core::{Action, Actor, Resource, Setting};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::context::{Ctx, Target};
use crate::db::Db;
use crate::error::StoreError;

pub const ACTION: Action = Action::ChangeSetting {
    setting: Setting::LaneRestrictions,
    field: None,
};
const READ: Action = Action::ReadSetting(Setting::LaneRestrictions);

/// Whether `actor` queues to every lane whatever the restrictions say.
pub fn unrestricted(actor: &Actor) -> bool {
    cryowarden_core::authorize(actor, ACTION, &Resource::instance()).is_allowed()
}

/// The lanes `actor` may not queue to.
pub async fn denied_for(db: &Db, actor: &Actor) -> Result<HashSet<i64>, StoreError> {
    if unrestricted(actor) {
        return Ok(HashSet::new());
    }
    Ok(
        sqlx::query_scalar::<sqlx::Any, i64>("SELECT lane_id FROM lane_denials WHERE user_id = $1")
            .bind(actor.user.0)
            .fetch_all(&db.pool)
            .await?
            .into_iter()
            .collect(),
    )
}

/// A user's lanes, split as the tab shows them.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserLanes {
    pub user_id: i64,
    pub allowed: Vec<String>,
    pub not_allowed: Vec<String>,
}

/// Which lanes a user may not queue to, by name (replaces the current set).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRestrictions {
    pub not_allowed: Vec<String>,
}

/// A user's allowed and not-allowed lanes.
pub async fn get(db: &Db, ctx: &Ctx, user_id: i64) -> Result<UserLanes, StoreError> {
    // Someone the caller may not see is "not found", exactly as a missing id (issue 11).
    let (user, resource) = crate::users::visible(db, ctx, user_id).await?;
    let target = Target::user(user.id, &user.username);
    let _may_read = ctx.authorize(db, READ, resource, &target).await?;
    let denied: HashSet<i64> =
        sqlx::query_scalar::<sqlx::Any, i64>("SELECT lane_id FROM lane_denials WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&db.pool)
            .await?
            .into_iter()
            .collect();
    let (mut allowed, mut not_allowed) = (Vec::new(), Vec::new());
    for lane in super::all(db).await? {
        if denied.contains(&lane.id) {
            not_allowed.push(lane.name);
        } else {
            allowed.push(lane.name);
        }
    }
    Ok(UserLanes {
        user_id,
        allowed,
        not_allowed,
    })
}

/// Replaces the lanes a user may not queue to.
pub async fn set(
    db: &Db,
    ctx: &Ctx,
    user_id: i64,
    req: SetRestrictions,
) -> Result<UserLanes, StoreError> {
    let (user, resource) = crate::users::visible(db, ctx, user_id).await?;
    let target = Target::user(user.id, &user.username);
    // The target is part of the resource: while impersonating, the impersonator's own lanes are
    // out of reach.
    let proof = ctx.authorize(db, ACTION, resource, &target).await?;
    let lanes = super::all(db).await?;
    let mut ids = Vec::new();
    for name in &req.not_allowed {
        let lane = lanes
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                StoreError::invalid("not_allowed", format!("there is no lane `{name}`"))
            })?;
        ids.push(lane.id);
    }
    ids.sort_unstable();
    ids.dedup();
    let before = get(db, ctx, user_id).await?;
    let mut tx = db.begin_write().await?;
    proof.require(ACTION)?;
    sqlx::query("DELETE FROM lane_denials WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx.tx)
        .await?;
    for id in &ids {
        sqlx::query("INSERT INTO lane_denials (lane_id, user_id) VALUES ($1, $2)")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx.tx)
            .await?;
    }
    let after: Vec<&str> = lanes
        .iter()
        .filter(|l| ids.contains(&l.id))
        .map(|l| l.name.as_str())
        .collect();
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::SetLaneRestrictions,
        &target,
        Some(json!({ "not_allowed": before.not_allowed })),
        Some(json!({ "not_allowed": after })),
    )
    .await?;
    tx.commit().await?;
    get(db, ctx, user_id).await
}
