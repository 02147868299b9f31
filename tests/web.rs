//! The server-rendered pages through HTTP (no browser needed): escaping, forms with bad input,
//! and controls shown only where the viewer may act.

mod common;

use common::{ADMIN_PASSWORD, Backend, TestApp, USER_PASSWORD};
use reqwest::StatusCode;
use serde_json::json;

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

async fn post_form(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .post(format!("{}{path}", app.url))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The `<tr>` of `username` in the user table.
fn row<'a>(html: &'a str, username: &str) -> &'a str {
    let start = html
        .find(&format!("data-username=\"{username}\""))
        .unwrap_or_else(|| panic!("no row for {username}"));
    let end = html[start..].find("</tr>").unwrap() + start;
    &html[start..end]
}

#[tokio::test]
async fn what_admins_type_is_escaped_on_every_page() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let admin = app.site_admin().await;
    let evil = "<script>alert('x')</script>";
    let (s, v) = app
        .call(
            reqwest::Method::PATCH,
            "/api/v1/settings/instance",
            Some(&admin),
            Some(json!({ "instance_name": evil, "banner": { "active": true, "text": evil }, "login_message": { "active": true, "title": evil, "body": evil } })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.user(&admin, "student", "none").await;
    let (cookie, _) = app.login("student", USER_PASSWORD).await;
    let (s, html) = page(&app, &cookie, "/?welcome=1").await;
    assert_eq!(s, StatusCode::OK);
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.matches("&lt;script&gt;").count() >= 4,
        "title, nav, banner and login message are all shown, escaped: {html}"
    );
    let (_, login) = app
        .http
        .get(format!("{}/login", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| ((), t))
        .unwrap();
    assert!(!login.contains("<script>alert"));
}

#[tokio::test]
async fn the_settings_form_refuses_bad_input_and_changes_nothing() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let admin = app.site_admin().await;
    let (cookie, csrf) = app.login("root-admin", ADMIN_PASSWORD).await;
    let before = app.get("/api/v1/settings/instance", &admin).await.1;
    let long = "b".repeat(501);
    for (field, value, says) in [
        ("default_job_priority", "101", "from 0 to 100"),
        ("default_job_priority", "-3", "from 0 to 100"),
        ("default_job_priority", "2.5", "integer"),
        ("default_job_priority", "high", "integer"),
        ("banner_text", long.as_str(), "at most 500"),
        ("instance_name", "", "must not be empty"),
        ("system_email_address", "not-an-email", "valid email"),
    ] {
        let mut form = vec![
            ("_csrf", csrf.as_str()),
            ("instance_name", "cryowarden"),
            ("default_job_priority", "0"),
            ("banner_active", "on"),
            ("banner_text", "hello"),
        ];
        form.retain(|(k, _)| *k != field);
        form.push((field, value));
        let (s, html) = post_form(&app, &cookie, "/admin/settings", &form).await;
        assert!(s.is_client_error(), "{field}={value}: {s}");
        assert!(
            html.contains("role=\"alert\"") && html.contains(says),
            "{field}={value}: the page says why: {html}"
        );
    }
    assert_eq!(
        app.get("/api/v1/settings/instance", &admin).await.1,
        before,
        "nothing changed"
    );
    // A good submission works and shows the name everywhere.
    let (s, _) = post_form(
        &app,
        &cookie,
        "/admin/settings",
        &[
            ("_csrf", &csrf),
            ("instance_name", "Facility North"),
            ("default_job_priority", "40"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, html) = page(&app, &cookie, "/admin/settings").await;
    assert!(html.contains("<title>Instance Settings · Facility North</title>"));
    assert!(html.contains("value=\"40\""));
}

#[tokio::test]
async fn an_application_admin_gets_no_controls_over_a_site_admin() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let admin = app.site_admin().await;
    app.user(&admin, "hpc", "application_admin").await;
    app.user(&admin, "student", "none").await;
    let (cookie, _) = app.login("hpc", USER_PASSWORD).await;
    let (s, html) = page(&app, &cookie, "/admin/users").await;
    assert_eq!(s, StatusCode::OK);
    let head = row(&html, "root-admin");
    for control in [
        "class=\"delete",
        "class=\"edit",
        "class=\"issue-token",
        "class=\"set-status",
        "<select",
    ] {
        assert!(
            !head.contains(control),
            "no {control} on a Site Admin's row for an Application Admin: {head}"
        );
    }
    // "update site permissions" (priority toggles) has no Site Admin exception in spec/roles.md §2.
    assert!(head.contains("class=\"toggle"), "{head}");
    let student = row(&html, "student");
    for control in [
        "class=\"delete",
        "class=\"edit",
        "class=\"toggle",
        "class=\"issue-token",
        "class=\"set-status",
        "<select",
    ] {
        assert!(
            student.contains(control),
            "{control} on an ordinary user's row: {student}"
        );
    }
    assert!(
        !student.contains("value=\"site_admin\""),
        "an Application Admin cannot make anyone a Site Admin"
    );
    let own = row(&html, "hpc");
    assert!(
        own.contains("disabled"),
        "the own role control is disabled: {own}"
    );
    // The Instance Settings tab: look-and-feel editable except system email and login message.
    let (_, html) = page(&app, &cookie, "/admin/settings").await;
    let field = |id: &str| {
        let at = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id}"));
        let end = html[at..].find('>').unwrap() + at;
        html[at..end].contains("disabled")
    };
    assert!(!field("instance_name") && !field("banner_text") && !field("default_job_priority"));
    assert!(
        field("system_email_address")
            && field("login_message_body")
            && field("maintenance_message")
    );
    // Ordinary users reaching an admin URL get a 403 page, not a blank one.
    let (student_cookie, _) = app.login("student", USER_PASSWORD).await;
    for path in [
        "/admin/settings",
        "/admin/users",
        "/admin/users/new",
        "/admin/logs",
    ] {
        let (s, html) = page(&app, &student_cookie, path).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
        assert!(html.contains("Not allowed"), "{path}");
    }
    // A page without a session goes to the sign-in page, and comes back after it.
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/admin/users", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login?next=%2Fadmin%2Fusers");
}

#[tokio::test]
async fn the_log_view_refuses_unknown_services_and_line_counts() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    app.site_admin().await;
    let (cookie, _) = app.login("root-admin", ADMIN_PASSWORD).await;
    let (s, html) = page(&app, &cookie, "/admin/logs?service=nosuch&lines=50").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("does not exist"));
    let (s, html) = page(&app, &cookie, "/admin/logs?service=app&lines=51").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("lines must be one of"));
    let (s, _) = page(&app, &cookie, "/admin/logs?service=audit&lines=200").await;
    assert_eq!(s, StatusCode::OK);
}
