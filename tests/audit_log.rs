//! The Audit Log (issue 6): every filter (impersonator included) over real HTTP, paging, the
//! streamed CSV/JSON export and its own audit event, who may read and who may maintain,
//! archiving that keeps the chain verifiable, tamper detection of live events and of archive
//! files, bad filters as 422 naming the field, and the page for a Troubleshooter and a user.
//! Both backends.

mod common;

use common::{ADMIN_PASSWORD, Backend, TestApp, USER_PASSWORD};
use cryowarden_server::audit::{self, NewEvent, Outcome, Who};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn event(
    actor: &str,
    impersonator: Option<&str>,
    action: &str,
    target: &str,
    outcome: Outcome,
) -> NewEvent {
    NewEvent {
        actor: Who {
            id: Some(1000),
            name: actor.into(),
        },
        impersonator: impersonator.map(|i| Who {
            id: Some(2000),
            name: i.into(),
        }),
        action: action.into(),
        target_kind: "thing",
        target_id: Some(format!("id-{target}")),
        target: Some(target.into()),
        outcome,
        reason: (outcome == Outcome::Denied).then(|| "not allowed".into()),
        before: None,
        after: Some(json!({ "n": target })),
        source: "test".into(),
    }
}

/// Records `e` so that its time is later than every event before it (distinct milliseconds,
/// for the time-range filters).
async fn record_later(app: &TestApp, e: NewEvent) -> i64 {
    let last = sqlx::query_scalar::<_, i64>("SELECT MAX(at) FROM audit_events")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap_or(0);
    while cryowarden_server::db::now_ms() <= last {
        tokio::task::yield_now().await;
    }
    audit::record(&app.state.db, e).await.expect("record")
}

/// Waits for the clock to pass `ms`; returns the time then.
async fn wait_past(ms: i64) -> i64 {
    loop {
        let now = cryowarden_server::db::now_ms();
        if now > ms {
            return now;
        }
        tokio::task::yield_now().await;
    }
}

