//! Retention and archive of the audit log (the `audit-log-maintenance` setting).
//!
//! Archiving moves the oldest events out of the table into a file under
//! `<data_dir>/audit-archive/` (JSON lines: each event exactly as stored, with its `seq`,
//! `prev_hash` and `hash`), whose SHA-256 is recorded in an **anchor** row together with the
//! last archived event's seq and hash. The file is written and renamed into place first; then
//! one write transaction records the anchor, deletes the archived events and appends the
//! `archive-audit-log` event (which so continues the live chain from the anchor). `verify` starts
//! from the latest anchor; an archive verifies on its own: its file's SHA-256, and its events
//! chaining from the previous anchor's hash to its own.

use std::path::{Path, PathBuf};

use cryowarden_core::{Action, Allowed, Resource, Setting};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Any, Row};
use tokio::io::AsyncWriteExt;

use super::{COLUMNS, ChainCheck, GENESIS, Stored};
use crate::context::{Ctx, Target};
use crate::db::{Db, format_ms, now_ms};
use crate::error::StoreError;

/// The `instance_settings` key of the retention policy.
const POLICY_KEY: &str = "audit_log_maintenance";
const READ: Action = Action::ReadSetting(Setting::AuditLogMaintenance);
const CHANGE: Action = Action::ChangeSetting {
    setting: Setting::AuditLogMaintenance,
    field: None,
};
const DAY_MS: i64 = 86_400_000;
/// At most 100 years.
const MAX_KEEP_DAYS: i64 = 36_500;
/// How often the retention task looks (it archives only when the policy keeps fewer days than
/// the oldest event is old).
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

fn target() -> Target {
    Target {
        kind: "setting",
        id: Some(Setting::AuditLogMaintenance.as_str().into()),
        name: None,
    }
}

/// The retention policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Keep events this many days; older ones are archived by the hourly retention task.
    /// 0 keeps everything in the table (archive by hand only).
    pub keep_days: i64,
}

/// One archive: its anchor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Anchor {
    pub id: i64,
    /// The first and last archived events.
    pub first_seq: i64,
    pub seq: i64,
    /// The last archived event's hash: where the next chain continues.
    pub hash: String,
    /// The time of the last archived event.
    pub at: String,
    /// The hash this archive's first event chains from.
    pub prev_hash: String,
    pub events: i64,
    /// File name under `<data_dir>/audit-archive/`.
    pub file: String,
    pub file_sha256: String,
    pub created_at: String,
    pub created_by: String,
}

/// The maintenance section: policy and archives.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AuditMaintenance)]
pub struct Maintenance {
    pub policy: Policy,
    /// Events before this time are due for archiving under the policy (absent when it keeps all).
    pub cutoff: Option<String>,
    pub archive_dir: String,
    /// Oldest first.
    pub archives: Vec<Anchor>,
}

/// `POST /api/v1/audit/archive`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRequest {
    /// Archive events before this time (RFC 3339); absent: the policy's cut-off.
    pub before: Option<String>,
}

/// What an archive run did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ArchiveOutcome {
    /// Events moved to the file (0: nothing was old enough; no anchor then).
    pub archived: i64,
    pub anchor: Option<Anchor>,
    /// The cut-off used.
    pub before: String,
}

/// An archive checked on its own.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ArchiveVerification {
    pub ok: bool,
    pub id: i64,
    /// Events read from the file that chained.
    pub events: i64,
    /// The file's SHA-256 is the one recorded at archiving.
    pub file_sha256_ok: bool,
    pub first_broken: Option<i64>,
    pub problem: Option<String>,
}

pub fn archive_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("audit-archive")
}

fn anchor_from_row(r: &sqlx::any::AnyRow) -> Result<Anchor, sqlx::Error> {
    Ok(Anchor {
        id: r.try_get(0)?,
        first_seq: r.try_get(1)?,
        seq: r.try_get(2)?,
        hash: r.try_get(3)?,
        at: format_ms(r.try_get(4)?),
        prev_hash: r.try_get(5)?,
        events: r.try_get(6)?,
        file: r.try_get(7)?,
        file_sha256: r.try_get(8)?,
        created_at: format_ms(r.try_get(9)?),
        created_by: r.try_get(10)?,
    })
}

const ANCHOR_COLUMNS: &str =
    "id, first_seq, seq, hash, at, prev_hash, events, file, file_sha256, created_at, created_by";

async fn anchors(db: &Db) -> Result<Vec<Anchor>, StoreError> {
    let rows = sqlx::query::<Any>(&format!(
        "SELECT {ANCHOR_COLUMNS} FROM audit_anchors ORDER BY seq"
    ))
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().map(anchor_from_row).collect::<Result<_, _>>()?)
}

