//! The two kinds of model client behind one function, `stream_reply`: Amazon Bedrock through
//! the AWS SDK (ConverseStream), and OpenAI-compatible servers such as vLLM (chat completions
//! with server-sent events). Every exchange is bounded twice: a limit for the whole exchange
//! and an idle limit between two pieces of the reply, since the SDK's own timeouts do not cover
//! a stream that stalls. Failures come back as sentences an admin can act on, never as
//! "service error" and never with a secret in them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ConversationRole, ConverseStreamOutput, InferenceConfiguration, Message,
    SystemContentBlock,
};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use super::{ChatEvent, ChatMessage, Figures, Speaker};
use crate::models::secrets::ApiKey;

pub const NO_CREDENTIALS: &str = "No AWS credentials were found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an instance role) in the environment of the console's process, then restart it.";
pub const SIGNATURE_REJECTED: &str = "Amazon Bedrock rejected the request's signature. Check AWS_SECRET_ACCESS_KEY, and that this machine's clock is right.";
pub const STREAM_STALLED: &str = "The model stopped sending its reply partway through (no data within the idle limit). Check the model server's load and logs, then try again.";
pub const NO_ANSWER: &str = "The model server accepted the connection but did not answer within the idle limit. Check that the model is loaded and not overloaded.";
pub const SHUTTING_DOWN: &str =
    "The console is shutting down, so this reply was cut short. Send your message again in a moment.";
pub const MALFORMED: &str = "The model server sent a response that could not be read. Check that the endpoint serves the OpenAI-compatible (or Bedrock) API.";

/// The clients, built once at start and shared.
#[derive(Clone, Debug)]
pub struct ModelClients {
    pub bedrock: aws_sdk_bedrockruntime::Client,
    pub http: reqwest::Client,
    /// The longest wait between two pieces of a reply.
    pub idle_limit: Duration,
    /// Turns true when a shutdown's grace period is over: every reply still streaming ends
    /// with `SHUTTING_DOWN`, so the server can finish closing its connections.
    cut_short: Arc<tokio::sync::watch::Sender<bool>>,
}

impl ModelClients {
    /// From the standard AWS chain (environment, profile, SSO, instance role), with the region
    /// defaulting to us-east-1 and `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` honoured.
    pub async fn from_environment(idle_limit: Duration) -> ModelClients {
        // The region from the environment or the profile, else us-east-1; not from the instance
        // metadata service, which would delay every start on a machine that has none.
        let region = aws_config::meta::region::RegionProviderChain::first_try(
            aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
        )
        .or_else(aws_config::profile::ProfileFileRegionProvider::new())
        .or_else("us-east-1");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region).load().await;
        ModelClients::new(aws_sdk_bedrockruntime::Client::new(&config), idle_limit)
    }

    pub fn new(bedrock: aws_sdk_bedrockruntime::Client, idle_limit: Duration) -> ModelClients {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let cut_short = Arc::new(tokio::sync::watch::Sender::new(false));
        ModelClients { bedrock, http, idle_limit, cut_short }
    }

    /// Ends every reply in flight (and any started from now on) with `SHUTTING_DOWN`.
    pub fn cut_replies_short(&self) {
        self.cut_short.send_replace(true);
    }
}

/// Where the request goes.
#[derive(Debug)]
pub enum Target {
    /// `model_id` without the `bedrock/` prefix: a model id, inference profile id or ARN.
    Bedrock {
        model_id: String,
    },
    OpenAi {
        endpoint: String,
        model: String,
        api_key: Option<ApiKey>,
    },
}

#[derive(Debug, Clone)]
pub struct Exchange {
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: i32,
    pub temperature: Option<f32>,
}

