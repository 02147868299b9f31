//! The data rules of `crate::data` (lab data and project contents), checked over every role and
//! every combination of lab role, project role, import policy and flags.

use cryowarden_core::{
    Action, Actor, DataAction, DataScope, Decision, ImportPolicy, LabRole, ProjectRole, Resource,
    SiteRole, UserId, authorize,
};

fn scopes() -> Vec<DataScope> {
    let mut out = Vec::new();
    for lab_role in [None, Some(LabRole::Member), Some(LabRole::Manager)] {
        for &import_policy in ImportPolicy::ALL {
            for project_role in [
                None,
                Some(ProjectRole::Reader),
                Some(ProjectRole::Editor),
                Some(ProjectRole::ProjectAdmin),
            ] {
                for lab_members_read in [false, true] {
                    for live_data_management in [false, true] {
                        out.push(DataScope {
                            lab_role,
                            import_policy,
                            project_role,
                            lab_members_read,
                            live_data_management,
                        });
                    }
                }
            }
        }
    }
    out
}

fn decide(role: SiteRole, action: DataAction, scope: DataScope) -> Decision {
    authorize(
        &Actor::new(UserId(7), role),
        Action::Data(action),
        &Resource::data(scope),
    )
}

#[test]
fn facility_staff_may_do_everything_with_any_labs_data() {
    for role in [SiteRole::SiteAdmin, SiteRole::ApplicationAdmin] {
        for &action in DataAction::ALL {
            for scope in scopes() {
                assert!(
                    decide(role, action, scope).is_allowed(),
                    "{role} {action} {scope:?}"
                );
            }
        }
    }
}

#[test]
fn without_any_standing_every_data_action_is_concealed() {
    let stranger = DataScope {
        lab_role: None,
        project_role: None,
        ..DataScope::default()
    };
    for &action in DataAction::ALL {
        for lab_members_read in [false, true] {
            for live_data_management in [false, true] {
                let scope = DataScope {
                    lab_members_read,
                    live_data_management,
                    ..stranger
                };
                match decide(SiteRole::None, action, scope) {
                    Decision::Deny(d) => assert!(
                        d.conceal,
                        "{action}: a stranger must get 'not found': {d:?}"
                    ),
                    Decision::Allow(_) => panic!("{action} allowed to a stranger"),
                }
            }
        }
    }
}

#[test]
fn import_follows_the_labs_policy() {
    let cases = [
        (ImportPolicy::AllMembers, LabRole::Member, true),
        (ImportPolicy::AllMembers, LabRole::Manager, true),
        (ImportPolicy::Managers, LabRole::Member, false),
        (ImportPolicy::Managers, LabRole::Manager, true),
        (ImportPolicy::FacilityStaff, LabRole::Member, false),
        (ImportPolicy::FacilityStaff, LabRole::Manager, false),
    ];
    for (policy, lab_role, allowed) in cases {
        let d = decide(
            SiteRole::None,
            DataAction::ImportData,
            DataScope::lab(Some(lab_role), policy),
        );
        assert_eq!(d.is_allowed(), allowed, "{policy} {lab_role}");
        if let Decision::Deny(d) = d {
            assert!(!d.conceal, "a lab's own member may learn why: {d:?}");
            assert_eq!(d.rule, "import-policy");
        }
    }
    for role in [
        SiteRole::Troubleshooter,
        SiteRole::ImpersonatingTroubleshooter,
    ] {
        assert!(
            !decide(
                role,
                DataAction::ImportData,
                DataScope::lab(None, ImportPolicy::AllMembers)
            )
            .is_allowed()
        );
    }
}

#[test]
fn project_rules_for_ordinary_users_match_the_table() {
    for scope in scopes() {
        let sees =
            scope.project_role.is_some() || (scope.lab_role.is_some() && scope.lab_members_read);
        let edits = matches!(
            scope.project_role,
            Some(ProjectRole::ProjectAdmin | ProjectRole::Editor)
        );
        let manages = scope.project_role == Some(ProjectRole::ProjectAdmin)
            || (sees && scope.live_data_management && scope.lab_role.is_some());
        for (action, expected) in [
            (DataAction::ViewProject, sees),
            (DataAction::EditProject, edits),
            (DataAction::ManageProjectData, manages),
            (DataAction::CreateLabProject, scope.lab_role.is_some()),
        ] {
            let d = decide(SiteRole::None, action, scope);
            assert_eq!(d.is_allowed(), expected, "{action} {scope:?}");
            if let Decision::Deny(d) = d {
                let visible = if action == DataAction::CreateLabProject {
                    scope.lab_role.is_some()
                } else {
                    sees
                };
                assert_eq!(
                    d.conceal, !visible,
                    "{action} {scope:?}: conceal only what the actor cannot see"
                );
            }
        }
    }
}

#[test]
fn troubleshooters_see_projects_but_change_nothing() {
    for role in [
        SiteRole::Troubleshooter,
        SiteRole::ImpersonatingTroubleshooter,
    ] {
        for scope in scopes() {
            assert!(decide(role, DataAction::ViewProject, scope).is_allowed());
            if scope.project_role.is_none() && scope.lab_role.is_none() {
                for action in [
                    DataAction::EditProject,
                    DataAction::ManageProjectData,
                    DataAction::CreateLabProject,
                ] {
                    match decide(role, action, scope) {
                        Decision::Deny(d) => {
                            assert!(!d.conceal, "{role} sees the project, so 403: {d:?}");
                        }
                        Decision::Allow(_) => panic!("{role} {action} allowed without standing"),
                    }
                }
            }
        }
    }
}

#[test]
fn a_project_admin_holds_the_project_admin_column_for_that_project() {
    let scope = DataScope {
        project_role: Some(ProjectRole::ProjectAdmin),
        ..DataScope::default()
    };
    let actor = Actor::new(UserId(7), SiteRole::None);
    let create_ws = Action::Activity(cryowarden_core::Activity::CreateWorkspace);
    assert!(authorize(&actor, create_ws, &Resource::data(scope)).is_allowed());
    let editor = DataScope {
        project_role: Some(ProjectRole::Editor),
        ..DataScope::default()
    };
    assert!(!authorize(&actor, create_ws, &Resource::data(editor)).is_allowed());
}

#[test]
fn every_action_name_parses_back() {
    use cryowarden_core::{Activity, Setting};
    let mut actions: Vec<Action> = Activity::ALL.iter().map(|a| Action::Activity(*a)).collect();
    actions.extend(DataAction::ALL.iter().map(|d| Action::Data(*d)));
    for s in Setting::ALL {
        actions.push(Action::ReadSetting(*s));
        actions.push(Action::ChangeSetting {
            setting: *s,
            field: None,
        });
    }
    actions.push(Action::ChangeSetting {
        setting: Setting::LookAndFeel,
        field: Some("system_email_address"),
    });
    for from in SiteRole::ALL {
        for to in SiteRole::ALL {
            actions.push(Action::ChangeSiteRole {
                from: *from,
                to: *to,
            });
        }
    }
    for a in actions {
        assert_eq!(Action::parse(&a.name()), Some(a), "{}", a.name());
    }
    for bad in [
        "",
        "nope",
        "read-setting:nope",
        "change-setting:look-and-feel.nope",
        "change-site-role:none",
        "change-site-role:x->none",
    ] {
        assert_eq!(Action::parse(bad), None, "{bad}");
    }
}
