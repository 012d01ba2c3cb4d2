//! The duo-admin server: configuration, the database, sessions and the router. `main.rs` only
//! wires these together; tests build the same router with `router()`.

pub mod auth;
pub mod config;
pub mod database;
pub mod health;
pub mod keys;
pub mod postgres;
pub mod users;

use std::path::Path;
use std::sync::Arc;

use app::catalog::Catalog;
use app::chat::client::ModelClients;
use app::models::secrets::MasterKeys;
use app::state::AppState;
use app::{App, OUTPUT_NAME, shell};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list, handle_server_fns_with_context};
use sqlx::PgPool;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;

pub use config::Config;

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
}

impl From<&Config> for RouterSettings {
    fn from(config: &Config) -> Self {
        RouterSettings {
            site_root: config.site_root.to_string_lossy().into_owned(),
            listen: config.listen,
            secure_cookies: config.secure_cookies,
            session_idle_minutes: config.session_idle_minutes,
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

/// GitLab's older addresses of the model pages, answered with 301 as GitLab does.
const MOVED: &[(&str, &str)] = &[
    ("/admin/ai/duo_self_hosted", "/admin/gitlab_duo/self_hosted"),
    ("/admin/ai/duo_self_hosted/new", "/admin/gitlab_duo/self_hosted/models/new"),
    ("/admin/ai/duo_self_hosted/features", "/admin/gitlab_duo/self_hosted/features"),
];

pub fn router(services: Services, settings: &RouterSettings) -> Router {
    let Services { pool, catalog, master_keys, model_clients, prompts } = services;
    let leptos_options = LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(settings.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(settings.listen)
        .build();
    let state = AppState { leptos_options, pool: pool.clone(), catalog, master_keys, model_clients, prompts };

    let sessions = SessionManagerLayer::new(PostgresStore::new(pool))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.secure_cookies)
        // Saving on every request is what makes the expiry count from the last activity.
        .with_always_save(true)
        .with_expiry(Expiry::OnInactivity(Duration::minutes(settings.session_idle_minutes)));

    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let server_fns = {
        let context = context.clone();
        move |request| handle_server_fns_with_context(context.clone(), request)
    };
    let site_root = Path::new(&settings.site_root);

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
        .route("/api/{*server_fn}", get(server_fns.clone()).post(server_fns))
        .leptos_routes_with_context(&state, generate_route_list(App), context.clone(), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, shell))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_sign_in))
        .layer(sessions)
        // Below the session layer: static files and probes neither read nor write a session.
        .nest_service("/pkg", ServeDir::new(site_root.join("pkg")))
        .route_service("/favicon.ico", ServeFile::new(site_root.join("favicon.ico")))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
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
        // Only framing is restricted for now: a full policy needs nonces on Leptos's inline scripts.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'; base-uri 'self'; form-action 'self'"),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
