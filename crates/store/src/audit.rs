//! The audit chain: every change, and every denied attempt at a guarded action, becomes one
//! event whose hash covers its content and the previous event's hash. Appends happen inside the
//! transaction of the change they record, so a change and its event commit or vanish together.
//!
//! Submodules: `filter.rs` (the Audit Log page's filters, paged and as an export stream),
//! `archive.rs` (retention policy, archives to files under `<data_dir>/audit-archive/` and the
//! anchors that let the live chain verify after its start was archived).

mod archive;
mod checkpoint;
mod filter;
mod repeats;

pub use archive::{
    Anchor, ArchiveOutcome, ArchiveRequest, ArchiveVerification, Maintenance, Policy, archive,
    archive_dir, maintenance, set_policy, spawn_retention, verify_archive,
};
pub use checkpoint::{PageVerification, verify_for_page};
pub use filter::{ExportFormat, Filter, export_stream, list};
pub use repeats::{
    ACTOR_BUDGET, Repeats, WINDOW as REPEAT_WINDOW, WRITTEN_REPEATS, flush as flush_refusals,
    pending as pending_refusals, record_refusal, run_flusher,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Any, Row};

use crate::db::{Db, WriteTx, format_ms, now_ms};
use crate::error::StoreError;

/// The hash before the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
        }
    }
}

/// Who did something, as the audit log names them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Who {
    pub id: Option<i64>,
    pub name: String,
}

impl Who {
    pub fn system(purpose: &str) -> Who {
        Who {
            id: None,
            name: format!("system:{purpose}"),
        }
    }
}

/// One event to record.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub actor: Who,
    pub impersonator: Option<Who>,
    pub action: String,
    pub target_kind: &'static str,
    pub target_id: Option<String>,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub source: String,
}

/// A recorded event, as listed by the API.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub impersonator_id: Option<i64>,
    pub impersonator: Option<String>,
    pub action: String,
    pub target_kind: String,
    pub target_id: Option<String>,
    pub target: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    /// What the target was before the change: any JSON value (an object of the fields changed,
    /// usually), or null.
    pub before: Option<serde_json::Value>,
    /// What it is after: any JSON value, or null.
    pub after: Option<serde_json::Value>,
    pub source: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The stored columns, in the order every query selects them (decoded by position).
pub const COLUMNS: &str = "seq, at, actor_id, actor, impersonator_id, impersonator, action, target_kind, \
     target_id, target, outcome, reason, before_value, after_value, source, prev_hash, hash";

