//! A Bedrock-compatible server for tests, speaking the real wire protocol: it checks each
//! request's SigV4 signature (recomputed with aws-sigv4), answers ConverseStream with real
//! event-stream frames split across chunks at odd bytes (with AWS's padding field), and plays a
//! failure chosen by the model id.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{TEST_ACCESS_KEY, TEST_SECRET_KEY};

pub const REPLY: [&str; 4] = ["Hello", "! How can I", " help you", " today?"];

#[derive(Clone)]
pub struct FakeBedrock {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    /// The last request body, as received.
    pub last_body: Arc<std::sync::Mutex<Option<Value>>>,
    /// The region of each request's SigV4 credential scope, in order: the region it was
    /// signed for (the signature is checked against it).
    pub signed_regions: Arc<std::sync::Mutex<Vec<String>>>,
    /// When the last byte of the latest reply's first text delta was handed to the network.
    pub first_delta_sent: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl FakeBedrock {
    pub async fn start() -> FakeBedrock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let fake = FakeBedrock {
            url: format!("http://{}", listener.local_addr().expect("an address")),
            requests: Arc::default(),
            last_body: Arc::default(),
            signed_regions: Arc::default(),
            first_delta_sent: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/model/{model_id}/converse-stream", axum::routing::post(converse_stream))
            .route("/inference-profiles", axum::routing::get(list_inference_profiles))
            .route("/foundation-models", axum::routing::get(list_foundation_models))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.expect("the fake serves") });
        fake
    }

    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn signed_regions(&self) -> Vec<String> {
        self.signed_regions.lock().expect("not poisoned").clone()
    }
}

async fn converse_stream(
    State(fake): State<FakeBedrock>,
    Path(model_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    let signed = check_signature("POST", &uri, &headers, &body);
    if let Ok(region) = &signed {
        fake.signed_regions.lock().expect("not poisoned").push(region.clone());
    }
    if let Err(reason) = signed {
        return error(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            &format!(
                "The request signature we calculated does not match the signature you provided. ({reason})"
            ),
        );
    }
    *fake.last_body.lock().expect("not poisoned") = serde_json::from_slice(&body).ok();
    if model_id.starts_with("bedrock/") {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "The provided model identifier is invalid.",
        );
    }
    let scenario = model_id.as_str();
    match scenario {
        s if s.contains("access-denied") => error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        s if s.contains("no-region-prefix") => error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Invocation of model ID anthropic.claude-3-5-sonnet-20241022-v2:0 with on-demand throughput isn't supported.",
        ),
        s if s.contains("not-found") => {
            error(StatusCode::NOT_FOUND, "ResourceNotFoundException", "Model not found.")
        }
        s if s.contains("throttled") => error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        s if s.contains("model-timeout") => error(
            StatusCode::REQUEST_TIMEOUT,
            "ModelTimeoutException",
            "Model has timed out in processing the request.",
        ),
        s if s.contains("model-error") => {
            error(StatusCode::FAILED_DEPENDENCY, "ModelErrorException", "The model returned an error.")
        }
        s if s.contains("never-answers") => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        s if s.contains("malformed") => {
            stream_response(vec![Bytes::from_static(b"this is not an event stream at all......")], false)
        }
        s if s.contains("stall-after-first") => {
            stream_response(split(&[event("messageStart", json!({"role": "assistant"})), delta("Hel")]), true)
        }
        s if s.contains("stream-exception") => stream_response(
            split(&[
                event("messageStart", json!({"role": "assistant"})),
                exception("modelStreamErrorException", "The model stream failed mid-way."),
            ]),
            false,
        ),
        s if s.contains("slow-reply") => {
            // The usual reply, one frame every SLOW_REPLY_GAP: about a second and a half in all.
            let frames = reply_frames().into_iter().map(Bytes::from).collect::<Vec<_>>();
            let chunks = futures::stream::iter(frames).then(|frame| async move {
                tokio::time::sleep(SLOW_REPLY_GAP).await;
                Ok::<Bytes, Infallible>(frame)
            });
            Response::builder()
                .header("content-type", "application/vnd.amazon.eventstream")
                .body(Body::from_stream(chunks))
                .expect("a response")
        }
        s if s.contains("benchmark") => {
            // No pacing between chunks; note when the first delta has been sent in full.
            let start = event("messageStart", json!({"role": "assistant"}));
            let first = delta(REPLY[0]);
            let first_delta_end = start.len() + first.len();
            let mut frames = vec![start, first];
            frames.extend(REPLY[1..].iter().map(|piece| delta(piece)));
            frames.push(event("messageStop", json!({"stopReason": "end_turn"})));
            let bytes = Bytes::from(frames.concat());
            let noted = fake.first_delta_sent.clone();
            let chunks =
                futures::stream::iter([bytes.slice(..first_delta_end), bytes.slice(first_delta_end..)])
                    .enumerate()
                    .map(move |(index, chunk)| {
                        if index == 1 {
                            *noted.lock().expect("not poisoned") = Some(std::time::Instant::now());
                        }
                        Ok::<Bytes, Infallible>(chunk)
                    });
            Response::builder()
                .header("content-type", "application/vnd.amazon.eventstream")
                .body(Body::from_stream(chunks))
                .expect("a response")
        }
        s if s.contains("latency-") => {
            // The usual reply after a set think time: "latency-250ms" answers in about 250 ms.
            let ms = s
                .split("latency-")
                .nth(1)
                .and_then(|rest| rest.strip_suffix("ms"))
                .and_then(|n| n.parse().ok());
            tokio::time::sleep(Duration::from_millis(ms.unwrap_or(0))).await;
            stream_response(split(&reply_frames()), false)
        }
        _ => stream_response(split(&reply_frames()), false),
    }
}

