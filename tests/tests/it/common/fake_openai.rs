//! An OpenAI-compatible server for tests (what vLLM serves under /v1): chat completions with
//! server-sent events, an API key check, both error shapes, and failures chosen by model name.

use std::convert::Infallible;
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
}

impl FakeOpenAi {
    pub async fn start(required_key: Option<&str>) -> FakeOpenAi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let fake = FakeOpenAi {
            endpoint: format!("http://{}/v1", listener.local_addr().expect("an address")),
            required_key: required_key.map(str::to_owned),
        };
        let router = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(chat_completions))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.expect("the fake serves") });
        fake
    }
}

async fn chat_completions(
    State(fake): State<FakeOpenAi>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    if let Some(key) = &fake.required_key {
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(key.as_str()) {
            let error = json!({"error": {"message": "Invalid API key", "type": "invalid_request_error", "code": 401}});
            return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
        }
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
