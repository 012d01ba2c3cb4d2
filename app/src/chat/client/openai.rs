//! OpenAI-compatible servers (vLLM, LiteLLM, llama.cpp, ...): chat completions streamed as
//! server-sent events, with a stored key sent as a bearer token. Replies are read with caps
//! (a model server is not trusted to be small), and redirects are never followed: a key goes
//! only to the endpoint it was stored for.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use super::{DiscoveryFailure, Exchange, ModelClients, ModelFailure, Reply};
use crate::chat::{Figures, Speaker};
use crate::models::domain::{CUSTOM_OPENAI_PREFIX, DiscoveredModel, IDENTIFIER_MAX_CHARS, guess_family};
use crate::models::secrets::ApiKey;

/// The most of an error body read to describe it.
pub(super) const MAX_ERROR_BODY: usize = 64 * 1024;
/// The most of a reply that ignores `"stream": true` (one JSON document).
pub(super) const MAX_WHOLE_REPLY: usize = 4 * 1024 * 1024;
/// The longest server-sent event line: one piece of a reply is a few bytes.
const MAX_EVENT_LINE: usize = 1024 * 1024;
/// The most of a model list read (`GET /models`): thousands of ids fit in it.
const MAX_MODEL_LIST: usize = 4 * 1024 * 1024;
/// The most models offered from one list: a longer one is cut, not refused.
pub(super) const MAX_MODELS_OFFERED: usize = 500;

pub(super) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        // A redirect could carry the key to another host (even to a cloud metadata address).
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub(super) async fn stream(
    clients: &ModelClients,
    endpoint: &str,
    model: &str,
    api_key: Option<&ApiKey>,
    exchange: &Exchange,
    reply: &mut Reply,
) -> Result<(), ModelFailure> {
    let url = format!("{}/chat/completions", endpoint.trim_end_matches('/'));
    let mut request = clients.http.post(&url).json(&chat_body(Some(model), exchange));
    if let Some(key) = api_key {
        request = request.bearer_auth(key.expose());
    }
    let sent_key = api_key.is_some();
    read_reply(clients, request, reply, |status, body| describe_status(status, body, endpoint, sent_key))
        .await
        .map_err(|failure| match failure {
            Unsent::Failed(failure) => failure,
            Unsent::Unreachable(error) => describe_http_error(&error, endpoint),
        })
}

/// `GET {endpoint}/models`, OpenAI's (and vLLM's) model list, with the key as a bearer token:
/// the ids in `data[].id`, as `custom_openai/ID` identifiers. Read with the same limits as a
/// reply (idle limit, size cap, no redirects); each failure names the field to fix.
pub(super) async fn list_models(
    clients: &ModelClients,
    endpoint: &str,
    api_key: Option<&ApiKey>,
) -> Result<Vec<DiscoveredModel>, DiscoveryFailure> {
    let url = format!("{}/models", endpoint.trim_end_matches('/'));
    let mut request = clients.http.get(&url);
    if let Some(key) = api_key {
        request = request.bearer_auth(key.expose());
    }
    let sent_key = api_key.is_some();
    let text = fetch_list(
        clients,
        request,
        |error| describe_http_error(error, endpoint),
        |status, body| {
            let detail = serde_json::from_str::<Value>(body).ok().and_then(|body| error_message(&body));
            let detail = detail.map(|message| format!(": {message}")).unwrap_or_default();
            match status {
                401 | 403 if sent_key => DiscoveryFailure::at(
                    "api_key",
                    format!(
                        "The server returned code {status} for its model list{detail}. The API key was refused: check it."
                    ),
                ),
                401 | 403 => DiscoveryFailure::at(
                    "api_key",
                    format!(
                        "The server returned code {status} for its model list{detail}. It needs an API key: enter it, then load the models again."
                    ),
                ),
                404 => DiscoveryFailure::at(
                    "endpoint",
                    format!(
                        "The server returned code 404 for {url}{detail}. The endpoint usually ends in /v1 (for example http://vllm:8000/v1)."
                    ),
                ),
                _ => DiscoveryFailure::at("endpoint", describe_status(status, body, endpoint, sent_key).to_string()),
            }
        },
    )
    .await?;
    let entries = list_entries(&text, CUSTOM_OPENAI_PREFIX.len()).ok_or_else(|| {
        DiscoveryFailure::at(
            "endpoint",
            format!("{url} did not answer with a model list (OpenAI's {{\"data\": [{{\"id\": ...}}]}}). Check that the endpoint serves the OpenAI-compatible API."),
        )
    })?;
    Ok(entries
        .into_iter()
        .map(|(id, _)| DiscoveredModel {
            identifier: format!("{CUSTOM_OPENAI_PREFIX}{id}"),
            family: guess_family(&id).map(str::to_owned),
            label: id,
        })
        .collect())
}

