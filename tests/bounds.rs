//! The bounds of `spec/roles.md` §2, generated: for every activity of [`Activity::ALL`] (but
//! `impersonate`, which the lead is building in its own branch: it is left out here on purpose),
//! every role column — Site Admin, Application Admin, Impersonating Troubleshooter,
//! Troubleshooter, an ordinary user, a Project Admin (an ordinary user who is project admin of
//! project P) and a Folder Admin (folder admin of workspace W of P) — and the target kinds each
//! activity is aimed at, one real HTTP request with the actor's real API token.
//!
//! The expected outcome is not written per case: it is `cryowarden_core::authorize()` asked on
//! the same facts the world was built with (who is project admin of P, who is folder admin of W,
//! who belongs to P), and [`hand_read_cells`] checks that oracle, and what the server answered,
//! against cells read by hand from `spec/roles.md`. Then:
//! - allowed: a 2xx and the effect visible to a Site Admin (a few allowed requests meet a rule
//!   outside the table — a project's members come from its lab, nobody changes their own
//!   project membership, leaving the Application Admin role asks for confirmation, a file root is
//!   chosen at creation — and must answer that 422 and change nothing);
//! - refused: 404 where the actor may not even see the target (users they may not see, labs
//!   they have no standing in), else 403; nothing changed (a snapshot of the target and the
//!   project, lab and user tables, fetched by a Site Admin before and after, and the target's
//!   tokens in the database); and a `denied` event by the actor in the audit log.
//!
//! Allowed changes that cannot be undone (deleting, deactivating, promoting) are aimed at a fresh
//! target of the same kind, made by the Site Admin for that case; refused ones (and those that
//! change nothing for good: reading, issuing a token, renaming) at the world's fixed targets.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::world::{create_project, world};
use common::{Backend, TestApp};
use cryowarden_core::{
    Action, Activity, Actor, Bound, DataAction, DataScope, Decision, ImportPolicy, LabRole,
    ProjectRole, Resource, Setting, SiteRole, UserId, authorize,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Whom a user-aimed request is aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    SiteAdmin,
    AppAdmin,
    /// An ordinary user who is a member (reader) of project P.
    OfProject,
    /// An ordinary user of the other lab, in no project of the actors.
    Outsider,
    Myself,
}

/// Where a project-level request is aimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Instance,
    /// Project P itself (its settings, groups, record) or its top level (a workspace at the top).
    Project,
    /// Workspace W (of which the Folder Admin is admin) or inside it.
    InW,
    /// Workspace W2, W's sibling, or inside it.
    InSibling,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tgt {
    User(Kind),
    At(Place),
}

/// The HTTP request each activity is exercised by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Req {
    /// `POST /api/v1/users`
    CreateUser,
    /// `DELETE /api/v1/users/{id}`
    DeleteUser,
    /// `PATCH /api/v1/users/{id}` `{status: deactivated}`
    Deactivate,
    /// `GET /api/v1/users/{id}`, and whether `GET /api/v1/users` lists them
    ShowUser,
    /// `POST /api/v1/users/{id}/reset-token`
    ResetToken,
    /// `PATCH /api/v1/users/{id}` `{email}`
    EditEmail,
    /// `PATCH /api/v1/users/{id}` `{site_role: site_admin}` (a Site Admin: `none`)
    SiteAdminRole,
    /// `PATCH /api/v1/users/{id}` `{site_role: application_admin}` (an AA: `none`)
    AppAdminRole,
    /// `POST /api/v1/labs/{lab1}/members` `{user_id, role: manager}`
    LabMember,
    /// `POST /api/v1/labs` `{name}`
    CreateLab,
    /// `POST /api/v1/projects/{P}/members` `{user_id, role: editor}`
    ProjectMember,
    /// `POST /api/v1/projects/{P}/groups` `{name, role}`
    CreateGroup,
    /// `PATCH /api/v1/users/{id}` `{job_priority_management: !current}`
    PriorityToggle,
    /// `PUT /api/v1/users/{id}/lanes` `{not_allowed: [lane]}`
    LaneRestriction,
    /// `POST /api/v1/projects` `{lab_id: lab2, name}`: a lab the actor has no part in
    CreateProject,
    /// `DELETE /api/v1/projects/{id}?keep_data=true`
    DeleteProject,
    /// `POST /api/v1/projects/{P}/workspaces` `{name, parent_id}`
    CreateWorkspace,
    /// `DELETE /api/v1/projects/{P}/workspaces/{id}`
    DeleteWorkspace,
    /// `PATCH /api/v1/projects/{P}` or `/workspaces/{id}` `{title}`
    Settings,
    /// `POST /api/v1/projects` `{lab_id: lab1, name, file_root}`
    CustomRootCreate,
    /// `PATCH /api/v1/projects/{P}` `{file_root}`
    CustomRootPatch,
}

/// Every activity and the requests that exercise it: the one table of this test.
const TABLE: &[(Activity, Req)] = &[
    (Activity::CreateUser, Req::CreateUser),
    (Activity::DeleteUser, Req::DeleteUser),
    (Activity::SetUserActive, Req::Deactivate),
    (Activity::ViewUser, Req::ShowUser),
    (Activity::ChangePassword, Req::ResetToken),
    (Activity::EditUser, Req::EditEmail),
    (Activity::UpdateSiteAdmins, Req::SiteAdminRole),
    (Activity::UpdateApplicationAdmins, Req::AppAdminRole),
    (Activity::UpdateSiteGroups, Req::LabMember),
    (Activity::UpdateSiteGroups, Req::CreateLab),
    (Activity::UpdateProjectGroups, Req::ProjectMember),
    (Activity::UpdateProjectGroups, Req::CreateGroup),
    (Activity::UpdateSitePermissions, Req::PriorityToggle),
    (Activity::UpdateSitePermissions, Req::LaneRestriction),
    // Activity::Impersonate: built by the lead (impersonation); its bounds are tested there.
    (Activity::CreateProject, Req::CreateProject),
    (Activity::DeleteProject, Req::DeleteProject),
    (Activity::CreateWorkspace, Req::CreateWorkspace),
    (Activity::DeleteWorkspace, Req::DeleteWorkspace),
    (Activity::UpdateProjectSettings, Req::Settings),
    (Activity::SetCustomFileRoot, Req::CustomRootCreate),
    (Activity::SetCustomFileRoot, Req::CustomRootPatch),
];

const USER_KINDS: [Kind; 5] = [
    Kind::SiteAdmin,
    Kind::AppAdmin,
    Kind::OfProject,
    Kind::Outsider,
    Kind::Myself,
];
const PLACES: [Place; 3] = [Place::Project, Place::InW, Place::InSibling];

impl Req {
    fn targets(self) -> Vec<Tgt> {
        match self {
            Req::CreateUser | Req::CreateLab | Req::CreateProject | Req::CustomRootCreate => {
                vec![Tgt::At(Place::Instance)]
            }
            Req::CreateGroup | Req::DeleteProject | Req::CustomRootPatch => {
                vec![Tgt::At(Place::Project)]
            }
            Req::CreateWorkspace | Req::DeleteWorkspace | Req::Settings => {
                PLACES.map(Tgt::At).to_vec()
            }
            Req::LaneRestriction => vec![Tgt::User(Kind::OfProject)],
            _ => USER_KINDS.map(Tgt::User).to_vec(),
        }
    }

