//! No secret leaks: a unique API key and AWS secret are planted, every page, server function and
//! error path is driven with every log line it causes recorded (at TRACE, dependencies
//! included; see `common::logs`), a personal access token is used on every API route, and the
//! planted values must appear nowhere: not in a
//! response, not in a log line, not in the database, except sealed in the API key's own
//! ciphertext column.

use crate::common::fake_bedrock::FakeBedrock;
use crate::common::fake_openai::FakeOpenAi;
use crate::common::logs::LogCapture;
use crate::common::*;
use app::auth::Role;
use reqwest::Method;
use server::{Access, route_inventory};
use sqlx::PgPool;

/// What the browser saw: statuses, headers and bodies of every response.
#[derive(Default)]
struct Seen(String);

impl Seen {
    async fn record(&mut self, what: &str, response: reqwest::Response) -> reqwest::StatusCode {
        let status = response.status();
        self.0.push_str(&format!("\n=== {what}: {status}\n{:?}\n", response.headers()));
        self.0.push_str(&response.text().await.unwrap_or_default());
        status
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn planted_secrets_appear_nowhere_but_as_ciphertext_in_their_own_column(pool: PgPool) {
    let logs = LogCapture::start();
    let api_key = format!("sk-planted-{:x}", std::process::id() as u64 * 0x9e37_79b9 + 0x5eed);
    let wrong_aws_secret = "wrong-aws-secret-planted-7d41c0";
    let openai = FakeOpenAi::start(Some(&api_key)).await;
    let bedrock = FakeBedrock::start().await;
    // One console signs its Bedrock calls with the right secret, a second with a wrong one
    // (Bedrock then refuses the signature): both secrets are planted.
    let app = TestApp::builder(pool.clone())
        .bedrock(bedrock_client(&bedrock.url, true))
        .spawn_signed_in(Role::Admin)
        .await;
    let wrong_bedrock = bedrock_client_signing_with(&bedrock.url, Some(wrong_aws_secret));
    let other = TestApp::builder(pool.clone()).bedrock(wrong_bedrock).spawn().await;
    app.add_user("audrey", Role::Auditor).await;
    other.sign_in("ada", PASSWORD).await;
    let mut seen = Seen::default();

    // Models, a feature using one, and every kind of test.
    let api_model = app.save_model(&api_form(&openai.endpoint, "mixtral-8x7b", &api_key)).await;
    let bedrock_model = app.save_model(&bedrock_form("bedrock/anthropic.claude-3-haiku-20240307-v1:0")).await;
    let denied_model = app
        .save_model(&{
            let mut form = bedrock_form("bedrock/access-denied");
            form[0].1 = "Denied".into();
            form
        })
        .await;
    let post = |app: &TestApp, path: &str, form: Vec<(&str, String)>| {
        app.client.post(app.url(path)).form(&form).send()
    };
    let feature = vec![("feature", "duo_chat".to_owned()), ("choice", api_model.to_string())];
    seen.record("assign", post(&app, "/api/update_ai_feature_setting", feature).await.unwrap()).await;
    let hello = serde_json::to_string(&[app::chat::ChatMessage {
        speaker: app::chat::Speaker::User,
        text: "Hello".into(),
    }])
    .unwrap();
    for (target, id) in [("api", api_model), ("bedrock", bedrock_model), ("denied", denied_model)] {
        for console in [&app, &other] {
            seen.record(&format!("chat {target}"), console.start_chat(id, "Hello").await).await;
        }
    }
    let chat = vec![("feature", "duo_chat".to_owned()), ("messages", hello.clone())];
    seen.record("feature chat", post(&app, "/api/chat_with_ai_feature", chat).await.unwrap()).await;
    // Test connection: with the stored key, with a typed wrong key, with the key on a dead endpoint.
    let mut keep = api_form(&openai.endpoint, "mixtral-8x7b", "");
    keep.push(("id", api_model.to_string()));
    keep.push(("api_key_action", "keep".to_owned()));
    seen.record(
        "test stored key",
        post(&app, "/api/test_self_hosted_model_connection", keep.clone()).await.unwrap(),
    )
    .await;
    let wrong = api_form(&openai.endpoint, "mixtral-8x7b", &format!("{api_key}-wrong"));
    seen.record("test wrong key", post(&app, "/api/test_self_hosted_model_connection", wrong).await.unwrap())
        .await;
    let dead = api_form("http://127.0.0.1:9/v1", "mixtral-8x7b", &api_key);
    seen.record(
        "test dead endpoint",
        post(&app, "/api/test_self_hosted_model_connection", dead).await.unwrap(),
    )
    .await;
    // Saving: a refused form that carries the key, a duplicate name with the key, a kept key.
    let mut invalid = api_form("not a url", "", &api_key);
    invalid[0].1 = String::new();
    seen.record("invalid save", post(&app, "/api/save_self_hosted_model", invalid.clone()).await.unwrap())
        .await;
    // The same with JavaScript off: the typed values are kept in the session for the form.
    let form_page = app.url("/admin/gitlab_duo/self_hosted/models/new");
    let plain = app.client.post(app.url("/api/save_self_hosted_model")).header("accept", "text/html");
    let refused = plain.header("referer", &form_page).form(&invalid).send().await.unwrap();
    let back = location(&refused);
    seen.record("invalid save, JavaScript off", refused).await;
    let database_meanwhile: Vec<String> =
        sqlx::query_scalar("SELECT encode(data, 'escape') FROM tower_sessions.session")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!database_meanwhile.concat().contains(&api_key), "the kept form leaves the key out");
    seen.record("the form again", app.client.get(&back).send().await.unwrap()).await;
    let mut duplicate = api_form(&openai.endpoint, "mixtral-8x7b", &api_key);
    duplicate[0].1 = "Claude".into();
    seen.record("duplicate save", post(&app, "/api/save_self_hosted_model", duplicate).await.unwrap()).await;
    seen.record("keep save", post(&app, "/api/save_self_hosted_model", keep).await.unwrap()).await;
    let delete = vec![("id", api_model.to_string())];
    seen.record("delete in use", post(&app, "/api/delete_self_hosted_model", delete).await.unwrap()).await;

    // Every page and every server function, as the admin and as the auditor, with the ids filled in.
    let auditor = new_client();
    auditor
        .post(app.url("/users/sign_in"))
        .form(&[("login", "audrey"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    // A personal access token, shown once here (outside what is searched), then used on every
    // route (the model in use, so that nothing is deleted): it must appear nowhere after its
    // creation, in no response, log line or row.
    let token = app.create_token("sweep", "admin").await;
    for route in route_inventory() {
        if route.path.starts_with("/api/v1/") {
            let response = reqwest::Client::new()
                .request(route.method.clone(), app.url(&route.path_with(api_model)))
                .bearer_auth(&token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            seen.record(&format!("{} {} with a token", route.method, route.path), response).await;
        }
    }
    for route in route_inventory() {
        for id in [api_model, bedrock_model] {
            let path = route.path_with(id);
            let query = format!("id={id}&model_id={id}&page=1&search=&feature=duo_chat");
            for client in [&app.client, &auditor] {
                let request = if route.method == Method::GET {
                    client.get(app.url(&format!("{path}?{query}")))
                } else {
                    client
                        .request(route.method.clone(), app.url(&path))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(query.clone())
                };
                if route.access == Access::SignedIn || route.method == Method::GET {
                    let response = request.send().await.unwrap();
                    seen.record(&format!("{} {path}", route.method), response).await;
                }
            }
        }
    }
    assert!(
        seen.0.contains("Mixtral") && seen.0.contains("Hello from the fake vLLM!"),
        "the sweep saw the pages"
    );
    assert!(
        seen.0.contains(&app::chat::client::ModelFailure::SignatureRejected.to_string()),
        "the wrong secret was used and refused"
    );

    // The database, every row of every table, as text (bytea as hex).
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
         WHERE schemaname IN ('public', 'tower_sessions')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut database = String::new();
    for table in &tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {table} t"))
            .fetch_all(&pool)
            .await
            .unwrap();
        database.push_str(&rows.join("\n"));
    }
    assert!(database.contains("Mixtral"), "the dump holds the data: {tables:?}");
    let logs = logs.text();
    assert!(logs.len() > 10_000, "the logs were recorded: {} bytes", logs.len());

    for secret in [api_key.as_str(), TEST_SECRET_KEY, wrong_aws_secret, token.as_str()] {
        // The whole value, its tail (a truncated print), and its bytes as hex (a bytea column).
        let tail = &secret[secret.len() - 10..];
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        for needle in [secret, tail, hex.as_str()] {
            assert!(!seen.0.contains(needle), "a response shows {needle}");
            assert!(!database.contains(needle), "the database holds {needle}");
            assert!(!logs.contains(needle), "a log line shows {needle}");
        }
    }
    // Where the key does live: sealed in its own columns, and it opens to the planted value.
    let sealed = app.sealed_key("Mixtral").await.expect("the model has a key");
    assert_eq!(app.open_key("Mixtral", &sealed).await, api_key);
}
