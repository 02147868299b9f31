//! SLURM figures of issue 5 (run by bench/slurm.sh against the test command's single-node
//! cluster), each beside a baseline measured in the same run:
//!   1. submitting 1,000 jobs through cryowarden (queue_many on a cluster lane: the scheduler
//!      renders each script, writes it and runs sbatch as the lab's account through the runner,
//!      a few at a time) against a plain sequential loop of `sbatch` as the same account;
//!   2. polling the states of 1,000 jobs: cryowarden's one `squeue` call against one `squeue -j`
//!      call per job (50 of them, scaled to 1,000).
//!
//! Needs root, SLURM_CONF, the accounts cwlab1 and the release runner (CRYOWARDEN_BENCH_RUNNER).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cryowarden_core::{Actor, SiteRole, UserId};
use cryowarden_server::config::{Config, RunnerConfig};
use cryowarden_server::context::Ctx;
use cryowarden_server::jobs::{self, NewJob, QueueRequest};
use cryowarden_server::lanes::{self, ConnectCluster};
use cryowarden_server::projects::{self, NewProject};
use cryowarden_server::{AppState, cluster};

const JOBS: usize = 1000;

const SCRIPT: &str = "#!/usr/bin/env bash\n#SBATCH --job-name=cwbench_{{ job_uid }}\n#SBATCH --output={{ job_log_path_abs }}\n#SBATCH --cpus-per-task={{ num_cpu }}\n#SBATCH --mem=100M\n{{ run_cmd }}\n";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

fn sh(args: &[&str]) -> std::process::Output {
    std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect(args[0])
}

