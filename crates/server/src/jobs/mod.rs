//! Jobs: created in a project (building), queued to a lane with an effective priority, launched
//! by the scheduler, and finished. Creating, queueing, killing and clearing a job is
//! `edit-project` on its project; seeing it is `view-project` (another lab's job is "not found").
//! Import jobs also need `import-data` under the lab's import policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cryowarden_core::jobs::{JobStatus, JobType, PriorityFacts, QueueState, effective_priority};
use cryowarden_core::{DataAction, DataScope, Resource};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row};

use crate::context::{Ctx, Target};
use crate::db::{Db, format_ms, now_ms};
use crate::error::StoreError;
use crate::lanes::{self, LaneKind};
use crate::projects::{self, Project, ProjectStatus};
use crate::runner::Runner;

/// Names a custom variable may have, and how long a value may be.
pub fn check_custom_vars(
    field: &'static str,
    vars: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    const RESERVED: &[&str] = &["num_cpu", "num_gpu", "ram_gb"];
    if vars.len() > 100 {
        return Err(StoreError::invalid(field, "at most 100 custom variables"));
    }
    for (k, v) in vars {
        let ok_name = !k.is_empty()
            && k.len() <= 64
            && k.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok_name {
            return Err(StoreError::invalid(
                field,
                format!("`{k}` is not a variable name (letters, digits, _)"),
            ));
        }
        if RESERVED.contains(&k.as_str()) {
            return Err(StoreError::invalid(
                field,
                format!("`{k}` is set by the job's resources and cannot be overridden"),
            ));
        }
        if v.len() > 4096 {
            return Err(StoreError::invalid(
                field,
                format!("the value of `{k}` is over 4096 bytes"),
            ));
        }
    }
    Ok(())
}

/// A job as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub id: i64,
    /// `J<number>` within the project.
    pub uid: String,
    pub project_id: i64,
    pub project: String,
    pub lab_id: i64,
    pub workspace_id: Option<i64>,
    #[schema(value_type = String)]
    pub job_type: JobType,
    pub title: String,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub creator_id: Option<i64>,
    pub creator: Option<String>,
    pub priority: i64,
    pub num_cpu: i64,
    pub num_gpu: i64,
    pub ram_gb: i64,
    pub lane_id: Option<i64>,
    pub lane: Option<String>,
    pub target_id: Option<i64>,
    pub gpu_ids: Option<Vec<u32>>,
    pub custom_vars: BTreeMap<String, String>,
    #[schema(value_type = String)]
    pub status: JobStatus,
    #[schema(value_type = Option<String>)]
    pub queue_state: Option<QueueState>,
    pub queue_message: Option<String>,
    /// Order of entry into the queue (internal: FIFO within a priority).
    #[serde(skip)]
    pub queued_seq: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub assigned: Option<serde_json::Value>,
    pub cluster_job_id: Option<String>,
    pub pid: Option<i64>,
    pub failure: Option<String>,
    /// The job's directory, inside the project's.
    pub job_dir: String,
    pub created_at: String,
    /// Said when the job was queued (e.g. that its GPUs are busy and it waits for them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub queued_at: Option<String>,
    pub launched_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Job {
    pub fn audit_target(&self) -> Target {
        Target {
            kind: "job",
            id: Some(self.id.to_string()),
            name: Some(format!("{}/{}", self.project, self.uid)),
        }
    }
    pub fn log_path(&self) -> PathBuf {
        Path::new(&self.job_dir).join("job.log")
    }
}

const COLUMNS: &str = "j.id, j.project_id, p.name AS project_name, p.lab_id, p.parent_dir, p.dir_name, j.workspace_id, \
    j.number, j.job_type, j.title, j.params, j.creator_id, u.username AS creator, j.priority, j.num_cpu, j.num_gpu, \
    j.ram_gb, j.lane_id, la.name AS lane_name, j.target_id, j.gpu_ids, j.custom_vars, j.status, j.queue_state, \
    j.queue_message, j.queued_seq, j.assigned, j.cluster_job_id, j.pid, j.failure, j.created_at, j.queued_at, j.launched_at, \
    j.started_at, j.finished_at";
const FROM: &str = "jobs j JOIN projects p ON p.id = j.project_id LEFT JOIN users u ON u.id = j.creator_id \
    LEFT JOIN lanes la ON la.id = j.lane_id";

fn opt_time(r: &sqlx::any::AnyRow, col: &str) -> Result<Option<String>, StoreError> {
    Ok(r.try_get::<Option<i64>, _>(col)?.map(format_ms))
}

fn json_col<T: serde::de::DeserializeOwned>(
    r: &sqlx::any::AnyRow,
    col: &str,
) -> Result<T, StoreError> {
    let text: String = r.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Internal(format!("stored job {col}: {e}")))
}

pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<Job, StoreError> {
    let number: i64 = r.try_get("number")?;
    let parent: String = r.try_get("parent_dir")?;
    let dir: String = r.try_get("dir_name")?;
    let status: String = r.try_get("status")?;
    let job_type: String = r.try_get("job_type")?;
    Ok(Job {
        id: r.try_get("id")?,
        uid: format!("J{number}"),
        project_id: r.try_get("project_id")?,
        project: r.try_get("project_name")?,
        lab_id: r.try_get("lab_id")?,
        workspace_id: r.try_get("workspace_id")?,
        job_type: JobType::parse(&job_type)
            .ok_or_else(|| StoreError::Internal(format!("job type {job_type}")))?,
        title: r.try_get("title")?,
        params: json_col(r, "params")?,
        creator_id: r.try_get("creator_id")?,
        creator: r.try_get("creator")?,
        priority: r.try_get("priority")?,
        num_cpu: r.try_get("num_cpu")?,
        num_gpu: r.try_get("num_gpu")?,
        ram_gb: r.try_get("ram_gb")?,
        lane_id: r.try_get("lane_id")?,
        lane: r.try_get("lane_name")?,
        target_id: r.try_get("target_id")?,
        gpu_ids: r
            .try_get::<Option<String>, _>("gpu_ids")?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Internal(format!("gpu_ids: {e}")))?,
        custom_vars: json_col(r, "custom_vars")?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Internal(format!("job status {status}")))?,
        queue_state: r
            .try_get::<Option<String>, _>("queue_state")?
            .as_deref()
            .and_then(QueueState::parse),
        queue_message: r.try_get("queue_message")?,
        queued_seq: r.try_get("queued_seq")?,
        assigned: r
            .try_get::<Option<String>, _>("assigned")?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Internal(format!("assigned: {e}")))?,
        cluster_job_id: r.try_get("cluster_job_id")?,
        pid: r.try_get("pid")?,
        failure: r.try_get("failure")?,
        job_dir: Path::new(&parent)
            .join(dir)
            .join(format!("J{number}"))
            .to_string_lossy()
            .into_owned(),
        created_at: format_ms(r.try_get("created_at")?),
        warnings: Vec::new(),
        queued_at: opt_time(r, "queued_at")?,
        launched_at: opt_time(r, "launched_at")?,
        started_at: opt_time(r, "started_at")?,
        finished_at: opt_time(r, "finished_at")?,
    })
}

