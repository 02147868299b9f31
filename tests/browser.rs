//! The admin panel in a real headless Chromium: a Site Admin creates a user, the user registers
//! in a second browser, the admin manages them from the table, maintenance mode shows its
//! banner, and deletion locks the user out. Screenshots go to test-artifacts/.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Driver, find, screenshot, wait_text};
use common::{ADMIN_PASSWORD, Backend, TestApp};
use fantoccini::{Client, Locator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "students own passphrase";

/// Polls `check` until it returns true, for at most 10 s: waits for a page's script to reach
/// the server, never a fixed sleep.
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn sign_in(c: &Client, app: &TestApp, username: &str, password: &str) {
    c.goto(&format!("{}/login", app.url)).await.unwrap();
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
    find(c, "nav.side").await;
}

async fn user_json(app: &TestApp, admin: &str, username: &str) -> Value {
    let (_, page) = app.get(&format!("/api/v1/users?q={username}"), admin).await;
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_admin_manages_a_user_in_the_browser() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let api = app.site_admin().await;
    let downloads = tempfile::tempdir().unwrap();
    let admin = driver.browser_downloading_to(Some(downloads.path())).await;
    let log_dir = app.dir.path().join("logs");
    std::fs::create_dir_all(&log_dir).unwrap();
    let app_log: String = (0..600)
        .map(|i| format!("2026-11-23T10:00:00Z INFO cryowarden: line {i}\n"))
        .collect();
    std::fs::write(log_dir.join("app.log"), &app_log).unwrap();

    // Sign in; the key icon leads to the admin panel.
    sign_in(&admin, &app, "root-admin", ADMIN_PASSWORD).await;
    find(&admin, "nav.side a.key").await.click().await.unwrap();
    find(&admin, "#instance_name").await;
    screenshot(&admin, "admin-instance-settings").await;

    // Create New User: the token appears in the table for the admin to deliver.
    find(&admin, "nav.tabs a[href='/admin/users/new']")
        .await
        .click()
        .await
        .unwrap();
    find(&admin, "#email")
        .await
        .send_keys("student@lab1.example")
        .await
        .unwrap();
    find(&admin, "#username")
        .await
        .send_keys("student")
        .await
        .unwrap();
    find(&admin, "#first_name")
        .await
        .send_keys("<script>alert(1)</script>")
        .await
        .unwrap();
    find(&admin, "#last_name")
        .await
        .send_keys("Doe")
        .await
        .unwrap();
    screenshot(&admin, "admin-create-user").await;
    find(&admin, "form.narrow button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let token = find(&admin, "#created-token").await.text().await.unwrap();
    assert!(token.starts_with("cwr_"), "{token}");
    let row = find(&admin, "tr[data-username='student']").await;
    assert!(
        row.text()
            .await
            .unwrap()
            .contains("<script>alert(1)</script>"),
        "names are shown as text, not markup"
    );
    screenshot(&admin, "admin-user-management").await;

    // A second browser: the user registers with the token and signs in.
    let student = driver.browser().await;
    student
        .goto(&format!("{}/register?token={token}", app.url))
        .await
        .unwrap();
    find(&student, "#password")
        .await
        .send_keys(NEW_PASSWORD)
        .await
        .unwrap();
    find(&student, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&student, "h1", |h| h == "Registered").await;
    sign_in(&student, &app, "student", NEW_PASSWORD).await;
    assert!(
        student.find(Locator::Css("nav.side a.key")).await.is_err(),
        "no key icon for an ordinary user"
    );
    student
        .goto(&format!("{}/admin/users", app.url))
        .await
        .unwrap();
    wait_text(&student, "h1", |h| h == "Not allowed").await;

    // Inline email edit: cancel once (X), then confirm (check).
    admin
        .goto(&format!("{}/admin/users", app.url))
        .await
        .unwrap();
    find(&admin, "tr[data-username='student'] button.edit")
        .await
        .click()
        .await
        .unwrap();
    let input = find(&admin, "tr[data-username='student'] input.email-input").await;
    input.clear().await.unwrap();
    input.send_keys("cancelled@lab1.example").await.unwrap();
    find(&admin, "tr[data-username='student'] button.cancel")
        .await
        .click()
        .await
        .unwrap();
    let shown = find(&admin, "tr[data-username='student'] .email")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(shown, "student@lab1.example");
    find(&admin, "tr[data-username='student'] button.edit")
        .await
        .click()
        .await
        .unwrap();
    let input = find(&admin, "tr[data-username='student'] input.email-input").await;
    input.clear().await.unwrap();
    input.send_keys("student@lab1.example.org").await.unwrap();
    find(&admin, "tr[data-username='student'] button.confirm")
        .await
        .click()
        .await
        .unwrap();
    eventually("the email change reaches the server", async || {
        user_json(&app, &api, "student").await["email"] == "student@lab1.example.org"
    })
    .await;
    assert_eq!(
        find(&admin, "tr[data-username='student'] .email")
            .await
            .text()
            .await
            .unwrap(),
        "student@lab1.example.org"
    );

    // Toggle job priority management, set a default priority.
    find(
        &admin,
        "tr[data-username='student'] input[data-field='job_priority_management']",
    )
    .await
    .click()
    .await
    .unwrap();
    eventually("job priority management on", async || {
        user_json(&app, &api, "student").await["job_priority_management"] == true
    })
    .await;
    let prio = find(&admin, "tr[data-username='student'] input.priority").await;
    assert_eq!(
        prio.attr("placeholder").await.unwrap().as_deref(),
        Some("default 0"),
        "shows the instance default until set"
    );
    prio.send_keys("70\t").await.unwrap();
    eventually("default priority 70", async || {
        user_json(&app, &api, "student").await["default_job_priority"] == 70
    })
    .await;

    // The admin's own role control is disabled.
    let own_role = find(&admin, "tr[data-username='root-admin'] select.role").await;
    assert!(
        own_role.attr("disabled").await.unwrap().is_some(),
        "own role select is disabled"
    );

    // Instance Logs: the last 50, then 500 lines, newest at the bottom.
    admin
        .goto(&format!("{}/admin/logs?service=app&lines=50", app.url))
        .await
        .unwrap();
    let shown = find(&admin, "#log").await.text().await.unwrap();
    assert_eq!(shown.lines().count(), 50);
    assert_eq!(
        shown.lines().last(),
        Some("2026-11-23T10:00:00Z INFO cryowarden: line 599")
    );
    screenshot(&admin, "admin-instance-logs").await;
    find(&admin, "#lines option[value='500']")
        .await
        .click()
        .await
        .unwrap();
    find(&admin, "#refresh").await.click().await.unwrap();
    wait_text(&admin, "#log", |t| t.lines().count() == 500).await;

    // Download report: one zip with every log, and both diagnostics files from this browser.
    find(&admin, "#download-report")
        .await
        .click()
        .await
        .unwrap();
    let mut zip_path = None;
    eventually("the report is downloaded", async || {
        zip_path = std::fs::read_dir(downloads.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "zip"));
        zip_path.is_some()
    })
    .await;
    let entries = common::unzip(&std::fs::read(zip_path.unwrap()).unwrap());
    assert_eq!(entries["logs/app.log"], app_log);
    let runtime: Value = serde_json::from_str(&entries["runtime-diagnostics.json"]).unwrap();
    assert!(
        runtime["host"]["cores"].as_u64().is_some_and(|c| c >= 1),
        "{runtime}"
    );
    let browser: Value = serde_json::from_str(&entries["browser-diagnostics.json"]).unwrap();
    assert!(
        browser["user_agent"].as_str().unwrap().contains("Chrome"),
        "{browser}"
    );
    assert!(
        browser["time_zone"].is_string() && browser["screen"]["width"].is_number(),
        "{browser}"
    );

    // Maintenance mode: the user sees its banner on every page.
    admin
        .goto(&format!("{}/admin/settings", app.url))
        .await
        .unwrap();
    find(&admin, "input[name='maintenance_active']")
        .await
        .click()
        .await
        .unwrap();
    find(&admin, "#maintenance_message")
        .await
        .send_keys("Cluster upgrade until 18:00")
        .await
        .unwrap();
    find(&admin, "form.settings button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    find(&admin, ".notice.maintenance").await;
    student.goto(&format!("{}/", app.url)).await.unwrap();
    let notice = find(&student, ".notice.maintenance")
        .await
        .text()
        .await
        .unwrap();
    assert!(notice.contains("Cluster upgrade until 18:00"), "{notice}");

    // Delete the user (confirming the dialog); they can no longer sign in.
    admin
        .goto(&format!("{}/admin/users", app.url))
        .await
        .unwrap();
    find(&admin, "tr[data-username='student'] button.delete")
        .await
        .click()
        .await
        .unwrap();
    admin.accept_alert().await.unwrap();
    eventually("the user is deleted", async || {
        user_json(&app, &api, "student").await.is_null()
    })
    .await;
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": "student", "password": NEW_PASSWORD })),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    student.goto(&format!("{}/", app.url)).await.unwrap();
    find(&student, "#username").await; // back at the sign-in page

    admin.close().await.unwrap();
    student.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_troubleshooter_sees_settings_read_only_and_forged_forms_change_nothing() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let api = app.site_admin().await;
    app.user(&api, "support", "troubleshooter").await;
    let c = driver.browser().await;
    sign_in(&c, &app, "support", common::USER_PASSWORD).await;
    c.goto(&format!("{}/admin/settings", app.url))
        .await
        .unwrap();
    let name = find(&c, "#instance_name").await;
    assert!(
        name.attr("disabled").await.unwrap().is_some(),
        "read-only for a troubleshooter"
    );
    assert!(
        c.find(Locator::Css("form.settings button[type=submit]"))
            .await
            .is_err(),
        "no save button"
    );
    assert!(
        c.find(Locator::Css("#default_job_priority")).await.is_err(),
        "the scheduler setting is not even listed (none)"
    );
    screenshot(&c, "troubleshooter-instance-settings").await;
    // No create tab, no controls in the user table.
    c.goto(&format!("{}/admin/users", app.url)).await.unwrap();
    find(&c, "table.users").await;
    assert!(
        c.find(Locator::Css("nav.tabs a[href='/admin/users/new']"))
            .await
            .is_err()
    );
    assert!(
        c.find(Locator::Css("table.users button.delete"))
            .await
            .is_err()
    );
    assert!(
        c.find(Locator::Css("table.users input.toggle"))
            .await
            .is_err()
    );

    // A forged settings form (wrong CSRF token) from a Site Admin's session is refused.
    let (cookie, _) = app.login("root-admin", ADMIN_PASSWORD).await;
    let resp = app
        .http
        .post(format!("{}/admin/settings", app.url))
        .header("cookie", cookie)
        .form(&[("_csrf", "forged"), ("instance_name", "Hijacked")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, settings) = app.get("/api/v1/settings/instance", &api).await;
    assert_eq!(settings["instance_name"], "cryowarden");
    c.close().await.unwrap();
}
