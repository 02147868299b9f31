//! The permission explainer: what authorize() decides and why, through real HTTP.

mod common;

use common::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

async fn explain(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    app.get(&format!("/api/v1/authz/explain?{query}"), token)
        .await
}

on_both_backends!(
    the_explainer_names_the_rule_and_the_bound,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (_, aa) = app.user(&admin, "appadmin", "application_admin").await;
        let (_, user) = app.user(&admin, "student", "none").await;
        let (s, v) = explain(
            &app,
            &aa,
            "actor=appadmin&action=change-password&target=root-admin",
        )
        .await;
        assert_eq!(
            (s, v["allowed"].as_bool()),
            (StatusCode::OK, Some(false)),
            "{v}"
        );
        assert!(
            v["reason"].as_str().unwrap().contains("Site Admin"),
            "an AA may not reset a Site Admin's password: {v}"
        );
        let (_, v) = explain(
            &app,
            &aa,
            "actor=appadmin&action=change-password&target=student",
        )
        .await;
        assert_eq!(
            (v["allowed"].as_bool(), v["column"].as_str()),
            (Some(true), Some("application_admin")),
            "{v}"
        );
        let (_, v) = explain(
            &app,
            &admin,
            "actor=root-admin&action=delete-user&target=root-admin",
        )
        .await;
        assert!(v["reason"].as_str().unwrap().contains("themselves"), "{v}");
        let (_, v) = explain(&app, &admin, "actor=appadmin&action=create-project").await;
        assert_eq!(
            (v["allowed"].as_bool(), v["bounds"][0].as_str()),
            (Some(true), Some("no-custom-file-root")),
            "{v}"
        );
        let (_, v) = explain(
            &app,
            &admin,
            "actor=appadmin&action=change-setting:look-and-feel.login_message",
        )
        .await;
        assert_eq!(v["allowed"].as_bool(), Some(false), "{v}");
        // Only those who may update site permissions may ask; bad input is a clear 4xx.
        let before = app.audit_len().await;
        let (s, _) = explain(&app, &user, "actor=student&action=delete-user").await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(app.audit_len().await, before + 1, "the refusal is audited");
        let (s, v) = explain(&app, &admin, "actor=student&action=fly").await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("action")),
            "{v}"
        );
        let (s, v) = explain(&app, &admin, "actor=nobody&action=delete-user").await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("actor")),
            "{v}"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explainer_page_shows_the_decision_to_admins_only() {
    let Some(app) = TestApp::start(Backend::Sqlite).await else {
        return;
    };
    let admin = app.site_admin().await;
    app.user(&admin, "appadmin", "application_admin").await;
    app.user(&admin, "student", "none").await;
    let page = |cookie: String, path: &'static str| {
        let req = app
            .http
            .get(format!("{}{path}", app.url))
            .header("cookie", cookie);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let (cookie, _) = app.login("appadmin", common::USER_PASSWORD).await;
    let (s, html) = page(
        cookie.clone(),
        "/admin/explain?actor=appadmin&action=change-password&target=root-admin",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("Denied: appadmin") && html.contains("Site Admin"),
        "{html}"
    );
    assert!(html.contains("Permission Explainer"), "the tab is listed");
    let (_, html) = page(
        cookie,
        "/admin/explain?actor=appadmin&action=create-project",
    )
    .await;
    assert!(
        html.contains("Allowed: appadmin") && html.contains("never with a custom file root"),
        "{html}"
    );
    let (cookie, _) = app.login("student", common::USER_PASSWORD).await;
    let (s, _) = page(cookie, "/admin/explain?actor=student&action=delete-user").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// Words a person should never have to read in an explanation: raw enum, column or rule names.
fn raw_names(text: &str) -> Vec<&'static str> {
    [
        "None",
        "Some(",
        "column",
        "site_admin",
        "application_admin",
        "project_admin",
        "folder_admin",
        "impersonating_troubleshooter",
        "impersonation-ceiling",
        "view-user",
        "change-password",
        "edit-user",
    ]
    .into_iter()
    .filter(|w| text.contains(w))
    .collect()
}