/// A job by id, whoever asks (the scheduler's view).
pub async fn get(db: &Db, id: i64) -> Result<Job, StoreError> {
    let row = sqlx::query::<Any>(&format!("SELECT {COLUMNS} FROM {FROM} WHERE j.id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound { what: "job" })?;
    from_row(&row)
}

/// Jobs in the given statuses (the scheduler's view).
pub async fn in_status(db: &Db, statuses: &[JobStatus]) -> Result<Vec<Job>, StoreError> {
    let list = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    let rows = sqlx::query::<Any>(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE j.status IN ({list}) ORDER BY j.priority DESC, j.queued_seq, j.id"
    ))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// A job the caller may see, with the proof of `action` on its project.
async fn access(
    db: &Db,
    ctx: &Ctx,
    id: i64,
    action: DataAction,
) -> Result<(Job, Project, DataScope, cryowarden_core::Allowed), StoreError> {
    let job = get(db, id).await?;
    let (project, scope, proof) = match projects::access(db, ctx, job.project_id, action).await {
        Err(StoreError::Denied(d)) if d.conceal => {
            return Err(StoreError::NotFound { what: "job" });
        }
        Err(StoreError::NotFound { .. }) => return Err(StoreError::NotFound { what: "job" }),
        other => other?,
    };
    Ok((job, project, scope, proof))
}

/// One job.
pub async fn show(db: &Db, ctx: &Ctx, id: i64) -> Result<Job, StoreError> {
    Ok(access(db, ctx, id, DataAction::ViewProject).await?.0)
}

/// What a user fills in to create a job.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    pub project_id: i64,
    #[serde(default)]
    pub workspace_id: Option<i64>,
    #[schema(value_type = String)]
    pub job_type: JobType,
    #[serde(default)]
    pub title: Option<String>,
    /// import_*: {"root": a data root of the lab (default: the first), "path": a path or a glob
    /// whose last component may hold * ? [..]}; command: {"template": NAME, "values": {..}};
    /// validation: {}.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    #[serde(default)]
    pub num_cpu: Option<i64>,
    #[serde(default)]
    pub num_gpu: Option<i64>,
    #[serde(default)]
    pub ram_gb: Option<i64>,
}

/// Checks a job's parameters for its type; answers the resources it needs by default.
async fn check_params(
    db: &Db,
    job_type: JobType,
    params: &serde_json::Value,
    lab: &crate::labs::Lab,
) -> Result<(i64, i64, i64), StoreError> {
    let obj = match params {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(m) => m.clone(),
        _ => return Err(StoreError::invalid("params", "must be an object")),
    };
    let allowed_keys: &[&str] = match job_type {
        JobType::ImportMovies | JobType::ImportMicrographs => &["root", "path"],
        JobType::Command => &["template", "values"],
        JobType::Validation => &[],
    };
    if let Some(k) = obj.keys().find(|k| !allowed_keys.contains(&k.as_str())) {
        return Err(StoreError::invalid(
            "params",
            format!("unknown parameter `{k}` for a {job_type} job"),
        ));
    }
    match job_type {
        JobType::ImportMovies | JobType::ImportMicrographs => {
            let path = obj.get("path").and_then(|v| v.as_str()).ok_or_else(|| {
                StoreError::invalid(
                    "params",
                    "an import needs `path`, a path or glob beneath a data root",
                )
            })?;
            // The directory part must be a path that stays beneath the root; the runner checks
            // again, as the lab's account, when the job runs.
            crate::paths::RelPath::parse(path)?;
            if let Some(root) = obj.get("root") {
                let root = root
                    .as_str()
                    .ok_or_else(|| StoreError::invalid("params", "`root` must be a string"))?;
                if !lab.data_roots.iter().any(|r| r == root) {
                    return Err(StoreError::invalid(
                        "params",
                        "`root` is not one of the lab's data roots",
                    ));
                }
            } else if lab.data_roots.is_empty() {
                return Err(StoreError::InUse {
                    field: "lab",
                    message: format!(
                        "lab `{}` has no data roots: a Site Admin must set them",
                        lab.name
                    ),
                });
            }
            Ok((1, 0, 1))
        }
        JobType::Command => {
            let name = obj
                .get("template")
                .and_then(|v| v.as_str())
                .ok_or_else(|| StoreError::invalid("params", "a command job needs `template`"))?;
            let t = crate::jobs::commands::get(db, name).await?;
            let values = obj.get("values").cloned().unwrap_or(json!({}));
            t.check_values(&values)?;
            Ok((t.num_cpu, t.num_gpu, t.ram_gb))
        }
        JobType::Validation => Ok((1, 0, 1)),
    }
}

/// Creates a job (status building) and its directory, as the lab's Unix account.
pub async fn create(db: &Db, runner: &Runner, ctx: &Ctx, new: NewJob) -> Result<Job, StoreError> {
    let (project, scope, proof) =
        projects::access(db, ctx, new.project_id, DataAction::EditProject).await?;
    if project.status != ProjectStatus::Active {
        return Err(StoreError::InUse {
            field: "project",
            message: format!(
                "`{}` is {}: no new jobs",
                project.name,
                project.status.as_str()
            ),
        });
    }
    let lab = crate::labs::get(db, project.lab_id).await?;
    if new.job_type.is_import() {
        let _may_import = ctx
            .authorize(
                db,
                DataAction::ImportData.into(),
                Resource::data(scope),
                &project.audit_target(),
            )
            .await?;
    }
    if let Some(ws) = new.workspace_id {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM workspaces WHERE id = $1 AND project_id = $2")
                .bind(ws)
                .bind(project.id)
                .fetch_one(&db.pool)
                .await?;
        if n == 0 {
            return Err(StoreError::invalid(
                "workspace_id",
                "is not a workspace of this project",
            ));
        }
    }
    // A refused import path or root is an attempt worth recording, as browsing records it.
    if new.job_type.is_import()
        && let Some(root) = new.params.get("root").and_then(|v| v.as_str())
        && !lab.data_roots.iter().any(|r| r == root)
    {
        let message = "`root` is not one of the lab's data roots";
        record_import_refusal(
            db,
            ctx,
            &project.audit_target(),
            root,
            "not-a-data-root",
            message,
        )
        .await?;
        return Err(StoreError::invalid("params", message));
    }
    let (cpu, gpu, ram) = match check_params(db, new.job_type, &new.params, &lab).await {
        Err(StoreError::Path(e)) => {
            let path = new
                .params
                .get("path")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            record_import_refusal(
                db,
                ctx,
                &project.audit_target(),
                path,
                e.code(),
                &e.to_string(),
            )
            .await?;
            return Err(StoreError::Path(e));
        }
        other => other?,
    };
    let (num_cpu, num_gpu, ram_gb) = (
        new.num_cpu.unwrap_or(cpu),
        new.num_gpu.unwrap_or(gpu),
        new.ram_gb.unwrap_or(ram),
    );
    for (field, v, max) in [
        ("num_cpu", num_cpu, 1024),
        ("num_gpu", num_gpu, 64),
        ("ram_gb", ram_gb, 65536),
    ] {
        if !(0..=max).contains(&v) {
            return Err(StoreError::invalid(
                field,
                format!("must be between 0 and {max}"),
            ));
        }
    }
    let title = match new
        .title
        .as_deref()
        .map(crate::labs::validate_title)
        .transpose()?
    {
        Some(t) if !t.is_empty() => t,
        _ => new.job_type.as_str().replace('_', " "),
    };
    let account = projects::lab_account(&lab)?;
    let actor = projects::actor(ctx)?;
    let mut tx = db.begin_write().await?;
    proof.require(DataAction::EditProject.into())?;
    let number: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM jobs WHERE project_id = $1")
            .bind(project.id)
            .fetch_one(&mut *tx.tx)
            .await?;
    let now = now_ms();
    let params = if new.params.is_null() {
        json!({})
    } else {
        new.params.clone()
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (project_id, workspace_id, number, job_type, title, params, creator_id, num_cpu, num_gpu, \
         ram_gb, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'building', $11, $11) \
         RETURNING id",
    )
    .bind(project.id)
    .bind(new.workspace_id)
    .bind(number)
    .bind(new.job_type.as_str())
    .bind(&title)
    .bind(params.to_string())
    .bind(actor.user.0)
    .bind(num_cpu)
    .bind(num_gpu)
    .bind(ram_gb)
    .bind(now)
    .fetch_one(&mut *tx.tx)
    .await?;
    let target = Target {
        kind: "job",
        id: Some(id.to_string()),
        name: Some(format!("{}/J{number}", project.name)),
    };
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::CreateJob,
        &target,
        None,
        Some(json!({ "type": new.job_type, "params": params })),
    )
    .await?;
    // The directory is made before the record commits: a failure leaves no job without one.
    runner
        .create_project_dir(&account, &project.dir(), &format!("J{number}"))
        .await?;
    tx.commit().await?;
    get(db, id).await
}

