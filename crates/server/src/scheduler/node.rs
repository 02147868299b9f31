//! Node lanes: a job runs on a target's slots as the lab's Unix account, through the runner, in
//! its own process group, with `CUDA_VISIBLE_DEVICES` naming the GPUs it was given and its output
//! in the job's log. The runner stays behind as the job's waiter and writes the job's status
//! file when it ends, so a job outlives a server restart and its end is found afterwards.

use std::sync::Arc;
use std::time::Duration;

use cryowarden_core::jobs::{JobStatus, JobType};

use super::{Hold, finish, running};
use crate::error::StoreError;
use crate::jobs::{self, Job, commands};
use crate::projects;
use crate::runner::{Account, JobStatus as ExitStatus};
use crate::services::Services;

pub const LOG: &str = "job.log";
pub const STATUS: &str = "job.status.json";

/// The installation test: writes and reads back in the job directory as the lab's account, and
/// reports the host, the account, the GPUs it was given and the timing. Fixed text: no user value
/// reaches it.
pub const VALIDATION_SCRIPT: &str = r#"set -eu
echo "cryowarden validation"
echo "host: $(hostname)"
echo "account: $(id -un) uid=$(id -u) gid=$(id -g)"
echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-}"
t0=$(date +%s%N)
head -c 4194304 /dev/urandom > validation.bin
a=$(cksum < validation.bin)
b=$(cat validation.bin | cksum)
t1=$(date +%s%N)
rm -f validation.bin
[ "$a" = "$b" ] || { echo "read back differs from what was written"; exit 1; }
echo "wrote and read back 4 MiB in $(( (t1 - t0) / 1000000 )) ms"
echo "validation passed"
"#;

/// The lab account a job's project runs as.
pub(crate) async fn account_of(state: &Services, job: &Job) -> Result<Account, StoreError> {
    let lab = crate::labs::get(&state.db, job.lab_id).await?;
    projects::lab_account(&lab)
}

/// The program a node job runs.
async fn argv(state: &Services, job: &Job) -> Result<Vec<String>, StoreError> {
    match job.job_type {
        JobType::Validation => Ok(vec![
            "/bin/sh".into(),
            "-c".into(),
            VALIDATION_SCRIPT.into(),
        ]),
        JobType::Command => {
            let name = job.params["template"].as_str().unwrap_or_default();
            let t = commands::get(&state.db, name).await?;
            t.render(
                &job.params
                    .get("values")
                    .cloned()
                    .unwrap_or(serde_json::json!({})),
            )
        }
        JobType::ImportMovies | JobType::ImportMicrographs => Err(StoreError::Internal(
            "imports do not run as processes".into(),
        )),
    }
}

/// Starts a launched job on the slots it holds and follows it to its end.
pub async fn run(state: Arc<Services>, job: Job, hold: Hold) -> Result<(), StoreError> {
    let account = account_of(&state, &job).await?;
    let argv = argv(&state, &job).await?;
    let gpus: Vec<String> = hold.gpus.iter().map(u32::to_string).collect();
    let env = vec![
        ("CUDA_VISIBLE_DEVICES".to_owned(), gpus.join(",")),
        (
            "CRYOWARDEN_JOB".to_owned(),
            format!("{}/{}", job.project, job.uid),
        ),
        ("CRYOWARDEN_JOB_DIR".to_owned(), job.job_dir.clone()),
        ("OMP_NUM_THREADS".to_owned(), job.num_cpu.max(1).to_string()),
    ];
    let dir = std::path::PathBuf::from(&job.job_dir);
    let mut started = state
        .runner
        .start_job(&account, &dir, LOG, &argv, &env, STATUS)
        .await?;
    let pgid = i64::from(started.started.pgid);
    state.scheduler.started(job.id, pgid);
    running(&state, &job, Some(pgid), None).await?;
    tokio::spawn(async move {
        let waited = started.wait().await;
        if let Err(e) = &waited {
            tracing::warn!(target: "scheduler", job = job.id, error = %e, "lost the job's waiter");
        }
        if state.scheduler.halted() {
            return;
        }
        if let Err(e) = conclude(&state, &job, &account).await {
            tracing::error!(target: "scheduler", job = job.id, error = %e, "cannot record the job's end");
        }
    });
    Ok(())
}