/// The region whose catalog refuses these credentials (AccessDeniedException).
pub const CATALOG_DENIED_REGION: &str = "us-west-1";

/// A catalog call (Bedrock's control plane, REST JSON): the signature checked as for model
/// calls; the region it was signed for, else the error to answer.
fn catalog_request(fake: &FakeBedrock, uri: &Uri, headers: &HeaderMap) -> Result<String, Box<Response>> {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    let region = check_signature("GET", uri, headers, b"").map_err(|reason| {
        Box::new(error(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            &format!(
                "The request signature we calculated does not match the signature you provided. ({reason})"
            ),
        ))
    })?;
    fake.signed_regions.lock().expect("not poisoned").push(region.clone());
    if region == CATALOG_DENIED_REGION {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "User: arn:aws:iam::123456789012:user/console is not authorized to perform: bedrock:ListInferenceProfiles",
        )));
    }
    Ok(region)
}

/// The geography prefix of a region's inference profiles, as Bedrock names them.
fn geography(region: &str) -> &'static str {
    match region.split('-').next() {
        Some("eu") => "eu",
        Some("ap") => "apac",
        _ => "us",
    }
}

/// ListInferenceProfiles: the region's system-defined profiles, two per page (so a client must
/// follow `nextToken`), one of them not active.
async fn list_inference_profiles(
    State(fake): State<FakeBedrock>,
    uri: Uri,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let region = match catalog_request(&fake, &uri, &headers) {
        Ok(region) => region,
        Err(response) => return *response,
    };
    let geo = geography(&region);
    let profiles = [
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "Anthropic Claude 3.5 Sonnet", "ACTIVE"),
        ("meta.llama3-2-90b-instruct-v1:0", "Meta Llama 3.2 90B Instruct", "ACTIVE"),
        ("mistral.pixtral-large-2502-v1:0", "Mistral Pixtral Large", "ACTIVE"),
        ("anthropic.claude-v2:1", "Anthropic Claude 2.1", "INACTIVE"),
    ];
    let start: usize = query
        .get("nextToken")
        .and_then(|token| token.strip_prefix("page-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = profiles
        .iter()
        .skip(start)
        .take(2)
        .map(|(model, name, status)| {
            let id = format!("{geo}.{model}");
            json!({
                "inferenceProfileName": format!("{} {name}", geo.to_uppercase()),
                "description": format!("Routes requests to {name} in {geo} regions."),
                "createdAt": "2024-08-20T00:00:00Z",
                "updatedAt": "2024-08-20T00:00:00Z",
                "inferenceProfileArn": format!("arn:aws:bedrock:{region}:123456789012:inference-profile/{id}"),
                "models": [{"modelArn": format!("arn:aws:bedrock:{region}::foundation-model/{model}")}],
                "inferenceProfileId": id,
                "status": status,
                "type": "SYSTEM_DEFINED",
            })
        })
        .collect();
    let mut body = json!({ "inferenceProfileSummaries": page });
    if start + 2 < profiles.len() {
        body["nextToken"] = json!(format!("page-{}", start + 2));
    }
    axum::Json(body).into_response()
}

/// ListFoundationModels: text models callable on demand, one only through a profile, a
/// legacy one and an embedding model (which a chat cannot use), filtered by output modality.
async fn list_foundation_models(
    State(fake): State<FakeBedrock>,
    uri: Uri,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let region = match catalog_request(&fake, &uri, &headers) {
        Ok(region) => region,
        Err(response) => return *response,
    };
    let models = [
        (
            "anthropic.claude-3-haiku-20240307-v1:0",
            "Anthropic",
            "Claude 3 Haiku",
            "TEXT",
            "ON_DEMAND",
            "ACTIVE",
        ),
        (
            "mistral.mistral-large-2402-v1:0",
            "Mistral AI",
            "Mistral Large (24.02)",
            "TEXT",
            "ON_DEMAND",
            "ACTIVE",
        ),
        (
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "Anthropic",
            "Claude 3.5 Sonnet v2",
            "TEXT",
            "INFERENCE_PROFILE",
            "ACTIVE",
        ),
        ("anthropic.claude-instant-v1", "Anthropic", "Claude Instant", "TEXT", "ON_DEMAND", "LEGACY"),
        (
            "amazon.titan-embed-text-v2:0",
            "Amazon",
            "Titan Text Embeddings V2",
            "EMBEDDING",
            "ON_DEMAND",
            "ACTIVE",
        ),
    ];
    let wanted = query.get("byOutputModality").map(String::as_str);
    let summaries: Vec<Value> = models
        .iter()
        .filter(|(_, _, _, output, _, _)| wanted.is_none_or(|wanted| wanted == *output))
        .map(|(id, provider, name, output, inference, status)| {
            json!({
                "modelArn": format!("arn:aws:bedrock:{region}::foundation-model/{id}"),
                "modelId": id,
                "modelName": name,
                "providerName": provider,
                "inputModalities": ["TEXT"],
                "outputModalities": [output],
                "responseStreamingSupported": *output == "TEXT",
                "customizationsSupported": [],
                "inferenceTypesSupported": [inference],
                "modelLifecycle": {"status": status},
            })
        })
        .collect();
    axum::Json(json!({ "modelSummaries": summaries })).into_response()
}

pub const SLOW_REPLY_GAP: Duration = Duration::from_millis(200);

/// A whole successful reply: REPLY in pieces, the stop, and the usage figures.
fn reply_frames() -> Vec<Vec<u8>> {
    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    frames.extend(REPLY.iter().map(|piece| delta(piece)));
    frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
    frames.push(event("messageStop", json!({"stopReason": "end_turn"})));
    frames.push(event(
        "metadata",
        json!({"usage": {"inputTokens": 8, "outputTokens": 12, "totalTokens": 20}, "metrics": {"latencyMs": 321}}),
    ));
    frames
}

/// Bedrock's error shape: status, `x-amzn-ErrorType`, a JSON message.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", format!("{code}:http://internal.amazon.com/coral/com.amazon.bedrock/")),
            ("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000".to_owned()),
            ("content-type", "application/json".to_owned()),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn frame(message: Message) -> Vec<u8> {
    let mut bytes = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut bytes).expect("a frame");
    bytes
}

