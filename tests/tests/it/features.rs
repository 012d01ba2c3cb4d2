//! AI-native features and the Configuration page over real HTTP: compatibility, beta gating,
//! apply-to-all atomicity, concurrency, validation, the gateway health check, and the catalog's
//! own checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use app::auth::Role;
use app::catalog::Catalog;
use app::features::api::{AppliedToAll, Assignment, FeaturesPage};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn add_model(app: &TestApp, name: &str, family: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
         VALUES ($1, 'bedrock', $2, 'bedrock/' || $1) RETURNING id",
    )
    .bind(name)
    .bind(family)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn turn_beta_on(app: &TestApp) {
    sqlx::query(
        "INSERT INTO testing_terms_acceptances (user_id, user_email) SELECT id, email FROM users LIMIT 1",
    )
    .execute(&app.pool)
    .await
    .unwrap();
}

impl TestApp {
    async fn choose(&self, feature: &str, choice: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/update_ai_feature_setting"))
            .form(&[("feature", feature), ("choice", choice)])
            .send()
            .await
            .unwrap()
    }

    async fn apply_to_all(&self, feature: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/apply_ai_feature_setting_to_all"))
            .form(&[("feature", feature)])
            .send()
            .await
            .unwrap()
    }

    async fn features(&self) -> FeaturesPage {
        self.get("/api/ai_feature_settings").await.json().await.unwrap()
    }

    async fn stored(&self, feature: &str) -> Option<(String, Option<i64>)> {
        sqlx::query_as("SELECT provider, self_hosted_model_id FROM feature_settings WHERE feature = $1")
            .bind(feature)
            .fetch_optional(&self.pool)
            .await
            .unwrap()
    }

