//! The duo-admin server: configuration, the database, sessions and the router. `main.rs` only
//! wires these together; tests build the same router with `router()`.

pub mod api;
pub mod auth;
pub mod bundle;
pub mod config;
pub mod config_as_code;
pub mod database;
pub mod devices;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod page_cache;
pub mod postgres;
pub mod sessions;
pub mod throttle;
pub mod users;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use app::catalog::Catalog;
use app::chat::client::ModelClients;
use app::models::secrets::MasterKeys;
use app::state::AppState;
use app::{App, OUTPUT_NAME, shell};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Extension, Router};
use leptos::config::LeptosOptions;
use leptos::nonce::use_nonce;
use leptos::prelude::use_context;
use leptos_axum::{LeptosRoutes, ResponseOptions, generate_route_list, handle_server_fns_with_context};
use sqlx::PgPool;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeFile;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration;
use tower_sessions::{Expiry, SessionManagerLayer};

pub use config::Config;
use throttle::{SignInThrottle, ThrottlePolicy};

pub const SESSION_COOKIE: &str = "duo_admin_session";
/// The largest request body accepted.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Everything the router needs that is not in the database.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub site_root: String,
    pub listen: std::net::SocketAddr,
    pub secure_cookies: bool,
    pub session_idle_minutes: i64,
    pub sign_in_throttle: ThrottlePolicy,
    pub trust_forwarded_for: bool,
    pub limits: Limits,
    /// The bearer token of `GET /metrics`; none, no such endpoint.
    pub metrics_token: Option<String>,
    /// Requests a minute one token (or session) may make to the JSON API, on each replica.
    pub api_rate_limit_per_minute: u32,
}

/// Threads for blocking work besides the password checks: the bundle's file reads (tokio's
/// files read on a blocking thread) and name lookups. Tokio's default is 512: a flood of 64
/// clients fetching the bundle made about 180 threads and tripled resident memory (each thread
/// a stack and an allocator heap of its own), with no file served any faster.
pub const BLOCKING_THREADS_BESIDES_PASSWORDS: usize = 8;

/// The runtime the server runs on: a worker per core, and few blocking threads (above).
/// Threads are named `duo-admin`, for `top -H` and the tests.
pub fn runtime(password_checks: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("duo-admin")
        .max_blocking_threads(password_checks + BLOCKING_THREADS_BESIDES_PASSWORDS)
        .build()
}

/// Bounds on what one client, or a flood of them, can make the server do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Password checks (argon2) at once; more wait for a turn.
    pub password_checks: usize,
    /// How long a sign-in waits for a turn before it is refused as busy.
    pub password_queue_timeout: StdDuration,
    /// Longest a request may take before its answer starts (model calls excepted, see
    /// `BOUNDED_ELSEWHERE`).
    pub request_timeout: StdDuration,
    /// Longest a client may take to send a request's headers, and longest an idle connection
    /// stays open.
    pub header_read_timeout: StdDuration,
    /// Connections served at once; more wait until one closes.
    pub max_connections: usize,
    /// Longest a session lasts from sign-in, however active.
    pub session_max_age: StdDuration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            password_checks: users::cores(),
            password_queue_timeout: StdDuration::from_secs(10),
            request_timeout: StdDuration::from_secs(30),
            header_read_timeout: StdDuration::from_secs(10),
            max_connections: 1024,
            session_max_age: StdDuration::from_secs(12 * 3600),
        }
    }
}

impl From<&Config> for RouterSettings {
    fn from(config: &Config) -> Self {
        RouterSettings {
            site_root: config.site_root.to_string_lossy().into_owned(),
            listen: config.listen,
            secure_cookies: config.secure_cookies,
            session_idle_minutes: config.session_idle_minutes,
            sign_in_throttle: ThrottlePolicy::new(
                config.sign_in_max_failures,
                config.sign_in_max_failures_per_client,
                std::time::Duration::from_secs(config.sign_in_lock_minutes.max(1) * 60),
            ),
            trust_forwarded_for: config.trust_forwarded_for,
            metrics_token: config.metrics_token.clone(),
            api_rate_limit_per_minute: config.api_rate_limit_per_minute,
            limits: Limits {
                password_checks: config.sign_in_password_checks.unwrap_or_else(users::cores),
                password_queue_timeout: StdDuration::from_secs(config.sign_in_queue_seconds),
                request_timeout: StdDuration::from_secs(config.request_timeout_seconds.max(1)),
                header_read_timeout: StdDuration::from_secs(config.header_read_timeout_seconds.max(1)),
                max_connections: config.max_connections.max(1),
                session_max_age: StdDuration::from_secs(config.session_max_hours.max(1) * 3600),
            },
        }
    }
}

