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
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConnectionTest {
    pub ok: bool,
    pub message: String,
    pub reply: String,
    pub figures: Figures,
    /// Whether it became the model's last test: only a test of the saved values does.
    pub recorded: bool,
}

/// Said under a test of an edited form's unsaved values.
pub const NOT_RECORDED: &str =
    "These values are not saved, so this test is not recorded as the model's last test.";

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

/// "Load models": the models the form's endpoint (or Bedrock region) offers, to pick the
/// identifier from. Each failure comes back at the field to fix; nothing is stored.
#[server(endpoint = "discover_self_hosted_models")]
pub async fn discover_models(
    id: Option<i64>,
    #[server(flatten)] form: ModelForm,
) -> Result<Vec<crate::models::domain::DiscoveredModel>, AppError> {
    ssr::discover_models(id, form).await.map_err(AppError::respond)
}

impl From<SaveModel> for DiscoverModels {
    fn from(save: SaveModel) -> Self {
        DiscoverModels { id: save.id, form: save.form }
    }
}

/// "Test all": asks every model GitLab's probe, several at once, and streams each outcome as a
/// `TestAllEvent` line as it comes, then the summary. Each outcome joins the model's history.
#[server(endpoint = "test_all_self_hosted_models", output = StreamingText)]
pub async fn test_all_models() -> Result<TextStream<AppError>, AppError> {
    ssr::test_all_models().await.map_err(AppError::respond)
}

/// "Test all" on the features tab: every visible feature that a model serves (its own or its
/// fallback's) is asked GitLab's probe with that feature's prompt, several at once, streamed as
/// on the models tab. Each outcome joins the answering model's history.
#[server(endpoint = "test_all_ai_features", output = StreamingText)]
pub async fn test_all_features() -> Result<TextStream<AppError>, AppError> {
    ssr::test_all_features().await.map_err(AppError::respond)
}

