//! Scheduled checks: a round asks every model a feature uses for GitLab's probe and records
//! the outcome in its history; among replicas, one runs each round; history is pruned.

use std::sync::Arc;

use sqlx::PgPool;

use crate::common::fake_bedrock::FakeBedrock;
use crate::common::*;
use app::auth::Role;
use app::checks::{Checks, Round, SCHEDULED_BY};

fn checks(pool: &PgPool, bedrock_url: &str) -> Checks {
    Checks {
        pool: pool.clone(),
        clients: Arc::new(model_clients(bedrock_client(bedrock_url, true))),
        master_keys: Arc::new(test_master_keys()),
        history_days: 30,
    }
}

/// Two models a feature uses (one answers, one's server is down) and one nobody uses.
async fn models_in_use(pool: &PgPool) -> (i64, i64, i64) {
    let id = |name: &'static str| async move {
        sqlx::query_scalar::<_, i64>("SELECT id FROM self_hosted_models WHERE name = $1")
            .bind(name)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    sqlx::query(
        "INSERT INTO self_hosted_models (name, platform, model_family, endpoint, identifier) VALUES
           ('Claude', 'bedrock', 'claude_3', NULL, 'bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0'),
           ('Down', 'api', 'mistral', 'http://127.0.0.1:9/v1', 'custom_openai/m'),
           ('Unused', 'api', 'mistral', 'http://127.0.0.1:9/v1', 'custom_openai/m')",
    )
    .execute(pool)
    .await
    .unwrap();
    let (claude, down, unused) = (id("Claude").await, id("Down").await, id("Unused").await);
    sqlx::query(
        "INSERT INTO feature_settings (feature, provider, self_hosted_model_id) VALUES
           ('duo_chat', 'self_hosted', $1), ('code_generations', 'self_hosted', $2), ('code_completions', 'self_hosted', $2)",
    )
    .bind(claude)
    .bind(down)
    .execute(pool)
    .await
    .unwrap();
    (claude, down, unused)
}

async fn history(pool: &PgPool, model: i64) -> Vec<(String, String, bool, String)> {
    sqlx::query_as("SELECT ran_by, kind, ok, message FROM model_tests WHERE model_id = $1 ORDER BY id")
        .bind(model)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_round_tests_each_model_in_use_and_records_it_in_the_history(pool: PgPool) {
    let bedrock = FakeBedrock::start().await;
    let (claude, down, unused) = models_in_use(&pool).await;

    let round = checks(&pool, &bedrock.url).run_if_due("replica-1").await.unwrap();

    assert_eq!(
        round,
        Some(Round { tested: 2, answered: 1, pruned: 0 }),
        "each model once, however many features"
    );
    let answered = history(&pool, claude).await;
    assert_eq!(answered.len(), 1);
    assert_eq!(
        (answered[0].0.as_str(), answered[0].1.as_str(), answered[0].2),
        (SCHEDULED_BY, "scheduled", true)
    );
    let failed = history(&pool, down).await;
    assert!(!failed[0].2 && failed[0].3.contains("Could not connect to http://127.0.0.1:9/v1"), "{failed:?}");
    assert!(history(&pool, unused).await.is_empty(), "a model no feature uses is not probed");
    let last_test: serde_json::Value =
        sqlx::query_scalar("SELECT last_test FROM self_hosted_models WHERE id = $1")
            .bind(down)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(last_test["ok"], serde_json::json!(false), "the list's last test follows");
    let sent = bedrock.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["messages"][0]["content"][0]["text"],
        serde_json::json!("Just say hello."),
        "GitLab's probe"
    );
    assert_eq!(sent["inferenceConfig"]["maxTokens"], serde_json::json!(16));
}

