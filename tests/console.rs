//! The Admin Console (issue 6): rows per role exactly as the permission table gives them, refusals
//! that change nothing, the Application Admin's partial row, and each content feature's real
//! effect, over real HTTP on SQLite and PostgreSQL (and a real SMTP conversation).

mod common;

use std::collections::BTreeMap;

use common::{Backend, TestApp, USER_PASSWORD};
use cryowarden_core::{Access, Column, Setting, table::setting_access};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What `GET /api/v1/console` must answer for a column: key -> (access, read-only fields),
/// straight from the permission table.
fn expected(column: Column) -> BTreeMap<String, (String, Vec<String>)> {
    Setting::ALL
        .iter()
        .filter_map(|s| {
            let (access, ro) = setting_access(*s, column);
            let access = match access {
                Access::None => return None,
                Access::ReadOnly => "read-only",
                Access::All => "all",
            };
            let ro = if access == "all" {
                ro.iter().map(|f| (*f).to_owned()).collect()
            } else {
                vec![]
            };
            Some((s.as_str().to_owned(), (access.to_owned(), ro)))
        })
        .collect()
}

fn answered(v: &Value) -> BTreeMap<String, (String, Vec<String>)> {
    v.as_array()
        .expect("an array of rows")
        .iter()
        .map(|r| {
            let mut ro: Vec<String> = r["read_only_fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect();
            ro.sort();
            (
                r["key"].as_str().unwrap().to_owned(),
                (r["access"].as_str().unwrap().to_owned(), ro),
            )
        })
        .collect()
}

fn sorted(
    mut m: BTreeMap<String, (String, Vec<String>)>,
) -> BTreeMap<String, (String, Vec<String>)> {
    for v in m.values_mut() {
        v.1.sort();
    }
    m
}

/// The newest audit events matching `query` (as the Site Admin sees them).
async fn audit(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (s, v) = app.get(&format!("/api/v1/audit?{query}"), admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"].as_array().unwrap().clone()
}

async fn put(app: &TestApp, token: &str, key: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::PUT,
        &format!("/api/v1/console/{key}"),
        Some(token),
        Some(body),
    )
    .await
}

async fn api_login(
    app: &TestApp,
    username: &str,
    password: &str,
    accept: Option<bool>,
) -> (StatusCode, Value) {
    let mut body = json!({ "username": username, "password": password });
    if let Some(a) = accept {
        body["accept_terms"] = json!(a);
    }
    app.call(Method::POST, "/api/v1/auth/login", None, Some(body))
        .await
}

on_both_backends!(
    each_role_gets_exactly_the_rows_of_the_table,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (_, aa) = app.user(&admin, "appadmin", "application_admin").await;
        let (_, ts) = app.user(&admin, "trouble", "troubleshooter").await;
        let (_, its) = app
            .user(&admin, "itrouble", "impersonating_troubleshooter")
            .await;
        let (_, user) = app.user(&admin, "student", "none").await;
        for (token, column) in [
            (&admin, Column::SiteAdmin),
            (&aa, Column::ApplicationAdmin),
            (&ts, Column::Troubleshooter),
            (&its, Column::ImpersonatingTroubleshooter),
        ] {
            let (s, v) = app.get("/api/v1/console", token).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(answered(&v), sorted(expected(column)), "rows of {column}");
            // Each visible row opens with the same access; each absent row is a 403.
            for s in Setting::ALL {
                let (status, row) = app.get(&format!("/api/v1/console/{s}"), token).await;
                match expected(column).get(s.as_str()) {
                    Some((access, _)) => {
                        assert_eq!(status, StatusCode::OK, "{column} {s}: {row}");
                        assert_eq!(
                            row["access"].as_str(),
                            Some(access.as_str()),
                            "{column} {s}"
                        );
                    }
                    None => assert_eq!(
                        (status, row["code"].as_str()),
                        (StatusCode::FORBIDDEN, Some("forbidden")),
                        "{column} {s}"
                    ),
                }
            }
        }
        assert!(
            expected(Column::SiteAdmin).len() > expected(Column::Troubleshooter).len(),
            "the table differs by role"
        );
        let before = app.audit_len().await;
        let (s, v) = app.get("/api/v1/console", &user).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{v}"
        );
        assert_eq!(app.audit_len().await, before + 1, "the refusal is audited");
        let (s, _) = app.get("/api/v1/console/no-such-setting", &admin).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
);

