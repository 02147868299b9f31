//! The test harness: the real server on port 0, against SQLite in a temporary directory or
//! PostgreSQL in a fresh schema, driven through its public HTTP API.
#![allow(
    dead_code,
    reason = "each test binary uses a part of the shared harness"
)]

pub mod browser;
pub mod jobs;
pub mod openapi;
pub mod process;
pub mod session;
pub mod slurm;
pub mod unix;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;

use cryowarden_server::{AppState, Config};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL URL the test command provides. Missing, it fails the test, unless the
/// developer opted out outside CI with `CRYOWARDEN_TEST_SKIP_POSTGRES=1`: then `None`, and the
/// PostgreSQL half of a test says loudly that it was skipped. Under `CI=true` it is never skipped.
pub fn postgres_url() -> Option<String> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
    match std::env::var("CRYOWARDEN_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "CI=true but CRYOWARDEN_TEST_POSTGRES_URL is unset: run the suite through scripts/test"
        ),
        _ if set("CRYOWARDEN_TEST_SKIP_POSTGRES") => {
            eprintln!(
                "SKIPPED: the PostgreSQL half of this test was not run \
                 (CRYOWARDEN_TEST_SKIP_POSTGRES is set)"
            );
            None
        }
        _ => panic!(
            "CRYOWARDEN_TEST_POSTGRES_URL is unset: run the suite through scripts/test (it \
             provides PostgreSQL), or opt out of the PostgreSQL half explicitly with \
             CRYOWARDEN_TEST_SKIP_POSTGRES=1"
        ),
    }
}

/// A fresh, empty database for one test: a temporary SQLite file, or a new PostgreSQL schema.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}", dir.join("test.db").display())),
        Backend::Postgres => {
            let base = postgres_url()?;
            let schema = format!("t_{}", hex(rand::random::<u64>()));
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&base)
                .await
                .expect("connect to the test PostgreSQL");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&pool)
                .await
                .expect("create schema");
            pool.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
        }
    }
}

fn hex(v: u64) -> String {
    format!("{v:016x}")
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub state: Arc<AppState>,
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    /// Exchanges that contradicted the OpenAPI document (`openapi.rs`): the test fails on drop.
    pub openapi_violations: openapi::Violations,
    /// Ends the server (see [`TestApp::shut_down`]).
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let violations = self
            .openapi_violations
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "{} API answer(s) contradict the OpenAPI document:\n{}",
                violations.len(),
                violations.join("\n")
            );
        }
    }
}

/// The application's router with the OpenAPI check around it.
fn checked_router(state: Arc<AppState>, violations: &openapi::Violations) -> axum::Router {
    let violations = violations.clone();
    cryowarden_server::router(state).layer(axum::middleware::from_fn(move |request, next| {
        openapi::check_exchange(violations.clone(), request, next)
    }))
}

pub const ADMIN_PASSWORD: &str = "site admin passphrase 42";
pub const USER_PASSWORD: &str = "a long user passphrase";

impl TestApp {
    /// Starts the real application; `None` when the backend is not available outside CI.
    pub async fn start(backend: Backend) -> Option<TestApp> {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts the application with a configuration adjusted by `tweak`.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = fresh_database(backend, dir.path()).await?;
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            database_url,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Config::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        config.listen = addr;
        // File operations of labs go through the real runner, allowed the test lab accounts.
        config.runner.command = vec![unix::runner_binary().to_string_lossy().into_owned()];
        config.runner.policy = Some(unix::runner_policy(dir.path()));
        tweak(&mut config);
        let state = AppState::open(config).await.expect("open the app");
        cryowarden_server::scheduler::start(state.services.clone())
            .await
            .expect("start the scheduler");
        let openapi_violations = openapi::Violations::default();
        let (shutdown, served) = serve(listener, state.clone(), &openapi_violations);
        Some(TestApp {
            url: format!("http://{addr}"),
            http: reqwest::Client::new(),
            state,
            backend,
            dir,
            openapi_violations,
            shutdown: Some(shutdown),
            served: Some(served),
        })
    }

