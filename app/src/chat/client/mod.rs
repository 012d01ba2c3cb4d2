//! The model clients behind one function, `stream_reply`: one provider per file, each speaking
//! its platform's wire (`bedrock.rs`: Amazon Bedrock through the AWS SDK; `openai.rs`:
//! OpenAI-compatible servers such as vLLM; `azure.rs`: Azure OpenAI, the same chat completions
//! on Azure's own paths and key header, for `azure/DEPLOYMENT` identifiers; `vertex.rs`: Google
//! Vertex AI, Gemini and Claude with an OAuth token from Google's chain). Every exchange is bounded twice: a limit for the
//! whole exchange and an idle limit between two pieces of the reply, since the SDK's own
//! timeouts do not cover a stream that stalls. Failures are `ModelFailure`s, sentences an admin
//! can act on, never "service error" and never with a secret in them.
//!
//! `discover` is "Load models": each provider file also lists what its platform offers
//! (`GET /models`, Azure's deployments, Bedrock's inference profiles and foundation models),
//! each failure a `DiscoveryFailure` at the form field to fix. Bedrock clients exist per region
//! (`PerRegion`): a model's region picks the client its request is signed and sent with.

mod azure;
mod bedrock;
mod openai;
mod vertex;

pub use vertex::{GoogleCredentials, VERTEX_ENDPOINT_VARIABLE, VertexAccess};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;

use super::{ChatEvent, ChatMessage, Figures};
use crate::models::domain::{DiscoveredModel, ModelIdentifier, Platform};
use crate::models::secrets::ApiKey;

/// Why an exchange with a model failed. `Display` is the sentence the admin reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelFailure {
    #[error(
        "No AWS credentials were found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an instance role) in the environment of the console's process, then restart it."
    )]
    NoCredentials,
    #[error(
        "No Google Cloud credentials were found. Set GOOGLE_APPLICATION_CREDENTIALS to a service account's JSON key file (or run the console with a service account of the machine's metadata server, or gcloud's application default credentials), then restart it."
    )]
    NoGoogleCredentials,
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
        "The model server sent a response that could not be read. Check that the endpoint serves the OpenAI-compatible API, or that an endpoint override (AWS_ENDPOINT_URL_BEDROCK_RUNTIME, VERTEX_AI_ENDPOINT_URL), if set, names a compatible server."
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

/// Bedrock clients kept for regions other than the console's. Regions are checked names
/// (`BedrockRegion`) and AWS has a few dozen; the cap only bounds what a flood of made-up but
/// well-formed regions (Test connection accepts any) could make the cache hold.
const MAX_REGION_CLIENTS: usize = 64;

/// An AWS client for the console's region, and one per other region a model names, made
/// from it (same credentials, endpoint override, retries and HTTP connections) on first use
/// and kept: a request is signed for its client's region and sent to its endpoint, so the
/// region must pick the client.
#[derive(Debug)]
struct PerRegion<C> {
    console: C,
    console_region: String,
    others: Mutex<HashMap<String, C>>,
}

impl<C: Clone> PerRegion<C> {
    fn new(console: C, console_region: Option<String>) -> PerRegion<C> {
        let console_region = console_region.unwrap_or_else(|| "us-east-1".to_owned());
        PerRegion { console, console_region, others: Mutex::default() }
    }

    fn get(&self, region: Option<&str>, make: impl FnOnce(&C, &str) -> C) -> C {
        let Some(region) = region.filter(|region| *region != self.console_region) else {
            return self.console.clone();
        };
        // A poisoned lock only means another request panicked mid-insert: the map is still whole.
        let mut others = self.others.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = others.get(region) {
            return client.clone();
        }
        let client = make(&self.console, region);
        if others.len() < MAX_REGION_CLIENTS {
            others.insert(region.to_owned(), client.clone());
        }
        client
    }

    fn regions(&self) -> Vec<String> {
        let others = self.others.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut regions: Vec<String> = others.keys().cloned().collect();
        regions.sort();
        regions
    }
}

