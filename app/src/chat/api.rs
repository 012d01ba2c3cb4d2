//! Server functions that talk to models: "Test connection" with the form's unsaved values, and
//! the streaming chat with a saved model or with the model a feature uses. Each outcome becomes
//! the model's last test (through the models store).

use leptos::prelude::*;
use leptos::server_fn::codec::{StreamingText, TextStream};
use serde::{Deserialize, Serialize};

use super::Figures;
use crate::error::AppError;
use crate::models::api::SaveModel;
use crate::models::domain::ModelForm;

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

/// Asks the model described by the form (not yet saved) to say hello.
#[server(endpoint = "test_self_hosted_model_connection")]
pub async fn test_connection(
    id: Option<i64>,
    #[server(flatten)] form: ModelForm,
) -> Result<ConnectionTest, AppError> {
    ssr::test_connection(id, form).await.map_err(AppError::respond)
}

/// The form's "Test connection" sends what "Save" would.
impl From<SaveModel> for TestConnection {
    fn from(save: SaveModel) -> Self {
        TestConnection { id: save.id, form: save.form }
    }
}

/// "Test all": asks every model GitLab's probe, several at once, and streams each outcome as a
/// `TestAllEvent` line as it comes, then the summary. Each outcome joins the model's history.
#[server(endpoint = "test_all_self_hosted_models", output = StreamingText)]
pub async fn test_all_models() -> Result<TextStream<AppError>, AppError> {
    ssr::test_all_models().await.map_err(AppError::respond)
}

/// How many models "Test all" tests at once.
pub const TEST_ALL_FAN_OUT: usize = 8;

/// Streams a saved model's reply to the conversation in `messages` (JSON of `ChatMessage`s),
/// one `ChatEvent` line at a time.
#[server(endpoint = "chat_with_self_hosted_model", output = StreamingText)]
pub async fn chat_with_model(model_id: i64, messages: String) -> Result<TextStream<AppError>, AppError> {
    ssr::chat_with_model(model_id, messages).await.map_err(AppError::respond)
}

