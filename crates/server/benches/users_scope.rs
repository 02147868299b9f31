//! What the project/folder admin facts of §2 cost (issue 6, delegated administration), each
//! beside a baseline measured in the same run, on SQLite with 100,000 users in 10,000 projects
//! (10 direct members each, 1,000 project groups of 5, 2,000 workspaces with a folder admin):
//!   1. `users::show` of a user of their project by a project admin (scope lookup, authorize),
//!      and by a Site Admin, against `users::get`, the bare lookup `show` makes anyway;
//!   2. `users::list`, first page of 50, by a project admin of 20 projects (10 directly, 10
//!      through a group) and by a folder admin, against the Site Admin's unfiltered page.
//!
//! `cargo bench -p cryowarden-server --bench users_scope` (release build; warm caches).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cryowarden_core::{Actor, SiteRole, UserId};
use cryowarden_server::context::Ctx;
use cryowarden_server::db::Db;
use cryowarden_server::users::{self, ListQuery};

const USERS: i64 = 100_000;
const PROJECTS: i64 = 10_000;
const RUNS: usize = 300;

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
        .prefix("cw-users-scope-bench")
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
    seed(&db).await;
    println!(
        "seeded {USERS} users in {PROJECTS} projects in {:.1} s",
        made.elapsed().as_secs_f64()
    );
    // User 1 is the Site Admin, 2 the project admin, 3 the folder admin (see `seed`).
    let admin = Ctx::for_actor(
        Actor::new(UserId(1), SiteRole::SiteAdmin),
        "admin",
        "bench".into(),
    );
    let pa = Ctx::for_actor(Actor::new(UserId(2), SiteRole::None), "pa", "bench".into());
    let fa = Ctx::for_actor(Actor::new(UserId(3), SiteRole::None), "fa", "bench".into());
    // A member of project 15 (administered by user 2 through a group).
    let target = member(15, 4);
    assert!(
        users::scope(&db, 2, Some(target))
            .await
            .unwrap()
            .project_admin
    );
    assert!(
        !users::scope(&db, 2, Some(member(5000, 4)))
            .await
            .unwrap()
            .project_admin
    );
    let q = ListQuery {
        page: Some(1),
        per_page: Some(50),
        ..ListQuery::default()
    };
    let pa_page = users::list(&db, &pa, &q).await.unwrap();
    // Themselves, 20 projects' members, 10 groups of 5, and the other admin (folder or project).
    assert_eq!(pa_page.total, 1 + 20 * 10 + 10 * 5 + 1);
    let fa_page = users::list(&db, &fa, &q).await.unwrap();
    assert_eq!(fa_page.total, 1 + 20 * 10 + 10 * 5 + 1);

    println!(
        "\n== user details and lists with project/folder admin scope ({RUNS} runs each, interleaved)"
    );
    let (mut get, mut show_pa, mut show_sa, mut list_pa, mut list_fa, mut list_sa) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..RUNS {
        get.push(time(|| async { black_box(users::get(&db, target).await.unwrap()) }).await);
        show_pa
            .push(time(|| async { black_box(users::show(&db, &pa, target).await.unwrap()) }).await);
        show_sa.push(
            time(|| async { black_box(users::show(&db, &admin, target).await.unwrap()) }).await,
        );
        list_pa.push(time(|| async { black_box(users::list(&db, &pa, &q).await.unwrap()) }).await);
        list_fa.push(time(|| async { black_box(users::list(&db, &fa, &q).await.unwrap()) }).await);
        list_sa
            .push(time(|| async { black_box(users::list(&db, &admin, &q).await.unwrap()) }).await);
    }
    let g50 = pct(&mut get, 50);
    for (name, v) in [
        ("show by a project admin", &mut show_pa),
        ("show by a Site Admin", &mut show_sa),
    ] {
        let (p50, p99) = (pct(v, 50), pct(v, 99));
        println!(
            "{name:<40} p50 {}  p99 {}  ratio to get {:.1}",
            ms(p50),
            ms(p99),
            ratio(p50, g50)
        );
    }
    println!(
        "{:<40} p50 {}  p99 {}",
        "users::get (bare lookup)",
        ms(g50),
        ms(pct(&mut get, 99))
    );
    let s50 = pct(&mut list_sa, 50);
    for (name, v) in [
        ("list page 1, project admin", &mut list_pa),
        ("list page 1, folder admin", &mut list_fa),
    ] {
        let (p50, p99) = (pct(v, 50), pct(v, 99));
        println!(
            "{name:<40} p50 {}  p99 {}  ratio to Site Admin {:.2}",
            ms(p50),
            ms(p99),
            ratio(p50, s50)
        );
    }
    println!(
        "{:<40} p50 {}  p99 {}",
        "list page 1, Site Admin (all 100,000)",
        ms(s50),
        ms(pct(&mut list_sa, 99))
    );
}

