//! The daily experience of an admin, in Chromium by visible labels: a running reply shows its
//! elapsed time and can be stopped (the server ends the model call), "Apply to all" can be
//! undone, a Chat sub-feature goes back to General Chat's model, toasts close by themselves,
//! test results say when they ran and what they tested, audit events can be filtered, no click
//! before hydration is lost, and forms warn before unsaved changes are left behind.

use std::time::Duration;

use fantoccini::Locator;
use sqlx::PgPool;

use crate::browser::{Browser, Page, xpath_literal};
use crate::common::fake_openai::FakeOpenAi;
use crate::common::*;
use app::auth::Role;

/// Waits up to `within` for `condition`; false if it never held.
/// How soon a stopped reply's model call must be gone: well under the minute the fake model
/// would write for, and loose enough for a busy machine.
const HANG_UP_WITHIN: Duration = Duration::from_secs(10);

async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

/// axe-core's serious or critical findings on the page as it is now: none allowed.
async fn assert_accessible(b: &Page, what: &str) {
    let found = crate::accessibility::violations(b, &crate::accessibility::axe_source(), what).await;
    assert!(found.is_empty(), "axe-core found:\n{}", found.join("\n"));
}

async fn text_of(b: &Page, css: &str) -> String {
    b.find(Locator::Css(css)).await.text().await.unwrap_or_default()
}

