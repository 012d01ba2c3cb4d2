//! The modals by keyboard: focus moves in and stays in, Escape and the backdrop close, focus
//! goes back to the opener; in the chat box Enter sends and Shift+Enter adds a line.

use fantoccini::Locator;
use fantoccini::key::Key;
use sqlx::PgPool;

use crate::browser::{Browser, Page};
use crate::common::fake_bedrock::FakeBedrock;
use crate::common::*;
use app::auth::Role;

async fn focused(b: &Page) -> String {
    let described = b
        .client
        .execute(
            "const e = document.activeElement; return (e.id || '') + '|' + e.textContent.trim().slice(0, 40) + '|' + e.tagName;",
            vec![],
        )
        .await
        .unwrap();
    described.as_str().unwrap_or_default().to_owned()
}

async fn press(b: &Page, key: Key) {
    b.client.active_element().await.unwrap().send_keys(&String::from(char::from(key))).await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn modals_take_and_give_back_focus_and_the_chat_box_sends_on_enter(pool: PgPool) {
    let bedrock = FakeBedrock::start().await;
    let app = TestApp::builder(pool).bedrock(bedrock_client(&bedrock.url, true)).spawn().await;
    app.add_user("ada", Role::Admin).await;
    sqlx::query(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
         VALUES ('Claude', 'bedrock', 'claude_3', 'bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let browser = Browser::start().await;

    browser
        .run("modals", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models")).await.unwrap();
            b.listed_model("Claude").await;

            // The chat box: opened from "Test", focus lands in the message.
            let test = Locator::XPath("//tr[@data-model-name='Claude']//button[normalize-space()='Test']");
            b.click_until(test, Locator::Id("chat-message")).await;
            assert!(focused(&b).await.starts_with("chat-message|"), "{}", focused(&b).await);
            // Shift+Enter adds a line; Enter sends.
            let message = b.find(Locator::Id("chat-message")).await;
            message
                .send_keys(&format!("{}{}", char::from(Key::Shift), char::from(Key::Enter)))
                .await
                .unwrap();
            message.send_keys("there").await.unwrap();
            let typed = message.prop("value").await.unwrap().unwrap_or_default();
            assert!(
                typed.contains('\n') && typed.contains("Hello") && typed.contains("there"),
                "Shift+Enter added a line and sent nothing: {typed:?}"
            );
            press(&b, Key::Enter).await;
            b.text_appears("Hello! How can I help you today?").await;
            // Tab stays inside: from the last control it comes back to the first.
            for _ in 0..8 {
                press(&b, Key::Tab).await;
                let now = focused(&b).await;
                let inside: bool = b
                    .client
                    .execute("return !!document.activeElement.closest('[role=dialog]');", vec![])
                    .await
                    .unwrap()
                    .as_bool()
                    .unwrap();
                assert!(inside, "Tab left the dialog for {now}");
            }
            // Escape closes it, and focus goes back to its "Test" button.
            press(&b, Key::Escape).await;
            // (The list is read again, with the new last test; focus follows to its new button.)
            b.find(Locator::Css("tr[data-model-name='Claude'] button[data-test-model]:focus")).await;

            // The delete modal: a click on the backdrop closes it too.
            let delete =
                Locator::XPath("//tr[@data-model-name='Claude']//button[normalize-space()='Delete']");
            b.click_until(delete, Locator::Css("[role=dialog]")).await;
            assert!(focused(&b).await.contains("|Cancel|BUTTON"), "the first control: {}", focused(&b).await);
            b.client.execute("document.querySelector('.modal-backdrop').click();", vec![]).await.unwrap();
            b.find(Locator::XPath("//tr[@data-model-name='Claude']//button[normalize-space()='Delete']"))
                .await;
            assert!(focused(&b).await.contains("|Delete|BUTTON"), "{}", focused(&b).await);
            let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM self_hosted_models")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            assert_eq!(remaining, 1, "closing is not deleting");
        })
        .await;
}
