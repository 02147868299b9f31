//! Filtering the audit log: one page (newest first, keyset cursor) or the whole filtered set as
//! a stream (CSV or JSON) with bounded memory.
//!
//! How a page stays fast at a million events: every filter is an equality on a column indexed
//! together with `seq` (0001 and 0007), so one index range read backwards gives the page. A time
//! range becomes a range of `seq` (`at` never decreases along the chain: `append` clamps it),
//! found with the `(at, seq)` index. An action prefix is turned into the list of actions it
//! matches (a loose index scan over the distinct actions) and a target into its two columns;
//! each combination is one indexed query of at most one page, merged by `seq`.

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use serde::Deserialize;
use sqlx::{Any, Row};

use super::{COLUMNS, Event, Stored};
use crate::db::Db;
use crate::error::StoreError;

/// Filters for listing or exporting events; every field optional, empty means absent.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Actor username (exact).
    pub actor: Option<String>,
    /// Username of the impersonator behind the actor (exact): events recorded while
    /// impersonating.
    pub impersonator: Option<String>,
    /// Action name (exact, e.g. `create-user`) or prefix ending in `*` (`change-setting:*`).
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
    pub before: Option<String>,
    /// Page size, 1..=500 (default 100). Not used by the export.
    pub limit: Option<String>,
}

/// The export's formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    /// One JSON array of events (as the list API gives them).
    Json,
}

impl ExportFormat {
    pub fn parse(s: Option<&str>) -> Result<ExportFormat, StoreError> {
        match s.unwrap_or("csv") {
            "csv" => Ok(ExportFormat::Csv),
            "json" => Ok(ExportFormat::Json),
            _ => Err(StoreError::invalid("format", "must be `csv` or `json`")),
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
        }
    }
}

const MAX_TEXT: usize = 500;

fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn text(field: &'static str, s: &Option<String>) -> Result<Option<String>, StoreError> {
    match given(s) {
        Some(v) if v.chars().count() > MAX_TEXT => Err(StoreError::invalid(
            field,
            format!("must be at most {MAX_TEXT} characters"),
        )),
        v => Ok(v.map(str::to_owned)),
    }
}

fn parse_time(field: &'static str, s: &str) -> Result<i64, StoreError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            StoreError::invalid(
                field,
                "expected an RFC 3339 time such as 2026-01-31T12:00:00Z",
            )
        })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| StoreError::invalid(field, "out of range"))
}

/// The actions a filter asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Actions {
    Any,
    Exact(String),
    Prefix(String),
}

/// A filter checked (no database needed): every mistake is a 422 naming its field.
#[derive(Clone, Debug)]
struct Checked {
    actor: Option<String>,
    impersonator: Option<String>,
    actions: Actions,
    target: Option<String>,
    outcome: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    before: Option<i64>,
    limit: i64,
}

impl Filter {
    fn check(&self) -> Result<Checked, StoreError> {
        let limit = match given(&self.limit) {
            None => 100,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => n,
                _ => {
                    return Err(StoreError::invalid(
                        "limit",
                        "must be an integer between 1 and 500",
                    ));
                }
            },
        };
        let before = match given(&self.before) {
            None => None,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(StoreError::invalid(
                        "before",
                        "must be a positive event number (a page's `next`)",
                    ));
                }
            },
        };
        let outcome = text("outcome", &self.outcome)?;
        if let Some(o) = &outcome
            && o != "ok"
            && o != "denied"
        {
            return Err(StoreError::invalid("outcome", "must be `ok` or `denied`"));
        }
        let actions = match text("action", &self.action)? {
            None => Actions::Any,
            Some(a) => match a.strip_suffix('*') {
                Some(p) if p.contains('*') => {
                    return Err(StoreError::invalid(
                        "action",
                        "`*` may only end the action, as a prefix",
                    ));
                }
                Some("") => Actions::Any,
                Some(p) => Actions::Prefix(p.to_owned()),
                None if a.contains('*') => {
                    return Err(StoreError::invalid(
                        "action",
                        "`*` may only end the action, as a prefix",
                    ));
                }
                None => Actions::Exact(a),
            },
        };
        let from = given(&self.from)
            .map(|s| parse_time("from", s))
            .transpose()?;
        let to = given(&self.to).map(|s| parse_time("to", s)).transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            return Err(StoreError::invalid("to", "must be after `from`"));
        }
        Ok(Checked {
            actor: text("actor", &self.actor)?,
            impersonator: text("impersonator", &self.impersonator)?,
            actions,
            target: text("target", &self.target)?,
            outcome,
            from,
            to,
            before,
            limit,
        })
    }
}

