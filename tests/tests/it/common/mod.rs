//! The test harness: the real router on a real port, over a fresh database per test (given by
//! `#[sqlx::test]`), and helpers that read like what a person does.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use app::audit::ssr::Actor;
use app::auth::Role;
pub mod alone;
pub mod fake_azure;
pub mod fake_bedrock;
pub mod fake_openai;
pub mod fake_vertex;
pub mod logs;

use app::chat::api::ConnectionTest;
use app::chat::{ChatEvent, ChatMessage, LineBuffer, Speaker};
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use server::RouterSettings;
use server::throttle::ThrottlePolicy;
use sqlx::PgPool;

/// The bearer token of the tests' /metrics.
pub const METRICS_TOKEN: &str = "metrics-token-planted-7c1d";

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    /// Keeps cookies, follows no redirects: each test sees exactly what the server answered.
    pub client: reqwest::Client,
    /// Starts the server's graceful shutdown, as SIGTERM does in main.rs.
    pub shutdown: Arc<tokio::sync::Notify>,
    /// The server; ends when a shutdown has finished.
    pub served: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The server's model clients: its Bedrock clients per region, and how many model calls
    /// are running (`calls_in_flight`).
    pub model_clients: Arc<app::chat::client::ModelClients>,
}

pub fn settings() -> RouterSettings {
    RouterSettings {
        site_root: site_root().to_string_lossy().into_owned(),
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        secure_cookies: false,
        session_idle_minutes: 120,
        // The real limits, with a delay short enough for tests that fail on purpose.
        sign_in_throttle: ThrottlePolicy {
            delay_step: std::time::Duration::from_millis(20),
            ..ThrottlePolicy::new(5, 20, std::time::Duration::from_secs(600))
        },
        trust_forwarded_for: false,
        limits: server::Limits::default(),
        metrics_token: Some(METRICS_TOKEN.to_owned()),
        api_rate_limit_per_minute: 600,
    }
}

/// Where scripts/build-site.sh put the browser bundle.
pub fn site_root() -> PathBuf {
    std::env::var_os("LEPTOS_SITE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/site"))
}

/// The app with the tests' settings and no reachable Bedrock: the common case.
pub async fn spawn_app(pool: PgPool) -> TestApp {
    TestApp::builder(pool).spawn().await
}

/// The app with a signed-in user of `role`: `ada` the admin or `audrey` the auditor (the
/// names tests look for in pages and audit rows), both with `PASSWORD`.
pub async fn spawn_signed_in(pool: PgPool, role: Role) -> TestApp {
    TestApp::builder(pool).spawn_signed_in(role).await
}

/// The signed-in user's name for each role, as `spawn_signed_in` adds them.
pub fn username(role: Role) -> &'static str {
    match role {
        Role::Admin => "ada",
        Role::Auditor => "audrey",
    }
}

/// The app as main.rs serves it, with the tests' defaults unless a test says otherwise.
pub struct AppBuilder {
    pool: PgPool,
    settings: RouterSettings,
    bedrock: aws_sdk_bedrockruntime::Client,
    bedrock_catalog: aws_sdk_bedrock::Client,
    azure_api_version: Option<String>,
    vertex: app::chat::client::VertexAccess,
    grace: std::time::Duration,
    bundle_delay: Option<std::time::Duration>,
}

impl TestApp {
    pub fn builder(pool: PgPool) -> AppBuilder {
        AppBuilder {
            pool,
            settings: settings(),
            // Nothing listens on port 9 (discard): a Bedrock call fails fast unless a test brings a fake.
            bedrock: bedrock_client("http://127.0.0.1:9", true),
            bedrock_catalog: bedrock_catalog_client("http://127.0.0.1:9"),
            azure_api_version: None,
            // No Google credentials: a Vertex AI call fails at once unless a test brings a fake.
            vertex: app::chat::client::VertexAccess::unconfigured(),
            grace: std::time::Duration::from_secs(5),
            bundle_delay: None,
        }
    }
}

