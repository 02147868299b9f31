//! The permission explainer: what `authorize()` decides for an actor, an action and a resource,
//! and why, in words. The facts are looked up by the very functions the enforcing routes use, so
//! the verdict is theirs. The API (`GET /api/v1/authz/explain`) and the admin panel's page both
//! check who may ask before they call it.

use cryowarden_core::{
    Action, Activity, DataAction, DataScope, Decision, ImportPolicy, LabRole, ProjectRole,
    Resource, UserId,
};
use serde::{Deserialize, Serialize};

use crate::context::{Ctx, Target};
use crate::error::StoreError;
use crate::impersonation;
use crate::services::Services;
use crate::users::{self, User};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    /// The acting user (username or id).
    pub actor: String,
    /// An action name as the audit log writes it: `delete-user`, `change-password`,
    /// `read-setting:email`, `change-setting:look-and-feel.login_message`,
    /// `change-site-role:none->troubleshooter`, `view-project`...
    pub action: String,
    /// The user the action is aimed at (username or id), if any.
    #[serde(default)]
    pub target: Option<String>,
    /// The project the action is about, if any.
    #[serde(default)]
    pub project: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    pub allowed: bool,
    pub action: String,
    pub actor: String,
    pub target: Option<String>,
    /// The column of the permission table that granted it (`site_admin`, `project_admin`...).
    pub column: Option<String>,
    /// Limits attached to the grant (`no-custom-file-root`, `requires-confirmation`...).
    pub bounds: Vec<String>,
    /// The row or rule that refused.
    pub rule: Option<String>,
    /// Why, in words: the role, the bound, the lab or project fact ("allowed: ..." or
    /// "denied: ...").
    pub reason: Option<String>,
    /// The facts the decision was taken on, in words (project or folder admin of what, the
    /// standing in the lab and project).
    pub facts: Vec<String>,
    /// A refusal that hides the resource (answered as "not found").
    pub concealed: bool,
}

async fn user_named(
    services: &Services,
    who: &str,
    field: &'static str,
) -> Result<User, StoreError> {
    let found = match who.parse::<i64>() {
        Ok(id) => users::find(&services.db, id).await?,
        Err(_) => users::find_by_username(&services.db, who)
            .await?
            .map(|(u, _)| u),
    };
    found.ok_or_else(|| StoreError::invalid(field, format!("names no user: `{who}`")))
}

/// The explanation, for those who may update site permissions (Site and Application Admins);
/// a refused request is audited.
pub async fn explain(
    services: &Services,
    ctx: &Ctx,
    q: &ExplainQuery,
) -> Result<Explanation, StoreError> {
    let gate = Action::Activity(Activity::UpdateSitePermissions);
    let target = Target {
        kind: "permissions",
        id: None,
        name: Some(q.action.chars().take(100).collect()),
    };
    let _may_explain = ctx
        .authorize(&services.db, gate, Resource::instance(), &target)
        .await?;
    explanation(services, q).await
}

