//! Cases generated from `spec/permissions.toml`: every §1 setting x site role, every §2 action x
//! actor kind x target kind, every site-role change. The expected decision comes from a small
//! interpreter written here from the file's own vocabulary (its header comment), reading the raw
//! toml, not the core's types; `authorize` must give exactly that, column and bounds included.
//! Then hand-written checks of the sentences of `spec/roles.md`.

use std::collections::{BTreeMap, BTreeSet};

use cryowarden_core::table::PERMISSIONS_TOML;
use cryowarden_core::{
    Action, Activity, Actor, Bound, Column, Decision, Impersonation, ImpersonationScope, Resource,
    Setting, SiteRole, UserId, authorize,
};
use toml::Value;

// ------------------------------------------------------------------------------------------------
// The raw file
// ------------------------------------------------------------------------------------------------

struct AccessSpec {
    access: String,
    read_only_fields: Vec<String>,
}

struct SettingSpec {
    key: String,
    holds: String,
    /// site_admin / application_admin / troubleshooter -> access.
    columns: BTreeMap<String, AccessSpec>,
}

struct ActionSpec {
    row: String,
    name: String,
    row_bounds: Vec<String>,
    /// column -> (grant, cell bounds).
    cells: BTreeMap<String, (String, Vec<String>)>,
}

struct Spec {
    settings: Vec<SettingSpec>,
    actions: Vec<ActionSpec>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

fn spec() -> Spec {
    let file: toml::Table =
        toml::from_str(PERMISSIONS_TOML).expect("spec/permissions.toml is toml");
    let settings = file["setting"]
        .as_array()
        .expect("[[setting]]")
        .iter()
        .map(|row| {
            let columns = ["site_admin", "application_admin", "troubleshooter"]
                .into_iter()
                .map(|c| {
                    let cell = match &row[c] {
                        Value::String(s) => AccessSpec {
                            access: s.clone(),
                            read_only_fields: vec![],
                        },
                        Value::Table(t) => AccessSpec {
                            access: t["access"].as_str().expect("access").to_owned(),
                            read_only_fields: strings(&t["read_only_fields"]),
                        },
                        other => panic!("unexpected §1 cell {other:?}"),
                    };
                    (c.to_owned(), cell)
                })
                .collect();
            SettingSpec {
                key: row["key"].as_str().unwrap().to_owned(),
                holds: row["holds"].as_str().unwrap().to_owned(),
                columns,
            }
        })
        .collect();
    let mut actions = Vec::new();
    for row in file["activity"].as_array().expect("[[activity]]") {
        let row_key = row["key"].as_str().unwrap().to_owned();
        let row_bounds = row.get("bounds").map(strings).unwrap_or_default();
        for (name, cells) in row["actions"].as_table().expect("actions") {
            let cells = cells
                .as_table()
                .expect("an action's columns")
                .iter()
                .map(|(column, cell)| {
                    let parsed = match cell {
                        Value::String(g) => (g.clone(), vec![]),
                        Value::Table(t) => (
                            t["grant"].as_str().expect("grant").to_owned(),
                            strings(&t["bounds"]),
                        ),
                        other => panic!("unexpected §2 cell {other:?}"),
                    };
                    (column.clone(), parsed)
                })
                .collect();
            actions.push(ActionSpec {
                row: row_key.clone(),
                name: name.clone(),
                row_bounds: row_bounds.clone(),
                cells,
            });
        }
    }
    Spec { settings, actions }
}

// ------------------------------------------------------------------------------------------------
// The cases
// ------------------------------------------------------------------------------------------------

const ME: UserId = UserId(1);
const OTHER: UserId = UserId(2);

#[derive(Clone, Copy, Debug)]
struct ActorKind {
    name: &'static str,
    role: SiteRole,
    /// Project Admin of the project in question (when the target is in scope).
    project_admin: bool,
    folder_admin: bool,
}

const ACTORS: &[ActorKind] = &[
    ActorKind {
        name: "site admin",
        role: SiteRole::SiteAdmin,
        project_admin: false,
        folder_admin: false,
    },
    ActorKind {
        name: "application admin",
        role: SiteRole::ApplicationAdmin,
        project_admin: false,
        folder_admin: false,
    },
    ActorKind {
        name: "troubleshooter",
        role: SiteRole::Troubleshooter,
        project_admin: false,
        folder_admin: false,
    },
    ActorKind {
        name: "impersonating troubleshooter",
        role: SiteRole::ImpersonatingTroubleshooter,
        project_admin: false,
        folder_admin: false,
    },
    ActorKind {
        name: "ordinary user",
        role: SiteRole::None,
        project_admin: false,
        folder_admin: false,
    },
    ActorKind {
        name: "project admin (ordinary user)",
        role: SiteRole::None,
        project_admin: true,
        folder_admin: false,
    },
    ActorKind {
        name: "folder admin (ordinary user)",
        role: SiteRole::None,
        project_admin: false,
        folder_admin: true,
    },
];

#[derive(Clone, Copy, Debug)]
enum TargetKind {
    NoTarget,
    SiteAdmin,
    ApplicationAdmin,
    Oneself,
    /// An ordinary user of the project / workspace the actor administers.
    Member,
    /// A Site Admin who is a member of the project / workspace the actor administers.
    SiteAdminMember,
    /// An ordinary user of no project the actor administers.
    Stranger,
}

const TARGETS: &[TargetKind] = &[
    TargetKind::NoTarget,
    TargetKind::SiteAdmin,
    TargetKind::ApplicationAdmin,
    TargetKind::Oneself,
    TargetKind::Member,
    TargetKind::SiteAdminMember,
    TargetKind::Stranger,
];

/// The resource for an actor kind and a target kind; the scope flags are set when the target (or,
/// with no target, the instance-wide action) is within what the actor administers.
fn resource(actor: ActorKind, target: TargetKind) -> Resource {
    let (base, in_scope) = match target {
        TargetKind::NoTarget => (Resource::instance(), true),
        TargetKind::SiteAdmin => (Resource::user(OTHER, SiteRole::SiteAdmin), false),
        TargetKind::ApplicationAdmin => (Resource::user(OTHER, SiteRole::ApplicationAdmin), false),
        TargetKind::Oneself => (Resource::user(ME, actor.role), true),
        TargetKind::Member => (Resource::user(OTHER, SiteRole::None), true),
        TargetKind::SiteAdminMember => (Resource::user(OTHER, SiteRole::SiteAdmin), true),
        TargetKind::Stranger => (Resource::user(OTHER, SiteRole::None), false),
    };
    base.scoped(
        actor.project_admin && in_scope,
        actor.folder_admin && in_scope,
    )
}

// ------------------------------------------------------------------------------------------------
// The interpreter
// ------------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Allow {
        column: Column,
        bounds: BTreeSet<Bound>,
    },
    Deny {
        rule: String,
    },
}

