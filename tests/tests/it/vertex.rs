//! Google Vertex AI models, tested over Google's own wire against a local Vertex AI that
//! speaks it (`common::fake_vertex`): the real `gcp_auth` crate reads a service account's key
//! file, signs its JWT grant, and the fake's token endpoint checks the signature before it
//! issues the bearer token every model call must carry. Gemini streams
//! `streamGenerateContent`, Claude `streamRawPredict`; each failure is named.

use sqlx::PgPool;

use crate::common::fake_vertex::{
    CLAUDE, CLAUDE_LOCATION, FakeVertex, GEMINI, service_account_key, unknown_key,
};
use crate::common::*;
use crate::discovery::nothing_stored;
use app::auth::Role;
use app::chat::ChatEvent;
use app::models::domain::{LOCATION_INVALID, LOCATION_REQUIRED, PROJECT_INVALID, PROJECT_REQUIRED};

async fn spawn_with(pool: PgPool, vertex: &FakeVertex) -> TestApp {
    TestApp::builder(pool).vertex(vertex.access(service_account_key())).spawn_signed_in(Role::Admin).await
}

/// Gemini is a beta family (GitLab's), chosen only while beta models are on.
pub(crate) async fn turn_beta_on(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO testing_terms_acceptances (user_id, user_email) SELECT id, email FROM users LIMIT 1",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Another console on the same database, reaching Vertex AI through `access`, signed in as
/// the admin an earlier one added.
async fn another_console(pool: &PgPool, access: app::chat::client::VertexAccess) -> TestApp {
    let app = TestApp::builder(pool.clone()).vertex(access).spawn().await;
    assert_eq!(location(&app.sign_in(username(Role::Admin), PASSWORD).await), "/admin");
    app
}

fn gemini(project: &str, location: &str) -> Vec<(&'static str, String)> {
    vertex_form("Gemini on Vertex", "gemini", &format!("vertex_ai/{GEMINI}"), project, location)
}

fn claude(model: &str, location: &str) -> Vec<(&'static str, String)> {
    vertex_form("Claude on Vertex", "claude_3", &format!("vertex_ai/{model}"), "duo-prod-1", location)
}

#[sqlx::test(migrations = "../migrations")]
async fn a_gemini_model_says_hello_with_a_token_from_the_service_accounts_key(pool: PgPool) {
    let vertex = FakeVertex::start().await;
    let app = spawn_with(pool, &vertex).await;

    let result = app.test_connection(&gemini("duo-prod-1", "us-central1")).await;

    assert!(result.ok, "{}", result.message);
    assert_eq!(result.reply, "Hello from Gemini on Vertex AI!");
    let seen = vertex.requests();
    assert_eq!(seen.len(), 1);
    let call = &seen[0];
    assert_eq!(
        (call.project.as_str(), call.location.as_str(), call.publisher.as_str(), call.model.as_str()),
        ("duo-prod-1", "us-central1", "google", GEMINI),
        "the model without vertex_ai/, in its project and location"
    );
    assert_eq!((call.method.as_str(), call.alt.as_deref()), ("streamGenerateContent", Some("sse")));
    assert!(call.authorization.as_deref().is_some_and(|value| value.starts_with("Bearer ya29.fake-")));
    assert_eq!(call.body["contents"][0]["role"], "user");
    assert_eq!(call.body["contents"][0]["parts"][0]["text"], app::chat::api::TEST_PROMPT);
    assert!(call.body["generationConfig"]["maxOutputTokens"].is_number());

    // Saved, it streams in the chat with its figures; the token is reused while it is valid.
    turn_beta_on(&app.pool).await;
    let id = app.save_model(&gemini("duo-prod-1", "us-central1")).await;
    let events = app.chat(id, "Hello").await;
    assert_eq!(reply_text(&events), "Hello from Gemini on Vertex AI!");
    let Some(ChatEvent::Done(figures)) = events.last() else { panic!("{events:?}") };
    assert_eq!((figures.input_tokens, figures.output_tokens), (Some(9), Some(6)));
    assert_eq!(figures.stop_reason.as_deref(), Some("STOP"));
    assert_eq!(vertex.token_requests(), 1, "one token for both calls");
    let system = &vertex.requests()[1].body["systemInstruction"];
    assert!(system.is_null() || system["parts"][0]["text"].is_string(), "{system}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_claude_model_on_vertex_says_hello_over_anthropics_events(pool: PgPool) {
    let vertex = FakeVertex::start().await;
    let app = spawn_with(pool, &vertex).await;

    let result = app.test_connection(&claude(CLAUDE, CLAUDE_LOCATION)).await;

    assert!(result.ok, "{}", result.message);
    assert_eq!(result.reply, "Hello from Claude on Vertex AI!");
    let call = &vertex.requests()[0];
    assert_eq!((call.publisher.as_str(), call.model.as_str()), ("anthropic", CLAUDE));
    assert_eq!(call.method, "streamRawPredict");
    assert_eq!(call.body["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(call.body["stream"], true);
    assert!(call.body.get("model").is_none(), "the path names the model");
    assert_eq!(call.body["messages"][0]["content"], app::chat::api::TEST_PROMPT);

    let id = app.save_model(&claude(CLAUDE, CLAUDE_LOCATION)).await;
    let events = app.chat(id, "Hello").await;
    assert_eq!(reply_text(&events), "Hello from Claude on Vertex AI!");
    let Some(ChatEvent::Done(figures)) = events.last() else { panic!("{events:?}") };
    assert_eq!((figures.input_tokens, figures.output_tokens), (Some(11), Some(7)));
    assert_eq!(figures.stop_reason.as_deref(), Some("end_turn"));
}

#[sqlx::test(migrations = "../migrations")]
async fn each_vertex_failure_is_named_with_what_to_do(pool: PgPool) {
    let vertex = FakeVertex::start().await;
    let app = spawn_with(pool, &vertex).await;
    let cases = [
        (
            gemini("denied-project", "us-central1"),
            "denied access in project denied-project (403 PERMISSION_DENIED)",
        ),
        (
            claude(CLAUDE, "us-central1"),
            "has no model \"claude-3-5-sonnet@20240620\" in us-central1 for project duo-prod-1 (404 NOT_FOUND)",
        ),
        (
            vertex_form("Gemini Pro", "gemini", "vertex_ai/gemini-1.5-pro-002", "duo-prod-1", "us-central1"),
            "quota for this model in us-central1 is used up (429 RESOURCE_EXHAUSTED)",
        ),
        (claude("claude-3-opus@20240229", CLAUDE_LOCATION), "overloaded in us-east5"),
    ];
    for (form, expected) in cases {
        let result = app.test_connection(&form).await;
        assert!(!result.ok);
        assert!(result.message.contains(expected), "{expected}: {}", result.message);
        assert!(!result.message.contains("ya29"), "never the token: {}", result.message);
    }
    let unreachable = another_console(
        &app.pool,
        app::chat::client::VertexAccess {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            ..vertex.access(service_account_key())
        },
    )
    .await;
    let result = unreachable.test_connection(&gemini("duo-prod-1", "us-central1")).await;
    assert!(
        result.message.contains("Could not reach Google Vertex AI at http://127.0.0.1:9"),
        "{}",
        result.message
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_server_that_ignores_alt_sse_is_read_as_one_json_array_and_a_garbled_event_is_named(pool: PgPool) {
    let vertex = FakeVertex::start().await;
    let app = spawn_with(pool, &vertex).await;
    let form =
        |model: &str| vertex_form("G", "gemini", &format!("vertex_ai/{model}"), "duo-prod-1", "us-central1");

    let whole = app.test_connection(&form("gemini-json-001")).await;
    let garbled = app.test_connection(&form("gemini-garbled-001")).await;

    assert!(whole.ok, "{}", whole.message);
    assert_eq!(whole.reply, "Hello from Gemini on Vertex AI!");
    assert_eq!(whole.figures.stop_reason.as_deref(), Some("STOP"));
    assert!(!garbled.ok);
    assert!(
        garbled.message.contains("could not be read") && garbled.message.contains("VERTEX_AI_ENDPOINT_URL")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn without_google_credentials_a_vertex_model_is_told_so_not_a_panic(pool: PgPool) {
    // The harness's default: no credentials configured at all.
    let app = spawn_signed_in(pool, Role::Admin).await;

    let result = app.test_connection(&gemini("duo-prod-1", "us-central1")).await;

    assert!(!result.ok);
    assert!(result.message.starts_with("No Google Cloud credentials were found."), "{}", result.message);
    assert!(result.message.contains("GOOGLE_APPLICATION_CREDENTIALS"));
    // A key file that is not there is named, with the variable to fix.
    let vertex = FakeVertex::start().await;
    let missing = another_console(
        &app.pool,
        app::chat::client::VertexAccess {
            credentials: app::chat::client::GoogleCredentials::ServiceAccountFile(
                "/nonexistent/key.json".into(),
            ),
            endpoint_url: Some(vertex.url.clone()),
        },
    )
    .await;
    let result = missing.test_connection(&gemini("duo-prod-1", "us-central1")).await;
    assert!(result.message.contains("(/nonexistent/key.json) could not be used"), "{}", result.message);
    assert!(vertex.requests().is_empty(), "no call without a token");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_key_google_does_not_know_and_a_revoked_token_are_each_refused_by_name(pool: PgPool) {
    let vertex = FakeVertex::start().await;
    // A key file signed with a key the service account does not have: the grant is refused.
    let stranger = TestApp::builder(pool.clone())
        .vertex(vertex.access(unknown_key()))
        .spawn_signed_in(Role::Admin)
        .await;
    let result = stranger.test_connection(&gemini("duo-prod-1", "us-central1")).await;
    assert!(!result.ok);
    assert!(
        result.message.contains("Google refused the service account's credentials"),
        "{}",
        result.message
    );
    assert!(vertex.requests().is_empty(), "no model call without a token");

    // A token Google no longer accepts: the model call is refused with Google's 401.
    let app = another_console(&pool, vertex.access(service_account_key())).await;
    assert!(app.test_connection(&gemini("duo-prod-1", "us-central1")).await.ok);
    vertex.revoke_tokens();
    let result = app.test_connection(&gemini("duo-prod-1", "us-central1")).await;
    assert!(!result.ok);
    assert!(
        result.message.contains("refused the console's access token (401 UNAUTHENTICATED)"),
        "{}",
        result.message
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_vertex_models_project_and_location_are_checked_at_their_fields(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let cases = [
        (gemini("", ""), [("vertex_project", PROJECT_REQUIRED), ("vertex_location", LOCATION_REQUIRED)]),
        (
            gemini("My_Project", "us-central1.evil.example"),
            [("vertex_project", PROJECT_INVALID), ("vertex_location", LOCATION_INVALID)],
        ),
    ];
    for (form, expected) in cases {
        let response =
            app.client.post(app.url("/api/save_self_hosted_model")).form(&form).send().await.unwrap();
        let body = response.text().await.unwrap();
        for (field, message) in expected {
            assert!(body.contains(field) && body.contains(message), "{field}: {body}");
        }
    }
    let bad_identifier = vertex_form("G", "gemini", "vertex_ai/gemini?alt=json", "duo-prod-1", "global");
    let response =
        app.client.post(app.url("/api/save_self_hosted_model")).form(&bad_identifier).send().await.unwrap();
    assert!(response.text().await.unwrap().contains("must name a Vertex AI model"));
    let saved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM self_hosted_models").fetch_one(&app.pool).await.unwrap();
    assert_eq!(saved, 0);

    // The database holds the same rules, each constraint named.
    let refused = sqlx::query(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier, vertex_project, vertex_location)
         VALUES ('x', 'vertex_ai', 'gemini', 'vertex_ai/gemini-2.0-flash-001', 'duo-prod-1', 'us-central1/x')",
    )
    .execute(&app.pool)
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("self_hosted_models_vertex_location_shape"), "{refused}");
    let refused = sqlx::query(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier, vertex_location)
         VALUES ('x', 'vertex_ai', 'gemini', 'vertex_ai/gemini-2.0-flash-001', 'us-central1')",
    )
    .execute(&app.pool)
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("self_hosted_models_vertex_project_for_vertex"), "{refused}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_vertex_model_is_listed_with_its_project_and_location_and_no_endpoint(pool: PgPool) {
    let vertex = FakeVertex::start().await;
    let app = spawn_with(pool, &vertex).await;
    app.save_model(&claude(CLAUDE, "global")).await;

    let page = app.get("/admin/gitlab_duo/self_hosted/models").await.text().await.unwrap();

    assert!(page.contains("Project: duo-prod-1, location: global"), "{page}");
    let (platform, endpoint, project, location): (String, Option<String>, String, String) =
        sqlx::query_as("SELECT platform, endpoint, vertex_project, vertex_location FROM self_hosted_models")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (platform.as_str(), endpoint, project.as_str(), location.as_str()),
        ("vertex_ai", None, "duo-prod-1", "global")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_adds_a_gemini_and_a_claude_model_on_vertex_ai_and_says_hello_to_each(pool: PgPool) {
    use crate::browser::{Browser, xpath_literal};
    use fantoccini::Locator;
    let vertex = FakeVertex::start().await;
    let app = TestApp::builder(pool).vertex(vertex.access(service_account_key())).spawn().await;
    app.add_user("ada", Role::Admin).await;
    turn_beta_on(&app.pool).await;
    let browser = Browser::start().await;

    browser
        .run("vertex", |b| async move {
            let base = app.address.clone();
            b.sign_in_as(&base, "ada").await;
            let models = [
                (
                    "Gemini on Vertex",
                    "Gemini (Beta)",
                    "us-central1",
                    GEMINI,
                    "Hello from Gemini on Vertex AI!",
                ),
                ("Claude on Vertex", "Claude", CLAUDE_LOCATION, CLAUDE, "Hello from Claude on Vertex AI!"),
            ];
            for (name, family, location, model, _) in models {
                b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models/new")).await.unwrap();
                b.hydrated().await;
                b.field("Deployment name").await.send_keys(name).await.unwrap();
                b.select("Platform", "Google Vertex AI").await;
                b.select("Model family", family).await;
                b.text_appears("Provide the model identifier in the form of vertex_ai/model-name").await;
                b.text_appears("To fully set up Google Cloud credentials for this model please refer to the")
                    .await;
                b.link("Google Vertex AI Configuration Guide").await;
                // No endpoint, no key on this platform.
                for absent in [
                    "//label[normalize-space()='Endpoint']",
                    "//label[normalize-space()='API Key (optional)']",
                ] {
                    assert!(b.shows_none(absent).await, "{absent}");
                }
                // A malformed project is named at its field as the admin leaves it.
                let project = b.field("Google Cloud project").await;
                project.send_keys("Bad_Project").await.unwrap();
                b.field("Location").await.click().await.unwrap();
                b.text_appears(PROJECT_INVALID).await;
                project.clear().await.unwrap();
                project.send_keys("duo-prod-1").await.unwrap();
                b.field("Location").await.send_keys(location).await.unwrap();
                // The identifier is picked from Model Garden's listing, not typed.
                b.button("Load models").await.click().await.unwrap();
                b.find(Locator::XPath("//select[@id=//label[normalize-space()='Discovered models']/@for]"))
                    .await;
                b.select("Discovered models", model).await;
                assert_eq!(b.value_of("Model identifier").await, format!("vertex_ai/{model}"));
                b.client
                    .wait()
                    .for_element(Locator::XPath(&format!(
                        "//body[not(contains(., {}))]",
                        xpath_literal(PROJECT_INVALID)
                    )))
                    .await
                    .unwrap();
                b.button("Test connection").await.click().await.unwrap();
                b.text_appears("Successfully connected to the self-hosted model").await;
                crate::browser::save_screenshot(&b, &format!("vertex-form-{location}")).await;
                b.button("Add self-hosted model").await.click().await.unwrap();
                b.text_appears("Model added. Select it for a feature to start using it.").await;
            }

            b.client.goto(&format!("{base}/admin/gitlab_duo/self_hosted/models")).await.unwrap();
            for (name, _, location, _, reply) in models {
                b.listed_model(name).await;
                b.text_appears(&format!("Project: duo-prod-1, location: {location}")).await;
                crate::browser::save_screenshot(&b, "vertex-models").await;
                let test = format!(
                    "//tr[@data-model-name={}]//button[normalize-space()='Test']",
                    xpath_literal(name)
                );
                b.click_until(Locator::XPath(&test), Locator::Id("chat-message")).await;
                b.button("Send").await.click().await.unwrap();
                b.text_appears(reply).await;
                b.find(Locator::Css("[data-testid=chat-figures]")).await;
                b.button("Close").await.click().await.unwrap();
            }
            let seen = vertex.requests();
            assert!(seen.iter().any(|call| call.publisher == "google" && call.model == GEMINI));
            assert!(seen.iter().any(|call| call.publisher == "anthropic" && call.model == CLAUDE));
            assert!(
                seen.iter()
                    .all(|call| call.authorization.as_deref().is_some_and(|a| a.starts_with("Bearer ya29.")))
            );
        })
        .await;
}

fn vertex_source(project: &str, location: &str) -> Vec<(&'static str, String)> {
    posted(app::models::domain::ModelForm {
        platform: "vertex_ai".into(),
        vertex_project: project.into(),
        vertex_location: location.into(),
        ..app::models::domain::ModelForm::default()
    })
}

#[sqlx::test(migrations = "../migrations")]
async fn load_models_offers_the_model_gardens_google_and_anthropic_models_page_by_page(pool: PgPool) {
    let vertex = FakeVertex::start().await;
    let app = spawn_with(pool, &vertex).await;

    let models = app.discovered(&vertex_source("duo-prod-1", "us-east5")).await;

    let offered: Vec<(&str, Option<&str>)> =
        models.iter().map(|model| (model.identifier.as_str(), model.family.as_deref())).collect();
    assert_eq!(
        offered,
        vec![
            ("vertex_ai/gemini-2.0-flash-001", Some("gemini")),
            ("vertex_ai/gemini-1.5-pro-002", Some("gemini")),
            ("vertex_ai/gemini-2.5-pro", Some("gemini")),
            ("vertex_ai/claude-3-5-sonnet@20240620", Some("claude_3")),
            ("vertex_ai/claude-3-opus@20240229", Some("claude_3")),
        ],
        "both publishers, both pages; Claude called by its dated version"
    );
    let listed = vertex.listings();
    let pages: Vec<(&str, Option<&str>)> =
        listed.iter().map(|call| (call.publisher.as_str(), call.page_token.as_deref())).collect();
    assert_eq!(
        pages,
        vec![
            ("google", None),
            ("google", Some("google-2")),
            ("anthropic", None),
            ("anthropic", Some("anthropic-2"))
        ]
    );
    for call in &listed {
        assert_eq!(call.user_project.as_deref(), Some("duo-prod-1"));
        assert!(call.authorization.as_deref().is_some_and(|value| value.starts_with("Bearer ya29.fake-")));
    }
    nothing_stored(&app).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn each_load_models_failure_on_vertex_is_named_at_its_field(pool: PgPool) {
    let vertex = FakeVertex::start().await;
    let app = spawn_with(pool.clone(), &vertex).await;

    let errors = app.discovery_errors(&vertex_source("denied-project", "us-central1")).await;
    let message = errors["vertex_project"].as_str().unwrap_or_default();
    assert!(message.contains("denied access in project denied-project"), "{errors}");
    assert!(message.contains("roles/aiplatform.user"), "{errors}");

    let errors = app.discovery_errors(&vertex_source("unknown-project", "us-central1")).await;
    assert!(
        errors["vertex_location"]
            .as_str()
            .unwrap_or_default()
            .contains("does not know location us-central1 or project unknown-project"),
        "{errors}"
    );

    let errors = app.discovery_errors(&vertex_source("quota-project", "us-central1")).await;
    assert!(errors["vertex_project"].as_str().unwrap_or_default().contains("quota"), "{errors}");

    let errors = app.discovery_errors(&vertex_source("", "us-central1")).await;
    assert_eq!(errors["vertex_project"], PROJECT_REQUIRED, "{errors}");
    let errors = app.discovery_errors(&vertex_source("duo-prod-1", "")).await;
    assert_eq!(errors["vertex_location"], LOCATION_REQUIRED, "{errors}");

    // No credentials: said at the project, before any call.
    let bare =
        TestApp::builder(pool.clone()).vertex(app::chat::client::VertexAccess::unconfigured()).spawn().await;
    assert_eq!(location(&bare.sign_in(username(Role::Admin), PASSWORD).await), "/admin");
    let errors = bare.discovery_errors(&vertex_source("duo-prod-1", "us-central1")).await;
    assert!(
        errors["vertex_project"].as_str().unwrap_or_default().contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{errors}"
    );

    // Unreachable: said at the location, whose host it is.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let gone = another_console(
        &pool,
        app::chat::client::VertexAccess {
            endpoint_url: Some(closed),
            ..vertex.access(service_account_key())
        },
    )
    .await;
    let errors = gone.discovery_errors(&vertex_source("duo-prod-1", "us-central1")).await;
    assert!(
        errors["vertex_location"].as_str().unwrap_or_default().contains("Could not reach Google Vertex AI"),
        "{errors}"
    );
    nothing_stored(&app).await;
}
