//! What every handler and server function shares: the database pool, the catalog of families
//! and features, the master keys for API keys, and Leptos's options. Handed to server functions
//! as context, never kept in a global.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sqlx::PgPool;

use crate::catalog::Catalog;
use crate::chat::client::ModelClients;
use crate::models::secrets::MasterKeys;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub pool: PgPool,
    pub catalog: Arc<Catalog>,
    pub master_keys: Arc<MasterKeys>,
    pub model_clients: Arc<ModelClients>,
    pub prompts: Arc<crate::chat::prompts::Prompts>,
}
