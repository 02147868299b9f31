//! loggers: the level of each service's log file, changed at run time. Each file of
//! `logs::init` is written through a [`ServiceFilter`]: the events routed to its service pass at
//! the level set here, or, when none is set, as the configured `log` filter (an [`EnvFilter`])
//! says. A change rebuilds tracing's callsite interest, so it takes effect at once. The levels
//! are process-wide, like the subscriber.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber, span};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use super::{Setting, target};
use crate::audit::Outcome;
use crate::context::Ctx;
use crate::error::StoreError;
use crate::logs::Service;
use crate::services::Services;

/// The levels one may set.
pub const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

/// Per service (in `Service::ALL` order): 0 = as the configured filter, else 1 + index in LEVELS.
static OVERRIDES: [AtomicU8; 6] = [const { AtomicU8::new(0) }; 6];
/// The filter `logs::init` installed the global subscriber with.
static INSTALLED_FILTER: OnceLock<String> = OnceLock::new();

fn slot(service: Service) -> &'static AtomicU8 {
    &OVERRIDES[Service::ALL.iter().position(|s| *s == service).unwrap_or(0)]
}

fn level_of(name: &str) -> Option<LevelFilter> {
    match name {
        "trace" => Some(LevelFilter::TRACE),
        "debug" => Some(LevelFilter::DEBUG),
        "info" => Some(LevelFilter::INFO),
        "warn" => Some(LevelFilter::WARN),
        "error" => Some(LevelFilter::ERROR),
        _ => None,
    }
}

/// The level set at run time for `service`, if any.
pub fn override_of(service: Service) -> Option<LevelFilter> {
    match slot(service).load(Ordering::Relaxed) {
        0 => None,
        n => LEVELS.get(usize::from(n) - 1).and_then(|l| level_of(l)),
    }
}

/// Sets (or, with `None`, clears) the level of `service` and makes tracing ask its filters again.
pub fn set_override(service: Service, level: Option<&str>) {
    let n = level
        .and_then(|l| LEVELS.iter().position(|x| *x == l))
        .map_or(0, |i| i as u8 + 1);
    slot(service).store(n, Ordering::Relaxed);
    tracing::callsite::rebuild_interest_cache();
}

/// Notes the filter of the global subscriber (called by `logs::init`).
pub fn installed(filter: &str) {
    let _ = INSTALLED_FILTER.set(filter.to_owned());
}

/// A target that stands for `service` when reading its level off the configured filter.
fn representative(service: Service) -> &'static str {
    match service {
        Service::App => "cryowarden_server::app",
        Service::Api => "cryowarden_server::api",
        Service::Scheduler => "cryowarden_server::scheduler",
        Service::Database => "sqlx::query",
        Service::Worker => "cryowarden_runner",
        Service::Audit => "cryowarden_server::audit",
    }
}

/// The level a `RUST_LOG`-style filter gives `target` (its most specific plain directive; span
/// and field directives are not considered); `off` when no directive matches.
pub fn level_in_filter(filter: &str, target: &str) -> String {
    let mut best: Option<(usize, String)> = None;
    for d in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if d.contains('[') || d.contains('{') {
            continue;
        }
        let (t, level) = match d.split_once('=') {
            Some((t, l)) => (t.trim(), l.trim().to_ascii_lowercase()),
            None if level_of(&d.to_ascii_lowercase()).is_some()
                || d.eq_ignore_ascii_case("off") =>
            {
                ("", d.to_ascii_lowercase())
            }
            None => (d, "trace".to_owned()),
        };
        if target.starts_with(t) && best.as_ref().is_none_or(|(len, _)| t.len() >= *len) {
            best = Some((t.len(), level));
        }
    }
    best.map_or_else(|| "off".to_owned(), |(_, l)| l)
}

