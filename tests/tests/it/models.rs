//! Self-hosted models over real HTTP: every rule, the write-only API key, the in-use guard
//! called directly, the duplicate-name race, and what the pages show.

use crate::common::*;
use app::auth::Role;
use app::models::api::ModelsPage;
use app::models::domain::ModelForm;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

const PLANTED_KEY: &str = "sk-planted-7f3a9c1e5b";

fn api_model(name: &str) -> Vec<(&'static str, String)> {
    posted(ModelForm {
        name: name.to_owned(),
        platform: "api".into(),
        model_family: "mixtral".into(),
        endpoint: "http://vllm.internal:8000/v1".into(),
        identifier: "custom_openai/Mixtral-8x7B-Instruct-v0.1".into(),
        api_key: PLANTED_KEY.into(),
        ..ModelForm::default()
    })
}

fn bedrock_model(name: &str) -> Vec<(&'static str, String)> {
    posted(ModelForm {
        name: name.to_owned(),
        platform: "bedrock".into(),
        model_family: "claude_3".into(),
        identifier: "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0".into(),
        ..ModelForm::default()
    })
}

impl TestApp {
    async fn save(&self, form: &[(&str, String)]) -> reqwest::Response {
        self.client.post(self.url("/api/save_self_hosted_model")).form(form).send().await.unwrap()
    }

    async fn delete_model(&self, id: i64) -> reqwest::Response {
        self.client.post(self.url("/api/delete_self_hosted_model")).form(&[("id", id)]).send().await.unwrap()
    }

    async fn model_id(&self, name: &str) -> i64 {
        sqlx::query_scalar("SELECT id FROM self_hosted_models WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn model_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM self_hosted_models").fetch_one(&self.pool).await.unwrap()
    }

