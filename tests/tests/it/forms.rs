//! Forms that keep what was typed: a refused Configuration save keeps the typed values beside
//! their errors, the timeout is checked as it is typed (Save disabled while it is wrong), and
//! focus goes to the first field in error, marked `aria-invalid` and described by its message.

use fantoccini::Locator;
use sqlx::PgPool;

use crate::browser::Browser;
use crate::common::*;
use app::auth::Role;

#[sqlx::test(migrations = "../migrations")]
async fn a_refused_configuration_keeps_what_was_typed_and_points_at_the_first_error(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let browser = Browser::start().await;

    browser
        .run("forms", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/configuration")).await.unwrap();

            // The timeout is checked as it is typed.
            let timeout = b.field("AI Gateway request timeout").await;
            timeout.clear().await.unwrap();
            timeout.send_keys("30").await.unwrap();
            b.text_appears("The AI Gateway request timeout must be a whole number from 60 to 600.").await;
            let save = b.button("Save changes").await;
            assert!(save.attr("disabled").await.unwrap().is_some(), "Save waits for a valid timeout");
            assert_eq!(timeout.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
            assert_eq!(
                timeout.attr("aria-describedby").await.unwrap().as_deref(),
                Some("ai-gateway-timeout-error")
            );
            timeout.clear().await.unwrap();
            timeout.send_keys("120").await.unwrap();

            // A URL the server refuses: the typed values stay, focus goes to the field.
            b.field("Local AI Gateway URL").await.send_keys("ftp://gateway.example").await.unwrap();
            b.button("Save changes").await.click().await.unwrap();
            // The form is posted and its page comes back. The field's help already holds the
            // error's words, so the test waits for what only the new page has: the field
            // marked, focused and described by its error, and reads the values from that page.
            let gateway = b.find(Locator::Css("#ai-gateway-url[aria-invalid='true']:focus")).await;
            let error = b.find(Locator::Css("#ai-gateway-url-error")).await;
            assert!(error.text().await.unwrap().contains("The URL must be a complete URL"));
            assert_eq!(
                gateway.attr("aria-describedby").await.unwrap().as_deref(),
                Some("ai-gateway-url-error")
            );
            assert_eq!(gateway.prop("value").await.unwrap().as_deref(), Some("ftp://gateway.example"));
            assert_eq!(
                b.field("AI Gateway request timeout").await.prop("value").await.unwrap().as_deref(),
                Some("120")
            );
            let stored: i32 = sqlx::query_scalar("SELECT ai_gateway_timeout_seconds FROM instance_settings")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            assert_eq!(stored, 60, "nothing was saved");
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn without_javascript_a_refused_configuration_comes_back_as_typed_with_its_errors(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let page = app.url("/admin/gitlab_duo/configuration");
    let typed = [
        ("ai_gateway_timeout_seconds", "30"),
        ("ai_gateway_url", "ftp://gateway.example"),
        ("duo_agent_platform_service_url", "agents.example:50052"),
    ];

    let refused = app
        .client
        .post(app.url("/api/update_duo_configuration"))
        .header("accept", "text/html")
        .header("referer", &page)
        .form(&typed)
        .send()
        .await
        .unwrap();

    assert_eq!(refused.status(), reqwest::StatusCode::FOUND);
    let back = location(&refused);
    assert!(back.starts_with(&page), "{back}");
    let html = app.client.get(&back).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(app::configuration::TIMEOUT_RANGE), "the timeout's error");
    assert!(html.contains(app::configuration::GATEWAY_URL_INVALID), "the URL's error");
    for (_, value) in typed {
        assert!(html.contains(&format!(r#"value="{value}""#)), "{value} is shown as typed");
    }
    let saved: (i32, Option<String>) =
        sqlx::query_as("SELECT ai_gateway_timeout_seconds, ai_gateway_url FROM instance_settings")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(saved, (60, None), "nothing of a refused save is stored");
    let again = app.client.get(&page).send().await.unwrap().text().await.unwrap();
    assert!(!again.contains("ftp://gateway.example"), "what was typed is shown once");
    assert!(again.contains(r#"value="60""#), "then the saved values again");
}

/// The model form checks the endpoint as the admin leaves it, in the browser: the bundle reads
/// URLs with the browser's own parser (it carries no URL crate), which must answer as the
/// server's does. Each message is the server's own text for that value.
#[sqlx::test(migrations = "../migrations")]
async fn the_model_form_checks_the_endpoint_with_the_browsers_own_url_parser(pool: PgPool) {
    use app::models::domain::{ENDPOINT_INVALID, ENDPOINT_WITH_CREDENTIALS, Endpoint};
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let browser = Browser::start().await;

    browser
        .run("endpoint-check", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/new")).await.unwrap();
            // The check runs in the browser bundle: typed before it hydrates, no one checks.
            b.hydrated().await;
            let error = "//p[@id='model-endpoint-error']";
            let cases = [
                ("http://ada:secret@vllm:8000/v1", Some(ENDPOINT_WITH_CREDENTIALS)),
                ("vllm:8000/v1", Some(ENDPOINT_INVALID)),
                ("http://vllm:99999/v1", Some(ENDPOINT_INVALID)),
                ("ftp://vllm/v1", Some(ENDPOINT_INVALID)),
                ("https://vLLM.internal:8443/v1?user=a@b", None),
                ("http://bücher.example/v1", None),
            ];
            for (typed, expected) in cases {
                // The server's rule says the same of each value.
                let server = Endpoint::parse(typed).err();
                assert_eq!(server, expected, "the server's rule for {typed}");
                let endpoint = b.field("Endpoint").await;
                endpoint.clear().await.unwrap();
                endpoint.send_keys(typed).await.unwrap();
                // Leaving the field (for another field, not the submit button) checks it.
                b.field("Deployment name").await.click().await.unwrap();
                match expected {
                    Some(message) => {
                        let shown = b.find(Locator::XPath(error)).await.text().await.unwrap();
                        assert_eq!(shown, message, "the browser's check of {typed}");
                    }
                    None => {
                        b.find(Locator::Css("#model-endpoint[aria-invalid='false']")).await;
                        let shown = b.client.find_all(Locator::XPath(error)).await.unwrap();
                        assert!(shown.is_empty(), "{typed} is a valid endpoint");
                    }
                }
            }
        })
        .await;
}

/// The address a refused plain form post to `server_fn` goes back to, as Leptos writes it, with
/// `error` in it: anyone can put such an address in a link.
fn forged_refusal(page: &str, server_fn: &str, error: serde_json::Value) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::URL_SAFE.encode(error.to_string());
    format!("{page}?__path=%2Fapi%2F{server_fn}&__err={encoded}")
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refusal_forged_into_a_link_shows_none_of_its_words(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let lure = "Your session expired: call 555-0100 to sign in again";
    let shown = |address: String| {
        let app = &app;
        async move { app.get(&address).await.text().await.unwrap() }
    };
    let at_field = |field: &str| serde_json::json!({ "Validation": { field: lure } });

    let configuration = "/admin/gitlab_duo/configuration";
    let page =
        shown(forged_refusal(configuration, "update_duo_configuration", at_field("ai_gateway_url"))).await;
    assert!(!page.contains("call 555"), "a field error read from the address");

    let new_model = "/admin/gitlab_duo/self_hosted/models/new";
    let page = shown(forged_refusal(new_model, "save_self_hosted_model", at_field("name"))).await;
    assert!(!page.contains("call 555"), "a field error read from the address");
    let page =
        shown(forged_refusal(new_model, "save_self_hosted_model", serde_json::json!({ "Conflict": lure })))
            .await;
    assert!(!page.contains("call 555"), "a refusal's words read from the address");
    assert!(page.contains(app::models::form::SAVE_ERROR), "the console's own words instead");
}
