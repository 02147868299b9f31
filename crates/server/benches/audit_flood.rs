//! A flood of refusals against the audit chain (issue 11, item 8), run by bench/audit_flood.sh
//! on the release build. Eight tasks refuse one actor the same thing as fast as they can for
//! a few seconds, while a ninth makes one real change (an `ok` event in its own write
//! transaction) every 20 ms; then the same again with eight distinct targets per request
//! stream (the per-actor budget). Each is measured two ways in the same run:
//!   - before: every refusal appended to the chain in its own transaction (`audit::record`,
//!     what `Ctx::record` did for each refusal until now);
//!   - after: `Ctx::record`, which counts repeats and throttles per actor (`audit/repeats.rs`).
//!
//! Printed: refusals/s handled, events/s written to the chain by the flood, and the p50/p99
//! latency of the real change's commit meanwhile.
//! SQLite always; PostgreSQL too when CRYOWARDEN_BENCH_POSTGRES_URL is set (a fresh schema).
//! CRYOWARDEN_BENCH_SECS sets each phase's length (default 5).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cryowarden_server::audit::{self, Outcome, Who};
use cryowarden_server::context::{Ctx, Target};
use cryowarden_server::db::Db;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn fresh_schema(url: &str) -> String {
    sqlx::any::install_default_drivers();
    let schema = format!("bench_flood_{}", rand::random::<u32>());
    let pool = sqlx::AnyPool::connect(url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Before,
    After,
}

fn flooder() -> Ctx {
    let mut c = Ctx::system("bench", "192.0.2.66");
    c.who = Who {
        id: Some(4242),
        name: "flooder".into(),
    };
    c
}

async fn events(db: &Db) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// One phase: (refusals/s, chain events/s written by the flood, change p50, change p99).
async fn phase(db: &Db, path: Path, distinct: bool, secs: u64) -> (f64, f64, Duration, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start_events = events(db).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let (db, stop, done) = (db.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let ctx = flooder();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = if distinct {
                    format!("{t}-{i}")
                } else {
                    "1".to_owned()
                };
                let target = Target {
                    kind: "user",
                    id: Some(id),
                    name: Some("hidden".into()),
                };
                match path {
                    Path::Before => {
                        let e = ctx.event(
                            cryowarden_core::Activity::ViewUser,
                            &target,
                            Outcome::Denied,
                            Some("conceal".into()),
                            None,
                            None,
                        );
                        audit::record(&db, e).await.unwrap();
                    }
                    Path::After => {
                        ctx.record(
                            &db,
                            cryowarden_core::Activity::ViewUser,
                            &target,
                            Outcome::Denied,
                            Some("conceal".into()),
                            None,
                            None,
                        )
                        .await
                        .unwrap();
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
                // A refusal that is only counted never waits for I/O; a server's request would
                // (reading the next request), so the flood yields like one.
                tokio::task::yield_now().await;
            }
        }));
    }
    // The real changes meanwhile.
    let admin = {
        let mut c = Ctx::system("bench", "192.0.2.1");
        c.who = Who {
            id: Some(1),
            name: "admin".into(),
        };
        c
    };
    let mut latencies = Vec::new();
    let mut changes = 0i64;
    while started.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        let mut tx = db.begin_write().await.unwrap();
        admin
            .audit_ok(
                &mut tx,
                cryowarden_core::Action::ChangeSetting {
                    setting: cryowarden_core::Setting::LookAndFeel,
                    field: None,
                },
                &Target::instance(),
                None,
                None,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        latencies.push(t.elapsed());
        changes += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let written = events(db).await - start_events - changes;
    // What the after path still holds is written at the window's end: flushed here, not counted.
    audit::flush_refusals(db, true).await.unwrap();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        written as f64 / elapsed,
        p(0.5),
        p(0.99),
    )
}

async fn run() {
    let secs: u64 = std::env::var("CRYOWARDEN_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let work = tempfile::tempdir().expect("temp dir");
    let mut backends = vec![(
        "SQLite",
        format!("sqlite://{}", work.path().join("flood.db").display()),
    )];
    if let Some(url) = std::env::var("CRYOWARDEN_BENCH_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        backends.push(("PostgreSQL", fresh_schema(&url).await));
    }
    for (name, url) in backends {
        let db = Db::connect(&url).await.expect("db");
        db.migrate().await.expect("migrate");
        println!(
            "\n== {name}: 8 tasks refusing one actor for {secs} s, one real change every 20 ms"
        );
        println!(
            "{:<34} {:>12} {:>16} {:>12} {:>12}",
            "phase", "refusals/s", "events/s written", "change p50", "change p99"
        );
        for distinct in [false, true] {
            let mut rates = Vec::new();
            for path in [Path::Before, Path::After] {
                let (handled, written, p50, p99) = phase(&db, path, distinct, secs).await;
                let label = format!(
                    "{} {}",
                    if path == Path::Before {
                        "before (one event each)"
                    } else {
                        "after (counted)"
                    },
                    if distinct { "distinct" } else { "same" }
                );
                println!("{label:<34} {handled:>12.0} {written:>16.1} {p50:>12.2?} {p99:>12.2?}");
                rates.push(written);
            }
            println!(
                "  -> the flood writes {:.0}x fewer events ({} targets)",
                rates[0] / rates[1].max(1.0 / secs as f64),
                if distinct { "distinct" } else { "the same" }
            );
        }
        let check = audit::verify(&db).await.unwrap();
        println!("chain verifies: {} ({} events)", check.ok, check.events);
        db.pool.close().await;
    }
}