fn event(kind: &str, mut payload: Value) -> Vec<u8> {
    // Real AWS pads payloads with a field clients must ignore.
    payload["p"] = json!("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ");
    frame(
        Message::new(payload.to_string())
            .add_header(Header::new(":event-type", HeaderValue::String(kind.to_owned().into())))
            .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
            .add_header(Header::new(":message-type", HeaderValue::String("event".into()))),
    )
}

fn delta(text: &str) -> Vec<u8> {
    event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": text}}))
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    frame(
        Message::new(json!({ "message": message }).to_string())
            .add_header(Header::new(":exception-type", HeaderValue::String(kind.to_owned().into())))
            .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
            .add_header(Header::new(":message-type", HeaderValue::String("exception".into()))),
    )
}

/// All frames as one byte string, cut into chunks of 7 bytes: frames never line up with chunks.
fn split(frames: &[Vec<u8>]) -> Vec<Bytes> {
    frames.concat().chunks(7).map(Bytes::copy_from_slice).collect()
}

fn stream_response(chunks: Vec<Bytes>, then_stall: bool) -> Response {
    let chunks = futures::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok::<Bytes, Infallible>(chunk)
    });
    let stall = futures::stream::once(async move {
        if then_stall {
            std::future::pending::<()>().await;
        }
        Ok::<Bytes, Infallible>(Bytes::new())
    });
    Response::builder()
        .header("content-type", "application/vnd.amazon.eventstream")
        .body(Body::from_stream(chunks.chain(stall)))
        .expect("a response")
}

