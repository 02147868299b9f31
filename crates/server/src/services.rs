//! What every use case of the domain is given: the database, the credential cache, the
//! configuration, the settings cache, the runner and the scheduler's handle. The HTTP layer holds
//! it inside its own state (`state::AppState`); the domain never sees the HTTP layer.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::Auth;
use crate::config::Config;
use crate::db::Db;
use crate::error::StoreError;

/// The domain's dependencies, passed explicitly to every use case.
pub struct Services {
    pub db: Db,
    /// Sessions and API tokens, with the credential cache (`forget_user` drops a user's).
    pub auth: Auth,
    pub config: Config,
    pub settings: crate::settings::SettingsCache,
    pub started: Instant,
    /// Starts the privileged runner for file operations as a lab's Unix account.
    pub runner: Arc<crate::runner::Runner>,
    /// The job queue's order and the slots running jobs hold (see `scheduler::start`).
    pub scheduler: crate::scheduler::Scheduler,
}

impl Services {
    /// Creates the private data directory, connects to the database of `config` and applies its
    /// migrations.
    pub async fn open(config: Config) -> Result<Arc<Services>, StoreError> {
        crate::datadir::create_private_dir(&config.data_dir).map_err(|e| {
            StoreError::Config(format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let db = Db::connect(&config.database_url()).await?;
        db.migrate().await?;
        let auth = Auth::new(config.lifetimes(), config.password_hash_concurrency);
        let runner = Arc::new(crate::runner::Runner::new(&config.runner));
        Ok(Arc::new(Services {
            db,
            auth,
            config,
            settings: Default::default(),
            started: Instant::now(),
            runner,
            scheduler: Default::default(),
        }))
    }
}
