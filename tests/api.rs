//! The REST API through real HTTP, on SQLite and on PostgreSQL.

mod common;

use common::{ADMIN_PASSWORD, Backend, TestApp, USER_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    first_site_admin_registers_once_with_the_bootstrap_token,
    |app: TestApp| async move {
        let token = app
            .state
            .auth
            .bootstrap_token(&app.state.db)
            .await
            .unwrap()
            .unwrap();
        let body = json!({ "token": token.expose(), "password": ADMIN_PASSWORD, "username": "Head", "email": "head@facility.example" });
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["user"]["site_role"], "site_admin");
        assert_eq!(v["user"]["status"], "active");
        // Single use: the same token again, even with another name, is refused and creates nobody.
        let again = json!({ "token": token.expose(), "password": ADMIN_PASSWORD, "username": "Other", "email": "o@facility.example" });
        let (s, v) = app
            .call(Method::POST, "/api/v1/auth/register", None, Some(again))
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid-token"))
        );
        assert!(
            app.state
                .auth
                .bootstrap_token(&app.state.db)
                .await
                .unwrap()
                .is_none(),
            "no bootstrap token once a user exists"
        );
        // Usernames are case-insensitive at login.
        let admin = app.api_token("head", ADMIN_PASSWORD).await;
        let (s, me) = app.get("/api/v1/users/me", &admin).await;
        assert_eq!((s, me["username"].as_str()), (StatusCode::OK, Some("Head")));
        assert!(me.get("password_hash").is_none());
    }
);

on_both_backends!(
    a_user_is_invited_registers_and_is_managed,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (s, v) = app
        .post(
            "/api/v1/users",
            &admin,
            json!({ "username": "alice", "email": "Alice@Lab.example", "first_name": "Alice", "last_name": "Liddell" }),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["user"]["id"].as_i64().unwrap();
        assert_eq!(v["user"]["status"], "invited");
        let reg = v["registration"]["token"].as_str().unwrap().to_owned();
        assert!(reg.len() >= 32 + 4, "at least 128 bits of token");
        assert!(
            v["registration"]["path"]
                .as_str()
                .unwrap()
                .starts_with("/register?token=")
        );

        // Weak and common passwords are refused and leave the user invited.
        for weak in ["short", "password123456", "123456789012345"] {
            let (s, v) = app
                .call(
                    Method::POST,
                    "/api/v1/auth/register",
                    None,
                    Some(json!({ "token": reg, "password": weak })),
                )
                .await;
            assert_eq!(
                (s, v["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("password")),
                "{weak}: {v}"
            );
        }
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({ "token": reg, "password": USER_PASSWORD })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let alice = app.api_token("alice", USER_PASSWORD).await;

        // She edits her own details but not her role, and cannot see others.
        let (s, v) = app
            .patch(
                &format!("/api/v1/users/{id}"),
                &alice,
                json!({ "first_name": "Al" }),
            )
            .await;
        assert_eq!((s, v["first_name"].as_str()), (StatusCode::OK, Some("Al")));
        let (s, v) = app
            .patch(
                &format!("/api/v1/users/{id}"),
                &alice,
                json!({ "site_role": "site_admin" }),
            )
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );
        let (s, v) = app.get("/api/v1/users", &alice).await;
        assert_eq!(
            (s, v["total"].as_i64()),
            (StatusCode::OK, Some(1)),
            "an ordinary user sees only themselves"
        );
        let (s, _) = app.get("/api/v1/users/1", &alice).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app
            .post(
                "/api/v1/users",
                &alice,
                json!({ "username": "mallory", "email": "m@x.example" }),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // The admin changes her email, permissions and default priority.
        let (s, v) = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &admin,
            json!({ "email": "alice@new.example", "job_priority_management": true, "default_job_priority": 70 }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (
                v["email"].as_str(),
                v["job_priority_management"].as_bool(),
                v["default_job_priority"].as_i64()
            ),
            (Some("alice@new.example"), Some(true), Some(70))
        );
        let (_, v) = app
            .patch(
                &format!("/api/v1/users/{id}"),
                &admin,
                json!({ "default_job_priority": null }),
            )
            .await;
        assert!(
            v["default_job_priority"].is_null(),
            "null returns to the instance default"
        );

        // Deactivation revokes her token at once; activation does not bring it back.
        let (s, v) = app
            .patch(
                &format!("/api/v1/users/{id}"),
                &admin,
                json!({ "status": "deactivated" }),
            )
            .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("deactivated"))
        );
        let (s, _) = app.get("/api/v1/users/me", &alice).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "username": "alice", "password": USER_PASSWORD })),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "a deactivated user cannot sign in"
        );
        app.patch(
            &format!("/api/v1/users/{id}"),
            &admin,
            json!({ "status": "active" }),
        )
        .await;
        let (s, _) = app.get("/api/v1/users/me", &alice).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);

        // A reset token sets a new password; the old one stops working; the token is single-use.
        let (s, v) = app
            .post(
                &format!("/api/v1/users/{id}/reset-token"),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(
            (s, v["kind"].as_str()),
            (StatusCode::CREATED, Some("reset"))
        );
        let reset = v["token"].as_str().unwrap().to_owned();
        let new_password = "an entirely new passphrase";
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/reset",
                None,
                Some(json!({ "token": reset, "password": new_password })),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/reset",
                None,
                Some(json!({ "token": reset, "password": "yet another passphrase" })),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "username": "alice", "password": USER_PASSWORD })),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let alice = app.api_token("alice", new_password).await;

        // Deletion is immediate and permanent.
        let (s, _) = app.delete(&format!("/api/v1/users/{id}"), &admin).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = app.get("/api/v1/users/me", &alice).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = app.get(&format!("/api/v1/users/{id}"), &admin).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "username": "alice", "password": new_password })),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (_, v) = app.get("/api/v1/audit/verify", &admin).await;
        assert_eq!(v["ok"], true, "{v}");
    }
);

