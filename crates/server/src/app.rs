//! Building the application from a configuration, and serving it. Tests build the real thing
//! through these same functions.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::web::{admin, labs, pages, projects};

/// The whole HTTP application: API, pages, and the layers around them.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.max_body_kib * 1024;
    Router::new()
        .merge(crate::api::router())
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route("/logout", post(pages::logout))
        .route(
            "/register",
            get(pages::register_form).post(pages::register_submit),
        )
        .route("/reset", get(pages::reset_form).post(pages::reset_submit))
        .route("/admin", get(admin::index))
        .route("/admin/console", get(crate::web::console::console_page))
        .route(
            "/admin/settings",
            get(admin::settings_page).post(admin::settings_submit),
        )
        .route("/admin/users", get(admin::users_page))
        .route(
            "/admin/users/new",
            get(admin::new_user_page).post(admin::new_user_submit),
        )
        .route("/admin/logs", get(admin::logs_page))
        .route("/admin/explain", get(admin::explain_page))
        .route("/impersonate", post(crate::web::impersonation::start))
        .route("/impersonate/stop", post(crate::web::impersonation::stop))
        .route("/admin/audit", get(crate::web::audit::audit_page))
        .route(
            "/admin/audit/maintenance",
            post(crate::web::audit::policy_submit),
        )
        .route(
            "/admin/audit/archive",
            post(crate::web::audit::archive_submit),
        )
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
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such route: see /api/v1/openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this route does not take that method: see /api/v1/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
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
        .layer(axum::middleware::from_fn(
            crate::http::headers::security_headers,
        ))
        .with_state(state)
}

/// Binds, prints where to go, and serves until Ctrl-C or SIGTERM. Refuses a data directory
/// that group or others can reach; everything it creates is private (umask 077).
pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    crate::datadir::prepare_for_serve(&config.data_dir)?;
    crate::datadir::private_umask();
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
    crate::scheduler::start(state.services.clone()).await?;
    crate::console::active_users::spawn_sweep(state.services.clone());
    crate::audit::spawn_retention(state.db.clone(), state.config.data_dir.clone());
    serve_on(listener, state, shutdown_signal()).await
}

/// Serves the application on `listener` until `shutdown` resolves, then lets open requests
/// finish and writes the refusals still counted in memory (`audit/repeats.rs`). The binary and
/// the tests serve through this one function.
///
/// Connections are bounded: each must send its request headers within
/// `header_read_timeout_secs` (hyper's header timer, which also runs while a kept-alive
/// connection waits for its next request, so idle connections close after the same time), and
/// past `max_connections` open ones a new connection is answered 503 and closed, so slow or
/// idle clients cannot hold the server's sockets and memory.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(state.clone());
    serve_router(listener, state, app, shutdown).await
}

/// [`serve_on`] with the router given (the test harness wraps [`router`] in a check of every
/// answer against the OpenAPI document).
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let header_timeout =
        std::time::Duration::from_secs(state.config.header_read_timeout_secs.max(1));
    let permits = Arc::new(tokio::sync::Semaphore::new(
        state.config.max_connections.max(1),
    ));
    // Shutdown: stop accepting, ask every connection to finish (idle ones close at once), wait.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (flusher_stop_tx, flusher_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let flusher = tokio::spawn(crate::audit::run_flusher(state.db.clone(), async move {
        let _ = flusher_stop_rx.await;
    }));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(refuse_connection(stream, peer));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc =
            app.clone()
                .map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req
                });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(header_timeout))
                .keep_alive_timeout(header_timeout);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends.
    let all = u32::try_from(state.config.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        permits.acquire_many(all),
    )
    .await;
    let _ = flusher_stop_tx.send(());
    let _ = flusher.await;
    Ok(())
}

/// A connection past `max_connections`: a 503 written without reading the request, then closed.
async fn refuse_connection(mut stream: tokio::net::TcpStream, peer: SocketAddr) {
    use tokio::io::AsyncWriteExt;
    tracing::warn!(%peer, "connection refused: max_connections reached");
    let body = "the server has too many open connections: try again shortly\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
