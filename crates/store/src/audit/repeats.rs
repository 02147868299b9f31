//! Refusals without the flood. Every refusal is evidence, but a signed-in user who requests
//! hidden ids in a loop (each a concealed 404, each a denied event) could otherwise grow the
//! chain by thousands of events a second and hold the write lock that real changes need.
//!
//! - **Repeats are counted.** A refusal (same actor, impersonator, action, target, reason,
//!   details and source) is written at once the first [`WRITTEN_REPEATS`] times within
//!   [`WINDOW`] — a person retrying is recorded attempt by attempt — and beyond that only
//!   counted in memory: one `denied` event "repeated N more times" (with `after` =
//!   `{repeated, first_at, last_at}`) is written when the window ends, or at shutdown.
//! - **Each actor has a budget.** At most [`ACTOR_BUDGET`] refusals of one actor are written
//!   per window; past it they are counted per action, and one `refusals-throttled` event says
//!   how many, of which actions and which targets first, when the window ends.
//!
//! Changes (`ok` events) never come here, and neither do other actors' refusals, so a flood
//! never delays or drops them. Summaries are ordinary chain events (the chain verifies).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{NewEvent, Outcome};
use crate::db::{Db, format_ms, now_ms};
use crate::error::StoreError;

/// How long the same refusal is counted before its count is written.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The same refusal is written one by one this many times per window before it is counted.
pub const WRITTEN_REPEATS: u32 = 10;
/// Refusals of one actor written one by one per window (10 a second on average).
pub const ACTOR_BUDGET: u32 = 600;
/// Targets named in a `refusals-throttled` event.
const SAMPLE: usize = 20;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    actor_id: Option<i64>,
    actor: String,
    impersonator: Option<String>,
    action: String,
    target_kind: &'static str,
    target_id: Option<String>,
    target: Option<String>,
    reason: Option<String>,
    before: Option<String>,
    after: Option<String>,
    source: String,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct ActorKey {
    id: Option<i64>,
    name: String,
    impersonator: Option<String>,
    /// System actors (`system:login`) act for anyone: their budget is per address.
    source: Option<String>,
}

