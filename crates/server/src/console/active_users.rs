//! limit-active-users: a cap on the users who hold a seat (0 = no cap), checked inside the
//! write transaction of every change that would add one (creating or inviting, activating,
//! registering), and automatic deactivation after days without sign-in, run by the action
//! `limit-active-users/apply` and by a periodic sweep. Site Admins are never deactivated by the
//! sweep (so that the instance cannot lose its last administrator to inactivity).

use std::sync::Arc;
use std::time::Duration;

use cryowarden_core::{Action, Activity, Allowed, Resource, Setting, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{Any, Row};

use super::store::{self, Stored};
use super::{Field, Kind};
use crate::context::{Ctx, Target};
use crate::db::{Db, WriteTx, now_ms};
use crate::error::StoreError;
use crate::services::Services;

pub const FIELDS: &[Field] = &[
    super::f(
        "max_active_users",
        "Most users with an account in use (active or invited; 0 = no cap)",
        Kind::Number,
    ),
    super::f(
        "deactivate_after_days",
        "Deactivate after this many days without sign-in (0 = never)",
        Kind::Number,
    ),
];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveUserLimits {
    pub max_active_users: i64,
    pub deactivate_after_days: i64,
}

impl Stored for ActiveUserLimits {
    const KEY: &'static str = "console:limit-active-users";
    const FIELDS: &'static [&'static str] = &["max_active_users", "deactivate_after_days"];
    fn validate(&self) -> Result<(), StoreError> {
        if !(0..=1_000_000).contains(&self.max_active_users) {
            return Err(StoreError::invalid(
                "max_active_users",
                "must be from 0 (no cap) to 1000000",
            ));
        }
        if !(0..=3650).contains(&self.deactivate_after_days) {
            return Err(StoreError::invalid(
                "deactivate_after_days",
                "must be from 0 (never) to 3650",
            ));
        }
        Ok(())
    }
}

/// What is about to take a seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seat {
    /// Creating (inviting) a user or reactivating one: counts active and invited users.
    New,
    /// An invited user registering: counts the active ones (the invitation already held a seat,
    /// unless the cap was lowered since).
    Register,
}

/// Refuses with `user-limit` when the change would exceed the cap. Runs inside the change's
/// write transaction, so two concurrent changes cannot both take the last seat.
pub async fn check_seat(tx: &mut WriteTx, seat: Seat) -> Result<(), StoreError> {
    let row = sqlx::query::<Any>("SELECT value FROM instance_settings WHERE key = $1")
        .bind(ActiveUserLimits::KEY)
        .fetch_optional(&mut *tx.tx)
        .await?;
    let limits: ActiveUserLimits = match row {
        Some(r) => serde_json::from_str(&r.try_get::<String, _>("value")?).unwrap_or_default(),
        None => return Ok(()),
    };
    if limits.max_active_users == 0 {
        return Ok(());
    }
    let sql = match seat {
        Seat::New => "SELECT COUNT(*) FROM users WHERE status IN ('active', 'invited')",
        Seat::Register => "SELECT COUNT(*) FROM users WHERE status = 'active'",
    };
    let used: i64 = sqlx::query_scalar::<Any, i64>(sql)
        .fetch_one(&mut *tx.tx)
        .await?;
    if used >= limits.max_active_users {
        return Err(StoreError::UserLimit {
            cap: limits.max_active_users,
        });
    }
    Ok(())
}

pub async fn view(db: &Db) -> Result<Value, StoreError> {
    let mut v = store::redacted::<ActiveUserLimits>(db).await?;
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<Any, i64>(sql)
            .fetch_one(&db.pool)
            .await
    };
    v["active_users"] = json!(count("SELECT COUNT(*) FROM users WHERE status = 'active'").await?);
    v["invited_users"] = json!(count("SELECT COUNT(*) FROM users WHERE status = 'invited'").await?);
    Ok(v)
}

/// Deactivates every active user (but Site Admins) whose last sign-in (or creation, if they never
/// signed in) is older than the setting's days; each one audited as `system:inactivity` with
/// their sessions and API tokens revoked. Returns the usernames.
pub async fn deactivate_inactive(
    state: &Services,
    source: &str,
) -> Result<Vec<String>, StoreError> {
    let limits = store::load::<ActiveUserLimits>(&state.db).await?;
    if limits.deactivate_after_days == 0 {
        return Ok(vec![]);
    }
    let cutoff = now_ms() - limits.deactivate_after_days * 86_400_000;
    let ctx = Ctx::system("inactivity", source);
    let mut tx = state.db.begin_write().await?;
    let rows = sqlx::query::<Any>(
        "SELECT id, username FROM users WHERE status = 'active' AND site_role <> 'site_admin' \
         AND COALESCE(last_login_at, created_at) < $1 ORDER BY id",
    )
    .bind(cutoff)
    .fetch_all(&mut *tx.tx)
    .await?;
    let now = now_ms();
    let mut names = Vec::new();
    for r in &rows {
        let (id, name): (i64, String) = (r.try_get("id")?, r.try_get("username")?);
        let proof = Allowed::system(
            Activity::SetUserActive.into(),
            "inactivity",
            Some(UserId(id)),
        );
        proof.require(Activity::SetUserActive.into())?;
        sqlx::query("UPDATE users SET status = 'deactivated', updated_at = $1 WHERE id = $2 AND status = 'active'")
            .bind(now)
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        crate::users::revoke_credentials(&mut tx, id, now).await?;
        ctx.audit_ok(
            &mut tx,
            cryowarden_core::Activity::SetUserActive,
            &Target::user(id, &name),
            Some(json!({ "status": "active" })),
            Some(json!({ "status": "deactivated", "reason": format!("no sign-in for {} days", limits.deactivate_after_days) })),
        )
        .await?;
        names.push(name);
    }
    tx.commit().await?;
    for r in &rows {
        state.auth.forget_user(r.try_get("id")?);
    }
    Ok(names)
}

/// The action `limit-active-users/apply`: the sweep, now, by an admin who may change the row.
pub async fn apply(state: &Services, ctx: &Ctx) -> Result<Value, StoreError> {
    let setting = Setting::LimitActiveUsers;
    let target = Target {
        kind: "setting",
        id: Some(setting.as_str().to_owned()),
        name: None,
    };
    ctx.authorize(
        &state.db,
        Action::ChangeSetting {
            setting,
            field: None,
        },
        Resource::instance(),
        &target,
    )
    .await
    .map(drop)?;
    let names = deactivate_inactive(state, &ctx.source).await?;
    Ok(json!({ "deactivated": names }))
}

/// The periodic sweep (hourly), started by `app::serve`.
pub fn spawn_sweep(state: Arc<Services>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match deactivate_inactive(&state, "sweep").await {
                Ok(names) if !names.is_empty() => {
                    tracing::info!(?names, "deactivated inactive users");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "inactive-user sweep failed"),
            }
        }
    });
}