    /// The success status of an allowed request.
    fn ok_status(self) -> StatusCode {
        match self {
            Req::CreateUser
            | Req::ResetToken
            | Req::CreateLab
            | Req::CreateGroup
            | Req::CreateProject
            | Req::CreateWorkspace
            | Req::CustomRootCreate => StatusCode::CREATED,
            Req::DeleteUser | Req::DeleteProject | Req::DeleteWorkspace => StatusCode::NO_CONTENT,
            _ => StatusCode::OK,
        }
    }

    /// Whether an allowed request changes its target for good, so that it gets a fresh one.
    fn needs_fresh(self) -> bool {
        matches!(
            self,
            Req::DeleteUser
                | Req::Deactivate
                | Req::EditEmail
                | Req::SiteAdminRole
                | Req::AppAdminRole
                | Req::LabMember
                | Req::ProjectMember
                | Req::PriorityToggle
                | Req::DeleteProject
                | Req::DeleteWorkspace
        )
    }
}

/// An actor: one role column, with the facts the oracle needs.
struct Who {
    label: &'static str,
    name: String,
    id: i64,
    token: String,
    role: SiteRole,
    lab1: Option<LabRole>,
    /// Project Admin of P.
    pa: bool,
    /// Folder Admin of W.
    fa: bool,
}

impl Who {
    fn actor(&self) -> Actor {
        Actor::new(UserId(self.id), self.role)
    }
    /// One of the users of P (member, or folder admin of one of its workspaces).
    fn in_p(&self) -> bool {
        self.pa || self.fa
    }
}

struct Fixed {
    id: i64,
    name: String,
    role: SiteRole,
    in_p: bool,
}

struct Bed {
    sa: String,
    lab1: i64,
    lab2: i64,
    p: i64,
    w: i64,
    w2: i64,
    w_sub: i64,
    w2_sub: i64,
    lane: String,
    elsewhere: PathBuf,
    projects2: PathBuf,
    targets: Vec<(Kind, Fixed)>,
    actors: Vec<Who>,
}

fn ok(s: StatusCode, v: &Value, what: &str) {
    assert!(s.is_success(), "{what}: {s} {v}");
}

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PUT, path, Some(token), Some(body)).await
}

/// The world: the two labs of `common::world`, project P of lab1 administered by carol,
/// workspaces W (folder admin dave) and W2 at its top, a subfolder in each; and the fixed
/// targets: a Site Admin and an Application Admin (lab1 members, not in P), an ordinary member
/// of P, and an outsider (bob, of lab2).
async fn build(app: &TestApp) -> Bed {
    let w = world(app).await;
    let sa = w.admin.clone();
    let p = create_project(app, &w.carol.1, w.lab1, "p").await["id"]
        .as_i64()
        .unwrap();
    let mut ws = Vec::new();
    for (name, parent) in [("w", None::<i64>), ("w2", None)] {
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{p}/workspaces"),
                &sa,
                json!({ "name": name, "parent_id": parent }),
            )
            .await;
        ok(s, &v, "workspace");
        ws.push(v["id"].as_i64().unwrap());
    }
    let mut subs = Vec::new();
    for (name, parent) in [("w-sub", ws[0]), ("w2-sub", ws[1])] {
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{p}/workspaces"),
                &sa,
                json!({ "name": name, "parent_id": parent }),
            )
            .await;
        ok(s, &v, "subfolder");
        subs.push(v["id"].as_i64().unwrap());
    }
    let (s, v) = put(
        app,
        &format!("/api/v1/projects/{p}/workspaces/{}/admins", ws[0]),
        &w.carol.1,
        json!({ "user_ids": [w.dave.0] }),
    )
    .await;
    assert_eq!(
        (s, v["folder_admins"][0].as_str()),
        (StatusCode::OK, Some("dave")),
        "{v}"
    );

    let (_, aa) = app.user(&sa, "aa", "application_admin").await;
    let (_, it) = app.user(&sa, "it", "impersonating_troubleshooter").await;
    let (_, ts) = app.user(&sa, "ts", "troubleshooter").await;
    let id_of = |v: &Value| v["id"].as_i64().unwrap();
    let (_, me) = app.get("/api/v1/users/me", &aa).await;
    let aa_id = id_of(&me);
    let (_, me) = app.get("/api/v1/users/me", &it).await;
    let it_id = id_of(&me);
    let (_, me) = app.get("/api/v1/users/me", &ts).await;
    let ts_id = id_of(&me);
    let (_, me) = app.get("/api/v1/users/me", &sa).await;
    let sa_id = id_of(&me);

    let (_, lanes) = app.get("/api/v1/lanes", &sa).await;
    let lane = lanes[0]["name"]
        .as_str()
        .expect("the default lane")
        .to_owned();
    let elsewhere = app.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::chown(&elsewhere, Some(2101), Some(2101)).unwrap();

    let mut bed = Bed {
        sa: sa.clone(),
        lab1: w.lab1,
        lab2: w.lab2,
        p,
        w: ws[0],
        w2: ws[1],
        w_sub: subs[0],
        w2_sub: subs[1],
        lane,
        elsewhere,
        projects2: w.disk.projects2.clone(),
        targets: Vec::new(),
        actors: Vec::new(),
    };
    for kind in [Kind::SiteAdmin, Kind::AppAdmin, Kind::OfProject] {
        let (id, name) = fresh_user(app, &bed, kind, 0).await;
        bed.targets.push((
            kind,
            Fixed {
                id,
                name,
                role: kind_role(kind),
                in_p: kind == Kind::OfProject,
            },
        ));
    }
    bed.targets.push((
        Kind::Outsider,
        Fixed {
            id: w.bob.0,
            name: "bob".into(),
            role: SiteRole::None,
            in_p: false,
        },
    ));

    let who = |label, name: &str, id, token: &str, role, lab1, pa, fa| Who {
        label,
        name: name.to_owned(),
        id,
        token: token.to_owned(),
        role,
        lab1,
        pa,
        fa,
    };
    bed.actors = vec![
        who(
            "site_admin",
            "root-admin",
            sa_id,
            &sa,
            SiteRole::SiteAdmin,
            None,
            false,
            false,
        ),
        who(
            "application_admin",
            "aa",
            aa_id,
            &aa,
            SiteRole::ApplicationAdmin,
            None,
            false,
            false,
        ),
        who(
            "impersonating_troubleshooter",
            "it",
            it_id,
            &it,
            SiteRole::ImpersonatingTroubleshooter,
            None,
            false,
            false,
        ),
        who(
            "troubleshooter",
            "ts",
            ts_id,
            &ts,
            SiteRole::Troubleshooter,
            None,
            false,
            false,
        ),
        who(
            "user",
            "alice",
            w.alice.0,
            &w.alice.1,
            SiteRole::None,
            Some(LabRole::Member),
            false,
            false,
        ),
        who(
            "project_admin",
            "carol",
            w.carol.0,
            &w.carol.1,
            SiteRole::None,
            Some(LabRole::Manager),
            true,
            false,
        ),
        who(
            "folder_admin",
            "dave",
            w.dave.0,
            &w.dave.1,
            SiteRole::None,
            Some(LabRole::Member),
            false,
            true,
        ),
    ];
    bed
}

fn kind_role(kind: Kind) -> SiteRole {
    match kind {
        Kind::SiteAdmin => SiteRole::SiteAdmin,
        Kind::AppAdmin => SiteRole::ApplicationAdmin,
        _ => SiteRole::None,
    }
}