/// Where the live chain starts, from the anchors `(id, first_seq, seq, prev_hash, hash)` in seq
/// order: `Ok((seq, hash))` of the latest (`(0, GENESIS)` with none), or `Err((seq, problem))`
/// when they do not chain one after the other.
pub(crate) fn chain_start(
    anchors: Vec<(i64, i64, i64, String, String)>,
) -> Result<(i64, String), (i64, String)> {
    let mut head = (0, GENESIS.to_owned());
    for (id, first_seq, seq, prev_hash, hash) in anchors {
        if first_seq != head.0 + 1 || prev_hash != head.1 || seq < first_seq {
            return Err((
                first_seq,
                format!(
                    "archive #{id} does not continue the chain where the previous archive ended"
                ),
            ));
        }
        head = (seq, hash);
    }
    Ok(head)
}

async fn load_policy(db: &Db) -> Result<Policy, StoreError> {
    let row = sqlx::query::<Any>("SELECT value FROM instance_settings WHERE key = $1")
        .bind(POLICY_KEY)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        None => Ok(Policy::default()),
        Some(r) => {
            let text: String = r.try_get(0)?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Internal(format!("stored audit policy: {e}")))
        }
    }
}

fn cutoff(policy: Policy) -> Option<i64> {
    (policy.keep_days > 0).then(|| now_ms() - policy.keep_days * DAY_MS)
}

/// The policy and the archives (needs `ReadSetting(AuditLogMaintenance)`).
pub async fn maintenance(db: &Db, data_dir: &Path, ctx: &Ctx) -> Result<Maintenance, StoreError> {
    let _proof = ctx
        .authorize(db, READ, Resource::instance(), &target())
        .await?;
    let policy = load_policy(db).await?;
    Ok(Maintenance {
        policy,
        cutoff: cutoff(policy).map(format_ms),
        archive_dir: archive_dir(data_dir).display().to_string(),
        archives: anchors(db).await?,
    })
}

/// Sets the retention policy (needs `ChangeSetting(AuditLogMaintenance)`), audited.
pub async fn set_policy(db: &Db, ctx: &Ctx, policy: Policy) -> Result<Policy, StoreError> {
    let proof = ctx
        .authorize(db, CHANGE, Resource::instance(), &target())
        .await?;
    if !(0..=MAX_KEEP_DAYS).contains(&policy.keep_days) {
        return Err(StoreError::invalid(
            "keep_days",
            format!("must be a number of days from 0 to {MAX_KEEP_DAYS}"),
        ));
    }
    let value = serde_json::to_string(&policy).map_err(|e| StoreError::Internal(e.to_string()))?;
    let mut tx = db.begin_write().await?;
    proof.require(CHANGE)?;
    let before = {
        let row = sqlx::query::<Any>("SELECT value FROM instance_settings WHERE key = $1")
            .bind(POLICY_KEY)
            .fetch_optional(&mut *tx.tx)
            .await?;
        match row {
            Some(r) => {
                serde_json::from_str::<Policy>(&r.try_get::<String, _>(0)?).unwrap_or_default()
            }
            None => Policy::default(),
        }
    };
    if before == policy {
        return Ok(policy);
    }
    let now = now_ms();
    let updated =
        sqlx::query("UPDATE instance_settings SET value = $1, updated_at = $2 WHERE key = $3")
            .bind(&value)
            .bind(now)
            .bind(POLICY_KEY)
            .execute(&mut *tx.tx)
            .await?;
    if updated.rows_affected() == 0 {
        sqlx::query("INSERT INTO instance_settings (key, value, updated_at) VALUES ($1, $2, $3)")
            .bind(POLICY_KEY)
            .bind(&value)
            .bind(now)
            .execute(&mut *tx.tx)
            .await?;
    }
    ctx.audit_ok(
        &mut tx,
        CHANGE,
        &target(),
        Some(serde_json::to_value(before).unwrap_or_default()),
        Some(serde_json::to_value(policy).unwrap_or_default()),
    )
    .await?;
    tx.commit().await?;
    Ok(policy)
}

/// Archives the events before `req.before` (or the policy's cut-off). Needs
/// `ChangeSetting(AuditLogMaintenance)`: Site Admins only.
pub async fn archive(
    db: &Db,
    data_dir: &Path,
    ctx: &Ctx,
    req: ArchiveRequest,
) -> Result<ArchiveOutcome, StoreError> {
    let proof = ctx
        .authorize(db, CHANGE, Resource::instance(), &target())
        .await?;
    let before = match req.before.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    StoreError::invalid(
                        "before",
                        "expected an RFC 3339 time such as 2026-01-31T12:00:00Z",
                    )
                })?;
            let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| StoreError::invalid("before", "out of range"))?;
            if ms > now_ms() {
                return Err(StoreError::invalid("before", "must not be in the future"));
            }
            ms
        }
        None => cutoff(load_policy(db).await?).ok_or_else(|| {
            StoreError::invalid(
                "before",
                "give a cut-off time, or set a retention policy (keep_days > 0) first",
            )
        })?,
    };
    archive_before(db, data_dir, ctx, &proof, before).await
}

