//! data-sources (backend, redacted URL, pool, file size and journal mode / server version and
//! database size), check-database (integrity, vacuum, online backup) and sql-scripts (the
//! embedded migrations against `_sqlx_migrations`).
//!
//! The integrity check: on SQLite `PRAGMA integrity_check` and `PRAGMA foreign_key_check`. On
//! PostgreSQL, whose `amcheck` needs an extension most instances do not install (and creating
//! one needs a superuser), every table of the schema is read whole (each row converted to
//! text, which reads every heap page and detoasts every value), every foreign key is checked
//! for rows whose parent is missing, and when `amcheck` is installed every B-tree index is
//! checked with `bt_index_check`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Any, Row};

use super::{Setting, target};
use crate::audit::Outcome;
use crate::context::Ctx;
use crate::db::{Backend, Db, format_ms, now_ms};
use crate::error::StoreError;
use crate::services::Services;

/// How long `pg_dump` may run.
const PG_DUMP_TIMEOUT: Duration = Duration::from_secs(600);

/// Where backups go: `DATA_DIR/backups`.
pub fn backup_dir(state: &Services) -> PathBuf {
    state.config.data_dir.join("backups")
}

/// The SQLite file of the main database, from `PRAGMA database_list`.
async fn sqlite_file(db: &Db) -> Result<Option<PathBuf>, StoreError> {
    let rows = sqlx::query::<Any>("PRAGMA database_list")
        .fetch_all(&db.pool)
        .await?;
    for r in rows {
        let name: String = r.try_get("name")?;
        let file: Option<String> = r.try_get("file")?;
        if name == "main" {
            return Ok(file.filter(|f| !f.is_empty()).map(PathBuf::from));
        }
    }
    Ok(None)
}

fn file_size(path: &std::path::Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// The backend, its URL (password redacted), the pool and what the database says of itself.
pub async fn data_sources(state: &Services) -> Result<Value, StoreError> {
    let db = &state.db;
    let pool = json!({
        "size": db.pool.size(),
        "idle": db.pool.num_idle(),
        "max_connections": db.pool.options().get_max_connections(),
        "min_connections": db.pool.options().get_min_connections(),
        "acquire_timeout_ms": db.pool.options().get_acquire_timeout().as_millis() as u64,
    });
    let details = match db.backend {
        Backend::Sqlite => {
            let file = sqlite_file(db).await?;
            let wal = file
                .as_ref()
                .map(|f| PathBuf::from(format!("{}-wal", f.display())));
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&db.pool)
                .await?;
            let version: String = sqlx::query_scalar("SELECT sqlite_version()")
                .fetch_one(&db.pool)
                .await?;
            let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(&db.pool)
                .await?;
            let page_count: i64 = sqlx::query_scalar("PRAGMA page_count")
                .fetch_one(&db.pool)
                .await?;
            json!({
                "file": file.as_ref().map(|f| f.display().to_string()),
                "file_size_bytes": file.as_deref().and_then(file_size),
                "wal_size_bytes": wal.as_deref().and_then(file_size),
                "journal_mode": journal,
                "page_size": page_size,
                "page_count": page_count,
                "server_version": format!("SQLite {version}"),
            })
        }
        Backend::Postgres => {
            let version: String = sqlx::query_scalar("SELECT version()")
                .fetch_one(&db.pool)
                .await?;
            let row = sqlx::query::<Any>(
                "SELECT CAST(current_database() AS TEXT) AS db, CAST(current_schema() AS TEXT) AS schema, \
                 CAST(pg_database_size(current_database()) AS BIGINT) AS size",
            )
            .fetch_one(&db.pool)
            .await?;
            json!({
                "database": row.try_get::<String, _>("db")?,
                "schema": row.try_get::<Option<String>, _>("schema")?,
                "database_size_bytes": row.try_get::<i64, _>("size")?,
                "server_version": version,
            })
        }
    };
    Ok(json!({
        "backend": db.backend.name(),
        "url": state.config.redacted_database_url(),
        "pool": pool,
        "details": details,
    }))
}