/// What the router serves from, besides its settings.
pub struct Services {
    pub pool: PgPool,
    pub catalog: Arc<Catalog>,
    pub master_keys: Arc<MasterKeys>,
    pub model_clients: Arc<ModelClients>,
    pub prompts: Arc<app::chat::prompts::Prompts>,
}

/// GitLab's older addresses of the model pages, answered with 301 as GitLab does, signed in
/// or not: they reveal nothing but where the page moved.
pub const MOVED: &[(&str, &str)] = &[
    ("/admin/ai/duo_self_hosted", "/admin/gitlab_duo/self_hosted"),
    ("/admin/ai/duo_self_hosted/new", "/admin/gitlab_duo/self_hosted/models/new"),
    ("/admin/ai/duo_self_hosted/features", "/admin/gitlab_duo/self_hosted/features"),
    // Every other path below it, as GitLab redirects them all.
    ("/admin/ai/duo_self_hosted/{*rest}", "/admin/gitlab_duo/self_hosted"),
];

pub fn router(services: Services, settings: &RouterSettings) -> Router {
    let Services { pool, catalog, master_keys, model_clients, prompts } = services;
    let site_root = Path::new(&settings.site_root);
    let bundle = bundle::Bundle::load(site_root);
    let leptos_options = LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(settings.site_root.as_str())
        .site_pkg_dir(bundle.pkg_dir())
        .site_addr(settings.listen)
        .build();
    let state = AppState {
        leptos_options,
        pool: pool.clone(),
        catalog,
        master_keys,
        model_clients,
        prompts,
        features_tab: Default::default(),
    };

    // Saved only when changed: the guard changes it at most once a minute to move the idle
    // expiry, and a session deleted meanwhile is never written back (`sessions.rs`).
    let sessions = SessionManagerLayer::new(sessions::SessionRows::new(pool.clone()))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.secure_cookies)
        .with_expiry(Expiry::OnInactivity(Duration::minutes(settings.session_idle_minutes)));
    let guard = auth::Guard {
        state: state.clone(),
        session_max_age: chrono::TimeDelta::from_std(settings.limits.session_max_age)
            .unwrap_or(chrono::TimeDelta::hours(12)),
    };
    let sign_in_gate = auth::SignInGate {
        throttle: SignInThrottle::new(settings.sign_in_throttle.clone(), pool),
        in_flight: tokio::sync::Semaphore::new(auth::SIGN_INS_AT_ONCE),
        password_checks: users::PasswordChecks::new(
            settings.limits.password_checks,
            settings.limits.password_queue_timeout,
        ),
        secure_cookies: settings.secure_cookies,
    };

    let context = {
        let state = state.clone();
        move || {
            state.provide();
            // Pages get a policy naming their own nonce (Leptos puts it on its inline scripts).
            if let (Some(nonce), Some(response)) = (use_nonce(), use_context::<ResponseOptions>())
                && let Ok(policy) = HeaderValue::from_str(&page_policy(&nonce))
            {
                response.insert_header(header::CONTENT_SECURITY_POLICY, policy);
            }
        }
    };
    let server_fns = {
        let context = context.clone();
        move |request| handle_server_fns_with_context(context.clone(), request)
    };
    let metrics = Arc::new(metrics::Metrics::new(settings.metrics_token.as_deref()));
    let features_pages = page_cache::FeaturesPages { cache: Default::default(), metrics: metrics.clone() };

    let mut moved = Router::new();
    for &(old, new) in MOVED {
        moved =
            moved.route(
                old,
                get(move || async move {
                    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, new)]).into_response()
                }),
            );
    }

    Router::new()
        .route("/", get(|| async { Redirect::to(auth::DEFAULT_LANDING) }))
        .route(auth::SIGN_IN_PATH, post(auth::sign_in))
        .route(auth::SIGN_OUT_PATH, post(auth::sign_out))
        .route(auth::END_SESSIONS_PATH, post(auth::end_user_sessions))
        // A layer covers only the routes above it: the throttle is for the sign-in form.
        .layer(Extension(Arc::new(sign_in_gate)))
        .merge(api::router(api::rate::Limiter::new(settings.api_rate_limit_per_minute)))
        .route("/api/{*server_fn}", get(server_fns.clone()).post(server_fns))
        .leptos_routes_with_context(&state, generate_route_list(App), context.clone(), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, shell))
        // Inside the guard: it puts the signed-in user on the request, and refuses everyone else.
        .layer(axum::middleware::from_fn_with_state(features_pages, page_cache::features_pages))
        .layer(axum::middleware::from_fn_with_state(guard, auth::require_sign_in))
        .layer(sessions)
        // Below the session layer: static files and probes neither read nor write a session.
        .nest_service("/pkg", bundle.router())
        .route_service("/favicon.ico", ServeFile::new(site_root.join("favicon.ico")))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Its own bearer token, not a session: scrapers sign in to nothing.
        .route(metrics::METRICS_PATH, get(metrics::scrape))
        .layer(Extension(metrics.clone()))
        .merge(moved)
        .layer(axum::middleware::from_fn(auth::same_site_only))
        // Forms and chat messages are small; anything larger is refused before it is read.
        .layer(RequestBodyLimitLayer::new(MAX_REQUEST_BYTES))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        // Everything that is not a Leptos page (redirects, JSON, files, error pages) runs no script.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(NO_SCRIPT_POLICY),
        ))
        .layer(axum::middleware::from_fn_with_state(settings.limits.request_timeout, time_limit))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::count))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(settings.trust_forwarded_for, auth::client_address))
        .with_state(state)
}

