//! Labs (site groups) through real HTTP, on SQLite and on PostgreSQL: lifecycle, members,
//! visibility, the Application Admin's limits, storage roots and the Unix account.

mod common;

use common::{Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn create_lab(app: &TestApp, token: &str, name: &str) -> i64 {
    let (s, v) = app
        .post("/api/v1/labs", token, json!({ "name": name }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_i64().expect("id")
}

fn assert_problem(got: &(StatusCode, Value), status: StatusCode, field: &str) {
    assert_eq!(
        (got.0, got.1["field"].as_str()),
        (status, Some(field)),
        "{}",
        got.1
    );
}

on_both_backends!(
    labs_are_created_listed_renamed_and_deleted_only_when_empty,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (s, v) = app
            .post(
                "/api/v1/labs",
                &admin,
                json!({ "name": "Scheres", "title": "Scheres lab", "import_policy": "managers" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["id"].as_i64().unwrap();
        assert_eq!(
            (
                v["name"].as_str(),
                v["title"].as_str(),
                v["import_policy"].as_str(),
                v["member_count"].as_i64()
            ),
            (
                Some("Scheres"),
                Some("Scheres lab"),
                Some("managers"),
                Some(0)
            )
        );
        assert_eq!(
            (
                v["data_roots"].as_array().map(Vec::len),
                v["project_root"].is_null()
            ),
            (Some(0), true)
        );
        let other = create_lab(&app, &admin, "aardvark").await;
        let (_, v) = app.get(&format!("/api/v1/labs/{other}"), &admin).await;
        assert_eq!(
            (v["title"].as_str(), v["import_policy"].as_str()),
            (Some("aardvark"), Some("all_members"))
        );

        // Names are unique regardless of case.
        let dup = app
            .post("/api/v1/labs", &admin, json!({ "name": "scheres" }))
            .await;
        assert_problem(&dup, StatusCode::CONFLICT, "name");

        let (s, v) = app.get("/api/v1/labs", &admin).await;
        assert_eq!(s, StatusCode::OK);
        let names: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["aardvark", "Scheres"]);

        let (s, v) = app
            .patch(
                &format!("/api/v1/labs/{id}"),
                &admin,
                json!({ "name": "scheres-lmb", "import_policy": "facility_staff" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (v["name"].as_str(), v["import_policy"].as_str()),
            (Some("scheres-lmb"), Some("facility_staff"))
        );
        let renamed = app
            .patch(
                &format!("/api/v1/labs/{id}"),
                &admin,
                json!({ "name": "AARDVARK" }),
            )
            .await;
        assert_problem(&renamed, StatusCode::CONFLICT, "name");

        // Not while it has a member.
        let (student, _) = app.user(&admin, "student", "none").await;
        let (s, _) = app
            .post(
                &format!("/api/v1/labs/{id}/members"),
                &admin,
                json!({ "user_id": student, "role": "member" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let refused = app.delete(&format!("/api/v1/labs/{id}"), &admin).await;
        assert_problem(&refused, StatusCode::CONFLICT, "lab");
        assert!(
            refused.1["detail"]
                .as_str()
                .unwrap()
                .contains("remove its members and storage roots first"),
            "{}",
            refused.1
        );
        let (s, _) = app
            .delete(&format!("/api/v1/labs/{id}/members/{student}"), &admin)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = app.delete(&format!("/api/v1/labs/{id}"), &admin).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = app.get(&format!("/api/v1/labs/{id}"), &admin).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, v) = app
            .get("/api/v1/audit?action=delete-lab&limit=5", &admin)
            .await;
        assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
    }
);

on_both_backends!(
    members_are_added_changed_removed_and_exported,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let lab = create_lab(&app, &admin, "kuehlbrandt").await;
        let (alice, _) = app.user(&admin, "alice", "none").await;
        let (bob, _) = app.user(&admin, "bob", "none").await;
        app.patch(
            &format!("/api/v1/users/{bob}"),
            &admin,
            json!({ "first_name": "Bob, Jr.", "last_name": "=cmd()" }),
        )
        .await;
        let members = format!("/api/v1/labs/{lab}/members");
        for (who, role) in [(alice, "manager"), (bob, "member")] {
            let (s, v) = app
                .post(&members, &admin, json!({ "user_id": who, "role": role }))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        let (_, v) = app.get(&format!("/api/v1/labs/{lab}"), &admin).await;
        assert_eq!(v["member_count"], 2);
        // The same call changes a role.
        let (s, _) = app
            .post(
                &members,
                &admin,
                json!({ "user_id": bob, "role": "manager" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (_, v) = app.get(&members, &admin).await;
        let roles: Vec<(&str, &str)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["username"].as_str().unwrap(),
                    m["lab_role"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(roles, [("alice", "manager"), ("bob", "manager")]);
        let (_, v) = app
            .get(
                "/api/v1/audit?action=change-lab-member-role&limit=5",
                &admin,
            )
            .await;
        assert_eq!(v["events"][0]["before"]["lab_role"], "member", "{v}");

        let resp = app
            .http
            .get(format!("{}/api/v1/labs/{lab}/members.csv", app.url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let csv = resp.text().await.unwrap();
        assert_eq!(
            csv,
            "username,email,first_name,last_name,lab_role\r\n\
         alice,alice@lab.example,,,manager\r\n\
         bob,bob@lab.example,\"Bob, Jr.\",'=cmd(),manager\r\n"
        );

        let (s, _) = app.delete(&format!("{members}/{alice}"), &admin).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = app.delete(&format!("{members}/{alice}"), &admin).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "not a member any more");
        let (_, v) = app.get(&members, &admin).await;
        assert_eq!(v.as_array().unwrap().len(), 1);
        let (s, _) = app.delete(&format!("{members}/abc"), &admin).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
);

on_both_backends!(
    a_member_sees_only_their_lab_and_cannot_change_it,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let mine = create_lab(&app, &admin, "mine").await;
        let theirs = create_lab(&app, &admin, "theirs").await;
        let (alice, alice_token) = app.user(&admin, "alice", "none").await;
        let (bob, _) = app.user(&admin, "bob", "none").await;
        app.post(
            &format!("/api/v1/labs/{mine}/members"),
            &admin,
            json!({ "user_id": alice, "role": "manager" }),
        )
        .await;

        let (s, v) = app.get("/api/v1/labs", &alice_token).await;
        assert_eq!(s, StatusCode::OK);
        let ids: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [mine]);
        let (s, v) = app.get(&format!("/api/v1/labs/{mine}"), &alice_token).await;
        assert_eq!((s, v["name"].as_str()), (StatusCode::OK, Some("mine")));
        let (s, v) = app
            .get(&format!("/api/v1/labs/{mine}/members"), &alice_token)
            .await;
        assert_eq!((s, v.as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
        for path in [
            format!("/api/v1/labs/{theirs}"),
            format!("/api/v1/labs/{theirs}/members"),
        ] {
            let (s, _) = app.get(&path, &alice_token).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        }
        let before = app.audit_len().await;
        let changes = [
            (
                Method::PATCH,
                format!("/api/v1/labs/{mine}"),
                Some(json!({ "title": "Mine now" })),
            ),
            (
                Method::POST,
                format!("/api/v1/labs/{mine}/members"),
                Some(json!({ "user_id": bob, "role": "member" })),
            ),
            (
                Method::DELETE,
                format!("/api/v1/labs/{mine}/members/{alice}"),
                None,
            ),
            (Method::DELETE, format!("/api/v1/labs/{mine}"), None),
            (
                Method::GET,
                format!("/api/v1/labs/{mine}/members.csv"),
                None,
            ),
            (
                Method::POST,
                "/api/v1/labs".to_owned(),
                Some(json!({ "name": "new" })),
            ),
        ];
        for (method, path, body) in &changes {
            let (s, v) = app
                .call(method.clone(), path, Some(&alice_token), body.clone())
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        }
        assert_eq!(
            app.audit_len().await,
            before + changes.len() as i64,
            "each refusal is audited"
        );
        let (_, v) = app.get(&format!("/api/v1/labs/{mine}"), &admin).await;
        assert_eq!(
            (v["title"].as_str(), v["member_count"].as_i64()),
            (Some("mine"), Some(1))
        );
        let (_, v) = app.get("/api/v1/labs", &admin).await;
        assert_eq!(v.as_array().unwrap().len(), 2);
    }
);

on_both_backends!(
    an_application_admin_manages_labs_but_not_site_admins_or_storage,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (other_sa, _) = app.user(&admin, "second-head", "site_admin").await;
        let (_, aa) = app.user(&admin, "hpc-staff", "application_admin").await;
        let (student, _) = app.user(&admin, "student", "none").await;
        let (_, troubleshooter) = app.user(&admin, "helper", "troubleshooter").await;

        let lab = create_lab(&app, &aa, "lab-by-aa").await;
        let (s, _) = app
            .patch(
                &format!("/api/v1/labs/{lab}"),
                &aa,
                json!({ "title": "Renamed" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app
            .post(
                &format!("/api/v1/labs/{lab}/members"),
                &aa,
                json!({ "user_id": student, "role": "member" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        // A Site Admin's membership is the Site Admins' business.
        let (s, _) = app
            .post(
                &format!("/api/v1/labs/{lab}/members"),
                &admin,
                json!({ "user_id": other_sa, "role": "member" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);

        let before = app.audit_len().await;
        let dir = app.dir.path().join("aa-root");
        std::fs::create_dir(&dir).unwrap();
        let refusals = [
            (
                Method::POST,
                format!("/api/v1/labs/{lab}/members"),
                Some(json!({ "user_id": other_sa, "role": "manager" })),
            ),
            (
                Method::DELETE,
                format!("/api/v1/labs/{lab}/members/{other_sa}"),
                None,
            ),
            (
                Method::PUT,
                format!("/api/v1/labs/{lab}/roots"),
                Some(json!({ "data_roots": [dir.to_str().unwrap()] })),
            ),
            (
                Method::PUT,
                format!("/api/v1/labs/{lab}/unix-account"),
                Some(json!({ "user": "nobody" })),
            ),
        ];
        for (method, path, body) in &refusals {
            let (s, v) = app
                .call(method.clone(), path, Some(&aa), body.clone())
                .await;
            assert_eq!(
                (s, v["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("forbidden")),
                "{method} {path}: {v}"
            );
        }
        assert_eq!(app.audit_len().await, before + refusals.len() as i64);
        let (_, denied) = app
            .get(
                "/api/v1/audit?outcome=denied&actor=hpc-staff&limit=50",
                &admin,
            )
            .await;
        let actions: Vec<&str> = denied["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions.len(), refusals.len(), "{denied}");
        assert_eq!(
            actions
                .iter()
                .filter(|a| a.contains("update-site-groups"))
                .count(),
            2,
            "{actions:?}"
        );
        let (_, v) = app
            .get(&format!("/api/v1/labs/{lab}/members"), &admin)
            .await;
        let roles: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["lab_role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["member", "member"], "nothing changed");
        let (_, v) = app.get(&format!("/api/v1/labs/{lab}"), &admin).await;
        assert_eq!(
            (
                v["data_roots"].as_array().unwrap().len(),
                v["unix_user"].is_null()
            ),
            (0, true)
        );

        // Troubleshooters see every lab, read-only.
        let (s, v) = app.get("/api/v1/labs", &troubleshooter).await;
        assert_eq!((s, v.as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
        let (s, _) = app
            .patch(
                &format!("/api/v1/labs/{lab}"),
                &troubleshooter,
                json!({ "title": "x" }),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
);

on_both_backends!(
    storage_roots_are_real_unnested_directories,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let lab1 = create_lab(&app, &admin, "lab1").await;
        let lab10 = create_lab(&app, &admin, "lab10").await;
        let base = app.dir.path().join("x");
        for d in ["lab1/deep", "lab1-projects", "lab10", "shared", "other"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("a-file"), b"not a dir").unwrap();
        std::os::unix::fs::symlink(base.join("other"), base.join("link")).unwrap();
        let p = |rel: &str| base.join(rel).to_str().unwrap().to_owned();
        let roots = |lab: i64| format!("/api/v1/labs/{lab}/roots");

        let (s, v) = app
            .call(
                Method::PUT,
                &roots(lab1),
                Some(&admin),
                Some(json!({ "data_roots": [p("lab1")], "project_root": p("lab1-projects") })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["data_roots"], json!([p("lab1")]));
        assert_eq!(v["project_root"], p("lab1-projects"));
        // `/x/lab1` and `/x/lab10` are not nested: lab10 gets /x/lab10.
        let (s, v) = app
            .call(
                Method::PUT,
                &roots(lab10),
                Some(&admin),
                Some(json!({ "data_roots": [p("lab10")] })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");

        let before = app.get(&format!("/api/v1/labs/{lab10}"), &admin).await.1;
        let nested_path = format!("{}/./x", p("lab10"));
        let dotdot = format!("{}/../lab1", p("lab10"));
        let long = format!("/{}", "a".repeat(4100));
        let bad: Vec<(Value, &str, String)> = vec![
            (
                json!({ "data_roots": ["relative/path"] }),
                "data_roots",
                "relative/path".into(),
            ),
            (
                json!({ "data_roots": [dotdot.clone()] }),
                "data_roots",
                dotdot.clone(),
            ),
            (
                json!({ "data_roots": [nested_path.clone()] }),
                "data_roots",
                nested_path.clone(),
            ),
            (
                json!({ "data_roots": [p("missing")] }),
                "data_roots",
                p("missing"),
            ),
            (
                json!({ "data_roots": [p("a-file")] }),
                "data_roots",
                p("a-file"),
            ),
            (
                json!({ "data_roots": [p("link")] }),
                "data_roots",
                p("link"),
            ),
            (
                json!({ "data_roots": [long.clone()] }),
                "data_roots",
                "4096".into(),
            ),
            (
                json!({ "data_roots": [], "project_root": "projects" }),
                "project_root",
                "projects".into(),
            ),
            // Inside another lab's root, and containing another lab's root.
            (
                json!({ "data_roots": [p("lab1/deep")] }),
                "data_roots",
                p("lab1/deep"),
            ),
            (
                json!({ "data_roots": [base.to_str().unwrap()] }),
                "data_roots",
                base.to_str().unwrap().to_owned(),
            ),
            (
                json!({ "data_roots": [], "project_root": p("lab1-projects") }),
                "project_root",
                p("lab1-projects"),
            ),
            (
                json!({ "data_roots": [p("shared")], "project_root": p("shared") }),
                "project_root",
                p("shared"),
            ),
        ];
        for (body, field, named) in &bad {
            let got = app
                .call(Method::PUT, &roots(lab10), Some(&admin), Some(body.clone()))
                .await;
            assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, field);
            let detail = got.1["detail"].as_str().unwrap();
            assert!(
                detail.contains(named.chars().take(150).collect::<String>().as_str()),
                "{body}: {detail}"
            );
        }
        let (_, after) = app.get(&format!("/api/v1/labs/{lab10}"), &admin).await;
        assert_eq!(after, before, "refusals change nothing");

        // A lab's own roots may nest (data below its project root is its own business); roots can be cleared.
        let (s, v) = app
            .call(
                Method::PUT,
                &roots(lab10),
                Some(&admin),
                Some(json!({ "data_roots": [p("lab10"), p("shared")], "project_root": null })),
            )
            .await;
        assert_eq!(
            (s, v["data_roots"].as_array().map(Vec::len)),
            (StatusCode::OK, Some(2)),
            "{v}"
        );
        let (s, v) = app
            .call(
                Method::PUT,
                &roots(lab10),
                Some(&admin),
                Some(json!({ "data_roots": [] })),
            )
            .await;
        assert_eq!(
            (s, v["data_roots"].as_array().map(Vec::len)),
            (StatusCode::OK, Some(0))
        );
        let (s, _) = app.delete(&format!("/api/v1/labs/{lab10}"), &admin).await;
        assert_eq!(
            s,
            StatusCode::NO_CONTENT,
            "a lab without roots and members can go"
        );
        let refused = app.delete(&format!("/api/v1/labs/{lab1}"), &admin).await;
        assert_problem(&refused, StatusCode::CONFLICT, "lab");
        let (_, v) = app
            .get("/api/v1/audit?action=set-lab-roots&limit=10", &admin)
            .await;
        assert_eq!(v["events"].as_array().unwrap().len(), 4, "{v}");
    }
);

use common::unix::unix_accounts;

on_both_backends!(
    the_unix_account_is_a_real_ordinary_account,
    |app: TestApp| async move {
        unix_accounts();
        let admin = app.site_admin().await;
        let lab = create_lab(&app, &admin, "unixlab").await;
        let path = format!("/api/v1/labs/{lab}/unix-account");
        let (s, v) = app
            .call(
                Method::PUT,
                &path,
                Some(&admin),
                Some(json!({ "user": "cwlab1", "group": null })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (
                v["unix_user"].as_str(),
                v["uid"].as_i64(),
                v["unix_group"].as_str()
            ),
            (Some("cwlab1"), Some(2101), Some("cwlab1"))
        );
        let group = std::process::Command::new("getent")
            .args(["group", "cwlab1"])
            .output()
            .unwrap();
        let gid: i64 = String::from_utf8(group.stdout)
            .unwrap()
            .split(':')
            .nth(2)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(v["gid"].as_i64(), Some(gid));
        let (s, v) = app
            .call(
                Method::PUT,
                &path,
                Some(&admin),
                Some(json!({ "user": "cwlab2", "group": "cwlab1" })),
            )
            .await;
        assert_eq!(
            (s, v["uid"].as_i64(), v["unix_group"].as_str()),
            (StatusCode::OK, Some(2102), Some("cwlab1")),
            "{v}"
        );

        let before = app.get(&format!("/api/v1/labs/{lab}"), &admin).await.1;
        let bad = [
            (json!({ "user": "cw-no-such-user" }), "unix_user"),
            (json!({ "user": "daemon" }), "unix_user"),
            (json!({ "user": "root" }), "unix_user"),
            (json!({ "user": "" }), "unix_user"),
            (
                json!({ "user": "cwlab1", "group": "cw-no-such-group" }),
                "unix_group",
            ),
            (json!({ "user": "cwlab1", "group": "root" }), "unix_group"),
        ];
        for (body, field) in &bad {
            let got = app
                .call(Method::PUT, &path, Some(&admin), Some(body.clone()))
                .await;
            assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, field);
        }
        let unknown = app
            .call(
                Method::PUT,
                &path,
                Some(&admin),
                Some(json!({ "user": "cwlab1", "uid": 0 })),
            )
            .await;
        assert_problem(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "uid");
        assert_eq!(
            app.get(&format!("/api/v1/labs/{lab}"), &admin).await.1,
            before,
            "refusals change nothing"
        );
    }
);

on_both_backends!(
    bad_input_is_refused_and_changes_nothing,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let lab = create_lab(&app, &admin, "steady").await;
        let (student, _) = app.user(&admin, "student", "none").await;
        let audit_before = app.audit_len().await;
        let labs_before = app.get("/api/v1/labs", &admin).await.1;
        let members = format!("/api/v1/labs/{lab}/members");
        let cases: Vec<(Method, String, Value, StatusCode, &str)> = vec![
            (
                Method::POST,
                "/api/v1/labs".into(),
                json!({ "name": "x", "colour": "red" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "colour",
            ),
            (
                Method::POST,
                "/api/v1/labs".into(),
                json!({ "name": "a".repeat(65) }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "name",
            ),
            (
                Method::POST,
                "/api/v1/labs".into(),
                json!({ "name": "" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "name",
            ),
            (
                Method::POST,
                "/api/v1/labs".into(),
                json!({ "name": "no spaces" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "name",
            ),
            (
                Method::POST,
                "/api/v1/labs".into(),
                json!({ "name": "ok", "title": "t".repeat(101) }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "title",
            ),
            (
                Method::POST,
                "/api/v1/labs".into(),
                json!({ "name": "ok", "import_policy": "everyone" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "import_policy",
            ),
            (
                Method::PATCH,
                format!("/api/v1/labs/{lab}"),
                json!({ "import_policy": "nobody" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "import_policy",
            ),
            (
                Method::PATCH,
                format!("/api/v1/labs/{lab}"),
                json!({ "name": "b".repeat(65) }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "name",
            ),
            (
                Method::PATCH,
                format!("/api/v1/labs/{lab}"),
                json!({ "owner": 1 }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "owner",
            ),
            (
                Method::POST,
                members.clone(),
                json!({ "user_id": student, "role": "boss" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "role",
            ),
            (
                Method::POST,
                members.clone(),
                json!({ "user_id": 99999, "role": "member" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "user_id",
            ),
            (
                Method::POST,
                members.clone(),
                json!({ "user_id": student, "role": "member", "x": 1 }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "x",
            ),
            (
                Method::PUT,
                format!("/api/v1/labs/{lab}/roots"),
                json!({ "data_roots": [], "extra": 1 }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "extra",
            ),
            (
                Method::PUT,
                format!("/api/v1/labs/{lab}/roots"),
                json!({ "project_root": null }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "data_roots",
            ),
        ];
        for (method, path, body, status, field) in &cases {
            let got = app
                .call(method.clone(), path, Some(&admin), Some(body.clone()))
                .await;
            assert_problem(&got, *status, field);
        }
        let (s, _) = app.get("/api/v1/labs/0", &admin).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = app.get("/api/v1/labs/424242", &admin).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(app.audit_len().await, audit_before, "nothing was recorded");
        assert_eq!(
            app.get("/api/v1/labs", &admin).await.1,
            labs_before,
            "nothing changed"
        );
    }
);

on_both_backends!(the_cli_manages_labs, |app: TestApp| async move {
    unix_accounts();
    let admin = app.site_admin().await;
    app.user(&admin, "carol", "none").await;
    let root = app.dir.path().join("cli-data");
    std::fs::create_dir(&root).unwrap();
    let (ok, v, err) = app
        .cli(&admin, &["lab", "create", "cli-lab", "--title", "CLI lab"])
        .await;
    assert!(ok, "{err}");
    assert_eq!(v["title"], "CLI lab");
    let (ok, v, err) = app
        .cli(
            &admin,
            &["lab", "add-member", "cli-lab", "carol", "--role", "manager"],
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(v["member_count"], 1);
    let (ok, _, err) = app
        .cli(
            &admin,
            &[
                "lab",
                "set-roots",
                "cli-lab",
                "--data-root",
                root.to_str().unwrap(),
            ],
        )
        .await;
    assert!(ok, "{err}");
    let (ok, _, err) = app
        .cli(&admin, &["lab", "set-unix-account", "cli-lab", "cwlab1"])
        .await;
    assert!(ok, "{err}");
    let (ok, _, err) = app
        .cli(&admin, &["lab", "set-import-policy", "cli-lab", "managers"])
        .await;
    assert!(ok, "{err}");
    let (ok, v, err) = app.cli(&admin, &["lab", "show", "cli-lab"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        (
            v["import_policy"].as_str(),
            v["unix_user"].as_str(),
            v["members"][0]["lab_role"].as_str()
        ),
        (Some("managers"), Some("cwlab1"), Some("manager"))
    );
    assert_eq!(
        v["data_roots"],
        json!([root.canonicalize().unwrap().to_str().unwrap()])
    );
    let (ok, v, _) = app.cli(&admin, &["lab", "list"]).await;
    assert!(ok);
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    let (ok, _, err) = app
        .cli(&admin, &["lab", "set-unix-account", "cli-lab", "daemon"])
        .await;
    assert!(!ok && err.contains("unix_user"), "{err}");
    let (ok, _, err) = app
        .cli(&admin, &["lab", "remove-member", "cli-lab", "carol"])
        .await;
    assert!(ok, "{err}");
    let (_, v, _) = app.cli(&admin, &["lab", "show", "cli-lab"]).await;
    assert_eq!(v["members"].as_array().map(Vec::len), Some(0));
});

on_both_backends!(
    new_labs_take_the_instance_default_import_policy,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (_, aa) = app.user(&admin, "appadmin", "application_admin").await;
        let (s, v) = app
            .patch(
                "/api/v1/settings/instance",
                &aa,
                json!({ "default_import_policy": "managers" }),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "storage-roots is a Site Admin's setting: {v}"
        );
        let (s, v) = app
            .patch(
                "/api/v1/settings/instance",
                &admin,
                json!({ "default_import_policy": "anyone" }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("default_import_policy")
            ),
            "{v}"
        );
        let (s, v) = app
            .patch(
                "/api/v1/settings/instance",
                &admin,
                json!({ "default_import_policy": "managers" }),
            )
            .await;
        assert_eq!(
            (s, v["default_import_policy"].as_str()),
            (StatusCode::OK, Some("managers")),
            "{v}"
        );
        let (_, v) = app
            .post("/api/v1/labs", &aa, json!({ "name": "newlab" }))
            .await;
        assert_eq!(v["import_policy"].as_str(), Some("managers"), "{v}");
        let (_, v) = app
            .post(
                "/api/v1/labs",
                &aa,
                json!({ "name": "openlab", "import_policy": "all_members" }),
            )
            .await;
        assert_eq!(
            v["import_policy"].as_str(),
            Some("all_members"),
            "an explicit policy wins: {v}"
        );
    }
);
