//! The sign-in's hardening in a real headless Chromium (issue 11, items 6, 7, 15): a `next=`
//! that tried to leave the site ends on this instance; a page of another site that submits
//! the sign-in form for the victim gets a refusal and no session; every page loads under the
//! Content-Security-Policy with no violation.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Driver, find, screenshot, wait_text};
use common::{ADMIN_PASSWORD, Backend, TestApp};
use fantoccini::Client;
use reqwest::StatusCode;
use serde_json::Value;

async fn sign_in_at(c: &Client, url: &str, username: &str, password: &str) {
    c.goto(url).await.unwrap();
    find(c, "#username")
        .await
        .send_keys(username)
        .await
        .unwrap();
    find(c, "#password")
        .await
        .send_keys(password)
        .await
        .unwrap();
    find(c, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
}

/// Polls the browser's URL until `ok`, at most 10 s.
async fn wait_url(c: &Client, ok: impl Fn(&url::Url) -> bool) -> url::Url {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let u = c.current_url().await.unwrap();
        if ok(&u) {
            return u;
        }
        assert!(Instant::now() < deadline, "still at {u}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_that_tries_to_leave_ends_on_the_instance() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    app.site_admin().await;
    let own = url::Url::parse(&app.url).unwrap();
    for next in [
        "%2F%09%2Fevil.example",
        "%2F%5Cevil.example",
        "%5C%2Fevil.example",
        "https:evil.example",
        "%2F%0A%2Fevil.example",
    ] {
        let c = driver.browser().await;
        sign_in_at(
            &c,
            &format!("{}/login?next={next}", app.url),
            "root-admin",
            ADMIN_PASSWORD,
        )
        .await;
        find(&c, "nav.side").await;
        let at = wait_url(&c, |u| u.path() == "/").await;
        assert_eq!(
            (at.host_str(), at.port()),
            (own.host_str(), own.port()),
            "next={next} led to {at}"
        );
        c.close().await.unwrap();
    }
}

/// Serves one page on `localhost` (another site than 127.0.0.1) that submits the sign-in form
/// of `target` with the victim's... well, with credentials the attacker chose, as soon as it
/// loads: login CSRF signs the victim in to the attacker's account.
async fn attacker_site(target: &str) -> String {
    let page = format!(
        "<!doctype html><title>cute cats</title><form id=f method=post action=\"{target}/login\">\
         <input name=username value=root-admin><input name=password value=\"{ADMIN_PASSWORD}\">\
         <input name=next value=/><input name=_login value=guessed></form>\
         <script>document.getElementById('f').submit()</script>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(page) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://localhost:{port}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_site_cannot_sign_the_browser_in() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    app.site_admin().await;
    let sessions = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap()
    };
    let before = sessions().await;
    let c = driver.browser().await;
    // The victim has seen the sign-in page (so the browser holds a pre-session cookie).
    c.goto(&format!("{}/login", app.url)).await.unwrap();
    find(&c, "#username").await;
    let evil = attacker_site(&app.url).await;
    c.goto(&evil).await.unwrap();
    let heading = wait_text(&c, "h1", |h| h == "Sign-in refused").await;
    assert_eq!(heading, "Sign-in refused");
    screenshot(&c, "login-csrf-refused").await;
    assert_eq!(sessions().await, before, "no session was made");
    // The browser is not signed in: the home page sends it to sign in.
    c.goto(&format!("{}/", app.url)).await.unwrap();
    wait_url(&c, |u| u.path() == "/login").await;
    // The real form still works.
    sign_in_at(
        &c,
        &format!("{}/login", app.url),
        "root-admin",
        ADMIN_PASSWORD,
    )
    .await;
    find(&c, "nav.side").await;
    assert_eq!(sessions().await, before + 1);
}

/// The errors.js list of this tab's client errors; CSP violations carry `csp: true`.
async fn csp_violations(c: &Client) -> Vec<Value> {
    let v = c
        .execute(
            "return JSON.parse(sessionStorage.getItem('cw-client-errors') || '[]')",
            vec![],
        )
        .await
        .unwrap();
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["csp"] == true)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_loads_with_no_csp_violation() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let w = common::world::world(&app).await;
    let project = common::world::create_project(&app, &w.carol.1, w.lab1, "csp-project").await;
    let c = driver.browser().await;
    sign_in_at(
        &c,
        &format!("{}/login", app.url),
        "root-admin",
        ADMIN_PASSWORD,
    )
    .await;
    find(&c, "nav.side").await;
    let pages = [
        "/".to_owned(),
        "/admin/console".into(),
        "/admin/settings".into(),
        "/admin/users".into(),
        "/admin/users/new".into(),
        "/admin/logs".into(),
        "/admin/explain".into(),
        "/admin/audit".into(),
        "/admin/cluster".into(),
        "/admin/lanes".into(),
        "/admin/jobs".into(),
        "/labs".into(),
        format!("/labs/{}", w.lab1),
        "/projects".into(),
        format!("/projects/{}", project["id"]),
    ];
    // The tab's list outlives its pages (sessionStorage): a violation on any page stays in it.
    for p in pages.iter().chain(["/".to_owned()].iter()) {
        c.goto(&format!("{}{p}", app.url)).await.unwrap();
        find(&c, "main").await;
    }
    let found = csp_violations(&c).await;
    assert!(found.is_empty(), "{found:?}");
    let anon = driver.browser().await;
    for p in ["/login", "/register?token=cwr_x", "/reset", "/login"] {
        anon.goto(&format!("{}{p}", app.url)).await.unwrap();
        find(&anon, "main").await;
    }
    assert!(csp_violations(&anon).await.is_empty());
    // The listener does catch a violation (so "none" above means none): an inline style.
    c.execute(
        "document.querySelector('main').setAttribute('style', 'color: red')",
        vec![],
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while csp_violations(&c).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the CSP did not report an inline style"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let resp = app
        .http
        .get(format!("{}/login", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