/// What check-database offers, and the backups made so far.
pub fn check_view(state: &Services) -> Value {
    let dir = backup_dir(state);
    let mut backups: Vec<Value> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    m.is_file().then(
                        || json!({ "path": e.path().display().to_string(), "size_bytes": m.len() }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    backups.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    json!({
        "backend": state.db.backend.name(),
        "actions": super::actions_of(Setting::CheckDatabase),
        "backup_dir": dir.display().to_string(),
        "backups": backups,
    })
}

async fn record(
    state: &Services,
    ctx: &Ctx,
    action: cryowarden_core::SettingAction,
    after: &Value,
) -> Result<(), StoreError> {
    ctx.record(
        &state.db,
        (Setting::CheckDatabase, action),
        &target(Setting::CheckDatabase, Some(action.as_str())),
        Outcome::Ok,
        None,
        None,
        Some(after.clone()),
    )
    .await
}

/// The integrity check of the backend (see the module's note); audited with its verdict.
pub async fn integrity(state: &Services, ctx: &Ctx) -> Result<Value, StoreError> {
    let started = std::time::Instant::now();
    let result = match state.db.backend {
        Backend::Sqlite => sqlite_integrity(&state.db).await?,
        Backend::Postgres => postgres_integrity(&state.db).await?,
    };
    let mut result = result;
    result["elapsed_ms"] = json!(started.elapsed().as_millis() as u64);
    let summary = json!({ "ok": result["ok"], "problems": result["problems"].as_array().map_or(0, Vec::len) });
    record(
        state,
        ctx,
        cryowarden_core::SettingAction::Integrity,
        &summary,
    )
    .await?;
    Ok(result)
}

async fn sqlite_integrity(db: &Db) -> Result<Value, StoreError> {
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&db.pool)
        .await?;
    let mut problems: Vec<Value> = integrity
        .iter()
        .filter(|l| *l != "ok")
        .map(|l| json!({ "check": "integrity_check", "detail": l }))
        .collect();
    let fk = sqlx::query::<Any>("PRAGMA foreign_key_check")
        .fetch_all(&db.pool)
        .await?;
    for r in &fk {
        let table: String = r.try_get(0)?;
        let rowid: Option<i64> = r.try_get(1)?;
        let parent: String = r.try_get(2)?;
        problems.push(json!({
            "check": "foreign_key_check",
            "detail": format!("row {} of {table} refers to a missing row of {parent}", rowid.map_or("?".into(), |r| r.to_string())),
        }));
    }
    Ok(json!({
        "backend": "sqlite",
        "method": "PRAGMA integrity_check; PRAGMA foreign_key_check",
        "ok": problems.is_empty(),
        "integrity_check": integrity,
        "foreign_key_violations": fk.len(),
        "problems": problems,
    }))
}

/// The tables of the current schema, quoted for SQL.
async fn postgres_tables(db: &Db) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY c.relname",
    )
    .fetch_all(&db.pool)
    .await?)
}

async fn postgres_integrity(db: &Db) -> Result<Value, StoreError> {
    let mut problems = Vec::new();
    let mut tables = Vec::new();
    for t in postgres_tables(db).await? {
        // Every row to text: every heap page read and every TOASTed value fetched.
        let sql = format!(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(octet_length(CAST(t AS TEXT))), 0) AS BIGINT) AS bytes FROM {t} t"
        );
        match sqlx::query::<Any>(&sql).fetch_one(&db.pool).await {
            Ok(r) => tables
                .push(json!({ "table": t, "rows": r.try_get::<i64, _>("n")?, "bytes": r.try_get::<i64, _>("bytes")? })),
            Err(e) => problems.push(json!({ "check": "table scan", "detail": format!("{t}: {e}") })),
        }
    }
    const SEP: &str = "\u{1f}";
    let fks = sqlx::query::<Any>(
        "SELECT CAST(con.conname AS TEXT) AS name, format('%I.%I', n.nspname, c.relname) AS child, \
         format('%I.%I', pn.nspname, p.relname) AS parent, \
         (SELECT string_agg(format('%I', a.attname), chr(31) ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) \
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS child_cols, \
         (SELECT string_agg(format('%I', a.attname), chr(31) ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord) \
          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum) AS parent_cols \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
         WHERE con.contype = 'f' AND n.nspname = current_schema() ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut foreign_keys = 0;
    for r in &fks {
        let name: String = r.try_get("name")?;
        let child: String = r.try_get("child")?;
        let parent: String = r.try_get("parent")?;
        let ccols: Vec<String> = r
            .try_get::<String, _>("child_cols")?
            .split(SEP)
            .map(|c| format!("c.{c}"))
            .collect();
        let pcols: Vec<String> = r
            .try_get::<String, _>("parent_cols")?
            .split(SEP)
            .map(|c| format!("p.{c}"))
            .collect();
        // MATCH SIMPLE: a row with any NULL in the key refers to nothing.
        let sql = format!(
            "SELECT COUNT(*) FROM {child} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE ({}) = ({}))",
            ccols
                .iter()
                .map(|c| format!("{c} IS NOT NULL"))
                .collect::<Vec<_>>()
                .join(" AND "),
            pcols.join(", "),
            ccols.join(", "),
        );
        let orphans: i64 = sqlx::query_scalar(&sql).fetch_one(&db.pool).await?;
        foreign_keys += 1;
        if orphans > 0 {
            problems.push(json!({
                "check": "foreign key",
                "detail": format!("{orphans} row(s) of {child} break {name}: their {parent} row is missing"),
            }));
        }
    }
    let amcheck: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_extension WHERE extname = 'amcheck'")
            .fetch_one(&db.pool)
            .await?;
    let mut indexes_checked = None;
    if amcheck > 0 {
        let checked = sqlx::query_scalar::<Any, i64>(
            "SELECT COUNT(*) FROM (SELECT bt_index_check(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam \
             WHERE n.nspname = current_schema() AND am.amname = 'btree') s",
        )
        .fetch_one(&db.pool)
        .await;
        match checked {
            Ok(n) => indexes_checked = Some(n),
            Err(e) => problems.push(json!({ "check": "amcheck", "detail": e.to_string() })),
        }
    }
    Ok(json!({
        "backend": "postgresql",
        "method": if amcheck > 0 {
            "every table read whole; every foreign key checked for missing parents; bt_index_check on every B-tree index (amcheck)"
        } else {
            "every table read whole; every foreign key checked for missing parents (amcheck is not installed)"
        },
        "ok": problems.is_empty(),
        "tables": tables,
        "foreign_keys_checked": foreign_keys,
        "amcheck_indexes_checked": indexes_checked,
        "problems": problems,
    }))
}

