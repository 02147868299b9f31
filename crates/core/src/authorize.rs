//! `authorize(actor, action, resource) -> Decision`: the one choke point every action passes
//! through, from HTTP, CLI or scheduler. An [`Allowed`] can only be made here, and guarded
//! storage writes take one, so a handler cannot reach a write without the check.

use crate::actions::{Action, Activity};
use crate::data::{self, DataScope, ImportPolicy, ProjectRole};
use crate::ids::UserId;
use crate::names::named_enum;
use crate::roles::{Column, SiteRole};
use crate::settings::Access;
use crate::table::{self, Grant, RowBound};

/// Who is acting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The user whose rights apply: while impersonating, the impersonated user (or, for a role,
    /// the impersonator holding that role).
    pub user: UserId,
    pub site_role: SiteRole,
    /// Set while someone impersonates: the real person, whose own rights cap the decision.
    pub impersonation: Option<Impersonation>,
}

impl Actor {
    pub const fn new(user: UserId, site_role: SiteRole) -> Self {
        Actor {
            user,
            site_role,
            impersonation: None,
        }
    }

    /// The real person behind the session while impersonating (recorded in every audit event).
    pub fn impersonator(&self) -> Option<UserId> {
        self.impersonation.map(|i| i.by)
    }

    /// The people whose own decisions [`authorize`] intersects for this actor, each as an actor
    /// of its own: the acting side, and while a site or scoped impersonation runs the
    /// impersonator (site-wide roles off on both sides for a scoped one). The break-glass has
    /// one side, the Site Admin acted as. Each side is to be judged on its own facts.
    pub fn sides(&self) -> (Actor, Option<Actor>) {
        let Some(imp) = self.impersonation else {
            return (*self, None);
        };
        match imp.scope {
            ImpersonationScope::BreakGlass => (
                Actor {
                    impersonation: None,
                    ..*self
                },
                None,
            ),
            ImpersonationScope::Site | ImpersonationScope::Scoped => {
                let scoped = imp.scope == ImpersonationScope::Scoped;
                let role = |r: SiteRole| if scoped { SiteRole::None } else { r };
                (
                    Actor {
                        user: self.user,
                        site_role: role(self.site_role),
                        impersonation: None,
                    },
                    Some(Actor {
                        user: imp.by,
                        site_role: role(imp.by_role),
                        impersonation: None,
                    }),
                )
            }
        }
    }
}

/// An impersonation in progress (`spec/roles.md` §2, "impersonate users, roles, groups").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Impersonation {
    /// The real person.
    pub by: UserId,
    /// Their own site role.
    pub by_role: SiteRole,
    pub scope: ImpersonationScope,
}

named_enum! {
    /// How far an impersonation reaches, fixed when it starts from the column that allowed it.
    pub enum ImpersonationScope {
        /// A Site or Application Admin: the impersonated user's rights, capped by the
        /// impersonator's own (an Application Admin never gains Site Admin rights by it).
        Site = "site",
        /// A project or folder admin impersonating a user of their project or workspace: both
        /// sides lose their site-wide roles, and the caller intersects the data standing of both.
        Scoped = "scoped",
        /// The Impersonating Troubleshooter acting as a Site Admin: the one case where
        /// impersonation adds rights. Every decision carries [`Bound::BreakGlass`].
        BreakGlass = "break-glass",
    }
}

impl ImpersonationScope {
    /// The scope an allowed `impersonate` decision grants: from the column that allowed it.
    pub fn granted_by(proof: &Allowed) -> Option<ImpersonationScope> {
        if proof.action != Action::Activity(Activity::Impersonate) {
            return None;
        }
        if proof.has(Bound::BreakGlass) {
            return Some(ImpersonationScope::BreakGlass);
        }
        match proof.column? {
            Column::ProjectAdmin | Column::FolderAdmin => Some(ImpersonationScope::Scoped),
            _ if proof.has(Bound::SiteRolesOff) => Some(ImpersonationScope::Scoped),
            _ => Some(ImpersonationScope::Site),
        }
    }
}

/// The user an action is aimed at, when there is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetUser {
    pub id: UserId,
    pub site_role: SiteRole,
}