/// Sends a list request and reads its body, with the limits of a reply (idle limit, size cap;
/// the client follows no redirects): an unreachable server is described by `unreachable`, an
/// error status by `refused`, both at the endpoint unless `refused` says otherwise.
pub(super) async fn fetch_list(
    clients: &ModelClients,
    request: reqwest::RequestBuilder,
    unreachable: impl Fn(&reqwest::Error) -> ModelFailure,
    refused: impl Fn(u16, &str) -> DiscoveryFailure,
) -> Result<String, DiscoveryFailure> {
    let at_endpoint = |failure: ModelFailure| DiscoveryFailure::at("endpoint", failure.to_string());
    let response = tokio::time::timeout(clients.idle_limit, request.send())
        .await
        .map_err(|_| at_endpoint(ModelFailure::NoAnswer))?
        .map_err(|error| {
            at_endpoint(if error.is_timeout() { ModelFailure::NoAnswer } else { unreachable(&error) })
        })?;
    let status = response.status();
    if !status.is_success() {
        let text = read_capped(response, MAX_ERROR_BODY, clients.idle_limit).await.unwrap_or_default();
        return Err(refused(status.as_u16(), &text));
    }
    read_capped(response, MAX_MODEL_LIST, clients.idle_limit).await.map_err(at_endpoint)
}

/// The usable entries of an OpenAI-style list (`{"data": [{"id": ..}, ..]}`), with their ids:
/// distinct, short enough to follow a provider prefix of `prefix_len` within the identifier's
/// length, at most `MAX_MODELS_OFFERED`; `None` if the text is not such a list.
pub(super) fn list_entries(text: &str, prefix_len: usize) -> Option<Vec<(String, Value)>> {
    let list: Value = serde_json::from_str(text).ok()?;
    let data = list["data"].as_array()?;
    let limit = IDENTIFIER_MAX_CHARS - prefix_len;
    let mut entries: Vec<(String, Value)> = Vec::new();
    for entry in data {
        let Some(id) = entry["id"].as_str().map(str::trim) else { continue };
        let fits = !id.is_empty() && id.chars().count() <= limit && !id.chars().any(char::is_control);
        if fits && !entries.iter().any(|(known, _)| known == id) {
            entries.push((id.to_owned(), entry.clone()));
        }
        if entries.len() == MAX_MODELS_OFFERED {
            break;
        }
    }
    Some(entries)
}

/// The body of a chat completion: the conversation, streamed with its usage; `model` where the
/// server picks the model from the body (not Azure, where the path names the deployment).
pub(super) fn chat_body(model: Option<&str>, exchange: &Exchange) -> Value {
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
        "messages": messages,
        "max_tokens": exchange.max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if let Some(model) = model {
        body["model"] = json!(model);
    }
    if let Some(temperature) = exchange.temperature {
        body["temperature"] = json!(temperature);
    }
    body
}

/// Why a request got no reply to read.
pub(super) enum Unsent {
    Failed(ModelFailure),
    /// The server could not be reached: the provider names it with its endpoint.
    Unreachable(reqwest::Error),
}

impl From<ModelFailure> for Unsent {
    fn from(failure: ModelFailure) -> Self {
        Unsent::Failed(failure)
    }
}

