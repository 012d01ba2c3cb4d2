//! The features tab's model dropdown (GitLab's searchable listbox): picked by its visible labels,
//! driven by the keyboard alone, browsing with arrow keys saves nothing, and without JavaScript
//! each row is a plain form that still saves.

use crate::browser::{Browser, Page, save_screenshot};
use crate::common::*;
use app::auth::Role;
use app::features::api::FeaturesPage;
use fantoccini::Locator;
use fantoccini::key::Key;
use reqwest::StatusCode;
use sqlx::PgPool;

async fn add_claude(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
         VALUES ('Claude', 'bedrock', 'claude_3', 'bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0')
         RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn stored_model(pool: &PgPool, feature: &str) -> Option<Option<i64>> {
    sqlx::query_scalar("SELECT self_hosted_model_id FROM feature_settings WHERE feature = $1")
        .bind(feature)
        .fetch_optional(pool)
        .await
        .unwrap()
}

impl Page {
    /// The element that has the keyboard focus: its id.
    async fn focused_id(&self) -> String {
        self.client.active_element().await.unwrap().attr("id").await.unwrap().unwrap_or_default()
    }

    /// Presses `key` where the focus is.
    async fn press(&self, key: &str) {
        self.client.active_element().await.unwrap().send_keys(key).await.unwrap();
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_model_dropdown_searches_and_works_by_keyboard_and_arrows_never_save(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let claude = add_claude(&app.pool).await;
    let browser = Browser::start().await;

    browser
        .run("listbox", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            // Twice: the second answer is the page the server kept from the first, with a new
            // nonce, and it must hydrate as the drawn one does (the rest of this test uses it).
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted")).await.unwrap();
            b.hydrated().await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted")).await.unwrap();
            assert_eq!(features_tabs_answered(&app, "kept").await, 1);
            let general = "//button[@id='feature-duo_chat-trigger']";
            // The dropdowns show once the page is interactive (until then, plain forms do).
            b.find(Locator::Css(".model-listbox:not(.js-hidden)")).await;
            // GitLab's placeholder while unassigned.
            let trigger = b.find(Locator::XPath(general)).await;
            assert_eq!(trigger.text().await.unwrap().trim_end_matches('▾').trim(), "Select a model");

            // Opened: GitLab's header, group and footer; a search with no match says so.
            let search = b
                .click_until(
                    Locator::XPath(general),
                    Locator::Css("input[aria-controls='feature-duo_chat-listbox']"),
                )
                .await;
            b.text_appears("Compatible models").await;
            b.find(Locator::XPath(
                "//*[@id='feature-duo_chat-group'][normalize-space()='Self-hosted models']",
            ))
            .await;
            b.find(Locator::XPath("//li[@role='option'][normalize-space()='Disabled']")).await;
            b.link("Add self-hosted model").await;
            save_screenshot(&b, "listbox-open").await;
            search.send_keys("gpt").await.unwrap();
            b.text_appears("No results found").await;
            assert!(
                b.client
                    .find(Locator::XPath("//li[@role='option'][normalize-space()='Claude (Claude)']"))
                    .await
                    .is_err(),
                "the search hides what does not match"
            );
            b.press(&Key::Escape).await;
            assert_eq!(
                b.focused_id().await,
                "feature-duo_chat-trigger",
                "Escape returns the focus to the trigger"
            );

            // ArrowDown opens the closed dropdown and moves through it, but saves nothing.
            let explain = "feature-duo_chat_explain_code-trigger";
            b.find(Locator::Id(explain)).await;
            b.client
                .execute("document.getElementById(arguments[0]).focus()", vec![serde_json::json!(explain)])
                .await
                .unwrap();
            b.press(&Key::Down).await;
            b.find(Locator::Css("input[aria-controls='feature-duo_chat_explain_code-listbox']")).await;
            b.press(&Key::Down).await;
            let active = b
                .find(Locator::Css("input[aria-controls='feature-duo_chat_explain_code-listbox']"))
                .await
                .attr("aria-activedescendant")
                .await
                .unwrap();
            assert_eq!(active, Some(format!("feature-duo_chat_explain_code-option-{claude}")));
            b.press(&Key::Escape).await;

            // Keyboard only: Tab from the section's heading to General Chat's dropdown, Enter,
            // type, ArrowDown, Enter.
            b.client
                .execute("document.querySelector('[data-section] summary').focus()", vec![])
                .await
                .unwrap();
            let mut tabs = 0;
            while b.focused_id().await != "feature-duo_chat-trigger" {
                assert!(tabs < 10, "Tab reaches General Chat's dropdown");
                b.press(&Key::Tab).await;
                tabs += 1;
            }
            b.press(&Key::Enter).await;
            b.find(Locator::Css("input[aria-controls='feature-duo_chat-listbox']")).await;
            b.press("Cla").await;
            b.press(&Key::Down).await;
            b.press(&Key::Enter).await;
            b.text_appears("Successfully updated GitLab Duo Chat / General Chat").await;
            save_screenshot(&b, "listbox-saved").await;

            assert_eq!(stored_model(&app.pool, "duo_chat").await, Some(Some(claude)));
            assert_eq!(
                stored_model(&app.pool, "duo_chat_explain_code").await,
                None,
                "arrow keys saved nothing"
            );
            b.find(Locator::XPath(
                "//button[@id='feature-duo_chat-trigger'][starts-with(normalize-space(), 'Claude (Claude)')]",
            ))
            .await;
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn with_javascript_off_each_feature_row_is_a_form_that_saves(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let claude = add_claude(&app.pool).await;
    let tab = app.url("/admin/gitlab_duo/self_hosted");
    let html = app.client.get(&tab).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"action="/api/update_ai_feature_setting""#), "a plain form per row");
    assert!(html.contains(r#"name="choice""#) && html.contains(r#"name="feature""#));

    let response = app
        .client
        .post(app.url("/api/update_ai_feature_setting"))
        .header("accept", "text/html")
        .header("referer", &tab)
        .form(&[("feature", "duo_chat"), ("choice", &claude.to_string())])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(location(&response).starts_with(&tab), "back to the tab: {}", location(&response));
    assert_eq!(stored_model(&app.pool, "duo_chat").await, Some(Some(claude)));
}

#[sqlx::test(migrations = "../migrations")]
async fn only_admins_are_offered_to_add_a_model_from_the_dropdown(pool: PgPool) {
    let admin = spawn_signed_in(pool.clone(), Role::Admin).await;
    let page: FeaturesPage = admin.get("/api/ai_feature_settings").await.json().await.unwrap();
    assert!(page.can_add_models);
    let auditor = spawn_signed_in(pool, Role::Auditor).await;
    let page: FeaturesPage = auditor.get("/api/ai_feature_settings").await.json().await.unwrap();
    assert!(!page.can_add_models);
}
