//! The diagnostics of the admin console (`spec/roles.md` §1, the Diagnostics group): what the
//! server started with, its environment (secrets redacted), the host, the database, live tasks,
//! memory, query statistics, site errors, loggers, database checks, migration status, site
//! validation and credits. The console (`crate::console`) shows these; each function here asks
//! `authorize()` itself through the caller's [`Ctx`].

use cryowarden_core::Setting;

use crate::app::AppState;
use crate::context::Ctx;
use crate::error::StoreError;

/// The settings whose content this module provides.
pub const SETTINGS: &[Setting] = &[];

/// The content of `setting` as the caller may see it (authorized as `ReadSetting(setting)`).
pub async fn view(_state: &AppState, _ctx: &Ctx, _setting: Setting) -> Result<serde_json::Value, StoreError> {
    Err(StoreError::NotFound { what: "diagnostic" })
}

/// Runs `action` of `setting` (authorized as a change of that setting) and says what it did.
pub async fn act(
    _state: &AppState,
    _ctx: &Ctx,
    _setting: Setting,
    _action: &str,
    _body: serde_json::Value,
) -> Result<serde_json::Value, StoreError> {
    Err(StoreError::NotFound { what: "diagnostic action" })
}