fn column_named(name: &str) -> Column {
    match name {
        "site_admin" => Column::SiteAdmin,
        "application_admin" => Column::ApplicationAdmin,
        "troubleshooter" => Column::Troubleshooter,
        "impersonating_troubleshooter" => Column::ImpersonatingTroubleshooter,
        "project_admin" => Column::ProjectAdmin,
        "folder_admin" => Column::FolderAdmin,
        "user" => Column::User,
        other => panic!("unknown column {other}: extend the interpreter of tests/table_cases.rs"),
    }
}

fn bound_named(name: &str) -> Bound {
    match name {
        "no-custom-file-root" => Bound::NoCustomFileRoot,
        "no-site-admin-rights" => Bound::NoSiteAdminRights,
        "site-roles-off" => Bound::SiteRolesOff,
        "break-glass" => Bound::BreakGlass,
        "requires-confirmation" => Bound::RequiresConfirmation,
        "some-fields-read-only" => Bound::SomeFieldsReadOnly,
        other => panic!("unknown bound {other}: extend the interpreter of tests/table_cases.rs"),
    }
}

/// The §1 column a site role reads (impersonating troubleshooters have every permission of a
/// troubleshooter; ordinary users have none).
fn console_column(role: SiteRole) -> Option<&'static str> {
    match role {
        SiteRole::SiteAdmin => Some("site_admin"),
        SiteRole::ApplicationAdmin => Some("application_admin"),
        SiteRole::Troubleshooter | SiteRole::ImpersonatingTroubleshooter => Some("troubleshooter"),
        SiteRole::None => None,
    }
}

fn expect_setting(
    spec: &SettingSpec,
    role: SiteRole,
    change: bool,
    field: Option<&str>,
) -> Expected {
    let deny = Expected::Deny {
        rule: spec.key.clone(),
    };
    let Some(column) = console_column(role) else {
        return deny;
    };
    let cell = &spec.columns[column];
    let readable = match cell.access.as_str() {
        "all" => true,
        "read-only" => false,
        "none" => return deny,
        other => {
            panic!("unknown §1 access {other:?}: extend the interpreter of tests/table_cases.rs")
        }
    };
    let mut bounds = BTreeSet::new();
    if change {
        if !readable {
            return deny;
        }
        match field {
            Some(f) if cell.read_only_fields.iter().any(|r| r == f) => return deny,
            None if !cell.read_only_fields.is_empty() => {
                bounds.insert(Bound::SomeFieldsReadOnly);
            }
            _ => {}
        }
    }
    Expected::Allow {
        column: column_named(column),
        bounds,
    }
}