async fn add_api_model(pool: &PgPool, name: &str, endpoint: &str, identifier: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO self_hosted_models (name, platform, model_family, endpoint, identifier)
         VALUES ($1, 'api', 'mixtral', $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(endpoint)
    .bind(identifier)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The elapsed seconds the chat box shows, e.g. 1.3 for "Waiting for the reply: 1.3 s".
async fn elapsed_seconds(b: &Page) -> f64 {
    let text = text_of(b, "[role=timer]").await;
    text.trim_start_matches("Waiting for the reply: ")
        .trim_end_matches(" s")
        .parse()
        .unwrap_or_else(|_| panic!("an elapsed time: {text:?}"))
}

#[sqlx::test(migrations = "../migrations")]
async fn a_running_reply_shows_its_time_and_stop_ends_the_model_call_keeping_the_partial_reply(pool: PgPool) {
    let fake = FakeOpenAi::start(None).await;
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    add_api_model(&app.pool, "Slow vLLM", &fake.endpoint, "custom_openai/drip").await;
    let browser = Browser::start().await;

    browser
        .run("chat_stop", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models")).await.unwrap();
            let test = Locator::XPath("//tr[@data-model-name='Slow vLLM']//button[normalize-space()='Test']");
            b.click_until(test, Locator::Id("chat-message")).await;
            b.button("Send").await.click().await.unwrap();

            // The reply runs: the time since sending ticks, and "Stop" is offered.
            b.text_appears("word1").await;
            let first = elapsed_seconds(&b).await;
            tokio::time::sleep(Duration::from_millis(600)).await;
            let later = elapsed_seconds(&b).await;
            assert!(later >= first + 0.4, "the elapsed time ticks: {first} then {later}");
            assert_eq!(fake.dripping.load(std::sync::atomic::Ordering::SeqCst), 1, "the model is writing");
            assert_eq!(app.model_clients.calls_in_flight(), 1);
            assert_accessible(&b, "chat box with a running reply").await;

            b.button("Stop").await.click().await.unwrap();

            // The console hangs up on the model at once (the model would write for a minute),
            // and no call is left running.
            let dripping = fake.dripping.clone();
            assert!(
                eventually(HANG_UP_WITHIN, || dripping.load(std::sync::atomic::Ordering::SeqCst) == 0).await,
                "the model server saw the console hang up"
            );
            let clients = app.model_clients.clone();
            assert!(
                eventually(HANG_UP_WITHIN, || clients.calls_in_flight() == 0).await,
                "no model call is left behind"
            );

            // The partial reply stays, marked as stopped; it grows no more.
            let reply =
                Locator::XPath("//div[contains(@class,'from-model')][.//span[normalize-space()='Stopped']]");
            let partial = b.find(reply).await.text().await.unwrap();
            assert!(partial.contains("word0") && partial.contains("word1"), "{partial}");
            tokio::time::sleep(Duration::from_millis(600)).await;
            assert_eq!(b.find(reply).await.text().await.unwrap(), partial, "nothing more arrives");
            assert!(
                b.client.find(Locator::XPath("//button[normalize-space()='Stop']")).await.is_err(),
                "Stop goes once the reply has stopped"
            );
            assert!(b.client.find(Locator::Css("[role=timer]")).await.is_err());

            // A stop says nothing about the model: it is not recorded as a test.
            let recorded: i64 =
                sqlx::query_scalar("SELECT count(*) FROM model_tests").fetch_one(&app.pool).await.unwrap();
            assert_eq!(recorded, 0);

            // The conversation goes on.
            let message = b.find(Locator::Id("chat-message")).await;
            message.send_keys("Go on").await.unwrap();
            b.button("Send").await.click().await.unwrap();
            b.find(Locator::XPath(&format!(
                "//div[contains(@class,'from-user')][normalize-space()={}]",
                xpath_literal("Go on")
            )))
            .await;
            b.button("Stop").await.click().await.unwrap();
            let clients = app.model_clients.clone();
            assert!(eventually(HANG_UP_WITHIN, || clients.calls_in_flight() == 0).await);
        })
        .await;
}

/// Waits until the page's address contains `part` (a form's GET has been followed).
async fn path_comes_to(b: &Page, part: &str) -> String {
    for _ in 0..100 {
        let path = b.path().await;
        if path.contains(part) {
            return path;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the address never came to contain {part}: {}", b.path().await);
}

async fn is_hydrated(b: &Page) -> bool {
    b.client
        .execute("return document.documentElement.hasAttribute('data-hydrated');", vec![])
        .await
        .unwrap()
        .as_bool()
        .unwrap()
}

async fn add_bedrock_model(pool: &PgPool, name: &str, family: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
         VALUES ($1, 'bedrock', $2, 'bedrock/' || lower($1)) RETURNING id",
    )
    .bind(name)
    .bind(family)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn stored(pool: &PgPool, feature: &str) -> Option<(String, Option<i64>)> {
    sqlx::query_as("SELECT provider, self_hosted_model_id FROM feature_settings WHERE feature = $1")
        .bind(feature)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// Moves the mouse onto the page's heading, off anything that reacts to it.
async fn pointer_away(b: &Page) {
    use fantoccini::actions::{InputSource, MouseActions, PointerAction};
    let heading = b.find(Locator::Css("h1")).await;
    let away = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
        element: heading,
        duration: None,
        x: 0.0,
        y: 0.0,
    });
    b.client.perform_actions(away).await.unwrap();
}

/// Waits up to `within` for the toast to go; true if it went.
async fn toast_goes_within(b: &Page, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if b.client.find(Locator::Css("[data-testid=toast]")).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Whether the toast's box overlaps any table row's box.
async fn toast_covers_a_row(b: &Page) -> bool {
    b.client
        .execute(
            "const t = document.querySelector('[data-testid=toast]').getBoundingClientRect();
             return [...document.querySelectorAll('tr')].some(row => {
               const r = row.getBoundingClientRect();
               return r.left < t.right && t.left < r.right && r.top < t.bottom && t.top < r.bottom;
             });",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn apply_to_all_names_the_model_and_undoes_and_toasts_close_by_themselves(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let claude = add_bedrock_model(&app.pool, "Claude", "claude_3").await;
    let mistral = add_bedrock_model(&app.pool, "Mistral", "mistral").await;
    assign(&app.pool, "duo_chat", claude).await;
    assign(&app.pool, "duo_chat_explain_code", mistral).await;
    let browser = Browser::start().await;

    browser
        .run("apply_undo_toasts", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/features")).await.unwrap();
            b.hydrated().await;

            b.find(Locator::XPath("//tr[@data-feature='duo_chat']//button[normalize-space()='Apply to all']"))
                .await
                .click()
                .await
                .unwrap();
            // The form is posted: the tab comes back with the toast (the pointer moved off it
            // once that page is there).
            b.find(Locator::XPath(
                "//*[@data-testid='toast'][contains(., 'Successfully updated all GitLab Duo Chat features to Claude')]",
            ))
            .await;
            pointer_away(&b).await;
            assert_eq!(stored(&app.pool, "duo_chat_explain_code").await, Some(("self_hosted".into(), Some(claude))));
            // The list is read again and drawn anew; the toast stays through it.
            tokio::time::sleep(Duration::from_millis(500)).await;
            // Under the Chat section, in the flow: it covers no row. And it is announced.
            b.find(Locator::XPath("//details[.//h2[normalize-space()='GitLab Duo Chat']]//*[@data-testid='toast']"))
                .await;
            assert!(!toast_covers_a_row(&b).await, "the toast covers a row");
            b.find(Locator::XPath(
                "//*[@role='status'][normalize-space()='Successfully updated all GitLab Duo Chat features to Claude']",
            ))
            .await;
            crate::browser::save_screenshot(&b, "toast-apply-to-all").await;
            assert_accessible(&b, "features tab with a toast").await;

            // Undo: one request puts each feature back, audited.
            b.button("Undo").await.click().await.unwrap();
            b.text_appears("Restored the previous models of the GitLab Duo Chat features").await;
            // The tab came back with the toast; its time counts from when the page is interactive.
            b.hydrated().await;
            pointer_away(&b).await;
            assert_eq!(stored(&app.pool, "duo_chat_explain_code").await, Some(("self_hosted".into(), Some(mistral))));
            assert_eq!(stored(&app.pool, "duo_chat_write_tests").await, Some(("unassigned".into(), None)));
            let undone: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM audit_events WHERE action = 'feature_settings_apply_to_all_undone'",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            assert_eq!(undone, 1);

            // The toast closes by itself after about 5 s.
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(b.client.find(Locator::Css("[data-testid=toast]")).await.is_ok(), "still there at 3 s");
            let toast = Locator::Css("[data-testid=toast]");
            assert!(toast_goes_within(&b, Duration::from_secs(4)).await, "the toast closed by itself");

            // A Chat sub-feature goes back to General Chat's model from its own dropdown.
            b.pick("Code Explanation", "General", "Use General Chat's model").await;
            b.text_appears("Successfully updated GitLab Duo Chat / Code Explanation").await;
            b.text_appears("Uses the General Chat model: Claude").await;
            b.hydrated().await;
            assert_eq!(stored(&app.pool, "duo_chat_explain_code").await, Some(("unassigned".into(), None)));
            let shown = b.find(Locator::Id("feature-duo_chat_explain_code-trigger")).await.text().await.unwrap();
            assert!(shown.starts_with("Use General Chat's model"), "{shown}");

            // While the focus is on it, the toast stays; let go, it closes.
            pointer_away(&b).await;
            b.client
                .execute("document.querySelector('[data-testid=toast] .toast-close').focus();", vec![])
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(6500)).await;
            assert!(b.client.find(toast).await.is_ok(), "a focused toast stays");
            b.client.execute("document.activeElement.blur();", vec![]).await.unwrap();
            assert!(toast_goes_within(&b, Duration::from_secs(8)).await, "let go, it closes");
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn last_test_says_when_and_why_and_unsaved_values_are_not_recorded(pool: PgPool) {
    let fake = FakeOpenAi::start(None).await;
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let id = add_api_model(&app.pool, "Mixtral", &fake.endpoint, "custom_openai/mixtral").await;
    let three_hours_ago = chrono::Utc::now() - chrono::TimeDelta::hours(3);
    let failed = app::models::domain::LastTest {
        ok: false,
        message: "The model server returned code 404".into(),
        figures: Default::default(),
        at: three_hours_ago,
    };
    sqlx::query("UPDATE self_hosted_models SET last_test = $1 WHERE id = $2")
        .bind(serde_json::to_value(&failed).unwrap())
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let gateway = crate::features::fake_gateway("healthy").await;
    let browser = Browser::start().await;

    browser
        .run("last_test", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models")).await.unwrap();
            let cell = b.find(Locator::Css("tr[data-model-name='Mixtral'] td.last-test")).await;
            let text = cell.text().await.unwrap();
            assert!(text.contains("Failed") && text.contains("3 hours ago"), "{text}");
            assert!(text.contains("The model server returned code 404"), "the reason is in the cell: {text}");
            let time = cell.find(Locator::Css("time")).await.unwrap();
            assert_eq!(time.attr("title").await.unwrap(), Some(app::when::absolute(three_hours_ago)));
            crate::browser::save_screenshot(&b, "last-test").await;
            assert_accessible(&b, "models list with last tests").await;

            // Testing edited, unsaved values shows the outcome but does not record it.
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/{id}/edit")).await.unwrap();
            b.hydrated().await;
            let identifier = b.field("Model identifier").await;
            identifier.clear().await.unwrap();
            identifier.send_keys("custom_openai/missing-model").await.unwrap();
            b.button("Test connection").await.click().await.unwrap();
            b.text_appears("does not exist").await;
            b.text_appears(app::chat::api::NOT_RECORDED).await;
            let tests = |pool: PgPool| async move {
                let count: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM model_tests").fetch_one(&pool).await.unwrap();
                let last: serde_json::Value = sqlx::query_scalar("SELECT last_test FROM self_hosted_models")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                (count, last["message"].as_str().unwrap_or_default().to_owned())
            };
            assert_eq!(tests(app.pool.clone()).await, (0, "The model server returned code 404".to_owned()));

            // Back to the saved values: that test is the model's.
            let identifier = b.field("Model identifier").await;
            identifier.clear().await.unwrap();
            identifier.send_keys("custom_openai/mixtral").await.unwrap();
            b.button("Test connection").await.click().await.unwrap();
            b.text_appears("Successfully connected to the self-hosted model").await;
            assert_eq!(tests(app.pool.clone()).await, (1, app::chat::api::CONNECTED.to_owned()));
            assert!(
                b.client
                    .find(Locator::XPath(&format!(
                        "//*[normalize-space()={}]",
                        xpath_literal(app::chat::api::NOT_RECORDED)
                    )))
                    .await
                    .is_err()
            );

            // The health check runs on the URL in the field, and says which, saved or not.
            b.client.goto(&format!("{base}/admin/gitlab_duo/configuration")).await.unwrap();
            b.hydrated().await;
            b.field("Local AI Gateway URL").await.send_keys(&gateway).await.unwrap();
            b.button("Run health check").await.click().await.unwrap();
            b.text_appears(&format!(
                "The AI Gateway is healthy: {gateway}/monitoring/healthz (not saved yet) answered"
            ))
            .await;
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn audit_events_name_each_change_and_filter_by_author_action_and_date(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let endpoint = "http://vllm.internal:8000/v1";
    let id = app.save_model(&api_form(endpoint, "custom_openai/mixtral", "first-key-0001")).await;
    let mut replace = api_form(endpoint, "custom_openai/mixtral", "second-key-0002");
    replace.push(("id", id.to_string()));
    app.save_model(&replace).await;
    let mut remove = api_form(endpoint, "custom_openai/mixtral", "");
    remove.push(("id", id.to_string()));
    remove.retain(|(name, _)| *name != "api_key_action");
    remove.push(("api_key_action", "remove".into()));
    app.save_model(&remove).await;
    let saved = app
        .client
        .post(app.url("/api/update_duo_configuration"))
        .form(&[
            ("ai_gateway_timeout_seconds", "120"),
            ("ai_gateway_url", ""),
            ("duo_agent_platform_service_url", ""),
        ])
        .send()
        .await
        .unwrap();
    assert!(saved.status().is_success() || saved.status().is_redirection(), "{}", saved.status());
    sqlx::query(
        "INSERT INTO audit_events (actor_name, action, target_type, message, created_at)
         VALUES ('bob', 'model_destroyed', 'SelfHostedModel', 'Self-hosted model Old/mistral/-- destroyed', '2026-01-15T10:00:00Z')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    for n in 1..=25 {
        sqlx::query(
            "INSERT INTO audit_events (actor_name, action, target_type, message, created_at)
             VALUES ('ci', 'model_stored_key_used', 'SelfHostedModel', $1, '2026-02-01T10:00:00Z'::timestamptz + make_interval(mins => $2))",
        )
        .bind(format!("Key use {n}"))
        .bind(n)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    // Without JavaScript: the filter is a GET, the page is whole from the server.
    let html = app.get("/admin/audit_events?author=bob").await.text().await.unwrap();
    assert!(
        html.contains("Self-hosted model Old/mistral/-- destroyed") && !html.contains("Key use"),
        "filtered by author"
    );
    let html = app.get("/admin/audit_events?from=yesterday").await.text().await.unwrap();
    assert!(html.contains(app::audit::DATE_INVALID), "a bad date is named at its field");
    let browser = Browser::start().await;

    browser
        .run("audit_filters", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/audit_events")).await.unwrap();
            b.text_appears("API key replaced (").await;
            b.text_appears("API key removed (was ").await;
            b.text_appears("AI Gateway request timeout: 60 → 120").await;
            let html = b.client.source().await.unwrap();
            for secret in ["first-key-0001", "second-key-0002"] {
                assert!(!html.contains(secret), "a key reached the audit page");
            }
            crate::browser::save_screenshot(&b, "audit-events").await;
            assert_accessible(&b, "audit events with filters").await;

            // By author and action, with the page's own form.
            b.select("Author", "ada").await;
            b.select("Action", "Model updated").await;
            b.button("Filter").await.click().await.unwrap();
            let path = path_comes_to(&b, "action=model_updated").await;
            b.text_appears("API key removed (was ").await;
            assert!(path.contains("author=ada") && path.contains("action=model_updated"), "{path}");
            let rows = b.client.find_all(Locator::Css(".audit-table tbody tr")).await.unwrap();
            assert_eq!(rows.len(), 2, "the two updates of the model");

            // By date: January holds bob's event only.
            b.client.goto(&format!("{base}/admin/audit_events")).await.unwrap();
            for (label, day) in [("From", "2026-01-01"), ("To", "2026-01-31")] {
                let field = b.field(label).await;
                b.client
                    .execute(
                        "arguments[0].value = arguments[1];",
                        vec![serde_json::to_value(&field).unwrap(), day.into()],
                    )
                    .await
                    .unwrap();
            }
            b.button("Filter").await.click().await.unwrap();
            path_comes_to(&b, "from=2026-01-01").await;
            b.text_appears("Self-hosted model Old/mistral/-- destroyed").await;
            let rows = b.client.find_all(Locator::Css(".audit-table tbody tr")).await.unwrap();
            assert_eq!(rows.len(), 1);

            // Paging keeps the filters.
            b.client.goto(&format!("{base}/admin/audit_events?action=model_stored_key_used")).await.unwrap();
            b.link("Next").await.click().await.unwrap();
            let path = path_comes_to(&b, "page=2").await;
            b.text_appears("Key use 5").await;
            assert!(path.contains("page=2") && path.contains("action=model_stored_key_used"), "{path}");
            let rows = b.client.find_all(Locator::Css(".audit-table tbody tr")).await.unwrap();
            assert_eq!(rows.len(), 5);
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn on_a_slow_link_a_click_before_hydration_is_not_lost(pool: PgPool) {
    let app = TestApp::builder(pool).slow_bundle(Duration::from_secs(4)).spawn().await;
    app.add_user("ada", Role::Admin).await;
    let claude = add_bedrock_model(&app.pool, "Claude", "claude_3").await;
    let browser = Browser::start_eager().await;

    browser
        .run("before_hydration", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/features")).await.unwrap();
            // On screen, not yet hydrated: the row is a plain form, and a pick is saved by it.
            b.select("General Chat", "Claude (Claude)").await;
            assert!(!is_hydrated(&b).await, "the page hydrated too soon for this test");
            b.find(Locator::XPath("//tr[@data-feature='duo_chat']//form[contains(@class,'model-fallback')]//button[normalize-space()='Save']"))
                .await
                .click()
                .await
                .unwrap();
            b.find(Locator::XPath("//tr[@data-feature='duo_chat']//button[normalize-space()='Apply to all'][not(@disabled)]")).await;
            assert_eq!(stored(&app.pool, "duo_chat").await, Some(("self_hosted".into(), Some(claude))));

            // The reloaded page, again before hydration: "Apply to all" posts as a form.
            assert!(!is_hydrated(&b).await, "the page hydrated too soon for this test");
            // A control that needs the bundle shows it cannot be used yet.
            let test = b.find(Locator::XPath("//tr[@data-feature='duo_chat']//button[normalize-space()='Test']")).await;
            assert!(test.attr("disabled").await.unwrap().is_some(), "Test waits for the bundle");
            b.find(Locator::XPath("//tr[@data-feature='duo_chat']//button[normalize-space()='Apply to all']"))
                .await
                .click()
                .await
                .unwrap();
            let applied = app.pool.clone();
            let mut done = false;
            for _ in 0..100 {
                if stored(&applied, "duo_chat_fix_code").await == Some(("self_hosted".into(), Some(claude))) {
                    done = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(done, "the click before hydration applied the model to all");

            // Once hydrated, the bundle's controls work.
            b.hydrated().await;
            let test = b.find(Locator::XPath("//tr[@data-feature='duo_chat']//button[normalize-space()='Test']")).await;
            assert!(test.attr("disabled").await.unwrap().is_none());

            // The models list: Delete waits for the bundle too, then opens its dialog.
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models")).await.unwrap();
            let delete = b.find(Locator::XPath("//tr[@data-model-name='Claude']//button[normalize-space()='Delete']")).await;
            assert!(!is_hydrated(&b).await);
            assert!(delete.attr("disabled").await.unwrap().is_some(), "Delete waits for the bundle");
            b.hydrated().await;
            b.find(Locator::XPath("//tr[@data-model-name='Claude']//button[normalize-space()='Delete'][not(@disabled)]"))
                .await
                .click()
                .await
                .unwrap();
            b.find(Locator::Css("[role=dialog]")).await;

            // What is typed before hydration stays once the page hydrates.
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/new")).await.unwrap();
            b.field("Deployment name").await.send_keys("Typed early").await.unwrap();
            // So is what is chosen: the platform (and the fields it brings) and the family.
            b.select("Platform", "Amazon Bedrock").await;
            b.select("Model family", "Claude").await;
            assert!(!is_hydrated(&b).await, "the page hydrated too soon for this test");
            b.hydrated().await;
            b.field("Deployment name").await.send_keys(", and later").await.unwrap();
            assert_eq!(
                b.field("Deployment name").await.prop("value").await.unwrap().as_deref(),
                Some("Typed early, and later")
            );
            b.text_appears("Leave it blank to use the console's region").await;
            assert_eq!(b.value_of("Platform").await, "bedrock");
            assert_eq!(b.value_of("Model family").await, "claude_3");
            assert!(b.shows_none("//label[normalize-space()='Endpoint']").await, "Bedrock has no endpoint field");
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn forms_warn_before_unsaved_changes_are_left_and_beta_off_lists_what_it_hides(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let claude = add_bedrock_model(&app.pool, "Claude", "claude_3").await;
    sqlx::query(
        "INSERT INTO testing_terms_acceptances (user_id, user_email) SELECT id, email FROM users LIMIT 1",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assign(&app.pool, "duo_chat_troubleshoot_job", claude).await;
    let browser = Browser::start().await;

    browser
        .run("unsaved", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/configuration")).await.unwrap();
            b.hydrated().await;

            // Beta off, not saved: the features it would hide are listed, with their models.
            b.find(Locator::XPath("//input[@id=//label[normalize-space()='Use beta models and features in GitLab Duo Self-Hosted']/@for]"))
                .await
                .click()
                .await
                .unwrap();
            let warning = b.find(Locator::Css("[data-testid=beta-off-warning]")).await.text().await.unwrap();
            assert!(warning.contains("Root Cause Analysis (uses Claude)"), "{warning}");
            assert!(warning.contains("Merge Request Summary"), "{warning}");
            let still_on: i64 = sqlx::query_scalar("SELECT count(*) FROM testing_terms_acceptances")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            assert_eq!(still_on, 1, "nothing is saved yet");
            crate::browser::save_screenshot(&b, "beta-off-warning").await;
            assert_accessible(&b, "Configuration with beta turned off, unsaved").await;

            // Leaving with the change asks first: closing the tab, and a link of the console.
            let asked = b
                .client
                .execute(
                    "const e = new Event('beforeunload', { cancelable: true }); window.dispatchEvent(e); return e.defaultPrevented;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(asked, serde_json::Value::Bool(true), "the browser asks before the tab closes");
            let _ = b.link("Overview").await.click().await;
            assert_eq!(b.client.get_alert_text().await.unwrap(), app::unsaved::LEAVE_QUESTION);
            b.client.dismiss_alert().await.unwrap();
            assert_eq!(b.path().await, "/admin/gitlab_duo/configuration", "staying keeps the page");
            let beta = b.find(Locator::Id("beta-enabled")).await;
            assert_eq!(beta.prop("checked").await.unwrap().as_deref(), Some("false"), "and what was changed");
            let _ = b.link("Overview").await.click().await;
            b.client.accept_alert().await.unwrap();
            b.find(Locator::XPath("//h1[normalize-space()='Admin area']")).await;

            // Switching platform keeps what was typed for the other one.
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/new")).await.unwrap();
            b.hydrated().await;
            b.select("Platform", "API").await;
            b.field("Endpoint").await.send_keys("http://vllm.internal:8000/v1").await.unwrap();
            b.field("API Key (optional)").await.send_keys("typed-key").await.unwrap();
            b.select("Platform", "Amazon Bedrock").await;
            b.text_appears("AWS Bedrock Configuration Guide").await;
            b.select("Platform", "API").await;
            assert_eq!(
                b.field("Endpoint").await.prop("value").await.unwrap().as_deref(),
                Some("http://vllm.internal:8000/v1")
            );
            assert_eq!(b.field("API Key (optional)").await.prop("value").await.unwrap().as_deref(), Some("typed-key"));
            // An untouched form leaves without asking; a touched one asks.
            let _ = b.link("Cancel").await.click().await;
            assert_eq!(b.client.get_alert_text().await.unwrap(), app::unsaved::LEAVE_QUESTION);
            b.client.accept_alert().await.unwrap();
            b.find(Locator::XPath("//h1[normalize-space()='Model configuration']")).await;
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_changed_pages_at_1280_and_390_px_are_whole(pool: PgPool) {
    let fake = FakeOpenAi::start(None).await;
    let app = spawn_signed_in(pool, Role::Admin).await;
    let id = add_api_model(
        &app.pool,
        "Mixtral on vLLM with a long deployment name",
        &fake.endpoint,
        "custom_openai/drip",
    )
    .await;
    let claude = add_bedrock_model(&app.pool, "Claude", "claude_3").await;
    assign(&app.pool, "duo_chat", claude).await;
    let failed = app::models::domain::LastTest {
        ok: false,
        message: "The model server returned code 404: the endpoint usually ends in /v1".into(),
        figures: Default::default(),
        at: chrono::Utc::now() - chrono::TimeDelta::minutes(42),
    };
    sqlx::query("UPDATE self_hosted_models SET last_test = $1 WHERE id = $2")
        .bind(serde_json::to_value(&failed).unwrap())
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let mut replace = api_form(&fake.endpoint, "custom_openai/drip", "second-key-0002");
    replace.retain(|(name, _)| *name != "name");
    replace.extend([("name", "Mixtral on vLLM with a long deployment name".into()), ("id", id.to_string())]);
    app.save_model(&replace).await;
    sqlx::query(
        "INSERT INTO testing_terms_acceptances (user_id, user_email) SELECT id, email FROM users LIMIT 1",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let browser = Browser::start().await;

    browser
        .run("changed_pages", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            for (width, height) in [(1280, 900), (390, 844)] {
                b.client.set_window_size(width, height).await.unwrap();
                let shot = |name: &str| format!("{name}-{width}");
                let whole = |b: Page, what: String| async move {
                    let overflow = b
                        .client
                        .execute("return document.documentElement.scrollWidth > window.innerWidth;", vec![])
                        .await
                        .unwrap();
                    assert_eq!(overflow, serde_json::Value::Bool(false), "{what} scrolls sideways");
                };

                b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models")).await.unwrap();
                b.hydrated().await;
                b.text_appears("42 minutes ago").await;
                crate::browser::save_screenshot(&b, &shot("models-last-test")).await;
                whole(b.clone(), shot("models")).await;
                let test = Locator::XPath(
                    "//tr[starts-with(@data-model-name, 'Mixtral')]//button[normalize-space()='Test']",
                );
                b.click_until(test, Locator::Id("chat-message")).await;
                b.button("Send").await.click().await.unwrap();
                b.text_appears("word1").await;
                crate::browser::save_screenshot(&b, &shot("chat-running")).await;
                b.button("Stop").await.click().await.unwrap();
                b.find(Locator::XPath("//span[normalize-space()='Stopped']")).await;
                crate::browser::save_screenshot(&b, &shot("chat-stopped")).await;
                b.button("Close").await.click().await.unwrap();

                b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/features")).await.unwrap();
                b.hydrated().await;
                b.find(Locator::XPath(
                    "//tr[@data-feature='duo_chat']//button[normalize-space()='Apply to all']",
                ))
                .await
                .click()
                .await
                .unwrap();
                b.button("Undo").await;
                b.client
                    .execute(
                        "document.querySelector('[data-testid=toast]').scrollIntoView({block: 'center'});",
                        vec![],
                    )
                    .await
                    .unwrap();
                crate::browser::save_screenshot(&b, &shot("features-toast")).await;
                whole(b.clone(), shot("features")).await;
                b.button("Undo").await.click().await.unwrap();
                b.text_appears("Restored the previous models").await;

                b.client.goto(&format!("{base}/admin/gitlab_duo/configuration")).await.unwrap();
                b.hydrated().await;
                b.find(Locator::Id("beta-enabled")).await.click().await.unwrap();
                b.find(Locator::Css("[data-testid=beta-off-warning]")).await;
                b.button("Run health check").await.click().await.unwrap();
                b.text_appears("No Local AI Gateway URL is set.").await;
                crate::browser::save_screenshot(&b, &shot("configuration-beta-off")).await;
                whole(b.clone(), shot("configuration")).await;
                b.find(Locator::Id("beta-enabled")).await.click().await.unwrap();

                b.client
                    .goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/{id}/edit"))
                    .await
                    .unwrap();
                b.hydrated().await;
                b.button("Test connection").await;
                crate::browser::save_screenshot(&b, &shot("model-form")).await;
                whole(b.clone(), shot("model form")).await;

                b.client.goto(&format!("{base}/admin/audit_events?action=model_updated")).await.unwrap();
                b.text_appears("API key added (").await;
                crate::browser::save_screenshot(&b, &shot("audit-events")).await;
                whole(b.clone(), shot("audit events")).await;
            }
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn only_a_test_of_the_saved_values_becomes_the_models_last_test(pool: PgPool) {
    let fake = FakeOpenAi::start(None).await;
    let app = spawn_signed_in(pool, Role::Admin).await;
    let id = app.save_model(&api_form(&fake.endpoint, "custom_openai/mixtral", "sk-saved")).await;
    let recorded = || async {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM model_tests").fetch_one(&app.pool).await.unwrap();
        count
    };
    let edit = |identifier: &str, key: &str, action: &str| {
        let mut form = api_form(&fake.endpoint, identifier, key);
        form.extend([("id", id.to_string()), ("api_key_action", action.to_owned())]);
        form
    };

    // Edited, unsaved: the identifier, or a newly typed key.
    let other_model = app.test_connection(&edit("custom_openai/other", "", "keep")).await;
    let other_key = app.test_connection(&edit("custom_openai/mixtral", "sk-typed", "replace")).await;
    assert!(other_model.ok && other_key.ok);
    assert!(!other_model.recorded && !other_key.recorded);
    assert_eq!(recorded().await, 0);
    let last: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT last_test FROM self_hosted_models").fetch_one(&app.pool).await.unwrap();
    assert_eq!(last, None, "no last test from unsaved values");

    // The saved values, with the stored key: recorded.
    let saved = app.test_connection(&edit("custom_openai/mixtral", "", "keep")).await;
    assert!(saved.ok && saved.recorded);
    assert_eq!(recorded().await, 1);
}
