//! The Audit Log page's cheap check: a process-wide, in-memory checkpoint per database (keyed
//! by its URL) — the anchor a successful verification started from and the last event it
//! verified (seq and hash). The page then verifies only the events appended since; the
//! checkpoint counts only while the chain still starts from the same anchor (an archive moves
//! it: the next check starts again from the anchor). Tampering with an event already verified
//! is found only by a full verification (`?full=1` on the page, and the API's verify).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use super::{ChainEnd, Verification, verify_from};
use crate::db::{Db, format_ms, now_ms};
use crate::error::StoreError;

#[derive(Clone, Debug)]
struct Checkpoint {
    end: ChainEnd,
    /// When the chain was last verified from its anchor, and up to which event (ms, seq).
    full_at: Option<i64>,
    full_seq: i64,
}

fn checkpoints() -> &'static Mutex<HashMap<String, Checkpoint>> {
    static CHECKPOINTS: OnceLock<Mutex<HashMap<String, Checkpoint>>> = OnceLock::new();
    CHECKPOINTS.get_or_init(Default::default)
}

fn key(db: &Db) -> String {
    db.pool.connect_options().database_url.to_string()
}

/// Moves the checkpoint after a verification that succeeded (`end` is set); `full`: it
/// started from the anchor.
/// A full verification that failed drops the checkpoint: the page checks the whole chain
/// again (and shows the break) until one succeeds.
pub(crate) fn record(db: &Db, v: &Verification, end: Option<ChainEnd>, full: bool) {
    let mut map = checkpoints()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(end) = end.filter(|_| v.ok) else {
        if full {
            map.remove(&key(db));
        }
        return;
    };
    let now = now_ms();
    let entry = map.entry(key(db));
    let previous = match &entry {
        std::collections::hash_map::Entry::Occupied(o) if o.get().end.anchor == end.anchor => {
            Some(o.get().clone())
        }
        _ => None,
    };
    let (full_at, full_seq) = if full {
        (Some(now), end.last.0)
    } else {
        previous
            .as_ref()
            .map_or((None, 0), |p| (p.full_at, p.full_seq))
    };
    let cp = Checkpoint {
        end,
        full_at,
        full_seq,
    };
    entry.and_modify(|c| *c = cp.clone()).or_insert(cp);
}

/// What the page shows about the chain.
#[derive(Clone, Debug, Serialize)]
pub struct PageVerification {
    /// The check of this load: `events` counts the events it checked.
    pub verification: Verification,
    /// Whether this load checked the whole chain from its anchor.
    pub full: bool,
    /// When a full verification last succeeded (RFC 3339), and the last event it covered.
    pub last_full: Option<String>,
    pub last_full_seq: Option<i64>,
    /// Events verified so far: from the anchor up to this event.
    pub verified_through: Option<i64>,
}

/// The page's check: only the events after the checkpoint, or the whole chain when `full`, no
/// checkpoint exists yet, or the chain's anchor moved.
pub async fn verify_for_page(db: &Db, full: bool) -> Result<PageVerification, StoreError> {
    let resume = if full {
        None
    } else {
        checkpoints()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key(db))
            .map(|c| c.end.clone())
    };
    let (v, end) = verify_from(db, resume.clone()).await?;
    // From the anchor when there was no checkpoint, or when it was taken from another anchor.
    let full = match (&resume, &end) {
        (None, _) => true,
        (Some(r), Some(e)) => r.anchor != e.anchor,
        (Some(_), None) => false,
    };
    record(db, &v, end, full);
    let cp = checkpoints()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key(db))
        .cloned();
    Ok(PageVerification {
        full,
        last_full: cp.as_ref().and_then(|c| c.full_at).map(format_ms),
        last_full_seq: cp
            .as_ref()
            .filter(|c| c.full_at.is_some())
            .map(|c| c.full_seq),
        verified_through: cp.as_ref().map(|c| c.end.last.0),
        verification: v,
    })
}