fn seqs(v: &Value) -> Vec<i64> {
    v["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

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

/// A raw GET (export bodies are not JSON values): status, headers, body.
async fn raw(
    app: &TestApp,
    path: &str,
    token: &str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let resp = app
        .http
        .get(format!("{}{path}", app.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (s, h) = (resp.status(), resp.headers().clone());
    (s, h, resp.text().await.unwrap())
}

on_both_backends!(
    every_filter_selects_exactly_its_events,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let a = record_later(&app, event("alice", None, "test-alpha", "t1", Outcome::Ok)).await;
        let b = record_later(
            &app,
            event("bob", Some("alice"), "test-beta", "t2", Outcome::Ok),
        )
        .await;
        let c = record_later(
            &app,
            event("bob", Some("carol"), "test-alpha", "t1", Outcome::Denied),
        )
        .await;
        let d = record_later(
            &app,
            event("carol", None, "other-gamma", "t3", Outcome::Denied),
        )
        .await;
        let get = |q: &str| {
            let q = q.to_owned();
            let (app, admin) = (&app, &admin);
            async move {
                let (s, v) = app.get(&format!("/api/v1/audit?{q}"), admin).await;
                assert_eq!(s, StatusCode::OK, "{q}: {v}");
                seqs(&v)
            }
        };
        assert_eq!(get("actor=bob").await, vec![c, b]);
        assert_eq!(
            get("impersonator=alice").await,
            vec![b],
            "events recorded while alice impersonated"
        );
        assert_eq!(get("impersonator=carol").await, vec![c]);
        assert_eq!(get("actor=bob&impersonator=carol").await, vec![c]);
        assert_eq!(get("action=test-alpha").await, vec![c, a], "exact action");
        assert_eq!(get("action=test-*").await, vec![c, b, a], "action prefix");
        assert_eq!(get("action=test-*&actor=bob").await, vec![c, b]);
        assert_eq!(get("action=nothing-*").await, Vec::<i64>::new());
        assert_eq!(get("target=t1").await, vec![c, a], "by target name");
        assert_eq!(get("target=id-t2").await, vec![b], "by target id");
        assert_eq!(get("outcome=denied&action=*").await, vec![d, c]);
        // Time range: from is inclusive, to exclusive.
        let (_, v) = app
            .get(&format!("/api/v1/audit?before={}&limit=1", b + 1), &admin)
            .await;
        let at_b = v["events"][0]["at"].as_str().unwrap().to_owned();
        let (_, v) = app
            .get(&format!("/api/v1/audit?before={}&limit=1", d + 1), &admin)
            .await;
        let at_d = v["events"][0]["at"].as_str().unwrap().to_owned();
        let enc = |s: &str| s.replace('+', "%2B");
        assert_eq!(
            get(&format!("from={}&to={}", enc(&at_b), enc(&at_d))).await,
            vec![c, b]
        );
        assert_eq!(
            get(&format!("from={}&actor=carol", enc(&at_d))).await,
            vec![d]
        );
        assert_eq!(
            get(&format!("to={}&action=test-*", enc(&at_b))).await,
            vec![a]
        );
        assert_eq!(get("from=2999-01-01T00:00:00Z").await, Vec::<i64>::new());
        // Impersonated events show both names.
        let (_, v) = app.get("/api/v1/audit?impersonator=alice", &admin).await;
        assert_eq!(v["events"][0]["actor"], "bob");
        assert_eq!(v["events"][0]["impersonator"], "alice");
    }
);

on_both_backends!(
    pages_follow_the_cursor_without_gaps_or_repeats,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let mut tx = app.state.db.begin_write().await.unwrap();
        for i in 0..25 {
            audit::append(
                &mut tx,
                event("pager", None, "test-page", &format!("p{i}"), Outcome::Ok),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let mut all = Vec::new();
        let mut path = "/api/v1/audit?actor=pager&limit=10".to_owned();
        loop {
            let (s, v) = app.get(&path, &admin).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let page = seqs(&v);
            assert!(page.len() <= 10);
            all.extend(page);
            match v["next"].as_i64() {
                Some(n) => path = format!("/api/v1/audit?actor=pager&limit=10&before={n}"),
                None => break,
            }
        }
        assert_eq!(all.len(), 25);
        assert!(
            all.windows(2).all(|w| w[0] > w[1]),
            "newest first, no repeats: {all:?}"
        );
    }
);

on_both_backends!(
    bad_filters_are_422_naming_the_field,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let before = app.audit_len().await;
        for (q, field) in [
            ("outcome=maybe", "outcome"),
            ("from=yesterday", "from"),
            ("to=2026-13-01T00:00:00Z", "to"),
            ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
            ("action=a*b", "action"),
            ("action=*x*", "action"),
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("before=abc", "before"),
            ("before=-3", "before"),
        ] {
            let (s, v) = app.get(&format!("/api/v1/audit?{q}"), &admin).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {v}");
            assert_eq!(v["field"], field, "{q}: {v}");
            let (s, _, body) = raw(&app, &format!("/api/v1/audit/export?{q}"), &admin).await;
            if field != "limit" {
                assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "export {q}: {body}");
            }
        }
        let (s, _, body) = raw(&app, "/api/v1/audit/export?format=xml", &admin).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.contains("\"field\":\"format\""), "{body}");
        let (s, v) = app.get("/api/v1/audit?colour=red", &admin).await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "an unknown filter is refused: {v}"
        );
        assert_eq!(
            app.audit_len().await,
            before,
            "refused exports are not recorded"
        );
    }
);

