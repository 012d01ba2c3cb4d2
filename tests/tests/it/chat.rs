//! Talking to models through the real clients: the AWS SDK against a Bedrock-compatible fake
//! that checks signatures and streams real event-stream frames, and reqwest against an
//! OpenAI-compatible fake. One test per named failure, each asserting what the admin reads.

use std::time::{Duration, Instant};

use crate::common::fake_bedrock::FakeBedrock;
use crate::common::fake_openai::FakeOpenAi;
use crate::common::*;
use app::auth::Role;
use app::chat::ChatEvent;
use app::chat::client::ModelFailure;
use serde_json::json;
use sqlx::PgPool;

async fn app_with_bedrock(pool: PgPool, bedrock: aws_sdk_bedrockruntime::Client) -> TestApp {
    TestApp::builder(pool).bedrock(bedrock).spawn_signed_in(Role::Admin).await
}

#[sqlx::test(migrations = "../migrations")]
async fn test_connection_says_hello_to_bedrock_without_the_prefix_and_with_16_tokens(pool: PgPool) {
    let fake = FakeBedrock::start().await;
    let app = app_with_bedrock(pool, bedrock_client(&fake.url, true)).await;

    let result =
        app.test_connection(&bedrock_form("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0")).await;

    assert!(result.ok, "{}", result.message);
    assert_eq!(result.message, "Successfully connected to the self-hosted model");
    assert_eq!(result.reply, "Hello! How can I help you today?");
    assert_eq!(result.figures.input_tokens, Some(8));
    assert_eq!(result.figures.stop_reason.as_deref(), Some("end_turn"));
    let sent = fake.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["inferenceConfig"]["maxTokens"], json!(16));
    assert_eq!(sent["messages"][0]["content"][0]["text"], json!("Just say hello."));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_bedrock_chat_streams_the_reply_and_its_figures(pool: PgPool) {
    let fake = FakeBedrock::start().await;
    let app = app_with_bedrock(pool, bedrock_client(&fake.url, true)).await;
    let arn = "bedrock/arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0";
    let id = app.save_model(&bedrock_form(arn)).await;

    let events = app.chat(id, "Hello").await;

    let texts = events.iter().filter(|e| matches!(e, ChatEvent::Text(_))).count();
    assert_eq!(texts, 4, "the reply arrives in pieces: {events:?}");
    assert_eq!(reply_text(&events), "Hello! How can I help you today?");
    let Some(ChatEvent::Done(figures)) = events.last() else { panic!("{events:?}") };
    assert_eq!((figures.input_tokens, figures.output_tokens), (Some(8), Some(12)));
    assert!(figures.first_token_ms.is_some());
    let last_test: serde_json::Value =
        sqlx::query_scalar("SELECT last_test FROM self_hosted_models WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(last_test["ok"], json!(true));
}

#[sqlx::test(migrations = "../migrations")]
async fn each_bedrock_failure_is_named_with_what_to_do(pool: PgPool) {
    let fake = FakeBedrock::start().await;
    let app = app_with_bedrock(pool, bedrock_client(&fake.url, true)).await;
    let cases = [
        ("bedrock/access-denied", "Amazon Bedrock denied access"),
        (
            "bedrock/anthropic.no-region-prefix",
            "In us-east-1, call it through its cross-region inference profile: bedrock/us.anthropic.no-region-prefix",
        ),
        ("bedrock/acme.no-region-prefix", "Cross-region inference profiles need their region prefix"),
        ("bedrock/bedrock/leftover-prefix", "remove it from the Bedrock model id"),
        ("bedrock/not-found", "has no model \"not-found\" in us-east-1"),
        ("bedrock/throttled", "throttling requests or the model is not ready, even after retries"),
        ("bedrock/model-timeout", "The model took too long to answer"),
        ("bedrock/model-error", "The model failed while answering"),
        ("bedrock/stream-exception", "The model stream failed mid-way."),
        ("bedrock/malformed", &ModelFailure::Malformed.to_string()),
    ];
    for (identifier, expected) in cases {
        let result = app.test_connection(&bedrock_form(identifier)).await;
        assert!(!result.ok, "{identifier}");
        assert!(result.message.contains(expected), "{identifier}: {}", result.message);
        assert!(!result.message.contains("service error"), "{identifier}: {}", result.message);
        assert!(!result.message.contains(TEST_SECRET_KEY));
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn throttling_is_retried_by_the_sdk_before_it_is_reported(pool: PgPool) {
    let fake = FakeBedrock::start().await;
    let app = app_with_bedrock(pool, bedrock_client(&fake.url, true)).await;

    app.test_connection(&bedrock_form("bedrock/throttled")).await;

    assert_eq!(fake.request_count(), 2, "the tests' client allows two attempts");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_stream_that_stalls_after_its_first_event_ends_within_the_idle_limit(pool: PgPool) {
    let fake = FakeBedrock::start().await;
    let app = app_with_bedrock(pool, bedrock_client(&fake.url, true)).await;
    let id = app.save_model(&bedrock_form("bedrock/stall-after-first")).await;
    let started = Instant::now();

    let events = app.chat(id, "Hello").await;

    assert_eq!(reply_text(&events), "Hel");
    assert_eq!(failure(&events), ModelFailure::StreamStalled.to_string());
    assert!(started.elapsed() < TEST_IDLE_LIMIT + Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_server_that_never_answers_is_given_up_on(pool: PgPool) {
    let fake = FakeBedrock::start().await;
    let app = app_with_bedrock(pool, bedrock_client(&fake.url, true)).await;

    let result = app.test_connection(&bedrock_form("bedrock/never-answers")).await;

    assert_eq!(result.message, ModelFailure::NoAnswer.to_string());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_wrong_secret_key_is_reported_as_a_rejected_signature(pool: PgPool) {
    use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
    let fake = FakeBedrock::start().await;
    let config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&fake.url)
        .credentials_provider(Credentials::new(TEST_ACCESS_KEY, "the-wrong-secret", None, None, "test"))
        .build();
    let app = app_with_bedrock(pool, aws_sdk_bedrockruntime::Client::from_conf(config)).await;

    let result =
        app.test_connection(&bedrock_form("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0")).await;

    assert_eq!(result.message, ModelFailure::SignatureRejected.to_string());
    assert!(!result.message.contains("the-wrong-secret"));
}

#[sqlx::test(migrations = "../migrations")]
async fn missing_aws_credentials_are_named(pool: PgPool) {
    let fake = FakeBedrock::start().await;
    let app = app_with_bedrock(pool, bedrock_client(&fake.url, false)).await;

    let result =
        app.test_connection(&bedrock_form("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0")).await;

    assert_eq!(result.message, ModelFailure::NoCredentials.to_string());
    assert_eq!(fake.request_count(), 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unreachable_bedrock_endpoint_is_named(pool: PgPool) {
    let app = app_with_bedrock(pool, bedrock_client("http://127.0.0.1:9", true)).await;

    let result =
        app.test_connection(&bedrock_form("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0")).await;

    assert!(result.message.starts_with("Could not reach Amazon Bedrock"), "{}", result.message);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_api_model_streams_with_its_stored_key_sent_as_bearer(pool: PgPool) {
    let fake = FakeOpenAi::start(Some("sk-vllm-planted")).await;
    let app = app_with_bedrock(pool, bedrock_client("http://127.0.0.1:9", true)).await;
    let id = app.save_model(&api_form(&fake.endpoint, "custom_openai/Mixtral-8x7B", "sk-vllm-planted")).await;

    let events = app.chat(id, "Hello").await;

    assert_eq!(reply_text(&events), "Hello from the fake vLLM!");
    let Some(ChatEvent::Done(figures)) = events.last() else { panic!("{events:?}") };
    assert_eq!((figures.input_tokens, figures.output_tokens), (Some(28), Some(8)));
    assert_eq!(figures.stop_reason.as_deref(), Some("stop"));

    // Editing without touching the key still tests with the stored key.
    let mut edit = api_form(&fake.endpoint, "custom_openai/Mixtral-8x7B", "");
    edit.extend([("id", id.to_string()), ("api_key_action", "keep".into())]);
    assert!(app.test_connection(&edit).await.ok);
}

#[sqlx::test(migrations = "../migrations")]
async fn each_api_failure_is_named_with_what_to_do(pool: PgPool) {
    let open = FakeOpenAi::start(None).await;
    let guarded = FakeOpenAi::start(Some("sk-right")).await;
    let app = app_with_bedrock(pool, bedrock_client("http://127.0.0.1:9", true)).await;
    let without_v1 = open.endpoint.trim_end_matches("/v1").to_owned();
    let cases = [
        (guarded.endpoint.clone(), "m", "", "It needs an API key"),
        (guarded.endpoint.clone(), "m", "sk-wrong", "The API key was refused"),
        (without_v1, "m", "", "The endpoint usually ends in /v1"),
        (open.endpoint.clone(), "missing", "", "The model `missing` does not exist."),
        (open.endpoint.clone(), "old-error", "", "returned code 400: max_tokens is too large"),
        (open.endpoint.clone(), "new-error", "", "returned code 500: CUDA out of memory"),
        (open.endpoint.clone(), "malformed", "", &ModelFailure::Malformed.to_string()),
        (open.endpoint.clone(), "stall", "", &ModelFailure::StreamStalled.to_string()),
        ("http://127.0.0.1:9/v1".to_owned(), "m", "", "Could not connect to http://127.0.0.1:9/v1"),
    ];
    for (endpoint, model, key, expected) in cases {
        let result = app.test_connection(&api_form(&endpoint, model, key)).await;
        assert!(!result.ok, "{endpoint} {model}");
        assert!(result.message.contains(expected), "{endpoint} {model}: {}", result.message);
        assert!(!result.message.contains("sk-wrong") && !result.message.contains("sk-right"));
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_list_shows_each_models_last_test(pool: PgPool) {
    let fake = FakeBedrock::start().await;
    let app = app_with_bedrock(pool, bedrock_client(&fake.url, true)).await;
    let id = app.save_model(&bedrock_form("bedrock/access-denied")).await;
    let mut form = bedrock_form("bedrock/access-denied");
    form.push(("id", id.to_string()));

    app.test_connection(&form).await;

    let listing: app::models::api::ModelsPage =
        app.get("/api/self_hosted_models?search=&page=1").await.json().await.unwrap();
    let last = listing.models[0].last_test.clone().unwrap();
    assert!(!last.ok);
    assert!(last.message.contains("Amazon Bedrock denied access"));
}
