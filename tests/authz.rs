//! The permission explainer: what authorize() decides and why, through real HTTP.

mod common;

use common::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

async fn explain(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    app.get(&format!("/api/v1/authz/explain?{query}"), token).await
}

on_both_backends!(the_explainer_names_the_rule_and_the_bound, |app: TestApp| async move {
    let admin = app.site_admin().await;
    let (_, aa) = app.user(&admin, "appadmin", "application_admin").await;
    let (_, user) = app.user(&admin, "student", "none").await;
    let (s, v) = explain(&app, &aa, "actor=appadmin&action=change-password&target=root-admin").await;
    assert_eq!((s, v["allowed"].as_bool()), (StatusCode::OK, Some(false)), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("Site Admin"), "an AA may not reset a Site Admin's password: {v}");
    let (_, v) = explain(&app, &aa, "actor=appadmin&action=change-password&target=student").await;
    assert_eq!((v["allowed"].as_bool(), v["column"].as_str()), (Some(true), Some("application_admin")), "{v}");
    let (_, v) = explain(&app, &admin, "actor=root-admin&action=delete-user&target=root-admin").await;
    assert!(v["reason"].as_str().unwrap().contains("themselves"), "{v}");
    let (_, v) = explain(&app, &admin, "actor=appadmin&action=create-project").await;
    assert_eq!((v["allowed"].as_bool(), v["bounds"][0].as_str()), (Some(true), Some("no-custom-file-root")), "{v}");
    let (_, v) = explain(&app, &admin, "actor=appadmin&action=change-setting:look-and-feel.login_message").await;
    assert_eq!(v["allowed"].as_bool(), Some(false), "{v}");
    // Only those who may update site permissions may ask; bad input is a clear 4xx.
    let before = app.audit_len().await;
    let (s, _) = explain(&app, &user, "actor=student&action=delete-user").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(app.audit_len().await, before + 1, "the refusal is audited");
    let (s, v) = explain(&app, &admin, "actor=student&action=fly").await;
    assert_eq!((s, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("action")), "{v}");
    let (s, v) = explain(&app, &admin, "actor=nobody&action=delete-user").await;
    assert_eq!((s, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("actor")), "{v}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explainer_page_shows_the_decision_to_admins_only() {
    let Some(app) = TestApp::start(Backend::Sqlite).await else { return };
    let admin = app.site_admin().await;
    app.user(&admin, "appadmin", "application_admin").await;
    app.user(&admin, "student", "none").await;
    let page = |cookie: String, path: &'static str| {
        let req = app.http.get(format!("{}{path}", app.url)).header("cookie", cookie);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let (cookie, _) = app.login("appadmin", common::USER_PASSWORD).await;
    let (s, html) =
        page(cookie.clone(), "/admin/explain?actor=appadmin&action=change-password&target=root-admin").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Denied: appadmin") && html.contains("Site Admin"), "{html}");
    assert!(html.contains("Permission Explainer"), "the tab is listed");
    let (_, html) = page(cookie, "/admin/explain?actor=appadmin&action=create-project").await;
    assert!(html.contains("Allowed: appadmin") && html.contains("no-custom-file-root"), "{html}");
    let (cookie, _) = app.login("student", common::USER_PASSWORD).await;
    let (s, _) = page(cookie, "/admin/explain?actor=student&action=delete-user").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
