//! An Azure OpenAI resource for tests, on Azure's own wire: chat completions at
//! `/openai/deployments/{deployment}/chat/completions?api-version=...`, the key in an `api-key`
//! header, server-sent events whose first chunk carries Azure's prompt filter results, and
//! Azure's error bodies (`{"error":{"code":..,"message":..}}`). Deployments it serves:
//! "gpt4o-prod"; "throttled" answers 429; any other is `DeploymentNotFound`.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const REPLY: [&str; 2] = ["Hello from", " Azure OpenAI!"];

/// What one request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub deployment: String,
    pub api_version: Option<String>,
    pub api_key: Option<String>,
    pub authorization: Option<String>,
    pub model_in_body: Option<String>,
}

#[derive(Clone)]
pub struct FakeAzure {
    /// The resource's address, as an admin enters it.
    pub endpoint: String,
    key: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeAzure {
    pub async fn start(key: &str) -> FakeAzure {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let fake = FakeAzure {
            endpoint: format!("http://{}", listener.local_addr().expect("an address")),
            key: key.to_owned(),
            seen: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/openai/deployments/{deployment}/chat/completions", axum::routing::post(chat_completions))
            .route("/openai/deployments", axum::routing::get(deployments))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.expect("the fake serves") });
        fake
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

/// The deployments list of the data plane, as Azure answers it in the one API version that
/// still has it: each deployment's name and the model behind it.
async fn deployments(
    State(fake): State<FakeAzure>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if headers.get("api-key").and_then(|v| v.to_str().ok()) != Some(fake.key.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        );
    }
    if query.get("api-version").map(String::as_str) != Some("2023-03-15-preview") {
        return error(StatusCode::NOT_FOUND, "404", "Resource not found");
    }
    let deployment = |id: &str, model: &str| {
        json!({"id": id, "model": model, "object": "deployment", "owner": "organization-owner",
               "status": "succeeded", "created_at": 1715000000, "updated_at": 1715000000,
               "scale_settings": {"scale_type": "standard"}})
    };
    axum::Json(json!({"object": "list", "data": [
        deployment("gpt4o-prod", "gpt-4o"),
        deployment("embeddings", "text-embedding-ada-002"),
        deployment("mini", "gpt-4o-mini"),
    ]}))
    .into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

async fn chat_completions(
    State(fake): State<FakeAzure>,
    Path(deployment): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    fake.seen.lock().expect("not poisoned").push(Seen {
        deployment: deployment.clone(),
        api_version: query.get("api-version").cloned(),
        api_key: header("api-key"),
        authorization: header("authorization"),
        model_in_body: body["model"].as_str().map(str::to_owned),
    });
    if !query.contains_key("api-version") {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    if header("api-key").as_deref() != Some(fake.key.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        );
    }
    match deployment.as_str() {
        "gpt4o-prod" => {}
        "throttled" => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "429",
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current tier. Please retry after 6 seconds.",
            );
        }
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
            );
        }
    }
    let filter = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]});
    let mut events = vec![format!("data: {filter}\n\n")];
    for piece in REPLY {
        let chunk = json!({"id": "chatcmpl-az", "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null, "content_filter_results": {}}]});
        events.push(format!("data: {chunk}\n\n"));
    }
    let last = json!({"id": "chatcmpl-az", "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}});
    events.push(format!("data: {last}\n\n"));
    events.push("data: [DONE]\n\n".to_owned());
    ([("content-type", "text/event-stream")], events.concat()).into_response()
}