/// The `k`-th member (0..10) of project `p` (1-based): users 11.. are members, 10 per project.
fn member(p: i64, k: i64) -> i64 {
    11 + ((p - 1) * 10 + k) % (USERS - 10)
}

/// Users 1..=10 are staff and admins; user 2 is project admin of projects 1..=10 directly and
/// of 11..=20 through a group of each; user 3 is folder admin of a workspace of projects 1..=20.
/// Every project has 10 direct members; projects 11..=1010 have a group of 5 more users.
async fn seed(db: &Db) {
    let mut tx = db.pool.begin().await.unwrap();
    let mut rows = Vec::new();
    for id in 1..=USERS {
        let role = if id == 1 { "site_admin" } else { "none" };
        rows.push(format!(
            "('u{id:06}', 'u{id:06}', 'u{id}@example.org', 'u{id}@example.org', '', '', 'active', '{role}', 0, 0, 0, 0)"
        ));
        if rows.len() == 500 || id == USERS {
            sqlx::query(&format!(
                "INSERT INTO users (username, username_key, email, email_key, first_name, last_name, status, site_role, \
                 job_priority_management, live_data_management, created_at, updated_at) VALUES {}",
                rows.join(",")
            ))
            .execute(&mut *tx)
            .await
            .unwrap();
            rows.clear();
        }
    }
    sqlx::query("INSERT INTO labs (name, name_key, title, created_at, updated_at) VALUES ('lab', 'lab', 'lab', 0, 0)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let batch = |table: &str, columns: &str, rows: &[String]| {
        format!("INSERT INTO {table} ({columns}) VALUES {}", rows.join(","))
    };
    for p in 1..=PROJECTS {
        rows.push(format!(
            "(1, 'p{p:05}', 'p{p:05}', 'p', '/data', 'p{p:05}', 1, 0, 0)"
        ));
        if rows.len() == 500 {
            let sql = batch(
                "projects",
                "lab_id, name, name_key, title, parent_dir, dir_name, lab_members_read, created_at, updated_at",
                &rows,
            );
            sqlx::query(&sql).execute(&mut *tx).await.unwrap();
            rows.clear();
        }
    }
    for p in 1..=PROJECTS {
        for k in 0..10 {
            let user = member(p, k);
            rows.push(format!("({p}, {user}, 'reader')"));
        }
        if p <= 10 {
            rows.push(format!("({p}, 2, 'project_admin')"));
        }
        if rows.len() >= 500 {
            sqlx::query(&batch(
                "project_members",
                "project_id, user_id, role",
                &rows,
            ))
            .execute(&mut *tx)
            .await
            .unwrap();
            rows.clear();
        }
    }
    if !rows.is_empty() {
        sqlx::query(&batch(
            "project_members",
            "project_id, user_id, role",
            &rows,
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        rows.clear();
    }
    // Groups: project 11..=20 have an admin group holding user 2; 1,000 reader groups of 5.
    for p in 11..=20 {
        let g: i64 = sqlx::query_scalar(
            "INSERT INTO project_groups (project_id, name, name_key, role) VALUES ($1, 'admins', 'admins', 'project_admin') RETURNING id",
        )
        .bind(p)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        sqlx::query("INSERT INTO project_group_members (group_id, user_id) VALUES ($1, 2)")
            .bind(g)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    for p in 11..=1010 {
        let g: i64 = sqlx::query_scalar(
            "INSERT INTO project_groups (project_id, name, name_key, role) VALUES ($1, 'crew', 'crew', 'reader') RETURNING id",
        )
        .bind(p)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        let members: Vec<String> = (0..5)
            .map(|k| format!("({g}, {})", 50_000 + p * 5 + k))
            .collect();
        sqlx::query(&batch(
            "project_group_members",
            "group_id, user_id",
            &members,
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    for p in 1..=2000 {
        let w: i64 = sqlx::query_scalar(
            "INSERT INTO workspaces (project_id, name, name_key, title, created_at) VALUES ($1, 'w', 'w', 'w', 0) RETURNING id",
        )
        .bind(p)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        let admin = if p <= 20 { 3 } else { 4 + p % 7 };
        sqlx::query("INSERT INTO workspace_admins (workspace_id, user_id) VALUES ($1, $2)")
            .bind(w)
            .bind(admin)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn time<F, Fut, T>(f: F) -> Duration
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let t = Instant::now();
    let _ = f().await;
    t.elapsed()
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort_unstable();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:>7.3} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
