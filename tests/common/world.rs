//! A two-lab world through the public API: labs with real Unix accounts and roots on disk, and
//! users in each (see `unix::TwoLabs` for the tree).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::TestApp;
use super::unix::TwoLabs;

pub struct World {
    pub admin: String,
    pub lab1: i64,
    pub lab2: i64,
    pub alice: (i64, String),
    pub carol: (i64, String),
    pub dave: (i64, String),
    pub bob: (i64, String),
    pub disk: TwoLabs,
}

/// Two labs with their Unix accounts and roots; alice (member), carol (manager) and dave
/// (member) in lab1, bob (member) in lab2.
pub async fn world(app: &TestApp) -> World {
    let disk = TwoLabs::create(app.dir.path());
    let admin = app.site_admin().await;
    let mut labs = Vec::new();
    for (name, account, raw, projects) in [
        ("lab1", "cwlab1", &disk.raw1, &disk.projects1),
        ("lab2", "cwlab2", &disk.raw2, &disk.projects2),
    ] {
        let (s, v) = app
            .post("/api/v1/labs", &admin, json!({ "name": name }))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["id"].as_i64().unwrap();
        let (s, v) = app
            .call(
                Method::PUT,
                &format!("/api/v1/labs/{id}/roots"),
                Some(&admin),
                Some(json!({ "data_roots": [raw], "project_root": projects })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = app
            .call(
                Method::PUT,
                &format!("/api/v1/labs/{id}/unix-account"),
                Some(&admin),
                Some(json!({ "user": account })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        labs.push(id);
    }
    let alice = app.user(&admin, "alice", "none").await;
    let carol = app.user(&admin, "carol", "none").await;
    let dave = app.user(&admin, "dave", "none").await;
    let bob = app.user(&admin, "bob", "none").await;
    for (lab, user, role) in [
        (labs[0], alice.0, "member"),
        (labs[0], carol.0, "manager"),
        (labs[0], dave.0, "member"),
        (labs[1], bob.0, "member"),
    ] {
        let (s, v) = app
            .post(
                &format!("/api/v1/labs/{lab}/members"),
                &admin,
                json!({ "user_id": user, "role": role }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    World {
        admin,
        lab1: labs[0],
        lab2: labs[1],
        alice,
        carol,
        dave,
        bob,
        disk,
    }
}

pub async fn create_project(app: &TestApp, token: &str, lab: i64, name: &str) -> Value {
    let (s, v) = app
        .post(
            "/api/v1/projects",
            token,
            json!({ "lab_id": lab, "name": name }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// A workspace `name` of `project`, made by `token` (a project admin), with `admins` as its folder
/// admins; its id.
pub async fn workspace_with_admins(
    app: &TestApp,
    token: &str,
    project: i64,
    name: &str,
    admins: &[i64],
) -> i64 {
    let (s, v) = app
        .post(
            &format!("/api/v1/projects/{project}/workspaces"),
            token,
            json!({ "name": name }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ws = v["id"].as_i64().unwrap();
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/projects/{project}/workspaces/{ws}/admins"),
            Some(token),
            Some(json!({ "user_ids": admins })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    ws
}
