//! Google Vertex AI: a model of a Google Cloud project, in one of its locations, called with an
//! OAuth access token from Google's standard chain (a service account's JSON key named by
//! `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's application default credentials or the
//! metadata server), got and cached by the `gcp_auth` crate. Two publishers, two wires:
//! Google's Gemini models stream `streamGenerateContent` (server-sent events of
//! `GenerateContentResponse`s, or one JSON array), Anthropic's Claude models on Vertex stream
//! `streamRawPredict` (Anthropic's Messages events). Google's errors
//! (`{"error":{"code":403,"status":"PERMISSION_DENIED",..}}`) are each named with what to do.
//! `VERTEX_AI_ENDPOINT_URL` sends every call to another host (a Vertex-compatible server,
//! a private endpoint, a test fake), as `AWS_ENDPOINT_URL_*` does for Bedrock.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::openai::{
    MAX_ERROR_BODY, MAX_MODELS_OFFERED, MAX_WHOLE_REPLY, SseData, fetch_list, is_event_stream, read_capped,
};
use super::{DiscoveryFailure, Exchange, ModelClients, ModelFailure, Reply};
use crate::chat::Speaker;
use crate::models::domain::{DiscoveredModel, IDENTIFIER_MAX_CHARS, VERTEX_PREFIX, guess_family};

/// The variable that sends every Vertex AI call to another base URL.
pub const VERTEX_ENDPOINT_VARIABLE: &str = "VERTEX_AI_ENDPOINT_URL";
/// What the access token may do: Vertex AI asks for the cloud-platform scope.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The Messages API version Anthropic's models on Vertex AI take (in the body, not a header).
const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Where the console's Google credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoogleCredentials {
    /// A service account's JSON key file (what `GOOGLE_APPLICATION_CREDENTIALS` names).
    ServiceAccountFile(PathBuf),
    /// The rest of Google's chain: gcloud's application default credentials, the metadata
    /// server of the machine, the gcloud CLI. Tried on the first Vertex AI call, not at start,
    /// so a console without Google pays nothing.
    DefaultChain,
    /// None: every Vertex AI call fails with `NoGoogleCredentials` (tests that bring no Google).
    Unconfigured,
}

/// How Vertex AI is reached: the credentials and, if set, the base URL every call goes to
/// instead of `https://LOCATION-aiplatform.googleapis.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexAccess {
    pub credentials: GoogleCredentials,
    pub endpoint_url: Option<String>,
}

impl VertexAccess {
    pub fn unconfigured() -> VertexAccess {
        VertexAccess { credentials: GoogleCredentials::Unconfigured, endpoint_url: None }
    }

    /// From `GOOGLE_APPLICATION_CREDENTIALS` (else Google's default chain) and
    /// `VERTEX_AI_ENDPOINT_URL`.
    pub fn from_environment() -> VertexAccess {
        let credentials = match std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
            Some(path) if !path.is_empty() => GoogleCredentials::ServiceAccountFile(PathBuf::from(path)),
            _ => GoogleCredentials::DefaultChain,
        };
        let endpoint_url = std::env::var(VERTEX_ENDPOINT_VARIABLE).ok().filter(|url| !url.trim().is_empty());
        VertexAccess { credentials, endpoint_url }
    }
}

/// The credentials' token source, made on first use and kept (it caches the token until it
/// expires). Never prints a token.
pub(super) struct Google {
    access: VertexAccess,
    provider: tokio::sync::OnceCell<Arc<dyn gcp_auth::TokenProvider>>,
}

impl std::fmt::Debug for Google {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Google").field("access", &self.access).finish_non_exhaustive()
    }
}

impl Google {
    pub(super) fn new(access: VertexAccess) -> Google {
        Google { access, provider: tokio::sync::OnceCell::new() }
    }

    pub(super) fn endpoint_url(&self) -> Option<&str> {
        self.access.endpoint_url.as_deref()
    }

