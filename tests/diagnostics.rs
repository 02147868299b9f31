//! The Diagnostics of the admin console (`/api/v1/diagnostics/...`), on SQLite and PostgreSQL:
//! who may see and run what (derived from `spec/roles.md` §1 through `setting_access`, and
//! refusals audited, changing nothing), the content of each view, the database checks and the
//! backup, site validation, and — in the real binary, whose process owns the global tracing
//! subscriber — environment redaction, run-time log levels, site errors and query statistics.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{ADMIN_PASSWORD, Backend, TestApp, USER_PASSWORD, process};
use cryowarden_core::table::setting_access;
use cryowarden_core::{Access, Column, Setting};
use cryowarden_server::inspect;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The roles of the admin console's columns, and an ordinary user (no column).
const ROLES: [(&str, Option<Column>); 5] = [
    ("site_admin", Some(Column::SiteAdmin)),
    ("application_admin", Some(Column::ApplicationAdmin)),
    ("troubleshooter", Some(Column::Troubleshooter)),
    (
        "impersonating_troubleshooter",
        Some(Column::ImpersonatingTroubleshooter),
    ),
    ("none", None),
];

fn access(setting: Setting, column: Option<Column>) -> Access {
    column.map_or(Access::None, |c| setting_access(setting, c).0)
}

/// The last audit event: (action, outcome, target).
async fn last_event(pool: &sqlx::AnyPool) -> (String, String, Option<String>) {
    use sqlx::Row;
    let r =
        sqlx::query("SELECT action, outcome, target FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_one(pool)
            .await
            .expect("last audit event");
    (r.get("action"), r.get("outcome"), r.get("target"))
}

/// A token for each role (the Site Admin's is the bootstrap one).
async fn role_tokens(app: &TestApp, admin: &str) -> Vec<(&'static str, Option<Column>, String)> {
    let mut out = Vec::new();
    for (i, (role, column)) in ROLES.into_iter().enumerate() {
        let token = if role == "site_admin" {
            admin.to_owned()
        } else {
            app.user(admin, &format!("user{i}"), role).await.1
        };
        out.push((role, column, token));
    }
    out
}

on_both_backends!(
    views_and_actions_follow_the_table,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let tokens = role_tokens(&app, &admin).await;
        let pool = &app.state.db.pool;
        for setting in inspect::SETTINGS {
            for (role, column, token) in &tokens {
                let before = app.audit_len().await;
                let (s, v) = app
                    .get(&format!("/api/v1/diagnostics/{setting}"), token)
                    .await;
                if access(*setting, *column) == Access::None {
                    assert_eq!(s, StatusCode::FORBIDDEN, "{role} reads {setting}: {v}");
                    assert_eq!(v["code"], "forbidden");
                    assert_eq!(app.audit_len().await, before + 1, "the refusal is audited");
                    let (action, outcome, _) = last_event(pool).await;
                    assert_eq!(
                        (action.as_str(), outcome.as_str()),
                        (format!("read-setting:{setting}").as_str(), "denied")
                    );
                } else {
                    assert_eq!(s, StatusCode::OK, "{role} reads {setting}: {v}");
                    assert!(v.is_object(), "{setting}: {v}");
                }
            }
        }
        // Only the diagnostics are served here.
        for key in [
            "look-and-feel",
            "instance-logs",
            "nonsense",
            "credits%2F..%2Fx",
        ] {
            let (s, v) = app.get(&format!("/api/v1/diagnostics/{key}"), &admin).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{key}: {v}");
            assert_eq!(v["code"], "not-found");
        }
        let (s, _) = app
            .post("/api/v1/diagnostics/credits/reset", &admin, json!({}))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "credits has no actions");

        // Every action refused to each role without `all` on its row: 403, audited, nothing done.
        let backups = app.dir.path().join("backups");
        for (setting, action) in inspect::ACTIONS {
            for (role, column, token) in &tokens {
                if access(*setting, *column) == Access::All {
                    continue;
                }
                let before = app.audit_len().await;
                let body = match (*setting, *action) {
                    (Setting::Loggers, _) => json!({ "service": "api", "level": "debug" }),
                    (Setting::SiteValidation, _) => json!({ "project": 1 }),
                    _ => json!({}),
                };
                let (s, v) = app
                    .post(
                        &format!("/api/v1/diagnostics/{setting}/{action}"),
                        token,
                        body,
                    )
                    .await;
                assert_eq!(
                    s,
                    StatusCode::FORBIDDEN,
                    "{role} runs {setting}/{action}: {v}"
                );
                assert_eq!(v["code"], "forbidden");
                assert_eq!(
                    app.audit_len().await,
                    before + 1,
                    "only the refusal is recorded"
                );
                let (audited, outcome, target) = last_event(pool).await;
                assert_eq!(audited, format!("change-setting:{setting}"));
                assert_eq!(outcome, "denied");
                assert_eq!(target.as_deref(), Some(*action));
            }
        }
        assert!(!backups.exists(), "no backup was made by a refused action");
        let (_, v) = app.get("/api/v1/diagnostics/loggers", &admin).await;
        assert!(
            v["services"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["source"] == "configured filter"),
            "{v}"
        );

        // The OpenAPI document describes both routes.
        let (_, doc) = app.get("/api/v1/openapi.json", &admin).await;
        assert!(doc["paths"]["/api/v1/diagnostics/{key}"]["get"].is_object());
        assert!(doc["paths"]["/api/v1/diagnostics/{key}/{action}"]["post"].is_object());
    }
);

