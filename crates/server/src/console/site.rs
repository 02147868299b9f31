//! site-settings: the effective base URL, listen address and request size limit (from the
//! configuration file: a restart is needed to change them) and the browser session lifetimes,
//! which Site Admins change here and which apply to sessions started afterwards, and how long an
//! impersonation lasts before it ends by itself.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::store::{self, Stored};
use super::{Field, Kind};
use crate::config::Lifetimes;
use crate::context::Ctx;
use crate::db::Db;
use crate::error::StoreError;
use crate::services::Services;

pub const FIELDS: &[Field] = &[
    super::f(
        "base_url",
        "Base URL (configuration file; restart to change)",
        Kind::Info,
    ),
    super::f(
        "listen_address",
        "Listen address (configuration file; restart to change)",
        Kind::Info,
    ),
    super::f(
        "max_request_body_kib",
        "Largest request body, KiB (configuration file)",
        Kind::Info,
    ),
    super::f(
        "session_idle_minutes",
        "Session idle lifetime, minutes (empty = configuration)",
        Kind::Number,
    ),
    super::f(
        "session_absolute_hours",
        "Session absolute lifetime, hours (empty = configuration)",
        Kind::Number,
    ),
    super::f(
        "impersonation_minutes",
        "Impersonation time limit, minutes (empty = 60)",
        Kind::Number,
    ),
];

/// How long an impersonation lasts when the console names no limit.
pub const DEFAULT_IMPERSONATION_MINUTES: i64 = 60;

/// Fields that come from the configuration file.
const FIXED: &[&str] = &["base_url", "listen_address", "max_request_body_kib"];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionLifetimes {
    /// `None`: the configuration's `session_idle_minutes`.
    pub session_idle_minutes: Option<i64>,
    /// `None`: the configuration's `session_absolute_hours`.
    pub session_absolute_hours: Option<i64>,
    /// `None`: [`DEFAULT_IMPERSONATION_MINUTES`].
    pub impersonation_minutes: Option<i64>,
}

impl Stored for SessionLifetimes {
    const KEY: &'static str = "console:site-settings";
    const FIELDS: &'static [&'static str] = &[
        "session_idle_minutes",
        "session_absolute_hours",
        "impersonation_minutes",
    ];
    fn validate(&self) -> Result<(), StoreError> {
        if self
            .session_idle_minutes
            .is_some_and(|m| !(5..=43_200).contains(&m))
        {
            return Err(StoreError::invalid(
                "session_idle_minutes",
                "must be from 5 to 43200 minutes (30 days)",
            ));
        }
        if self
            .session_absolute_hours
            .is_some_and(|h| !(1..=8_760).contains(&h))
        {
            return Err(StoreError::invalid(
                "session_absolute_hours",
                "must be from 1 to 8760 hours (a year)",
            ));
        }
        if self
            .impersonation_minutes
            .is_some_and(|m| !(1..=1_440).contains(&m))
        {
            return Err(StoreError::invalid(
                "impersonation_minutes",
                "must be from 1 to 1440 minutes (a day)",
            ));
        }
        Ok(())
    }
}

/// How long an impersonation started now may last, in minutes.
pub async fn impersonation_minutes(db: &Db) -> Result<i64, StoreError> {
    Ok(store::load::<SessionLifetimes>(db)
        .await?
        .impersonation_minutes
        .unwrap_or(DEFAULT_IMPERSONATION_MINUTES))
}

/// The lifetimes a session started now gets: `(idle_ms, absolute_ms)`.
pub async fn lifetimes(db: &Db, config: &Lifetimes) -> Result<(i64, i64), StoreError> {
    let s = store::load::<SessionLifetimes>(db).await?;
    Ok((
        s.session_idle_minutes
            .map_or(config.session_idle_ms, |m| m * 60_000),
        s.session_absolute_hours
            .map_or(config.session_absolute_ms, |h| h * 3_600_000),
    ))
}

pub async fn view(state: &Services) -> Result<Value, StoreError> {
    let s = store::load::<SessionLifetimes>(&state.db).await?;
    let c = &state.config;
    Ok(json!({
        "base_url": c.base_url(),
        "listen_address": c.listen.to_string(),
        "max_request_body_kib": c.max_body_kib,
        "session_idle_minutes": s.session_idle_minutes.unwrap_or(i64::from(c.session_idle_minutes)),
        "session_absolute_hours": s.session_absolute_hours.unwrap_or(i64::from(c.session_absolute_hours)),
        "impersonation_minutes": s.impersonation_minutes.unwrap_or(DEFAULT_IMPERSONATION_MINUTES),
        "session_lifetimes_from": if s.session_idle_minutes.is_none() && s.session_absolute_hours.is_none() { "configuration" } else { "console" },
        "restart_needed_for": FIXED,
    }))
}

pub async fn update(
    state: &Services,
    ctx: &Ctx,
    mut body: Map<String, Value>,
) -> Result<Value, StoreError> {
    let current = view(state).await?;
    for field in FIXED {
        if let Some(v) = body.remove(*field)
            && v != current[*field]
        {
            return Err(StoreError::invalid(
                field,
                "comes from the configuration file: change it there and restart the server",
            ));
        }
    }
    for derived in ["session_lifetimes_from", "restart_needed_for"] {
        body.remove(derived);
    }
    store::update::<SessionLifetimes>(&state.db, ctx, cryowarden_core::Setting::SiteSettings, body)
        .await?;
    view(state).await
}
