//! Cluster lanes: the target's `cluster_script.sh` is rendered for the job (built-in variables,
//! custom variables job > target > instance, every value shell-quoted), written into the job's
//! directory and submitted with the target's `qsub_cmd_tpl` wrapped in its `send_cmd_tpl`, run
//! with `/bin/sh -c`, both as the lab's Unix account, so SLURM runs the job under the lab's uid.
//! The jobs of a lane are polled with the lane's own `qstat_cmd_tpl` (through its
//! `send_cmd_tpl`, as the lab's account): one call per interval for all the jobs of one lab on
//! that lane. When the controller does not answer, the job goes back to the queue
//! (`waiting_cluster`) and is submitted again after a backoff.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cryowarden_core::jobs::{JobStatus, JobType, QueueState};
use sqlx::Row;

use super::node::{LOG, VALIDATION_SCRIPT, account_of};
use super::{finish, running};
use crate::cluster::slurm;
use crate::cluster::template::{render_command, render_script, send_line, shell_join};
use crate::cluster::{
    Builtins, ClusterInfo, ClusterState, CustomValues, JobState, Slurm, SlurmError,
};
use crate::db::now_ms;
use crate::error::StoreError;
use crate::jobs::{self, Job, commands};
use crate::lanes::{self, LaneTarget};
use crate::services::Services;

/// How often cluster jobs are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1000);
/// How long a submission waits after the controller did not answer (doubling up to the max).
pub const RETRY_FIRST: Duration = Duration::from_secs(2);
pub const RETRY_MAX: Duration = Duration::from_secs(60);
const SCRIPT: &str = "queue_sub_script.sh";
/// The small program `run_cmd` runs the job's command with: the command's output goes to the
/// job's log (as CryoSPARC's worker writes job.log), whatever the script does with SLURM's own
/// output; when the script already sends it to the log, it is left as it is (two writers of one
/// file would overwrite each other).
const RUN_WRAPPER: &str = "cryowarden_run.sh";
const RUN_WRAPPER_TEXT: &str = r#"#!/bin/sh
# Written by cryowarden for this job: runs the job's command (the arguments after the log's
# path) with its output in the job's log. Exits with the command's status.
log=$1
shift
if [ /dev/stdout -ef "$log" ]; then
  exec "$@" 2>&1
fi
exec "$@" >> "$log" 2>&1
"#;
const INSTANCE_VARS_KEY: &str = "cluster_custom_vars";

/// The instance-wide custom variables.
pub async fn instance_vars(db: &crate::db::Db) -> Result<BTreeMap<String, String>, StoreError> {
    let row = sqlx::query("SELECT value FROM instance_settings WHERE key = $1")
        .bind(INSTANCE_VARS_KEY)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(r) => serde_json::from_str(&r.try_get::<String, _>("value")?)
            .map_err(|e| StoreError::Internal(format!("stored custom variables: {e}"))),
        None => Ok(BTreeMap::new()),
    }
}

fn target_of(lane: &lanes::Lane, job: &Job) -> Result<LaneTarget, StoreError> {
    lane.targets
        .iter()
        .find(|t| job.target_id.is_none_or(|id| id == t.id))
        .cloned()
        .ok_or_else(|| {
            StoreError::invalid(
                "lane",
                format!("lane `{}` has no cluster target", lane.name),
            )
        })
}

/// The job's program and its arguments.
async fn job_argv(state: &Services, job: &Job) -> Result<Vec<String>, StoreError> {
    let argv: Vec<String> = match job.job_type {
        JobType::Validation => vec!["/bin/sh".into(), "-c".into(), VALIDATION_SCRIPT.into()],
        JobType::Command => {
            let t = commands::get(
                &state.db,
                job.params["template"].as_str().unwrap_or_default(),
            )
            .await?;
            t.render(
                &job.params
                    .get("values")
                    .cloned()
                    .unwrap_or(serde_json::json!({})),
            )?
        }
        JobType::ImportMovies | JobType::ImportMicrographs => {
            return Err(StoreError::Internal(
                "imports run in the server, not on a cluster".into(),
            ));
        }
    };
    Ok(argv)
}

