//! cryowarden's service: storage (SQLite or PostgreSQL, migrations, the audit chain), identity
//! (users, tokens, sessions), the HTTP API and pages. Every guarded action asks
//! `cryowarden_core::authorize` through [`context::Ctx::authorize`].

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod console;
pub mod context;
pub mod datadir;
pub mod db;
pub mod error;
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
pub mod settings;
pub mod state;
pub mod throttle;
pub mod users;
pub mod web;

pub use app::{router, serve};
pub use config::Config;
pub use state::AppState;
