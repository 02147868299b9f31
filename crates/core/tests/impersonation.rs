//! Impersonation never adds rights (`spec/roles.md` §2, issues 6 and 11): for random chains of
//! (impersonator, target, actions), every decision taken while impersonating is allowed only if
//! the impersonator, acting as themselves on the same resource *with their own scoped facts*,
//! would be allowed too — and only if the impersonated side would be, with *its* facts — except
//! the break-glass of the Impersonating Troubleshooter, whose every allowed decision carries
//! `Bound::BreakGlass`. Each side's project/folder admin facts are drawn independently, so a
//! scoped fact of one side can never satisfy the other side's check. And while impersonating,
//! nothing but viewing may be aimed at the impersonator's own account.

use cryowarden_core::{
    Action, Activity, Actor, Bound, DataAction, DataScope, Impersonation, ImpersonationScope,
    ImportPolicy, LabRole, ProjectRole, Resource, ScopedFacts, Setting, SiteRole, TargetUser,
    UserId, authorize,
};
use proptest::prelude::*;

/// The impersonator is always user 1; users 2..=4 are the others.
const BY: UserId = UserId(1);
/// The phantom target of a role impersonation: no real user has id 0.
const ROLE: UserId = UserId(0);

fn every_action() -> Vec<Action> {
    let mut actions: Vec<Action> = Activity::ALL.iter().map(|a| Action::Activity(*a)).collect();
    for s in Setting::ALL {
        actions.push(Action::ReadSetting(*s));
        actions.push(Action::ChangeSetting {
            setting: *s,
            field: None,
        });
    }
    for f in [
        "instance_name",
        "banner",
        "login_message",
        "system_email_address",
    ] {
        actions.push(Action::ChangeSetting {
            setting: Setting::LookAndFeel,
            field: Some(f),
        });
    }
    for from in SiteRole::ALL {
        for to in SiteRole::ALL {
            if from != to {
                actions.push(Action::ChangeSiteRole {
                    from: *from,
                    to: *to,
                });
            }
        }
    }
    actions.extend(DataAction::ALL.iter().map(|d| Action::Data(*d)));
    actions
}

fn role() -> impl Strategy<Value = SiteRole> {
    proptest::sample::select(SiteRole::ALL.to_vec())
}

fn data_scope() -> impl Strategy<Value = DataScope> {
    (
        proptest::option::of(proptest::sample::select(LabRole::ALL.to_vec())),
        proptest::sample::select(ImportPolicy::ALL.to_vec()),
        proptest::option::of(proptest::sample::select(ProjectRole::ALL.to_vec())),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(lab_role, import_policy, project_role, lab_members_read, live_data_management)| {
                DataScope {
                    lab_role,
                    import_policy,
                    project_role,
                    lab_members_read,
                    live_data_management,
                }
            },
        )
}

/// Any resource: no target, or a target among users 1..=4 with any role; any scope flags of
/// the acting side and, independently, of the impersonator; any data standing.
fn resource() -> impl Strategy<Value = Resource> {
    (
        proptest::option::of((1i64..=4, role())),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        data_scope(),
    )
        .prop_map(
            |(target, project_admin, folder_admin, by_pa, by_fa, data)| Resource {
                target: target.map(|(id, site_role)| TargetUser {
                    id: UserId(id),
                    site_role,
                }),
                project_admin,
                folder_admin,
                data,
                impersonator: ScopedFacts {
                    project_admin: by_pa,
                    folder_admin: by_fa,
                },
            },
        )
}

/// The resource as one side alone sees it: that side's scoped facts only.
fn with_facts(resource: &Resource, facts: ScopedFacts) -> Resource {
    Resource {
        project_admin: facts.project_admin,
        folder_admin: facts.folder_admin,
        impersonator: ScopedFacts::default(),
        ..*resource
    }
}

#[derive(Clone, Debug)]
struct Chain {
    by_role: SiteRole,
    /// `None`: impersonate a role rather than a user.
    target: Option<UserId>,
    target_role: SiteRole,
    /// The facts of the start request (the impersonator is project/folder admin of the target).
    start_project_admin: bool,
    start_folder_admin: bool,
    steps: Vec<(usize, Resource)>,
}

