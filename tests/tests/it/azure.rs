//! Azure OpenAI models (`azure/DEPLOYMENT` on the API platform), tested over Azure's own wire
//! against a local resource that speaks it: the deployment in the path, the API version in the
//! query, the key in `api-key`, Azure's error codes named.

use sqlx::PgPool;

use crate::common::fake_azure::FakeAzure;
use crate::common::*;
use app::auth::Role;
use app::chat::ChatEvent;
use app::chat::client::AZURE_API_VERSION;

#[sqlx::test(migrations = "../migrations")]
async fn an_azure_model_says_hello_over_azures_wire(pool: PgPool) {
    let azure = FakeAzure::start("az-key-planted").await;
    let app = spawn_signed_in(pool, Role::Admin).await;

    let result = app.test_connection(&api_form(&azure.endpoint, "azure/gpt4o-prod", "az-key-planted")).await;

    assert!(result.ok, "{}", result.message);
    assert_eq!(result.reply, "Hello from Azure OpenAI!");
    let seen = azure.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].deployment, "gpt4o-prod", "the deployment, without azure/");
    assert_eq!(seen[0].api_version.as_deref(), Some(AZURE_API_VERSION));
    assert_eq!(seen[0].api_key.as_deref(), Some("az-key-planted"));
    assert_eq!(seen[0].authorization, None, "Azure takes the key in api-key, not as a bearer token");
    assert_eq!(seen[0].model_in_body, None, "the path names the deployment");

    // Saved, it streams with its stored key and its figures.
    let id = app.save_model(&api_form(&azure.endpoint, "azure/gpt4o-prod", "az-key-planted")).await;
    let events = app.chat(id, "Hello").await;
    assert_eq!(reply_text(&events), "Hello from Azure OpenAI!");
    let Some(ChatEvent::Done(figures)) = events.last() else { panic!("{events:?}") };
    assert_eq!((figures.input_tokens, figures.output_tokens), (Some(12), Some(5)));
    assert_eq!(figures.stop_reason.as_deref(), Some("stop"));
}

#[sqlx::test(migrations = "../migrations")]
async fn each_azure_failure_is_named_with_what_to_do(pool: PgPool) {
    let azure = FakeAzure::start("az-key-planted").await;
    let app = spawn_signed_in(pool, Role::Admin).await;
    let cases = [
        ("azure/gpt4o-prod", "", "needs the resource's API key"),
        ("azure/gpt4o-prod", "az-wrong", "refused the API key"),
        ("azure/gpt-4o", "az-key-planted", "no deployment \"gpt-4o\""),
        ("azure/throttled", "az-key-planted", "rate-limiting this deployment"),
    ];
    for (identifier, key, expected) in cases {
        let result = app.test_connection(&api_form(&azure.endpoint, identifier, key)).await;
        assert!(!result.ok, "{identifier}");
        assert!(result.message.contains(expected), "{identifier}: {}", result.message);
        assert!(!result.message.contains("az-key") && !result.message.contains("az-wrong"));
    }
    let unreachable = app.test_connection(&api_form("http://127.0.0.1:9", "azure/gpt4o-prod", "k")).await;
    assert!(
        unreachable.message.contains("Could not connect to the Azure OpenAI resource"),
        "{}",
        unreachable.message
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_azure_api_version_is_configurable(pool: PgPool) {
    let azure = FakeAzure::start("k").await;
    let app =
        TestApp::builder(pool).azure_api_version("2025-04-01-preview").spawn_signed_in(Role::Admin).await;

    app.test_connection(&api_form(&azure.endpoint, "azure/gpt4o-prod", "k")).await;

    assert_eq!(azure.requests()[0].api_version.as_deref(), Some("2025-04-01-preview"));
}
