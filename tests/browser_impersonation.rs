//! Impersonation in a real headless Chromium (issue 6): an Impersonating Troubleshooter sees no
//! way to change the system email address; breaks glass by impersonating the Site Admin from
//! User Management; the banner names both and says it is break-glass; the change goes through;
//! "Stop impersonating" ends it and the troubleshooter's own rights are back; the audit log
//! records the change under both names, and its page shows them.

mod common;

use common::browser::{Driver, find, screenshot, wait_text};
use common::{Backend, TestApp, USER_PASSWORD};
use fantoccini::{Client, Locator};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impersonating_troubleshooter_breaks_glass_in_the_browser() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let admin = app.site_admin().await;
    let (head, _) = app.user(&admin, "head", "site_admin").await;
    app.user(&admin, "ivy", "impersonating_troubleshooter")
        .await;
    let c = driver.browser().await;
    sign_in(&c, &app, "ivy", USER_PASSWORD).await;

    // Her own rights: the settings are read-only to a troubleshooter.
    c.goto(&format!("{}/admin/settings", app.url))
        .await
        .unwrap();
    let email = find(&c, "#system_email_address").await;
    assert!(
        email.attr("disabled").await.unwrap().is_some(),
        "read-only for a troubleshooter"
    );
    assert!(
        c.find(Locator::Css("#impersonation-banner")).await.is_err(),
        "no banner yet"
    );

    // User Management offers to impersonate the Site Admin, and only them.
    c.goto(&format!("{}/admin/users", app.url)).await.unwrap();
    find(&c, &format!("tr[data-user-id='{head}'] button.impersonate")).await;
    for other in ["root-admin", "ivy"] {
        let row = find(&c, &format!("tr[data-username='{other}']")).await;
        let offered = row.find(Locator::Css("button.impersonate")).await.is_ok();
        assert_eq!(
            offered,
            other == "root-admin",
            "{other}: only Site Admins are offered"
        );
    }
    screenshot(&c, "impersonation-user-management").await;
    find(&c, &format!("tr[data-user-id='{head}'] button.impersonate"))
        .await
        .click()
        .await
        .unwrap();
    let banner = wait_text(&c, "#impersonation-banner", |t| t.contains("break-glass")).await;
    assert!(
        banner.contains("ivy") && banner.contains("head"),
        "the banner names both: {banner}"
    );
    screenshot(&c, "impersonation-banner").await;

    // Acting as the Site Admin: the system email address can be changed.
    c.goto(&format!("{}/admin/settings", app.url))
        .await
        .unwrap();
    let email = find(&c, "#system_email_address").await;
    assert!(
        email.attr("disabled").await.unwrap().is_none(),
        "editable while breaking glass"
    );
    email.clear().await.unwrap();
    email.send_keys("glass@facility.example").await.unwrap();
    find(&c, "form.settings button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "#impersonation-banner", |t| t.contains("ivy")).await;
    let (_, settings) = app.get("/api/v1/settings/instance", &admin).await;
    assert_eq!(
        settings["system_email_address"], "glass@facility.example",
        "{settings}"
    );

    // Stop: the banner goes, and her own (read-only) rights are back.
    find(&c, "#stop-impersonating").await.click().await.unwrap();
    find(&c, "nav.side").await;
    assert!(
        c.find(Locator::Css("#impersonation-banner")).await.is_err(),
        "the banner is gone"
    );
    c.goto(&format!("{}/admin/settings", app.url))
        .await
        .unwrap();
    let email = find(&c, "#system_email_address").await;
    assert!(
        email.attr("disabled").await.unwrap().is_some(),
        "read-only again"
    );

    // The audit log names both for the change, and records start and stop.
    let (_, log) = app
        .get(
            "/api/v1/audit?action=change-setting:look-and-feel.system_email_address",
            &admin,
        )
        .await;
    let change = &log["events"][0];
    assert_eq!(
        (change["actor"].as_str(), change["impersonator"].as_str()),
        (Some("head"), Some("ivy")),
        "{log}"
    );
    let (_, log) = app
        .get("/api/v1/audit?action=stop-impersonation", &admin)
        .await;
    assert_eq!(log["events"][0]["after"]["reason"], "stopped", "{log}");
    // And the Audit Log page shows it: filtered by impersonator, the change under both names.
    let root = driver.browser().await;
    sign_in(&root, &app, "root-admin", common::ADMIN_PASSWORD).await;
    root.goto(&format!("{}/admin/audit?impersonator=ivy", app.url))
        .await
        .unwrap();
    let seq = change["seq"].as_i64().unwrap();
    let row = find(&root, &format!("tr[data-seq='{seq}']"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("head") && row.contains("ivy") && row.contains("system_email_address"),
        "{row}"
    );
    screenshot(&root, "impersonation-audit-log").await;
    root.close().await.unwrap();
    c.close().await.unwrap();
}
