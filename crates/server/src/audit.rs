//! The audit chain: every change, and every denied attempt at a guarded action, becomes one
//! event whose hash covers its content and the previous event's hash. Appends happen inside the
//! transaction of the change they record, so a change and its event commit or vanish together.
//!
//! Submodules: `filter.rs` (the Audit Log page's filters, paged and as an export stream),
//! `archive.rs` (retention policy, archives to files under `<data_dir>/audit-archive/` and the
//! anchors that let the live chain verify after its start was archived).

mod archive;
mod filter;

pub use archive::{
    Anchor, ArchiveOutcome, ArchiveRequest, ArchiveVerification, Maintenance, Policy, archive, archive_dir,
    maintenance, set_policy, spawn_retention, verify_archive,
};
pub use filter::{ExportFormat, Filter, export_stream, list};

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
        Who { id: None, name: format!("system:{purpose}") }
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
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    pub source: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The stored columns, in the order every query selects them (decoded by position).
pub(crate) const COLUMNS: &str = "seq, at, actor_id, actor, impersonator_id, impersonator, action, target_kind, \
     target_id, target, outcome, reason, before_value, after_value, source, prev_hash, hash";

/// An event as stored: the exact text the hash covers. Archive files hold one per line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stored {
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

    /// The hash of this event's content chained to `prev`. Every field is length-prefixed so
    /// that no two different events serialise alike. (The format of every stored event: integers
    /// in decimal, absent values as `-`.)
    pub(crate) fn compute_hash(&self, prev: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        fn text(h: &mut Sha256, s: &str) {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
        fn opt(h: &mut Sha256, s: Option<&str>) {
            match s {
                None => h.update(b"-"),
                Some(s) => text(h, s),
            }
        }
        fn int(h: &mut Sha256, v: Option<i64>) {
            let mut buf = itoa::Buffer::new();
            opt(h, v.map(|v| buf.format(v)));
        }
        text(&mut h, prev);
        int(&mut h, Some(self.seq));
        int(&mut h, Some(self.at));
        int(&mut h, self.actor_id);
        text(&mut h, &self.actor);
        int(&mut h, self.impersonator_id);
        opt(&mut h, self.impersonator.as_deref());
        text(&mut h, &self.action);
        text(&mut h, &self.target_kind);
        opt(&mut h, self.target_id.as_deref());
        opt(&mut h, self.target.as_deref());
        text(&mut h, &self.outcome);
        opt(&mut h, self.reason.as_deref());
        opt(&mut h, self.before.as_deref());
        opt(&mut h, self.after.as_deref());
        text(&mut h, &self.source);
        h.finalize().into()
    }

    /// Whether `hash` (hex) is this event's hash chained to `prev`, without allocating.
    pub(crate) fn hash_matches(&self, prev: &str) -> bool {
        let mut hex_buf = [0u8; 64];
        hex::encode_to_slice(self.compute_hash(prev), &mut hex_buf).is_ok() && hex_buf == self.hash.as_bytes()
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
        Some(r) => (r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?, r.try_get::<i64, _>(2)?),
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
                Some(a) => write!(f, "ok, {} events (after the archive anchor at event #{a})", self.events),
                None => write!(f, "ok, {} events", self.events),
            },
        }
    }
}

/// Rows per read while verifying: large keyset batches, each hashed on a blocking thread while
/// the next one is read.
const VERIFY_BATCH: i64 = 20_000;

/// Where a chain check stands between batches.
#[derive(Clone, Debug)]
pub(crate) struct ChainCheck {
    pub prev: String,
    pub expected_seq: i64,
    pub events: i64,
}

impl ChainCheck {
    pub(crate) fn new(after_seq: i64, prev: String) -> ChainCheck {
        ChainCheck { prev, expected_seq: after_seq + 1, events: 0 }
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
        if e.seq != self.expected_seq {
            return Err((e.seq, format!("expected event {} next: events are missing or reordered", self.expected_seq)));
        }
        if e.prev_hash != self.prev {
            return Err((
                e.seq,
                "its link to the previous event does not match: events were removed, inserted or reordered".into(),
            ));
        }
        if !e.hash_matches(&self.prev) {
            return Err((e.seq, "its content does not match its hash: the event was altered".into()));
        }
        self.prev.clone_from(&e.hash);
        self.expected_seq += 1;
        self.events += 1;
        Ok(())
    }
}

/// Walks the live chain in order, from the latest archive anchor (or GENESIS), and reports the
/// first event whose content, order or deletion breaks it. The anchors themselves must chain.
pub async fn verify(db: &Db) -> Result<Verification, StoreError> {
    let (after_seq, prev) = match archive::anchors_head(db).await? {
        Ok(head) => head,
        Err((seq, problem)) => {
            return Ok(Verification {
                ok: false,
                events: 0,
                first_broken: Some(seq),
                problem: Some(problem),
                anchored_after: None,
            });
        }
    };
    let anchored_after = (after_seq > 0).then_some(after_seq);
    let mut state = ChainCheck::new(after_seq, prev);
    // The reader fetches batch k+1 while batch k is hashed.
    let (send, mut recv) = tokio::sync::mpsc::channel::<Result<Vec<Stored>, StoreError>>(2);
    let pool = db.pool.clone();
    let reader = tokio::spawn(async move {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let mut cursor = after_seq;
        loop {
            let batch = match sqlx::query::<Any>(&sql).bind(cursor).bind(VERIFY_BATCH).fetch_all(&pool).await {
                Ok(rows) => rows.iter().map(Stored::from_row).collect::<Result<Vec<_>, _>>().map_err(StoreError::from),
                Err(e) => Err(e.into()),
            };
            let done = match &batch {
                Ok(b) => {
                    if let Some(last) = b.last() {
                        cursor = last.seq;
                    }
                    (b.len() as i64) < VERIFY_BATCH
                }
                Err(_) => true,
            };
            if send.send(batch).await.is_err() || done {
                break;
            }
        }
    });
    let mut broken = None;
    while let Some(batch) = recv.recv().await {
        let batch = batch?;
        if batch.is_empty() {
            break;
        }
        let (s, result) = tokio::task::spawn_blocking(move || {
            let mut s = state;
            let r = s.check(&batch);
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
    drop(recv);
    let _ = reader.await;
    Ok(match broken {
        Some((seq, problem)) => Verification {
            ok: false,
            events: state.events,
            first_broken: Some(seq),
            problem: Some(problem),
            anchored_after,
        },
        None => Verification { ok: true, events: state.events, first_broken: None, problem: None, anchored_after },
    })
}
