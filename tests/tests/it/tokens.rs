//! Personal access tokens: created by a user for themselves (page and command line), shown
//! once, stored as a SHA-256 only, capped by the user's role, expiring within a year, revoked
//! at once on every replica, their use recorded at most once a minute, every change audited.

use crate::common::*;
use app::auth::Role;
use app::tokens::domain::{EXPIRY_PAST, TokenScope, expiry_too_late, scope_above_role};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

async fn settings_status(app: &TestApp, token: &str) -> StatusCode {
    app.api(Method::GET, "/api/v1/settings", token).send().await.unwrap().status()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_new_token_is_shown_once_and_only_its_hash_is_stored(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    let token = app.create_token("CI", "admin").await;

    assert!(token.starts_with("duopat-") && token.len() >= 40, "{token}");
    let (digest, name, scope): (Vec<u8>, String, String) =
        sqlx::query_as("SELECT token_sha256, name, scope FROM personal_access_tokens")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(digest, Sha256::digest(token.as_bytes()).to_vec());
    assert_eq!((name.as_str(), scope.as_str()), ("CI", "admin"));
    // Nowhere else: not in the list, not on the page, not in any table's text.
    let listed = app.get("/api/personal_access_tokens").await.text().await.unwrap();
    assert!(listed.contains("\"CI\"") && !listed.contains(&token), "{listed}");
    let page = app.get(app::tokens::domain::PAGE_PATH).await.text().await.unwrap();
    assert!(page.contains("Personal access tokens") && page.contains("CI") && !page.contains(&token));
    let dump: String = sqlx::query_scalar(
        "SELECT string_agg(t::text, ' ') FROM (SELECT row_to_json(a)::text AS t FROM audit_events a
         UNION ALL SELECT row_to_json(p)::text FROM personal_access_tokens p) rows(t)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(!dump.contains(&token[7..]), "the token is stored nowhere");
    assert_eq!(settings_status(&app, &token).await, StatusCode::OK, "and it works");
}

#[sqlx::test(migrations = "../migrations")]
async fn creating_and_revoking_a_token_are_audited_without_the_token(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let token = app.create_token("Deploy bot", "read").await;
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM personal_access_tokens").fetch_one(&app.pool).await.unwrap();

    let revoked = app
        .client
        .post(app.url("/api/revoke_personal_access_token"))
        .form(&[("id", id)])
        .send()
        .await
        .unwrap();

    assert_eq!(revoked.status(), StatusCode::OK);
    let events: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT action, actor_name, message FROM audit_events WHERE target_type = 'PersonalAccessToken' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, "personal_access_token_created");
    assert!(
        events[0].2.starts_with("Created personal access token Deploy bot of ada with scope read"),
        "{events:?}"
    );
    assert_eq!((events[1].0.as_str(), events[1].1.as_str()), ("personal_access_token_revoked", "ada"));
    assert!(events.iter().all(|(_, _, message)| !message.contains(&token)));
    assert_eq!(settings_status(&app, &token).await, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_auditor_mints_read_tokens_but_never_admin_or_gateway_ones(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Auditor).await;

    for scope in [TokenScope::Admin, TokenScope::Gateway] {
        let refused = app.create_token_as_posted("mine", scope.key(), "").await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let error: app::error::AppError = refused.json().await.unwrap();
        assert_eq!(error.message_for("scope"), Some(scope_above_role(scope)));
    }
    let token = app.create_token("mine", "read").await;

    assert_eq!(settings_status(&app, &token).await, StatusCode::OK);
    let scopes: Vec<String> =
        sqlx::query_scalar("SELECT scope FROM personal_access_tokens").fetch_all(&app.pool).await.unwrap();
    assert_eq!(scopes, ["read"]);
    // The page offers the auditor the read scope alone.
    let page = app.get(app::tokens::domain::PAGE_PATH).await.text().await.unwrap();
    assert!(page.contains("value=\"read\"") && !page.contains("value=\"admin\""));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_expiry_defaults_to_thirty_days_and_is_at_most_a_year(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let today = chrono::Utc::now().date_naive();

    app.create_token("default", "read").await;
    let too_late = today + chrono::Days::new(366);
    let refused = app.create_token_as_posted("late", "read", &too_late.to_string()).await;
    let past = app.create_token_as_posted("past", "read", &today.to_string()).await;

    let expires: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT expires_at FROM personal_access_tokens")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(expires.date_naive(), today + chrono::Days::new(30));
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: app::error::AppError = refused.json().await.unwrap();
    assert_eq!(error.message_for("expires_at"), Some(expiry_too_late(today + chrono::Days::new(365))));
    let error: app::error::AppError = past.json().await.unwrap();
    assert_eq!(error.message_for("expires_at"), Some(EXPIRY_PAST.to_owned()));
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM personal_access_tokens").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 1, "nothing half-saved");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_revoked_token_is_refused_at_once_by_every_replica(pool: PgPool) {
    let first = spawn_signed_in(pool.clone(), Role::Admin).await;
    let second = spawn_app(pool).await;
    let token = first.create_token("gateway poller", "read").await;
    assert_eq!(settings_status(&second, &token).await, StatusCode::OK);
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM personal_access_tokens").fetch_one(&first.pool).await.unwrap();

    first
        .client
        .post(first.url("/api/revoke_personal_access_token"))
        .form(&[("id", id)])
        .send()
        .await
        .unwrap();

    let refused = second.api(Method::GET, "/api/v1/settings", &token).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    assert_eq!(settings_status(&first, &token).await, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_expired_token_is_refused(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let token = app.create_token("short", "read").await;

    sqlx::query(
        "UPDATE personal_access_tokens SET created_at = now() - interval '2 days', expires_at = now() - interval '1 second'",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    assert_eq!(settings_status(&app, &token).await, StatusCode::UNAUTHORIZED);
    let listed = app.get("/api/personal_access_tokens").await.text().await.unwrap();
    assert!(!listed.contains("short"), "an expired token leaves the active list: {listed}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_busy_token_records_its_last_use_once_a_minute(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let token = app.create_token("busy", "read").await;
    let last_used = || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT last_used_at FROM personal_access_tokens",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    assert_eq!(last_used().await, None);

    assert_eq!(settings_status(&app, &token).await, StatusCode::OK);
    let first = last_used().await.expect("recorded at the first use");
    // The row's version (xmin) moves only when it is written.
    let version = || async {
        sqlx::query_scalar::<_, String>("SELECT xmin::text FROM personal_access_tokens")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let before = version().await;
    for _ in 0..20 {
        assert_eq!(settings_status(&app, &token).await, StatusCode::OK);
    }
    assert_eq!(last_used().await, Some(first));
    assert_eq!(version().await, before, "twenty uses within the minute wrote nothing");

    sqlx::query("UPDATE personal_access_tokens SET last_used_at = now() - interval '61 seconds'")
        .execute(&app.pool)
        .await
        .unwrap();
    settings_status(&app, &token).await;
    let later = last_used().await.unwrap();
    assert!(chrono::Utc::now() - later < chrono::TimeDelta::seconds(5), "a minute later it is written again");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_read_token_and_a_demoted_admins_token_change_nothing(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let read = app.create_token("reader", "read").await;
    let admin = app.create_token("writer", "admin").await;
    let change = serde_json::json!({ "ai_gateway_timeout_seconds": 120 });

    let by_reader = app.api(Method::PUT, "/api/v1/settings", &read).json(&change).send().await.unwrap();
    sqlx::query("UPDATE users SET role = 'auditor' WHERE username = 'ada'").execute(&app.pool).await.unwrap();
    let by_demoted = app.api(Method::PUT, "/api/v1/settings", &admin).json(&change).send().await.unwrap();

    assert_eq!(by_reader.status(), StatusCode::FORBIDDEN);
    assert_eq!(by_demoted.status(), StatusCode::FORBIDDEN, "the role is read at each request");
    let timeout: i32 = sqlx::query_scalar("SELECT ai_gateway_timeout_seconds FROM instance_settings")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(timeout, 60, "nothing changed");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_token_opens_the_json_api_and_nothing_else(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let token = app.create_token("api only", "admin").await;

    // Not the pages, not the server functions: a token cannot mint tokens or drive the forms.
    for (method, path) in [
        (Method::GET, "/admin"),
        (Method::GET, "/api/personal_access_tokens"),
        (Method::POST, "/api/create_personal_access_token"),
        (Method::POST, "/api/update_duo_configuration"),
    ] {
        let response = app.api(method.clone(), path, &token).send().await.unwrap();
        // Refused, or (a page) sent to the sign-in form.
        let final_url = response.url().path().to_owned();
        assert!(
            response.status() == StatusCode::UNAUTHORIZED || final_url == "/users/sign_in",
            "{method} {path} answered {} at {final_url}",
            response.status()
        );
    }
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM personal_access_tokens").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 1);
    // A made-up token, a malformed header, another scheme: refused, never passed to the session.
    for header in ["Bearer duopat-made-up", "Bearer", "Basic YWRhOnB3", "duopat-x"] {
        let response =
            app.client.get(app.url("/api/v1/settings")).header("authorization", header).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_user_holds_at_most_a_hundred_active_tokens(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    sqlx::query(
        "INSERT INTO personal_access_tokens (user_id, name, scope, token_sha256, expires_at)
         SELECT u.id, 'old ' || n, 'read', sha256(n::text::bytea), now() + interval '1 day'
         FROM users u, generate_series(1, 100) n WHERE u.username = 'ada'",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let refused = app.create_token_as_posted("one more", "read", "").await;

    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: app::error::AppError = refused.json().await.unwrap();
    assert_eq!(error.message_for("name").as_deref(), Some(app::tokens::domain::TOO_MANY));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_command_line_creates_lists_and_revokes_any_users_tokens(pool: PgPool) {
    use server::config::TokensCommand;
    let app = spawn_app(pool.clone()).await;
    add_user(&pool, "audrey", Role::Auditor).await;
    let actor = app::audit::ssr::Actor::system("Command line");
    let create = |scope: &str| TokensCommand::Create {
        login: "Audrey@example.com".into(),
        name: "report".into(),
        scope: scope.into(),
        expires_at: String::new(),
    };

    let refused = server::users::manage_tokens(&pool, create("admin"), &actor).await.unwrap_err();
    let printed = server::users::manage_tokens(&pool, create("read"), &actor).await.unwrap();

    assert_eq!(refused.to_string(), format!("--scope: {}", scope_above_role(TokenScope::Admin)));
    let token = printed.lines().find_map(|line| line.split("is kept): ").nth(1)).unwrap().to_owned();
    assert_eq!(settings_status(&app, &token).await, StatusCode::OK);
    let id: i64 = sqlx::query_scalar("SELECT id FROM personal_access_tokens").fetch_one(&pool).await.unwrap();
    let listed = server::users::manage_tokens(&pool, TokensCommand::List { login: "audrey".into() }, &actor)
        .await
        .unwrap();
    assert!(
        listed.contains("report\tread") && listed.contains("\tactive") && !listed.contains(&token),
        "{listed}"
    );

    server::users::manage_tokens(&pool, TokensCommand::Revoke { login: "audrey".into(), id }, &actor)
        .await
        .unwrap();

    assert_eq!(settings_status(&app, &token).await, StatusCode::UNAUTHORIZED);
    let listed = server::users::manage_tokens(&pool, TokensCommand::List { login: "audrey".into() }, &actor)
        .await
        .unwrap();
    assert!(listed.contains("\trevoked"), "{listed}");
    let again =
        server::users::manage_tokens(&pool, TokensCommand::Revoke { login: "audrey".into(), id }, &actor)
            .await;
    assert!(again.is_err(), "a revoked token cannot be revoked twice");
    let actors: Vec<String> = sqlx::query_scalar(
        "SELECT actor_name FROM audit_events WHERE target_type = 'PersonalAccessToken' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(actors, ["Command line", "Command line"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn without_javascript_no_token_is_created_to_be_lost(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    // A plain form post would be answered with a redirect back to the page: the token, shown
    // only in the answer, would never be seen.
    let posted = app
        .client
        .post(app.url("/api/create_personal_access_token"))
        .header("accept", "text/html")
        .header("referer", app.url(app::tokens::domain::PAGE_PATH))
        .form(&[("name", "no script"), ("scope", "read"), ("expires_at", "")])
        .send()
        .await
        .unwrap();

    assert!(posted.status().is_redirection(), "{}", posted.status());
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM personal_access_tokens").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0);
    let page = app.get(app::tokens::domain::PAGE_PATH).await.text().await.unwrap();
    assert!(page.contains(app::tokens::api::NEEDS_SCRIPT), "the page says so");
}
