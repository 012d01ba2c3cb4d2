//! Configuration as code: `duo-admin config export` and `config import [--dry-run]` (the
//! commands' own code, `server::config_as_code::run`) and `/api/v1/configuration`, on real
//! databases: the round trip from one instance into an empty one, the dry run's diff, one
//! transaction (a refused file changes nothing), an audit event per change, secrets only as
//! references, and two imports at once from two replicas.

use crate::common::*;
use app::auth::Role;
use app::catalog::Catalog;
use app::config_as_code::ssr::Given;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::config::ConfigCommand;
use sqlx::PgPool;

const MIXTRAL_KEY: &str = "sk-config-planted-5e1f2a";
const NEW_KEY: &str = "sk-config-replaced-77b0c3";

fn secrets(pairs: &[(&str, &str)]) -> Given {
    Given(pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect())
}

/// What the command prints, or the message it fails with.
async fn run(pool: &PgPool, command: ConfigCommand, secrets: &Given) -> Result<String, String> {
    let catalog = Catalog::load().expect("the catalog loads");
    server::config_as_code::run(pool, &catalog, &test_master_keys(), command, secrets)
        .await
        .map_err(|error| format!("{error:#}"))
}

async fn export(pool: &PgPool) -> String {
    run(pool, ConfigCommand::Export { output: None }, &secrets(&[])).await.expect("exported")
}

