//! `/api/v1/lanes`, `/api/v1/jobs`, `/api/v1/commands`: lanes and their targets, lane
//! restrictions, command templates, and jobs (create, queue, kill, clear, list, log).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;

use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiQuery, Caller, Id};
use crate::jobs::commands::{self, CommandTemplate};
use crate::jobs::{self, Job, JobQuery, NewJob, QueueRequest};
use crate::lanes::info::{ClusterInfoOutput, ClusterInfoQuery};
use crate::lanes::restrictions::{self, SetRestrictions, UserLanes};
use crate::lanes::{self, Lane, NewLane, NewNodeTarget};
use crate::state::AppState;

/// The lanes the caller may queue to (all of them for admins), with their targets.
#[utoipa::path(
    get,
    path = "/api/v1/lanes",
    tag = "jobs",
    responses((status = 200, body = Vec<Lane>)),
)]
pub async fn list_lanes(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<Lane>>> {
    Ok(axum::Json(lanes::list(&state.db, &caller.ctx()).await?))
}

/// Create a lane (the `compute` setting).
#[utoipa::path(
    post,
    path = "/api/v1/lanes",
    tag = "jobs",
    request_body = NewLane,
    responses(
        (status = 201, body = Lane),
        (status = 403, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn create_lane(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(new): ApiJson<NewLane>,
) -> ApiResult<(StatusCode, axum::Json<Lane>)> {
    let lane = lanes::create(&state.db, &caller.ctx(), new).await?;
    state.scheduler.wake();
    Ok((StatusCode::CREATED, axum::Json(lane)))
}

/// Remove a lane and its targets (queued jobs on it go back to building).
#[utoipa::path(
    delete,
    path = "/api/v1/lanes/{id}",
    tag = "jobs",
    params(("id" = i64, Path)),
    responses(
        (status = 204),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
    ),
)]
pub async fn remove_lane(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    lanes::remove(&state.db, &caller.ctx(), id).await?;
    state.scheduler.reload(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a node target (CPU, GPU and RAM slots) to a node lane.
#[utoipa::path(
    post,
    path = "/api/v1/lanes/{id}/targets",
    tag = "jobs",
    params(("id" = i64, Path)),
    request_body = NewNodeTarget,
    responses(
        (status = 200, body = Lane),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn add_target(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(new): ApiJson<NewNodeTarget>,
) -> ApiResult<axum::Json<Lane>> {
    let lane = lanes::add_node_target(&state.db, &caller.ctx(), id, new).await?;
    state.scheduler.wake();
    Ok(axum::Json(lane))
}

/// A user's allowed and not-allowed lanes.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/lanes",
    tag = "jobs",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = UserLanes),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
    ),
)]
pub async fn user_lanes(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<UserLanes>> {
    Ok(axum::Json(
        restrictions::get(&state.db, &caller.ctx(), id).await?,
    ))
}

/// Set the lanes a user may not queue to.
#[utoipa::path(
    put,
    path = "/api/v1/users/{id}/lanes",
    tag = "jobs",
    params(("id" = i64, Path)),
    request_body = SetRestrictions,
    responses(
        (status = 200, body = UserLanes),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn set_user_lanes(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(req): ApiJson<SetRestrictions>,
) -> ApiResult<axum::Json<UserLanes>> {
    Ok(axum::Json(
        restrictions::set(&state.db, &caller.ctx(), id, req).await?,
    ))
}

/// The registered command templates.
#[utoipa::path(
    get,
    path = "/api/v1/commands",
    tag = "jobs",
    responses((status = 200, body = Vec<CommandTemplate>)),
)]
pub async fn list_commands(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
) -> ApiResult<axum::Json<Vec<CommandTemplate>>> {
    Ok(axum::Json(commands::list(&state.db).await?))
}

/// Register or replace a command template (the `compute` setting).
#[utoipa::path(
    put,
    path = "/api/v1/commands",
    tag = "jobs",
    request_body = CommandTemplate,
    responses(
        (status = 200, body = CommandTemplate),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn put_command(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(t): ApiJson<CommandTemplate>,
) -> ApiResult<axum::Json<CommandTemplate>> {
    Ok(axum::Json(
        commands::put(&state.db, &caller.ctx(), t).await?,
    ))
}

/// Jobs of a project, or the instance's current jobs for those who see every project.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    params(JobQuery),
    responses(
        (status = 200, body = Vec<Job>),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> ApiResult<axum::Json<Vec<Job>>> {
    Ok(axum::Json(jobs::list(&state.db, &caller.ctx(), &q).await?))
}

/// Create a job (building) in a project; its directory is made as the lab's Unix account.
#[utoipa::path(
    post,
    path = "/api/v1/jobs",
    tag = "jobs",
    request_body = NewJob,
    responses(
        (status = 201, body = Job),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(new): ApiJson<NewJob>,
) -> ApiResult<(StatusCode, axum::Json<Job>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(jobs::create(&state.db, &state.runner, &caller.ctx(), new).await?),
    ))
}

