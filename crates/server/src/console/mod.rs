//! The Admin Console (`spec/roles.md` §1): every setting with its group, title, description and
//! where its content lives, and the access logic. What a viewer may do with a row comes only
//! from `authorize(actor, ReadSetting(s))` and `authorize(actor, ChangeSetting { s, field })`:
//! `all`, `read-only`, or absent; a partial row lists the fields the viewer may only read.
//!
//! Content lives in three places: here (one module per group of settings, values stored in
//! `instance_settings` under `console:<key>`; look-and-feel, scheduler and system-maintenance
//! reuse [`crate::settings`]), in another feature's page (a link), or in [`crate::inspect`]
//! (the diagnostics), which this module calls and which authorizes itself.

pub mod active_users;
pub mod authentication;
pub mod email;
pub mod experimental;
pub mod redirects;
pub mod site;
pub mod store;
pub mod terms;

use cryowarden_core::{Action, Actor, Resource, Setting, authorize};
use serde::Serialize;
use serde_json::{Value, json};

use crate::context::{Ctx, Target};
use crate::error::StoreError;
use crate::services::Services;
use crate::settings::{self, SettingsPatch};

/// The console's three groups, in the order the page shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Configuration,
    Management,
    Diagnostics,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Configuration, Group::Management, Group::Diagnostics];
    pub fn title(self) -> &'static str {
        match self {
            Group::Configuration => "Configuration",
            Group::Management => "Management",
            Group::Diagnostics => "Diagnostics",
        }
    }
}

/// Where a setting's content lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// Shown and changed in the console, by this module.
    Here,
    /// The instance settings shared with the Instance Settings tab ([`crate::settings`]).
    Instance,
    /// Another feature's page.
    Link(&'static str),
    /// The diagnostics of [`crate::inspect`].
    Inspect,
    /// Not implemented in this release: the row says so.
    Unavailable,
}

/// What a form field holds, for the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    LongText,
    Number,
    Bool,
    /// A list of strings, one per line.
    Lines,
    /// Write-only: shown as `***` when set.
    Secret,
    Choice(&'static [&'static str]),
    /// Shown, never changed here (e.g. from the configuration file).
    Info,
}

/// One field of a setting's form. `name` may be dotted (`banner.text`) for nested values; the
/// part before the dot is the field that authorization and audit name.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: Kind,
}

const fn f(name: &'static str, label: &'static str, kind: Kind) -> Field {
    Field { name, label, kind }
}

/// One row of the registry.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub setting: Setting,
    pub group: Group,
    pub title: &'static str,
    pub description: &'static str,
    pub location: Location,
    /// The form of a setting whose content is here.
    pub fields: &'static [Field],
    /// Actions (`POST /api/v1/console/{key}/{action}`) with a label each.
    pub actions: &'static [(&'static str, &'static str)],
}

const LOOK_FIELDS: &[Field] = &[
    f("instance_name", "Instance name", Kind::Text),
    f("banner.active", "Show the banner", Kind::Bool),
    f("banner.text", "Banner text", Kind::Text),
    f("login_message.active", "Show the login message", Kind::Bool),
    f("login_message.title", "Login message title", Kind::Text),
    f("login_message.body", "Login message body", Kind::LongText),
    f("system_email_address", "System email address", Kind::Text),
];
const SCHEDULER_FIELDS: &[Field] = &[
    f(
        "default_job_priority",
        "Default job priority (0..100)",
        Kind::Number,
    ),
    f("lane_queue_override", "Lane queue override", Kind::Bool),
    f(
        "refuse_busy_gpus",
        "Refuse queueing to busy GPUs",
        Kind::Bool,
    ),
];
const MAINTENANCE_FIELDS: &[Field] = &[
    f("maintenance.active", "Maintenance mode", Kind::Bool),
    f("maintenance.message", "Maintenance message", Kind::LongText),
];

