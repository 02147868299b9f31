//! `spec/roles.md` §1 (the admin console settings), generated: for every setting of
//! [`Setting::ALL`] and every role column — Site Admin, Application Admin, Troubleshooter,
//! Impersonating Troubleshooter, an ordinary user, a Project Admin (an ordinary user who is
//! project admin of project P) and a Folder Admin (folder admin of workspace W of P) — one real
//! HTTP request with the actor's real API token; plus §2's `impersonate` row, from real browser
//! sessions.
//!
//! The expected outcome is never written per case: it is `cryowarden_core::authorize()` asked
//! on the same facts, itself cross-checked against `table::setting_access` for every cell and
//! against cells read by hand from `spec/roles.md` ([`hand_read_cells`]). Then:
//! - a setting that can be changed through the public API has one entry in [`CHANGES`]: its
//!   request, and the state a Site Admin reads to judge it. Allowed: a 2xx, the state changed as
//!   sent (each case's body differs from the state before it), and an `ok` audit event by the
//!   actor. Refused: a 403 `forbidden`, the state identical before and after, and a `denied`
//!   audit event by the actor;
//! - a setting with nothing to change (read-only for everyone, or a view with no action) is in
//!   [`NO_CHANGE`] with the reason; for those, a `PUT /api/v1/console/{key}` is refused (403 and
//!   a `denied` event) to whoever may not change the row, and answered 422 (nothing to change)
//!   to whoever may;
//! - every setting is read (`GET /api/v1/console/{key}`) by every role: 200 with the row's access
//!   when allowed, else 403 and a `denied` event (tests/console.rs reads it for the staff roles;
//!   here the ordinary user, project admin and folder admin are added).
//!
//! Where the server disagrees with the table, the case is collected and the test fails at the
//! end listing every such case (request, role, expected, got).

mod common;