/// A new (invited) user of `kind`, made by the Site Admin: Site and Application Admins and
/// members of P belong to lab1, outsiders to lab2; a member of P reads it.
async fn fresh_user(app: &TestApp, bed: &Bed, kind: Kind, n: usize) -> (i64, String) {
    let name = format!(
        "{}{n}",
        match kind {
            Kind::SiteAdmin => "sa",
            Kind::AppAdmin => "aa",
            Kind::OfProject => "pm",
            _ => "out",
        }
    );
    let body = json!({ "username": name, "email": format!("{name}@lab.example"), "site_role": kind_role(kind).as_str() });
    let (s, v) = app.post("/api/v1/users", &bed.sa, body).await;
    ok(s, &v, "fresh user");
    let id = v["user"]["id"].as_i64().unwrap();
    let lab = if kind == Kind::Outsider {
        bed.lab2
    } else {
        bed.lab1
    };
    let (s, v) = app
        .post(
            &format!("/api/v1/labs/{lab}/members"),
            &bed.sa,
            json!({ "user_id": id, "role": "member" }),
        )
        .await;
    ok(s, &v, "fresh lab member");
    if kind == Kind::OfProject {
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{}/members", bed.p),
                &bed.sa,
                json!({ "user_id": id, "role": "reader" }),
            )
            .await;
        ok(s, &v, "fresh project member");
    }
    (id, name)
}

/// What the oracle is asked: the action the request needs, on the facts of the world.
/// Returns the decision and whether the actor may see the target (else a refusal is a 404).
fn oracle(
    who: &Who,
    req: Req,
    tgt: Tgt,
    target: Option<(i64, SiteRole, bool)>,
) -> (Decision, bool) {
    let actor = who.actor();
    let in_p = |t: Option<(i64, SiteRole, bool)>| t.is_some_and(|(_, _, p)| p);
    let user_res = |pa: bool, fa: bool| match target {
        Some((id, role, _)) => Resource::user(UserId(id), role).scoped(pa, fa),
        None => Resource::instance(),
    };
    // "Project Admin / Folder Admin of a project the target belongs to".
    let scoped_user = user_res(who.pa && in_p(target), who.fa && in_p(target));
    let sees_user = authorize(&actor, Activity::ViewUser.into(), &scoped_user).is_allowed();
    let p_scope = DataScope {
        lab_role: who.lab1,
        import_policy: ImportPolicy::AllMembers,
        project_role: who.pa.then_some(ProjectRole::ProjectAdmin),
        lab_members_read: true,
        live_data_management: false,
    };
    let sees_p = authorize(
        &actor,
        DataAction::ViewProject.into(),
        &Resource::data(p_scope),
    )
    .is_allowed();
    let sees_lab1 = who.lab1.is_some()
        || authorize(&actor, Activity::ViewUser.into(), &Resource::instance()).is_allowed();
    let instance = Resource::instance();
    let at_p = instance.scoped(who.pa, false);
    let activity = |a: Activity, r: &Resource| authorize(&actor, a.into(), r);
    match (req, tgt) {
        (Req::CreateUser, _) => (
            activity(Activity::CreateUser, &instance.scoped(who.pa, who.fa)),
            true,
        ),
        (Req::DeleteUser, _) => (activity(Activity::DeleteUser, &scoped_user), sees_user),
        (Req::Deactivate, _) => (activity(Activity::SetUserActive, &scoped_user), sees_user),
        (Req::ShowUser, _) => (activity(Activity::ViewUser, &scoped_user), sees_user),
        (Req::ResetToken, _) => (activity(Activity::ChangePassword, &scoped_user), sees_user),
        (Req::EditEmail, _) => (activity(Activity::EditUser, &scoped_user), sees_user),
        (Req::SiteAdminRole | Req::AppAdminRole, _) => {
            let (_, from, _) = target.unwrap();
            let promote = if req == Req::SiteAdminRole {
                SiteRole::SiteAdmin
            } else {
                SiteRole::ApplicationAdmin
            };
            let to = if from == promote {
                SiteRole::None
            } else {
                promote
            };
            (
                authorize(&actor, Action::ChangeSiteRole { from, to }, &scoped_user),
                sees_user,
            )
        }
        (Req::LabMember, _) => (
            activity(Activity::UpdateSiteGroups, &scoped_user),
            sees_lab1,
        ),
        (Req::CreateLab, _) => (activity(Activity::UpdateSiteGroups, &instance), true),
        // The project in question is P: its admin holds the Project Admin column.
        (Req::ProjectMember, _) => (
            activity(Activity::UpdateProjectGroups, &user_res(who.pa, false)),
            sees_p,
        ),
        (Req::CreateGroup, _) => (activity(Activity::UpdateProjectGroups, &at_p), sees_p),
        (Req::PriorityToggle, _) => (
            activity(Activity::UpdateSitePermissions, &scoped_user),
            sees_user,
        ),
        (Req::LaneRestriction, _) => {
            // Lane restrictions are also the §1 setting `lane-restrictions`: both must agree.
            let setting = Action::ChangeSetting {
                setting: Setting::LaneRestrictions,
                field: None,
            };
            let d = authorize(&actor, setting, &instance);
            let row = activity(Activity::UpdateSitePermissions, &instance);
            assert_eq!(
                d.is_allowed(),
                row.is_allowed(),
                "{}: lane-restrictions disagrees with §2",
                who.label
            );
            // A user the actor may not see is "not found", like every /users/{id} route.
            (d, sees_user)
        }
        (Req::CreateProject, _) => {
            // In lab2, where no actor but staff has a part: the data rule must agree with §2.
            let data = authorize(
                &actor,
                DataAction::CreateLabProject.into(),
                &Resource::data(DataScope::lab(None, ImportPolicy::AllMembers)),
            );
            let row = activity(Activity::CreateProject, &instance);
            assert_eq!(
                data.is_allowed(),
                row.is_allowed(),
                "{}: create-lab-project disagrees with §2",
                who.label
            );
            let conceal = matches!(&data, Decision::Deny(d) if d.conceal);
            (row, !conceal)
        }
        (Req::DeleteProject, _) => (activity(Activity::DeleteProject, &at_p), sees_p),
        (Req::CreateWorkspace | Req::DeleteWorkspace | Req::Settings, Tgt::At(place)) => {
            let a = match req {
                Req::CreateWorkspace => Activity::CreateWorkspace,
                Req::DeleteWorkspace => Activity::DeleteWorkspace,
                _ => Activity::UpdateProjectSettings,
            };
            (
                activity(a, &instance.scoped(who.pa, who.fa && place == Place::InW)),
                sees_p,
            )
        }
        (Req::CustomRootCreate, _) => {
            // Creating in lab1 needs create-lab-project first (lab1's people, staff).
            let lab1 = DataScope::lab(who.lab1, ImportPolicy::AllMembers);
            let data = authorize(
                &actor,
                DataAction::CreateLabProject.into(),
                &Resource::data(lab1),
            );
            let row = activity(Activity::SetCustomFileRoot, &instance);
            if row.is_allowed() {
                assert!(
                    data.is_allowed(),
                    "{} may set a file root but not create a project",
                    who.label
                );
            }
            (row, true)
        }
        (Req::CustomRootPatch, _) => (activity(Activity::SetCustomFileRoot, &at_p), sees_p),
        (r, t) => panic!("no oracle for {r:?} on {t:?}"),
    }
}