    async fn save_settings(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(self.url("/api/update_duo_configuration")).form(form).send().await.unwrap()
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn choosing_a_compatible_model_saves_it_and_answers_gitlabs_toast(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let id = add_model(&app, "Mixtral", "mixtral").await;

    let response = app.choose("code_generations", &id.to_string()).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<String>().await.unwrap(),
        "Successfully updated Code Suggestions / Code Generation"
    );
    assert_eq!(app.stored("code_generations").await, Some(("self_hosted".into(), Some(id))));
    let message: String =
        sqlx::query_scalar("SELECT message FROM audit_events WHERE action = 'feature_setting_updated'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(message, "Feature code_generations changed to Self-hosted model (Mixtral)");
    assert_eq!(app.choose("code_generations", "disabled").await.status(), StatusCode::OK);
    assert_eq!(app.stored("code_generations").await, Some(("disabled".into(), None)));
}

#[sqlx::test(migrations = "../migrations")]
async fn an_incompatible_model_is_refused_with_gitlabs_message(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    turn_beta_on(&app).await;
    let id = add_model(&app, "CodeGemma", "codegemma").await;

    let response = app.choose("duo_chat", &id.to_string()).await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Validation"]["model"], json!("Codegemma is incompatible with the General Chat feature"));
    assert_eq!(app.stored("duo_chat").await, None);
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_features_beta_features_and_beta_models_are_refused_while_beta_is_off(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let claude = add_model(&app, "Claude", "claude_3").await;
    let llama = add_model(&app, "Llama", "llama3").await;

    assert_eq!(app.choose("no_such_feature", &claude.to_string()).await.status(), StatusCode::NOT_FOUND);
    let beta_feature = app.choose("duo_chat_troubleshoot_job", &claude.to_string()).await;
    assert_eq!(beta_feature.status(), StatusCode::CONFLICT);
    let beta_model = app.choose("duo_chat", &llama.to_string()).await;
    assert_eq!(beta_model.status(), StatusCode::UNPROCESSABLE_ENTITY);

    turn_beta_on(&app).await;
    assert_eq!(app.choose("duo_chat_troubleshoot_job", &claude.to_string()).await.status(), StatusCode::OK);
    assert_eq!(app.choose("duo_chat", &llama.to_string()).await.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_auditor_cannot_change_features_or_settings(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Auditor).await;
    let id = add_model(&app, "Claude", "claude_3").await;

    assert_eq!(app.choose("duo_chat", &id.to_string()).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.apply_to_all("duo_chat").await.status(), StatusCode::FORBIDDEN);
    let settings = app
        .save_settings(&[
            ("ai_gateway_timeout_seconds", "90"),
            ("ai_gateway_url", ""),
            ("duo_agent_platform_service_url", ""),
        ])
        .await;
    assert_eq!(settings.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/ai_feature_settings").await.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_page_lists_sections_in_order_ga_first_with_compatible_models_and_the_chat_fallback(
    pool: PgPool,
) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let claude = add_model(&app, "Claude", "claude_3").await;
    add_model(&app, "Codestral", "codestral").await;
    add_model(&app, "Llama", "llama3").await;
    app.choose("duo_chat", &claude.to_string()).await;

    let page = app.features().await;

    let titles: Vec<&str> = page.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Code Suggestions",
            "GitLab Duo Chat",
            "GitLab Duo for merge requests",
            "GitLab Duo Agent Platform",
            "GitLab Duo Agentic Chat"
        ]
    );
    let chat = &page.sections[1];
    assert!(chat.more_in_beta);
    let general = &chat.features[0];
    assert_eq!(general.title, "General Chat");
    assert_eq!(general.assignment, Assignment::SelfHosted { id: claude, name: "Claude".into() });
    let labels: Vec<&str> = general.choices.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        ["Claude (Claude)", "Codestral (Mistral Codestral)"],
        "no beta model while beta is off"
    );
    let explain = &chat.features[1];
    assert_eq!(explain.fallback.as_deref(), Some("Uses the General Chat model: Claude"));
    let review = &page.sections[2].features[0];
    assert_eq!(
        review.choices.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(),
        ["Claude (Claude)"],
        "C excludes codestral"
    );

    turn_beta_on(&app).await;
    let with_beta = app.features().await;
    assert_eq!(with_beta.sections.len(), 7, "issues and the other features show with beta");
    let chat = &with_beta.sections[1];
    assert_eq!(chat.features.last().unwrap().title, "Root Cause Analysis", "beta after GA");
    assert_eq!(
        chat.features[0].choices.last().unwrap().label,
        "Llama (Llama 3)",
        "beta models after GA ones"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_runtime_uses_general_chats_model_for_a_chat_feature_without_one(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let claude = add_model(&app, "Claude", "claude_3").await;
    let mistral = add_model(&app, "Mistral", "mistral").await;
    app.choose("duo_chat", &claude.to_string()).await;
    let catalog = Catalog::load().unwrap();
    let resolve = |key: &'static str| {
        let (pool, catalog) = (app.pool.clone(), catalog.clone());
        async move {
            app::features::api::ssr::resolve_model(&pool, &catalog, catalog.feature(key).unwrap())
                .await
                .unwrap()
        }
    };

    assert_eq!(resolve("duo_chat_explain_code").await, Some((claude, Some("General Chat".into()))));
    app.choose("duo_chat_explain_code", &mistral.to_string()).await;
    assert_eq!(resolve("duo_chat_explain_code").await, Some((mistral, None)));
    app.choose("duo_chat_explain_code", "disabled").await;
    assert_eq!(resolve("duo_chat_explain_code").await, None, "disabled means off, not the fallback");
    assert_eq!(resolve("code_completions").await, None, "no fallback outside Chat");
}

#[sqlx::test(migrations = "../migrations")]
async fn apply_to_all_sets_the_whole_section_in_one_go_or_not_at_all(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let claude = add_model(&app, "Claude", "claude_3").await;
    let codestral = add_model(&app, "Codestral", "codestral").await;

    let unassigned = app.apply_to_all("duo_chat").await;
    assert_eq!(unassigned.status(), StatusCode::CONFLICT);
    assert_eq!(
        unassigned.json::<Value>().await.unwrap()["Conflict"],
        json!("Assign a model to General Chat before applying to all")
    );

    app.choose("duo_chat", &claude.to_string()).await;
    let page = app.features().await;
    let button = page.sections[1].features[0].apply_to_all.clone().unwrap();
    assert!(button.enabled);
    assert_eq!(button.tooltip, "Apply to all GitLab Duo Chat sub-features");

    let response = app.apply_to_all("duo_chat").await;
    let applied: AppliedToAll = response.json().await.unwrap();
    assert_eq!(applied.message, "Successfully updated all GitLab Duo Chat features to Claude");
    assert_eq!(applied.model_id, claude);
    assert_eq!(applied.previous.len(), 4, "what each changed feature had, for Undo");
    for feature in
        ["duo_chat_explain_code", "duo_chat_write_tests", "duo_chat_refactor_code", "duo_chat_fix_code"]
    {
        assert_eq!(app.stored(feature).await, Some(("self_hosted".into(), Some(claude))), "{feature}");
    }
    assert_eq!(app.stored("duo_chat_troubleshoot_job").await, None, "hidden beta features are left alone");

    // Codestral suits General Chat but not every Chat feature once beta shows Root Cause Analysis.
    turn_beta_on(&app).await;
    app.choose("duo_chat", &codestral.to_string()).await;
    let button = app.features().await.sections[1].features[0].apply_to_all.clone().unwrap();
    assert!(!button.enabled);
    assert_eq!(button.tooltip, "This model cannot be applied to all GitLab Duo Chat sub-features");
    let refused = app.apply_to_all("duo_chat").await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["Conflict"],
        json!("Codestral is incompatible with the Root Cause Analysis feature")
    );
    assert_eq!(
        app.stored("duo_chat_explain_code").await,
        Some(("self_hosted".into(), Some(claude))),
        "nothing changed"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn fifty_concurrent_updates_leave_one_consistent_row_and_fifty_audit_events(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let ids = [add_model(&app, "Claude", "claude_3").await, add_model(&app, "Mistral", "mistral").await];
    let updates = (0..50).map(|n| {
        let choice = ids[n % 2].to_string();
        let request = app
            .client
            .post(app.url("/api/update_ai_feature_setting"))
            .form(&[("feature", "duo_chat".to_owned()), ("choice", choice)]);
        tokio::spawn(async move { request.send().await.unwrap().status() })
    });

    for update in updates.collect::<Vec<_>>() {
        assert_eq!(update.await.unwrap(), StatusCode::OK);
    }

    let rows: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT provider, self_hosted_model_id FROM feature_settings")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "self_hosted");
    assert!(ids.contains(&rows[0].1.unwrap()));
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'feature_setting_updated'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(audited, 50);
    let last_after: Value = sqlx::query_scalar(
        "SELECT after FROM audit_events WHERE action = 'feature_setting_updated' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        last_after["self_hosted_model_id"],
        json!(rows[0].1),
        "the last event describes the stored row"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn settings_are_validated_normalised_and_beta_acceptance_is_recorded(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    let bad = app
        .save_settings(&[
            ("ai_gateway_timeout_seconds", "30"),
            ("ai_gateway_url", "localhost:5052"),
            ("duo_agent_platform_service_url", "http://example.com:50052"),
        ])
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let errors = bad.json::<Value>().await.unwrap()["Validation"].clone();
    assert_eq!(errors["ai_gateway_timeout_seconds"], json!(app::configuration::TIMEOUT_RANGE));
    assert_eq!(errors["ai_gateway_url"], json!(app::configuration::GATEWAY_URL_INVALID));
    assert_eq!(errors["duo_agent_platform_service_url"], json!(app::configuration::AGENT_URL_INVALID));

    let good = app
        .save_settings(&[
            ("beta_enabled", "on"),
            ("ai_gateway_timeout_seconds", "120"),
            ("ai_gateway_url", "http://localhost:5052/"),
            ("duo_agent_platform_service_url", "example.com:50052"),
        ])
        .await;
    assert_eq!(good.status(), StatusCode::OK);
    let stored: (i32, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT ai_gateway_timeout_seconds, ai_gateway_url, duo_agent_platform_service_url FROM instance_settings",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, (120, Some("http://localhost:5052".into()), Some("example.com:50052".into())));
    let accepted: (String,) = sqlx::query_as("SELECT user_email FROM testing_terms_acceptances")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(accepted.0, "ada@example.com");
    let message: String =
        sqlx::query_scalar("SELECT message FROM audit_events WHERE action = 'testing_terms_accepted'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(message.starts_with("Self-hosted model testing terms accepted by user - ID: "), "{message}");
    assert!(message.ends_with("email: ada@example.com"));

    // Unchecked box, blank URL: beta off, gateway cleared.
    app.save_settings(&[
        ("ai_gateway_timeout_seconds", "120"),
        ("ai_gateway_url", " "),
        ("duo_agent_platform_service_url", ""),
    ])
    .await;
    let beta: bool = sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM testing_terms_acceptances)")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!beta);
    let url: Option<String> = sqlx::query_scalar("SELECT ai_gateway_url FROM instance_settings")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(url, None);
}

/// A local stand-in for the AI gateway's health endpoint: healthy, failing, or hanging.
pub(crate) async fn fake_gateway(behaviour: &'static str) -> String {
    use axum::routing::get;
    let router = axum::Router::new().route(
        "/monitoring/healthz",
        get(move || async move {
            match behaviour {
                "healthy" => (axum::http::StatusCode::OK, "ok"),
                "failing" => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down"),
                _ => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    (axum::http::StatusCode::OK, "late")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

#[sqlx::test(migrations = "../migrations")]
async fn the_health_check_reports_a_healthy_a_failing_and_a_hanging_gateway(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let check = |gateway: String| {
        let app = &app;
        async move {
            sqlx::query("UPDATE instance_settings SET ai_gateway_url = $1")
                .bind(gateway)
                .execute(&app.pool)
                .await
                .unwrap();
            let started = std::time::Instant::now();
            let response = app.client.post(app.url("/api/ai_gateway_health_check")).send().await.unwrap();
            let result: Value = response.json().await.unwrap();
            (
                result["healthy"].as_bool().unwrap(),
                result["message"].as_str().unwrap().to_owned(),
                started.elapsed(),
            )
        }
    };

    let (healthy, message, _) = check(fake_gateway("healthy").await).await;
    assert!(healthy, "{message}");
    assert!(message.starts_with("The AI Gateway is healthy"), "{message}");
    let (healthy, message, _) = check(fake_gateway("failing").await).await;
    assert!(!healthy);
    assert!(message.contains("500"), "{message}");
    let (healthy, message, took) = check(fake_gateway("hanging").await).await;
    assert!(!healthy);
    assert!(message.contains("did not answer within 5 seconds"), "{message}");
    assert!(took < Duration::from_secs(10), "bounded by the check's timeout, took {took:?}");
    // The check makes the console send a request: an auditor may not, nor may a link (GET).
    assert_eq!(app.get("/api/ai_gateway_health_check").await.status(), StatusCode::METHOD_NOT_ALLOWED);
    let auditor = spawn_signed_in(app.pool.clone(), Role::Auditor).await;
    let refused = auditor.client.post(auditor.url("/api/ai_gateway_health_check")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // A dead gateway delays no page.
    let page = app.get("/admin/gitlab_duo/configuration").await;
    assert_eq!(page.status(), StatusCode::OK);
}

#[test]
fn the_shipped_catalog_holds_every_feature_of_the_reference() {
    let catalog = Catalog::load().unwrap();
    // GitLab 18.9's 18, and GitLab 19's three beta security features.
    assert_eq!(catalog.features.len(), 21);
    assert_eq!(catalog.families.len(), 11);
    let agentic = catalog.feature("duo_agent_platform_agentic_chat").unwrap();
    assert_eq!(catalog.section(&agentic.section).unwrap().title, "GitLab Duo Agentic Chat");
    assert!(agentic.unit_primitives.is_empty(), "an empty list of unit primitives is valid");
    let flows = catalog.feature("duo_agent_platform").unwrap();
    assert_eq!(flows.title, "Agents & flows");
    assert!(flows.accepts("mistral") && flows.accepts("gemini"));
    let names: Vec<String> = catalog.selectable_families(true).into_iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "Claude",
            "GPT",
            "Mistral",
            "Mistral Codestral",
            "Mixtral",
            "Code Llama",
            "CodeGemma",
            "DeepSeek Coder",
            "Gemini",
            "General",
            "Llama 3"
        ],
        "by display name within GA, then within beta"
    );
    let review = catalog.feature("review_merge_request").unwrap();
    assert!(!review.accepts("codestral") && review.accepts("mixtral"));
}

#[test]
fn each_broken_catalog_stops_start_up_with_the_entry_and_the_fix() {
    let base = r#"
        [[families]]
        key = "mistral"
        name = "Mistral"
        release = "ga"
        [[sections]]
        key = "chat"
        title = "Chat"
        description = "d"
    "#;
    let feature = |extra: &str| {
        format!(
            "{base}\n[[features]]\nkey = \"f\"\ntitle = \"F\"\nrelease = \"ga\"\nunit_primitives = [\"u\"]\n{extra}"
        )
    };
    let error = |text: String| Catalog::parse(&text).unwrap_err();

    let unknown_family = error(feature("section = \"chat\"\nfamilies = [\"mistrel\"]"));
    assert!(
        unknown_family.starts_with("app/features.toml: the feature \"f\" names the family \"mistrel\""),
        "{unknown_family}"
    );
    assert!(unknown_family.contains("Add a [[families]] entry"));
    let no_section = error(feature("section = \"nowhere\"\nfamilies = [\"mistral\"]"));
    assert!(no_section.contains("names the section \"nowhere\", which is not listed"), "{no_section}");
    let empty = error(feature("section = \"chat\"\nfamilies = []"));
    assert!(empty.contains("accepts no model family"), "{empty}");
    let valid = feature("section = \"chat\"\nfamilies = [\"mistral\"]");
    assert!(Catalog::parse(&valid).is_ok());
    let duplicate =
        error(format!("{valid}\n[[families]]\nkey = \"mistral\"\nname = \"Again\"\nrelease = \"ga\""));
    assert!(duplicate.contains("the family \"mistral\" is listed twice"), "{duplicate}");
    let misspelt = error(feature("section = \"chat\"\nfamilies = [\"mistral\"]\nfalls_back = \"x\""));
    assert!(misspelt.contains("unknown field"), "{misspelt}");
}

impl TestApp {
    async fn undo(&self, feature: &str, applied: &AppliedToAll) -> reqwest::Response {
        let previous = serde_json::to_string(&applied.previous).unwrap();
        self.client
            .post(self.url("/api/undo_apply_ai_feature_setting_to_all"))
            .form(&[
                ("feature", feature),
                ("model_id", &applied.model_id.to_string()),
                ("previous", &previous),
            ])
            .send()
            .await
            .unwrap()
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn undoing_apply_to_all_restores_each_features_model_in_one_audited_request(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let claude = add_model(&app, "Claude", "claude_3").await;
    let mistral = add_model(&app, "Mistral", "mistral").await;
    app.choose("duo_chat", &claude.to_string()).await;
    app.choose("duo_chat_explain_code", &mistral.to_string()).await;
    app.choose("duo_chat_fix_code", "disabled").await;

    let applied: AppliedToAll = app.apply_to_all("duo_chat").await.json().await.unwrap();
    // Meanwhile someone else gives Refactor Code another model: that change stands.
    app.choose("duo_chat_refactor_code", &mistral.to_string()).await;
    let undone = app.undo("duo_chat", &applied).await;

    assert_eq!(undone.status(), StatusCode::OK);
    assert_eq!(
        undone.json::<String>().await.unwrap(),
        "Restored the previous models of the GitLab Duo Chat features, except 1 changed since"
    );
    assert_eq!(app.stored("duo_chat").await, Some(("self_hosted".into(), Some(claude))), "the row's own");
    assert_eq!(app.stored("duo_chat_explain_code").await, Some(("self_hosted".into(), Some(mistral))));
    assert_eq!(app.stored("duo_chat_fix_code").await, Some(("disabled".into(), None)));
    assert_eq!(
        app.stored("duo_chat_write_tests").await,
        Some(("unassigned".into(), None)),
        "back to General Chat's"
    );
    assert_eq!(app.stored("duo_chat_refactor_code").await, Some(("self_hosted".into(), Some(mistral))));
    let message: String = sqlx::query_scalar(
        "SELECT message FROM audit_events WHERE action = 'feature_settings_apply_to_all_undone'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        message,
        "Undid applying Claude to all GitLab Duo Chat features: 3 restored, 1 changed since and kept"
    );

    // Only the section's own features, each once, may be sent back.
    let forged = AppliedToAll {
        message: String::new(),
        model_id: claude,
        previous: vec![("code_generations".into(), "disabled".into())],
    };
    assert_eq!(app.undo("duo_chat", &forged).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.stored("code_generations").await, None);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_chat_sub_feature_goes_back_to_general_chats_model_and_others_cannot(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let claude = add_model(&app, "Claude", "claude_3").await;
    let mistral = add_model(&app, "Mistral", "mistral").await;
    app.choose("duo_chat", &claude.to_string()).await;
    app.choose("duo_chat_explain_code", &mistral.to_string()).await;
    let row = |page: &FeaturesPage, key: &str| {
        page.sections.iter().flat_map(|s| &s.features).find(|f| f.key == key).cloned().unwrap()
    };
    assert_eq!(
        row(&app.features().await, "duo_chat_explain_code").fallback_choice.as_deref(),
        Some("Use General Chat's model")
    );
    assert_eq!(row(&app.features().await, "duo_chat").fallback_choice, None);

    assert_eq!(app.choose("duo_chat_explain_code", "").await.status(), StatusCode::OK);

    assert_eq!(app.stored("duo_chat_explain_code").await, Some(("unassigned".into(), None)));
    let page = app.features().await;
    assert_eq!(row(&page, "duo_chat_explain_code").answered_by.as_deref(), Some("Claude"));
    let message: String = sqlx::query_scalar(
        "SELECT message FROM audit_events WHERE action = 'feature_setting_updated' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(message, "Feature duo_chat_explain_code changed to Unassigned (uses the General Chat model)");
    // A feature with nothing to fall back to must name a model.
    assert_eq!(app.choose("code_generations", "").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

fn assignment_of(page: &FeaturesPage, feature: &str) -> Assignment {
    let row = page.sections.iter().flat_map(|s| &s.features).find(|row| row.key == feature);
    row.expect("the feature is listed").assignment.clone()
}

#[sqlx::test(migrations = "../migrations")]
async fn each_replica_keeps_the_tab_until_a_change_made_anywhere_moves_its_generation(pool: PgPool) {
    // Two replicas on one database, each keeping its own copy of the tab's data.
    let first = spawn_signed_in(pool.clone(), Role::Admin).await;
    let second = TestApp::builder(pool.clone()).spawn().await;
    assert_eq!(location(&second.sign_in(username(Role::Admin), PASSWORD).await), "/admin");
    let claude = add_model(&first, "Claude", "claude_3").await;
    assert_eq!(assignment_of(&first.features().await, "duo_chat"), Assignment::Unassigned);
    assert_eq!(assignment_of(&second.features().await, "duo_chat"), Assignment::Unassigned);

    // A change through one replica shows on the other at its next request.
    assert_eq!(second.choose("duo_chat", &claude.to_string()).await.status(), StatusCode::OK);
    let chosen = Assignment::SelfHosted { id: claude, name: "Claude".into() };
    assert_eq!(assignment_of(&first.features().await, "duo_chat"), chosen);

    // So does one made outside the console, straight in the database (psql, a script).
    sqlx::query("UPDATE feature_settings SET provider = 'disabled', self_hosted_model_id = NULL")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(assignment_of(&first.features().await, "duo_chat"), Assignment::Disabled);
    assert_eq!(assignment_of(&second.features().await, "duo_chat"), Assignment::Disabled);
    // A model's test, and beta turned on, change what the tab shows too.
    first.choose("duo_chat", &claude.to_string()).await;
    assert_eq!(first.features().await.sections[1].features[0].status.text(), "Not tested");
    let failed =
        r#"{"ok": false, "at": "2026-12-01T10:00:00Z", "message": "refused", "figures": {"total_ms": 5}}"#;
    sqlx::query("UPDATE self_hosted_models SET last_test = $1::jsonb")
        .bind(failed)
        .execute(&pool)
        .await
        .unwrap();
    let status = || async { first.features().await.sections[1].features[0].status.text() };
    assert_eq!(status().await, "Failing since 2026-12-01 10:00 UTC");
    // An earlier failure in the history, since its last success, moves "since".
    sqlx::query(
        "INSERT INTO model_tests (model_id, ran_at, ran_by, kind, ok, message, total_ms)
         VALUES ($1, '2026-12-01T09:00:00Z', 'scheduled checks', 'scheduled', false, 'refused', 5)",
    )
    .bind(claude)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(status().await, "Failing since 2026-12-01 09:00 UTC");
    assert!(!second.features().await.beta_enabled);
    turn_beta_on(&first).await;
    assert!(second.features().await.beta_enabled);

    // The data are kept, not read again at each request: a change that leaves the generation as
    // it is (triggers off, which the console never does) is not seen until the generation moves.
    assert!(first.features().await.beta_enabled);
    let mut unseen = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *unseen).await.unwrap();
    sqlx::query("UPDATE self_hosted_models SET name = 'Renamed'").execute(&mut *unseen).await.unwrap();
    unseen.commit().await.unwrap();
    assert_eq!(assignment_of(&first.features().await, "duo_chat"), chosen);
    sqlx::query("UPDATE features_generation SET generation = generation + 1").execute(&pool).await.unwrap();
    let renamed = Assignment::SelfHosted { id: claude, name: "Renamed".into() };
    assert_eq!(assignment_of(&first.features().await, "duo_chat"), renamed);
    assert_eq!(assignment_of(&second.features().await, "duo_chat"), renamed);
}

/// A features tab as the browser gets it: its HTML and the nonce its policy names.
async fn features_tab(client: &reqwest::Client, url: String) -> (String, String) {
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let policy = response.headers()[reqwest::header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    let nonce = policy.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).unwrap().to_owned();
    (response.text().await.unwrap(), nonce)
}

#[sqlx::test(migrations = "../migrations")]
async fn a_drawn_features_tab_is_kept_per_user_with_a_fresh_nonce_until_a_change_anywhere(pool: PgPool) {
    let first = spawn_signed_in(pool.clone(), Role::Admin).await;
    let second = TestApp::builder(pool.clone()).spawn().await;
    assert_eq!(location(&second.sign_in(username(Role::Admin), PASSWORD).await), "/admin");
    let claude = add_model(&first, "Claude", "claude_3").await;
    let path = "/admin/gitlab_duo/self_hosted";
    let tab = || features_tab(&first.client, first.url(path));

    // Drawn once, then answered from what was kept: the same page, each time with its own nonce
    // in the policy and on the page's scripts, and no earlier answer's nonce anywhere.
    let (drawn, drawn_nonce) = tab().await;
    assert!(drawn.contains("Claude") && drawn.contains(&format!("nonce=\"{drawn_nonce}\"")));
    assert_eq!(
        (features_tabs_answered(&first, "drawn").await, features_tabs_answered(&first, "kept").await),
        (1, 0)
    );
    let (kept, kept_nonce) = tab().await;
    let (again, again_nonce) = tab().await;
    assert_eq!(
        (features_tabs_answered(&first, "drawn").await, features_tabs_answered(&first, "kept").await),
        (1, 2)
    );
    assert!(drawn_nonce != kept_nonce && kept_nonce != again_nonce && drawn_nonce != again_nonce);
    assert_eq!(kept, drawn.replace(&drawn_nonce, &kept_nonce));
    assert!(!kept.contains(&drawn_nonce) && !again.contains(&kept_nonce));
    assert!(again.contains(&format!("nonce=\"{again_nonce}\"")));

    // A change through the other replica is on the next page.
    assert_eq!(second.choose("duo_chat", &claude.to_string()).await.status(), StatusCode::OK);
    let (chosen, chosen_nonce) = tab().await;
    assert_ne!(chosen.replace(&chosen_nonce, ""), kept.replace(&kept_nonce, ""));
    assert_eq!(features_tabs_answered(&first, "drawn").await, 2);
    // So is one made straight in the database.
    sqlx::query("UPDATE self_hosted_models SET name = 'Renamed'").execute(&pool).await.unwrap();
    assert!(tab().await.0.contains("Renamed"));
    assert_eq!(features_tabs_answered(&first, "drawn").await, 3);

    // The page itself is kept: a change that leaves the generation as it is (triggers off,
    // which the console never does) is not drawn until the generation moves.
    let mut unseen = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *unseen).await.unwrap();
    sqlx::query("UPDATE self_hosted_models SET name = 'Unseen'").execute(&mut *unseen).await.unwrap();
    unseen.commit().await.unwrap();
    let kept_before = features_tabs_answered(&first, "kept").await;
    assert!(tab().await.0.contains("Renamed"));
    assert_eq!(features_tabs_answered(&first, "kept").await, kept_before + 1);
    sqlx::query("UPDATE features_generation SET generation = generation + 1").execute(&pool).await.unwrap();
    assert!(tab().await.0.contains("Unseen"));

    // Each user gets their own page: another admin on the same replica sees their own name.
    add_user(&pool, "second_admin", Role::Admin).await;
    let other = new_client();
    let signed_in = other
        .post(first.url("/users/sign_in"))
        .form(&[("login", "second_admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&signed_in), "/admin");
    let (theirs, _) = features_tab(&other, first.url(path)).await;
    let (mine, _) = tab().await;
    let shown = |page: &str| {
        let name = page.split("data-testid=\"current-user\"").nth(1).expect("the top bar names the user");
        name.split_once('>').expect("an element").1[..40].to_owned()
    };
    assert!(shown(&theirs).starts_with("second_admin"), "{}", shown(&theirs));
    assert!(shown(&mine).starts_with(username(Role::Admin)), "{}", shown(&mine));
    // An auditor, after the admins' pages are kept, gets a page of their own: their name and role,
    // and none of what only admins are offered.
    add_user(&pool, username(Role::Auditor), Role::Auditor).await;
    let auditor = new_client();
    let signed_in = auditor
        .post(first.url("/users/sign_in"))
        .form(&[("login", username(Role::Auditor)), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&signed_in), "/admin");
    let (audited, _) = features_tab(&auditor, first.url(path)).await;
    assert!(shown(&audited).starts_with(username(Role::Auditor)), "{}", shown(&audited));
    // (The dropdowns' islands are given it in their props, JSON in an attribute: its quotes are
    // escaped.)
    let offered = |page: &str, offered: bool| page.contains(&format!("&quot;can_add&quot;:{offered}"));
    assert!(offered(&mine, true) && offered(&audited, false));

    // A request with a query string is passed by, neither answered from nor kept: it is where
    // a refused form comes back, and distinct queries must not fill memory.
    let counts = || async {
        (features_tabs_answered(&first, "drawn").await, features_tabs_answered(&first, "kept").await)
    };
    let before = counts().await;
    let (queried, _) = features_tab(&first.client, first.url(&format!("{path}?tab=features"))).await;
    assert!(queried.contains("Unseen"));
    assert_eq!(counts().await, before);
    // Anyone signed out is sent to sign in, never to a kept page.
    let response = new_client().get(first.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

/// A pool on the same database that counts its visits: each connection handed out, new or idle,
/// is one trip to the database (a query outside a transaction, or a whole transaction).
fn counting_pool(pool: &PgPool) -> (PgPool, Arc<AtomicUsize>) {
    let visits = Arc::new(AtomicUsize::new(0));
    let (on_reuse, on_connect) = (visits.clone(), visits.clone());
    let counted = sqlx::postgres::PgPoolOptions::new()
        .before_acquire(move |_, _| {
            on_reuse.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(true) })
        })
        .after_connect(move |_, _| {
            on_connect.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        })
        .connect_lazy_with((*pool.connect_options()).clone());
    (counted, visits)
}

#[sqlx::test(migrations = "../migrations")]
async fn a_kept_features_tab_and_a_signed_in_no_op_each_visit_the_database_once(pool: PgPool) {
    let (counted, visits) = counting_pool(&pool);
    let app = TestApp::builder(counted).spawn_signed_in(Role::Admin).await;
    add_model(&app, "Claude", "claude_3").await;
    let path = "/admin/gitlab_duo/self_hosted/features";
    assert_eq!(app.get(path).await.status(), StatusCode::OK, "drawn and kept");

    // The sign-in guard reads the session, its user and the tab's generation in one query; the
    // kept page needs nothing else.
    let before = visits.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(app.get(path).await.status(), StatusCode::OK);
    }
    assert_eq!(visits.load(Ordering::SeqCst) - before, 5, "one visit per kept features tab");
    assert_eq!(features_tabs_answered(&app, "kept").await, 5);

    let before = visits.load(Ordering::SeqCst);
    assert_eq!(app.get("/api/current_user").await.status(), StatusCode::OK);
    assert_eq!(visits.load(Ordering::SeqCst) - before, 1, "one visit for the signed-in user alone");

    // Drawn afresh (a query string passes the kept page by), with its data kept by the replica:
    // the guard's query and the generation's. No flash waits, so the session is not read again.
    let before = visits.load(Ordering::SeqCst);
    assert_eq!(app.get(&format!("{path}?fresh")).await.status(), StatusCode::OK);
    assert_eq!(visits.load(Ordering::SeqCst) - before, 2, "the guard's and the generation's");
    // Its connections closed, so that the test's database can be dropped.
    app.pool.close().await;
}

/// A page with a form looks for a refused post's values (or a flash) in the session only when
/// the session held some as the sign-in guard read it: with nothing waiting, the guard's query
/// is the only read of the session; with a draft waiting, the session is loaded again and saved
/// without it.
#[sqlx::test(migrations = "../migrations")]
async fn a_forms_page_loads_the_session_again_only_when_a_refused_posts_values_wait_in_it(pool: PgPool) {
    let (counted, visits) = counting_pool(&pool);
    let app = TestApp::builder(counted).spawn_signed_in(Role::Admin).await;
    let visit = async |page: &str| {
        let before = visits.load(Ordering::SeqCst);
        let response = app.get(page).await;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        (visits.load(Ordering::SeqCst) - before, response.text().await.unwrap())
    };
    let new_model = "/admin/gitlab_duo/self_hosted/models/new";
    let (visited, _) = visit(new_model).await;
    assert_eq!(visited, 2, "the guard's query and the instance settings' (beta on?), no session load");

    let pages = [
        (
            "/admin/gitlab_duo/configuration",
            "/api/update_duo_configuration",
            vec![
                ("ai_gateway_timeout_seconds", "30"),
                ("ai_gateway_url", "ftp://gateway.example"),
                ("duo_agent_platform_service_url", ""),
            ],
        ),
        (new_model, "/api/save_self_hosted_model", vec![("platform", "api")]),
    ];
    for (page, server_fn, refused_form) in pages {
        // Once first: what the replica keeps (the features tab's data) is read at the first visit.
        visit(page).await;
        let (nothing_waits, _) = visit(page).await;

        let refused = app
            .client
            .post(app.url(server_fn))
            .header("accept", "text/html")
            .header("referer", app.url(page))
            .form(&refused_form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FOUND, "{page}");
        let (draft_waits, shown) = visit(page).await;
        assert!(shown.contains("invalid-feedback"), "{page} shows its errors");
        assert!(draft_waits >= nothing_waits + 2, "{page}: the session loaded and saved to take the draft");

        let (taken, _) = visit(page).await;
        assert_eq!(taken, nothing_waits, "{page}: the draft was taken, the session is not loaded again");
    }
    // Its connections closed, so that the test's database can be dropped.
    app.pool.close().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_made_auditor_while_signed_in_is_one_at_their_next_request_kept_tab_or_not(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let claude = add_model(&app, "Claude", "claude_3").await;
    let path = "/admin/gitlab_duo/self_hosted/features";
    let offered = |page: &str, offered: bool| page.contains(&format!("&quot;can_add&quot;:{offered}"));
    assert!(offered(&app.get(path).await.text().await.unwrap(), true));
    assert!(offered(&app.get(path).await.text().await.unwrap(), true), "kept");

    // The role is read with the session at every request, not kept with it or with the page.
    sqlx::query("UPDATE users SET role = 'auditor'").execute(&app.pool).await.unwrap();
    assert!(offered(&app.get(path).await.text().await.unwrap(), false));
    assert_eq!(app.choose("duo_chat", &claude.to_string()).await.status(), StatusCode::FORBIDDEN);
}

/// A plain form post of the features tab, as the browser sends one (the dropdown posts the row's
/// form too): it follows the answer and shows it.
async fn post_from_tab(app: &TestApp, action: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url(action))
        .header("accept", "text/html")
        .header("referer", app.url("/admin/gitlab_duo/self_hosted/features"))
        .form(fields)
        .send()
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_forms_outcome_shows_once_on_the_tab_never_from_or_into_the_kept_page(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let claude = add_model(&app, "Claude", "claude_3").await;
    let path = "/admin/gitlab_duo/self_hosted/features";
    let toasts = |page: &str| page.matches("data-testid=\"toast\"").count();
    // Kept: drawn once, then answered from what is kept.
    assert_eq!(toasts(&app.get(path).await.text().await.unwrap()), 0);
    app.get(path).await;
    assert_eq!(features_tabs_answered(&app, "kept").await, 1);

    // A refused choice changes nothing, so the kept page is still current: the refusal's page
    // is drawn for it all the same, shown once, and not kept.
    let refused = post_from_tab(
        &app,
        "/api/update_ai_feature_setting",
        &[("feature", "duo_chat"), ("choice", "999999")],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FOUND);
    // (Leptos adds the error to the address too: a page with a query is never kept either.)
    assert!(location(&refused).starts_with(&app.url(path)), "{}", location(&refused));
    let page = app.get(path).await.text().await.unwrap();
    assert_eq!(toasts(&page), 1, "the refusal is shown");
    assert!(page.contains("toast toast-danger"), "as a failure");
    let again = app.get(path).await.text().await.unwrap();
    assert_eq!(toasts(&again), 0, "once");
    assert_eq!(features_tabs_answered(&app, "kept").await, 2, "the page without it is the kept one");

    // An accepted one: its toast under its section, the focus back on its row, shown once.
    post_from_tab(
        &app,
        "/api/update_ai_feature_setting",
        &[("feature", "duo_chat"), ("choice", &claude.to_string())],
    )
    .await;
    let page = app.get(path).await.text().await.unwrap();
    assert!(page.contains("Successfully updated GitLab Duo Chat / General Chat"), "the toast");
    assert_eq!(
        page.matches("&quot;focus&quot;:true").count(),
        1,
        "the focus goes back to that row's dropdown"
    );
    let again = app.get(path).await.text().await.unwrap();
    assert!(!again.contains("Successfully updated"), "once");
    let kept = app.get(path).await.text().await.unwrap();
    assert!(!kept.contains("Successfully updated"), "and never kept");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refused_plain_form_goes_back_to_its_page_saying_why_never_to_json_or_another_site(pool: PgPool) {
    // An auditor's post: back to the page it came from, which says why.
    let auditor = spawn_signed_in(pool.clone(), Role::Auditor).await;
    let claude = add_model(&auditor, "Claude", "claude_3").await;
    let refused = post_from_tab(
        &auditor,
        "/api/update_ai_feature_setting",
        &[("feature", "duo_chat"), ("choice", &claude.to_string())],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&refused), "/admin/gitlab_duo/self_hosted/features");
    let page = auditor.get(&location(&refused)).await.text().await.unwrap();
    assert!(page.contains(app::error::FORBIDDEN_MESSAGE), "the page says why");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM feature_settings").fetch_one(&auditor.pool).await.unwrap();
    assert_eq!(stored, 0);

    // A post whose page names another site goes back to this console only; one whose path a
    // browser would read as another host (`/\\host` is `//host`) to the Admin area.
    let back_from = |referer: &'static str| {
        let client = auditor.client.clone();
        let url = auditor.url("/api/apply_ai_feature_setting_to_all");
        async move {
            let posted = client
                .post(url)
                .header("accept", "text/html")
                .header("referer", referer)
                .form(&[("feature", "duo_chat")])
                .send()
                .await
                .unwrap();
            location(&posted)
        }
    };
    assert_eq!(back_from("https://phish.example/admin/gitlab_duo?x=1").await, "/admin/gitlab_duo?x=1");
    assert_eq!(back_from("https://phish.example/\\phish.example/").await, "/admin");

    // Signed out meanwhile: to sign in, and back to the form's page after it.
    let signed_out = new_client()
        .post(auditor.url("/api/update_ai_feature_setting"))
        .header("accept", "text/html")
        .header("referer", auditor.url("/admin/gitlab_duo/self_hosted/features"))
        .form(&[("feature", "duo_chat"), ("choice", "disabled")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&signed_out),
        "/users/sign_in?redirect_to=%2Fadmin%2Fgitlab_duo%2Fself_hosted%2Ffeatures"
    );
    // Called as an API (no HTML asked for), the answer stays JSON.
    assert_eq!(auditor.choose("duo_chat", &claude.to_string()).await.status(), StatusCode::FORBIDDEN);
}
