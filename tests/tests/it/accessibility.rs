//! Every page, both modals, the chat box and the open model dropdown checked with axe-core (the
//! rules GitLab's own front end is checked by): no serious or critical violation. axe-core is
//! installed by `scripts/setup.sh --with-browser` into target/tools and injected through
//! WebDriver's execute call, which the pages' Content-Security-Policy does not apply to.

use crate::browser::{Browser, Page};
use crate::common::*;
use app::auth::Role;
use fantoccini::Locator;
use sqlx::PgPool;

/// axe-core's browser script, as setup.sh installs it.
pub(crate) fn axe_source() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tools/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{} ({error}): run scripts/setup.sh --with-browser", path.display()))
}

/// Checks the page as it is now; returns one line per serious or critical violation and element.
pub(crate) async fn violations(page: &Page, axe: &str, what: &str) -> Vec<String> {
    page.client.execute(&format!("{axe}\nreturn typeof axe;"), vec![]).await.expect("axe-core loads");
    let found = page
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(result => done(result.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .flatMap(v => v.nodes.map(n => v.impact + ' ' + v.id + ': ' + v.help + ' at ' + n.target.join(' ')))))
               .catch(error => done(['axe-core failed: ' + error]));",
            vec![],
        )
        .await
        .expect("axe-core runs");
    let found: Vec<String> = serde_json::from_value(found).expect("a list of texts");
    found.into_iter().map(|line| format!("{what}: {line}")).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn axe_core_finds_no_serious_or_critical_violation_on_any_page(pool: PgPool) {
    let bedrock = crate::common::fake_bedrock::FakeBedrock::start().await;
    let app = TestApp::builder(pool).bedrock_catalog(bedrock_catalog_client(&bedrock.url)).spawn().await;
    app.add_user("ada", Role::Admin).await;
    let model: i64 = sqlx::query_scalar(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
         VALUES ('Claude', 'bedrock', 'claude_3', 'bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0')
         RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let axe = axe_source();
    let browser = Browser::start().await;

    browser
        .run("accessibility", |b| async move {
            let base = app.address.clone();
            let mut found = Vec::new();
            b.client.goto(&format!("{base}/users/sign_in")).await.unwrap();
            b.field("Username or primary email").await;
            found.extend(violations(&b, &axe, "sign-in page").await);

            b.sign_in_as(&base, "ada").await;
            found.extend(violations(&b, &axe, "admin overview").await);

            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted")).await.unwrap();
            b.find(Locator::Css(".model-listbox:not(.js-hidden)")).await;
            found.extend(violations(&b, &axe, "features tab").await);
            b.click_until(
                Locator::Id("feature-duo_chat-trigger"),
                Locator::Css("input[aria-controls='feature-duo_chat-listbox']"),
            )
            .await;
            found.extend(violations(&b, &axe, "open model dropdown").await);

            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models")).await.unwrap();
            b.listed_model("Claude").await;
            found.extend(violations(&b, &axe, "models tab").await);
            let delete = "//tr[@data-model-name='Claude']//button[normalize-space()='Delete']";
            b.click_until(Locator::XPath(delete), Locator::Css("[role=dialog]")).await;
            b.text_appears("This action cannot be undone.").await;
            found.extend(violations(&b, &axe, "delete modal").await);
            b.button("Cancel").await.click().await.unwrap();
            let test = "//tr[@data-model-name='Claude']//button[normalize-space()='Test']";
            b.click_until(Locator::XPath(test), Locator::Id("chat-message")).await;
            found.extend(violations(&b, &axe, "chat box").await);

            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/new")).await.unwrap();
            b.field("Deployment name").await;
            found.extend(violations(&b, &axe, "new-model form").await);
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/{model}/edit")).await.unwrap();
            b.field("Deployment name").await;
            found.extend(violations(&b, &axe, "edit form").await);
            b.click_until(
                Locator::XPath("//button[normalize-space()='Load models']"),
                Locator::XPath("//select[@id=//label[normalize-space()='Discovered models']/@for]"),
            )
            .await;
            found.extend(violations(&b, &axe, "edit form with discovered models").await);

            b.client.goto(&format!("{base}/admin/gitlab_duo/configuration")).await.unwrap();
            b.button("Save changes").await;
            found.extend(violations(&b, &axe, "Configuration page").await);

            b.client.goto(&format!("{base}/admin/audit_events")).await.unwrap();
            b.button("Filter").await;
            found.extend(violations(&b, &axe, "audit events page").await);

            assert!(found.is_empty(), "axe-core found:\n{}", found.join("\n"));
        })
        .await;
}
