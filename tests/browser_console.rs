//! The Admin Console in a real headless Chromium: an Application Admin sees exactly the
//! editable / read-only / absent pattern of the permission table (with the two read-only fields
//! of look-and-feel disabled), saves a change through the page's form, and a Troubleshooter sees
//! read-only values only. Terms of use are accepted on the sign-in page.

mod common;

use common::browser::{Driver, find, screenshot, wait_text};
use common::{Backend, TestApp, USER_PASSWORD};
use cryowarden_core::{Access, Column, Setting, table::setting_access};
use fantoccini::{Client, Locator};
use serde_json::json;

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
}

/// Checks every row of the page against the table's column.
async fn check_pattern(c: &Client, column: Column) {
    for s in Setting::ALL {
        let css = format!("article[data-setting='{s}']");
        let found = c.find_all(Locator::Css(&css)).await.unwrap();
        match setting_access(*s, column).0 {
            Access::None => assert!(found.is_empty(), "{column}: {s} must be absent"),
            access => {
                assert_eq!(found.len(), 1, "{column}: {s} must be listed once");
                let shown = found[0].attr("data-access").await.unwrap().unwrap();
                let want = if access == Access::All {
                    "all"
                } else {
                    "read-only"
                };
                assert_eq!(shown, want, "{column}: {s}");
                let mark = found[0]
                    .find(Locator::Css("h4 .mark"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                assert_eq!(
                    mark,
                    if want == "all" {
                        "editable"
                    } else {
                        "read-only"
                    },
                    "{column}: {s}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_each_role_its_pattern_and_saves_changes() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let admin = app.site_admin().await;
    app.user(&admin, "appadmin", "application_admin").await;
    app.user(&admin, "trouble", "troubleshooter").await;

    let aa = driver.browser().await;
    sign_in(&aa, &app, "appadmin", USER_PASSWORD).await;
    find(&aa, "nav.side a.key").await;
    aa.goto(&format!("{}/admin/console", app.url))
        .await
        .unwrap();
    let first_tab = find(&aa, "nav.tabs a").await;
    assert_eq!(
        first_tab.text().await.unwrap(),
        "Admin Console",
        "the console is the first tab"
    );
    find(&aa, "#setting-look-and-feel").await;
    check_pattern(&aa, Column::ApplicationAdmin).await;
    // The partial row: the two fields the AA may only read are disabled, the others are not.
    for (id, disabled) in [
        ("look-and-feel--instance_name", false),
        ("look-and-feel--banner-text", false),
        ("look-and-feel--system_email_address", true),
        ("look-and-feel--login_message-title", true),
    ] {
        let attr = find(&aa, &format!("#{id}"))
            .await
            .attr("disabled")
            .await
            .unwrap();
        assert_eq!(attr.is_some(), disabled, "{id}");
    }
    screenshot(&aa, "console-application-admin").await;

    // Save through the form; the API sees it.
    let name = find(&aa, "#look-and-feel--instance_name").await;
    name.clear().await.unwrap();
    name.send_keys("Krios Facility").await.unwrap();
    find(
        &aa,
        "form.console-form[data-setting='look-and-feel'] button[type=submit]",
    )
    .await
    .click()
    .await
    .unwrap();
    wait_text(
        &aa,
        "form.console-form[data-setting='look-and-feel'] .console-status",
        |t| t == "Saved.",
    )
    .await;
    let (_, v) = app.get("/api/v1/console/look-and-feel", &admin).await;
    assert_eq!(v["value"]["instance_name"].as_str(), Some("Krios Facility"));
    // A bad value shows the API's message and changes nothing.
    find(&aa, "#external-redirect-hosts--hosts")
        .await
        .send_keys("https://bad.example/")
        .await
        .unwrap();
    find(
        &aa,
        "form.console-form[data-setting='external-redirect-hosts'] button[type=submit]",
    )
    .await
    .click()
    .await
    .unwrap();
    let said = wait_text(
        &aa,
        "form.console-form[data-setting='external-redirect-hosts'] .console-status",
        |t| t.contains("not a host name"),
    )
    .await;
    assert!(said.starts_with("hosts"), "{said}");
    let (_, v) = app
        .get("/api/v1/console/external-redirect-hosts", &admin)
        .await;
    assert_eq!(v["value"]["hosts"], json!([]));
    // Terms of use, through the form.
    find(&aa, "#terms-of-use--text")
        .await
        .send_keys("Be kind to the microscope.")
        .await
        .unwrap();
    find(&aa, "#terms-of-use--active")
        .await
        .click()
        .await
        .unwrap();
    find(
        &aa,
        "form.console-form[data-setting='terms-of-use'] button[type=submit]",
    )
    .await
    .click()
    .await
    .unwrap();
    wait_text(
        &aa,
        "form.console-form[data-setting='terms-of-use'] .console-status",
        |t| t == "Saved.",
    )
    .await;

    // The troubleshooter: read-only values, no forms; and the terms to accept first.
    let ts = driver.browser().await;
    sign_in(&ts, &app, "trouble", USER_PASSWORD).await;
    let terms = find(&ts, "#terms-of-use").await;
    assert!(
        terms
            .text()
            .await
            .unwrap()
            .contains("Be kind to the microscope.")
    );
    find(&ts, "#password")
        .await
        .send_keys(USER_PASSWORD)
        .await
        .unwrap();
    find(&ts, "#accept_terms").await.click().await.unwrap();
    find(&ts, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    find(&ts, "nav.side").await;
    ts.goto(&format!("{}/admin/console", app.url))
        .await
        .unwrap();
    find(&ts, "#setting-site-settings").await;
    check_pattern(&ts, Column::Troubleshooter).await;
    assert!(
        ts.find_all(Locator::Css("form.console-form"))
            .await
            .unwrap()
            .is_empty(),
        "no forms for read-only rows"
    );
    screenshot(&ts, "console-troubleshooter").await;
    let (_, events) = app.get("/api/v1/audit?action=accept-terms", &admin).await;
    assert_eq!(events["events"][0]["actor"].as_str(), Some("trouble"));

    aa.close().await.unwrap();
    ts.close().await.unwrap();
}