/// What the action touches, with the relational facts the tables depend on, looked up by the
/// caller beforehand so that the decision itself stays pure and constant-time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    pub target: Option<TargetUser>,
    /// The actor is Project Admin of the project in question (for a user target: of a project
    /// the target belongs to; for an instance-wide action: of any project).
    pub project_admin: bool,
    /// The actor is Folder Admin of the workspace in question (same reading as above).
    pub folder_admin: bool,
    /// For a data action: the actor's standing in the lab and project.
    pub data: DataScope,
    /// While the actor is impersonated: the impersonator's *own* project/folder admin facts over
    /// the same thing, looked up for the impersonator. The impersonated side's facts
    /// (`project_admin`, `folder_admin` above) never count for the impersonator's check, so a
    /// Folder Admin impersonating a Project Admin does not borrow the Project Admin column.
    /// Unset (the default), the impersonator holds no scoped fact.
    pub impersonator: ScopedFacts,
}

/// The project/folder admin facts of §2 of one person over a resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopedFacts {
    pub project_admin: bool,
    pub folder_admin: bool,
}

impl Resource {
    /// An instance-wide action with no target user and no project scope.
    pub const fn instance() -> Self {
        Resource {
            target: None,
            project_admin: false,
            folder_admin: false,
            data: DataScope::lab(None, ImportPolicy::AllMembers),
            impersonator: ScopedFacts {
                project_admin: false,
                folder_admin: false,
            },
        }
    }

    pub const fn user(id: UserId, site_role: SiteRole) -> Self {
        Resource {
            target: Some(TargetUser { id, site_role }),
            project_admin: false,
            folder_admin: false,
            data: DataScope::lab(None, ImportPolicy::AllMembers),
            impersonator: ScopedFacts {
                project_admin: false,
                folder_admin: false,
            },
        }
    }

    /// The acting side's scoped facts (while impersonating: the impersonated user's).
    pub const fn scoped(mut self, project_admin: bool, folder_admin: bool) -> Self {
        self.project_admin = project_admin;
        self.folder_admin = folder_admin;
        self
    }

    /// The impersonator's own scoped facts over the same resource (see [`Resource::impersonator`]).
    pub const fn impersonator_scoped(mut self, project_admin: bool, folder_admin: bool) -> Self {
        self.impersonator = ScopedFacts {
            project_admin,
            folder_admin,
        };
        self
    }

    /// The resource as the impersonator's own check sees it: the impersonator's facts in place
    /// of the acting side's.
    const fn for_impersonator(&self) -> Resource {
        let mut r = *self;
        r.project_admin = self.impersonator.project_admin;
        r.folder_admin = self.impersonator.folder_admin;
        r.impersonator = ScopedFacts {
            project_admin: false,
            folder_admin: false,
        };
        r
    }

    /// A lab's data or a project, with the actor's standing in it. A project admin also holds
    /// the Project Admin column of §2 for that project (for the acting side only: an
    /// impersonator's own project role is set with [`Resource::impersonator_scoped`]).
    pub const fn data(data: DataScope) -> Self {
        let mut r = Resource::instance();
        r.project_admin = matches!(data.project_role, Some(ProjectRole::ProjectAdmin));
        r.data = data;
        r
    }
}

named_enum! {
    /// A limit attached to an allowed action, which the caller must honour.
    pub enum Bound {
        NoCustomFileRoot = "no-custom-file-root",
        NoSiteAdminRights = "no-site-admin-rights",
        SiteRolesOff = "site-roles-off",
        BreakGlass = "break-glass",
        RequiresConfirmation = "requires-confirmation",
        SomeFieldsReadOnly = "some-fields-read-only",
    }
}