/// An event as stored: the exact text the hash covers. Archive files hold one per line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub impersonator_id: Option<i64>,
    pub impersonator: Option<String>,
    pub action: String,
    pub target_kind: String,
    pub target_id: Option<String>,
    pub target: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    #[serde(rename = "before_value")]
    pub before: Option<String>,
    #[serde(rename = "after_value")]
    pub after: Option<String>,
    pub source: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Stored {
    /// Decodes a row selected with [`COLUMNS`] (by position: no name lookups per column).
    pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<Stored, sqlx::Error> {
        Ok(Stored {
            seq: r.try_get(0)?,
            at: r.try_get(1)?,
            actor_id: r.try_get(2)?,
            actor: r.try_get(3)?,
            impersonator_id: r.try_get(4)?,
            impersonator: r.try_get(5)?,
            action: r.try_get(6)?,
            target_kind: r.try_get(7)?,
            target_id: r.try_get(8)?,
            target: r.try_get(9)?,
            outcome: r.try_get(10)?,
            reason: r.try_get(11)?,
            before: r.try_get(12)?,
            after: r.try_get(13)?,
            source: r.try_get(14)?,
            prev_hash: r.try_get(15)?,
            hash: r.try_get(16)?,
        })
    }

    /// The hash of this event's content chained to `prev` (see [`EventRef::hash`]).
    pub fn compute_hash(&self, prev: &str) -> [u8; 32] {
        self.as_ref().hash(prev.as_bytes())
    }

    pub(crate) fn as_ref(&self) -> EventRef<'_> {
        fn o(s: &Option<String>) -> Option<&[u8]> {
            s.as_deref().map(str::as_bytes)
        }
        EventRef {
            seq: self.seq,
            at: self.at,
            actor_id: self.actor_id,
            actor: self.actor.as_bytes(),
            impersonator_id: self.impersonator_id,
            impersonator: o(&self.impersonator),
            action: self.action.as_bytes(),
            target_kind: self.target_kind.as_bytes(),
            target_id: o(&self.target_id),
            target: o(&self.target),
            outcome: self.outcome.as_bytes(),
            reason: o(&self.reason),
            before: o(&self.before),
            after: o(&self.after),
            source: self.source.as_bytes(),
            prev_hash: self.prev_hash.as_bytes(),
            hash: self.hash.as_bytes(),
        }
    }

    /// Chains this event to `prev`: sets `prev_hash` and `hash` (for loading events in bulk, as
    /// the benchmark does; the server appends with [`append`]).
    pub fn seal(&mut self, prev: &str) {
        prev.clone_into(&mut self.prev_hash);
        self.hash = hex::encode(self.compute_hash(prev));
    }

    pub(crate) fn into_event(self) -> Event {
        let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
        Event {
            seq: self.seq,
            at: format_ms(self.at),
            actor_id: self.actor_id,
            actor: self.actor,
            impersonator_id: self.impersonator_id,
            impersonator: self.impersonator,
            action: self.action,
            target_kind: self.target_kind,
            target_id: self.target_id,
            target: self.target,
            outcome: self.outcome,
            reason: self.reason,
            before: json(self.before),
            after: json(self.after),
            source: self.source,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// An event's stored fields, borrowed: from a [`Stored`] or straight from a database row, so
/// that verifying needs no allocation per event.
pub(crate) struct EventRef<'a> {
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor: &'a [u8],
    pub impersonator_id: Option<i64>,
    pub impersonator: Option<&'a [u8]>,
    pub action: &'a [u8],
    pub target_kind: &'a [u8],
    pub target_id: Option<&'a [u8]>,
    pub target: Option<&'a [u8]>,
    pub outcome: &'a [u8],
    pub reason: Option<&'a [u8]>,
    pub before: Option<&'a [u8]>,
    pub after: Option<&'a [u8]>,
    pub source: &'a [u8],
    pub prev_hash: &'a [u8],
    pub hash: &'a [u8],
}

impl EventRef<'_> {
    /// The hash of this event's content chained to `prev`. Every field is length-prefixed so
    /// that no two different events serialise alike. (The format of every stored event:
    /// integers in decimal, absent values as `-`.)
    pub(crate) fn hash(&self, prev: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        fn text(h: &mut Sha256, s: &[u8]) {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s);
        }
        fn opt(h: &mut Sha256, s: Option<&[u8]>) {
            match s {
                None => h.update(b"-"),
                Some(s) => text(h, s),
            }
        }
        fn int(h: &mut Sha256, v: Option<i64>) {
            let mut buf = itoa::Buffer::new();
            opt(h, v.map(|v| buf.format(v).as_bytes()));
        }
        text(&mut h, prev);
        int(&mut h, Some(self.seq));
        int(&mut h, Some(self.at));
        int(&mut h, self.actor_id);
        text(&mut h, self.actor);
        int(&mut h, self.impersonator_id);
        opt(&mut h, self.impersonator);
        text(&mut h, self.action);
        text(&mut h, self.target_kind);
        opt(&mut h, self.target_id);
        opt(&mut h, self.target);
        text(&mut h, self.outcome);
        opt(&mut h, self.reason);
        opt(&mut h, self.before);
        opt(&mut h, self.after);
        text(&mut h, self.source);
        h.finalize().into()
    }
}