on_both_backends!(
    refusals_change_nothing_and_are_audited,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (_, aa) = app.user(&admin, "appadmin", "application_admin").await;
        let (_, ts) = app.user(&admin, "trouble", "troubleshooter").await;
        // Read-only rows for the troubleshooter, an absent row for the AA.
        for (token, who, key, body) in [
            (
                &ts,
                "trouble",
                "site-settings",
                json!({ "session_idle_minutes": 30 }),
            ),
            (
                &ts,
                "trouble",
                "authentication",
                json!({ "password_min_length": 20 }),
            ),
            (
                &ts,
                "trouble",
                "external-redirect-hosts",
                json!({ "hosts": ["evil.example"] }),
            ),
            (
                &aa,
                "appadmin",
                "authentication",
                json!({ "lockout_attempts": 3 }),
            ),
            (
                &aa,
                "appadmin",
                "experimental-features",
                json!({ "console_raw_json": true }),
            ),
            (&ts, "trouble", "email", json!({ "host": "smtp.example" })),
        ] {
            let (_, value_before) = app.get(&format!("/api/v1/console/{key}"), &admin).await;
            let events_before = app.audit_len().await;
            let (s, v) = put(&app, token, key, body).await;
            assert_eq!(
                (s, v["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("forbidden")),
                "{who} {key}: {v}"
            );
            let (_, value_after) = app.get(&format!("/api/v1/console/{key}"), &admin).await;
            assert_eq!(value_before, value_after, "{who} {key}: nothing changed");
            assert_eq!(
                app.audit_len().await,
                events_before + 1,
                "{who} {key}: only the refusal was recorded"
            );
            let last = &audit(&app, &admin, &format!("actor={who}&limit=1")).await[0];
            assert_eq!(last["outcome"].as_str(), Some("denied"), "{last}");
            assert_eq!(
                last["action"].as_str(),
                Some(format!("change-setting:{key}").as_str()),
                "{last}"
            );
        }
        // Bad input: a 422 naming the field, nothing written.
        let (_, before) = app.get("/api/v1/console/authentication", &admin).await;
        for (body, field) in [
            (json!({ "password_min_length": 7 }), "password_min_length"),
            (json!({ "password_min_length": 129 }), "password_min_length"),
            (
                json!({ "password_min_length": "long" }),
                "password_min_length",
            ),
            (json!({ "lockout_minutes": 0 }), "lockout_minutes"),
            (json!({ "ldap_server": "ldap://x" }), "body"),
        ] {
            let (s, v) = put(&app, &admin, "authentication", body.clone()).await;
            assert_eq!(
                (s, v["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
                "{body}: {v}"
            );
        }
        let (_, after) = app.get("/api/v1/console/authentication", &admin).await;
        assert_eq!(before, after);
        assert_eq!(
            after["value"]["ldap"].as_str(),
            Some("not implemented in this release")
        );
        // A row whose content lives elsewhere points there.
        let (s, v) = app.get("/api/v1/console/lane-restrictions", &aa).await;
        assert_eq!(
            (s, v["value"]["href"].as_str()),
            (StatusCode::OK, Some("/admin/lanes")),
            "{v}"
        );
        let (s, v) = app.get("/api/v1/console/ldap-sync", &admin).await;
        assert_eq!(
            (s, v["value"]["available"].as_bool()),
            (StatusCode::OK, Some(false)),
            "{v}"
        );
    }
);

on_both_backends!(
    the_application_admin_changes_look_and_feel_but_two_fields,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (_, aa) = app.user(&admin, "appadmin", "application_admin").await;
        let (s, v) = app.get("/api/v1/console/look-and-feel", &aa).await;
        assert_eq!(s, StatusCode::OK);
        let mut ro: Vec<&str> = v["read_only_fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        ro.sort();
        assert_eq!(ro, ["login_message", "system_email_address"]);
        let (s, v) = put(
            &app,
            &aa,
            "look-and-feel",
            json!({ "instance_name": "Krios Facility" }),
        )
        .await;
        assert_eq!(
            (s, v["value"]["instance_name"].as_str()),
            (StatusCode::OK, Some("Krios Facility")),
            "{v}"
        );
        let (_, before) = app.get("/api/v1/console/look-and-feel", &admin).await;
        for (body, field) in [
            (
                json!({ "system_email_address": "ops@facility.example" }),
                "system_email_address",
            ),
            (
                json!({ "login_message": { "active": true, "title": "Hi", "body": "" } }),
                "login_message",
            ),
            (
                json!({ "instance_name": "Other", "login_message": { "active": true, "title": "Hi", "body": "" } }),
                "login_message",
            ),
        ] {
            let (s, v) = put(&app, &aa, "look-and-feel", body.clone()).await;
            assert_eq!(
                (s, v["field"].as_str()),
                (StatusCode::FORBIDDEN, Some(field)),
                "{body}: {v}"
            );
        }
        let (_, after) = app.get("/api/v1/console/look-and-feel", &admin).await;
        assert_eq!(
            before, after,
            "a refused field keeps the others of the same request from changing"
        );
        // The Site Admin may change those two; the change is audited per field.
        let (s, v) = put(
            &app,
            &admin,
            "look-and-feel",
            json!({ "system_email_address": "ops@facility.example" }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let ev = &audit(
            &app,
            &admin,
            "action=change-setting:look-and-feel.system_email_address",
        )
        .await[0];
        assert_eq!(ev["after"].as_str(), Some("ops@facility.example"), "{ev}");
        // Instance-backed rows reuse the instance settings: the Instance Settings API sees the change.
        let (_, inst) = app.get("/api/v1/settings/instance", &admin).await;
        assert_eq!(inst["instance_name"].as_str(), Some("Krios Facility"));
        let (s, v) = put(&app, &admin, "scheduler", json!({ "instance_name": "x" })).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("body")),
            "{v}"
        );
    }
);

on_both_backends!(
    the_password_policy_and_the_lockout_apply_at_sign_in,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (id, _) = app.user(&admin, "student", "none").await;
        let (s, v) = put(
            &app,
            &admin,
            "authentication",
            json!({ "password_min_length": 30 }),
        )
        .await;
        assert_eq!(
            (s, v["value"]["password_min_length"].as_i64()),
            (StatusCode::OK, Some(30)),
            "{v}"
        );
        let (s, v) = app
            .post(
                &format!("/api/v1/users/{id}/reset-token"),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let token = v["token"].as_str().unwrap().to_owned();
        let short = "twenty-five chars long ok"; // 25 characters: enough by default, short now
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/auth/reset",
                None,
                Some(json!({ "token": token, "password": short })),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("password")),
            "{v}"
        );
        assert!(v["detail"].as_str().unwrap().contains("30"), "{v}");
        let long = "a passphrase of thirty-two chars";
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/auth/reset",
                None,
                Some(json!({ "token": token, "password": long })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");

        // Lockout: three failures lock the account, even for the right password.
        let (s, _) = put(
            &app,
            &admin,
            "authentication",
            json!({ "lockout_attempts": 3, "lockout_minutes": 5 }),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        for _ in 0..3 {
            let (s, _) = api_login(&app, "student", "not the password at all", None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
        }
        let (s, v) = api_login(&app, "student", long, None).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("too-many-attempts")),
            "{v}"
        );
        let ev = &audit(&app, &admin, "action=lock-account").await;
        assert_eq!(ev.len(), 1, "the lock is audited once: {ev:?}");
        assert_eq!(
            (ev[0]["actor"].as_str(), ev[0]["target"].as_str()),
            (Some("system:lockout"), Some("student"))
        );
        // Another account is not locked by it.
        let (s, _) = api_login(&app, "root-admin", common::ADMIN_PASSWORD, None).await;
        assert_eq!(s, StatusCode::OK);
    }
);

on_both_backends!(
    terms_of_use_are_accepted_once_per_version,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        app.user(&admin, "student", "none").await;
        let (s, v) = put(
            &app,
            &admin,
            "terms-of-use",
            json!({ "active": true, "text": "Be kind to the microscope." }),
        )
        .await;
        assert_eq!(
            (s, v["value"]["version"].as_i64()),
            (StatusCode::OK, Some(1)),
            "{v}"
        );
        let (s, v) = put(&app, &admin, "terms-of-use", json!({ "version": 7 })).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("version")),
            "{v}"
        );

        let (s, v) = api_login(&app, "student", USER_PASSWORD, None).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("terms-not-accepted")),
            "{v}"
        );
        assert_eq!(
            v["terms"]["text"].as_str(),
            Some("Be kind to the microscope.")
        );
        let (s, _) = api_login(&app, "student", USER_PASSWORD, Some(false)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert!(
            audit(&app, &admin, "action=accept-terms").await.is_empty(),
            "nothing accepted yet"
        );
        let (s, v) = api_login(&app, "student", USER_PASSWORD, Some(true)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let events = audit(&app, &admin, "action=accept-terms").await;
        assert_eq!(events.len(), 1);
        assert_eq!(
            (
                events[0]["actor"].as_str(),
                events[0]["after"]["version"].as_i64()
            ),
            (Some("student"), Some(1))
        );
        // Once per version: the next sign-in needs nothing.
        let (s, _) = api_login(&app, "student", USER_PASSWORD, None).await;
        assert_eq!(s, StatusCode::OK);
        // A wrong password never reaches the terms.
        let (s, _) = api_login(&app, "student", "a wrong password here", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // New text, new version: everyone accepts again.
        let (s, v) = put(
            &app,
            &admin,
            "terms-of-use",
            json!({ "text": "Be kind to the microscope and the staff." }),
        )
        .await;
        assert_eq!(
            (s, v["value"]["version"].as_i64()),
            (StatusCode::OK, Some(2)),
            "{v}"
        );
        let (s, v) = api_login(&app, "student", USER_PASSWORD, None).await;
        assert_eq!(
            (s, v["terms"]["version"].as_i64()),
            (StatusCode::FORBIDDEN, Some(2)),
            "{v}"
        );

        // The sign-in page shows the terms with an "I accept" box, and signs in once it is ticked.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (login_cookie, login_token) = app.login_form_token().await;
        let form = |accept: bool| {
            let mut f = vec![
                ("username", "student"),
                ("password", USER_PASSWORD),
                ("next", "/"),
                ("_login", &login_token),
            ];
            if accept {
                f.push(("accept_terms", "on"));
            }
            http.post(format!("{}/login", app.url))
                .header("cookie", &login_cookie)
                .form(&f)
                .send()
        };
        let resp = form(false).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let html = resp.text().await.unwrap();
        assert!(
            html.contains("id=\"terms-of-use\"")
                && html.contains("and the staff.")
                && html.contains("I accept"),
            "{html}"
        );
        let resp = form(true).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert!(
            resp.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .starts_with("cw_session=")
        );
        assert_eq!(audit(&app, &admin, "action=accept-terms").await.len(), 2);
    }
);

on_both_backends!(
    the_active_user_cap_and_inactivity_deactivation,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (old_id, old) = app.user(&admin, "olduser", "none").await;
        let (s, v) = put(
            &app,
            &admin,
            "limit-active-users",
            json!({ "max_active_users": 3 }),
        )
        .await;
        assert_eq!(
            (s, v["value"]["active_users"].as_i64()),
            (StatusCode::OK, Some(2)),
            "{v}"
        );
        app.user(&admin, "third", "none").await;
        let before = app.audit_len().await;
        let (s, v) = app
            .post(
                "/api/v1/users",
                &admin,
                json!({ "username": "fourth", "email": "fourth@lab.example" }),
            )
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::CONFLICT, Some("user-limit")),
            "{v}"
        );
        assert!(
            v["detail"].as_str().unwrap().contains('3'),
            "names the cap: {v}"
        );
        assert_eq!(app.audit_len().await, before, "nothing was created");
        let (_, list) = app.get("/api/v1/users?q=fourth", &admin).await;
        assert_eq!(list["total"].as_i64(), Some(0));
        // Deactivating frees a seat; reactivating beyond the cap is refused.
        let (s, _) = app
            .patch(
                &format!("/api/v1/users/{old_id}"),
                &admin,
                json!({ "status": "deactivated" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = app
            .post(
                "/api/v1/users",
                &admin,
                json!({ "username": "fourth", "email": "fourth@lab.example" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = app
            .patch(
                &format!("/api/v1/users/{old_id}"),
                &admin,
                json!({ "status": "active" }),
            )
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::CONFLICT, Some("user-limit")),
            "{v}"
        );
        let (s, v) = put(
            &app,
            &admin,
            "limit-active-users",
            json!({ "max_active_users": 0 }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, _) = app
            .patch(
                &format!("/api/v1/users/{old_id}"),
                &admin,
                json!({ "status": "active" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);

        // Inactivity: olduser last signed in 40 days ago, third today.
        let (s, _) = app.get("/api/v1/users/me", &old).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "deactivation revoked olduser's token"
        );
        let (_, token) = (0, app.api_token("olduser", USER_PASSWORD).await);
        let forty_days_ago = cryowarden_server::db::now_ms() - 40 * 86_400_000;
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(forty_days_ago)
            .bind(old_id)
            .execute(&app.state.db.pool)
            .await
            .unwrap();
        let (s, v) = app
            .post(
                "/api/v1/console/limit-active-users/apply",
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(
            (s, v["deactivated"].as_array().map(Vec::len)),
            (StatusCode::OK, Some(0)),
            "off by default: {v}"
        );
        let (s, _) = put(
            &app,
            &admin,
            "limit-active-users",
            json!({ "deactivate_after_days": 30 }),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = app
            .post(
                "/api/v1/console/limit-active-users/apply",
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(
            (s, v["deactivated"].clone()),
            (StatusCode::OK, json!(["olduser"])),
            "{v}"
        );
        let (_, u) = app.get(&format!("/api/v1/users/{old_id}"), &admin).await;
        assert_eq!(u["status"].as_str(), Some("deactivated"));
        let (s, _) = app.get("/api/v1/users/me", &token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "their credentials are revoked");
        let ev = &audit(&app, &admin, "action=set-user-active&limit=1").await[0];
        assert_eq!(
            (ev["actor"].as_str(), ev["target"].as_str()),
            (Some("system:inactivity"), Some("olduser")),
            "{ev}"
        );
        // Only who may change the row may run it.
        let (_, ts) = app.user(&admin, "trouble", "troubleshooter").await;
        let (s, _) = app
            .post("/api/v1/console/limit-active-users/apply", &ts, json!({}))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
);

on_both_backends!(
    sign_in_follows_only_listed_redirect_hosts,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        app.user(&admin, "student", "none").await;
        let (s, v) = put(
            &app,
            &admin,
            "external-redirect-hosts",
            json!({ "hosts": ["https://x.example/"] }),
        )
        .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("hosts")),
            "{v}"
        );
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (login_cookie, login_token) = app.login_form_token().await;
        let sign_in = |next: &'static str| {
            http.post(format!("{}/login", app.url))
                .header("cookie", &login_cookie)
                .form(&[
                    ("username", "student"),
                    ("password", USER_PASSWORD),
                    ("next", next),
                    ("_login", &login_token),
                ])
                .send()
        };
        let location = |r: reqwest::Response| r.headers()["location"].to_str().unwrap().to_owned();
        let wiki = "https://wiki.facility.example/runbook";
        assert_eq!(
            location(sign_in(wiki).await.unwrap()),
            "/?welcome=1",
            "not listed yet"
        );
        let (s, v) = put(
            &app,
            &admin,
            "external-redirect-hosts",
            json!({ "hosts": ["wiki.facility.example"] }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            location(sign_in(wiki).await.unwrap()),
            wiki,
            "a listed host is followed"
        );
        assert_eq!(
            location(sign_in("https://evil.example/x").await.unwrap()),
            "/?welcome=1"
        );
        assert_eq!(
            location(
                sign_in("https://wiki.facility.example@evil.example/")
                    .await
                    .unwrap()
            ),
            "/?welcome=1"
        );
        assert_eq!(
            location(sign_in("/projects").await.unwrap()),
            "/projects",
            "local paths as before"
        );
        let html = http
            .get(format!(
                "{}/login?next={}",
                app.url, "https%3A%2F%2Fevil.example%2F"
            ))
            .send()
            .await
            .unwrap();
        assert!(
            !html.text().await.unwrap().contains("evil.example"),
            "the form never carries a refused target"
        );
    }
);

on_both_backends!(
    site_settings_show_the_configuration_and_set_session_lifetimes,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (s, v) = app.get("/api/v1/console/site-settings", &admin).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            v["value"]["listen_address"].as_str(),
            Some(app.state.config.listen.to_string().as_str())
        );
        assert_eq!(
            v["value"]["max_request_body_kib"].as_u64(),
            Some(app.state.config.max_body_kib as u64)
        );
        let (s, v) = put(
            &app,
            &admin,
            "site-settings",
            json!({ "listen_address": "0.0.0.0:1" }),
        )
        .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("listen_address")),
            "{v}"
        );
        let (s, v) = put(
            &app,
            &admin,
            "site-settings",
            json!({ "session_idle_minutes": 2 }),
        )
        .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("session_idle_minutes")
            ),
            "{v}"
        );
        // The form sends the fixed values back unchanged: accepted.
        let listen = app.state.config.listen.to_string();
        let body = json!({ "listen_address": listen, "session_idle_minutes": 30, "session_absolute_hours": 2 });
        let (s, v) = put(&app, &admin, "site-settings", body).await;
        assert_eq!(
            (s, v["value"]["session_idle_minutes"].as_i64()),
            (StatusCode::OK, Some(30)),
            "{v}"
        );
        // A session started now gets the new lifetimes.
        app.login("root-admin", common::ADMIN_PASSWORD).await;
        let row: (i64, i64, i64) = sqlx::query_as(
        "SELECT idle_ms, expires_at, created_at FROM sessions WHERE revoked_at IS NULL ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
        assert_eq!(row.0, 30 * 60_000);
        assert_eq!(row.1 - row.2, 2 * 3_600_000);
        let ev = &audit(&app, &admin, "action=change-setting:site-settings&limit=5").await;
        assert_eq!(ev.len(), 2, "one event per changed field: {ev:?}");
    }
);