impl Bound {
    pub(crate) const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The proof that an action was authorized. It cannot be built outside this crate except by
/// [`authorize`] (or [`Allowed::system`] for the server's own bookkeeping), and guarded storage
/// writes require one.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an authorization proof is meant to be handed to the guarded write"]
pub struct Allowed {
    action: Action,
    actor: Option<UserId>,
    impersonator: Option<UserId>,
    target: Option<UserId>,
    column: Option<Column>,
    bounds: u16,
    system: Option<&'static str>,
}

impl Allowed {
    pub fn action(&self) -> Action {
        self.action
    }
    /// The acting user; `None` for a system action.
    pub fn actor(&self) -> Option<UserId> {
        self.actor
    }
    pub fn impersonator(&self) -> Option<UserId> {
        self.impersonator
    }
    pub fn target(&self) -> Option<UserId> {
        self.target
    }
    /// The column of the table that granted it.
    pub fn column(&self) -> Option<Column> {
        self.column
    }
    pub fn has(&self, bound: Bound) -> bool {
        self.bounds & bound.bit() != 0
    }
    pub fn bounds(&self) -> impl Iterator<Item = Bound> + '_ {
        Bound::ALL.iter().copied().filter(|b| self.has(*b))
    }
    /// Why the server acts on its own (`bootstrap`, `redeem-token`...), for a system proof.
    pub fn system_purpose(&self) -> Option<&'static str> {
        self.system
    }

    /// A proof for an action the server takes on its own behalf with no acting user: the
    /// offline bootstrap of the first Site Admin, redeeming a registration or reset token that
    /// the caller has already verified. Every use names its purpose and is audited as `system`.
    pub fn system(action: Action, purpose: &'static str, target: Option<UserId>) -> Allowed {
        Allowed {
            action,
            actor: None,
            impersonator: None,
            target,
            column: None,
            bounds: 0,
            system: Some(purpose),
        }
    }

    /// Checks that this proof is for `action`: guarded writes call it first.
    pub fn require(&self, action: Action) -> Result<(), WrongProof> {
        if self.action == action {
            Ok(())
        } else {
            Err(WrongProof {
                expected: action,
                got: self.action,
            })
        }
    }
}

/// A write was handed the proof of another action: a programming error, never a client's.
#[derive(Debug, thiserror::Error)]
#[error("authorization proof for {got:?} used where {expected:?} is required")]
pub struct WrongProof {
    pub expected: Action,
    pub got: Action,
}

/// A refusal, naming the rule and the bound that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub action: Action,
    /// The row of the table (or the named rule) that refused.
    pub rule: &'static str,
    /// A sentence for people: what is refused and why.
    pub reason: String,
    /// The actor has no standing to learn that the resource exists: answer "not found".
    pub conceal: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(Allowed),
    Deny(Denied),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
    pub fn into_result(self) -> Result<Allowed, Denied> {
        match self {
            Decision::Allow(a) => Ok(a),
            Decision::Deny(d) => Err(d),
        }
    }
}

/// Whether [`authorize`] allows `action`: for what a page or a client merely shows (a control,
/// a tab), never as the check of a change, which asks `authorize` and keeps its proof.
pub fn permits(actor: &Actor, action: Action, resource: &Resource) -> bool {
    authorize(actor, action, resource).is_allowed()
}

/// Decides one action. Pure: the answer depends only on the arguments and the permission file.
///
/// While `actor` impersonates, the decision is the impersonated side's intersected with the
/// impersonator's own on the same resource (site-wide roles off on both sides for a scoped
/// impersonation), so impersonating never adds a right — except the break-glass, where an
/// Impersonating Troubleshooter acts as the Site Admin and every allowed decision says so.
pub fn authorize(actor: &Actor, action: Action, resource: &Resource) -> Decision {
    let Some(imp) = actor.impersonation else {
        return decide(actor, action, resource);
    };
    if action == Action::Activity(Activity::Impersonate) {
        return deny(
            action,
            "impersonate",
            "nobody may start an impersonation while impersonating".into(),
        );
    }
    // Nothing done while impersonating may reach the real person's own account (its role,
    // status, password, lanes...): a break-glass could otherwise make itself permanent, and a
    // role change raise the impersonator. Seeing it is harmless.
    let reads = matches!(
        action,
        Action::Activity(Activity::ViewUser) | Action::ReadSetting(_)
    );
    if resource.target.is_some_and(|t| t.id == imp.by) && !reads {
        return deny(
            action,
            "impersonator-own-account",
            "while impersonating, nothing may be changed on the impersonator's own account".into(),
        );
    }
    let stamp = |mut a: Allowed, extra: u16| {
        a.impersonator = Some(imp.by);
        a.bounds |= extra;
        Decision::Allow(a)
    };
    match imp.scope {
        ImpersonationScope::BreakGlass => match decide(
            &Actor {
                impersonation: None,
                ..*actor
            },
            action,
            resource,
        ) {
            Decision::Allow(a) => stamp(a, Bound::BreakGlass.bit()),
            deny => deny,
        },
        ImpersonationScope::Site | ImpersonationScope::Scoped => {
            let scoped = imp.scope == ImpersonationScope::Scoped;
            let (target, own) = actor.sides();
            let own = own.expect("a site or scoped impersonation has two sides");
            let allowed = match decide(&target, action, resource) {
                Decision::Allow(a) => a,
                deny => return deny,
            };
            // The impersonator is judged on their own facts, never on the impersonated side's.
            match decide(&own, action, &resource.for_impersonator()) {
                Decision::Allow(_) => {
                    stamp(allowed, if scoped { Bound::SiteRolesOff.bit() } else { 0 })
                }
                Decision::Deny(d) => Decision::Deny(Denied {
                    rule: "impersonation-ceiling",
                    reason: format!(
                        "impersonation never adds rights, and the impersonator may not: {}",
                        d.reason
                    ),
                    ..d
                }),
            }
        }
    }
}