/// `run_cmd` and `run_args` of a job: the command line the cluster job runs (the job's
/// command through [`RUN_WRAPPER`], so that its output lands in the job's log) and, as in
/// CryoSPARC, the arguments of the job's program.
async fn run_cmd(state: &Services, job: &Job) -> Result<(String, String), StoreError> {
    let argv = job_argv(state, job).await?;
    let dir = PathBuf::from(&job.job_dir);
    let mut wrapped = vec![
        "/bin/sh".to_owned(),
        dir.join(RUN_WRAPPER).to_string_lossy().into_owned(),
        dir.join(LOG).to_string_lossy().into_owned(),
    ];
    wrapped.extend(argv.iter().cloned());
    Ok((
        shell_join(&wrapped),
        shell_join(argv.get(1..).unwrap_or_default()),
    ))
}

/// The built-in variables and the custom values of a job on a target.
async fn variables(
    state: &Services,
    job: &Job,
    target: &LaneTarget,
    info: &ClusterInfo,
) -> Result<(Builtins, CustomValues), StoreError> {
    let dir = PathBuf::from(&job.job_dir);
    let project_dir = dir.parent().map(Path::to_owned).unwrap_or_default();
    let creator = job.creator.clone().unwrap_or_default();
    let (run_cmd, run_args) = run_cmd(state, job).await?;
    let builtins = Builtins {
        script_path_abs: dir.join(SCRIPT).to_string_lossy().into_owned(),
        run_cmd,
        num_cpu: u32::try_from(job.num_cpu).unwrap_or(1),
        num_gpu: u32::try_from(job.num_gpu).unwrap_or(0),
        ram_gb: job.ram_gb as f64,
        job_dir_abs: job.job_dir.clone(),
        project_dir_abs: project_dir.to_string_lossy().into_owned(),
        job_log_path_abs: dir.join(LOG).to_string_lossy().into_owned(),
        worker_bin_path: info.worker_bin_path.clone().unwrap_or_default(),
        run_args,
        project_uid: job.project.clone(),
        job_uid: job.uid.clone(),
        job_creator: creator.clone(),
        cryosparc_username: creator,
        job_type: job.job_type.as_str().to_owned(),
        cluster_job_id: job.cluster_job_id.clone(),
        command: None,
    };
    let custom = CustomValues {
        instance: instance_vars(&state.db).await?,
        target: target.custom_vars.clone(),
        job: job.custom_vars.clone(),
    };
    Ok((builtins, custom))
}

fn slurm() -> Slurm {
    Slurm::default()
}

