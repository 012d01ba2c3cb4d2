//! What a model endpoint and a stored key cannot be turned into: a stored key goes only to the
//! endpoint it was stored for (and opens only for its own row), redirects are not followed,
//! oversized replies are cut off with a named failure, endpoints carry no credentials, and
//! the house rules behind them (one status per error, unknown platforms refused).

use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::fake_openai::FakeOpenAi;
use crate::common::*;
use app::auth::Role;
use app::chat::client::ModelFailure;
use app::models::domain::{ENDPOINT_WITH_CREDENTIALS, KEY_NEEDED_FOR_NEW_ENDPOINT};
use app::models::platform::PLATFORM_UNKNOWN;

/// A server that records the `Authorization` header of every request and answers each with
/// `answer`: a stand-in for a host a key must never reach.
#[derive(Clone)]
struct Recorder {
    endpoint: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    async fn start(answer: fn() -> Response) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let recorder = Recorder {
            endpoint: format!("http://{}/v1", listener.local_addr().unwrap()),
            seen: Arc::default(),
        };
        let seen = recorder.seen.clone();
        let router = axum::Router::new().fallback(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("-");
                seen.lock().unwrap().push(authorization.to_owned());
                answer()
            }
        });
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        recorder
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

async fn post_form(app: &TestApp, path: &str, form: &[(&str, String)]) -> reqwest::Response {
    app.client.post(app.url(path)).form(form).send().await.unwrap()
}

/// Says `text` to a model, whatever the answer's status.
async fn say(app: &TestApp, model_id: i64, text: &str) -> reqwest::Response {
    let messages = json!([{ "speaker": "User", "text": text }]).to_string();
    app.client
        .post(app.url("/api/chat_with_self_hosted_model"))
        .form(&[("model_id", model_id.to_string()), ("messages", messages)])
        .send()
        .await
        .unwrap()
}

fn field_error(body: &Value, field: &str) -> Option<String> {
    body["Validation"][field].as_str().map(str::to_owned)
}