on_both_backends!(
    export_streams_every_filtered_event_as_csv_and_json_and_is_audited,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        // More than a page (500) and than a chunk (64 KiB): the export is the whole set.
        let mut tx = app.state.db.begin_write().await.unwrap();
        for i in 0..1200 {
            let mut e = event(
                "exporter",
                None,
                "test-export",
                &format!("x{i}"),
                Outcome::Ok,
            );
            if i == 7 {
                e.reason = Some("a \"quoted\", comma\nand a newline".into());
            }
            audit::append(&mut tx, e).await.unwrap();
        }
        tx.commit().await.unwrap();
        let (s, h, csv) = raw(
            &app,
            "/api/v1/audit/export?format=csv&actor=exporter",
            &admin,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{csv}");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
        let disposition = h["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\"cryowarden-audit-")
                && disposition.ends_with(".csv\"")
        );
        assert!(
            csv.starts_with("seq,time,actor_id,actor,impersonator_id,impersonator,action,"),
            "{}",
            &csv[..200]
        );
        assert!(
            csv.contains(",\"a \"\"quoted\"\", comma\nand a newline\","),
            "RFC 4180 quoting"
        );
        assert!(
            csv.contains(",\"{\"\"n\"\":\"\"x3\"\"}\","),
            "JSON in a cell is quoted"
        );
        assert_eq!(
            csv.matches(",exporter,").count(),
            1200,
            "every event, no 500-row cap"
        );
        let (s, h, json_text) = raw(
            &app,
            "/api/v1/audit/export?format=json&actor=exporter&action=test-*",
            &admin,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h["content-type"], "application/json");
        assert!(
            h["content-disposition"]
                .to_str()
                .unwrap()
                .ends_with(".json\"")
        );
        let arr: Vec<Value> = serde_json::from_str(&json_text).expect("a JSON array");
        assert_eq!(arr.len(), 1200);
        let exported: Vec<i64> = arr.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert!(
            exported.windows(2).all(|w| w[0] + 1 == w[1]),
            "oldest first, in chain order"
        );
        assert_eq!(arr[7]["reason"], "a \"quoted\", comma\nand a newline");
        assert_eq!(arr[3]["after"], json!({ "n": "x3" }));
        // The same set as the paged list.
        let (_, v) = app
            .get(
                &format!(
                    "/api/v1/audit?actor=exporter&limit=500&before={}",
                    exported[1199] + 1
                ),
                &admin,
            )
            .await;
        assert_eq!(seqs(&v).first(), exported.last());
        // Each export is an audit event naming its format and filter.
        let (_, v) = app
            .get("/api/v1/audit?action=export-audit-log", &admin)
            .await;
        let events = v["events"].as_array().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["actor"], "root-admin");
        assert_eq!(
            events[0]["after"],
            json!({ "format": "json", "filter": { "actor": "exporter", "action": "test-*" } })
        );
        assert_eq!(
            events[1]["after"],
            json!({ "format": "csv", "filter": { "actor": "exporter" } })
        );
        let (s, _, empty) = raw(
            &app,
            "/api/v1/audit/export?format=json&actor=nobody",
            &admin,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(serde_json::from_str::<Vec<Value>>(&empty).unwrap().len(), 0);
        assert!(audit::verify(&app.state.db).await.unwrap().ok);
    }
);

/// Troubleshooters and Application Admins read the log and the maintenance section but change
/// nothing: 403, and the policy, the events and the archives stay as they were.
async fn reads_but_cannot_maintain(app: &TestApp, admin: &str, role: &str) {
    let (_, token) = app.user(admin, &format!("{role}-user"), role).await;
    let (s, v) = app.get("/api/v1/audit?limit=5", &token).await;
    assert_eq!(s, StatusCode::OK, "{role} reads the log: {v}");
    let (s, v) = app.get("/api/v1/audit/verify", &token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, _) = raw(app, "/api/v1/audit/export?format=csv", &token).await;
    assert_eq!(s, StatusCode::OK, "{role} exports");
    let (s, m) = app.get("/api/v1/audit/maintenance", &token).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "{role} sees the maintenance section: {m}"
    );
    let events_before = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    let now = cryowarden_server::db::format_ms(cryowarden_server::db::now_ms());
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/audit/maintenance",
            Some(&token),
            Some(json!({ "keep_days": 1 })),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "{role} may not change retention: {v}"
    );
    assert_eq!(v["code"], "forbidden");
    let (s, v) = app
        .post("/api/v1/audit/archive", &token, json!({ "before": now }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{role} may not archive: {v}");
    let (_, after) = app.get("/api/v1/audit/maintenance", admin).await;
    assert_eq!(after["policy"], m["policy"], "the policy is unchanged");
    assert_eq!(after["archives"], json!([]), "nothing archived");
    let events_after = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    // The two refusals (and the reads' export) are recorded; nothing was deleted.
    assert_eq!(events_after, events_before + 2);
    let (_, v) = app
        .get(
            &format!("/api/v1/audit?actor={role}-user&outcome=denied"),
            admin,
        )
        .await;
    let denied: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(denied, vec!["change-setting:audit-log-maintenance"; 2]);
}

on_both_backends!(
    troubleshooters_read_but_cannot_archive_or_set_retention,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        reads_but_cannot_maintain(&app, &admin, "troubleshooter").await;
    }
);