use futures::StreamExt;

/// Recomputes the request's SigV4 signature with the tests' credentials and compares; the
/// region it was signed for when it matches.
pub fn check_signature(method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;

    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).ok_or("no Authorization header")?;
    let field = |name: &str| {
        authorization
            .split([',', ' '])
            .find_map(|part| part.trim().strip_prefix(name))
            .map(str::to_owned)
            .ok_or(format!("no {name} in Authorization"))
    };
    let credential = field("Credential=")?;
    let signed_headers = field("SignedHeaders=")?;
    let signature = field("Signature=")?;
    let mut scope = credential.split('/');
    let access_key = scope.next().unwrap_or_default();
    let (_date, region, service) =
        (scope.next(), scope.next().unwrap_or_default(), scope.next().unwrap_or_default());
    if access_key != TEST_ACCESS_KEY {
        return Err(format!("unknown access key {access_key}"));
    }
    if service != "bedrock" {
        return Err(format!("signed for service {service}, not bedrock"));
    }
    let amz_date = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or("no x-amz-date")?;
    let time =
        chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ").map_err(|e| e.to_string())?;
    let time = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(time.and_utc().timestamp() as u64);

    let names: Vec<&str> = signed_headers.split(';').filter(|name| *name != "x-amz-date").collect();
    let values: Vec<(&str, &str)> = names
        .iter()
        .map(|name| (*name, headers.get(*name).and_then(|v| v.to_str().ok()).unwrap_or_default()))
        .collect();
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let url = format!("http://{host}{}", uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/"));
    let identity =
        aws_credential_types::Credentials::new(TEST_ACCESS_KEY, TEST_SECRET_KEY, None, None, "fake").into();
    let params: aws_sigv4::http_request::SigningParams = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(method, url, values.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| e.to_string())?;
    let expected = sign(request, &params).map_err(|e| e.to_string())?.into_parts().1;
    if expected == signature { Ok(region.to_owned()) } else { Err("signature mismatch".to_owned()) }
}