/// The clients, built once at start and shared.
#[derive(Clone, Debug)]
pub struct ModelClients {
    /// Bedrock's runtime (model calls), per region.
    bedrock: Arc<PerRegion<aws_sdk_bedrockruntime::Client>>,
    /// Bedrock's control plane (the model catalog of "Load models"), per region.
    bedrock_catalog: Arc<PerRegion<aws_sdk_bedrock::Client>>,
    pub http: reqwest::Client,
    /// Google Vertex AI's credentials (the token source, made on first use) and base URL.
    vertex: Arc<vertex::Google>,
    /// The longest wait between two pieces of a reply.
    pub idle_limit: Duration,
    /// The `api-version` of Azure OpenAI calls.
    pub azure_api_version: String,
    /// Turns true when a shutdown's grace period is over: every reply still streaming ends
    /// with `ModelFailure::ShuttingDown`, so the server can finish closing its connections.
    cut_short: Arc<tokio::sync::watch::Sender<bool>>,
    /// Model calls running now: a reader that goes away must end its call, not leave it behind.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl ModelClients {
    /// From the standard AWS chain (environment, profile, SSO, instance role), with the region
    /// defaulting to us-east-1 and `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (model calls) and
    /// `AWS_ENDPOINT_URL_BEDROCK` (the model catalog) honoured.
    pub async fn from_environment(idle_limit: Duration) -> ModelClients {
        let (runtime, catalog) = bedrock::clients_from_environment().await;
        ModelClients::new(runtime, catalog, idle_limit).with_vertex(VertexAccess::from_environment())
    }

    pub fn new(
        bedrock: aws_sdk_bedrockruntime::Client,
        bedrock_catalog: aws_sdk_bedrock::Client,
        idle_limit: Duration,
    ) -> ModelClients {
        let cut_short = Arc::new(tokio::sync::watch::Sender::new(false));
        let azure_api_version = AZURE_API_VERSION.to_owned();
        let region = bedrock.config().region().map(|region| region.to_string());
        let catalog_region = bedrock_catalog.config().region().map(|region| region.to_string());
        ModelClients {
            bedrock: Arc::new(PerRegion::new(bedrock, region)),
            bedrock_catalog: Arc::new(PerRegion::new(bedrock_catalog, catalog_region)),
            http: openai::http_client(),
            vertex: Arc::new(vertex::Google::new(VertexAccess::unconfigured())),
            idle_limit,
            azure_api_version,
            cut_short,
            in_flight: Arc::default(),
        }
    }

    /// The region Bedrock models without one of their own run in.
    pub fn console_region(&self) -> String {
        self.bedrock.console_region.clone()
    }

    /// The Bedrock runtime client for a model in `region` (`None`: the console's region).
    pub fn bedrock_in(&self, region: Option<&str>) -> aws_sdk_bedrockruntime::Client {
        self.bedrock.get(region, |console, region| {
            let config = console
                .config()
                .to_builder()
                .region(aws_sdk_bedrockruntime::config::Region::new(region.to_owned()))
                .build();
            aws_sdk_bedrockruntime::Client::from_conf(config)
        })
    }

    /// The Bedrock catalog client for `region` (`None`: the console's region).
    pub fn bedrock_catalog_in(&self, region: Option<&str>) -> aws_sdk_bedrock::Client {
        self.bedrock_catalog.get(region, |console, region| {
            let config = console
                .config()
                .to_builder()
                .region(aws_sdk_bedrock::config::Region::new(region.to_owned()))
                .build();
            aws_sdk_bedrock::Client::from_conf(config)
        })
    }

    /// The regions whose model calls have a client of their own so far (besides the console's).
    pub fn bedrock_regions(&self) -> Vec<String> {
        self.bedrock.regions()
    }

    /// The regions whose catalog has a client of their own so far (besides the console's).
    pub fn bedrock_catalog_regions(&self) -> Vec<String> {
        self.bedrock_catalog.regions()
    }

    /// Vertex AI through `access` (its credentials and base URL), instead of none.
    pub fn with_vertex(mut self, access: VertexAccess) -> ModelClients {
        self.vertex = Arc::new(vertex::Google::new(access));
        self
    }

    pub fn with_azure_api_version(mut self, version: String) -> ModelClients {
        self.azure_api_version = version;
        self
    }

    /// How many model calls are running now (each reply's call, until it ends).
    pub fn calls_in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::SeqCst)
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
    /// `model_id` without the `bedrock/` prefix: a model id, inference profile id or ARN;
    /// `region` the model's own (`None`: the console's).
    Bedrock {
        model_id: String,
        region: Option<String>,
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
    /// `model` without the `vertex_ai/` prefix; `google` the model's project and location.
    VertexAi {
        model: String,
        google: Option<(String, String)>,
    },
}

/// A model as it is called: what `Target::new` is built from, whether the model is saved or
/// still on the form.
pub struct Callee<'a> {
    pub platform: Platform,
    pub endpoint: Option<String>,
    pub identifier: &'a str,
    pub bedrock_region: Option<String>,
    /// A Vertex AI model's Google Cloud project and location.
    pub google: Option<(String, String)>,
    pub api_key: Option<ApiKey>,
}