on_both_backends!(the_views_say_what_they_should, |app: TestApp| async move {
    let admin = app.site_admin().await;
    let get = |key: &'static str| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let (s, v) = app.get(&format!("/api/v1/diagnostics/{key}"), &admin).await;
            assert_eq!(s, StatusCode::OK, "{key}: {v}");
            v
        }
    };
    // startup-properties: the effective configuration, the database password hidden.
    let v = get("startup-properties").await;
    assert_eq!(
        v["properties"]["data_dir"],
        app.dir.path().display().to_string()
    );
    assert_eq!(
        v["properties"]["listen"],
        app.state.config.listen.to_string()
    );
    if app.backend == Backend::Postgres {
        let url = common::postgres_url().unwrap();
        let (_, password) = url
            .split_once("://")
            .unwrap()
            .1
            .split_once('@')
            .unwrap()
            .0
            .split_once(':')
            .unwrap();
        let text = v.to_string();
        assert!(!text.contains(&format!(":{password}@")), "{text}");
        assert!(
            v["effective"]["database_url"]
                .as_str()
                .unwrap()
                .contains(":***@"),
            "{v}"
        );
    }
    // environment-variables: sorted, and the test's PostgreSQL URL (if any) has no password.
    let v = get("environment-variables").await;
    let names: Vec<&str> = v["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "sorted");
    assert!(names.contains(&"PATH"));
    if let Some(pg) = v["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "CRYOWARDEN_TEST_POSTGRES_URL")
    {
        assert!(pg["value"].as_str().unwrap().contains(":***@"), "{pg}");
        assert_eq!(pg["redacted"], true);
    }
    // system-properties, memory-usage, running-tasks.
    let v = get("system-properties").await;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(v["hostname"], hostname.trim());
    assert!(v["cpus"]["available"].as_u64().unwrap() >= 1);
    assert!(
        v["memory"]["total_bytes"].as_u64().unwrap()
            > v["memory"]["available_bytes"].as_u64().unwrap()
    );
    assert!(v["gpus"]["gpus"].is_array());
    let v = get("memory-usage").await;
    let rss = v["rss_bytes"].as_u64().unwrap();
    assert!(
        rss > 1 << 20 && rss <= v["peak_rss_bytes"].as_u64().unwrap(),
        "{v}"
    );
    assert!(v["threads"].as_u64().unwrap() >= 2);
    assert!(v["runtime"]["workers"].as_u64().unwrap() >= 1);
    let v = get("running-tasks").await;
    assert_eq!(v["scheduler"]["halted"], false);
    assert!(
        v["scheduler"]["passes"].as_u64().unwrap() >= 1,
        "the loop has run: {v}"
    );
    assert!(v["runtime"]["alive_tasks"].as_u64().unwrap() >= 2, "{v}");
    // data-sources.
    let v = get("data-sources").await;
    assert_eq!(v["backend"], app.state.db.backend.name());
    assert!(v["pool"]["size"].as_u64().unwrap() >= 1);
    match app.backend {
        Backend::Sqlite => {
            assert_eq!(v["details"]["journal_mode"], "wal");
            assert!(v["details"]["file_size_bytes"].as_u64().unwrap() > 0);
        }
        Backend::Postgres => {
            assert!(
                v["details"]["server_version"]
                    .as_str()
                    .unwrap()
                    .starts_with("PostgreSQL")
            );
            assert!(v["details"]["database_size_bytes"].as_i64().unwrap() > 0);
        }
    }
    // sql-scripts: 0001..0004 applied, checksums matching.
    let v = get("sql-scripts").await;
    let migrations = v["migrations"].as_array().unwrap();
    for version in 1..=4 {
        let m = migrations
            .iter()
            .find(|m| m["version"] == version)
            .unwrap_or_else(|| panic!("{version}: {v}"));
        assert_eq!(m["applied"], true, "{m}");
        assert_eq!(m["checksum_matches"], true, "{m}");
        assert!(m["installed_on"].is_string(), "{m}");
    }
    assert_eq!(v["pending"], 0);
    // credits: generated at build time.
    let v = get("credits").await;
    let axum = v["crates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "axum")
        .expect("axum in the credits");
    assert_eq!(axum["license"], "MIT");
    assert!(
        axum["repository"]
            .as_str()
            .unwrap()
            .contains("github.com/tokio-rs/axum")
    );
    assert!(
        !v["crates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "cryowarden-core")
    );
});

on_both_backends!(
    check_database_integrity_vacuum_and_backup,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        app.user(&admin, "someone", "none").await;
        let pool = &app.state.db.pool;

        let (s, v) = app
            .post(
                "/api/v1/diagnostics/check-database/integrity",
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["problems"], json!([]));
        if app.backend == Backend::Postgres {
            let users = v["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["table"].as_str().unwrap().ends_with(".users"));
            assert_eq!(users.expect("users scanned")["rows"], 2, "{v}");
            assert!(v["foreign_keys_checked"].as_u64().unwrap() > 5, "{v}");
        }
        assert_eq!(last_event(pool).await.0, "check-database/integrity");

        // A broken foreign key is found (SQLite only: PostgreSQL enforces its keys on every write).
        if app.backend == Backend::Sqlite {
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("PRAGMA foreign_keys = OFF")
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO lab_members (lab_id, user_id, role) VALUES (999, 1, 'member')",
            )
            .execute(&mut *conn)
            .await
            .unwrap();
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&mut *conn)
                .await
                .unwrap();
            drop(conn);
            let (_, v) = app
                .post(
                    "/api/v1/diagnostics/check-database/integrity",
                    &admin,
                    json!({}),
                )
                .await;
            assert_eq!(v["ok"], false, "{v}");
            assert!(
                v["problems"][0]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("lab_members"),
                "{v}"
            );
            sqlx::query("DELETE FROM lab_members WHERE lab_id = 999")
                .execute(pool)
                .await
                .unwrap();
        }

        let (s, v) = app
            .post(
                "/api/v1/diagnostics/check-database/vacuum",
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(last_event(pool).await.0, "check-database/vacuum");

        let (s, v) = app
            .post(
                "/api/v1/diagnostics/check-database/backup",
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let path = Path::new(v["path"].as_str().unwrap()).to_owned();
        assert!(path.starts_with(app.dir.path().join("backups")), "{v}");
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(v["size_bytes"], size);
        assert_eq!(last_event(pool).await.0, "check-database/backup");
        match app.backend {
            Backend::Sqlite => {
                // The backup is a database of its own, with the users in it.
                let backup =
                    sqlx::AnyPool::connect(&format!("sqlite://{}?mode=ro", path.display()))
                        .await
                        .unwrap();
                let users: Vec<String> =
                    sqlx::query_scalar("SELECT username FROM users ORDER BY username")
                        .fetch_all(&backup)
                        .await
                        .unwrap();
                assert_eq!(users, ["root-admin", "someone"]);
                backup.close().await;
            }
            Backend::Postgres => {
                let bytes = std::fs::read(&path).unwrap();
                assert!(bytes.starts_with(b"PGDMP"), "a pg_dump custom archive");
                let listing = Command::new("pg_restore")
                    .arg("--list")
                    .arg(&path)
                    .output()
                    .unwrap();
                assert!(listing.status.success());
                assert!(
                    String::from_utf8_lossy(&listing.stdout).contains("TABLE DATA"),
                    "the dump holds table data"
                );
                assert!(
                    String::from_utf8_lossy(&listing.stdout).contains(" users "),
                    "the dump holds users"
                );
            }
        }
        // A second backup does not overwrite the first.
        let (_, again) = app
            .post(
                "/api/v1/diagnostics/check-database/backup",
                &admin,
                json!({}),
            )
            .await;
        assert_ne!(again["path"], v["path"]);
        let (_, view) = app.get("/api/v1/diagnostics/check-database", &admin).await;
        assert_eq!(view["backups"].as_array().unwrap().len(), 2, "{view}");
        // Parameters are refused: the checks take none.
        let (s, v) = app
            .post(
                "/api/v1/diagnostics/check-database/vacuum",
                &admin,
                json!({ "full": true }),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
);

on_both_backends!(
    site_validation_queues_a_job_on_every_lane,
    |app: TestApp| async move {
        let w = common::world::world(&app).await;
        let project = common::world::create_project(&app, &w.admin, w.lab1, "validation").await;
        let (_, lanes) = app.get("/api/v1/lanes", &w.admin).await;
        let lanes = lanes.as_array().unwrap().len();
        assert!(lanes >= 1);
        let (s, v) = app
            .post(
                "/api/v1/diagnostics/site-validation/run",
                &w.admin,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["field"], "project");
        let (s, v) = app
            .post(
                "/api/v1/diagnostics/site-validation/run",
                &w.admin,
                json!({ "project": project["id"] }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let jobs = v["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), lanes, "one job per lane: {v}");
        let (_, view) = app
            .get("/api/v1/diagnostics/site-validation", &w.admin)
            .await;
        for job in jobs {
            let (s, j) = app
                .get(&format!("/api/v1/jobs/{}", job["job_id"]), &w.admin)
                .await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(j["job_type"], "validation");
            assert_eq!(j["lane_id"], job["lane_id"]);
            let lane = view["lanes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["lane_id"] == job["lane_id"])
                .unwrap();
            assert_eq!(lane["latest_validation"]["id"], job["job_id"], "{view}");
        }
        // A project the caller cannot edit: refused by the jobs domain, nothing queued.
        let (s, _) = app
            .post(
                "/api/v1/diagnostics/site-validation/run",
                &w.admin,
                json!({ "project": 999_999 }),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
);

// ---------------------------------------------------------------------------------------------
// The real binary: its process installs the global subscriber (log files, site errors, query
// statistics, run-time levels), so each test below has a server process of its own.

struct Server {
    child: Child,
    url: String,
    bootstrap: String,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data_dir: &Path, database_url: &str, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(process::BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--database-url", database_url])
            .env("CRYOWARDEN_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn serve");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut url, mut bootstrap) = (None, None);
        while url.is_none() || bootstrap.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the server announces itself");
            if let Some(rest) = line.strip_prefix("cryowarden listening on ") {
                url = Some(rest.split_whitespace().next().unwrap().to_owned());
            }
            if let Some((_, token)) = line.split_once("register?token=") {
                bootstrap = Some(token.trim().to_owned());
            }
        }
        Server {
            child,
            url: url.unwrap(),
            bootstrap: bootstrap.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
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
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    async fn token(&self, username: &str, password: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let csrf = resp.json::<Value>().await.unwrap()["csrf_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let resp = self
            .http
            .post(format!("{}/api/v1/tokens", self.url))
            .header("cookie", cookie)
            .header("x-csrf-token", csrf)
            .json(&json!({ "name": "test" }))
            .send()
            .await
            .unwrap();
        resp.json::<Value>().await.unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The first Site Admin's token.
    async fn site_admin(&self) -> String {
        let body = json!({ "token": self.bootstrap, "password": ADMIN_PASSWORD, "username": "root-admin", "email": "admin@facility.example" });
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/register",
                None,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        self.token("root-admin", ADMIN_PASSWORD).await
    }

    async fn user(&self, admin: &str, username: &str, role: &str) -> String {
        let body = json!({ "username": username, "email": format!("{username}@lab.example"), "site_role": role });
        let (s, v) = self.post("/api/v1/users", admin, body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let token = v["registration"]["token"].as_str().unwrap();
        let body = json!({ "token": token, "password": USER_PASSWORD });
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/register",
                None,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        self.token(username, USER_PASSWORD).await
    }
}

/// Lines of a service's log file that contain every one of `needles`.
fn log_lines(data_dir: &Path, service: &str, needles: &[&str]) -> usize {
    let text = std::fs::read_to_string(data_dir.join("logs").join(format!("{service}.log")))
        .unwrap_or_default();
    text.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

async fn in_binary(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::fresh_database(backend, dir.path()).await else {
        return;
    };
    let secret = format!("hunter2-{:016x}", rand::random::<u64>());
    let url_password = format!("pw{:016x}", rand::random::<u64>());
    let with_url = format!("postgres://someone:{url_password}@db.example/cw");
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &url,
        &[
            ("CW_TEST_SECRET_TOKEN", secret.as_str()),
            ("CW_TEST_DATABASE", with_url.as_str()),
        ],
    );
    let admin = server.site_admin().await;
    let aa = server.user(&admin, "app-admin", "application_admin").await;
    let ts = server.user(&admin, "trouble", "troubleshooter").await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();

    // Environment: secrets redacted for every role, the Site Admin's included.
    for token in [&admin, &aa, &ts] {
        let (s, v) = server
            .get("/api/v1/diagnostics/environment-variables", token)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let var = |name: &str| {
            v["variables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .cloned()
                .unwrap()
        };
        assert_eq!(var("CW_TEST_SECRET_TOKEN")["value"], "***");
        assert_eq!(
            var("CW_TEST_DATABASE")["value"],
            "postgres://someone:***@db.example/cw"
        );
        assert_eq!(var("CRYOWARDEN_LOG")["value"], "info");
        let text = v.to_string();
        assert!(
            !text.contains(&secret) && !text.contains(&url_password),
            "no secret leaks"
        );
    }

    // Loggers: a debug event of the api service reaches api.log only once its level is debug.
    let needles = [
        "DEBUG",
        "tower_http::trace::on_response",
        "/api/v1/users/me",
    ];
    assert_eq!(
        server.get("/api/v1/users/me", &admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        log_lines(&data, "api", &needles),
        0,
        "not at the configured level (info)"
    );
    let (s, v) = server.get("/api/v1/diagnostics/loggers", &aa).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = server
        .post(
            "/api/v1/diagnostics/loggers/set",
            &aa,
            json!({ "service": "api", "level": "debug" }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(
        server.get("/api/v1/users/me", &admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        log_lines(&data, "api", &needles),
        0,
        "a refused change changes nothing"
    );
    for (body, field) in [
        (json!({ "service": "apis", "level": "debug" }), "service"),
        (json!({ "service": "api", "level": "loud" }), "level"),
        (json!({ "level": "debug" }), "service"),
        (
            json!({ "service": "api", "level": "debug", "extra": 1 }),
            "body",
        ),
    ] {
        let (s, v) = server
            .post("/api/v1/diagnostics/loggers/set", &admin, body)
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["field"], field, "{v}");
    }
    let (s, v) = server
        .post(
            "/api/v1/diagnostics/loggers/set",
            &admin,
            json!({ "service": "api", "level": "debug" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["before"]["level"], "info");
    assert_eq!(v["after"]["level"], "debug");
    assert_eq!(
        last_event(&pool).await,
        ("loggers/set".into(), "ok".into(), Some("api".into()))
    );
    assert_eq!(
        server.get("/api/v1/users/me", &admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        log_lines(&data, "api", &needles),
        1,
        "the request's debug event is in api.log"
    );
    assert_eq!(
        log_lines(&data, "database", &["DEBUG"]),
        0,
        "other services keep their level"
    );
    let (_, v) = server.get("/api/v1/diagnostics/loggers", &admin).await;
    let api = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "api")
        .unwrap();
    assert_eq!(
        (api["level"].as_str(), api["source"].as_str()),
        (Some("debug"), Some("set at run time"))
    );
    let (s, _) = server
        .post(
            "/api/v1/diagnostics/loggers/set",
            &admin,
            json!({ "service": "api", "level": "default" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        server.get("/api/v1/users/me", &admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        log_lines(&data, "api", &needles),
        1,
        "back at info: no more debug events"
    );

    // Queries: statements counted per normalised text; the reset empties them.
    let (s, v) = server.get("/api/v1/diagnostics/queries", &ts).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["collecting"], true);
    assert!(v["executions"].as_u64().unwrap() > 10, "{v}");
    let inserted = |v: &Value| {
        v["top"].as_array().unwrap().iter().any(|q| {
            q["statement"]
                .as_str()
                .unwrap()
                .starts_with("INSERT INTO users")
        })
    };
    assert!(inserted(&v), "three users were created: {v}");
    let (s, _) = server
        .post("/api/v1/diagnostics/queries/reset", &ts, json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "read-only for Troubleshooters");
    let (s, v) = server
        .post("/api/v1/diagnostics/queries/reset", &aa, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = server.get("/api/v1/diagnostics/queries", &ts).await;
    assert!(!inserted(&v), "reset: {v}");

    // Site errors: a real failure (a table gone under the server) is listed with its 500.
    let (_, v) = server.get("/api/v1/diagnostics/site-errors", &ts).await;
    assert_eq!(v["count"], 0, "no errors yet: {v}");
    sqlx::query("DROP TABLE command_templates")
        .execute(&pool)
        .await
        .unwrap();
    let (s, v) = server.get("/api/v1/commands", &admin).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(
        !v.to_string().contains("command_templates"),
        "the answer shows no details"
    );
    let (s, v) = server.get("/api/v1/diagnostics/site-errors", &ts).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let errors = v["errors"].as_array().unwrap();
    let internal = errors
        .iter()
        .find(|e| e["message"].as_str().unwrap().contains("command_templates"));
    let internal = internal.unwrap_or_else(|| panic!("the internal error is listed: {v}"));
    assert_eq!(internal["service"], "api", "{internal}");
    assert!(
        errors
            .iter()
            .any(|e| e["target"].as_str().unwrap().starts_with("tower_http")
                && e["message"].as_str().unwrap().contains("500")),
        "the 500 answer is listed: {v}"
    );
    let count = v["count"].as_u64().unwrap();
    let (s, _) = server
        .post("/api/v1/diagnostics/site-errors/reset", &ts, json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "Troubleshooters only view");
    assert_eq!(
        last_event(&pool).await,
        (
            "change-setting:site-errors".into(),
            "denied".into(),
            Some("reset".into())
        )
    );
    let (_, v) = server.get("/api/v1/diagnostics/site-errors", &ts).await;
    assert_eq!(
        v["count"].as_u64().unwrap(),
        count,
        "the refused reset changed nothing"
    );
    let (s, v) = server
        .post("/api/v1/diagnostics/site-errors/reset", &aa, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "Application Admins may reset: {v}");
    assert_eq!(v["cleared"].as_u64().unwrap(), count);
    assert_eq!(
        last_event(&pool).await,
        (
            "site-errors/reset".into(),
            "ok".into(),
            Some("reset".into())
        )
    );
    let (_, v) = server.get("/api/v1/diagnostics/site-errors", &ts).await;
    assert_eq!(v["count"], 0, "{v}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_binary_sqlite() {
    in_binary(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_binary_postgres() {
    in_binary(Backend::Postgres).await;
}
