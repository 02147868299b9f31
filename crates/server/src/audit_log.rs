//! The audit log as the Audit Log tab and the API read it: listing, verifying and exporting,
//! each after the `audit-log` read check (a refusal is audited).

use bytes::Bytes;
use cryowarden_core::{Action, Resource, Setting};
use futures_util::Stream;
use serde::Deserialize;

use crate::audit::{self, Event, ExportFormat, Filter, Verification};
use crate::context::{Ctx, Target};
use crate::error::StoreError;
use crate::services::Services;

fn target() -> Target {
    Target {
        kind: "setting",
        id: Some(Setting::AuditLog.as_str().into()),
        name: None,
    }
}

async fn may_read(services: &Services, ctx: &Ctx) -> Result<(), StoreError> {
    let _proof = ctx
        .authorize(
            &services.db,
            Action::ReadSetting(Setting::AuditLog),
            Resource::instance(),
            &target(),
        )
        .await?;
    Ok(())
}

/// A page of events, newest first, and where the next (older) page starts.
pub async fn list(
    services: &Services,
    ctx: &Ctx,
    filter: &Filter,
) -> Result<(Vec<Event>, Option<i64>), StoreError> {
    may_read(services, ctx).await?;
    audit::list(&services.db, filter).await
}

/// The whole chain verified: "ok, N events" or the first event that breaks it.
pub async fn verify(services: &Services, ctx: &Ctx) -> Result<Verification, StoreError> {
    may_read(services, ctx).await?;
    audit::verify(&services.db).await
}

/// An export, ready to stream: its file name, content type and bytes.
pub struct Export<S> {
    pub file_name: String,
    pub content_type: &'static str,
    pub stream: S,
}

/// The export's query: the list's filters (no paging) and the format.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `csv` (default) or `json` (one JSON array of events, as the list gives them).
    pub format: Option<String>,
    pub actor: Option<String>,
    pub impersonator: Option<String>,
    /// Exact, or a prefix ending in `*`.
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339.
    pub from: Option<String>,
    /// RFC 3339.
    pub to: Option<String>,
    /// Only events with seq below this.
    pub before: Option<String>,
}

impl ExportQuery {
    pub fn filter(&self) -> Filter {
        Filter {
            actor: self.actor.clone(),
            impersonator: self.impersonator.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: self.outcome.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            before: self.before.clone(),
            limit: None,
        }
    }
}

/// The export of the filtered set, after the `audit-log` read check; the export is itself
/// recorded (action `export-audit-log`, the filter in the event).
pub async fn export(
    services: &Services,
    ctx: &Ctx,
    q: &ExportQuery,
) -> Result<Export<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static + use<>>, StoreError>
{
    may_read(services, ctx).await?;
    let format = ExportFormat::parse(q.format.as_deref().filter(|s| !s.is_empty()))?;
    let filter = q.filter();
    let stream = audit::export_stream(&services.db, &filter, format).await?;
    let given = |k: &str, v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|v| (k.to_owned(), v.into()))
    };
    let asked: serde_json::Map<String, serde_json::Value> = [
        given("actor", &q.actor),
        given("impersonator", &q.impersonator),
        given("action", &q.action),
        given("target", &q.target),
        given("outcome", &q.outcome),
        given("from", &q.from),
        given("to", &q.to),
        given("before", &q.before),
    ]
    .into_iter()
    .flatten()
    .collect();
    ctx.record(
        &services.db,
        cryowarden_core::Event::ExportAuditLog,
        &target(),
        audit::Outcome::Ok,
        None,
        None,
        Some(serde_json::json!({ "format": format.extension(), "filter": asked })),
    )
    .await?;
    let file_name = format!(
        "cryowarden-audit-{}.{}",
        crate::db::format_ms(crate::db::now_ms()).replace(':', "-"),
        format.extension()
    );
    Ok(Export {
        file_name,
        content_type: format.content_type(),
        stream,
    })
}
