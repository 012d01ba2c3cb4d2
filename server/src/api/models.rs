//! `/api/v1/models`: the self-hosted models, through the models tab's own server functions.

use app::chat::api::ConnectionTest;
use app::error::AppError;
use app::models::api::{ModelsPage, StoredModel, ssr};
use app::models::domain::{KeyAction, ModelForm};
use app::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;

use super::{ApiResult, Body, Params, in_app, ok};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Part of a model's name or identifier, in any letter case.
    #[serde(default)]
    search: String,
    /// From 1; 20 models a page.
    #[serde(default = "first_page")]
    page: i64,
}

fn first_page() -> i64 {
    1
}

/// A model id from the path; anything else names no model.
pub fn model_id(raw: &str) -> Result<i64, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/models", tag = "models", params(ListParams),
    responses((status = 200, body = ModelsPage), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    parts: Parts,
    Params(params): Params<ListParams>,
) -> ApiResult<ModelsPage> {
    ok(in_app(&state, parts, ssr::list_models(params.search, params.page)).await?)
}

async fn stored(state: &AppState, parts: Parts, id: i64) -> Result<StoredModel, AppError> {
    let form = in_app(state, parts, ssr::load_model_form(Some(id))).await?;
    form.model.ok_or(AppError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/models/{id}", tag = "models", params(("id" = i64, Path, description = "The model's id")),
    responses((status = 200, body = StoredModel), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn show(
    State(state): State<AppState>,
    parts: Parts,
    Path(id): Path<String>,
) -> ApiResult<StoredModel> {
    ok(stored(&state, parts, model_id(&id)?).await?)
}

/// The form's fields as JSON. The API key is write-only: sent here, never returned; on an
/// update, leaving `api_key` out keeps the stored key (`api_key_action` as on the form).
#[utoipa::path(post, path = "/api/v1/models", tag = "models", request_body = ModelForm,
    responses((status = 201, body = StoredModel), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    parts: Parts,
    Body(form): Body<ModelForm>,
) -> ApiResult<StoredModel> {
    let id = in_app(&state, parts.clone(), ssr::save_model(None, form)).await?;
    Ok((StatusCode::CREATED, Json(stored(&state, parts, id.0).await?)))
}

#[utoipa::path(put, path = "/api/v1/models/{id}", tag = "models", params(("id" = i64, Path, description = "The model's id")), request_body = ModelForm,
    responses((status = 200, body = StoredModel), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<AppState>,
    parts: Parts,
    Path(id): Path<String>,
    Body(mut form): Body<ModelForm>,
) -> ApiResult<StoredModel> {
    let id = model_id(&id)?;
    if form.api_key_action.is_empty() && form.typed_key().is_none() {
        form.api_key_action = KeyAction::Keep.key().to_owned();
    }
    in_app(&state, parts.clone(), ssr::save_model(Some(id), form)).await?;
    ok(stored(&state, parts, id).await?)
}

#[utoipa::path(delete, path = "/api/v1/models/{id}", tag = "models", params(("id" = i64, Path, description = "The model's id")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "The model is in use: the features that use it are named", body = super::Problem, content_type = "application/problem+json"), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn destroy(
    State(state): State<AppState>,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<StatusCode, super::ApiError> {
    in_app(&state, parts, ssr::delete_model(model_id(&id)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Says GitLab's "Hello" to the stored model with its stored values and key, as "Test
/// connection" does on its edit form.
#[utoipa::path(post, path = "/api/v1/models/{id}/test", tag = "models", params(("id" = i64, Path, description = "The model's id")),
    responses((status = 200, body = ConnectionTest), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn test(
    State(state): State<AppState>,
    parts: Parts,
    Path(id): Path<String>,
) -> ApiResult<ConnectionTest> {
    let id = model_id(&id)?;
    let model = stored(&state, parts.clone(), id).await?;
    let form = ModelForm {
        name: model.name,
        platform: model.platform.key().to_owned(),
        model_family: model.model_family,
        endpoint: model.endpoint.unwrap_or_default(),
        identifier: model.identifier,
        bedrock_region: model.bedrock_region.unwrap_or_default(),
        vertex_project: model.vertex_project.unwrap_or_default(),
        vertex_location: model.vertex_location.unwrap_or_default(),
        api_key_action: KeyAction::Keep.key().to_owned(),
        api_key: String::new(),
    };
    ok(in_app(&state, parts, app::chat::api::ssr::test_connection(Some(id), form)).await?)
}