#[derive(Clone, Debug)]
enum Arg {
    Text(String),
    Int(i64),
}

/// SQL text with its arguments, numbered as they are pushed.
#[derive(Clone, Debug, Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn new(text: &str) -> Sql {
        Sql {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }
    /// Appends `clause`, each `?` in it standing for the next argument.
    fn push(&mut self, clause: &str, args: impl IntoIterator<Item = Arg>) {
        let mut args = args.into_iter();
        for part in clause.split_inclusive('?') {
            match part.strip_suffix('?') {
                Some(head) => {
                    self.text.push_str(head);
                    self.args
                        .push(args.next().expect("an argument per placeholder"));
                    self.text.push_str(&format!("${}", self.args.len()));
                }
                None => self.text.push_str(part),
            }
        }
    }
    fn query(&self) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query::<Any>(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

/// The filter resolved against the database: actions of a prefix listed, times as seq bounds.
struct Plan {
    c: Checked,
    /// `None`: any action; else one of these (empty: nothing matches).
    actions: Option<Vec<String>>,
    /// Inclusive seq bounds.
    lo: Option<i64>,
    hi: Option<i64>,
    /// A bound that nothing satisfies.
    empty: bool,
}

/// Every distinct action, by a loose index scan in one recursive query (one index probe per
/// distinct action; the vocabulary is small). Filtered by prefix here, so the database's
/// collation does not matter.
async fn actions_with_prefix(db: &Db, prefix: &str) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query::<Any>(
        "WITH RECURSIVE a(x) AS (SELECT MIN(action) FROM audit_events \
         UNION ALL SELECT (SELECT MIN(action) FROM audit_events WHERE action > a.x) FROM a WHERE a.x IS NOT NULL) \
         SELECT x FROM a WHERE x IS NOT NULL",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let a: String = r.try_get(0)?;
        if a.starts_with(prefix) {
            out.push(a);
        }
    }
    Ok(out)
}

async fn plan(db: &Db, f: &Filter) -> Result<Plan, StoreError> {
    let c = f.check()?;
    let actions = match &c.actions {
        Actions::Any => None,
        Actions::Exact(a) => Some(vec![a.clone()]),
        Actions::Prefix(p) => Some(actions_with_prefix(db, p).await?),
    };
    let mut p = Plan {
        c,
        actions,
        lo: None,
        hi: None,
        empty: false,
    };
    if let Some(from) = p.c.from {
        let row = sqlx::query::<Any>(
            "SELECT seq FROM audit_events WHERE at >= $1 ORDER BY at, seq LIMIT 1",
        )
        .bind(from)
        .fetch_optional(&db.pool)
        .await?;
        match row {
            Some(r) => p.lo = Some(r.try_get(0)?),
            None => p.empty = true,
        }
    }
    if let Some(to) = p.c.to {
        let row = sqlx::query::<Any>(
            "SELECT seq FROM audit_events WHERE at < $1 ORDER BY at DESC, seq DESC LIMIT 1",
        )
        .bind(to)
        .fetch_optional(&db.pool)
        .await?;
        match row {
            Some(r) => p.hi = Some(r.try_get(0)?),
            None => p.empty = true,
        }
    }
    if let Some(b) = p.c.before {
        p.hi = Some(p.hi.map_or(b - 1, |h| h.min(b - 1)));
    }
    if p.actions.as_ref().is_some_and(Vec::is_empty)
        || matches!((p.lo, p.hi), (Some(l), Some(h)) if l > h)
    {
        p.empty = true;
    }
    Ok(p)
}