struct Repeat {
    opened: Instant,
    event: NewEvent,
    /// Written one by one in this window.
    written: u32,
    /// Counted, not yet written.
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

struct Budget {
    opened: Instant,
    written: u32,
    suppressed: u64,
    actions: BTreeMap<String, u64>,
    sample: Vec<String>,
    template: Option<NewEvent>,
    first_ms: i64,
    last_ms: i64,
}

#[derive(Default)]
struct State {
    repeats: HashMap<Key, Repeat>,
    budgets: HashMap<ActorKey, Budget>,
    /// Summaries of windows that ended and were replaced, waiting for the next flush.
    ready: Vec<NewEvent>,
}

/// The in-memory side of the audit chain's refusals (one per database handle).
#[derive(Default)]
pub struct Repeats {
    state: Mutex<State>,
}

fn key(e: &NewEvent) -> Key {
    Key {
        actor_id: e.actor.id,
        actor: e.actor.name.clone(),
        impersonator: e.impersonator.as_ref().map(|w| w.name.clone()),
        action: e.action.clone(),
        target_kind: e.target_kind,
        target_id: e.target_id.clone(),
        target: e.target.clone(),
        reason: e.reason.clone(),
        before: e.before.as_ref().map(std::string::ToString::to_string),
        after: e.after.as_ref().map(std::string::ToString::to_string),
        source: e.source.clone(),
    }
}

fn actor_key(e: &NewEvent) -> ActorKey {
    ActorKey {
        id: e.actor.id,
        name: e.actor.name.clone(),
        impersonator: e.impersonator.as_ref().map(|w| w.name.clone()),
        source: e.actor.id.is_none().then(|| e.source.clone()),
    }
}

/// The event that stands for a window's repeats; `None` when there were none.
fn repeat_summary(r: Repeat) -> Option<NewEvent> {
    if r.count == 0 {
        return None;
    }
    let mut e = r.event;
    let (first, last) = (format_ms(r.first_ms), format_ms(r.last_ms));
    e.reason = Some(format!(
        "{} — repeated {} more time{} between {first} and {last}",
        e.reason.as_deref().unwrap_or("refused"),
        r.count,
        if r.count == 1 { "" } else { "s" }
    ));
    e.before = None;
    e.after = Some(json!({ "repeated": r.count, "first_at": first, "last_at": last }));
    Some(e)
}

/// The event that stands for an actor's refusals past the budget; `None` when there were none.
fn budget_summary(b: Budget) -> Option<NewEvent> {
    let t = b.template?;
    let (first, last) = (format_ms(b.first_ms), format_ms(b.last_ms));
    Some(NewEvent {
        actor: t.actor.clone(),
        impersonator: t.impersonator.clone(),
        action: cryowarden_core::Event::RefusalsThrottled.as_str().into(),
        target_kind: if t.actor.id.is_some() {
            "user"
        } else {
            "source"
        },
        target_id: t.actor.id.map(|id| id.to_string()),
        target: Some(if t.actor.id.is_some() {
            t.actor.name.clone()
        } else {
            t.source.clone()
        }),
        outcome: Outcome::Denied,
        reason: Some(format!(
            "{} more refusals between {first} and {last}, past {ACTOR_BUDGET} in {} s: counted, not written one by one",
            b.suppressed,
            WINDOW.as_secs()
        )),
        before: None,
        after: Some(json!({
            "suppressed": b.suppressed,
            "actions": b.actions,
            "targets": b.sample,
            "first_at": first,
            "last_at": last,
        })),
        source: t.source,
    })
}

fn new_budget(now: Instant) -> Budget {
    Budget {
        opened: now,
        written: 0,
        suppressed: 0,
        actions: BTreeMap::new(),
        sample: Vec::new(),
        template: None,
        first_ms: 0,
        last_ms: 0,
    }
}

impl Repeats {
    /// Whether the refusal `e` is to be written now (`true`), or was counted.
    fn admit(&self, e: &NewEvent, now: Instant) -> bool {
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = &mut *guard;
        let ms = now_ms();
        let k = key(e);
        let mut again = false;
        if let Some(r) = s.repeats.get_mut(&k) {
            if now.duration_since(r.opened) < WINDOW {
                if r.written >= WRITTEN_REPEATS {
                    r.count += 1;
                    r.last_ms = ms;
                    return false;
                }
                again = true;
            } else if let Some(summary) = s.repeats.remove(&k).and_then(repeat_summary) {
                s.ready.push(summary);
            }
        }
        let b = s
            .budgets
            .entry(actor_key(e))
            .or_insert_with(|| new_budget(now));
        if now.duration_since(b.opened) >= WINDOW
            && let Some(summary) = budget_summary(std::mem::replace(b, new_budget(now)))
        {
            s.ready.push(summary);
        }
        if b.written >= ACTOR_BUDGET {
            b.suppressed += 1;
            *b.actions.entry(e.action.clone()).or_default() += 1;
            if b.sample.len() < SAMPLE {
                let t = format!(
                    "{} {}",
                    e.target_kind,
                    e.target
                        .as_deref()
                        .or(e.target_id.as_deref())
                        .unwrap_or("-")
                );
                if !b.sample.contains(&t) {
                    b.sample.push(t);
                }
            }
            if b.template.is_none() {
                b.template = Some(e.clone());
                b.first_ms = ms;
            }
            b.last_ms = ms;
            return false;
        }
        b.written += 1;
        match s.repeats.get_mut(&k) {
            Some(r) if again => r.written += 1,
            _ => {
                let r = Repeat {
                    opened: now,
                    event: e.clone(),
                    written: 1,
                    count: 0,
                    first_ms: ms,
                    last_ms: ms,
                };
                s.repeats.insert(k, r);
            }
        }
        true
    }

    /// The summary events due: of windows that ended before `now` (all of them when `all`).
    fn due(&self, now: Instant, all: bool) -> Vec<NewEvent> {
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = &mut *guard;
        let ended = |opened: Instant| all || now.duration_since(opened) >= WINDOW;
        let mut out = std::mem::take(&mut s.ready);
        let done: Vec<Key> = s
            .repeats
            .iter()
            .filter(|(_, r)| ended(r.opened))
            .map(|(k, _)| k.clone())
            .collect();
        out.extend(
            done.into_iter()
                .filter_map(|k| s.repeats.remove(&k))
                .filter_map(repeat_summary),
        );
        let done: Vec<ActorKey> = s
            .budgets
            .iter()
            .filter(|(_, b)| ended(b.opened))
            .map(|(k, _)| k.clone())
            .collect();
        out.extend(
            done.into_iter()
                .filter_map(|k| s.budgets.remove(&k))
                .filter_map(budget_summary),
        );
        out
    }