impl AppBuilder {
    /// Router settings other than `settings()`, e.g. `RouterSettings { secure_cookies: true, ..settings() }`.
    pub fn settings(mut self, settings: RouterSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The Bedrock client model calls go through, e.g. `bedrock_client(&fake.url, true)`.
    pub fn bedrock(mut self, client: aws_sdk_bedrockruntime::Client) -> Self {
        self.bedrock = client;
        self
    }

    /// The Bedrock catalog client "Load models" asks, e.g. `bedrock_catalog_client(&fake.url)`.
    pub fn bedrock_catalog(mut self, client: aws_sdk_bedrock::Client) -> Self {
        self.bedrock_catalog = client;
        self
    }

    /// The `api-version` of Azure OpenAI calls, as `AZURE_OPENAI_API_VERSION` sets it.
    pub fn azure_api_version(mut self, version: &str) -> Self {
        self.azure_api_version = Some(version.to_owned());
        self
    }

    /// How Vertex AI is reached, e.g. `fake.access(service_account_key())`: the credentials
    /// file and base URL that `GOOGLE_APPLICATION_CREDENTIALS` and `VERTEX_AI_ENDPOINT_URL`
    /// name in production (tests share one process, so not through the environment).
    pub fn vertex(mut self, access: app::chat::client::VertexAccess) -> Self {
        self.vertex = access;
        self
    }

    /// How long streaming replies may go on at shutdown.
    pub fn grace(mut self, grace: std::time::Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Holds back the browser bundle's wasm by `delay`, as a slow link does: the page is on
    /// screen, and clickable, well before it is hydrated.
    pub fn slow_bundle(mut self, delay: std::time::Duration) -> Self {
        self.bundle_delay = Some(delay);
        self
    }

    pub async fn spawn(self) -> TestApp {
        let catalog = app::catalog::Catalog::load().expect("the catalog loads");
        let mut clients =
            app::chat::client::ModelClients::new(self.bedrock, self.bedrock_catalog, TEST_IDLE_LIMIT)
                .with_vertex(self.vertex);
        if let Some(version) = self.azure_api_version {
            clients = clients.with_azure_api_version(version);
        }
        let clients = Arc::new(clients);
        let services = server::Services {
            pool: self.pool.clone(),
            prompts: Arc::new(app::chat::prompts::Prompts::load(&catalog).expect("the prompts load")),
            catalog: Arc::new(catalog),
            master_keys: Arc::new(test_master_keys()),
            model_clients: clients.clone(),
        };
        let mut router = server::router(services, &self.settings);
        if let Some(delay) = self.bundle_delay {
            router = router.layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                    let wasm = request.uri().path().ends_with(".wasm");
                    if wasm {
                        tokio::time::sleep(delay).await;
                    }
                    let mut response = next.run(request).await;
                    // Each page load asks again (and waits again), as with a cold cache.
                    if wasm {
                        response.headers_mut().insert(
                            axum::http::header::CACHE_CONTROL,
                            axum::http::HeaderValue::from_static("no-cache"),
                        );
                    }
                    response
                },
            ));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = format!("http://{}", listener.local_addr().expect("a bound address"));
        let shutdown = Arc::new(tokio::sync::Notify::new());
        let stop = shutdown.clone();
        let served = tokio::spawn(server::serve(
            listener,
            router,
            clients.clone(),
            async move { stop.notified().await },
            self.grace,
        ));
        TestApp { address, pool: self.pool, client: new_client(), shutdown, served, model_clients: clients }
    }

    /// As `spawn`, then adds the user of `role` (see `username`) and signs in as them.
    pub async fn spawn_signed_in(self, role: Role) -> TestApp {
        let app = self.spawn().await;
        let username = username(role);
        app.add_user(username, role).await;
        let signed_in = app.sign_in(username, PASSWORD).await;
        assert_eq!(location(&signed_in), "/admin", "{username} signs in");
        app
    }
}

pub const TEST_ACCESS_KEY: &str = "AKIDTESTPLANTED0001";
pub const TEST_SECRET_KEY: &str = "test-secret-planted-4b2f9e";
/// Short, so that stall tests finish quickly.
pub const TEST_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// The real SDK client, aimed at `endpoint` with the tests' credentials (or none), and retries
/// quick enough for a test.
pub fn bedrock_client(endpoint: &str, with_credentials: bool) -> aws_sdk_bedrockruntime::Client {
    bedrock_client_signing_with(endpoint, with_credentials.then_some(TEST_SECRET_KEY))
}