on_both_backends!(
    application_admins_read_but_cannot_archive_or_set_retention,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        reads_but_cannot_maintain(&app, &admin, "application_admin").await;
    }
);

on_both_backends!(
    ordinary_users_get_nothing_of_the_log,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let (_, token) = app.user(&admin, "student", "none").await;
        for path in [
            "/api/v1/audit",
            "/api/v1/audit/verify",
            "/api/v1/audit/export",
            "/api/v1/audit/maintenance",
        ] {
            let (s, v) = app.get(path, &token).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
        }
        let (cookie, _) = app.login("student", USER_PASSWORD).await;
        let (s, html) = page(&app, &cookie, "/admin/audit").await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert!(
            html.contains("Not allowed") && !html.contains("audit-events"),
            "{html}"
        );
    }
);

on_both_backends!(
    retention_policy_is_validated_and_audited,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        let put = |body: Value| {
            app.call(
                reqwest::Method::PUT,
                "/api/v1/audit/maintenance",
                Some(&admin),
                Some(body),
            )
        };
        let (s, v) = put(json!({ "keep_days": -1 })).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("keep_days")),
            "{v}"
        );
        let (s, v) = put(json!({ "keep_days": 36501 })).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        let (s, v) = put(json!({ "keep_days": 30, "extra": 1 })).await;
        assert!(s.is_client_error(), "{v}");
        let (_, m) = app.get("/api/v1/audit/maintenance", &admin).await;
        assert_eq!(m["policy"], json!({ "keep_days": 0 }), "nothing changed");
        assert_eq!(m["cutoff"], Value::Null);
        let (s, v) = put(json!({ "keep_days": 30 })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (_, m) = app.get("/api/v1/audit/maintenance", &admin).await;
        assert_eq!(m["policy"], json!({ "keep_days": 30 }));
        assert!(m["cutoff"].is_string());
        let (_, v) = app
            .get(
                "/api/v1/audit?action=change-setting:audit-log-maintenance&outcome=ok",
                &admin,
            )
            .await;
        assert_eq!(v["events"][0]["before"], json!({ "keep_days": 0 }));
        assert_eq!(v["events"][0]["after"], json!({ "keep_days": 30 }));
        // The policy's cut-off (30 days ago) covers no event yet: archiving by policy moves nothing.
        let (s, v) = app.post("/api/v1/audit/archive", &admin, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["archived"], 0);
        let (s, v) = app
            .post(
                "/api/v1/audit/archive",
                &admin,
                json!({ "before": "2999-01-01T00:00:00Z" }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("before")),
            "{v}"
        );
        let (s, v) = app
            .post(
                "/api/v1/audit/archive",
                &admin,
                json!({ "before": "last week" }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("before")),
            "{v}"
        );
    }
);

