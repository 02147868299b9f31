//! site-errors: the last [`CAPACITY`] ERROR events of the process — internal errors (which
//! `http/error.rs` logs before answering a bare 500), failed scheduler passes, and every 5xx
//! answer (tower-http's trace layer reports each as an ERROR `response failed`) — gathered by
//! [`ErrorRingLayer`], which `logs::init` adds under an ERROR-only filter. Process-wide, like the
//! subscriber; the reset is audited.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use serde::Serialize;
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::{Setting, target};
use crate::audit::Outcome;
use crate::context::Ctx;
use crate::db::{format_ms, now_ms};
use crate::error::StoreError;
use crate::logs::Service;
use crate::services::Services;

/// Errors kept; older ones fall off.
pub const CAPACITY: usize = 500;
/// A message (with its fields) is cut to this many bytes.
const MAX_MESSAGE: usize = 4096;

#[derive(Clone, Debug, Serialize)]
pub struct SiteError {
    pub at: String,
    pub at_ms: i64,
    pub service: &'static str,
    pub target: String,
    pub message: String,
}

static RING: LazyLock<Mutex<VecDeque<SiteError>>> =
    LazyLock::new(|| Mutex::new(VecDeque::with_capacity(CAPACITY)));
/// Errors seen since the last reset (including those that fell off the ring).
static SEEN: AtomicU64 = AtomicU64::new(0);
static SINCE_MS: AtomicI64 = AtomicI64::new(0);

fn ring() -> std::sync::MutexGuard<'static, VecDeque<SiteError>> {
    RING.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keeps an error.
pub fn push(target: &str, message: String) {
    let at_ms = now_ms();
    let e = SiteError {
        at: format_ms(at_ms),
        at_ms,
        service: Service::for_target(target).as_str(),
        target: target.to_owned(),
        message,
    };
    let mut r = ring();
    if r.len() >= CAPACITY {
        r.pop_front();
    }
    r.push_back(e);
    SEEN.fetch_add(1, Ordering::Relaxed);
}

/// The errors kept, newest first.
pub fn recent() -> Vec<SiteError> {
    ring().iter().rev().cloned().collect()
}

/// Records ERROR events into the ring; add it under an ERROR-level filter (see `logs::init`).
pub struct ErrorRingLayer(());

impl ErrorRingLayer {
    pub fn new() -> ErrorRingLayer {
        let _ = SINCE_MS.compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
        ErrorRingLayer(())
    }
}

impl Default for ErrorRingLayer {
    fn default() -> Self {
        Self::new()
    }
}

/// `message field=value ...`, like a line of the log files.
#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for ErrorRingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        // A password inside a URL (a connection error, say) is not shown.
        let mut text = super::env::redact_urls(&format!("{}{}", v.message, v.fields));
        if text.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        push(event.metadata().target(), text);
    }
}

/// The recent errors, newest first.
pub fn view() -> Value {
    let errors = recent();
    let since = SINCE_MS.load(Ordering::Relaxed);
    json!({
        "count": errors.len(),
        "seen_since_reset": SEEN.load(Ordering::Relaxed),
        "since": (since > 0).then(|| format_ms(since)),
        "capacity": CAPACITY,
        "errors": errors,
        "actions": super::actions_of(Setting::SiteErrors),
    })
}

/// Empties the list (audited).
pub async fn reset(state: &Services, ctx: &Ctx) -> Result<Value, StoreError> {
    let cleared = {
        let mut r = ring();
        let n = r.len();
        r.clear();
        SEEN.store(0, Ordering::Relaxed);
        SINCE_MS.store(now_ms(), Ordering::Relaxed);
        n
    };
    ctx.record(
        &state.db,
        (Setting::SiteErrors, cryowarden_core::SettingAction::Reset),
        &target(Setting::SiteErrors, Some("reset")),
        Outcome::Ok,
        None,
        Some(json!({ "errors": cleared })),
        Some(json!({ "errors": 0 })),
    )
    .await?;
    Ok(json!({ "reset": true, "cleared": cleared }))
}
