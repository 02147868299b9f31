//! authentication: the password policy's minimum length (used by registration, reset and
//! bootstrap) and the account lockout used by the login throttle. LDAP and OIDC sign-in are not
//! implemented in this release; the row says so.

use cryowarden_core::limits;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::store::{self, Stored};
use super::{Field, Kind};
use crate::db::Db;
use crate::error::StoreError;

pub const FIELDS: &[Field] = &[
    super::f(
        "password_min_length",
        "Minimum password length (8..128)",
        Kind::Number,
    ),
    super::f(
        "lockout_attempts",
        "Failed sign-ins before the account locks (0 = never)",
        Kind::Number,
    ),
    super::f(
        "lockout_minutes",
        "Minutes an account stays locked",
        Kind::Number,
    ),
];

pub const MIN_RANGE: std::ops::RangeInclusive<i64> = 8..=128;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthPolicy {
    pub password_min_length: i64,
    /// Consecutive failed sign-ins of an account (from any address) that lock it; 0 = never.
    pub lockout_attempts: i64,
    pub lockout_minutes: i64,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            password_min_length: limits::PASSWORD_MIN as i64,
            lockout_attempts: 0,
            lockout_minutes: 15,
        }
    }
}

impl Stored for AuthPolicy {
    const KEY: &'static str = "console:authentication";
    const FIELDS: &'static [&'static str] =
        &["password_min_length", "lockout_attempts", "lockout_minutes"];
    fn validate(&self) -> Result<(), StoreError> {
        if !MIN_RANGE.contains(&self.password_min_length) {
            return Err(StoreError::invalid(
                "password_min_length",
                "must be an integer from 8 to 128",
            ));
        }
        if !(0..=100).contains(&self.lockout_attempts) {
            return Err(StoreError::invalid(
                "lockout_attempts",
                "must be an integer from 0 (no lockout) to 100",
            ));
        }
        if !(1..=10_080).contains(&self.lockout_minutes) {
            return Err(StoreError::invalid(
                "lockout_minutes",
                "must be an integer from 1 to 10080 (a week)",
            ));
        }
        Ok(())
    }
}

impl AuthPolicy {
    /// The lockout the throttle applies: `(attempts, duration)`, `None` when off.
    pub fn lockout(&self) -> Option<(u32, std::time::Duration)> {
        (self.lockout_attempts > 0).then(|| {
            (
                self.lockout_attempts as u32,
                std::time::Duration::from_secs(self.lockout_minutes as u64 * 60),
            )
        })
    }
}

pub async fn policy(db: &Db) -> Result<AuthPolicy, StoreError> {
    store::load::<AuthPolicy>(db).await
}

/// Checks a new password against the policy in force (length from this setting, the rest from
/// [`crate::passwords::check_policy_min`]).
pub async fn check_password(db: &Db, password: &str) -> Result<(), StoreError> {
    let min = policy(db)
        .await?
        .password_min_length
        .clamp(*MIN_RANGE.start(), *MIN_RANGE.end()) as usize;
    crate::passwords::check_policy_min(password, min)
}

pub async fn view(db: &Db) -> Result<Value, StoreError> {
    let mut v = store::redact(policy(db).await?);
    v["ldap"] = json!("not implemented in this release");
    v["oidc"] = json!("not implemented in this release");
    Ok(v)
}
