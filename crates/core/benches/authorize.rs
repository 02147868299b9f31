//! The cost of one authorization decision as the server makes it: look up the relational facts in
//! an in-memory directory (100,000 users, 10,000 projects), then decide. Two deciders over the
//! same requests: `authorize` (the compiled table) and the Cedar reading of the same rules
//! (`tests/policies.cedar`). After criterion, prints the median ns per request of each, measured
//! here over the same request list, and `ratio cedar/table`.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::time::{Duration, Instant};

use cedar_policy::{
    Authorizer, Context, Entities, EntityUid, PolicySet, Request, RestrictedExpression,
};
use criterion::Criterion;
use cryowarden_core::{
    Action, Activity, Actor, Impersonation, ImpersonationScope, Resource, Setting, SiteRole,
    UserId, authorize,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

#[path = "../tests/support/cedar.rs"]
mod cedar_support;
use cedar_support::{policies, role_entities, uid};

const USERS: i64 = 100_000;
const PROJECTS: u32 = 10_000;
const MEMBERS_PER_PROJECT: usize = 10;
const REQUESTS: usize = 100_000;
const BATCH: usize = 1_000;

type ProjectId = u32;

/// What the server keeps loaded to answer the relational questions of a decision.
struct Directory {
    roles: HashMap<UserId, SiteRole>,
    memberships: HashMap<UserId, Vec<ProjectId>>,
    project_admins: HashSet<(ProjectId, UserId)>,
    folder_admins: HashSet<(ProjectId, UserId)>,
    /// Project / folder admins of any project, for instance-wide actions.
    any_project_admin: HashSet<UserId>,
    any_folder_admin: HashSet<UserId>,
    /// project -> (admin, members), to aim requests inside projects.
    projects: Vec<(UserId, Vec<UserId>)>,
}

impl Directory {
    fn new(rng: &mut StdRng) -> Directory {
        let roles = (0..USERS)
            .map(|i| {
                let role = match rng.random_range(0..1000) {
                    0..2 => SiteRole::SiteAdmin,
                    2..12 => SiteRole::ApplicationAdmin,
                    12..22 => SiteRole::Troubleshooter,
                    22..25 => SiteRole::ImpersonatingTroubleshooter,
                    _ => SiteRole::None,
                };
                (UserId(i), role)
            })
            .collect();
        let mut d = Directory {
            roles,
            memberships: HashMap::new(),
            project_admins: HashSet::new(),
            folder_admins: HashSet::new(),
            any_project_admin: HashSet::new(),
            any_folder_admin: HashSet::new(),
            projects: Vec::new(),
        };
        for p in 0..PROJECTS {
            let admin = UserId(rng.random_range(0..USERS));
            let mut members = vec![admin];
            members.extend((0..MEMBERS_PER_PROJECT).map(|_| UserId(rng.random_range(0..USERS))));
            let folder_admin = members[rng.random_range(1..members.len())];
            for m in &members {
                d.memberships.entry(*m).or_default().push(p);
            }
            d.project_admins.insert((p, admin));
            d.folder_admins.insert((p, folder_admin));
            d.any_project_admin.insert(admin);
            d.any_folder_admin.insert(folder_admin);
            d.projects.push((admin, members));
        }
        d
    }

    /// The facts a decision needs: the actor's role, the target's role, and whether the actor
    /// administers a project (workspace) the target is in.
    fn facts(&self, req: &Req) -> (Actor, Action, Resource) {
        let actor = Actor::new(req.actor, self.roles[&req.actor]);
        let resource = match req.target {
            None => Resource::instance().scoped(
                self.any_project_admin.contains(&req.actor),
                self.any_folder_admin.contains(&req.actor),
            ),
            Some(t) => {
                let projects = self.memberships.get(&t).map_or(&[][..], Vec::as_slice);
                let pa = projects
                    .iter()
                    .any(|p| self.project_admins.contains(&(*p, req.actor)));
                let fa = projects
                    .iter()
                    .any(|p| self.folder_admins.contains(&(*p, req.actor)));
                Resource::user(t, self.roles[&t]).scoped(pa, fa)
            }
        };
        let action = match req.action {
            ReqAction::Plain(a) => a,
            ReqAction::ChangeRole { to } => {
                let from = resource.target.map_or(actor.site_role, |t| t.site_role);
                Action::ChangeSiteRole { from, to }
            }
        };
        (actor, action, resource)
    }
}

#[derive(Clone, Copy)]
enum ReqAction {
    Plain(Action),
    /// A site-role change; `from` is the target's role, looked up with the other facts.
    ChangeRole {
        to: SiteRole,
    },
}

/// A request as it reaches the server: who, what, on whom.
#[derive(Clone, Copy)]
struct Req {
    actor: UserId,
    action: ReqAction,
    target: Option<UserId>,
}

const FIELDS: &[Option<&str>] = &[
    None,
    Some("instance_name"),
    Some("banner"),
    Some("login_message"),
    Some("system_email_address"),
];

fn requests(dir: &Directory, rng: &mut StdRng) -> Vec<Req> {
    (0..REQUESTS)
        .map(|_| {
            // A third of the requests come from a project admin, aimed inside their project.
            let (actor, project_target) = if rng.random_bool(0.3) {
                let (admin, members) = dir.projects.choose(rng).unwrap();
                (*admin, Some(*members.choose(rng).unwrap()))
            } else {
                (UserId(rng.random_range(0..USERS)), None)
            };
            let mut target = match rng.random_range(0..10) {
                0 => None,
                1 => Some(actor),
                _ => project_target.or_else(|| Some(UserId(rng.random_range(0..USERS)))),
            };
            let action = match rng.random_range(0..100) {
                0..20 => ReqAction::Plain(Action::ReadSetting(*Setting::ALL.choose(rng).unwrap())),
                20..35 => ReqAction::Plain(Action::ChangeSetting {
                    setting: *Setting::ALL.choose(rng).unwrap(),
                    field: *FIELDS.choose(rng).unwrap(),
                }),
                35..90 => ReqAction::Plain(Action::Activity(*Activity::ALL.choose(rng).unwrap())),
                _ => {
                    target = target.or(Some(UserId(rng.random_range(0..USERS))));
                    ReqAction::ChangeRole {
                        to: *SiteRole::ALL.choose(rng).unwrap(),
                    }
                }
            };
            Req {
                actor,
                action,
                target,
            }
        })
        .collect()
}

/// The Cedar decider: the policy set, one authorizer, one principal entity store per site role.
struct Cedar {
    policies: PolicySet,
    authorizer: Authorizer,
    principal: EntityUid,
    resource: EntityUid,
    entities: HashMap<SiteRole, Entities>,
    activity_actions: Vec<EntityUid>,
    read_setting: EntityUid,
    change_setting: EntityUid,
    change_site_role: EntityUid,
}

impl Cedar {
    fn new() -> Cedar {
        let principal = uid(r#"User::"actor""#);
        let entities = role_entities(&principal);
        Cedar {
            policies: policies(),
            authorizer: Authorizer::new(),
            principal,
            resource: uid(r#"Resource::"r""#),
            entities,
            activity_actions: Activity::ALL
                .iter()
                .map(|a| uid(&format!("Action::{:?}", a.as_str())))
                .collect(),
            read_setting: uid(r#"Action::"read-setting""#),
            change_setting: uid(r#"Action::"change-setting""#),
            change_site_role: uid(r#"Action::"change-site-role""#),
        }
    }

    fn is_allowed(&self, actor: &Actor, action: Action, resource: &Resource) -> bool {
        let (action_uid, setting, field, from, to) = match action {
            Action::Activity(a) => (&self.activity_actions[a.index()], "", "", "", ""),
            Action::ReadSetting(s) => (&self.read_setting, s.as_str(), "", "", ""),
            Action::ChangeSetting { setting, field } => (
                &self.change_setting,
                setting.as_str(),
                field.unwrap_or(""),
                "",
                "",
            ),
            Action::ChangeSiteRole { from, to } => {
                (&self.change_site_role, "", "", from.as_str(), to.as_str())
            }
            Action::Data(_) => {
                unreachable!(
                    "the twin reads the tables of spec/roles.md; data rules: tests/data_rules.rs"
                )
            }
        };
        let target_role = resource.target.map_or("", |t| t.site_role.as_str());
        let target_is_self = resource.target.is_some_and(|t| t.id == actor.user);
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
                RestrictedExpression::new_bool(resource.project_admin),
            ),
            (
                "folder_admin".to_owned(),
                RestrictedExpression::new_bool(resource.folder_admin),
            ),
            ("from_role".to_owned(), s(from)),
            ("to_role".to_owned(), s(to)),
        ])
        .expect("context");
        let request = Request::new(
            self.principal.clone(),
            action_uid.clone(),
            self.resource.clone(),
            context,
            None,
        )
        .expect("request");
        let response = self.authorizer.is_authorized(
            &request,
            &self.policies,
            &self.entities[&actor.site_role],
        );
        response.decision() == cedar_policy::Decision::Allow
    }
}

struct World {
    dir: Directory,
    reqs: Vec<Req>,
    cedar: Cedar,
}

fn decide_table(w: &World, req: &Req) -> bool {
    let (actor, action, resource) = w.dir.facts(req);
    authorize(&actor, action, &resource).is_allowed()
}

/// The same request decided while someone impersonates its actor: an Application Admin (capped
/// by their own rights), or the Impersonating Troubleshooter's break-glass when the actor is a
/// Site Admin — the two-sided decision every request pays while impersonation is active.
fn decide_impersonating(w: &World, req: &Req) -> bool {
    let (mut actor, action, resource) = w.dir.facts(req);
    let (by_role, scope) = if actor.site_role == SiteRole::SiteAdmin {
        (
            SiteRole::ImpersonatingTroubleshooter,
            ImpersonationScope::BreakGlass,
        )
    } else {
        (SiteRole::ApplicationAdmin, ImpersonationScope::Site)
    };
    actor.impersonation = Some(Impersonation {
        by: UserId(0),
        by_role,
        scope,
    });
    authorize(&actor, action, &resource).is_allowed()
}

/// The directory look-ups alone, to tell their share of the table's time from the decision's.
fn lookup_only(w: &World, req: &Req) -> bool {
    let (actor, _, resource) = w.dir.facts(req);
    black_box((actor, resource)).1.project_admin
}

fn decide_cedar(w: &World, req: &Req) -> bool {
    let (actor, action, resource) = w.dir.facts(req);
    w.cedar.is_allowed(&actor, action, &resource)
}

fn criterion_benches(c: &mut Criterion, w: &World) {
    let mut group = c.benchmark_group("authorize");
    let n = w.reqs.len();
    let mut i = 0;
    group.bench_function("table", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(decide_table(w, black_box(&w.reqs[i])))
        });
    });
    let mut i = 0;
    group.bench_function("table-impersonating", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(decide_impersonating(w, black_box(&w.reqs[i])))
        });
    });
    let mut i = 0;
    group.bench_function("cedar", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(decide_cedar(w, black_box(&w.reqs[i])))
        });
    });
    group.finish();
}