on_both_backends!(
    archiving_keeps_the_chain_verifiable_and_archives_verify_alone,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        for i in 0..30 {
            record_later(
                &app,
                event("early", None, "test-early", &format!("e{i}"), Outcome::Ok),
            )
            .await;
        }
        let last_seq = app.audit_len().await;
        let last_at = sqlx::query_scalar::<_, i64>("SELECT MAX(at) FROM audit_events")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        let cut_ms = wait_past(last_at).await;
        let cut = cryowarden_server::db::format_ms(cut_ms);
        // An event after the cut-off stays in the table.
        wait_past(cut_ms).await;
        audit::record(
            &app.state.db,
            event("late", None, "test-late", "l0", Outcome::Ok),
        )
        .await
        .unwrap();
        let (s, v) = app
            .post("/api/v1/audit/archive", &admin, json!({ "before": cut }))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            v["archived"], last_seq,
            "events #1..#{last_seq} archived: {v}"
        );
        let anchor = v["anchor"].clone();
        assert_eq!(anchor["first_seq"], 1);
        assert_eq!(anchor["seq"], last_seq);
        let file = app
            .dir
            .path()
            .join("audit-archive")
            .join(anchor["file"].as_str().unwrap());
        assert!(file.is_file());
        let lines = std::fs::read_to_string(&file).unwrap();
        assert_eq!(lines.lines().count() as i64, last_seq);
        let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
        assert_eq!(
            (first["seq"].as_i64(), first["prev_hash"].as_str()),
            (Some(1), Some(audit::GENESIS))
        );
        // The live chain verifies from the anchor; the archive event is in it.
        let (s, ver) = app.get("/api/v1/audit/verify", &admin).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(ver["ok"], true, "{ver}");
        assert_eq!(ver["anchored_after"], last_seq);
        assert_eq!(
            ver["events"], 2,
            "the late event and the archive event: {ver}"
        );
        let (_, v) = app
            .get("/api/v1/audit?action=archive-audit-log", &admin)
            .await;
        assert_eq!(v["events"][0]["after"]["events"], last_seq);
        assert_eq!(v["events"][0]["actor"], "root-admin");
        let (s, av) = app
            .get(
                &format!("/api/v1/audit/archives/{}/verify", anchor["id"]),
                &admin,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(av["ok"], true, "{av}");
        assert_eq!(av["events"], last_seq);
        // New events chain on; a second archive continues from the first.
        for i in 0..5 {
            record_later(
                &app,
                event("later", None, "test-later", &format!("m{i}"), Outcome::Ok),
            )
            .await;
        }
        let now = cryowarden_server::db::format_ms(cryowarden_server::db::now_ms());
        let (s, v) = app
            .post("/api/v1/audit/archive", &admin, json!({ "before": now }))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["anchor"]["first_seq"], last_seq + 1);
        assert_eq!(v["anchor"]["prev_hash"], anchor["hash"]);
        let (_, ver) = app.get("/api/v1/audit/verify", &admin).await;
        assert_eq!(ver["ok"], true, "{ver}");
        assert_eq!(ver["anchored_after"], v["anchor"]["seq"]);
        for id in [1, 2] {
            let (_, av) = app
                .get(&format!("/api/v1/audit/archives/{id}/verify"), &admin)
                .await;
            assert_eq!(av["ok"], true, "archive {id}: {av}");
        }
        let (_, m) = app.get("/api/v1/audit/maintenance", &admin).await;
        assert_eq!(m["archives"].as_array().unwrap().len(), 2);
        // Appends after an archive keep numbering from the chain, never from 1 again.
        let seq = audit::record(
            &app.state.db,
            event("after", None, "test-after", "z", Outcome::Ok),
        )
        .await
        .unwrap();
        assert!(seq > v["anchor"]["seq"].as_i64().unwrap() + 1);
        assert!(audit::verify(&app.state.db).await.unwrap().ok);
        let (s, v) = app.get("/api/v1/audit/archives/99/verify", &admin).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    }
);

