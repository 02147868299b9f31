//! The audit chain: every change, and every denied attempt at a guarded action, becomes one
//! event whose hash covers its content and the previous event's hash. Appends happen inside the
//! transaction of the change they record, so a change and its event commit or vanish together.

use futures_util::TryStreamExt;
use serde::Serialize;
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
    pub hash: String,
}

struct Stored {
    seq: i64,
    at: i64,
    actor_id: Option<i64>,
    actor: String,
    impersonator_id: Option<i64>,
    impersonator: Option<String>,
    action: String,
    target_kind: String,
    target_id: Option<String>,
    target: Option<String>,
    outcome: String,
    reason: Option<String>,
    before: Option<String>,
    after: Option<String>,
    source: String,
    prev_hash: String,
    hash: String,
}

impl Stored {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<Stored, sqlx::Error> {
        Ok(Stored {
            seq: r.try_get("seq")?,
            at: r.try_get("at")?,
            actor_id: r.try_get("actor_id")?,
            actor: r.try_get("actor")?,
            impersonator_id: r.try_get("impersonator_id")?,
            impersonator: r.try_get("impersonator")?,
            action: r.try_get("action")?,
            target_kind: r.try_get("target_kind")?,
            target_id: r.try_get("target_id")?,
            target: r.try_get("target")?,
            outcome: r.try_get("outcome")?,
            reason: r.try_get("reason")?,
            before: r.try_get("before_value")?,
            after: r.try_get("after_value")?,
            source: r.try_get("source")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        })
    }

    /// The hash of this event's content chained to `prev`. Every field is length-prefixed so
    /// that no two different events serialise alike.
    fn compute_hash(&self, prev: &str) -> String {
        let mut h = Sha256::new();
        let mut field = |s: Option<&str>| match s {
            None => h.update(b"-"),
            Some(s) => {
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
        };
        field(Some(prev));
        field(Some(&self.seq.to_string()));
        field(Some(&self.at.to_string()));
        field(self.actor_id.map(|v| v.to_string()).as_deref());
        field(Some(&self.actor));
        field(self.impersonator_id.map(|v| v.to_string()).as_deref());
        field(self.impersonator.as_deref());
        field(Some(&self.action));
        field(Some(&self.target_kind));
        field(self.target_id.as_deref());
        field(self.target.as_deref());
        field(Some(&self.outcome));
        field(self.reason.as_deref());
        field(self.before.as_deref());
        field(self.after.as_deref());
        field(Some(&self.source));
        hex::encode(h.finalize())
    }

    fn into_event(self) -> Event {
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
            hash: self.hash,
        }
    }
}

/// Appends `event` to the chain inside `tx`.
pub async fn append(tx: &mut WriteTx, event: NewEvent) -> Result<i64, StoreError> {
    let last =
        sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx.tx).await?;
    let (prev_seq, prev_hash) = match last {
        Some(r) => (r.try_get::<i64, _>("seq")?, r.try_get::<String, _>("hash")?),
        None => (0, GENESIS.to_owned()),
    };
    let mut stored = Stored {
        seq: prev_seq + 1,
        at: now_ms(),
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
    stored.hash = stored.compute_hash(&prev_hash);
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor_id, actor, impersonator_id, impersonator, action, \
         target_kind, target_id, target, outcome, reason, before_value, after_value, source, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
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
    pub events: i64,
    /// The first event that breaks the chain, and how.
    pub first_broken: Option<i64>,
    pub problem: Option<String>,
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.first_broken, &self.problem) {
            (Some(seq), Some(p)) => write!(f, "broken at event {seq}: {p}"),
            _ => write!(f, "ok, {} events", self.events),
        }
    }
}

/// Walks the whole chain in order and reports the first event whose content, order or
/// deletion breaks it.
pub async fn verify(db: &Db) -> Result<Verification, StoreError> {
    let mut rows = sqlx::query::<Any>("SELECT * FROM audit_events ORDER BY seq").fetch(&db.pool);
    let mut prev = GENESIS.to_owned();
    let mut expected_seq = 1;
    let mut n = 0;
    while let Some(row) = rows.try_next().await? {
        let e = Stored::from_row(&row)?;
        let broken =
            |problem: String| Verification { ok: false, events: n, first_broken: Some(e.seq), problem: Some(problem) };
        if e.seq != expected_seq {
            return Ok(broken(format!("expected event {expected_seq} next: events are missing or reordered")));
        }
        if e.prev_hash != prev {
            return Ok(broken(
                "its link to the previous event does not match: events were removed, inserted or reordered".into(),
            ));
        }
        if e.compute_hash(&prev) != e.hash {
            return Ok(broken("its content does not match its hash: the event was altered".into()));
        }
        prev = e.hash;
        expected_seq += 1;
        n += 1;
    }
    Ok(Verification { ok: true, events: n, first_broken: None, problem: None })
}