/// Records an import path (or root) refused for what it is or where it leads as a denied
/// `import-data` event of the caller.
async fn record_import_refusal(
    db: &Db,
    ctx: &Ctx,
    target: &Target,
    path: &str,
    code: &str,
    message: &str,
) -> Result<(), StoreError> {
    let after = json!({ "path": projects::data::shown_path(path) });
    let reason = Some(format!("{code}: {message}"));
    ctx.record(
        db,
        cryowarden_core::DataAction::ImportData,
        target,
        crate::audit::Outcome::Denied,
        reason,
        None,
        Some(after),
    )
    .await
}

/// The lab's import policy, asked again when an import job is queued: a job built before the
/// policy changed cannot be queued by someone it no longer lets import (refused and audited).
async fn check_import_policy(
    db: &Db,
    ctx: &Ctx,
    scope: DataScope,
    jobs: &[&Job],
) -> Result<(), StoreError> {
    let Some(job) = jobs.iter().find(|j| j.job_type.is_import()) else {
        return Ok(());
    };
    match ctx
        .authorize(
            db,
            DataAction::ImportData.into(),
            Resource::data(scope),
            &job.audit_target(),
        )
        .await
    {
        Ok(_may_import) => Ok(()),
        // Someone with no standing in the lab: the job does not exist for them.
        Err(StoreError::Denied(d)) if d.conceal => Err(StoreError::NotFound { what: "job" }),
        Err(e) => Err(e),
    }
}

/// Where and how to queue a job.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueRequest {
    /// Lane name or id.
    pub lane: String,
    /// On a node lane: queue directly to this target (name) ...
    #[serde(default)]
    pub target: Option<String>,
    /// ... and these GPUs of it.
    #[serde(default)]
    pub gpu_ids: Option<Vec<u32>>,
    /// 0..100; counts only for users with job-priority management.
    #[serde(default)]
    pub priority: Option<i64>,
    /// Job-level custom variables for cluster templates (job > target > instance).
    #[serde(default)]
    pub custom_vars: BTreeMap<String, String>,
}

/// Queues a building (or finished) job. A re-queued job takes a new place at the back of its
/// priority level.
pub async fn queue(
    db: &Db,
    settings: &crate::settings::SettingsCache,
    ctx: &Ctx,
    id: i64,
    req: QueueRequest,
) -> Result<Job, StoreError> {
    let (job, _project, scope, proof) = access(db, ctx, id, DataAction::EditProject).await?;
    check_import_policy(db, ctx, scope, &[&job]).await?;
    let plan = prepare(db, settings, ctx, &req).await?;
    check(db, ctx, &plan, &req, &job).await?;
    let mut tx = db.begin_write().await?;
    proof.require(DataAction::EditProject.into())?;
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(queued_seq), 0) + 1 FROM jobs")
        .fetch_one(&mut *tx.tx)
        .await?;
    apply(&mut tx, ctx, &plan, &req, &job, seq).await?;
    tx.commit().await?;
    get(db, id).await
}

