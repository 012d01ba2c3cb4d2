//! Server functions that talk to models: "Test connection" with the form's unsaved values, and
//! the streaming chat with a saved model. Each outcome becomes the model's last-test status.
// The form's fields are this module's server-function arguments: one per field, so a plain
// HTML form post (JavaScript off) maps onto them. The macro's browser-side copy of such a
// function cannot carry an attribute, hence the module-wide allowance.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;
use leptos::server_fn::codec::{StreamingText, TextStream};
use serde::{Deserialize, Serialize};

use super::Figures;
use crate::error::AppError;

pub const CONNECTED: &str = "Successfully connected to the self-hosted model";
/// GitLab's test prompt and budget.
pub const TEST_PROMPT: &str = "Just say hello.";
pub const TEST_MAX_TOKENS: i32 = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionTest {
    pub ok: bool,
    pub message: String,
    pub reply: String,
    pub figures: Figures,
}

/// The last test of a model, as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTest {
    pub ok: bool,
    pub message: String,
    pub figures: Figures,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Asks the model described by the form (not yet saved) to say hello.
#[server(endpoint = "test_self_hosted_model_connection")]
pub async fn test_connection(
    id: Option<i64>,
    name: String,
    platform: String,
    model_family: String,
    endpoint: Option<String>,
    identifier: String,
    api_key_action: Option<String>,
    api_key: Option<String>,
) -> Result<ConnectionTest, AppError> {
    let form = crate::models::domain::ModelForm {
        name,
        platform,
        model_family,
        endpoint: endpoint.unwrap_or_default(),
        identifier,
    };
    ssr::test_connection(id, form, api_key_action, api_key).await
}

/// Streams a saved model's reply to the conversation in `messages` (JSON of `ChatMessage`s),
/// one `ChatEvent` line at a time.
#[server(endpoint = "chat_with_self_hosted_model", output = StreamingText)]
pub async fn chat_with_model(model_id: i64, messages: String) -> Result<TextStream<AppError>, AppError> {
    ssr::chat_with_model(model_id, messages).await
}