/// What a Site Admin sees of the target and of everything a request could touch.
async fn snapshot(app: &TestApp, bed: &Bed, tid: Option<i64>) -> Value {
    let sa = &bed.sa;
    let p = bed.p;
    let mut out = json!({});
    for (key, path) in [
        ("users", "/api/v1/users?per_page=500&sort=id".to_owned()),
        ("labs", "/api/v1/labs".to_owned()),
        ("lab1", format!("/api/v1/labs/{}/members", bed.lab1)),
        ("projects", "/api/v1/projects?per_page=500".to_owned()),
        ("p_members", format!("/api/v1/projects/{p}/members")),
        ("p_groups", format!("/api/v1/projects/{p}/groups")),
        ("p_workspaces", format!("/api/v1/projects/{p}/workspaces")),
    ] {
        let (s, v) = app.get(&path, sa).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        out[key] = v;
    }
    if let Some(t) = tid {
        out["lanes"] = app.get(&format!("/api/v1/users/{t}/lanes"), sa).await.1;
        let tokens: i64 = sqlx::query_scalar::<sqlx::Any, i64>(
            "SELECT COUNT(*) FROM user_tokens WHERE user_id = $1",
        )
        .bind(t)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
        out["tokens"] = json!(tokens);
    }
    out["disk"] = json!([dir_names(&bed.elsewhere), dir_names(&bed.projects2)]);
    out
}

fn dir_names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

async fn last_seq(app: &TestApp, sa: &str, query: &str) -> i64 {
    let (s, v) = app.get(&format!("/api/v1/audit?limit=1{query}"), sa).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"][0]["seq"].as_i64().unwrap_or(0)
}

/// The outcome of one case, for the hand-read cross-check.
#[derive(Debug)]
struct Outcome {
    activity: Activity,
    req: Req,
    column: &'static str,
    tgt: Tgt,
    allowed: bool,
    status: StatusCode,
}