/// What queueing to a lane means for this caller: the same for every job of a request.
struct Plan {
    lane: lanes::Lane,
    target_id: Option<i64>,
    denied: bool,
    lane_queue_override: bool,
    priority: i64,
    queue_state: QueueState,
    message: Option<String>,
}

async fn prepare(
    db: &Db,
    settings: &crate::settings::SettingsCache,
    ctx: &Ctx,
    req: &QueueRequest,
) -> Result<Plan, StoreError> {
    let actor = projects::actor(ctx)?;
    // Out of range is refused, never clamped (issue 11), whoever asks: the value is stored as
    // the job's requested priority either way.
    if let Some(p) = req.priority
        && !(0..=cryowarden_core::limits::PRIORITY_MAX).contains(&p)
    {
        return Err(StoreError::invalid(
            "priority",
            "must be an integer from 0 to 100",
        ));
    }
    let lane = lanes::find(db, &req.lane)
        .await
        .map_err(|_| StoreError::invalid("lane", format!("there is no lane `{}`", req.lane)))?;
    let instance = settings.get(db).await?;
    let denied = lanes::restrictions::denied_for(db, &actor)
        .await?
        .contains(&lane.id);
    check_custom_vars("custom_vars", &req.custom_vars)?;
    let mut target_id = None;
    if let Some(t) = &req.target {
        let target = lane
            .targets
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                StoreError::invalid(
                    "target",
                    format!("lane `{}` has no target `{t}`", lane.name),
                )
            })?;
        target_id = Some(target.id);
        if let Some(ids) = &req.gpu_ids {
            let node = target
                .node()
                .ok_or_else(|| StoreError::invalid("gpu_ids", "only node targets have GPU ids"))?;
            for g in ids {
                if !node.gpus.iter().any(|x| x.id == *g) {
                    return Err(StoreError::invalid(
                        "gpu_ids",
                        format!("target `{}` has no GPU {g}", target.name),
                    ));
                }
            }
        }
    } else if req.gpu_ids.is_some() {
        return Err(StoreError::invalid(
            "gpu_ids",
            "name the target the GPUs belong to",
        ));
    }
    let creator = crate::users::get(db, actor.user.0).await?;
    let may_set_priority =
        creator.job_priority_management || lanes::restrictions::unrestricted(&actor);
    let priority = effective_priority(PriorityFacts {
        requested: req.priority,
        may_set_priority,
        user_default: creator.default_job_priority,
        instance_default: instance.default_job_priority,
    });
    let (queue_state, message) = if instance.maintenance.active {
        (
            QueueState::WaitingMaintenance,
            Some("the instance is in maintenance mode: launches wait".to_owned()),
        )
    } else {
        (QueueState::ActivelyQueued, None)
    };
    Ok(Plan {
        lane,
        target_id,
        denied,
        lane_queue_override: instance.lane_queue_override,
        priority,
        queue_state,
        message,
    })
}

/// Whether this job may be queued as planned (a refused lane is audited).
async fn check(
    db: &Db,
    ctx: &Ctx,
    plan: &Plan,
    req: &QueueRequest,
    job: &Job,
) -> Result<(), StoreError> {
    if !job.status.can_become(JobStatus::Queued) {
        return Err(StoreError::InUse {
            field: "status",
            message: format!(
                "{} is {}: only building or finished jobs can be queued",
                job.uid, job.status
            ),
        });
    }
    if plan.denied && !(job.job_type.is_import() && plan.lane_queue_override) {
        ctx.record(
            db,
            cryowarden_core::Event::QueueJob,
            &job.audit_target(),
            crate::audit::Outcome::Denied,
            Some(format!(
                "lane `{}` is not allowed for this user",
                plan.lane.name
            )),
            None,
            None,
        )
        .await?;
        return Err(StoreError::LaneNotAllowed {
            lane: plan.lane.name.clone(),
        });
    }
    if let Some(ids) = &req.gpu_ids
        && ids.len() as i64 != job.num_gpu
    {
        return Err(StoreError::invalid(
            "gpu_ids",
            format!(
                "{} needs {} GPU(s) and {} were named",
                job.uid,
                job.num_gpu,
                ids.len()
            ),
        ));
    }
    if plan.lane.kind == LaneKind::Node && !plan.lane.targets.iter().any(|t| fits_ever(t, job)) {
        return Err(StoreError::invalid(
            "lane",
            format!(
                "no target of `{}` has {} CPU(s), {} GPU(s) and {} GB of RAM: choose another lane or fewer resources",
                plan.lane.name, job.num_cpu, job.num_gpu, job.ram_gb
            ),
        ));
    }
    Ok(())
}