/// Sends a chat completion and streams its reply (server-sent events, or one JSON document
/// from a server that ignores `"stream"`); an error status is described by `describe`.
pub(super) async fn read_reply(
    clients: &ModelClients,
    request: reqwest::RequestBuilder,
    reply: &mut Reply,
    describe: impl Fn(u16, &str) -> ModelFailure,
) -> Result<(), Unsent> {
    let response = tokio::time::timeout(clients.idle_limit, request.send())
        .await
        .map_err(|_| ModelFailure::NoAnswer)?
        .map_err(|error| {
            if error.is_timeout() {
                Unsent::Failed(ModelFailure::NoAnswer)
            } else {
                Unsent::Unreachable(error)
            }
        })?;
    let status = response.status();
    if !status.is_success() {
        let text = read_capped(response, MAX_ERROR_BODY, clients.idle_limit).await.unwrap_or_default();
        return Err(describe(status.as_u16(), &text).into());
    }
    if !is_event_stream(&response) {
        // A server that ignores "stream": one JSON answer.
        let text = read_capped(response, MAX_WHOLE_REPLY, clients.idle_limit).await?;
        let answer: Value = serde_json::from_str(&text).map_err(|_| ModelFailure::Malformed)?;
        let content = answer["choices"][0]["message"]["content"].as_str().ok_or(ModelFailure::Malformed)?;
        reply.forward(content.to_owned()).await?;
        read_usage(&answer, &mut reply.figures);
        reply.figures.stop_reason = answer["choices"][0]["finish_reason"].as_str().map(str::to_owned);
        return Ok(());
    }
    let mut events = SseData::new(Box::pin(response.bytes_stream()), clients.idle_limit);
    while let Some(data) = events.next().await? {
        if data == "[DONE]" {
            return Ok(());
        }
        let event: Value = serde_json::from_str(&data).map_err(|_| ModelFailure::Malformed)?;
        if let Some(message) = error_message(&event) {
            return Err(ModelFailure::Provider(format!(
                "The self-hosted model server reported an error: {message}"
            ))
            .into());
        }
        read_usage(&event, &mut reply.figures);
        if let Some(choice) = event["choices"].get(0) {
            if let Some(text) = choice["delta"]["content"].as_str() {
                reply.forward(text.to_owned()).await?;
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                reply.figures.stop_reason = Some(reason.to_owned());
            }
        }
    }
    Ok(())
}

/// The `data:` of each server-sent event of a streamed body, one at a time; `None` once the
/// body ends. Each piece of the body must arrive within `idle` (the SDKs' timeouts do not
/// cover a stream being read).
pub(super) struct SseData<S> {
    body: S,
    lines: SseLines,
    ready: std::collections::VecDeque<String>,
    idle: Duration,
}

impl<S, B, E> SseData<S>
where
    S: futures::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    pub(super) fn new(body: S, idle: Duration) -> Self {
        SseData { body, lines: SseLines::default(), ready: Default::default(), idle }
    }

    pub(super) async fn next(&mut self) -> Result<Option<String>, ModelFailure> {
        loop {
            if let Some(data) = self.ready.pop_front() {
                return Ok(Some(data));
            }
            let chunk = tokio::time::timeout(self.idle, self.body.next())
                .await
                .map_err(|_| ModelFailure::StreamStalled)?;
            let Some(chunk) = chunk else {
                return Ok(None);
            };
            let chunk = chunk.map_err(|_| ModelFailure::StreamStalled)?;
            self.ready.extend(self.lines.push(chunk.as_ref())?);
        }
    }
}

/// Reassembles server-sent event lines from chunks split anywhere, and hands back the `data:`
/// of each complete line. Each byte is scanned once (a long line arriving in many chunks is not
/// rescanned from its start), and a line may not outgrow `MAX_EVENT_LINE`.
#[derive(Default)]
pub(super) struct SseLines {
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no newline.
    scanned: usize,
}

impl SseLines {
    pub(super) fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, ModelFailure> {
        self.pending.extend_from_slice(chunk);
        let mut data = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[self.scanned..].iter().position(|byte| *byte == b'\n') {
            let end = self.scanned + offset;
            let line = std::str::from_utf8(&self.pending[start..end]).map_err(|_| ModelFailure::Malformed)?;
            if let Some(value) = line.trim().strip_prefix("data:") {
                data.push(value.trim().to_owned());
            }
            start = end + 1;
            self.scanned = start;
        }
        self.pending.drain(..start);
        self.scanned = self.pending.len();
        if self.pending.len() > MAX_EVENT_LINE {
            return Err(ModelFailure::TooLarge { limit_kib: MAX_EVENT_LINE / 1024 });
        }
        Ok(data)
    }
}

/// The body as text, or `TooLarge` past `limit` bytes (read no further), each piece within the
/// idle limit.
pub(super) async fn read_capped(
    response: reqwest::Response,
    limit: usize,
    idle: Duration,
) -> Result<String, ModelFailure> {
    let mut body = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) =
        tokio::time::timeout(idle, body.next()).await.map_err(|_| ModelFailure::StreamStalled)?
    {
        bytes.extend_from_slice(&chunk.map_err(|_| ModelFailure::StreamStalled)?);
        if bytes.len() > limit {
            return Err(ModelFailure::TooLarge { limit_kib: limit / 1024 });
        }
    }
    String::from_utf8(bytes).map_err(|_| ModelFailure::Malformed)
}