/// One job.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = i64, Path)),
    responses((status = 200, body = Job), (status = 404, body = Problem)),
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<Job>> {
    Ok(axum::Json(jobs::show(&state.db, &caller.ctx(), id).await?))
}

/// Queue a job to a lane (and optionally a target and its GPUs).
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/queue",
    tag = "jobs",
    params(("id" = i64, Path)),
    request_body = QueueRequest,
    responses(
        (status = 200, body = Job),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn queue(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(req): ApiJson<QueueRequest>,
) -> ApiResult<axum::Json<Job>> {
    // Queueing directly to GPUs that running jobs hold: refused, or a warning, per the setting.
    let mut warnings = Vec::new();
    if let (Some(t), Some(ids)) = (&req.target, &req.gpu_ids)
        && let Ok(lane) = lanes::find(&state.db, &req.lane).await
        && let Some(target) = lane.targets.iter().find(|x| x.name.eq_ignore_ascii_case(t))
    {
        let busy = state.scheduler.busy_gpus(target.id);
        let clash: Vec<u32> = ids.iter().filter(|g| busy.contains(g)).copied().collect();
        if !clash.is_empty() {
            let said = format!(
                "GPU(s) {clash:?} of {} are held by running jobs",
                target.name
            );
            if state.settings.get(&state.db).await?.refuse_busy_gpus {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "gpus-busy",
                    format!("{said}: choose other GPUs, or queue without naming them"),
                )
                .field("gpu_ids"));
            }
            warnings.push(format!("{said}: the job waits for them"));
        }
    }
    let mut job = jobs::queue(&state.db, &state.settings, &caller.ctx(), id, req).await?;
    state.scheduler.enqueued(&job);
    job.warnings = warnings;
    Ok(axum::Json(job))
}

/// Kill a job: at once when queued; a launched or running job is stopped and then marked killed.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/kill",
    tag = "jobs",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = Job),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
    ),
)]