fn decide(actor: &Actor, action: Action, resource: &Resource) -> Decision {
    match action {
        Action::Activity(activity) => decide_activity(actor, activity, resource, action),
        Action::ReadSetting(setting) => {
            let column = actor.site_role.console_column();
            let access = column.map_or(Access::None, |c| table::setting_access(setting, c).0);
            if access == Access::None {
                return deny(
                    action,
                    setting.as_str(),
                    format!(
                        "{} has no access to the {} setting",
                        role_name(actor.site_role),
                        words(setting.as_str())
                    ),
                );
            }
            allow(actor, action, resource, column, 0)
        }
        Action::ChangeSetting { setting, field } => {
            let column = actor.site_role.console_column();
            let (access, read_only) = column.map_or((Access::None, &[][..]), |c| {
                table::setting_access(setting, c)
            });
            if access != Access::All {
                return deny(
                    action,
                    setting.as_str(),
                    format!(
                        "{} may not change the {} setting ({})",
                        role_name(actor.site_role),
                        words(setting.as_str()),
                        if access == Access::ReadOnly {
                            "they may only read it"
                        } else {
                            "they have no access to it"
                        }
                    ),
                );
            }
            let mut bounds = 0;
            match field {
                Some(f) if read_only.contains(&f) => {
                    return deny(
                        action,
                        setting.as_str(),
                        format!(
                            "{} may not change {f} in the {} setting",
                            role_name(actor.site_role),
                            words(setting.as_str())
                        ),
                    );
                }
                None if !read_only.is_empty() => bounds |= Bound::SomeFieldsReadOnly.bit(),
                _ => {}
            }
            allow(actor, action, resource, column, bounds)
        }
        Action::ChangeSiteRole { from, to } => {
            decide_role_change(actor, from, to, resource, action)
        }
        Action::Data(data_action) => {
            let staff = actor.site_role.is_admin();
            let oversight = matches!(
                actor.site_role,
                SiteRole::Troubleshooter | SiteRole::ImpersonatingTroubleshooter
            );
            match data::decide(staff, oversight, data_action, &resource.data) {
                Ok(()) => allow(actor, action, resource, None, 0),
                Err((rule, reason, conceal)) => Decision::Deny(Denied {
                    action,
                    rule,
                    reason: format!("{}: {reason}", role_name(actor.site_role)),
                    conceal,
                }),
            }
        }
    }
}

fn decide_role_change(
    actor: &Actor,
    from: SiteRole,
    to: SiteRole,
    resource: &Resource,
    action: Action,
) -> Decision {
    // The target's recorded role is authoritative: a caller's stale or wrong `from` must not let
    // an Application Admin demote a Site Admin.
    let from = resource.target.map_or(from, |t| t.site_role);
    let on_self = is_self(actor, resource);
    let leaving_application_admin = from == SiteRole::ApplicationAdmin && to == SiteRole::None;
    if on_self && !leaving_application_admin {
        return deny(
            action,
            "own-role",
            "the role of the person editing cannot be changed by themselves".into(),
        );
    }
    let troubleshooting = |r: SiteRole| {
        matches!(
            r,
            SiteRole::Troubleshooter | SiteRole::ImpersonatingTroubleshooter
        )
    };
    let mut needed = [None; 3];
    if from == SiteRole::SiteAdmin || to == SiteRole::SiteAdmin {
        needed[0] = Some(Activity::UpdateSiteAdmins);
    }
    if from == SiteRole::ApplicationAdmin || to == SiteRole::ApplicationAdmin {
        needed[1] = Some(Activity::UpdateApplicationAdmins);
    }
    if troubleshooting(from) || troubleshooting(to) || needed.iter().all(Option::is_none) {
        needed[2] = Some(Activity::UpdateSitePermissions);
    }
    let mut bounds = 0;
    let mut column = None;
    for activity in needed.into_iter().flatten() {
        match decide_activity(actor, activity, resource, Action::Activity(activity)) {
            Decision::Allow(a) => {
                bounds |= a.bounds;
                column = column.or(a.column);
            }
            Decision::Deny(mut d) => {
                d.action = action;
                return Decision::Deny(d);
            }
        }
    }
    allow(actor, action, resource, column, bounds)
}