/// As `bedrock_client`, signing with `secret` (the fake accepts only `TEST_SECRET_KEY`).
pub fn bedrock_client_signing_with(endpoint: &str, secret: Option<&str>) -> aws_sdk_bedrockruntime::Client {
    use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
    let mut config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(std::time::Duration::from_millis(10)),
        );
    if let Some(secret) = secret {
        config = config.credentials_provider(Credentials::new(TEST_ACCESS_KEY, secret, None, None, "test"));
    }
    aws_sdk_bedrockruntime::Client::from_conf(config.build())
}

/// The real Bedrock control-plane client (the model catalog), aimed at `endpoint` with the
/// tests' credentials, in us-east-1 as `bedrock_client`.
pub fn bedrock_catalog_client(endpoint: &str) -> aws_sdk_bedrock::Client {
    use aws_sdk_bedrock::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
    let config = aws_sdk_bedrock::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .credentials_provider(Credentials::new(TEST_ACCESS_KEY, TEST_SECRET_KEY, None, None, "test"))
        .build();
    aws_sdk_bedrock::Client::from_conf(config)
}

/// Model clients calling Bedrock through `bedrock`, with no reachable Bedrock catalog.
pub fn model_clients(bedrock: aws_sdk_bedrockruntime::Client) -> app::chat::client::ModelClients {
    app::chat::client::ModelClients::new(
        bedrock,
        bedrock_catalog_client("http://127.0.0.1:9"),
        TEST_IDLE_LIMIT,
    )
}

/// The tests' fixed master key, so a test can open what the server sealed.
pub fn test_master_keys() -> app::models::secrets::MasterKeys {
    app::models::secrets::MasterKeys::new(&[[42; 32]]).expect("a valid key")
}

pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().expect("a client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("the server answers")
    }

    pub async fn sign_in(&self, login: &str, password: &str) -> reqwest::Response {
        self.sign_in_to(login, password, "").await
    }

    pub async fn sign_in_to(&self, login: &str, password: &str, redirect_to: &str) -> reqwest::Response {
        self.client
            .post(self.url("/users/sign_in"))
            .form(&[("login", login), ("password", password), ("redirect_to", redirect_to)])
            .send()
            .await
            .expect("the server answers")
    }

    pub async fn sign_out(&self) -> reqwest::Response {
        self.client.post(self.url("/users/sign_out")).send().await.expect("the server answers")
    }

    pub async fn add_user(&self, username: &str, role: Role) {
        add_user(&self.pool, username, role).await;
    }

    pub async fn audit_actions(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .expect("audit")
    }
}

pub async fn add_user(pool: &PgPool, username: &str, role: Role) {
    let actor = Actor::system("test");
    server::users::add(pool, username, &format!("{username}@example.com"), role, PASSWORD, &actor)
        .await
        .expect("the user is added");
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned()
}

/// The session cookie the last response set, as `name=value`.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(server::SESSION_COOKIE))
        .map(|value| value.split(';').next().unwrap_or_default().to_owned())
}

/// The fields the model form posts, from the form's own type (`SaveModel`, with `ModelForm`
/// flattened into it), as the plain HTML form names them: a renamed field fails here. Blank
/// fields are left out, as a browser leaves out the fields a platform hides.
pub fn posted(form: app::models::domain::ModelForm) -> Vec<(&'static str, String)> {
    const FIELDS: [&str; 11] = [
        "id",
        "name",
        "platform",
        "model_family",
        "endpoint",
        "identifier",
        "bedrock_region",
        "vertex_project",
        "vertex_location",
        "api_key_action",
        "api_key",
    ];
    let save = app::models::api::SaveModel { id: None, form };
    let encoded = serde_urlencoded::to_string(&save).expect("the form serialises");
    serde_urlencoded::from_str::<Vec<(String, String)>>(&encoded)
        .expect("and reads back")
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| {
            let name = FIELDS
                .into_iter()
                .find(|known| *known == name)
                .unwrap_or_else(|| panic!("a new field {name}"));
            (name, value)
        })
        .collect()
}

