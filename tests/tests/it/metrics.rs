//! `GET /metrics`: Prometheus text for a bearer token, with per-model and per-feature health read
//! from the database (so every replica says the same) and the console's own request counts.

use std::collections::HashMap;

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::common::fake_bedrock::FakeBedrock;
use crate::common::*;
use app::auth::Role;

async fn scrape(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut request = new_client().get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Every sample, by its name and labels written as `name{a="x",b="y"}` (labels sorted).
fn samples(text: &str) -> HashMap<String, f64> {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    scrape
        .samples
        .into_iter()
        .map(|sample| {
            let mut labels: Vec<String> = sample.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            labels.sort();
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map(|b| b.count).unwrap_or_default()
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            (format!("{}{{{}}}", sample.metric, labels.join(",")), value)
        })
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn metrics_need_their_token(pool: PgPool) {
    let app = spawn_signed_in(pool.clone(), Role::Admin).await;
    assert_eq!(scrape(&app, None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(scrape(&app, Some("wrong")).await.status(), StatusCode::UNAUTHORIZED);
    // A session is not enough: a scraper's credential is the token.
    assert_eq!(app.get("/metrics").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(scrape(&app, Some(METRICS_TOKEN)).await.status(), StatusCode::OK);

    let without = TestApp::builder(pool)
        .settings(server::RouterSettings { metrics_token: None, ..settings() })
        .spawn()
        .await;
    assert_eq!(
        scrape(&without, Some(METRICS_TOKEN)).await.status(),
        StatusCode::NOT_FOUND,
        "unset: no endpoint"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn metrics_carry_each_features_and_models_health(pool: PgPool) {
    let bedrock = FakeBedrock::start().await;
    let app =
        TestApp::builder(pool).bedrock(bedrock_client(&bedrock.url, true)).spawn_signed_in(Role::Admin).await;
    let claude = app.save_model(&bedrock_form("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0")).await;
    let down = app.save_model(&api_form("http://127.0.0.1:9/v1", "custom_openai/m", "")).await;
    sqlx::query(
        "INSERT INTO feature_settings (feature, provider, self_hosted_model_id) VALUES
           ('duo_chat', 'self_hosted', $1), ('code_generations', 'self_hosted', $2)",
    )
    .bind(claude)
    .bind(down)
    .execute(&app.pool)
    .await
    .unwrap();
    app.chat(claude, "Hello").await;
    app.chat(down, "Hello").await;

    let response = scrape(&app, Some(METRICS_TOKEN)).await;
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let all = samples(&response.text().await.unwrap());

    let get = |key: &str| *all.get(key).unwrap_or_else(|| panic!("no {key} in {all:#?}"));
    assert_eq!(get("duo_feature_ready{feature=\"duo_chat\"}"), 1.0);
    assert_eq!(
        get("duo_feature_ready{feature=\"duo_chat_explain_code\"}"),
        1.0,
        "by its fallback to General Chat"
    );
    assert_eq!(get("duo_feature_ready{feature=\"code_generations\"}"), 0.0, "its model fails");
    assert_eq!(get("duo_feature_has_model{feature=\"code_completions\"}"), 0.0);
    assert_eq!(get("duo_model_last_test_ok{model=\"Claude\"}"), 1.0);
    assert_eq!(get("duo_model_last_test_ok{model=\"Mixtral\"}"), 0.0);
    assert_eq!(get("duo_model_tests_total{model=\"Claude\",outcome=\"answered\"}"), 1.0);
    assert_eq!(get("duo_model_tests_total{model=\"Mixtral\",outcome=\"failed\"}"), 1.0);
    assert_eq!(
        get("duo_model_test_duration_seconds{model=\"Claude\"}"),
        1.0,
        "one answered test in the histogram"
    );
    assert!(
        all.keys().any(
            |key| key.starts_with("duo_http_requests_total{") && key.contains("kind=\"server_function\"")
        )
    );
    assert!(all.keys().any(|key| key.starts_with("duo_http_request_duration_seconds")));
}