pub async fn kill(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<Job>> {
    let job = jobs::kill(&state.db, &caller.ctx(), id).await?;
    state.scheduler.stop(&state, &job).await?;
    Ok(axum::Json(jobs::get(&state.db, id).await?))
}

/// Take a finished job back to building (its priority is reset).
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/clear",
    tag = "jobs",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = Job),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
    ),
)]
pub async fn clear(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<Job>> {
    Ok(axum::Json(jobs::clear(&state.db, &caller.ctx(), id).await?))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Bytes of the log already read: the answer starts there (for --follow).
    #[serde(default)]
    pub offset: Option<u64>,
}

/// A job's log from `offset` (at most 1 MiB), read as the lab's Unix account.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/log",
    tag = "jobs",
    params(("id" = i64, Path), LogQuery),
    responses((status = 200, body = crate::jobs::LogChunk), (status = 404, body = Problem)),
)]
pub async fn log(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<axum::Json<crate::jobs::LogChunk>> {
    Ok(axum::Json(
        jobs::log(
            &state.db,
            &state.runner,
            &caller.ctx(),
            id,
            q.offset.unwrap_or(0),
        )
        .await?,
    ))
}

/// Add or update a cluster target from CryoSPARC's cluster_info.json and cluster_script.sh
/// (`cryowarden cluster connect`); its lane is named after it (a safe name derived from it when
/// it has spaces or other characters a lane name cannot hold). Every template is rendered once
/// with sample values first; the answer warns of what will not work as the file expects.
#[utoipa::path(
    post,
    path = "/api/v1/clusters",
    tag = "jobs",
    request_body = lanes::ConnectCluster,
    responses(
        (status = 200, body = lanes::ConnectedCluster),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn connect_cluster(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(req): ApiJson<lanes::ConnectCluster>,
) -> ApiResult<axum::Json<lanes::ConnectedCluster>> {
    let connected = lanes::connect_cluster(&state.db, &caller.ctx(), req).await?;
    state.scheduler.wake();
    Ok(axum::Json(connected))
}

/// Set a target's custom variables (the `cluster-custom-variables` setting).
#[utoipa::path(
    put,
    path = "/api/v1/targets/{id}/custom-vars",
    tag = "jobs",
    params(("id" = i64, Path)),
    request_body = std::collections::BTreeMap<String,
    String>,
    responses(
        (status = 200, body = Lane),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn set_target_vars(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(vars): ApiJson<std::collections::BTreeMap<String, String>>,
) -> ApiResult<axum::Json<Lane>> {
    Ok(axum::Json(
        lanes::set_target_vars(&state.db, &caller.ctx(), id, vars).await?,
    ))
}

/// The instance-wide custom variables.
#[utoipa::path(
    get,
    path = "/api/v1/custom-vars",
    tag = "jobs",
    responses(
        (status = 200, body = std::collections::BTreeMap<String, String>),
        (status = 403, body = Problem),
    ),
)]
pub async fn instance_vars(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<axum::Json<std::collections::BTreeMap<String, String>>> {
    Ok(axum::Json(
        lanes::info::instance_vars(&state, &caller.ctx()).await?,
    ))
}

/// Replace the instance-wide custom variables.
#[utoipa::path(
    put,
    path = "/api/v1/custom-vars",
    tag = "jobs",
    request_body = std::collections::BTreeMap<String,
    String>,
    responses(
        (status = 200, body = std::collections::BTreeMap<String, String>),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn set_instance_vars(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(vars): ApiJson<std::collections::BTreeMap<String, String>>,
) -> ApiResult<axum::Json<std::collections::BTreeMap<String, String>>> {
    Ok(axum::Json(
        lanes::set_instance_vars(&state.db, &caller.ctx(), vars).await?,
    ))
}

/// Queue many jobs to one lane at once (one durable commit; all or none): the fields of a
/// single queue request, plus the jobs.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueMany {
    pub job_ids: Vec<i64>,
    pub lane: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub gpu_ids: Option<Vec<u32>>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub custom_vars: std::collections::BTreeMap<String, String>,
}

/// Queue many jobs to one lane in one transaction: every job is checked first, and a refusal
/// queues none.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/queue",
    tag = "jobs",
    request_body = QueueMany,
    responses(
        (status = 200, body = Vec<Job>),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn queue_many(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(req): ApiJson<QueueMany>,
) -> ApiResult<axum::Json<Vec<Job>>> {
    let QueueMany {
        job_ids,
        lane,
        target,
        gpu_ids,
        priority,
        custom_vars,
    } = req;
    let queue = QueueRequest {
        lane,
        target,
        gpu_ids,
        priority,
        custom_vars,
    };
    let jobs = jobs::queue_many(&state.db, &state.settings, &caller.ctx(), &job_ids, queue).await?;
    for j in &jobs {
        state.scheduler.enqueued(j);
    }
    Ok(axum::Json(jobs))
}

/// Run a cluster lane's `qinfo_cmd_tpl` (e.g. `sinfo`), as `cluster validate` does first: with
/// `/bin/sh -c`, through the lane's `send_cmd_tpl`, as the Unix account of the lab of
/// `project` (which the caller must be able to see).
#[utoipa::path(
    post,
    path = "/api/v1/lanes/{id}/cluster-info",
    tag = "jobs",
    params(("id" = i64, Path), ClusterInfoQuery),
    responses(
        (status = 200, body = ClusterInfoOutput),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn cluster_info(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiQuery(q): ApiQuery<ClusterInfoQuery>,
) -> ApiResult<axum::Json<ClusterInfoOutput>> {
    Ok(axum::Json(
        lanes::info::cluster_info(&state, &caller.ctx(), id, &q).await?,
    ))
}

/// The exposures imported into a project (by path), optionally of one import job.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/exposures",
    tag = "jobs",
    params(("id" = i64, Path), jobs::ExposureQuery),
    responses(
        (status = 200, body = jobs::ExposurePage),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn exposures(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiQuery(q): ApiQuery<jobs::ExposureQuery>,
) -> ApiResult<axum::Json<jobs::ExposurePage>> {
    Ok(axum::Json(
        jobs::exposures(&state.db, &caller.ctx(), id, &q).await?,
    ))
}
