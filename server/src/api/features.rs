//! `/api/v1/features`: the AI-native features tab, through its own server functions. Each row
//! carries its assignment, the feature it falls back to and the model that answers now.

use app::features::api::{FeaturesPage, ssr};
use app::gateway::GatewayRoute;
use app::state::AppState;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::{ApiResult, Body, in_app, ok};

#[utoipa::path(get, path = "/api/v1/features", tag = "features",
    responses((status = 200, body = FeaturesPage), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn list(State(state): State<AppState>, parts: Parts) -> ApiResult<FeaturesPage> {
    ok(in_app(&state, parts, ssr::load_features()).await?)
}

/// What to assign: a model's id, `"disabled"`, as the tab's dropdown posts it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Assign {
    /// A model's id (a number or a string), or "disabled".
    #[schema(value_type = Object)]
    pub choice: serde_json::Value,
}

/// The tab's notice for the change, such as "Code Generation updated to use Claude".
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Changed {
    pub message: String,
}

#[utoipa::path(put, path = "/api/v1/features/{key}", tag = "features", params(("key" = String, Path, description = "The feature's key, such as code_generations")), request_body = Assign,
    responses((status = 200, body = Changed), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn assign(
    State(state): State<AppState>,
    parts: Parts,
    Path(key): Path<String>,
    Body(body): Body<Assign>,
) -> ApiResult<Changed> {
    // A number or a string, as a script would naturally send either.
    let choice = match body.choice {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    };
    ok(Changed { message: in_app(&state, parts, ssr::update_feature(key, choice)).await? })
}

#[utoipa::path(post, path = "/api/v1/features/{key}/apply_to_all", tag = "features", params(("key" = String, Path, description = "The feature's key, such as code_generations")),
    responses((status = 200, body = Changed), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn apply_to_all(
    State(state): State<AppState>,
    parts: Parts,
    Path(key): Path<String>,
) -> ApiResult<Changed> {
    ok(Changed { message: in_app(&state, parts, ssr::apply_to_all(key)).await?.message })
}

/// `GET /api/v1/features/{key}/model`: what an AI gateway needs to route the feature, with an
/// `ETag` (a digest of the answer), so that a gateway polling with `If-None-Match` gets a
/// bodiless 304 until something changes. The key is in the answer for a `gateway` token only.
#[utoipa::path(get, path = "/api/v1/features/{key}/model", tag = "gateway", params(("key" = String, Path, description = "The feature's key, such as code_generations"), ("If-None-Match" = Option<String>, Header, description = "The ETag of the answer held")),
    responses((status = 200, body = GatewayRoute, headers(("ETag" = String, description = "A digest of the answer"))), (status = 304, description = "Unchanged since the ETag sent"), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn model(
    State(state): State<AppState>,
    parts: Parts,
    Path(key): Path<String>,
) -> Result<axum::response::Response, super::ApiError> {
    use app::tokens::domain::TokenScope;
    use app::tokens::store::TokenCaller;
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    use sha2::{Digest, Sha256};

    let with_key =
        parts.extensions.get::<TokenCaller>().is_some_and(|caller| caller.scope == TokenScope::Gateway);
    let if_none_match = parts.headers.get(header::IF_NONE_MATCH).cloned();
    let route = in_app(&state, parts, app::gateway::ssr::route(key, with_key)).await?;
    let body = serde_json::to_vec(&route).map_err(|_| app::error::AppError::Internal)?;
    let digest: String = Sha256::digest(&body).iter().take(16).map(|byte| format!("{byte:02x}")).collect();
    let etag = format!("\"{digest}\"");
    let matches = if_none_match.as_ref().and_then(|value| value.to_str().ok()).is_some_and(|value| {
        value.split(',').map(|tag| tag.trim().trim_start_matches("W/")).any(|tag| tag == etag || tag == "*")
    });
    let etag = HeaderValue::from_str(&etag).map_err(|_| app::error::AppError::Internal)?;
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let json = HeaderValue::from_static("application/json");
    Ok((StatusCode::OK, [(header::ETAG, etag), (header::CONTENT_TYPE, json)], body).into_response())
}