/// Server functions that call a model: each is bounded by the AI Gateway request timeout and
/// the model idle limit instead of `REQUEST_TIMEOUT_SECONDS`, and the chats stream their reply
/// for as long as it lasts. A test checks that each is still a route.
pub const BOUNDED_ELSEWHERE: &[&str] = &[
    "/api/test_self_hosted_model_connection",
    "/api/chat_with_self_hosted_model",
    "/api/chat_with_ai_feature",
];

pub const TIMEOUT_MESSAGE: &str = "The console took too long to answer. Please try again in a moment.";

/// Answers 503 when a request has not started its answer within `limit`: a stuck database
/// query or a slow client of ours must not hold a connection and its memory indefinitely. Only
/// the wait for the answer's head is bounded; a body already streaming is not cut.
async fn time_limit(
    axum::extract::State(limit): axum::extract::State<StdDuration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path().to_owned();
    if BOUNDED_ELSEWHERE.contains(&path.as_str()) || api::bounded_elsewhere(&path) {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(path = %path, limit_seconds = limit.as_secs_f64(), "a request took too long: answered 503");
            let status = StatusCode::SERVICE_UNAVAILABLE;
            if api::is_api_v1(&path) {
                api::problem(app::error::AppError::Transport(TIMEOUT_MESSAGE.to_owned()))
            } else if path.starts_with("/api/") {
                (status, axum::Json(app::error::AppError::Transport(TIMEOUT_MESSAGE.to_owned())))
                    .into_response()
            } else {
                auth::error_page(status, TIMEOUT_MESSAGE)
            }
        }
    }
}

/// The Content-Security-Policy of a page: scripts only from this site or inline with this
/// page's nonce, WebAssembly allowed (the hydration bundle), nothing framed or framing.
pub fn page_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The nonce a page's policy (`page_policy`) names.
pub fn policy_nonce(policy: &str) -> Option<&str> {
    policy.split("'nonce-").nth(1)?.split('\'').next()
}

/// The Content-Security-Policy of every other response: redirects, JSON, files, error pages.
pub const NO_SCRIPT_POLICY: &str = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'self'; \
     form-action 'self'; frame-ancestors 'none'";

/// Who may reach a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Signed-in users; changes (every non-GET) by admins only.
    SignedIn,
    /// Whoever presents `METRICS_TOKEN` as a bearer token; nobody while it is unset.
    BearerToken,
}