impl Plan {
    /// The conditions every query shares (all but action and target).
    fn common(&self, sql: &mut Sql) {
        if let Some(a) = &self.c.actor {
            sql.push(" AND actor = ?", [Arg::Text(a.clone())]);
        }
        if let Some(i) = &self.c.impersonator {
            sql.push(" AND impersonator = ?", [Arg::Text(i.clone())]);
        }
        if let Some(o) = &self.c.outcome {
            sql.push(" AND outcome = ?", [Arg::Text(o.clone())]);
        }
        if let Some(lo) = self.lo {
            sql.push(" AND seq >= ?", [Arg::Int(lo)]);
        }
        if let Some(hi) = self.hi {
            sql.push(" AND seq <= ?", [Arg::Int(hi)]);
        }
        // The times themselves too (exact even where an old clock stepped back), written `+at`
        // so that no planner reads them from the `at` index instead of the seq-ordered ones.
        if let Some(from) = self.c.from {
            sql.push(" AND +at >= ?", [Arg::Int(from)]);
        }
        if let Some(to) = self.c.to {
            sql.push(" AND +at < ?", [Arg::Int(to)]);
        }
    }
}

/// One page of events, newest first, and the cursor of the next page.
pub async fn list(db: &Db, f: &Filter) -> Result<(Vec<Event>, Option<i64>), StoreError> {
    let p = plan(db, f).await?;
    if p.empty {
        return Ok((Vec::new(), None));
    }
    let limit = p.c.limit;
    // One indexed query per (action, target column) combination, each at most a page.
    let targets: &[Option<&str>] = if p.c.target.is_some() {
        &[Some("target_id"), Some("target")]
    } else {
        &[None]
    };
    // Past 100 actions (a compound SELECT has limits) the prefix's actions are one IN list.
    let in_list = p.actions.as_ref().filter(|l| l.len() > 100);
    let actions: Vec<Option<&String>> = match &p.actions {
        Some(list) if in_list.is_none() => list.iter().map(Some).collect(),
        _ => vec![None],
    };
    // One statement: each combination is an indexed range of at most a page, merged by seq
    // (UNION also drops an event whose target id and name are both the one asked for).
    let mut sql = Sql::default();
    let mut k = 0;
    for action in &actions {
        for column in targets {
            if k > 0 {
                sql.text.push_str(if p.c.target.is_some() {
                    " UNION "
                } else {
                    " UNION ALL "
                });
            }
            k += 1;
            sql.text.push_str(&format!(
                "SELECT * FROM (SELECT {COLUMNS} FROM audit_events WHERE 1 = 1"
            ));
            if let Some(a) = action {
                sql.push(" AND action = ?", [Arg::Text((*a).clone())]);
            }
            if let Some(list) = in_list {
                let marks = vec!["?"; list.len()].join(", ");
                sql.push(
                    &format!(" AND action IN ({marks})"),
                    list.iter().cloned().map(Arg::Text),
                );
            }
            if let (Some(col), Some(t)) = (column, &p.c.target) {
                sql.push(&format!(" AND {col} = ?"), [Arg::Text(t.clone())]);
            }
            p.common(&mut sql);
            sql.text
                .push_str(&format!(" ORDER BY seq DESC LIMIT {}) AS b{k}", limit + 1));
        }
    }
    sql.text
        .push_str(&format!(" ORDER BY seq DESC LIMIT {}", limit + 1));
    let rows = sql.query().fetch_all(&db.pool).await?;
    let mut events = rows
        .iter()
        .map(Stored::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if events.len() as i64 > limit {
        events.truncate(limit as usize);
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok((events.into_iter().map(Stored::into_event).collect(), next))
}

/// Bytes per chunk of an export stream.
const CHUNK: usize = 64 * 1024;

/// The whole filtered set, oldest first (chain order), as CSV or a JSON array, in chunks of
/// about 64 KiB: a task reads rows as a stream and writes into a bounded channel, so memory
/// stays flat however many events match; a client that goes away stops it.
pub async fn export_stream(
    db: &Db,
    f: &Filter,
    format: ExportFormat,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static + use<>, StoreError>
{
    let p = plan(db, f).await?;
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM audit_events WHERE 1 = 1"));
    if p.empty {
        sql.push(" AND 1 = 0", []);
    }
    if let Some(list) = p.actions.as_ref().filter(|l| !l.is_empty()) {
        let marks = vec!["?"; list.len()].join(", ");
        sql.push(
            &format!(" AND action IN ({marks})"),
            list.iter().cloned().map(Arg::Text),
        );
    }
    if let Some(t) = &p.c.target {
        sql.push(
            " AND (target_id = ? OR target = ?)",
            [Arg::Text(t.clone()), Arg::Text(t.clone())],
        );
    }
    p.common(&mut sql);
    sql.text.push_str(" ORDER BY seq");
    let (send, recv) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let pool = db.pool.clone();
    tokio::spawn(async move {
        let fail = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "audit export failed");
            std::io::Error::other("the export failed; it has been logged")
        };
        let mut rows = sql.query().fetch(&pool);
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 4096);
        let mut csv = match format {
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(Vec::with_capacity(CHUNK + 4096));
                let _ = w.write_record(CSV_HEADER);
                Some(w)
            }
            ExportFormat::Json => {
                buf.extend_from_slice(b"[");
                None
            }
        };
        let mut first = true;
        loop {
            let row = match rows.try_next().await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    let _ = send.send(Err(fail(&e))).await;
                    return;
                }
            };
            let e = match Stored::from_row(&row) {
                Ok(e) => e,
                Err(e) => {
                    let _ = send.send(Err(fail(&e))).await;
                    return;
                }
            };
            let written = match &mut csv {
                Some(w) => {
                    let r = w.write_record(csv_record(&e));
                    if w.get_ref().len() >= CHUNK {
                        take_csv(w, &mut buf);
                    }
                    r.map_err(|e| fail(&e))
                }
                None => {
                    if !first {
                        buf.extend_from_slice(b",");
                    }
                    buf.extend_from_slice(b"\n");
                    serde_json::to_writer(&mut buf, &e.into_event()).map_err(|e| fail(&e))
                }
            };
            first = false;
            if let Err(e) = written {
                let _ = send.send(Err(e)).await;
                return;
            }
            if buf.len() >= CHUNK
                && send
                    .send(Ok(Bytes::from(std::mem::take(&mut buf))))
                    .await
                    .is_err()
            {
                return;
            }
        }
        match &mut csv {
            Some(w) => take_csv(w, &mut buf),
            None => buf.extend_from_slice(b"\n]\n"),
        }
        let _ = send.send(Ok(Bytes::from(buf))).await;
    });
    Ok(futures_util::stream::unfold(recv, |mut r| async move {
        r.recv().await.map(|item| (item, r))
    }))
}