/// Where the chain continues: the last event, else the latest archive's anchor, else GENESIS.
async fn chain_head(tx: &mut WriteTx) -> Result<(i64, String, i64), StoreError> {
    let last = sqlx::query("SELECT seq, hash, at FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx.tx)
        .await?;
    let last = match last {
        Some(r) => Some(r),
        None => {
            sqlx::query("SELECT seq, hash, at FROM audit_anchors ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx.tx)
                .await?
        }
    };
    Ok(match last {
        Some(r) => (
            r.try_get::<i64, _>(0)?,
            r.try_get::<String, _>(1)?,
            r.try_get::<i64, _>(2)?,
        ),
        None => (0, GENESIS.to_owned(), 0),
    })
}

/// Appends `event` to the chain inside `tx`.
pub async fn append(tx: &mut WriteTx, event: NewEvent) -> Result<i64, StoreError> {
    let (prev_seq, prev_hash, prev_at) = chain_head(tx).await?;
    let mut stored = Stored {
        seq: prev_seq + 1,
        // Never before the previous event (a clock stepped back): `at` does not decrease along
        // the chain, so a time range of the log is a range of seq (see `filter.rs`).
        at: now_ms().max(prev_at),
        actor_id: event.actor.id,
        actor: event.actor.name,
        impersonator_id: event.impersonator.as_ref().and_then(|w| w.id),
        impersonator: event.impersonator.map(|w| w.name),
        action: event.action,
        target_kind: event.target_kind.to_owned(),
        target_id: event.target_id,
        target: event.target,
        outcome: event.outcome.as_str().to_owned(),
        reason: event.reason,
        before: event.before.map(|v| v.to_string()),
        after: event.after.map(|v| v.to_string()),
        source: event.source,
        prev_hash: prev_hash.clone(),
        hash: String::new(),
    };
    stored.hash = hex::encode(stored.compute_hash(&prev_hash));
    insert(tx, &stored).await?;
    // Mirrored in the `audit` service log (written before commit: a rolled-back change may
    // leave a line there, never the other way round; the database is the record).
    tracing::info!(
        seq = stored.seq,
        actor = %stored.actor,
        impersonator = stored.impersonator.as_deref().unwrap_or(""),
        action = %stored.action,
        target = stored.target.as_deref().unwrap_or(""),
        outcome = %stored.outcome,
        source = %stored.source,
        "audit event"
    );
    Ok(stored.seq)
}

pub(crate) async fn insert(tx: &mut WriteTx, stored: &Stored) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO audit_events ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(stored.seq)
    .bind(stored.at)
    .bind(stored.actor_id)
    .bind(&stored.actor)
    .bind(stored.impersonator_id)
    .bind(&stored.impersonator)
    .bind(&stored.action)
    .bind(&stored.target_kind)
    .bind(&stored.target_id)
    .bind(&stored.target)
    .bind(&stored.outcome)
    .bind(&stored.reason)
    .bind(&stored.before)
    .bind(&stored.after)
    .bind(&stored.source)
    .bind(&stored.prev_hash)
    .bind(&stored.hash)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// Records one event in a transaction of its own (for refusals, which change nothing else).
pub async fn record(db: &Db, event: NewEvent) -> Result<i64, StoreError> {
    let mut tx = db.begin_write().await?;
    let seq = append(&mut tx, event).await?;
    tx.commit().await?;
    Ok(seq)
}

/// The outcome of checking the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub ok: bool,
    /// Live events checked (archived events are checked with their archive).
    pub events: i64,
    /// The first event that breaks the chain, and how.
    pub first_broken: Option<i64>,
    pub problem: Option<String>,
    /// The live chain starts after this event, the last one archived (absent: from GENESIS).
    pub anchored_after: Option<i64>,
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.first_broken, &self.problem) {
            (Some(seq), Some(p)) => write!(f, "broken at event #{seq}: {p}"),
            _ => match self.anchored_after {
                Some(a) => write!(
                    f,
                    "ok, {} events (after the archive anchor at event #{a})",
                    self.events
                ),
                None => write!(f, "ok, {} events", self.events),
            },
        }
    }
}

/// Rows per batch while verifying: large keyset batches, each hashed on a blocking thread while
/// the next one is read.
const VERIFY_BATCH: usize = 20_000;

/// Where a chain check stands between batches.
#[derive(Clone, Debug)]
pub(crate) struct ChainCheck {
    /// The previous event's hash (hex).
    pub prev: String,
    pub expected_seq: i64,
    pub events: i64,
}

