//! One status everywhere: each feature's status ("Ready", "Failing since ...", "Not tested",
//! "No model") on the features tab, "Features ready: N of M" on the Configuration page and the
//! overview, all read from the models' stored tests; "Test all" on the features tab; the
//! schedule of the scheduled checks as an audited setting; the AI Gateway's reachability,
//! stored and shown for the URL it checked.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::common::fake_bedrock::FakeBedrock;
use crate::common::*;
use app::auth::Role;
use app::chat::{LineBuffer, TestAllEvent};
use app::checks::Checks;
use app::features::domain::{FeatureStatus, FeaturesPage};
use app::models::domain::Serving;

const CLAUDE: &str = "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0";

fn checks(pool: &PgPool, bedrock_url: &str) -> Checks {
    Checks {
        pool: pool.clone(),
        clients: Arc::new(model_clients(bedrock_client(bedrock_url, true))),
        master_keys: Arc::new(test_master_keys()),
        history_days: 30,
    }
}

async fn insert_model(pool: &PgPool, name: &str, identifier: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
         VALUES ($1, 'bedrock', 'claude_3', $2) RETURNING id",
    )
    .bind(name)
    .bind(identifier)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn make_due(pool: &PgPool) {
    sqlx::query("UPDATE check_schedule SET next_due = now()").execute(pool).await.unwrap();
}

async fn statuses(app: &TestApp) -> std::collections::HashMap<String, FeatureStatus> {
    let page: FeaturesPage = app.get("/api/ai_feature_settings").await.json().await.unwrap();
    page.sections.into_iter().flat_map(|s| s.features).map(|f| (f.key, f.status)).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_model_that_starts_failing_shows_failing_since_on_the_features_it_serves_within_one_round(
    pool: PgPool,
) {
    let bedrock = FakeBedrock::start().await;
    let claude = insert_model(&pool, "Claude", CLAUDE).await;
    assign(&pool, "duo_chat", claude).await;
    assign(&pool, "code_generations", claude).await;
    let app = spawn_signed_in(pool.clone(), Role::Auditor).await;
    let rounds = checks(&pool, &bedrock.url);

    let before = statuses(&app).await;
    assert_eq!(before["duo_chat"], FeatureStatus::Model(Serving::NotTested));
    assert_eq!(before["code_completions"], FeatureStatus::NoModel);

    rounds.run_if_due("replica").await.unwrap().expect("the first round is due at once");
    let ready = statuses(&app).await;
    assert!(ready["duo_chat"].is_ready(), "{:?}", ready["duo_chat"]);
    assert!(ready["duo_chat_explain_code"].is_ready(), "a sub-feature borrowing General Chat's model");

    // The model's server starts refusing it; the next round sees it.
    sqlx::query("UPDATE self_hosted_models SET identifier = 'bedrock/us.throttled' WHERE id = $1")
        .bind(claude)
        .execute(&pool)
        .await
        .unwrap();
    make_due(&pool).await;
    rounds.run_if_due("replica").await.unwrap().expect("due");
    let first_failure: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT ran_at FROM model_tests WHERE model_id = $1 AND NOT ok ORDER BY ran_at LIMIT 1",
    )
    .bind(claude)
    .fetch_one(&pool)
    .await
    .unwrap();
    make_due(&pool).await;
    rounds.run_if_due("replica").await.unwrap().expect("due");

    let failing = statuses(&app).await;
    for feature in ["duo_chat", "code_generations", "duo_chat_explain_code"] {
        match &failing[feature] {
            FeatureStatus::Model(Serving::Failing { since, message }) => {
                assert_eq!(*since, first_failure, "{feature}: since the first failure, not the latest");
                assert!(message.contains("throttling"), "{feature}: {message}");
            }
            other => panic!("{feature} should be failing, is {other:?}"),
        }
    }
    let html = app.get("/admin/gitlab_duo/self_hosted/features").await.text().await.unwrap();
    let since = app::models::domain::status_time(first_failure);
    assert!(html.contains(&format!("Failing since {since}")), "the tab shows it");
    assert!(html.contains("No model"), "an unassigned feature says so");

    // It recovers at the next answer.
    sqlx::query("UPDATE self_hosted_models SET identifier = $2 WHERE id = $1")
        .bind(claude)
        .bind(CLAUDE)
        .execute(&pool)
        .await
        .unwrap();
    make_due(&pool).await;
    rounds.run_if_due("replica").await.unwrap().expect("due");
    assert!(statuses(&app).await["duo_chat"].is_ready());
}

