//! Project and browse figures of issue 4 (run by bench/projects.sh), each beside a baseline
//! measured in the same run:
//!   1. `projects::list` for a member of a lab with 10,000 projects in an instance of 100,000
//!      (visibility through lab membership, direct membership and groups), first page and a deep
//!      page of 50, against the bare indexed query for the same lab's page;
//!   2. the browse of a 100,000-file directory through the runner (spawn, privilege drop to the
//!      lab's account, openat2 listing, JSON), first page of 200, against `Root::list_dir` in
//!      process (the cost of the kernel layer).
//!
//! Needs root (it creates the account cwlab1 if missing) and the release runner binary, which
//! bench/projects.sh builds. SQLite in a temporary directory; warm caches.

use std::hint::black_box;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cryowarden_core::{Actor, SiteRole, UserId};
use cryowarden_server::context::Ctx;
use cryowarden_server::db::Db;
use cryowarden_server::paths::{Page, RelPath, Root};
use cryowarden_server::projects::{self, ListQuery};
use cryowarden_server::runner::{Account, Runner};

const LABS: i64 = 10;
const PER_LAB: i64 = 10_000;
const RUNS: usize = 200;
const FILES: usize = 100_000;
const BROWSES: usize = 30;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let base =
        std::env::var_os("CRYOWARDEN_BENCH_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("cw-projects-bench")
        .tempdir_in(base)
        .expect("temp dir");
    let db = Db::connect(&format!(
        "sqlite://{}",
        work.path().join("bench.db").display()
    ))
    .await
    .expect("db");
    db.migrate().await.expect("migrate");
    let made = Instant::now();
    let member = seed(&db).await;
    println!(
        "seeded {} labs x {PER_LAB} projects in {:.1} s",
        LABS,
        made.elapsed().as_secs_f64()
    );
    let ctx = Ctx::for_actor(
        Actor::new(UserId(member), SiteRole::None),
        "member",
        "bench".into(),
    );
    let admin = Ctx::for_actor(
        Actor::new(UserId(member + 1), SiteRole::SiteAdmin),
        "admin",
        "bench".into(),
    );

    println!("\n== project listing, 50 per page ({RUNS} runs each, interleaved)");
    let q = |page| ListQuery {
        page: Some(page),
        per_page: Some(50),
        ..ListQuery::default()
    };
    let first = projects::list(&db, &ctx, &q(1)).await.unwrap();
    assert_eq!(
        first.total,
        PER_LAB + 20,
        "lab 1's projects and 20 others through membership and groups"
    );
    // The cursor of page 149, to reach page 150 by `after`.
    let deep = projects::list(&db, &ctx, &q(149))
        .await
        .unwrap()
        .next
        .expect("a next page");
    let by_cursor = ListQuery {
        after: Some(deep),
        per_page: Some(50),
        ..ListQuery::default()
    };
    assert_eq!(
        projects::list(&db, &ctx, &by_cursor)
            .await
            .unwrap()
            .projects[0]
            .id,
        { projects::list(&db, &ctx, &q(150)).await.unwrap().projects[0].id }
    );
    let (mut member_first, mut member_deep, mut member_cursor, mut admin_first, mut bare) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..RUNS {
        member_first.push(
            time(|| async { black_box(projects::list(&db, &ctx, &q(1)).await.unwrap()) }).await,
        );
        member_deep.push(
            time(|| async { black_box(projects::list(&db, &ctx, &q(150)).await.unwrap()) }).await,
        );
        member_cursor.push(
            time(|| async { black_box(projects::list(&db, &ctx, &by_cursor).await.unwrap()) })
                .await,
        );
        admin_first.push(
            time(|| async { black_box(projects::list(&db, &admin, &q(1)).await.unwrap()) }).await,
        );
        bare.push(
            time(|| async {
                black_box(
                    sqlx::query(
                        "SELECT p.id, p.name, p.title FROM projects p JOIN labs l ON l.id = p.lab_id \
                         WHERE p.lab_id = 1 ORDER BY p.name_key, p.id LIMIT 50",
                    )
                    .fetch_all(&db.pool)
                    .await
                    .unwrap(),
                )
            })
            .await,
        );
    }
    let b50 = pct(&mut bare, 50);
    for (name, v) in [
        (
            "member, page 1 (visible set + count + roles)",
            &mut member_first,
        ),
        ("member, page 150 by page number (offset)", &mut member_deep),
        ("member, page 150 by cursor (after=)", &mut member_cursor),
        ("site admin, page 1 of 100,000", &mut admin_first),
    ] {
        let (p50, p99) = (pct(v, 50), pct(v, 99));
        println!(
            "{name:<48} p50 {}  p99 {}  ratio to bare {:.1}",
            ms(p50),
            ms(p99),
            ratio(p50, b50)
        );
    }
    println!(
        "{:<48} p50 {}  p99 {}",
        "bare indexed query of one lab's page",
        ms(b50),
        ms(pct(&mut bare, 99))
    );
    println!("target: member page <= 10 ms");

    browse(work.path()).await;
}

