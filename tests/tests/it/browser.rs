//! Browser tests: Debian's Chromium, driven through chromedriver, against the real server with
//! the real browser bundle (built by scripts/build-site.sh). A failing test leaves a screenshot
//! in target/browser-failures/.

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use app::auth::Role;
use fantoccini::{Client, ClientBuilder, Locator};
use sqlx::PgPool;

/// A headless Chromium session, and the chromedriver behind it.
pub(crate) struct Browser {
    page: Page,
    driver: tokio::process::Child,
    profile: std::path::PathBuf,
}

/// What a scenario drives: the browser's current page, found by visible texts.
#[derive(Clone)]
pub(crate) struct Page {
    pub(crate) client: Client,
}

impl Browser {
    pub(crate) async fn start() -> Browser {
        Browser::launch("normal").await
    }

    /// As `start`, but navigation returns once the HTML is parsed (`eager`), before the page's
    /// resources (the browser bundle among them) have loaded: what a person sees on a slow link.
    pub(crate) async fn start_eager() -> Browser {
        Browser::launch("eager").await
    }

    async fn launch(page_load_strategy: &str) -> Browser {
        let port = free_port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (scripts/setup.sh --with-browser installs it)");
        let profile = std::env::temp_dir().join(format!("duo-admin-chromium-{port}"));
        let serde_json::Value::Object(capabilities) = serde_json::json!({
            "pageLoadStrategy": page_load_strategy,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
                ]
            }
        }) else {
            unreachable!("built as an object above")
        };
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen.
        for _ in 0..100 {
            let connected = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            if let Ok(client) = connected {
                return Browser { page: Page { client }, driver, profile };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not start a Chromium session through chromedriver");
    }

    /// Runs a scenario; if it fails, saves a screenshot to target/browser-failures/ first.
    pub(crate) async fn run<F>(mut self, name: &str, scenario: impl FnOnce(Page) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let outcome = tokio::spawn(scenario(self.page.clone())).await;
        if outcome.is_err()
            && let Ok(png) = self.page.client.screenshot().await
        {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-failures");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
        let _ = self.page.client.clone().close().await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
        if let Err(error) = outcome {
            match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("the scenario did not finish: {error}"),
            }
        }
    }
}

/// How long a page may take to show what a test waits for. Generous: on a busy 2-core machine
/// (a fresh database cluster, every test running beside the browser) a sign-in and its page
/// took over 10 s. A wait ends as soon as the element is there, so this costs a passing test
/// nothing; only a failure is reported later.
const APPEARS_WITHIN: Duration = Duration::from_secs(30);

impl Page {
    /// Waits for an element and returns it.
    pub(crate) async fn find(&self, locator: Locator<'_>) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(APPEARS_WITHIN)
            .for_element(locator)
            .await
            .unwrap_or_else(|error| panic!("{locator:?} did not appear: {error}"))
    }

    /// Waits until the browser bundle has hydrated the page (on a slow link too): before that,
    /// its controls are the server's HTML, with no handlers.
    pub(crate) async fn hydrated(&self) {
        self.find(Locator::Css("html[data-hydrated]")).await;
    }

    pub(crate) async fn text_appears(&self, text: &str) {
        let xpath = format!("//*[contains(normalize-space(.), {})]", xpath_literal(text));
        self.find(Locator::XPath(&xpath)).await;
    }

    /// The input labelled `label`, as a person finds it.
    pub(crate) async fn field(&self, label: &str) -> fantoccini::elements::Element {
        let xpath = format!("//input[@id=//label[normalize-space()={}]/@for]", xpath_literal(label));
        self.find(Locator::XPath(&xpath)).await
    }

    pub(crate) async fn button(&self, text: &str) -> fantoccini::elements::Element {
        let xpath = format!("//button[normalize-space()={}]", xpath_literal(text));
        self.find(Locator::XPath(&xpath)).await
    }

    pub(crate) async fn link(&self, text: &str) -> fantoccini::elements::Element {
        let xpath = format!("//a[normalize-space()={}]", xpath_literal(text));
        self.find(Locator::XPath(&xpath)).await
    }