/// Renders and submits a launched job; on an unreachable controller, puts it back in the queue.
pub async fn submit(state: &Services, job: &Job) -> Result<(), StoreError> {
    let lane = lanes::get(&state.db, job.lane_id.unwrap_or_default()).await?;
    let target = target_of(&lane, job)?;
    let info = ClusterInfo::from_value(target.config.clone())?;
    let account = account_of(state, job).await?;
    let (builtins, custom) = variables(state, job, &target, &info).await?;
    let script = render_script(&target.script, &builtins, &custom)?;
    let qsub = render_command(&info.qsub_cmd_tpl, "qsub_cmd_tpl", &builtins, &custom)?;
    let qsub = send_line(&info.send_cmd_tpl, &qsub, &builtins, &custom)?;
    let dir = PathBuf::from(&job.job_dir);
    for (name, text) in [(RUN_WRAPPER, RUN_WRAPPER_TEXT), (SCRIPT, script.as_str())] {
        let written = state
            .runner
            .run_command(
                &account,
                &["/usr/bin/tee".to_owned(), name.to_owned()],
                &dir,
                &[],
                Some(text),
                Duration::from_secs(30),
            )
            .await?;
        if written.exit_code != Some(0) {
            return Err(StoreError::Internal(format!(
                "cannot write the job's {name}: {}",
                written.stderr.trim()
            )));
        }
    }
    let script_path = dir.join(SCRIPT);
    match slurm()
        .submit(&state.runner, &account, &qsub, &script_path)
        .await
    {
        Ok(id) => {
            sqlx::query("UPDATE jobs SET cluster_job_id = $1, updated_at = $2 WHERE id = $3")
                .bind(&id)
                .bind(now_ms())
                .bind(job.id)
                .execute(&state.db.pool)
                .await?;
            tracing::info!(target: "scheduler", job = job.id, cluster_job_id = %id, lane = %lane.name, "submitted");
            state.scheduler.submitted(lane.id);
            Ok(())
        }
        Err(e) if e.is_retryable() => {
            let wait = state.scheduler.backoff(lane.id);
            let message = format!(
                "the cluster is not answering ({e}); retrying in {} s",
                wait.as_secs()
            );
            tracing::warn!(target: "scheduler", job = job.id, lane = %lane.name, "{message}");
            requeue(state, job, &message).await
        }
        Err(SlurmError::Rejected { message, .. }) => {
            finish(
                state,
                job,
                JobStatus::Failed,
                Some(&format!("the cluster refused the job: {message}")),
            )
            .await
        }
        Err(e) => {
            finish(
                state,
                job,
                JobStatus::Failed,
                Some(&format!("submission failed: {e}")),
            )
            .await
        }
    }
}

/// Puts a launched job back in the queue in its old place, waiting for the cluster.
async fn requeue(state: &Services, job: &Job, message: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET status = 'queued', queue_state = $1, queue_message = $2, launched_at = NULL, updated_at = $3 \
         WHERE id = $4 AND status = 'launched'",
    )
    .bind(QueueState::WaitingCluster.as_str())
    .bind(message)
    .bind(now_ms())
    .bind(job.id)
    .execute(&state.db.pool)
    .await?;
    let job = jobs::get(&state.db, job.id).await?;
    state.scheduler.requeued(&job, message);
    Ok(())
}

/// The ids of the SLURM jobs of the job's lab account whose working directory is the job's,
/// asked the way the lane is polled: its `qstat_cmd_tpl` with no `cluster_job_id` at all (a bare
/// `squeue -j` lists every job; `-j ''` would list none) after exporting `SQUEUE_FORMAT='%i|%Z'`
/// and `SQUEUE_STATES=all`, through its `send_cmd_tpl`, as the lab's account (so a lane that
/// submits with `-M cluster` or through `ssh loginnode` finds its job again after a restart). The
/// job directory is the job's own, so the directory alone picks its SLURM job.
async fn find_by_workdir(
    state: &Services,
    job: &Job,
    account: &crate::runner::Account,
) -> Result<Vec<String>, StoreError> {
    let lane = lanes::get(&state.db, job.lane_id.unwrap_or_default()).await?;
    let target = target_of(&lane, job)?;
    let info = ClusterInfo::from_value(target.config.clone())?;
    let (mut builtins, mut custom) = variables(state, job, &target, &info).await?;
    custom.job.clear();
    builtins.cluster_job_id = None;
    let qstat = render_command(&info.qstat_cmd_tpl, "qstat_cmd_tpl", &builtins, &custom)?;
    let command = format!("export SQUEUE_FORMAT='%i|%Z' SQUEUE_STATES=all; {qstat}");
    let line = send_line(&info.send_cmd_tpl, &command, &builtins, &custom)?;
    let out = slurm()
        .run_line(
            &state.runner,
            account,
            &line,
            Path::new(&job.job_dir),
            slurm::POLL_TIMEOUT,
        )
        .await
        .map_err(|e| StoreError::Internal(format!("squeue: {e}")))?;
    if !out.success() {
        return Err(StoreError::Internal(format!(
            "squeue: {}",
            slurm::what_it_said(&out)
        )));
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('|'))
        .filter(|(id, wd)| {
            wd.trim() == job.job_dir
                && !id.is_empty()
                && id.trim().bytes().all(|b| b.is_ascii_digit())
        })
        .map(|(id, _)| id.trim().to_owned())
        .collect())
}

