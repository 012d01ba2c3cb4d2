//! Google Vertex AI for tests, on Google's own wire, with Google's OAuth in front of it:
//!
//! - `POST /token`, a service account's token endpoint (the key file's `token_uri`): takes the
//!   JWT bearer grant, checks the assertion's RS256 signature against the service account's
//!   public key and its claims (issuer, audience, scope, expiry), and issues an access token,
//!   or refuses with Google's `invalid_grant`;
//! - the publisher models of `/v1/projects/{p}/locations/{l}/publishers/{google|anthropic}/models/{m}:{method}`,
//!   which refuse a missing or unknown bearer token with Google's 401 `UNAUTHENTICATED`:
//!   Gemini's `streamGenerateContent` (server-sent events with `alt=sse`, else one JSON array),
//!   Anthropic's `streamRawPredict` (Anthropic's Messages events). Replies are sent in pieces
//!   split at odd bytes.
//!
//! What it serves: `gemini-2.0-flash-001` in every location; `claude-3-5-sonnet@20240620` in
//! us-east5 only (elsewhere 404 `NOT_FOUND`, as Vertex answers for a model not offered in a
//! location); `gemini-1.5-pro-002` is out of quota (429 `RESOURCE_EXHAUSTED`);
//! `claude-3-opus@20240229` starts its reply and then sends an `overloaded_error` event;
//! `gemini-json-001` answers as a server that ignores `alt=sse` does (one JSON array) and
//! `gemini-garbled-001` sends an event that is not JSON. The
//! project `denied-project` is refused with 403 `PERMISSION_DENIED`.
//!
//! - Model Garden's listing, `GET /v1beta1/publishers/{google|anthropic}/models`, two pages
//!   each (`pageToken`/`nextPageToken`), behind the same bearer check, billed to the
//!   `x-goog-user-project` header's project: `denied-project` is refused with 403,
//!   `unknown-project` with 404 `NOT_FOUND`, `quota-project` with 429 `RESOURCE_EXHAUSTED`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::signature::Verifier;
use serde_json::{Value, json};

pub const GEMINI: &str = "gemini-2.0-flash-001";
pub const CLAUDE: &str = "claude-3-5-sonnet@20240620";
pub const CLAUDE_LOCATION: &str = "us-east5";
pub const GEMINI_REPLY: [&str; 2] = ["Hello from", " Gemini on Vertex AI!"];
pub const CLAUDE_REPLY: [&str; 2] = ["Hello from", " Claude on Vertex AI!"];
pub const SERVICE_ACCOUNT: &str = "duo-console@duo-prod-1.iam.gserviceaccount.com";
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// What one model request carried.
#[derive(Debug, Clone)]
pub struct Seen {
    pub project: String,
    pub location: String,
    pub publisher: String,
    pub model: String,
    pub method: String,
    pub alt: Option<String>,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Clone)]
pub struct FakeVertex {
    /// The base URL, as `VERTEX_AI_ENDPOINT_URL` names it.
    pub url: String,
    public_key: rsa::RsaPublicKey,
    issued: Arc<Mutex<HashSet<String>>>,
    token_requests: Arc<Mutex<usize>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    listed: Arc<Mutex<Vec<Listed>>>,
}

/// What one listing request carried.
#[derive(Debug, Clone)]
pub struct Listed {
    pub publisher: String,
    pub page_token: Option<String>,
    pub user_project: Option<String>,
    pub authorization: Option<String>,
}

/// The service account's key pair, made once for the whole test run (an RSA key takes a
/// moment to make), and another that the fake does not know.
pub fn service_account_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(new_key)
}

pub fn unknown_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(new_key)
}

fn new_key() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("an RSA key")
}