fn decide_activity(
    actor: &Actor,
    activity: Activity,
    resource: &Resource,
    action: Action,
) -> Decision {
    let t = table::table();
    let i = activity.index();
    let on_self = is_self(actor, resource);
    let (row_bound, row_key) = t.row_bounds[i];
    if on_self && row_bound == Some(RowBound::NeverSelf) {
        return deny(
            action,
            row_key,
            format!("nobody may {} themselves", words(activity.as_str())),
        );
    }
    let site_column = match actor.site_role {
        SiteRole::SiteAdmin => Column::SiteAdmin,
        SiteRole::ApplicationAdmin => Column::ApplicationAdmin,
        SiteRole::ImpersonatingTroubleshooter => Column::ImpersonatingTroubleshooter,
        SiteRole::Troubleshooter => Column::Troubleshooter,
        SiteRole::None => Column::User,
    };
    let columns = [
        Some(site_column),
        resource.project_admin.then_some(Column::ProjectAdmin),
        resource.folder_admin.then_some(Column::FolderAdmin),
        Some(Column::User),
    ];
    for column in columns.into_iter().flatten() {
        let cell = t.activities[i][column.index()];
        if grants(cell.grant, actor, resource) {
            let mut bounds = cell.bounds;
            if on_self && row_bound == Some(RowBound::ConfirmSelf) {
                bounds |= Bound::RequiresConfirmation.bit();
            }
            return allow(actor, action, resource, Some(column), bounds);
        }
    }
    let cell = t.cell_text[i][site_column.index()];
    let activity = words(activity.as_str());
    let reason = match t.activities[i][site_column.index()].grant {
        Grant::UnlessTargetSiteAdmin => {
            format!(
                "{} may not {activity} when the target is a Site Admin (\"{cell}\")",
                role_name(actor.site_role)
            )
        }
        Grant::SelfOnly => format!(
            "{} may {activity} only for themselves",
            role_name(actor.site_role)
        ),
        Grant::OnlyTargetSiteAdmin => {
            format!(
                "{} may {activity} only a Site Admin (\"{cell}\")",
                role_name(actor.site_role)
            )
        }
        _ if resource.project_admin || resource.folder_admin => {
            format!(
                "{} may not {activity}, not even as project or folder admin here",
                role_name(actor.site_role)
            )
        }
        _ => format!(
            "{} may not {activity} (\"{cell}\")",
            role_name(actor.site_role)
        ),
    };
    deny(action, row_key, reason)
}

fn grants(grant: Grant, actor: &Actor, resource: &Resource) -> bool {
    match grant {
        Grant::Yes => true,
        Grant::No => false,
        Grant::UnlessTargetSiteAdmin => resource
            .target
            .is_none_or(|t| t.site_role != SiteRole::SiteAdmin),
        Grant::SelfOnly => is_self(actor, resource),
        Grant::OnlyTargetSiteAdmin => resource
            .target
            .is_some_and(|t| t.site_role == SiteRole::SiteAdmin),
    }
}

fn is_self(actor: &Actor, resource: &Resource) -> bool {
    resource.target.is_some_and(|t| t.id == actor.user)
}

fn allow(
    actor: &Actor,
    action: Action,
    resource: &Resource,
    column: Option<Column>,
    bounds: u16,
) -> Decision {
    Decision::Allow(Allowed {
        action,
        actor: Some(actor.user),
        impersonator: actor.impersonator(),
        target: resource.target.map(|t| t.id),
        column,
        bounds,
        system: None,
    })
}

fn deny(action: Action, rule: &'static str, reason: String) -> Decision {
    Decision::Deny(Denied {
        action,
        rule,
        reason,
        conceal: false,
    })
}

