//! A region per Bedrock model: stored with the model, checked as an AWS region's shape at its
//! field and by the schema, shown in the list, and used where it counts: the request is signed
//! for the model's region (the fake recomputes the SigV4 signature with the credential scope's
//! region, and records that region), through one cached client per region.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::common::fake_bedrock::FakeBedrock;
use crate::common::*;
use app::auth::Role;
use app::models::domain::REGION_INVALID;

const CLAUDE: &str = "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0";

async fn app_with_bedrock(pool: PgPool) -> (TestApp, FakeBedrock) {
    let bedrock = FakeBedrock::start().await;
    // The console's own region is the tests' client's: us-east-1.
    let app =
        TestApp::builder(pool).bedrock(bedrock_client(&bedrock.url, true)).spawn_signed_in(Role::Admin).await;
    (app, bedrock)
}

async fn stored_region(app: &TestApp, name: &str) -> Option<String> {
    sqlx::query_scalar("SELECT bedrock_region FROM self_hosted_models WHERE name = $1")
        .bind(name)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn each_bedrock_model_is_signed_for_its_own_region_through_one_client_per_region(pool: PgPool) {
    let (app, bedrock) = app_with_bedrock(pool).await;
    let paris = app.save_model(&bedrock_form_in("Claude in Paris", CLAUDE, "eu-west-3")).await;
    let home = app.save_model(&bedrock_form_in("Claude at home", CLAUDE, "")).await;
    let paris_again = app.save_model(&bedrock_form_in("Claude in Paris too", CLAUDE, "EU-WEST-3")).await;
    let tokyo = app.save_model(&bedrock_form_in("Claude in Tokyo", CLAUDE, "ap-northeast-1")).await;
    assert_eq!(stored_region(&app, "Claude in Paris").await.as_deref(), Some("eu-west-3"));
    assert_eq!(stored_region(&app, "Claude in Paris too").await.as_deref(), Some("eu-west-3"), "lower-cased");
    assert_eq!(stored_region(&app, "Claude at home").await, None);

    for id in [paris, home, paris_again, tokyo, paris] {
        let events = app.chat(id, "Hello").await;
        assert_eq!(reply_text(&events), "Hello! How can I help you today?", "{events:?}");
    }
    // Test connection with the form's unsaved region signs for that region too.
    let tested = app.test_connection(&bedrock_form_in("Unsaved", CLAUDE, "us-west-2")).await;
    assert!(tested.ok, "{}", tested.message);

    assert_eq!(
        bedrock.signed_regions(),
        ["eu-west-3", "us-east-1", "eu-west-3", "ap-northeast-1", "eu-west-3", "us-west-2"],
        "every request was signed (and its signature checked) for its model's region"
    );
    assert_eq!(
        app.model_clients.bedrock_regions(),
        ["ap-northeast-1", "eu-west-3", "us-west-2"],
        "one client per distinct region, kept; the console's region uses the console's client"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_region_that_is_not_an_aws_region_is_refused_at_its_field_and_nothing_is_saved(pool: PgPool) {
    let (app, bedrock) = app_with_bedrock(pool).await;
    for bad in ["us-east-1.attacker.example", "us-east", "us-east-1a", "eu west 3", "../us-east-1"] {
        let response = app
            .client
            .post(app.url("/api/save_self_hosted_model"))
            .form(&bedrock_form_in("Claude", CLAUDE, bad))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let errors = response.json::<Value>().await.unwrap()["Validation"].clone();
        assert_eq!(errors["bedrock_region"], REGION_INVALID, "{bad}");
        let tested = app
            .client
            .post(app.url("/api/test_self_hosted_model_connection"))
            .form(&bedrock_form_in("Claude", CLAUDE, bad))
            .send()
            .await
            .unwrap();
        assert_eq!(tested.status(), StatusCode::UNPROCESSABLE_ENTITY, "Test connection refuses {bad} too");
    }
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM self_hosted_models").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0);
    assert_eq!(bedrock.request_count(), 0, "nothing was sent anywhere");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_schema_refuses_a_malformed_region_and_a_region_on_an_api_model(pool: PgPool) {
    let insert = |platform: &'static str, endpoint: Option<&'static str>, region: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO self_hosted_models (name, platform, model_family, endpoint, identifier, bedrock_region)
                 VALUES ('m', $1, 'claude_3', $2, 'bedrock/x', $3)",
            )
            .bind(platform)
            .bind(endpoint)
            .bind(region)
            .execute(&pool)
            .await
            .map_err(|error| error.as_database_error().and_then(|e| e.constraint()).unwrap_or_default().to_owned())
        }
    };
    assert_eq!(
        insert("bedrock", None, "us-east-1.evil").await.unwrap_err(),
        "self_hosted_models_bedrock_region_shape"
    );
    assert_eq!(
        insert("api", Some("http://vllm:8000/v1"), "us-east-1").await.unwrap_err(),
        "self_hosted_models_region_for_bedrock"
    );
    assert!(insert("bedrock", None, "us-gov-west-1").await.is_ok());
}

#[sqlx::test(migrations = "../migrations")]
async fn editing_changes_the_region_and_switching_to_api_drops_it(pool: PgPool) {
    let (app, _bedrock) = app_with_bedrock(pool).await;
    let id = app.save_model(&bedrock_form_in("Claude", CLAUDE, "eu-west-1")).await;
    let mut edit = bedrock_form_in("Claude", CLAUDE, "eu-central-1");
    edit.push(("id", id.to_string()));
    app.save_model(&edit).await;
    assert_eq!(stored_region(&app, "Claude").await.as_deref(), Some("eu-central-1"));

    let mut to_api = api_form("http://vllm.internal:8000/v1", "custom_openai/m", "");
    to_api.retain(|(field, _)| *field != "name");
    to_api.extend([
        ("id", id.to_string()),
        ("name", "Claude".to_owned()),
        ("bedrock_region", "eu-central-1".to_owned()),
    ]);
    app.save_model(&to_api).await;
    assert_eq!(stored_region(&app, "Claude").await, None, "an API model keeps no region, whatever is posted");

    let audit: Value = sqlx::query_scalar(
        "SELECT before FROM audit_events WHERE action = 'model_updated' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audit["bedrock_region"], "eu-central-1", "the audit trail shows the region it had");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_list_shows_each_bedrock_models_region_and_the_form_the_consoles(pool: PgPool) {
    let (app, _bedrock) = app_with_bedrock(pool).await;
    app.save_model(&bedrock_form_in("Claude in Paris", CLAUDE, "eu-west-3")).await;
    let home = app.save_model(&bedrock_form_in("Claude at home", CLAUDE, "")).await;

    let list = app.get("/admin/gitlab_duo/self_hosted/models").await.text().await.unwrap();
    assert!(list.contains("Region: eu-west-3"), "{list}");
    assert!(
        list.contains("Region: us-east-1 (the console&#x27;s)")
            || list.contains("Region: us-east-1 (the console's)")
    );

    let form =
        app.get(&format!("/admin/gitlab_duo/self_hosted/models/{home}/edit")).await.text().await.unwrap();
    assert!(form.contains("AWS region (optional)"), "{form}");
    assert!(form.contains("Leave it blank to use the console"), "the console's region is named");
    assert!(
        form.contains("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0"),
        "an id with us-east-1's prefix"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failure_names_the_models_region_and_the_profile_id_to_use_there(pool: PgPool) {
    let (app, bedrock) = app_with_bedrock(pool).await;

    let unprefixed = app
        .test_connection(&bedrock_form_in("Claude", "bedrock/anthropic.no-region-prefix-v1:0", "eu-west-1"))
        .await;
    assert!(!unprefixed.ok);
    assert!(
        unprefixed.message.contains("In eu-west-1, call it through its cross-region inference profile: bedrock/eu.anthropic.no-region-prefix-v1:0"),
        "{}",
        unprefixed.message
    );
    let missing =
        app.test_connection(&bedrock_form_in("Claude", "bedrock/eu.anthropic.not-found", "eu-west-1")).await;
    assert!(missing.message.contains("in eu-west-1"), "{}", missing.message);
    assert_eq!(bedrock.signed_regions(), ["eu-west-1", "eu-west-1"]);
}
