//! Projects and lab data in a real headless Chromium, with a lab's real Unix account and the
//! real runner: a lab member creates a project with the form, browses its (empty, then not)
//! directory, and browses the lab's data root down to a file. Screenshots go to test-artifacts/.

mod common;

use std::os::unix::fs::chown;

use common::browser::{Driver, find, screenshot, wait_text};
use common::unix::TwoLabs;
use common::{Backend, TestApp, USER_PASSWORD};
use fantoccini::{Client, Locator};
use reqwest::{Method, StatusCode};
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
    find(c, "nav.side").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_member_creates_a_project_and_browses_its_files_and_the_labs_data() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let disk = TwoLabs::create(app.dir.path());
    let admin = app.site_admin().await;
    let (s, v) = app
        .post(
            "/api/v1/labs",
            &admin,
            json!({ "name": "lab1", "title": "Structural Biology" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let lab = v["id"].as_i64().unwrap();
    let roots = json!({ "data_roots": [&disk.raw1], "project_root": &disk.projects1 });
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/labs/{lab}/roots"),
            Some(&admin),
            Some(roots),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let unix = json!({ "user": "cwlab1" });
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/labs/{lab}/unix-account"),
            Some(&admin),
            Some(unix),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (alice, _) = app.user(&admin, "alice", "none").await;
    let (s, v) = app
        .post(
            &format!("/api/v1/labs/{lab}/members"),
            &admin,
            json!({ "user_id": alice, "role": "member" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let c = driver.browser().await;
    sign_in(&c, &app, "alice", USER_PASSWORD).await;
    find(&c, "nav.side a[href='/projects']")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "#no-projects", |t| t.contains("No projects yet")).await;
    let name = find(&c, "#new-project-name").await;
    if !name.is_displayed().await.unwrap() {
        find(&c, "#new-project summary")
            .await
            .click()
            .await
            .unwrap();
    }
    // A name the server refuses: the reason appears next to the form, nothing is created.
    name.send_keys("../escape").await.unwrap();
    find(&c, "#new-project-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let error = wait_text(&c, "#new-project-form .api-error", |t| !t.is_empty()).await;
    assert!(error.starts_with("name "), "{error}");
    name.clear().await.unwrap();
    name.send_keys("ribosome").await.unwrap();
    find(&c, "#new-project-title")
        .await
        .send_keys("70S <b>ribosome</b>")
        .await
        .unwrap();
    screenshot(&c, "projects-new-project").await;
    find(&c, "#new-project-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    // The new project's page.
    wait_text(&c, "#project-name", |t| t == "ribosome").await;
    assert_eq!(
        find(&c, "#project-title").await.text().await.unwrap(),
        "70S <b>ribosome</b>",
        "text, not markup"
    );

    // It is listed; open it from the list.
    find(&c, "nav.side a[href='/projects']")
        .await
        .click()
        .await
        .unwrap();
    let mine = find(&c, "tr[data-project='ribosome']").await;
    assert!(mine.text().await.unwrap().contains("project_admin"));
    find(&c, "tr[data-project='ribosome'] a")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "#project-files .browser-status", |t| {
        t == "This folder is empty."
    })
    .await;
    screenshot(&c, "project-empty-files").await;

    // Files appear in the project's directory (as the lab's account would write them).
    let dir = disk.projects1.join("ribosome");
    std::fs::write(dir.join("notes.txt"), b"grid screening notes\n").unwrap();
    std::fs::create_dir(dir.join("motioncor")).unwrap();
    std::fs::write(dir.join("motioncor/aligned_0001.mrc"), vec![0u8; 3 * 1024]).unwrap();
    std::fs::create_dir(dir.join("frames")).unwrap();
    let mut owned = vec![
        dir.join("notes.txt"),
        dir.join("motioncor"),
        dir.join("motioncor/aligned_0001.mrc"),
    ];
    owned.push(dir.join("frames"));
    for i in 0..205 {
        let frame = dir.join(format!("frames/frame_{i:03}.tif"));
        std::fs::write(&frame, b"II*\0").unwrap();
        owned.push(frame);
    }
    for p in owned {
        chown(&p, Some(2101), Some(2101)).unwrap();
    }
    find(&c, "#project-files button.browser-refresh")
        .await
        .click()
        .await
        .unwrap();
    let notes = find(&c, "#project-files tr[data-name='notes.txt']").await;
    assert_eq!(
        notes
            .find(Locator::Css("td.size"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "21 B"
    );
    wait_text(&c, "#project-files .browser-status", |t| {
        t == "Showing 3 of 3 entries."
    })
    .await;
    assert!(
        !find(&c, "#project-files button.browser-more")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "nothing more"
    );
    // A large folder comes a page at a time: "More" fetches the rest.
    find(&c, "#project-files tr[data-name='frames'] button.dir")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "#project-files .browser-status", |t| {
        t == "Showing 200 of 205 entries."
    })
    .await;
    assert!(
        c.find(Locator::Css("#project-files tr[data-name='frame_204.tif']"))
            .await
            .is_err()
    );
    find(&c, "#project-files button.browser-more")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "#project-files .browser-status", |t| {
        t == "Showing 205 of 205 entries."
    })
    .await;
    find(&c, "#project-files tr[data-name='frame_204.tif']").await;
    assert!(
        !find(&c, "#project-files button.browser-more")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    find(&c, "#project-files .browser-crumbs button.crumb")
        .await
        .click()
        .await
        .unwrap();
    // Into a folder and back up by the breadcrumb.
    find(&c, "#project-files tr[data-name='motioncor'] button.dir")
        .await
        .click()
        .await
        .unwrap();
    let aligned = find(&c, "#project-files tr[data-name='aligned_0001.mrc']").await;
    assert_eq!(
        aligned
            .find(Locator::Css("td.size"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "3.0 KiB"
    );
    let crumbs = wait_text(&c, "#project-files .browser-crumbs", |t| {
        t.ends_with("motioncor")
    })
    .await;
    assert_eq!(crumbs, "ribosome / motioncor");
    screenshot(&c, "project-files").await;
    find(&c, "#project-files .browser-crumbs button.crumb")
        .await
        .click()
        .await
        .unwrap();
    find(&c, "#project-files tr[data-name='notes.txt']").await;

    // Deleting the data needs the name typed back: a wrong one is refused next to the control.
    find(&c, "#delete-confirm")
        .await
        .send_keys("ribosom")
        .await
        .unwrap();
    find(&c, "#delete-data-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let error = wait_text(&c, "#delete-data-form .api-error", |t| !t.is_empty()).await;
    assert!(error.contains("must be the project's name"), "{error}");
    assert!(dir.join("notes.txt").exists(), "nothing was deleted");

    // The lab's page: browse the data root down to a file.
    find(&c, &format!(".crumbs a[href='/labs/{lab}']"))
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "#lab-title", |t| t == "Structural Biology").await;
    let root = find(&c, "#browse-root").await;
    assert_eq!(
        root.prop("value").await.unwrap().as_deref(),
        disk.raw1.to_str()
    );
    find(&c, "#lab-browse tr[data-name='movie_001.tif']").await;
    find(&c, "#lab-browse tr[data-name='sub'] button.dir")
        .await
        .click()
        .await
        .unwrap();
    find(&c, "#lab-browse tr[data-name='deep'] button.dir")
        .await
        .click()
        .await
        .unwrap();
    let frames = find(&c, "#lab-browse tr[data-name='frames.eer']").await;
    assert!(frames.text().await.unwrap().contains("frames.eer"));
    let crumbs = wait_text(&c, "#lab-browse .browser-crumbs", |t| t.ends_with("deep")).await;
    assert_eq!(crumbs, format!("{} / sub / deep", disk.raw1.display()));
    screenshot(&c, "lab-browse-data").await;
    c.close().await.unwrap();
}