/// The registry entry of `setting`.
pub fn entry(setting: Setting) -> Entry {
    use Group::*;
    use Location::*;
    use Setting as S;
    let e = |group, title, description, location| Entry {
        setting,
        group,
        title,
        description,
        location,
        fields: &[],
        actions: &[],
    };
    match setting {
        S::LookAndFeel => Entry {
            fields: LOOK_FIELDS,
            ..e(
                Configuration,
                "Look and feel",
                "Instance name, banner, login message, system email address.",
                Instance,
            )
        },
        S::SiteSettings => Entry {
            fields: site::FIELDS,
            ..e(
                Configuration,
                "Site settings",
                "Base URL, listen address, session lifetimes, request size limit.",
                Here,
            )
        },
        S::Scheduler => Entry {
            fields: SCHEDULER_FIELDS,
            ..e(
                Configuration,
                "Scheduler",
                "Default job priority, lane queue override, busy GPUs.",
                Instance,
            )
        },
        S::Compute => e(
            Configuration,
            "Compute",
            "Lanes, node targets, cluster targets and their templates.",
            Link("/admin/cluster"),
        ),
        S::ClusterCustomVariables => e(
            Configuration,
            "Cluster custom variables",
            "Instance-wide and per-target custom variables of cluster templates.",
            Link("/admin/cluster"),
        ),
        S::LaneRestrictions => e(
            Configuration,
            "Lane restrictions",
            "Which lanes each user may see and queue to.",
            Link("/admin/lanes"),
        ),
        S::StorageRoots => e(
            Configuration,
            "Storage roots",
            "Lab data roots, project roots and Unix run-as accounts (on each lab's page).",
            Link("/labs"),
        ),
        S::Authentication => Entry {
            fields: authentication::FIELDS,
            ..e(
                Configuration,
                "Authentication",
                "Password policy and account lockout. LDAP and OIDC sign-in are not implemented.",
                Here,
            )
        },
        S::LdapSync => e(
            Configuration,
            "LDAP sync",
            "Directory group-to-lab mapping and sync runs: not available in this release.",
            Unavailable,
        ),
        S::ExternalRedirectHosts => Entry {
            fields: redirects::FIELDS,
            ..e(
                Configuration,
                "External redirect hosts",
                "Hosts that the sign-in page may send people on to (its `next=`).",
                Here,
            )
        },
        S::Email => Entry {
            fields: email::FIELDS,
            actions: &[("test", "Send a test email")],
            ..e(
                Configuration,
                "Email",
                "SMTP server for outgoing mail; send a test message.",
                Here,
            )
        },
        S::TermsOfUse => Entry {
            fields: terms::FIELDS,
            ..e(
                Configuration,
                "Terms of use",
                "Site-wide terms every user accepts once per version at sign-in.",
                Here,
            )
        },
        S::ExperimentalFeatures => Entry {
            fields: experimental::FIELDS,
            ..e(
                Configuration,
                "Experimental features",
                "Feature flags (see each flag's description).",
                Here,
            )
        },
        S::LimitActiveUsers => Entry {
            fields: active_users::FIELDS,
            actions: &[("apply", "Deactivate inactive users now")],
            ..e(
                Management,
                "Limit active users",
                "Cap on active users; automatic deactivation after days without sign-in.",
                Here,
            )
        },
        S::SystemMaintenance => Entry {
            fields: MAINTENANCE_FIELDS,
            ..e(
                Management,
                "System maintenance",
                "Maintenance mode and its message.",
                Instance,
            )
        },
        S::AuditLog => e(
            Management,
            "Audit log",
            "View, search and export the audit log.",
            Link("/admin/audit"),
        ),
        S::AuditLogMaintenance => e(
            Management,
            "Audit log maintenance",
            "Retention and archive of the audit log.",
            Link("/admin/audit"),
        ),
        S::SiteValidation => e(
            Management,
            "Site validation",
            "Run the installation test job on every lane.",
            Inspect,
        ),
        S::StartupProperties => e(
            Diagnostics,
            "Startup properties",
            "The configuration the server started with.",
            Inspect,
        ),
        S::EnvironmentVariables => e(
            Diagnostics,
            "Environment variables",
            "The server's environment (secrets redacted).",
            Inspect,
        ),
        S::SystemProperties => e(
            Diagnostics,
            "System properties",
            "Host, kernel, CPUs, memory, GPUs.",
            Inspect,
        ),
        S::DataSources => e(
            Diagnostics,
            "Data sources",
            "Database backend and connection.",
            Inspect,
        ),
        S::InstanceLogs => e(
            Diagnostics,
            "Instance logs",
            "Per-service logs, the last 50 to 500 lines.",
            Link("/admin/logs"),
        ),
        S::DiagnosticReport => e(
            Diagnostics,
            "Diagnostic report",
            "Download the zip of logs and runtime and browser diagnostics.",
            Link("/admin/logs"),
        ),
        S::RunningTasks => e(
            Diagnostics,
            "Running tasks",
            "Live server tasks, the scheduler loop, SLURM pollers.",
            Inspect,
        ),
        S::MemoryUsage => e(
            Diagnostics,
            "Memory usage",
            "Process memory figures.",
            Inspect,
        ),
        S::Queries => e(
            Diagnostics,
            "Queries",
            "Database query statistics.",
            Inspect,
        ),
        S::SiteErrors => e(
            Diagnostics,
            "Site errors",
            "Recent server errors; reset the list.",
            Inspect,
        ),
        S::Loggers => e(
            Diagnostics,
            "Loggers",
            "Change log levels at run time.",
            Inspect,
        ),
        S::CheckDatabase => e(
            Diagnostics,
            "Check database",
            "Integrity check, vacuum, backup.",
            Inspect,
        ),
        S::SqlScripts => e(Diagnostics, "SQL scripts", "Migration status.", Inspect),
        S::Credits => e(
            Diagnostics,
            "Credits",
            "Third-party components and their licences.",
            Inspect,
        ),
    }
}