/// A stable kebab-case name as words: `delete-user` → `delete user`.
fn words(name: &str) -> String {
    name.replace(['-', '_'], " ")
}

impl Column {
    /// The column as people name it.
    pub const fn words(self) -> &'static str {
        match self {
            Column::SiteAdmin => "a Site Admin",
            Column::ApplicationAdmin => "an Application Admin",
            Column::Troubleshooter => "a Troubleshooter",
            Column::ImpersonatingTroubleshooter => "an Impersonating Troubleshooter",
            Column::ProjectAdmin => "a project admin",
            Column::FolderAdmin => "a folder admin",
            Column::User => "a user",
        }
    }
}

impl Bound {
    /// The limit as people say it.
    pub const fn words(self) -> &'static str {
        match self {
            Bound::NoCustomFileRoot => "but never with a custom file root",
            Bound::NoSiteAdminRights => "but never gaining Site Admin rights by it",
            Bound::SiteRolesOff => "with site-wide roles off on both sides while impersonating",
            Bound::BreakGlass => "as a break-glass, recorded as such on every action",
            Bound::RequiresConfirmation => "after confirming, since it is their own",
            Bound::SomeFieldsReadOnly => "except its read-only fields",
        }
    }
}

/// Why an allowed decision was allowed, in words for people: the role or column that granted
/// it and what the permission table's cell says, then its bounds. (A data action is granted by
/// the actor's standing in the lab and project, which the caller describes.)
pub fn explain_allowed(proof: &Allowed) -> String {
    let t = table::table();
    let mut out = match (proof.action, proof.column) {
        (Action::Activity(a), Some(c)) => {
            let cell = t.cell_text[a.index()][c.index()];
            format!(
                "allowed: {} may {} (the permission table says \"{cell}\")",
                c.words(),
                words(a.as_str())
            )
        }
        (Action::ReadSetting(setting), Some(c)) => {
            format!(
                "allowed: {} may see the {} setting",
                c.words(),
                words(setting.as_str())
            )
        }
        (Action::ChangeSetting { setting, field }, Some(c)) => format!(
            "allowed: {} may change {}the {} setting",
            c.words(),
            field
                .map(|f| format!("{} in ", words(f)))
                .unwrap_or_default(),
            words(setting.as_str())
        ),
        (Action::ChangeSiteRole { from, to }, Some(c)) => {
            format!(
                "allowed: {} may change a site role from {} to {}",
                c.words(),
                role_title(from),
                role_title(to)
            )
        }
        (Action::ChangeSiteRole { from, to }, None) => {
            format!(
                "allowed: the site role may change from {} to {}",
                role_title(from),
                role_title(to)
            )
        }
        (Action::Data(d), _) => format!(
            "allowed to {} by their standing in the lab and project",
            words(d.as_str())
        ),
        (_, None) => "allowed".to_owned(),
    };
    for b in proof.bounds() {
        out.push_str(", ");
        out.push_str(b.words());
    }
    out
}

fn role_title(role: SiteRole) -> &'static str {
    match role {
        SiteRole::SiteAdmin => "Site Admin",
        SiteRole::ApplicationAdmin => "Application Admin",
        SiteRole::ImpersonatingTroubleshooter => "Impersonating Troubleshooter",
        SiteRole::Troubleshooter => "Troubleshooter",
        SiteRole::None => "no site role",
    }
}

fn role_name(role: SiteRole) -> &'static str {
    match role {
        SiteRole::SiteAdmin => "a Site Admin",
        SiteRole::ApplicationAdmin => "an Application Admin",
        SiteRole::ImpersonatingTroubleshooter => "an Impersonating Troubleshooter",
        SiteRole::Troubleshooter => "a Troubleshooter",
        SiteRole::None => "an ordinary user",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_change_is_judged_by_the_targets_recorded_role_not_the_callers_claim() {
        let aa = Actor::new(UserId(1), SiteRole::ApplicationAdmin);
        let head = Resource::user(UserId(2), SiteRole::SiteAdmin);
        let claimed = Action::ChangeSiteRole {
            from: SiteRole::None,
            to: SiteRole::Troubleshooter,
        };
        assert!(
            !authorize(&aa, claimed, &head).is_allowed(),
            "an AA may not demote a Site Admin by misstating their role"
        );
    }
}
