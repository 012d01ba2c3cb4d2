//! The model clients behind one function, `stream_reply`: one provider per file, each speaking
//! its platform's wire (`bedrock.rs`: Amazon Bedrock through the AWS SDK; `openai.rs`:
//! OpenAI-compatible servers such as vLLM; `azure.rs`: Azure OpenAI, the same chat completions
//! on Azure's own paths and key header, for `azure/DEPLOYMENT` identifiers). Every exchange is bounded twice: a limit for the
//! whole exchange and an idle limit between two pieces of the reply, since the SDK's own
//! timeouts do not cover a stream that stalls. Failures are `ModelFailure`s, sentences an admin
//! can act on, never "service error" and never with a secret in them.

mod azure;
mod bedrock;
mod openai;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;

use super::{ChatEvent, ChatMessage, Figures};
use crate::models::domain::{ModelIdentifier, Platform};
use crate::models::secrets::ApiKey;

/// Why an exchange with a model failed. `Display` is the sentence the admin reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelFailure {
    #[error(
        "No AWS credentials were found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an instance role) in the environment of the console's process, then restart it."
    )]
    NoCredentials,
    #[error(
        "Amazon Bedrock rejected the request's signature. Check AWS_SECRET_ACCESS_KEY, and that this machine's clock is right."
    )]
    SignatureRejected,
    #[error(
        "The model stopped sending its reply partway through (no data within the idle limit). Check the model server's load and logs, then try again."
    )]
    StreamStalled,
    #[error(
        "The model server accepted the connection but did not answer within the idle limit. Check that the model is loaded and not overloaded."
    )]
    NoAnswer,
    #[error(
        "The console is shutting down, so this reply was cut short. Send your message again in a moment."
    )]
    ShuttingDown,
    #[error(
        "The model server sent a response that could not be read. Check that the endpoint serves the OpenAI-compatible (or Bedrock) API."
    )]
    Malformed,
    #[error(
        "The model server's reply was larger than {limit_kib} KiB, so the console stopped reading it. Check that the endpoint is a model server."
    )]
    TooLarge { limit_kib: usize },
    #[error(
        "The model did not finish within the AI Gateway request timeout ({seconds} seconds). Raise it on the Configuration page, or check the model server's load."
    )]
    ExchangeTimedOut { seconds: u64 },
    /// The reader (the browser) went away; nobody reads this one.
    #[error("The reader went away.")]
    ReaderGone,
    /// The platform refused or could not be reached, in a sentence of its provider's (a
    /// Bedrock error code, an HTTP status, an unreachable endpoint).
    #[error("{0}")]
    Provider(String),
}

/// The Azure OpenAI REST API version used unless `AZURE_OPENAI_API_VERSION` says otherwise: the
/// current generally available one.
pub const AZURE_API_VERSION: &str = "2024-10-21";

/// The clients, built once at start and shared.
#[derive(Clone, Debug)]
pub struct ModelClients {
    pub bedrock: aws_sdk_bedrockruntime::Client,
    pub http: reqwest::Client,
    /// The longest wait between two pieces of a reply.
    pub idle_limit: Duration,
    /// The `api-version` of Azure OpenAI calls.
    pub azure_api_version: String,
    /// Turns true when a shutdown's grace period is over: every reply still streaming ends
    /// with `ModelFailure::ShuttingDown`, so the server can finish closing its connections.
    cut_short: Arc<tokio::sync::watch::Sender<bool>>,
}

impl ModelClients {
    /// From the standard AWS chain (environment, profile, SSO, instance role), with the region
    /// defaulting to us-east-1 and `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` honoured.
    pub async fn from_environment(idle_limit: Duration) -> ModelClients {
        ModelClients::new(bedrock::client_from_environment().await, idle_limit)
    }

    pub fn new(bedrock: aws_sdk_bedrockruntime::Client, idle_limit: Duration) -> ModelClients {
        let cut_short = Arc::new(tokio::sync::watch::Sender::new(false));
        let azure_api_version = AZURE_API_VERSION.to_owned();
        ModelClients { bedrock, http: openai::http_client(), idle_limit, azure_api_version, cut_short }
    }

    pub fn with_azure_api_version(mut self, version: String) -> ModelClients {
        self.azure_api_version = version;
        self
    }

    /// Ends every reply in flight (and any started from now on) with `ShuttingDown`.
    pub fn cut_replies_short(&self) {
        self.cut_short.send_replace(true);
    }
}