on_both_backends!(
    every_bound_of_section_2_holds_over_http,
    |app: TestApp| async move {
        let started = std::time::Instant::now();
        // Every activity is in the table (impersonate is the lead's).
        for a in Activity::ALL {
            assert!(
                *a == Activity::Impersonate || TABLE.iter().any(|(t, _)| t == a),
                "activity {a} has no request in the table"
            );
        }
        let (s, doc) = app
            .call(Method::GET, "/api/v1/openapi.json", None, None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let rename = &doc["paths"]["/api/v1/projects/{id}/workspaces/{workspace_id}"]["patch"];
        assert!(
            rename.is_object(),
            "renaming a workspace is in the OpenAPI document"
        );
        assert!(doc["components"]["schemas"]["WorkspacePatch"].is_object());
        let bed = build(&app).await;
        let mut n = 0usize;
        let mut outcomes = Vec::new();
        for &(activity, req) in TABLE {
            for tgt in req.targets() {
                for who in &bed.actors {
                    n += 1;
                    let outcome = run_case(&app, &bed, who, activity, req, tgt, n).await;
                    outcomes.push(outcome);
                }
            }
        }
        hand_read_cells(&outcomes);
        leaving_the_application_admin_role_asks_for_confirmation(&app, &bed).await;
        lists_show_exactly_the_users_of_ones_projects(&app, &bed).await;
        project_and_folder_admins_manage_only_their_own(&app, &bed).await;
        assert!(
            cryowarden_server::audit::verify(&app.state.db)
                .await
                .unwrap()
                .ok,
            "the audit chain verifies"
        );
        let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        let (done, rule) = (
            count(&|o| o.status.is_success()),
            count(&|o| o.allowed && !o.status.is_success()),
        );
        let (forbidden, hidden) = (
            count(&|o| o.status == StatusCode::FORBIDDEN),
            count(&|o| o.status == StatusCode::NOT_FOUND),
        );
        assert_eq!(done + rule + forbidden + hidden, outcomes.len());
        eprintln!(
            "{} cases in {:?} ({:?}): {done} allowed and done, {rule} allowed but refused by a rule outside the table (422), \
         {forbidden} refused 403, {hidden} refused 404",
            outcomes.len(),
            started.elapsed(),
            app.backend
        );
    }
);

async fn run_case(
    app: &TestApp,
    bed: &Bed,
    who: &Who,
    activity: Activity,
    req: Req,
    tgt: Tgt,
    n: usize,
) -> Outcome {
    let sa = &bed.sa;
    // The facts of the fixed target, to ask the oracle first.
    let fixed = |kind: Kind| match kind {
        Kind::Myself => (who.id, who.name.clone(), who.role, who.in_p()),
        k => {
            let f = &bed.targets.iter().find(|(tk, _)| *tk == k).unwrap().1;
            (f.id, f.name.clone(), f.role, f.in_p)
        }
    };
    let fixed_target = match tgt {
        Tgt::User(k) => Some(fixed(k)),
        Tgt::At(_) => None,
    };
    let (decision, sees) = oracle(
        who,
        req,
        tgt,
        fixed_target.as_ref().map(|(id, _, r, p)| (*id, *r, *p)),
    );
    let allowed = decision.is_allowed();
    let confirm = matches!(&decision, Decision::Allow(a) if a.has(Bound::RequiresConfirmation));
    let case = format!("case {n}: {} {activity} via {req:?} on {tgt:?}", who.label);

    // An allowed change that cannot be undone gets a fresh target of the same kind.
    let fresh = allowed && req.needs_fresh();
    let target = match tgt {
        Tgt::User(Kind::Myself) | Tgt::At(_) => fixed_target.clone(),
        Tgt::User(k) if fresh => {
            let (id, name) = fresh_user(app, bed, k, n).await;
            Some((id, name, kind_role(k), k == Kind::OfProject))
        }
        Tgt::User(_) => fixed_target.clone(),
    };
    let tid = target.as_ref().map(|t| t.0);
    let from = target.as_ref().map(|t| t.2);

    // The place, fresh where an allowed delete would remove it.
    let p = bed.p;
    let place_ws = |place: Place| match (req, place) {
        (Req::Settings, Place::InW) => Some(bed.w),
        (Req::Settings, Place::InSibling) => Some(bed.w2),
        (Req::DeleteWorkspace, Place::Project) => Some(bed.w2),
        (Req::DeleteWorkspace, Place::InW) => Some(bed.w_sub),
        (Req::DeleteWorkspace, Place::InSibling) => Some(bed.w2_sub),
        (Req::CreateWorkspace, Place::InW) => Some(bed.w),
        (Req::CreateWorkspace, Place::InSibling) => Some(bed.w2),
        _ => None,
    };
    let mut ws = match tgt {
        Tgt::At(place) => place_ws(place),
        _ => None,
    };
    let mut project = p;
    if fresh && req == Req::DeleteWorkspace {
        let parent = match tgt {
            Tgt::At(Place::InW) => Some(bed.w),
            Tgt::At(Place::InSibling) => Some(bed.w2),
            _ => None,
        };
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{p}/workspaces"),
                sa,
                json!({ "name": format!("doomed{n}"), "parent_id": parent }),
            )
            .await;
        ok(s, &v, &case);
        ws = v["id"].as_i64();
    }
    if fresh && req == Req::DeleteProject {
        let v = create_project(app, sa, bed.lab1, &format!("doomed{n}")).await;
        project = v["id"].as_i64().unwrap();
    }

    // Rules outside the table that an allowed request may still meet: a 422 naming the field.
    let rule = match (req, tgt) {
        (Req::CustomRootPatch, _) => Some("file_root"),
        (Req::ProjectMember, Tgt::User(Kind::Outsider | Kind::Myself)) => Some("user_id"),
        _ if confirm => Some("confirm"),
        _ => None,
    };
    let before = if allowed && rule.is_none() {
        Value::Null
    } else {
        snapshot(app, bed, tid).await
    };
    let seq = last_seq(app, sa, "").await;
    let name = format!("n{n}");
    let u = tid.unwrap_or(0);
    let (method, path, body) = match req {
        Req::CreateUser => (
            Method::POST,
            "/api/v1/users".to_owned(),
            Some(json!({ "username": name, "email": format!("{name}@lab.example") })),
        ),
        Req::DeleteUser => (Method::DELETE, format!("/api/v1/users/{u}"), None),
        Req::Deactivate => (
            Method::PATCH,
            format!("/api/v1/users/{u}"),
            Some(json!({ "status": "deactivated" })),
        ),
        Req::ShowUser => (Method::GET, format!("/api/v1/users/{u}"), None),
        Req::ResetToken => (Method::POST, format!("/api/v1/users/{u}/reset-token"), None),
        Req::EditEmail => (
            Method::PATCH,
            format!("/api/v1/users/{u}"),
            Some(json!({ "email": format!("{name}@new.example") })),
        ),
        Req::SiteAdminRole | Req::AppAdminRole => {
            let from = target.as_ref().unwrap().2;
            let promote = if req == Req::SiteAdminRole {
                SiteRole::SiteAdmin
            } else {
                SiteRole::ApplicationAdmin
            };
            let to = if from == promote {
                SiteRole::None
            } else {
                promote
            };
            (
                Method::PATCH,
                format!("/api/v1/users/{u}"),
                Some(json!({ "site_role": to.as_str() })),
            )
        }
        Req::LabMember => (
            Method::POST,
            format!("/api/v1/labs/{}/members", bed.lab1),
            Some(json!({ "user_id": u, "role": "manager" })),
        ),
        Req::CreateLab => (
            Method::POST,
            "/api/v1/labs".to_owned(),
            Some(json!({ "name": name })),
        ),
        Req::ProjectMember => (
            Method::POST,
            format!("/api/v1/projects/{p}/members"),
            Some(json!({ "user_id": u, "role": "editor" })),
        ),
        Req::CreateGroup => (
            Method::POST,
            format!("/api/v1/projects/{p}/groups"),
            Some(json!({ "name": name, "role": "reader" })),
        ),
        Req::PriorityToggle => {
            let (_, v) = app.get(&format!("/api/v1/users/{u}"), sa).await;
            let now = v["job_priority_management"].as_bool().unwrap();
            (
                Method::PATCH,
                format!("/api/v1/users/{u}"),
                Some(json!({ "job_priority_management": !now })),
            )
        }
        Req::LaneRestriction => (
            Method::PUT,
            format!("/api/v1/users/{u}/lanes"),
            Some(json!({ "not_allowed": [bed.lane] })),
        ),
        Req::CreateProject => (
            Method::POST,
            "/api/v1/projects".to_owned(),
            Some(json!({ "lab_id": bed.lab2, "name": name })),
        ),
        Req::DeleteProject => (
            Method::DELETE,
            format!("/api/v1/projects/{project}?keep_data=true"),
            None,
        ),
        Req::CreateWorkspace => (
            Method::POST,
            format!("/api/v1/projects/{p}/workspaces"),
            Some(json!({ "name": name, "parent_id": ws })),
        ),
        Req::DeleteWorkspace => (
            Method::DELETE,
            format!("/api/v1/projects/{p}/workspaces/{}", ws.unwrap()),
            None,
        ),
        Req::Settings => match ws {
            None => (
                Method::PATCH,
                format!("/api/v1/projects/{p}"),
                Some(json!({ "title": name })),
            ),
            Some(w) => (
                Method::PATCH,
                format!("/api/v1/projects/{p}/workspaces/{w}"),
                Some(json!({ "title": name })),
            ),
        },
        Req::CustomRootCreate => (
            Method::POST,
            "/api/v1/projects".to_owned(),
            Some(json!({ "lab_id": bed.lab1, "name": name, "file_root": bed.elsewhere })),
        ),
        Req::CustomRootPatch => (
            Method::PATCH,
            format!("/api/v1/projects/{p}"),
            Some(json!({ "file_root": bed.elsewhere })),
        ),
    };
    let (status, v) = app.call(method, &path, Some(&who.token), body).await;
    if !allowed {
        let expected = if sees {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(
            status, expected,
            "{case}: refused, expected {expected}: {v}"
        );
        let code = if sees { "forbidden" } else { "not-found" };
        assert_eq!(v["code"].as_str(), Some(code), "{case}: {v}");
        let after = snapshot(app, bed, tid).await;
        assert_eq!(before, after, "{case}: a refusal changed something");
        let denied = last_seq(app, sa, &format!("&outcome=denied&actor={}", who.name)).await;
        assert!(
            denied > seq,
            "{case}: no denied event by {} in the audit log",
            who.name
        );
        if req == Req::ShowUser {
            assert!(
                !listed(app, &who.token, u).await,
                "{case}: the list shows a user the actor may not see"
            );
        }
    } else if let Some(field) = rule {
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: allowed, but {field} is refused: {v}"
        );
        assert_eq!(v["field"].as_str(), Some(field), "{case}: {v}");
        assert_eq!(
            before,
            snapshot(app, bed, tid).await,
            "{case}: a refused {field} changed something"
        );
    } else {
        assert_eq!(status, req.ok_status(), "{case}: allowed: {v}");
        effect(app, bed, req, &v, (u, from), project, ws, &name, &case).await;
        if req == Req::ShowUser {
            assert!(
                listed(app, &who.token, u).await,
                "{case}: the list leaves out a user the actor may see"
            );
        }
        if req != Req::ShowUser {
            let done = last_seq(app, sa, &format!("&outcome=ok&actor={}", who.name)).await;
            assert!(done > seq, "{case}: the change is not in the audit log");
        }
    }
    Outcome {
        activity,
        req,
        column: who.label,
        tgt,
        allowed,
        status,
    }
}

