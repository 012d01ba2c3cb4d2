//! `/api/v1/configuration`: configuration as code, the same export and import as
//! `duo-admin config`.

use std::collections::BTreeMap;

use app::audit::ssr::Actor;
use app::config_as_code::ssr::{Given, Importer, export, import};
use app::config_as_code::{Document, Plan};
use app::state::AppState;
use axum::extract::State;
use axum::http::request::Parts;
use serde::Deserialize;

use super::{ApiResult, Body, in_app, ok};

#[utoipa::path(get, path = "/api/v1/configuration", tag = "configuration",
    responses((status = 200, description = "The models (keys only as references), the features' assignments and the settings, as `duo-admin config export` writes them", body = Document), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn show(State(state): State<AppState>, parts: Parts) -> ApiResult<Document> {
    let (pool, catalog) = (state.pool.clone(), state.catalog.clone());
    ok(in_app(&state, parts, async move {
        app::auth::ssr::current_user().await?;
        export(&pool, &catalog).await
    })
    .await?)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// A configuration file, as `GET /api/v1/configuration` answers it.
    pub document: Document,
    /// The API keys the file's references name (`{"env": "NAME"}` reads `secrets.NAME`). The
    /// server's own environment is never read. A reference left out keeps a stored key.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Plan and check only: the diff is answered, nothing is changed.
    #[serde(default)]
    pub dry_run: bool,
}

/// Applies a configuration file in one transaction (or, with `dry_run`, only says what it
/// would change); each change is audited as the page would audit it.
#[utoipa::path(post, path = "/api/v1/configuration/import", tag = "configuration", request_body = ImportRequest,
    responses((status = 200, description = "What changed (or, in a dry run, would change)", body = Plan), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (each problem at its place in the file, such as models[1].endpoint), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn apply(
    State(state): State<AppState>,
    parts: Parts,
    Body(request): Body<ImportRequest>,
) -> ApiResult<Plan> {
    let (pool, catalog, master_keys) = (state.pool.clone(), state.catalog.clone(), state.master_keys.clone());
    ok(in_app(&state, parts, async move {
        let admin = app::auth::ssr::require_admin().await?;
        let actor = Actor::signed_in(&admin).await;
        let secrets = Given(request.secrets);
        let importer = Importer { actor: &actor, admin: &admin };
        import(&pool, &catalog, &master_keys, importer, &request.document, &secrets, request.dry_run).await
    })
    .await?)
}
