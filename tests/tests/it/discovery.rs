//! "Load models" on the model form: the ids an OpenAI-compatible endpoint lists
//! (`GET {endpoint}/models`, with the typed key), and the inference profiles and on-demand
//! models of a Bedrock region (ListInferenceProfiles and ListFoundationModels through the real
//! aws-sdk-bedrock, against a fake that checks SigV4). Each failure comes back at the field to
//! fix, and nothing is stored. (The stored key's rules, redirects and size caps for these calls
//! are in `model_trust`.)

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::common::fake_bedrock::{CATALOG_DENIED_REGION, FakeBedrock};
use crate::common::fake_openai::FakeOpenAi;
use crate::common::*;
use app::auth::Role;
use app::models::domain::{DiscoveredModel, ModelForm, REGION_INVALID};

pub(crate) const DISCOVER: &str = "/api/discover_self_hosted_models";

/// Only what "Load models" needs: the platform, the endpoint and key, or the region.
pub(crate) fn api_source(endpoint: &str, key: &str) -> Vec<(&'static str, String)> {
    posted(ModelForm {
        platform: "api".into(),
        endpoint: endpoint.into(),
        api_key: key.into(),
        ..ModelForm::default()
    })
}

fn bedrock_source(region: &str) -> Vec<(&'static str, String)> {
    posted(ModelForm { platform: "bedrock".into(), bedrock_region: region.into(), ..ModelForm::default() })
}

impl TestApp {
    pub(crate) async fn discover(&self, form: &[(&str, String)]) -> reqwest::Response {
        self.client.post(self.url(DISCOVER)).form(form).send().await.unwrap()
    }

    pub(crate) async fn discovered(&self, form: &[(&str, String)]) -> Vec<DiscoveredModel> {
        let response = self.discover(form).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// The field errors of a refused "Load models".
    pub(crate) async fn discovery_errors(&self, form: &[(&str, String)]) -> Value {
        let response = self.discover(form).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        response.json::<Value>().await.unwrap()["Validation"].clone()
    }
}

pub(crate) async fn nothing_stored(app: &TestApp) {
    let models: i64 =
        sqlx::query_scalar("SELECT count(*) FROM self_hosted_models").fetch_one(&app.pool).await.unwrap();
    assert_eq!(models, 0, "nothing is stored until Save");
}

fn identifiers(models: &[DiscoveredModel]) -> Vec<&str> {
    models.iter().map(|model| model.identifier.as_str()).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn an_openai_compatible_endpoint_lists_its_ids_with_the_typed_key(pool: PgPool) {
    let vllm = FakeOpenAi::start(Some("sk-list-key")).await;
    let app = spawn_signed_in(pool, Role::Admin).await;

    let models = app.discovered(&api_source(&vllm.endpoint, "sk-list-key")).await;

    assert_eq!(
        identifiers(&models),
        ["custom_openai/Mixtral-8x7B-Instruct-v0.1", "custom_openai/mistralai/Mistral-7B-Instruct-v0.3"]
    );
    assert_eq!(models[0].label, "Mixtral-8x7B-Instruct-v0.1");
    let families: Vec<Option<&str>> = models.iter().map(|model| model.family.as_deref()).collect();
    assert_eq!(families, [Some("mixtral"), Some("mistral")]);
    nothing_stored(&app).await;

    // The picked identifier calls that model.
    let result = app.test_connection(&api_form(&vllm.endpoint, &models[0].identifier, "sk-list-key")).await;
    assert!(result.ok, "{}", result.message);
}

#[sqlx::test(migrations = "../migrations")]
async fn each_failure_of_an_endpoints_list_is_named_at_its_field(pool: PgPool) {
    let vllm = FakeOpenAi::start(Some("sk-list-key")).await;
    let app = spawn_signed_in(pool, Role::Admin).await;

    let no_key = app.discovery_errors(&api_source(&vllm.endpoint, "")).await;
    assert!(no_key["api_key"].as_str().unwrap().contains("It needs an API key"), "{no_key}");
    let wrong_key = app.discovery_errors(&api_source(&vllm.endpoint, "sk-wrong")).await;
    assert!(wrong_key["api_key"].as_str().unwrap().contains("The API key was refused"), "{wrong_key}");
    assert!(!wrong_key.to_string().contains("sk-wrong"), "the key is never echoed");

    let without_v1 = vllm.endpoint.trim_end_matches("/v1").to_owned();
    let not_found = app.discovery_errors(&api_source(&without_v1, "sk-list-key")).await;
    assert!(not_found["endpoint"].as_str().unwrap().contains("usually ends in /v1"), "{not_found}");

    let unreachable = app.discovery_errors(&api_source("http://127.0.0.1:9/v1", "")).await;
    assert!(unreachable["endpoint"].as_str().unwrap().contains("Could not connect to http://127.0.0.1:9/v1"));

    let invalid = app.discovery_errors(&api_source("vllm:8000/v1", "")).await;
    assert_eq!(invalid["endpoint"], app::models::domain::ENDPOINT_INVALID);
    nothing_stored(&app).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn an_answer_that_is_not_a_model_list_or_an_empty_one_is_named(pool: PgPool) {
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/v1/models", axum::routing::get(|| async { "<html>a web page</html>".into_response() }))
        .route(
            "/empty/v1/models",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"object": "list", "data": []})) }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let app = spawn_signed_in(pool, Role::Admin).await;