/// One route the console answers. Paths keep their parameters (`{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    pub path: String,
    pub access: Access,
}

impl RouteInfo {
    /// The path with every parameter set to `value`, ready to request.
    pub fn path_with(&self, value: i64) -> String {
        let segments = self.path.split('/');
        let filled = segments.map(|s| if s.starts_with('{') { value.to_string() } else { s.to_owned() });
        filled.collect::<Vec<_>>().join("/")
    }
}

/// Every route the router serves, taken from the same sources the router is built from: the
/// Leptos page routes, the registry of server functions, and the router's own routes. A page or
/// server function added later appears here by itself, so the guard tests cover it unedited.
pub fn route_inventory() -> Vec<RouteInfo> {
    // The router's own routes, as `router()` adds them above.
    let mut routes = vec![
        (Method::GET, "/".to_owned()),
        (Method::POST, auth::SIGN_IN_PATH.to_owned()),
        (Method::POST, auth::SIGN_OUT_PATH.to_owned()),
        (Method::POST, auth::END_SESSIONS_PATH.to_owned()),
    ];
    routes.extend(auth::PUBLIC_PATHS.iter().map(|path| (Method::GET, (*path).to_owned())));
    routes.push((Method::GET, metrics::METRICS_PATH.to_owned()));
    routes.extend(MOVED.iter().map(|(old, _)| (Method::GET, (*old).to_owned())));
    routes.extend(api::endpoints());
    for listing in generate_route_list(App) {
        for method in listing.methods() {
            let method = match method {
                leptos_router::Method::Get => Method::GET,
                leptos_router::Method::Post => Method::POST,
                leptos_router::Method::Put => Method::PUT,
                leptos_router::Method::Delete => Method::DELETE,
                leptos_router::Method::Patch => Method::PATCH,
            };
            routes.push((method, listing.path().to_owned()));
        }
    }
    routes.extend(leptos::server_fn::axum::server_fn_paths().map(|(path, method)| (method, path.to_owned())));

    let mut routes: Vec<RouteInfo> = routes
        .into_iter()
        .map(|(method, path)| {
            let public = auth::is_public(&path) || MOVED.iter().any(|(old, _)| *old == path);
            let access = if path == metrics::METRICS_PATH {
                Access::BearerToken
            } else if public {
                Access::Public
            } else {
                Access::SignedIn
            };
            RouteInfo { method, path, access }
        })
        .collect();
    routes.sort_by(|a, b| (&a.path, a.method.as_str()).cmp(&(&b.path, b.method.as_str())));
    routes.dedup();
    routes
}

/// Serves `app` on `listener` until `shutdown` resolves, with the default `Limits`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    model_clients: Arc<ModelClients>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: StdDuration,
) -> std::io::Result<()> {
    serve_with(listener, app, model_clients, shutdown, grace, &Limits::default()).await
}

/// Serves `app` on `listener` until `shutdown` resolves. Then no new connection is taken, the
/// requests in flight finish, and streaming model replies get `grace` to end on their own before
/// they are cut short with a message.
///
/// Built on hyper directly rather than `axum::serve`, which has no timer: without one, a client
/// that sends its headers a byte at a time holds its connection (and a file descriptor)
/// forever. Here headers must arrive within `limits.header_read_timeout` (which also closes idle
/// keep-alive connections), and at most `limits.max_connections` are served at once: the next
/// ones wait in the listen backlog until one closes.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    model_clients: Arc<ModelClients>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: StdDuration,
    limits: &Limits,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use tower::Service;

    let mut make_service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(limits.header_read_timeout));
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        // A turn first, then the connection: beyond the cap, clients wait in the backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %error, "could not accept a connection");
                    tokio::time::sleep(StdDuration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Streamed replies go out piece by piece, not held back to fill a packet.
        let _ = stream.set_nodelay(true);
        let Ok(service) = make_service.call(peer).await;
        let hyper_service = TowerToHyperService::new(service);
        let connection =
            builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!(grace_seconds = grace.as_secs_f64(), "shutting down: finishing the requests in flight");
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        tracing::info!("grace period over: cutting streaming replies short");
        model_clients.cut_replies_short();
    });
    graceful.shutdown().await;
    Ok(())
}