    /// A current access token. A failure to find or read the credentials is not kept: the
    /// next call tries again (a key file put in place, a metadata server back).
    async fn token(&self) -> Result<Arc<gcp_auth::Token>, ModelFailure> {
        let provider = self
            .provider
            .get_or_try_init(|| async {
                match &self.access.credentials {
                    GoogleCredentials::ServiceAccountFile(path) => {
                        gcp_auth::CustomServiceAccount::from_file(path)
                            .map(|account| Arc::new(account) as Arc<dyn gcp_auth::TokenProvider>)
                            .map_err(|error| unusable_key_file(path, &error))
                    }
                    GoogleCredentials::DefaultChain => {
                        gcp_auth::provider().await.map_err(|_| ModelFailure::NoGoogleCredentials)
                    }
                    GoogleCredentials::Unconfigured => Err(ModelFailure::NoGoogleCredentials),
                }
            })
            .await?;
        provider.token(&[SCOPE]).await.map_err(|error| describe_token_error(&error))
    }
}

/// The fixed part of a `gcp_auth` error: its own sentence, without the wrapped cause (which
/// could quote the file it failed on).
fn gist(error: &gcp_auth::Error) -> &'static str {
    match error {
        gcp_auth::Error::NoAuthMethod(..) => "no available authentication method found",
        gcp_auth::Error::Http(gist, _)
        | gcp_auth::Error::Io(gist, _)
        | gcp_auth::Error::Json(gist, _)
        | gcp_auth::Error::Other(gist, _)
        | gcp_auth::Error::Str(gist) => gist,
    }
}

fn unusable_key_file(path: &std::path::Path, error: &gcp_auth::Error) -> ModelFailure {
    ModelFailure::Provider(format!(
        "The Google service account key file that GOOGLE_APPLICATION_CREDENTIALS names ({}) could not be used ({}). Download a JSON key of the service account from the Google Cloud console, point GOOGLE_APPLICATION_CREDENTIALS at it, then restart the console.",
        path.display(),
        gist(error)
    ))
}

fn describe_token_error(error: &gcp_auth::Error) -> ModelFailure {
    match error {
        // The token endpoint answered, and refused (an unknown, deleted or disabled key, a
        // signature that does not match it, a clock far off).
        gcp_auth::Error::Str(_) => ModelFailure::Provider(
            "Google refused the service account's credentials when the console asked for an access token. Check that the service account and its key still exist and are enabled, and that this machine's clock is right.".to_owned(),
        ),
        gcp_auth::Error::Http(..) | gcp_auth::Error::Other(..) => ModelFailure::Provider(
            "Could not reach Google's token endpoint to get an access token. Check this machine's network (and the token_uri of the service account's key).".to_owned(),
        ),
        other => ModelFailure::Provider(format!(
            "Could not get an access token from Google's credentials ({}).",
            gist(other)
        )),
    }
}

/// Who publishes the model on Vertex AI, which decides its path and wire. Vertex names its
/// partner models by their vendor's own ids, so the id tells: Anthropic's start with `claude`
/// (as LiteLLM's `vertex_ai/claude-...` routing does); every other id is Google's. The id,
/// not the family: a "General" or "Claude 3" family says what the prompt suits, not where
/// the model lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publisher {
    Google,
    Anthropic,
}

impl Publisher {
    fn of(model: &str) -> Publisher {
        if model.starts_with("claude") { Publisher::Anthropic } else { Publisher::Google }
    }
}

/// Where a location's calls go: the override, else the location's own host (`global` has the
/// host without a location).
fn base_url(google: &Google, location: &str) -> String {
    match google.endpoint_url() {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None if location == "global" => "https://aiplatform.googleapis.com".to_owned(),
        None => format!("https://{location}-aiplatform.googleapis.com"),
    }
}

/// The model a call is about, for the failures' sentences.
struct Call<'a> {
    project: &'a str,
    location: &'a str,
    model: &'a str,
    base: &'a str,
}