/// The explanation itself, for the API and the admin panel's page (both check who may ask).
///
/// The facts are looked up by the very functions the enforcing routes use — the user routes'
/// scope ([`users::with_facts`]), `POST /impersonation`'s ([`impersonation::user_resource`],
/// with `project` as its `project`), a project's standing ([`projects::standing`], asking
/// `view-project` first as the project routes do) — so the verdict is theirs.
pub async fn explanation(services: &Services, q: &ExplainQuery) -> Result<Explanation, StoreError> {
    let action = Action::parse(&q.action).ok_or_else(|| {
        StoreError::invalid(
            "action",
            "is not an action name (as the audit log writes them)",
        )
    })?;
    let db = &services.db;
    let actor_user = user_named(services, &q.actor, "actor").await?;
    let actor = actor_user.actor();
    let target = match &q.target {
        Some(t) => Some(user_named(services, t, "target").await?),
        None => None,
    };
    let project = match q.project {
        Some(p) => Some(
            crate::projects::get(db, p)
                .await
                .map_err(|_| StoreError::invalid("project", format!("names no project: {p}")))?,
        ),
        None => None,
    };
    let me = &actor_user.username;
    let mut facts = Vec::new();
    let mut first = None;
    let mut see_user = None;
    let resource = match (&target, &project) {
        (Some(t), p) if action == Action::Activity(Activity::Impersonate) => {
            let (r, confined) =
                impersonation::user_resource(db, actor_user.id, t, p.as_ref().map(|p| p.id), None)
                    .await?;
            let within = match (p, confined) {
                (Some(p), _) => format!("project `{}`", p.name),
                (None, Some(id)) => format!("project #{id}"),
                (None, None) => "a project".to_owned(),
            };
            let (pa, fa) = (r.project_admin, r.folder_admin);
            facts.push(if pa {
                format!(
                    "{me} is a project admin of {within}, which {} belongs to",
                    t.username
                )
            } else {
                format!(
                    "{me} is not a project admin of {within} that {} belongs to",
                    t.username
                )
            });
            facts.push(if fa {
                format!(
                    "{me} is a folder admin of a workspace of {within}, which {} belongs to",
                    t.username
                )
            } else {
                format!(
                    "{me} is not a folder admin of a workspace of {within} that {} belongs to",
                    t.username
                )
            });
            r
        }
        (Some(t), Some(p)) if action == Action::Activity(Activity::UpdateProjectGroups) => {
            // As a change of a project membership asks it (`projects/members.rs`).
            let scope = crate::projects::standing(db, actor_user.id, p).await?;
            facts.push(standing_words(me, p, &scope));
            first = Some(scope);
            let mut r = Resource::user(UserId(t.id), t.site_role);
            r.data = scope;
            r.scoped(scope.project_role == Some(ProjectRole::ProjectAdmin), false)
        }
        (Some(_), Some(_)) => {
            return Err(StoreError::invalid(
                "project",
                "applies, with a target user, only to impersonate and update-project-groups: \
                 other actions on a user do not depend on a project",
            ));
        }
        (Some(t), None) => {
            // As the user routes ask it: view-user first (someone hidden is "not found").
            let r = users::with_facts(db, &actor, t.target(), Some(t.id)).await?;
            see_user = Some(r);
            if t.id != actor_user.id {
                facts.push(format!(
                    "{me} is {}a project admin of a project {} belongs to, and {}a folder admin of one",
                    if r.project_admin { "" } else { "not " },
                    t.username,
                    if r.folder_admin { "" } else { "not " }
                ));
            }
            r
        }
        (None, Some(p)) => {
            // As the project routes ask it: view-project first, then the action.
            let scope = crate::projects::standing(db, actor_user.id, p).await?;
            facts.push(standing_words(me, p, &scope));
            first = Some(scope);
            Resource::data(scope)
                .scoped(scope.project_role == Some(ProjectRole::ProjectAdmin), false)
        }
        (None, None) if action == Action::Activity(Activity::CreateUser) => {
            let r = users::with_facts(db, &actor, Resource::instance(), None).await?;
            facts.push(format!(
                "{me} is {}a project admin of any project",
                if r.project_admin { "" } else { "not " }
            ));
            r
        }
        (None, None) => Resource::instance(),
    };
    let view = Action::Data(DataAction::ViewProject);
    let see = Action::Activity(Activity::ViewUser);
    let decision = match (first, see_user) {
        (Some(scope), _) if action != view && target.is_none() => {
            match cryowarden_core::authorize(&actor, view, &Resource::data(scope)) {
                Decision::Allow(_) => cryowarden_core::authorize(&actor, action, &resource),
                deny => deny,
            }
        }
        (_, Some(r)) => match cryowarden_core::authorize(&actor, see, &r) {
            Decision::Allow(_) => cryowarden_core::authorize(&actor, action, &resource),
            // The user routes answer "not found" for someone the actor may not see.
            Decision::Deny(d) => Decision::Deny(cryowarden_core::Denied { conceal: true, ..d }),
        },
        _ => cryowarden_core::authorize(&actor, action, &resource),
    };
    let answer = match decision {
        Decision::Allow(a) => Explanation {
            allowed: true,
            action: action.name(),
            actor: actor_user.username.clone(),
            target: target.map(|t| t.username),
            column: a.column().map(|c| c.as_str().to_owned()),
            bounds: a.bounds().map(|b| b.as_str().to_owned()).collect(),
            rule: None,
            reason: Some(cryowarden_core::explain_allowed(&a)),
            facts,
            concealed: false,
        },
        Decision::Deny(d) => Explanation {
            allowed: false,
            action: action.name(),
            actor: actor_user.username.clone(),
            target: target.map(|t| t.username),
            column: None,
            bounds: Vec::new(),
            rule: Some(d.rule.to_owned()),
            reason: Some(format!("denied: {}", d.reason)),
            facts,
            concealed: d.conceal,
        },
    };
    Ok(answer)
}

/// Someone's standing in a project, in words.
fn standing_words(who: &str, p: &crate::projects::Project, s: &DataScope) -> String {
    let lab = match s.lab_role {
        Some(LabRole::Manager) => format!("a manager of lab `{}`", p.lab_name),
        Some(LabRole::Member) => format!("a member of lab `{}`", p.lab_name),
        None => format!("not a member of lab `{}`", p.lab_name),
    };
    let project = match s.project_role {
        Some(ProjectRole::ProjectAdmin) => format!("a project admin of `{}`", p.name),
        Some(ProjectRole::Editor) => format!("an editor of `{}`", p.name),
        Some(ProjectRole::Reader) => format!("a reader of `{}`", p.name),
        None => format!("not a member of `{}`", p.name),
    };
    let policy = match s.import_policy {
        ImportPolicy::AllMembers => "every member of the lab may import",
        ImportPolicy::Managers => "only the lab's managers may import",
        ImportPolicy::FacilityStaff => "only facility staff may import",
    };
    let read = if s.lab_members_read {
        "the lab's members may read the project"
    } else {
        "the project is closed to the lab"
    };
    format!("{who} is {lab} and {project}; {policy}; {read}")
}