/// The §2 column names that apply to an actor, most specific first: the site role's column, then
/// project admin and folder admin when in scope, then the ordinary user's column (everyone's).
fn activity_columns(role: SiteRole, resource: &Resource) -> Vec<&'static str> {
    let site = match role {
        SiteRole::SiteAdmin => "site_admin",
        SiteRole::ApplicationAdmin => "application_admin",
        SiteRole::Troubleshooter => "troubleshooter",
        SiteRole::ImpersonatingTroubleshooter => "impersonating_troubleshooter",
        SiteRole::None => "user",
    };
    let mut columns = vec![site];
    if resource.project_admin {
        columns.push("project_admin");
    }
    if resource.folder_admin {
        columns.push("folder_admin");
    }
    columns.push("user");
    columns
}

fn expect_activity(spec: &ActionSpec, actor: &Actor, resource: &Resource) -> Expected {
    let target = resource.target;
    let on_self = target.is_some_and(|t| t.id == actor.user);
    let target_is_site_admin = target.is_some_and(|t| t.site_role == SiteRole::SiteAdmin);
    let mut confirm_self = false;
    for b in &spec.row_bounds {
        match b.as_str() {
            "never-self" if on_self => {
                return Expected::Deny {
                    rule: spec.row.clone(),
                };
            }
            "never-self" => {}
            "confirm-self" => confirm_self = true,
            other => panic!(
                "unknown row bound {other:?}: extend the interpreter of tests/table_cases.rs"
            ),
        }
    }
    for column in activity_columns(actor.site_role, resource) {
        // Troubleshooters take the user's column unless the action names them.
        let cell = spec.cells.get(column).or_else(|| match column {
            "troubleshooter" | "impersonating_troubleshooter" => spec.cells.get("user"),
            _ => None,
        });
        let Some((grant, cell_bounds)) = cell else {
            panic!("action {} has no {column} column", spec.name);
        };
        let granted = match grant.as_str() {
            "yes" => true,
            "no" => false,
            "unless-target-site-admin" => !target_is_site_admin,
            "self" => on_self,
            "only-target-site-admin" => target_is_site_admin,
            other => {
                panic!("unknown grant {other:?}: extend the interpreter of tests/table_cases.rs")
            }
        };
        if granted {
            let mut bounds: BTreeSet<Bound> = cell_bounds.iter().map(|b| bound_named(b)).collect();
            if on_self && confirm_self {
                bounds.insert(Bound::RequiresConfirmation);
            }
            return Expected::Allow {
                column: column_named(column),
                bounds,
            };
        }
    }
    Expected::Deny {
        rule: spec.row.clone(),
    }
}

/// A site-role change needs every §2 row it touches (the set of Site Admins, the set of
/// Application Admins, site permissions for the troubleshooter roles or anything else), and
/// never applies to oneself, except leaving the Application Admin role (asked to confirm).
fn expect_role_change(
    spec: &Spec,
    actor: &Actor,
    from: SiteRole,
    to: SiteRole,
    resource: &Resource,
) -> Expected {
    let on_self = resource.target.is_some_and(|t| t.id == actor.user);
    if on_self && !(from == SiteRole::ApplicationAdmin && to == SiteRole::None) {
        return Expected::Deny {
            rule: "own-role".into(),
        };
    }
    let touches = |r: SiteRole| from == r || to == r;
    let mut rows = Vec::new();
    if touches(SiteRole::SiteAdmin) {
        rows.push("update-site-admins");
    }
    if touches(SiteRole::ApplicationAdmin) {
        rows.push("update-application-admins");
    }
    if touches(SiteRole::Troubleshooter)
        || touches(SiteRole::ImpersonatingTroubleshooter)
        || rows.is_empty()
    {
        rows.push("update-site-permissions");
    }
    let mut column = None;
    let mut bounds = BTreeSet::new();
    for row in rows {
        let action = spec
            .actions
            .iter()
            .find(|a| a.name == row)
            .expect("the toml has the row");
        match expect_activity(action, actor, resource) {
            Expected::Allow {
                column: c,
                bounds: b,
            } => {
                column.get_or_insert(c);
                bounds.extend(b);
            }
            deny => return deny,
        }
    }
    Expected::Allow {
        column: column.expect("at least one row"),
        bounds,
    }
}

