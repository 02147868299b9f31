//! Web and HTTP hardening (issue 11, items 6–10, 12, 15) over real HTTP: the sign-in's `next=`
//! never leaves the site, the sign-in form refuses cross-site posts, a flood of refusals is
//! counted rather than written one by one while real changes still land, the data directory
//! and its files are private, login throttling behind a trusted proxy, slow and idle
//! connections are closed and capped, and every answer carries a CSP and a referrer policy.
//! Both backends where storage is involved.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Backend, TestApp, USER_PASSWORD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Where a browser on `base` ends up after `Location: location` (WHATWG URL parsing, as
/// browsers do: tabs and newlines dropped, backslashes read as slashes).
fn lands_on(base: &str, location: &str) -> url::Url {
    url::Url::parse(base).unwrap().join(location).unwrap()
}

async fn sessions(app: &TestApp) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

/// The nasty `next=` values: each must give a same-site redirect, never a 5xx.
const NASTY_NEXT: &[&str] = &[
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/x\r\nSet-Cookie: cw_session=forged",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "\\\\evil.example",
    "https:evil.example",
    "https:/evil.example",
    "https://evil.example",
    "http://evil.example@127.0.0.1/",
    "//127.0.0.1@evil.example",
    "/%2F/evil.example",
    "/%09/evil.example",
    "/%5Cevil.example",
    "%2F%2Fevil.example",
    "%2F%09%2Fevil.example",
    "javascript:alert(1)",
    " //evil.example",
    "\t//evil.example",
    "/\u{3000}/evil.example",
    "/caf\u{e9}/\u{0}",
];

on_both_backends!(
    nasty_next_values_always_redirect_to_this_site,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        app.user(&admin, "student", "none").await;
        let http = no_redirects();
        let base = app.url.clone();
        let own = url::Url::parse(&base).unwrap();
        for next in NASTY_NEXT {
            // The form never carries a refused target.
            let page = http
                .get(format!("{base}/login"))
                .query(&[("next", next)])
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), StatusCode::OK, "GET /login next={next:?}");
            assert!(
                !page.text().await.unwrap().contains("evil.example"),
                "the form carries {next:?}"
            );
            // Signing in with it: a redirect on this site, and a session.
            let (cookie, token) = app.login_form_token().await;
            let resp = http
                .post(format!("{base}/login"))
                .header("cookie", &cookie)
                .form(&[
                    ("username", "student"),
                    ("password", USER_PASSWORD),
                    ("next", next),
                    ("_login", &token),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::SEE_OTHER,
                "POST /login next={next:?}"
            );
            let location = resp.headers()["location"].to_str().unwrap().to_owned();
            let to = lands_on(&base, &location);
            assert_eq!(
                (to.scheme(), to.host_str(), to.port()),
                (own.scheme(), own.host_str(), own.port()),
                "next={next:?} sent the browser to {to} (Location: {location:?})"
            );
            assert!(
                resp.headers()["set-cookie"]
                    .to_str()
                    .unwrap()
                    .starts_with("cw_session="),
                "next={next:?}"
            );
            let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().collect();
            assert_eq!(cookies.len(), 1, "no header injected: {cookies:?}");
        }
        // Encoded in the query string itself, as the report had it.
        let (cookie, token) = app.login_form_token().await;
        let body = format!(
            "username=student&password={}&_login={token}&next=%2F%09%2Fevil.example",
            { USER_PASSWORD.replace(' ', "+") }
        );
        let resp = http
            .post(format!("{base}/login"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()["location"], "/?welcome=1");
        // Plain local paths are still followed.
        let resp = http
            .post(format!("{base}/login"))
            .header("cookie", &cookie)
            .form(&[
                ("username", "student"),
                ("password", USER_PASSWORD),
                ("next", "/projects?x=1"),
                ("_login", &token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["location"], "/projects?x=1");
    }
);

on_both_backends!(
    a_cross_site_post_to_the_sign_in_form_is_refused_and_makes_no_session,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        app.user(&admin, "student", "none").await;
        let http = no_redirects();
        let url = format!("{}/login", app.url);
        let creds = [
            ("username", "student"),
            ("password", USER_PASSWORD),
            ("next", "/"),
        ];
        let before = (sessions(&app).await, app.audit_len().await);
        let refused = |resp: reqwest::Response| async move {
            assert_eq!(resp.status(), StatusCode::FORBIDDEN);
            assert!(
                resp.headers().get("set-cookie").is_none(),
                "no session cookie"
            );
            let html = resp.text().await.unwrap();
            assert!(
                html.contains("Sign-in refused") && html.contains("another site"),
                "{html}"
            );
        };
        // No pre-session cookie or token at all (a form on another site).
        refused(http.post(&url).form(&creds).send().await.unwrap()).await;
        // A token the attacker made up, or took from their own visit: not this browser's cookie.
        let (cookie, token) = app.login_form_token().await;
        let (_, other_token) = app.login_form_token().await;
        let mut with = creds.to_vec();
        with.push(("_login", &other_token));
        refused(
            http.post(&url)
                .header("cookie", &cookie)
                .form(&with)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let mut with = creds.to_vec();
        with.push(("_login", &token));
        refused(http.post(&url).form(&with).send().await.unwrap()).await;
        // The right pair, but the browser says the form came from another site.
        for site in ["cross-site", "same-site"] {
            let resp = http
                .post(&url)
                .header("cookie", &cookie)
                .header("sec-fetch-site", site)
                .form(&with)
                .send()
                .await
                .unwrap();
            refused(resp).await;
        }
        assert_eq!(
            (sessions(&app).await, app.audit_len().await),
            before,
            "no session, no sign-in attempt"
        );
        // From the sign-in page itself: signed in.
        let resp = http
            .post(&url)
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-origin")
            .form(&with)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(sessions(&app).await, before.0 + 1);
        // The pre-session cookie: HttpOnly, SameSite=Strict, only for /login.
        let resp = app.http.get(&url).send().await.unwrap();
        let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        for part in ["cw_login=", "HttpOnly", "SameSite=Strict", "Path=/login"] {
            assert!(set.contains(part), "{set}");
        }
        // Scripts keep the JSON login: a form can't send JSON cross-site without CORS, and a
        // form-encoded body is refused.
        let (s, _) = app
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "username": "student", "password": USER_PASSWORD })),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let resp = app
            .http
            .post(format!("{}/api/v1/auth/login", app.url))
            .form(&creds)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
);