/// A cluster job that was launched but has no cluster job id (the server stopped around its
/// submission): adopt the SLURM job running in its directory if there is one, so that it is
/// never submitted twice; else put it back in its place in the queue.
pub async fn recover(state: &Services, job: &Job) -> Result<(), StoreError> {
    let account = account_of(state, job).await?;
    match find_by_workdir(state, job, &account).await {
        Ok(found) if !found.is_empty() => {
            let id = found
                .iter()
                .max_by_key(|i| i.parse::<u64>().unwrap_or(0))
                .cloned()
                .unwrap_or_default();
            if found.len() > 1 {
                tracing::warn!(target: "scheduler", job = job.id, ids = ?found, "several SLURM jobs run in the job's directory");
            }
            let mut tx = state.db.begin_write().await?;
            sqlx::query("UPDATE jobs SET cluster_job_id = $1, updated_at = $2 WHERE id = $3")
                .bind(&id)
                .bind(now_ms())
                .bind(job.id)
                .execute(&mut *tx.tx)
                .await?;
            tx.commit().await?;
            tracing::info!(target: "scheduler", job = job.id, cluster_job_id = %id, "found the job's SLURM job again after a restart");
            Ok(())
        }
        Ok(_) => {
            requeue(
                state,
                job,
                "the server stopped while submitting the job: it waits to be submitted again",
            )
            .await
        }
        Err(e) => {
            // SLURM cannot say: keep the job back rather than risk a second submission.
            let message = format!("cannot ask SLURM whether the job was submitted ({e}); retrying");
            tracing::warn!(target: "scheduler", job = job.id, "{message}");
            state.scheduler.backoff(job.lane_id.unwrap_or_default());
            requeue(state, job, &message).await
        }
    }
}

/// One poll of every cluster job that is launched or running: for each lane, one run of its
/// own poll command per lab with jobs there (as that lab's account; a site with SLURM's
/// `PrivateData=jobs` shows an account only its own jobs).
pub async fn poll_all(state: &Services) -> Result<(), StoreError> {
    let active = jobs::in_status(&state.db, &[JobStatus::Launched, JobStatus::Running]).await?;
    let mut groups: BTreeMap<(i64, i64), Vec<Job>> = BTreeMap::new();
    for job in active.into_iter().filter(|j| j.cluster_job_id.is_some()) {
        groups
            .entry((job.lane_id.unwrap_or_default(), job.lab_id))
            .or_default()
            .push(job);
    }
    for ((lane_id, lab_id), group) in groups {
        match poll_group(state, &group).await {
            Ok(states) => apply_states(state, &group, &states).await?,
            Err(e) => {
                tracing::warn!(target: "scheduler", lane = lane_id, lab = lab_id, error = %e, "cannot poll the cluster");
            }
        }
    }
    Ok(())
}

/// The states of a group of jobs of one lab on one lane, from one run of the lane's
/// `qstat_cmd_tpl` for all their ids, through its `send_cmd_tpl`, as the lab's account.
async fn poll_group(
    state: &Services,
    group: &[Job],
) -> Result<HashMap<String, ClusterState>, SlurmError> {
    let first = &group[0];
    let lane = lanes::get(&state.db, first.lane_id.unwrap_or_default()).await?;
    let target = target_of(&lane, first)?;
    let info = ClusterInfo::from_value(target.config.clone())?;
    let account = account_of(state, first).await?;
    let (mut builtins, mut custom) = variables(state, first, &target, &info).await?;
    custom.job.clear();
    let ids: Vec<String> = group
        .iter()
        .filter_map(|j| j.cluster_job_id.clone())
        .collect();
    builtins.cluster_job_id = Some(ids.join(","));
    let qstat = render_command(&info.qstat_cmd_tpl, "qstat_cmd_tpl", &builtins, &custom)?;
    let line = send_line(
        &info.send_cmd_tpl,
        &slurm::poll_command(&qstat),
        &builtins,
        &custom,
    )?;
    slurm()
        .poll_as(
            &state.runner,
            &account,
            &line,
            Path::new(&first.job_dir),
            &ids,
        )
        .await
}

