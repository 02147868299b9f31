//! Impersonation through the public API, with real browser sessions (issue 6): who may
//! impersonate whom, what the session may do meanwhile (never more than the impersonator, except
//! the Impersonating Troubleshooter's break-glass), how it ends (stop, logout, time limit), and
//! that every event names both identities.

mod common;

use common::session::Session;
use common::world::{create_project, workspace_with_admins, world};
use common::{Backend, TestApp, USER_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Starts impersonating from `session`: 201 and the status.
async fn impersonate(session: &Session<'_>, body: Value) -> Value {
    let (s, v) = session.post("/api/v1/impersonation", body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// Stops the session's impersonation: 204.
async fn stop(session: &Session<'_>) {
    let (s, v) = session
        .call(Method::DELETE, "/api/v1/impersonation", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
}

/// The audit events of `action`, newest first, as a Site Admin reads them.
async fn events(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (s, v) = app.get(&format!("/api/v1/audit?{query}"), admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"].as_array().unwrap().clone()
}

async fn site_roles(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let admin = app.site_admin().await;
    let (bob, bob_token) = app.user(&admin, "bob", "none").await;
    let (_, _) = app.user(&admin, "aa", "application_admin").await;
    let (_, _) = app.user(&admin, "it", "impersonating_troubleshooter").await;
    let (head, _) = app.user(&admin, "head", "site_admin").await;
    let root = Session::login(&app, "root-admin", common::ADMIN_PASSWORD).await;

    // A Site Admin impersonates bob: bob's rights, the impersonator named everywhere.
    let status = impersonate(&root, json!({ "user": bob })).await;
    assert_eq!(
        (
            status["impersonator"].as_str(),
            status["acting_as"].as_str()
        ),
        (Some("root-admin"), Some("bob"))
    );
    assert_eq!(status["scope"], "site");
    let (s, v) = root.get("/api/v1/auth/session").await;
    assert_eq!(
        (s, v["user"]["username"].as_str()),
        (StatusCode::OK, Some("bob")),
        "{v}"
    );
    assert_eq!(v["impersonating"]["impersonator"], "root-admin");
    let (s, v) = root.get("/api/v1/users").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["total"], 1, "as bob, only bob is visible: {v}");
    let (s, v) = root
        .patch(
            "/api/v1/settings/instance",
            json!({ "instance_name": "as bob" }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "bob may not change settings: {v}");
    let (s, _) = root
        .patch(
            &format!("/api/v1/users/{bob}"),
            json!({ "first_name": "Robert" }),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "bob edits his own details, with the Site Admin's consent"
    );
    // No second impersonation from inside one; API tokens out of reach.
    let (s, v) = root
        .post("/api/v1/impersonation", json!({ "user": head }))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("impersonating")),
        "{v}"
    );
    for (method, path) in [
        (Method::GET, "/api/v1/tokens"),
        (Method::POST, "/api/v1/tokens"),
    ] {
        let body = (method == Method::POST).then(|| json!({ "name": "stolen" }));
        let (s, v) = root.call(method, path, body).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("impersonating")),
            "{path}: {v}"
        );
    }
    stop(&root).await;
    let (_, v) = root.get("/api/v1/impersonation").await;
    assert!(v["impersonating"].is_null(), "{v}");
    let (s, _) = root
        .patch(
            "/api/v1/settings/instance",
            json!({ "instance_name": "back as root" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the Site Admin's own rights are back");
    // Every event while impersonating names both; start and stop are audited.
    let edits = events(&app, &admin, "action=edit-user&actor=bob").await;
    assert_eq!(edits[0]["impersonator"], "root-admin", "{edits:?}");
    let refused = events(&app, &admin, "outcome=denied&actor=bob").await;
    assert!(
        refused.iter().any(
            |e| e["action"] == "change-setting:look-and-feel.instance_name"
                && e["impersonator"] == "root-admin"
        ),
        "{refused:?}"
    );
    let started = events(&app, &admin, "action=start-impersonation").await;
    assert_eq!(
        (started[0]["actor"].as_str(), started[0]["target"].as_str()),
        (Some("root-admin"), Some("bob"))
    );
    let stopped = events(&app, &admin, "action=stop-impersonation").await;
    assert_eq!(
        (
            stopped[0]["actor"].as_str(),
            stopped[0]["impersonator"].as_str()
        ),
        (Some("bob"), Some("root-admin"))
    );
    assert_eq!(stopped[0]["after"]["reason"], "stopped");

    // An Application Admin impersonating a Site Admin gains no Site Admin rights.
    let aa = Session::login(&app, "aa", USER_PASSWORD).await;
    impersonate(&aa, json!({ "user": head })).await;
    let (s, v) = aa
        .patch(
            "/api/v1/settings/instance",
            json!({ "default_import_policy": "managers" }),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "storage roots are not the AA's: {v}"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("impersonation never adds rights"),
        "{v}"
    );
    let (s, v) = aa
        .patch(
            "/api/v1/settings/instance",
            json!({ "system_email_address": "head@facility.example" }),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "nor the system email address: {v}"
    );
    let (s, _) = aa
        .patch(
            "/api/v1/settings/instance",
            json!({ "instance_name": "aa as head" }),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "what both may do, the AA does as the Site Admin"
    );
    let (_, v) = app.get("/api/v1/settings/instance", &admin).await;
    assert_eq!(
        (
            v["default_import_policy"].as_str(),
            v["system_email_address"].as_str()
        ),
        (Some("all_members"), Some(""))
    );
    // Logout ends the impersonation, recorded with both names.
    let (s, _) = aa.call(Method::POST, "/api/v1/auth/logout", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let stopped = events(&app, &admin, "action=stop-impersonation").await;
    assert_eq!(
        (
            stopped[0]["actor"].as_str(),
            stopped[0]["impersonator"].as_str()
        ),
        (Some("head"), Some("aa"))
    );
    assert_eq!(stopped[0]["after"]["reason"], "logout");

    // The Impersonating Troubleshooter breaks glass: a Site Admin only, and then acts as one.
    let it = Session::login(&app, "it", USER_PASSWORD).await;
    let (s, v) = it
        .post("/api/v1/impersonation", json!({ "user": bob }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only a Site Admin: {v}");
    let (s, _) = it
        .patch(
            "/api/v1/settings/instance",
            json!({ "system_email_address": "it@facility.example" }),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "not by the troubleshooter's own right"
    );
    let status = impersonate(&it, json!({ "user": head })).await;
    assert_eq!(status["scope"], "break-glass");
    let (s, v) = it
        .patch(
            "/api/v1/settings/instance",
            json!({ "system_email_address": "it@facility.example" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "break-glass: {v}");
    let changed = events(
        &app,
        &admin,
        "action=change-setting:look-and-feel.system_email_address",
    )
    .await;
    assert_eq!(
        (
            changed[0]["actor"].as_str(),
            changed[0]["impersonator"].as_str()
        ),
        (Some("head"), Some("it"))
    );
    stop(&it).await;

    // A role: the AA holding only the Troubleshooter's rights reads the audit log, changes no
    // scheduler setting; nobody acts as Site Admin through a role they do not hold.
    let aa = Session::login(&app, "aa", USER_PASSWORD).await;
    let status = impersonate(&aa, json!({ "role": "troubleshooter" })).await;
    assert_eq!(status["acting_as"], "role:troubleshooter");
    let (s, _) = aa.get("/api/v1/audit").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = aa
        .patch(
            "/api/v1/settings/instance",
            json!({ "default_job_priority": 7 }),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a troubleshooter has no scheduler setting"
    );
    stop(&aa).await;
    let (s, _) = aa
        .patch(
            "/api/v1/settings/instance",
            json!({ "default_job_priority": 7 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the AA's own right is back");
    impersonate(&aa, json!({ "role": "site_admin" })).await;
    let (s, _) = aa
        .patch(
            "/api/v1/settings/instance",
            json!({ "default_import_policy": "managers" }),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a role impersonation is capped like a user's"
    );
    stop(&aa).await;

    // Ordinary users impersonate nobody (refused and audited); API tokens never impersonate;
    // nobody impersonates themselves; bad requests change nothing.
    let bob_session = Session::login(&app, "bob", USER_PASSWORD).await;
    let (s, _) = bob_session
        .post("/api/v1/impersonation", json!({ "user": head }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let refused = events(&app, &admin, "action=impersonate&actor=bob").await;
    assert_eq!(refused[0]["outcome"], "denied");
    let (s, v) = app
        .post("/api/v1/impersonation", &admin, json!({ "user": bob }))
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("authorization")),
        "{v}"
    );
    let (s, _) = root
        .post("/api/v1/impersonation", json!({ "user": 1 }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "never oneself");
    for bad in [
        json!({}),
        json!({ "user": bob, "role": "none" }),
        json!({ "role": "king" }),
        json!({ "user": bob, "x": 1 }),
    ] {
        let (s, v) = root.post("/api/v1/impersonation", bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    let (s, _) = root
        .post("/api/v1/impersonation", json!({ "user": 999_999 }))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = root.get("/api/v1/impersonation").await;
    assert!(v["impersonating"].is_null(), "nothing started: {v}");
    drop(bob_token);
}

#[tokio::test]
async fn site_roles_impersonate_within_their_own_rights_sqlite() {
    site_roles(Backend::Sqlite).await;
}

#[tokio::test]
async fn site_roles_impersonate_within_their_own_rights_postgres() {
    site_roles(Backend::Postgres).await;
}

/// A project admin impersonates users of their project only, and only inside that project; a
/// Site Admin impersonates a group (a lab).
async fn project_admins(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let w = world(&app).await;
    // carol (lab1 manager) creates `shared` and is its project admin; alice edits in it.
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
    // dave's `private` project is closed to the lab; alice reads it, carol is not in it.
    let (s, v) = app
        .post(
            "/api/v1/projects",
            &w.dave.1,
            json!({ "lab_id": w.lab1, "name": "private", "lab_members_read": false }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let private = v["id"].as_i64().unwrap();
    let (s, v) = app
        .post(
            &format!("/api/v1/projects/{private}/members"),
            &w.dave.1,
            json!({ "user_id": w.alice.0, "role": "reader" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = app
        .get(&format!("/api/v1/projects/{private}"), &w.alice.1)
        .await;
    assert_eq!(s, StatusCode::OK, "alice herself reads `private`");

    let carol = Session::login(&app, "carol", USER_PASSWORD).await;
    // bob is in lab2, in no project of carol's.
    let (s, v) = carol
        .post("/api/v1/impersonation", json!({ "user": w.bob.0 }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only users of her project: {v}");
    let status = impersonate(&carol, json!({ "user": w.alice.0 })).await;
    assert_eq!(
        (status["scope"].as_str(), status["project_id"].as_i64()),
        (Some("scoped"), Some(shared))
    );
    let (s, v) = carol.get("/api/v1/projects").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["projects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["shared"], "confined to carol's project: {v}");
    let (s, _) = carol.get(&format!("/api/v1/projects/{private}")).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "alice's other project is out of carol's reach"
    );
    let (s, _) = carol.get(&format!("/api/v1/projects/{shared}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = carol.get(&format!("/api/v1/users/{}", w.bob.0)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "as alice, bob is nobody");
    let denied = events(&app, &w.admin, "outcome=denied&actor=alice").await;
    assert!(
        denied.iter().any(|e| e["impersonator"] == "carol"
            && e["target"].as_str().unwrap_or("").ends_with("private")),
        "the reach outside the project is audited under both names: {denied:?}"
    );
    stop(&carol).await;

    // A group: the Site Admin acts as a plain member of lab1 — its lab-readable projects, no
    // other lab, no project closed to the lab.
    let root = Session::login(&app, "root-admin", common::ADMIN_PASSWORD).await;
    let status = impersonate(&root, json!({ "group": w.lab1 })).await;
    assert_eq!(status["acting_as"], "group:lab1");
    let (_, v) = root.get("/api/v1/labs").await;
    let labs: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(labs, ["lab1"], "{v}");
    let (_, v) = root.get("/api/v1/projects").await;
    let names: Vec<&str> = v["projects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["shared"], "{v}");
    for (id, what) in [(private, "a project closed to the lab")] {
        let (s, _) = root.get(&format!("/api/v1/projects/{id}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{what}");
    }
    let (s, _) = root.get(&format!("/api/v1/labs/{}", w.lab2)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another lab");
    let (s, _) = root
        .patch(
            "/api/v1/settings/instance",
            json!({ "instance_name": "as a group" }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a group holds no site role");
    stop(&root).await;
    let started = events(&app, &w.admin, "action=start-impersonation").await;
    assert_eq!(
        (
            started[0]["target"].as_str(),
            started[0]["target_kind"].as_str()
        ),
        (Some("lab1"), Some("lab"))
    );
    // A project admin impersonates users of their project, not groups.
    let carol = Session::login(&app, "carol", USER_PASSWORD).await;
    let (s, _) = carol
        .post("/api/v1/impersonation", json!({ "group": w.lab1 }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn project_admins_impersonate_only_inside_their_project_sqlite() {
    project_admins(Backend::Sqlite).await;
}

#[tokio::test]
async fn project_admins_impersonate_only_inside_their_project_postgres() {
    project_admins(Backend::Postgres).await;
}

/// The time limit ends an impersonation on the next request, audited as such.
async fn time_limit(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let admin = app.site_admin().await;
    let (bob, _) = app.user(&admin, "bob", "none").await;
    let site = "/api/v1/console/site-settings";
    let (_, v) = app.get(site, &admin).await;
    assert_eq!(
        v["value"]["impersonation_minutes"], 60,
        "the default limit: {v}"
    );
    let (s, v) = app
        .call(
            Method::PUT,
            site,
            Some(&admin),
            Some(json!({ "impersonation_minutes": 0 })),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("impersonation_minutes")
        ),
        "{v}"
    );
    let (s, v) = app
        .call(
            Method::PUT,
            site,
            Some(&admin),
            Some(json!({ "impersonation_minutes": 5 })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let root = Session::login(&app, "root-admin", common::ADMIN_PASSWORD).await;
    let status = impersonate(&root, json!({ "user": bob })).await;
    assert_eq!(status["scope"], "site");
    let span: i64 = sqlx::query_scalar("SELECT expires_at - started_at FROM impersonations")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("the impersonation's span");
    assert_eq!(span, 5 * 60_000, "the instance's limit, in ms");
    // Five minutes pass (the clock of the record moves, not the test's).
    sqlx::query("UPDATE impersonations SET expires_at = started_at - 1")
        .execute(&app.state.db.pool)
        .await
        .expect("age the impersonation");
    let (s, v) = root.get("/api/v1/auth/session").await;
    assert_eq!(
        (s, v["user"]["username"].as_str()),
        (StatusCode::OK, Some("root-admin")),
        "ended by the limit: {v}"
    );
    let stopped = events(&app, &admin, "action=stop-impersonation").await;
    assert_eq!(
        (
            stopped[0]["actor"].as_str(),
            stopped[0]["impersonator"].as_str()
        ),
        (Some("bob"), Some("root-admin"))
    );
    assert_eq!(stopped[0]["after"]["reason"], "time-limit");
    let (s, v) = app.get("/api/v1/audit/verify", &admin).await;
    assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
}

#[tokio::test]
async fn the_time_limit_ends_an_impersonation_sqlite() {
    time_limit(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_time_limit_ends_an_impersonation_postgres() {
    time_limit(Backend::Postgres).await;
}

/// The rows of a table, as the database holds them (what no response can hide).
async fn rows(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar::<sqlx::Any, i64>(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&app.state.db.pool)
        .await
        .expect("count")
}

/// Issue 11, item 1: a Folder Admin impersonating a Project Admin of the project (or a Site
/// Admin who administers a project) does not borrow the other side's project-admin fact: no
/// user is created, no registration token is issued or returned, and the refusal is audited
/// under both names.
async fn scoped_facts_stay_with_their_side(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let w = world(&app).await;
    let (head, _) = app.user(&w.admin, "head", "site_admin").await;
    // carol creates `shared` (its project admin); head, a Site Admin, joins lab1 and administers
    // `shared` too; dave is folder admin of its workspace `screening`.
    let shared = create_project(&app, &w.carol.1, w.lab1, "shared").await["id"]
        .as_i64()
        .unwrap();
    let (s, v) = app
        .post(
            &format!("/api/v1/labs/{}/members", w.lab1),
            &w.admin,
            json!({ "user_id": head, "role": "member" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .post(
            &format!("/api/v1/projects/{shared}/members"),
            &w.carol.1,
            json!({ "user_id": head, "role": "project_admin" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ws = workspace_with_admins(&app, &w.carol.1, shared, "screening", &[w.dave.0]).await;
    // dave on his own may not create users.
    let (s, _) = app
        .post(
            "/api/v1/users",
            &w.dave.1,
            json!({ "username": "mole0", "email": "m0@x.example" }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let dave = Session::login(&app, "dave", USER_PASSWORD).await;
    for (i, (target, name)) in [(w.carol.0, "carol"), (head, "head")]
        .into_iter()
        .enumerate()
    {
        let status = impersonate(&dave, json!({ "user": target, "workspace": ws })).await;
        assert_eq!(
            (status["scope"].as_str(), status["acting_as"].as_str()),
            (Some("scoped"), Some(name)),
            "{status}"
        );
        let (users, tokens) = (rows(&app, "users").await, rows(&app, "user_tokens").await);
        let mole = format!("mole{}", i + 1);
        let (s, v) = dave
            .post(
                "/api/v1/users",
                json!({ "username": mole, "email": format!("{mole}@x.example") }),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "a folder admin impersonating {name} creates nobody: {v}"
        );
        assert!(
            v.get("registration").is_none() && !v.to_string().contains("cwr_"),
            "no token in the answer: {v}"
        );
        assert_eq!(
            (rows(&app, "users").await, rows(&app, "user_tokens").await),
            (users, tokens),
            "nothing written"
        );
        let refused = events(
            &app,
            &w.admin,
            &format!("action=create-user&outcome=denied&actor={name}"),
        )
        .await;
        assert_eq!(refused[0]["impersonator"], "dave", "{refused:?}");
        stop(&dave).await;
    }
    // What both sides may do is still done: dave, as carol, reads `shared`.
    impersonate(&dave, json!({ "user": w.carol.0, "workspace": ws })).await;
    let (s, v) = dave.get(&format!("/api/v1/projects/{shared}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    stop(&dave).await;
}

#[tokio::test]
async fn impersonating_borrows_no_scoped_fact_of_the_other_side_sqlite() {
    scoped_facts_stay_with_their_side(Backend::Sqlite).await;
}

#[tokio::test]
async fn impersonating_borrows_no_scoped_fact_of_the_other_side_postgres() {
    scoped_facts_stay_with_their_side(Backend::Postgres).await;
}

/// Issue 11, item 2: while impersonating, nothing may be done to the impersonator's own account
/// — an Impersonating Troubleshooter breaking glass as a Site Admin cannot make itself a Site
/// Admin, nor touch its status, password, lanes or existence. Each refusal is a 403 with the
/// code `impersonator-own-account`, changes nothing and is audited under both names.
async fn break_glass_cannot_reach_its_own_account(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let admin = app.site_admin().await;
    let (bob, _) = app.user(&admin, "bob", "none").await;
    let (it, _) = app.user(&admin, "it", "impersonating_troubleshooter").await;
    let (head, _) = app.user(&admin, "head", "site_admin").await;
    let (s, v) = app
        .post(
            "/api/v1/lanes",
            &admin,
            json!({ "name": "gpu", "kind": "node" }),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let session = Session::login(&app, "it", USER_PASSWORD).await;
    let status = impersonate(&session, json!({ "user": head })).await;
    assert_eq!(status["scope"], "break-glass");
    let snapshot = || async {
        let (_, user) = app.get(&format!("/api/v1/users/{it}"), &admin).await;
        let (_, lanes) = app.get(&format!("/api/v1/users/{it}/lanes"), &admin).await;
        (user, lanes, rows(&app, "user_tokens").await)
    };
    let before = snapshot().await;
    assert_eq!(before.0["site_role"], "impersonating_troubleshooter");
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PATCH,
            format!("/api/v1/users/{it}"),
            Some(json!({ "site_role": "site_admin" })),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{it}"),
            Some(json!({ "site_role": "none" })),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{it}"),
            Some(json!({ "status": "deactivated" })),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{it}"),
            Some(json!({ "first_name": "Boss" })),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{it}"),
            Some(json!({ "job_priority_management": true })),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{it}/reset-token"),
            Some(json!(null)),
        ),
        (
            Method::PUT,
            format!("/api/v1/users/{it}/lanes"),
            Some(json!({ "not_allowed": ["gpu"] })),
        ),
        (Method::DELETE, format!("/api/v1/users/{it}"), None),
    ];
    for (method, path, body) in attempts {
        let audited = app.audit_len().await;
        let (s, v) = session.call(method.clone(), &path, body.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("impersonator-own-account")),
            "{method} {path} {body:?}: {v}"
        );
        assert_eq!(snapshot().await, before, "{method} {path}: nothing changed");
        assert_eq!(
            app.audit_len().await,
            audited + 1,
            "{method} {path}: the refusal is audited"
        );
    }
    let refused = events(&app, &admin, "outcome=denied&actor=head").await;
    assert!(
        refused.iter().any(|e| e["action"]
            == "change-site-role:impersonating_troubleshooter->site_admin"
            && e["target"] == "it"
            && e["impersonator"] == "it"),
        "{refused:?}"
    );
    // Seeing its own account is harmless; the break-glass still acts on others as the Site Admin.
    let (s, _) = session.get(&format!("/api/v1/users/{it}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = session
        .patch(
            &format!("/api/v1/users/{bob}"),
            json!({ "site_role": "troubleshooter" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    stop(&session).await;
    let (_, v) = app.get(&format!("/api/v1/users/{it}"), &admin).await;
    assert_eq!(
        v["site_role"], "impersonating_troubleshooter",
        "still not permanent: {v}"
    );
}

#[tokio::test]
async fn break_glass_cannot_reach_its_own_account_sqlite() {
    break_glass_cannot_reach_its_own_account(Backend::Sqlite).await;
}

#[tokio::test]
async fn break_glass_cannot_reach_its_own_account_postgres() {
    break_glass_cannot_reach_its_own_account(Backend::Postgres).await;
}
