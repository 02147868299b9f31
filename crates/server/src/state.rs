//! The state every request, page and task is given: the database, credentials, configuration,
//! the settings cache, the runner, the scheduler's handle and the trusted proxies. Kept apart from
//! the router (`app.rs`), which needs everything, so that what needs only the state does not
//! depend on the router.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::Auth;
use crate::config::Config;
use crate::db::Db;
use crate::error::StoreError;

/// Everything a request may need, passed explicitly.
pub struct AppState {
    pub db: Db,
    pub auth: Auth,
    pub config: Config,
    pub settings: crate::settings::SettingsCache,
    pub started: Instant,
    /// Starts the privileged runner for file operations as a lab's Unix account.
    pub runner: Arc<crate::runner::Runner>,
    /// The job queue's order and the slots running jobs hold (see `scheduler::start`).
    pub scheduler: crate::scheduler::Scheduler,
    /// The reverse proxies whose forwarding headers name the client (`trusted_proxies`).
    pub proxies: crate::proxies::TrustedProxies,
}

impl AppState {
    /// Connects to the database of `config` and applies its migrations.
    pub async fn open(config: Config) -> Result<Arc<AppState>, StoreError> {
        crate::datadir::create_private_dir(&config.data_dir).map_err(|e| {
            StoreError::Config(format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let proxies = crate::proxies::TrustedProxies::parse(&config.trusted_proxies)?;
        let db = Db::connect(&config.database_url()).await?;
        db.migrate().await?;
        let auth = Auth::new(config.lifetimes(), config.password_hash_concurrency);
        let runner = Arc::new(crate::runner::Runner::new(&config.runner));
        Ok(Arc::new(AppState {
            db,
            auth,
            config,
            settings: Default::default(),
            started: Instant::now(),
            runner,
            scheduler: Default::default(),
            proxies,
        }))
    }
}
