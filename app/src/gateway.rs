//! What an AI gateway needs to route one feature: the model that serves it now (its own, or
//! the one it falls back to), where that model runs, and which prompt the console would send.
//! Served at `GET /api/v1/features/{key}/model`; the model's API key only to a token of the
//! `gateway` scope, and always together with the endpoint it is bound to.

use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct GatewayRoute {
    pub feature: String,
    /// The model's name, as the console lists it.
    pub model: String,
    /// `api`, `bedrock` or `vertex_ai`.
    pub platform: String,
    pub identifier: String,
    /// The stored endpoint (API models only).
    pub endpoint: Option<String>,
    /// The AWS region of Bedrock calls, or the location of Vertex AI calls.
    pub region: Option<String>,
    /// The Google Cloud project of Vertex AI calls.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub project: Option<String>,
    pub family: String,
    /// A digest of the prompt the console sends this feature on this family: it changes when
    /// the prompt does, so a gateway can tell that its copy is stale.
    pub prompt_version: Option<String>,
    /// The feature whose model is borrowed, when this one has none of its own.
    pub falls_back_to: Option<String>,
    /// Only for a `gateway` token; never for any other caller.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub api_key: Option<String>,
}

/// Never prints the key.
impl std::fmt::Debug for GatewayRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayRoute")
            .field("feature", &self.feature)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[hidden]"))
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::sync::Arc;

    use leptos::prelude::expect_context;
    use sha2::{Digest, Sha256};

    use super::GatewayRoute;
    use crate::auth::ssr::current_user;
    use crate::catalog::Catalog;
    use crate::chat::client::ModelClients;
    use crate::chat::prompts::{Prompt, Prompts};
    use crate::configuration::api::ssr::beta_enabled;
    use crate::error::AppError;
    use crate::models::platform::Platform;
    use crate::models::secrets::MasterKeys;
    use crate::models::store;

    fn version_of(prompt: &Prompt) -> String {
        let text = format!("{}\n{}\n{:?}", prompt.system, prompt.max_tokens, prompt.temperature);
        let digest = Sha256::digest(text.as_bytes());
        digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect()
    }

    /// The route of feature `key`; with `with_key`, the model's API key too (opened for its
    /// stored endpoint, as a call would open it). Not found while no model serves it, or while
    /// it is a beta feature and beta is off.
    pub async fn route(key: String, with_key: bool) -> Result<GatewayRoute, AppError> {
        current_user().await?;
        let pool = expect_context::<sqlx::PgPool>();
        let catalog = expect_context::<Arc<Catalog>>();
        let feature = catalog.feature(&key).ok_or(AppError::NotFound)?;
        if feature.release.needs_beta() && !beta_enabled(&pool).await? {
            return Err(AppError::NotFound);
        }
        let resolved = crate::features::api::ssr::resolve_model(&pool, &catalog, feature).await?;
        let (model_id, falls_back_to) = resolved.ok_or(AppError::NotFound)?;
        let model = store::callable(&pool, model_id).await?;
        let api_key = if with_key {
            let master_keys = expect_context::<Arc<MasterKeys>>();
            let opened = model.open_key(&master_keys).map_err(|error| {
                tracing::error!(model = model.id, %error, "a stored API key could not be opened for the gateway");
                AppError::Internal
            })?;
            opened.map(|key| key.expose().to_owned())
        } else {
            None
        };
        // A Bedrock model's own region, or the console's, where its calls go.
        let region = match model.platform {
            Platform::Bedrock => Some(
                model
                    .bedrock_region
                    .clone()
                    .unwrap_or_else(|| expect_context::<Arc<ModelClients>>().console_region()),
            ),
            Platform::VertexAi => model.vertex_location.clone(),
            Platform::OpenAiCompatible => None,
        };
        let prompt_version =
            expect_context::<Arc<Prompts>>().resolve(&feature.key, &model.family).map(version_of);
        Ok(GatewayRoute {
            feature: feature.key.clone(),
            model: model.name,
            platform: model.platform.key().to_owned(),
            identifier: model.identifier,
            endpoint: model.endpoint,
            region,
            project: model.vertex_project,
            family: model.family,
            prompt_version,
            falls_back_to: falls_back_to
                .and_then(|title| catalog.features.iter().find(|f| f.title == title).map(|f| f.key.clone())),
            api_key,
        })
    }
}
