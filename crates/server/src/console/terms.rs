//! terms-of-use: site-wide terms that every user accepts once per version at sign-in, while they
//! are active. Changing the text bumps the version, so everyone accepts again. Acceptances are
//! kept per user and version (`terms_acceptances`) and audited as `accept-terms`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::Any;

use super::store::{self, Stored};
use super::{Field, Kind};
use crate::context::Ctx;
use crate::db::{Db, WriteTx, now_ms};
use crate::error::StoreError;

pub const FIELDS: &[Field] = &[
    super::f("active", "Require acceptance at sign-in", Kind::Bool),
    super::f("text", "Terms", Kind::LongText),
    super::f(
        "version",
        "Version (goes up when the text changes)",
        Kind::Info,
    ),
];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    pub active: bool,
    pub text: String,
    pub version: i64,
}

impl Stored for Terms {
    const KEY: &'static str = "console:terms-of-use";
    const FIELDS: &'static [&'static str] = &["active", "text", "version"];
    const DERIVED: &'static [&'static str] = &["version"];
    fn validate(&self) -> Result<(), StoreError> {
        if self.text.chars().count() > 20_000 {
            return Err(StoreError::invalid(
                "text",
                "must be at most 20000 characters",
            ));
        }
        if self.active && self.text.trim().is_empty() {
            return Err(StoreError::invalid("text", "active terms need a text"));
        }
        Ok(())
    }
    fn derive(&mut self, before: &Self) {
        self.version = if self.text != before.text {
            before.version + 1
        } else {
            before.version
        };
    }
}

pub async fn update(db: &Db, ctx: &Ctx, body: Map<String, Value>) -> Result<Value, StoreError> {
    Ok(store::redact(
        store::update::<Terms>(db, ctx, cryowarden_core::Setting::TermsOfUse, body).await?,
    ))
}

/// The terms `user_id` must accept before signing in, if any.
pub async fn pending(db: &Db, user_id: i64) -> Result<Option<Terms>, StoreError> {
    let terms = store::load::<Terms>(db).await?;
    if !terms.active {
        return Ok(None);
    }
    let accepted: i64 = sqlx::query_scalar::<Any, i64>(
        "SELECT COUNT(*) FROM terms_acceptances WHERE user_id = $1 AND version = $2",
    )
    .bind(user_id)
    .bind(terms.version)
    .fetch_one(&db.pool)
    .await?;
    Ok((accepted == 0).then_some(terms))
}

/// Records that the signing-in user accepted `terms`, inside the sign-in's transaction.
pub async fn record_acceptance(
    tx: &mut WriteTx,
    ctx: &Ctx,
    target: &crate::context::Target,
    user_id: i64,
    terms: &Terms,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO terms_acceptances (user_id, version, accepted_at) VALUES ($1, $2, $3)",
    )
    .bind(user_id)
    .bind(terms.version)
    .bind(now_ms())
    .execute(&mut *tx.tx)
    .await?;
    ctx.audit_ok(
        tx,
        cryowarden_core::Event::AcceptTerms,
        target,
        None,
        Some(json!({ "version": terms.version })),
    )
    .await
}