impl ChainCheck {
    pub(crate) fn new(after_seq: i64, prev: String) -> ChainCheck {
        ChainCheck {
            prev,
            expected_seq: after_seq + 1,
            events: 0,
        }
    }

    /// Checks `batch` (in seq order) against the chain so far: `Err((seq, problem))` at the first
    /// event that breaks it.
    pub(crate) fn check(&mut self, batch: &[Stored]) -> Result<(), (i64, String)> {
        for e in batch {
            self.check_one(e)?;
        }
        Ok(())
    }

    pub(crate) fn check_one(&mut self, e: &Stored) -> Result<(), (i64, String)> {
        self.check_ref(&e.as_ref())
    }

    pub(crate) fn check_ref(&mut self, e: &EventRef<'_>) -> Result<(), (i64, String)> {
        if e.seq != self.expected_seq {
            return Err((
                e.seq,
                format!(
                    "expected event {} next: events are missing or reordered",
                    self.expected_seq
                ),
            ));
        }
        if e.prev_hash != self.prev.as_bytes() {
            return Err((
                e.seq,
                "its link to the previous event does not match: events were removed, inserted or reordered".into(),
            ));
        }
        let mut hex_buf = [0u8; 64];
        if hex::encode_to_slice(e.hash(self.prev.as_bytes()), &mut hex_buf).is_err()
            || hex_buf[..] != *e.hash
        {
            return Err((
                e.seq,
                "its content does not match its hash: the event was altered".into(),
            ));
        }
        // A stored hash that is not text would have failed the comparison above.
        self.prev.clear();
        self.prev
            .push_str(std::str::from_utf8(&hex_buf).unwrap_or_default());
        self.expected_seq += 1;
        self.events += 1;
        Ok(())
    }

    /// Checks PostgreSQL rows selected with [`COLUMNS`], decoding each in place.
    fn check_pg(&mut self, rows: &[sqlx::postgres::PgRow]) -> Result<(), (i64, String)> {
        for r in rows {
            let e = ref_from_pg(r).map_err(|e| {
                (
                    self.expected_seq,
                    format!("the event could not be read: {e}"),
                )
            })?;
            self.check_ref(&e)?;
        }
        Ok(())
    }

    /// The verification, and where it ended when the chain verified.
    fn finish(
        &self,
        broken: Option<(i64, String)>,
        anchored_after: Option<i64>,
        anchor: (i64, String),
    ) -> (Verification, Option<ChainEnd>) {
        let end = broken.is_none().then(|| ChainEnd {
            anchor,
            last: (self.expected_seq - 1, self.prev.clone()),
        });
        (self.verification(broken, anchored_after), end)
    }

    fn verification(
        &self,
        broken: Option<(i64, String)>,
        anchored_after: Option<i64>,
    ) -> Verification {
        match broken {
            Some((seq, problem)) => Verification {
                ok: false,
                events: self.events,
                first_broken: Some(seq),
                problem: Some(problem),
                anchored_after,
            },
            None => Verification {
                ok: true,
                events: self.events,
                first_broken: None,
                problem: None,
                anchored_after,
            },
        }
    }
}

/// An event's sequence number and hash.
type SeqHash = (i64, String);

/// What the snapshot reader sends: first where the live chain starts (from the anchors, or
/// where they fail to chain), then the events after it in batches.
enum Read {
    /// The anchor (seq, hash), and where checking starts (the anchor or a checkpoint); or the
    /// first event where the anchors fail to chain.
    Head(Result<(SeqHash, SeqHash), SeqHash>),
    Batch(Batch),
    Failed(StoreError),
}

enum Batch {
    Stored(Vec<Stored>),
    /// PostgreSQL rows as received, decoded in place (borrowed) on the hashing thread.
    Postgres(Vec<sqlx::postgres::PgRow>),
}

/// Where checking starts, given the chain's anchor and a checkpoint: after the checkpoint's
/// last event when it was taken from this same anchor, else at the anchor.
fn start_at(anchor: &(i64, String), resume: Option<ChainEnd>) -> (i64, String) {
    match resume {
        Some(r) if r.anchor == *anchor => r.last,
        _ => anchor.clone(),
    }
}