/// Every row of the registry, in the order of `Setting::ALL`.
pub fn registry() -> impl Iterator<Item = Entry> {
    Setting::ALL.iter().map(|s| entry(*s))
}

/// The top-level fields of a setting's form (what `ChangeSetting { field }` names).
pub fn top_fields(e: &Entry) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for fl in e.fields {
        let top = fl.name.split('.').next().unwrap_or(fl.name);
        if !out.contains(&top) {
            out.push(top);
        }
    }
    out
}

/// A viewer's access to one row, as `authorize()` decides it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowAccess {
    /// `all` or `read-only`.
    pub access: &'static str,
    /// Fields of an `all` row that this viewer may only read.
    pub read_only_fields: Vec<&'static str>,
}

/// `None` when the row is absent for this viewer.
pub fn access(actor: &Actor, setting: Setting) -> Option<RowAccess> {
    let r = Resource::instance();
    if !authorize(actor, Action::ReadSetting(setting), &r).is_allowed() {
        return None;
    }
    if !authorize(
        actor,
        Action::ChangeSetting {
            setting,
            field: None,
        },
        &r,
    )
    .is_allowed()
    {
        return Some(RowAccess {
            access: "read-only",
            read_only_fields: vec![],
        });
    }
    let read_only_fields = top_fields(&entry(setting))
        .into_iter()
        .filter(|fl| {
            !authorize(
                actor,
                Action::ChangeSetting {
                    setting,
                    field: Some(fl),
                },
                &r,
            )
            .is_allowed()
        })
        .collect();
    Some(RowAccess {
        access: "all",
        read_only_fields,
    })
}

/// A row of `GET /api/v1/console`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Row {
    pub key: String,
    #[schema(value_type = String)]
    pub group: Group,
    pub title: String,
    pub description: String,
    /// `all` or `read-only`.
    pub access: String,
    pub read_only_fields: Vec<String>,
    /// `here`, `link`, `inspect` or `unavailable`.
    pub location: String,
    /// Where the content lives, for a `link` row.
    pub href: Option<String>,
}

/// The rows `actor` sees (absent rows left out), in registry order.
pub fn rows(actor: &Actor) -> Vec<Row> {
    registry()
        .filter_map(|e| {
            let a = access(actor, e.setting)?;
            let (location, href) = match e.location {
                Location::Here | Location::Instance => ("here", None),
                Location::Link(h) => ("link", Some(h.to_owned())),
                Location::Inspect => ("inspect", None),
                Location::Unavailable => ("unavailable", None),
            };
            Some(Row {
                key: e.setting.as_str().to_owned(),
                group: e.group,
                title: e.title.to_owned(),
                description: e.description.to_owned(),
                access: a.access.to_owned(),
                read_only_fields: a.read_only_fields.iter().map(|s| (*s).to_owned()).collect(),
                location: location.to_owned(),
                href,
            })
        })
        .collect()
}