/// A small SMTP server: answers every command, refuses recipients when `refuse` is set, and
/// hands over each message's envelope and data.
async fn smtp_sink(
    refuse: bool,
) -> (
    u16,
    tokio::sync::mpsc::UnboundedReceiver<(String, String, String)>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink.test ESMTP\r\n").await.unwrap();
                let (mut from, mut to) = (String::new(), String::new());
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-sink.test\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        from = line[10..].trim().to_owned();
                        b"250 2.1.0 Ok\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        to = line[8..].trim().to_owned();
                        if refuse {
                            b"550 5.1.1 <nobody> mailbox unavailable\r\n"
                        } else {
                            b"250 2.1.5 Ok\r\n"
                        }
                    } else if upper.starts_with("DATA") {
                        w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                            .await
                            .unwrap();
                        let mut data = String::new();
                        loop {
                            line.clear();
                            r.read_line(&mut line).await.unwrap();
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        tx.send((from.clone(), to.clone(), data)).unwrap();
                        b"250 2.0.0 Ok: queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = w.write_all(b"221 2.0.0 Bye\r\n").await;
                        return;
                    } else {
                        b"250 Ok\r\n"
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, rx)
}

on_both_backends!(
    a_test_email_arrives_and_a_refusal_is_reported,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (_, aa) = app.user(&admin, "appadmin", "application_admin").await;
        let (port, mut inbox) = smtp_sink(false).await;
        let settings = json!({ "host": "127.0.0.1", "port": port, "security": "none", "username": "",
                           "password": "smtp secret 123", "from": "cryowarden@facility.example" });
        let (s, v) = put(&app, &aa, "email", settings).await;
        assert_eq!(s, StatusCode::OK, "the AA has `all` on email: {v}");
        assert_eq!(
            v["value"]["password"].as_str(),
            Some("***"),
            "the password is never returned"
        );
        let (_, v) = app.get("/api/v1/console/email", &admin).await;
        assert_eq!(v["value"]["password"].as_str(), Some("***"));
        // Sending the form back with "***" keeps the password.
        let (s, _) = put(
            &app,
            &aa,
            "email",
            json!({ "password": "***", "port": port }),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let stored = cryowarden_server::console::store::load::<
            cryowarden_server::console::email::EmailSettings,
        >(&app.state.db)
        .await
        .unwrap();
        assert_eq!(stored.password, "smtp secret 123");

        let (s, v) = app
            .post(
                "/api/v1/console/email/test",
                &aa,
                json!({ "to": "someone@lab.example" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (from, to, data) = inbox.recv().await.expect("the message arrived");
        assert!(
            from.contains("cryowarden@facility.example") && to.contains("someone@lab.example"),
            "{from} {to}"
        );
        assert!(data.contains("From: cryowarden@facility.example"), "{data}");
        assert!(data.contains("To: someone@lab.example"), "{data}");
        assert!(data.contains("Subject: cryowarden test email"), "{data}");
        let (s, v) = app
            .post(
                "/api/v1/console/email/test",
                &aa,
                json!({ "to": "not an address" }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("to")),
            "{v}"
        );

        // A server that refuses: 502 with its reply.
        let (bad_port, _inbox) = smtp_sink(true).await;
        let (s, _) = put(&app, &admin, "email", json!({ "port": bad_port })).await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = app
            .post(
                "/api/v1/console/email/test",
                &admin,
                json!({ "to": "nobody@lab.example" }),
            )
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::BAD_GATEWAY, Some("smtp-failed")),
            "{v}"
        );
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains("mailbox unavailable"),
            "{v}"
        );
        // The secret never reached the audit log.
        let all = audit(&app, &admin, "limit=500").await;
        assert!(
            !serde_json::to_string(&all).unwrap().contains("smtp secret"),
            "no secret in the audit log"
        );
        let ev = &audit(
            &app,
            &admin,
            "action=change-setting:email&target=email.password",
        )
        .await[0];
        assert_eq!(ev["after"].as_str(), Some("(set)"), "{ev}");
        // The troubleshooter has no email row.
        let (_, ts) = app.user(&admin, "trouble", "troubleshooter").await;
        let (s, _) = app
            .post(
                "/api/v1/console/email/test",
                &ts,
                json!({ "to": "x@lab.example" }),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_page_shows_each_row_as_the_table_says() {
    let Some(app) = TestApp::start(Backend::Sqlite).await else {
        return;
    };
    let admin = app.site_admin().await;
    app.user(&admin, "appadmin", "application_admin").await;
    app.user(&admin, "student", "none").await;
    let page = |cookie: String| {
        let req = app
            .http
            .get(format!("{}/admin/console", app.url))
            .header("cookie", cookie);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let (cookie, _) = app.login("appadmin", USER_PASSWORD).await;
    let (s, html) = page(cookie).await;
    assert_eq!(s, StatusCode::OK);
    for (key, (access, _)) in expected(Column::ApplicationAdmin) {
        assert!(
            html.contains(&format!("data-setting=\"{key}\" data-access=\"{access}\"")),
            "{key} {access}"
        );
    }
    for s in Setting::ALL {
        if !expected(Column::ApplicationAdmin).contains_key(s.as_str()) {
            assert!(
                !html.contains(&format!("id=\"setting-{s}\"")),
                "{s} is absent"
            );
        }
    }
    assert!(html.contains("Admin Console"), "the tab");
    assert!(
        html.contains("data-read-only-fields=\"login_message,system_email_address\""),
        "the partial row"
    );
    // The raw-JSON flag really shows the JSON, once a Site Admin turns it on.
    assert!(!html.contains("console-raw"));
    let (s, _) = put(
        &app,
        &admin,
        "experimental-features",
        json!({ "console_raw_json": true }),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (cookie, _) = app.login("root-admin", common::ADMIN_PASSWORD).await;
    let (_, html) = page(cookie).await;
    assert!(html.contains("class=\"console-raw\""), "raw JSON shown");
    let (cookie, _) = app.login("student", USER_PASSWORD).await;
    let (s, _) = page(cookie).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

on_both_backends!(a_project_admin_has_no_console, |app: TestApp| async move {
    let w = common::world::world(&app).await;
    let p = common::world::create_project(&app, &w.carol.1, w.lab1, "Apoferritin").await;
    assert_eq!(p["my_role"].as_str(), Some("project_admin"), "{p}");
    let (s, v) = app.get("/api/v1/console", &w.carol.1).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{v}"
    );
    let (s, _) = app.get("/api/v1/console/look-and-feel", &w.carol.1).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = put(&app, &w.carol.1, "terms-of-use", json!({ "active": false })).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
});