/// Walks the live chain in order, from the latest archive anchor (or GENESIS), and reports the
/// first event whose content, order or deletion breaks it. The anchors themselves must chain.
///
/// Anchors and events are read in one snapshot (an archive committing meanwhile is not seen
/// half-way): on SQLite through a read-only rusqlite connection on a blocking thread, on
/// PostgreSQL in a REPEATABLE READ transaction. Batch k is hashed on a blocking thread while
/// batch k+1 is read; the hash format of stored events is unchanged.
pub async fn verify(db: &Db) -> Result<Verification, StoreError> {
    let (v, end) = verify_from(db, None).await?;
    checkpoint::record(db, &v, end, true);
    Ok(v)
}

/// Where a successful check ended: the anchor it started from (seq, hash) and the last event
/// it verified (seq, hash), for the in-memory checkpoint of `checkpoint.rs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainEnd {
    pub anchor: (i64, String),
    pub last: (i64, String),
}

/// Checks the chain from the anchor or, when `resume` is given and the chain still starts from
/// its anchor, only the events after its last verified event. `Verification::events` counts
/// the events checked by this call.
pub(crate) async fn verify_from(
    db: &Db,
    resume: Option<ChainEnd>,
) -> Result<(Verification, Option<ChainEnd>), StoreError> {
    if let Some(path) = sqlite_file(db) {
        return tokio::task::spawn_blocking(move || verify_sqlite(&path, resume))
            .await
            .map_err(|e| StoreError::Internal(format!("verify: {e}")))?
            .map_err(|e| StoreError::Internal(format!("verify: {e}")));
    }
    let (send, mut recv) = tokio::sync::mpsc::channel::<Read>(2);
    let reader = if db.backend == crate::db::Backend::Postgres {
        let url = db.pool.connect_options().database_url.to_string();
        tokio::spawn(async move {
            if let Err(e) = read_postgres(&url, resume, &send).await {
                let _ = send.send(Read::Failed(e)).await;
            }
        })
    } else {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = read_pool(&pool, resume, &send).await {
                let _ = send.send(Read::Failed(e)).await;
            }
        })
    };
    let result = check_stream(&mut recv).await;
    drop(recv);
    let _ = reader.await;
    result
}

async fn check_stream(
    recv: &mut tokio::sync::mpsc::Receiver<Read>,
) -> Result<(Verification, Option<ChainEnd>), StoreError> {
    let (anchor, (after_seq, prev)) = match recv.recv().await {
        Some(Read::Head(Ok(head))) => head,
        Some(Read::Head(Err((seq, problem)))) => {
            return Ok((
                Verification {
                    ok: false,
                    events: 0,
                    first_broken: Some(seq),
                    problem: Some(problem),
                    anchored_after: None,
                },
                None,
            ));
        }
        Some(Read::Failed(e)) => return Err(e),
        _ => return Err(StoreError::Internal("verify: the reader stopped".into())),
    };
    let anchored_after = (anchor.0 > 0).then_some(anchor.0);
    let mut state = ChainCheck::new(after_seq, prev);
    let mut broken = None;
    while let Some(msg) = recv.recv().await {
        let batch = match msg {
            Read::Batch(b) => b,
            Read::Failed(e) => return Err(e),
            Read::Head(_) => return Err(StoreError::Internal("verify: a second head".into())),
        };
        let (s, result) = tokio::task::spawn_blocking(move || {
            let mut s = state;
            let r = match &batch {
                Batch::Stored(b) => s.check(b),
                Batch::Postgres(rows) => s.check_pg(rows),
            };
            (s, r)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("verify: {e}")))?;
        state = s;
        if let Err(b) = result {
            broken = Some(b);
            break;
        }
    }
    Ok(state.finish(broken, anchored_after, anchor))
}

/// The SQLite database file behind `db`, when it is one that a second connection can open.
fn sqlite_file(db: &Db) -> Option<std::path::PathBuf> {
    if db.backend != crate::db::Backend::Sqlite {
        return None;
    }
    let opts = db.pool.connect_options();
    let url = opts.database_url.as_str();
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?
        .into_owned();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let p = std::path::PathBuf::from(path);
    p.is_file().then_some(p)
}

