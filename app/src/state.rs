//! What every handler and server function shares: the database pool, the catalog of families
//! and features, the master keys for API keys, the model clients, the prompts and Leptos's
//! options. The server's handlers take it whole; server functions get its parts as separate
//! contexts (`provide`), each asking only for what it uses, so no module of the app depends on
//! this wiring (nor, through it, on every other module). Never kept in a global.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
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
    /// This replica's copy of the features tab's data, checked against the database's generation.
    pub features_tab: Arc<crate::features::api::ssr::TabCache>,
}

impl AppState {
    /// Hands each part to the server functions of the request being served.
    pub fn provide(&self) {
        provide_context(self.pool.clone());
        provide_context(self.catalog.clone());
        provide_context(self.master_keys.clone());
        provide_context(crate::models::domain::ConsoleRegion(self.model_clients.console_region()));
        provide_context(self.model_clients.clone());
        provide_context(self.prompts.clone());
        provide_context(self.features_tab.clone());
    }
}