/// VACUUM (SQLite) or VACUUM ANALYZE of the schema's tables (PostgreSQL); audited.
pub async fn vacuum(state: &Services, ctx: &Ctx) -> Result<Value, StoreError> {
    let started = std::time::Instant::now();
    let db = &state.db;
    let (statement, before, after) = match db.backend {
        Backend::Sqlite => {
            let size = |f: Option<PathBuf>| f.as_deref().and_then(file_size);
            let file = sqlite_file(db).await?;
            let before = size(file.clone());
            sqlx::raw_sql("VACUUM").execute(&db.pool).await?;
            ("VACUUM".to_owned(), before, size(file))
        }
        Backend::Postgres => {
            let tables = postgres_tables(db).await?;
            let sql = if tables.is_empty() {
                "VACUUM (ANALYZE)".to_owned()
            } else {
                format!("VACUUM (ANALYZE) {}", tables.join(", "))
            };
            sqlx::raw_sql(&sql).execute(&db.pool).await?;
            (
                "VACUUM (ANALYZE) of every table of the schema".to_owned(),
                None,
                None,
            )
        }
    };
    let result = json!({
        "backend": db.backend.name(),
        "statement": statement,
        "size_before_bytes": before,
        "size_after_bytes": after,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    });
    record(state, ctx, cryowarden_core::SettingAction::Vacuum, &result).await?;
    Ok(result)
}