fn editing(id: i64, mut form: Vec<(&'static str, String)>, action: &str) -> Vec<(&'static str, String)> {
    form.extend([("id", id.to_string()), ("api_key_action", action.to_owned())]);
    form
}

#[sqlx::test(migrations = "../migrations")]
async fn a_stored_key_is_never_sent_to_a_changed_endpoint(pool: PgPool) {
    let model_server = FakeOpenAi::start(Some("sk-stored-planted")).await;
    let elsewhere = Recorder::start(not_found).await;
    let app = spawn_signed_in(pool, Role::Admin).await;
    let id = app.save_model(&api_form(&model_server.endpoint, "m", "sk-stored-planted")).await;

    // Test connection with the key left as it is and another endpoint: refused at the key.
    let moved = editing(id, api_form(&elsewhere.endpoint, "m", ""), "keep");
    let response = post_form(&app, "/api/test_self_hosted_model_connection", &moved).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(field_error(&body, "api_key").as_deref(), Some(KEY_NEEDED_FOR_NEW_ENDPOINT));
    // Saving it so is refused too: the key would no longer be the endpoint's.
    let response = post_form(&app, "/api/save_self_hosted_model", &moved).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(elsewhere.requests().is_empty(), "nothing reached the other host: {:?}", elsewhere.requests());

    // At its own endpoint the stored key is used, and that use is audited (never the key).
    let at_home = editing(id, api_form(&model_server.endpoint, "m", ""), "keep");
    assert!(app.test_connection(&at_home).await.ok);
    assert!(app.audit_actions().await.contains(&"model_stored_key_used".to_owned()));
    let details: String =
        sqlx::query_scalar("SELECT message || coalesce(after::text, '') FROM audit_events WHERE action = 'model_stored_key_used'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(details.contains(&model_server.endpoint) && !details.contains("sk-stored"), "{details}");

    // A new key typed with the new endpoint goes there.
    let typed = editing(id, api_form(&elsewhere.endpoint, "m", "sk-new-for-elsewhere"), "replace");
    app.test_connection(&typed).await;
    assert_eq!(elsewhere.requests(), ["Bearer sk-new-for-elsewhere"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn load_models_sends_a_stored_key_only_to_the_origin_it_was_stored_for(pool: PgPool) {
    use crate::discovery::{DISCOVER, api_source};
    let model_server = FakeOpenAi::start(Some("sk-stored-planted")).await;
    let elsewhere = Recorder::start(not_found).await;
    let app = spawn_signed_in(pool, Role::Admin).await;
    let id = app.save_model(&api_form(&model_server.endpoint, "m", "sk-stored-planted")).await;

    let moved = editing(id, api_source(&elsewhere.endpoint, ""), "keep");
    let response = post_form(&app, DISCOVER, &moved).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(field_error(&body, "api_key").as_deref(), Some(KEY_NEEDED_FOR_NEW_ENDPOINT));
    // "Replace" left blank still means the stored key: refused the same way.
    let blank_replace = editing(id, api_source(&elsewhere.endpoint, ""), "replace");
    assert_eq!(post_form(&app, DISCOVER, &blank_replace).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(elsewhere.requests().is_empty(), "nothing reached the other host: {:?}", elsewhere.requests());

    // Same origin, another path: the key is the origin's, so it goes, and the use is audited.
    let at_home = editing(id, api_source(&model_server.endpoint, ""), "keep");
    let response = post_form(&app, DISCOVER, &at_home).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let details: String = sqlx::query_scalar(
        "SELECT message FROM audit_events WHERE action = 'model_stored_key_used' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(details.contains("used to list the models of") && !details.contains("sk-stored"), "{details}");

    // "Remove key" lists without any key.
    let removed = editing(id, api_source(&elsewhere.endpoint, ""), "remove");
    post_form(&app, DISCOVER, &removed).await;
    assert_eq!(elsewhere.requests(), ["-"], "no Authorization header at all");
}

#[sqlx::test(migrations = "../migrations")]
async fn load_models_follows_no_redirect_and_caps_what_it_reads(pool: PgPool) {
    use crate::discovery::api_source;
    let target = Recorder::start(not_found).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirecting = format!("http://{}/v1", listener.local_addr().unwrap());
    let location = format!("{}/models", target.endpoint);
    let router = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move { (StatusCode::FOUND, [("location", location)]).into_response() }
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let huge = Recorder::start(huge_json_reply).await;
    let app = spawn_signed_in(pool, Role::Admin).await;

    let redirected = app.discovery_errors(&api_source(&redirecting, "sk-redirected-planted")).await;
    assert!(redirected["endpoint"].as_str().unwrap().contains("does not follow redirects"), "{redirected}");
    assert!(target.requests().is_empty(), "the redirect was followed: {:?}", target.requests());

    let oversized = app.discovery_errors(&api_source(&huge.endpoint, "")).await;
    assert_eq!(oversized["endpoint"], ModelFailure::TooLarge { limit_kib: 4096 }.to_string());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_stored_key_copied_to_another_model_does_not_open(pool: PgPool) {
    let model_server = FakeOpenAi::start(Some("sk-stored-planted")).await;
    let app = spawn_signed_in(pool, Role::Admin).await;
    let first = app.save_model(&api_form(&model_server.endpoint, "m", "sk-stored-planted")).await;
    let mut second_form = api_form(&model_server.endpoint, "m", "");
    second_form[0].1 = "Second".into();
    let second = app.save_model(&second_form).await;
    // Someone with write access to the database copies the sealed key to another row.
    sqlx::query(
        "UPDATE self_hosted_models t SET api_key_ciphertext = s.api_key_ciphertext, api_key_nonce = s.api_key_nonce,
                api_key_key_id = s.api_key_key_id, api_key_fingerprint = s.api_key_fingerprint, api_key_bound = true
         FROM self_hosted_models s WHERE s.id = $1 AND t.id = $2",
    )
    .bind(first)
    .bind(second)
    .execute(&app.pool)
    .await
    .unwrap();

    let response = say(&app, second, "Hello").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("cannot be decrypted"));
    assert_eq!(reply_text(&app.chat(first, "Hello").await), "Hello from the fake vLLM!");
}

#[sqlx::test(migrations = "../migrations")]
async fn keys_stored_before_binding_are_bound_at_start_and_still_work(pool: PgPool) {
    let model_server = FakeOpenAi::start(Some("sk-legacy-planted")).await;
    let app = spawn_signed_in(pool, Role::Admin).await;
    let id = app.save_model(&api_form(&model_server.endpoint, "m", "")).await;
    // A key as the previous version sealed it: AES-256-GCM under the master key, no binding.
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&[42; 32]).unwrap();
    let nonce = [7u8; 12];
    let ciphertext =
        cipher.encrypt(aes_gcm::Nonce::from_slice(&nonce), b"sk-legacy-planted".as_ref()).unwrap();
    let master_keys = test_master_keys();
    sqlx::query(
        "UPDATE self_hosted_models SET api_key_ciphertext = $2, api_key_nonce = $3, api_key_key_id = $4,
                api_key_fingerprint = 'legacy00', api_key_bound = false WHERE id = $1",
    )
    .bind(id)
    .bind(&ciphertext)
    .bind(nonce.as_slice())
    .bind(master_keys.current_id())
    .execute(&app.pool)
    .await
    .unwrap();

    let bound = app::models::store::bind_unbound_keys(&app.pool, &master_keys).await.unwrap();

    assert_eq!(bound, 1);
    let still_unbound: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM self_hosted_models WHERE api_key_ciphertext IS NOT NULL AND NOT api_key_bound",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(still_unbound, 0);
    assert_eq!(reply_text(&app.chat(id, "Hello").await), "Hello from the fake vLLM!");
    assert_eq!(app::models::store::bind_unbound_keys(&app.pool, &master_keys).await.unwrap(), 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn model_calls_do_not_follow_redirects(pool: PgPool) {
    // The redirect's target stands for any host the key must not reach (a cloud metadata
    // service, say): here a recorder on this machine.
    let target = Recorder::start(not_found).await;
    // A model server that answers every request with a redirect to the recorder.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirecting = format!("http://{}/v1", listener.local_addr().unwrap());
    let location = format!("{}/chat/completions", target.endpoint);
    let router = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", location)]).into_response() }
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let app = spawn_signed_in(pool, Role::Admin).await;

    let result = app.test_connection(&api_form(&redirecting, "m", "sk-redirected-planted")).await;

    assert!(!result.ok);
    assert!(result.message.contains("does not follow redirects"), "{}", result.message);
    assert!(target.requests().is_empty(), "the redirect was followed: {:?}", target.requests());
}

fn huge_json_reply() -> Response {
    let content = "x".repeat(5 * 1024 * 1024);
    let body = json!({"choices": [{"message": {"content": content}, "finish_reason": "stop"}]});
    ([("content-type", "application/json")], body.to_string()).into_response()
}

fn endless_event_line() -> Response {
    let line = format!("data: {}", "x".repeat(2 * 1024 * 1024));
    ([("content-type", "text/event-stream")], line).into_response()
}

#[sqlx::test(migrations = "../migrations")]
async fn oversized_replies_are_cut_off_with_a_named_failure(pool: PgPool) {
    let whole = Recorder::start(huge_json_reply).await;
    let streamed = Recorder::start(endless_event_line).await;
    let app = spawn_signed_in(pool, Role::Admin).await;

    for (server, limit_kib) in [(&whole, 4096), (&streamed, 1024)] {
        let result = app.test_connection(&api_form(&server.endpoint, "m", "")).await;
        assert!(!result.ok);
        assert_eq!(result.message, ModelFailure::TooLarge { limit_kib }.to_string());
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn an_endpoint_with_a_user_name_or_password_is_refused_at_its_field(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    let response = post_form(
        &app,
        "/api/save_self_hosted_model",
        &api_form("https://user:secret@vllm.internal/v1", "m", ""),
    )
    .await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(field_error(&body, "endpoint").as_deref(), Some(ENDPOINT_WITH_CREDENTIALS));
    // The database holds the rule too, for any other writer.
    let direct = sqlx::query(
        "INSERT INTO self_hosted_models (name, platform, model_family, endpoint, identifier)
         VALUES ('x', 'api', 'mistral', 'http://u:p@h/v1', 'm')",
    )
    .execute(&app.pool)
    .await;
    let constraint = direct.unwrap_err().as_database_error().and_then(|e| e.constraint().map(str::to_owned));
    assert_eq!(constraint.as_deref(), Some("self_hosted_models_endpoint_without_credentials"));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_huge_page_number_is_clamped_not_a_server_error(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    for path in [
        "/api/self_hosted_models?search=&page=9223372036854775807",
        "/admin/gitlab_duo/self_hosted/models?page=9223372036854775807",
        "/api/self_hosted_models?search=&page=-9223372036854775808",
    ] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unknown_platform_is_refused_not_saved_as_an_api_model(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let mut form = api_form("http://vllm/v1", "m", "");
    form[1].1 = "vertex".into();

    let response = post_form(&app, "/api/save_self_hosted_model", &form).await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(field_error(&body, "platform").as_deref(), Some(PLATFORM_UNKNOWN));
    let saved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM self_hosted_models").fetch_one(&app.pool).await.unwrap();
    assert_eq!(saved, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_missing_model_answers_404_not_500(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let delete = post_form(&app, "/api/delete_self_hosted_model", &[("id", "987654".into())]).await;
    assert_eq!(delete.status(), StatusCode::NOT_FOUND);
    let edit = post_form(
        &app,
        "/api/save_self_hosted_model",
        &editing(987654, api_form("http://h/v1", "m", ""), "keep"),
    )
    .await;
    assert_eq!(edit.status(), StatusCode::NOT_FOUND);
    let chat = say(&app, 987654, "Hello").await;
    assert_eq!(chat.status(), StatusCode::NOT_FOUND);
}