async fn listed(app: &TestApp, token: &str, id: i64) -> bool {
    let (s, v) = app.get("/api/v1/users?per_page=500", token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let users = v["users"].as_array().unwrap();
    assert_eq!(
        v["total"].as_i64(),
        Some(users.len() as i64),
        "the count is the rows the caller may see: {v}"
    );
    users.iter().any(|u| u["id"].as_i64() == Some(id))
}

/// The effect of an allowed request, as a Site Admin sees it.
#[expect(
    clippy::too_many_arguments,
    reason = "one cell of the table: its world, people and expected outcome"
)]
async fn effect(
    app: &TestApp,
    bed: &Bed,
    req: Req,
    v: &Value,
    (u, from): (i64, Option<SiteRole>),
    project: i64,
    ws: Option<i64>,
    name: &str,
    case: &str,
) {
    let sa = &bed.sa;
    let p = bed.p;
    let user = |id: i64| async move { app.get(&format!("/api/v1/users/{id}"), sa).await };
    match req {
        Req::CreateUser => {
            let id = v["user"]["id"].as_i64().unwrap();
            assert_eq!(user(id).await.1["username"].as_str(), Some(name), "{case}");
        }
        Req::DeleteUser => assert_eq!(
            user(u).await.0,
            StatusCode::NOT_FOUND,
            "{case}: still there"
        ),
        Req::Deactivate => assert_eq!(
            user(u).await.1["status"].as_str(),
            Some("deactivated"),
            "{case}"
        ),
        Req::ShowUser => {
            assert_eq!(v["id"].as_i64(), Some(u), "{case}: {v}");
        }
        Req::ResetToken => assert!(
            v["token"].as_str().is_some_and(|t| t.len() > 20),
            "{case}: {v}"
        ),
        Req::EditEmail => {
            assert_eq!(
                user(u).await.1["email"].as_str(),
                Some(format!("{name}@new.example").as_str()),
                "{case}"
            );
        }
        Req::SiteAdminRole | Req::AppAdminRole => {
            let role = user(u).await.1["site_role"].as_str().unwrap().to_owned();
            assert_eq!(v["site_role"].as_str(), Some(role.as_str()), "{case}: {v}");
            assert_ne!(
                Some(role.as_str()),
                from.map(SiteRole::as_str),
                "{case}: the role did not change"
            );
        }
        Req::LabMember => {
            let (_, m) = app
                .get(&format!("/api/v1/labs/{}/members", bed.lab1), sa)
                .await;
            let row = m
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["user_id"].as_i64() == Some(u))
                .cloned();
            assert_eq!(
                row.map(|r| r["lab_role"].clone()),
                Some(json!("manager")),
                "{case}: {m}"
            );
        }
        Req::CreateLab => {
            let (_, labs) = app.get("/api/v1/labs", sa).await;
            assert!(
                labs.as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["name"].as_str() == Some(name)),
                "{case}: {labs}"
            );
        }
        Req::ProjectMember => {
            let (_, m) = app.get(&format!("/api/v1/projects/{p}/members"), sa).await;
            let row = m
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["user_id"].as_i64() == Some(u))
                .cloned();
            assert_eq!(
                row.map(|r| r["role"].clone()),
                Some(json!("editor")),
                "{case}: {m}"
            );
        }
        Req::CreateGroup => {
            let (_, g) = app.get(&format!("/api/v1/projects/{p}/groups"), sa).await;
            assert!(
                g.as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["name"].as_str() == Some(name)),
                "{case}: {g}"
            );
        }
        Req::PriorityToggle => {
            assert_eq!(
                user(u).await.1["job_priority_management"],
                v["job_priority_management"],
                "{case}"
            );
        }
        Req::LaneRestriction => {
            let (_, l) = app.get(&format!("/api/v1/users/{u}/lanes"), sa).await;
            assert_eq!(l["not_allowed"], json!([bed.lane]), "{case}: {l}");
            // Undone, so that the next allowed case shows a change again.
            let (s, v) = put(
                app,
                &format!("/api/v1/users/{u}/lanes"),
                sa,
                json!({ "not_allowed": [] }),
            )
            .await;
            ok(s, &v, case);
        }
        Req::CreateProject | Req::CustomRootCreate => {
            let id = v["id"].as_i64().unwrap();
            let (s, got) = app.get(&format!("/api/v1/projects/{id}"), sa).await;
            assert_eq!(s, StatusCode::OK, "{case}: {got}");
            let custom = req == Req::CustomRootCreate;
            assert_eq!(
                got["custom_file_root"].as_bool(),
                Some(custom),
                "{case}: {got}"
            );
            let dir = if custom {
                &bed.elsewhere
            } else {
                &bed.projects2
            };
            assert!(
                dir.join(name).is_dir(),
                "{case}: the project's directory was made"
            );
        }
        Req::DeleteProject => {
            assert_eq!(
                app.get(&format!("/api/v1/projects/{project}"), sa).await.0,
                StatusCode::NOT_FOUND,
                "{case}"
            );
        }
        Req::CreateWorkspace | Req::DeleteWorkspace => {
            let (_, list) = app
                .get(&format!("/api/v1/projects/{p}/workspaces"), sa)
                .await;
            let list = list.as_array().unwrap();
            if req == Req::CreateWorkspace {
                let made = list
                    .iter()
                    .find(|w| w["name"].as_str() == Some(name))
                    .expect("the new workspace");
                assert_eq!(made["parent_id"].as_i64(), ws, "{case}");
            } else {
                assert!(
                    !list.iter().any(|w| w["id"].as_i64() == ws),
                    "{case}: still there"
                );
            }
        }
        Req::Settings => {
            let title = match ws {
                None => app.get(&format!("/api/v1/projects/{p}"), sa).await.1["title"].clone(),
                Some(w) => {
                    let (_, list) = app
                        .get(&format!("/api/v1/projects/{p}/workspaces"), sa)
                        .await;
                    list.as_array()
                        .unwrap()
                        .iter()
                        .find(|x| x["id"].as_i64() == Some(w))
                        .unwrap()["title"]
                        .clone()
                }
            };
            assert_eq!(title.as_str(), Some(name), "{case}");
        }
        Req::CustomRootPatch => unreachable!("never succeeds"),
    }
}