/// Streams the reply: `Text` pieces, then `Done` with the figures, or `Failed`. The whole
/// exchange ends within `total`.
pub fn stream_reply(
    clients: &ModelClients,
    target: Target,
    exchange: Exchange,
    total: Duration,
) -> impl Stream<Item = ChatEvent> + Send + 'static {
    let (sender, receiver) = tokio::sync::mpsc::channel::<ChatEvent>(64);
    let clients = clients.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut figures = Figures::default();
        let work = async {
            match target {
                Target::Bedrock { model_id } => {
                    bedrock(&clients, &model_id, &exchange, &sender, started, &mut figures).await
                }
                Target::OpenAi { endpoint, model, api_key } => {
                    open_ai(
                        &clients,
                        &endpoint,
                        &model,
                        api_key.as_ref(),
                        &exchange,
                        &sender,
                        started,
                        &mut figures,
                    )
                    .await
                }
            }
        };
        let mut cut_short = clients.cut_short.subscribe();
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(total, work) => match outcome {
                Ok(outcome) => outcome,
                Err(_) => Err(format!(
                    "The model did not finish within the AI Gateway request timeout ({} seconds). Raise it on the Configuration page, or check the model server's load.",
                    total.as_secs()
                )),
            },
            _ = cut_short.wait_for(|cut| *cut) => Err(SHUTTING_DOWN.to_owned()),
        };
        figures.total_ms = started.elapsed().as_millis() as u64;
        let last = match outcome {
            Ok(()) => ChatEvent::Done(figures),
            Err(message) => ChatEvent::Failed(message),
        };
        let _ = sender.send(last).await;
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (event, receiver))
    })
}

/// Sends a piece of text on, noting when the first one came.
async fn forward(
    sender: &tokio::sync::mpsc::Sender<ChatEvent>,
    text: String,
    started: Instant,
    figures: &mut Figures,
) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    figures.first_token_ms.get_or_insert(started.elapsed().as_millis() as u64);
    // The browser went away: stop talking to the model.
    sender.send(ChatEvent::Text(text)).await.map_err(|_| "The reader went away.".to_owned())
}

async fn bedrock(
    clients: &ModelClients,
    model_id: &str,
    exchange: &Exchange,
    sender: &tokio::sync::mpsc::Sender<ChatEvent>,
    started: Instant,
    figures: &mut Figures,
) -> Result<(), String> {
    let mut request = clients.bedrock.converse_stream().model_id(model_id);
    if let Some(system) = &exchange.system {
        request = request.system(SystemContentBlock::Text(system.clone()));
    }
    for message in &exchange.messages {
        let role = match message.speaker {
            Speaker::User => ConversationRole::User,
            Speaker::Assistant => ConversationRole::Assistant,
        };
        let message = Message::builder()
            .role(role)
            .content(ContentBlock::Text(message.text.clone()))
            .build()
            .map_err(|error| format!("Could not build the request: {error}"))?;
        request = request.messages(message);
    }
    request = request.inference_config(
        InferenceConfiguration::builder()
            .max_tokens(exchange.max_tokens)
            .set_temperature(exchange.temperature)
            .build(),
    );
    let output = tokio::time::timeout(clients.idle_limit, request.send())
        .await
        .map_err(|_| NO_ANSWER.to_owned())?
        .map_err(|error| describe_bedrock_error(&error, model_id))?;
    let mut stream = output.stream;
    loop {
        let next = tokio::time::timeout(clients.idle_limit, stream.recv())
            .await
            .map_err(|_| STREAM_STALLED.to_owned())?;
        match next {
            Ok(Some(ConverseStreamOutput::ContentBlockDelta(event))) => {
                if let Some(ContentBlockDelta::Text(text)) = event.delta {
                    forward(sender, text, started, figures).await?;
                }
            }
            Ok(Some(ConverseStreamOutput::MessageStop(event))) => {
                figures.stop_reason = Some(event.stop_reason().as_str().to_owned());
            }
            Ok(Some(ConverseStreamOutput::Metadata(event))) => {
                if let Some(usage) = event.usage() {
                    figures.input_tokens = Some(usage.input_tokens().into());
                    figures.output_tokens = Some(usage.output_tokens().into());
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(error) => return Err(describe_bedrock_stream_error(&error)),
        }
    }
}

/// An admin-readable sentence for each way a Bedrock call fails.
pub fn describe_bedrock_error<E, R>(error: &SdkError<E, R>, model_id: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().unwrap_or_default();
            describe_bedrock_code(code, message, model_id)
        }
        SdkError::TimeoutError(_) => NO_ANSWER.to_owned(),
        SdkError::ResponseError(_) => MALFORMED.to_owned(),
        SdkError::DispatchFailure(failure) => {
            let detail = DisplayErrorContext(error).to_string();
            if detail.contains("credentials") || detail.contains("Credentials") {
                NO_CREDENTIALS.to_owned()
            } else if failure.is_timeout() {
                NO_ANSWER.to_owned()
            } else {
                "Could not reach Amazon Bedrock (connection refused or host unreachable). Check AWS_REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME if set, and this machine's network.".to_owned()
            }
        }
        _ => {
            let detail = DisplayErrorContext(error).to_string();
            if detail.contains("credentials") || detail.contains("Credentials") {
                NO_CREDENTIALS.to_owned()
            } else {
                format!("Could not call Amazon Bedrock: {detail}")
            }
        }
    }
}