#[sqlx::test(migrations = "../migrations")]
async fn among_two_replicas_one_runs_each_round(pool: PgPool) {
    let bedrock = FakeBedrock::start().await;
    let (claude, _, _) = models_in_use(&pool).await;
    let other_pool =
        sqlx::postgres::PgPoolOptions::new().connect_with((*pool.connect_options()).clone()).await.unwrap();
    let (one, two) = (checks(&pool, &bedrock.url), checks(&other_pool, &bedrock.url));

    let (first, second) = tokio::join!(one.run_if_due("one"), two.run_if_due("two"));

    let ran: Vec<_> = [first.unwrap(), second.unwrap()].into_iter().flatten().collect();
    assert_eq!(ran.len(), 1, "exactly one replica ran the round");
    assert_eq!(history(&pool, claude).await.len(), 1);
    assert_eq!(one.run_if_due("one").await.unwrap(), None, "the next round is not due yet");
    // A replica that died mid-round left nothing locked: the next round runs when due.
    sqlx::query("UPDATE check_schedule SET next_due = now()").execute(&pool).await.unwrap();
    assert!(two.run_if_due("two").await.unwrap().is_some());
    assert_eq!(history(&pool, claude).await.len(), 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_round_forgets_tests_older_than_the_history_period(pool: PgPool) {
    let (claude, _, _) = models_in_use(&pool).await;
    sqlx::query(
        "INSERT INTO model_tests (model_id, ran_at, ran_by, kind, ok, message, total_ms) VALUES
           ($1, now() - interval '31 days', 'ada', 'chat', true, 'Answered', 10),
           ($1, now() - interval '29 days', 'ada', 'chat', true, 'Answered', 10)",
    )
    .bind(claude)
    .execute(&pool)
    .await
    .unwrap();

    let round = checks(&pool, "http://127.0.0.1:9").run_if_due("replica").await.unwrap().unwrap();

    assert_eq!(round.pruned, 1);
    assert_eq!(history(&pool, claude).await.len(), 2, "the recent one and this round's");
}

#[sqlx::test(migrations = "../migrations")]
async fn tests_by_hand_and_chats_join_the_history_with_who_ran_them(pool: PgPool) {
    let bedrock = FakeBedrock::start().await;
    let app =
        TestApp::builder(pool).bedrock(bedrock_client(&bedrock.url, true)).spawn_signed_in(Role::Admin).await;
    let id = app.save_model(&bedrock_form("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0")).await;
    let mut edit = bedrock_form("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0");
    edit.push(("id", id.to_string()));

    assert!(app.test_connection(&edit).await.ok);
    app.chat(id, "Hello").await;

    let rows = history(&app.pool, id).await;
    let kinds: Vec<(&str, &str, bool)> =
        rows.iter().map(|(by, kind, ok, _)| (by.as_str(), kind.as_str(), *ok)).collect();
    assert_eq!(kinds, [("ada", "test_connection", true), ("ada", "chat", true)]);
}

#[sqlx::test(migrations = "../migrations")]
async fn test_all_over_20_models_with_3_failing_names_each_failure_and_sums_up(pool: PgPool) {
    use app::chat::{LineBuffer, TestAllEvent};
    let bedrock = FakeBedrock::start().await;
    let app =
        TestApp::builder(pool).bedrock(bedrock_client(&bedrock.url, true)).spawn_signed_in(Role::Admin).await;
    for n in 0..17 {
        sqlx::query(
            "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
             VALUES ($1, 'bedrock', 'claude_3', 'bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0')",
        )
        .bind(format!("Claude {n:02}"))
        .execute(&app.pool)
        .await
        .unwrap();
    }
    for n in 0..3 {
        sqlx::query(
            "INSERT INTO self_hosted_models (name, platform, model_family, endpoint, identifier)
             VALUES ($1, 'api', 'mistral', 'http://127.0.0.1:9/v1', 'custom_openai/m')",
        )
        .bind(format!("Down {n}"))
        .execute(&app.pool)
        .await
        .unwrap();
    }

    let response = app.client.post(app.url("/api/test_all_self_hosted_models")).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let mut lines = LineBuffer::default();
    let events: Vec<TestAllEvent> = lines.push_as(&response.text().await.unwrap());

    assert_eq!(events.first(), Some(&TestAllEvent::Started(20)));
    assert_eq!(events.last(), Some(&TestAllEvent::Finished { answered: 17, total: 20 }));
    assert_eq!(TestAllEvent::summary(17, 20), "17 of 20 answered");
    let failed: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|event| match event {
            TestAllEvent::Tested { subject: model, ok: false, message, .. } => {
                Some((model.as_str(), message.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 3, "{events:#?}");
    for (model, message) in failed {
        assert!(model.starts_with("Down"), "{model}");
        assert!(message.contains("Could not connect to http://127.0.0.1:9/v1"), "{message}");
    }
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM model_tests WHERE ran_by = 'ada'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 20, "each outcome joins its model's history");
    assert!(app.audit_actions().await.contains(&"self_hosted_models_tested".to_owned()));

    // An auditor may not make the console call every model.
    let auditor = spawn_signed_in(app.pool.clone(), Role::Auditor).await;
    let refused = auditor.client.post(auditor.url("/api/test_all_self_hosted_models")).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_models_page_charts_its_history_and_lists_its_failures(pool: PgPool) {
    let (claude, _, _) = models_in_use(&pool).await;
    sqlx::query(
        "INSERT INTO model_tests (model_id, ran_at, ran_by, kind, ok, message, total_ms)
         SELECT $1, now() - make_interval(mins => n * 5), 'scheduled checks', 'scheduled', n % 7 <> 3,
                CASE WHEN n % 7 = 3 THEN 'Amazon Bedrock is throttling requests' ELSE 'Answered' END, 200 + n * 13
         FROM generate_series(1, 40) AS n",
    )
    .bind(claude)
    .execute(&pool)
    .await
    .unwrap();
    let app = spawn_signed_in(pool, Role::Auditor).await;

    let page = app.get(&format!("/admin/gitlab_duo/self_hosted/models/{claude}")).await;

    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Claude: test history"));
    assert!(html.contains("<svg") && html.contains("role=\"img\""), "an inline chart");
    assert_eq!(html.matches("class=\"answered\"").count(), 34);
    assert_eq!(html.matches("class=\"failed\"").count(), 6);
    assert!(html.contains("Latency of the last 40 tests of Claude: 34 answered"));
    assert!(html.contains("Amazon Bedrock is throttling requests"), "the failures with their messages");
    assert_eq!(
        app.get("/admin/gitlab_duo/self_hosted/models/987654").await.status(),
        reqwest::StatusCode::NOT_FOUND
    );
}
