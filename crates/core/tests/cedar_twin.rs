//! A twin of the tables: `tests/policies.cedar`, written by hand from `spec/roles.md`, must agree
//! with `cryowarden_core::authorize` (which decides from `spec/permissions.toml`) on every request:
//! the whole request space once, then 100,000 seeded random requests.

use std::collections::HashMap;

use cedar_policy::{
    Authorizer, Context, Entities, EntityUid, PolicySet, Request, RestrictedExpression,
};
use cryowarden_core::{Action, Activity, Actor, Resource, Setting, SiteRole, UserId, authorize};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

#[path = "support/cedar.rs"]
mod cedar_support;
use cedar_support::{policies, role_entities, uid};

const ME: UserId = UserId(1);
const OTHER: UserId = UserId(2);

/// The fields a change of look-and-feel may name (what the row `holds`), and none.
const FIELDS: &[Option<&str>] = &[
    None,
    Some("instance_name"),
    Some("banner"),
    Some("login_message"),
    Some("system_email_address"),
];

#[derive(Clone, Copy, Debug)]
enum Target {
    None,
    Oneself,
    Other(SiteRole),
}

#[derive(Clone, Copy, Debug)]
struct Case {
    role: SiteRole,
    action: Action,
    target: Target,
    project_admin: bool,
    folder_admin: bool,
}

impl Case {
    fn resource(&self) -> Resource {
        let r = match self.target {
            Target::None => Resource::instance(),
            Target::Oneself => Resource::user(ME, self.role),
            Target::Other(role) => Resource::user(OTHER, role),
        };
        r.scoped(self.project_admin, self.folder_admin)
    }
}

/// The Cedar side: the policies, one authorizer, and what each request reuses.
struct Twin {
    policies: PolicySet,
    authorizer: Authorizer,
    principal: EntityUid,
    resource: EntityUid,
    /// One entity store per site role: the principal with its `site_role`.
    entities: HashMap<SiteRole, Entities>,
    actions: HashMap<String, EntityUid>,
}