// ------------------------------------------------------------------------------------------------
// Checking a decision
// ------------------------------------------------------------------------------------------------

fn check(
    decision: Decision,
    expected: &Expected,
    actor: &Actor,
    action: Action,
    resource: &Resource,
) -> Result<(), String> {
    match (decision, expected) {
        (Decision::Allow(a), Expected::Allow { column, bounds }) => {
            let got_bounds: BTreeSet<Bound> = a.bounds().collect();
            let mut wrong = Vec::new();
            if a.column() != Some(*column) {
                wrong.push(format!("column {:?}, expected {column:?}", a.column()));
            }
            if &got_bounds != bounds {
                wrong.push(format!("bounds {got_bounds:?}, expected {bounds:?}"));
            }
            if a.action() != action {
                wrong.push(format!("proof for {:?}", a.action()));
            }
            if a.actor() != Some(actor.user) || a.impersonator() != actor.impersonator() {
                wrong.push(format!(
                    "actor {:?} / impersonator {:?}",
                    a.actor(),
                    a.impersonator()
                ));
            }
            if a.target() != resource.target.map(|t| t.id) {
                wrong.push(format!("target {:?}", a.target()));
            }
            if a.system_purpose().is_some() {
                wrong.push("a system proof".into());
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("allowed, but {}", wrong.join(", ")))
            }
        }
        (Decision::Deny(d), Expected::Deny { rule }) => {
            if d.rule != rule {
                Err(format!(
                    "denied by rule {:?}, expected rule {rule:?} ({})",
                    d.rule, d.reason
                ))
            } else if d.action != action || d.reason.is_empty() {
                Err(format!(
                    "denied for {:?} with reason {:?}",
                    d.action, d.reason
                ))
            } else {
                Ok(())
            }
        }
        (Decision::Allow(a), Expected::Deny { rule }) => Err(format!(
            "allowed (column {:?}, bounds {:?}), expected denied by {rule}",
            a.column(),
            a.bounds().collect::<Vec<_>>()
        )),
        (Decision::Deny(d), Expected::Allow { column, bounds }) => Err(format!(
            "denied ({}: {}), expected allowed by {column:?} with {bounds:?}",
            d.rule, d.reason
        )),
    }
}

