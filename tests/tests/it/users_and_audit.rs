//! The first admin, user management and the audit trail.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;
use app::audit::AuditEventsPage;
use app::auth::Role;
use reqwest::StatusCode;
use sqlx::PgPool;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("duo-admin-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[sqlx::test(migrations = "../migrations")]
async fn the_first_admin_is_created_once_with_a_private_password_file(pool: PgPool) {
    let data_dir = temp_dir("first-admin");

    server::users::ensure_first_admin(&pool, "root@example.com", None, &data_dir).await.unwrap();
    let file = data_dir.join(server::users::INITIAL_PASSWORD_FILE);
    let written = std::fs::read_to_string(&file).unwrap();
    server::users::ensure_first_admin(&pool, "root@example.com", None, &data_dir).await.unwrap();

    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written, "the second start changes nothing");
    let admins: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin'").fetch_one(&pool).await.unwrap();
    assert_eq!(admins, 1);
    let password = written.lines().find_map(|line| line.strip_prefix("Password: ")).unwrap().to_owned();
    assert!(password.len() >= 20, "a strong generated password");
    let app = spawn_app(pool).await;
    assert_eq!(location(&app.sign_in("root", &password).await), "/admin");
    std::fs::remove_dir_all(data_dir).unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn the_first_admin_takes_admin_email_and_password_when_given(pool: PgPool) {
    let data_dir = temp_dir("given-admin");

    server::users::ensure_first_admin(&pool, "ops@example.com", Some("given password 1"), &data_dir)
        .await
        .unwrap();

    assert!(
        !data_dir.join(server::users::INITIAL_PASSWORD_FILE).exists(),
        "no file when the password was given"
    );
    let app = spawn_app(pool).await;
    assert_eq!(location(&app.sign_in("ops@example.com", "given password 1").await), "/admin");
}

#[sqlx::test(migrations = "../migrations")]
async fn two_starts_at_once_create_one_first_admin(pool: PgPool) {
    let data_dir = temp_dir("race");
    let starts = (0..4).map(|_| {
        let (pool, data_dir) = (pool.clone(), data_dir.clone());
        tokio::spawn(async move {
            server::users::ensure_first_admin(&pool, "root@example.com", None, &data_dir).await
        })
    });

    for start in starts.collect::<Vec<_>>() {
        start.await.unwrap().unwrap();
    }

    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
    assert_eq!(admins, 1);
    std::fs::remove_dir_all(data_dir).unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn adding_a_user_twice_names_the_clash(pool: PgPool) {
    add_user(&pool, "ada", Role::Admin).await;
    let actor = app::audit::ssr::Actor::system("test");

    let again = server::users::add(&pool, "ADA", "other@example.com", Role::Auditor, PASSWORD, &actor).await;
    let same_email =
        server::users::add(&pool, "bob", "Ada@example.com", Role::Auditor, PASSWORD, &actor).await;
    let short = server::users::add(&pool, "cy", "cy@example.com", Role::Auditor, "short", &actor).await;

    assert_eq!(again.unwrap_err().to_string(), "A user named \"ADA\" already exists.");
    assert_eq!(
        same_email.unwrap_err().to_string(),
        "A user with the e-mail \"Ada@example.com\" already exists."
    );
    assert_eq!(short.unwrap_err().to_string(), "The password is too short: use at least 8 characters.");
}

#[sqlx::test(migrations = "../migrations")]
async fn audit_events_are_listed_newest_first_and_paged(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    for n in 1..=25 {
        sqlx::query(
            "INSERT INTO audit_events (actor_name, action, target_type, message, created_at)
             VALUES ('ada', 'test', 'Thing', $1, now() - make_interval(mins => 100 - $2))",
        )
        .bind(format!("Event {n}"))
        .bind(n)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    app.sign_in("ada", PASSWORD).await;

    let first: AuditEventsPage = app.get("/api/audit_events?page=1").await.json().await.unwrap();
    let second: AuditEventsPage = app.get("/api/audit_events?page=2").await.json().await.unwrap();

    // The 25 events lie in the past; adding and signing in ada happened now: 27 in all.
    assert_eq!(first.events.len(), 20);
    assert!(first.has_next_page);
    assert_eq!(first.events[0].action, "user_signed_in");
    assert_eq!(first.events[1].action, "user_created");
    assert_eq!(first.events[2].message, "Event 25");
    assert_eq!(second.events.len(), 7);
    assert!(!second.has_next_page);
    assert_eq!(second.events.first().unwrap().message, "Event 7");
    assert_eq!(second.events.last().unwrap().message, "Event 1");
    let page = app.get("/admin/audit_events?page=2").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Event 7<") && !html.contains("Event 8<"), "page 2 holds the oldest events");
    assert!(html.contains(r#"href="/admin/audit_events?page=1""#), "a link back to page 1");
}

#[sqlx::test(migrations = "../migrations")]
async fn sign_ins_are_audited_with_the_clients_address(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;

    app.sign_in("ada", "wrong password").await;
    app.sign_in("ada", PASSWORD).await;

    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT action, actor_name, ip_address FROM audit_events ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows[1], ("user_sign_in_failed".into(), "ada".into(), Some("127.0.0.1".into())));
    assert_eq!(rows[2], ("user_signed_in".into(), "ada".into(), Some("127.0.0.1".into())));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_database_holds_the_rules_itself(pool: PgPool) {
    let model = |name: &str, platform: &str, endpoint: Option<&str>, identifier: &str| {
        sqlx::query(
            "INSERT INTO self_hosted_models (name, platform, model_family, endpoint, identifier)
             VALUES ($1, $2, 'mistral', $3, $4)",
        )
        .bind(name.to_owned())
        .bind(platform.to_owned())
        .bind(endpoint.map(str::to_owned))
        .bind(identifier.to_owned())
    };
    let violated = |result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>| match result {
        Err(sqlx::Error::Database(error)) => error.constraint().map(str::to_owned),
        other => panic!("expected a violated constraint, got {other:?}"),
    };

    model("m", "api", Some("http://vllm:8000/v1"), "custom_openai/m").execute(&pool).await.unwrap();
    let duplicate = model("m", "bedrock", None, "bedrock/x").execute(&pool).await;
    let no_endpoint = model("n", "api", None, "x").execute(&pool).await;
    let bad_bedrock = model("b", "bedrock", None, "us.anthropic.claude").execute(&pool).await;
    let long_name = model(&"x".repeat(256), "bedrock", None, "bedrock/x").execute(&pool).await;

    assert_eq!(violated(duplicate).as_deref(), Some("self_hosted_models_name_unique"));
    assert_eq!(violated(no_endpoint).as_deref(), Some("self_hosted_models_endpoint_for_api"));
    assert_eq!(violated(bad_bedrock).as_deref(), Some("self_hosted_models_bedrock_identifier"));
    assert_eq!(violated(long_name).as_deref(), Some("self_hosted_models_name_length"));

    let in_use = sqlx::query(
        "INSERT INTO feature_settings (feature, provider, self_hosted_model_id)
         SELECT 'duo_chat', 'self_hosted', id FROM self_hosted_models",
    )
    .execute(&pool)
    .await;
    assert!(in_use.is_ok());
    let delete = sqlx::query("DELETE FROM self_hosted_models").execute(&pool).await;
    assert_eq!(violated(delete).as_deref(), Some("feature_settings_model_in_use"));
    let no_model = sqlx::query(
        "INSERT INTO feature_settings (feature, provider) VALUES ('code_generations', 'self_hosted')",
    )
    .execute(&pool)
    .await;
    assert_eq!(violated(no_model).as_deref(), Some("feature_settings_model_when_self_hosted"));
    let second_row =
        sqlx::query("INSERT INTO instance_settings (singleton) VALUES (false)").execute(&pool).await;
    assert_eq!(violated(second_row).as_deref(), Some("instance_settings_single_row"));
}

#[test]
fn each_model_constraint_maps_to_the_forms_words_at_its_field() {
    use app::error::AppError;
    use app::models::store::constraint_violation;
    let at =
        |constraint: &str, field: &str| constraint_violation(constraint).and_then(|e| e.message_for(field));

    assert_eq!(
        at("self_hosted_models_name_unique", "name").as_deref(),
        Some("Please enter a unique deployment name.")
    );
    assert_eq!(
        at("self_hosted_models_endpoint_url", "endpoint").as_deref(),
        Some("Please add a valid endpoint.")
    );
    assert_eq!(
        at("self_hosted_models_bedrock_identifier", "identifier").as_deref(),
        Some("Model identifier must start with \"bedrock/\"")
    );
    assert!(matches!(constraint_violation("feature_settings_model_in_use"), Some(AppError::Conflict(_))));
    assert_eq!(constraint_violation("no_such_constraint"), None);
}