// A user who is refused the same thing over and over, while real changes are made.
on_both_backends!(
    a_flood_of_refusals_is_counted_and_real_changes_still_land,
    |mut app: TestApp| async move {
        let admin = app.site_admin().await;
        let (admin_id, _) = {
            let (_, v) = app.get("/api/v1/users?q=root-admin", &admin).await;
            (v["users"][0]["id"].as_i64().unwrap(), ())
        };
        let (_, flooder) = app.user(&admin, "flooder", "none").await;
        let before = app.audit_len().await;
        const FLOOD: usize = 2000;
        let started = Instant::now();
        let flood = {
            let (url, http, flooder) = (app.url.clone(), app.http.clone(), flooder.clone());
            tokio::spawn(async move {
                let mut tasks = Vec::new();
                for _ in 0..8 {
                    let (url, http, flooder) = (url.clone(), http.clone(), flooder.clone());
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..FLOOD / 8 {
                            let r = http
                                .get(format!("{url}/api/v1/users/{admin_id}"))
                                .bearer_auth(&flooder)
                                .send()
                                .await;
                            assert_eq!(
                                r.unwrap().status(),
                                StatusCode::NOT_FOUND,
                                "a concealed refusal"
                            );
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            })
        };
        // Real changes during the flood: answered and in the chain at once.
        let mut changes = 0;
        while !flood.is_finished() || changes < 3 {
            let name = format!("during-flood-{changes}");
            let (s, v) = app
            .post(
                "/api/v1/users",
                &admin,
                json!({ "username": name, "email": format!("{name}@x.example"), "site_role": "none" }),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            let (_, events) = app
                .get(
                    &format!("/api/v1/audit?action=create-user&target={name}"),
                    &admin,
                )
                .await;
            assert_eq!(
                events["events"].as_array().unwrap().len(),
                1,
                "the change's event is written at once"
            );
            changes += 1;
        }
        flood.await.unwrap();
        let elapsed = started.elapsed();
        let (_, v) = app
            .get(
                "/api/v1/audit?actor=flooder&outcome=denied&limit=500",
                &admin,
            )
            .await;
        let written = v["events"].as_array().unwrap().len();
        eprintln!(
            "{FLOOD} refusals in {elapsed:?}: {written} written, {changes} real changes landed meanwhile"
        );
        let first = cryowarden_server::audit::WRITTEN_REPEATS as usize;
        assert_eq!(
            written, first,
            "the first refusals are written, the repeats counted"
        );
        assert_eq!(
            cryowarden_server::audit::pending_refusals(&app.state.db),
            (FLOOD - first) as u64
        );
        // The chain grew by the changes' events and those refusals, not by the flood.
        let grew = app.audit_len().await - before;
        assert!(
            grew <= (first + 2 * changes) as i64,
            "the flood wrote {grew} events"
        );
        // A clean shutdown writes the count: nothing is lost, and the chain verifies.
        app.shut_down().await;
        assert_eq!(cryowarden_server::audit::pending_refusals(&app.state.db), 0);
        let db = &app.state.db;
        let filter = cryowarden_server::audit::Filter {
            actor: Some("flooder".into()),
            outcome: Some("denied".into()),
            limit: Some("500".into()),
            ..Default::default()
        };
        let (events, _) = cryowarden_server::audit::list(db, &filter)
            .await
            .expect("list");
        let events: Vec<Value> = events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        assert_eq!(
            events.len(),
            first + 1,
            "the first refusals and the count: {events:?}"
        );
        let repeated: u64 = events
            .iter()
            .filter_map(|e| e["after"]["repeated"].as_u64())
            .sum();
        assert_eq!(
            repeated as usize + first,
            FLOOD,
            "every refusal accounted for: {events:?}"
        );
        assert!(
            events[0]["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("repeated {} more times", FLOOD - first))
        );
        let check = cryowarden_server::audit::verify(db).await.unwrap();
        assert!(check.ok, "{check:?}");
    }
);

// The per-actor budget with distinct refusals, through the same `Ctx::record` every refusal
// takes, on the real database: past the budget the actor's refusals are counted, another
// actor's still land, and the count is written at shutdown.
on_both_backends!(
    past_the_budget_distinct_refusals_are_counted_per_actor,
    |mut app: TestApp| async move {
        use cryowarden_server::audit::{ACTOR_BUDGET, Outcome};
        use cryowarden_server::context::{Ctx, Target};
        let admin = app.site_admin().await;
        let (id, _) = app.user(&admin, "sprayer", "none").await;
        let (other, _) = app.user(&admin, "bystander", "none").await;
        let actor = |uid: i64, name: &str| {
            let mut c = Ctx::system("test", "192.0.2.9");
            c.who = cryowarden_server::audit::Who {
                id: Some(uid),
                name: name.into(),
            };
            c
        };
        let (sprayer, bystander) = (actor(id, "sprayer"), actor(other, "bystander"));
        let before = app.audit_len().await;
        let db = &app.state.db;
        let total = ACTOR_BUDGET as i64 + 300;
        for i in 0..total {
            let t = Target {
                kind: "project",
                id: Some(i.to_string()),
                name: Some(format!("p{i}")),
            };
            sprayer
                .record(
                    db,
                    cryowarden_core::DataAction::ViewProject,
                    &t,
                    Outcome::Denied,
                    Some("not a member".into()),
                    None,
                    None,
                )
                .await
                .unwrap();
        }
        let t = Target {
            kind: "project",
            id: Some("1".into()),
            name: Some("p1".into()),
        };
        bystander
            .record(
                db,
                cryowarden_core::DataAction::ViewProject,
                &t,
                Outcome::Denied,
                Some("not a member".into()),
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            app.audit_len().await - before,
            ACTOR_BUDGET as i64 + 1,
            "the budget, and the bystander's"
        );
        app.shut_down().await;
        let (sql, n) = (
            "SELECT after_value FROM audit_events WHERE action = 'refusals-throttled'",
            300,
        );
        let after: String = sqlx::query_scalar(sql)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        let after: Value = serde_json::from_str(&after).unwrap();
        assert_eq!(after["suppressed"], n, "{after}");
        assert_eq!(after["actions"]["view-project"], n);
        assert!(
            cryowarden_server::audit::verify(&app.state.db)
                .await
                .unwrap()
                .ok
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_its_files_are_private_and_serve_refuses_an_open_one() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A new data directory, through the real binary.
    let data = dir.path().join("data");
    {
        let server = common::process::Server::start(&data, None);
        let resp = reqwest::get(format!("{}/login", server.url)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(mode(&data), 0o700, "the data directory");
        for f in ["cryowarden.db", "cryowarden.db-wal", "cryowarden.db-shm"] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
        assert_eq!(mode(&data.join("logs")), 0o700, "the log directory");
        let logs: Vec<_> = std::fs::read_dir(data.join("logs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!logs.is_empty());
        for l in logs {
            assert_eq!(mode(&l), 0o600, "{}", l.display());
        }
    }
    // An existing data directory that others can read: refused, with the fix.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    for m in [0o755, 0o750, 0o707, 0o701] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(m)).unwrap();
        let out = common::process::run(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                open.to_str().unwrap(),
            ],
            "",
            &[("CRYOWARDEN_LOG", "error")],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{m:o}: started");
        assert!(
            err.contains(&format!(
                "chmod 700 {}",
                open.canonicalize().unwrap().display()
            )),
            "{m:o}: {err}"
        );
        assert!(
            !open.join("cryowarden.db").exists(),
            "nothing created in it"
        );
    }
    // After the fix it starts.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = common::process::Server::start(&open, None);
    assert_eq!(
        reqwest::get(format!("{}/login", server.url))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_data_dir_is_private_too() {
    let Some(app) =
        TestApp::start_with(Backend::Sqlite, |c| c.data_dir = c.data_dir.join("fresh")).await
    else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let data = &app.state.config.data_dir;
    assert_eq!(mode(data), 0o700);
    // The harness keeps its database in the temporary directory; made 0600 when opened.
    assert_eq!(mode(&app.dir.path().join("test.db")), 0o600);
    // The runner (spawned as root) still reads its policy, kept in the private directory, and
    // works as the lab accounts.
    let w = common::world::world(&app).await;
    let (s, v) = app
        .get(&format!("/api/v1/labs/{}/browse", w.lab1), &w.alice.1)
        .await;
    assert_eq!(s, StatusCode::OK, "the runner lists as cwlab1: {v}");
    common::world::create_project(&app, &w.carol.1, w.lab1, "private-dir").await;
}

/// Three clients behind one reverse proxy (all connections come from 127.0.0.1).
async fn failing_logins(app: &TestApp, xff: &str, user: &str, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for _ in 0..n {
        let resp = app
            .http
            .post(format!("{}/api/v1/auth/login", app.url))
            .header("x-forwarded-for", xff)
            .json(&json!({ "username": user, "password": "wrong wrong wrong wrong" }))
            .send()
            .await
            .unwrap();
        out.push(resp.status());
    }
    out
}

async fn login_status(
    app: &TestApp,
    headers: &[(&str, &str)],
    user: &str,
    password: &str,
) -> StatusCode {
    let mut req = app.http.post(format!("{}/api/v1/auth/login", app.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.json(&json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_one_clients_failures_do_not_throttle_another() {
    let Some(app) = TestApp::start_with(Backend::Sqlite, |c| {
        c.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await
    else {
        return;
    };
    let admin = app.site_admin().await;
    app.user(&admin, "alice", "none").await;
    // A guesser behind the proxy runs through many accounts until its address is held.
    let mut statuses = Vec::new();
    for i in 0..25 {
        statuses.extend(failing_logins(&app, "203.0.113.66", &format!("nobody{i}"), 1).await);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "the guesser's address is throttled: {statuses:?}"
    );
    // Another client behind the same proxy signs in.
    assert_eq!(
        login_status(
            &app,
            &[("x-forwarded-for", "198.51.100.7")],
            "alice",
            USER_PASSWORD
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        login_status(
            &app,
            &[("forwarded", "for=\"[2001:db8::7]:1234\"")],
            "alice",
            USER_PASSWORD
        )
        .await,
        StatusCode::OK
    );
    // The guesser cannot escape by prepending a forged address: the proxy appends the real one.
    assert_eq!(
        login_status(
            &app,
            &[("x-forwarded-for", "198.51.100.7, 203.0.113.66")],
            "alice",
            USER_PASSWORD
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The audit events name the client's address.
    let (_, v) = app
        .get("/api/v1/audit?action=login&outcome=denied&limit=5", &admin)
        .await;
    assert_eq!(v["events"][0]["source"], "203.0.113.66", "{v}");
    let (_, v) = app
        .get(
            "/api/v1/audit?action=login&outcome=ok&actor=alice&limit=5",
            &admin,
        )
        .await;
    let sources: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    // (Her first sign-in, by the harness, came from the proxy itself with no header.)
    assert_eq!(sources, ["2001:db8::7", "198.51.100.7", "127.0.0.1"]);
    // Strangers can slow an account only briefly: the per-account delay is capped.
    for i in 0..40 {
        failing_logins(&app, &format!("192.0.2.{}", i + 1), "alice", 1).await;
    }
    let status = login_status(
        &app,
        &[("x-forwarded-for", "198.51.100.8")],
        "alice",
        USER_PASSWORD,
    )
    .await;
    assert!(
        matches!(status, StatusCode::OK | StatusCode::TOO_MANY_REQUESTS),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let Some(app) = TestApp::start(Backend::Sqlite).await else {
        return;
    };
    let admin = app.site_admin().await;
    app.user(&admin, "alice", "none").await;
    for i in 0..25 {
        failing_logins(
            &app,
            &format!("203.0.113.{}", i + 1),
            &format!("nobody{i}"),
            1,
        )
        .await;
    }
    // Every request came from 127.0.0.1, whatever the header said: that address is held.
    assert_eq!(
        login_status(
            &app,
            &[("x-forwarded-for", "198.51.100.7")],
            "alice",
            USER_PASSWORD
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let (_, v) = app
        .get("/api/v1/audit?action=login&outcome=denied&limit=1", &admin)
        .await;
    assert_eq!(v["events"][0]["source"], "127.0.0.1", "{v}");
}

/// Opens a connection that sends part of a request's headers and then nothing.
async fn slow_connection(addr: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    s
}

/// Reads until the server closes the connection; the time it took.
async fn until_closed(mut s: tokio::net::TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), s.read(&mut buf)).await
        {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_and_normal_requests_go_through() {
    // Long enough that 500 connections and 50 requests fit in it on a loaded machine.
    let timeout = 4;
    let Some(app) =
        TestApp::start_with(Backend::Sqlite, |c| c.header_read_timeout_secs = timeout).await
    else {
        return;
    };
    let addr = app.url.trim_start_matches("http://").to_owned();
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..500 {
        slow.push(slow_connection(&addr).await);
    }
    // While 500 slow connections are open, normal requests are answered.
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let resp = http.get(format!("{}/login", app.url)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.bytes().await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "during the slowloris: median {:?}, max {:?}",
        times[25], times[49]
    );
    assert!(
        opened.elapsed() < Duration::from_secs(timeout),
        "measured while all were open"
    );
    // Each slow connection is closed after the header timeout.
    let limit = Duration::from_secs(timeout + 5);
    let waits = futures_join(slow.into_iter().map(|s| until_closed(s, limit))).await;
    let last = opened.elapsed();
    assert!(
        last >= Duration::from_secs(timeout) - Duration::from_millis(100),
        "closed too early: {last:?}"
    );
    assert!(waits.iter().all(|w| *w < limit), "{waits:?}");
    // An idle kept-alive connection is closed after the same time.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 65536];
    while !String::from_utf8_lossy(&head).contains("\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "answered");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"));
    let idle = until_closed(s, limit).await;
    assert!(
        idle >= Duration::from_secs(timeout) - Duration::from_millis(500),
        "idle for {idle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_get_503_at_once() {
    let Some(app) = TestApp::start_with(Backend::Sqlite, |c| {
        c.max_connections = 20;
        c.header_read_timeout_secs = 30;
    })
    .await
    else {
        return;
    };
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(slow_connection(&addr).await);
    }
    // Wait until the server has taken all 20 (accepting is asynchronous): one more gets 503.
    let deadline = Instant::now() + Duration::from_secs(10);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    loop {
        let t = Instant::now();
        match http.get(format!("{}/login", app.url)).send().await {
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                assert!(t.elapsed() < Duration::from_secs(1), "refused at once");
                assert_eq!(r.headers()["retry-after"], "1");
                break;
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the cap never refused a connection"
        );
        tokio::task::yield_now().await;
    }
    // When the slow clients go away, their places are free again.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = http.get(format!("{}/login", app.url)).send().await
            && r.status() == StatusCode::OK
        {
            break;
        }
        assert!(Instant::now() < deadline, "places were not freed");
        tokio::task::yield_now().await;
    }
}

async fn futures_join<F: std::future::Future<Output = Duration> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<Duration> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

// Every page route's answer carries the CSP and the referrer policy; API answers their own.
on_both_backends!(
    every_answer_carries_a_csp_and_a_referrer_policy,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (cookie, _) = app.login("root-admin", ADMIN_PASSWORD).await;
        let http = no_redirects();
        let pages = [
            "/",
            "/login",
            "/login?next=/admin",
            "/register",
            "/register?token=cwr_x",
            "/reset",
            "/admin",
            "/admin/console",
            "/admin/settings",
            "/admin/users",
            "/admin/users/new",
            "/admin/logs",
            "/admin/explain",
            "/admin/audit",
            "/admin/cluster",
            "/admin/lanes",
            "/admin/jobs",
            "/labs",
            "/labs/1",
            "/labs/999",
            "/projects",
            "/projects/999",
            "/static/style.css",
            "/static/errors.js",
            "/no/such/page",
        ];
        let page_csp = cryowarden_server::http::headers::PAGE_CSP;
        for path in pages {
            for signed_in in [true, false] {
                let mut req = http.get(format!("{}{path}", app.url));
                if signed_in {
                    req = req.header("cookie", &cookie);
                }
                let resp = req.send().await.unwrap();
                let h = resp.headers();
                assert!(resp.status().as_u16() < 500, "{path}: {}", resp.status());
                assert_eq!(
                    h.get("referrer-policy").map(|v| v.to_str().unwrap()),
                    Some("no-referrer"),
                    "{path}"
                );
                let csp = h
                    .get("content-security-policy")
                    .map(|v| v.to_str().unwrap().to_owned());
                let csp = csp.unwrap_or_else(|| panic!("{path}: no CSP"));
                if !path.starts_with("/no/") {
                    assert_eq!(csp, page_csp, "{path}");
                }
            }
        }
        // Forms post: the refusals and the sign-in page say the same.
        let resp = http
            .post(format!("{}/login", app.url))
            .form(&[("username", "x"), ("password", "y")])
            .send()
            .await
            .unwrap();
        assert!(resp.headers().contains_key("content-security-policy"));
        assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
        for path in [
            "/api/v1/users",
            "/api/v1/openapi.json",
            "/api/v1/settings",
            "/api/v1/nothing",
        ] {
            let resp = http
                .get(format!("{}{path}", app.url))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.headers()["content-security-policy"],
                cryowarden_server::http::headers::API_CSP,
                "{path}"
            );
            assert_eq!(resp.headers()["referrer-policy"], "no-referrer", "{path}");
        }
        // With external redirect hosts, the sign-in page lets its form continue there.
        let (s, v) = app
            .call(
                reqwest::Method::PUT,
                "/api/v1/console/external-redirect-hosts",
                Some(&admin),
                Some(json!({ "hosts": ["wiki.facility.example"] })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let resp = http.get(format!("{}/login", app.url)).send().await.unwrap();
        let csp = resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains(
                "form-action 'self' https://wiki.facility.example http://wiki.facility.example"
            ),
            "{csp}"
        );
    }
);