struct Tally {
    checked: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            checked: 0,
            failures: Vec::new(),
        }
    }

    fn case(
        &mut self,
        what: impl FnOnce() -> String,
        actor: &Actor,
        action: Action,
        resource: &Resource,
        expected: Expected,
    ) {
        self.checked += 1;
        if let Err(e) = check(
            authorize(actor, action, resource),
            &expected,
            actor,
            action,
            resource,
        ) {
            self.failures.push(format!("{}: {e}", what()));
        }
    }

    fn finish(self, label: &str, at_least: usize) {
        println!("{label}: {} generated cases checked", self.checked);
        assert!(
            self.failures.is_empty(),
            "{} of {} {label} cases disagree with spec/permissions.toml:\n{}",
            self.failures.len(),
            self.checked,
            self.failures
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            self.checked >= at_least,
            "only {} {label} cases generated",
            self.checked
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Generated cases
// ------------------------------------------------------------------------------------------------

/// `holds` names the fields of a setting: "instance name, banner" -> instance_name, banner.
fn fields_held(spec: &SettingSpec) -> Vec<&'static str> {
    spec.holds
        .split(", ")
        .map(|f| &*Box::leak(f.replace(' ', "_").into_boxed_str()))
        .collect()
}

#[test]
fn every_setting_for_every_site_role() {
    let spec = spec();
    assert_eq!(
        spec.settings.len(),
        Setting::ALL.len(),
        "the toml and the core have different settings"
    );
    let mut tally = Tally::new();
    for row in &spec.settings {
        let setting = Setting::parse(&row.key)
            .unwrap_or_else(|| panic!("setting {} unknown to the core", row.key));
        let partial = row.columns.values().any(|c| !c.read_only_fields.is_empty());
        // A partial row: also change each field it holds, one at a time.
        let mut fields: Vec<Option<&'static str>> = vec![None];
        if partial {
            let held = fields_held(row);
            for c in row.columns.values() {
                for f in &c.read_only_fields {
                    assert!(
                        held.contains(&f.as_str()),
                        "{}: read-only field {f} is not among what it holds ({:?})",
                        row.key,
                        row.holds
                    );
                }
            }
            fields.extend(held.into_iter().map(Some));
        }
        for role in SiteRole::ALL.iter().copied() {
            // Project and folder admin add nothing to §1.
            for (pa, fa) in [(false, false), (true, false), (false, true)] {
                let actor = Actor::new(ME, role);
                let resource = Resource::instance().scoped(pa, fa);
                let read = Action::ReadSetting(setting);
                let what = || format!("{role} (pa {pa}, fa {fa}) reads {}", row.key);
                tally.case(
                    what,
                    &actor,
                    read,
                    &resource,
                    expect_setting(row, role, false, None),
                );
                for field in &fields {
                    let change = Action::ChangeSetting {
                        setting,
                        field: *field,
                    };
                    let what = || {
                        format!(
                            "{role} (pa {pa}, fa {fa}) changes {} field {field:?}",
                            row.key
                        )
                    };
                    tally.case(
                        what,
                        &actor,
                        change,
                        &resource,
                        expect_setting(row, role, true, *field),
                    );
                }
            }
        }
    }
    tally.finish("§1 setting", 32 * 5 * 2);
}

#[test]
fn every_activity_for_every_actor_and_target() {
    let spec = spec();
    assert_eq!(
        spec.actions.len(),
        Activity::ALL.len(),
        "the toml and the core have different activities"
    );
    let mut tally = Tally::new();
    for action_spec in &spec.actions {
        let activity = Activity::parse(&action_spec.name)
            .unwrap_or_else(|| panic!("action {} unknown to the core", action_spec.name));
        for actor_kind in ACTORS {
            for target in TARGETS {
                let actor = Actor::new(ME, actor_kind.role);
                let resource = resource(*actor_kind, *target);
                let expected = expect_activity(action_spec, &actor, &resource);
                let what = || {
                    format!(
                        "{} / {} / target {target:?} {resource:?}",
                        action_spec.name, actor_kind.name
                    )
                };
                tally.case(
                    what,
                    &actor,
                    Action::Activity(activity),
                    &resource,
                    expected,
                );
            }
        }
    }
    tally.finish("§2 activity", 18 * 7 * 7);
}

#[test]
fn every_site_role_change_for_every_actor() {
    let spec = spec();
    let mut tally = Tally::new();
    for actor_kind in ACTORS {
        let actor = Actor::new(ME, actor_kind.role);
        // (target, from): every role a target can hold, in scope and out of it, and oneself.
        let mut targets = vec![(
            Resource::user(ME, actor.site_role)
                .scoped(actor_kind.project_admin, actor_kind.folder_admin),
            actor.site_role,
        )];
        for role in SiteRole::ALL.iter().copied() {
            for in_scope in [false, true] {
                let r = Resource::user(OTHER, role).scoped(
                    actor_kind.project_admin && in_scope,
                    actor_kind.folder_admin && in_scope,
                );
                targets.push((r, role));
            }
        }
        for (resource, from) in targets {
            for to in SiteRole::ALL.iter().copied() {
                let action = Action::ChangeSiteRole { from, to };
                let expected = expect_role_change(&spec, &actor, from, to, &resource);
                let what = || format!("{} changes {from} -> {to} of {resource:?}", actor_kind.name);
                tally.case(what, &actor, action, &resource, expected);
            }
        }
    }
    tally.finish("site-role change", 7 * 11 * 5);
}

/// roles.md: "An Impersonating Troubleshooter has every permission of a Troubleshooter".
#[test]
fn an_impersonating_troubleshooter_can_do_all_a_troubleshooter_can() {
    let mut actions: Vec<Action> = Activity::ALL.iter().map(|a| Action::Activity(*a)).collect();
    for s in Setting::ALL.iter().copied() {
        actions.push(Action::ReadSetting(s));
        actions.push(Action::ChangeSetting {
            setting: s,
            field: None,
        });
    }
    let troubleshooter = ActorKind {
        name: "t",
        role: SiteRole::Troubleshooter,
        project_admin: false,
        folder_admin: false,
    };
    let mut troubleshooter_allowed = 0;
    for action in actions {
        for target in TARGETS {
            let r = resource(troubleshooter, *target);
            let t = authorize(&Actor::new(ME, SiteRole::Troubleshooter), action, &r).is_allowed();
            // Oneself is an Impersonating Troubleshooter on the other side.
            let r2 = match target {
                TargetKind::Oneself => Resource::user(ME, SiteRole::ImpersonatingTroubleshooter),
                _ => r,
            };
            let it = authorize(
                &Actor::new(ME, SiteRole::ImpersonatingTroubleshooter),
                action,
                &r2,
            )
            .is_allowed();
            assert!(
                !t || it,
                "{action:?} on {target:?}: a Troubleshooter may, an Impersonating Troubleshooter may not"
            );
            troubleshooter_allowed += t as usize;
        }
    }
    assert!(troubleshooter_allowed > 0);
}

// ------------------------------------------------------------------------------------------------
// Hand-written checks of the sentences of spec/roles.md
// ------------------------------------------------------------------------------------------------

fn allowed(
    role: SiteRole,
    action: impl Into<Action>,
    resource: Resource,
) -> cryowarden_core::Allowed {
    let action = action.into();
    match authorize(&Actor::new(ME, role), action, &resource) {
        Decision::Allow(a) => a,
        Decision::Deny(d) => panic!(
            "{role} {action:?} on {resource:?} denied: {} ({})",
            d.reason, d.rule
        ),
    }
}

fn denied(
    role: SiteRole,
    action: impl Into<Action>,
    resource: Resource,
) -> cryowarden_core::Denied {
    let action = action.into();
    match authorize(&Actor::new(ME, role), action, &resource) {
        Decision::Deny(d) => d,
        Decision::Allow(a) => panic!(
            "{role} {action:?} on {resource:?} allowed by {:?}",
            a.column()
        ),
    }
}

fn site_admin_target() -> Resource {
    Resource::user(OTHER, SiteRole::SiteAdmin)
}

fn stranger() -> Resource {
    Resource::user(OTHER, SiteRole::None)
}

fn oneself(role: SiteRole) -> Resource {
    Resource::user(ME, role)
}

#[test]
fn an_application_admin_cannot_delete_deactivate_edit_or_reset_a_site_admin() {
    let aa = SiteRole::ApplicationAdmin;
    for activity in [
        Activity::DeleteUser,
        Activity::SetUserActive,
        Activity::EditUser,
        Activity::ChangePassword,
    ] {
        denied(aa, activity, site_admin_target());
        denied(aa, activity, site_admin_target().scoped(true, true));
        assert_eq!(
            allowed(aa, activity, stranger()).column(),
            Some(Column::ApplicationAdmin)
        );
        assert_eq!(
            allowed(
                aa,
                activity,
                Resource::user(OTHER, SiteRole::ApplicationAdmin)
            )
            .column(),
            Some(Column::ApplicationAdmin)
        );
        assert_eq!(
            allowed(SiteRole::SiteAdmin, activity, site_admin_target()).column(),
            Some(Column::SiteAdmin)
        );
    }
    // "yes, but not reset a Site Admin's password": seeing a Site Admin's details is fine.
    let _ = allowed(aa, Activity::ViewUser, site_admin_target());
}

#[test]
fn the_reason_for_refusing_an_application_admin_names_the_site_admin() {
    let d = denied(
        SiteRole::ApplicationAdmin,
        Activity::ChangePassword,
        site_admin_target(),
    );
    assert!(d.reason.contains("Site Admin"), "reason: {}", d.reason);
    assert_eq!(d.rule, "see-user-details");
    assert_eq!(d.action, Action::Activity(Activity::ChangePassword));
}

#[test]
fn a_user_edits_and_changes_the_password_of_themselves_only() {
    let user = SiteRole::None;
    for activity in [
        Activity::EditUser,
        Activity::ChangePassword,
        Activity::ViewUser,
    ] {
        assert_eq!(
            allowed(user, activity, oneself(user)).column(),
            Some(Column::User)
        );
        denied(user, activity, stranger());
        denied(user, activity, site_admin_target());
        denied(user, activity, Resource::instance());
    }
    denied(user, Activity::DeleteUser, oneself(user));
    denied(user, Activity::SetUserActive, oneself(user));
}

#[test]
fn a_troubleshooter_views_any_user_but_edits_none() {
    for role in [
        SiteRole::Troubleshooter,
        SiteRole::ImpersonatingTroubleshooter,
    ] {
        for target in [
            stranger(),
            site_admin_target(),
            Resource::user(OTHER, SiteRole::ApplicationAdmin),
        ] {
            let column = allowed(role, Activity::ViewUser, target).column();
            assert!(
                matches!(
                    column,
                    Some(Column::Troubleshooter | Column::ImpersonatingTroubleshooter)
                ),
                "{column:?}"
            );
            denied(role, Activity::EditUser, target);
            denied(role, Activity::ChangePassword, target);
            denied(role, Activity::DeleteUser, target);
        }
        // The ordinary user's column: their own details.
        let _ = allowed(role, Activity::EditUser, oneself(role));
        // Read-only console, never a change.
        let _ = allowed(
            role,
            Action::ReadSetting(Setting::SiteErrors),
            Resource::instance(),
        );
        denied(
            role,
            Action::ChangeSetting {
                setting: Setting::SiteErrors,
                field: None,
            },
            Resource::instance(),
        );
    }
}

#[test]
fn a_project_admin_sees_the_users_of_their_project_only_and_never_changes_passwords() {
    let user = SiteRole::None;
    let member = stranger().scoped(true, false);
    assert_eq!(
        allowed(user, Activity::ViewUser, member).column(),
        Some(Column::ProjectAdmin)
    );
    denied(user, Activity::ViewUser, stranger());
    denied(user, Activity::ChangePassword, member);
    denied(
        user,
        Activity::ChangePassword,
        site_admin_target().scoped(true, false),
    );
    denied(user, Activity::EditUser, member);
    // A folder admin: the same within their workspace.
    let ws_member = stranger().scoped(false, true);
    assert_eq!(
        allowed(user, Activity::ViewUser, ws_member).column(),
        Some(Column::FolderAdmin)
    );
    denied(user, Activity::ChangePassword, ws_member);
    // Impersonation within the project, with site-wide roles off.
    let a = allowed(user, Activity::Impersonate, member);
    assert!(a.has(Bound::SiteRolesOff) && a.column() == Some(Column::ProjectAdmin));
    denied(user, Activity::Impersonate, stranger());
}

#[test]
fn nobody_changes_their_own_site_role_except_leaving_application_admin_with_confirmation() {
    for role in SiteRole::ALL.iter().copied() {
        for to in SiteRole::ALL.iter().copied() {
            let action = Action::ChangeSiteRole { from: role, to };
            if role == SiteRole::ApplicationAdmin && to == SiteRole::None {
                let a = allowed(role, action, oneself(role));
                assert!(
                    a.has(Bound::RequiresConfirmation),
                    "leaving the Application Admins asks for confirmation"
                );
                assert_eq!(a.column(), Some(Column::ApplicationAdmin));
            } else {
                let d = denied(role, action, oneself(role));
                assert_eq!(d.rule, "own-role", "{role} -> {to} on oneself");
            }
        }
    }
    // The same change on someone else needs no confirmation.
    let a = allowed(
        SiteRole::ApplicationAdmin,
        Action::ChangeSiteRole {
            from: SiteRole::ApplicationAdmin,
            to: SiteRole::None,
        },
        Resource::user(OTHER, SiteRole::ApplicationAdmin),
    );
    assert!(!a.has(Bound::RequiresConfirmation));
    // update-application-admins on oneself: allowed, asks for confirmation.
    let a = allowed(
        SiteRole::ApplicationAdmin,
        Activity::UpdateApplicationAdmins,
        oneself(SiteRole::ApplicationAdmin),
    );
    assert!(a.has(Bound::RequiresConfirmation));
    assert!(
        !allowed(
            SiteRole::ApplicationAdmin,
            Activity::UpdateApplicationAdmins,
            stranger()
        )
        .has(Bound::RequiresConfirmation)
    );
}

#[test]
fn an_application_admin_neither_makes_nor_demotes_a_site_admin() {
    let aa = SiteRole::ApplicationAdmin;
    for from in SiteRole::ALL
        .iter()
        .copied()
        .filter(|r| *r != SiteRole::SiteAdmin)
    {
        let d = denied(
            aa,
            Action::ChangeSiteRole {
                from,
                to: SiteRole::SiteAdmin,
            },
            Resource::user(OTHER, from),
        );
        assert_eq!(d.rule, "update-site-admins");
        assert_eq!(
            d.action,
            Action::ChangeSiteRole {
                from,
                to: SiteRole::SiteAdmin
            }
        );
        let _ = allowed(
            SiteRole::SiteAdmin,
            Action::ChangeSiteRole {
                from,
                to: SiteRole::SiteAdmin,
            },
            Resource::user(OTHER, from),
        );
    }
    for to in SiteRole::ALL.iter().copied() {
        denied(
            aa,
            Action::ChangeSiteRole {
                from: SiteRole::SiteAdmin,
                to,
            },
            site_admin_target(),
        );
    }
}

#[test]
fn an_application_admin_grants_the_troubleshooter_roles() {
    for to in [
        SiteRole::Troubleshooter,
        SiteRole::ImpersonatingTroubleshooter,
    ] {
        let a = allowed(
            SiteRole::ApplicationAdmin,
            Action::ChangeSiteRole {
                from: SiteRole::None,
                to,
            },
            stranger(),
        );
        assert_eq!(a.column(), Some(Column::ApplicationAdmin));
        assert_eq!(a.bounds().count(), 0);
        // ... and takes them back.
        let _ = allowed(
            SiteRole::ApplicationAdmin,
            Action::ChangeSiteRole {
                from: to,
                to: SiteRole::None,
            },
            Resource::user(OTHER, to),
        );
        // Nobody below an Application Admin does.
        for role in [
            SiteRole::Troubleshooter,
            SiteRole::ImpersonatingTroubleshooter,
            SiteRole::None,
        ] {
            denied(
                role,
                Action::ChangeSiteRole {
                    from: SiteRole::None,
                    to,
                },
                stranger().scoped(true, true),
            );
        }
    }
}

#[test]
fn never_self_rows_refuse_even_a_site_admin() {
    let sa = SiteRole::SiteAdmin;
    for activity in [
        Activity::DeleteUser,
        Activity::SetUserActive,
        Activity::UpdateSiteAdmins,
        Activity::Impersonate,
    ] {
        let d = denied(sa, activity, oneself(sa));
        assert!(d.reason.contains("themselves"), "{}", d.reason);
        let _ = allowed(sa, activity, stranger());
    }
}

#[test]
fn impersonation_bounds() {
    // An Application Admin impersonates, never gaining Site Admin rights by it.
    let a = allowed(
        SiteRole::ApplicationAdmin,
        Activity::Impersonate,
        site_admin_target(),
    );
    assert!(a.has(Bound::NoSiteAdminRights));
    // An Impersonating Troubleshooter impersonates a Site Admin, and only one: break-glass.
    let a = allowed(
        SiteRole::ImpersonatingTroubleshooter,
        Activity::Impersonate,
        site_admin_target(),
    );
    assert!(a.has(Bound::BreakGlass));
    assert_eq!(a.column(), Some(Column::ImpersonatingTroubleshooter));
    denied(
        SiteRole::ImpersonatingTroubleshooter,
        Activity::Impersonate,
        stranger(),
    );
    denied(
        SiteRole::Troubleshooter,
        Activity::Impersonate,
        site_admin_target(),
    );
    // While impersonating, the proof records both identities.
    let actor = Actor {
        user: OTHER,
        site_role: SiteRole::SiteAdmin,
        impersonation: Some(Impersonation {
            by: ME,
            by_role: SiteRole::SiteAdmin,
            scope: ImpersonationScope::Site,
        }),
    };
    let proof = authorize(
        &actor,
        Action::ReadSetting(Setting::AuditLog),
        &Resource::instance(),
    )
    .into_result()
    .expect("allowed");
    assert_eq!(
        (proof.actor(), proof.impersonator()),
        (Some(OTHER), Some(ME))
    );
}

#[test]
fn look_and_feel_fields_for_an_application_admin() {
    let aa = SiteRole::ApplicationAdmin;
    let change = |field| Action::ChangeSetting {
        setting: Setting::LookAndFeel,
        field,
    };
    denied(
        aa,
        change(Some("system_email_address")),
        Resource::instance(),
    );
    denied(aa, change(Some("login_message")), Resource::instance());
    let a = allowed(aa, change(Some("instance_name")), Resource::instance());
    assert!(!a.has(Bound::SomeFieldsReadOnly));
    let a = allowed(aa, change(None), Resource::instance());
    assert!(a.has(Bound::SomeFieldsReadOnly));
    assert_eq!(a.column(), Some(Column::ApplicationAdmin));
    // The Site Admin changes every field.
    let a = allowed(
        SiteRole::SiteAdmin,
        change(Some("login_message")),
        Resource::instance(),
    );
    assert_eq!(a.bounds().count(), 0);
    let _ = allowed(SiteRole::SiteAdmin, change(None), Resource::instance());
}

#[test]
fn only_a_site_admin_sets_a_custom_file_root() {
    let _ = allowed(
        SiteRole::SiteAdmin,
        Activity::SetCustomFileRoot,
        Resource::instance(),
    );
    for role in [SiteRole::ApplicationAdmin, SiteRole::None] {
        denied(
            role,
            Activity::SetCustomFileRoot,
            Resource::instance().scoped(true, true),
        );
        let a = allowed(
            role,
            Activity::UpdateProjectSettings,
            Resource::instance().scoped(true, true),
        );
        assert!(a.has(Bound::NoCustomFileRoot));
    }
    assert!(
        allowed(
            SiteRole::ApplicationAdmin,
            Activity::CreateProject,
            Resource::instance()
        )
        .has(Bound::NoCustomFileRoot)
    );
    assert!(
        !allowed(
            SiteRole::SiteAdmin,
            Activity::CreateProject,
            Resource::instance()
        )
        .has(Bound::NoCustomFileRoot)
    );
}