fn chain() -> impl Strategy<Value = Chain> {
    let n = every_action().len();
    (
        role(),
        proptest::option::of(2i64..=4),
        role(),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec((0..n, resource()), 1..24),
    )
        .prop_map(|(by_role, target, target_role, pa, fa, steps)| Chain {
            by_role,
            target: target.map(UserId),
            target_role,
            start_project_admin: pa,
            start_folder_admin: fa,
            steps,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn impersonating_is_never_more_permissive_than_the_impersonator(c in chain()) {
        let actions = every_action();
        let me = Actor::new(BY, c.by_role);
        let start = Resource::user(c.target.unwrap_or(ROLE), c.target_role)
            .scoped(c.start_project_admin, c.start_folder_admin);
        let Ok(proof) = authorize(&me, Activity::Impersonate.into(), &start).into_result() else {
            return Ok(());
        };
        let scope = ImpersonationScope::granted_by(&proof).expect("an allowed impersonate grants a scope");
        // A role impersonation keeps the impersonator's identity with the role's rights.
        let effective = Actor {
            user: c.target.unwrap_or(BY),
            site_role: c.target_role,
            impersonation: Some(Impersonation { by: BY, by_role: c.by_role, scope }),
        };
        let alone = Actor::new(effective.user, c.target_role);
        for (i, resource) in &c.steps {
            let action = actions[*i];
            let decision = authorize(&effective, action, resource);
            let Ok(allowed) = decision.into_result() else { continue };
            prop_assert_eq!(allowed.impersonator(), Some(BY), "every decision names the impersonator");
            let theirs = with_facts(resource, ScopedFacts { project_admin: resource.project_admin, folder_admin: resource.folder_admin });
            let mine = with_facts(resource, resource.impersonator);
            prop_assert!(
                authorize(&alone, action, &theirs).is_allowed(),
                "{:?} as {:?} allowed {} beyond the impersonated side's own rights", c.by_role, c.target_role, action.name()
            );
            prop_assert!(
                resource.target.is_none_or(|t| t.id != BY)
                    || matches!(action, Action::Activity(Activity::ViewUser) | Action::ReadSetting(_)),
                "{:?} as {:?} ({:?}) allowed {} on the impersonator's own account", c.by_role, c.target_role, scope, action.name()
            );
            if scope == ImpersonationScope::BreakGlass {
                prop_assert!(allowed.has(Bound::BreakGlass), "break-glass decisions must say so");
                prop_assert_eq!(c.target_role, SiteRole::SiteAdmin);
                prop_assert_eq!(c.by_role, SiteRole::ImpersonatingTroubleshooter);
            } else {
                prop_assert!(
                    authorize(&me, action, &mine).is_allowed(),
                    "{:?} impersonating {:?} ({:?}) gained {} on {:?}: the other side's scoped facts served the impersonator",
                    c.by_role, c.target_role, scope, action.name(), resource
                );
            }
        }
        // Nobody starts a second impersonation from inside one.
        let again = Resource::user(UserId(4), SiteRole::None);
        prop_assert!(!authorize(&effective, Activity::Impersonate.into(), &again).is_allowed());
    }
}

#[test]
fn an_application_admin_impersonating_a_site_admin_does_not_gain_site_admin_rights() {
    let me = Actor::new(BY, SiteRole::ApplicationAdmin);
    let head = Resource::user(UserId(2), SiteRole::SiteAdmin);
    let proof = authorize(&me, Activity::Impersonate.into(), &head)
        .into_result()
        .expect("AAs impersonate");
    assert!(proof.has(Bound::NoSiteAdminRights));
    let scope = ImpersonationScope::granted_by(&proof).unwrap();
    let as_head = Actor {
        user: UserId(2),
        site_role: SiteRole::SiteAdmin,
        impersonation: Some(Impersonation {
            by: BY,
            by_role: SiteRole::ApplicationAdmin,
            scope,
        }),
    };
    // A Site Admin sets storage roots; an Application Admin has no access to them, so neither
    // has the AA impersonating the Site Admin.
    let roots = Action::ChangeSetting {
        setting: Setting::StorageRoots,
        field: None,
    };
    assert!(
        authorize(
            &Actor::new(UserId(2), SiteRole::SiteAdmin),
            roots,
            &Resource::instance()
        )
        .is_allowed()
    );
    let denied = authorize(&as_head, roots, &Resource::instance())
        .into_result()
        .unwrap_err();
    assert_eq!(denied.rule, "impersonation-ceiling");
    assert!(
        denied.reason.contains("Application Admin"),
        "{}",
        denied.reason
    );
}

#[test]
fn the_impersonating_troubleshooter_breaks_glass_and_every_decision_says_so() {
    let me = Actor::new(BY, SiteRole::ImpersonatingTroubleshooter);
    let head = Resource::user(UserId(2), SiteRole::SiteAdmin);
    let proof = authorize(&me, Activity::Impersonate.into(), &head)
        .into_result()
        .expect("break-glass");
    assert_eq!(
        ImpersonationScope::granted_by(&proof),
        Some(ImpersonationScope::BreakGlass)
    );
    let as_head = Actor {
        user: UserId(2),
        site_role: SiteRole::SiteAdmin,
        impersonation: Some(Impersonation {
            by: BY,
            by_role: SiteRole::ImpersonatingTroubleshooter,
            scope: ImpersonationScope::BreakGlass,
        }),
    };
    let change = Action::ChangeSetting {
        setting: Setting::LookAndFeel,
        field: Some("system_email_address"),
    };
    assert!(
        !authorize(&me, change, &Resource::instance()).is_allowed(),
        "not by the troubleshooter's own right"
    );
    let allowed = authorize(&as_head, change, &Resource::instance())
        .into_result()
        .expect("acts as the Site Admin");
    assert!(allowed.has(Bound::BreakGlass));
    assert_eq!(allowed.impersonator(), Some(BY));
    // An ordinary user cannot be the way in.
    assert!(
        !authorize(
            &me,
            Activity::Impersonate.into(),
            &Resource::user(UserId(3), SiteRole::None)
        )
        .is_allowed()
    );
}

#[test]
fn a_project_admin_impersonating_loses_site_roles_and_keeps_only_shared_standing() {
    // A Troubleshooter who is project admin of the target's project impersonates them: the
    // Troubleshooter's site-wide sight is off while they do.
    let me = Actor::new(BY, SiteRole::Troubleshooter);
    let member = Resource::user(UserId(3), SiteRole::None).scoped(true, false);
    let proof = authorize(&me, Activity::Impersonate.into(), &member)
        .into_result()
        .expect("project admins may");
    assert_eq!(
        ImpersonationScope::granted_by(&proof),
        Some(ImpersonationScope::Scoped)
    );
    let as_member = Actor {
        user: UserId(3),
        site_role: SiteRole::None,
        impersonation: Some(Impersonation {
            by: BY,
            by_role: SiteRole::Troubleshooter,
            scope: ImpersonationScope::Scoped,
        }),
    };
    assert!(
        authorize(
            &me,
            Action::ReadSetting(Setting::AuditLog),
            &Resource::instance()
        )
        .is_allowed()
    );
    assert!(
        !authorize(
            &as_member,
            Action::ReadSetting(Setting::AuditLog),
            &Resource::instance()
        )
        .is_allowed()
    );
    // Standing both share: the weaker role of each kind.
    let target = DataScope {
        lab_role: Some(LabRole::Manager),
        project_role: Some(ProjectRole::Editor),
        live_data_management: true,
        lab_members_read: true,
        ..DataScope::default()
    };
    let mine = DataScope {
        lab_role: Some(LabRole::Member),
        project_role: Some(ProjectRole::ProjectAdmin),
        ..target
    };
    let shared = target.intersect(mine);
    assert_eq!(
        (shared.lab_role, shared.project_role),
        (Some(LabRole::Member), Some(ProjectRole::Editor))
    );
    let outsider = DataScope {
        lab_role: None,
        project_role: None,
        ..DataScope::default()
    };
    let none = target.intersect(outsider);
    assert_eq!(
        (none.lab_role, none.project_role, none.live_data_management),
        (None, None, false)
    );
    let view = authorize(
        &as_member,
        DataAction::ViewProject.into(),
        &Resource::data(none),
    )
    .into_result();
    assert!(
        view.is_err_and(|d| d.conceal),
        "outside the impersonator's standing the project does not exist"
    );
}
