//! experimental-features: a fixed list of flags, each gating something real, toggled by Site
//! Admins. Flags not in [`FLAGS`] are refused.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::store::{self, Stored};
use super::{Field, Kind};
use crate::db::Db;
use crate::error::StoreError;

/// Every flag: name and what it does.
pub const FLAGS: &[(&str, &str)] = &[(
    "console_raw_json",
    "The Admin Console shows each row's value as the JSON the API returns, under its form.",
)];

pub const FIELDS: &[Field] = &[super::f(
    "console_raw_json",
    "Show each console row's raw JSON (console_raw_json)",
    Kind::Bool,
)];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Flags {
    pub console_raw_json: bool,
}

impl Stored for Flags {
    const KEY: &'static str = "console:experimental-features";
    const FIELDS: &'static [&'static str] = &["console_raw_json"];
    fn validate(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

pub async fn flags(db: &Db) -> Result<Flags, StoreError> {
    store::load::<Flags>(db).await
}

pub async fn view(db: &Db) -> Result<Value, StoreError> {
    let mut v = store::redact(flags(db).await?);
    v["documentation"] = json!(
        FLAGS
            .iter()
            .map(|(n, d)| json!({ "flag": n, "does": d }))
            .collect::<Vec<_>>()
    );
    Ok(v)
}
