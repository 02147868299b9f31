//! Typed configuration, loaded once: defaults, then `DATA_DIR/cryowarden.toml` (or `--config`),
//! then `CRYOWARDEN_*` environment variables, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Lifetimes of tokens and sessions, from the configuration (used by `auth`; kept here so that
/// the configuration depends on nothing of the service).
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub register_ms: i64,
    pub reset_ms: i64,
    pub bootstrap_ms: i64,
    pub session_idle_ms: i64,
    pub session_absolute_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, logs and job data live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`; empty for DATA_DIR/cryowarden.db.
    pub database_url: String,
    /// The address the web server listens on.
    pub listen: SocketAddr,
    /// The URL people reach the server by, for links it prints; empty for http://LISTEN.
    pub base_url: String,
    /// Days a registration token stays valid.
    pub registration_token_days: u32,
    /// Hours a password reset token stays valid.
    pub reset_token_hours: u32,
    /// Minutes of inactivity after which a browser session ends.
    pub session_idle_minutes: u32,
    /// Hours after which a browser session ends whatever its activity.
    pub session_absolute_hours: u32,
    /// Password hashes computed at once (each takes 19 MiB and one core for ~50 ms).
    pub password_hash_concurrency: usize,
    /// Largest request body accepted, in KiB.
    pub max_body_kib: usize,
    /// Log filter, as for RUST_LOG (e.g. `info`, `cryowarden_server=debug`).
    pub log: String,
    /// Reverse proxies (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` headers name
    /// the client; empty: the connection's peer is the client (see `proxies.rs`).
    pub trusted_proxies: Vec<String>,
    /// Seconds a connection may take to send a request's headers; also how long a kept-alive
    /// connection may stay idle before its next request.
    pub header_read_timeout_secs: u64,
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// The privileged runner that performs file operations as a lab's Unix account.
    pub runner: RunnerConfig,
}

/// How the server starts `cryowarden-runner` (see [`crate::runner`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    /// The runner's command line; empty for the `cryowarden-runner` binary next to the server's,
    /// through `sudo -n` unless the server runs as root (`CRYOWARDEN_RUNNER_COMMAND`, split at
    /// spaces).
    pub command: Vec<String>,
    /// The runner's policy file, passed to it as `CRYOWARDEN_RUNNER_CONFIG` (which the runner
    /// honours only when called by root); unset for its default, /etc/cryowarden/runner.toml
    /// (`CRYOWARDEN_RUNNER_POLICY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./cryowarden-data"),
            database_url: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 39000)),
            base_url: String::new(),
            registration_token_days: 7,
            reset_token_hours: 24,
            session_idle_minutes: 12 * 60,
            session_absolute_hours: 7 * 24,
            password_hash_concurrency: 1,
            max_body_kib: 1024,
            log: "info".into(),
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            max_connections: 4096,
            runner: RunnerConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
}

impl Config {
    /// Loads the file (if it exists) and the environment over the defaults.
    pub fn load(data_dir: Option<&Path>, file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(dir) = data_dir {
            config.data_dir = dir.to_owned();
        } else if let Ok(dir) = std::env::var("CRYOWARDEN_DATA_DIR") {
            config.data_dir = PathBuf::from(dir);
        }
        let path = file
            .map(Path::to_owned)
            .unwrap_or_else(|| config.data_dir.join("cryowarden.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let data_dir = config.data_dir.clone();
                config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    source: Box::new(e),
                })?;
                if data_dir.as_os_str() != "./cryowarden-data"
                    || config.data_dir.as_os_str() == "./cryowarden-data"
                {
                    config.data_dir = data_dir;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.is_none() => {}
            Err(e) => return Err(ConfigError::Read { path, source: e }),
        }
        config.apply_env()?;
        Ok(config)
    }

