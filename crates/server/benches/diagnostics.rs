//! What the diagnostics' tracing layers cost (`inspect::queries`, `inspect::errors`, the per-file
//! filters of `inspect::loggers`), in one run on SQLite:
//!   1. a point query (`SELECT ... FROM users WHERE id = $1`) with no subscriber (the baseline)
//!      and with the server's global subscriber installed (`logs::init` at `info`: log files,
//!      statement statistics, error ring), where every statement emits the sqlx event that the
//!      statistics count. A global subscriber cannot be removed, so each measurement is a child
//!      process of its own (warm-up, then the timed queries), the two kinds alternating, 5 each;
//!      medians;
//!   2. one sqlx-shaped statement event through the installed subscriber, against a debug event
//!      of the `app` service that the `info` filter drops (the cost of a disabled callsite).

use std::time::{Duration, Instant};

use cryowarden_server::db::Db;

const QUERIES: usize = 20_000;
const EVENTS: usize = 200_000;
const ROUNDS: usize = 5;
const CHILD_ENV: &str = "CRYOWARDEN_DIAGNOSTICS_BENCH_CHILD";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match std::env::var(CHILD_ENV).ok().as_deref() {
        Some(mode) => rt.block_on(child(mode == "layers")),
        None => {
            let (mut plain, mut layers) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                plain.push(spawn_child("plain"));
                layers.push(spawn_child("layers"));
            }
            let (plain, layers) = (median(plain), median(layers));
            println!(
                "\n== point query, {QUERIES} per process, {ROUNDS} processes each, alternating (SQLite, WAL)"
            );
            println!("no subscriber (baseline): {plain:.1} µs/query");
            println!(
                "server subscriber (files at info + statement statistics + error ring): {layers:.1} µs/query  ratio {:.3}",
                layers / plain
            );
            rt.block_on(events());
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// µs per query in a child process.
fn spawn_child(mode: &str) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().expect("current exe"))
        .env(CHILD_ENV, mode)
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("µs per query")
}

async fn point_queries(db: &Db, n: usize) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
            .bind((i % 100) as i64 + 1)
            .fetch_optional(&db.pool)
            .await
            .expect("query");
        assert!(found.is_some());
    }
    t.elapsed()
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

async fn seeded(work: &std::path::Path) -> Db {
    let db = Db::connect(&format!("sqlite://{}", work.join("bench.db").display()))
        .await
        .expect("db");
    db.migrate().await.expect("migrate");
    for i in 1..=100 {
        sqlx::query(
            "INSERT INTO users (username, username_key, email, email_key, first_name, last_name, status, site_role, \
             job_priority_management, live_data_management, created_at, updated_at) \
             VALUES ($1, $1, $2, $2, '', '', 'active', 'none', 0, 0, 0, 0)",
        )
        .bind(format!("user{i}"))
        .bind(format!("user{i}@bench.example"))
        .execute(&db.pool)
        .await
        .expect("seed");
    }
    db
}

fn work_dir() -> tempfile::TempDir {
    let base = std::env::var_os("CRYOWARDEN_BENCH_TMP")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    tempfile::Builder::new()
        .prefix("cw-diagnostics-bench")
        .tempdir_in(base)
        .expect("temp dir")
}

async fn child(layers: bool) {
    let work = work_dir();
    let _guard = layers.then(|| {
        cryowarden_server::logs::init(&work.path().join("logs"), "info", false)
            .expect("install the logging")
    });
    let db = seeded(work.path()).await;
    point_queries(&db, QUERIES).await;
    let t = point_queries(&db, QUERIES).await;
    if layers {
        let stats = cryowarden_server::inspect::queries::view();
        assert!(
            stats["executions"].as_u64().unwrap() >= 2 * QUERIES as u64,
            "the statistics counted the queries"
        );
    }
    println!("{}", per(t, QUERIES));
}

async fn events() {
    let work = work_dir();
    let guard = cryowarden_server::logs::init(&work.path().join("logs"), "info", false)
        .expect("install the logging");
    let statement =
        "SELECT id, username FROM users WHERE id = $1 AND status = 'active' ORDER BY id";
    let t = Instant::now();
    for _ in 0..EVENTS {
        tracing::debug!(target: "cryowarden_server::app", statement, "dropped by the info filter");
    }
    let disabled = t.elapsed();
    let t = Instant::now();
    for i in 0..EVENTS {
        tracing::debug!(target: "sqlx::query", summary = "SELECT id, username FROM", db.statement = statement,
            rows_affected = 0u64, rows_returned = 1u64, elapsed_secs = (i % 7) as f64 * 1e-6);
    }
    let counted = t.elapsed();
    println!("\n== one event, {EVENTS} each, through the installed subscriber");
    println!(
        "a debug event the filter drops (baseline): {:.4} µs",
        per(disabled, EVENTS)
    );
    println!(
        "a statement event counted by the statistics: {:.3} µs  ratio {:.0}",
        per(counted, EVENTS),
        counted.as_secs_f64() / disabled.as_secs_f64()
    );
    drop(guard);
}
