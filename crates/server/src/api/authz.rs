//! `GET /api/v1/authz/explain`: the permission explainer (issue 6). It asks `authorize()` what
//! it would decide for an actor, an action and a resource, and shows the rule, the column and the
//! bounds that produced the answer. Visible to those who may update site permissions (Site and
//! Application Admins); a refused request is audited.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use cryowarden_core::{Action, Activity, Decision, Resource, UserId};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiQuery, Caller};
use crate::app::AppState;
use crate::context::Target;
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
    /// Why, in a sentence ("denied: ...").
    pub reason: Option<String>,
    /// A refusal that hides the resource (answered as "not found").
    pub concealed: bool,
}

async fn user_named(state: &AppState, who: &str, field: &'static str) -> Result<User, ApiError> {
    let found = match who.parse::<i64>() {
        Ok(id) => users::find(&state.db, id).await?,
        Err(_) => users::find_by_username(&state.db, who).await?.map(|(u, _)| u),
    };
    found.ok_or_else(|| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", format!("no user `{who}`")).field(field)
    })
}

/// What `authorize()` decides for an actor, an action and a resource, and why.
#[utoipa::path(get, path = "/api/v1/authz/explain", tag = "users", params(ExplainQuery),
    responses((status = 200, body = Explanation), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn explain(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ExplainQuery>,
) -> ApiResult<axum::Json<Explanation>> {
    let ctx = caller.ctx();
    let gate = Action::Activity(Activity::UpdateSitePermissions);
    let target = Target { kind: "permissions", id: None, name: Some(q.action.chars().take(100).collect()) };
    let _may_explain = ctx.authorize(&state.db, gate, Resource::instance(), &target).await?;
    Ok(axum::Json(explanation(&state, &q).await?))
}

/// The explanation itself, for the API and the admin panel's page (both check who may ask).
pub async fn explanation(state: &AppState, q: &ExplainQuery) -> ApiResult<Explanation> {
    let action = Action::parse(&q.action).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "is not an action name (as the audit log writes them)",
        )
        .field("action")
    })?;
    let actor_user = user_named(state, &q.actor, "actor").await?;
    let actor = actor_user.actor();
    let mut resource = Resource::instance();
    let mut target_name = None;
    if let Some(t) = &q.target {
        let t = user_named(state, t, "target").await?;
        // The same facts the user routes look up: project or folder admin of the target's projects.
        let scope = crate::users::scope(&state.db, actor_user.id, Some(t.id)).await?;
        resource = Resource::user(UserId(t.id), t.site_role).scoped(scope.project_admin, scope.folder_admin);
        target_name = Some(t.username);
    }
    if let Some(p) = q.project {
        let project = crate::projects::get(&state.db, p).await?;
        let scope = crate::projects::standing(&state.db, actor_user.id, &project).await?;
        let data = Resource::data(scope);
        resource.data = data.data;
        resource.project_admin |= data.project_admin;
    }
    let answer = match cryowarden_core::authorize(&actor, action, &resource) {
        Decision::Allow(a) => Explanation {
            allowed: true,
            action: action.name(),
            actor: actor_user.username,
            target: target_name,
            column: a.column().map(|c| c.as_str().to_owned()),
            bounds: a.bounds().map(|b| b.as_str().to_owned()).collect(),
            rule: None,
            reason: None,
            concealed: false,
        },
        Decision::Deny(d) => Explanation {
            allowed: false,
            action: action.name(),
            actor: actor_user.username,
            target: target_name,
            column: None,
            bounds: Vec::new(),
            rule: Some(d.rule.to_owned()),
            reason: Some(format!("denied: {}", d.reason)),
            concealed: d.conceal,
        },
    };
    Ok(answer)
}
