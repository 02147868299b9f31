//! cryowarden's service: identity (users, tokens, sessions), labs, projects, the scheduler and
//! clusters, diagnostics, the HTTP API and pages, over the storage of `cryowarden-store` (whose
//! modules are re-exported here under their own names). Every guarded action asks
//! `cryowarden_core::authorize` through [`context::Ctx::authorize`].

pub mod api;
pub mod app;
pub mod audit_log;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod console;
pub mod explain;
mod house_rules;
pub mod http;
pub mod impersonation;
pub mod import;
pub mod inspect;
pub mod jobs;
pub mod labs;
pub mod lanes;
pub mod logs;
pub mod passwords;
pub mod projects;
pub mod proxies;
pub mod runner;
pub mod scheduler;
pub use cryowarden_paths as paths;
pub mod secrets;
pub mod services;
pub mod settings;
pub mod state;
pub mod throttle;
pub mod users;
pub mod web;

pub use cryowarden_store::{audit, context, datadir, db, error};

pub use app::{router, serve};
pub use config::Config;
pub use state::AppState;