/// Filters for listing events; every field optional.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Actor username (exact).
    pub actor: Option<String>,
    /// Action name (exact, e.g. `create-user`) or prefix ending in `*`.
    pub action: Option<String>,
    /// Target id or name (exact).
    pub target: Option<String>,
    /// `ok` or `denied`.
    pub outcome: Option<String>,
    /// Events at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Events before this time (RFC 3339).
    pub to: Option<String>,
    /// Page: events with seq below this (the previous page's `next`).
    pub before: Option<i64>,
    /// Page size, 1..=500 (default 100).
    pub limit: Option<i64>,
}

fn parse_time(field: &'static str, s: &str) -> Result<i64, StoreError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| StoreError::invalid(field, "expected an RFC 3339 time such as 2026-01-31T12:00:00Z"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| StoreError::invalid(field, "out of range"))
}

/// One page of events, newest first, and the cursor of the next page.
pub async fn list(db: &Db, f: &Filter) -> Result<(Vec<Event>, Option<i64>), StoreError> {
    let limit = f.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(StoreError::invalid("limit", "must be between 1 and 500"));
    }
    if let Some(o) = &f.outcome
        && o != "ok"
        && o != "denied"
    {
        return Err(StoreError::invalid("outcome", "must be `ok` or `denied`"));
    }
    let from = f.from.as_deref().map(|s| parse_time("from", s)).transpose()?;
    let to = f.to.as_deref().map(|s| parse_time("to", s)).transpose()?;
    let mut sql = String::from("SELECT * FROM audit_events WHERE 1 = 1");
    let mut n = 0;
    let mut param = |sql: &mut String, clause: &str| {
        n += 1;
        sql.push_str(&clause.replace('?', &format!("${n}")));
    };
    let action_prefix =
        f.action.as_deref().and_then(|a| a.strip_suffix('*')).map(|p| format!("{}%", p.replace('%', "")));
    if f.actor.is_some() {
        param(&mut sql, " AND actor = ?");
    }
    if action_prefix.is_some() {
        param(&mut sql, " AND action LIKE ?");
    } else if f.action.is_some() {
        param(&mut sql, " AND action = ?");
    }
    if f.target.is_some() {
        sql.push_str(" AND (");
        param(&mut sql, "target_id = ?");
        param(&mut sql, " OR target = ?)");
    }
    if f.outcome.is_some() {
        param(&mut sql, " AND outcome = ?");
    }
    if from.is_some() {
        param(&mut sql, " AND at >= ?");
    }
    if to.is_some() {
        param(&mut sql, " AND at < ?");
    }
    if f.before.is_some() {
        param(&mut sql, " AND seq < ?");
    }
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", limit + 1));
    let mut q = sqlx::query::<Any>(&sql);
    if let Some(a) = &f.actor {
        q = q.bind(a.clone());
    }
    if let Some(p) = action_prefix {
        q = q.bind(p);
    } else if let Some(a) = &f.action {
        q = q.bind(a.clone());
    }
    if let Some(t) = &f.target {
        q = q.bind(t.clone()).bind(t.clone());
    }
    if let Some(o) = &f.outcome {
        q = q.bind(o.clone());
    }
    if let Some(t) = from {
        q = q.bind(t);
    }
    if let Some(t) = to {
        q = q.bind(t);
    }
    if let Some(b) = f.before {
        q = q.bind(b);
    }
    let rows = q.fetch_all(&db.pool).await?;
    let mut events = rows.iter().map(Stored::from_row).collect::<Result<Vec<_>, _>>()?;
    let next = if events.len() as i64 > limit {
        events.truncate(limit as usize);
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok((events.into_iter().map(Stored::into_event).collect(), next))
}
