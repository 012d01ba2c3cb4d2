//! What every handler and server function shares: the database pool and Leptos's options.
//! Handed to server functions as context, never kept in a global.

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sqlx::PgPool;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub pool: PgPool,
}
