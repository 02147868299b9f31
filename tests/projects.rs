//! Projects and the storage boundary, through real HTTP with real Unix accounts and the real
//! runner, on SQLite and on PostgreSQL: lab1's people never see, browse or touch lab2's data, and
//! every refusal is audited.

mod common;

use std::os::unix::fs::MetadataExt;

use common::world::{create_project, world};
use common::{Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn names(page: &Value) -> Vec<String> {
    page["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn denied_events(app: &TestApp, admin: &str, action: &str) -> usize {
    let (s, v) = app
        .get(
            &format!("/api/v1/audit?action={action}&outcome=denied&limit=500"),
            admin,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"].as_array().unwrap().len()
}

on_both_backends!(
    a_project_directory_is_made_by_the_labs_account_and_hidden_from_other_labs,
    |app: TestApp| async move {
        let w = world(&app).await;
        let p1 = create_project(&app, &w.alice.1, w.lab1, "ribosome").await;
        assert_eq!(
            (p1["lab_name"].as_str(), p1["my_role"].as_str()),
            (Some("lab1"), Some("project_admin")),
            "{p1}"
        );
        let dir = w.disk.projects1.join("ribosome");
        assert_eq!(p1["path"].as_str(), Some(dir.to_str().unwrap()));
        let meta = std::fs::metadata(&dir).expect("the project directory exists on disk");
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (2101, 2101, 0o2770),
            "owner, group, mode 2770"
        );
        let p2 = create_project(&app, &w.bob.1, w.lab2, "spliceosome").await;
        let p1_id = p1["id"].as_i64().unwrap();
        let p2_id = p2["id"].as_i64().unwrap();

        // Each lab's people list only their own lab's projects; counts say nothing of the other lab.
        let (_, v) = app.get("/api/v1/projects", &w.alice.1).await;
        assert_eq!(
            (names(&v), v["total"].as_i64()),
            (vec!["ribosome".to_owned()], Some(1))
        );
        let (_, v) = app.get("/api/v1/projects", &w.dave.1).await;
        assert_eq!(
            names(&v),
            ["ribosome"],
            "lab members read their lab's projects by default"
        );
        assert_eq!(v["projects"][0]["my_role"], Value::Null);
        let (_, v) = app.get("/api/v1/projects?q=splice", &w.alice.1).await;
        assert_eq!(
            (names(&v).len(), v["total"].as_i64()),
            (0, Some(0)),
            "search does not reveal lab2's project"
        );
        let (_, v) = app
            .get(&format!("/api/v1/projects?lab={}", w.lab2), &w.alice.1)
            .await;
        assert_eq!(v["total"].as_i64(), Some(0));
        let (_, v) = app.get("/api/v1/projects", &w.admin).await;
        assert_eq!(
            names(&v),
            ["ribosome", "spliceosome"],
            "facility staff see every project"
        );

        // Direct access to another lab's project is "not found", exactly like an id that never existed.
        let missing = app.get("/api/v1/projects/987654", &w.alice.1).await;
        assert_eq!(missing.0, StatusCode::NOT_FOUND);
        for (method, path, body) in [
            (Method::GET, format!("/api/v1/projects/{p2_id}"), None),
            (
                Method::PATCH,
                format!("/api/v1/projects/{p2_id}"),
                Some(json!({ "title": "mine now" })),
            ),
            (
                Method::GET,
                format!("/api/v1/projects/{p2_id}/members"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/projects/{p2_id}/members"),
                Some(json!({ "user_id": w.alice.0, "role": "reader" })),
            ),
            (
                Method::GET,
                format!("/api/v1/projects/{p2_id}/workspaces"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/projects/{p2_id}/workspaces"),
                Some(json!({ "name": "ws" })),
            ),
            (Method::GET, format!("/api/v1/projects/{p2_id}/files"), None),
            (
                Method::POST,
                format!("/api/v1/projects/{p2_id}/data/archive"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/projects/{p2_id}/data/delete"),
                Some(json!({ "confirm": "spliceosome" })),
            ),
            (Method::DELETE, format!("/api/v1/projects/{p2_id}"), None),
        ] {
            let (s, v) = app
                .call(method.clone(), &path, Some(&w.alice.1), body)
                .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
            assert_eq!(
                v["detail"], missing.1["detail"],
                "{method} {path}: the same answer as for no project at all"
            );
        }
        // Nor can lab1's people create projects in lab2, or browse its data.
        let (s, v) = app
            .post(
                "/api/v1/projects",
                &w.alice.1,
                json!({ "lab_id": w.lab2, "name": "intruder" }),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        let (s, _) = app
            .get(&format!("/api/v1/labs/{}/browse", w.lab2), &w.alice.1)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(!w.disk.projects2.join("intruder").exists());
        assert!(
            denied_events(&app, &w.admin, "view-project").await >= 10,
            "every refusal is audited"
        );
        assert!(denied_events(&app, &w.admin, "create-lab-project").await >= 1);
        assert!(denied_events(&app, &w.admin, "view-lab").await >= 1);

        // lab2's project is untouched.
        let (_, v) = app
            .get(&format!("/api/v1/projects/{p2_id}"), &w.bob.1)
            .await;
        assert_eq!(
            (v["title"].as_str(), v["status"].as_str()),
            (Some("spliceosome"), Some("active"))
        );
        let (_, v) = app
            .get(&format!("/api/v1/projects/{p1_id}/files"), &w.alice.1)
            .await;
        assert_eq!(v["entries"].as_array().map(Vec::len), Some(0), "{v}");

        // Custom file roots are a Site Admin's alone; the same name twice is a conflict.
        let elsewhere = app.dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::chown(&elsewhere, Some(2101), Some(2101)).unwrap();
        let body = json!({ "lab_id": w.lab1, "name": "custom", "file_root": elsewhere });
        let (s, v) = app.post("/api/v1/projects", &w.carol.1, body.clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let (s, v) = app.post("/api/v1/projects", &w.admin, body).await;
        assert_eq!(
            (s, v["custom_file_root"].as_bool()),
            (StatusCode::CREATED, Some(true)),
            "{v}"
        );
        assert_eq!(
            std::fs::metadata(elsewhere.join("custom")).unwrap().uid(),
            2101
        );
        let (s, v) = app
            .post(
                "/api/v1/projects",
                &w.carol.1,
                json!({ "lab_id": w.lab1, "name": "RIBOSOME" }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::CONFLICT, Some("name")),
            "{v}"
        );
        let (s, v) = app
            .post(
                "/api/v1/projects",
                &w.carol.1,
                json!({ "lab_id": w.lab1, "name": "../escape", "title": "x" }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
            "{v}"
        );
        assert!(
            cryowarden_server::audit::verify(&app.state.db)
                .await
                .unwrap()
                .ok
        );
    }
);

on_both_backends!(
    browsing_stays_beneath_the_labs_own_data_roots,
    |app: TestApp| async move {
        let w = world(&app).await;
        let browse = format!("/api/v1/labs/{}/browse", w.lab1);
        let (s, v) = app.get(&browse, &w.alice.1).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let listed: Vec<&str> = v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            listed,
            ["escape", "escape-dir", "movie_001.tif", "sub"],
            "{v}"
        );
        let (s, v) = app
            .get(&format!("{browse}?path=sub/deep"), &w.alice.1)
            .await;
        assert_eq!(
            (s, v["entries"][0]["name"].as_str()),
            (StatusCode::OK, Some("frames.eer")),
            "{v}"
        );

        let before = denied_events(&app, &w.admin, "browse-lab-data").await;
        let raw2 = w.disk.raw2.to_str().unwrap();
        let attempts: Vec<(String, StatusCode, &str)> = vec![
            (
                "?path=..".into(),
                StatusCode::FORBIDDEN,
                "path-escapes-root",
            ),
            (
                "?path=../lab2".into(),
                StatusCode::FORBIDDEN,
                "path-escapes-root",
            ),
            (
                "?path=sub/../../lab2".into(),
                StatusCode::FORBIDDEN,
                "path-escapes-root",
            ),
            (
                "?path=escape-dir".into(),
                StatusCode::FORBIDDEN,
                "path-escapes-root",
            ),
            (
                "?path=escape".into(),
                StatusCode::FORBIDDEN,
                "path-escapes-root",
            ),
            (
                format!("?path={raw2}"),
                StatusCode::BAD_REQUEST,
                "path-absolute",
            ),
            (
                "?path=%2Fetc".into(),
                StatusCode::BAD_REQUEST,
                "path-absolute",
            ),
            (
                "?path=sub%00/deep".into(),
                StatusCode::BAD_REQUEST,
                "path-nul-byte",
            ),
            (
                "?path=%FF%FE".into(),
                StatusCode::BAD_REQUEST,
                "path-invalid-utf8",
            ),
            (
                format!("?path={}", "a/".repeat(2100)),
                StatusCode::BAD_REQUEST,
                "path-too-long",
            ),
            (
                "?path=../../../../proc/self/root/etc".into(),
                StatusCode::FORBIDDEN,
                "path-escapes-root",
            ),
            (
                format!("?root={raw2}"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
            ),
            (
                format!("?root={raw2}&path=secret.mrc"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
            ),
        ];
        for (query, status, code) in &attempts {
            let (s, v) = app.get(&format!("{browse}{query}"), &w.alice.1).await;
            assert_eq!(
                (s, v["code"].as_str()),
                (*status, Some(*code)),
                "{}: {v}",
                &query[..query.len().min(60)]
            );
            assert!(
                !v.to_string().contains("unpublished"),
                "nothing of lab2's file leaks"
            );
        }
        let after = denied_events(&app, &w.admin, "browse-lab-data").await;
        assert_eq!(
            after - before,
            attempts.len(),
            "every refused path is audited"
        );

        // The import policy decides who browses: managers only, then facility staff only.
        let (s, _) = app
            .patch(
                &format!("/api/v1/labs/{}", w.lab1),
                &w.admin,
                json!({ "import_policy": "managers" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(app.get(&browse, &w.alice.1).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.get(&browse, &w.carol.1).await.0, StatusCode::OK);
        let (s, _) = app
            .patch(
                &format!("/api/v1/labs/{}", w.lab1),
                &w.admin,
                json!({ "import_policy": "facility_staff" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(app.get(&browse, &w.carol.1).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.get(&browse, &w.admin).await.0, StatusCode::OK);

        // The kernel layer: asked directly, as lab1's account, to read lab2's file, the runner meets
        // EACCES: the check above is not the only thing standing between the labs.
        let account = cryowarden_server::runner::Account {
            user: "cwlab1".into(),
            uid: 2101,
            gid: 2101,
        };
        let err = app
            .state
            .runner
            .stat(&account, &w.disk.raw2, "secret.mrc")
            .await
            .expect_err("lab1 reads lab2's file");
        assert!(
            matches!(&err, cryowarden_server::runner::RunnerError::Refused { code, .. } if code.contains("permission-denied")),
            "{err:?}"
        );
        let err = app
            .state
            .runner
            .list(&account, &w.disk.raw2, "", 0, 10)
            .await
            .expect_err("lab1 lists lab2's root");
        assert!(
            matches!(&err, cryowarden_server::runner::RunnerError::Refused { code, .. } if code.contains("permission-denied"))
        );
    }
);

on_both_backends!(
    members_groups_workspaces_and_live_data_management,
    |app: TestApp| async move {
        let w = world(&app).await;
        let p = create_project(&app, &w.carol.1, w.lab1, "membrane").await;
        let id = p["id"].as_i64().unwrap();
        let dir = w.disk.projects1.join("membrane");
        std::fs::create_dir(dir.join("J1")).unwrap();
        std::fs::write(dir.join("J1/job.log"), b"motion correction done").unwrap();
        std::os::unix::fs::chown(dir.join("J1"), Some(2101), Some(2101)).unwrap();
        std::os::unix::fs::chown(dir.join("J1/job.log"), Some(2101), Some(2101)).unwrap();

        // Members-only projects disappear for the rest of the lab.
        let (s, _) = app
            .patch(
                &format!("/api/v1/projects/{id}"),
                &w.carol.1,
                json!({ "lab_members_read": false }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            app.get(&format!("/api/v1/projects/{id}"), &w.dave.1)
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        // Project members must come from the lab; nobody changes their own membership.
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{id}/members"),
                &w.carol.1,
                json!({ "user_id": w.bob.0, "role": "reader" }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("user_id")),
            "{v}"
        );
        let (s, _) = app
            .post(
                &format!("/api/v1/projects/{id}/members"),
                &w.carol.1,
                json!({ "user_id": w.carol.0, "role": "reader" }),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        // A group gives its members a role.
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{id}/groups"),
                &w.carol.1,
                json!({ "name": "editors", "role": "editor" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let group = v[0]["id"].as_i64().unwrap();
        let (s, v) = app
            .call(
                Method::PUT,
                &format!("/api/v1/projects/{id}/groups/{group}/members/{}", w.dave.0),
                Some(&w.carol.1),
                None,
            )
            .await;
        assert_eq!(
            (s, v[0]["members"][0].as_str()),
            (StatusCode::OK, Some("dave")),
            "{v}"
        );
        let (_, v) = app.get(&format!("/api/v1/projects/{id}"), &w.dave.1).await;
        assert_eq!(v["my_role"].as_str(), Some("editor"), "{v}");
        // An editor is not a project admin: no workspaces, no members, no data management.
        let (s, _) = app
            .post(
                &format!("/api/v1/projects/{id}/workspaces"),
                &w.dave.1,
                json!({ "name": "ws" }),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app
            .post(
                &format!("/api/v1/projects/{id}/data/archive"),
                &w.dave.1,
                json!(null),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Workspaces and folder admins.
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{id}/workspaces"),
                &w.carol.1,
                json!({ "name": "screening" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let ws = v["id"].as_i64().unwrap();
        let (s, v) = app
            .call(
                Method::PUT,
                &format!("/api/v1/projects/{id}/workspaces/{ws}/admins"),
                Some(&w.carol.1),
                Some(json!({ "user_ids": [w.dave.0] })),
            )
            .await;
        assert_eq!(
            (s, v["folder_admins"][0].as_str()),
            (StatusCode::OK, Some("dave")),
            "{v}"
        );
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{id}/workspaces"),
                &w.dave.1,
                json!({ "name": "grid-3", "parent_id": ws }),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::CREATED,
            "a folder admin creates subfolders of their workspace: {v}"
        );
        let (s, _) = app
            .post(
                &format!("/api/v1/projects/{id}/workspaces"),
                &w.dave.1,
                json!({ "name": "top" }),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "but not at the project's top level"
        );

        // Live data management: the permission lets a lab member who is not project admin archive,
        // which makes the data read-only in place.
        let (s, v) = app
            .patch(
                &format!("/api/v1/users/{}", w.dave.0),
                &w.admin,
                json!({ "live_data_management": true }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{id}/data/archive"),
                &w.dave.1,
                json!(null),
            )
            .await;
        assert_eq!(
            (s, v["project"]["status"].as_str()),
            (StatusCode::OK, Some("archived")),
            "{v}"
        );
        assert!(v["files"].as_u64().unwrap() >= 1, "{v}");
        let mode = std::fs::metadata(dir.join("J1/job.log")).unwrap().mode();
        assert_eq!(mode & 0o222, 0, "no write bits left: {mode:o}");
        // Deleting asks for the name; then the directory is gone, removed as the lab's account.
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{id}/data/delete"),
                &w.carol.1,
                json!({ "confirm": "membran" }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("confirm"))
        );
        assert!(dir.exists(), "a wrong confirmation changes nothing");
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{id}/data/delete"),
                &w.carol.1,
                json!({ "confirm": "membrane" }),
            )
            .await;
        assert_eq!(
            (s, v["project"]["status"].as_str()),
            (StatusCode::OK, Some("data_deleted")),
            "{v}"
        );
        assert!(!dir.exists());
        assert!(w.disk.projects1.exists(), "the lab's project root stays");
        // Only admins delete the record.
        assert_eq!(
            app.delete(&format!("/api/v1/projects/{id}"), &w.carol.1)
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.delete(&format!("/api/v1/projects/{id}"), &w.admin)
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        let (_, v) = app
            .get("/api/v1/audit?action=delete-project-data&limit=5", &w.admin)
            .await;
        assert_eq!(v["events"][0]["actor"].as_str(), Some("carol"), "{v}");
        assert!(
            cryowarden_server::audit::verify(&app.state.db)
                .await
                .unwrap()
                .ok
        );
    }
);

on_both_backends!(the_cli_manages_projects, |app: TestApp| async move {
    let w = world(&app).await;
    let (ok, v, err) = app
        .cli(
            &w.carol.1,
            &[
                "project",
                "create",
                "lab1",
                "apoferritin",
                "--title",
                "Apoferritin",
            ],
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(
        (v["title"].as_str(), v["my_role"].as_str()),
        (Some("Apoferritin"), Some("project_admin"))
    );
    assert!(w.disk.projects1.join("apoferritin").is_dir());
    let (ok, _, err) = app
        .cli(
            &w.carol.1,
            &[
                "project",
                "add-member",
                "lab1/apoferritin",
                "dave",
                "--role",
                "editor",
            ],
        )
        .await;
    assert!(ok, "{err}");
    let (ok, v, err) = app
        .cli(&w.carol.1, &["project", "show", "lab1/apoferritin"])
        .await;
    assert!(ok, "{err}");
    let members: Vec<(&str, &str)> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["username"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(members, [("carol", "project_admin"), ("dave", "editor")]);
    let (ok, v, err) = app
        .cli(&w.dave.1, &["project", "list", "--lab", "lab1"])
        .await;
    assert!(ok, "{err}");
    assert_eq!(v["total"].as_i64(), Some(1));
    // lab2's member cannot name lab1's project, by id or by name.
    let id = v["projects"][0]["id"].as_i64().unwrap().to_string();
    let (ok, _, err) = app.cli(&w.bob.1, &["project", "show", &id]).await;
    assert!(!ok && err.contains("no such project"), "{err}");
    let (ok, _, err) = app
        .cli(&w.bob.1, &["project", "show", "lab1/apoferritin"])
        .await;
    assert!(!ok && err.contains("lab1"), "{err}");
    let (ok, _, err) = app
        .cli(
            &w.carol.1,
            &["project", "remove-member", "lab1/apoferritin", "dave"],
        )
        .await;
    assert!(ok, "{err}");
    let (_, v, _) = app
        .cli(&w.carol.1, &["project", "show", "lab1/apoferritin"])
        .await;
    assert_eq!(v["members"].as_array().map(Vec::len), Some(1));
});

/// Percent-encodes every byte that is not unreserved, so the request reaches the server byte for
/// byte (NUL, invalid UTF-8 and all).
fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

on_both_backends!(
    the_escape_corpus_is_refused_end_to_end_and_nothing_outside_is_opened,
    |app: TestApp| async move {
        use cryowarden_paths::corpus;
        common::unix::unix_accounts();
        let t = app.dir.path().join("corpus");
        std::fs::create_dir(&t).unwrap();
        corpus::build_tree(&t);
        // Only the path layer stands between the root and the outside here: lab1's account could
        // read the outside if a path ever led there.
        let chown = std::process::Command::new("chown")
            .args(["-hR", "cwlab1:cwlab1"])
            .arg(t.join("root"))
            .output()
            .unwrap();
        assert!(chown.status.success());
        let admin = app.site_admin().await;
        let mut labs = Vec::new();
        for (name, root) in [("corpus1", t.join("root")), ("corpus2", t.join("outside"))] {
            let (_, v) = app
                .post("/api/v1/labs", &admin, json!({ "name": name }))
                .await;
            let id = v["id"].as_i64().unwrap();
            let roots = json!({ "data_roots": [root] });
            let (s, v) = app
                .call(
                    Method::PUT,
                    &format!("/api/v1/labs/{id}/roots"),
                    Some(&admin),
                    Some(roots),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            labs.push(id);
        }
        let account = json!({ "user": "cwlab1" });
        let (s, _) = app
            .call(
                Method::PUT,
                &format!("/api/v1/labs/{}/unix-account", labs[0]),
                Some(&admin),
                Some(account),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (alice, token) = app.user(&admin, "alice", "none").await;
        let (s, _) = app
            .post(
                &format!("/api/v1/labs/{}/members", labs[0]),
                &admin,
                json!({ "user_id": alice, "role": "member" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);

        const REFUSALS: &[&str] = &[
            "path-absolute",
            "path-nul-byte",
            "path-invalid-utf8",
            "path-too-long",
            "path-component-too-long",
            "path-control-character",
            "path-escapes-root",
            "path-symlink-loop",
        ];
        let watch = corpus::Watch::new(&[t.join("outside"), t.join("outside/sub")]);
        let before = denied_events(&app, &admin, "browse-lab-data").await;
        let (mut refused, mut inside) = (0, 0);
        for (line, expected, request) in corpus::corpus() {
            let (s, v) = app
                .get(
                    &format!("/api/v1/labs/{}/browse?path={}", labs[0], encode(&request)),
                    &token,
                )
                .await;
            let code = v["code"].as_str().unwrap_or("");
            if REFUSALS.contains(&expected.as_str()) {
                assert_eq!(
                    (code, s.is_client_error()),
                    (expected.as_str(), true),
                    "corpus line {line}: {v}"
                );
                refused += 1;
            } else {
                assert!(
                    !REFUSALS.contains(&code),
                    "corpus line {line} stays inside the root: {v}"
                );
                inside += 1;
            }
        }
        assert!(refused >= 60, "{refused} escape attempts");
        assert!(inside >= 40, "{inside} requests inside the root");
        assert_eq!(watch.events(&[]), [], "nothing outside the root was opened");
        let after = denied_events(&app, &admin, "browse-lab-data").await;
        assert_eq!(after - before, refused, "each refused path is audited");
        // The watch does see opens: reading the outside directly shows up.
        std::fs::read(t.join("outside/secret.txt")).unwrap();
        assert!(!watch.events(&[]).is_empty(), "the inotify watch works");
    }
);

on_both_backends!(
    project_pages_follow_the_name_order_by_number_and_by_cursor,
    |app: TestApp| async move {
        let w = world(&app).await;
        for i in 0..7 {
            create_project(&app, &w.alice.1, w.lab1, &format!("p{i}")).await;
        }
        create_project(&app, &w.bob.1, w.lab2, "p3b").await;
        let mut by_cursor = Vec::new();
        let mut url = "/api/v1/projects?per_page=3".to_owned();
        loop {
            let (s, v) = app.get(&url, &w.dave.1).await;
            assert_eq!((s, v["total"].as_i64()), (StatusCode::OK, Some(7)), "{v}");
            by_cursor.extend(names(&v));
            match v["next"].as_str() {
                Some(next) => url = format!("/api/v1/projects?per_page=3&after={next}"),
                None => break,
            }
        }
        let mut by_number = Vec::new();
        for page in 1..=3 {
            let (_, v) = app
                .get(
                    &format!("/api/v1/projects?per_page=3&page={page}"),
                    &w.dave.1,
                )
                .await;
            by_number.extend(names(&v));
        }
        let expected: Vec<String> = (0..7).map(|i| format!("p{i}")).collect();
        assert_eq!(
            (&by_cursor, &by_number),
            (&expected, &expected),
            "lab2's p3b never shows"
        );
        for bad in ["x", "12", "1:../p", "a:p1"] {
            let (s, v) = app
                .get(&format!("/api/v1/projects?after={bad}"), &w.dave.1)
                .await;
            assert_eq!(
                (s, v["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("after")),
                "{bad}: {v}"
            );
        }
    }
);