/// A Bedrock model named `name` in `region` (blank: the console's).
pub fn bedrock_form_in(name: &str, identifier: &str, region: &str) -> Vec<(&'static str, String)> {
    posted(app::models::domain::ModelForm {
        name: name.into(),
        platform: "bedrock".into(),
        model_family: "claude_3".into(),
        identifier: identifier.into(),
        bedrock_region: region.into(),
        ..Default::default()
    })
}

pub fn bedrock_form(identifier: &str) -> Vec<(&'static str, String)> {
    posted(app::models::domain::ModelForm {
        name: "Claude".into(),
        platform: "bedrock".into(),
        model_family: "claude_3".into(),
        identifier: identifier.into(),
        ..Default::default()
    })
}

/// A Vertex AI model named `name`: `identifier` in `project`, at `location`.
pub fn vertex_form(
    name: &str,
    family: &str,
    identifier: &str,
    project: &str,
    location: &str,
) -> Vec<(&'static str, String)> {
    posted(app::models::domain::ModelForm {
        name: name.into(),
        platform: "vertex_ai".into(),
        model_family: family.into(),
        identifier: identifier.into(),
        vertex_project: project.into(),
        vertex_location: location.into(),
        ..Default::default()
    })
}

pub fn api_form(endpoint: &str, identifier: &str, key: &str) -> Vec<(&'static str, String)> {
    posted(app::models::domain::ModelForm {
        name: "Mixtral".into(),
        platform: "api".into(),
        model_family: "mixtral".into(),
        endpoint: endpoint.into(),
        identifier: identifier.into(),
        api_key: key.into(),
        ..Default::default()
    })
}