fn describe_bedrock_code(code: &str, message: &str, model_id: &str) -> String {
    match code {
        "AccessDeniedException" => format!(
            "Amazon Bedrock denied access: {message} Request access to this model in the Bedrock console for this region, and check the IAM permissions of these credentials."
        ),
        "ValidationException"
            if message.contains("model identifier is invalid") || message.contains("isn't supported") =>
        {
            let hint = if model_id.starts_with("bedrock/") {
                "The id still starts with \"bedrock/\": remove it from the Bedrock model id."
            } else {
                "Cross-region inference profiles need their region prefix, for example us.anthropic.claude-3-5-sonnet-20240620-v1:0."
            };
            format!("Amazon Bedrock does not accept the model id \"{model_id}\": {message} {hint}")
        }
        "ValidationException" => format!("Amazon Bedrock rejected the request: {message}"),
        "ResourceNotFoundException" => format!(
            "Amazon Bedrock has no model \"{model_id}\" in this region: {message} Check the model identifier and AWS_REGION."
        ),
        "ThrottlingException" | "ModelNotReadyException" | "ServiceQuotaExceededException" => format!(
            "Amazon Bedrock is throttling requests or the model is not ready, even after retries: {message} Try again in a minute, or raise the quota."
        ),
        "ModelTimeoutException" => format!("The model took too long to answer: {message}"),
        "ModelErrorException" => format!("The model failed while answering: {message}"),
        "InvalidSignatureException" | "SignatureDoesNotMatch" | "UnrecognizedClientException" => {
            SIGNATURE_REJECTED.to_owned()
        }
        "InternalServerException" | "ServiceUnavailableException" => {
            format!("Amazon Bedrock had a problem of its own: {message} Try again shortly.")
        }
        other => format!("Amazon Bedrock refused the request ({other}): {message}"),
    }
}