/// Where the request goes: built from a model's platform, endpoint, identifier and key, here
/// and nowhere else.
#[derive(Debug)]
pub enum Target {
    /// `model_id` without the `bedrock/` prefix: a model id, inference profile id or ARN.
    Bedrock {
        model_id: String,
    },
    OpenAiCompatible {
        endpoint: String,
        model: String,
        api_key: Option<ApiKey>,
    },
    /// An `azure/DEPLOYMENT` identifier on the API platform: the endpoint is the Azure OpenAI
    /// resource (`https://NAME.openai.azure.com`).
    AzureOpenAi {
        endpoint: String,
        deployment: String,
        api_key: Option<ApiKey>,
    },
}

impl Target {
    pub fn new(
        platform: Platform,
        endpoint: Option<String>,
        identifier: &str,
        api_key: Option<ApiKey>,
    ) -> Target {
        // The provider prefix is LiteLLM's; neither Bedrock nor the model server knows it.
        let (provider, model) = match ModelIdentifier::parse(platform, identifier) {
            Ok(parsed) => (parsed.provider().map(str::to_owned), parsed.provider_model().to_owned()),
            Err(_) => (None, identifier.to_owned()),
        };
        let endpoint = endpoint.unwrap_or_default();
        match platform {
            Platform::Bedrock => Target::Bedrock { model_id: model },
            Platform::OpenAiCompatible if provider.as_deref() == Some("azure") => {
                Target::AzureOpenAi { endpoint, deployment: model, api_key }
            }
            Platform::OpenAiCompatible => Target::OpenAiCompatible { endpoint, model, api_key },
        }
    }
}

#[derive(Debug, Clone)]
pub struct Exchange {
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: i32,
    pub temperature: Option<f32>,
}

/// One piece of a reply as the server sees it: the failure still typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyEvent {
    Text(String),
    Done(Figures),
    Failed(ModelFailure),
}

impl From<ReplyEvent> for ChatEvent {
    fn from(event: ReplyEvent) -> Self {
        match event {
            ReplyEvent::Text(text) => ChatEvent::Text(text),
            ReplyEvent::Done(figures) => ChatEvent::Done(figures),
            ReplyEvent::Failed(failure) => ChatEvent::Failed(failure.to_string()),
        }
    }
}

/// A reply being written: where its pieces go, and what is measured of it.
pub(crate) struct Reply {
    sender: tokio::sync::mpsc::Sender<ReplyEvent>,
    started: Instant,
    figures: Figures,
}

impl Reply {
    /// Sends a piece of text on, noting when the first one came.
    async fn forward(&mut self, text: String) -> Result<(), ModelFailure> {
        if text.is_empty() {
            return Ok(());
        }
        self.figures.first_token_ms.get_or_insert(self.started.elapsed().as_millis() as u64);
        // The browser went away: stop talking to the model.
        self.sender.send(ReplyEvent::Text(text)).await.map_err(|_| ModelFailure::ReaderGone)
    }
}

/// Streams the reply: `Text` pieces, then `Done` with the figures, or `Failed`. The whole
/// exchange ends within `total`.
pub fn stream_reply(
    clients: &ModelClients,
    target: Target,
    exchange: Exchange,
    total: Duration,
) -> impl Stream<Item = ReplyEvent> + Send + 'static {
    let (sender, receiver) = tokio::sync::mpsc::channel::<ReplyEvent>(64);
    let clients = clients.clone();
    tokio::spawn(async move {
        let mut reply =
            Reply { sender: sender.clone(), started: Instant::now(), figures: Figures::default() };
        let work = async {
            match target {
                Target::Bedrock { model_id } => {
                    bedrock::stream(&clients, &model_id, &exchange, &mut reply).await
                }
                Target::OpenAiCompatible { endpoint, model, api_key } => {
                    openai::stream(&clients, &endpoint, &model, api_key.as_ref(), &exchange, &mut reply).await
                }
                Target::AzureOpenAi { endpoint, deployment, api_key } => {
                    azure::stream(&clients, &endpoint, &deployment, api_key.as_ref(), &exchange, &mut reply)
                        .await
                }
            }
        };
        let mut cut_short = clients.cut_short.subscribe();
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(total, work) => match outcome {
                Ok(outcome) => outcome,
                Err(_) => Err(ModelFailure::ExchangeTimedOut { seconds: total.as_secs() }),
            },
            _ = cut_short.wait_for(|cut| *cut) => Err(ModelFailure::ShuttingDown),
        };
        reply.figures.total_ms = reply.started.elapsed().as_millis() as u64;
        let last = match outcome {
            Ok(()) => ReplyEvent::Done(reply.figures),
            Err(failure) => ReplyEvent::Failed(failure),
        };
        let _ = sender.send(last).await;
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (event, receiver))
    })
}