/// Moves each job of `group` on to the state its poll gave; for jobs SLURM no longer lists,
/// reads the jobcomp file.
async fn apply_states(
    state: &Services,
    group: &[Job],
    states: &HashMap<String, ClusterState>,
) -> Result<(), StoreError> {
    let mut gone = Vec::new();
    for job in group {
        let id = job.cluster_job_id.clone().unwrap_or_default();
        let Some(st) = states.get(&id) else { continue };
        match st.state {
            JobState::Queued | JobState::Launched => {}
            JobState::Running => {
                if job.status == JobStatus::Launched {
                    running(state, job, None, None).await?;
                }
            }
            JobState::Completed => finish(state, job, JobStatus::Completed, None).await?,
            JobState::Failed => {
                finish(
                    state,
                    job,
                    JobStatus::Failed,
                    Some(&format!("SLURM: {} {}", st.slurm_state, st.reason)),
                )
                .await?;
            }
            JobState::Killed => {
                finish(
                    state,
                    job,
                    JobStatus::Killed,
                    Some("cancelled on the cluster"),
                )
                .await?;
            }
            JobState::Gone => gone.push(job),
        }
    }
    if !gone.is_empty() {
        let ids: Vec<String> = gone
            .iter()
            .filter_map(|j| j.cluster_job_id.clone())
            .collect();
        let comp = crate::cluster::slurm::jobcomp_path(&crate::cluster::slurm::slurm_conf_path())
            .and_then(|p| crate::cluster::slurm::jobcomp_lookup(&p, &ids).ok())
            .unwrap_or_default();
        for job in gone {
            let id = job.cluster_job_id.clone().unwrap_or_default();
            match comp.get(&id).filter(|c| !c.conflicting) {
                Some(c) if c.state == JobState::Completed => {
                    finish(state, job, JobStatus::Completed, None).await?;
                }
                Some(c) if c.state == JobState::Killed => {
                    finish(
                        state,
                        job,
                        JobStatus::Killed,
                        Some("cancelled on the cluster"),
                    )
                    .await?;
                }
                Some(c) => {
                    let why = format!(
                        "SLURM: {} (exit {:?})",
                        c.slurm_state.clone().unwrap_or_default(),
                        c.exit_code
                    );
                    finish(state, job, JobStatus::Failed, Some(&why)).await?;
                }
                None => {
                    finish(
                        state,
                        job,
                        JobStatus::Failed,
                        Some(
                            "SLURM no longer knows the job and recorded no end: see the job's log",
                        ),
                    )
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// Cancels a cluster job with the target's `qdel_cmd_tpl`, as the lab's account.
pub async fn cancel(state: &Services, job: &Job) -> Result<(), StoreError> {
    let Some(cluster_id) = job.cluster_job_id.clone() else {
        return Ok(());
    };
    let lane = lanes::get(&state.db, job.lane_id.unwrap_or_default()).await?;
    let target = target_of(&lane, job)?;
    let info = ClusterInfo::from_value(target.config.clone())?;
    let account = account_of(state, job).await?;
    let (mut builtins, custom) = variables(state, job, &target, &info).await?;
    builtins.cluster_job_id = Some(cluster_id);
    let qdel = render_command(&info.qdel_cmd_tpl, "qdel_cmd_tpl", &builtins, &custom)?;
    let qdel = send_line(&info.send_cmd_tpl, &qdel, &builtins, &custom)?;
    match slurm()
        .cancel(&state.runner, &account, &qdel, Path::new(&job.job_dir))
        .await
    {
        Ok(()) => Ok(()),
        Err(SlurmError::Invalid(e)) => Err(e),
        Err(e) => Err(StoreError::Internal(format!(
            "cancelling on the cluster: {e}"
        ))),
    }
}