/// Verifies on SQLite in one blocking thread, reading rows in place (no allocation per event).
fn verify_sqlite(
    path: &std::path::Path,
    resume: Option<ChainEnd>,
) -> Result<(Verification, Option<ChainEnd>), rusqlite::Error> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // One read transaction: the anchors and the events of one snapshot (WAL).
    conn.execute_batch("BEGIN")?;
    let anchors = {
        let mut stmt = conn.prepare(
            "SELECT id, first_seq, seq, prev_hash, hash FROM audit_anchors ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<Result<Vec<(i64, i64, i64, String, String)>, _>>()?
    };
    let anchor = match archive::chain_start(anchors) {
        Ok(head) => head,
        Err((seq, problem)) => {
            return Ok((
                ChainCheck::new(0, String::new()).verification(Some((seq, problem)), None),
                None,
            ));
        }
    };
    let anchored_after = (anchor.0 > 0).then_some(anchor.0);
    let (after, prev) = start_at(&anchor, resume);
    let resumed = after != anchor.0;
    let mut check = ChainCheck::new(after, prev);
    // The table in storage order (rowid), no index: appends are serialised and get increasing
    // rowids, so this is seq order, read sequentially. At the first row that is not the next seq
    // (damage, or a table rebuilt in another order) the rest is read by the seq index instead,
    // so the check sees the chain's own order either way. (From a checkpoint: by the index.)
    let mut in_order = !resumed;
    if in_order {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM audit_events NOT INDEXED ORDER BY rowid"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let e = ref_from_sqlite(r)?;
            if e.seq != check.expected_seq {
                in_order = false;
                break;
            }
            if let Err(b) = check.check_ref(&e) {
                return Ok(check.finish(Some(b), anchored_after, anchor));
            }
        }
    }
    if !in_order {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq >= ?1 ORDER BY seq"
        ))?;
        let mut rows = stmt.query([check.expected_seq])?;
        while let Some(r) = rows.next()? {
            if let Err(b) = check.check_ref(&ref_from_sqlite(r)?) {
                return Ok(check.finish(Some(b), anchored_after, anchor));
            }
        }
    }
    Ok(check.finish(None, anchored_after, anchor))
}

fn ref_from_sqlite<'r>(r: &'r rusqlite::Row<'_>) -> Result<EventRef<'r>, rusqlite::Error> {
    use rusqlite::types::ValueRef;
    let opt = |i: usize| -> Result<Option<&'r [u8]>, rusqlite::Error> {
        match r.get_ref(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) | ValueRef::Blob(t) => Ok(Some(t)),
            v => Err(rusqlite::Error::InvalidColumnType(
                i,
                format!("column {i}"),
                v.data_type(),
            )),
        }
    };
    let text = |i: usize| -> Result<&'r [u8], rusqlite::Error> {
        opt(i)?.ok_or(rusqlite::Error::InvalidColumnType(
            i,
            format!("column {i}"),
            rusqlite::types::Type::Null,
        ))
    };
    Ok(EventRef {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor_id: r.get(2)?,
        actor: text(3)?,
        impersonator_id: r.get(4)?,
        impersonator: opt(5)?,
        action: text(6)?,
        target_kind: text(7)?,
        target_id: opt(8)?,
        target: opt(9)?,
        outcome: text(10)?,
        reason: opt(11)?,
        before: opt(12)?,
        after: opt(13)?,
        source: text(14)?,
        prev_hash: text(15)?,
        hash: text(16)?,
    })
}

/// Decodes a PostgreSQL row selected with [`COLUMNS`] by position, borrowing its text.
fn ref_from_pg(r: &sqlx::postgres::PgRow) -> Result<EventRef<'_>, sqlx::Error> {
    let t = |i: usize| r.try_get::<&str, _>(i).map(str::as_bytes);
    let o = |i: usize| {
        r.try_get::<Option<&str>, _>(i)
            .map(|v| v.map(str::as_bytes))
    };
    Ok(EventRef {
        seq: r.try_get(0)?,
        at: r.try_get(1)?,
        actor_id: r.try_get(2)?,
        actor: t(3)?,
        impersonator_id: r.try_get(4)?,
        impersonator: o(5)?,
        action: t(6)?,
        target_kind: t(7)?,
        target_id: o(8)?,
        target: o(9)?,
        outcome: t(10)?,
        reason: o(11)?,
        before: o(12)?,
        after: o(13)?,
        source: t(14)?,
        prev_hash: t(15)?,
        hash: t(16)?,
    })
}