    /// Refusals counted and not yet written (repeats and throttled), for tests and diagnostics.
    pub fn pending(&self) -> u64 {
        let s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.repeats.values().map(|r| r.count).sum::<u64>()
            + s.budgets.values().map(|b| b.suppressed).sum::<u64>()
    }
}

/// Records the refusal `event` (outcome `denied`) in a transaction of its own, unless it repeats
/// one written within the window or its actor is past their budget: then it is counted, and
/// written with its count when the window ends. Returns whether it was written now.
pub async fn record_refusal(db: &Db, event: NewEvent) -> Result<bool, StoreError> {
    debug_assert_eq!(event.outcome, Outcome::Denied);
    if !db.repeats.admit(&event, Instant::now()) {
        return Ok(false);
    }
    super::record(db, event).await?;
    Ok(true)
}

/// Writes the counts of windows that have ended; `all`: of every window (at shutdown).
pub async fn flush(db: &Db, all: bool) -> Result<usize, StoreError> {
    let due = db.repeats.due(Instant::now(), all);
    let n = due.len();
    if n == 0 {
        return Ok(0);
    }
    let mut tx = db.begin_write().await?;
    for e in due {
        super::append(&mut tx, e).await?;
    }
    tx.commit().await?;
    Ok(n)
}

/// Flushes ended windows every second until `stop` resolves, then flushes all of them.
pub async fn run_flusher(db: Db, stop: impl std::future::Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = flush(&db, false).await {
                    tracing::error!(error = %e, "cannot write the counted refusals");
                }
            }
            _ = &mut stop => break,
        }
    }
    if let Err(e) = flush(&db, true).await {
        tracing::error!(error = %e, "cannot write the counted refusals at shutdown");
    }
}

/// Refusals counted in memory and not yet written (see [`Repeats::pending`]).
pub fn pending(db: &Db) -> u64 {
    db.repeats.pending()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Who;

    fn refusal(actor: i64, target: &str) -> NewEvent {
        NewEvent {
            actor: Who {
                id: Some(actor),
                name: format!("u{actor}"),
            },
            impersonator: None,
            action: "view-user".into(),
            target_kind: "user",
            target_id: Some(target.into()),
            target: Some(target.into()),
            outcome: Outcome::Denied,
            reason: Some("not allowed".into()),
            before: None,
            after: None,
            source: "192.0.2.1".into(),
        }
    }

    #[test]
    fn repeats_are_counted_until_the_window_ends_and_each_actor_has_a_budget() {
        let r = Repeats::default();
        let t0 = Instant::now();
        for _ in 0..WRITTEN_REPEATS {
            assert!(r.admit(&refusal(1, "a"), t0), "the first ones are written");
        }
        for _ in 0..99 {
            assert!(
                !r.admit(&refusal(1, "a"), t0),
                "further repeats are counted"
            );
        }
        let mut other_reason = refusal(1, "a");
        other_reason.reason = Some("another reason".into());
        assert!(
            r.admit(&other_reason, t0),
            "another reason is another refusal"
        );
        assert!(
            r.admit(&refusal(1, "b"), t0),
            "another target is another refusal"
        );
        assert!(
            r.admit(&refusal(2, "a"), t0),
            "another actor's refusal is written"
        );
        assert_eq!(r.pending(), 99);
        assert!(
            r.due(t0 + Duration::from_secs(1), false).is_empty(),
            "nothing due within the window"
        );
        let due = r.due(t0 + WINDOW, false);
        assert_eq!(due.len(), 1, "one event for the 99 repeats");
        assert_eq!(due[0].after.as_ref().unwrap()["repeated"], 99);
        assert_eq!(r.pending(), 0);
        // A new window: written at once again.
        assert!(r.admit(&refusal(1, "a"), t0 + WINDOW));
        // The budget: past it, distinct refusals are counted per action.
        let r = Repeats::default();
        for i in 0..ACTOR_BUDGET {
            assert!(r.admit(&refusal(7, &format!("t{i}")), t0));
        }
        for i in 0..50 {
            assert!(
                !r.admit(&refusal(7, &format!("x{i}")), t0),
                "past the budget"
            );
        }
        assert!(
            r.admit(&refusal(8, "x0"), t0),
            "another actor is not held by it"
        );
        let due = r.due(t0, true);
        let throttled: Vec<_> = due
            .iter()
            .filter(|e| e.action == "refusals-throttled")
            .collect();
        assert_eq!(throttled.len(), 1);
        assert_eq!(throttled[0].after.as_ref().unwrap()["suppressed"], 50);
        assert_eq!(
            throttled[0].after.as_ref().unwrap()["actions"]["view-user"],
            50
        );
        // A window that ended is summarised even if the same refusal comes before the flush.
        let r = Repeats::default();
        for _ in 0..WRITTEN_REPEATS {
            assert!(r.admit(&refusal(1, "a"), t0));
        }
        assert!(!r.admit(&refusal(1, "a"), t0));
        assert!(
            r.admit(&refusal(1, "a"), t0 + WINDOW),
            "the next window's first"
        );
        let due = r.due(t0 + WINDOW, false);
        assert_eq!(due.len(), 1, "the earlier window's one repeat is not lost");
    }
}