on_both_backends!(
    tampering_is_detected_in_live_events_and_in_archive_files,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        for i in 0..10 {
            record_later(
                &app,
                event("someone", None, "test-t", &format!("t{i}"), Outcome::Ok),
            )
            .await;
        }
        let now = cryowarden_server::db::format_ms(cryowarden_server::db::now_ms());
        let (s, v) = app
            .post("/api/v1/audit/archive", &admin, json!({ "before": now }))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let anchor = v["anchor"].clone();
        let archived_to = anchor["seq"].as_i64().unwrap();
        for i in 0..5 {
            record_later(
                &app,
                event("someone", None, "test-t2", &format!("u{i}"), Outcome::Ok),
            )
            .await;
        }
        // A live event altered in place.
        let victim = archived_to + 3;
        sqlx::query("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = $1")
            .bind(victim)
            .execute(&app.state.db.pool)
            .await
            .unwrap();
        let (_, ver) = app.get("/api/v1/audit/verify", &admin).await;
        assert_eq!(ver["ok"], false);
        assert_eq!(ver["first_broken"], victim, "{ver}");
        assert!(
            ver["problem"].as_str().unwrap().contains("altered"),
            "{ver}"
        );
        let (cookie, _) = app.login("root-admin", ADMIN_PASSWORD).await;
        let (s, html) = page(&app, &cookie, "/admin/audit").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            html.contains(&format!("Chain broken at event #{victim}")),
            "the page says where"
        );
        // A broken chain is never archived.
        let now = cryowarden_server::db::format_ms(cryowarden_server::db::now_ms());
        let (s, v) = app
            .post("/api/v1/audit/archive", &admin, json!({ "before": now }))
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("#{victim}")),
            "{v}"
        );
        let (_, m) = app.get("/api/v1/audit/maintenance", &admin).await;
        assert_eq!(
            m["archives"].as_array().unwrap().len(),
            1,
            "no archive was added"
        );
        let files = std::fs::read_dir(app.dir.path().join("audit-archive"))
            .unwrap()
            .count();
        assert_eq!(files, 1, "and no file left behind");
        // An archived event altered in its file.
        let file = app
            .dir
            .path()
            .join("audit-archive")
            .join(anchor["file"].as_str().unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        let line2 = text.lines().nth(1).unwrap();
        let forged = line2.replace("\"outcome\":\"ok\"", "\"outcome\":\"denied\"");
        assert_ne!(forged, line2);
        std::fs::write(&file, text.replacen(line2, &forged, 1)).unwrap();
        let (_, av) = app
            .get(
                &format!("/api/v1/audit/archives/{}/verify", anchor["id"]),
                &admin,
            )
            .await;
        assert_eq!(av["ok"], false, "{av}");
        assert_eq!(av["file_sha256_ok"], false);
        assert_eq!(av["first_broken"], 2, "{av}");
        // A line removed from the file: the chain skips.
        std::fs::write(&file, text.replacen(&format!("{line2}\n"), "", 1)).unwrap();
        let (_, av) = app
            .get(
                &format!("/api/v1/audit/archives/{}/verify", anchor["id"]),
                &admin,
            )
            .await;
        assert_eq!(
            (av["ok"].as_bool(), av["first_broken"].as_i64()),
            (Some(false), Some(3)),
            "{av}"
        );
        // Restored byte for byte, it verifies again.
        std::fs::write(&file, &text).unwrap();
        let (_, av) = app
            .get(
                &format!("/api/v1/audit/archives/{}/verify", anchor["id"]),
                &admin,
            )
            .await;
        assert_eq!(av["ok"], true, "{av}");
    }
);