impl TestApp {
    pub async fn test_connection(&self, form: &[(&str, String)]) -> ConnectionTest {
        let response = self
            .client
            .post(self.url("/api/test_self_hosted_model_connection"))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn save_model(&self, form: &[(&str, String)]) -> i64 {
        let response =
            self.client.post(self.url("/api/save_self_hosted_model")).form(form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
        sqlx::query_scalar("SELECT max(id) FROM self_hosted_models").fetch_one(&self.pool).await.unwrap()
    }

    /// Says `text` to a saved model; the reply is still streaming when this returns.
    pub async fn start_chat(&self, model_id: i64, text: &str) -> reqwest::Response {
        let messages =
            serde_json::to_string(&[ChatMessage { speaker: Speaker::User, text: text.into() }]).unwrap();
        let response = self
            .client
            .post(self.url("/api/chat_with_self_hosted_model"))
            .form(&[("model_id", model_id.to_string()), ("messages", messages)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response
    }

    /// Says `text` to a saved model and collects the streamed events.
    pub async fn chat(&self, model_id: i64, text: &str) -> Vec<ChatEvent> {
        let mut lines = LineBuffer::default();
        let mut events = Vec::new();
        let mut body = self.start_chat(model_id, text).await.bytes_stream();
        while let Some(chunk) = body.next().await {
            events.extend(lines.push(std::str::from_utf8(&chunk.unwrap()).unwrap()));
        }
        events
    }
}

pub fn reply_text(events: &[ChatEvent]) -> String {
    events.iter().filter_map(|e| if let ChatEvent::Text(t) = e { Some(t.as_str()) } else { None }).collect()
}

pub fn failure(events: &[ChatEvent]) -> String {
    match events.last() {
        Some(ChatEvent::Failed(message)) => message.clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// The sealed API key columns of a model, when it has a key.
type SealedColumns = (Option<Vec<u8>>, Option<Vec<u8>>, Option<String>, Option<String>, bool);

impl TestApp {
    /// The API key of the model named `name`, as stored: sealed, never in the clear.
    pub async fn sealed_key(&self, name: &str) -> Option<app::models::secrets::SealedKey> {
        let row: SealedColumns = sqlx::query_as(
            "SELECT api_key_ciphertext, api_key_nonce, api_key_key_id, api_key_fingerprint, api_key_bound
             FROM self_hosted_models WHERE name = $1",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        match row {
            (Some(ciphertext), Some(nonce), Some(key_id), Some(fingerprint), bound) => {
                Some(app::models::secrets::SealedKey { ciphertext, nonce, key_id, fingerprint, bound })
            }
            _ => None,
        }
    }

    /// Opens `sealed` as the console would for the model named `name`: bound to that model
    /// and its endpoint's origin.
    pub async fn open_key(&self, name: &str, sealed: &app::models::secrets::SealedKey) -> String {
        let (id, endpoint): (i64, Option<String>) =
            sqlx::query_as("SELECT id, endpoint FROM self_hosted_models WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .unwrap();
        let origin = endpoint.as_deref().and_then(app::models::domain::origin_of).unwrap_or_default();
        let binding = app::models::secrets::KeyBinding { model_id: id, origin: &origin };
        test_master_keys().open(sealed, binding).unwrap().expose().to_owned()
    }
}

/// A figure from /proc/self/status, in KiB: VmRSS (resident now) or VmHWM (peak resident).
pub fn memory_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

impl TestApp {
    /// Creates a personal access token for the signed-in user through the page's server
    /// function, and answers with what came back.
    pub async fn create_token_as_posted(
        &self,
        name: &str,
        scope: &str,
        expires_at: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/api/create_personal_access_token"))
            .form(&[("name", name), ("scope", scope), ("expires_at", expires_at)])
            .send()
            .await
            .expect("the server answers")
    }

    /// A new token of the signed-in user, with the default expiry.
    pub async fn create_token(&self, name: &str, scope: &str) -> String {
        let response = self.create_token_as_posted(name, scope, "").await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
        let created: serde_json::Value = response.json().await.unwrap();
        created["token"].as_str().expect("the token, once").to_owned()
    }

    /// A request to the JSON API with a bearer token and no cookies.
    pub fn api(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().request(method, self.url(path)).bearer_auth(token)
    }
}

/// Gives `feature` the model `model`, straight in the table: the arrangement of tests about
/// what follows from an assignment, not about assigning.
pub async fn assign(pool: &PgPool, feature: &str, model: i64) {
    sqlx::query(
        "INSERT INTO feature_settings (feature, provider, self_hosted_model_id) VALUES ($1, 'self_hosted', $2)
         ON CONFLICT (feature) DO UPDATE SET provider = 'self_hosted', self_hosted_model_id = $2",
    )
    .bind(feature)
    .bind(model)
    .execute(pool)
    .await
    .expect("the feature is assigned");
}

/// For the benchmarks and tests that need a second database: a migrated database `name` of its
/// own on the server `DATABASE_URL` names (dropped first if an earlier run left it), and a
/// connection to that server to drop it with afterwards (`drop_scratch_database`).
pub async fn scratch_database(name: &str) -> (sqlx::PgConnection, PgPool) {
    use sqlx::{Connection, Executor};
    let url = std::env::var("DATABASE_URL").expect("set DATABASE_URL to a PostgreSQL server");
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("PostgreSQL answers");
    drop_scratch_database(&mut admin, name).await;
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("created");
    // Through the parsed options, not by editing the URL: the private cluster's URL names its
    // socket folder in the query (`postgres:///postgres?host=/tmp/...`), after the last `/`.
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a database URL");
    let pool = PgPool::connect_with(options.database(name)).await.expect("the scratch database answers");
    server::database::MIGRATOR.run(&pool).await.expect("migrated");
    (admin, pool)
}

/// Drops a scratch database. Forced: a closed pool's connections may still be ending on the
/// server's side, and a plain DROP refuses while they are ("being accessed by other users").
pub async fn drop_scratch_database(admin: &mut sqlx::PgConnection, name: &str) {
    use sqlx::Executor;
    admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.expect("dropped");
}

/// How many features tabs the replica answered from a page it kept (`kept`) or drew (`drawn`),
/// from its /metrics.
pub async fn features_tabs_answered(app: &TestApp, from: &str) -> u64 {
    let text = new_client().get(app.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    let text = text.text().await.unwrap();
    let line = format!("duo_features_page_answers_total{{from=\"{from}\"}} ");
    text.lines().find_map(|sample| sample.strip_prefix(&line)).map_or(0, |count| count.parse().unwrap())
}