    fn apply_env(&mut self) -> Result<(), ConfigError> {
        fn var(name: &str) -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        }
        fn parse<T: std::str::FromStr>(name: &str, into: &mut T) -> Result<(), ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            if let Some(v) = var(name) {
                *into = v.parse().map_err(|e: T::Err| ConfigError::Env {
                    name: name.into(),
                    message: e.to_string(),
                })?;
            }
            Ok(())
        }
        if let Some(v) = var("CRYOWARDEN_DATABASE_URL") {
            self.database_url = v;
        }
        parse("CRYOWARDEN_LISTEN", &mut self.listen)?;
        if let Some(v) = var("CRYOWARDEN_BASE_URL") {
            self.base_url = v;
        }
        if let Some(v) = var("CRYOWARDEN_LOG") {
            self.log = v;
        }
        parse(
            "CRYOWARDEN_SESSION_IDLE_MINUTES",
            &mut self.session_idle_minutes,
        )?;
        parse(
            "CRYOWARDEN_PASSWORD_HASH_CONCURRENCY",
            &mut self.password_hash_concurrency,
        )?;
        if let Some(v) = var("CRYOWARDEN_TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        parse(
            "CRYOWARDEN_HEADER_READ_TIMEOUT_SECS",
            &mut self.header_read_timeout_secs,
        )?;
        parse("CRYOWARDEN_MAX_CONNECTIONS", &mut self.max_connections)?;
        if let Some(v) = var("CRYOWARDEN_RUNNER_COMMAND") {
            self.runner.command = v.split_whitespace().map(str::to_owned).collect();
        }
        if let Some(v) = var("CRYOWARDEN_RUNNER_POLICY") {
            self.runner.policy = Some(PathBuf::from(v));
        }
        Ok(())
    }

    /// The database URL, defaulting to SQLite in the data directory.
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("cryowarden.db").display())
        } else {
            self.database_url.clone()
        }
    }

    pub fn base_url(&self) -> String {
        if self.base_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.base_url.trim_end_matches('/').to_owned()
        }
    }

    pub fn lifetimes(&self) -> Lifetimes {
        let h = 3_600_000i64;
        Lifetimes {
            register_ms: i64::from(self.registration_token_days) * 24 * h,
            reset_ms: i64::from(self.reset_token_hours) * h,
            bootstrap_ms: 24 * h,
            session_idle_ms: i64::from(self.session_idle_minutes) * 60_000,
            session_absolute_ms: i64::from(self.session_absolute_hours) * h,
        }
    }

    /// The database URL with any password replaced, for logs and diagnostics.
    pub fn redacted_database_url(&self) -> String {
        redact_url(&self.database_url())
    }

    /// A commented default file, printed by `cryowarden config example`.
    pub fn example() -> String {
        let d = Config::default();
        format!(
            "# cryowarden configuration. Put it at DATA_DIR/cryowarden.toml or pass --config FILE.\n\
             # Every key is optional; shown here with its default. CRYOWARDEN_* variables override.\n\n\
             # Where the database, logs and job data live (CRYOWARDEN_DATA_DIR).\n\
             data_dir = \"{}\"\n\n\
             # sqlite://PATH or postgres://USER:PASSWORD@HOST/DB; empty = DATA_DIR/cryowarden.db (CRYOWARDEN_DATABASE_URL).\n\
             database_url = \"\"\n\n\
             # Address the web server listens on (CRYOWARDEN_LISTEN).\n\
             listen = \"{}\"\n\n\
             # The URL people reach the server by, for printed links; empty = http://LISTEN (CRYOWARDEN_BASE_URL).\n\
             base_url = \"\"\n\n\
             # Validity of registration tokens (days) and password reset tokens (hours).\n\
             registration_token_days = {}\n\
             reset_token_hours = {}\n\n\
             # Browser sessions end after this much inactivity (minutes), or this long after login (hours).\n\
             session_idle_minutes = {}\n\
             session_absolute_hours = {}\n\n\
             # Password hashes computed at once; each takes 19 MiB and one core for ~50 ms.\n\
             password_hash_concurrency = {}\n\n\
             # Largest request body accepted, in KiB.\n\
             max_body_kib = {}\n\n\
             # Log filter, as for RUST_LOG (CRYOWARDEN_LOG).\n\
             log = \"{}\"\n\n\
             # Reverse proxies whose Forwarded / X-Forwarded-For headers name the client, as CIDRs\n\
             # (e.g. [\"127.0.0.1/32\", \"10.0.0.0/8\"]); empty = the connection's peer is the client.\n\
             # Sign-in throttling and audit events use the address found (CRYOWARDEN_TRUSTED_PROXIES, comma-separated).\n\
             trusted_proxies = []\n\n\
             # Seconds a connection may take to send a request's headers, and stay idle between\n\
             # requests (CRYOWARDEN_HEADER_READ_TIMEOUT_SECS).\n\
             header_read_timeout_secs = {}\n\n\
             # Open connections at most; one more is answered 503 (CRYOWARDEN_MAX_CONNECTIONS).\n\
             max_connections = {}\n\n\
             # The privileged runner: file operations on lab data run as the lab's Unix account.\n\
             [runner]\n\
             # Its command line; empty = cryowarden-runner next to the cryowarden binary, through\n\
             # `sudo -n` unless the server runs as root (CRYOWARDEN_RUNNER_COMMAND, split at spaces).\n\
             command = []\n\
             # Its policy file, passed as CRYOWARDEN_RUNNER_CONFIG and honoured only when the runner is\n\
             # called by root; unset = /etc/cryowarden/runner.toml (CRYOWARDEN_RUNNER_POLICY).\n\
             # policy = \"/etc/cryowarden/runner.toml\"\n",
            d.data_dir.display(),
            d.listen,
            d.registration_token_days,
            d.reset_token_hours,
            d.session_idle_minutes,
            d.session_absolute_hours,
            d.password_hash_concurrency,
            d.max_body_kib,
            d.log,
            d.header_read_timeout_secs,
            d.max_connections
        )
    }
}

/// Replaces the password of a URL with `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_to_the_defaults() {
        let parsed: Config = toml::from_str(&Config::example()).unwrap();
        assert_eq!(parsed.listen, Config::default().listen);
        assert_eq!(parsed.registration_token_days, 7);
        assert_eq!(parsed.runner, RunnerConfig::default());
        assert_eq!(parsed.header_read_timeout_secs, 10);
        assert_eq!(parsed.max_connections, 4096);
        assert!(parsed.trusted_proxies.is_empty());
        let runner: Config = toml::from_str(
            "[runner]\ncommand = [\"sudo\", \"-n\", \"/usr/local/bin/cryowarden-runner\"]\npolicy = \"/etc/cw.toml\"",
        )
        .unwrap();
        assert_eq!(runner.runner.command.len(), 3);
        assert_eq!(
            runner.runner.policy.as_deref(),
            Some(Path::new("/etc/cw.toml"))
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://cw:secret@127.0.0.1/cw"),
            "postgres://cw:***@127.0.0.1/cw"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