/// Each service with its current level.
pub fn view() -> Value {
    let filter = INSTALLED_FILTER.get();
    let services: Vec<Value> = Service::ALL
        .iter()
        .map(|&s| {
            let (level, source) = match override_of(s) {
                Some(l) => (l.to_string().to_ascii_lowercase(), "set at run time"),
                None => (
                    filter.map_or_else(|| "off".to_owned(), |f| level_in_filter(f, representative(s))),
                    "configured filter",
                ),
            };
            json!({ "service": s.as_str(), "file": s.file_name(), "level": level, "source": source })
        })
        .collect();
    json!({
        "installed": filter.is_some(),
        "configured_filter": filter,
        "services": services,
        "levels": LEVELS,
        "actions": super::actions_of(Setting::Loggers),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetLevel {
    service: Option<String>,
    level: Option<String>,
}

/// `{"service": "api", "level": "debug"}`: the service's file takes events from that level up
/// (`"default"` returns it to the configured filter). Audited.
pub async fn set(state: &Services, ctx: &Ctx, body: Value) -> Result<Value, StoreError> {
    let req: SetLevel =
        serde_json::from_value(body).map_err(|e| StoreError::invalid("body", e.to_string()))?;
    let names = || {
        Service::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let service = req.service.ok_or_else(|| {
        StoreError::invalid("service", format!("is required: one of {}", names()))
    })?;
    let service = Service::parse(&service).ok_or_else(|| {
        StoreError::invalid(
            "service",
            format!(
                "`{}` is not a service: one of {}",
                service.chars().take(40).collect::<String>(),
                names()
            ),
        )
    })?;
    let level = req.level.ok_or_else(|| {
        StoreError::invalid(
            "level",
            "is required: trace, debug, info, warn, error or default",
        )
    })?;
    let level = level.to_ascii_lowercase();
    if level != "default" && level_of(&level).is_none() {
        return Err(StoreError::invalid(
            "level",
            "must be trace, debug, info, warn, error or default",
        ));
    }
    let before = view()["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["service"] == service.as_str()).cloned());
    set_override(service, (level != "default").then_some(level.as_str()));
    let after = view()["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["service"] == service.as_str()).cloned());
    ctx.record(
        &state.db,
        (Setting::Loggers, cryowarden_core::SettingAction::Set),
        &target(Setting::Loggers, Some(service.as_str())),
        Outcome::Ok,
        None,
        before.clone(),
        after.clone(),
    )
    .await?;
    Ok(json!({ "service": service.as_str(), "before": before, "after": after }))
}

/// The filter of one service's log file: its own events and spans at the run-time level of
/// [`override_of`], or else the configured [`EnvFilter`]'s; other services' spans as the
/// configured filter says (spans go to every file, so that an event keeps its context).
pub struct ServiceFilter {
    service: Service,
    env: EnvFilter,
}

impl ServiceFilter {
    pub fn new(service: Service, env: EnvFilter) -> ServiceFilter {
        ServiceFilter { service, env }
    }

    fn own(&self, meta: &Metadata<'_>) -> bool {
        Service::for_target(meta.target()) == self.service
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for ServiceFilter {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        let own = self.own(meta);
        if !own && !meta.is_span() {
            return false;
        }
        match override_of(self.service).filter(|_| own) {
            Some(level) => *meta.level() <= level,
            None => Filter::<S>::enabled(&self.env, meta, cx),
        }
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        let own = self.own(meta);
        if !own && !meta.is_span() {
            return Interest::never();
        }
        match override_of(self.service).filter(|_| own) {
            Some(level) if *meta.level() <= level => Interest::always(),
            Some(_) => Interest::never(),
            None => Filter::<S>::callsite_enabled(&self.env, meta),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let env = Filter::<S>::max_level_hint(&self.env);
        match override_of(self.service) {
            Some(level) => env.map(|e| e.max(level)),
            None => env,
        }
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        Filter::<S>::on_new_span(&self.env, attrs, id, ctx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        Filter::<S>::on_record(&self.env, id, values, ctx);
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        Filter::<S>::on_enter(&self.env, id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        Filter::<S>::on_exit(&self.env, id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        Filter::<S>::on_close(&self.env, id, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_service_level_off_the_filter() {
        assert_eq!(level_in_filter("info", "sqlx::query"), "info");
        assert_eq!(level_in_filter("info,sqlx=warn", "sqlx::query"), "warn");
        assert_eq!(
            level_in_filter(
                "warn,cryowarden_server::api=debug",
                "cryowarden_server::api"
            ),
            "debug"
        );
        assert_eq!(
            level_in_filter("cryowarden_server=debug", "sqlx::query"),
            "off"
        );
        assert_eq!(level_in_filter("debug,sqlx", "sqlx::query"), "trace");
        assert_eq!(
            level_in_filter("info,[request]=trace", "cryowarden_server::api"),
            "info"
        );
    }
}
