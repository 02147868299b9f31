//! The storage seam: one pool over either SQLite (the embedded default, WAL) or PostgreSQL,
//! chosen by URL, with each backend's embedded migrations. Queries are written once in the
//! SQL both accept (`$1` placeholders, BIGINT times in milliseconds, TEXT, BOOLEAN).

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The database handle shared by the whole server.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// Serialises write transactions in this process, so that the audit chain has one order
    /// (PostgreSQL replicas also take an advisory lock, see [`Db::begin_write`]).
    write_lock: Arc<Mutex<()>>,
    /// Refusals counted instead of written one by one (see `audit/repeats.rs`).
    pub(crate) repeats: Arc<crate::audit::Repeats>,
}

/// A write transaction: holds the write lock until commit or drop. Dropping it rolls back.
pub struct WriteTx {
    pub tx: Transaction<'static, Any>,
    _guard: OwnedMutexGuard<()>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// A stable number for PostgreSQL's advisory lock around audit-chain appends.
const AUDIT_CHAIN_LOCK: i64 = 0x6372_796f_7761_7264;

/// The file of a `sqlite://PATH[?...]` URL; `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.contains(":memory:") && !url.contains("mode=memory"))
        .then(|| path.into())
}

impl Db {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`). SQLite files are created.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL `{url}`: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB"
            )));
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let pool = match backend {
            Backend::Sqlite => {
                // The database holds password hashes and the SMTP password: created 0600 (its
                // WAL and SHM files take its mode), and an older 0644 file made private.
                if let Some(path) = sqlite_file(url) {
                    if !path.exists() {
                        let _ = crate::datadir::private_file()
                            .write(true)
                            .create_new(true)
                            .open(&path);
                    }
                    for suffix in ["", "-wal", "-shm"] {
                        let mut p = path.clone().into_os_string();
                        p.push(suffix);
                        crate::datadir::make_private(std::path::Path::new(&p));
                    }
                }
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                options
                    .max_connections(8)
                    .min_connections(1)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL lets readers run beside the one writer; FULL makes every
                            // acknowledged commit survive a crash of the process or the host.
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = FULL",
                                "PRAGMA foreign_keys = ON",
                                "PRAGMA busy_timeout = 10000",
                            ] {
                                conn.execute(pragma).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => options.max_connections(16).connect(url).await?,
        };
        Ok(Db {
            pool,
            backend,
            write_lock: Arc::new(Mutex::new(())),
            repeats: Default::default(),
        })
    }

    /// Whether the database answers a trivial query (the health check).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Applies the embedded migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// The migrations embedded in this build for this backend.
    pub fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// The migrations of this build and whether each has been applied.
    pub async fn migration_status(&self) -> Result<Vec<(i64, String, bool)>, StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&self.pool)
                .await
                .unwrap_or_default();
        Ok(migrator
            .iter()
            .map(|m| {
                (
                    m.version,
                    m.description.to_string(),
                    applied.contains(&m.version),
                )
            })
            .collect())
    }

    /// Begins a write transaction; every change and its audit event commit together in one.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let guard = self.write_lock.clone().lock_owned().await;
        // On SQLite the write lock is taken at BEGIN: a deferred transaction that read before a
        // write outside this process lock (the scheduler's state updates) committed could not
        // upgrade and would fail at once with SQLITE_BUSY_SNAPSHOT; IMMEDIATE waits instead.
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_CHAIN_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        Ok(WriteTx { tx, _guard: guard })
    }
}

/// Milliseconds since the Unix epoch: every time in the database.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// RFC 3339 for a stored time, for people and JSON.
pub fn format_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// A SQLite migration as its PostgreSQL twin must read: the only dialect differences allowed
    /// are the serial id column and the backend's name in a comment.
    fn as_postgres(sqlite: &str) -> String {
        sqlite
            .lines()
            .map(|line| {
                let line = line.replace(
                    "id INTEGER PRIMARY KEY AUTOINCREMENT",
                    "id BIGSERIAL PRIMARY KEY",
                );
                if line.trim_start().starts_with("--") {
                    line.replace("(SQLite)", "(PostgreSQL)")
                        .replace("(sqlite)", "(postgres)")
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn tree(backend: &str) -> Vec<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn the_two_migration_trees_differ_only_in_dialect() {
        let (sqlite, postgres) = (tree("sqlite"), tree("postgres"));
        let names = |t: &[(String, String)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&sqlite),
            names(&postgres),
            "the same migrations in both trees"
        );
        assert!(sqlite.len() >= 7, "the landed migrations are all there");
        for ((name, lite), (_, pg)) in sqlite.iter().zip(&postgres) {
            let expected = as_postgres(lite);
            let first_difference = expected
                .lines()
                .zip(pg.lines())
                .position(|(a, b)| a != b)
                .map(|i| i + 1);
            assert!(
                expected.trim_end() == pg.trim_end(),
                "{name}: sqlite and postgres differ beyond the dialect (first at line {}): \
                 change both trees alike (see migrations/README.md)",
                first_difference.unwrap_or(expected.lines().count().min(pg.lines().count()) + 1)
            );
        }
    }

    #[test]
    fn the_dialect_rule_sees_a_real_difference() {
        let lite = "-- Things (SQLite).\nCREATE TABLE t (\n    id INTEGER PRIMARY KEY AUTOINCREMENT,\n    a TEXT\n);";
        let same = "-- Things (PostgreSQL).\nCREATE TABLE t (\n    id BIGSERIAL PRIMARY KEY,\n    a TEXT\n);";
        assert_eq!(as_postgres(lite), same);
        assert_ne!(as_postgres(lite), same.replace("a TEXT", "a BIGINT"));
    }
}