/// How many models "Test all" tests at once.
pub const TEST_ALL_FAN_OUT: usize = 8;
/// The answer to a "Test all" while another one runs, on this replica or another.
pub const TEST_ALL_BUSY: &str = "A Test all is already running. Wait for its results, then try again.";

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
    use crate::chat::client::{
        AZURE_PREFIX, Callee, Exchange, ModelFailure, ModelSource, ReplyEvent, Target, discover,
        is_azure_resource, stream_reply,
    };
    use crate::chat::prompts::Prompts;
    use crate::chat::{ChatEvent, ChatMessage, Speaker, TestAllEvent};
    use crate::configuration::api::ssr::exchange_limit;
    use crate::models::domain::{
        BedrockRegion, DiscoveredModel, Endpoint, GoogleProject, Platform, VertexLocation,
    };
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

    /// Where a stored model is called, with its opened key.
    fn stored_target(model: CallableModel, key: Option<ApiKey>) -> Target {
        Target::new(Callee {
            platform: model.platform,
            endpoint: model.endpoint,
            identifier: &model.identifier,
            bedrock_region: model.bedrock_region,
            google: model.vertex_project.zip(model.vertex_location),
            api_key: key,
        })
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
        let endpoint = valid.endpoint.as_ref().map(|e| e.as_str().to_owned());
        let region = valid.bedrock_region.as_ref().map(|region| region.as_str().to_owned());
        let google = valid
            .google
            .as_ref()
            .map(|(project, location)| (project.as_str().to_owned(), location.as_str().to_owned()));
        let stored = match id {
            Some(id) => Some(store::callable(&state.pool, id).await?),
            None => None,
        };
        // A test speaks for the saved model only if it tested exactly what is saved; a test
        // of edited values is shown, never recorded as the model's.
        let saved_values = stored.as_ref().is_some_and(|stored| {
            let same_key = !valid.platform.uses_api_key()
                || match (form.key_action(), form.typed_key()) {
                    (KeyAction::Remove, _) => stored.sealed_key.is_none(),
                    (_, Some(_)) => false,
                    (_, None) => true,
                };
            valid.name.as_str() == stored.name
                && valid.platform == stored.platform
                && valid.model_family == stored.family
                && endpoint == stored.endpoint
                && valid.identifier.as_str() == stored.identifier
                && region == stored.bedrock_region
                && google.as_ref().map(|(project, _)| project) == stored.vertex_project.as_ref()
                && google.as_ref().map(|(_, location)| location) == stored.vertex_location.as_ref()
                && same_key
        });
        let key = key_to_send(&state, &user, valid.platform, endpoint.as_deref(), &form, id, "test").await?;
        let target = Target::new(Callee {
            platform: valid.platform,
            endpoint,
            identifier: valid.identifier.as_str(),
            bedrock_region: region,
            google,
            api_key: key,
        });
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
        let recorded = match id {
            Some(id) if saved_values => {
                record_last_test(
                    &state.pool,
                    id,
                    &outcome,
                    CONNECTED,
                    &user.username,
                    TestKind::TestConnection,
                )
                .await;
                true
            }
            _ => false,
        };
        Ok(match outcome {
            Ok(figures) => {
                ConnectionTest { ok: true, message: CONNECTED.to_owned(), reply, figures, recorded }
            }
            Err(failure) => ConnectionTest {
                ok: false,
                message: failure.to_string(),
                reply,
                figures: Figures::default(),
                recorded,
            },
        })
    }

    /// The key a call with the form's values sends: the typed one, else (editing) the stored
    /// one, but only to the endpoint's origin it was stored for: a changed endpoint could be
    /// anyone's. `purpose` names the call in the audit trail ("test", "list the models of").
    async fn key_to_send(
        state: &Talk,
        user: &crate::auth::CurrentUser,
        platform: crate::models::domain::Platform,
        endpoint: Option<&str>,
        form: &ModelForm,
        id: Option<i64>,
        purpose: &str,
    ) -> Result<Option<ApiKey>, AppError> {
        Ok(match (platform.uses_api_key(), form.key_action(), form.typed_key(), id) {
            (false, ..) | (_, KeyAction::Remove, ..) => None,
            (_, _, Some(typed), _) => Some(ApiKey::new(typed.to_owned())),
            (_, KeyAction::Keep | KeyAction::Replace, None, Some(id)) => {
                let stored = store::callable(&state.pool, id).await?;
                if stored.sealed_key.is_none() {
                    return Ok(None);
                }
                let typed_origin = endpoint.and_then(origin_of);
                if typed_origin.is_none() || typed_origin != stored.endpoint.as_deref().and_then(origin_of) {
                    return Err(AppError::field("api_key", KEY_NEEDED_FOR_NEW_ENDPOINT));
                }
                let key = open_key(&stored)?;
                audit_stored_key_use(&state.pool, user, &stored, purpose).await?;
                key
            }
            _ => None,
        })
    }

    /// "Load models" on the form: the models its endpoint (or its Bedrock region) offers,
    /// asked with the form's unsaved values. Nothing is stored.
    pub async fn discover_models(id: Option<i64>, form: ModelForm) -> Result<Vec<DiscoveredModel>, AppError> {
        let user = require_admin().await?;
        let state = talk();
        // Only what the call needs is checked: the name, family and identifier may still be blank.
        let platform =
            Platform::parse(&form.platform).map_err(|message| AppError::field("platform", message))?;
        let source = match platform {
            Platform::OpenAiCompatible => {
                let endpoint = Endpoint::parse(&form.endpoint)
                    .map_err(|message| AppError::field("endpoint", message))?;
                let api_key = key_to_send(
                    &state,
                    &user,
                    platform,
                    Some(endpoint.as_str()),
                    &form,
                    id,
                    "list the models of",
                )
                .await?;
                let endpoint = endpoint.as_str().to_owned();
                // Azure's resources list their deployments on their own path and key header:
                // known by an `azure/` identifier, or by the resource's host.
                if form.identifier.trim().starts_with(AZURE_PREFIX) || is_azure_resource(&endpoint) {
                    ModelSource::AzureOpenAi { endpoint, api_key }
                } else {
                    ModelSource::OpenAiCompatible { endpoint, api_key }
                }
            }
            Platform::Bedrock => {
                let region = BedrockRegion::parse(&form.bedrock_region)
                    .map_err(|message| AppError::field("bedrock_region", message))?;
                ModelSource::Bedrock { region: region.map(|region| region.as_str().to_owned()) }
            }
            Platform::VertexAi => {
                let project = GoogleProject::parse(&form.vertex_project)
                    .map_err(|message| AppError::field("vertex_project", message))?;
                let location = VertexLocation::parse(&form.vertex_location)
                    .map_err(|message| AppError::field("vertex_location", message))?;
                ModelSource::VertexAi {
                    project: project.as_str().to_owned(),
                    location: location.as_str().to_owned(),
                }
            }
        };
        let limit = exchange_limit(&state.pool).await?;
        discover(&state.clients, source, limit)
            .await
            .map_err(|failure| AppError::field(failure.field, failure.message))
    }

    /// A stored key was opened for a call: who, which model, which endpoint (never the key).
    async fn audit_stored_key_use(
        pool: &sqlx::PgPool,
        user: &crate::auth::CurrentUser,
        model: &CallableModel,
        purpose: &str,
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
                    "Stored API key of self-hosted model {} used to {purpose} {endpoint}",
                    model.name
                ),
                before: None,
                after: Some(serde_json::json!({ "endpoint": endpoint })),
            },
        )
        .await?;
        Ok(())
    }

    /// Asks a stored model GitLab's probe ("Just say hello.", 16 tokens), after a feature's
    /// system prompt when a feature is tested.
    pub async fn probe(
        clients: &ModelClients,
        master_keys: &MasterKeys,
        model: CallableModel,
        system: Option<String>,
        limit: std::time::Duration,
    ) -> Result<Figures, ModelFailure> {
        let key = model.open_key(master_keys).map_err(|error| {
            tracing::warn!(model = model.id, %error, "a stored API key could not be opened for a probe");
            ModelFailure::Provider(
                "The stored API key cannot be decrypted with the configured master keys. Replace the key on the model's form."
                    .to_owned(),
            )
        })?;
        let target = stored_target(model, key);
        let exchange = Exchange {
            system,
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

    /// The key of the advisory lock that lets one "Test all" run at a time.
    const TEST_ALL_LOCK: i64 = 0x7465_7374_5f61_6c6c;

    /// One "Test all" at a time across the console, whichever replica and tab it comes from:
    /// each holds a transaction-level advisory lock for as long as its stream lives, so a second
    /// click, a script looping on the endpoint or a second replica cannot multiply the calls to
    /// every model. The lock goes with the transaction: when the run ends, or its stream is
    /// dropped because the browser went away.
    async fn claim_test_all(
        pool: &sqlx::PgPool,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, AppError> {
        let mut claim = pool.begin().await?;
        let claimed =
            sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock($1) AS "claimed!""#, TEST_ALL_LOCK)
                .fetch_one(&mut *claim)
                .await?;
        if !claimed {
            return Err(AppError::Conflict(TEST_ALL_BUSY.to_owned()));
        }
        Ok(claim)
    }

    pub async fn test_all_models() -> Result<TextStream<AppError>, AppError> {
        let user = require_admin().await?;
        let state = talk();
        let claim = claim_test_all(&state.pool).await?;
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
                        Ok(callable) => probe(&clients, &master_keys, callable, None, limit).await,
                        Err(_) => Err(ModelFailure::Provider("The model could not be read.".to_owned())),
                    };
                    record_last_test(&pool, model.id, &outcome, CONNECTED, &ran_by, TestKind::TestAll).await;
                    let (ok, message, total_ms) = match outcome {
                        Ok(figures) => (true, CONNECTED.to_owned(), figures.total_ms),
                        Err(failure) => (false, failure.to_string(), 0),
                    };
                    TestAllEvent::Tested { subject: model.name, ok, message, total_ms }
                }
            })
            .buffer_unordered(TEST_ALL_FAN_OUT);
        Ok(test_all_lines(total, outcomes, claim))
    }

    pub async fn test_all_features() -> Result<TextStream<AppError>, AppError> {
        let user = require_admin().await?;
        let state = talk();
        let claim = claim_test_all(&state.pool).await?;
        let master_keys = expect_context::<Arc<MasterKeys>>();
        let prompts = expect_context::<Arc<Prompts>>();
        let beta = crate::configuration::api::ssr::beta_enabled(&state.pool).await?;
        let served: Vec<(String, String, i64)> =
            crate::features::api::ssr::served_by(&state.pool, &state.catalog, beta)
                .await?
                .into_iter()
                .filter_map(|(key, model)| {
                    let title = state.catalog.feature(&key)?.title.clone();
                    Some((key, title, model?))
                })
                .collect();
        let limit = exchange_limit(&state.pool).await?;
        record(
            &state.pool,
            &Actor::signed_in(&user).await,
            NewAuditEvent {
                action: "ai_features_tested",
                target_type: "AiFeatureSetting",
                target_id: None,
                target_name: None,
                message: format!("Tested all {} AI-native features that have a model", served.len()),
                before: None,
                after: None,
            },
        )
        .await?;
        let total = served.len();
        let (pool, clients, ran_by) = (state.pool.clone(), state.clients.clone(), user.username);
        let outcomes = futures::stream::iter(served)
            .map(move |(key, title, model_id)| {
                let (pool, clients, master_keys, prompts, ran_by) =
                    (pool.clone(), clients.clone(), master_keys.clone(), prompts.clone(), ran_by.clone());
                async move {
                    let (outcome, answering) = match store::callable(&pool, model_id).await {
                        Ok(model) => {
                            let name = model.name.clone();
                            let system = prompts.resolve(&key, &model.family).map(|p| p.system.clone());
                            (probe(&clients, &master_keys, model, system, limit).await, name)
                        }
                        Err(_) => (
                            Err(ModelFailure::Provider("The model could not be read.".to_owned())),
                            String::new(),
                        ),
                    };
                    record_last_test(&pool, model_id, &outcome, CONNECTED, &ran_by, TestKind::TestAll).await;
                    let (ok, message, total_ms) = match outcome {
                        Ok(figures) => (true, format!("{answering} answered"), figures.total_ms),
                        Err(failure) => (false, failure.to_string(), 0),
                    };
                    TestAllEvent::Tested { subject: title, ok, message, total_ms }
                }
            })
            .buffer_unordered(TEST_ALL_FAN_OUT);
        Ok(test_all_lines(total, outcomes, claim))
    }

    /// A Test all's lines: how many, each outcome as it comes, then how many answered.
    fn test_all_lines(
        total: usize,
        outcomes: impl futures::Stream<Item = TestAllEvent> + Send + 'static,
        claim: sqlx::Transaction<'static, sqlx::Postgres>,
    ) -> TextStream<AppError> {
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = answered.clone();
        let lines = futures::stream::once(async move { TestAllEvent::Started(total) })
            .chain(outcomes.inspect(move |event| {
                if matches!(event, TestAllEvent::Tested { ok: true, .. }) {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }))
            .chain(futures::stream::once(async move {
                // Let go of the claim before saying so: a Test all started on "Finished" runs.
                if let Err(error) = claim.rollback().await {
                    tracing::warn!(%error, "a Test all's claim could not be let go; it ends with its connection");
                }
                TestAllEvent::Finished { answered: answered.load(std::sync::atomic::Ordering::SeqCst), total }
            }))
            .map(|event| Ok::<String, AppError>(crate::chat::ascii_line(&event)));
        TextStream::new(lines)
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
        let target = stored_target(model, key);
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