/// 10 labs of 10,000 projects; the member belongs to lab 1, is a direct member of 10 projects of
/// lab 2 and, through a group, of 10 of lab 3 (a member-only project is invisible otherwise).
async fn seed(db: &Db) -> i64 {
    let mut tx = db.pool.begin().await.unwrap();
    for (name, role) in [("member", "none"), ("admin", "site_admin")] {
        sqlx::query(
            "INSERT INTO users (username, username_key, email, email_key, first_name, last_name, status, site_role, \
             job_priority_management, live_data_management, created_at, updated_at) \
             VALUES ($1, $1, $2, $2, '', '', 'active', $3, 0, 0, 0, 0)",
        )
        .bind(name)
        .bind(format!("{name}@example.org"))
        .bind(role)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    let member: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'member'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    for lab in 1..=LABS {
        sqlx::query("INSERT INTO labs (name, name_key, title, created_at, updated_at) VALUES ($1, $1, $1, 0, 0)")
            .bind(format!("lab{lab}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        let mut values = Vec::new();
        for i in 0..PER_LAB {
            // lab 1's projects are readable by its members; the others are members-only.
            let read = i64::from(lab == 1);
            values.push(format!(
                "({lab}, 'p{i:05}', 'p{i:05}', 'Project {i}', '/data/lab{lab}', 'p{i:05}', {read}, 0, 0)"
            ));
            if values.len() == 500 || i == PER_LAB - 1 {
                sqlx::query(&format!(
                    "INSERT INTO projects (lab_id, name, name_key, title, parent_dir, dir_name, lab_members_read, \
                     created_at, updated_at) VALUES {}",
                    values.join(",")
                ))
                .execute(&mut *tx)
                .await
                .unwrap();
                values.clear();
            }
        }
    }
    sqlx::query("INSERT INTO lab_members (lab_id, user_id, role) VALUES (1, $1, 'member')")
        .bind(member)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO project_members (project_id, user_id, role) \
         SELECT id, $1, 'reader' FROM projects WHERE lab_id = 2 ORDER BY id LIMIT 10",
    )
    .bind(member)
    .execute(&mut *tx)
    .await
    .unwrap();
    for pid in sqlx::query_scalar::<_, i64>(
        "SELECT id FROM projects WHERE lab_id = 3 ORDER BY id LIMIT 10",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap()
    {
        let gid: i64 = sqlx::query_scalar(
            "INSERT INTO project_groups (project_id, name, name_key, role) VALUES ($1, 'g', 'g', 'editor') RETURNING id",
        )
        .bind(pid)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        sqlx::query("INSERT INTO project_group_members (group_id, user_id) VALUES ($1, $2)")
            .bind(gid)
            .bind(member)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();
    member
}

async fn browse(work: &Path) {
    let exists = std::process::Command::new("id")
        .args(["-u", "cwlab1"])
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let out = std::process::Command::new("useradd")
            .args(["-M", "-u", "2101", "-U", "cwlab1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "useradd cwlab1 (run as root): {out:?}"
        );
    }
    let runner_bin = std::env::var("CRYOWARDEN_BENCH_RUNNER")
        .expect("bench/projects.sh sets CRYOWARDEN_BENCH_RUNNER");
    let policy = work.join("runner.toml");
    std::fs::write(&policy, "allowed_users = [\"cwlab1\"]\n").unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o755)).unwrap();
    let runner = Runner::new(&cryowarden_server::config::RunnerConfig {
        command: vec![runner_bin],
        policy: Some(policy),
    });
    let account = Account {
        user: "cwlab1".into(),
        uid: 2101,
        gid: 2101,
    };
    let big = work.join("raw");
    std::fs::create_dir(&big).unwrap();
    for i in 0..FILES {
        std::fs::File::create(big.join(format!("movie_{i:06}.tif"))).unwrap();
    }
    std::os::unix::fs::chown(&big, Some(2101), Some(2101)).unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o750)).unwrap();
    let root = Root::open(&big).unwrap();
    let first = runner
        .list(&account, &big, "", 0, 200)
        .await
        .expect("the runner lists as cwlab1");
    assert_eq!(first.entries.len(), 200);

    println!(
        "\n== browse a directory of {FILES} files, first page of 200 ({BROWSES} runs each, interleaved)"
    );
    let (mut through_runner, mut in_process) = (vec![], vec![]);
    for _ in 0..BROWSES {
        through_runner.push(
            time(|| async { black_box(runner.list(&account, &big, "", 0, 200).await.unwrap()) })
                .await,
        );
        in_process.push(
            time(|| async {
                black_box(
                    root.list_dir(&RelPath::root(), Page::new(0, 200).unwrap())
                        .unwrap(),
                )
            })
            .await,
        );
    }
    let (r50, i50) = (pct(&mut through_runner, 50), pct(&mut in_process, 50));
    println!(
        "runner as cwlab1 (spawn, drop to the account, list, JSON): p50 {}  p99 {}",
        ms(r50),
        ms(pct(&mut through_runner, 99))
    );
    println!(
        "Root::list_dir in process:                                p50 {}  p99 {}",
        ms(i50),
        ms(pct(&mut in_process, 99))
    );
    println!(
        "ratio runner/in-process p50: {:.2}  (target: first page <= 50 ms)",
        ratio(r50, i50)
    );
}

async fn time<F, Fut, T>(f: F) -> Duration
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let t = Instant::now();
    black_box(f().await);
    t.elapsed()
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:>7.3} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