on_both_backends!(
    application_admins_have_no_power_over_site_admins,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (other_sa, _) = app.user(&admin, "second-head", "site_admin").await;
        let (aa_id, aa) = app.user(&admin, "hpc-staff", "application_admin").await;
        let (student, _) = app.user(&admin, "student", "none").await;
        let before = app.audit_len().await;
        let users_before = app.get("/api/v1/users?per_page=500", &admin).await.1;

        let refusals = [
            (Method::DELETE, format!("/api/v1/users/{other_sa}"), None),
            (
                Method::PATCH,
                format!("/api/v1/users/{other_sa}"),
                Some(json!({ "status": "deactivated" })),
            ),
            (
                Method::PATCH,
                format!("/api/v1/users/{other_sa}"),
                Some(json!({ "email": "x@y.example" })),
            ),
            (
                Method::PATCH,
                format!("/api/v1/users/{other_sa}"),
                Some(json!({ "site_role": "none" })),
            ),
            (
                Method::POST,
                format!("/api/v1/users/{other_sa}/reset-token"),
                Some(json!({})),
            ),
            (
                Method::PATCH,
                format!("/api/v1/users/{student}"),
                Some(json!({ "site_role": "site_admin" })),
            ),
            (
                Method::POST,
                "/api/v1/users".to_owned(),
                Some(
                    json!({ "username": "sneaky", "email": "s@x.example", "site_role": "site_admin" }),
                ),
            ),
            (Method::DELETE, format!("/api/v1/users/{aa_id}"), None),
            (
                Method::PATCH,
                format!("/api/v1/users/{aa_id}"),
                Some(json!({ "site_role": "site_admin" })),
            ),
        ];
        for (method, path, body) in &refusals {
            let (s, v) = app
                .call(method.clone(), path, Some(&aa), body.clone())
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} {body:?}: {v}");
            assert_eq!(v["code"], "forbidden");
        }
        // Each refusal is audited, and nothing changed.
        assert_eq!(app.audit_len().await, before + refusals.len() as i64);
        let (_, denied) = app
            .get(
                "/api/v1/audit?outcome=denied&actor=hpc-staff&limit=50",
                &admin,
            )
            .await;
        assert_eq!(denied["events"].as_array().unwrap().len(), refusals.len());
        assert_eq!(
            app.get("/api/v1/users?per_page=500", &admin).await.1,
            users_before
        );

        // What an Application Admin may do to ordinary users.
        let (s, _) = app
            .patch(
                &format!("/api/v1/users/{student}"),
                &aa,
                json!({ "email": "student@new.example", "site_role": "troubleshooter" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = app
            .post(
                &format!("/api/v1/users/{student}/reset-token"),
                &aa,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        // Leaving the Application Admin role oneself asks for confirmation.
        let (s, v) = app
            .patch(
                &format!("/api/v1/users/{aa_id}"),
                &aa,
                json!({ "site_role": "none" }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("confirm"))
        );
        let (s, v) = app
            .patch(
                &format!("/api/v1/users/{aa_id}"),
                &aa,
                json!({ "site_role": "none", "confirm": true }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // That revoked the token used for it.
        let (s, _) = app.get("/api/v1/users/me", &aa).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // A Site Admin cannot demote or delete themselves either.
        let (_, me) = app.get("/api/v1/users/me", &admin).await;
        let me = me["id"].as_i64().unwrap();
        assert_eq!(
            app.patch(
                &format!("/api/v1/users/{me}"),
                &admin,
                json!({ "site_role": "none" })
            )
            .await
            .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.delete(&format!("/api/v1/users/{me}"), &admin).await.0,
            StatusCode::FORBIDDEN
        );
    }
);

on_both_backends!(
    troubleshooters_read_but_do_not_change,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (_, ts) = app.user(&admin, "support", "troubleshooter").await;
        let (student, _) = app.user(&admin, "student", "none").await;
        let (s, v) = app.get("/api/v1/users", &ts).await;
        assert_eq!((s, v["total"].as_i64()), (StatusCode::OK, Some(3)));
        assert_eq!(
            app.get(&format!("/api/v1/users/{student}"), &ts).await.0,
            StatusCode::OK
        );
        assert_eq!(
            app.patch(
                &format!("/api/v1/users/{student}"),
                &ts,
                json!({ "last_name": "X" })
            )
            .await
            .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.post(
                "/api/v1/users",
                &ts,
                json!({ "username": "n", "email": "n@x.example" })
            )
            .await
            .0,
            StatusCode::FORBIDDEN
        );
        // The audit log is read-only for them: they can read and verify it.
        assert_eq!(app.get("/api/v1/audit", &ts).await.0, StatusCode::OK);
        assert_eq!(app.get("/api/v1/audit/verify", &ts).await.1["ok"], true);
        let (_, plain) = app.user(&admin, "plain", "none").await;
        assert_eq!(
            app.get("/api/v1/audit", &plain).await.0,
            StatusCode::FORBIDDEN
        );
    }
);

on_both_backends!(
    bad_input_gets_a_clear_4xx_and_changes_nothing,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (uid, _) = app.user(&admin, "target", "none").await;
        let before_users = app.get("/api/v1/users?per_page=500", &admin).await.1;
        let before_events = app.audit_len().await;
        let long = "x".repeat(300);
        // The request (method, path, body), and the status, code and field it must get.
        type Case<'a> = (
            Method,
            String,
            Option<Value>,
            StatusCode,
            &'a str,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!({ "username": "bob", "email": "not-an-email" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("email"),
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!({ "username": "bob", "email": "b@x.example", "extra": true })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("extra"),
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!({ "email": "b@x.example" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("username"),
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!({ "username": long, "email": "b@x.example" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("username"),
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!({ "username": "../etc", "email": "b@x.example" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("username"),
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!({ "username": "bob", "email": "b@x.example", "first_name": long })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("first_name"),
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!({ "username": "bob", "email": "b@x.example", "site_role": "god" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("site_role"),
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!({ "username": "TARGET", "email": "b@x.example" })),
                StatusCode::CONFLICT,
                "conflict",
                Some("username"),
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!({ "username": "bob", "email": "TARGET@lab.example" })),
                StatusCode::CONFLICT,
                "conflict",
                Some("email"),
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!([1, 2])),
                StatusCode::UNPROCESSABLE_ENTITY,
                "not-an-object",
                None,
            ),
            (
                Method::PATCH,
                format!("/api/v1/users/{uid}"),
                Some(json!({ "default_job_priority": 101 })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("default_job_priority"),
            ),
            (
                Method::PATCH,
                format!("/api/v1/users/{uid}"),
                Some(json!({ "default_job_priority": -1 })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("default_job_priority"),
            ),
            (
                Method::PATCH,
                format!("/api/v1/users/{uid}"),
                Some(json!({ "default_job_priority": 2.5 })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("default_job_priority"),
            ),
            (
                Method::PATCH,
                format!("/api/v1/users/{uid}"),
                Some(json!({ "default_job_priority": "high" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("default_job_priority"),
            ),
            (
                Method::PATCH,
                format!("/api/v1/users/{uid}"),
                Some(json!({ "status": "invited" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("status"),
            ),
            (
                Method::PATCH,
                format!("/api/v1/users/{uid}"),
                Some(json!({ "email": "" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("email"),
            ),
            (
                Method::PATCH,
                "/api/v1/users/abc".into(),
                Some(json!({})),
                StatusCode::BAD_REQUEST,
                "invalid-id",
                Some("id"),
            ),
            (
                Method::PATCH,
                "/api/v1/users/-4".into(),
                Some(json!({})),
                StatusCode::BAD_REQUEST,
                "invalid-id",
                Some("id"),
            ),
            (
                Method::PATCH,
                "/api/v1/users/99999999999999999999".into(),
                Some(json!({})),
                StatusCode::BAD_REQUEST,
                "invalid-id",
                Some("id"),
            ),
            (
                Method::DELETE,
                "/api/v1/users/424242".into(),
                None,
                StatusCode::NOT_FOUND,
                "not-found",
                None,
            ),
            (
                Method::GET,
                "/api/v1/users?per_page=0".into(),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("per_page"),
            ),
            (
                Method::GET,
                "/api/v1/users?page=x".into(),
                None,
                StatusCode::BAD_REQUEST,
                "invalid-query",
                Some("page"),
            ),
            (
                Method::GET,
                "/api/v1/users?nonsense=1".into(),
                None,
                StatusCode::BAD_REQUEST,
                "invalid-query",
                Some("nonsense"),
            ),
            (
                Method::GET,
                "/api/v1/audit?from=yesterday".into(),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("from"),
            ),
            (
                Method::GET,
                "/api/v1/audit?limit=100000".into(),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("limit"),
            ),
            (
                Method::POST,
                "/api/v1/tokens".into(),
                Some(json!({ "name": "" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("name"),
            ),
            (
                Method::POST,
                "/api/v1/tokens".into(),
                Some(json!({ "name": "t", "expires_in_days": 0 })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                Some("expires_in_days"),
            ),
            (
                Method::PUT,
                "/api/v1/users".into(),
                None,
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                None,
            ),
            (
                Method::GET,
                "/api/v1/nowhere".into(),
                None,
                StatusCode::NOT_FOUND,
                "not-found",
                None,
            ),
        ];
        for (method, path, body, status, code, field) in &cases {
            let (s, v) = app
                .call(method.clone(), path, Some(&admin), body.clone())
                .await;
            assert_eq!(s, *status, "{method} {path} {body:?}: {v}");
            assert_eq!(v["code"].as_str(), Some(*code), "{method} {path}: {v}");
            assert_eq!(v["field"].as_str(), *field, "{method} {path}: {v}");
            assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
        }

        // Malformed bodies and wrong content types, sent raw.
        let raw = [
            (
                "application/json",
                "{\"username\": ",
                StatusCode::BAD_REQUEST,
                "malformed-json",
            ),
            (
                "application/json",
                "",
                StatusCode::BAD_REQUEST,
                "malformed-json",
            ),
            (
                "text/plain",
                "{\"username\":\"bob\",\"email\":\"b@x.example\"}",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
            ),
            (
                "application/x-www-form-urlencoded",
                "username=bob",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
            ),
        ];
        for (ctype, body, status, code) in raw {
            let resp = app
                .http
                .post(format!("{}/api/v1/users", app.url))
                .bearer_auth(&admin)
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), status, "{ctype} {body}");
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["code"], code);
        }
        let huge = format!(
            "{{\"username\":\"bob\",\"email\":\"b@x.example\",\"first_name\":\"{}\"}}",
            "y".repeat(2 * 1024 * 1024)
        );
        // Its own connection: the server answers 413 without reading the body, then closes it.
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/users", app.url))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

        // Tokens: expired, reused, malformed.
        for token in ["", "cwr_nope", &"z".repeat(500)] {
            let (s, v) = app
                .call(
                    Method::POST,
                    "/api/v1/auth/register",
                    None,
                    Some(json!({ "token": token, "password": USER_PASSWORD })),
                )
                .await;
            assert_eq!(
                (s, v["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid-token")),
                "{token}"
            );
        }
        for header in [
            "Bearer",
            "Basic abc",
            "Bearer cwt_0000",
            "Bearer ".to_owned().leak(),
        ] {
            let resp = app
                .http
                .get(format!("{}/api/v1/users/me", app.url))
                .header("authorization", header)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header}");
        }

        assert_eq!(
            app.get("/api/v1/users?per_page=500", &admin).await.1,
            before_users,
            "nothing changed"
        );
        assert_eq!(
            app.audit_len().await,
            before_events,
            "no event recorded for input errors"
        );
    }
);

on_both_backends!(
    cookie_sessions_need_the_csrf_token_for_writes,
    |app: TestApp| async move {
        let _admin = app.site_admin().await;
        let (cookie, csrf) = app.login("root-admin", ADMIN_PASSWORD).await;
        let post = |csrf: Option<&str>| {
            let mut req = app
                .http
                .post(format!("{}/api/v1/users", app.url))
                .header("cookie", &cookie)
                .json(&json!({ "username": "viacookie", "email": "c@x.example" }));
            if let Some(c) = csrf {
                req = req.header("x-csrf-token", c);
            }
            req.send()
        };
        let resp = post(None).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.json::<Value>().await.unwrap()["code"], "csrf-failed");
        assert_eq!(
            post(Some("forged")).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            post(Some(&csrf)).await.unwrap().status(),
            StatusCode::CREATED
        );
        // Reads need no CSRF token; the cookie is HttpOnly and SameSite=Strict.
        let resp = app
            .http
            .get(format!("{}/api/v1/auth/session", app.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = app
            .http
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({ "username": "root-admin", "password": ADMIN_PASSWORD }))
            .send()
            .await
            .unwrap();
        let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        // Logout ends the session.
        let resp = app
            .http
            .post(format!("{}/api/v1/auth/logout", app.url))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let resp = app
            .http
            .get(format!("{}/api/v1/users/me", app.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
);

on_both_backends!(
    api_tokens_are_shown_once_and_revocable,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (_, alice) = app.user(&admin, "alice", "none").await;
        let (s, v) = app
            .post(
                "/api/v1/tokens",
                &alice,
                json!({ "name": "pipeline", "expires_in_days": 30 }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let id = v["id"].as_i64().unwrap();
        let secret = v["secret"].as_str().unwrap().to_owned();
        assert_eq!(app.get("/api/v1/users/me", &secret).await.0, StatusCode::OK);
        let (_, list) = app.get("/api/v1/tokens", &alice).await;
        let text = list.to_string();
        assert!(!text.contains(&secret), "the secret is never listed");
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == id && t["name"] == "pipeline")
        );
        // Another user cannot revoke it (not found), its owner can.
        assert_eq!(
            app.delete(&format!("/api/v1/tokens/{id}"), &admin).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.delete(&format!("/api/v1/tokens/{id}"), &alice).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            app.get("/api/v1/users/me", &secret).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.delete(&format!("/api/v1/tokens/{id}"), &alice).await.0,
            StatusCode::NOT_FOUND
        );
    }
);

on_both_backends!(
    the_audit_chain_lists_filters_and_detects_tampering,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        for name in ["u1", "u2", "u3"] {
            app.post(
                "/api/v1/users",
                &admin,
                json!({ "username": name, "email": format!("{name}@x.example") }),
            )
            .await;
        }
        let (_, page) = app
            .get("/api/v1/audit?action=create-user&limit=2", &admin)
            .await;
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["target"], "u3", "newest first");
        assert_eq!(events[0]["actor"], "root-admin");
        assert_eq!(events[0]["after"]["username"], "u3");
        let next = page["next"].as_i64().expect("a next page");
        let (_, page2) = app
            .get(
                &format!("/api/v1/audit?action=create-user&limit=2&before={next}"),
                &admin,
            )
            .await;
        assert_eq!(page2["events"][0]["target"], "u1");
        assert!(page2["next"].is_null());
        let (_, by_target) = app.get("/api/v1/audit?target=u2", &admin).await;
        assert_eq!(by_target["events"].as_array().unwrap().len(), 1);
        let (_, future) = app
            .get("/api/v1/audit?from=2999-01-01T00:00:00Z", &admin)
            .await;
        assert!(future["events"].as_array().unwrap().is_empty());
        let (_, prefix) = app.get("/api/v1/audit?action=create-*", &admin).await;
        assert!(prefix["events"].as_array().unwrap().len() >= 3);
        // No secret ever reaches the audit log.
        let (_, all) = app.get("/api/v1/audit?limit=500", &admin).await;
        let text = all.to_string();
        let has_secret = ["cwr_", "cwt_", "cws_", "cwb_"].iter().any(|p| {
            text.match_indices(p).any(|(i, _)| {
                text[i + 4..]
                    .chars()
                    .take_while(char::is_ascii_hexdigit)
                    .count()
                    >= 32
            })
        });
        assert!(
            !has_secret && !text.contains("argon2"),
            "a secret reached the audit log: {text}"
        );

        let (_, ok) = app.get("/api/v1/audit/verify", &admin).await;
        assert_eq!(ok["ok"], true);
        let n = ok["events"].as_i64().unwrap();
        assert!(n >= 6);
        // Alter one event's content: verification names it.
        sqlx::query("UPDATE audit_events SET target = 'someone-else' WHERE seq = 3")
            .execute(&app.state.db.pool)
            .await
            .unwrap();
        let (_, v) = app.get("/api/v1/audit/verify", &admin).await;
        assert_eq!(
            (v["ok"].as_bool(), v["first_broken"].as_i64()),
            (Some(false), Some(3)),
            "{v}"
        );
        assert!(v["problem"].as_str().unwrap().contains("altered"));
        sqlx::query("UPDATE audit_events SET target = 'root-admin' WHERE seq = 3")
            .execute(&app.state.db.pool)
            .await
            .unwrap();
        // Delete one: the gap is found.
        let (_, before) = app.get("/api/v1/audit/verify", &admin).await;
        assert_eq!(before["ok"], true, "restored: {before}");
        sqlx::query("DELETE FROM audit_events WHERE seq = 4")
            .execute(&app.state.db.pool)
            .await
            .unwrap();
        let (_, v) = app.get("/api/v1/audit/verify", &admin).await;
        assert_eq!(
            (v["ok"].as_bool(), v["first_broken"].as_i64()),
            (Some(false), Some(5)),
            "{v}"
        );
    }
);

on_both_backends!(
    failed_logins_are_throttled_with_a_clear_429,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        app.user(&admin, "victim", "none").await;
        let wrong = json!({ "username": "victim", "password": "not the password at all" });
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let resp = app
                .http
                .post(format!("{}/api/v1/auth/login", app.url))
                .json(&wrong)
                .send()
                .await
                .unwrap();
            statuses.push(resp.status());
            if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                assert!(resp.headers().contains_key("retry-after"));
                let v: Value = resp.json().await.unwrap();
                assert_eq!(v["code"], "too-many-attempts");
            }
        }
        assert_eq!(&statuses[..4], &[StatusCode::UNAUTHORIZED; 4]);
        assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
        // The right password is held too while throttled, and says when to come back.
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "username": "victim", "password": USER_PASSWORD })),
            )
            .await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        let (_, denied) = app
            .get("/api/v1/audit?action=login&outcome=denied", &admin)
            .await;
        assert_eq!(
            denied["events"].as_array().unwrap().len(),
            4,
            "each refused attempt is audited"
        );
    }
);

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let (s, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/health", "get"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/reset", "post"),
        ("/api/v1/users/me", "get"),
        ("/api/v1/users", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/users/{id}", "delete"),
        ("/api/v1/users/{id}/reset-token", "post"),
        ("/api/v1/tokens", "get"),
        ("/api/v1/tokens", "post"),
        ("/api/v1/tokens/{id}", "delete"),
        ("/api/v1/audit", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let (s, h) = app.call(Method::GET, "/api/v1/health", None, None).await;
    assert_eq!((s, h["status"].as_str()), (StatusCode::OK, Some("ok")));

    // The shape a generated client relies on (issue 11, item 14): path parameters are the
    // template's variables, and nothing else; every problem is application/problem+json; every
    // schema compiles; every operation documents the problems it can answer.
    let mut wrong = Vec::new();
    for (path, item) in paths {
        let vars: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path: Vec<String> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            for name in &in_path {
                if !vars.contains(&name.as_str()) {
                    wrong.push(format!(
                        "{method} {path}: `{name}` is declared in: path but is not in the path"
                    ));
                }
            }
            for var in &vars {
                if !in_path.iter().any(|n| n == var) {
                    wrong.push(format!(
                        "{method} {path}: the path's `{var}` is not a declared path parameter"
                    ));
                }
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                for (media, content) in response["content"].as_object().into_iter().flatten() {
                    let problem = content["schema"]["$ref"] == "#/components/schemas/Problem";
                    if problem != (media == "application/problem+json") {
                        wrong.push(format!(
                            "{method} {path} {status}: {media} with schema {}",
                            content["schema"]
                        ));
                    }
                }
            }
            if op["responses"].get("default").is_none() {
                wrong.push(format!("{method} {path}: no default (problem) response"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} defects:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let document = common::openapi::document();
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        let pointer = format!("/components/schemas/{name}");
        document
            .check_schema_compiles(&pointer)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test]
async fn answers_that_contradict_the_document_are_caught() {
    // The check every test's server runs (tests/common/openapi.rs) finds each kind of drift.
    let doc = common::openapi::document();
    let ok = doc.check(
        "GET",
        "/api/v1/health",
        None,
        200,
        Some("application/json"),
        Some(br#"{"status":"ok","version":"1","database":"sqlite"}"#),
    );
    assert_eq!(ok, Ok(()));
    let missing_field = doc.check(
        "GET",
        "/api/v1/health",
        None,
        200,
        Some("application/json"),
        Some(br#"{"status":"ok"}"#),
    );
    assert!(missing_field.unwrap_err().contains("schema refuses"));
    let wrong_type = doc.check(
        "GET",
        "/api/v1/users/7",
        None,
        404,
        Some("application/json"),
        Some(br#"{"code":"not-found"}"#),
    );
    assert!(
        wrong_type.unwrap_err().contains("application/problem+json"),
        "a problem must say it is one"
    );
    let not_a_problem = doc.check(
        "GET",
        "/api/v1/users/7",
        None,
        404,
        Some("application/problem+json"),
        Some(br#"{"detail":1}"#),
    );
    assert!(not_a_problem.is_err());
    let unknown = doc.check(
        "GET",
        "/api/v1/no-such-thing",
        None,
        200,
        Some("application/json"),
        Some(b"{}"),
    );
    assert!(unknown.unwrap_err().contains("no such operation"));
    let body = json!({ "name": "x", "kind": "node", "surprise": true });
    let refused_body = doc.check(
        "POST",
        "/api/v1/lanes",
        Some(&body),
        201,
        Some("application/json"),
        Some(b"{}"),
    );
    assert!(
        refused_body.is_err(),
        "an accepted request body is checked too"
    );
}

#[tokio::test]
async fn the_register_page_escapes_what_it_echoes() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let resp = app
        .http
        .get(format!(
            "{}/register?token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn sessions_end_at_their_absolute_lifetime() {
    let app = TestApp::start_with(Backend::Sqlite, |c| c.session_absolute_hours = 0)
        .await
        .unwrap();
    app.register_first_site_admin().await;
    let (cookie, _) = app.login("root-admin", ADMIN_PASSWORD).await;
    let resp = app
        .http
        .get(format!("{}/api/v1/users/me", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "a session past its absolute lifetime is over"
    );
}

#[tokio::test]
async fn sessions_end_after_idling() {
    let app = TestApp::start_with(Backend::Sqlite, |c| c.session_idle_minutes = 0)
        .await
        .unwrap();
    app.register_first_site_admin().await;
    let (cookie, _) = app.login("root-admin", ADMIN_PASSWORD).await;
    // Make the session's last activity a minute old, as idling would.
    sqlx::query("UPDATE sessions SET last_seen_at = last_seen_at - 60000")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let resp = app
        .http
        .get(format!("{}/api/v1/users/me", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "a session idle longer than allowed is over"
    );
}

on_both_backends!(
    instance_logs_and_the_report_follow_the_console_table,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (_, support) = app.user(&admin, "support", "troubleshooter").await;
        let (_, student) = app.user(&admin, "student", "none").await;
        let dir = app.dir.path().join("logs");
        std::fs::create_dir_all(&dir).unwrap();
        let lines: Vec<String> = (0..700)
            .map(|i| format!("2026-11-23T00:00:00Z INFO api: request {i}"))
            .collect();
        std::fs::write(dir.join("api.log"), lines.join("\n") + "\n").unwrap();

        let (s, v) = app.get("/api/v1/logs/api?lines=50", &admin).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let got = v["lines"].as_array().unwrap();
        assert_eq!(got.len(), 50);
        assert_eq!(
            got[49], "2026-11-23T00:00:00Z INFO api: request 699",
            "newest last"
        );
        assert_eq!(got[0], "2026-11-23T00:00:00Z INFO api: request 650");
        assert_eq!(
            app.get("/api/v1/logs/api?lines=500", &support).await.1["lines"]
                .as_array()
                .unwrap()
                .len(),
            500
        );
        for (path, field) in [
            ("/api/v1/logs/api?lines=7", "lines"),
            ("/api/v1/logs/api?lines=x", "lines"),
            ("/api/v1/logs/nosuch", "service"),
        ] {
            let (s, v) = app.get(path, &admin).await;
            assert_eq!(
                (s, v["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
                "{path}: {v}"
            );
        }
        assert_eq!(
            app.get("/api/v1/logs/api", &student).await.0,
            StatusCode::FORBIDDEN
        );

        let resp = app
            .http
            .post(format!("{}/api/v1/report", app.url))
            .bearer_auth(&support)
            .json(&json!({ "user_agent": "test-agent", "time_zone": "Europe/Zurich" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/zip");
        let entries = common::unzip(&resp.bytes().await.unwrap());
        assert_eq!(
            entries["logs/api.log"],
            lines.join("\n") + "\n",
            "the log file, whole"
        );
        let runtime: Value = serde_json::from_str(&entries["runtime-diagnostics.json"]).unwrap();
        for field in ["version", "build", "host", "generated_at", "database"] {
            assert!(
                !runtime[field].is_null(),
                "runtime-diagnostics.json lacks {field}: {runtime}"
            );
        }
        assert!(
            !entries["runtime-diagnostics.json"].contains("cw_test:cw_test"),
            "no database password in the report"
        );
        let browser: Value = serde_json::from_str(&entries["browser-diagnostics.json"]).unwrap();
        assert_eq!(browser["time_zone"], "Europe/Zurich");
        let resp = app
            .http
            .post(format!("{}/api/v1/report", app.url))
            .bearer_auth(&student)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
);

on_both_backends!(
    expired_tokens_are_refused_and_change_nothing,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (s, v) = app
            .post(
                "/api/v1/users",
                &admin,
                json!({ "username": "late", "email": "late@lab.example" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let token = v["registration"]["token"].as_str().unwrap().to_owned();
        // Let the token run out, as a week would.
        sqlx::query("UPDATE user_tokens SET expires_at = expires_at - 8 * 86400000")
            .execute(&app.state.db.pool)
            .await
            .unwrap();
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({ "token": token, "password": USER_PASSWORD })),
            )
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid-token"))
        );
        let (_, page) = app.get("/api/v1/users?q=late", &admin).await;
        assert_eq!(
            page["users"][0]["status"], "invited",
            "still waiting for a valid token"
        );
        assert_eq!(page["users"][0]["has_password"], false);
        // A new token from an admin works, and the old one stays dead.
        let id = page["users"][0]["id"].as_i64().unwrap();
        let (_, fresh) = app
            .post(
                &format!("/api/v1/users/{id}/reset-token"),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(fresh["kind"], "register");
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({ "token": fresh["token"], "password": USER_PASSWORD })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
);