async fn run() {
    std::env::var_os("SLURM_CONF")
        .expect("SLURM_CONF: start the fixture (scripts/slurm-fixture.sh) and export it");
    if !sh(&["id", "-u", "cwlab1"]).status.success() {
        assert!(
            sh(&["useradd", "-M", "-u", "2101", "-U", "cwlab1"])
                .status
                .success()
        );
    }
    let base =
        std::env::var_os("CRYOWARDEN_BENCH_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("cw-slurm-bench")
        .tempdir_in(base)
        .expect("temp dir");
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let projects_root = work.path().join("projects");
    std::fs::create_dir(&projects_root).unwrap();
    std::os::unix::fs::chown(&projects_root, Some(2101), Some(2101)).unwrap();
    let policy = work.path().join("runner.toml");
    std::fs::write(&policy, "allowed_users = [\"cwlab1\"]\n").unwrap();
    let config = Config {
        data_dir: work.path().to_owned(),
        runner: RunnerConfig {
            command: vec![
                std::env::var("CRYOWARDEN_BENCH_RUNNER").expect("CRYOWARDEN_BENCH_RUNNER"),
            ],
            policy: Some(policy),
        },
        ..Config::default()
    };
    let state = AppState::open(config).await.expect("open");
    let db = &state.db;
    sqlx::query(
        "INSERT INTO users (username, username_key, email, email_key, first_name, last_name, status, site_role, \
         job_priority_management, live_data_management, created_at, updated_at) \
         VALUES ('admin', 'admin', 'a@example.org', 'a@example.org', '', '', 'active', 'site_admin', 1, 0, 0, 0)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO labs (name, name_key, title, unix_user, unix_group, uid, gid, created_at, updated_at) \
         VALUES ('lab1', 'lab1', 'lab1', 'cwlab1', 'cwlab1', 2101, 2101, 0, 0)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO lab_roots (lab_id, kind, path) VALUES (1, 'project', $1)")
        .bind(projects_root.to_str().unwrap())
        .execute(&db.pool)
        .await
        .unwrap();
    let ctx = Ctx::for_actor(
        Actor::new(UserId(1), SiteRole::SiteAdmin),
        "admin",
        "bench".into(),
    );
    let new = NewProject {
        lab_id: 1,
        name: "bench".into(),
        title: None,
        description: None,
        lab_members_read: None,
        file_root: None,
    };
    let project = projects::create(db, &state.runner, &ctx, new)
        .await
        .expect("project");
    let (info, _) = cluster::slurm::example_slurm();
    let mut info: serde_json::Value = serde_json::from_str(&info).unwrap();
    info["name"] = serde_json::json!("bench");
    lanes::connect_cluster(
        db,
        &ctx,
        ConnectCluster {
            info,
            script: SCRIPT.into(),
        },
    )
    .await
    .expect("cluster");
    let mut ids = Vec::with_capacity(JOBS);
    for _ in 0..JOBS {
        let new = NewJob {
            project_id: project.id,
            workspace_id: None,
            job_type: cryowarden_core::jobs::JobType::Validation,
            title: None,
            params: serde_json::json!({}),
            num_cpu: None,
            num_gpu: None,
            ram_gb: None,
        };
        ids.push(
            jobs::create(db, &state.runner, &ctx, new)
                .await
                .expect("job")
                .id,
        );
    }
    cryowarden_server::scheduler::start(state.services.clone())
        .await
        .expect("scheduler");

    // 1. Plain sbatch loop, as cwlab1, of the same kind of script.
    let plain = work.path().join("plain.sh");
    std::fs::write(
        &plain,
        "#!/usr/bin/env bash\n#SBATCH --job-name=cwbench_plain\n#SBATCH --output=/dev/null\n#SBATCH --mem=100M\ntrue\n",
    )
    .unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = Instant::now();
    for _ in 0..JOBS {
        let out = sh(&[
            "runuser",
            "-u",
            "cwlab1",
            "--",
            "sbatch",
            "--parsable",
            "--chdir=/tmp",
            plain.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
    }
    let plain_rate = JOBS as f64 / t.elapsed().as_secs_f64();
    sh(&["scancel", "-u", "cwlab1"]);

    let t = Instant::now();
    let queued = jobs::queue_many(
        db,
        &state.settings,
        &ctx,
        &ids,
        QueueRequest {
            lane: "bench".into(),
            ..QueueRequest::default()
        },
    )
    .await
    .expect("queue");
    for j in &queued {
        state.scheduler.enqueued(j);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE cluster_job_id IS NULL AND status <> 'failed'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} jobs never submitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ours_rate = JOBS as f64 / t.elapsed().as_secs_f64();
    let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'failed'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    println!("\n== submitting {JOBS} jobs to SLURM (single-node fixture)");
    println!(
        "cryowarden (render, write, sbatch as cwlab1 via the runner): {ours_rate:>7.1} jobs/s  ({failed} failed)"
    );
    println!(
        "plain sbatch loop as cwlab1:                                 {plain_rate:>7.1} jobs/s"
    );
    println!("ratio: {:.2}  (target: >= 0.90)", ours_rate / plain_rate);

    // 2. Polling.
    let cluster_ids: Vec<String> =
        sqlx::query_scalar("SELECT cluster_job_id FROM jobs WHERE cluster_job_id IS NOT NULL")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let slurm = cluster::Slurm::default();
    let t = Instant::now();
    let states = slurm.poll(&cluster_ids).await.expect("poll");
    let one_call = t.elapsed();
    let t = Instant::now();
    for id in cluster_ids.iter().take(50) {
        sh(&["squeue", "-h", "-t", "all", "-j", id]);
    }
    let per_job = t.elapsed() / 50 * cluster_ids.len() as u32;
    println!("\n== polling the states of {} jobs", cluster_ids.len());
    println!(
        "one squeue call for all ({} answered): {:>8.1} ms",
        states.len(),
        one_call.as_secs_f64() * 1e3
    );
    println!(
        "one squeue -j per job (50 timed, scaled): {:>8.1} ms",
        per_job.as_secs_f64() * 1e3
    );
    println!(
        "ratio: {:.3}",
        one_call.as_secs_f64() / per_job.as_secs_f64()
    );
    state.scheduler.halt();
    sh(&["scancel", "-u", "cwlab1"]);
    let _ = Path::new("/");
}
