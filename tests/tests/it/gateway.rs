//! The gateway read endpoint `GET /api/v1/features/{key}/model`: what an AI gateway routes by,
//! the API key for a `gateway` token only, and the ETag that makes polling cheap.

use crate::common::*;
use app::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

const PLANTED_KEY: &str = "sk-gateway-planted-51e0aa";

async fn assign(app: &TestApp, token: &str, feature: &str, model: Value) -> i64 {
    let created: Value = app
        .api(Method::POST, "/api/v1/models", token)
        .json(&model)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap_or_else(|| panic!("{created}"));
    let assigned = app
        .api(Method::PUT, &format!("/api/v1/features/{feature}"), token)
        .json(&json!({"choice": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(assigned.status(), StatusCode::OK);
    id
}

fn vllm(name: &str) -> Value {
    json!({"name": name, "platform": "api", "model_family": "mixtral", "endpoint": "http://vllm.internal:8000/v1",
        "identifier": "custom_openai/Mixtral-8x7B", "api_key": PLANTED_KEY})
}

#[sqlx::test(migrations = "../migrations")]
async fn a_gateway_token_gets_the_route_and_the_key_and_others_get_the_route_alone(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let admin = app.create_token("admin", "admin").await;
    let gateway = app.create_token("gateway", "gateway").await;
    let read = app.create_token("read", "read").await;
    assign(&app, &admin, "code_generations", vllm("Mixtral")).await;

    let for_gateway: Value = app
        .api(Method::GET, "/api/v1/features/code_generations/model", &gateway)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let for_reader = app
        .api(Method::GET, "/api/v1/features/code_generations/model", &read)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let for_admin = app
        .api(Method::GET, "/api/v1/features/code_generations/model", &admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert_eq!(for_gateway["api_key"], PLANTED_KEY);
    assert_eq!(for_gateway["model"], "Mixtral");
    assert_eq!(for_gateway["platform"], "api");
    assert_eq!(for_gateway["endpoint"], "http://vllm.internal:8000/v1");
    assert_eq!(for_gateway["identifier"], "custom_openai/Mixtral-8x7B");
    assert_eq!(for_gateway["family"], "mixtral");
    assert!(for_gateway["prompt_version"].as_str().is_some_and(|v| v.len() == 16), "{for_gateway}");
    for body in [&for_reader, &for_admin] {
        assert!(!body.contains(PLANTED_KEY) && !body.contains("api_key"), "{body}");
        assert!(body.contains("\"Mixtral\""));
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_gateway_polls_with_if_none_match_until_the_route_changes(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let admin = app.create_token("admin", "admin").await;
    let gateway = app.create_token("gateway", "gateway").await;
    let id = assign(&app, &admin, "code_generations", vllm("Mixtral")).await;
    let path = "/api/v1/features/code_generations/model";

    let first = app.api(Method::GET, path, &gateway).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let unchanged = app.api(Method::GET, path, &gateway).header("if-none-match", &etag).send().await.unwrap();

    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.headers()["etag"], etag.as_str());
    assert!(unchanged.bytes().await.unwrap().is_empty());
    let updated = app.api(Method::PUT, &format!("/api/v1/models/{id}"), &admin).json(&json!({"name": "Mixtral large", "platform": "api",
        "model_family": "mixtral", "endpoint": "http://vllm.internal:8000/v1", "identifier": "custom_openai/Mixtral-8x7B"})).send().await.unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let changed = app.api(Method::GET, path, &gateway).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"], etag.as_str());
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["model"], "Mixtral large");
    // Each caller's answer has its own tag: a reader's tag never matches the gateway's answer.
    let for_reader =
        app.api(Method::GET, path, &app.create_token("read", "read").await).send().await.unwrap();
    assert_ne!(for_reader.headers()["etag"], first.headers()["etag"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_feature_without_a_model_borrows_its_fallbacks_or_is_not_found(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let admin = app.create_token("admin", "admin").await;
    let path = "/api/v1/features/duo_chat_explain_code/model";

    let unassigned = app.api(Method::GET, path, &admin).send().await.unwrap();
    assign(
        &app,
        &admin,
        "duo_chat",
        json!({"name": "Claude", "platform": "bedrock", "model_family": "claude_3",
        "identifier": "bedrock/anthropic.claude-3-haiku-20240307-v1:0"}),
    )
    .await;
    let borrowed: Value = app.api(Method::GET, path, &admin).send().await.unwrap().json().await.unwrap();
    let unknown = app.api(Method::GET, "/api/v1/features/not_a_feature/model", &admin).send().await.unwrap();

    assert_eq!(unassigned.status(), StatusCode::NOT_FOUND);
    assert_eq!(unassigned.headers()["content-type"], "application/problem+json");
    assert_eq!(borrowed["model"], "Claude");
    assert_eq!(borrowed["falls_back_to"], "duo_chat");
    assert_eq!(borrowed["platform"], "bedrock");
    assert_eq!(borrowed["region"], "us-east-1");
    assert_eq!(borrowed["endpoint"], Value::Null);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