pub(super) async fn stream(
    clients: &ModelClients,
    google: Option<(&str, &str)>,
    model: &str,
    exchange: &Exchange,
    reply: &mut Reply,
) -> Result<(), ModelFailure> {
    let Some((project, location)) = google else {
        return Err(ModelFailure::Provider(
            "This Vertex AI model names no Google Cloud project and location: add them on the model's form."
                .to_owned(),
        ));
    };
    let token = tokio::time::timeout(clients.idle_limit, clients.vertex.token()).await.map_err(|_| {
        ModelFailure::Provider(
            "Google's credentials gave no access token within the idle limit. Check this machine's network."
                .to_owned(),
        )
    })??;
    let base = base_url(&clients.vertex, location);
    let call = Call { project, location, model, base: &base };
    let publisher = Publisher::of(model);
    let (publisher_path, method, body) = match publisher {
        Publisher::Google => ("google", "streamGenerateContent?alt=sse", gemini_body(exchange)),
        Publisher::Anthropic => ("anthropic", "streamRawPredict", anthropic_body(exchange)),
    };
    // Project, location and model passed their parsing types (no slash, query or space), so
    // they are whole path segments as they stand.
    let url = format!(
        "{base}/v1/projects/{project}/locations/{location}/publishers/{publisher_path}/models/{model}:{method}"
    );
    let request = clients.http.post(&url).bearer_auth(token.as_str()).json(&body);
    let response = tokio::time::timeout(clients.idle_limit, request.send())
        .await
        .map_err(|_| ModelFailure::NoAnswer)?
        .map_err(|error| {
            if error.is_timeout() {
                ModelFailure::NoAnswer
            } else {
                ModelFailure::Provider(format!(
                    "Could not reach Google Vertex AI at {base} (connection refused or host unreachable). Check the model's location, {VERTEX_ENDPOINT_VARIABLE} if set, and this machine's network."
                ))
            }
        })?;
    let status = response.status();
    if !status.is_success() {
        let text = read_capped(response, MAX_ERROR_BODY, clients.idle_limit).await.unwrap_or_default();
        return Err(describe_status(status.as_u16(), &text, &call));
    }
    if !is_event_stream(&response) {
        // Without `alt=sse` (a compatible server that ignores it), Gemini answers one JSON
        // array of the same responses.
        let text = read_capped(response, MAX_WHOLE_REPLY, clients.idle_limit).await?;
        let answer: Value = serde_json::from_str(&text).map_err(|_| ModelFailure::Malformed)?;
        let pieces = match answer {
            Value::Array(pieces) => pieces,
            single => vec![single],
        };
        for piece in pieces {
            if read_event(publisher, &piece, reply, &call).await? {
                return Ok(());
            }
        }
        return Ok(());
    }
    let mut events = SseData::new(Box::pin(response.bytes_stream()), clients.idle_limit);
    while let Some(data) = events.next().await? {
        let event: Value = serde_json::from_str(&data).map_err(|_| ModelFailure::Malformed)?;
        if read_event(publisher, &event, reply, &call).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// The publishers whose models "Load models" lists: the two the console can call.
const LISTED_PUBLISHERS: [&str; 2] = ["google", "anthropic"];
/// The most pages read of one publisher's list: a server that pages forever is cut off.
const MAX_PAGES: usize = 20;

/// "Load models": the Model Garden's publisher models (`GET {base}/v1beta1/publishers/
/// {publisher}/models`, paged by `pageToken`/`nextPageToken`) of Google and Anthropic, asked
/// with the same access token as the calls and billed to the typed project
/// (`x-goog-user-project`), with the limits of every list (idle limit, size cap, no
/// redirects). The wire is built from Google's REST reference (`publisherModels[].name`,
/// `versionId`); the listing is Model Garden's catalogue, so a model listed is not proven
/// enabled in this project or served in this location: "Test connection" says that.
/// Failures: the credentials and the project's access at `vertex_project`, an unknown
/// location or an unreachable host at `vertex_location`.
pub(super) async fn list_models(
    clients: &ModelClients,
    project: &str,
    location: &str,
) -> Result<Vec<DiscoveredModel>, DiscoveryFailure> {
    let token = tokio::time::timeout(clients.idle_limit, clients.vertex.token())
        .await
        .map_err(|_| {
            DiscoveryFailure::at(
                "vertex_project",
                "Google's credentials gave no access token within the idle limit. Check this machine's network.",
            )
        })?
        .map_err(|failure| DiscoveryFailure::at("vertex_project", failure.to_string()))?;
    let base = base_url(&clients.vertex, location);
    let mut offered: Vec<DiscoveredModel> = Vec::new();
    for publisher in LISTED_PUBLISHERS {
        let url = format!("{base}/v1beta1/publishers/{publisher}/models");
        let mut page_token = String::new();
        for _ in 0..MAX_PAGES {
            let mut request = clients
                .http
                .get(&url)
                .bearer_auth(token.as_str())
                .header("x-goog-user-project", project)
                .query(&[("pageSize", "100")]);
            if !page_token.is_empty() {
                request = request.query(&[("pageToken", page_token.as_str())]);
            }
            let call = Call { project, location, model: "", base: &base };
            let text = fetch_list(
                clients,
                request,
                |_| {
                    ModelFailure::Provider(format!(
                        "Could not reach Google Vertex AI at {base} (connection refused or host unreachable). Check the model's location, {VERTEX_ENDPOINT_VARIABLE} if set, and this machine's network."
                    ))
                },
                |status, body| describe_list_status(status, body, &call),
            )
            .await
            .map_err(|failure| match failure.field {
                // fetch_list names the endpoint; a Vertex model's host comes from its location.
                "endpoint" => DiscoveryFailure::at("vertex_location", failure.message),
                _ => failure,
            })?;
            let page: Value = serde_json::from_str(&text).map_err(|_| {
                DiscoveryFailure::at(
                    "vertex_location",
                    format!("{url} did not answer with a list of publisher models. Check {VERTEX_ENDPOINT_VARIABLE} if set."),
                )
            })?;
            for model in page["publisherModels"].as_array().into_iter().flatten() {
                let Some(identifier) = callable_identifier(publisher, model) else { continue };
                if offered.len() < MAX_MODELS_OFFERED
                    && !offered.iter().any(|known| known.identifier == identifier)
                {
                    let label = identifier[VERTEX_PREFIX.len()..].to_owned();
                    offered.push(DiscoveredModel {
                        family: guess_family(&label).map(str::to_owned),
                        identifier,
                        label,
                    });
                }
            }
            page_token = page["nextPageToken"].as_str().unwrap_or_default().to_owned();
            if page_token.is_empty() {
                break;
            }
        }
    }
    Ok(offered)
}

/// The identifier a publisher model is called by, from its `name`
/// (`publishers/{publisher}/models/{id}`). The rule: Anthropic's models on Vertex are called
/// by `{id}@{version}` (`claude-3-5-sonnet-v2@20241022`), so an Anthropic model whose
/// `versionId` is a date (eight digits) gets it appended; Google's ids already carry their
/// version (`gemini-2.0-flash-001`, whose `versionId` is `001`) and are called as they stand.
/// An id that is not one path segment, or too long, is skipped.
fn callable_identifier(publisher: &str, model: &Value) -> Option<String> {
    let name = model["name"].as_str()?;
    let id = name.strip_prefix(&format!("publishers/{publisher}/models/"))?.trim();
    let well_formed =
        !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@'));
    if !well_formed {
        return None;
    }
    let version = model["versionId"].as_str().unwrap_or_default();
    let dated = version.len() == 8 && version.chars().all(|c| c.is_ascii_digit());
    let callable = if publisher == "anthropic" && dated && !id.contains('@') {
        format!("{VERTEX_PREFIX}{id}@{version}")
    } else {
        format!("{VERTEX_PREFIX}{id}")
    };
    (callable.chars().count() <= IDENTIFIER_MAX_CHARS).then_some(callable)
}

/// A refused list, named at the field to fix with the call's own sentences.
fn describe_list_status(status: u16, body: &str, call: &Call<'_>) -> DiscoveryFailure {
    let (code, message) = google_error(body);
    let named = if code.is_empty() { format!("{status}") } else { format!("{status} {code}") };
    let detail = if message.is_empty() { String::new() } else { format!(": {message}") };
    let Call { project, location, .. } = call;
    match (status, code.as_str()) {
        (404, _) | (_, "NOT_FOUND") | (400, "INVALID_ARGUMENT") => DiscoveryFailure::at(
            "vertex_location",
            format!(
                "Google Vertex AI does not know location {location} or project {project} ({named}){detail}. Check the location (for example us-central1) and the project ID."
            ),
        ),
        (429, _) | (_, "RESOURCE_EXHAUSTED") => DiscoveryFailure::at(
            "vertex_project",
            format!(
                "Google Vertex AI's quota for listing models in project {project} is used up ({named}){detail}. Try again in a minute."
            ),
        ),
        (300..=399, _) => {
            DiscoveryFailure::at("vertex_location", describe_status(status, body, call).to_string())
        }
        _ => DiscoveryFailure::at("vertex_project", describe_status(status, body, call).to_string()),
    }
}

/// Reads one event of the reply; `true` once the reply is complete.
async fn read_event(
    publisher: Publisher,
    event: &Value,
    reply: &mut Reply,
    call: &Call<'_>,
) -> Result<bool, ModelFailure> {
    match publisher {
        Publisher::Google => {
            if event.get("error").is_some() {
                let code = event["error"]["code"].as_u64().unwrap_or_default() as u16;
                return Err(describe_status(code, &event.to_string(), call));
            }
            if let Some(candidate) = event["candidates"].get(0) {
                for part in candidate["content"]["parts"].as_array().into_iter().flatten() {
                    if let Some(text) = part["text"].as_str() {
                        reply.forward(text.to_owned()).await?;
                    }
                }
                if let Some(reason) = candidate["finishReason"].as_str() {
                    reply.figures.stop_reason = Some(reason.to_owned());
                }
            }
            if let Some(usage) = event.get("usageMetadata") {
                reply.figures.input_tokens =
                    usage["promptTokenCount"].as_i64().or(reply.figures.input_tokens);
                reply.figures.output_tokens =
                    usage["candidatesTokenCount"].as_i64().or(reply.figures.output_tokens);
            }
            Ok(false)
        }
        Publisher::Anthropic => match event["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let usage = &event["message"]["usage"];
                reply.figures.input_tokens = usage["input_tokens"].as_i64().or(reply.figures.input_tokens);
                Ok(false)
            }
            "content_block_delta" => {
                if event["delta"]["type"] == "text_delta"
                    && let Some(text) = event["delta"]["text"].as_str()
                {
                    reply.forward(text.to_owned()).await?;
                }
                Ok(false)
            }
            "message_delta" => {
                if let Some(reason) = event["delta"]["stop_reason"].as_str() {
                    reply.figures.stop_reason = Some(reason.to_owned());
                }
                reply.figures.output_tokens =
                    event["usage"]["output_tokens"].as_i64().or(reply.figures.output_tokens);
                Ok(false)
            }
            "message_stop" => Ok(true),
            "error" => Err(describe_anthropic_error(&event["error"], call)),
            // ping, content_block_start, content_block_stop: nothing to show.
            _ => Ok(false),
        },
    }
}

/// Gemini's `GenerateContentRequest`: the conversation as `contents` (the assistant is
/// `model`), the system prompt as `systemInstruction`.
fn gemini_body(exchange: &Exchange) -> Value {
    let contents: Vec<Value> = exchange
        .messages
        .iter()
        .map(|message| {
            let role = match message.speaker {
                Speaker::User => "user",
                Speaker::Assistant => "model",
            };
            json!({ "role": role, "parts": [{ "text": message.text }] })
        })
        .collect();
    let mut generation = json!({ "maxOutputTokens": exchange.max_tokens });
    if let Some(temperature) = exchange.temperature {
        generation["temperature"] = json!(temperature);
    }
    let mut body = json!({ "contents": contents, "generationConfig": generation });
    if let Some(system) = &exchange.system {
        body["systemInstruction"] = json!({ "parts": [{ "text": system }] });
    }
    body
}

/// Anthropic's Messages request as Vertex AI takes it: the version in the body, no model
/// (the path names it), streamed.
fn anthropic_body(exchange: &Exchange) -> Value {
    let messages: Vec<Value> = exchange
        .messages
        .iter()
        .map(|message| {
            let role = match message.speaker {
                Speaker::User => "user",
                Speaker::Assistant => "assistant",
            };
            json!({ "role": role, "content": message.text })
        })
        .collect();
    let mut body = json!({
        "anthropic_version": ANTHROPIC_VERSION,
        "messages": messages,
        "max_tokens": exchange.max_tokens,
        "stream": true,
    });
    if let Some(system) = &exchange.system {
        body["system"] = json!(system);
    }
    if let Some(temperature) = exchange.temperature {
        body["temperature"] = json!(temperature);
    }
    body
}

/// Google's error (`{"error":{"code":..,"message":..,"status":..}}`, also as a one-element
/// array) or Anthropic's (`{"type":"error","error":{"type":..,"message":..}}`): its status
/// name and message.
fn google_error(body: &str) -> (String, String) {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let error = parsed.as_ref().map(|body| if body.is_array() { &body[0]["error"] } else { &body["error"] });
    let status = error.and_then(|e| e["status"].as_str().or(e["type"].as_str())).unwrap_or_default();
    let message = error.and_then(|e| e["message"].as_str()).unwrap_or_default();
    (status.to_owned(), message.trim().to_owned())
}

fn describe_status(status: u16, body: &str, call: &Call<'_>) -> ModelFailure {
    let (code, message) = google_error(body);
    let Call { project, location, model, base } = call;
    let named = if code.is_empty() { format!("{status}") } else { format!("{status} {code}") };
    let detail = if message.is_empty() { String::new() } else { format!(": {message}") };
    ModelFailure::Provider(match (status, code.as_str()) {
        (401, _) | (_, "UNAUTHENTICATED" | "authentication_error") => format!(
            "Google Vertex AI refused the console's access token ({named}){detail}. Check the service account's key that GOOGLE_APPLICATION_CREDENTIALS names (or the machine's service account), then try again."
        ),
        (403, _) | (_, "PERMISSION_DENIED" | "permission_error") => format!(
            "Google Vertex AI denied access in project {project} ({named}){detail}. Give the console's service account the Vertex AI User role (roles/aiplatform.user) in this project, check that the Vertex AI API is enabled, and for a Claude model that it is enabled in the Model Garden."
        ),
        (404, _) | (_, "NOT_FOUND" | "not_found_error") => format!(
            "Google Vertex AI has no model \"{model}\" in {location} for project {project} ({named}){detail}. Check the model identifier and the location: not every model is offered in every location."
        ),
        (429, _) | (_, "RESOURCE_EXHAUSTED" | "rate_limit_error") => format!(
            "Google Vertex AI's quota for this model in {location} is used up ({named}){detail}. Try again in a minute, or request a higher quota for project {project} in the Google Cloud console."
        ),
        (300..=399, _) => format!(
            "Google Vertex AI returned code {status}, a redirect, which the console does not follow. Check {VERTEX_ENDPOINT_VARIABLE} if set (now {base})."
        ),
        _ => format!("Google Vertex AI returned code {named}{detail}"),
    })
}

/// An `error` event in the middle of an Anthropic stream (`overloaded_error`, ...).
fn describe_anthropic_error(error: &Value, call: &Call<'_>) -> ModelFailure {
    let kind = error["type"].as_str().unwrap_or_default();
    let message = error["message"].as_str().unwrap_or_default();
    match kind {
        "overloaded_error" => ModelFailure::Provider(format!(
            "Anthropic's model on Google Vertex AI is overloaded in {} ({kind}: {message}). Try again in a moment.",
            call.location
        )),
        _ => {
            describe_status(0, &json!({ "error": { "status": kind, "message": message } }).to_string(), call)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Call<'static> {
        Call {
            project: "duo-prod-1",
            location: "us-central1",
            model: "gemini-2.0-flash-001",
            base: "https://x",
        }
    }

    #[test]
    fn the_model_id_picks_the_publisher() {
        assert_eq!(Publisher::of("claude-3-5-sonnet@20240620"), Publisher::Anthropic);
        assert_eq!(Publisher::of("gemini-2.0-flash-001"), Publisher::Google);
    }

    #[test]
    fn each_google_error_is_named_with_what_to_do() {
        let google = |code: u16, status: &str| {
            let body = json!({"error": {"code": code, "message": "m.", "status": status}}).to_string();
            describe_status(code, &body, &call()).to_string()
        };
        assert!(
            google(401, "UNAUTHENTICATED")
                .contains("refused the console's access token (401 UNAUTHENTICATED): m.")
        );
        assert!(google(403, "PERMISSION_DENIED").contains("roles/aiplatform.user"));
        assert!(google(404, "NOT_FOUND").contains("no model \"gemini-2.0-flash-001\" in us-central1"));
        assert!(google(429, "RESOURCE_EXHAUSTED").contains("quota for this model in us-central1 is used up"));
        let wrapped =
            json!([{"error": {"code": 429, "message": "q", "status": "RESOURCE_EXHAUSTED"}}]).to_string();
        assert!(describe_status(429, &wrapped, &call()).to_string().contains("(429 RESOURCE_EXHAUSTED): q"));
    }

    #[test]
    fn a_claude_model_is_offered_with_its_dated_version_and_gemini_as_named() {
        let model = |name: &str, version: &str| json!({"name": name, "versionId": version});
        let anthropic = |m: &Value| callable_identifier("anthropic", m);
        let google = |m: &Value| callable_identifier("google", m);
        assert_eq!(
            anthropic(&model("publishers/anthropic/models/claude-3-5-sonnet-v2", "20241022")).as_deref(),
            Some("vertex_ai/claude-3-5-sonnet-v2@20241022")
        );
        assert_eq!(
            anthropic(&model("publishers/anthropic/models/claude-3-haiku", "latest")).as_deref(),
            Some("vertex_ai/claude-3-haiku"),
            "a version that is not a date is not appended"
        );
        assert_eq!(
            google(&model("publishers/google/models/gemini-2.0-flash-001", "001")).as_deref(),
            Some("vertex_ai/gemini-2.0-flash-001")
        );
        assert_eq!(
            google(&model("publishers/anthropic/models/claude-3-haiku", "1")),
            None,
            "another publisher's"
        );
        assert_eq!(google(&model("publishers/google/models/a/b", "1")), None, "not one path segment");
    }

    #[test]
    fn global_has_a_host_without_a_location() {
        let google = Google::new(VertexAccess::unconfigured());
        assert_eq!(base_url(&google, "global"), "https://aiplatform.googleapis.com");
        assert_eq!(base_url(&google, "europe-west4"), "https://europe-west4-aiplatform.googleapis.com");
        let overridden = Google::new(VertexAccess {
            endpoint_url: Some("http://127.0.0.1:8080/".into()),
            ..VertexAccess::unconfigured()
        });
        assert_eq!(base_url(&overridden, "us-central1"), "http://127.0.0.1:8080");
    }
}