    /// Restarts the server on the same database and data: the old scheduler stops as if its
    /// process had died (its jobs keep running), a new state and scheduler start and
    /// reconcile, and requests go to a new listener.
    pub async fn restart(&mut self) {
        self.state.scheduler.halt();
        let mut config = self.state.config.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        config.listen = listener.local_addr().expect("addr");
        let state = AppState::open(config).await.expect("reopen the app");
        cryowarden_server::scheduler::start(state.services.clone())
            .await
            .expect("restart the scheduler");
        self.url = format!("http://{}", state.config.listen);
        let (shutdown, served) = serve(listener, state.clone(), &self.openapi_violations);
        self.shutdown = Some(shutdown);
        self.served = Some(served);
        self.state = state;
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Registers the first Site Admin through the bootstrap token, signs in and returns an API
    /// token of theirs.
    pub async fn site_admin(&self) -> String {
        self.register_first_site_admin().await;
        self.api_token("root-admin", ADMIN_PASSWORD).await
    }

    /// Registers `root-admin` with the bootstrap token.
    pub async fn register_first_site_admin(&self) {
        let token = self
            .state
            .auth
            .bootstrap_token(&self.state.db)
            .await
            .expect("bootstrap")
            .expect("no users yet");
        let body = json!({ "token": token.expose(), "password": ADMIN_PASSWORD, "username": "root-admin", "email": "admin@facility.example" });
        let (s, v) = self
            .call(Method::POST, "/api/v1/auth/register", None, Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }

    /// Signs in with a password and exchanges the session for an API token.
    pub async fn api_token(&self, username: &str, password: &str) -> String {
        let (cookie, csrf) = self.login(username, password).await;
        let resp = self
            .http
            .post(format!("{}/api/v1/tokens", self.url))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({ "name": "test" }))
            .send()
            .await
            .expect("create token");
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: Value = resp.json().await.expect("json");
        v["secret"].as_str().expect("secret").to_owned()
    }

    /// Signs in; returns the session cookie (`cw_session=...`) and its CSRF token.
    pub async fn login(&self, username: &str, password: &str) -> (String, String) {
        let resp = self
            .http
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("login");
        assert_eq!(resp.status(), StatusCode::OK, "login of {username}");
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        let v: Value = resp.json().await.expect("json");
        (cookie, v["csrf_token"].as_str().expect("csrf").to_owned())
    }

    /// What a browser gets from `GET /login`: the pre-session cookie (`cw_login=...`) and the
    /// form's `_login` token, which a form post to `/login` must carry.
    pub async fn login_form_token(&self) -> (String, String) {
        let resp = self
            .http
            .get(format!("{}/login", self.url))
            .send()
            .await
            .expect("login page");
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        let html = resp.text().await.expect("html");
        let token = html
            .split("name=\"_login\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("the form's _login field")
            .to_owned();
        assert_eq!(
            cookie.strip_prefix("cw_login="),
            Some(token.as_str()),
            "the field echoes the cookie"
        );
        (cookie, token)
    }

    /// Creates a user with `role` as `admin`, registers them, and returns (id, their API token).
    pub async fn user(&self, admin: &str, username: &str, role: &str) -> (i64, String) {
        let (s, v) = self
            .post(
                "/api/v1/users",
                admin,
                json!({ "username": username, "email": format!("{username}@lab.example"), "site_role": role }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["user"]["id"].as_i64().expect("id");
        let token = v["registration"]["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let (s, v) = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({ "token": token, "password": USER_PASSWORD })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (id, self.api_token(username, USER_PASSWORD).await)
    }

    /// Runs the real `cryowarden` binary against this server with `token`, adding `--json`:
    /// (success, the JSON it printed, its stderr).
    pub async fn cli(&self, token: &str, args: &[&str]) -> (bool, Value, String) {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let (ok, text, stderr) = self.cli_text(token, &args).await;
        (
            ok,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            stderr,
        )
    }

    /// Runs the real `cryowarden` binary as [`TestApp::cli`] does, without `--json`: whether it
    /// succeeded, its standard output and its standard error.
    pub async fn cli_text(&self, token: &str, args: &[&str]) -> (bool, String, String) {
        let (url, token) = (self.url.clone(), token.to_owned());
        let home = self.dir.path().join("home");
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env = [
                ("CRYOWARDEN_URL", url.as_str()),
                ("CRYOWARDEN_TOKEN", token.as_str()),
                ("XDG_CONFIG_HOME", home.to_str().unwrap()),
            ];
            process::run(&args, "", &env)
        })
        .await
        .unwrap();
        (
            out.status.success(),
            process::stdout(&out),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A clean shutdown, as on SIGTERM: stops accepting, lets requests finish, writes what the
    /// server still held in memory, and returns when the serve loop has ended.
    pub async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.expect("the serve loop ended cleanly");
        }
    }

    /// The number of audit events so far.
    pub async fn audit_len(&self) -> i64 {
        cryowarden_server::audit::verify(&self.state.db)
            .await
            .expect("verify")
            .events
    }
}

/// Serves `state` on `listener` through the binary's own serve loop (timeouts, connection cap,
/// security headers, the audit's refusal counts flushed at shutdown).
fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    violations: &openapi::Violations,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = checked_router(state.clone(), violations);
    let served = tokio::spawn(async move {
        cryowarden_server::app::serve_router(listener, state, app, async move {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    (tx, served)
}

/// Runs one async test body on SQLite and on PostgreSQL, as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = TestApp::start(Backend::Sqlite).await {
                    ($body)(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = TestApp::start(Backend::Postgres).await {
                    ($body)(app).await;
                }
            }
        }
    };
}

/// The entries of a zip and the text of each (the report's JSON and log files are small here).
pub fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).expect("entry");
        let name = f.name().expect("entry name").to_string();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut f, &mut text).expect("text entry");
        out.insert(name, text);
    }
    out
}
