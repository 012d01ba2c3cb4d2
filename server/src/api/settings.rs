//! `/api/v1/settings`: the Configuration page's settings, through its own server functions.

use app::configuration::api::{InstanceSettings, ssr};
use app::state::AppState;
use axum::extract::State;
use axum::http::request::Parts;
use serde::Deserialize;

use super::{ApiResult, Body, in_app, ok};

#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    responses((status = 200, body = InstanceSettings), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn show(State(state): State<AppState>, parts: Parts) -> ApiResult<InstanceSettings> {
    ok(in_app(&state, parts, async {
        app::auth::ssr::current_user().await?;
        ssr::load(&leptos::prelude::expect_context::<sqlx::PgPool>()).await
    })
    .await?)
}

/// The settings to change; a field left out keeps its value, `null` (or `""`) clears a URL.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    pub beta_enabled: Option<bool>,
    /// 60 to 600 (a number, or its text).
    #[schema(value_type = Option<Object>)]
    pub ai_gateway_timeout_seconds: Option<serde_json::Value>,
    #[serde(default, with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub ai_gateway_url: Option<Option<String>>,
    #[serde(default, with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub duo_agent_platform_service_url: Option<Option<String>>,
}

/// Tells a field left out (`None`) from one set to `null` (`Some(None)`).
mod nullable {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(deserializer).map(Some)
    }
}

#[utoipa::path(put, path = "/api/v1/settings", tag = "settings", request_body = SettingsChange,
    responses((status = 200, body = InstanceSettings), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<AppState>,
    parts: Parts,
    Body(change): Body<SettingsChange>,
) -> ApiResult<InstanceSettings> {
    let pool = state.pool.clone();
    ok(in_app(&state, parts, async move {
        let current = ssr::load(&pool).await?;
        let timeout = match change.ai_gateway_timeout_seconds {
            Some(serde_json::Value::String(text)) => text,
            Some(other) => other.to_string(),
            None => current.ai_gateway_timeout_seconds.to_string(),
        };
        let url = |changed: Option<Option<String>>, current: Option<String>| {
            changed.unwrap_or(current).unwrap_or_default()
        };
        ssr::save(
            change.beta_enabled.unwrap_or(current.beta_enabled),
            timeout,
            url(change.ai_gateway_url, current.ai_gateway_url),
            url(change.duo_agent_platform_service_url, current.duo_agent_platform_service_url),
        )
        .await?;
        ssr::load(&pool).await
    })
    .await?)
}