/// Reads on PostgreSQL through one connection of sqlx's native driver (the Any driver decodes
/// every value into an owned one: ~2.5x slower), in a REPEATABLE READ READ ONLY transaction.
/// The URL is the pool's, so its options (the schema's search_path) apply here too.
async fn read_postgres(
    url: &str,
    resume: Option<ChainEnd>,
    send: &tokio::sync::mpsc::Sender<Read>,
) -> Result<(), StoreError> {
    use futures_util::TryStreamExt;
    use sqlx::Connection;
    use std::str::FromStr;
    let opts = sqlx::postgres::PgConnectOptions::from_str(url)?;
    let mut conn = sqlx::PgConnection::connect_with(&opts).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows =
        sqlx::query("SELECT id, first_seq, seq, prev_hash, hash FROM audit_anchors ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?;
    let anchors = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect::<Result<Vec<(i64, i64, i64, String, String)>, sqlx::Error>>()?;
    let Some(after) = send_head(anchors, resume, send).await else {
        return Ok(());
    };
    let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq");
    {
        let mut rows = sqlx::query(&sql).bind(after).fetch(&mut *tx);
        let mut batch = Vec::with_capacity(VERIFY_BATCH);
        while let Some(r) = rows.try_next().await? {
            batch.push(r);
            if batch.len() == VERIFY_BATCH
                && send
                    .send(Read::Batch(Batch::Postgres(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(VERIFY_BATCH),
                    ))))
                    .await
                    .is_err()
            {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            let _ = send.send(Read::Batch(Batch::Postgres(batch))).await;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Sends the start of the chain (from the latest anchor, or `resume`) to the hashing side; the
/// seq to read after, or `None` when there is nothing more to read (broken anchors, or the
/// hashing side gone).
async fn send_head(
    anchors: Vec<(i64, i64, i64, String, String)>,
    resume: Option<ChainEnd>,
    send: &tokio::sync::mpsc::Sender<Read>,
) -> Option<i64> {
    let head = archive::chain_start(anchors).map(|anchor| {
        let start = start_at(&anchor, resume);
        (anchor, start)
    });
    let after = head.as_ref().ok().map(|(_, (seq, _))| *seq);
    send.send(Read::Head(head)).await.ok()?;
    after
}

/// Reads through the pool (SQLite without a file a second connection can open).
async fn read_pool(
    pool: &sqlx::AnyPool,
    resume: Option<ChainEnd>,
    send: &tokio::sync::mpsc::Sender<Read>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query::<Any>(
        "SELECT id, first_seq, seq, prev_hash, hash FROM audit_anchors ORDER BY seq",
    )
    .fetch_all(&mut *tx)
    .await?;
    let anchors = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect::<Result<Vec<(i64, i64, i64, String, String)>, sqlx::Error>>()?;
    let Some(after) = send_head(anchors, resume, send).await else {
        return Ok(());
    };
    // One streamed query in the snapshot, cut into batches here.
    let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq");
    let mut rows = sqlx::query::<Any>(&sql).bind(after).fetch(&mut *tx);
    let mut batch = Vec::with_capacity(VERIFY_BATCH);
    use futures_util::TryStreamExt;
    while let Some(r) = rows.try_next().await? {
        let e = Stored::from_row(&r)?;
        batch.push(e);
        if batch.len() == VERIFY_BATCH
            && send
                .send(Read::Batch(Batch::Stored(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(VERIFY_BATCH),
                ))))
                .await
                .is_err()
        {
            return Ok(());
        }
    }
    if !batch.is_empty() {
        let _ = send.send(Read::Batch(Batch::Stored(batch))).await;
    }
    Ok(())
}