/// The retention task: every hour, archives what the policy no longer keeps, as
/// `system:audit-retention` (the policy a Site Admin set is the authorization).
pub fn spawn_retention(db: Db, data_dir: PathBuf) {
    tokio::spawn(async move {
        let ctx = Ctx::system("audit-retention", "server");
        let proof = Allowed::system(CHANGE, "audit-retention", None);
        loop {
            match load_policy(&db).await {
                Ok(policy) => {
                    if let Some(before) = cutoff(policy)
                        && let Err(e) = archive_before(&db, &data_dir, &ctx, &proof, before).await
                    {
                        tracing::error!(error = %e, "audit retention: archiving failed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "audit retention: cannot read the policy"),
            }
            tokio::time::sleep(RETENTION_EVERY).await;
        }
    });
}

/// Removes a file when dropped unless disarmed: an archive file whose transaction did not
/// commit must not stay behind looking like an archive.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn archive_before(
    db: &Db,
    data_dir: &Path,
    ctx: &Ctx,
    proof: &Allowed,
    before: i64,
) -> Result<ArchiveOutcome, StoreError> {
    let dir = archive_dir(data_dir);
    crate::datadir::create_private_dir(&dir)
        .map_err(|e| StoreError::Internal(format!("cannot create {}: {e}", dir.display())))?;
    let io = |e: std::io::Error| StoreError::Internal(format!("writing the audit archive: {e}"));
    let mut tx = db.begin_write().await?;
    proof.require(CHANGE)?;
    // Where the previous archive ended, and the last event before the cut-off.
    let prev =
        sqlx::query::<Any>("SELECT seq, hash, id FROM audit_anchors ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx.tx)
            .await?;
    let (prev_seq, prev_hash, prev_id) = match prev {
        Some(r) => (
            r.try_get::<i64, _>(0)?,
            r.try_get::<String, _>(1)?,
            r.try_get::<i64, _>(2)?,
        ),
        None => (0, GENESIS.to_owned(), 0),
    };
    let last = sqlx::query::<Any>(
        "SELECT seq FROM audit_events WHERE at < $1 ORDER BY at DESC, seq DESC LIMIT 1",
    )
    .bind(before)
    .fetch_optional(&mut *tx.tx)
    .await?;
    let cut = match last {
        Some(r) => r.try_get::<i64, _>(0)?,
        None => prev_seq,
    };
    if cut <= prev_seq {
        return Ok(ArchiveOutcome {
            archived: 0,
            anchor: None,
            before: format_ms(before),
        });
    }
    let id = prev_id + 1;
    let file = format!("audit-{id:06}-{:012}-{cut:012}.jsonl", prev_seq + 1);
    let path = dir.join(&file);
    let partial = dir.join(format!("{file}.partial"));
    let mut guard = RemoveOnDrop(Some(partial.clone()));
    let mut out = tokio::fs::OpenOptions::from(crate::datadir::private_file())
        .write(true)
        .create_new(true)
        .open(&partial)
        .await
        .map_err(io)?;
    // Stream the events into the file, checking their chain on the way: a broken chain is
    // never archived (that would launder the damage into a file whose own hash is fine).
    let mut check = ChainCheck::new(prev_seq, prev_hash.clone());
    let mut sha = Sha256::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut last_at = 0;
    {
        let sql =
            format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq");
        let mut rows = sqlx::query::<Any>(&sql)
            .bind(prev_seq)
            .bind(cut)
            .fetch(&mut *tx.tx);
        use futures_util::TryStreamExt;
        while let Some(row) = rows.try_next().await? {
            let e = Stored::from_row(&row)?;
            if let Err((seq, problem)) = check.check_one(&e) {
                return Err(StoreError::InUse {
                    field: "before",
                    message: format!(
                        "the chain is broken at event #{seq} ({problem}): it cannot be archived; see /api/v1/audit/verify"
                    ),
                });
            }
            last_at = e.at;
            serde_json::to_writer(&mut buf, &e).map_err(|e| StoreError::Internal(e.to_string()))?;
            buf.push(b'\n');
            if buf.len() >= 1 << 20 {
                sha.update(&buf);
                out.write_all(&buf).await.map_err(io)?;
                buf.clear();
            }
        }
    }
    if check.expected_seq != cut + 1 {
        return Err(StoreError::Internal(format!(
            "archive: read up to event {} of {cut}",
            check.expected_seq - 1
        )));
    }
    sha.update(&buf);
    out.write_all(&buf).await.map_err(io)?;
    out.sync_all().await.map_err(io)?;
    drop(out);
    tokio::fs::rename(&partial, &path).await.map_err(io)?;
    guard.0 = Some(path.clone());
    if let Ok(d) = tokio::fs::File::open(&dir).await {
        let _ = d.sync_all().await;
    }
    let file_sha256 = hex::encode(sha.finalize());
    let now = now_ms();
    let anchor = Anchor {
        id,
        first_seq: prev_seq + 1,
        seq: cut,
        hash: check.prev.clone(),
        at: format_ms(last_at),
        prev_hash,
        events: check.events,
        file: file.clone(),
        file_sha256: file_sha256.clone(),
        created_at: format_ms(now),
        created_by: ctx.who.name.clone(),
    };
    sqlx::query(&format!(
        "INSERT INTO audit_anchors ({ANCHOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(id)
    .bind(anchor.first_seq)
    .bind(cut)
    .bind(&anchor.hash)
    .bind(last_at)
    .bind(&anchor.prev_hash)
    .bind(anchor.events)
    .bind(&file)
    .bind(&file_sha256)
    .bind(now)
    .bind(&anchor.created_by)
    .execute(&mut *tx.tx)
    .await?;
    sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
        .bind(cut)
        .execute(&mut *tx.tx)
        .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::ArchiveAuditLog,
        &target(),
        None,
        Some(serde_json::json!({
            "archive": id, "first_seq": anchor.first_seq, "last_seq": cut, "events": anchor.events,
            "file": file, "file_sha256": file_sha256, "before": format_ms(before),
        })),
    )
    .await?;
    tx.commit().await?;
    guard.0 = None;
    tracing::info!(archive = id, events = anchor.events, file = %path.display(), "audit events archived");
    Ok(ArchiveOutcome {
        archived: anchor.events,
        anchor: Some(anchor),
        before: format_ms(before),
    })
}

/// Checks archive `id` on its own: the file's SHA-256 against the anchor, and its events
/// chaining from the anchor's `prev_hash` to its `hash` (needs `ReadSetting(AuditLogMaintenance)`).
pub async fn verify_archive(
    db: &Db,
    data_dir: &Path,
    ctx: &Ctx,
    id: i64,
) -> Result<ArchiveVerification, StoreError> {
    let _proof = ctx
        .authorize(db, READ, Resource::instance(), &target())
        .await?;
    let row = sqlx::query::<Any>(&format!(
        "SELECT {ANCHOR_COLUMNS} FROM audit_anchors WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or(StoreError::NotFound { what: "archive" })?;
    let anchor = anchor_from_row(&row)?;
    let path = archive_dir(data_dir).join(&anchor.file);
    tokio::task::spawn_blocking(move || verify_file(&anchor, &path))
        .await
        .map_err(|e| StoreError::Internal(format!("verify archive: {e}")))
}

fn verify_file(anchor: &Anchor, path: &Path) -> ArchiveVerification {
    use std::io::BufRead;
    let mut v = ArchiveVerification {
        ok: false,
        id: anchor.id,
        events: 0,
        file_sha256_ok: false,
        first_broken: None,
        problem: None,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            v.problem = Some(format!("cannot open {}: {e}", anchor.file));
            return v;
        }
    };
    let mut sha = Sha256::new();
    let mut check = ChainCheck::new(anchor.first_seq - 1, anchor.prev_hash.clone());
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut broken: Option<(i64, String)> = None;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                v.problem = Some(format!("cannot read {}: {e}", anchor.file));
                return v;
            }
        }
        sha.update(&line);
        if broken.is_some() {
            continue;
        }
        match serde_json::from_slice::<Stored>(&line) {
            Ok(e) => {
                if let Err(b) = check.check_one(&e) {
                    broken = Some(b);
                }
            }
            Err(e) => {
                broken = Some((
                    check.expected_seq,
                    format!("line of event {} is not an event: {e}", check.expected_seq),
                ));
            }
        }
    }
    v.file_sha256_ok = hex::encode(sha.finalize()) == anchor.file_sha256;
    v.events = check.events;
    if broken.is_none() {
        if check.expected_seq != anchor.seq + 1 {
            broken = Some((
                check.expected_seq,
                format!("the file ends before event {}", anchor.seq),
            ));
        } else if check.prev != anchor.hash {
            broken = Some((
                anchor.seq,
                "the last event's hash is not the anchor's".into(),
            ));
        }
    }
    match broken {
        Some((seq, p)) => {
            v.first_broken = Some(seq);
            v.problem = Some(p);
        }
        None if !v.file_sha256_ok => {
            v.problem =
                Some("the file's SHA-256 is not the one recorded when it was archived".into());
        }
        None => v.ok = true,
    }
    v
}