/// Writes one job's queueing and its audit event into the transaction.
async fn apply(
    tx: &mut crate::db::WriteTx,
    ctx: &Ctx,
    plan: &Plan,
    req: &QueueRequest,
    job: &Job,
    seq: i64,
) -> Result<(), StoreError> {
    let now = now_ms();
    let changed = sqlx::query(
        "UPDATE jobs SET status = 'queued', queue_state = $1, queue_message = $2, queued_seq = $3, lane_id = $4, \
         target_id = $5, gpu_ids = $6, requested_priority = $7, priority = $8, custom_vars = $9, queued_at = $10, \
         launched_at = NULL, started_at = NULL, finished_at = NULL, failure = NULL, pid = NULL, cluster_job_id = NULL, \
         assigned = NULL, updated_at = $10 WHERE id = $11 AND status = $12",
    )
    .bind(plan.queue_state.as_str())
    .bind(plan.message.clone())
    .bind(seq)
    .bind(plan.lane.id)
    .bind(plan.target_id)
    .bind(req.gpu_ids.as_ref().map(|g| serde_json::to_string(g).unwrap_or_default()))
    .bind(req.priority)
    .bind(plan.priority)
    .bind(serde_json::to_string(&req.custom_vars).unwrap_or_default())
    .bind(now)
    .bind(job.id)
    .bind(job.status.as_str())
    .execute(&mut *tx.tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(StoreError::InUse {
            field: "status",
            message: format!("{} changed meanwhile: try again", job.uid),
        });
    }
    ctx.audit_ok(
        tx,
        cryowarden_core::Event::QueueJob,
        &job.audit_target(),
        Some(json!({ "status": job.status })),
        Some(json!({ "status": "queued", "lane": plan.lane.name, "priority": plan.priority, "target": req.target, "gpu_ids": req.gpu_ids })),
    )
    .await
}

/// Most jobs one `queue_many` request takes.
pub const QUEUE_MANY_MAX: usize = 10_000;

/// Queues many jobs to one lane in one transaction: every job is checked first (a refusal
/// queues none), then all are queued, in the order given, with one durable commit.
pub async fn queue_many(
    db: &Db,
    settings: &crate::settings::SettingsCache,
    ctx: &Ctx,
    ids: &[i64],
    req: QueueRequest,
) -> Result<Vec<Job>, StoreError> {
    if ids.is_empty() || ids.len() > QUEUE_MANY_MAX {
        return Err(StoreError::invalid(
            "job_ids",
            format!("give 1 to {QUEUE_MANY_MAX} job ids"),
        ));
    }
    let mut jobs = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let rows = sqlx::query::<Any>(&format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE j.id IN ({list})"
        ))
        .fetch_all(&db.pool)
        .await?;
        for r in &rows {
            jobs.push(from_row(r)?);
        }
    }
    let by_id: std::collections::HashMap<i64, usize> =
        jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
    if let Some(missing) = ids.iter().find(|id| !by_id.contains_key(id)) {
        let _ = missing;
        return Err(StoreError::NotFound { what: "job" });
    }
    // One authorization per project.
    let mut proofs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for j in &jobs {
        if seen.insert(j.project_id) {
            let (_, scope, proof) =
                match projects::access(db, ctx, j.project_id, DataAction::EditProject).await {
                    Err(StoreError::Denied(d)) if d.conceal => {
                        return Err(StoreError::NotFound { what: "job" });
                    }
                    other => other?,
                };
            let of_project: Vec<&Job> = jobs
                .iter()
                .filter(|x| x.project_id == j.project_id)
                .collect();
            check_import_policy(db, ctx, scope, &of_project).await?;
            proofs.push(proof);
        }
    }
    let plan = prepare(db, settings, ctx, &req).await?;
    for id in ids {
        check(db, ctx, &plan, &req, &jobs[by_id[id]]).await?;
    }
    let mut tx = db.begin_write().await?;
    for proof in &proofs {
        proof.require(DataAction::EditProject.into())?;
    }
    let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(queued_seq), 0) + 1 FROM jobs")
        .fetch_one(&mut *tx.tx)
        .await?;
    for (i, id) in ids.iter().enumerate() {
        apply(
            &mut tx,
            ctx,
            &plan,
            &req,
            &jobs[by_id[id]],
            first + i as i64,
        )
        .await?;
    }
    tx.commit().await?;
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let rows = sqlx::query::<Any>(&format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE j.id IN ({list}) ORDER BY j.queued_seq"
        ))
        .fetch_all(&db.pool)
        .await?;
        for r in &rows {
            out.push(from_row(r)?);
        }
    }
    Ok(out)
}