fn describe_bedrock_stream_error<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        // Errors inside the stream carry a message but usually no code.
        SdkError::ServiceError(service) => {
            let message = service.err().message().unwrap_or_default();
            match service.err().code() {
                Some(code) => describe_bedrock_code(code, message, ""),
                None => format!("The model's stream ended with an error: {message}"),
            }
        }
        SdkError::ResponseError(_) => MALFORMED.to_owned(),
        _ => format!("The model's stream failed: {}", DisplayErrorContext(error)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn open_ai(
    clients: &ModelClients,
    endpoint: &str,
    model: &str,
    api_key: Option<&ApiKey>,
    exchange: &Exchange,
    sender: &tokio::sync::mpsc::Sender<ChatEvent>,
    started: Instant,
    figures: &mut Figures,
) -> Result<(), String> {
    let mut messages = Vec::new();
    if let Some(system) = &exchange.system {
        messages.push(json!({ "role": "system", "content": system }));
    }
    for message in &exchange.messages {
        let role = match message.speaker {
            Speaker::User => "user",
            Speaker::Assistant => "assistant",
        };
        messages.push(json!({ "role": role, "content": message.text }));
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": exchange.max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if let Some(temperature) = exchange.temperature {
        body["temperature"] = json!(temperature);
    }
    let url = format!("{}/chat/completions", endpoint.trim_end_matches('/'));
    let mut request = clients.http.post(&url).json(&body);
    if let Some(key) = api_key {
        request = request.bearer_auth(key.expose());
    }
    let response = tokio::time::timeout(clients.idle_limit, request.send())
        .await
        .map_err(|_| NO_ANSWER.to_owned())?
        .map_err(|error| describe_http_error(&error, endpoint))?;
    let status = response.status();
    if !status.is_success() {
        let text = tokio::time::timeout(clients.idle_limit, response.text()).await.ok().and_then(Result::ok);
        return Err(describe_http_status(
            status.as_u16(),
            text.as_deref().unwrap_or_default(),
            endpoint,
            api_key.is_some(),
        ));
    }
    let streaming = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if !streaming {
        // A server that ignores "stream": one JSON answer.
        let text = tokio::time::timeout(clients.idle_limit, response.text())
            .await
            .map_err(|_| STREAM_STALLED.to_owned())?
            .map_err(|_| MALFORMED.to_owned())?;
        let answer: Value = serde_json::from_str(&text).map_err(|_| MALFORMED.to_owned())?;
        let content = answer["choices"][0]["message"]["content"].as_str().ok_or(MALFORMED)?;
        forward(sender, content.to_owned(), started, figures).await?;
        read_usage(&answer, figures);
        figures.stop_reason = answer["choices"][0]["finish_reason"].as_str().map(str::to_owned);
        return Ok(());
    }
    let mut body = response.bytes_stream();
    let mut pending = Vec::<u8>::new();
    loop {
        let chunk = tokio::time::timeout(clients.idle_limit, body.next())
            .await
            .map_err(|_| STREAM_STALLED.to_owned())?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        pending.extend_from_slice(&chunk.map_err(|_| STREAM_STALLED.to_owned())?);
        while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8(line).map_err(|_| MALFORMED.to_owned())?;
            let Some(data) = line.trim().strip_prefix("data:") else { continue };
            let data = data.trim();
            if data == "[DONE]" {
                return Ok(());
            }
            let event: Value = serde_json::from_str(data).map_err(|_| MALFORMED.to_owned())?;
            if let Some(message) = error_message(&event) {
                return Err(format!("The self-hosted model server reported an error: {message}"));
            }
            read_usage(&event, figures);
            if let Some(choice) = event["choices"].get(0) {
                if let Some(text) = choice["delta"]["content"].as_str() {
                    forward(sender, text.to_owned(), started, figures).await?;
                }
                if let Some(reason) = choice["finish_reason"].as_str() {
                    figures.stop_reason = Some(reason.to_owned());
                }
            }
        }
    }
}

fn read_usage(event: &Value, figures: &mut Figures) {
    if let Some(usage) = event.get("usage").filter(|usage| usage.is_object()) {
        figures.input_tokens = usage["prompt_tokens"].as_i64().or(figures.input_tokens);
        figures.output_tokens = usage["completion_tokens"].as_i64().or(figures.output_tokens);
    }
}

/// The message of either error shape: vLLM's older `{"object":"error","message":..}` or the
/// newer `{"error":{"message":..}}`.
fn error_message(body: &Value) -> Option<String> {
    if body["object"] == "error" {
        return body["message"].as_str().map(str::to_owned);
    }
    body["error"]["message"].as_str().map(str::to_owned).or_else(|| body["error"].as_str().map(str::to_owned))
}

pub fn describe_http_status(status: u16, body: &str, endpoint: &str, sent_key: bool) -> String {
    let detail = serde_json::from_str::<Value>(body).ok().and_then(|body| error_message(&body));
    let detail = detail.map(|message| format!(": {message}")).unwrap_or_default();
    match status {
        401 | 403 if sent_key => format!(
            "The self-hosted model server returned code {status}{detail}. The API key was refused: replace it on the model's form."
        ),
        401 | 403 => format!(
            "The self-hosted model server returned code {status}{detail}. It needs an API key: add one on the model's form."
        ),
        404 => {
            let hint = if endpoint.trim_end_matches('/').ends_with("/v1") {
                "Check the model identifier: the server does not serve that model."
            } else {
                "The endpoint usually ends in /v1 (for example http://vllm:8000/v1)."
            };
            format!("The self-hosted model server returned code 404{detail}. {hint}")
        }
        _ => format!("The self-hosted model server returned code {status}{detail}"),
    }
}

fn describe_http_error(error: &reqwest::Error, endpoint: &str) -> String {
    if error.is_timeout() {
        NO_ANSWER.to_owned()
    } else if error.is_connect() {
        format!(
            "Could not connect to {endpoint} (connection refused or host unreachable). Check the endpoint and that the model server is running."
        )
    } else {
        format!("Could not reach {endpoint}. Check the endpoint and the network.")
    }
}
