//! The admin panel behind the key icon: Instance Settings, User Management, Create New User
//! (and the tabs that later features add). Each tab shows what `spec/roles.md` §1 lets the
//! viewer see, with controls only for what they may change; the domain functions check again.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cryowarden_core::{Action, Activity, Actor, Resource, Setting, SiteRole};
use minijinja::{Value, context};
use serde::Deserialize;

use super::form_error;
use super::panel::gate;
use super::{PageCaller, base_context, message, render, with};
use crate::settings::{self, Banner, LoginMessage, Maintenance, SettingsPatch, field_action};
use crate::state::AppState;
use crate::users::{self, ListQuery, NewUser};

fn allowed(actor: &Actor, action: Action, resource: Resource) -> bool {
    cryowarden_core::permits(actor, action, &resource)
}

pub async fn index(caller: PageCaller) -> Response {
    let actor = caller.principal.actor();
    if allowed(
        &actor,
        Action::ReadSetting(Setting::LookAndFeel),
        Resource::instance(),
    ) {
        Redirect::to("/admin/settings").into_response()
    } else {
        Redirect::to("/admin/users").into_response()
    }
}

fn settings_rights(actor: &Actor) -> Value {
    let change = |f| allowed(actor, field_action(f), Resource::instance());
    let read = |s| allowed(actor, Action::ReadSetting(s), Resource::instance());
    let any = [
        "instance_name",
        "banner",
        "login_message",
        "system_email_address",
        "default_job_priority",
        "maintenance",
        "default_import_policy",
    ]
    .into_iter()
    .any(change);
    context! {
        look_read => read(Setting::LookAndFeel),
        scheduler_read => read(Setting::Scheduler),
        maintenance_read => read(Setting::SystemMaintenance),
        storage_read => read(Setting::StorageRoots),
        storage => change("default_import_policy"),
        instance_name => change("instance_name"),
        banner => change("banner"),
        login_message => change("login_message"),
        system_email_address => change("system_email_address"),
        scheduler => change("default_job_priority"),
        maintenance => change("maintenance"),
        any => any,
    }
}

pub async fn settings_page(State(state): State<Arc<AppState>>, caller: PageCaller) -> Response {
    let base = match gate(
        &state,
        &caller,
        Action::ReadSetting(Setting::LookAndFeel),
        Resource::instance(),
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let current = state.settings.get(&state.db).await.unwrap_or_default();
    let actor = caller.principal.actor();
    render(
        "admin_settings.html",
        with(
            base,
            context! { current_tab => "settings", settings => Value::from_serialize(&*current), can => settings_rights(&actor) },
        ),
    )
}

#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    instance_name: Option<String>,
    banner_active: Option<String>,
    banner_text: Option<String>,
    login_message_active: Option<String>,
    login_message_title: Option<String>,
    login_message_body: Option<String>,
    system_email_address: Option<String>,
    default_job_priority: Option<String>,
    lane_queue_override: Option<String>,
    refuse_busy_gpus: Option<String>,
    maintenance_active: Option<String>,
    maintenance_message: Option<String>,
    default_import_policy: Option<String>,
}