use common::session::Session;
use common::world::{create_project, world};
use common::{ADMIN_PASSWORD, Backend, TestApp, USER_PASSWORD};
use cryowarden_core::{
    Access, Action, Activity, Actor, Column, Decision, Resource, Setting, SiteRole, UserId,
    authorize, table::setting_access,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The diagnostics (site errors, query statistics, log levels) are process-wide: the two
/// backends' tests run in one process, so their diagnostic cases take turns.
static DIAGNOSTICS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How a setting is changed through the public API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Req {
    /// `PATCH /api/v1/settings/instance` `{<field>: ...}`; state: `GET /api/v1/settings/instance`.
    Instance(&'static str),
    /// `PUT /api/v1/console/{key}` with one of the row's fields; state: the row's `value`.
    Console,
    /// `PUT /api/v1/audit/maintenance` `{keep_days}`; state: its `policy`.
    AuditMaintenance,
    /// `PUT /api/v1/custom-vars`; state: `GET /api/v1/custom-vars`.
    CustomVars,
    /// `PUT /api/v1/users/{pm}/lanes` (toggled); state: `GET /api/v1/users/{pm}/lanes`.
    LaneRestrictions,
    /// `POST /api/v1/lanes` (a new lane, removed after); state: `GET /api/v1/lanes`.
    Compute,
    /// `POST /api/v1/diagnostics/{key}/{action}`; state: `GET /api/v1/diagnostics/{key}`.
    Diagnostic(&'static str),
}

/// A change through the public API: the setting, the field the oracle is asked about (the
/// look-and-feel row is partial for Application Admins), and the request.
struct Change {
    setting: Setting,
    field: Option<&'static str>,
    req: Req,
}

const fn ch(setting: Setting, field: Option<&'static str>, req: Req) -> Change {
    Change {
        setting,
        field,
        req,
    }
}

/// Every setting with a change through the public API.
const CHANGES: &[Change] = &[
    ch(
        Setting::LookAndFeel,
        Some("instance_name"),
        Req::Instance("instance_name"),
    ),
    ch(
        Setting::LookAndFeel,
        Some("banner"),
        Req::Instance("banner"),
    ),
    ch(
        Setting::LookAndFeel,
        Some("login_message"),
        Req::Instance("login_message"),
    ),
    ch(
        Setting::LookAndFeel,
        Some("system_email_address"),
        Req::Instance("system_email_address"),
    ),
    ch(
        Setting::Scheduler,
        None,
        Req::Instance("default_job_priority"),
    ),
    ch(
        Setting::SystemMaintenance,
        None,
        Req::Instance("maintenance"),
    ),
    ch(
        Setting::StorageRoots,
        None,
        Req::Instance("default_import_policy"),
    ),
    ch(Setting::SiteSettings, None, Req::Console),
    ch(Setting::Authentication, None, Req::Console),
    ch(Setting::ExternalRedirectHosts, None, Req::Console),
    ch(Setting::Email, None, Req::Console),
    ch(Setting::LimitActiveUsers, None, Req::Console),
    ch(Setting::TermsOfUse, None, Req::Console),
    ch(Setting::ExperimentalFeatures, None, Req::Console),
    ch(Setting::AuditLogMaintenance, None, Req::AuditMaintenance),
    ch(Setting::ClusterCustomVariables, None, Req::CustomVars),
    ch(Setting::LaneRestrictions, None, Req::LaneRestrictions),
    ch(Setting::Compute, None, Req::Compute),
    ch(Setting::SiteErrors, None, Req::Diagnostic("reset")),
    ch(Setting::Queries, None, Req::Diagnostic("reset")),
    ch(Setting::Loggers, None, Req::Diagnostic("set")),
    ch(Setting::CheckDatabase, None, Req::Diagnostic("vacuum")),
];

/// Every setting with nothing to change through the public API, and why.
const NO_CHANGE: &[(Setting, &str)] = &[
    (
        Setting::StartupProperties,
        "read-only for every role: the configuration the server started with",
    ),
    (Setting::Credits, "read-only for every role"),
    (
        Setting::EnvironmentVariables,
        "a view of the server's environment: nothing to change at run time",
    ),
    (
        Setting::SystemProperties,
        "a view of the host: nothing to change",
    ),
    (
        Setting::DataSources,
        "a view of the database connection: it comes from the configuration file",
    ),
    (
        Setting::RunningTasks,
        "a live view of the server's tasks: no action",
    ),
    (
        Setting::MemoryUsage,
        "a live view of the process memory: no action",
    ),
    (
        Setting::SqlScripts,
        "the migration status: migrations run at start, no action",
    ),
    (
        Setting::InstanceLogs,
        "reading the logs' tails is all there is (tests/diagnostics.rs)",
    ),
    (
        Setting::LdapSync,
        "not available in this release: the row says so",
    ),
    (
        Setting::AuditLog,
        "view, search and export only: the audit log itself is never changed",
    ),
    (Setting::DiagnosticReport, "a download: nothing to change"),
    (
        Setting::SiteValidation,
        "its action queues a real validation job on every lane (tests/diagnostics.rs runs it)",
    ),
];

/// An actor: one role column, with the facts the oracle needs.
struct Who {
    label: &'static str,
    name: String,
    id: i64,
    token: String,
    password: &'static str,
    role: SiteRole,
    /// Project Admin of P.
    pa: bool,
    /// Folder Admin of W.
    fa: bool,
}

impl Who {
    fn actor(&self) -> Actor {
        Actor::new(UserId(self.id), self.role)
    }
    /// The column of the table this actor holds for an instance-wide setting.
    fn column(&self) -> Column {
        match self.role {
            SiteRole::SiteAdmin => Column::SiteAdmin,
            SiteRole::ApplicationAdmin => Column::ApplicationAdmin,
            SiteRole::Troubleshooter => Column::Troubleshooter,
            SiteRole::ImpersonatingTroubleshooter => Column::ImpersonatingTroubleshooter,
            SiteRole::None if self.pa => Column::ProjectAdmin,
            SiteRole::None if self.fa => Column::FolderAdmin,
            SiteRole::None => Column::User,
        }
    }
}

/// A user an impersonation is aimed at.
struct ImpTarget {
    label: &'static str,
    id: i64,
    role: SiteRole,
    /// A member of P.
    in_p: bool,
}

struct Bed {
    sa: String,
    /// An ordinary member of P: lane restrictions are set on them.
    pm: i64,
    lane: String,
    actors: Vec<Who>,
    imp_targets: Vec<ImpTarget>,
}

/// The world: the two labs of `common::world`, project P of lab1 administered by carol,
/// workspace W of P with folder admin dave, an ordinary member of P (pm), a second Site Admin,
/// and bob of lab2 as the outsider.
async fn build(app: &TestApp) -> Bed {
    let w = world(app).await;
    let sa = w.admin.clone();
    let p = create_project(app, &w.carol.1, w.lab1, "p").await["id"]
        .as_i64()
        .unwrap();
    let (s, v) = app
        .post(
            &format!("/api/v1/projects/{p}/workspaces"),
            &sa,
            json!({ "name": "w", "parent_id": null }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ws = v["id"].as_i64().unwrap();
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/projects/{p}/workspaces/{ws}/admins"),
            Some(&w.carol.1),
            Some(json!({ "user_ids": [w.dave.0] })),
        )
        .await;
    assert_eq!(
        (s, v["folder_admins"][0].as_str()),
        (StatusCode::OK, Some("dave")),
        "{v}"
    );

    let (pm, _) = app.user(&sa, "pm", "none").await;
    let (s, v) = app
        .post(
            &format!("/api/v1/labs/{}/members", w.lab1),
            &sa,
            json!({ "user_id": pm, "role": "member" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .post(
            &format!("/api/v1/projects/{p}/members"),
            &sa,
            json!({ "user_id": pm, "role": "reader" }),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let (sa2, _) = app.user(&sa, "sa2", "site_admin").await;

    let (aa_id, aa) = app.user(&sa, "aa", "application_admin").await;
    let (ts_id, ts) = app.user(&sa, "ts", "troubleshooter").await;
    let (it_id, it) = app.user(&sa, "it", "impersonating_troubleshooter").await;
    let (_, me) = app.get("/api/v1/users/me", &sa).await;
    let sa_id = me["id"].as_i64().unwrap();
    let (_, lanes) = app.get("/api/v1/lanes", &sa).await;
    let lane = lanes[0]["name"]
        .as_str()
        .expect("the default lane")
        .to_owned();

    let who = |label, name: &str, id, token: &str, role, pa, fa| Who {
        label,
        name: name.to_owned(),
        id,
        token: token.to_owned(),
        password: if role == SiteRole::SiteAdmin {
            ADMIN_PASSWORD
        } else {
            USER_PASSWORD
        },
        role,
        pa,
        fa,
    };
    let actors = vec![
        who(
            "site_admin",
            "root-admin",
            sa_id,
            &sa,
            SiteRole::SiteAdmin,
            false,
            false,
        ),
        who(
            "application_admin",
            "aa",
            aa_id,
            &aa,
            SiteRole::ApplicationAdmin,
            false,
            false,
        ),
        who(
            "troubleshooter",
            "ts",
            ts_id,
            &ts,
            SiteRole::Troubleshooter,
            false,
            false,
        ),
        who(
            "impersonating_troubleshooter",
            "it",
            it_id,
            &it,
            SiteRole::ImpersonatingTroubleshooter,
            false,
            false,
        ),
        who(
            "user",
            "alice",
            w.alice.0,
            &w.alice.1,
            SiteRole::None,
            false,
            false,
        ),
        who(
            "project_admin",
            "carol",
            w.carol.0,
            &w.carol.1,
            SiteRole::None,
            true,
            false,
        ),
        who(
            "folder_admin",
            "dave",
            w.dave.0,
            &w.dave.1,
            SiteRole::None,
            false,
            true,
        ),
    ];
    let imp_targets = vec![
        ImpTarget {
            label: "user of P",
            id: pm,
            role: SiteRole::None,
            in_p: true,
        },
        ImpTarget {
            label: "Site Admin",
            id: sa2,
            role: SiteRole::SiteAdmin,
            in_p: false,
        },
        ImpTarget {
            label: "outsider",
            id: w.bob.0,
            role: SiteRole::None,
            in_p: false,
        },
    ];
    Bed {
        sa,
        pm,
        lane,
        actors,
        imp_targets,
    }
}

/// The oracle of a §1 change, cross-checked against the permission table itself.
fn oracle_change(who: &Who, setting: Setting, field: Option<&'static str>) -> bool {
    let d = authorize(
        &who.actor(),
        Action::ChangeSetting { setting, field },
        &Resource::instance(),
    );
    let (access, read_only) = setting_access(setting, who.column());
    let by_table = access == Access::All && field.is_none_or(|f| !read_only.contains(&f));
    assert_eq!(
        d.is_allowed(),
        by_table,
        "{} change {setting}{}: authorize() and table::setting_access disagree",
        who.label,
        field.map(|f| format!(".{f}")).unwrap_or_default()
    );
    d.is_allowed()
}

/// The oracle of a §1 read, cross-checked against the permission table.
fn oracle_read(who: &Who, setting: Setting) -> bool {
    let d = authorize(
        &who.actor(),
        Action::ReadSetting(setting),
        &Resource::instance(),
    );
    let by_table = setting_access(setting, who.column()).0 != Access::None;
    assert_eq!(
        d.is_allowed(),
        by_table,
        "{} read {setting}: authorize() and the table disagree",
        who.label
    );
    d.is_allowed()
}

async fn last_seq(app: &TestApp, sa: &str, query: &str) -> i64 {
    let (s, v) = app.get(&format!("/api/v1/audit?limit=1{query}"), sa).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"][0]["seq"].as_i64().unwrap_or(0)
}

/// The path a Site Admin reads to judge a change, and the part of the answer that is the state.
fn state_path(c: &Change, bed: &Bed) -> String {
    match c.req {
        Req::Instance(_) => "/api/v1/settings/instance".into(),
        Req::Console => format!("/api/v1/console/{}", c.setting),
        Req::AuditMaintenance => "/api/v1/audit/maintenance".into(),
        Req::CustomVars => "/api/v1/custom-vars".into(),
        Req::LaneRestrictions => format!("/api/v1/users/{}/lanes", bed.pm),
        Req::Compute => "/api/v1/lanes".into(),
        Req::Diagnostic(_) => format!("/api/v1/diagnostics/{}", c.setting),
    }
}

async fn state(app: &TestApp, bed: &Bed, c: &Change) -> Value {
    let path = state_path(c, bed);
    let (s, v) = app.get(&path, &bed.sa).await;
    assert_eq!(s, StatusCode::OK, "{path}: {v}");
    match c.req {
        Req::Console => v["value"].clone(),
        Req::AuditMaintenance => v["policy"].clone(),
        // The statistics move with every request: the state is when they were last reset.
        Req::Diagnostic(_) if c.setting == Setting::Queries => json!({ "since": v["since"] }),
        Req::Diagnostic(_) if c.setting == Setting::SiteErrors => {
            json!({ "since": v["since"], "count": v["count"], "seen": v["seen_since_reset"] })
        }
        Req::Diagnostic(_) if c.setting == Setting::Loggers => v["services"].clone(),
        _ => v,
    }
}

/// The request of case `n`, with a body that differs from the state `before`.
fn request(c: &Change, bed: &Bed, n: usize, before: &Value) -> (Method, String, Value) {
    let bump = |v: &Value, default: i64| v.as_i64().unwrap_or(default) + 1;
    match c.req {
        Req::Instance(field) => {
            let value = match field {
                "instance_name" => json!(format!("Facility {n}")),
                "banner" => json!({ "active": true, "text": format!("banner {n}") }),
                "login_message" => {
                    json!({ "active": true, "title": format!("hello {n}"), "body": "" })
                }
                "system_email_address" => json!(format!("ops{n}@facility.example")),
                "default_job_priority" => json!((before[field].as_i64().unwrap() + 1) % 101),
                // Not active: maintenance mode would stand in the way of the other cases.
                "maintenance" => json!({ "active": false, "message": format!("maintenance {n}") }),
                "default_import_policy" => json!(match before[field].as_str().unwrap() {
                    "all_members" => "managers",
                    "managers" => "facility_staff",
                    _ => "all_members",
                }),
                f => panic!("no body for {f}"),
            };
            (
                Method::PATCH,
                "/api/v1/settings/instance".into(),
                json!({ field: value }),
            )
        }
        Req::Console => {
            let body = match c.setting {
                Setting::SiteSettings => {
                    json!({ "session_idle_minutes": bump(&before["session_idle_minutes"], 60) })
                }
                Setting::Authentication => {
                    json!({ "lockout_minutes": bump(&before["lockout_minutes"], 15) })
                }
                Setting::ExternalRedirectHosts => json!({ "hosts": [format!("h{n}.example")] }),
                Setting::Email => json!({ "host": format!("smtp{n}.example") }),
                // A cap far above the users of this test (0 would be no cap, 1 would lock them out).
                Setting::LimitActiveUsers => json!({ "max_active_users": 10_000 + n }),
                // Not active: signing in would then ask for acceptance.
                Setting::TermsOfUse => json!({ "text": format!("terms {n}") }),
                Setting::ExperimentalFeatures => {
                    json!({ "console_raw_json": !before["console_raw_json"].as_bool().unwrap_or(false) })
                }
                s => panic!("no console body for {s}"),
            };
            (Method::PUT, format!("/api/v1/console/{}", c.setting), body)
        }
        Req::AuditMaintenance => (
            Method::PUT,
            "/api/v1/audit/maintenance".into(),
            json!({ "keep_days": 3650 + n as i64 }),
        ),
        Req::CustomVars => (
            Method::PUT,
            "/api/v1/custom-vars".into(),
            json!({ "CW_CASE": format!("v{n}") }),
        ),
        Req::LaneRestrictions => {
            let none = before["not_allowed"]
                .as_array()
                .is_none_or(std::vec::Vec::is_empty);
            let not_allowed = if none { json!([bed.lane]) } else { json!([]) };
            (
                Method::PUT,
                format!("/api/v1/users/{}/lanes", bed.pm),
                json!({ "not_allowed": not_allowed }),
            )
        }
        Req::Compute => (
            Method::POST,
            "/api/v1/lanes".into(),
            json!({ "name": format!("extra{n}"), "kind": "node" }),
        ),
        Req::Diagnostic(action) => {
            let body = if c.setting == Setting::Loggers {
                let api = before
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["service"] == "api")
                    .unwrap();
                let level = if api["source"] == "set at run time" {
                    "default"
                } else {
                    "debug"
                };
                json!({ "service": "api", "level": level })
            } else {
                json!({})
            };
            (
                Method::POST,
                format!("/api/v1/diagnostics/{}/{action}", c.setting),
                body,
            )
        }
    }
}

/// Whether the state after an allowed change is what was sent; `Err` says how not.
fn changed_as_sent(c: &Change, before: &Value, after: &Value, body: &Value) -> Result<(), String> {
    let same = |key: &str| after[key] == body[key];
    let ok = match c.req {
        Req::Instance(field) => same(field),
        Req::Console => body.as_object().unwrap().keys().all(|k| same(k)),
        Req::AuditMaintenance => same("keep_days"),
        Req::CustomVars => after == body,
        Req::LaneRestrictions => same("not_allowed"),
        Req::Compute => after
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == body["name"]),
        // A vacuum leaves no visible state: its `ok` audit event is the effect (checked by the caller).
        Req::Diagnostic("vacuum") => true,
        Req::Diagnostic(_) if c.setting == Setting::Loggers => {
            let api = after
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["service"] == "api")
                .unwrap();
            match body["level"].as_str().unwrap() {
                "default" => api["source"] == "configured filter",
                level => api["level"] == level && api["source"] == "set at run time",
            }
        }
        Req::Diagnostic(_) => after["since"] != before["since"] && after["since"].is_string(),
    };
    if ok && (after != before || c.req == Req::Diagnostic("vacuum")) {
        Ok(())
    } else {
        Err(format!("before {before}, after {after}, sent {body}"))
    }
}

/// The outcome of one case, for the hand-read cross-check and the counts.
#[derive(Debug)]
struct Outcome {
    setting: Setting,
    field: Option<&'static str>,
    column: &'static str,
    allowed: bool,
    status: StatusCode,
}

on_both_backends!(
    every_setting_of_section_1_holds_over_http,
    |app: TestApp| async move {
        let started = std::time::Instant::now();
        // Every setting is mapped exactly once: a change, or nothing to change with a reason.
        for s in Setting::ALL {
            let changes = CHANGES.iter().filter(|c| c.setting == *s).count();
            let none = NO_CHANGE.iter().filter(|(n, _)| n == s).count();
            assert!(
                (changes > 0) != (none > 0) && none <= 1,
                "setting {s}: map it to a change in CHANGES or to NO_CHANGE with a reason (not both)"
            );
        }
        let bed = build(&app).await;
        let mut mismatches: Vec<String> = Vec::new();
        let mut outcomes: Vec<Outcome> = Vec::new();

        let (imp_allowed, imp_refused) = impersonation(&app, &bed, &mut mismatches).await;
        let mut n = 0usize;
        for c in CHANGES {
            for who in &bed.actors {
                n += 1;
                let o = change_case(&app, &bed, who, c, n, &mut mismatches).await;
                outcomes.push(o);
            }
        }
        for (setting, _why) in NO_CHANGE {
            for who in &bed.actors {
                let o = no_change_case(&app, &bed, who, *setting, &mut mismatches).await;
                outcomes.push(o);
            }
        }
        let reads = read_cases(&app, &bed, &mut mismatches).await;
        hand_read_cells(&outcomes, &mut mismatches);
        assert!(
            cryowarden_server::audit::verify(&app.state.db)
                .await
                .unwrap()
                .ok,
            "the audit chain verifies"
        );
        let allowed = outcomes.iter().filter(|o| o.allowed).count();
        eprintln!(
            "{:?}: {} change cases ({allowed} allowed, {} refused), {reads} read cases, \
         {imp_allowed} impersonations allowed and {imp_refused} refused, in {:?}",
            app.backend,
            outcomes.len(),
            outcomes.len() - allowed,
            started.elapsed()
        );
        assert!(
            mismatches.is_empty(),
            "the server disagrees with spec/roles.md:\n{}",
            mismatches.join("\n")
        );
    }
);

async fn change_case(
    app: &TestApp,
    bed: &Bed,
    who: &Who,
    c: &Change,
    n: usize,
    mismatches: &mut Vec<String>,
) -> Outcome {
    let sa = &bed.sa;
    let allowed = oracle_change(who, c.setting, c.field);
    let _turn = match c.req {
        Req::Diagnostic(_) => Some(DIAGNOSTICS.lock().await),
        _ => None,
    };
    let before = state(app, bed, c).await;
    let (method, path, body) = request(c, bed, n, &before);
    let case = format!(
        "case {n}: {} {method} {path} {body} ({}{})",
        who.label,
        c.setting,
        c.field.map(|f| format!(".{f}")).unwrap_or_default()
    );
    let seq = last_seq(app, sa, "").await;
    let (status, v) = app
        .call(method, &path, Some(&who.token), Some(body.clone()))
        .await;
    let after = state(app, bed, c).await;
    if allowed {
        if !status.is_success() {
            mismatches.push(format!("{case}: expected allowed (2xx), got {status} {v}"));
        } else {
            if let Err(e) = changed_as_sent(c, &before, &after, &body) {
                mismatches.push(format!(
                    "{case}: allowed, but the state is not as sent: {e}"
                ));
            }
            let done = last_seq(app, sa, &format!("&outcome=ok&actor={}", who.name)).await;
            if done <= seq {
                mismatches.push(format!(
                    "{case}: allowed, but no `ok` audit event by {}",
                    who.name
                ));
            }
        }
        if c.req == Req::Compute {
            // The lane made here is removed again, so that every case starts from the same lanes.
            if let Some(id) = after
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["name"] == body["name"])
                .map(|l| l["id"].clone())
            {
                let (s, v) = app.delete(&format!("/api/v1/lanes/{id}"), sa).await;
                assert_eq!(
                    s,
                    StatusCode::NO_CONTENT,
                    "{case}: removing the new lane: {v}"
                );
            }
        }
    } else {
        // A user the actor may not see (pm, for someone outside P) is "not found", like every
        // /users/{id} route; otherwise the refusal is a 403.
        let sees_pm = authorize(
            &who.actor(),
            Activity::ViewUser.into(),
            &Resource::user(UserId(bed.pm), SiteRole::None).scoped(who.pa, who.fa),
        )
        .is_allowed();
        let expected = if c.req == Req::LaneRestrictions && !sees_pm {
            (StatusCode::NOT_FOUND, Some("not-found"))
        } else {
            (StatusCode::FORBIDDEN, Some("forbidden"))
        };
        if (status, v["code"].as_str()) != expected {
            mismatches.push(format!(
                "{case}: expected refused ({expected:?}), got {status} {v}"
            ));
        }
        if before != after {
            mismatches.push(format!(
                "{case}: refused, but the state changed: before {before}, after {after}"
            ));
        }
        let denied = last_seq(app, sa, &format!("&outcome=denied&actor={}", who.name)).await;
        if denied <= seq {
            mismatches.push(format!(
                "{case}: refused, but no `denied` audit event by {}",
                who.name
            ));
        }
    }
    Outcome {
        setting: c.setting,
        field: c.field,
        column: who.label,
        allowed,
        status,
    }
}

/// A setting with nothing to change: a `PUT /api/v1/console/{key}` is refused to whoever may
/// not change the row, and finds nothing to change (422 `invalid`, field `body`) for whoever may.
async fn no_change_case(
    app: &TestApp,
    bed: &Bed,
    who: &Who,
    setting: Setting,
    mismatches: &mut Vec<String>,
) -> Outcome {
    let sa = &bed.sa;
    let allowed = oracle_change(who, setting, None);
    let path = format!("/api/v1/console/{setting}");
    let case = format!("{} PUT {path} {{}}", who.label);
    let seq = last_seq(app, sa, "").await;
    let (status, v) = app
        .call(Method::PUT, &path, Some(&who.token), Some(json!({})))
        .await;
    if allowed {
        if (status, v["field"].as_str()) != (StatusCode::UNPROCESSABLE_ENTITY, Some("body")) {
            mismatches.push(format!(
                "{case}: allowed with nothing to change: expected 422 (body), got {status} {v}"
            ));
        }
    } else {
        if (status, v["code"].as_str()) != (StatusCode::FORBIDDEN, Some("forbidden")) {
            mismatches.push(format!(
                "{case}: expected refused (403 forbidden), got {status} {v}"
            ));
        }
        let denied = last_seq(app, sa, &format!("&outcome=denied&actor={}", who.name)).await;
        if denied <= seq {
            mismatches.push(format!(
                "{case}: refused, but no `denied` audit event by {}",
                who.name
            ));
        }
    }
    Outcome {
        setting,
        field: None,
        column: who.label,
        allowed,
        status,
    }
}

/// Every setting read by every role through `GET /api/v1/console/{key}`: the row with the access
/// the table gives when allowed (`all` when the role may change it, else `read-only`), else 403
/// and a `denied` event. Returns the number of cases.
async fn read_cases(app: &TestApp, bed: &Bed, mismatches: &mut Vec<String>) -> usize {
    let sa = &bed.sa;
    let mut n = 0;
    for s in Setting::ALL {
        for who in &bed.actors {
            n += 1;
            let allowed = oracle_read(who, *s);
            let path = format!("/api/v1/console/{s}");
            let seq = last_seq(app, sa, "").await;
            let (status, v) = app.get(&path, &who.token).await;
            if allowed {
                let access = if oracle_change(who, *s, None) {
                    "all"
                } else {
                    "read-only"
                };
                if (status, v["access"].as_str()) != (StatusCode::OK, Some(access)) {
                    mismatches.push(format!(
                        "{} GET {path}: expected 200 {access}, got {status} {v}",
                        who.label
                    ));
                }
            } else {
                if (status, v["code"].as_str()) != (StatusCode::FORBIDDEN, Some("forbidden")) {
                    mismatches.push(format!(
                        "{} GET {path}: expected 403 forbidden, got {status} {v}",
                        who.label
                    ));
                }
                let denied =
                    last_seq(app, sa, &format!("&outcome=denied&actor={}", who.name)).await;
                if denied <= seq {
                    mismatches.push(format!(
                        "{} GET {path}: refused, but no `denied` audit event",
                        who.label
                    ));
                }
            }
        }
    }
    n
}

/// §2 `impersonate`, from each role's browser session, aimed at a user of P, a Site Admin and an
/// outsider. The oracle is asked with "project / folder admin of a project the target belongs to".
/// Returns the numbers of allowed and refused cases.
async fn impersonation(app: &TestApp, bed: &Bed, mismatches: &mut Vec<String>) -> (usize, usize) {
    let sa = &bed.sa;
    let mut counts = (0, 0);
    for who in &bed.actors {
        let session = Session::login(app, &who.name, who.password).await;
        for t in &bed.imp_targets {
            let resource =
                Resource::user(UserId(t.id), t.role).scoped(who.pa && t.in_p, who.fa && t.in_p);
            let allowed =
                authorize(&who.actor(), Activity::Impersonate.into(), &resource).is_allowed();
            let case = format!("{} impersonates {} (user {})", who.label, t.label, t.id);
            let seq = last_seq(app, sa, "").await;
            let (status, v) = session
                .call(
                    Method::POST,
                    "/api/v1/impersonation",
                    Some(json!({ "user": t.id })),
                )
                .await;
            if allowed {
                counts.0 += 1;
                if status != StatusCode::CREATED {
                    mismatches.push(format!("{case}: expected allowed (201), got {status} {v}"));
                    continue;
                }
                let (_, cur) = session
                    .call(Method::GET, "/api/v1/impersonation", None)
                    .await;
                if cur["impersonating"]["acting_as"].is_null() {
                    mismatches.push(format!(
                        "{case}: started, but the session shows no impersonation: {cur}"
                    ));
                }
                if who.role == SiteRole::ApplicationAdmin && t.role == SiteRole::SiteAdmin {
                    // "yes, but never gain Site Admin rights by it": a Site Admin's field stays refused.
                    let body = json!({ "system_email_address": "gained@facility.example" });
                    let (s, v) = session
                        .call(Method::PATCH, "/api/v1/settings/instance", Some(body))
                        .await;
                    if s != StatusCode::FORBIDDEN {
                        mismatches.push(format!(
                            "{case}: gained a Site Admin's right (system email address): {s} {v}"
                        ));
                    }
                }
                let started = last_seq(app, sa, &format!("&outcome=ok&actor={}", who.name)).await;
                if started <= seq {
                    mismatches.push(format!(
                        "{case}: started, but no `ok` audit event by {}",
                        who.name
                    ));
                }
                let (s, v) = session
                    .call(Method::DELETE, "/api/v1/impersonation", None)
                    .await;
                assert_eq!(s, StatusCode::NO_CONTENT, "{case}: stopping: {v}");
                let (_, cur) = session
                    .call(Method::GET, "/api/v1/impersonation", None)
                    .await;
                assert_eq!(cur["impersonating"], Value::Null, "{case}: stopped");
            } else {
                counts.1 += 1;
                if (status, v["code"].as_str()) != (StatusCode::FORBIDDEN, Some("forbidden")) {
                    mismatches.push(format!(
                        "{case}: expected refused (403 forbidden), got {status} {v}"
                    ));
                }
                let (s, cur) = session
                    .call(Method::GET, "/api/v1/impersonation", None)
                    .await;
                if (s, &cur["impersonating"]) != (StatusCode::OK, &Value::Null) {
                    mismatches.push(format!(
                        "{case}: refused, but the session impersonates: {s} {cur}"
                    ));
                }
                let denied =
                    last_seq(app, sa, &format!("&outcome=denied&actor={}", who.name)).await;
                if denied <= seq {
                    mismatches.push(format!(
                        "{case}: refused, but no `denied` audit event by {}",
                        who.name
                    ));
                }
            }
        }
    }
    // Cells read by hand from §2's `impersonate` row, against the oracle on the same facts.
    let decide = |role: SiteRole, pa: bool, fa: bool, target: SiteRole| {
        let r = Resource::user(UserId(999), target).scoped(pa, fa);
        matches!(
            authorize(
                &Actor::new(UserId(1), role),
                Activity::Impersonate.into(),
                &r
            ),
            Decision::Allow(_)
        )
    };
    assert!(
        decide(SiteRole::SiteAdmin, false, false, SiteRole::None),
        "impersonate: Site Admin yes"
    );
    assert!(
        decide(SiteRole::None, true, false, SiteRole::None),
        "Project Admin: only users of their project"
    );
    assert!(
        !decide(SiteRole::None, false, false, SiteRole::None),
        "ordinary user: no"
    );
    assert!(
        decide(SiteRole::None, false, true, SiteRole::None),
        "Folder Admin: only users of their workspace"
    );
    counts
}

/// Cells of `spec/roles.md` §1 read by hand: the oracle, and what the server answered, must
/// agree with each.
fn hand_read_cells(outcomes: &[Outcome], mismatches: &mut Vec<String>) {
    use Setting as S;
    let cells: &[(Setting, Option<&str>, &str, bool, &str)] = &[
        (
            S::LookAndFeel,
            Some("system_email_address"),
            "application_admin",
            false,
            "change all except system email address",
        ),
        (
            S::LookAndFeel,
            Some("login_message"),
            "application_admin",
            false,
            "... and login message",
        ),
        (
            S::LookAndFeel,
            Some("instance_name"),
            "application_admin",
            true,
            "change all except ...",
        ),
        (
            S::LookAndFeel,
            Some("system_email_address"),
            "site_admin",
            true,
            "look-and-feel: Site Admin all",
        ),
        (
            S::LookAndFeel,
            Some("instance_name"),
            "troubleshooter",
            false,
            "look-and-feel: Troubleshooter read-only",
        ),
        (
            S::Scheduler,
            None,
            "application_admin",
            true,
            "scheduler: AA all",
        ),
        (
            S::Scheduler,
            None,
            "troubleshooter",
            false,
            "scheduler: Troubleshooter none",
        ),
        (
            S::SiteErrors,
            None,
            "troubleshooter",
            false,
            "site-errors: view only",
        ),
        (
            S::SiteErrors,
            None,
            "application_admin",
            true,
            "site-errors: view all, reset all",
        ),
        (
            S::StorageRoots,
            None,
            "application_admin",
            false,
            "storage-roots: AA none",
        ),
        (
            S::StorageRoots,
            None,
            "site_admin",
            true,
            "storage-roots: Site Admin all",
        ),
        (
            S::Credits,
            None,
            "site_admin",
            false,
            "credits: read-only even for the Site Admin",
        ),
        (
            S::Compute,
            None,
            "application_admin",
            false,
            "compute: AA read-only",
        ),
        (
            S::Loggers,
            None,
            "application_admin",
            false,
            "loggers: AA none",
        ),
        (
            S::ExternalRedirectHosts,
            None,
            "application_admin",
            true,
            "external-redirect-hosts: AA all",
        ),
        (
            S::TermsOfUse,
            None,
            "project_admin",
            false,
            "project admins have none on every row",
        ),
        (
            S::LaneRestrictions,
            None,
            "folder_admin",
            false,
            "folder admins have none on every row",
        ),
    ];
    for (setting, field, column, allowed, cell) in cells {
        let found: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.setting == *setting && o.field == *field && o.column == *column)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "no single case for {setting} {field:?} / {column}"
        );
        let o = found[0];
        assert_eq!(
            o.allowed, *allowed,
            "{setting} {field:?} / {column}: the table says \"{cell}\""
        );
        let refused = o.status == StatusCode::FORBIDDEN || o.status == StatusCode::NOT_FOUND;
        if refused == *allowed {
            mismatches.push(format!(
                "{setting} {field:?} / {column}: the table says \"{cell}\", the server answered {}",
                o.status
            ));
        }
    }
}
