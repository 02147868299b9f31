//! Durable enqueue rate (issue 5: >= 5,000 jobs/s with batched commits): `jobs::queue_many` in
//! batches of 1,000 against `jobs::queue` one job per commit, in the same run, on SQLite with
//! synchronous=FULL (each commit is an fsync). Every queued job gets its audit event.

use std::time::Instant;

use cryowarden_core::{Actor, SiteRole, UserId};
use cryowarden_server::context::Ctx;
use cryowarden_server::db::Db;
use cryowarden_server::jobs::{self, QueueRequest};
use cryowarden_server::settings::SettingsCache;

const BATCHED: i64 = 20_000;
const SINGLE: i64 = 500;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let base = std::env::var_os("CRYOWARDEN_BENCH_TMP")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("cw-enqueue-bench")
        .tempdir_in(base)
        .expect("temp dir");
    let db = Db::connect(&format!(
        "sqlite://{}",
        work.path().join("bench.db").display()
    ))
    .await
    .expect("db");
    db.migrate().await.expect("migrate");
    let admin = seed(&db).await;
    let ctx = Ctx::for_actor(
        Actor::new(UserId(admin), SiteRole::SiteAdmin),
        "admin",
        "bench".into(),
    );
    let settings = SettingsCache::default();
    let req = || QueueRequest {
        lane: "bench".into(),
        ..QueueRequest::default()
    };

    let t = Instant::now();
    for first in (1..=SINGLE).step_by(1) {
        jobs::queue(&db, &settings, &ctx, first, req())
            .await
            .expect("queue");
    }
    let single = SINGLE as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let ids: Vec<i64> = (SINGLE + 1..=SINGLE + BATCHED).collect();
    for chunk in ids.chunks(1000) {
        jobs::queue_many(&db, &settings, &ctx, chunk, req())
            .await
            .expect("queue many");
    }
    let batched = BATCHED as f64 / t.elapsed().as_secs_f64();
    println!("\n== durable enqueue, SQLite synchronous=FULL, one audit event per job");
    println!("queue_many, batches of 1,000 ({BATCHED} jobs): {batched:>9.0} jobs/s");
    println!("queue, one commit per job ({SINGLE} jobs):       {single:>9.0} jobs/s");
    println!("ratio: {:.1}  (target: >= 5,000 jobs/s)", batched / single);
}

async fn seed(db: &Db) -> i64 {
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO users (username, username_key, email, email_key, first_name, last_name, status, site_role, \
         job_priority_management, live_data_management, created_at, updated_at) \
         VALUES ('admin', 'admin', 'a@example.org', 'a@example.org', '', '', 'active', 'site_admin', 1, 0, 0, 0)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO labs (name, name_key, title, created_at, updated_at) VALUES ('lab', 'lab', 'lab', 0, 0)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO projects (lab_id, name, name_key, title, parent_dir, dir_name, created_at, updated_at) \
         VALUES (1, 'p', 'p', 'p', '/data', 'p', 0, 0)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO lanes (name, name_key, title, kind, created_at, updated_at) VALUES ('bench', 'bench', 'bench', 'node', 0, 0)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO targets (lane_id, name, name_key, kind, config, created_at, updated_at) \
         VALUES (1, 'n', 'n', 'node', '{\"cpus\": 64, \"ram_gb\": 256, \"gpus\": []}', 0, 0)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let total = SINGLE + BATCHED;
    for first in (1..=total).step_by(500) {
        let values: Vec<String> = (first..(first + 500).min(total + 1))
            .map(|n| format!("(1, {n}, 'validation', 'v', '{{}}', 1, 1, 0, 1, 'building', 0, 0)"))
            .collect();
        sqlx::query(&format!(
            "INSERT INTO jobs (project_id, number, job_type, title, params, creator_id, num_cpu, num_gpu, ram_gb, status, \
             created_at, updated_at) VALUES {}",
            values.join(",")
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    1
}
