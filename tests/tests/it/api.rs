//! The JSON API `/api/v1` over real HTTP with personal access tokens (and a session): every
//! endpoint, the same rules, messages and audit rows as the pages, the write-only API key, the
//! in-use guard, problem documents with per-field messages, and the rate limit.

use crate::common::fake_openai::FakeOpenAi;
use crate::common::*;
use app::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

const PLANTED_KEY: &str = "sk-api-planted-93c1d0";

fn mixtral(endpoint: &str) -> Value {
    json!({
        "name": "Mixtral",
        "platform": "api",
        "model_family": "mixtral",
        "endpoint": endpoint,
        "identifier": "custom_openai/Mixtral-8x7B",
        "api_key": PLANTED_KEY,
    })
}

/// The app, signed in as the admin `ada`, with an admin token of hers.
async fn with_admin_token(pool: PgPool) -> (TestApp, String) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let token = app.create_token("script", "admin").await;
    (app, token)
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value, String) {
    let mut request = app.api(method, path, token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), content_type)
}

#[sqlx::test(migrations = "../migrations")]
async fn models_are_created_read_listed_updated_and_deleted_with_the_pages_audit(pool: PgPool) {
    let (app, token) = with_admin_token(pool).await;

    let (status, created, _) =
        send(&app, Method::POST, "/api/v1/models", &token, Some(mixtral("http://vllm.internal:8000/v1")))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "Mixtral");
    assert!(created["api_key_fingerprint"].is_string(), "the key shows as its fingerprint: {created}");
    let sealed = app.sealed_key("Mixtral").await.expect("sealed as the form seals it");
    assert_eq!(app.open_key("Mixtral", &sealed).await, PLANTED_KEY);

    let (status, shown, _) = send(&app, Method::GET, &format!("/api/v1/models/{id}"), &token, None).await;
    assert_eq!((status, &shown), (StatusCode::OK, &created));

    let (_, listed, _) = send(&app, Method::GET, "/api/v1/models?search=mixt&page=1", &token, None).await;
    assert_eq!(listed["models"][0]["id"], id);
    assert_eq!(listed["models"][0]["has_api_key"], true);
    let (_, none, _) = send(&app, Method::GET, "/api/v1/models?search=nothing", &token, None).await;
    assert_eq!(none["models"], json!([]));

    // Without api_key the stored key is kept, as the form keeps it.
    let rename = json!({"name": "Mixtral 2", "platform": "api", "model_family": "mixtral",
        "endpoint": "http://vllm.internal:8000/v1", "identifier": "custom_openai/Mixtral-8x7B"});
    let (status, updated, _) =
        send(&app, Method::PUT, &format!("/api/v1/models/{id}"), &token, Some(rename)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Mixtral 2");
    assert_eq!(updated["api_key_fingerprint"], created["api_key_fingerprint"]);

    let (status, _, _) = send(&app, Method::DELETE, &format!("/api/v1/models/{id}"), &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone, content_type) =
        send(&app, Method::GET, &format!("/api/v1/models/{id}"), &token, None).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::NOT_FOUND, "application/problem+json"));
    assert_eq!(gone["status"], 404);

    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE target_type = 'SelfHostedModel' AND actor_name = 'ada' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(actions, ["model_created", "model_updated", "model_destroyed"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn invalid_input_gets_the_forms_messages_per_field_and_saves_nothing(pool: PgPool) {
    let (app, token) = with_admin_token(pool).await;
    let bad = app::models::domain::ModelForm {
        platform: "api".into(),
        model_family: "mixtral".into(),
        endpoint: "ftp://x".into(),
        ..Default::default()
    };

    let (status, problem, content_type) =
        send(&app, Method::POST, "/api/v1/models", &token, Some(serde_json::to_value(&bad).unwrap())).await;
    // The very messages the form shows, from the same server function.
    let by_form =
        app.client.post(app.url("/api/save_self_hosted_model")).form(&posted(bad)).send().await.unwrap();
    let by_form: Value = by_form.json().await.unwrap();

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["status"], 422);
    assert_eq!(problem["errors"], by_form["Validation"], "{problem}");
    assert!(problem["errors"]["name"].is_string() && problem["errors"]["endpoint"].is_string());
    let broken = app
        .api(Method::POST, "/api/v1/models", &token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let broken: Value = broken.json().await.unwrap();
    assert!(broken["errors"]["body"].is_string(), "{broken}");
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM self_hosted_models").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_model_in_use_cannot_be_deleted_and_features_are_assigned_through_the_api(pool: PgPool) {
    let (app, token) = with_admin_token(pool).await;
    let claude = json!({"name": "Claude", "platform": "bedrock", "model_family": "claude_3",
        "identifier": "bedrock/anthropic.claude-3-haiku-20240307-v1:0"});
    let (_, created, _) = send(&app, Method::POST, "/api/v1/models", &token, Some(claude)).await;
    let id = created["id"].as_i64().unwrap();

    let (status, changed, _) =
        send(&app, Method::PUT, "/api/v1/features/duo_chat", &token, Some(json!({"choice": id}))).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        changed["message"], "Successfully updated GitLab Duo Chat / General Chat",
        "the tab's own notice"
    );
    let (status, refused, _) =
        send(&app, Method::DELETE, &format!("/api/v1/models/{id}"), &token, None).await;

    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        refused["detail"],
        "To remove Claude, you must first remove it from the following AI Feature(s): General Chat"
    );
    // A Duo Chat sub-feature without a model of its own answers with General Chat's.
    let (_, features, _) = send(&app, Method::GET, "/api/v1/features", &token, None).await;
    let rows: Vec<&Value> = features["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["features"].as_array().unwrap())
        .collect();
    let explain = rows.iter().find(|row| row["key"] == "duo_chat_explain_code").unwrap();
    assert_eq!(explain["answered_by"], "Claude", "{explain}");
    assert!(explain["fallback"].is_string(), "{explain}");

    let (status, applied, _) =
        send(&app, Method::POST, "/api/v1/features/duo_chat/apply_to_all", &token, None).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    let assigned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM feature_settings WHERE self_hosted_model_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(assigned > 1, "the whole section uses Claude now");
    let (status, _, _) =
        send(&app, Method::PUT, "/api/v1/features/not_a_feature", &token, Some(json!({"choice": id}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "../migrations")]
async fn settings_are_read_and_changed_with_the_pages_rules(pool: PgPool) {
    let (app, token) = with_admin_token(pool).await;

    let (status, settings, _) = send(&app, Method::GET, "/api/v1/settings", &token, None).await;
    assert_eq!((status, settings["ai_gateway_timeout_seconds"].as_i64()), (StatusCode::OK, Some(60)));
    let change = json!({"ai_gateway_timeout_seconds": 120, "ai_gateway_url": "http://gateway.internal:5052"});
    let (status, changed, _) = send(&app, Method::PUT, "/api/v1/settings", &token, Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["ai_gateway_timeout_seconds"], 120);
    assert_eq!(changed["ai_gateway_url"], "http://gateway.internal:5052");

    let (status, problem, _) =
        send(&app, Method::PUT, "/api/v1/settings", &token, Some(json!({"ai_gateway_timeout_seconds": 5})))
            .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem["errors"]["ai_gateway_timeout_seconds"],
        app::configuration::rules::parse_timeout("5").unwrap_err()
    );
    let (status, problem, _) =
        send(&app, Method::PUT, "/api/v1/settings", &token, Some(json!({"colour": "red"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an unknown field is named, not ignored");
    assert!(problem["errors"]["body"].as_str().unwrap().contains("colour"), "{problem}");
    let (_, unchanged, _) = send(&app, Method::GET, "/api/v1/settings", &token, None).await;
    assert_eq!(unchanged["ai_gateway_timeout_seconds"], 120);
    let (status, cleared, _) =
        send(&app, Method::PUT, "/api/v1/settings", &token, Some(json!({"ai_gateway_url": null}))).await;
    assert_eq!((status, &cleared["ai_gateway_url"]), (StatusCode::OK, &Value::Null));
}

#[sqlx::test(migrations = "../migrations")]
async fn audit_events_are_filtered_by_action_actor_and_time(pool: PgPool) {
    let (app, token) = with_admin_token(pool).await;
    let claude = json!({"name": "Claude", "platform": "bedrock", "model_family": "claude_3",
        "identifier": "bedrock/anthropic.claude-3-haiku-20240307-v1:0"});
    send(&app, Method::POST, "/api/v1/models", &token, Some(claude)).await;

    let (status, created, _) =
        send(&app, Method::GET, "/api/v1/audit_events?action=model_created", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let events = created["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor_name"], "ada");
    let (_, by_actor, _) = send(&app, Method::GET, "/api/v1/audit_events?actor=ADA", &token, None).await;
    let actions: Vec<&str> =
        by_actor["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"model_created") && actions.contains(&"user_signed_in"), "{actions:?}");
    assert!(actions.contains(&"personal_access_token_created"));
    let (_, nobody, _) = send(&app, Method::GET, "/api/v1/audit_events?actor=nobody", &token, None).await;
    assert_eq!(nobody["events"], json!([]));
    let future =
        (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, later, _) =
        send(&app, Method::GET, &format!("/api/v1/audit_events?since={future}"), &token, None).await;
    assert_eq!(later["events"], json!([]));
    let (_, earlier, _) =
        send(&app, Method::GET, &format!("/api/v1/audit_events?until={future}"), &token, None).await;
    assert!(!earlier["events"].as_array().unwrap().is_empty());
    let (status, problem, _) =
        send(&app, Method::GET, "/api/v1/audit_events?since=yesterday", &token, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem["errors"]["query"].is_string(), "{problem}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_model_is_tested_through_the_api_with_its_stored_key(pool: PgPool) {
    let (app, token) = with_admin_token(pool).await;
    let vllm = FakeOpenAi::start(Some(PLANTED_KEY)).await;
    let (_, created, _) =
        send(&app, Method::POST, "/api/v1/models", &token, Some(mixtral(&vllm.endpoint))).await;
    let id = created["id"].as_i64().unwrap();

    let (status, tested, _) =
        send(&app, Method::POST, &format!("/api/v1/models/{id}/test"), &token, None).await;

    assert_eq!(status, StatusCode::OK, "{tested}");
    assert_eq!(tested["ok"], true, "{tested}");
    assert_eq!(tested["reply"], crate::common::fake_openai::REPLY.concat());
    let body = tested.to_string();
    assert!(!body.contains(PLANTED_KEY), "the key is never returned");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_api_key_is_never_returned_by_any_endpoint(pool: PgPool) {
    let (app, token) = with_admin_token(pool).await;
    let (_, created, _) =
        send(&app, Method::POST, "/api/v1/models", &token, Some(mixtral("http://vllm.internal:8000/v1")))
            .await;
    let id = &created["id"];

    for path in [
        "/api/v1/models".to_owned(),
        format!("/api/v1/models/{id}"),
        "/api/v1/features".to_owned(),
        "/api/v1/settings".to_owned(),
        "/api/v1/audit_events".to_owned(),
    ] {
        let body = app.api(Method::GET, &path, &token).send().await.unwrap().text().await.unwrap();
        assert!(!body.contains(PLANTED_KEY), "{path}");
        assert!(!body.contains(&token), "{path}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_session_uses_the_api_under_the_same_cross_site_rules(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    let read = app.client.get(app.url("/api/v1/settings")).send().await.unwrap();
    let cross_site = app
        .client
        .put(app.url("/api/v1/settings"))
        .header("origin", "https://evil.example")
        .json(&json!({"ai_gateway_timeout_seconds": 90}))
        .send()
        .await
        .unwrap();
    let same_site = app
        .client
        .put(app.url("/api/v1/settings"))
        .header("origin", app.address.clone())
        .json(&json!({"ai_gateway_timeout_seconds": 90}))
        .send()
        .await
        .unwrap();

    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(same_site.status(), StatusCode::OK);
    let timeout: i32 = sqlx::query_scalar("SELECT ai_gateway_timeout_seconds FROM instance_settings")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(timeout, 90, "the same-site change only");
}

#[sqlx::test(migrations = "../migrations")]
async fn each_token_is_rate_limited_on_its_own(pool: PgPool) {
    let app = TestApp::builder(pool)
        .settings(server::RouterSettings { api_rate_limit_per_minute: 5, ..settings() })
        .spawn_signed_in(Role::Admin)
        .await;
    let (busy, other) = (app.create_token("busy", "read").await, app.create_token("other", "read").await);

    for _ in 0..5 {
        assert_eq!(
            app.api(Method::GET, "/api/v1/settings", &busy).send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    let limited = app.api(Method::GET, "/api/v1/settings", &busy).send().await.unwrap();

    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(limited.headers()["content-type"], "application/problem+json");
    assert_eq!(
        app.api(Method::GET, "/api/v1/settings", &other).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unknown_address_under_the_api_is_a_problem_document(pool: PgPool) {
    let (app, token) = with_admin_token(pool).await;

    let (status, problem, content_type) = send(&app, Method::GET, "/api/v1/nothing/here", &token, None).await;
    let (model_status, _, _) = send(&app, Method::GET, "/api/v1/models/not-a-number", &token, None).await;

    assert_eq!((status, content_type.as_str()), (StatusCode::NOT_FOUND, "application/problem+json"));
    assert_eq!(problem["title"], "Not Found");
    assert_eq!(model_status, StatusCode::NOT_FOUND);
}