on_both_backends!(
    the_page_renders_for_a_troubleshooter_and_site_admins_archive_from_it,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        record_later(
            &app,
            event("bob", Some("alice"), "test-imp", "x", Outcome::Ok),
        )
        .await;
        app.user(&admin, "helper", "troubleshooter").await;
        let (cookie, csrf) = app.login("helper", USER_PASSWORD).await;
        let (s, html) = page(&app, &cookie, "/admin/audit").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains(">Audit Log</a>"), "the tab is listed");
        assert!(html.contains("Chain verifies: "), "{html}");
        assert!(
            html.contains("<td>alice as bob</td>"),
            "both identities shown"
        );
        assert!(html.contains("id=\"export-csv\"") && html.contains("export?format=json"));
        assert!(html.contains("id=\"maintenance-read-only\""));
        // The page's export link works with the browser session (a GET: no CSRF header needed).
        let (s, csv) = page(
            &app,
            &cookie,
            "/api/v1/audit/export?format=csv&impersonator=alice",
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            csv.lines().count(),
            2,
            "the header and the one impersonated event: {csv}"
        );
        assert!(csv.contains(",alice,test-imp,"), "{csv}");
        assert!(!html.contains("id=\"archive-form\"") && !html.contains("id=\"policy-form\""));
        let (s, html) = page(
            &app,
            &cookie,
            "/admin/audit?impersonator=alice&action=test-*",
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(html.matches("<tr data-seq=").count(), 1);
        let (s, html) = page(&app, &cookie, "/admin/audit?outcome=sometimes").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html.contains("outcome must be `ok` or `denied`"), "{html}");
        // The troubleshooter's forged form post is refused and changes nothing.
        let (s, _) = post_form(
            &app,
            &cookie,
            "/admin/audit/archive",
            &[("_csrf", &csrf), ("before", "")],
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Paging by the Next link.
        let mut tx = app.state.db.begin_write().await.unwrap();
        for i in 0..12 {
            audit::append(
                &mut tx,
                event("pager", None, "test-page", &format!("p{i}"), Outcome::Ok),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let (_, html) = page(&app, &cookie, "/admin/audit?actor=pager&limit=5").await;
        let start = html
            .find("id=\"audit-next\"")
            .map(|i| html[..i].rfind("href=\"").unwrap() + 6)
            .expect("a Next link");
        let next = html[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
            .replace("&#x2f;", "/");
        assert!(
            next.contains("actor=pager") && next.contains("before="),
            "{next}"
        );
        let (_, html2) = page(&app, &cookie, &next).await;
        assert_eq!(html2.matches("<tr data-seq=").count(), 5);
        // A Site Admin sets the policy and archives from the page.
        let (cookie, csrf) = app.login("root-admin", ADMIN_PASSWORD).await;
        let (_, html) = page(&app, &cookie, "/admin/audit").await;
        assert!(html.contains("id=\"archive-form\"") && html.contains("id=\"policy-form\""));
        let (s, html) = post_form(
            &app,
            &cookie,
            "/admin/audit/maintenance",
            &[("_csrf", &csrf), ("keep_days", "x")],
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let (s, _) = post_form(
            &app,
            &cookie,
            "/admin/audit/maintenance",
            &[("_csrf", &csrf), ("keep_days", "90")],
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let now = cryowarden_server::db::format_ms(cryowarden_server::db::now_ms());
        let (s, _) = post_form(
            &app,
            &cookie,
            "/admin/audit/archive",
            &[("_csrf", &csrf), ("before", &now)],
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let (_, html) = page(&app, &cookie, "/admin/audit").await;
        assert!(
            html.contains("id=\"audit-archives\""),
            "the archive is listed"
        );
        assert!(html.contains("keep 90 days"));
        assert!(
            html.contains("Chain verifies: ") && html.contains("from the archive anchor"),
            "{html}"
        );
    }
);

on_both_backends!(
    the_page_verifies_new_events_and_full_verification_finds_old_tampering,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        for i in 0..5 {
            audit::record(
                &app.state.db,
                event("someone", None, "test-c", &format!("c{i}"), Outcome::Ok),
            )
            .await
            .unwrap();
        }
        let (cookie, _) = app.login("root-admin", ADMIN_PASSWORD).await;
        // No checkpoint yet: the first load verifies the whole chain.
        let (s, html) = page(&app, &cookie, "/admin/audit").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("full verification just now"), "{html}");
        assert!(
            html.contains("href=\"/admin/audit?full=1\""),
            "the page offers a full verification"
        );
        let old = audit::record(
            &app.state.db,
            event("someone", None, "test-c", "old", Outcome::Ok),
        )
        .await
        .unwrap();
        let (_, html) = page(&app, &cookie, "/admin/audit").await;
        assert!(
            html.contains("verified incrementally") && html.contains("1 new events checked"),
            "{html}"
        );

        // A NEW event (appended after the last check) altered: the incremental check finds it.
        let mut new = Vec::new();
        for i in 0..3 {
            new.push(
                audit::record(
                    &app.state.db,
                    event("someone", None, "test-c", &format!("n{i}"), Outcome::Ok),
                )
                .await
                .unwrap(),
            );
        }
        let tamper = |seq: i64, reason: Option<&'static str>| {
            let pool = app.state.db.pool.clone();
            async move {
                sqlx::query("UPDATE audit_events SET reason = $1 WHERE seq = $2")
                    .bind(reason)
                    .bind(seq)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        };
        tamper(new[1], Some("nothing to see")).await;
        let (_, html) = page(&app, &cookie, "/admin/audit").await;
        assert!(
            html.contains(&format!("Chain broken at event #{}", new[1])),
            "{html}"
        );
        assert!(html.contains("found by the incremental check"), "{html}");
        // Put back as it was: the new events verify and the checkpoint moves past them.
        tamper(new[1], None).await;
        let (_, html) = page(&app, &cookie, "/admin/audit").await;
        assert!(html.contains("3 new events checked"), "{html}");
        assert!(
            html.contains(&format!("Chain verifies through event #{}", new[2])),
            "{html}"
        );

        // An OLD event (already verified) altered: the incremental check does not read it again
        // (the page says so), a full verification finds it — the page's and the API's.
        tamper(old, Some("nothing to see")).await;
        let (_, html) = page(&app, &cookie, "/admin/audit").await;
        assert!(html.contains("0 new events checked"), "{html}");
        assert!(html.contains("found only by a full verification"), "{html}");
        let (s, html) = page(&app, &cookie, "/admin/audit?full=1").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            html.contains(&format!("Chain broken at event #{old}")),
            "{html}"
        );
        assert!(!html.contains("found by the incremental check"), "{html}");
        let (_, ver) = app.get("/api/v1/audit/verify", &admin).await;
        assert_eq!(ver["ok"], false);
        assert_eq!(ver["first_broken"], old, "{ver}");
        // The failed full verification dropped the checkpoint: plain loads show the break too.
        let (_, html) = page(&app, &cookie, "/admin/audit").await;
        assert!(
            html.contains(&format!("Chain broken at event #{old}")),
            "{html}"
        );
        // Repaired: a full verification succeeds again.
        tamper(old, None).await;
        let (_, html) = page(&app, &cookie, "/admin/audit?full=1").await;
        assert!(html.contains("full verification just now"), "{html}");
        assert!(audit::verify(&app.state.db).await.unwrap().ok);
    }
);

on_both_backends!(
    csv_export_defuses_formulas_in_every_text_cell,
    |app: TestApp| async move {
        let admin = app.site_admin().await;
        // Names, targets, reasons and sources are chosen by users or the outside world.
        let nasty = [
            "=HYPERLINK(\"http://evil.example\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rcmd",
        ];
        for (i, n) in nasty.iter().enumerate() {
            let mut e = event(n, None, "test-formula", n, Outcome::Denied);
            e.reason = Some((*n).to_owned());
            e.source = (*n).to_owned();
            e.target_id = Some(format!("t{i}"));
            audit::record(&app.state.db, e).await.expect("record");
        }
        let (s, _, csv) = raw(
            &app,
            "/api/v1/audit/export?format=csv&action=test-formula",
            &admin,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{csv}");
        let mut rows = 0;
        // Every cell (after CSV unquoting) must not start with a formula character.
        let mut cells = Vec::new();
        let (mut cell, mut quoted, mut chars) = (String::new(), false, csv.chars().peekable());
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => cells.push(std::mem::take(&mut cell)),
                ('\n', false) => {
                    cells.push(std::mem::take(&mut cell));
                    rows += 1;
                }
                _ => cell.push(c),
            }
        }
        assert_eq!(
            rows,
            1 + nasty.len(),
            "a header and one row per event: {csv}"
        );
        for c in &cells {
            assert!(
                !c.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "cell {c:?} would be read as a formula"
            );
        }
        for n in nasty {
            assert!(
                cells.iter().any(|c| *c == format!("'{n}")),
                "{n:?} kept, defused: {cells:?}"
            );
        }
    }
);