/// Whether a node target could ever hold the job (its slots, not what is free now).
pub fn fits_ever(t: &lanes::LaneTarget, job: &Job) -> bool {
    t.node().is_some_and(|n| {
        i64::from(n.cpus) >= job.num_cpu
            && n.gpus.len() as i64 >= job.num_gpu
            && i64::from(n.ram_gb) >= job.ram_gb
    })
}

/// Asks to kill a job: a queued job is killed at once; a launched or running one is stopped by
/// the scheduler (its process group, or `scancel`), which then marks it killed.
pub async fn kill(db: &Db, ctx: &Ctx, id: i64) -> Result<Job, StoreError> {
    let (job, _, _, proof) = access(db, ctx, id, DataAction::EditProject).await?;
    if !job.status.can_become(JobStatus::Killed) {
        return Err(StoreError::InUse {
            field: "status",
            message: format!("{} is {}: nothing to kill", job.uid, job.status),
        });
    }
    let mut tx = db.begin_write().await?;
    proof.require(DataAction::EditProject.into())?;
    let now = now_ms();
    let changed = if job.status == JobStatus::Queued {
        sqlx::query(
            "UPDATE jobs SET status = 'killed', queue_state = NULL, queue_message = NULL, failure = 'killed by user', \
             finished_at = $1, updated_at = $1 WHERE id = $2 AND status = 'queued'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected()
    } else {
        sqlx::query("UPDATE jobs SET failure = 'kill requested', updated_at = $1 WHERE id = $2 AND status = $3")
            .bind(now)
            .bind(id)
            .bind(job.status.as_str())
            .execute(&mut *tx.tx)
            .await?
            .rows_affected()
    };
    if changed == 0 {
        return Err(StoreError::InUse {
            field: "status",
            message: format!("{} changed meanwhile: try again", job.uid),
        });
    }
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::KillJob,
        &job.audit_target(),
        Some(json!({ "status": job.status })),
        None,
    )
    .await?;
    tx.commit().await?;
    get(db, id).await
}

/// Takes a finished job back to building; its priority is reset.
pub async fn clear(db: &Db, ctx: &Ctx, id: i64) -> Result<Job, StoreError> {
    let (job, _, _, proof) = access(db, ctx, id, DataAction::EditProject).await?;
    if !job.status.can_become(JobStatus::Building) {
        return Err(StoreError::InUse {
            field: "status",
            message: format!(
                "{} is {}: kill it first, or wait for it to finish",
                job.uid, job.status
            ),
        });
    }
    let mut tx = db.begin_write().await?;
    proof.require(DataAction::EditProject.into())?;
    sqlx::query(
        "UPDATE jobs SET status = 'building', queue_state = NULL, queue_message = NULL, queued_seq = NULL, \
         requested_priority = NULL, priority = 0, lane_id = NULL, target_id = NULL, gpu_ids = NULL, assigned = NULL, \
         cluster_job_id = NULL, pid = NULL, failure = NULL, queued_at = NULL, launched_at = NULL, started_at = NULL, \
         finished_at = NULL, updated_at = $1 WHERE id = $2",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx.tx)
    .await?;
    sqlx::query("DELETE FROM exposures WHERE job_id = $1")
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::ClearJob,
        &job.audit_target(),
        Some(json!({ "status": job.status })),
        Some(json!({ "status": "building" })),
    )
    .await?;
    tx.commit().await?;
    get(db, id).await
}

/// Filters of the job list.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// A project's jobs (required unless the caller sees every project).
    pub project: Option<i64>,
    /// Comma-separated statuses, e.g. `queued,launched,running` for the current jobs.
    pub status: Option<String>,
    pub lane: Option<String>,
    /// Rows, 1..=1000 (default 200).
    pub limit: Option<i64>,
}