    async fn field_errors(response: reqwest::Response) -> Value {
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        response.json::<Value>().await.unwrap()["Validation"].clone()
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn adding_an_api_model_seals_its_key(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    let response = app.save(&api_model("Mixtral on vLLM")).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(location(&response), "/admin/gitlab_duo/self_hosted/features?notice=created");
    let sealed = app.sealed_key("Mixtral on vLLM").await.expect("a sealed key");
    assert!(!String::from_utf8_lossy(&sealed.ciphertext).contains(PLANTED_KEY));
    assert_eq!(app.open_key("Mixtral on vLLM", &sealed).await, PLANTED_KEY);
    let audit: (String, Value, Option<String>) =
        sqlx::query_as("SELECT message, after, ip_address FROM audit_events WHERE action = 'model_created'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(audit.0, "Self-hosted model Mixtral on vLLM/mixtral/http://vllm.internal:8000/v1 created");
    assert_eq!(audit.1["api_key_fingerprint"], json!(sealed.fingerprint));
    assert!(!audit.1.to_string().contains(PLANTED_KEY));
    assert_eq!(audit.2.as_deref(), Some("127.0.0.1"), "the admin's address is recorded");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_bedrock_model_keeps_no_endpoint_and_no_key_whatever_is_sent(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let mut form = bedrock_model("Claude");
    form.push(("endpoint", "http://left-over/v1".into()));
    form.push(("api_key", PLANTED_KEY.into()));

    assert_eq!(app.save(&form).await.status(), StatusCode::OK);

    let endpoint: Option<String> =
        sqlx::query_scalar("SELECT endpoint FROM self_hosted_models").fetch_one(&app.pool).await.unwrap();
    assert_eq!(endpoint, None);
    assert!(app.sealed_key("Claude").await.is_none());
}

#[sqlx::test(migrations = "../migrations")]
async fn each_broken_rule_is_named_at_its_field_and_nothing_is_saved(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let with = |field: &'static str, value: &str| {
        let mut form = api_model("Mixtral");
        form.retain(|(name, _)| *name != field);
        form.push((field, value.to_owned()));
        form
    };
    let cases = [
        (with("name", "   "), "name", "Please enter a deployment name."),
        (with("name", &"n".repeat(256)), "name", "Deployment name must be less than 255 characters."),
        (with("model_family", ""), "model_family", "Please select a model."),
        (with("model_family", "llama3"), "model_family", "Please select a model."),
        (with("model_family", "no_such_family"), "model_family", "Please select a model."),
        (with("endpoint", ""), "endpoint", "Please enter an endpoint."),
        (with("endpoint", "vllm:8000/v1"), "endpoint", "Please add a valid endpoint."),
        (
            with("endpoint", &format!("http://h/{}", "a".repeat(2048))),
            "endpoint",
            "Please add a valid endpoint.",
        ),
        (with("identifier", ""), "identifier", "Please enter a model identifier."),
        (
            with("identifier", &"m".repeat(256)),
            "identifier",
            "Model identifier must be less than 255 characters.",
        ),
    ];
    for (form, field, message) in cases {
        let errors = TestApp::field_errors(app.save(&form).await).await;
        assert_eq!(errors[field], json!(message), "{field}: {errors}");
    }
    let mut bedrock = bedrock_model("Claude");
    bedrock.retain(|(name, _)| *name != "identifier");
    bedrock.push(("identifier", "us.anthropic.claude-3-5-sonnet-20240620-v1:0".into()));
    let errors = TestApp::field_errors(app.save(&bedrock).await).await;
    assert_eq!(errors["identifier"], json!("Model identifier must start with \"bedrock/\""));
    assert_eq!(app.model_count().await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_duplicate_name_is_refused(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    app.save(&api_model("Mixtral")).await;

    let errors = TestApp::field_errors(app.save(&bedrock_model("Mixtral")).await).await;

    assert_eq!(errors["name"], json!("Please enter a unique deployment name."));
    assert_eq!(app.model_count().await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn two_admins_adding_one_name_at_the_same_instant_get_one_model(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let attempts = (0..8).map(|_| {
        let request = app.client.post(app.url("/api/save_self_hosted_model")).form(&bedrock_model("Race"));
        tokio::spawn(async move { request.send().await.unwrap() })
    });

    let mut statuses = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        let response = attempt.await.unwrap();
        let status = response.status();
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["Validation"]["name"], json!("Please enter a unique deployment name."));
        }
        statuses.push(status);
    }

    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(app.model_count().await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn editing_without_touching_the_key_keeps_it_and_the_key_can_be_replaced_or_removed(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    app.save(&api_model("Mixtral")).await;
    let id = app.model_id("Mixtral").await;
    let before = app.sealed_key("Mixtral").await.unwrap();
    let edit = |action: &str, key: &str| {
        let mut form = api_model("Mixtral renamed");
        form.retain(|(name, _)| *name != "api_key");
        form.extend([
            ("id", id.to_string()),
            ("api_key_action", action.to_owned()),
            ("api_key", key.to_owned()),
        ]);
        form
    };

    let kept = app.save(&edit("keep", "")).await;
    assert_eq!(location(&kept), "/admin/gitlab_duo/self_hosted/features?notice=saved");
    assert_eq!(app.sealed_key("Mixtral renamed").await.unwrap(), before);
    assert_eq!(app.open_key("Mixtral renamed", &before).await, PLANTED_KEY);

    app.save(&edit("replace", "sk-second")).await;
    let replaced = app.sealed_key("Mixtral renamed").await.unwrap();
    assert_eq!(app.open_key("Mixtral renamed", &replaced).await, "sk-second");
    assert_ne!(replaced.fingerprint, before.fingerprint);

    app.save(&edit("remove", "")).await;
    assert!(app.sealed_key("Mixtral renamed").await.is_none());
    let updates: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'model_updated'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(updates, 3);
}

#[sqlx::test(migrations = "../migrations")]
async fn switching_an_api_model_to_bedrock_drops_its_endpoint_and_key(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    app.save(&api_model("Switch")).await;
    let id = app.model_id("Switch").await;
    let mut form = bedrock_model("Switch");
    form.extend([("id", id.to_string()), ("api_key_action", "keep".to_owned())]);

    assert_eq!(app.save(&form).await.status(), StatusCode::OK);

    assert!(app.sealed_key("Switch").await.is_none());
}

#[sqlx::test(migrations = "../migrations")]
async fn deleting_a_model_in_use_is_refused_whatever_the_client_sends(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    app.save(&bedrock_model("Claude")).await;
    let id = app.model_id("Claude").await;
    sqlx::query(
        "INSERT INTO feature_settings (feature, provider, self_hosted_model_id)
         VALUES ('duo_chat', 'self_hosted', $1), ('code_generations', 'self_hosted', $1)",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();

    let response = app.delete_model(id).await;

    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["Conflict"],
        json!(
            "To remove Claude, you must first remove it from the following AI Feature(s): Code Generation, General Chat"
        )
    );
    assert_eq!(app.model_count().await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn deleting_an_unused_model_removes_it_and_is_audited(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    app.save(&bedrock_model("Claude")).await;
    let id = app.model_id("Claude").await;

    let response = app.delete_model(id).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.model_count().await, 0);
    let message: String =
        sqlx::query_scalar("SELECT message FROM audit_events WHERE action = 'model_destroyed'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(message, "Self-hosted model Claude/claude_3/-- destroyed");
    assert_eq!(app.delete_model(id).await.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_auditor_cannot_add_edit_or_delete(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Auditor).await;

    assert_eq!(app.save(&bedrock_model("Claude")).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.delete_model(1).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get("/admin/gitlab_duo/self_hosted/models").await.status(), StatusCode::OK);
    assert_eq!(app.model_count().await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_api_key_never_appears_in_any_response(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let saved = app.save(&api_model("Mixtral")).await;
    let id = app.model_id("Mixtral").await;
    let mut bodies = vec![saved.text().await.unwrap()];

    for path in [
        "/api/self_hosted_models?search=&page=1".to_owned(),
        format!("/api/self_hosted_model_form?id={id}"),
        "/admin/gitlab_duo/self_hosted/models".to_owned(),
        format!("/admin/gitlab_duo/self_hosted/models/{id}/edit"),
        "/admin/audit_events".to_owned(),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        bodies.push(response.text().await.unwrap());
    }

    for body in &bodies {
        assert!(!body.contains(PLANTED_KEY), "the key leaked in: {body}");
    }
    let fingerprint = app.sealed_key("Mixtral").await.unwrap().fingerprint;
    assert!(bodies[2].contains(&fingerprint), "the edit form shows the fingerprint");
    assert!(bodies[4].contains("Key set"));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_list_searches_pages_and_hides_unused_beta_models_while_beta_is_off(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    for n in 1..=22 {
        app.save(&bedrock_model(&format!("Claude {n:02}"))).await;
    }
    for name in ["Llama unused", "Llama used"] {
        sqlx::query(
            "INSERT INTO self_hosted_models (name, platform, model_family, endpoint, identifier)
             VALUES ($1, 'api', 'llama3', 'http://llama:8000/v1', 'llama-3')",
        )
        .bind(name)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let used = app.model_id("Llama used").await;
    sqlx::query("INSERT INTO feature_settings (feature, provider, self_hosted_model_id) VALUES ('duo_chat', 'self_hosted', $1)")
        .bind(used)
        .execute(&app.pool)
        .await
        .unwrap();

    let first: ModelsPage = app.get("/api/self_hosted_models?search=&page=1").await.json().await.unwrap();
    let second: ModelsPage = app.get("/api/self_hosted_models?search=&page=2").await.json().await.unwrap();
    let llamas: ModelsPage =
        app.get("/api/self_hosted_models?search=LLAMA&page=1").await.json().await.unwrap();

    assert_eq!(first.models.len(), 20);
    assert!(first.has_next_page);
    assert_eq!(first.models[0].name, "Claude 01");
    assert_eq!(
        second.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["Claude 21", "Claude 22", "Llama used"]
    );
    assert_eq!(llamas.models.len(), 1, "the unused beta model is hidden");
    assert_eq!(llamas.models[0].used_by, ["General Chat"]);
    let page = app.get("/admin/gitlab_duo/self_hosted/models?search=llama").await.text().await.unwrap();
    assert!(page.contains("In use by a feature; beta models are turned off"));
    assert!(page.contains(">Beta<"));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_pages_show_gitlabs_texts(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    let list = app.get("/admin/gitlab_duo/self_hosted/models").await.text().await.unwrap();
    let form = app.get("/admin/gitlab_duo/self_hosted/models/new").await.text().await.unwrap();

    for text in [
        "Model configuration",
        "Manage GitLab Duo by configuring and assigning self-hosted models to AI-native features.",
        "Add self-hosted model",
        "Self-hosted models",
        "No self-hosted models yet. ",
        r#"<a href="/admin/gitlab_duo/self_hosted/models/new">Add a self-hosted model</a>"#,
        " and select it for a feature to start using it.",
    ] {
        assert!(list.contains(text), "the list shows {text}");
    }
    for text in [
        "Add a new AI model that can be used for GitLab Duo self-hosted features.",
        "Deployment name",
        "A unique and descriptive name for your deployment.",
        "Platform",
        ">API<",
        ">Amazon Bedrock<",
        "Model family",
        "Select an appropriate model family from the list of approved GitLab models.",
        "Select model",
        "Endpoint",
        "Specify the URL endpoint where your self-hosted model is accessible",
        "Model identifier",
        "Provide the model identifier in the form of custom_openai/model-name",
        "API Key (optional)",
        "If required, provide the API token that grants access to your self-hosted model deployment.",
        "More models are available in beta.",
        r#"placeholder="custom_openai/""#,
        "Cancel",
    ] {
        assert!(form.contains(text), "the form shows {text}");
    }
    assert!(!form.contains("Llama 3"), "beta families are hidden while beta is off");
}

#[sqlx::test(migrations = "../migrations")]
async fn with_javascript_off_the_form_posts_and_shows_its_errors(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let form_page = app.url("/admin/gitlab_duo/self_hosted/models/new");
    let mut form = api_model("");
    form.retain(|(name, _)| *name != "endpoint");
    form.push(("endpoint", "not-a-url".into()));

    let response = app
        .client
        .post(app.url("/api/save_self_hosted_model"))
        .header("accept", "text/html")
        .header("referer", &form_page)
        .form(&form)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::FOUND);
    let back = location(&response);
    assert!(back.starts_with(&form_page), "{back}");
    let sessions: Vec<String> =
        sqlx::query_scalar("SELECT encode(data, 'escape') FROM tower_sessions.session")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(!sessions.concat().contains(PLANTED_KEY), "the kept values leave the API key out");
    let page = app.client.get(&back).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Please enter a deployment name."));
    assert!(page.contains("Please add a valid endpoint."));
    // The form comes back as the admin filled it in, except the API key.
    assert!(page.contains(r#"value="not-a-url""#), "the typed endpoint is kept");
    assert!(page.contains(r#"value="custom_openai/Mixtral-8x7B-Instruct-v0.1""#));
    assert!(page.contains(r#"<option value="mixtral" selected"#), "the chosen family is kept");
    assert!(!page.contains(PLANTED_KEY));
    let again = app.client.get(&form_page).send().await.unwrap().text().await.unwrap();
    assert!(!again.contains("not-a-url"), "the kept values are shown once");

    let saved = app
        .client
        .post(app.url("/api/save_self_hosted_model"))
        .header("accept", "text/html")
        .header("referer", &form_page)
        .form(&bedrock_model("Claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&saved), "/admin/gitlab_duo/self_hosted/features?notice=created");
    let list = app.get("/admin/gitlab_duo/self_hosted/features?notice=created").await.text().await.unwrap();
    assert!(list.contains("Model added. Select it for a feature to start using it."));
    assert!(list.contains("Claude"));
}

#[sqlx::test(migrations = "../migrations")]
async fn gitlabs_old_addresses_move_permanently(pool: PgPool) {
    let app = spawn_app(pool).await;

    for (old, new) in [
        ("/admin/ai/duo_self_hosted", "/admin/gitlab_duo/self_hosted"),
        ("/admin/ai/duo_self_hosted/new", "/admin/gitlab_duo/self_hosted/models/new"),
        ("/admin/ai/duo_self_hosted/models/3/edit", "/admin/gitlab_duo/self_hosted"),
        ("/admin/ai/duo_self_hosted/anything/else", "/admin/gitlab_duo/self_hosted"),
    ] {
        let response = app.get(old).await;
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY, "{old}");
        assert_eq!(location(&response), new);
    }
}