// Issue 11, item 3: the explainer's verdict is the enforcing route's, for a grid of actor, target
// and project (impersonate with `project=` as POST /impersonation takes it; the user routes),
// and it says why in words.
on_both_backends!(
    the_explainer_agrees_with_enforcement_and_speaks_in_words,
    |app: TestApp| async move {
        use common::session::Session;
        use common::world::{create_project, workspace_with_admins, world};
        use reqwest::Method;
        use serde_json::json;
        let w = world(&app).await;
        let (aa, aa_token) = app.user(&w.admin, "appadmin", "application_admin").await;
        let root = 1;
        let shared = create_project(&app, &w.carol.1, w.lab1, "shared").await["id"]
            .as_i64()
            .unwrap();
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{shared}/members"),
                &w.carol.1,
                json!({ "user_id": w.alice.0, "role": "editor" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        workspace_with_admins(&app, &w.carol.1, shared, "ws", &[w.dave.0]).await;
        let other = create_project(&app, &w.bob.1, w.lab2, "other").await["id"]
            .as_i64()
            .unwrap();
        let people: Vec<(&str, i64, String, &str)> = vec![
            ("root-admin", root, w.admin.clone(), common::ADMIN_PASSWORD),
            ("appadmin", aa, aa_token, common::USER_PASSWORD),
            ("carol", w.carol.0, w.carol.1.clone(), common::USER_PASSWORD),
            ("dave", w.dave.0, w.dave.1.clone(), common::USER_PASSWORD),
            ("alice", w.alice.0, w.alice.1.clone(), common::USER_PASSWORD),
            ("bob", w.bob.0, w.bob.1.clone(), common::USER_PASSWORD),
        ];
        let check_words = |v: &Value| {
            let text = format!(
                "{} {}",
                v["reason"].as_str().unwrap_or_default(),
                v["facts"]
            );
            assert!(
                v["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "a reason for every answer: {v}"
            );
            assert!(
                raw_names(&text).is_empty(),
                "raw names {:?} in {v}",
                raw_names(&text)
            );
        };
        let mut agreed = 0;
        for (actor, _, token, password) in &people {
            let session = Session::login(&app, actor, password).await;
            for (target, target_id, _, _) in &people {
                for project in [None, Some(shared), Some(other)] {
                    let mut query = format!("actor={actor}&action=impersonate&target={target}");
                    let mut body = json!({ "user": target_id });
                    if let Some(p) = project {
                        query.push_str(&format!("&project={p}"));
                        body["project"] = json!(p);
                    }
                    let (s, v) = explain(&app, &w.admin, &query).await;
                    assert_eq!(s, StatusCode::OK, "{query}: {v}");
                    check_words(&v);
                    let (s, started) = session.post("/api/v1/impersonation", body).await;
                    assert_eq!(
                        v["allowed"].as_bool(),
                        Some(s == StatusCode::CREATED),
                        "{query}: the explainer says {v}, POST /impersonation answered {s} {started}"
                    );
                    if s == StatusCode::CREATED {
                        let (s, _) = session
                            .call(Method::DELETE, "/api/v1/impersonation", None)
                            .await;
                        assert_eq!(s, StatusCode::NO_CONTENT);
                    }
                    agreed += 1;
                }
                // The user routes: see, edit, reset the password of the target.
                for (action, method, path, body) in [
                    (
                        "view-user",
                        Method::GET,
                        format!("/api/v1/users/{target_id}"),
                        None,
                    ),
                    (
                        "edit-user",
                        Method::PATCH,
                        format!("/api/v1/users/{target_id}"),
                        Some(json!({ "last_name": "Checked" })),
                    ),
                    (
                        "change-password",
                        Method::POST,
                        format!("/api/v1/users/{target_id}/reset-token"),
                        None,
                    ),
                ] {
                    let (s, v) = explain(
                        &app,
                        &w.admin,
                        &format!("actor={actor}&action={action}&target={target}"),
                    )
                    .await;
                    assert_eq!(s, StatusCode::OK, "{v}");
                    check_words(&v);
                    let (s, answer) = app.call(method, &path, Some(token), body).await;
                    assert_eq!(
                        v["allowed"].as_bool(),
                        Some(s.is_success()),
                        "{actor} {action} {target}: the explainer says {v}, the route answered {s} {answer}"
                    );
                    assert_eq!(
                        v["concealed"].as_bool(),
                        Some(s == StatusCode::NOT_FOUND),
                        "{actor} {action} {target}: {v}"
                    );
                    agreed += 1;
                }
            }
        }
        assert_eq!(agreed, 6 * 6 * 6);
        // A fact in words: carol may impersonate alice as project admin of `shared`.
        let (_, v) = explain(
            &app,
            &w.admin,
            &format!("actor=carol&action=impersonate&target=alice&project={shared}"),
        )
        .await;
        assert_eq!(v["allowed"], true, "{v}");
        assert!(
            v["reason"].as_str().unwrap().contains("a project admin"),
            "{v}"
        );
        assert!(
            v["facts"]
                .to_string()
                .contains("carol is a project admin of project `shared`, which alice belongs to"),
            "{v}"
        );
        // ... but not bob, who is not in it, whatever project is named.
        let (_, v) = explain(
            &app,
            &w.admin,
            &format!("actor=carol&action=impersonate&target=bob&project={shared}"),
        )
        .await;
        assert_eq!(v["allowed"], false, "{v}");
    }
);