pub async fn settings_submit(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Form(f): Form<SettingsForm>,
) -> Response {
    let base = match gate(
        &state,
        &caller,
        Action::ReadSetting(Setting::LookAndFeel),
        Resource::instance(),
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = caller.check_csrf(&f.csrf) {
        return r;
    }
    let actor = caller.principal.actor();
    let can = |field| allowed(&actor, field_action(field), Resource::instance());
    let on = |v: &Option<String>| v.as_deref() == Some("on");
    let mut patch = SettingsPatch::default();
    // Disabled inputs are not submitted: only fields this viewer may change are read.
    if can("instance_name") {
        patch.instance_name = f.instance_name.clone();
    }
    if can("banner") {
        patch.banner = Some(Banner {
            active: on(&f.banner_active),
            text: f.banner_text.clone().unwrap_or_default(),
        });
    }
    if can("login_message") {
        patch.login_message = Some(LoginMessage {
            active: on(&f.login_message_active),
            title: f.login_message_title.clone().unwrap_or_default(),
            body: f.login_message_body.clone().unwrap_or_default(),
        });
    }
    if can("system_email_address") {
        patch.system_email_address = f.system_email_address.clone();
    }
    let mut error = None;
    if can("default_job_priority") {
        if let Some(p) = f.default_job_priority.as_deref().map(str::trim) {
            match p.parse::<i64>() {
                Ok(p) => patch.default_job_priority = Some(p),
                Err(_) => {
                    error = Some(("default_job_priority", "must be an integer from 0 to 100"));
                }
            }
        }
        patch.lane_queue_override = Some(on(&f.lane_queue_override));
        patch.refuse_busy_gpus = Some(on(&f.refuse_busy_gpus));
    }
    if can("maintenance") {
        patch.maintenance = Some(Maintenance {
            active: on(&f.maintenance_active),
            message: f.maintenance_message.clone().unwrap_or_default(),
        });
    }
    if can("default_import_policy") {
        match f
            .default_import_policy
            .as_deref()
            .map(cryowarden_core::ImportPolicy::parse)
        {
            Some(Some(p)) => patch.default_import_policy = Some(p),
            Some(None) => {
                error = Some((
                    "default_import_policy",
                    "must be all_members, managers or facility_staff",
                ));
            }
            None => {}
        }
    }
    let result = match error {
        Some((field, message)) => Err(crate::error::StoreError::invalid(field, message)),
        None => settings::update(&state.db, &state.settings, &caller.ctx(), patch).await,
    };
    match result {
        Ok(_) => Redirect::to("/admin/settings?saved=1").into_response(),
        Err(e) => form_error(e, |error, status| {
            // Show the page again with what is stored (nothing changed) and the reason.
            let current = futures_util::FutureExt::now_or_never(state.settings.get(&state.db))
                .and_then(Result::ok)
                .unwrap_or_default();
            let mut r = render(
                "admin_settings.html",
                with(
                    base.clone(),
                    context! { current_tab => "settings", settings => Value::from_serialize(&*current), can => settings_rights(&actor), error },
                ),
            );
            *r.status_mut() = status;
            r
        }),
    }
}

#[derive(Deserialize, Default)]
pub struct UsersQuery {
    q: Option<String>,
    sort: Option<String>,
    page: Option<i64>,
}

const PER_PAGE: i64 = 50;

async fn users_page_inner(
    state: &AppState,
    caller: &PageCaller,
    base: Value,
    q: UsersQuery,
    created: Option<Value>,
) -> Response {
    let actor = caller.principal.actor();
    let sort = q.sort.clone().unwrap_or_else(|| "username".into());
    let query = ListQuery {
        q: q.q.clone(),
        sort: Some(sort.clone()),
        page: Some(q.page.unwrap_or(1).max(1)),
        per_page: Some(PER_PAGE),
        status: None,
        site_role: None,
    };
    let page = match users::list(&state.db, &caller.ctx(), &query).await {
        Ok(p) => p,
        Err(e) => {
            return form_error(e, |error, status| {
                message(base.clone(), status, "Cannot list users", &error)
            });
        }
    };
    let ids: Vec<i64> = page.users.iter().map(|u| u.id).collect();
    let pending = users::pending_tokens(&state.db, &ids)
        .await
        .unwrap_or_default();
    let instance_priority = state
        .settings
        .get(&state.db)
        .await
        .map(|s| s.default_job_priority)
        .unwrap_or(0);
    let rows: Vec<Value> = page
        .users
        .iter()
        .map(|u| {
            let target = u.target();
            let is_self = u.id == actor.user.0;
            let roles: Vec<&str> = if is_self {
                vec![u.site_role.as_str()]
            } else {
                SiteRole::ALL
                    .iter()
                    .filter(|r| {
                        **r == u.site_role
                            || allowed(&actor, Action::ChangeSiteRole { from: u.site_role, to: **r }, target)
                    })
                    .map(|r| r.as_str())
                    .collect()
            };
            let token_state = match pending.get(&u.id) {
                Some((kind, expires)) => format!("{kind} token pending until {}", expires.get(..10).unwrap_or(expires)),
                None if u.status == cryowarden_core::UserStatus::Invited => "no valid registration token".to_owned(),
                None => "none pending".to_owned(),
            };
            context! {
                user => Value::from_serialize(u),
                is_self,
                roles => if roles.len() > 1 || is_self { Value::from(roles) } else { Value::from(Vec::<&str>::new()) },
                token_state,
                can => context! {
                    edit => allowed(&actor, Activity::EditUser.into(), target),
                    permissions => allowed(&actor, Activity::UpdateSitePermissions.into(), target),
                    status => allowed(&actor, Activity::SetUserActive.into(), target),
                    token => allowed(&actor, Activity::ChangePassword.into(), target),
                    delete => allowed(&actor, Activity::DeleteUser.into(), target),
                    impersonate => u.status == cryowarden_core::UserStatus::Active
                        && allowed(&actor, Activity::Impersonate.into(), target),
                },
            }
        })
        .collect();
    let pages = ((page.total + PER_PAGE - 1) / PER_PAGE).max(1);
    let sortable = vec![
        context! { key => "username", title => "Username" },
        context! { key => "last_name", title => "Name" },
        context! { key => "email", title => "Email" },
    ];
    render(
        "admin_users.html",
        with(
            base,
            context! {
                current_tab => "users", rows, q => q.q.unwrap_or_default(), sort, page => page.page, pages, total => page.total,
                sortable, instance_priority, created, base_url => state.config.base_url(),
                can_create => allowed(&actor, Activity::CreateUser.into(), Resource::instance()),
                // Groups (labs) this viewer may impersonate: a phantom ordinary member.
                impersonable_groups => if allowed(&actor, Activity::Impersonate.into(), Resource::user(cryowarden_core::UserId(0), SiteRole::None)) {
                    crate::labs::list(&state.db, &caller.ctx()).await.unwrap_or_default().into_iter()
                        .map(|l| context! { id => l.id, name => l.name }).collect::<Vec<_>>()
                } else {
                    Vec::new()
                },
                // Roles this viewer may impersonate (as a phantom user holding the role).
                impersonable_roles => SiteRole::ALL
                    .iter()
                    .filter(|r| allowed(&actor, Activity::Impersonate.into(), Resource::user(cryowarden_core::UserId(0), **r)))
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>(),
            },
        ),
    )
}

pub async fn users_page(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Query(q): Query<UsersQuery>,
) -> Response {
    let base = match gate(
        &state,
        &caller,
        Activity::ViewUser.into(),
        Resource::instance(),
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    users_page_inner(&state, &caller, base, q, None).await
}

fn creatable_roles(actor: &Actor) -> Vec<&'static str> {
    SiteRole::ALL
        .iter()
        .filter(|r| {
            **r == SiteRole::None
                || allowed(
                    actor,
                    Action::ChangeSiteRole {
                        from: SiteRole::None,
                        to: **r,
                    },
                    Resource::user(cryowarden_core::UserId(-1), SiteRole::None),
                )
        })
        .map(|r| r.as_str())
        .collect()
}

pub async fn new_user_page(State(state): State<Arc<AppState>>, caller: PageCaller) -> Response {
    let base = match gate(
        &state,
        &caller,
        Activity::CreateUser.into(),
        Resource::instance(),
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = context! { email => "", username => "", first_name => "", last_name => "", site_role => "none" };
    render(
        "admin_user_new.html",
        with(
            base,
            context! { current_tab => "new-user", roles => creatable_roles(&caller.principal.actor()), form },
        ),
    )
}

#[derive(Deserialize)]
pub struct NewUserForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    email: String,
    username: String,
    first_name: String,
    last_name: String,
    site_role: String,
}

pub async fn new_user_submit(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Form(f): Form<NewUserForm>,
) -> Response {
    let base = match gate(
        &state,
        &caller,
        Activity::CreateUser.into(),
        Resource::instance(),
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = caller.check_csrf(&f.csrf) {
        return r;
    }
    let again = |error: String, status: StatusCode| {
        let form = context! { email => f.email.clone(), username => f.username.clone(), first_name => f.first_name.clone(), last_name => f.last_name.clone(), site_role => f.site_role.clone() };
        let mut r = render(
            "admin_user_new.html",
            with(
                base.clone(),
                context! { current_tab => "new-user", roles => creatable_roles(&caller.principal.actor()), form, error },
            ),
        );
        *r.status_mut() = status;
        r
    };
    let Some(role) = SiteRole::parse(&f.site_role) else {
        return again(
            "site_role is not a site role".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    if f.first_name.trim().is_empty() || f.last_name.trim().is_empty() {
        return again(
            "first and last name must not be empty".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let new = NewUser {
        username: f.username.clone(),
        email: f.email.clone(),
        first_name: f.first_name.clone(),
        last_name: f.last_name.clone(),
        site_role: Some(role),
    };
    match users::create(
        &state.db,
        &caller.ctx(),
        new,
        state.config.lifetimes().register_ms,
    )
    .await
    {
        Ok((user, token)) => {
            let created = context! { username => user.username.clone(), token => token.token, expires_at => token.expires_at, path => token.path };
            let q = UsersQuery {
                q: Some(user.username),
                sort: None,
                page: None,
            };
            let mut r = users_page_inner(&state, &caller, base, q, Some(created)).await;
            if r.status() == StatusCode::OK {
                *r.status_mut() = StatusCode::CREATED;
            }
            r
        }
        Err(e) => form_error(e, again),
    }
}

#[derive(Deserialize, Default)]
pub struct LogsQuery {
    service: Option<String>,
    lines: Option<String>,
}

pub async fn logs_page(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Query(q): Query<LogsQuery>,
) -> Response {
    let base = match gate(
        &state,
        &caller,
        Action::ReadSetting(Setting::InstanceLogs),
        Resource::instance(),
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let service = q.service.unwrap_or_else(|| "app".into());
    let services: Vec<&str> = crate::logs::Service::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let tail =
        match crate::logs::view::tail(&state, &caller.ctx(), &service, q.lines.as_deref()).await {
            Ok(v) => v,
            Err(e) => {
                let e = crate::http::error::ApiError::from(e);
                return message(base, e.status, "Instance Logs", &e.detail);
            }
        };
    let actor = caller.principal.actor();
    render(
        "admin_logs.html",
        with(
            base,
            context! {
                current_tab => "logs", services, service => tail.service.as_str(), lines => tail.count, counts => crate::logs::LINE_COUNTS.to_vec(),
                log_lines => tail.lines, can_report => allowed(&actor, Action::ReadSetting(Setting::DiagnosticReport), Resource::instance()),
            },
        ),
    )
}

#[derive(Deserialize)]
pub struct ReportForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    browser: String,
}

pub async fn report_download(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Form(f): Form<ReportForm>,
) -> Response {
    if let Err(r) = caller.check_csrf(&f.csrf) {
        return r;
    }
    // What the page sends is kept as sent when it is JSON, else as text: it is diagnostics.
    let browser = serde_json::from_str(&f.browser).unwrap_or_else(
        |_| serde_json::json!({ "unparsed": f.browser.chars().take(10_000).collect::<String>() }),
    );
    match crate::logs::view::report(&state, &caller.ctx(), browser).await {
        Ok(report) => {
            crate::http::download::attachment("application/zip", &report.file_name, report.zip)
        }
        Err(e) => {
            let e = crate::http::error::ApiError::from(e);
            let base = base_context(&state, Some(&caller), "admin").await;
            message(base, e.status, "Download report", &e.detail)
        }
    }
}

/// The explainer's form, read leniently (empty fields are absent).
#[derive(Deserialize, Default)]
pub struct ExplainForm {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    project: Option<String>,
}

/// The Permission Explainer tab: what authorize() decides for an actor, an action and a
/// resource, and the rule or bound behind it.
pub async fn explain_page(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Query(f): Query<ExplainForm>,
) -> Response {
    let base = match gate(
        &state,
        &caller,
        Activity::UpdateSitePermissions.into(),
        Resource::instance(),
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let some = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (actor, action) = (some(&f.actor), some(&f.action));
    let mut result = Value::UNDEFINED;
    let mut error = None;
    if let (Some(actor), Some(action)) = (&actor, &action) {
        let project = match some(&f.project).map(|p| p.parse::<i64>()) {
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => {
                error = Some("project must be a project id".to_owned());
                None
            }
            None => None,
        };
        if error.is_none() {
            let q = crate::explain::ExplainQuery {
                actor: actor.clone(),
                action: action.clone(),
                target: some(&f.target),
                project,
            };
            match crate::explain::explanation(&state, &q).await {
                Ok(e) => result = Value::from_serialize(&e),
                Err(e) => error = Some(crate::http::error::ApiError::from(e).detail),
            }
        }
    }
    let mut actions: Vec<String> = Activity::ALL
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    actions.extend(
        cryowarden_core::DataAction::ALL
            .iter()
            .map(|a| a.as_str().to_owned()),
    );
    for s in Setting::ALL {
        actions.push(format!("read-setting:{s}"));
        actions.push(format!("change-setting:{s}"));
    }
    render(
        "admin_explain.html",
        with(
            base,
            context! {
                current_tab => "explain",
                actor => actor.unwrap_or_default(),
                action => action.unwrap_or_default(),
                target => some(&f.target).unwrap_or_default(),
                project => some(&f.project).unwrap_or_default(),
                actions,
                result,
                error,
            },
        ),
    )
}
