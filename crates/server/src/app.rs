//! Building the application from a configuration, and serving it. Tests build the real thing
//! through these same functions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::api::error::ApiError;
use crate::auth::Auth;
use crate::config::Config;
use crate::db::Db;
use crate::error::StoreError;
use crate::web::{admin, labs, pages, projects};

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
}

impl AppState {
    /// Connects to the database of `config` and applies its migrations.
    pub async fn open(config: Config) -> Result<Arc<AppState>, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StoreError::Config(format!("cannot create the data directory {}: {e}", config.data_dir.display()))
        })?;
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
        }))
    }
}

/// The whole HTTP application: API, pages, and the layers around them.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.max_body_kib * 1024;
    Router::new()
        .merge(crate::api::router())
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route("/logout", post(pages::logout))
        .route("/register", get(pages::register_form).post(pages::register_submit))
        .route("/reset", get(pages::reset_form).post(pages::reset_submit))
        .route("/admin", get(admin::index))
        .route("/admin/console", get(crate::web::console::console_page))
        .route("/admin/settings", get(admin::settings_page).post(admin::settings_submit))
        .route("/admin/users", get(admin::users_page))
        .route("/admin/users/new", get(admin::new_user_page).post(admin::new_user_submit))
        .route("/admin/logs", get(admin::logs_page))
        .route("/admin/explain", get(admin::explain_page))
        .route("/impersonate", post(crate::web::impersonation::start))
        .route("/impersonate/stop", post(crate::web::impersonation::stop))
        .route("/admin/audit", get(crate::web::audit::audit_page))
        .route("/admin/audit/maintenance", post(crate::web::audit::policy_submit))
        .route("/admin/audit/archive", post(crate::web::audit::archive_submit))
        .route("/admin/report", post(admin::report_download))
        .route("/admin/cluster", get(crate::web::jobs::cluster_page))
        .route("/admin/lanes", get(crate::web::jobs::lanes_page))
        .route("/admin/jobs", get(crate::web::jobs::jobs_page))
        .route("/labs", get(labs::labs_page))
        .route("/labs/{id}", get(labs::lab_page))
        .route("/projects", get(projects::projects_page))
        .route("/projects/{id}", get(projects::project_page))
        .route("/static/{name}", get(crate::web::static_file))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such route: see /api/v1/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this route does not take that method: see /api/v1/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| {
            use axum::response::IntoResponse;
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "an internal error occurred; it has been logged",
            )
            .into_response()
        }))
        .with_state(state)
}

/// Binds, prints where to go, and serves until Ctrl-C or SIGTERM.
pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {listen}: {e} (is another cryowarden running? set `listen` or CRYOWARDEN_LISTEN)"
        )
    })?;
    let local = listener.local_addr()?;
    // With port 0 the system picks one: links must name the real one.
    config.listen = local;
    let state = AppState::open(config).await?;
    let base = state.config.base_url();
    tracing::info!(address = %local, database = state.db.backend.name(), "cryowarden listening");
    println!(
        "cryowarden listening on http://{local} (data in {}, {})",
        state.config.data_dir.display(),
        state.db.backend.name()
    );
    if let Some(token) = state.auth.bootstrap_token(&state.db).await? {
        println!(
            "No users yet. Register the first Site Admin within 24 hours at:\n  {base}/register?token={}",
            token.expose()
        );
    }
    crate::scheduler::start(state.clone()).await?;
    crate::console::active_users::spawn_sweep(state.clone());
    crate::audit::spawn_retention(state.db.clone(), state.config.data_dir.clone());
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