/// Cells of `spec/roles.md` §2 read by hand (the bounds, mostly): the oracle and the server
/// must both agree with each.
fn hand_read_cells(outcomes: &[Outcome]) {
    use Kind::*;
    use Place::*;
    let u = Tgt::User;
    let cells: &[(Activity, &str, Tgt, bool, &str)] = &[
        (
            Activity::CreateUser,
            "project_admin",
            Tgt::At(Instance),
            true,
            "create new users: Project Admin yes",
        ),
        (
            Activity::CreateUser,
            "folder_admin",
            Tgt::At(Instance),
            false,
            "create new users: Folder Admin no",
        ),
        (
            Activity::DeleteUser,
            "application_admin",
            u(SiteAdmin),
            false,
            "yes, not a Site Admin",
        ),
        (
            Activity::DeleteUser,
            "application_admin",
            u(OfProject),
            true,
            "yes, not a Site Admin",
        ),
        (
            Activity::DeleteUser,
            "site_admin",
            u(Myself),
            false,
            "a user can never delete ... themselves",
        ),
        (
            Activity::SetUserActive,
            "application_admin",
            u(SiteAdmin),
            false,
            "yes, not a Site Admin",
        ),
        (
            Activity::SetUserActive,
            "project_admin",
            u(OfProject),
            false,
            "Project Admin: no",
        ),
        (
            Activity::ViewUser,
            "project_admin",
            u(OfProject),
            true,
            "see, for users of their project",
        ),
        (
            Activity::ViewUser,
            "project_admin",
            u(Outsider),
            false,
            "see, for users of their project",
        ),
        (
            Activity::ViewUser,
            "folder_admin",
            u(OfProject),
            true,
            "see, for users of their workspace",
        ),
        (
            Activity::ViewUser,
            "user",
            u(OfProject),
            false,
            "only themselves",
        ),
        (
            Activity::ViewUser,
            "user",
            u(Myself),
            true,
            "only themselves",
        ),
        (
            Activity::ViewUser,
            "troubleshooter",
            u(Outsider),
            true,
            "read-only sight of user details",
        ),
        (
            Activity::ChangePassword,
            "application_admin",
            u(SiteAdmin),
            false,
            "not reset a Site Admin's password",
        ),
        (
            Activity::ChangePassword,
            "project_admin",
            u(OfProject),
            false,
            "no password change",
        ),
        (
            Activity::ChangePassword,
            "folder_admin",
            u(OfProject),
            false,
            "no password change",
        ),
        (
            Activity::EditUser,
            "application_admin",
            u(SiteAdmin),
            false,
            "yes, not a Site Admin's",
        ),
        (
            Activity::EditUser,
            "user",
            u(Myself),
            true,
            "users may change their own details",
        ),
        (
            Activity::UpdateSiteAdmins,
            "application_admin",
            u(OfProject),
            false,
            "Site Admins: AA no",
        ),
        (
            Activity::UpdateSiteAdmins,
            "application_admin",
            u(SiteAdmin),
            false,
            "Site Admins: AA no",
        ),
        (
            Activity::UpdateSiteAdmins,
            "site_admin",
            u(Myself),
            false,
            "never ... demote themselves",
        ),
        (
            Activity::UpdateApplicationAdmins,
            "application_admin",
            u(OfProject),
            true,
            "Application Admins: AA yes",
        ),
        (
            Activity::UpdateSiteGroups,
            "application_admin",
            u(SiteAdmin),
            false,
            "not the memberships of Site Admins",
        ),
        (
            Activity::UpdateSiteGroups,
            "project_admin",
            Tgt::At(Instance),
            false,
            "site groups: Project Admin no",
        ),
        (
            Activity::UpdateProjectGroups,
            "project_admin",
            u(OfProject),
            true,
            "project groups: Project Admin yes",
        ),
        (
            Activity::UpdateProjectGroups,
            "application_admin",
            u(SiteAdmin),
            false,
            "yes, not for Site Admins",
        ),
        (
            Activity::UpdateProjectGroups,
            "folder_admin",
            Tgt::At(Project),
            false,
            "project groups: Folder Admin no",
        ),
        (
            Activity::UpdateSitePermissions,
            "troubleshooter",
            u(OfProject),
            false,
            "ordinary user's column",
        ),
        (
            Activity::CreateProject,
            "application_admin",
            Tgt::At(Instance),
            true,
            "create projects: AA yes",
        ),
        (
            Activity::CreateProject,
            "project_admin",
            Tgt::At(Instance),
            false,
            "create projects: Project Admin no",
        ),
        (
            Activity::DeleteProject,
            "project_admin",
            Tgt::At(Project),
            false,
            "delete projects: Project Admin no",
        ),
        (
            Activity::CreateWorkspace,
            "folder_admin",
            Tgt::At(InW),
            true,
            "workspaces: Folder Admin yes",
        ),
        (
            Activity::CreateWorkspace,
            "folder_admin",
            Tgt::At(InSibling),
            false,
            "only their workspace",
        ),
        (
            Activity::CreateWorkspace,
            "user",
            Tgt::At(Project),
            false,
            "workspaces: ordinary user no",
        ),
        (
            Activity::DeleteWorkspace,
            "project_admin",
            Tgt::At(Project),
            true,
            "workspaces: Project Admin yes",
        ),
        (
            Activity::UpdateProjectSettings,
            "project_admin",
            Tgt::At(Project),
            true,
            "yes, not the file root",
        ),
        (
            Activity::UpdateProjectSettings,
            "folder_admin",
            Tgt::At(InW),
            true,
            "yes, not the file root",
        ),
        (
            Activity::SetCustomFileRoot,
            "application_admin",
            Tgt::At(Instance),
            false,
            "but no custom file root",
        ),
        (
            Activity::SetCustomFileRoot,
            "project_admin",
            Tgt::At(Project),
            false,
            "not the file root",
        ),
        (
            Activity::SetCustomFileRoot,
            "site_admin",
            Tgt::At(Instance),
            true,
            "only a Site Admin sets a file root",
        ),
    ];
    for (activity, column, tgt, allowed, cell) in cells {
        let found: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.activity == *activity && o.column == *column && o.tgt == *tgt)
            .collect();
        assert!(
            !found.is_empty(),
            "no case for {activity} / {column} / {tgt:?}"
        );
        for o in found {
            assert_eq!(
                o.allowed, *allowed,
                "{activity} / {column} / {tgt:?} ({:?}): the table says \"{cell}\"",
                o.req
            );
            let refused = matches!(o.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND);
            assert_eq!(
                refused, !allowed,
                "{activity} / {column} / {tgt:?}: the server answered {}",
                o.status
            );
        }
    }
}

/// An Application Admin leaving their own role: refused without `confirm`, done with it, and
/// their credentials stop working.
async fn leaving_the_application_admin_role_asks_for_confirmation(app: &TestApp, bed: &Bed) {
    let (id, token) = app.user(&bed.sa, "aa-leaving", "application_admin").await;
    let path = format!("/api/v1/users/{id}");
    let (s, v) = app
        .patch(&path, &token, json!({ "site_role": "none" }))
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("confirm")),
        "{v}"
    );
    assert_eq!(
        app.get(&path, &bed.sa).await.1["site_role"].as_str(),
        Some("application_admin")
    );
    let (s, v) = app
        .patch(
            &path,
            &token,
            json!({ "site_role": "none", "confirm": true }),
        )
        .await;
    assert_eq!(
        (s, v["site_role"].as_str()),
        (StatusCode::OK, Some("none")),
        "{v}"
    );
    assert_eq!(
        app.get("/api/v1/users/me", &token).await.0,
        StatusCode::UNAUTHORIZED,
        "a role change revokes tokens"
    );
    // A Site Admin cannot demote themselves, confirmed or not.
    let sa = &bed.actors[0];
    let (s, v) = app
        .patch(
            &format!("/api/v1/users/{}", sa.id),
            &sa.token,
            json!({ "site_role": "none", "confirm": true }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

/// The user list of a project admin and of a folder admin holds exactly themselves and the
/// users of their project (members, group members, folder admins), counted and paged right; an
/// ordinary user sees only themselves, a troubleshooter everyone.
async fn lists_show_exactly_the_users_of_ones_projects(app: &TestApp, bed: &Bed) {
    let sa = &bed.sa;
    let p = bed.p;
    // A group member counts as a user of P too.
    let (s, v) = app
        .post(
            &format!("/api/v1/projects/{p}/groups"),
            sa,
            json!({ "name": "viewers", "role": "reader" }),
        )
        .await;
    ok(s, &v, "group");
    let gid = v
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "viewers")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (gm, _) = fresh_user(app, bed, Kind::AppAdmin, 9999).await;
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/projects/{p}/groups/{gid}/members/{gm}"),
            Some(sa),
            None,
        )
        .await;
    ok(s, &v, "group member");

    let (_, members) = app.get(&format!("/api/v1/projects/{p}/members"), sa).await;
    let (_, workspaces) = app
        .get(&format!("/api/v1/projects/{p}/workspaces"), sa)
        .await;
    let mut of_p: BTreeSet<String> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_owned())
        .collect();
    for w in workspaces.as_array().unwrap() {
        of_p.extend(
            w["folder_admins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned()),
        );
    }
    assert!(
        of_p.contains("dave") && of_p.contains("carol") && of_p.contains("aa9999"),
        "{of_p:?}"
    );
    let (_, all) = app.get("/api/v1/users?per_page=1", sa).await;
    let everyone = all["total"].as_i64().unwrap();
    for who in &bed.actors {
        let mut seen = BTreeSet::new();
        let mut page = 1;
        let total = loop {
            let (s, v) = app
                .get(&format!("/api/v1/users?per_page=7&page={page}"), &who.token)
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let rows = v["users"].as_array().unwrap();
            seen.extend(
                rows.iter()
                    .map(|u| u["username"].as_str().unwrap().to_owned()),
            );
            if rows.len() < 7 {
                break v["total"].as_i64().unwrap();
            }
            page += 1;
        };
        assert_eq!(
            total,
            seen.len() as i64,
            "{}: the count matches the rows",
            who.label
        );
        match who.label {
            "project_admin" | "folder_admin" => {
                let mut expected = of_p.clone();
                expected.insert(who.name.clone());
                assert_eq!(seen, expected, "{} sees exactly the users of P", who.label);
            }
            "user" => assert_eq!(
                seen,
                BTreeSet::from([who.name.clone()]),
                "an ordinary user sees only themselves"
            ),
            _ => assert_eq!(total, everyone, "{} sees every user", who.label),
        }
    }
}

