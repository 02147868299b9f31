//! The scheduler: one task that launches queued jobs in queue order (priority, then first in
//! first out) onto free slots of their lane, holds launches during maintenance, and follows
//! running jobs to their end. The database is the record; the queue order is kept in memory
//! ([`QueueIndex`]) and rebuilt from it at start, together with what was running.
//!
//! - node lanes ([`node`]): the job runs on a target's CPU/GPU/RAM slots, as the lab's Unix
//!   account, through the runner, in its own process group with `CUDA_VISIBLE_DEVICES` set;
//! - cluster lanes ([`cluster`]): the CryoSPARC cluster script is rendered and submitted with
//!   the target's qsub command as the lab's account; states are polled in one call per interval;
//! - imports ([`import`]) read file headers through the runner and record exposures.

pub mod cluster;
pub mod import;
pub mod node;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryowarden_core::jobs::{JobStatus, JobType, QueueIndex, QueueState, QueuedJob};
use serde_json::json;
use tokio::sync::Notify;

use crate::db::now_ms;
use crate::error::StoreError;
use crate::jobs::{self, Job};
use crate::lanes::{self, Lane, LaneKind, LaneTarget};
use crate::services::Services;

/// What a launched job holds on a node target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hold {
    pub target: i64,
    pub cpus: i64,
    pub ram_gb: i64,
    pub gpus: BTreeSet<u32>,
}

/// What a queued job asks of a node lane.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Want {
    cpus: i64,
    gpus: i64,
    ram_gb: i64,
    target: Option<i64>,
    gpu_ids: Option<Vec<u32>>,
}

impl Want {
    fn of(job: &Job) -> Want {
        Want {
            cpus: job.num_cpu,
            gpus: job.num_gpu,
            ram_gb: job.ram_gb,
            target: job.target_id,
            gpu_ids: job.gpu_ids.clone(),
        }
    }
}

#[derive(Default)]
struct Inner {
    index: QueueIndex,
    wants: HashMap<i64, Want>,
    /// Jobs holding node slots, by job id.
    holds: HashMap<i64, Hold>,
    /// The queue state last written for each queued job, to write only changes.
    shown: HashMap<i64, (QueueState, Option<String>)>,
    /// Process groups of node jobs started by this process, by job id.
    groups: HashMap<i64, i64>,
    /// Cluster lanes whose controller did not answer: no submission before the instant; the
    /// current backoff.
    retry: HashMap<i64, (std::time::Instant, Duration)>,
}

/// The scheduler's shared state; its loop runs in [`start`].
#[derive(Default)]
pub struct Scheduler {
    inner: Mutex<Inner>,
    wake: Notify,
    halted: std::sync::atomic::AtomicBool,
    /// Passes of the loop and cluster polls so far, and when the last of each ended (ms), for
    /// the running-tasks diagnostic ([`Scheduler::snapshot`]).
    passes: std::sync::atomic::AtomicU64,
    last_pass_ms: std::sync::atomic::AtomicI64,
    polls: std::sync::atomic::AtomicU64,
    last_poll_ms: std::sync::atomic::AtomicI64,
}