/// Whether `actor` sees the console at all (any row).
pub fn opens(actor: &Actor) -> bool {
    Setting::ALL.iter().any(|s| access(actor, *s).is_some())
}

fn target(setting: Setting) -> Target {
    Target {
        kind: "setting",
        id: Some(setting.as_str().to_owned()),
        name: None,
    }
}

/// Refuses callers with no console column at all (ordinary users, project admins) with an
/// audited 403, before anything else is looked at.
pub async fn require_console(state: &Services, ctx: &Ctx) -> Result<(), StoreError> {
    let actor = ctx
        .actor
        .ok_or_else(|| StoreError::Internal("console with no actor".into()))?;
    if opens(&actor) {
        return Ok(());
    }
    // The first setting stands for the console as a whole in the refusal's audit event.
    ctx.authorize(
        &state.db,
        Action::ReadSetting(Setting::LookAndFeel),
        Resource::instance(),
        &target(Setting::LookAndFeel),
    )
    .await
    .map(drop)?;
    Ok(())
}

fn instance_subset(s: &settings::InstanceSettings, e: &Entry) -> Value {
    let all = serde_json::to_value(s).unwrap_or_default();
    let mut out = serde_json::Map::new();
    for fl in top_fields(e) {
        out.insert(fl.to_owned(), all[fl].clone());
    }
    Value::Object(out)
}

/// The content of a row as the caller may see it (authorized as `ReadSetting`).
pub async fn view(state: &Services, ctx: &Ctx, setting: Setting) -> Result<Value, StoreError> {
    let e = entry(setting);
    if e.location == Location::Inspect {
        // The diagnostics authorize themselves.
        return match crate::inspect::view(state, ctx, setting).await {
            Err(StoreError::NotFound { .. }) => {
                ctx.authorize(
                    &state.db,
                    Action::ReadSetting(setting),
                    Resource::instance(),
                    &target(setting),
                )
                .await
                .map(drop)?;
                Ok(json!({ "available": false, "message": "not available yet" }))
            }
            other => other,
        };
    }
    ctx.authorize(
        &state.db,
        Action::ReadSetting(setting),
        Resource::instance(),
        &target(setting),
    )
    .await
    .map(drop)?;
    Ok(match e.location {
        Location::Instance => instance_subset(&settings::load(&state.db).await?, &e),
        Location::Link(href) => json!({ "href": href }),
        Location::Unavailable => json!({ "available": false, "message": e.description }),
        Location::Inspect => unreachable!("handled above"),
        Location::Here => match setting {
            Setting::Authentication => authentication::view(&state.db).await?,
            Setting::SiteSettings => site::view(state).await?,
            Setting::TermsOfUse => store::redacted::<terms::Terms>(&state.db).await?,
            Setting::LimitActiveUsers => active_users::view(&state.db).await?,
            Setting::ExternalRedirectHosts => {
                store::redacted::<redirects::RedirectHosts>(&state.db).await?
            }
            Setting::Email => store::redacted::<email::EmailSettings>(&state.db).await?,
            Setting::ExperimentalFeatures => experimental::view(&state.db).await?,
            _ => return Err(StoreError::NotFound { what: "setting" }),
        },
    })
}

