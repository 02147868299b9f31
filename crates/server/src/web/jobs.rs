//! The pages of jobs and lanes (issue 5's UI): the admin panel's Cluster Configuration, Lane
//! Restrictions and Current Jobs tabs, and the data of the Jobs section of a project's page.
//! Pages are rendered from the same domain functions as the REST API; `static/jobs.js` changes
//! things through the API with the session's CSRF token and re-renders from its answers. Every
//! control is shown only where `authorize()` would allow its action (`web::allows`, not audited);
//! the domain functions check again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use cryowarden_core::jobs::JobStatus;
use cryowarden_core::{Action, Actor, DataAction, DataScope, Resource, Setting};
use minijinja::{Value, context};
use serde::Deserialize;

use super::panel::{READ_LANES, READ_VARS, gate};
use super::{PageCaller, allows, error_page, page_id, render, with};
use crate::cluster::ClusterInfo;
use crate::cluster::template::custom_variables;
use crate::context::Ctx;
use crate::error::StoreError;
use crate::jobs::{self, Job, JobQuery};
use crate::lanes::{self, LaneKind, LaneTarget, restrictions};
use crate::projects::{self, Project, ProjectStatus};
use crate::state::AppState;
use crate::users::{self, ListQuery};

const CHANGE_VARS: Action = Action::ChangeSetting {
    setting: Setting::ClusterCustomVariables,
    field: None,
};
/// The statuses of the Current Jobs tab.
const CURRENT: &str = "queued,launched,running";
/// Most rows of the Current Jobs tab and of a project's jobs.
const MAX_JOBS: i64 = 500;
/// Most users offered by the Lane Restrictions tab's picker at once (the search narrows them).
const MAX_USERS: i64 = 500;

// ---------------------------------------------------------------- Cluster Configuration

/// Which custom variables a cluster target's templates use, and where each one's value comes
/// from: the target's own value wins over the instance-wide one (a job's own value, given when
/// it is queued, wins over both).
fn cluster_target(t: &LaneTarget, instance: &BTreeMap<String, String>) -> Value {
    let mut used: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    let mut note = |field: &'static str, text: &str| match custom_variables(text) {
        Ok(vars) => {
            for v in vars {
                used.entry(v).or_default().push(field);
            }
        }
        Err(e) => problems.push(format!("{field}: {e}")),
    };
    note("cluster_script.sh", &t.script);
    match ClusterInfo::from_value(t.config.clone()) {
        Ok(info) => {
            for (field, tpl) in info.cmd_templates() {
                note(field, tpl);
            }
        }
        Err(e) => problems.push(format!("cluster_info.json: {e}")),
    }
    // Values the target sets that no template uses are listed too, so that they can be removed.
    for name in t.custom_vars.keys() {
        used.entry(name.clone()).or_default();
    }
    let rows: Vec<Value> = used
        .into_iter()
        .map(|(name, fields)| {
            let target_value = t.custom_vars.get(&name).cloned();
            let instance_value = instance.get(&name).cloned();
            let wins = match (&target_value, &instance_value) {
                (Some(_), _) => "target",
                (None, Some(_)) => "instance",
                (None, None) => "unset",
            };
            context! { name, used_in => fields, instance_value, target_value, wins }
        })
        .collect();
    context! { id => t.id, name => t.name.clone(), rows, problems }
}