/// Reads the job's status file and records its end.
async fn conclude(state: &Services, job: &Job, account: &Account) -> Result<(), StoreError> {
    let dir = std::path::PathBuf::from(&job.job_dir);
    let status = state.runner.job_status(account, &dir, STATUS).await?;
    let (end, why) = outcome(status);
    finish(state, job, end, why.as_deref()).await
}

fn outcome(status: Option<ExitStatus>) -> (JobStatus, Option<String>) {
    match status {
        Some(ExitStatus {
            exit_code: Some(0), ..
        }) => (JobStatus::Completed, None),
        Some(ExitStatus {
            exit_code: Some(code),
            ..
        }) => (
            JobStatus::Failed,
            Some(format!("exited with status {code}: see the job's log")),
        ),
        Some(ExitStatus {
            signal: Some(sig), ..
        }) => (JobStatus::Failed, Some(format!("ended by signal {sig}"))),
        Some(_) => (
            JobStatus::Failed,
            Some("ended without an exit status".into()),
        ),
        None => (
            JobStatus::Failed,
            Some("the job's waiter ended without writing its status: see the job's log".into()),
        ),
    }
}

/// Whether a process group still has a member (signal 0 to the group; EPERM means it exists
/// under another account, which is the lab's).
fn group_alive(pgid: i64) -> bool {
    // A leader that is a zombie (its waiter died, and init has not reaped it yet) is dead.
    let zombie = std::fs::read_to_string(format!("/proc/{pgid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next().map(|st| st == "Z"))
        })
        .unwrap_or(false);
    if zombie {
        return false;
    }
    let Ok(pid) = i32::try_from(pgid) else {
        return false;
    };
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    match rustix::process::test_kill_process_group(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// After a restart: a job that was running is followed again by polling its status file while
/// its process group lives; one whose process died while the server was down, leaving no
/// status, is marked failed with the reason.
pub async fn reattach(state: Arc<Services>, job: Job) -> Result<(), StoreError> {
    let account = account_of(&state, &job).await?;
    let dir = std::path::PathBuf::from(&job.job_dir);
    if let Some(status) = state.runner.job_status(&account, &dir, STATUS).await? {
        let (end, why) = outcome(Some(status));
        return finish(&state, &job, end, why.as_deref()).await;
    }
    let Some(pgid) = job.pid.filter(|p| group_alive(*p)) else {
        let why = if job.status == JobStatus::Launched {
            "the server stopped while launching the job: queue it again"
        } else {
            "the job's process ended while the server was down and left no exit status"
        };
        return finish(&state, &job, JobStatus::Failed, Some(why)).await;
    };
    state.scheduler.started(job.id, pgid);
    tokio::spawn(async move {
        while !state.scheduler.halted() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            match state.runner.job_status(&account, &dir, STATUS).await {
                Ok(Some(status)) => {
                    let (end, why) = outcome(Some(status));
                    let _ = finish(&state, &job, end, why.as_deref()).await;
                    return;
                }
                Ok(None) if !group_alive(pgid) => {
                    // The waiter writes the status just after the group ends: look once more.
                    let last = state
                        .runner
                        .job_status(&account, &dir, STATUS)
                        .await
                        .ok()
                        .flatten();
                    let (end, why) = match last {
                        Some(s) => outcome(Some(s)),
                        None => (
                            JobStatus::Failed,
                            Some("the job's process ended and left no exit status".to_owned()),
                        ),
                    };
                    let _ = finish(&state, &job, end, why.as_deref()).await;
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(target: "scheduler", job = job.id, error = %e, "cannot read the job's status");
                }
            }
        }
    });
    Ok(())
}

/// Signals a running node job's process group, as the lab's account. Its waiter then records
/// the end, which `finish` turns into `killed`.
pub async fn signal(state: &Services, job: &Job, pgid: Option<i64>) -> Result<(), StoreError> {
    let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) else {
        // Launched but not started yet: the launch will find the kill request.
        return Ok(());
    };
    let account = account_of(state, job).await?;
    state
        .runner
        .kill_job(&account, pgid, Some(Duration::from_secs(5)))
        .await?;
    let _ = jobs::get(&state.db, job.id).await?;
    Ok(())
}