impl Scheduler {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops this scheduler for good, as if its server had died: its loops end and what its
    /// jobs do from now on is left to the next server's reconciliation (tests of restarts).
    pub fn halt(&self) {
        self.halted.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub fn halted(&self) -> bool {
        self.halted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// What the scheduler is doing, read-only (the running-tasks diagnostic): its loop's passes,
    /// the cluster poller's polls, the queue by lane, the slots running jobs hold, the process
    /// groups it started and the lanes in backoff.
    pub fn snapshot(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        let when = |ms: i64| (ms > 0).then(|| crate::db::format_ms(ms));
        let inner = self.lock();
        let now = std::time::Instant::now();
        let by_lane: Vec<serde_json::Value> = inner
            .index
            .lanes()
            .map(|lane| json!({ "lane_id": lane, "queued": inner.index.in_order(lane).count() }))
            .collect();
        let mut holds: Vec<serde_json::Value> = inner
            .holds
            .iter()
            .map(|(job, h)| json!({ "job_id": job, "target_id": h.target, "cpus": h.cpus, "ram_gb": h.ram_gb, "gpus": h.gpus }))
            .collect();
        holds.sort_by_key(|h| h["job_id"].as_i64());
        let mut backoff: Vec<serde_json::Value> = inner
            .retry
            .iter()
            .map(|(lane, (until, wait))| {
                json!({ "lane_id": lane, "backoff_ms": wait.as_millis() as u64, "retry_in_ms": until.saturating_duration_since(now).as_millis() as u64 })
            })
            .collect();
        backoff.sort_by_key(|b| b["lane_id"].as_i64());
        json!({
            "halted": self.halted(),
            "tick_ms": TICK.as_millis() as u64,
            "passes": self.passes.load(Relaxed),
            "last_pass_at": when(self.last_pass_ms.load(Relaxed)),
            "cluster_poll_interval_ms": cluster::POLL_INTERVAL.as_millis() as u64,
            "cluster_polls": self.polls.load(Relaxed),
            "last_cluster_poll_at": when(self.last_poll_ms.load(Relaxed)),
            "queued": inner.index.len(),
            "queued_by_lane": by_lane,
            "holds": holds,
            "started_groups": inner.groups.len(),
            "cluster_backoff": backoff,
        })
    }

    /// Asks the loop to look at the queue now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A job was queued: it takes its place in the order.
    pub fn enqueued(&self, job: &Job) {
        if let (JobStatus::Queued, Some(lane)) = (job.status, job.lane_id) {
            let mut inner = self.lock();
            inner.index.push(QueuedJob {
                priority: job.priority,
                seq: job.queued_seq.unwrap_or(job.id),
                job: job.id,
                lane,
            });
            inner.wants.insert(job.id, Want::of(job));
            drop(inner);
            self.wake();
        }
    }

    /// The GPUs of a node target that launched or running jobs hold now.
    pub fn busy_gpus(&self, target: i64) -> BTreeSet<u32> {
        self.lock()
            .holds
            .values()
            .filter(|h| h.target == target)
            .flat_map(|h| h.gpus.iter().copied())
            .collect()
    }

    /// The position of a queued job in its lane (0 = next).
    pub fn position(&self, job: i64) -> Option<usize> {
        self.lock().index.position(job)
    }

    /// Rebuilds the queue order from the database (after lanes change).
    pub async fn reload(&self, state: &Services) -> Result<(), StoreError> {
        let queued = jobs::in_status(&state.db, &[JobStatus::Queued]).await?;
        {
            let mut inner = self.lock();
            inner.index = QueueIndex::new();
            inner.wants.clear();
            for j in &queued {
                if let Some(lane) = j.lane_id {
                    inner.index.push(QueuedJob {
                        priority: j.priority,
                        seq: j.queued_seq.unwrap_or(j.id),
                        job: j.id,
                        lane,
                    });
                    inner.wants.insert(j.id, Want::of(j));
                }
            }
        }
        self.wake();
        Ok(())
    }

    /// Stops a job whose kill was recorded: queued ones leave the order; running ones are
    /// signalled (node) or cancelled (cluster), and marked killed when they end.
    pub async fn stop(&self, state: &Services, job: &Job) -> Result<(), StoreError> {
        {
            let mut inner = self.lock();
            inner.index.remove(job.id);
            inner.wants.remove(&job.id);
        }
        match job.status {
            JobStatus::Launched | JobStatus::Running => {
                let lane = match job.lane_id {
                    Some(l) => lanes::get(&state.db, l).await.ok(),
                    None => None,
                };
                match lane.map(|l| l.kind) {
                    Some(LaneKind::Cluster) => cluster::cancel(state, job).await,
                    _ => {
                        let pgid = self.lock().groups.get(&job.id).copied().or(job.pid);
                        node::signal(state, job, pgid).await
                    }
                }
            }
            _ => Ok(()),
        }
    }

    fn release(&self, job: i64) {
        {
            let mut inner = self.lock();
            inner.holds.remove(&job);
            inner.groups.remove(&job);
        }
        self.wake();
    }

    pub(crate) fn started(&self, job: i64, pgid: i64) {
        self.lock().groups.insert(job, pgid);
    }

    /// A cluster lane took a submission: its backoff ends.
    pub(crate) fn submitted(&self, lane: i64) {
        self.lock().retry.remove(&lane);
    }

    /// A cluster lane did not answer: the next submission waits, doubling each time.
    pub(crate) fn backoff(&self, lane: i64) -> Duration {
        let mut inner = self.lock();
        let wait = inner
            .retry
            .get(&lane)
            .map_or(cluster::RETRY_FIRST, |(_, w)| {
                (*w * 2).min(cluster::RETRY_MAX)
            });
        inner
            .retry
            .insert(lane, (std::time::Instant::now() + wait, wait));
        wait
    }

    /// A launched job went back to the queue (its old place: same priority and sequence).
    pub(crate) fn requeued(&self, job: &Job, message: &str) {
        if let Some(lane) = job.lane_id {
            let mut inner = self.lock();
            inner.index.push(QueuedJob {
                priority: job.priority,
                seq: job.queued_seq.unwrap_or(job.id),
                job: job.id,
                lane,
            });
            inner.wants.insert(job.id, Want::of(job));
            inner.shown.insert(
                job.id,
                (QueueState::WaitingCluster, Some(message.to_owned())),
            );
        }
    }
}

/// How often the loop looks even when nothing woke it, and how often cluster jobs are polled.
pub const TICK: Duration = Duration::from_millis(500);

/// Starts the scheduler: rebuilds its state from the database (reconciling jobs that were
/// launched or running when the server stopped) and spawns its loop and the cluster poller.
pub async fn start(state: Arc<Services>) -> Result<(), StoreError> {
    lanes::ensure_default_lane(&state.db).await?;
    state.scheduler.reload(&state).await?;
    reconcile(&state).await?;
    let looped = state.clone();
    tokio::spawn(async move {
        while !looped.scheduler.halted() {
            if let Err(e) = tick(&looped).await {
                tracing::error!(target: "scheduler", error = %e, "scheduler pass failed");
            }
            looped
                .scheduler
                .passes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            looped
                .scheduler
                .last_pass_ms
                .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
            let _ = tokio::time::timeout(TICK, looped.scheduler.wake.notified()).await;
        }
    });
    let polled = state.clone();
    tokio::spawn(async move {
        while !polled.scheduler.halted() {
            if let Err(e) = cluster::poll_all(&polled).await {
                tracing::warn!(target: "scheduler", error = %e, "cluster poll failed");
            }
            polled
                .scheduler
                .polls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            polled
                .scheduler
                .last_poll_ms
                .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(cluster::POLL_INTERVAL).await;
        }
    });
    Ok(())
}

/// Jobs that were launched or running when the server stopped.
async fn reconcile(state: &Arc<Services>) -> Result<(), StoreError> {
    let lanes = lanes::all(&state.db).await?;
    for job in jobs::in_status(&state.db, &[JobStatus::Launched, JobStatus::Running]).await? {
        let kind = job
            .lane_id
            .and_then(|l| lanes.iter().find(|x| x.id == l))
            .map(|l| l.kind);
        match (kind, job.job_type) {
            // With a cluster job id, the poller follows them. Without one, the server stopped
            // around the submission: SLURM is asked whether a job of the lab's account runs in the
            // job's directory (adopted), else the job goes back to its place in the queue.
            (Some(LaneKind::Cluster), _) if job.cluster_job_id.is_some() => {}
            (Some(LaneKind::Cluster), _) => cluster::recover(state, &job).await?,
            (_, JobType::ImportMovies | JobType::ImportMicrographs) => {
                // An import runs inside the server: it died with it. Nothing was recorded half
                // way (exposures commit with the job's end), so it can simply run again.
                finish(
                    state,
                    &job,
                    JobStatus::Failed,
                    Some("the server stopped during the import: queue it again"),
                )
                .await?;
            }
            _ => {
                if let Some(hold) = hold_of(&job) {
                    state.scheduler.lock().holds.insert(job.id, hold);
                }
                node::reattach(state.clone(), job).await?;
            }
        }
    }
    Ok(())
}

fn hold_of(job: &Job) -> Option<Hold> {
    let a = job.assigned.as_ref()?;
    Some(Hold {
        target: a["target_id"].as_i64()?,
        cpus: job.num_cpu,
        ram_gb: job.ram_gb,
        gpus: a["gpus"]
            .as_array()?
            .iter()
            .filter_map(|g| g.as_u64().map(|g| g as u32))
            .collect(),
    })
}

/// Free slots of a node target, given what the holds take.
fn free_gpus(t: &LaneTarget, holds: &HashMap<i64, Hold>) -> Option<(i64, i64, BTreeSet<u32>)> {
    let node = t.node()?;
    let mut cpus = i64::from(node.cpus);
    let mut ram = i64::from(node.ram_gb);
    let mut gpus: BTreeSet<u32> = node.gpus.iter().map(|g| g.id).collect();
    for h in holds.values().filter(|h| h.target == t.id) {
        cpus -= h.cpus;
        ram -= h.ram_gb;
        for g in &h.gpus {
            gpus.remove(g);
        }
    }
    Some((cpus, ram, gpus))
}

/// Where a job fits on a node lane now: the target and the GPUs it gets.
fn place(lane: &Lane, job: &Want, holds: &HashMap<i64, Hold>) -> Result<Hold, String> {
    let mut reason = format!(
        "waiting for {} GPU(s), {} CPU(s), {} GB in lane {}",
        job.gpus, job.cpus, job.ram_gb, lane.name
    );
    for t in &lane.targets {
        if job.target.is_some_and(|id| id != t.id) {
            continue;
        }
        let Some((cpus, ram, free)) = free_gpus(t, holds) else {
            continue;
        };
        if cpus < job.cpus || ram < job.ram_gb {
            continue;
        }
        let gpus: BTreeSet<u32> = match &job.gpu_ids {
            Some(ids) => {
                if ids.iter().all(|g| free.contains(g)) {
                    ids.iter().copied().collect()
                } else {
                    reason = format!("waiting for GPU(s) {ids:?} on {}", t.name);
                    continue;
                }
            }
            None => {
                if (free.len() as i64) < job.gpus {
                    continue;
                }
                free.iter().take(job.gpus as usize).copied().collect()
            }
        };
        return Ok(Hold {
            target: t.id,
            cpus: job.cpus,
            ram_gb: job.ram_gb,
            gpus,
        });
    }
    Err(reason)
}

/// One pass: hold everything during maintenance; otherwise launch, lane by lane, every job
/// that fits, in queue order (a job that does not fit does not block smaller ones behind it).
async fn tick(state: &Arc<Services>) -> Result<(), StoreError> {
    let settings = state.settings.get(&state.db).await?;
    let lanes_now = lanes::all(&state.db).await?;
    let mut launches: Vec<(i64, Option<Hold>)> = Vec::new();
    let mut states: Vec<(i64, QueueState, Option<String>)> = Vec::new();
    {
        let mut inner = state.scheduler.lock();
        let lane_ids: Vec<i64> = inner.index.lanes().collect();
        for lane_id in lane_ids {
            let queued: Vec<QueuedJob> = inner.index.in_order(lane_id).collect();
            let lane = lanes_now.iter().find(|l| l.id == lane_id);
            for q in queued {
                let (next_state, message, launch) = match lane {
                    None => (
                        QueueState::WaitingResources,
                        Some("the lane no longer exists: clear and queue again".to_owned()),
                        None,
                    ),
                    Some(_) if settings.maintenance.active => (
                        QueueState::WaitingMaintenance,
                        Some("the instance is in maintenance mode: launches wait".to_owned()),
                        None,
                    ),
                    Some(l) if l.kind == LaneKind::Cluster => match inner.retry.get(&l.id) {
                        Some((at, _)) if *at > std::time::Instant::now() => {
                            let left = at
                                .saturating_duration_since(std::time::Instant::now())
                                .as_secs()
                                + 1;
                            let message = format!(
                                "the cluster of lane {} is not answering; retrying in {left} s",
                                l.name
                            );
                            (QueueState::WaitingCluster, Some(message), None)
                        }
                        _ => (QueueState::ActivelyQueued, None, Some(None)),
                    },
                    Some(l) => {
                        let placed = match inner.wants.get(&q.job) {
                            Some(w) => place(l, w, &inner.holds),
                            None => Err(
                                "the job's resources are unknown: clear it and queue it again"
                                    .into(),
                            ),
                        };
                        match placed {
                            Ok(hold) => (QueueState::ActivelyQueued, None, Some(Some(hold))),
                            Err(reason) => (QueueState::WaitingResources, Some(reason), None),
                        }
                    }
                };
                match launch {
                    Some(hold) => {
                        inner.index.remove(q.job);
                        inner.wants.remove(&q.job);
                        inner.shown.remove(&q.job);
                        if let Some(h) = &hold {
                            inner.holds.insert(q.job, h.clone());
                        }
                        launches.push((q.job, hold));
                    }
                    None => {
                        let shown = (next_state, message.clone());
                        if inner.shown.get(&q.job) != Some(&shown) {
                            inner.shown.insert(q.job, shown);
                            states.push((q.job, next_state, message));
                        }
                    }
                }
            }
        }
    }
    for (job, st, message) in states {
        sqlx::query("UPDATE jobs SET queue_state = $1, queue_message = $2 WHERE id = $3 AND status = 'queued'")
            .bind(st.as_str())
            .bind(message)
            .bind(job)
            .execute(&state.db.pool)
            .await?;
    }
    // A few launches at a time: a submission waits on the cluster's controller (tens of ms), and
    // SchedMD asks clients not to hammer it; jobs are taken in queue order.
    use futures_util::StreamExt;
    let lanes_now = &lanes_now;
    futures_util::stream::iter(launches)
        .for_each_concurrent(LAUNCHES_AT_ONCE, |(job_id, hold)| async move {
            let launched = async {
                let job = jobs::get(&state.db, job_id).await?;
                let lane = job
                    .lane_id
                    .and_then(|l| lanes_now.iter().find(|x| x.id == l))
                    .cloned();
                if let Err(e) = launch(state, &job, lane, hold).await {
                    tracing::error!(target: "scheduler", job = job.id, error = %e, "launch failed");
                    finish(
                        state,
                        &job,
                        JobStatus::Failed,
                        Some(&format!("launch failed: {e}")),
                    )
                    .await?;
                }
                Ok::<_, StoreError>(())
            };
            if let Err(e) = launched.await {
                tracing::error!(target: "scheduler", job = job_id, error = %e, "launch failed");
            }
        })
        .await;
    Ok(())
}

/// Launches (submissions above all) in flight at once.
pub const LAUNCHES_AT_ONCE: usize = 4;

/// Marks a job launched (only if it is still queued) and hands it to its lane's launcher.
async fn launch(
    state: &Arc<Services>,
    job: &Job,
    lane: Option<Lane>,
    hold: Option<Hold>,
) -> Result<(), StoreError> {
    let assigned = hold
        .as_ref()
        .map(|h| json!({ "target_id": h.target, "gpus": h.gpus }));
    let now = now_ms();
    let changed = sqlx::query(
        "UPDATE jobs SET status = 'launched', queue_state = NULL, queue_message = NULL, assigned = $1, launched_at = $2, \
         updated_at = $2 WHERE id = $3 AND status = 'queued'",
    )
    .bind(assigned.map(|a| a.to_string()))
    .bind(now)
    .bind(job.id)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if changed == 0 {
        state.scheduler.release(job.id);
        return Ok(());
    }
    let job = jobs::get(&state.db, job.id).await?;
    match (lane.map(|l| l.kind), job.job_type) {
        (_, JobType::ImportMovies | JobType::ImportMicrographs) => {
            tokio::spawn(import::run(state.clone(), job));
            Ok(())
        }
        (Some(LaneKind::Cluster), _) => cluster::submit(state, &job).await,
        _ => node::run(state.clone(), job, hold.unwrap_or_default()).await,
    }
}

/// Records a job's end (unless it already ended) and frees what it held.
pub(crate) async fn finish(
    state: &Services,
    job: &Job,
    status: JobStatus,
    failure: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_ms();
    // A job whose kill was asked for ends as killed, whatever its exit.
    let killed = job.failure.as_deref() == Some("kill requested")
        || jobs::get(&state.db, job.id)
            .await
            .map(|j| j.failure.as_deref() == Some("kill requested"))
            .unwrap_or(false);
    let (status, failure) = if killed && status != JobStatus::Completed {
        (JobStatus::Killed, Some("killed by user"))
    } else {
        (status, failure)
    };
    sqlx::query(
        "UPDATE jobs SET status = $1, failure = $2, finished_at = $3, updated_at = $3 \
         WHERE id = $4 AND status IN ('queued', 'launched', 'running')",
    )
    .bind(status.as_str())
    .bind(failure)
    .bind(now)
    .bind(job.id)
    .execute(&state.db.pool)
    .await?;
    tracing::info!(target: "scheduler", job = job.id, uid = %job.uid, project = %job.project, status = %status, failure = failure.unwrap_or(""), "job finished");
    state.scheduler.release(job.id);
    Ok(())
}

/// Marks a launched job running.
pub(crate) async fn running(
    state: &Services,
    job: &Job,
    pid: Option<i64>,
    cluster_job_id: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(
        "UPDATE jobs SET status = 'running', pid = COALESCE($1, pid), cluster_job_id = COALESCE($2, cluster_job_id), \
         started_at = COALESCE(started_at, $3), updated_at = $3 WHERE id = $4 AND status IN ('launched', 'running')",
    )
    .bind(pid)
    .bind(cluster_job_id)
    .bind(now)
    .bind(job.id)
    .execute(&state.db.pool)
    .await?;
    Ok(())
}