/// `/admin/cluster`: instance-wide custom variables, each cluster target's variables, node lanes.
pub async fn cluster_page(State(state): State<Arc<AppState>>, caller: PageCaller) -> Response {
    let base = match gate(&state, &caller, READ_VARS, Resource::instance()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let loaded = async {
        Ok::<_, StoreError>((
            crate::scheduler::cluster::instance_vars(&state.db).await?,
            lanes::all(&state.db).await?,
        ))
    }
    .await;
    let (instance, all) = match loaded {
        Ok(v) => v,
        Err(e) => return error_page(base, e),
    };
    let mut clusters = Vec::new();
    let mut nodes = Vec::new();
    for lane in &all {
        match lane.kind {
            LaneKind::Cluster => {
                for t in &lane.targets {
                    clusters.push(with(
                        cluster_target(t, &instance),
                        context! { lane => lane.name.clone(), title => lane.title.clone() },
                    ));
                }
            }
            LaneKind::Node => {
                let targets: Vec<Value> = lane
                    .targets
                    .iter()
                    .map(|t| {
                        let node = t.node();
                        context! {
                            name => t.name.clone(),
                            hostname => t.hostname.clone(),
                            cpus => node.as_ref().map(|n| n.cpus),
                            ram_gb => node.as_ref().map(|n| n.ram_gb),
                            gpus => node.map(|n| n.gpus.iter().map(|g| context! { id => g.id, name => g.name.clone(), mem_mb => g.mem_mb }).collect::<Vec<_>>()).unwrap_or_default(),
                        }
                    })
                    .collect();
                nodes.push(context! { id => lane.id, name => lane.name.clone(), title => lane.title.clone(), targets });
            }
        }
    }
    let actor = caller.principal.actor();
    let instance_rows: Vec<Value> = instance
        .iter()
        .map(|(name, value)| context! { name => name.clone(), value => value.clone() })
        .collect();
    render(
        "admin_cluster.html",
        with(
            base,
            context! {
                current_tab => "cluster",
                instance_vars => instance_rows,
                clusters,
                nodes,
                can => context! {
                    vars => allows(&actor, CHANGE_VARS, &Resource::instance()),
                    compute => allows(&actor, lanes::COMPUTE, &Resource::instance()),
                },
            },
        ),
    )
}

// ---------------------------------------------------------------- Lane Restrictions

/// The Lane Restrictions tab's query: a search over users and the one picked.
#[derive(Deserialize, Default)]
pub struct LanesQuery {
    q: Option<String>,
    user: Option<String>,
}

/// `/admin/lanes`: pick a user; their allowed and not-allowed lanes.
pub async fn lanes_page(
    State(state): State<Arc<AppState>>,
    caller: PageCaller,
    Query(query): Query<LanesQuery>,
) -> Response {
    let base = match gate(&state, &caller, READ_LANES, Resource::instance()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ctx = caller.ctx();
    let actor = caller.principal.actor();
    let q = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let picked = query
        .user
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let picked = match picked
        .map(|raw| page_id(raw).ok_or(StoreError::NotFound { what: "user" }))
        .transpose()
    {
        Ok(p) => p,
        Err(e) => return error_page(base, e),
    };
    let list = ListQuery {
        q: q.clone(),
        sort: Some("username".into()),
        page: Some(1),
        per_page: Some(MAX_USERS),
        status: None,
        site_role: None,
    };
    let page = match users::list(&state.db, &ctx, &list).await {
        Ok(p) => p,
        Err(e) => return error_page(base, e),
    };
    let options: Vec<Value> = page
        .users
        .iter()
        .map(|u| {
            context! { id => u.id, username => u.username.clone(), name => format!("{} {}", u.first_name, u.last_name).trim().to_owned() }
        })
        .collect();
    let selected = match picked {
        None => None,
        Some(id) => {
            let loaded = async {
                let lanes = restrictions::get(&state.db, &ctx, id).await?;
                let user = users::get(&state.db, id).await?;
                Ok::<_, StoreError>((lanes, user))
            }
            .await;
            match loaded {
                Ok((lanes, user)) => Some(context! {
                    id => user.id,
                    username => user.username.clone(),
                    name => format!("{} {}", user.first_name, user.last_name).trim().to_owned(),
                    // Whoever may change restrictions queues to every lane whatever they say.
                    unrestricted => restrictions::unrestricted(&user.actor()),
                    allowed => lanes.allowed,
                    not_allowed => lanes.not_allowed,
                }),
                Err(e) => return error_page(base, e),
            }
        }
    };
    let selected_listed = picked.is_none_or(|id| page.users.iter().any(|u| u.id == id));
    render(
        "admin_lanes.html",
        with(
            base,
            context! {
                current_tab => "lanes",
                q => q.unwrap_or_default(),
                users => options,
                total => page.total,
                max_users => MAX_USERS,
                selected,
                selected_listed,
                can_edit => allows(&actor, restrictions::ACTION, &Resource::instance()),
            },
        ),
    )
}

// ---------------------------------------------------------------- Current Jobs

/// The projects among `ids` in which the actor may kill and clear jobs (`edit-project` with their
/// standing in each).
async fn editable_projects(
    state: &AppState,
    ctx: &Ctx,
    actor: &Actor,
    ids: &[i64],
) -> Result<Vec<i64>, StoreError> {
    let mut out = Vec::new();
    for id in ids.iter().copied().collect::<HashSet<_>>() {
        let project = projects::get(&state.db, id).await?;
        let scope = projects::standing_for(&state.db, ctx, &project).await?;
        if allows(actor, DataAction::EditProject, &Resource::data(scope)) {
            out.push(id);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// What the GPUs column says of a job: the GPUs it holds, else those it asked for, else how many.
fn gpus_text(job: &Job) -> String {
    let held: Option<Vec<String>> = job
        .assigned
        .as_ref()
        .and_then(|a| a.get("gpus"))
        .and_then(|g| g.as_array())
        .map(|g| g.iter().map(std::string::ToString::to_string).collect());
    match (held, &job.gpu_ids) {
        (Some(h), _) if !h.is_empty() => h.join(", "),
        (_, Some(ids)) if !ids.is_empty() => {
            format!(
                "{} (asked)",
                ids.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        _ if job.num_gpu > 0 => format!("{} (any)", job.num_gpu),
        _ => "—".to_owned(),
    }
}

/// What the queue column says of a job: its queue state and message, else why it failed.
fn queue_text(job: &Job) -> String {
    let parts: Vec<String> = [
        job.queue_state.map(|q| q.as_str().replace('_', " ")),
        job.queue_message.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    match (parts.is_empty(), &job.failure) {
        (false, _) => parts.join(": "),
        (true, Some(f)) => f.clone(),
        (true, None) => "—".to_owned(),
    }
}

/// A job as a row of the Current Jobs tab or of a project's jobs.
fn job_row(job: &Job, editable: bool) -> Value {
    context! {
        job => Value::from_serialize(job),
        job_type => job.job_type.as_str().replace('_', " "),
        gpus => gpus_text(job),
        queue => queue_text(job),
        kill => editable && job.status.can_become(JobStatus::Killed),
        clear => editable && job.status.can_become(JobStatus::Building),
    }
}

/// `/admin/jobs`: the queued, launched and running jobs of the whole instance.
pub async fn jobs_page(State(state): State<Arc<AppState>>, caller: PageCaller) -> Response {
    let everything = Resource::data(DataScope::default());
    let base = match gate(&state, &caller, DataAction::ViewProject.into(), everything).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let actor = caller.principal.actor();
    let query = JobQuery {
        status: Some(CURRENT.into()),
        limit: Some(MAX_JOBS),
        ..JobQuery::default()
    };
    let list = match jobs::list(&state.db, &caller.ctx(), &query).await {
        Ok(l) => l,
        Err(e) => return error_page(base, e),
    };
    // Staff edit every project; others (oversight) only those where they have an editing role.
    let kill_any = allows(&actor, DataAction::EditProject, &everything);
    let kill_projects = if kill_any {
        Vec::new()
    } else {
        let ids: Vec<i64> = list.iter().map(|j| j.project_id).collect();
        match editable_projects(&state, &caller.ctx(), &actor, &ids).await {
            Ok(p) => p,
            Err(e) => return error_page(base, e),
        }
    };
    let rows: Vec<Value> = list
        .iter()
        .map(|j| job_row(j, kill_any || kill_projects.contains(&j.project_id)))
        .collect();
    render(
        "admin_jobs.html",
        with(
            base,
            context! {
                current_tab => "jobs",
                rows,
                statuses => CURRENT,
                limit => MAX_JOBS,
                kill_any,
                kill_projects => kill_projects.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
            },
        ),
    )
}

// ---------------------------------------------------------------- a project's jobs

/// The Jobs section of a project's page: its jobs (newest first), whether the viewer may create,
/// queue, kill and clear them (`edit-project` with their standing), and the lanes they may queue
/// to (`lanes::list`).
pub async fn project_section(
    state: &AppState,
    ctx: &Ctx,
    actor: &Actor,
    project: &Project,
    scope: DataScope,
) -> Result<Value, StoreError> {
    let query = JobQuery {
        project: Some(project.id),
        limit: Some(MAX_JOBS),
        ..JobQuery::default()
    };
    let mut list = jobs::list(&state.db, ctx, &query).await?;
    list.sort_by_key(|j| std::cmp::Reverse(j.id));
    let edit = allows(actor, DataAction::EditProject, &Resource::data(scope));
    let create = edit && project.status == ProjectStatus::Active;
    let lanes: Vec<Value> = if create {
        lanes::list(&state.db, ctx)
            .await?
            .into_iter()
            .map(|l| context! { name => l.name, title => l.title, kind => l.kind.as_str() })
            .collect()
    } else {
        Vec::new()
    };
    Ok(context! {
        rows => list.iter().map(|j| job_row(j, edit)).collect::<Vec<_>>(),
        can_edit => edit,
        can_create => create,
        lanes,
        limit => MAX_JOBS,
    })
}