fn read_usage(event: &Value, figures: &mut Figures) {
    if let Some(usage) = event.get("usage").filter(|usage| usage.is_object()) {
        figures.input_tokens = usage["prompt_tokens"].as_i64().or(figures.input_tokens);
        figures.output_tokens = usage["completion_tokens"].as_i64().or(figures.output_tokens);
    }
}

/// The message of either error shape: vLLM's older `{"object":"error","message":..}` or the
/// newer `{"error":{"message":..}}`.
pub(super) fn error_message(body: &Value) -> Option<String> {
    if body["object"] == "error" {
        return body["message"].as_str().map(str::to_owned);
    }
    body["error"]["message"].as_str().map(str::to_owned).or_else(|| body["error"].as_str().map(str::to_owned))
}

fn describe_status(status: u16, body: &str, endpoint: &str, sent_key: bool) -> ModelFailure {
    let detail = serde_json::from_str::<Value>(body).ok().and_then(|body| error_message(&body));
    let detail = detail.map(|message| format!(": {message}")).unwrap_or_default();
    ModelFailure::Provider(match status {
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
        300..=399 => format!(
            "The self-hosted model server returned code {status}, a redirect. The console does not follow redirects (a key goes only to the endpoint it was stored for): enter the final address as the endpoint."
        ),
        _ => format!("The self-hosted model server returned code {status}{detail}"),
    })
}

fn describe_http_error(error: &reqwest::Error, endpoint: &str) -> ModelFailure {
    if error.is_timeout() {
        ModelFailure::NoAnswer
    } else if error.is_connect() {
        ModelFailure::Provider(format!(
            "Could not connect to {endpoint} (connection refused or host unreachable). Check the endpoint and that the model server is running."
        ))
    } else {
        ModelFailure::Provider(format!("Could not reach {endpoint}. Check the endpoint and the network."))
    }
}

/// Whether a reply streams as server-sent events; a compatible server that ignores the
/// request to stream answers with one JSON document instead.
pub(super) fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_survive_any_split_and_only_data_lines_come_back() {
        let wire = b"data: {\"a\":1}\n\n: comment\ndata: [DONE]\n";
        for split in 1..wire.len() {
            let mut lines = SseLines::default();
            let mut seen = lines.push(&wire[..split]).unwrap();
            seen.extend(lines.push(&wire[split..]).unwrap());
            assert_eq!(seen, ["{\"a\":1}", "[DONE]"], "split at {split}");
        }
    }

    #[test]
    fn a_line_without_end_is_refused_once_it_outgrows_the_cap() {
        let mut lines = SseLines::default();
        let piece = vec![b'x'; 64 * 1024];
        let mut outcome = Ok(Vec::new());
        for _ in 0..=(MAX_EVENT_LINE / piece.len()) {
            outcome = lines.push(&piece);
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(outcome, Err(ModelFailure::TooLarge { limit_kib: MAX_EVENT_LINE / 1024 }));
    }

    #[test]
    fn a_model_list_gives_its_distinct_ids_within_the_identifiers_length() {
        let long = "m".repeat(300);
        let text = json!({"object": "list", "data": [
            {"id": "Mixtral-8x7B", "object": "model"}, {"id": "Mixtral-8x7B"}, {"id": long}, {"id": 7}, {"id": " "},
            {"id": "mistralai/Mistral-7B"}
        ]})
        .to_string();
        let model_ids = |text: &str| {
            list_entries(text, CUSTOM_OPENAI_PREFIX.len())
                .map(|entries| entries.into_iter().map(|(id, _)| id).collect::<Vec<_>>())
        };
        assert_eq!(model_ids(&text).unwrap(), ["Mixtral-8x7B", "mistralai/Mistral-7B"]);
        assert_eq!(model_ids("{\"models\": []}"), None);
        assert_eq!(model_ids("<html>"), None);
        let many =
            json!({"data": (0..900).map(|i| json!({"id": format!("m{i}")})).collect::<Vec<_>>()}).to_string();
        assert_eq!(model_ids(&many).unwrap().len(), MAX_MODELS_OFFERED);
    }

    #[test]
    fn a_redirect_is_named_not_followed() {
        let failure = describe_status(302, "", "http://h/v1", true).to_string();
        assert!(failure.contains("does not follow redirects"), "{failure}");
    }
}
