//! An OpenAI-compatible server for tests (what vLLM serves under /v1): chat completions with
//! server-sent events, an API key check, both error shapes, and failures chosen by model name.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

pub const REPLY: [&str; 3] = ["Hello", " from the", " fake vLLM!"];

#[derive(Clone)]
pub struct FakeOpenAi {
    /// The endpoint as an admin enters it, ending in /v1.
    pub endpoint: String,
    required_key: Option<String>,
    /// Replies of the "drip" model being sent now: one ends when the console hangs up.
    pub dripping: Arc<AtomicUsize>,
}

impl FakeOpenAi {
    pub async fn start(required_key: Option<&str>) -> FakeOpenAi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let fake = FakeOpenAi {
            endpoint: format!("http://{}/v1", listener.local_addr().expect("an address")),
            required_key: required_key.map(str::to_owned),
            dripping: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(chat_completions))
            .route("/v1/models", axum::routing::get(models))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.expect("the fake serves") });
        fake
    }
}

/// The models this server serves, as vLLM lists them.
pub const MODELS: [&str; 2] = ["Mixtral-8x7B-Instruct-v0.1", "mistralai/Mistral-7B-Instruct-v0.3"];

/// The key check of every route: 401 in OpenAI's shape unless the bearer token is the key.
fn refused(fake: &FakeOpenAi, headers: &HeaderMap) -> Option<Response> {
    let key = fake.required_key.as_ref()?;
    let sent =
        headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if sent == Some(key.as_str()) {
        return None;
    }
    let error =
        json!({"error": {"message": "Invalid API key", "type": "invalid_request_error", "code": 401}});
    Some((StatusCode::UNAUTHORIZED, axum::Json(error)).into_response())
}

/// `GET /v1/models`: vLLM's list.
async fn models(State(fake): State<FakeOpenAi>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&fake, &headers) {
        return refusal;
    }
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1715000000, "owned_by": "vllm", "root": id, "max_model_len": 32768}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn chat_completions(
    State(fake): State<FakeOpenAi>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    if let Some(refusal) = refused(&fake, &headers) {
        return refusal;
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    match model.as_str() {
        m if m.contains("missing") => {
            let error = json!({"object": "error", "message": format!("The model `{m}` does not exist."), "type": "NotFoundError", "code": 404});
            (StatusCode::NOT_FOUND, axum::Json(error)).into_response()
        }
        m if m.contains("old-error") => {
            let error = json!({"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "code": 400});
            (StatusCode::BAD_REQUEST, axum::Json(error)).into_response()
        }
        m if m.contains("new-error") => {
            let error = json!({"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}});
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(error)).into_response()
        }
        m if m.contains("malformed") => sse(vec!["data: {this is not json\n\n".to_owned()], false),
        m if m.contains("stall") => sse(vec![chunk(&model, "Hel", None)], true),
        // Something every 200 ms for a minute: a slow model, never idle long enough to stall.
        m if m.contains("drip") => drip(&fake, model.clone()),
        _ => {
            let mut events: Vec<String> = REPLY.iter().map(|piece| chunk(&model, piece, None)).collect();
            events.push(chunk(&model, "", Some("stop")));
            let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model, "choices": [],
                               "usage": {"prompt_tokens": 28, "completion_tokens": 8, "total_tokens": 36}});
            events.push(format!("data: {usage}\n\n"));
            events.push("data: [DONE]\n\n".to_owned());
            sse(events, false)
        }
    }
}

/// Counts a "drip" reply while its body is being sent (hyper drops the body when the client
/// hangs up).
struct Dripping(Arc<AtomicUsize>);

impl Drop for Dripping {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn drip(fake: &FakeOpenAi, model: String) -> Response {
    fake.dripping.fetch_add(1, Ordering::SeqCst);
    let guard = Dripping(fake.dripping.clone());
    let words = futures::stream::unfold((0u32, guard), move |(sent, guard)| {
        let model = model.clone();
        async move {
            if sent >= 300 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            // A few words, then a model that thinks aloud in keep-alive comments only: never
            // idle, never writing, as a model working on a long answer.
            let event = if sent < 3 {
                chunk(&model, &format!("word{sent} "), None)
            } else {
                ": still thinking\n\n".to_owned()
            };
            Some((Ok::<Bytes, Infallible>(Bytes::from(event)), (sent + 1, guard)))
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(words))
        .expect("a response")
}

fn chunk(model: &str, text: &str, finish: Option<&str>) -> String {
    let event = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model,
                       "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]});
    format!("data: {event}\n\n")
}

fn sse(events: Vec<String>, then_stall: bool) -> Response {
    let events = futures::stream::iter(events).then(|event| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok::<Bytes, Infallible>(Bytes::from(event))
    });
    let stall = futures::stream::once(async move {
        if then_stall {
            std::future::pending::<()>().await;
        }
        Ok::<Bytes, Infallible>(Bytes::new())
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(events.chain(stall)))
        .expect("a response")
}