/// Jobs of a project, or (for those who see every project) the whole instance's.
pub async fn list(db: &Db, ctx: &Ctx, q: &JobQuery) -> Result<Vec<Job>, StoreError> {
    let actor = projects::actor(ctx)?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(StoreError::invalid("limit", "must be between 1 and 1000"));
    }
    let mut filter = String::new();
    match q.project {
        Some(p) => {
            projects::show(db, ctx, p).await?;
            filter.push_str(&format!(" AND j.project_id = {p}"));
        }
        None => {
            let everything = Resource::data(DataScope::default());
            if !cryowarden_core::authorize(&actor, DataAction::ViewProject.into(), &everything)
                .is_allowed()
            {
                return Err(StoreError::invalid(
                    "project",
                    "name the project whose jobs to list",
                ));
            }
        }
    }
    if let Some(s) = &q.status {
        let mut names = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let st = JobStatus::parse(part).ok_or_else(|| {
                StoreError::invalid("status", format!("`{part}` is not a job status"))
            })?;
            names.push(format!("'{}'", st.as_str()));
        }
        if !names.is_empty() {
            filter.push_str(&format!(" AND j.status IN ({})", names.join(",")));
        }
    }
    let mut binds = Vec::new();
    if let Some(l) = &q.lane {
        binds.push(l.to_lowercase());
        filter.push_str(&format!(" AND la.name_key = ${}", binds.len()));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE 1 = 1{filter} \
         ORDER BY CASE WHEN j.status = 'queued' THEN 0 ELSE 1 END, j.priority DESC, j.queued_seq, j.id DESC LIMIT {limit}"
    );
    let mut query = sqlx::query::<Any>(&sql);
    for b in binds {
        query = query.bind(b);
    }
    query
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// A piece of a job's log.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LogChunk {
    pub offset: u64,
    /// Where the next read starts (`offset` plus the bytes of `text`).
    pub next_offset: u64,
    pub text: String,
}

/// Most bytes of log one read answers.
pub const LOG_CHUNK: usize = 1 << 20;

/// The job's log from `offset`, read as the lab's Unix account (the job's directory is the
/// lab's, mode 2770: the server's own account may not read it).
pub async fn log(
    db: &Db,
    runner: &Runner,
    ctx: &Ctx,
    id: i64,
    offset: u64,
) -> Result<LogChunk, StoreError> {
    let (job, _, _, _) = access(db, ctx, id, DataAction::ViewProject).await?;
    let lab = crate::labs::get(db, job.lab_id).await?;
    let account = projects::lab_account(&lab)?;
    let argv = vec![
        "/usr/bin/tail".to_owned(),
        "-c".to_owned(),
        format!("+{}", offset.saturating_add(1)),
        crate::scheduler::node::LOG.to_owned(),
    ];
    let out = runner
        .run_command(
            &account,
            &argv,
            Path::new(&job.job_dir),
            &[],
            None,
            std::time::Duration::from_secs(30),
        )
        .await?;
    if out.exit_code != Some(0) {
        // No log yet.
        return Ok(LogChunk {
            offset,
            next_offset: offset,
            text: String::new(),
        });
    }
    let mut text = out.stdout;
    if text.len() > LOG_CHUNK {
        let mut cut = LOG_CHUNK;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Ok(LogChunk {
        offset,
        next_offset: offset + text.len() as u64,
        text,
    })
}

pub mod commands;

/// An exposure an import recorded.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Exposure {
    pub id: i64,
    pub job_id: i64,
    /// Relative to the data root it was imported from.
    pub path: String,
    pub format: String,
    pub width: i64,
    pub height: i64,
    pub frames: i64,
    pub mode: Option<String>,
    pub pixel_size_a: Option<f64>,
}

/// Paging of a project's exposures.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExposureQuery {
    /// Only those of this import job.
    pub job: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
    /// 1..=1000 (default 200).
    #[serde(default)]
    pub limit: Option<i64>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ExposurePage {
    pub exposures: Vec<Exposure>,
    pub total: i64,
}

/// The exposures imported into a project, by path.
pub async fn exposures(
    db: &Db,
    ctx: &Ctx,
    project: i64,
    q: &ExposureQuery,
) -> Result<ExposurePage, StoreError> {
    projects::show(db, ctx, project).await?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(StoreError::invalid("limit", "must be between 1 and 1000"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(StoreError::invalid("offset", "must not be negative"));
    }
    let job_filter = q
        .job
        .map(|j| format!(" AND job_id = {j}"))
        .unwrap_or_default();
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM exposures WHERE project_id = $1{job_filter}"
    ))
    .bind(project)
    .fetch_one(&db.pool)
    .await?;
    let rows = sqlx::query::<Any>(&format!(
        "SELECT id, job_id, path, format, width, height, frames, mode, pixel_size_a FROM exposures \
         WHERE project_id = $1{job_filter} ORDER BY path, id LIMIT {limit} OFFSET {offset}"
    ))
    .bind(project)
    .fetch_all(&db.pool)
    .await?;
    let exposures = rows
        .iter()
        .map(|r| {
            Ok(Exposure {
                id: r.try_get("id")?,
                job_id: r.try_get("job_id")?,
                path: r.try_get("path")?,
                format: r.try_get("format")?,
                width: r.try_get("width")?,
                height: r.try_get("height")?,
                frames: r.try_get("frames")?,
                mode: r.try_get("mode")?,
                pixel_size_a: r.try_get("pixel_size_a")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(ExposurePage { exposures, total })
}