/// Median ns per request over batches of `BATCH`, and the mean over the whole list.
fn time_batches(w: &World, reqs: &[Req], decide: fn(&World, &Req) -> bool) -> (f64, f64) {
    let mut per_batch = Vec::with_capacity(reqs.len() / BATCH);
    let start = Instant::now();
    for batch in reqs.chunks(BATCH) {
        let t = Instant::now();
        for r in batch {
            black_box(decide(w, black_box(r)));
        }
        per_batch.push(t.elapsed().as_nanos() as f64 / batch.len() as f64);
    }
    let mean = start.elapsed().as_nanos() as f64 / reqs.len() as f64;
    per_batch.sort_by(f64::total_cmp);
    (per_batch[per_batch.len() / 2], mean)
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut rng = StdRng::seed_from_u64(2024);
    let setup = Instant::now();
    let dir = Directory::new(&mut rng);
    let reqs = requests(&dir, &mut rng);
    let w = World {
        dir,
        reqs,
        cedar: Cedar::new(),
    };
    println!(
        "directory: {} users, {} projects, {} memberships; {} requests (built in {:.1?})",
        w.dir.roles.len(),
        w.dir.projects.len(),
        w.dir.memberships.values().map(Vec::len).sum::<usize>(),
        w.reqs.len(),
        setup.elapsed()
    );

    // Both deciders must agree before their speed means anything.
    let mut allowed = 0;
    for r in &w.reqs {
        let (t, c) = (decide_table(&w, r), decide_cedar(&w, r));
        assert_eq!(t, c, "table and Cedar disagree on {:?}", w.dir.facts(r));
        allowed += t as usize;
    }
    println!(
        "table and cedar agree on all {} requests ({allowed} allowed)",
        w.reqs.len()
    );

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    criterion_benches(&mut c, &w);
    c.final_summary();

    // Our own timing, same requests, same run: outside bench mode (`cargo test --benches`) a
    // short pass only.
    let reqs = if bench_mode {
        &w.reqs[..]
    } else {
        &w.reqs[..5 * BATCH]
    };
    let (table_p50, table_mean) = time_batches(&w, reqs, decide_table);
    let (cedar_p50, cedar_mean) = time_batches(&w, reqs, decide_cedar);
    println!(
        "table: p50 {table_p50:.0} ns/op (mean {table_mean:.0} ns/op) over {} requests in batches of {BATCH}",
        reqs.len()
    );
    println!(
        "cedar: p50 {cedar_p50:.0} ns/op (mean {cedar_mean:.0} ns/op) over {} requests in batches of {BATCH}",
        reqs.len()
    );
    let (imp_p50, imp_mean) = time_batches(&w, reqs, decide_impersonating);
    println!(
        "table while impersonating: p50 {imp_p50:.0} ns/op (mean {imp_mean:.0} ns/op); ratio to plain {:.2} (target p50 <= 2000 ns)",
        imp_p50 / table_p50
    );
    let (lookup_p50, _) = time_batches(&w, reqs, lookup_only);
    println!("(of which directory look-ups alone: p50 {lookup_p50:.0} ns/op)");
    println!("ratio cedar/table = {:.1}", cedar_p50 / table_p50);
}
