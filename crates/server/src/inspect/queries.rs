//! queries: statistics of the database statements this process ran — count, total, mean and
//! longest time and rows per normalised statement — gathered by [`QueryStatsLayer`] from the
//! events sqlx emits for every statement at target `sqlx::query` (its `log_statements` default:
//! DEBUG, slow ones WARN; `logs::init` enables them for this layer only, so they reach the
//! database log only when its level asks). Process-wide, like the subscriber it lives in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::{Setting, target};
use crate::audit::Outcome;
use crate::context::Ctx;
use crate::db::{format_ms, now_ms};
use crate::error::StoreError;
use crate::services::Services;

/// The target of sqlx's statement events.
pub const SQLX_TARGET: &str = "sqlx::query";
/// Distinct statements kept; later new ones are counted together.
const MAX_STATEMENTS: usize = 2000;
/// A statement is cut to this many characters.
const MAX_STATEMENT_CHARS: usize = 1000;
/// Rows the view shows (the statements with the most total time).
pub const TOP: usize = 50;
const OTHER: &str = "(other statements: the table of distinct statements is full)";

#[derive(Clone, Copy, Default)]
struct Stat {
    count: u64,
    total: Duration,
    max: Duration,
    rows: u64,
    slow: u64,
}

#[derive(Default)]
struct Stats {
    by_statement: HashMap<String, Stat>,
}

static STATS: LazyLock<Mutex<Stats>> = LazyLock::new(Default::default);
static SINCE_MS: AtomicI64 = AtomicI64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn stats() -> std::sync::MutexGuard<'static, Stats> {
    STATS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Collapses whitespace and replaces literals (quoted strings, bare numbers) by `?`, so that
/// statements differing only in their values count together; `$1` placeholders stay.
pub fn normalise(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len().min(MAX_STATEMENT_CHARS));
    let mut chars = sql.trim().chars().peekable();
    let mut space = false;
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if out.len() + 2 > MAX_STATEMENT_CHARS {
            out.push('…');
            break;
        }
        if space && !out.is_empty() {
            out.push(' ');
            prev = Some(' ');
        }
        space = false;
        if c == '\'' {
            // A string literal ('' inside is a quote).
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                    }
                    Some('\'') | None => break,
                    Some(_) => {}
                }
            }
            out.push('?');
            prev = Some('?');
        } else if c.is_ascii_digit()
            && !prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '$')
        {
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_digit() || *d == '.')
            {
                chars.next();
            }
            out.push('?');
            prev = Some('?');
        } else {
            out.push(c);
            prev = Some(c);
        }
    }
    out
}

/// Counts one statement.
pub fn record(sql: &str, elapsed: Duration, rows: u64, slow: bool) {
    let key = normalise(sql);
    let mut s = stats();
    let full = s.by_statement.len() >= MAX_STATEMENTS && !s.by_statement.contains_key(&key);
    let entry = s
        .by_statement
        .entry(if full { OTHER.to_owned() } else { key })
        .or_default();
    entry.count += 1;
    entry.total += elapsed;
    entry.max = entry.max.max(elapsed);
    entry.rows += rows;
    entry.slow += u64::from(slow);
}

/// Feeds the statistics from sqlx's statement events; add it with a filter that lets
/// `sqlx::query` through at every level (see `logs::init`).
pub struct QueryStatsLayer(());

impl QueryStatsLayer {
    pub fn new() -> QueryStatsLayer {
        INSTALLED.store(true, Ordering::Relaxed);
        let _ = SINCE_MS.compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
        QueryStatsLayer(())
    }
}

impl Default for QueryStatsLayer {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Default)]
struct StatementVisitor {
    summary: String,
    statement: String,
    elapsed_secs: Option<f64>,
    rows: u64,
    slow: bool,
}

impl Visit for StatementVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if matches!(field.name(), "rows_returned" | "rows_affected") {
            self.rows += value;
        }
    }
    fn record_debug(&mut self, field: &Field, _value: &dyn std::fmt::Debug) {
        if field.name() == "slow_threshold" {
            self.slow = true;
        }
    }
}

impl<S: Subscriber> Layer<S> for QueryStatsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != SQLX_TARGET {
            return;
        }
        let mut v = StatementVisitor::default();
        event.record(&mut v);
        let Some(secs) = v.elapsed_secs else { return };
        // sqlx puts the whole statement in `db.statement` unless its first words are all of it.
        let sql = if v.statement.trim().is_empty() {
            v.summary.as_str()
        } else {
            v.statement.as_str()
        };
        record(sql, Duration::from_secs_f64(secs.max(0.0)), v.rows, v.slow);
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The statements with the most total time, and the totals.
pub fn view() -> Value {
    let s = stats();
    let mut rows: Vec<(&String, &Stat)> = s.by_statement.iter().collect();
    rows.sort_by(|a, b| b.1.total.cmp(&a.1.total).then_with(|| a.0.cmp(b.0)));
    let count: u64 = rows.iter().map(|r| r.1.count).sum();
    let total: Duration = rows.iter().map(|r| r.1.total).sum();
    let top: Vec<Value> = rows
        .iter()
        .take(TOP)
        .map(|(sql, st)| {
            json!({
                "statement": sql,
                "count": st.count,
                "total_ms": ms(st.total),
                "mean_ms": ms(st.total / u32::try_from(st.count.max(1)).unwrap_or(u32::MAX)),
                "max_ms": ms(st.max),
                "rows": st.rows,
                "slow": st.slow,
            })
        })
        .collect();
    let since = SINCE_MS.load(Ordering::Relaxed);
    json!({
        "collecting": INSTALLED.load(Ordering::Relaxed),
        "since": (since > 0).then(|| format_ms(since)),
        "statements": rows.len(),
        "executions": count,
        "total_ms": ms(total),
        "top": top,
        "top_n": TOP,
        "actions": super::actions_of(Setting::Queries),
    })
}

/// Empties the statistics (audited).
pub async fn reset(state: &Services, ctx: &Ctx) -> Result<Value, StoreError> {
    let (statements, executions) = {
        let mut s = stats();
        let before = (
            s.by_statement.len(),
            s.by_statement.values().map(|st| st.count).sum::<u64>(),
        );
        s.by_statement.clear();
        SINCE_MS.store(now_ms(), Ordering::Relaxed);
        before
    };
    let before = json!({ "statements": statements, "executions": executions });
    ctx.record(
        &state.db,
        (Setting::Queries, cryowarden_core::SettingAction::Reset),
        &target(Setting::Queries, Some("reset")),
        Outcome::Ok,
        None,
        Some(before.clone()),
        Some(json!({ "statements": 0 })),
    )
    .await?;
    Ok(json!({ "reset": true, "cleared": before }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_differing_in_values_count_together() {
        assert_eq!(
            normalise("SELECT id FROM users\n  WHERE name = 'o''brien' AND n > 42 AND x = $1"),
            "SELECT id FROM users WHERE name = ? AND n > ? AND x = $1"
        );
        assert_eq!(
            normalise("SELECT t2.c1 FROM t2 LIMIT 10"),
            "SELECT t2.c1 FROM t2 LIMIT ?"
        );
        assert_eq!(
            normalise("PRAGMA busy_timeout = 10000"),
            "PRAGMA busy_timeout = ?"
        );
        assert!(normalise(&"x ".repeat(2000)).chars().count() <= MAX_STATEMENT_CHARS + 1);
    }
}
