//! The state every request and page is given: the domain's [`Services`] and what only HTTP needs
//! (the trusted proxies). Kept apart from the router (`app.rs`), which needs everything, so that
//! what needs only the state does not depend on the router.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Config;
use crate::error::StoreError;
use crate::services::Services;

/// Everything a request may need, passed explicitly.
pub struct AppState {
    /// What the domain's use cases take; handlers pass `&state` where `&Services` is asked for.
    pub services: Arc<Services>,
    /// The reverse proxies whose forwarding headers name the client (`trusted_proxies`).
    pub proxies: crate::proxies::TrustedProxies,
}

impl AppState {
    /// Checks the HTTP settings of `config`, then opens the services (data directory, database,
    /// migrations).
    pub async fn open(config: Config) -> Result<Arc<AppState>, StoreError> {
        let proxies = crate::proxies::TrustedProxies::parse(&config.trusted_proxies)?;
        let services = Services::open(config).await?;
        Ok(Arc::new(AppState { services, proxies }))
    }
}

/// A handler reads the services through its state (`state.db`, `state.scheduler`).
impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}