impl Twin {
    fn new() -> Twin {
        let policies = policies();
        let principal = uid(r#"User::"actor""#);
        let entities = role_entities(&principal);
        let mut names: Vec<String> = Activity::ALL
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        names.extend(["read-setting", "change-setting", "change-site-role"].map(String::from));
        let actions = names
            .into_iter()
            .map(|n| (n.clone(), uid(&format!("Action::{n:?}"))))
            .collect();
        Twin {
            policies,
            authorizer: Authorizer::new(),
            principal,
            resource: uid(r#"Resource::"r""#),
            entities,
            actions,
        }
    }

    fn request(&self, case: &Case) -> Request {
        let (name, setting, field, from, to) = match case.action {
            Action::Activity(a) => (a.as_str(), "", "", "", ""),
            Action::ReadSetting(s) => ("read-setting", s.as_str(), "", "", ""),
            Action::ChangeSetting { setting, field } => (
                "change-setting",
                setting.as_str(),
                field.unwrap_or(""),
                "",
                "",
            ),
            Action::ChangeSiteRole { from, to } => {
                ("change-site-role", "", "", from.as_str(), to.as_str())
            }
            Action::Data(_) => {
                unreachable!(
                    "the twin reads the tables of spec/roles.md; data rules: tests/data_rules.rs"
                )
            }
        };
        let (target_role, target_is_self) = match case.target {
            Target::None => ("", false),
            Target::Oneself => (case.role.as_str(), true),
            Target::Other(r) => (r.as_str(), false),
        };
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let context = Context::from_pairs([
            ("setting".to_owned(), s(setting)),
            ("field".to_owned(), s(field)),
            ("target_role".to_owned(), s(target_role)),
            (
                "target_is_self".to_owned(),
                RestrictedExpression::new_bool(target_is_self),
            ),
            (
                "project_admin".to_owned(),
                RestrictedExpression::new_bool(case.project_admin),
            ),
            (
                "folder_admin".to_owned(),
                RestrictedExpression::new_bool(case.folder_admin),
            ),
            ("from_role".to_owned(), s(from)),
            ("to_role".to_owned(), s(to)),
        ])
        .expect("context");
        Request::new(
            self.principal.clone(),
            self.actions[name].clone(),
            self.resource.clone(),
            context,
            None,
        )
        .expect("request")
    }

    /// Cedar's decision, or a description of why it cannot be trusted (an evaluation error).
    fn allows(&self, case: &Case) -> Result<(bool, Vec<String>), String> {
        let response = self.authorizer.is_authorized(
            &self.request(case),
            &self.policies,
            &self.entities[&case.role],
        );
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(std::string::ToString::to_string)
            .collect();
        if !errors.is_empty() {
            return Err(format!("Cedar evaluation errors: {errors:?}"));
        }
        let reasons = response
            .diagnostics()
            .reason()
            .map(|id| {
                self.policies
                    .annotation(id, "id")
                    .map_or_else(|| id.to_string(), str::to_owned)
            })
            .collect();
        Ok((
            response.decision() == cedar_policy::Decision::Allow,
            reasons,
        ))
    }
}

/// Compares the twin with the core on `cases`; returns (checked, allowed).
fn compare(twin: &Twin, cases: impl IntoIterator<Item = Case>) -> (usize, usize) {
    let mut checked = 0;
    let mut allowed = 0;
    let mut mismatches = Vec::new();
    for case in cases {
        checked += 1;
        let decision = authorize(&Actor::new(ME, case.role), case.action, &case.resource());
        let core = decision.is_allowed();
        match twin.allows(&case) {
            Ok((cedar, _)) if cedar == core => allowed += core as usize,
            Ok((cedar, reasons)) => mismatches.push(format!(
                "{case:?}: Cedar {} (policies {reasons:?}), authorize {decision:?}",
                if cedar { "allows" } else { "denies" }
            )),
            Err(e) => mismatches.push(format!("{case:?}: {e}")),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {checked} requests: tests/policies.cedar and authorize() disagree (first 30):\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    (checked, allowed)
}

fn all_actions() -> Vec<Action> {
    let mut actions: Vec<Action> = Activity::ALL.iter().map(|a| Action::Activity(*a)).collect();
    for setting in Setting::ALL.iter().copied() {
        actions.push(Action::ReadSetting(setting));
        for field in FIELDS {
            actions.push(Action::ChangeSetting {
                setting,
                field: *field,
            });
        }
    }
    actions
}

#[test]
fn cedar_twin_agrees_on_the_whole_request_space() {
    let twin = Twin::new();
    let mut targets = vec![Target::None, Target::Oneself];
    targets.extend(SiteRole::ALL.iter().map(|r| Target::Other(*r)));
    let mut cases = Vec::new();
    for role in SiteRole::ALL.iter().copied() {
        for (project_admin, folder_admin) in
            [(false, false), (true, false), (false, true), (true, true)]
        {
            for target in &targets {
                let mut actions = all_actions();
                // A site-role change is of a user, from the role they hold.
                let from = match target {
                    Target::None => None,
                    Target::Oneself => Some(role),
                    Target::Other(r) => Some(*r),
                };
                if let Some(from) = from {
                    actions.extend(
                        SiteRole::ALL
                            .iter()
                            .map(|to| Action::ChangeSiteRole { from, to: *to }),
                    );
                }
                for action in actions {
                    cases.push(Case {
                        role,
                        action,
                        target: *target,
                        project_admin,
                        folder_admin,
                    });
                }
            }
        }
    }
    let (checked, allowed) = compare(&twin, cases);
    println!("cedar twin, whole space: {checked} requests agree ({allowed} allowed)");
    assert!(checked > 25_000, "{checked}");
}

#[test]
fn cedar_twin_agrees_on_100k_random_requests() {
    const N: usize = 100_000;
    let twin = Twin::new();
    let mut rng = StdRng::seed_from_u64(0x0c7e_0e1a);
    let activities = Activity::ALL;
    let settings = Setting::ALL;
    let cases = (0..N).map(|_| {
        let role = *SiteRole::ALL.choose(&mut rng).unwrap();
        let mut target = match rng.random_range(0..10) {
            0..2 => Target::None,
            2..4 => Target::Oneself,
            _ => Target::Other(*SiteRole::ALL.choose(&mut rng).unwrap()),
        };
        let action = match rng.random_range(0..100) {
            0..25 => Action::ReadSetting(*settings.choose(&mut rng).unwrap()),
            25..50 => Action::ChangeSetting {
                setting: *settings.choose(&mut rng).unwrap(),
                field: *FIELDS.choose(&mut rng).unwrap(),
            },
            50..90 => Action::Activity(*activities.choose(&mut rng).unwrap()),
            _ => {
                if matches!(target, Target::None) {
                    target = Target::Other(*SiteRole::ALL.choose(&mut rng).unwrap());
                }
                let from = match target {
                    Target::Other(r) => r,
                    _ => role,
                };
                Action::ChangeSiteRole {
                    from,
                    to: *SiteRole::ALL.choose(&mut rng).unwrap(),
                }
            }
        };
        Case {
            role,
            action,
            target,
            project_admin: rng.random_bool(0.3),
            folder_admin: rng.random_bool(0.3),
        }
    });
    let (checked, allowed) = compare(&twin, cases);
    println!("cedar twin, random: {checked} requests agree ({allowed} allowed)");
    assert_eq!(checked, N);
    // Both answers are well represented, or the comparison would say little.
    assert!(
        allowed > N / 10 && allowed < N * 9 / 10,
        "{allowed} of {N} allowed"
    );
}