impl FakeVertex {
    pub async fn start() -> FakeVertex {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let fake = FakeVertex {
            url: format!("http://{}", listener.local_addr().expect("an address")),
            public_key: service_account_key().to_public_key(),
            issued: Arc::default(),
            token_requests: Arc::default(),
            seen: Arc::default(),
            listed: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{call}",
                axum::routing::post(model_call),
            )
            .route("/v1beta1/publishers/{publisher}/models", axum::routing::get(list_models))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.expect("the fake serves") });
        fake
    }

    /// A service account's JSON key file whose token endpoint is this fake, signed with `key`;
    /// written to a file of its own, as `GOOGLE_APPLICATION_CREDENTIALS` names one.
    pub fn key_file(&self, key: &rsa::RsaPrivateKey) -> std::path::PathBuf {
        let pem = key.to_pkcs8_pem(LineEnding::LF).expect("a PKCS#8 key");
        let json = json!({
            "type": "service_account",
            "project_id": "duo-prod-1",
            "private_key_id": "0123456789abcdef",
            "private_key": pem.as_str(),
            "client_email": SERVICE_ACCOUNT,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.url),
        });
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "duo-vertex-key-{}-{}.json",
            std::process::id(),
            FILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::write(&path, json.to_string()).expect("the key file is written");
        path
    }

    /// Vertex AI through this fake, with `key_file`'s service account (signed with `key`).
    pub fn access(&self, key: &rsa::RsaPrivateKey) -> app::chat::client::VertexAccess {
        app::chat::client::VertexAccess {
            credentials: app::chat::client::GoogleCredentials::ServiceAccountFile(self.key_file(key)),
            endpoint_url: Some(self.url.clone()),
        }
    }

    /// Forgets every access token issued: the next model call with one is refused (401).
    pub fn revoke_tokens(&self) {
        self.issued.lock().expect("not poisoned").clear();
    }

    pub fn token_requests(&self) -> usize {
        *self.token_requests.lock().expect("not poisoned")
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

/// Google's OAuth error, as its token endpoint answers a bad grant.
fn invalid_grant(description: &str) -> Response {
    let body = json!({"error": "invalid_grant", "error_description": description});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// The JWT bearer grant (RFC 7523) as Google takes it from a service account.
async fn token(State(fake): State<FakeVertex>, body: Bytes) -> Response {
    *fake.token_requests.lock().expect("not poisoned") += 1;
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    if field("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})),
        )
            .into_response();
    }
    let Some(assertion) = field("assertion") else { return invalid_grant("Missing assertion.") };
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else { return invalid_grant("Invalid JWT.") };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok();
    let header: Value = decode(header).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let claims: Value = decode(claims).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    if header["alg"] != "RS256" {
        return invalid_grant("Invalid JWT: the algorithm must be RS256.");
    }
    let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(fake.public_key.clone());
    let signed = format!("{}.{}", parts[0], parts[1]);
    let valid = decode(signature)
        .and_then(|bytes| rsa::pkcs1v15::Signature::try_from(bytes.as_slice()).ok())
        .is_some_and(|signature| verifier.verify(signed.as_bytes(), &signature).is_ok());
    if !valid {
        return invalid_grant("Invalid JWT Signature.");
    }
    let now = chrono::Utc::now().timestamp();
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if claims["iss"] != SERVICE_ACCOUNT
        || claims["aud"] != format!("{}/token", fake.url)
        || !scopes.split(' ').any(|scope| scope == SCOPE)
        || claims["exp"].as_i64().is_none_or(|exp| exp <= now || exp > now + 3700)
    {
        return invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
    }
    let access_token = format!("ya29.fake-{}", rand_suffix());
    fake.issued.lock().expect("not poisoned").insert(access_token.clone());
    axum::Json(json!({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

impl FakeVertex {
    pub fn listings(&self) -> Vec<Listed> {
        self.listed.lock().expect("not poisoned").clone()
    }
}

/// Model Garden's publisher models, two pages per publisher.
async fn list_models(
    State(fake): State<FakeVertex>,
    Path(publisher): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorization = header("authorization");
    let user_project = header("x-goog-user-project");
    let page_token = query.get("pageToken").cloned();
    fake.listed.lock().expect("not poisoned").push(Listed {
        publisher: publisher.clone(),
        page_token: page_token.clone(),
        user_project: user_project.clone(),
        authorization: authorization.clone(),
    });
    let token = authorization.as_deref().and_then(|value| value.strip_prefix("Bearer "));
    if !token.is_some_and(|token| fake.issued.lock().expect("not poisoned").contains(token)) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
            "UNAUTHENTICATED",
        );
    }
    match user_project.as_deref() {
        Some("denied-project") => {
            return google_error(
                StatusCode::FORBIDDEN,
                "Permission 'aiplatform.publisherModels.list' denied on project denied-project.",
                "PERMISSION_DENIED",
            );
        }
        Some("unknown-project") => {
            return google_error(StatusCode::NOT_FOUND, "Project unknown-project not found.", "NOT_FOUND");
        }
        Some("quota-project") => {
            return google_error(StatusCode::TOO_MANY_REQUESTS, "Quota exceeded.", "RESOURCE_EXHAUSTED");
        }
        _ => {}
    }
    let model = |id: &str, version: &str| json!({"name": format!("publishers/{publisher}/models/{id}"), "versionId": version});
    let page = match (publisher.as_str(), page_token.as_deref()) {
        ("google", None) => {
            json!({"publisherModels": [model("gemini-2.0-flash-001", "001"), model("gemini-1.5-pro-002", "002")], "nextPageToken": "google-2"})
        }
        ("google", Some("google-2")) => json!({"publisherModels": [model("gemini-2.5-pro", "default")]}),
        ("anthropic", None) => {
            json!({"publisherModels": [model("claude-3-5-sonnet", "20240620")], "nextPageToken": "anthropic-2"})
        }
        ("anthropic", Some("anthropic-2")) => {
            json!({"publisherModels": [model("claude-3-opus", "20240229")], "nextPageToken": ""})
        }
        _ => return google_error(StatusCode::BAD_REQUEST, "Unknown page token.", "INVALID_ARGUMENT"),
    };
    axum::Json(page).into_response()
}

fn rand_suffix() -> String {
    use rsa::rand_core::RngCore;
    format!("{:016x}", rsa::rand_core::OsRng.next_u64())
}

/// Google's error body.
fn google_error(status: StatusCode, message: &str, name: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": name}});
    (status, axum::Json(body)).into_response()
}

async fn model_call(
    State(fake): State<FakeVertex>,
    Path((project, location, publisher, call)): Path<(String, String, String, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (model, method) = call.split_once(':').unwrap_or((call.as_str(), ""));
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    fake.seen.lock().expect("not poisoned").push(Seen {
        project: project.clone(),
        location: location.clone(),
        publisher: publisher.clone(),
        model: model.to_owned(),
        method: method.to_owned(),
        alt: query.get("alt").cloned(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let token = authorization.as_deref().and_then(|value| value.strip_prefix("Bearer "));
    if !token.is_some_and(|token| fake.issued.lock().expect("not poisoned").contains(token)) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "UNAUTHENTICATED",
        );
    }
    let resource = format!("projects/{project}/locations/{location}/publishers/{publisher}/models/{model}");
    if project == "denied-project" {
        return google_error(
            StatusCode::FORBIDDEN,
            &format!(
                "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/{resource}' (or it may not exist)."
            ),
            "PERMISSION_DENIED",
        );
    }
    let offered = match (publisher.as_str(), model) {
        ("google", GEMINI | "gemini-1.5-pro-002" | "gemini-json-001" | "gemini-garbled-001") => true,
        ("anthropic", CLAUDE | "claude-3-opus@20240229") => location == CLAUDE_LOCATION,
        _ => false,
    };
    if !offered {
        return google_error(
            StatusCode::NOT_FOUND,
            &format!("Publisher Model `{resource}` not found."),
            "NOT_FOUND",
        );
    }
    if model == "gemini-1.5-pro-002" {
        return google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute_per_project_per_base_model with base model: gemini-1.5-pro. Please submit a quota increase request. https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.",
            "RESOURCE_EXHAUSTED",
        );
    }
    match (publisher.as_str(), method) {
        ("google", "streamGenerateContent") if model == "gemini-json-001" => gemini_reply(&body, None),
        ("google", "streamGenerateContent") if model == "gemini-garbled-001" => {
            split_response("text/event-stream", "data: {\"candidates\": [\r\n\r\n".to_owned())
        }
        ("google", "streamGenerateContent") => gemini_reply(&body, query.get("alt").map(String::as_str)),
        ("anthropic", "streamRawPredict") => claude_reply(&body, model),
        _ => google_error(StatusCode::BAD_REQUEST, &format!("Unknown method {method}."), "INVALID_ARGUMENT"),
    }
}

/// Gemini's `GenerateContentResponse`s: text in pieces, the finish reason and usage last.
fn gemini_reply(body: &Value, alt: Option<&str>) -> Response {
    if body["contents"][0]["parts"][0]["text"].as_str().is_none() {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Unable to submit request because it must include at least one parts field, which describes the prompt input.",
            "INVALID_ARGUMENT",
        );
    }
    let pieces: Vec<Value> = GEMINI_REPLY
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut candidate = json!({"content": {"role": "model", "parts": [{"text": text}]}});
            let mut piece = json!({"modelVersion": GEMINI, "createTime": "2026-12-01T22:00:00.000000Z", "responseId": "r1"});
            if i == GEMINI_REPLY.len() - 1 {
                candidate["finishReason"] = json!("STOP");
                piece["usageMetadata"] =
                    json!({"promptTokenCount": 9, "candidatesTokenCount": 6, "totalTokenCount": 15});
            }
            piece["candidates"] = json!([candidate]);
            piece
        })
        .collect();
    if alt != Some("sse") {
        return split_response("application/json", Value::Array(pieces).to_string());
    }
    let wire: String = pieces.iter().map(|piece| format!("data: {piece}\r\n\r\n")).collect();
    split_response("text/event-stream", wire)
}

/// Anthropic's Messages events, as Vertex AI streams them for `streamRawPredict`.
fn claude_reply(body: &Value, model: &str) -> Response {
    if body["anthropic_version"] != "vertex-2023-10-16" || body.get("model").is_some() {
        let error = json!({"type": "error", "error": {"type": "invalid_request_error",
            "message": "anthropic_version: vertex-2023-10-16 is required, and model may not be given"}});
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut wire = event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_vrtx_01", "type": "message", "role": "assistant",
            "model": "claude-3-5-sonnet-20240620", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 11, "output_tokens": 1}}}),
    );
    wire += &event("ping", json!({"type": "ping"}));
    wire += &event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    if model == "claude-3-opus@20240229" {
        wire += &event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        );
        wire += &event(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
        return split_response("text/event-stream", wire);
    }
    for text in CLAUDE_REPLY {
        wire += &event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        );
    }
    wire += &event("content_block_stop", json!({"type": "content_block_stop", "index": 0}));
    wire += &event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 7}}),
    );
    wire += &event("message_stop", json!({"type": "message_stop"}));
    split_response("text/event-stream", wire)
}

/// The body in pieces of 7 bytes: lines, events and UTF-8 split wherever they fall.
fn split_response(content_type: &str, wire: String) -> Response {
    let pieces: Vec<Result<Bytes, Infallible>> =
        wire.into_bytes().chunks(7).map(|piece| Ok(Bytes::copy_from_slice(piece))).collect();
    Response::builder()
        .header("content-type", content_type)
        .body(Body::from_stream(futures::stream::iter(pieces)))
        .expect("a response")
}