/// The URL without its password, and the password (percent-decoded), for libpq programs.
pub fn split_password(url: &str) -> (String, Option<String>) {
    if let (Some(s), Some(at)) = (url.find("://"), url.rfind('@'))
        && at > s
    {
        let userinfo = &url[s + 3..at];
        if let Some(c) = userinfo.find(':') {
            let password = percent_encoding::percent_decode_str(&userinfo[c + 1..])
                .decode_utf8_lossy()
                .into_owned();
            return (
                format!("{}{}{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                Some(password),
            );
        }
    }
    (url.to_owned(), None)
}

/// An online backup to `DATA_DIR/backups/`: `VACUUM INTO` (SQLite) or `pg_dump` of the schema
/// in its custom format (PostgreSQL); answers the path and size, audited.
pub async fn backup(state: &Services, ctx: &Ctx) -> Result<Value, StoreError> {
    let started = std::time::Instant::now();
    let dir = backup_dir(state);
    crate::datadir::create_private_dir(&dir).map_err(|e| {
        StoreError::Internal(format!(
            "cannot create the backup directory {}: {e}",
            dir.display()
        ))
    })?;
    let stamp = format_ms(now_ms())
        .replace([':', '-'], "")
        .replace('T', "-")
        .replace('Z', "");
    let db = &state.db;
    let (path, method) = match db.backend {
        Backend::Sqlite => {
            let path = unique(dir.join(format!("cryowarden-{stamp}.db")));
            let quoted = path.display().to_string().replace('\'', "''");
            sqlx::raw_sql(&format!("VACUUM INTO '{quoted}'"))
                .execute(&db.pool)
                .await?;
            (path, "VACUUM INTO")
        }
        Backend::Postgres => {
            let path = unique(dir.join(format!("cryowarden-{stamp}.dump")));
            let schema: String = sqlx::query_scalar("SELECT CAST(current_schema() AS TEXT)")
                .fetch_one(&db.pool)
                .await?;
            let (url, password) = split_password(&state.config.database_url());
            let mut cmd = tokio::process::Command::new("pg_dump");
            cmd.arg("--format=custom")
                .arg(format!("--schema={schema}"))
                .arg("--no-owner")
                .arg("--file")
                .arg(&path)
                .arg("--dbname")
                .arg(&url)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            if let Some(p) = password {
                cmd.env("PGPASSWORD", p);
            }
            let out = match tokio::time::timeout(PG_DUMP_TIMEOUT, cmd.output()).await {
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(StoreError::Internal(format!(
                        "pg_dump did not finish within {PG_DUMP_TIMEOUT:?}"
                    )));
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::InUse {
                        field: "backup",
                        message: "pg_dump is not installed on the server's host: install the PostgreSQL client tools"
                            .into(),
                    });
                }
                Ok(Err(e)) => return Err(StoreError::Internal(format!("cannot run pg_dump: {e}"))),
                Ok(Ok(out)) => out,
            };
            if !out.status.success() {
                let _ = std::fs::remove_file(&path);
                let stderr =
                    crate::inspect::env::redact_urls(&String::from_utf8_lossy(&out.stderr));
                return Err(StoreError::Internal(format!(
                    "pg_dump failed ({}): {}",
                    out.status,
                    stderr.trim()
                )));
            }
            (path, "pg_dump --format=custom")
        }
    };
    // A copy of the database: the server account's alone, like the database itself.
    crate::datadir::make_private(&path);
    let size = file_size(&path).unwrap_or(0);
    let result = json!({
        "backend": db.backend.name(),
        "method": method,
        "path": path.display().to_string(),
        "size_bytes": size,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    });
    record(state, ctx, cryowarden_core::SettingAction::Backup, &result).await?;
    Ok(result)
}

/// `path`, or `path` with `-2`, `-3`... before its extension when it exists already.
fn unique(path: PathBuf) -> PathBuf {
    if !path.exists() {
        return path;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    (2..)
        .map(|n| path.with_file_name(format!("{stem}-{n}.{ext}")))
        .find(|p| !p.exists())
        .unwrap_or(path)
}

/// Every embedded migration: version, description, whether and when it was applied, and whether
/// the applied checksum matches the embedded one.
pub async fn migration_status(db: &Db) -> Result<Value, StoreError> {
    let rows = sqlx::query::<Any>(
        "SELECT version, description, CAST(installed_on AS TEXT) AS installed_on, \
         CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) AS success, checksum, execution_time \
         FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut applied = std::collections::BTreeMap::new();
    for r in &rows {
        let version: i64 = r.try_get("version")?;
        applied.insert(
            version,
            (
                r.try_get::<String, _>("description")?,
                r.try_get::<Option<String>, _>("installed_on")?,
                r.try_get::<i64, _>("success")? == 1,
                r.try_get::<Vec<u8>, _>("checksum")?,
                r.try_get::<i64, _>("execution_time")?,
            ),
        );
    }
    let migrator = db.migrator();
    let mut list = Vec::new();
    for m in migrator.iter() {
        let row = applied.get(&m.version);
        list.push(json!({
            "version": m.version,
            "description": m.description,
            "applied": row.is_some_and(|r| r.2),
            "installed_on": row.and_then(|r| r.1.clone()),
            "execution_time_ms": row.map(|r| r.4 / 1_000_000),
            "checksum_matches": row.map(|r| r.3.as_slice() == &*m.checksum),
        }));
    }
    let unknown: Vec<Value> = applied
        .iter()
        .filter(|(v, _)| !migrator.iter().any(|m| m.version == **v))
        .map(|(v, r)| json!({ "version": v, "description": r.0, "installed_on": r.1 }))
        .collect();
    let pending = list.iter().filter(|m| m["applied"] != true).count();
    let mismatched = list
        .iter()
        .filter(|m| m["checksum_matches"] == false)
        .count();
    Ok(json!({
        "backend": db.backend.name(),
        "migrations": list,
        "pending": pending,
        "checksum_mismatches": mismatched,
        "applied_but_unknown_to_this_build": unknown,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_the_url_for_libpq() {
        assert_eq!(
            split_password("postgres://cw:p%40ss@127.0.0.1:5432/cw?options=x"),
            (
                "postgres://cw@127.0.0.1:5432/cw?options=x".to_owned(),
                Some("p@ss".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://cw@h/db"),
            ("postgres://cw@h/db".to_owned(), None)
        );
    }
}
