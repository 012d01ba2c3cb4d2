//! The OpenAPI 3.1 document at /api/v1/openapi.json, generated from the handlers' own types,
//! checked against the real thing: every operation it lists is called here, and every answer
//! (successes and problem documents alike) is validated against the schema the document gives
//! for its status and content type.

use std::collections::BTreeSet;

use crate::common::*;
use app::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

struct Checker {
    document: Value,
    called: BTreeSet<(String, String)>,
}

impl Checker {
    /// Sends one request and validates its answer against the document's operation `template`.
    async fn check(
        &mut self,
        app: &TestApp,
        token: &str,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = app.api(method.clone(), path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let operation = &self.document["paths"][template][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{method} {template} is documented");
        let responses = &operation["responses"];
        let range = format!("{}XX", status.as_u16() / 100);
        let documented = [status.as_str(), range.as_str()]
            .into_iter()
            .map(|key| &responses[key])
            .find(|r| r.is_object())
            .unwrap_or_else(|| panic!("{method} {path}: {status} is not documented: {responses}"));
        let body: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        match content_type {
            None => assert!(
                documented.get("content").is_none() && text.is_empty(),
                "{method} {path}: {status} without a body"
            ),
            Some(content_type) => {
                let schema = &documented["content"][&content_type]["schema"];
                assert!(
                    schema.is_object(),
                    "{method} {path}: {status} as {content_type} is not documented: {documented}"
                );
                let errors = violations(&self.document, schema, &body);
                assert!(errors.is_empty(), "{method} {path} ({status}): {errors:#?}\n{body:#}");
            }
        }
        self.called.insert((method.as_str().to_owned(), template.to_owned()));
        (status, body)
    }
}

/// What in `body` breaks `schema`, a schema of `document` (its `$ref`s point into it).
fn violations(document: &Value, schema: &Value, body: &Value) -> Vec<String> {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).expect("the document's schema compiles");
    validator.iter_errors(body).map(|error| format!("{error} at {}", error.instance_path())).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn every_operation_answers_as_the_openapi_document_says(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let admin = app.create_token("admin", "admin").await;
    let gateway = app.create_token("gateway", "gateway").await;
    let response = app.api(Method::GET, "/api/v1/openapi.json", &admin).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // The check can fail: a body of the wrong shape is caught.
    let list_schema = &document["paths"]["/api/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert!(!violations(&document, list_schema, &json!({"models": "none", "page": 1})).is_empty());
    assert!(
        !violations(&document, list_schema, &json!({"page": 1, "has_next_page": false})).is_empty(),
        "models is required"
    );
    let mut checker = Checker { document: document.clone(), called: BTreeSet::new() };
    let vllm = crate::common::fake_openai::FakeOpenAi::start(Some("sk-openapi")).await;
    let model = json!({"name": "Mixtral", "platform": "api", "model_family": "mixtral", "endpoint": vllm.endpoint,
        "identifier": "custom_openai/Mixtral-8x7B", "api_key": "sk-openapi"});

    let c = &mut checker;
    let (status, created) =
        c.check(&app, &admin, Method::POST, "/api/v1/models", "/api/v1/models", Some(model.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_i64().unwrap();
    let one = format!("/api/v1/models/{id}");
    let t = "/api/v1/models/{id}";
    c.check(&app, &admin, Method::POST, "/api/v1/models", "/api/v1/models", Some(json!({"name": ""}))).await;
    c.check(&app, &admin, Method::GET, "/api/v1/models", "/api/v1/models?search=mix", None).await;
    c.check(&app, &admin, Method::GET, t, &one, None).await;
    c.check(&app, &admin, Method::GET, t, "/api/v1/models/999999", None).await;
    c.check(
        &app,
        &admin,
        Method::PUT,
        t,
        &one,
        Some(json!({"name": "Mixtral 2", "platform": "api", "model_family": "mixtral",
        "endpoint": vllm.endpoint, "identifier": "custom_openai/Mixtral-8x7B"})),
    )
    .await;
    let (status, _) =
        c.check(&app, &admin, Method::POST, "/api/v1/models/{id}/test", &format!("{one}/test"), None).await;
    assert_eq!(status, StatusCode::OK);
    c.check(&app, &admin, Method::GET, "/api/v1/features", "/api/v1/features", None).await;
    let assign = "/api/v1/features/{key}";
    let (status, _) = c
        .check(
            &app,
            &admin,
            Method::PUT,
            assign,
            "/api/v1/features/code_generations",
            Some(json!({"choice": id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.check(
        &app,
        &admin,
        Method::PUT,
        assign,
        "/api/v1/features/code_generations",
        Some(json!({"choice": 999999})),
    )
    .await;
    c.check(
        &app,
        &admin,
        Method::POST,
        "/api/v1/features/{key}/apply_to_all",
        "/api/v1/features/code_generations/apply_to_all",
        None,
    )
    .await;
    let route = "/api/v1/features/{key}/model";
    let (status, for_gateway) =
        c.check(&app, &gateway, Method::GET, route, "/api/v1/features/code_generations/model", None).await;
    assert_eq!((status, for_gateway["api_key"].as_str()), (StatusCode::OK, Some("sk-openapi")));
    c.check(&app, &admin, Method::GET, route, "/api/v1/features/duo_chat/model", None).await;
    let etag = app
        .api(Method::GET, "/api/v1/features/code_generations/model", &gateway)
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let not_modified = app
        .api(Method::GET, "/api/v1/features/code_generations/model", &gateway)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert!(document["paths"][route]["get"]["responses"]["304"].is_object());
    let (status, _) = c.check(&app, &admin, Method::DELETE, t, &one, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "in use");
    c.check(&app, &admin, Method::GET, "/api/v1/settings", "/api/v1/settings", None).await;
    c.check(
        &app,
        &admin,
        Method::PUT,
        "/api/v1/settings",
        "/api/v1/settings",
        Some(json!({"ai_gateway_timeout_seconds": 90})),
    )
    .await;
    c.check(
        &app,
        &admin,
        Method::PUT,
        "/api/v1/settings",
        "/api/v1/settings",
        Some(json!({"ai_gateway_timeout_seconds": 9})),
    )
    .await;
    c.check(
        &app,
        &admin,
        Method::GET,
        "/api/v1/audit_events",
        "/api/v1/audit_events?action=model_created",
        None,
    )
    .await;
    c.check(&app, &admin, Method::GET, "/api/v1/audit_events", "/api/v1/audit_events?since=nonsense", None)
        .await;
    c.check(&app, "duopat-unknown", Method::GET, "/api/v1/settings", "/api/v1/settings", None).await;
    let (_, exported) =
        c.check(&app, &admin, Method::GET, "/api/v1/configuration", "/api/v1/configuration", None).await;
    let import = "/api/v1/configuration/import";
    let (status, _) = c
        .check(
            &app,
            &admin,
            Method::POST,
            import,
            import,
            Some(json!({"document": exported, "dry_run": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut refused = exported.clone();
    refused["version"] = json!(7);
    let (status, _) =
        c.check(&app, &admin, Method::POST, import, import, Some(json!({"document": refused}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Unassigned, then deleted: 204 without a body.
    c.check(
        &app,
        &admin,
        Method::PUT,
        assign,
        "/api/v1/features/code_generations",
        Some(json!({"choice": "disabled"})),
    )
    .await;
    sqlx::query("DELETE FROM feature_settings").execute(&app.pool).await.unwrap();
    let (status, _) = c.check(&app, &admin, Method::DELETE, t, &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().keys().map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    assert_eq!(checker.called, documented, "every documented operation was called and validated");
    let served: BTreeSet<(String, String)> = server::api::endpoints()
        .into_iter()
        .filter(|(_, path)| path != server::api::OPENAPI_PATH)
        .map(|(method, path)| (method.as_str().to_owned(), path))
        .collect();
    assert_eq!(served, documented, "the router serves what the document lists");
}