/// Streams the reply of the model a feature really uses (its own, or the one it falls back to),
/// with that feature's prompt for the model's family. The first line names the model.
#[server(endpoint = "chat_with_ai_feature", output = StreamingText)]
pub async fn chat_with_feature(feature: String, messages: String) -> Result<TextStream<AppError>, AppError> {
    ssr::chat_with_feature(feature, messages).await
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;
    use crate::auth::ssr::require_admin;
    use crate::chat::client::{Exchange, SHUTTING_DOWN, Target, stream_reply};
    use crate::chat::{ChatEvent, ChatMessage, Speaker};
    use crate::models::api::{KEY_KEEP, KEY_REMOVE};
    use crate::models::domain::{ModelForm, ModelIdentifier, Platform};
    use crate::models::secrets::{ApiKey, SealedKey};
    use crate::state::AppState;

    /// The AI Gateway request timeout from the Configuration page: the bound of a whole exchange.
    async fn exchange_limit(db: &sqlx::PgPool) -> Result<Duration, AppError> {
        let seconds = sqlx::query_scalar!("SELECT ai_gateway_timeout_seconds FROM instance_settings")
            .fetch_one(db)
            .await?;
        Ok(Duration::from_secs(seconds.max(1) as u64))
    }

    struct StoredTarget {
        name: String,
        family: String,
        platform: Platform,
        endpoint: Option<String>,
        identifier: String,
        sealed: Option<SealedKey>,
    }

    async fn stored_target(db: &sqlx::PgPool, id: i64) -> Result<StoredTarget, AppError> {
        let row = sqlx::query!(
            "SELECT name, model_family, platform, endpoint, identifier,
                    api_key_ciphertext, api_key_nonce, api_key_key_id, api_key_fingerprint
             FROM self_hosted_models WHERE id = $1",
            id
        )
        .fetch_optional(db)
        .await?
        .ok_or_else(|| AppError::NotFound.respond())?;
        let sealed =
            match (row.api_key_ciphertext, row.api_key_nonce, row.api_key_key_id, row.api_key_fingerprint) {
                (Some(ciphertext), Some(nonce), Some(key_id), Some(fingerprint)) => {
                    Some(SealedKey { ciphertext, nonce, key_id, fingerprint })
                }
                _ => None,
            };
        Ok(StoredTarget {
            name: row.name,
            family: row.model_family,
            platform: Platform::parse(&row.platform).unwrap_or_default(),
            endpoint: row.endpoint,
            identifier: row.identifier,
            sealed,
        })
    }

    fn open_key(state: &AppState, sealed: Option<&SealedKey>) -> Result<Option<ApiKey>, AppError> {
        sealed
            .map(|sealed| {
                state.master_keys.open(sealed).map_err(|error| {
                    tracing::error!(%error, "a stored API key could not be opened");
                    AppError::Conflict(
                        "The stored API key cannot be decrypted with the configured master keys. Replace the key on the model's form."
                            .to_owned(),
                    )
                    .respond()
                })
            })
            .transpose()
    }

    fn target_for(
        platform: Platform,
        endpoint: Option<String>,
        identifier: &str,
        api_key: Option<ApiKey>,
    ) -> Target {
        // The provider prefix is LiteLLM's; neither Bedrock nor the model server knows it.
        let model = match ModelIdentifier::parse(platform, identifier) {
            Ok(parsed) => parsed.provider_model().to_owned(),
            Err(_) => identifier.to_owned(),
        };
        match platform {
            Platform::Bedrock => Target::Bedrock { model_id: model },
            Platform::Api => Target::OpenAi { endpoint: endpoint.unwrap_or_default(), model, api_key },
        }
    }

    pub async fn test_connection(
        id: Option<i64>,
        form: ModelForm,
        api_key_action: Option<String>,
        api_key: Option<String>,
    ) -> Result<ConnectionTest, AppError> {
        require_admin().await?;
        let state = expect_context::<AppState>();
        let valid = form
            .parse(|family| state.catalog.family(family).is_some())
            .map_err(|errors| AppError::Validation(errors).respond())?;
        let typed = api_key.map(|key| key.trim().to_owned()).filter(|key| !key.is_empty());
        let key = match (valid.platform, api_key_action.as_deref(), typed, id) {
            (Platform::Bedrock, ..) | (_, Some(KEY_REMOVE), ..) => None,
            (_, _, Some(typed), _) => Some(ApiKey::new(typed)),
            // Editing without a new key: test with the stored one.
            (_, Some(KEY_KEEP) | None, None, Some(id)) => {
                let stored = stored_target(&state.pool, id).await?;
                open_key(&state, stored.sealed.as_ref())?
            }
            _ => None,
        };
        let target = target_for(
            valid.platform,
            valid.endpoint.map(|e| e.as_str().to_owned()),
            valid.identifier.as_str(),
            key,
        );
        let exchange = Exchange {
            system: None,
            messages: vec![ChatMessage { speaker: Speaker::User, text: TEST_PROMPT.to_owned() }],
            max_tokens: TEST_MAX_TOKENS,
            temperature: None,
        };
        let limit = exchange_limit(&state.pool).await?;
        let mut events = Box::pin(stream_reply(&state.model_clients, target, exchange, limit));
        let mut reply = String::new();
        let mut result = None;
        while let Some(event) = events.next().await {
            match event {
                ChatEvent::Text(text) => reply.push_str(&text),
                ChatEvent::Done(figures) => {
                    result = Some(ConnectionTest {
                        ok: true,
                        message: CONNECTED.to_owned(),
                        reply: reply.clone(),
                        figures,
                    })
                }
                ChatEvent::Failed(message) => {
                    result = Some(ConnectionTest {
                        ok: false,
                        message,
                        reply: reply.clone(),
                        figures: Figures::default(),
                    })
                }
                ChatEvent::Answering(_) => {}
            }
        }
        let result = result.unwrap_or(ConnectionTest {
            ok: false,
            message: crate::chat::client::MALFORMED.to_owned(),
            reply,
            figures: Figures::default(),
        });
        if let Some(id) = id {
            record_last_test(&state.pool, id, result.ok, &result.message, &result.figures).await;
        }
        Ok(result)
    }

    fn conversation(messages: &str) -> Result<Vec<ChatMessage>, AppError> {
        let messages: Vec<ChatMessage> = serde_json::from_str(messages)
            .map_err(|_| AppError::field("messages", "The conversation could not be read.").respond())?;
        if messages
            .last()
            .is_none_or(|message| message.speaker != Speaker::User || message.text.trim().is_empty())
        {
            return Err(AppError::field("messages", "Type a message to send.").respond());
        }
        Ok(messages)
    }

    pub async fn chat_with_model(model_id: i64, messages: String) -> Result<TextStream<AppError>, AppError> {
        require_admin().await?;
        let state = expect_context::<AppState>();
        let messages = conversation(&messages)?;
        let stored = stored_target(&state.pool, model_id).await?;
        let exchange = Exchange { system: None, messages, max_tokens: 512, temperature: None };
        stream_lines(&state, model_id, stored, exchange, None).await
    }

    pub async fn chat_with_feature(
        feature: String,
        messages: String,
    ) -> Result<TextStream<AppError>, AppError> {
        require_admin().await?;
        let state = expect_context::<AppState>();
        let messages = conversation(&messages)?;
        let feature = state.catalog.feature(&feature).ok_or_else(|| AppError::NotFound.respond())?;
        let resolved = crate::features::api::ssr::resolve_model(&state.pool, &state.catalog, feature).await?;
        let Some((model_id, fallback)) = resolved else {
            return Err(AppError::Conflict(format!(
                "Assign a model to {} before testing it.",
                feature.title
            ))
            .respond());
        };
        let stored = stored_target(&state.pool, model_id).await?;
        let prompt = state.prompts.resolve(&feature.key, &stored.family).cloned();
        let answering = match fallback {
            Some(source) => format!("{} (the {source} model)", stored.name),
            None => stored.name.clone(),
        };
        let exchange = Exchange {
            system: prompt.as_ref().map(|p| p.system.clone()),
            messages,
            max_tokens: prompt.as_ref().map(|p| p.max_tokens).unwrap_or(512),
            temperature: prompt.and_then(|p| p.temperature),
        };
        stream_lines(&state, model_id, stored, exchange, Some(answering)).await
    }

    /// The reply as `ChatEvent` lines; its outcome becomes the model's last test.
    async fn stream_lines(
        state: &AppState,
        model_id: i64,
        stored: StoredTarget,
        exchange: Exchange,
        answering: Option<String>,
    ) -> Result<TextStream<AppError>, AppError> {
        let key = open_key(state, stored.sealed.as_ref())?;
        let target = target_for(stored.platform, stored.endpoint, &stored.identifier, key);
        let limit = exchange_limit(&state.pool).await?;
        let pool = state.pool.clone();
        let first = futures::stream::iter(answering.map(ChatEvent::Answering));
        let events =
            first.chain(stream_reply(&state.model_clients, target, exchange, limit)).then(move |event| {
                let pool = pool.clone();
                async move {
                    match &event {
                        ChatEvent::Done(figures) => {
                            record_last_test(&pool, model_id, true, "Answered", figures).await
                        }
                        ChatEvent::Failed(message) => {
                            record_last_test(&pool, model_id, false, message, &Figures::default()).await
                        }
                        ChatEvent::Text(_) | ChatEvent::Answering(_) => {}
                    }
                    Ok::<String, AppError>(event.to_line())
                }
            });
        Ok(TextStream::new(events))
    }

    /// Best effort: a failure to record the status must not hide the test's own outcome.
    /// A reply cut short by a shutdown says nothing about the model, so it is not recorded.
    async fn record_last_test(db: &sqlx::PgPool, id: i64, ok: bool, message: &str, figures: &Figures) {
        if message == SHUTTING_DOWN {
            return;
        }
        let last =
            LastTest { ok, message: message.to_owned(), figures: figures.clone(), at: chrono::Utc::now() };
        let Ok(value) = serde_json::to_value(&last) else { return };
        if let Err(error) =
            sqlx::query!("UPDATE self_hosted_models SET last_test = $2 WHERE id = $1", id, value)
                .execute(db)
                .await
        {
            tracing::warn!(%error, "could not record a model's last test");
        }
    }
}
