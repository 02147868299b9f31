//! The Instance Logs view and the diagnostic report as use cases of the domain: each asks
//! `authorize()` first (a refusal is audited), then reads the log files off the async threads.
//! The API and the admin panel's pages call these same functions.

use bytes::Bytes;
use cryowarden_core::{Action, Resource, Setting};
use futures_util::Stream;
use serde_json::{Value, json};

use super::{LINE_COUNTS, Service};
use crate::audit::Outcome;
use crate::context::{Ctx, Target};
use crate::error::StoreError;
use crate::services::Services;

/// The lines shown when the viewer asks for no count.
pub const DEFAULT_LINES: usize = 100;

/// Validates a service name and line count as the Instance Logs view offers them.
pub fn parse_tail(service: &str, lines: Option<&str>) -> Result<(Service, usize), StoreError> {
    let svc = Service::parse(service).ok_or_else(|| {
        let names: Vec<&str> = Service::ALL.iter().map(|s| s.as_str()).collect();
        StoreError::invalid(
            "service",
            format!(
                "`{}` does not exist: choose one of {}",
                service.chars().take(40).collect::<String>(),
                names.join(", ")
            ),
        )
    })?;
    let n = match lines {
        None => DEFAULT_LINES,
        Some(n) => super::parse_line_count(n).ok_or_else(|| {
            StoreError::invalid("lines", format!("must be one of {LINE_COUNTS:?}"))
        })?,
    };
    Ok((svc, n))
}

/// What the Instance Logs view shows of one service.
pub struct Tail {
    pub service: Service,
    /// How many lines were asked for.
    pub count: usize,
    /// The last lines, newest last.
    pub lines: Vec<String>,
}

/// The last `lines` lines of one service's log, newest last: after the `instance-logs` read
/// check, the service name and count validated.
pub async fn tail(
    services: &Services,
    ctx: &Ctx,
    service: &str,
    lines: Option<&str>,
) -> Result<Tail, StoreError> {
    let target = Target {
        kind: "setting",
        id: Some(Setting::InstanceLogs.as_str().into()),
        name: Some(service.chars().take(40).collect()),
    };
    let _proof = ctx
        .authorize(
            &services.db,
            Action::ReadSetting(Setting::InstanceLogs),
            Resource::instance(),
            &target,
        )
        .await?;
    let (svc, n) = parse_tail(service, lines)?;
    let dir = super::log_dir(&services.config.data_dir);
    let lines = tokio::task::spawn_blocking(move || super::tail(&dir, svc, n))
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
        .map_err(|e| StoreError::Internal(format!("reading the {svc:?} log: {e}")))?;
    Ok(Tail {
        service: svc,
        count: n,
        lines,
    })
}

/// Database statistics and the instance's configuration (no secrets) for the runtime report.
pub async fn report_extra(services: &Services) -> Value {
    let mut counts = serde_json::Map::new();
    for table in [
        "users",
        "sessions",
        "api_tokens",
        "user_tokens",
        "audit_events",
    ] {
        let n: Result<i64, _> = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&services.db.pool)
            .await;
        counts.insert(table.into(), n.map(Value::from).unwrap_or(Value::Null));
    }
    json!({
        "database": {
            "backend": services.db.backend.name(),
            "url": services.config.redacted_database_url(),
            "rows": counts,
        },
        "lanes": [],
        "uptime_seconds": services.started.elapsed().as_secs(),
    })
}

/// The diagnostic report, ready to stream: its file name and its zip bytes.
pub struct Report<S> {
    pub file_name: String,
    pub zip: S,
}

/// The diagnostic zip (every log file, runtime diagnostics, and `browser` as the page sent it),
/// after the `diagnostic-report` check; the download is audited.
pub async fn report(
    services: &Services,
    ctx: &Ctx,
    browser: Value,
) -> Result<Report<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static>, StoreError> {
    let target = Target {
        kind: "setting",
        id: Some(Setting::DiagnosticReport.as_str().into()),
        name: None,
    };
    let _proof = ctx
        .authorize(
            &services.db,
            Action::ReadSetting(Setting::DiagnosticReport),
            Resource::instance(),
            &target,
        )
        .await?;
    ctx.record(
        &services.db,
        cryowarden_core::Event::DownloadReport,
        &target,
        Outcome::Ok,
        None,
        None,
        None,
    )
    .await?;
    let runtime = super::runtime_diagnostics(report_extra(services).await);
    let zip = super::report_stream(super::log_dir(&services.config.data_dir), runtime, browser);
    let file_name = format!(
        "cryowarden-report-{}.zip",
        crate::db::format_ms(crate::db::now_ms()).replace(':', "-")
    );
    Ok(Report { file_name, zip })
}