/// Changes a row with a JSON object of fields, returning the new value. Read-only and absent
/// rows are refused (audited) before the body is looked at; a partial row's read-only field is
/// refused naming the field; bad input is a 422 naming the field; nothing changes on a refusal.
pub async fn update(
    state: &Services,
    ctx: &Ctx,
    setting: Setting,
    body: Value,
) -> Result<Value, StoreError> {
    let e = entry(setting);
    if e.location == Location::Inspect {
        // Only read, or acted upon (POST .../{action}); authorize first so a refusal is a 403.
        ctx.authorize(
            &state.db,
            Action::ReadSetting(setting),
            Resource::instance(),
            &target(setting),
        )
        .await
        .map(drop)?;
    }
    ctx.authorize(
        &state.db,
        Action::ChangeSetting {
            setting,
            field: None,
        },
        Resource::instance(),
        &target(setting),
    )
    .await
    .map(drop)?;
    let Value::Object(map) = body else {
        return Err(StoreError::invalid(
            "body",
            "must be a JSON object of the setting's fields",
        ));
    };
    match e.location {
        Location::Instance => {
            let allowed = top_fields(&e);
            if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(StoreError::invalid(
                    "body",
                    format!(
                        "`{}` is not a field of {setting}: use {}",
                        k.chars().take(40).collect::<String>(),
                        allowed.join(", ")
                    ),
                ));
            }
            let patch: SettingsPatch = store::from_object(&allowed, Value::Object(map))?;
            let after = settings::update(&state.db, &state.settings, ctx, patch).await?;
            Ok(instance_subset(&after, &e))
        }
        Location::Here => match setting {
            Setting::Authentication => {
                store::update::<authentication::AuthPolicy>(&state.db, ctx, setting, map).await?;
                authentication::view(&state.db).await
            }
            Setting::SiteSettings => site::update(state, ctx, map).await,
            Setting::TermsOfUse => terms::update(&state.db, ctx, map).await,
            Setting::LimitActiveUsers => {
                store::update::<active_users::ActiveUserLimits>(&state.db, ctx, setting, map)
                    .await?;
                active_users::view(&state.db).await
            }
            Setting::ExternalRedirectHosts => {
                store::update::<redirects::RedirectHosts>(&state.db, ctx, setting, map)
                    .await
                    .map(store::redact)
            }
            Setting::Email => store::update::<email::EmailSettings>(&state.db, ctx, setting, map)
                .await
                .map(store::redact),
            Setting::ExperimentalFeatures => {
                store::update::<experimental::Flags>(&state.db, ctx, setting, map).await?;
                experimental::view(&state.db).await
            }
            _ => Err(StoreError::NotFound { what: "setting" }),
        },
        Location::Link(href) => Err(StoreError::invalid(
            "body",
            format!("{setting} is changed on its own page: {href}"),
        )),
        Location::Inspect => Err(StoreError::invalid(
            "body",
            format!("{setting} has actions, not fields"),
        )),
        Location::Unavailable => Err(StoreError::invalid(
            "body",
            format!("{setting} is not available in this release"),
        )),
    }
}

/// Runs an action of a row (`email/test`, `limit-active-users/apply`, or a diagnostic's).
pub async fn act(
    state: &Services,
    ctx: &Ctx,
    setting: Setting,
    action: &str,
    body: Value,
) -> Result<Value, StoreError> {
    let e = entry(setting);
    if e.location == Location::Inspect {
        return match crate::inspect::act(state, ctx, setting, action, body).await {
            Err(StoreError::NotFound { .. }) => {
                ctx.authorize(
                    &state.db,
                    Action::ChangeSetting {
                        setting,
                        field: None,
                    },
                    Resource::instance(),
                    &target(setting),
                )
                .await
                .map(drop)?;
                Err(StoreError::NotFound {
                    what: "action (not available yet)",
                })
            }
            other => other,
        };
    }
    let known = e.actions.iter().any(|(a, _)| *a == action);
    if !known {
        // Still authorized first, so that a stranger learns nothing about the row.
        ctx.authorize(
            &state.db,
            Action::ReadSetting(setting),
            Resource::instance(),
            &target(setting),
        )
        .await
        .map(drop)?;
        return Err(StoreError::NotFound { what: "action" });
    }
    match (setting, action) {
        (Setting::Email, "test") => email::send_test(&state.db, ctx, body).await,
        (Setting::LimitActiveUsers, "apply") => active_users::apply(state, ctx).await,
        _ => Err(StoreError::NotFound { what: "action" }),
    }
}

/// Records that the caller was refused a tab of the admin panel (asked as `needed` on
/// `resource`, the page named after it), as every refusal is: through `Ctx::authorize`.
pub async fn record_tab_refusal(
    services: &crate::services::Services,
    ctx: &crate::context::Ctx,
    needed: cryowarden_core::Action,
    resource: cryowarden_core::Resource,
) {
    let target = crate::context::Target {
        kind: "page",
        id: None,
        name: Some(format!("admin:{}", needed.name())),
    };
    if let Err(e) = ctx.authorize(&services.db, needed, resource, &target).await
        && !matches!(e, crate::error::StoreError::Denied(_))
    {
        tracing::warn!(error = %e, "could not record a refused admin tab");
    }
}