impl Target {
    pub fn new(callee: Callee<'_>) -> Target {
        let Callee { platform, endpoint, identifier, bedrock_region, google, api_key } = callee;
        // The provider prefix is LiteLLM's; neither Bedrock nor the model server knows it.
        let (provider, model) = match ModelIdentifier::parse(platform, identifier) {
            Ok(parsed) => (parsed.provider().map(str::to_owned), parsed.provider_model().to_owned()),
            Err(_) => (None, identifier.to_owned()),
        };
        let endpoint = endpoint.unwrap_or_default();
        match platform {
            Platform::Bedrock => Target::Bedrock { model_id: model, region: bedrock_region },
            Platform::VertexAi => Target::VertexAi { model, google },
            Platform::OpenAiCompatible if provider.as_deref() == Some("azure") => {
                Target::AzureOpenAi { endpoint, deployment: model, api_key }
            }
            Platform::OpenAiCompatible => Target::OpenAiCompatible { endpoint, model, api_key },
        }
    }
}

/// Why "Load models" has nothing to offer: the form field to fix, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryFailure {
    pub field: &'static str,
    pub message: String,
}

impl DiscoveryFailure {
    pub(crate) fn at(field: &'static str, message: impl Into<String>) -> DiscoveryFailure {
        DiscoveryFailure { field, message: message.into() }
    }
}

pub use azure::{AZURE_PREFIX, is_azure_resource};

/// Where "Load models" asks which models there are.
#[derive(Debug)]
pub enum ModelSource {
    /// `GET {endpoint}/models` of an OpenAI-compatible server.
    OpenAiCompatible { endpoint: String, api_key: Option<ApiKey> },
    /// The deployments of an Azure OpenAI resource (`{endpoint}/openai/deployments`).
    AzureOpenAi { endpoint: String, api_key: Option<ApiKey> },
    /// Bedrock's inference profiles and foundation models in `region` (`None`: the console's).
    Bedrock { region: Option<String> },
    /// The Model Garden's Google and Anthropic models, asked in `location` for `project`.
    VertexAi { project: String, location: String },
}

/// The models `source` offers, within `total`.
pub async fn discover(
    clients: &ModelClients,
    source: ModelSource,
    total: Duration,
) -> Result<Vec<DiscoveredModel>, DiscoveryFailure> {
    let timed_out = |field| {
        DiscoveryFailure::at(field, ModelFailure::ExchangeTimedOut { seconds: total.as_secs() }.to_string())
    };
    let models = match &source {
        ModelSource::OpenAiCompatible { endpoint, api_key } => {
            tokio::time::timeout(total, openai::list_models(clients, endpoint, api_key.as_ref()))
                .await
                .map_err(|_| timed_out("endpoint"))??
        }
        ModelSource::AzureOpenAi { endpoint, api_key } => {
            tokio::time::timeout(total, azure::list_deployments(clients, endpoint, api_key.as_ref()))
                .await
                .map_err(|_| timed_out("endpoint"))??
        }
        ModelSource::Bedrock { region } => {
            let catalog = clients.bedrock_catalog_in(region.as_deref());
            tokio::time::timeout(total, bedrock::list_models(&catalog))
                .await
                .map_err(|_| timed_out("bedrock_region"))??
        }
        ModelSource::VertexAi { project, location } => {
            tokio::time::timeout(total, vertex::list_models(clients, project, location))
                .await
                .map_err(|_| timed_out("vertex_location"))??
        }
    };
    if models.is_empty() {
        return Err(DiscoveryFailure::at(
            "identifier",
            "No models are listed there. Type the model identifier.",
        ));
    }
    Ok(models)
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

/// Counts a model call while it runs.
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<std::sync::atomic::AtomicUsize>) -> InFlight {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
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
        let _running = InFlight::enter(&clients.in_flight);
        let mut reply =
            Reply { sender: sender.clone(), started: Instant::now(), figures: Figures::default() };
        let work = async {
            match target {
                Target::Bedrock { model_id, region } => {
                    let client = clients.bedrock_in(region.as_deref());
                    bedrock::stream(&clients, &client, &model_id, &exchange, &mut reply).await
                }
                Target::OpenAiCompatible { endpoint, model, api_key } => {
                    openai::stream(&clients, &endpoint, &model, api_key.as_ref(), &exchange, &mut reply).await
                }
                Target::AzureOpenAi { endpoint, deployment, api_key } => {
                    azure::stream(&clients, &endpoint, &deployment, api_key.as_ref(), &exchange, &mut reply)
                        .await
                }
                Target::VertexAi { model, google } => {
                    let google =
                        google.as_ref().map(|(project, location)| (project.as_str(), location.as_str()));
                    vertex::stream(&clients, google, &model, &exchange, &mut reply).await
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
            // The reader (the browser's "Stop", a closed tab) went away: the model call is
            // dropped at once, closing its connection, even while the model is silent.
            _ = sender.closed() => Err(ModelFailure::ReaderGone),
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
