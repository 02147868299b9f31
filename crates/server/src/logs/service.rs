//! The services that get a log file each, and the rule that routes a tracing event to one of
//! them by its target.

use std::fmt;

/// One log file per service: `DIR/<as_str()>.log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    App,
    Api,
    Scheduler,
    Database,
    Worker,
    Audit,
}

/// Target prefixes and where they go, checked in order; anything else goes to [`Service::App`].
const ROUTES: [(&str, Service); 11] = [
    ("cryowarden_server::api", Service::Api),
    ("cryowarden_server::pages", Service::Api),
    // The server-rendered pages moved from `pages` to `web` (web/pages.rs, web/admin.rs).
    ("cryowarden_server::web", Service::Api),
    // What the API and the pages share (errors, extractors, headers).
    ("cryowarden_server::http", Service::Api),
    ("tower_http", Service::Api),
    ("sqlx", Service::Database),
    ("cryowarden_server::audit", Service::Audit),
    // The audit chain lives in the store crate.
    ("cryowarden_store::audit", Service::Audit),
    ("cryowarden_server::scheduler", Service::Scheduler),
    ("cryowarden_server::worker", Service::Worker),
    ("cryowarden_runner", Service::Worker),
];

impl Service {
    pub const ALL: [Service; 6] = [
        Service::App,
        Service::Api,
        Service::Scheduler,
        Service::Database,
        Service::Worker,
        Service::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::App => "app",
            Service::Api => "api",
            Service::Scheduler => "scheduler",
            Service::Database => "database",
            Service::Worker => "worker",
            Service::Audit => "audit",
        }
    }

    /// The inverse of [`Service::as_str`] (exact, lower case).
    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The name of the current log file: `api.log`.
    pub fn file_name(self) -> String {
        format!("{}.log", self.as_str())
    }

    /// Where an event with this tracing target is written. A prefix matches a whole path
    /// segment: `sqlx::query` and `sqlx` go to the database log, `sqlx_extra` does not.
    pub fn for_target(target: &str) -> Service {
        ROUTES
            .iter()
            .find(|(prefix, _)| starts_with_segment(target, prefix))
            .map_or(Service::App, |&(_, s)| s)
    }
}

fn starts_with_segment(target: &str, prefix: &str) -> bool {
    match target.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with("::"),
        None => false,
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Service::ALL {
            assert_eq!(Service::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(Service::parse("API"), None);
        assert_eq!(Service::parse(""), None);
        assert_eq!(Service::Api.file_name(), "api.log");
    }

    #[test]
    fn routes_by_target() {
        let cases = [
            ("cryowarden_server::api", Service::Api),
            ("cryowarden_server::api::users", Service::Api),
            ("cryowarden_server::pages", Service::Api),
            ("cryowarden_server::web::admin", Service::Api),
            // The server-rendered pages moved from `pages` to `web` (web/pages.rs, web/admin.rs).
            ("cryowarden_server::web", Service::Api),
            ("tower_http::trace::on_response", Service::Api),
            ("sqlx::query", Service::Database),
            ("sqlx", Service::Database),
            ("cryowarden_server::audit", Service::Audit),
            ("cryowarden_server::http::error", Service::Api),
            ("cryowarden_store::audit", Service::Audit),
            ("cryowarden_store::audit::archive", Service::Audit),
            ("cryowarden_store::db", Service::App),
            ("cryowarden_server::scheduler::tick", Service::Scheduler),
            ("cryowarden_server::worker", Service::Worker),
            ("cryowarden_runner::slurm", Service::Worker),
            ("cryowarden_runner", Service::Worker),
            ("cryowarden_server::app", Service::App),
            ("cryowarden_server::apis", Service::App),
            ("sqlx_core_like", Service::App),
            ("cryowarden", Service::App),
            ("hyper::proto", Service::App),
            ("", Service::App),
        ];
        for (target, want) in cases {
            assert_eq!(Service::for_target(target), want, "{target}");
        }
    }
}
