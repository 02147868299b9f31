//! The Labs and Projects pages over HTTP (no browser), with two labs on disk, their Unix accounts
//! and the real runner: each lab's people see only their own lab's projects, another lab's project
//! is the same 404 page as an id that never existed, controls appear only where `authorize()`
//! allows them, and what admins type is escaped.

mod common;

use common::world::{self, world};
use common::{ADMIN_PASSWORD, Backend, TestApp, USER_PASSWORD};
use reqwest::StatusCode;
use serde_json::json;

/// A project of `lab` made through the API by the holder of `token`; its id.
async fn create_project(app: &TestApp, token: &str, lab: i64, name: &str) -> i64 {
    world::create_project(app, token, lab, name).await["id"]
        .as_i64()
        .unwrap()
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let resp = app
        .http
        .get(format!("{}{path}", app.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn session(app: &TestApp, username: &str) -> String {
    let password = if username == "root-admin" {
        ADMIN_PASSWORD
    } else {
        USER_PASSWORD
    };
    app.login(username, password).await.0
}

/// The `<tbody>` of the first table of a page (the listing), so that forms and filters around
/// it do not count.
fn table_body(html: &str) -> &str {
    let start = html.find("<tbody>").unwrap_or(0);
    let end = html[start..]
        .find("</tbody>")
        .map(|e| e + start)
        .unwrap_or(html.len());
    &html[start..end]
}

on_both_backends!(
    each_lab_sees_only_its_own_projects_and_others_are_not_found,
    |app: TestApp| async move {
        let w = world(&app).await;
        let p1 = create_project(&app, &w.alice.1, w.lab1, "ribosome").await;
        let p2 = create_project(&app, &w.bob.1, w.lab2, "spliceosome").await;
        let alice = session(&app, "alice").await;

        // The navigation leads to both pages.
        let (s, html) = page(&app, &alice, "/").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            html.contains("href=\"/projects\"") && html.contains("href=\"/labs\""),
            "{html}"
        );

        // The list: lab1's project only, and a count that says nothing of lab2.
        let (s, html) = page(&app, &alice, "/projects").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let rows = table_body(&html);
        assert!(
            rows.contains(&format!("href=\"/projects/{p1}\"")) && rows.contains("ribosome"),
            "{html}"
        );
        assert!(
            rows.contains("project_admin"),
            "alice's own role is shown: {rows}"
        );
        assert!(
            !html.contains("spliceosome") && !html.contains(&format!("/projects/{p2}\"")),
            "{html}"
        );
        assert!(html.contains("Page 1 of 1 · 1 project<"), "{html}");
        let (_, html) = page(&app, &alice, "/projects?q=splice").await;
        assert!(
            html.contains("No project matches.") && !html.contains("spliceosome"),
            "{html}"
        );
        let (_, html) = page(&app, &alice, &format!("/projects?lab={}", w.lab2)).await;
        assert!(html.contains("· 0 projects<"), "{html}");
        // The new-project form offers alice's lab only.
        assert!(html.contains("id=\"new-project-form\""));
        assert!(
            html.contains(&format!("<option value=\"{}\">lab1", w.lab1)),
            "{html}"
        );
        assert!(
            !html.contains(&format!("<option value=\"{}\">lab2", w.lab2)),
            "{html}"
        );
        // The admin sees both.
        let admin = session(&app, "root-admin").await;
        let (_, html) = page(&app, &admin, "/projects").await;
        assert!(
            table_body(&html).contains("ribosome") && table_body(&html).contains("spliceosome"),
            "{html}"
        );

        // Another lab's project is exactly the page of a project that does not exist.
        let (s_missing, missing) = page(&app, &alice, "/projects/987654").await;
        assert_eq!(s_missing, StatusCode::NOT_FOUND);
        assert!(missing.contains("Not found"), "{missing}");
        let (s, other) = page(&app, &alice, &format!("/projects/{p2}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(
            other, missing,
            "the same page for another lab's project and for no project at all"
        );
        let (s, bad) = page(&app, &alice, "/projects/not-an-id").await;
        assert_eq!((s, &bad), (StatusCode::NOT_FOUND, &missing));
        // Labs too: lab2 is not found for alice, like a lab id that never existed.
        let (s, missing_lab) = page(&app, &alice, "/labs/987654").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, other_lab) = page(&app, &alice, &format!("/labs/{}", w.lab2)).await;
        assert_eq!((s, &other_lab), (StatusCode::NOT_FOUND, &missing_lab));
        // Both refusals were audited like the API's.
        let (_, v) = app
            .get(
                "/api/v1/audit?action=view-project&outcome=denied&limit=50",
                &w.admin,
            )
            .await;
        assert!(!v["events"].as_array().unwrap().is_empty(), "{v}");

        // Her own project: the file browser and, as its project admin, data management.
        let (s, html) = page(&app, &alice, &format!("/projects/{p1}")).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains(&format!("data-browser=\"/api/v1/projects/{p1}/files\"")),
            "{html}"
        );
        assert!(
            html.contains("id=\"project-data\"") && html.contains("id=\"delete-data-form\""),
            "{html}"
        );
        assert!(html.contains("id=\"archive-form\""));
        assert!(html.contains("id=\"new-workspace-form\""));
        // carol and dave can be added from the lab's members; alice herself and bob cannot.
        assert!(html.contains("id=\"add-project-member-form\""));
        assert!(
            html.contains("<option value=\"carol\"") && html.contains("<option value=\"dave\""),
            "{html}"
        );
        assert!(
            !html.contains("<option value=\"alice\"") && !html.contains("<option value=\"bob\""),
            "{html}"
        );

        // dave reads it (lab members read by default) but manages neither its data nor its members.
        let dave = session(&app, "dave").await;
        let (s, html) = page(&app, &dave, &format!("/projects/{p1}")).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains(&format!("data-browser=\"/api/v1/projects/{p1}/files\"")));
        for control in [
            "id=\"project-data\"",
            "id=\"delete-data-form\"",
            "id=\"add-project-member-form\"",
            "select class=\"role\"",
        ] {
            assert!(
                !html.contains(control),
                "no {control} for a plain reader: {html}"
            );
        }
        // A members-only project of lab1 is not found for dave either.
        let (s, v) = app
            .post(
                "/api/v1/projects",
                &w.alice.1,
                json!({ "lab_id": w.lab1, "name": "secret", "lab_members_read": false }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, html) = page(&app, &dave, &format!("/projects/{}", v["id"])).await;
        assert_eq!(
            (s, html),
            (
                StatusCode::NOT_FOUND,
                page(&app, &dave, "/projects/987654").await.1
            )
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_controls_follow_authorize() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    app.user(&w.admin, "hpc", "application_admin").await;
    let forms = [
        "id=\"lab-settings-form\"",
        "id=\"lab-delete-form\"",
        "id=\"add-lab-member-form\"",
        "id=\"export-members\"",
    ];
    let storage = ["id=\"lab-roots-form\"", "id=\"lab-unix-form\""];

    // The Site Admin: every lab, every control, storage included.
    let admin = session(&app, "root-admin").await;
    let (s, html) = page(&app, &admin, "/labs").await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"new-lab-form\""));
    assert!(
        html.contains(&format!("href=\"/labs/{}\"", w.lab1))
            && html.contains(&format!("href=\"/labs/{}\"", w.lab2))
    );
    let (s, html) = page(&app, &admin, &format!("/labs/{}", w.lab1)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    for control in forms.iter().chain(&storage) {
        assert!(html.contains(control), "{control} for a Site Admin: {html}");
    }
    assert!(html.contains("select class=\"role\"") && html.contains("class=\"danger remove\""));
    assert!(
        html.contains("id=\"lab-browse\""),
        "admins browse every lab's data"
    );

    // An Application Admin manages labs and members, but storage roots are the Site Admin's.
    let hpc = session(&app, "hpc").await;
    let (_, html) = page(&app, &hpc, &format!("/labs/{}", w.lab1)).await;
    for control in forms {
        assert!(
            html.contains(control),
            "{control} for an Application Admin: {html}"
        );
    }
    for control in storage {
        assert!(
            !html.contains(control),
            "no {control} for an Application Admin: {html}"
        );
    }

    // An ordinary member: their own lab only, read-only, with the data browser.
    let alice = session(&app, "alice").await;
    let (_, html) = page(&app, &alice, "/labs").await;
    assert!(
        html.contains(&format!("href=\"/labs/{}\"", w.lab1)),
        "{html}"
    );
    assert!(
        !html.contains(&format!("href=\"/labs/{}\"", w.lab2)) && !html.contains("lab2"),
        "{html}"
    );
    assert!(!html.contains("id=\"new-lab-form\""));
    let (s, html) = page(&app, &alice, &format!("/labs/{}", w.lab1)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    for control in forms.iter().chain(&storage) {
        assert!(
            !html.contains(control),
            "no {control} for a lab member: {html}"
        );
    }
    assert!(
        !html.contains("select class=\"role\"") && !html.contains("class=\"danger remove\""),
        "{html}"
    );
    assert!(
        html.contains(&format!("data-browser=\"/api/v1/labs/{}/browse\"", w.lab1)),
        "{html}"
    );
    assert!(
        html.contains("carol") && html.contains("manager"),
        "members are listed: {html}"
    );

    // Under the `managers` import policy the browser is for carol (manager), not for alice.
    let (s, v) = app
        .patch(
            &format!("/api/v1/labs/{}", w.lab1),
            &w.admin,
            json!({ "import_policy": "managers" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, html) = page(&app, &alice, &format!("/labs/{}", w.lab1)).await;
    assert!(!html.contains("id=\"lab-browse\""), "{html}");
    let carol = session(&app, "carol").await;
    let (_, html) = page(&app, &carol, &format!("/labs/{}", w.lab1)).await;
    assert!(html.contains("id=\"lab-browse\""), "{html}");
    // Showing controls is not audited: no refusal was recorded by these page views.
    let (_, v) = app
        .get("/api/v1/audit?outcome=denied&limit=50", &w.admin)
        .await;
    assert_eq!(v["events"].as_array().map(Vec::len), Some(0), "{v}");

    // The scripts the pages load are served.
    for file in ["manage.js", "browser.js"] {
        let resp = app
            .http
            .get(format!("{}/static/{file}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_admins_type_into_a_lab_is_escaped() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let evil = "<script>alert('lab')</script>";
    let (s, v) = app
        .patch(
            &format!("/api/v1/labs/{}", w.lab1),
            &w.admin,
            json!({ "title": evil }),
        )
        .await;
    assert_eq!(
        (s, v["title"].as_str()),
        (StatusCode::OK, Some(evil)),
        "{v}"
    );
    let p1 = create_project(&app, &w.alice.1, w.lab1, "ribosome").await;
    let (s, v) = app
        .patch(
            &format!("/api/v1/projects/{p1}"),
            &w.alice.1,
            json!({ "title": evil, "description": evil }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let admin = session(&app, "root-admin").await;
    let alice = session(&app, "alice").await;
    for (cookie, path, shown) in [
        (&admin, "/labs".to_owned(), 1),
        (&admin, format!("/labs/{}", w.lab1), 3),
        (&alice, format!("/labs/{}", w.lab1), 2),
        (&alice, "/projects".to_owned(), 2),
        (&alice, format!("/projects/{p1}"), 3),
    ] {
        let (s, html) = page(&app, cookie, &path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {html}");
        assert!(!html.contains("<script>alert"), "{path}: {html}");
        assert!(
            html.matches("&lt;script&gt;alert(").count() >= shown,
            "{path}: shown escaped at least {shown} times: {html}"
        );
    }
}

/// The Next link carries the page's cursor, so that a deep page costs what the first does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projects_page_pages_on_by_cursor() {
    let Some(app) = TestApp::start(Backend::Sqlite).await else {
        return;
    };
    let w = world(&app).await;
    for i in 0..51 {
        create_project(&app, &w.alice.1, w.lab1, &format!("p{i:02}")).await;
    }
    let cookie = session(&app, "alice").await;
    let (s, first) = page(&app, &cookie, "/projects").await;
    assert_eq!(s, StatusCode::OK);
    assert!(first.contains("Page 1 of 2"), "{first}");
    let href = first
        .split("href=\"")
        .find(|h| h.contains("after="))
        .expect("a Next link with the cursor");
    let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
    let (s, second) = page(&app, &cookie, &format!("/projects{href}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        second.contains("Page 2 of 2") && second.contains("p50"),
        "{second}"
    );
    assert!(
        !table_body(&second).contains(">p00<"),
        "the second page starts after the first"
    );
}
