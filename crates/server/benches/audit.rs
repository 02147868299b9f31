//! Audit log figures at 1,000,000 events (issue 6: a filtered page <= 50 ms p50; full chain
//! verification >= 500,000 events/s), run by bench/audit.sh on the release build:
//!   1. `audit::list` (the Audit Log page's query, 100 events) per filter kind — actor,
//!      impersonator, action prefix, outcome, time range, target — p50 and p99 over varied
//!      values, beside the bare indexed `SELECT ... ORDER BY seq DESC LIMIT 101` of the same
//!      filter through the same pool in the same run (the baseline: what one index range costs);
//!   2. `audit::verify` over the whole chain: events/s, beside two baselines in the same run —
//!      a bare streaming `SELECT` of every column (what reading alone costs) and the bare SHA-256
//!      of the same events held in memory (what hashing alone costs).
//!
//! The events are loaded by multi-row INSERTs with real chained hashes (`Stored::seal`), not
//! through HTTP: 1,000 actors, 1% impersonated (10 impersonators), 60 actions (20 of them
//! `change-setting:*`), 5% denied, 10,000 targets, times one year long.
//! SQLite always; PostgreSQL too when CRYOWARDEN_BENCH_POSTGRES_URL is set (a fresh schema).
//! CRYOWARDEN_BENCH_EVENTS overrides the count (default 1,000,000).

use std::time::{Duration, Instant};

use cryowarden_server::audit::{self, COLUMNS, Filter, GENESIS, Stored};
use cryowarden_server::db::{Db, format_ms};
use futures_util::TryStreamExt;
use rand::{Rng, SeedableRng};
use sqlx::Any;

const DAY_MS: i64 = 86_400_000;
const START_MS: i64 = 1_735_689_600_000; // 2025-01-01
const ROUNDS: usize = 200;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let n: i64 = std::env::var("CRYOWARDEN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let base = std::env::var_os("CRYOWARDEN_BENCH_TMP")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("cw-audit-bench")
        .tempdir_in(base)
        .expect("temp dir");
    let mut backends = Vec::new();
    let mut drop_after: Option<String> = None;
    // CRYOWARDEN_BENCH_SKIP_SQLITE=1 measures PostgreSQL alone.
    if std::env::var("CRYOWARDEN_BENCH_SKIP_SQLITE").is_err() {
        backends.push((
            "SQLite",
            format!("sqlite://{}", work.path().join("bench.db").display()),
        ));
    }
    if let Some(url) = std::env::var("CRYOWARDEN_BENCH_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let (url, schema) = fresh_schema(&url).await;
        backends.push(("PostgreSQL", url));
        drop_after = Some(schema);
    }
    for (name, url) in backends {
        let db = Db::connect(&url).await.expect("db");
        db.migrate().await.expect("migrate");
        let t = Instant::now();
        fill(&db, n).await;
        println!(
            "\n== {name}: {n} events loaded in {:.1} s (real chained hashes)",
            t.elapsed().as_secs_f64()
        );
        if name == "PostgreSQL" {
            sqlx::query("ANALYZE audit_events")
                .execute(&db.pool)
                .await
                .expect("analyze");
        }
        pages(&db, n).await;
        let file = (name == "SQLite").then(|| work.path().join("bench.db"));
        verification(&db, n, file.as_deref()).await;
        db.pool.close().await;
    }
    // The PostgreSQL schema holds a million events: dropped at the end.
    if let (Some(schema), Ok(url)) = (drop_after, std::env::var("CRYOWARDEN_BENCH_POSTGRES_URL")) {
        let pool = sqlx::AnyPool::connect(&url)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&pool)
            .await
            .expect("drop schema");
    }
}