/// The features behind the Project Admin and Folder Admin columns, end to end: a project admin
/// manages members and groups; a folder admin renames and nests inside their workspace and names
/// the admins of their subfolders, but touches neither their own admins, nor a sibling, nor the
/// project's settings; a folder admin of a subfolder manages that subfolder only.
async fn project_and_folder_admins_manage_only_their_own(app: &TestApp, bed: &Bed) {
    let (sa, p) = (&bed.sa, bed.p);
    let carol = &bed.actors[5];
    let dave = &bed.actors[6];
    let alice = &bed.actors[4];
    assert_eq!(
        (carol.label, dave.label, alice.label),
        ("project_admin", "folder_admin", "user")
    );
    let pm = bed
        .targets
        .iter()
        .find(|(k, _)| *k == Kind::OfProject)
        .unwrap()
        .1
        .id;
    let role_in_p = |id: i64| async move {
        let (_, m) = app.get(&format!("/api/v1/projects/{p}/members"), sa).await;
        m.as_array()
            .unwrap()
            .iter()
            .find(|r| r["user_id"].as_i64() == Some(id))
            .map(|r| r["role"].clone())
    };

    // Project admin: members and groups.
    let (s, v) = app
        .delete(&format!("/api/v1/projects/{p}/members/{pm}"), &carol.token)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(role_in_p(pm).await, None, "removed");
    let (s, v) = app
        .post(
            &format!("/api/v1/projects/{p}/members"),
            &carol.token,
            json!({ "user_id": pm, "role": "reader" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(role_in_p(pm).await, Some(json!("reader")));
    let (s, v) = app
        .post(
            &format!("/api/v1/projects/{p}/groups"),
            &carol.token,
            json!({ "name": "crew", "role": "editor" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let gid = v
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "crew")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let member = format!("/api/v1/projects/{p}/groups/{gid}/members/{pm}");
    let (s, v) = app
        .call(Method::PUT, &member, Some(&carol.token), None)
        .await;
    assert_eq!(
        (
            s,
            v.as_array()
                .unwrap()
                .iter()
                .find(|g| g["id"] == gid)
                .unwrap()["members"]
                .clone()
        ),
        (StatusCode::OK, json!(["pm0"]))
    );
    let (s, _) = app
        .call(Method::PUT, &member, Some(&dave.token), None)
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a folder admin manages no project groups"
    );
    let (s, _) = app.delete(&member, &carol.token).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .delete(&format!("/api/v1/projects/{p}/groups/{gid}"), &carol.token)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // A project admin changes no passwords, details or status of their project's users.
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/v1/users/{pm}/reset-token"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{pm}"),
            Some(json!({ "first_name": "Renamed" })),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{pm}"),
            Some(json!({ "status": "deactivated" })),
        ),
        (Method::DELETE, format!("/api/v1/users/{pm}"), None),
    ] {
        let (s, v) = app
            .call(method.clone(), &path, Some(&carol.token), body)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
    }
    assert_eq!(
        app.get(&format!("/api/v1/users/{pm}"), &carol.token)
            .await
            .0,
        StatusCode::OK,
        "but sees them"
    );

    // Folder admin of W: rename and nest inside W, name the admins of W's subfolders.
    let ws = |id: i64| format!("/api/v1/projects/{p}/workspaces/{id}");
    let (s, v) = app
        .patch(
            &ws(bed.w_sub),
            &dave.token,
            json!({ "name": "w-sub-2", "title": "Grids" }),
        )
        .await;
    assert_eq!(
        (s, v["name"].as_str(), v["title"].as_str()),
        (StatusCode::OK, Some("w-sub-2"), Some("Grids")),
        "{v}"
    );
    let (s, v) = app
        .patch(&ws(bed.w_sub), &dave.token, json!({ "name": "W2" }))
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::CONFLICT, Some("name")),
        "names are unique in a project: {v}"
    );
    let (s, v) = app
        .patch(&ws(bed.w_sub), &dave.token, json!({ "name": "../up" }))
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        "{v}"
    );
    let (s, v) = put(
        app,
        &format!("{}/admins", ws(bed.w_sub)),
        &dave.token,
        json!({ "user_ids": [alice.id] }),
    )
    .await;
    assert_eq!(
        (s, v["folder_admins"].clone()),
        (StatusCode::OK, json!(["alice"])),
        "{v}"
    );
    let (s, _) = put(
        app,
        &format!("{}/admins", ws(bed.w)),
        &dave.token,
        json!({ "user_ids": [] }),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a folder admin does not name their own workspace's admins"
    );
    let (_, list) = app
        .get(&format!("/api/v1/projects/{p}/workspaces"), sa)
        .await;
    let w = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == bed.w)
        .unwrap()
        .clone();
    assert_eq!(w["folder_admins"], json!(["dave"]), "unchanged");
    for (method, path, body) in [
        (Method::PATCH, ws(bed.w2), Some(json!({ "title": "mine" }))),
        (
            Method::PATCH,
            ws(bed.w2_sub),
            Some(json!({ "title": "mine" })),
        ),
        (Method::DELETE, ws(bed.w2_sub), None),
        (
            Method::PUT,
            format!("{}/admins", ws(bed.w2_sub)),
            Some(json!({ "user_ids": [dave.id] })),
        ),
        (
            Method::PATCH,
            format!("/api/v1/projects/{p}"),
            Some(json!({ "title": "mine" })),
        ),
    ] {
        let (s, v) = app
            .call(method.clone(), &path, Some(&dave.token), body)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "outside W: {method} {path}: {v}");
    }
    // Alice, folder admin of W's subfolder only: that subfolder and below, not W.
    let (s, v) = app
        .post(
            &format!("/api/v1/projects/{p}/workspaces"),
            &alice.token,
            json!({ "name": "deep", "parent_id": bed.w_sub }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let deep = v["id"].as_i64().unwrap();
    assert_eq!(
        app.patch(&ws(bed.w), &alice.token, json!({ "title": "mine" }))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Dave's subtree reaches the new grandchild too.
    assert_eq!(
        app.delete(&ws(deep), &dave.token).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, list) = app
        .get(&format!("/api/v1/projects/{p}/workspaces"), sa)
        .await;
    assert!(!list.as_array().unwrap().iter().any(|x| x["id"] == deep));
}