/// Streams the reply of the model a feature really uses (its own, or the one it falls back to),
/// with that feature's prompt for the model's family. The first line names the model.
#[server(endpoint = "chat_with_ai_feature", output = StreamingText)]
pub async fn chat_with_feature(feature: String, messages: String) -> Result<TextStream<AppError>, AppError> {
    ssr::chat_with_feature(feature, messages).await.map_err(AppError::respond)
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::sync::Arc;

    use futures::StreamExt;

    use super::*;
    use crate::audit::ssr::{Actor, NewAuditEvent, record};
    use crate::auth::ssr::require_admin;
    use crate::catalog::Catalog;
    use crate::chat::client::ModelClients;
    use crate::chat::client::{Exchange, ModelFailure, ReplyEvent, Target, stream_reply};
    use crate::chat::prompts::Prompts;
    use crate::chat::{ChatEvent, ChatMessage, Speaker, TestAllEvent};
    use crate::configuration::api::ssr::exchange_limit;
    use crate::models::domain::{KEY_NEEDED_FOR_NEW_ENDPOINT, KeyAction, LastTest, origin_of};
    use crate::models::secrets::{ApiKey, MasterKeys};
    use crate::models::store::{self, CallableModel, TestKind};

    /// What a conversation with a model needs, from the request's context.
    struct Talk {
        pool: sqlx::PgPool,
        catalog: Arc<Catalog>,
        clients: Arc<ModelClients>,
    }

    fn talk() -> Talk {
        Talk { pool: expect_context(), catalog: expect_context(), clients: expect_context() }
    }

    fn open_key(model: &CallableModel) -> Result<Option<ApiKey>, AppError> {
        model.open_key(&expect_context::<Arc<MasterKeys>>()).map_err(|error| {
            tracing::error!(model = model.id, %error, "a stored API key could not be opened");
            AppError::Conflict(
                "The stored API key cannot be decrypted with the configured master keys. Replace the key on the model's form."
                    .to_owned(),
            )
        })
    }

    pub async fn test_connection(id: Option<i64>, form: ModelForm) -> Result<ConnectionTest, AppError> {
        let user = require_admin().await?;
        let state = talk();
        let valid =
            form.parse(|family| state.catalog.family(family).is_some()).map_err(AppError::Validation)?;
        let endpoint = valid.endpoint.map(|e| e.as_str().to_owned());
        let key = match (valid.platform.uses_api_key(), form.key_action(), form.typed_key(), id) {
            (false, ..) | (_, KeyAction::Remove, ..) => None,
            (_, _, Some(typed), _) => Some(ApiKey::new(typed.to_owned())),
            // Editing without a new key: test with the stored one, but only at the endpoint it
            // was stored for; a changed endpoint could be anyone's.
            (_, KeyAction::Keep | KeyAction::Replace, None, Some(id)) => {
                let stored = store::callable(&state.pool, id).await?;
                if stored.sealed_key.is_none() {
                    None
                } else {
                    let typed_origin = endpoint.as_deref().and_then(origin_of);
                    if typed_origin.is_none()
                        || typed_origin != stored.endpoint.as_deref().and_then(origin_of)
                    {
                        return Err(AppError::field("api_key", KEY_NEEDED_FOR_NEW_ENDPOINT));
                    }
                    let key = open_key(&stored)?;
                    audit_stored_key_use(&state.pool, &user, &stored).await?;
                    key
                }
            }
            _ => None,
        };
        let target = Target::new(valid.platform, endpoint, valid.identifier.as_str(), key);
        let exchange = Exchange {
            system: None,
            messages: vec![ChatMessage { speaker: Speaker::User, text: TEST_PROMPT.to_owned() }],
            max_tokens: TEST_MAX_TOKENS,
            temperature: None,
        };
        let limit = exchange_limit(&state.pool).await?;
        let mut events = Box::pin(stream_reply(&state.clients, target, exchange, limit));
        let mut reply = String::new();
        let mut outcome = Err(ModelFailure::Malformed);
        while let Some(event) = events.next().await {
            match event {
                ReplyEvent::Text(text) => reply.push_str(&text),
                ReplyEvent::Done(figures) => outcome = Ok(figures),
                ReplyEvent::Failed(failure) => outcome = Err(failure),
            }
        }
        if let Some(id) = id {
            record_last_test(&state.pool, id, &outcome, CONNECTED, &user.username, TestKind::TestConnection)
                .await;
        }
        Ok(match outcome {
            Ok(figures) => ConnectionTest { ok: true, message: CONNECTED.to_owned(), reply, figures },
            Err(failure) => {
                ConnectionTest { ok: false, message: failure.to_string(), reply, figures: Figures::default() }
            }
        })
    }

    /// A stored key was opened for a test: who, which model, which endpoint (never the key).
    async fn audit_stored_key_use(
        pool: &sqlx::PgPool,
        user: &crate::auth::CurrentUser,
        model: &CallableModel,
    ) -> Result<(), AppError> {
        let endpoint = model.endpoint.as_deref().unwrap_or("--");
        record(
            pool,
            &Actor::signed_in(user).await,
            NewAuditEvent {
                action: "model_stored_key_used",
                target_type: "SelfHostedModel",
                target_id: Some(model.id.to_string()),
                target_name: Some(&model.name),
                message: format!(
                    "Stored API key of self-hosted model {} used to test {endpoint}",
                    model.name
                ),
                before: None,
                after: Some(serde_json::json!({ "endpoint": endpoint })),
            },
        )
        .await?;
        Ok(())
    }

    /// Asks a stored model GitLab's probe ("Just say hello.", 16 tokens).
    pub async fn probe(
        clients: &ModelClients,
        master_keys: &MasterKeys,
        model: CallableModel,
        limit: std::time::Duration,
    ) -> Result<Figures, ModelFailure> {
        let key = model.open_key(master_keys).map_err(|error| {
            tracing::warn!(model = model.id, %error, "a stored API key could not be opened for a probe");
            ModelFailure::Provider(
                "The stored API key cannot be decrypted with the configured master keys. Replace the key on the model's form."
                    .to_owned(),
            )
        })?;
        let target = Target::new(model.platform, model.endpoint, &model.identifier, key);
        let exchange = Exchange {
            system: None,
            messages: vec![ChatMessage { speaker: Speaker::User, text: TEST_PROMPT.to_owned() }],
            max_tokens: TEST_MAX_TOKENS,
            temperature: None,
        };
        let mut outcome = Err(ModelFailure::Malformed);
        let mut events = Box::pin(stream_reply(clients, target, exchange, limit));
        while let Some(event) = events.next().await {
            match event {
                ReplyEvent::Done(figures) => outcome = Ok(figures),
                ReplyEvent::Failed(failure) => outcome = Err(failure),
                ReplyEvent::Text(_) => {}
            }
        }
        outcome
    }

    pub async fn test_all_models() -> Result<TextStream<AppError>, AppError> {
        let user = require_admin().await?;
        let state = talk();
        let master_keys = expect_context::<Arc<MasterKeys>>();
        let models = store::summaries(&state.pool).await?;
        let limit = exchange_limit(&state.pool).await?;
        record(
            &state.pool,
            &Actor::signed_in(&user).await,
            NewAuditEvent {
                action: "self_hosted_models_tested",
                target_type: "SelfHostedModel",
                target_id: None,
                target_name: None,
                message: format!("Tested all {} self-hosted models", models.len()),
                before: None,
                after: None,
            },
        )
        .await?;
        let total = models.len();
        let (pool, clients, ran_by) = (state.pool.clone(), state.clients.clone(), user.username);
        let outcomes = futures::stream::iter(models)
            .map(move |model| {
                let (pool, clients, master_keys, ran_by) =
                    (pool.clone(), clients.clone(), master_keys.clone(), ran_by.clone());
                async move {
                    let outcome = match store::callable(&pool, model.id).await {
                        Ok(callable) => probe(&clients, &master_keys, callable, limit).await,
                        Err(_) => Err(ModelFailure::Provider("The model could not be read.".to_owned())),
                    };
                    record_last_test(&pool, model.id, &outcome, CONNECTED, &ran_by, TestKind::TestConnection)
                        .await;
                    let (ok, message, total_ms) = match outcome {
                        Ok(figures) => (true, CONNECTED.to_owned(), figures.total_ms),
                        Err(failure) => (false, failure.to_string(), 0),
                    };
                    TestAllEvent::Tested { model: model.name, ok, message, total_ms }
                }
            })
            .buffer_unordered(TEST_ALL_FAN_OUT);
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = answered.clone();
        let lines = futures::stream::once(async move { TestAllEvent::Started(total) })
            .chain(outcomes.inspect(move |event| {
                if matches!(event, TestAllEvent::Tested { ok: true, .. }) {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }))
            .chain(futures::stream::once(async move {
                TestAllEvent::Finished { answered: answered.load(std::sync::atomic::Ordering::SeqCst), total }
            }))
            .map(|event| Ok::<String, AppError>(crate::chat::ascii_line(&event)));
        Ok(TextStream::new(lines))
    }

    fn conversation(messages: &str) -> Result<Vec<ChatMessage>, AppError> {
        let messages: Vec<ChatMessage> = serde_json::from_str(messages)
            .map_err(|_| AppError::field("messages", "The conversation could not be read."))?;
        if messages
            .last()
            .is_none_or(|message| message.speaker != Speaker::User || message.text.trim().is_empty())
        {
            return Err(AppError::field("messages", "Type a message to send."));
        }
        Ok(messages)
    }

    pub async fn chat_with_model(model_id: i64, messages: String) -> Result<TextStream<AppError>, AppError> {
        let user = require_admin().await?;
        let state = talk();
        let messages = conversation(&messages)?;
        let model = store::callable(&state.pool, model_id).await?;
        let exchange = Exchange { system: None, messages, max_tokens: 512, temperature: None };
        stream_lines(&state, user.username, model_id, model, exchange, None).await
    }

    pub async fn chat_with_feature(
        feature: String,
        messages: String,
    ) -> Result<TextStream<AppError>, AppError> {
        let user = require_admin().await?;
        let state = talk();
        let messages = conversation(&messages)?;
        let feature = state.catalog.feature(&feature).ok_or(AppError::NotFound)?;
        let resolved = crate::features::api::ssr::resolve_model(&state.pool, &state.catalog, feature).await?;
        let Some((model_id, fallback)) = resolved else {
            return Err(AppError::Conflict(format!(
                "Assign a model to {} before testing it.",
                feature.title
            )));
        };
        let model = store::callable(&state.pool, model_id).await?;
        let prompt = expect_context::<Arc<Prompts>>().resolve(&feature.key, &model.family).cloned();
        let answering = match fallback {
            Some(source) => format!("{} (the {source} model)", model.name),
            None => model.name.clone(),
        };
        let exchange = Exchange {
            system: prompt.as_ref().map(|p| p.system.clone()),
            messages,
            max_tokens: prompt.as_ref().map(|p| p.max_tokens).unwrap_or(512),
            temperature: prompt.and_then(|p| p.temperature),
        };
        stream_lines(&state, user.username, model_id, model, exchange, Some(answering)).await
    }

    /// The reply as `ChatEvent` lines; its outcome becomes the model's last test.
    async fn stream_lines(
        state: &Talk,
        ran_by: String,
        model_id: i64,
        model: CallableModel,
        exchange: Exchange,
        answering: Option<String>,
    ) -> Result<TextStream<AppError>, AppError> {
        let key = open_key(&model)?;
        let target = Target::new(model.platform, model.endpoint, &model.identifier, key);
        let limit = exchange_limit(&state.pool).await?;
        let pool = state.pool.clone();
        let first = futures::stream::iter(answering.map(ChatEvent::Answering));
        let reply = stream_reply(&state.clients, target, exchange, limit).then(move |event| {
            let (pool, ran_by) = (pool.clone(), ran_by.clone());
            async move {
                let outcome = match &event {
                    ReplyEvent::Done(figures) => Some(Ok(figures.clone())),
                    ReplyEvent::Failed(failure) => Some(Err(failure.clone())),
                    ReplyEvent::Text(_) => None,
                };
                if let Some(outcome) = outcome {
                    record_last_test(&pool, model_id, &outcome, "Answered", &ran_by, TestKind::Chat).await;
                }
                ChatEvent::from(event)
            }
        });
        let lines = first.chain(reply).map(|event| Ok::<String, AppError>(event.to_line()));
        Ok(TextStream::new(lines))
    }

    /// Records an exchange's outcome as the model's last test and in its history (`success`
    /// names a success). A reply cut short by a shutdown says nothing about the model, so it is
    /// not recorded.
    pub async fn record_last_test(
        db: &sqlx::PgPool,
        id: i64,
        outcome: &Result<Figures, ModelFailure>,
        success: &str,
        ran_by: &str,
        kind: TestKind,
    ) {
        let (ok, message, figures) = match outcome {
            Err(ModelFailure::ShuttingDown) => return,
            Ok(figures) => (true, success.to_owned(), figures.clone()),
            Err(failure) => (false, failure.to_string(), Figures::default()),
        };
        let last = LastTest { ok, message, figures, at: chrono::Utc::now() };
        store::record_test(db, id, &last, ran_by, kind).await;
    }
}