    /// Clicks `target` until `then` appears, and returns `then`. Right after a page loads, its
    /// buttons are the server's HTML until the browser bundle has hydrated them, which takes
    /// longer on a busy machine: a click before that does nothing, so it is clicked again.
    pub(crate) async fn click_until(
        &self,
        target: Locator<'_>,
        then: Locator<'_>,
    ) -> fantoccini::elements::Element {
        for _ in 0..10 {
            self.find(target).await.click().await.expect("the target can be clicked");
            if let Ok(found) = self.client.wait().at_most(Duration::from_secs(2)).for_element(then).await {
                return found;
            }
        }
        panic!("clicking {target:?} never brought {then:?}");
    }

    pub(crate) async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("a current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }
}

/// Keeps a picture of a page for people to look at: target/screenshots/NAME.png.
pub(crate) async fn save_screenshot(page: &Page, name: &str) {
    if let Ok(png) = page.client.screenshot().await {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub(crate) fn xpath_literal(text: &str) -> String {
    if text.contains('\'') { format!("\"{text}\"") } else { format!("'{text}'") }
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_signs_in_through_the_form_sees_the_shell_and_signs_out(pool: PgPool) {
    assert!(
        site_root().join("pkg/duo_admin_bg.wasm").exists(),
        "the browser bundle is missing from {}: run scripts/build-site.sh",
        site_root().display()
    );
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let browser = Browser::start().await;

    browser
        .run("sign_in_and_out", |b| async move {
            b.client.goto(&app.url("/admin/audit_events")).await.unwrap();
            b.text_appears("You need to sign in or sign up before continuing.").await;
            b.field("Username or primary email").await.send_keys("ada").await.unwrap();
            b.field("Password").await.send_keys(PASSWORD).await.unwrap();
            b.button("Sign in").await.click().await.unwrap();

            // Back on the page asked for, inside the admin shell.
            b.find(Locator::XPath("//h1[normalize-space()='Audit events']")).await;
            assert_eq!(b.path().await, "/admin/audit_events");
            b.text_appears("Signed in with standard authentication").await;
            b.find(Locator::Css("[data-testid=current-user]")).await;
            b.link("Configuration").await;
            b.link("Model configuration").await;

            // Pages are the server's (the bundle holds only the interactive widgets): a link of
            // the sidebar loads its page whole, which the sidebar marks as the current one.
            b.client.execute("window.__still_this_page = true; return null;", vec![]).await.unwrap();
            b.link("Overview").await.click().await.unwrap();
            b.find(Locator::XPath("//h1[normalize-space()='Admin area']")).await;
            let same_page =
                b.client.execute("return window.__still_this_page === true;", vec![]).await.unwrap();
            assert_eq!(same_page, serde_json::Value::Bool(false), "the page was loaded from the server");
            b.find(Locator::XPath("//a[@aria-current='page'][normalize-space()='Overview']")).await;

            b.button("Sign out").await.click().await.unwrap();
            b.text_appears("Signed out successfully.").await;
            b.client.goto(&app.url("/admin")).await.unwrap();
            b.field("Username or primary email").await;
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_wrong_password_shows_gitlabs_message_and_keeps_the_login(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let browser = Browser::start().await;

    browser
        .run("wrong_password", |b| async move {
            b.client.goto(&app.url("/users/sign_in")).await.unwrap();
            b.field("Username or primary email").await.send_keys("ada").await.unwrap();
            b.field("Password").await.send_keys("not it").await.unwrap();
            b.button("Sign in").await.click().await.unwrap();

            b.text_appears("Invalid login or password.").await;
            let login = b.field("Username or primary email").await.prop("value").await.unwrap();
            assert_eq!(login.as_deref(), Some("ada"));
        })
        .await;
}

impl Page {
    /// Picks `option` in the model dropdown of the feature labelled `label`, as a person does:
    /// opens it, types a part of the option to narrow the list, and clicks the option.
    pub(crate) async fn pick(&self, label: &str, search: &str, option: &str) {
        let id = format!("//label[normalize-space()={}]/@for", xpath_literal(label));
        let trigger = format!("//button[@id=concat({id}, '-trigger')]");
        let search_box = format!("//input[@role='combobox'][@aria-controls=concat({id}, '-listbox')]");
        self.click_until(Locator::XPath(&trigger), Locator::XPath(&search_box))
            .await
            .send_keys(search)
            .await
            .expect("the search box takes text");
        let choice = format!(
            "//ul[@id=concat({id}, '-listbox')]//li[@role='option'][normalize-space()={}]",
            xpath_literal(option)
        );
        self.find(Locator::XPath(&choice)).await.click().await.expect("the option can be picked");
    }

    pub(crate) async fn select(&self, label: &str, option: &str) {
        let xpath = format!(
            "//select[@id=//label[normalize-space()={}]/@for]//option[normalize-space()={}]",
            xpath_literal(label),
            xpath_literal(option)
        );
        self.find(Locator::XPath(&xpath)).await.click().await.expect("the option can be chosen");
    }

    pub(crate) async fn sign_in_as(&self, base: &str, login: &str) {
        self.client.goto(&format!("{base}/users/sign_in")).await.unwrap();
        self.field("Username or primary email").await.send_keys(login).await.unwrap();
        self.field("Password").await.send_keys(PASSWORD).await.unwrap();
        self.button("Sign in").await.click().await.unwrap();
        self.find(Locator::XPath("//h1[normalize-space()='Admin area']")).await;
    }

    /// Whether the page shows no element at `xpath`: none there, or none displayed (a platform's
    /// fields stay in the model form, hidden, while another platform is chosen).
    pub(crate) async fn shows_none(&self, xpath: &str) -> bool {
        match self.client.find_all(Locator::XPath(xpath)).await {
            Err(_) => true,
            Ok(found) => {
                for element in found {
                    if element.is_displayed().await.unwrap_or(false) {
                        return false;
                    }
                }
                true
            }
        }
    }

    /// Waits until the models table lists `name`.
    pub(crate) async fn listed_model(&self, name: &str) -> fantoccini::elements::Element {
        self.find(Locator::XPath(&format!("//tr[@data-model-name={}]", xpath_literal(name)))).await
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_adds_edits_and_deletes_self_hosted_models(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let browser = Browser::start().await;

    browser
        .run("models", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.link("Model configuration").await.click().await.unwrap();
            b.link("Self-hosted models").await.click().await.unwrap();
            b.text_appears("No self-hosted models yet.").await;
            b.link("Add self-hosted model").await.click().await.unwrap();

            // Leaving a field empty explains itself at once.
            b.field("Deployment name").await.click().await.unwrap();
            b.field("Model identifier").await.click().await.unwrap();
            b.text_appears("Please enter a deployment name.").await;

            b.field("Deployment name").await.send_keys("Mixtral on vLLM").await.unwrap();
            b.select("Model family", "Mixtral").await;
            b.field("Endpoint").await.send_keys("http://vllm.internal:8000/v1").await.unwrap();
            b.field("Model identifier").await.send_keys("custom_openai/Mixtral-8x7B-Instruct-v0.1").await.unwrap();
            b.field("API Key (optional)").await.send_keys("sk-browser-key").await.unwrap();
            b.button("Add self-hosted model").await.click().await.unwrap();
            // As in GitLab, a saved model lands on the features, to be selected for one.
            b.text_appears("Model added. Select it for a feature to start using it.").await;
            b.find(Locator::XPath("//h2[normalize-space()='Code Suggestions']")).await;
            b.link("Self-hosted models").await.click().await.unwrap();
            b.listed_model("Mixtral on vLLM").await;
            b.find(Locator::Css("[aria-label='Model uses an API token']")).await;

            b.link("Add self-hosted model").await.click().await.unwrap();
            b.field("Deployment name").await.send_keys("Claude on Bedrock").await.unwrap();
            b.select("Platform", "Amazon Bedrock").await;
            b.text_appears("AWS Bedrock Configuration Guide").await;
            b.select("Model family", "Claude").await;
            b.field("Model identifier").await.send_keys("us.anthropic.claude-3-5-sonnet-20240620-v1:0").await.unwrap();
            b.button("Add self-hosted model").await.click().await.unwrap();
            b.text_appears("Model identifier must start with \"bedrock/\"").await;
            let identifier = b.field("Model identifier").await;
            identifier.clear().await.unwrap();
            identifier.send_keys("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0").await.unwrap();
            b.button("Add self-hosted model").await.click().await.unwrap();
            b.text_appears("Model added. Select it for a feature to start using it.").await;
            b.link("Self-hosted models").await.click().await.unwrap();
            let bedrock_row = b.listed_model("Claude on Bedrock").await;
            assert!(bedrock_row.text().await.unwrap().contains("--"), "Bedrock shows no endpoint");

            // Edit the API model without touching its key.
            let row = b.listed_model("Mixtral on vLLM").await;
            row.find(Locator::XPath(".//a[normalize-space()='Edit']")).await.unwrap().click().await.unwrap();
            b.text_appears("Key set").await;
            let name = b.field("Deployment name").await;
            name.clear().await.unwrap();
            name.send_keys("Mixtral renamed").await.unwrap();
            b.button("Save changes").await.click().await.unwrap();
            b.text_appears("The self-hosted model was successfully saved.").await;
            b.link("Self-hosted models").await.click().await.unwrap();
            b.listed_model("Mixtral renamed").await;
            let sealed = app.sealed_key("Mixtral renamed").await.expect("the key is kept");
            assert_eq!(app.open_key("Mixtral renamed", &sealed).await, "sk-browser-key");

            // A model in use cannot be deleted; an unused one can.
            sqlx::query(
                "INSERT INTO feature_settings (feature, provider, self_hosted_model_id)
                 SELECT 'duo_chat', 'self_hosted', id FROM self_hosted_models WHERE name = 'Claude on Bedrock'",
            )
            .execute(&app.pool)
            .await
            .unwrap();
            b.client.refresh().await.unwrap();
            let row = b.listed_model("Claude on Bedrock").await;
            row.find(Locator::XPath(".//button[normalize-space()='Delete']")).await.unwrap().click().await.unwrap();
            b.text_appears("This self-hosted model cannot be deleted").await;
            b.text_appears("you must first remove it from the following AI Feature(s):").await;
            b.button("Cancel").await.click().await.unwrap();

            let row = b.listed_model("Mixtral renamed").await;
            row.find(Locator::XPath(".//button[normalize-space()='Delete']")).await.unwrap().click().await.unwrap();
            b.text_appears("This action cannot be undone.").await;
            b.find(Locator::XPath("//div[@role='dialog']//button[normalize-space()='Delete']")).await.click().await.unwrap();
            b.text_appears("Your self-hosted model was successfully deleted.").await;
            let remaining: Vec<String> = sqlx::query_scalar("SELECT name FROM self_hosted_models")
                .fetch_all(&app.pool)
                .await
                .unwrap();
            assert_eq!(remaining, ["Claude on Bedrock"]);
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_assigns_models_to_features_applies_to_all_and_turns_beta_on(pool: PgPool) {
    let app = spawn_app(pool).await;
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
        .run("features", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.link("Model configuration").await.click().await.unwrap();
            b.find(Locator::XPath("//h2[normalize-space()='GitLab Duo Chat']")).await;
            b.text_appears("Assign a model to enable this feature").await;
            save_screenshot(&b, "features").await;

            b.pick("General Chat", "clau", "Claude (Claude)").await;
            b.text_appears("Successfully updated GitLab Duo Chat / General Chat").await;
            b.text_appears("Uses the General Chat model: Claude").await;

            // Reloading shows what the server kept.
            b.client.refresh().await.unwrap();
            let selected = b
                .find(Locator::XPath("//select[@id=//label[normalize-space()='General Chat']/@for]"))
                .await
                .prop("value")
                .await
                .unwrap();
            let claude: i64 = sqlx::query_scalar("SELECT id FROM self_hosted_models").fetch_one(&app.pool).await.unwrap();
            assert_eq!(selected, Some(claude.to_string()));
            // The dropdowns show once the page is interactive (until then, plain forms do).
            b.find(Locator::Css(".model-listbox:not(.js-hidden)")).await;
            let shown = b
                .find(Locator::XPath("//button[@id=concat(//label[normalize-space()='General Chat']/@for, '-trigger')]"))
                .await
                .text()
                .await
                .unwrap();
            assert!(shown.starts_with("Claude (Claude)"), "the dropdown shows the stored model: {shown}");

            // "Apply to all" from the section's second row copies that row's model.
            b.pick("Code Explanation", "Claude", "Claude (Claude)").await;
            b.text_appears("Successfully updated GitLab Duo Chat / Code Explanation").await;
            b.find(Locator::XPath("//tr[@data-feature='duo_chat_explain_code']//button[normalize-space()='Apply to all']"))
                .await
                .click()
                .await
                .unwrap();
            b.text_appears("Successfully updated all GitLab Duo Chat features").await;
            let assigned: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM feature_settings WHERE feature LIKE 'duo_chat%' AND self_hosted_model_id IS NOT NULL",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            assert_eq!(assigned, 5);

            // Beta on: beta features and families appear.
            b.link("Configuration").await.click().await.unwrap();
            let beta = b.find(Locator::Id("beta-enabled")).await;
            beta.click().await.unwrap();
            b.button("Save changes").await.click().await.unwrap();
            b.text_appears("Application settings saved successfully.").await;
            b.link("Model configuration").await.click().await.unwrap();
            b.text_appears("Root Cause Analysis").await;
            b.find(Locator::XPath("//h2[normalize-space()='GitLab Duo for issues']")).await;
            b.link("Self-hosted models").await.click().await.unwrap();
            b.link("Add self-hosted model").await.click().await.unwrap();
            b.find(Locator::XPath("//option[normalize-space()='Llama 3 (Beta)']")).await;
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_says_hello_to_bedrock_and_api_models_and_tests_a_feature(pool: PgPool) {
    use crate::common::fake_bedrock::FakeBedrock;
    use crate::common::fake_openai::FakeOpenAi;
    let bedrock = FakeBedrock::start().await;
    let vllm = FakeOpenAi::start(None).await;
    let app = TestApp::builder(pool).bedrock(bedrock_client(&bedrock.url, true)).spawn().await;
    app.add_user("ada", Role::Admin).await;
    sqlx::query(
        "INSERT INTO self_hosted_models (name, platform, model_family, endpoint, identifier) VALUES
           ('Claude', 'bedrock', 'claude_3', NULL, 'bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0'),
           ('Mixtral', 'api', 'mixtral', $1, 'custom_openai/Mixtral-8x7B')",
    )
    .bind(&vllm.endpoint)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO feature_settings (feature, provider, self_hosted_model_id) SELECT 'duo_chat', 'self_hosted', id FROM self_hosted_models WHERE name = 'Claude'")
        .execute(&app.pool)
        .await
        .unwrap();
    let browser = Browser::start().await;

    browser
        .run("chat", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models")).await.unwrap();

            for (model, reply) in
                [("Claude", "Hello! How can I help you today?"), ("Mixtral", "Hello from the fake vLLM!")]
            {
                b.listed_model(model).await;
                let test = format!(
                    "//tr[@data-model-name={}]//button[normalize-space()='Test']",
                    xpath_literal(model)
                );
                let message = b.click_until(Locator::XPath(&test), Locator::Id("chat-message")).await;
                assert_eq!(message.prop("value").await.unwrap().as_deref(), Some("Hello"), "prefilled");
                b.button("Send").await.click().await.unwrap();
                b.text_appears(reply).await;
                b.find(Locator::Css("[data-testid=chat-figures]")).await;
                b.text_appears("Time to first token").await;
                b.text_appears("Output tokens").await;
                b.button("Close").await.click().await.unwrap();
            }

            // A Chat sub-feature without its own model is answered by General Chat's.
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted")).await.unwrap();
            let test = Locator::Css("button[aria-label='Test Code Explanation']");
            b.click_until(test, Locator::XPath("//button[normalize-space()='Send']")).await;
            b.button("Send").await.click().await.unwrap();
            b.text_appears("Answered by Claude (the General Chat model)").await;
            b.text_appears("Hello! How can I help you today?").await;
            b.find(Locator::Css("[data-testid=chat-figures]")).await;
            save_screenshot(&b, "chat-feature").await;
            let sent = bedrock.last_body.lock().unwrap().clone().unwrap();
            assert!(
                sent["system"][0]["text"].as_str().unwrap().contains("Explain the code"),
                "the feature's prompt: {sent}"
            );
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_adds_an_azure_openai_model_sees_the_hints_follow_and_says_hello(pool: PgPool) {
    use crate::common::fake_azure::FakeAzure;
    let azure = FakeAzure::start("az-browser-key").await;
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let browser = Browser::start().await;

    browser
        .run("azure", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/new")).await.unwrap();
            let hint = |b: &Page| {
                let b = b.clone();
                async move {
                    let field = b.field("Model identifier").await;
                    field.attr("placeholder").await.unwrap().unwrap_or_default()
                }
            };

            // The identifier's hint follows the platform and the family, as in GitLab.
            // The hints follow the dropdowns once the page is interactive: a choice made before
            // would stay on screen (and be saved) while the hints lag behind.
            b.hydrated().await;
            b.field("Deployment name").await.send_keys("GPT-4o on Azure").await.unwrap();
            b.select("Model family", "GPT").await;
            b.text_appears("Provide the model identifier in the form of provider/model-name").await;
            assert_eq!(hint(&b).await, "");
            b.select("Model family", "Mistral").await;
            b.text_appears("Provide the model identifier in the form of custom_openai/model-name").await;
            assert_eq!(hint(&b).await, "custom_openai/");
            b.select("Platform", "Amazon Bedrock").await;
            b.text_appears("Provide the model identifier in the form of bedrock/model-name").await;
            assert_eq!(hint(&b).await, "bedrock/");
            b.select("Platform", "API").await;
            b.select("Model family", "GPT").await;

            b.field("Endpoint").await.send_keys(&azure.endpoint).await.unwrap();
            b.field("Model identifier").await.send_keys("azure/gpt4o-prod").await.unwrap();
            b.field("API Key (optional)").await.send_keys("az-browser-key").await.unwrap();
            b.button("Test connection").await.click().await.unwrap();
            b.text_appears("Successfully connected to the self-hosted model").await;
            // The result speaks for the values tested: a change clears it.
            let name = b.field("Deployment name").await;
            name.send_keys(" ").await.unwrap();
            name.send_keys(&String::from(char::from(fantoccini::key::Key::Backspace))).await.unwrap();
            b.client
                .wait()
                .for_element(Locator::XPath(
                    "//body[not(contains(., 'Successfully connected to the self-hosted model'))]",
                ))
                .await
                .unwrap();
            b.button("Add self-hosted model").await.click().await.unwrap();
            b.text_appears("Model added. Select it for a feature to start using it.").await;

            b.link("Self-hosted models").await.click().await.unwrap();
            b.listed_model("GPT-4o on Azure").await;
            let test = "//tr[@data-model-name='GPT-4o on Azure']//button[normalize-space()='Test']";
            b.click_until(Locator::XPath(test), Locator::Id("chat-message")).await;
            b.button("Send").await.click().await.unwrap();
            b.text_appears("Hello from Azure OpenAI!").await;
            let seen = azure.requests();
            assert!(seen.iter().all(|request| request.api_key.as_deref() == Some("az-browser-key")));
            assert!(seen.iter().all(|request| request.deployment == "gpt4o-prod"));
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn test_all_on_the_models_tab_shows_each_outcome_and_the_summary(pool: PgPool) {
    use crate::common::fake_bedrock::FakeBedrock;
    let bedrock = FakeBedrock::start().await;
    let app = TestApp::builder(pool).bedrock(bedrock_client(&bedrock.url, true)).spawn().await;
    app.add_user("ada", Role::Admin).await;
    sqlx::query(
        "INSERT INTO self_hosted_models (name, platform, model_family, endpoint, identifier) VALUES
           ('Claude', 'bedrock', 'claude_3', NULL, 'bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0'),
           ('Down', 'api', 'mistral', 'http://127.0.0.1:9/v1', 'custom_openai/m')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let browser = Browser::start().await;

    browser
        .run("test-all", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models")).await.unwrap();
            b.listed_model("Claude").await;
            let summary = Locator::XPath("//p[normalize-space()='1 of 2 answered']");
            b.click_until(Locator::XPath("//button[normalize-space()='Test all']"), summary).await;
            b.text_appears("Could not connect to http://127.0.0.1:9/v1").await;
            b.text_appears("Successfully connected to the self-hosted model").await;
            save_screenshot(&b, "test-all").await;
            // Each model's name leads to its history (here with a day of scheduled checks too).
            sqlx::query(
                "INSERT INTO model_tests (model_id, ran_at, ran_by, kind, ok, message, total_ms)
                 SELECT id, now() - make_interval(mins => n * 30), 'scheduled checks', 'scheduled', n % 9 <> 4,
                        CASE WHEN n % 9 = 4 THEN 'Amazon Bedrock is throttling requests or the model is not ready' ELSE 'Answered' END,
                        300 + (n * 37) % 400
                 FROM self_hosted_models, generate_series(1, 48) AS n WHERE name = 'Claude'",
            )
            .execute(&app.pool)
            .await
            .unwrap();
            b.link("Claude").await.click().await.unwrap();
            b.text_appears("Claude: test history").await;
            b.find(Locator::Css("svg.history-chart")).await;
            b.text_appears("Amazon Bedrock is throttling requests or the model is not ready").await;
            save_screenshot(&b, "model-history").await;
        })
        .await;
}

impl Page {
    /// The value of the control labelled `label` (an input or a select).
    pub(crate) async fn value_of(&self, label: &str) -> String {
        let xpath = format!("//*[@id=//label[normalize-space()={}]/@for]", xpath_literal(label));
        self.find(Locator::XPath(&xpath)).await.prop("value").await.unwrap().unwrap_or_default()
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_picks_identifiers_from_the_models_an_endpoint_and_a_bedrock_region_offer(pool: PgPool) {
    use crate::common::fake_bedrock::FakeBedrock;
    use crate::common::fake_openai::FakeOpenAi;
    let vllm = FakeOpenAi::start(Some("sk-browser-list")).await;
    let bedrock = FakeBedrock::start().await;
    let app = TestApp::builder(pool)
        .bedrock(bedrock_client(&bedrock.url, true))
        .bedrock_catalog(bedrock_catalog_client(&bedrock.url))
        .spawn()
        .await;
    app.add_user("ada", Role::Admin).await;
    let browser = Browser::start().await;

    browser
        .run("discovery", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/new")).await.unwrap();
            let load = "//button[normalize-space()='Load models']";
            let discovered = "//select[@id=//label[normalize-space()='Discovered models']/@for]";

            // An OpenAI-compatible endpoint: without its key the failure is named at the key.
            b.field("Deployment name").await.send_keys("Mixtral on vLLM").await.unwrap();
            b.field("Endpoint").await.send_keys(&vllm.endpoint).await.unwrap();
            b.click_until(Locator::XPath(load), Locator::XPath("//*[contains(., 'It needs an API key')]"))
                .await;
            b.field("API Key (optional)").await.send_keys("sk-browser-list").await.unwrap();
            b.button("Load models").await.click().await.unwrap();
            b.find(Locator::XPath(discovered)).await;
            b.text_appears("2 models found.").await;
            b.select("Discovered models", "Mixtral-8x7B-Instruct-v0.1").await;
            assert_eq!(b.value_of("Model identifier").await, "custom_openai/Mixtral-8x7B-Instruct-v0.1");
            assert_eq!(b.value_of("Model family").await, "mixtral", "the family its name suggests");
            // The identifier stays editable.
            let identifier = b.field("Model identifier").await;
            identifier.send_keys("-edited").await.unwrap();
            assert_eq!(
                b.value_of("Model identifier").await,
                "custom_openai/Mixtral-8x7B-Instruct-v0.1-edited"
            );
            b.select("Discovered models", "mistralai/Mistral-7B-Instruct-v0.3").await;
            b.select("Discovered models", "Mixtral-8x7B-Instruct-v0.1").await;
            assert_eq!(b.value_of("Model identifier").await, "custom_openai/Mixtral-8x7B-Instruct-v0.1");
            let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM self_hosted_models")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            assert_eq!(stored, 0, "nothing stored before Save");
            b.button("Add self-hosted model").await.click().await.unwrap();
            b.text_appears("Model added. Select it for a feature to start using it.").await;

            // Bedrock: a region of its own, the id it suggests there, then its catalog.
            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/new")).await.unwrap();
            b.field("Deployment name").await.send_keys("Claude in Paris").await.unwrap();
            b.select("Platform", "Amazon Bedrock").await;
            b.text_appears("Leave it blank to use the console's region (us-east-1).").await;
            b.field("AWS region (optional)").await.send_keys("eu-west-3").await.unwrap();
            b.text_appears(
                "In eu-west-3, models are called through inference profiles that start with \"eu.\"",
            )
            .await;
            b.field("Model identifier")
                .await
                .send_keys("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0")
                .await
                .unwrap();
            b.button("Use bedrock/eu.anthropic.claude-3-5-sonnet-20240620-v1:0").await.click().await.unwrap();
            assert_eq!(
                b.value_of("Model identifier").await,
                "bedrock/eu.anthropic.claude-3-5-sonnet-20240620-v1:0"
            );
            b.button("Load models").await.click().await.unwrap();
            // By keyboard: the list starts at the identifier typed, the arrow picks the next.
            let list = b.find(Locator::XPath(discovered)).await;
            assert_eq!(
                list.prop("value").await.unwrap().as_deref(),
                Some("bedrock/eu.anthropic.claude-3-5-sonnet-20240620-v1:0")
            );
            list.send_keys(&String::from(char::from(fantoccini::key::Key::Down))).await.unwrap();
            assert_eq!(b.value_of("Model identifier").await, "bedrock/eu.meta.llama3-2-90b-instruct-v1:0");
            assert_eq!(b.value_of("Model family").await, "", "Llama 3 is a beta family, and beta is off");
            b.select(
                "Discovered models",
                "EU Meta Llama 3.2 90B Instruct (eu.meta.llama3-2-90b-instruct-v1:0)",
            )
            .await;
            assert_eq!(b.value_of("Model identifier").await, "bedrock/eu.meta.llama3-2-90b-instruct-v1:0");
            b.select(
                "Discovered models",
                "EU Anthropic Claude 3.5 Sonnet (eu.anthropic.claude-3-5-sonnet-20240620-v1:0)",
            )
            .await;
            assert_eq!(b.value_of("Model family").await, "claude_3");
            b.button("Add self-hosted model").await.click().await.unwrap();
            b.text_appears("Model added. Select it for a feature to start using it.").await;

            let saved: Vec<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT identifier, model_family, bedrock_region FROM self_hosted_models ORDER BY name",
            )
            .fetch_all(&app.pool)
            .await
            .unwrap();
            assert_eq!(
                saved,
                [
                    (
                        "bedrock/eu.anthropic.claude-3-5-sonnet-20240620-v1:0".to_owned(),
                        "claude_3".to_owned(),
                        Some("eu-west-3".to_owned())
                    ),
                    ("custom_openai/Mixtral-8x7B-Instruct-v0.1".to_owned(), "mixtral".to_owned(), None),
                ]
            );

            // The list shows the region; the model says hello from it.
            b.link("Self-hosted models").await.click().await.unwrap();
            let row = b.listed_model("Claude in Paris").await;
            assert!(row.text().await.unwrap().contains("Region: eu-west-3"));
            let test = "//tr[@data-model-name='Claude in Paris']//button[normalize-space()='Test']";
            b.click_until(Locator::XPath(test), Locator::Id("chat-message")).await;
            b.button("Send").await.click().await.unwrap();
            b.text_appears("Hello! How can I help you today?").await;
            assert_eq!(bedrock.signed_regions().last().map(String::as_str), Some("eu-west-3"));
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_user_creates_a_token_from_the_user_menu_sees_it_once_and_revokes_it(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let browser = Browser::start().await;
    let base = app.address.clone();
    let api = app.url("/api/v1/settings");

    browser
        .run("personal_access_token", |b| async move {
            b.sign_in_as(&base, "ada").await;
            b.link("Access tokens").await.click().await.unwrap();
            b.find(Locator::XPath("//h1[normalize-space()='Personal access tokens']")).await;
            b.text_appears("This user has no active personal access tokens.").await;
            b.field("Token name").await.send_keys("CI bot").await.unwrap();
            let shown = b
                .click_until(
                    Locator::XPath("//button[normalize-space()='Create token']"),
                    Locator::Css("[data-testid=created-token]"),
                )
                .await;
            let token = shown.prop("value").await.unwrap().expect("the token is shown");
            assert!(token.starts_with("duopat-"), "{token}");
            b.text_appears("Make sure you save it - you won't be able to access it again.").await;
            b.find(Locator::XPath("//td[normalize-space()='CI bot']")).await;
            let used = reqwest::Client::new().get(&api).bearer_auth(&token).send().await.unwrap();
            assert_eq!(used.status(), reqwest::StatusCode::OK);

            // Shown once: a fresh load of the page lists the token, never its value.
            b.client.refresh().await.unwrap();
            b.find(Locator::XPath("//td[normalize-space()='CI bot']")).await;
            assert!(!b.client.source().await.unwrap().contains(&token));
            b.click_until(
                Locator::XPath("//button[normalize-space()='Revoke']"),
                Locator::XPath("//*[normalize-space()='This user has no active personal access tokens.']"),
            )
            .await;
            let refused = reqwest::Client::new().get(&api).bearer_auth(&token).send().await.unwrap();
            assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
        })
        .await;
}