#[sqlx::test(migrations = "../migrations")]
async fn features_ready_is_one_roll_up_on_the_configuration_page_the_overview_and_metrics(pool: PgPool) {
    let bedrock = FakeBedrock::start().await;
    let good = insert_model(&pool, "Claude", CLAUDE).await;
    let bad = insert_model(&pool, "Refused", "bedrock/us.access-denied").await;
    assign(&pool, "duo_chat", good).await;
    assign(&pool, "code_generations", bad).await;
    sqlx::query(
        "INSERT INTO feature_settings (feature, provider) VALUES ('review_merge_request', 'disabled')",
    )
    .execute(&pool)
    .await
    .unwrap();
    checks(&pool, &bedrock.url).run_if_due("replica").await.unwrap().unwrap();
    let app = spawn_signed_in(pool.clone(), Role::Auditor).await;

    let readiness: app::features::domain::Readiness =
        app.get("/api/ai_feature_readiness").await.json().await.unwrap();
    let visible: usize = statuses(&app).await.values().filter(|s| **s != FeatureStatus::Disabled).count();
    assert_eq!(readiness.total, visible, "every visible feature but the disabled one counts");
    // General Chat and the four GA Chat sub-features that borrow its model answer.
    assert_eq!(readiness.ready, 5, "{readiness:#?}");
    assert!(readiness.not_ready.iter().any(|(title, status)| title == "Code Generation"
        && matches!(status, FeatureStatus::Model(Serving::Failing { .. }))));
    let summary = readiness.summary();

    let configuration = app.get("/admin/gitlab_duo/configuration").await.text().await.unwrap();
    assert!(configuration.contains(&summary), "{summary} on the Configuration page");
    assert!(configuration.contains("AI Gateway reachability"));
    let overview = app.get("/admin").await.text().await.unwrap();
    assert!(overview.contains(&summary), "and on the overview");
    assert!(overview.contains("2 self-hosted models, 1 failing its last test"), "{overview}");
    assert!(overview.contains("Beta models and features"));

    let text = new_client()
        .get(app.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ready_series =
        text.lines().filter(|line| line.starts_with("duo_feature_ready{") && line.ends_with(" 1")).count();
    assert_eq!(ready_series, readiness.ready, "/metrics counts the same ready features");
}

#[sqlx::test(migrations = "../migrations")]
async fn test_all_on_the_features_tab_asks_each_served_feature_with_its_own_prompt(pool: PgPool) {
    let bedrock = FakeBedrock::start().await;
    let app = TestApp::builder(pool.clone())
        .bedrock(bedrock_client(&bedrock.url, true))
        .spawn_signed_in(Role::Admin)
        .await;
    let good = insert_model(&pool, "Claude", CLAUDE).await;
    let bad = insert_model(&pool, "Throttled", "bedrock/us.throttled").await;
    assign(&pool, "duo_chat", good).await;
    assign(&pool, "code_generations", bad).await;
    assign(&pool, "code_completions", good).await;

    let response = app.client.post(app.url("/api/test_all_ai_features")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events: Vec<TestAllEvent> = LineBuffer::default().push_as(&response.text().await.unwrap());

    // General Chat, its four GA sub-features (through its model), and the two code features.
    assert_eq!(events.first(), Some(&TestAllEvent::Started(7)), "{events:#?}");
    assert_eq!(events.last(), Some(&TestAllEvent::Finished { answered: 6, total: 7 }));
    let failed: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|event| match event {
            TestAllEvent::Tested { subject, ok: false, message, .. } => {
                Some((subject.as_str(), message.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "Code Generation");
    assert!(failed[0].1.contains("throttling"), "{}", failed[0].1);
    assert!(events.iter().any(|event| matches!(event,
        TestAllEvent::Tested { subject, ok: true, message, .. } if subject == "Code Explanation" && message == "Claude answered")));
    // Each feature is asked with its own prompt: the system prompt went with the probe.
    let sent = bedrock.last_body.lock().unwrap().clone().unwrap();
    assert!(sent["system"][0]["text"].as_str().is_some_and(|text| !text.is_empty()), "{sent}");
    assert_eq!(sent["messages"][0]["content"][0]["text"], Value::from("Just say hello."));

    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT kind FROM model_tests").fetch_all(&pool).await.unwrap();
    assert_eq!(kinds, ["test_all"], "each outcome joins the answering model's history");
    assert!(app.audit_actions().await.contains(&"ai_features_tested".to_owned()));
    let auditor = spawn_signed_in(pool, Role::Auditor).await;
    let refused = auditor.client.post(auditor.url("/api/test_all_ai_features")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_schedule_is_an_audited_setting_that_every_replica_follows(pool: PgPool) {
    let bedrock = FakeBedrock::start().await;
    let claude = insert_model(&pool, "Claude", CLAUDE).await;
    assign(&pool, "duo_chat", claude).await;
    let app = spawn_signed_in(pool.clone(), Role::Admin).await;
    let save = |minutes: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/update_check_schedule"))
                .header("Accept", "application/json")
                .form(&[("interval_minutes", minutes)])
                .send()
                .await
                .unwrap()
        }
    };

    let refused = save("1441").await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains(app::checks::INTERVAL_INVALID));
    assert_eq!(save("abc").await.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Off: a due round is not run.
    assert_eq!(save("0").await.status(), StatusCode::OK);
    assert_eq!(checks(&pool, &bedrock.url).run_if_due("one").await.unwrap(), None);
    let schedule: app::checks::Schedule = app.get("/api/check_schedule").await.json().await.unwrap();
    assert_eq!((schedule.interval_minutes, schedule.next_due), (0, None));

    // Back on every 15 minutes: the round runs, and the next is due 15 minutes on.
    assert_eq!(save("15").await.status(), StatusCode::OK);
    make_due(&pool).await;
    assert!(checks(&pool, &bedrock.url).run_if_due("one").await.unwrap().is_some());
    let in_fifteen: bool = sqlx::query_scalar(
        "SELECT next_due BETWEEN now() + interval '14 minutes' AND now() + interval '16 minutes' FROM check_schedule",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(in_fifteen);
    // A shorter interval takes effect now, not after the longer one has run out.
    assert_eq!(save("2").await.status(), StatusCode::OK);
    let within_two: bool =
        sqlx::query_scalar("SELECT next_due <= now() + interval '2 minutes' FROM check_schedule")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(within_two);

    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT message FROM audit_events WHERE action = 'check_schedule_updated' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        audited,
        [
            "Scheduled checks changed from every 5 minutes to off",
            "Scheduled checks changed from off to every 15 minutes",
            "Scheduled checks changed from every 15 minutes to every 2 minutes",
        ]
    );
    let auditor = spawn_signed_in(pool, Role::Auditor).await;
    let forbidden = auditor
        .client
        .post(auditor.url("/api/update_check_schedule"))
        .form(&[("interval_minutes", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
}

async fn fake_gateway(healthy: bool) -> String {
    let router = axum::Router::new().route(
        "/monitoring/healthz",
        axum::routing::get(move || async move {
            if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

#[sqlx::test(migrations = "../migrations")]
async fn the_gateways_reachability_is_stored_for_the_url_it_checked_and_rounds_check_it(pool: PgPool) {
    let app = spawn_signed_in(pool.clone(), Role::Admin).await;
    let reachability =
        || async { app.get("/api/ai_gateway_reachability").await.json::<Option<Value>>().await.unwrap() };
    let set_gateway = |url: String| {
        let pool = pool.clone();
        async move {
            sqlx::query("UPDATE instance_settings SET ai_gateway_url = $1")
                .bind(url)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    assert_eq!(reachability().await, None, "never checked");

    let up = fake_gateway(true).await;
    set_gateway(up.clone()).await;
    let checked = app.client.post(app.url("/api/ai_gateway_health_check")).send().await.unwrap();
    assert_eq!(checked.status(), StatusCode::OK);
    let stored = reachability().await.expect("the check is stored");
    assert_eq!(stored["healthy"], Value::Bool(true));
    let auditor = spawn_signed_in(pool.clone(), Role::Auditor).await;
    let page = auditor.get("/admin/gitlab_duo/configuration").await.text().await.unwrap();
    assert!(page.contains("Reachable"), "every user sees the stored answer");

    // Another URL: the stored check spoke of the old one.
    let down = fake_gateway(false).await;
    set_gateway(down).await;
    assert_eq!(reachability().await, None);
    // A scheduled round checks the gateway too.
    sqlx::query("UPDATE check_schedule SET next_due = now()").execute(&pool).await.unwrap();
    checks(&pool, "http://127.0.0.1:9").run_if_due("replica").await.unwrap().expect("due");
    let stored = reachability().await.expect("the round's check is stored");
    assert_eq!(stored["healthy"], Value::Bool(false));
    assert!(stored["message"].as_str().unwrap().contains("503"), "{stored}");
}

#[sqlx::test(migrations = "../migrations")]
async fn in_the_browser_test_all_on_the_features_tab_turns_each_status_and_the_roll_up_follows(pool: PgPool) {
    use crate::browser::{Browser, save_screenshot};
    use fantoccini::Locator;
    let bedrock = FakeBedrock::start().await;
    let app = TestApp::builder(pool.clone()).bedrock(bedrock_client(&bedrock.url, true)).spawn().await;
    app.add_user("ada", Role::Admin).await;
    let good = insert_model(&pool, "Claude", CLAUDE).await;
    let bad = insert_model(&pool, "Throttled", "bedrock/us.throttled").await;
    assign(&pool, "duo_chat", good).await;
    assign(&pool, "code_generations", bad).await;
    let browser = Browser::start().await;

    browser
        .run("features-test-all", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/features")).await.unwrap();
            b.find(Locator::XPath("//tr[@data-feature='duo_chat']//span[normalize-space()='Not tested']")).await;
            let summary = Locator::XPath("//p[normalize-space()='5 of 6 answered']");
            b.click_until(Locator::XPath("//button[normalize-space()='Test all']"), summary).await;
            b.text_appears("Code Generation: Amazon Bedrock is throttling requests").await;
            // The tab reads the statuses again once the run ends.
            b.find(Locator::XPath("//tr[@data-feature='duo_chat']//span[normalize-space()='Ready']")).await;
            b.find(Locator::XPath("//tr[@data-feature='code_generations']//span[starts-with(normalize-space(), 'Failing since')]")).await;
            b.find(Locator::XPath("//tr[@data-feature='code_completions']//span[normalize-space()='No model']")).await;
            save_screenshot(&b, "features-status").await;

            b.link("Configuration").await.click().await.unwrap();
            b.text_appears("Features ready: 5 of 10").await;
            b.text_appears("Code Generation").await;
            b.field("Check every").await.clear().await.unwrap();
            b.field("Check every").await.send_keys("10").await.unwrap();
            b.button("Save schedule").await.click().await.unwrap();
            b.text_appears("Scheduled checks: every 10 minutes").await;
            save_screenshot(&b, "configuration-health").await;
            b.link("Overview").await.click().await.unwrap();
            b.text_appears("Features ready: 5 of 10").await;
            save_screenshot(&b, "overview-status").await;
        })
        .await;
    let minutes: i32 =
        sqlx::query_scalar("SELECT interval_minutes FROM check_schedule").fetch_one(&pool).await.unwrap();
    assert_eq!(minutes, 10);
}

#[sqlx::test(migrations = "../migrations")]
async fn one_test_all_runs_at_a_time_across_tabs_and_replicas(pool: PgPool) {
    let bedrock = FakeBedrock::start().await;
    let one = TestApp::builder(pool.clone())
        .bedrock(bedrock_client(&bedrock.url, true))
        .spawn_signed_in(Role::Admin)
        .await;
    // A second replica: its own router and connection pool on the same database.
    let other_pool =
        sqlx::postgres::PgPoolOptions::new().connect_with((*pool.connect_options()).clone()).await.unwrap();
    let two = TestApp::builder(other_pool).bedrock(bedrock_client(&bedrock.url, true)).spawn().await;
    two.sign_in(username(Role::Admin), PASSWORD).await;
    let slow = insert_model(&pool, "Slow", "bedrock/us.latency-900ms").await;
    assign(&pool, "duo_chat", slow).await;

    let first = one.client.post(one.url("/api/test_all_self_hosted_models")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    for (app, path) in [
        (&two, "/api/test_all_self_hosted_models"),
        (&two, "/api/test_all_ai_features"),
        (&one, "/api/test_all_ai_features"),
    ] {
        let refused = app.client.post(app.url(path)).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::CONFLICT, "{path} while a Test all runs");
        assert!(refused.text().await.unwrap().contains(app::chat::api::TEST_ALL_BUSY));
    }
    let events: Vec<TestAllEvent> = LineBuffer::default().push_as(&first.text().await.unwrap());
    assert_eq!(events.last(), Some(&TestAllEvent::Finished { answered: 1, total: 1 }));

    let next = two.client.post(two.url("/api/test_all_ai_features")).send().await.unwrap();
    assert_eq!(next.status(), StatusCode::OK, "once the first has finished, the next runs");
    let _ = next.text().await.unwrap();

    // A run whose browser goes away lets go too.
    let abandoned = one.client.post(one.url("/api/test_all_self_hosted_models")).send().await.unwrap();
    assert_eq!(abandoned.status(), StatusCode::OK);
    drop(abandoned);
    let mut freed = false;
    for _ in 0..100 {
        let again = two.client.post(two.url("/api/test_all_self_hosted_models")).send().await.unwrap();
        if again.status() == StatusCode::OK {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(freed, "the abandoned run's claim was let go");
}