/// Moves what `w` has written into `buf` (a new writer takes over; csv's writer gives its
/// output only by value).
fn take_csv(w: &mut csv::Writer<Vec<u8>>, buf: &mut Vec<u8>) {
    let old = std::mem::replace(
        w,
        csv::Writer::from_writer(Vec::with_capacity(CHUNK + 4096)),
    );
    if let Ok(mut bytes) = old.into_inner() {
        buf.append(&mut bytes);
    }
}

const CSV_HEADER: [&str; 17] = [
    "seq",
    "time",
    "actor_id",
    "actor",
    "impersonator_id",
    "impersonator",
    "action",
    "target_kind",
    "target_id",
    "target",
    "outcome",
    "reason",
    "before",
    "after",
    "source",
    "prev_hash",
    "hash",
];

/// One CSV row. Text a user or the outside world chose (names, targets, reasons, values,
/// the source address) is defused like the members export's: a cell a spreadsheet would read as
/// a formula gets a leading `'` (the JSON export stays verbatim, for verifying hashes).
fn csv_record(e: &Stored) -> [String; 17] {
    use crate::csv::defuse_formula as text;
    let opt = |s: &Option<String>| text(s.as_deref().unwrap_or_default());
    let int = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    [
        e.seq.to_string(),
        crate::db::format_ms(e.at),
        int(e.actor_id),
        text(&e.actor),
        int(e.impersonator_id),
        opt(&e.impersonator),
        text(&e.action),
        text(&e.target_kind),
        opt(&e.target_id),
        opt(&e.target),
        e.outcome.clone(),
        opt(&e.reason),
        opt(&e.before),
        opt(&e.after),
        text(&e.source),
        e.prev_hash.clone(),
        e.hash.clone(),
    ]
}