async fn fresh_schema(url: &str) -> (String, String) {
    sqlx::any::install_default_drivers();
    let schema = format!("bench_audit_{}", rand::random::<u32>());
    let pool = sqlx::AnyPool::connect(url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    (
        format!("{url}{sep}options=-c%20search_path%3D{schema}"),
        schema,
    )
}

fn actions() -> Vec<String> {
    let mut a: Vec<String> = (0..20)
        .map(|i| format!("change-setting:setting-{i:02}"))
        .collect();
    a.extend((0..40).map(|i| format!("activity-{i:02}")));
    a
}

fn make(i: i64, n: i64, rng: &mut rand::rngs::StdRng, actions: &[String]) -> Stored {
    let denied = rng.random_ratio(1, 20);
    let actor = rng.random_range(0..1000);
    let target = rng.random_range(0..10_000);
    let impersonated = rng.random_ratio(1, 100);
    Stored {
        seq: i,
        at: START_MS + (i * 365 * DAY_MS) / n,
        actor_id: Some(actor),
        actor: format!("user{actor}"),
        impersonator_id: impersonated.then_some(5000),
        impersonator: impersonated.then(|| format!("troubleshooter{}", rng.random_range(0..10))),
        action: actions[rng.random_range(0..actions.len())].clone(),
        target_kind: "user".into(),
        target_id: Some(target.to_string()),
        target: Some(format!("target{target}")),
        outcome: if denied { "denied" } else { "ok" }.into(),
        reason: denied.then(|| "Application Admins may not do this to a Site Admin".into()),
        before: Some(r#"{"site_role":"none","email":"someone@lab.example"}"#.into()),
        after: Some(r#"{"site_role":"troubleshooter","email":"someone@lab.example"}"#.into()),
        source: "10.1.2.3".into(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

async fn fill(db: &Db, n: i64) {
    const ROWS: usize = 500;
    let actions = actions();
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let mut prev = GENESIS.to_owned();
    let marks: Vec<String> = (0..ROWS)
        .map(|r| {
            format!(
                "({})",
                (1..=17)
                    .map(|c| format!("${}", r * 17 + c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    let mut tx = db.pool.begin().await.unwrap();
    let mut i = 1;
    while i <= n {
        let k = ((n - i + 1) as usize).min(ROWS);
        let mut batch = Vec::with_capacity(k);
        for j in 0..k as i64 {
            let mut e = make(i + j, n, &mut rng, &actions);
            e.seal(&prev);
            prev.clone_from(&e.hash);
            batch.push(e);
        }
        let sql = format!(
            "INSERT INTO audit_events ({COLUMNS}) VALUES {}",
            marks[..k].join(", ")
        );
        let mut q = sqlx::query::<Any>(&sql);
        for e in &batch {
            q = q
                .bind(e.seq)
                .bind(e.at)
                .bind(e.actor_id)
                .bind(e.actor.as_str())
                .bind(e.impersonator_id)
                .bind(e.impersonator.as_deref())
                .bind(e.action.as_str())
                .bind(e.target_kind.as_str())
                .bind(e.target_id.as_deref())
                .bind(e.target.as_deref())
                .bind(e.outcome.as_str())
                .bind(e.reason.as_deref())
                .bind(e.before.as_deref())
                .bind(e.after.as_deref())
                .bind(e.source.as_str())
                .bind(e.prev_hash.as_str())
                .bind(e.hash.as_str());
        }
        q.execute(&mut *tx).await.expect("insert");
        i += k as i64;
        if i % 100_000 < ROWS as i64 {
            tx.commit().await.unwrap();
            tx = db.pool.begin().await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// One filter kind: the filter for round `r`, and its bare indexed query (SQL, text args).
struct Kind {
    name: &'static str,
    filter: fn(usize, i64) -> Filter,
    bare: fn(usize, i64) -> (String, Vec<String>),
}

fn day(r: usize) -> i64 {
    START_MS + ((r * 37) % 364) as i64 * DAY_MS
}

fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "actor",
            filter: |r, _| Filter {
                actor: Some(format!("user{}", (r * 7) % 1000)),
                ..Filter::default()
            },
            bare: |r, _| ("actor = $1".into(), vec![format!("user{}", (r * 7) % 1000)]),
        },
        Kind {
            name: "impersonator",
            filter: |r, _| Filter {
                impersonator: Some(format!("troubleshooter{}", r % 10)),
                ..Filter::default()
            },
            bare: |r, _| {
                (
                    "impersonator = $1".into(),
                    vec![format!("troubleshooter{}", r % 10)],
                )
            },
        },
        Kind {
            name: "action prefix (20 actions)",
            filter: |_, _| Filter {
                action: Some("change-setting:*".into()),
                ..Filter::default()
            },
            // The baseline's own shortcut: one indexed range read, sorted (what a single query
            // over the prefix costs), not the per-action merge the filter does.
            bare: |_, _| {
                (
                    "action >= $1 AND action < $2".into(),
                    vec!["change-setting:".into(), "change-setting;".into()],
                )
            },
        },
        Kind {
            name: "outcome=denied",
            filter: |_, _| Filter {
                outcome: Some("denied".into()),
                ..Filter::default()
            },
            bare: |_, _| ("outcome = $1".into(), vec!["denied".into()]),
        },
        Kind {
            name: "time range (one day)",
            filter: |r, _| Filter {
                from: Some(format_ms(day(r))),
                to: Some(format_ms(day(r) + DAY_MS)),
                ..Filter::default()
            },
            bare: |r, _| {
                (
                    "at >= CAST($1 AS BIGINT) AND at < CAST($2 AS BIGINT)".into(),
                    vec![day(r).to_string(), (day(r) + DAY_MS).to_string()],
                )
            },
        },
        Kind {
            name: "target",
            filter: |r, _| Filter {
                target: Some(format!("target{}", (r * 13) % 10_000)),
                ..Filter::default()
            },
            bare: |r, _| {
                (
                    "target = $1".into(),
                    vec![format!("target{}", (r * 13) % 10_000)],
                )
            },
        },
        Kind {
            name: "actor + denied + time range (30 days)",
            filter: |r, _| Filter {
                actor: Some(format!("user{}", (r * 7) % 1000)),
                outcome: Some("denied".into()),
                from: Some(format_ms(START_MS + 100 * DAY_MS)),
                to: Some(format_ms(START_MS + 130 * DAY_MS)),
                ..Filter::default()
            },
            bare: |r, _| {
                (
                    "actor = $1 AND outcome = $2 AND at >= CAST($3 AS BIGINT) AND at < CAST($4 AS BIGINT)".into(),
                    vec![
                        format!("user{}", (r * 7) % 1000),
                        "denied".into(),
                        (START_MS + 100 * DAY_MS).to_string(),
                        (START_MS + 130 * DAY_MS).to_string(),
                    ],
                )
            },
        },
        Kind {
            name: "page 5 of everything (cursor)",
            filter: |_, n| Filter {
                before: Some((n - 400).to_string()),
                ..Filter::default()
            },
            bare: |_, n| {
                (
                    "seq < CAST($1 AS BIGINT)".into(),
                    vec![(n - 400).to_string()],
                )
            },
        },
    ]
}

async fn pages(db: &Db, n: i64) {
    println!(
        "filtered page of 100 events, newest first ({ROUNDS} rounds each, interleaved; target p50 <= 50 ms)"
    );
    println!(
        "{:<40} {:>12} {:>12} {:>14} {:>8}",
        "filter", "p50", "p99", "bare SELECT p50", "ratio"
    );
    for k in kinds() {
        let (mut ours, mut bare) = (Vec::new(), Vec::new());
        for r in 0..ROUNDS {
            let f = (k.filter)(r, n);
            let t = Instant::now();
            let (events, _) = audit::list(db, &f).await.expect("list");
            ours.push(t.elapsed());
            let (clause, args) = (k.bare)(r, n);
            let sql = format!(
                "SELECT {COLUMNS} FROM audit_events WHERE {clause} ORDER BY seq DESC LIMIT 101"
            );
            let t = Instant::now();
            let mut q = sqlx::query::<Any>(&sql);
            for a in &args {
                q = q.bind(a.as_str());
            }
            let rows = q.fetch_all(&db.pool).await.expect("bare select");
            bare.push(t.elapsed());
            if r == 0 {
                assert_eq!(
                    events.len(),
                    rows.len().min(100),
                    "{}: the filter and its baseline agree",
                    k.name
                );
            }
        }
        let (p50, p99, b50) = (pct(ours.clone(), 0.5), pct(ours, 0.99), pct(bare, 0.5));
        println!(
            "{:<40} {:>12} {:>12} {:>14} {:>8.2}",
            k.name,
            ms(p50),
            ms(p99),
            ms(b50),
            p50.as_secs_f64() / b50.as_secs_f64()
        );
    }
}

async fn verification(db: &Db, n: i64, sqlite_file: Option<&std::path::Path>) {
    println!("full chain verification ({n} events; target >= 500,000 events/s)");
    // Baseline 1: a bare streaming SELECT of every column, decoded, nothing hashed.
    let t = Instant::now();
    let scan_sql = format!("SELECT {COLUMNS} FROM audit_events ORDER BY seq");
    let mut rows = sqlx::query::<Any>(&scan_sql).fetch(&db.pool);
    let mut count = 0i64;
    let mut bytes = 0usize;
    while let Some(r) = rows.try_next().await.expect("scan") {
        let h: String = sqlx::Row::try_get(&r, 16).expect("hash");
        bytes += h.len();
        count += 1;
    }
    drop(rows);
    let scan = t.elapsed();
    assert_eq!(count, n);
    // Baseline 1b (SQLite): the same table read by one rusqlite connection in storage order,
    // every column decoded into owned values (the reading half of verify, alone).
    let native = sqlite_file.map(|path| {
        let conn =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let t = Instant::now();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM audit_events NOT INDEXED ORDER BY rowid"
            ))
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut k = 0i64;
        while let Some(r) = rows.next().unwrap() {
            let mut v: Vec<Option<String>> = Vec::with_capacity(17);
            for c in 0..17 {
                v.push(match r.get_ref(c).unwrap() {
                    rusqlite::types::ValueRef::Text(t) => {
                        Some(String::from_utf8_lossy(t).into_owned())
                    }
                    _ => None,
                });
            }
            k += v.len() as i64 / 17;
        }
        assert_eq!(k, n);
        t.elapsed()
    });
    // Baseline 1c (PostgreSQL): the same scan through one connection of sqlx's native driver
    // (what verify reads with), each text column borrowed, nothing hashed.
    let native_pg = if db.backend == cryowarden_server::db::Backend::Postgres {
        use sqlx::Connection;
        use std::str::FromStr;
        let url = db.pool.connect_options().database_url.to_string();
        let opts = sqlx::postgres::PgConnectOptions::from_str(&url).expect("pg url");
        let mut conn = sqlx::PgConnection::connect_with(&opts)
            .await
            .expect("pg connect");
        let t = Instant::now();
        let mut rows = sqlx::query(&scan_sql).fetch(&mut conn);
        let mut k = 0i64;
        while let Some(r) = rows.try_next().await.expect("scan") {
            let mut len = 0usize;
            for c in [3, 6, 7, 10, 14, 15, 16] {
                len += sqlx::Row::try_get::<&str, _>(&r, c).expect("text").len();
            }
            k += i64::from(len > 0);
        }
        drop(rows);
        assert_eq!(k, n);
        Some(t.elapsed())
    } else {
        None
    };
    // Baseline 2: the bare SHA-256 of the same events (one batch of 20,000 held in memory,
    // hashed until n hashes were computed).
    let batch: Vec<Stored> = {
        let rows = sqlx::query::<Any>(&format!(
            "SELECT {COLUMNS} FROM audit_events ORDER BY seq LIMIT 20000"
        ))
        .fetch_all(&db.pool)
        .await
        .expect("batch");
        rows.iter().map(stored).collect()
    };
    let t = Instant::now();
    let mut x = 0u8;
    let mut done = 0i64;
    while done < n {
        for e in &batch {
            x ^= e.compute_hash(&e.prev_hash)[0];
        }
        done += batch.len() as i64;
    }
    let sha = t.elapsed();
    let mut best = Duration::MAX;
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let v = audit::verify(db).await.expect("verify");
        let d = t.elapsed();
        assert!(v.ok && v.events == n, "{v}");
        times.push(d);
        best = best.min(d);
    }
    let rate = |d: Duration, k: i64| k as f64 / d.as_secs_f64();
    let med = pct(times, 0.5);
    println!(
        "audit::verify (median of 3):            {:>12.0} events/s  ({:.2} s)",
        rate(med, n),
        med.as_secs_f64()
    );
    println!(
        "baseline bare SELECT scan (all columns): {:>12.0} events/s  ({:.2} s)",
        rate(scan, n),
        scan.as_secs_f64()
    );
    if let Some(d) = native {
        println!(
            "baseline bare rusqlite scan (decoded):   {:>12.0} events/s  ({:.2} s)",
            rate(d, n),
            d.as_secs_f64()
        );
    }
    if let Some(d) = native_pg {
        println!(
            "baseline bare native PgConnection scan:  {:>12.0} events/s  ({:.2} s)",
            rate(d, n),
            d.as_secs_f64()
        );
        println!(
            "ratio verify/native scan = {:.2}",
            rate(med, n) / rate(d, n)
        );
    }
    println!(
        "baseline bare SHA-256 (same events):     {:>12.0} events/s  ({:.2} s)",
        rate(sha, done),
        sha.as_secs_f64()
    );
    println!(
        "ratio verify/scan = {:.2}, verify/sha = {:.2}   (checksum {x}, {bytes} hash bytes read)",
        rate(med, n) / rate(scan, n),
        rate(med, n) / rate(sha, done)
    );
}

fn stored(r: &sqlx::any::AnyRow) -> Stored {
    use sqlx::Row;
    Stored {
        seq: r.get(0),
        at: r.get(1),
        actor_id: r.get(2),
        actor: r.get(3),
        impersonator_id: r.get(4),
        impersonator: r.get(5),
        action: r.get(6),
        target_kind: r.get(7),
        target_id: r.get(8),
        target: r.get(9),
        outcome: r.get(10),
        reason: r.get(11),
        before: r.get(12),
        after: r.get(13),
        source: r.get(14),
        prev_hash: r.get(15),
        hash: r.get(16),
    }
}
