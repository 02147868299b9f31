//! site-validation: the installation test job on every lane, as `cryowarden lane validate` does
//! through the API, but called here with the caller's own context: each job is created and
//! queued by the jobs domain (which checks edit-project on the project and the lanes the
//! caller may use, and audits both), then handed to the scheduler.

use cryowarden_core::jobs::JobType;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Any;

use super::{Setting, target};
use crate::audit::Outcome;
use crate::context::Ctx;
use crate::error::StoreError;
use crate::jobs::{self, NewJob, QueueRequest};
use crate::lanes;
use crate::services::Services;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    project: Option<i64>,
}

/// Each lane and its latest validation job with its status.
pub async fn view(state: &Services) -> Result<Value, StoreError> {
    let mut out = Vec::new();
    for lane in lanes::all(&state.db).await? {
        let latest: Option<i64> = sqlx::query_scalar::<Any, i64>(
            "SELECT id FROM jobs WHERE job_type = 'validation' AND lane_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(lane.id)
        .fetch_optional(&state.db.pool)
        .await?;
        let job = match latest {
            Some(id) => {
                let j = jobs::get(&state.db, id).await?;
                Some(json!({
                    "id": j.id,
                    "uid": j.uid,
                    "project_id": j.project_id,
                    "project": j.project,
                    "status": j.status,
                    "created_at": j.created_at,
                    "failure": j.failure,
                    "passed": matches!(j.status, cryowarden_core::jobs::JobStatus::Completed),
                }))
            }
            None => None,
        };
        out.push(json!({
            "lane_id": lane.id,
            "lane": lane.name,
            "kind": lane.kind.as_str(),
            "targets": lane.targets.len(),
            "latest_validation": job,
        }));
    }
    Ok(json!({ "lanes": out, "actions": super::actions_of(Setting::SiteValidation) }))
}

/// `{"project": ID}`: a validation job in that project queued on every lane the caller may use;
/// answers the jobs.
pub async fn run(state: &Services, ctx: &Ctx, body: Value) -> Result<Value, StoreError> {
    let req: RunRequest =
        serde_json::from_value(body).map_err(|e| StoreError::invalid("body", e.to_string()))?;
    let project = req
        .project
        .ok_or_else(|| StoreError::invalid("project", "is required: the id of a project"))?;
    let lanes = lanes::list(&state.db, ctx).await?;
    if lanes.is_empty() {
        return Err(StoreError::InUse {
            field: "lanes",
            message: "there is no lane to validate: add one first".into(),
        });
    }
    let mut queued = Vec::new();
    for lane in &lanes {
        let new = NewJob {
            project_id: project,
            workspace_id: None,
            job_type: JobType::Validation,
            title: Some(format!("validation of {}", lane.name)),
            params: json!({}),
            num_cpu: None,
            num_gpu: None,
            ram_gb: None,
        };
        let job = jobs::create(&state.db, &state.runner, ctx, new).await?;
        let req = QueueRequest {
            lane: lane.id.to_string(),
            ..QueueRequest::default()
        };
        let job = jobs::queue(&state.db, &state.settings, ctx, job.id, req).await?;
        state.scheduler.enqueued(&job);
        queued.push(
            json!({ "lane_id": lane.id, "lane": lane.name, "job_id": job.id, "uid": job.uid, "status": job.status }),
        );
    }
    let ids: Vec<&Value> = queued.iter().map(|q| &q["job_id"]).collect();
    ctx.record(
        &state.db,
        (Setting::SiteValidation, cryowarden_core::SettingAction::Run),
        &target(Setting::SiteValidation, Some("run")),
        Outcome::Ok,
        None,
        None,
        Some(json!({ "project": project, "jobs": ids })),
    )
    .await?;
    Ok(json!({ "project": project, "jobs": queued }))
}
