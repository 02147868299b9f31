//! No existence oracles (issue 11, item 13): for every route of the OpenAPI document with an
//! `{id}` in its path, a user who may not see the thing gets, for an existing id, exactly the
//! answer of an id that does not exist — same status, same body, byte for byte.

mod common;

use common::world::{create_project, world};
use common::{Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Ids no row will ever have in this test.
const MISSING: i64 = 987_654_321;

/// Routes whose `{id}` names something every signed-in user may see (lanes and their targets
/// are listed to all by `GET /api/v1/lanes`, so their existence is no secret), or that refuse
/// the caller before looking the id up: not compared here, and listed so that a new `{id}`
/// route must be classified before this test passes.
const NOT_HIDDEN: &[&str] = &[
    "DELETE /api/v1/lanes/{id}",
    "POST /api/v1/lanes/{id}/targets",
    "POST /api/v1/lanes/{id}/cluster-info",
    "PUT /api/v1/targets/{id}/custom-vars",
    // Audit archives: refused to everyone without the audit-log setting before any lookup.
    "GET /api/v1/audit/archives/{id}/verify",
];

/// A request body the route's extractor accepts, so that the answer is about the id.
fn body_for(method: &Method, path: &str, bob: i64) -> Option<Value> {
    let body = match (method.as_str(), path) {
        ("PATCH", "/api/v1/users/{id}") => json!({ "first_name": "Mallory" }),
        ("PUT", "/api/v1/users/{id}/lanes") => json!({ "not_allowed": [] }),
        ("PATCH", "/api/v1/labs/{id}") => json!({ "title": "mine now" }),
        ("POST", "/api/v1/labs/{id}/members") => json!({ "user_id": bob, "role": "manager" }),
        ("PUT", "/api/v1/labs/{id}/roots") => json!({ "data_roots": [], "project_root": null }),
        ("PUT", "/api/v1/labs/{id}/unix-account") => json!({ "user": "cwlab2" }),
        ("PATCH", "/api/v1/projects/{id}") => json!({ "title": "mine now" }),
        ("POST", "/api/v1/projects/{id}/members") => {
            json!({ "user_id": bob, "role": "project_admin" })
        }
        ("POST", "/api/v1/projects/{id}/groups") => json!({ "name": "mine", "role": "reader" }),
        ("POST", "/api/v1/projects/{id}/workspaces") => json!({ "name": "mine" }),
        ("PATCH", "/api/v1/projects/{id}/workspaces/{workspace_id}") => json!({ "title": "mine" }),
        ("PUT", "/api/v1/projects/{id}/workspaces/{workspace_id}/admins") => {
            json!({ "user_ids": [bob] })
        }
        ("POST", "/api/v1/projects/{id}/data/delete") => json!({ "confirm": "apoferritin" }),
        ("POST", "/api/v1/jobs/{id}/queue") => json!({ "lane": "default" }),
        ("GET" | "DELETE", _) => return None,
        _ => json!(null),
    };
    Some(body)
}

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    (resp.status(), resp.text().await.expect("body"))
}

on_both_backends!(
    a_hidden_id_answers_exactly_like_a_missing_one,
    |app: TestApp| async move {
        let w = world(&app).await;
        // lab1's things, which bob (lab2) may not see.
        let project = create_project(&app, &w.alice.1, w.lab1, "apoferritin").await["id"]
            .as_i64()
            .unwrap();
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{project}/workspaces"),
                &w.alice.1,
                json!({ "name": "ws" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let workspace = v["id"].as_i64().unwrap();
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{project}/groups"),
                &w.alice.1,
                json!({ "name": "g", "role": "reader" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let group = v[0]["id"].as_i64().expect("the project's groups");
        let (s, v) = app
            .post(
                "/api/v1/jobs",
                &w.alice.1,
                json!({ "project_id": project, "job_type": "validation" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let job = v["id"].as_i64().unwrap();
        let (s, v) = app.get("/api/v1/tokens", &w.alice.1).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let token = v
            .as_array()
            .and_then(|t| t.first())
            .and_then(|t| t["id"].as_i64())
            .expect("alice's token");

        let (s, doc) = app.get("/api/v1/openapi.json", &w.bob.1).await;
        assert_eq!(s, StatusCode::OK);
        let mut compared = Vec::new();
        let mut skipped = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            if !path.contains("{id}") {
                continue;
            }
            for (method, _) in item.as_object().unwrap() {
                let method: Method = method.to_uppercase().parse().unwrap();
                let route = format!("{method} {path}");
                let hidden = match path.split('/').nth(3) {
                    Some("users") => w.alice.0,
                    Some("labs") => w.lab1,
                    Some("projects") => project,
                    Some("jobs") => job,
                    Some("tokens") => token,
                    _ => {
                        skipped.push(route);
                        continue;
                    }
                };
                let fill = |id: i64| {
                    path.replace("{id}", &id.to_string())
                        .replace("{user_id}", &w.alice.0.to_string())
                        .replace("{group_id}", &group.to_string())
                        .replace("{workspace_id}", &workspace.to_string())
                };
                let body = body_for(&method, path, w.bob.0);
                let missing =
                    raw(&app, method.clone(), &fill(MISSING), &w.bob.1, body.clone()).await;
                let existing =
                    raw(&app, method.clone(), &fill(hidden), &w.bob.1, body.clone()).await;
                assert_eq!(
                    missing.0,
                    StatusCode::NOT_FOUND,
                    "{route}: a missing id is not found: {}",
                    missing.1
                );
                assert_eq!(
                    existing, missing,
                    "{route}: an existing hidden id must answer like a missing one"
                );
                compared.push(route);
            }
        }
        skipped.sort();
        let mut expected: Vec<String> = NOT_HIDDEN.iter().map(|r| (*r).to_owned()).collect();
        expected.sort();
        assert_eq!(
            skipped, expected,
            "every {{id}} route is compared or classified"
        );
        assert!(compared.len() >= 30, "{compared:?}");
        // Nothing bob tried changed alice's things.
        let (_, v) = app
            .get(&format!("/api/v1/projects/{project}"), &w.alice.1)
            .await;
        assert_eq!(v["title"], "apoferritin", "{v}");
        let (_, v) = app
            .get(&format!("/api/v1/users/{}", w.alice.0), &w.admin)
            .await;
        assert_eq!(v["first_name"], "", "{v}");
    }
);