async fn import(pool: &PgPool, file: &str, dry_run: bool, secrets: &Given) -> Result<String, String> {
    let path = std::env::temp_dir().join(format!("duo-config-{}.json", uuid_like()));
    std::fs::write(&path, file).unwrap();
    let command = ConfigCommand::Import { file: path.clone(), dry_run, as_admin: "root".into() };
    let outcome = run(pool, command, secrets).await;
    std::fs::remove_file(path).ok();
    outcome
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Instance A, arranged through its JSON API as an admin would: three models (one with a key),
/// three assignments, changed settings and schedule.
async fn arranged(app: &TestApp) {
    let token = app.create_token("setup", "admin").await;
    let send = |method: Method, path: &'static str, body: Value| {
        let request = app.api(method, path, &token).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            assert!(status.is_success(), "{path}: {status} {}", response.text().await.unwrap());
            response.json::<Value>().await.unwrap()
        }
    };
    let mixtral = send(
        Method::POST,
        "/api/v1/models",
        json!({"name": "Mixtral 8x7B", "platform": "api", "model_family": "mixtral",
               "endpoint": "http://vllm.internal:8000/v1", "identifier": "custom_openai/Mixtral-8x7B",
               "api_key": MIXTRAL_KEY}),
    )
    .await;
    send(
        Method::POST,
        "/api/v1/models",
        json!({"name": "Claude EU", "platform": "bedrock", "model_family": "claude_3",
               "identifier": "bedrock/eu.anthropic.claude-3-5-sonnet-20240620-v1:0", "bedrock_region": "eu-west-3"}),
    )
    .await;
    send(
        Method::POST,
        "/api/v1/models",
        json!({"name": "Vertex Claude", "platform": "vertex_ai", "model_family": "claude_3",
               "identifier": "vertex_ai/claude-3-5-sonnet@20240620", "vertex_project": "duo-prod-1",
               "vertex_location": "us-east5"}),
    )
    .await;
    let claude: i64 = count(&app.pool, "SELECT id FROM self_hosted_models WHERE name = 'Claude EU'").await;
    let mixtral = mixtral["id"].as_i64().unwrap();
    send(Method::PUT, "/api/v1/features/code_generations", json!({"choice": mixtral})).await;
    send(Method::PUT, "/api/v1/features/duo_chat", json!({"choice": claude})).await;
    send(Method::PUT, "/api/v1/features/code_completions", json!({"choice": "disabled"})).await;
    send(
        Method::PUT,
        "/api/v1/settings",
        json!({"ai_gateway_timeout_seconds": 120, "ai_gateway_url": "https://gateway.internal:5052"}),
    )
    .await;
    // The schedule is the Configuration page's own server function.
    let response = app
        .client
        .post(app.url("/api/update_check_schedule"))
        .form(&[("interval_minutes", "15")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
}

#[sqlx::test(migrations = "../migrations")]
async fn an_export_imported_into_an_empty_instance_exports_the_same_file(pool: PgPool) {
    let app = spawn_signed_in(pool.clone(), Role::Admin).await;
    arranged(&app).await;
    let exported = export(&pool).await;
    assert!(!exported.contains(MIXTRAL_KEY), "the key itself never leaves: {exported}");
    let file: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(file["version"], 1);
    let mixtral = &file["models"].as_array().unwrap().iter().find(|m| m["name"] == "Mixtral 8x7B").unwrap();
    assert_eq!(mixtral["api_key"], json!({"env": "MIXTRAL_8X7B_API_KEY"}), "{exported}");
    let claude = &file["models"].as_array().unwrap().iter().find(|m| m["name"] == "Claude EU").unwrap();
    assert_eq!(claude["bedrock_region"], "eu-west-3");
    assert!(claude.get("api_key").is_none(), "a model without a key names none: {exported}");
    assert_eq!(file["features"]["code_generations"], json!({"model": "Mixtral 8x7B"}));
    assert_eq!(file["features"]["duo_chat"], json!({"model": "Claude EU"}));
    assert_eq!(file["features"]["code_completions"], "disabled");
    assert_eq!(file["features"]["duo_chat_explain_code"], "unassigned");
    assert!(
        file["features"].get("generate_commit_message").is_none(),
        "beta features are hidden while beta is off"
    );
    assert_eq!(file["settings"]["ai_gateway_timeout_seconds"], 120);
    assert_eq!(file["settings"]["check_interval_minutes"], 15);

    // B: a second, empty instance on its own database.
    let (mut server, empty) = scratch_database("config_round_trip_b").await;
    add_user(&empty, "root", Role::Admin).await;
    let with_key = secrets(&[("MIXTRAL_8X7B_API_KEY", MIXTRAL_KEY)]);

    let diff = import(&empty, &exported, true, &with_key).await.expect("the dry run passes");
    assert!(diff.contains("+ model Claude EU: bedrock, claude_3, bedrock/eu.anthropic.claude-3-5-sonnet-20240620-v1:0 at eu-west-3\n"), "{diff}");
    assert!(diff.contains("+ model Mixtral 8x7B: api, mixtral, custom_openai/Mixtral-8x7B at http://vllm.internal:8000/v1; API key set ("), "{diff}");
    assert!(
        diff.contains(
            "+ model Vertex Claude: vertex_ai, claude_3, vertex_ai/claude-3-5-sonnet@20240620 at us-east5\n"
        ),
        "{diff}"
    );
    assert!(diff.contains("+ feature code_generations: Unassigned → Mixtral 8x7B\n"), "{diff}");
    assert!(diff.contains("+ feature code_completions: Unassigned → Disabled\n"), "{diff}");
    assert!(diff.contains("~ setting ai_gateway_timeout_seconds: 60 → 120\n"), "{diff}");
    assert!(diff.contains("~ setting check_interval_minutes: 5 → 15\n"), "{diff}");
    assert!(diff.ends_with("Dry run: nothing was changed.\n"), "{diff}");
    assert!(!diff.contains(MIXTRAL_KEY));
    assert_eq!(
        count(&empty, "SELECT count(*) FROM self_hosted_models").await,
        0,
        "a dry run changes nothing"
    );
    assert_eq!(count(&empty, "SELECT count(*) FROM audit_events").await, 1, "only the user's creation");

    let applied = import(&empty, &exported, false, &with_key).await.expect("imported");
    assert_eq!(
        applied.replace("Applied in one transaction.", "Dry run: nothing was changed."),
        diff,
        "the dry run said what the import did"
    );
    assert_eq!(export(&empty).await, exported, "the round trip gives the same file");

    // The key arrived sealed for B's model, the same key.
    let fingerprints = "SELECT api_key_fingerprint FROM self_hosted_models WHERE name = 'Mixtral 8x7B'";
    let a: Option<String> = sqlx::query_scalar(fingerprints).fetch_one(&pool).await.unwrap();
    let b: Option<String> = sqlx::query_scalar(fingerprints).fetch_one(&empty).await.unwrap();
    assert!(a.is_some());
    assert_eq!(a, b);

    // One audit event per change, each the page's own, and one for the import.
    let actions: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, actor_name FROM audit_events WHERE action <> 'user_created' ORDER BY id",
    )
    .fetch_all(&empty)
    .await
    .unwrap();
    let named = |action: &str| actions.iter().filter(|(a, _)| a == action).count();
    assert_eq!(named("model_created"), 3, "{actions:?}");
    assert_eq!(named("feature_setting_updated"), 3, "{actions:?}");
    assert_eq!(named("duo_settings_updated"), 1, "{actions:?}");
    assert_eq!(named("check_schedule_updated"), 1, "{actions:?}");
    assert_eq!(named("configuration_imported"), 1, "{actions:?}");
    assert_eq!(actions.len(), 9, "{actions:?}");
    assert!(actions.iter().all(|(_, actor)| actor == "root"), "{actions:?}");

    // Again: nothing to do, nothing audited.
    let again = import(&empty, &exported, false, &secrets(&[])).await.expect("imported again");
    assert!(again.ends_with("Nothing to change.\n"), "{again}");
    assert!(again.lines().all(|line| !line.starts_with(['+', '~', '-'])), "{again}");
    assert!(again.contains("0 added, 0 changed, 0 removed, "), "{again}");
    assert_eq!(count(&empty, "SELECT count(*) FROM audit_events").await, 10);

    empty.close().await;
    drop_scratch_database(&mut server, "config_round_trip_b").await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_diff_names_changed_fields_replaced_keys_and_removed_models(pool: PgPool) {
    let app = spawn_signed_in(pool.clone(), Role::Admin).await;
    add_user(&pool, "root", Role::Admin).await;
    arranged(&app).await;
    let mut file: Value = serde_json::from_str(&export(&pool).await).unwrap();
    // Mixtral's identifier and key change; Claude EU leaves the file (and duo_chat with it).
    let models = file["models"].as_array_mut().unwrap();
    models.retain(|m| m["name"] != "Claude EU");
    models[0]["identifier"] = json!("custom_openai/Mixtral-8x22B");
    file["features"]["duo_chat"] = json!({"model": "Mixtral 8x7B"});
    let file = file.to_string();
    let given = secrets(&[("MIXTRAL_8X7B_API_KEY", NEW_KEY)]);

    let diff = import(&pool, &file, true, &given).await.expect("the dry run passes");
    assert!(
        diff.contains("~ model Mixtral 8x7B: identifier: custom_openai/Mixtral-8x7B → custom_openai/Mixtral-8x22B; API key replaced ("),
        "{diff}"
    );
    assert!(diff.contains(", from MIXTRAL_8X7B_API_KEY)"), "{diff}");
    assert!(diff.contains("~ feature duo_chat: Claude EU → Mixtral 8x7B\n"), "{diff}");
    assert!(diff.contains("- model Claude EU\n"), "{diff}");
    assert!(diff.contains("0 added, 2 changed, 1 removed,"), "{diff}");
    assert!(!diff.contains(NEW_KEY));
    assert_eq!(count(&pool, "SELECT count(*) FROM self_hosted_models").await, 3, "a dry run changes nothing");

    import(&pool, &file, false, &given).await.expect("imported");
    assert_eq!(count(&pool, "SELECT count(*) FROM self_hosted_models").await, 2);
    let identifier: String =
        sqlx::query_scalar("SELECT identifier FROM self_hosted_models WHERE name = 'Mixtral 8x7B'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(identifier, "custom_openai/Mixtral-8x22B");
    let sealed = app.sealed_key("Mixtral 8x7B").await.expect("a key");
    assert_eq!(app.open_key("Mixtral 8x7B", &sealed).await, NEW_KEY);

    // A reference that is not given keeps the stored key, unless the endpoint moves.
    let mut moved: Value = serde_json::from_str(&file).unwrap();
    moved["models"][0]["endpoint"] = json!("http://elsewhere.example:8000/v1");
    let refused = import(&pool, &moved.to_string(), false, &secrets(&[])).await.unwrap_err();
    assert!(refused.contains("models[0].api_key: "), "{refused}");
    let sealed = app.sealed_key("Mixtral 8x7B").await.expect("still the key");
    assert_eq!(app.open_key("Mixtral 8x7B", &sealed).await, NEW_KEY, "refused: nothing changed");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refused_file_changes_nothing_and_names_each_problem_at_its_place(pool: PgPool) {
    let app = spawn_signed_in(pool.clone(), Role::Admin).await;
    add_user(&pool, "root", Role::Admin).await;
    arranged(&app).await;
    let exported = export(&pool).await;
    let events = count(&pool, "SELECT count(*) FROM audit_events").await;

    // Problems found before anything is written: all of them at once.
    let mut file: Value = serde_json::from_str(&exported).unwrap();
    file["models"][1]["name"] = file["models"][0]["name"].clone();
    file["features"]["not_a_feature"] = json!("disabled");
    file["features"]["duo_chat"] = json!({"model": "Nobody"});
    let refused = import(&pool, &file.to_string(), false, &secrets(&[])).await.unwrap_err();
    assert!(refused.starts_with("The configuration was not imported; nothing changed."), "{refused}");
    assert!(refused.contains("models[1].name: Claude EU is listed twice."), "{refused}");
    assert!(refused.contains("features.not_a_feature: No AI-native feature has this key."), "{refused}");
    assert!(refused.contains("features.duo_chat: No model named Nobody is in the file"), "{refused}");

    // A model's own rules, with the form's messages.
    let mut file: Value = serde_json::from_str(&exported).unwrap();
    file["models"][1]["endpoint"] = json!("ftp://vllm.internal");
    let refused = import(&pool, &file.to_string(), false, &secrets(&[])).await.unwrap_err();
    assert!(refused.contains("models[1].endpoint: Please add a valid endpoint."), "{refused}");

    // A problem found only while writing, after earlier changes were made: they are undone.
    let mut file: Value = serde_json::from_str(&exported).unwrap();
    file["settings"]["ai_gateway_timeout_seconds"] = json!(300);
    file["models"][1]["identifier"] = json!("custom_openai/Mixtral-next");
    file["features"]["code_generations"] = json!({"model": "Claude EU"});
    file["features"]["duo_chat"] = json!({"model": "Claude EU"});
    let mut claude = file["models"][0].clone();
    claude["name"] = json!("Gemini by mistake");
    claude["model_family"] = json!("gemini");
    file["models"].as_array_mut().unwrap().push(claude);
    file["features"]["duo_chat_explain_code"] = json!({"model": "Gemini by mistake"});
    let refused = import(&pool, &file.to_string(), false, &secrets(&[])).await.unwrap_err();
    assert!(refused.contains("models[3].model_family: "), "a beta family while beta is off: {refused}");
    assert_eq!(export(&pool).await, exported, "nothing of the refused file was kept");
    assert_eq!(count(&pool, "SELECT count(*) FROM audit_events").await, events, "nor audited");

    // A file that does not parse, or of another version.
    let typo = exported.replacen("\"identifier\"", "\"identifer\"", 1);
    let refused = import(&pool, &typo, false, &secrets(&[])).await.unwrap_err();
    assert!(refused.contains("unknown field `identifer`"), "{refused}");
    let later = exported.replacen("\"version\": 1", "\"version\": 2", 1);
    let refused = import(&pool, &later, false, &secrets(&[])).await.unwrap_err();
    assert!(refused.contains("version: Only version 1 configuration files can be imported."), "{refused}");
    // Only an admin imports.
    add_user(&pool, "reader", Role::Auditor).await;
    let path = std::env::temp_dir().join(format!("duo-config-{}.json", uuid_like()));
    std::fs::write(&path, &exported).unwrap();
    let command = ConfigCommand::Import { file: path.clone(), dry_run: true, as_admin: "reader".into() };
    let refused = run(&pool, command, &secrets(&[])).await.unwrap_err();
    std::fs::remove_file(path).ok();
    assert!(refused.contains("reader is not an admin"), "{refused}");
}

#[sqlx::test(migrations = "../migrations")]
async fn two_replicas_importing_at_once_apply_the_file_once(pool: PgPool) {
    let app = spawn_signed_in(pool.clone(), Role::Admin).await;
    add_user(&pool, "root", Role::Admin).await;
    arranged(&app).await;
    let exported = export(&pool).await;
    let (mut server, target) = scratch_database("config_two_replicas").await;
    add_user(&target, "root", Role::Admin).await;
    // A second pool: the second replica's own connections to the same database.
    let other = PgPool::connect_with((*target.connect_options()).clone()).await.unwrap();
    let given = secrets(&[("MIXTRAL_8X7B_API_KEY", MIXTRAL_KEY)]);
    let (first, second) =
        tokio::join!(import(&target, &exported, false, &given), import(&other, &exported, false, &given));
    let (first, second) = (first.expect("the first imports"), second.expect("the second imports"));
    let outcomes = [first, second];
    assert_eq!(
        outcomes.iter().filter(|o| o.contains("Applied in one transaction.")).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| o.contains("Nothing to change.")).count(), 1, "{outcomes:?}");
    assert_eq!(export(&target).await, exported);
    assert_eq!(
        count(&target, "SELECT count(*) FROM audit_events WHERE action = 'configuration_imported'").await,
        1
    );
    other.close().await;
    target.close().await;
    drop_scratch_database(&mut server, "config_two_replicas").await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_api_imports_with_secrets_from_the_request_never_from_the_servers_environment(pool: PgPool) {
    let app = spawn_signed_in(pool.clone(), Role::Admin).await;
    arranged(&app).await;
    let admin = app.create_token("config", "admin").await;
    let reader = app.create_token("reader", "read").await;

    let response = app.api(Method::GET, "/api/v1/configuration", &reader).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(!text.contains(MIXTRAL_KEY), "{text}");
    let mut document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&export(&pool).await).unwrap(), document, "the command's file");

    let import = |token: &str, body: Value| {
        app.api(Method::POST, "/api/v1/configuration/import", token).json(&body).send()
    };
    let response = import(&reader, json!({"document": document, "dry_run": true})).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "a read token imports nothing");

    // A new model whose key names a variable the server has: refused, never read.
    assert!(std::env::var("PATH").is_ok_and(|path| !path.is_empty()), "the server's process has PATH");
    document["models"].as_array_mut().unwrap().push(json!({
        "name": "Exfiltrator", "platform": "api", "model_family": "mixtral",
        "endpoint": "http://attacker.example/v1", "identifier": "custom_openai/x", "api_key": {"env": "PATH"}}));
    let response = import(&admin, json!({"document": document, "dry_run": true})).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["errors"]["models[3].api_key"], "Send this model's API key as secrets.PATH.",
        "{problem}"
    );

    // With the key in the request: the dry run's plan, then the import's.
    let body = json!({"document": document, "secrets": {"PATH": "sk-exfil-given-1"}, "dry_run": true});
    let response = import(&admin, body.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let plan: Value = response.json().await.unwrap();
    assert_eq!(plan["applied"], false);
    assert_eq!(plan["changes"][0]["kind"], "added", "{plan}");
    assert_eq!(plan["changes"][0]["name"], "Exfiltrator", "{plan}");
    assert_eq!(count(&pool, "SELECT count(*) FROM self_hosted_models").await, 3);
    let mut apply = body;
    apply["dry_run"] = json!(false);
    let plan: Value = import(&admin, apply).await.unwrap().json().await.unwrap();
    assert_eq!(plan["applied"], true, "{plan}");
    let sealed = app.sealed_key("Exfiltrator").await.expect("a key");
    assert_eq!(
        app.open_key("Exfiltrator", &sealed).await,
        "sk-exfil-given-1",
        "the given key, not the server's PATH"
    );
    let audited: Vec<Value> =
        sqlx::query_scalar("SELECT after FROM audit_events WHERE action = 'configuration_imported'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(audited.len(), 1);
    assert!(!audited[0].to_string().contains("sk-exfil-given-1"), "{}", audited[0]);
    let all: Vec<String> = sqlx::query_scalar("SELECT coalesce(message, '') || coalesce(\"before\"::text, '') || coalesce(\"after\"::text, '') FROM audit_events")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(all.iter().all(|event| !event.contains("sk-exfil-given-1") && !event.contains(MIXTRAL_KEY)));
}