    let page = app.discovery_errors(&api_source(&endpoint, "")).await;
    assert!(page["endpoint"].as_str().unwrap().contains("did not answer with a model list"), "{page}");
    let empty = app.discovery_errors(&api_source(&endpoint.replace("/v1", "/empty/v1"), "")).await;
    assert!(empty["identifier"].as_str().unwrap().contains("No models are listed there"), "{empty}");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_auditor_cannot_load_models(pool: PgPool) {
    let vllm = FakeOpenAi::start(None).await;
    let app = spawn_signed_in(pool, Role::Auditor).await;
    assert_eq!(app.discover(&api_source(&vllm.endpoint, "")).await.status(), StatusCode::FORBIDDEN);
}

async fn app_with_bedrock_catalog(pool: PgPool) -> (TestApp, FakeBedrock) {
    let bedrock = FakeBedrock::start().await;
    let app = TestApp::builder(pool)
        .bedrock(bedrock_client(&bedrock.url, true))
        .bedrock_catalog(bedrock_catalog_client(&bedrock.url))
        .spawn_signed_in(Role::Admin)
        .await;
    (app, bedrock)
}

#[sqlx::test(migrations = "../migrations")]
async fn bedrock_offers_the_regions_inference_profiles_then_its_on_demand_models(pool: PgPool) {
    let (app, bedrock) = app_with_bedrock_catalog(pool).await;

    let models = app.discovered(&bedrock_source("eu-west-3")).await;

    assert_eq!(
        identifiers(&models),
        [
            "bedrock/eu.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "bedrock/eu.meta.llama3-2-90b-instruct-v1:0",
            "bedrock/eu.mistral.pixtral-large-2502-v1:0",
            "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
            "bedrock/mistral.mistral-large-2402-v1:0",
        ],
        "active profiles (every page), then text models callable on demand: not profile-only, legacy or embedding ones"
    );
    assert_eq!(
        models[0].label,
        "EU Anthropic Claude 3.5 Sonnet (eu.anthropic.claude-3-5-sonnet-20240620-v1:0)"
    );
    assert_eq!(models[3].label, "Anthropic Claude 3 Haiku (anthropic.claude-3-haiku-20240307-v1:0)");
    let families: Vec<Option<&str>> = models.iter().map(|model| model.family.as_deref()).collect();
    assert_eq!(
        families,
        [Some("claude_3"), Some("llama3"), Some("mistral"), Some("claude_3"), Some("mistral")]
    );
    assert_eq!(
        bedrock.signed_regions(),
        ["eu-west-3", "eu-west-3", "eu-west-3"],
        "two pages of profiles and the models, each signed for the model's region"
    );
    assert_eq!(app.model_clients.bedrock_catalog_regions(), ["eu-west-3"]);

    // Blank: the console's region, and its geography's profiles.
    let home = app.discovered(&bedrock_source("")).await;
    assert_eq!(home[0].identifier, "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0");
    assert_eq!(bedrock.signed_regions()[3], "us-east-1");
    app.discovered(&bedrock_source("eu-west-3")).await;
    assert_eq!(app.model_clients.bedrock_catalog_regions(), ["eu-west-3"], "the region's client is kept");
    nothing_stored(&app).await;

    // A picked profile says hello.
    let events = app
        .chat(app.save_model(&bedrock_form_in("Claude", &models[0].identifier, "eu-west-3")).await, "Hello")
        .await;
    assert_eq!(reply_text(&events), "Hello! How can I help you today?");
}

#[sqlx::test(migrations = "../migrations")]
async fn each_bedrock_catalog_failure_is_named_at_the_region(pool: PgPool) {
    let (app, _bedrock) = app_with_bedrock_catalog(pool.clone()).await;

    let denied = app.discovery_errors(&bedrock_source(CATALOG_DENIED_REGION)).await;
    let message = denied["bedrock_region"].as_str().unwrap();
    assert!(message.contains("Amazon Bedrock denied listing its models in us-west-1"), "{message}");
    assert!(message.contains("bedrock:ListInferenceProfiles"), "{message}");
    assert_eq!(
        app.discovery_errors(&bedrock_source("us-west-1.evil.example")).await["bedrock_region"],
        REGION_INVALID
    );

    // No catalog reachable (the harness's default), for the same admin.
    let unreachable = TestApp::builder(pool).spawn().await;
    assert_eq!(location(&unreachable.sign_in("ada", PASSWORD).await), "/admin");
    let errors = unreachable.discovery_errors(&bedrock_source("")).await;
    assert!(
        errors["bedrock_region"].as_str().unwrap().contains("Could not reach Amazon Bedrock in us-east-1"),
        "{errors}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_azure_resource_lists_its_deployments_on_azures_own_path(pool: PgPool) {
    use crate::common::fake_azure::FakeAzure;
    let azure = FakeAzure::start("az-list-key").await;
    let app = spawn_signed_in(pool, Role::Admin).await;
    // An identifier started with azure/ says the endpoint is an Azure OpenAI resource.
    let azure_source = |key: &str| {
        posted(ModelForm {
            platform: "api".into(),
            endpoint: azure.endpoint.clone(),
            identifier: "azure/".into(),
            api_key: key.into(),
            ..ModelForm::default()
        })
    };

    let models = app.discovered(&azure_source("az-list-key")).await;

    assert_eq!(identifiers(&models), ["azure/gpt4o-prod", "azure/mini"], "deployments that chat, by name");
    assert_eq!(models[0].label, "gpt4o-prod (gpt-4o)");
    assert_eq!(models[0].family.as_deref(), Some("gpt"));
    let refused = app.discovery_errors(&azure_source("az-wrong")).await;
    assert!(refused["api_key"].as_str().unwrap().contains("Azure OpenAI refused the API key"), "{refused}");
    nothing_stored(&app).await;

    // The picked deployment says hello over Azure's wire.
    let result = app.test_connection(&api_form(&azure.endpoint, &models[0].identifier, "az-list-key")).await;
    assert!(result.ok, "{}", result.message);
}
