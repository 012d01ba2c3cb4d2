//! The test harness: the real router on a real port, over a fresh database per test (given by
//! `#[sqlx::test]`), and helpers that read like what a person does.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use app::audit::ssr::Actor;
use app::auth::Role;
pub mod fake_bedrock;
pub mod fake_openai;

use reqwest::redirect::Policy;
use server::RouterSettings;
use sqlx::PgPool;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    /// Keeps cookies, follows no redirects: each test sees exactly what the server answered.
    pub client: reqwest::Client,
}

pub fn settings() -> RouterSettings {
    RouterSettings {
        site_root: site_root().to_string_lossy().into_owned(),
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        secure_cookies: false,
        session_idle_minutes: 120,
    }
}

/// Where scripts/build-site.sh put the browser bundle.
pub fn site_root() -> PathBuf {
    std::env::var_os("LEPTOS_SITE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/site"))
}

pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, settings()).await
}

pub async fn spawn_app_with(pool: PgPool, settings: RouterSettings) -> TestApp {
    // Nothing listens on port 9 (discard): a Bedrock call fails fast unless a test brings a fake.
    spawn_app_with_clients(pool, settings, model_clients(bedrock_client("http://127.0.0.1:9", true))).await
}

pub const TEST_ACCESS_KEY: &str = "AKIDTESTPLANTED0001";
pub const TEST_SECRET_KEY: &str = "test-secret-planted-4b2f9e";
/// Short, so that stall tests finish quickly.
pub const TEST_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// The real SDK client, aimed at `endpoint` with the tests' credentials (or none), and retries
/// quick enough for a test.
pub fn bedrock_client(endpoint: &str, with_credentials: bool) -> aws_sdk_bedrockruntime::Client {
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
    if with_credentials {
        config = config.credentials_provider(Credentials::new(
            TEST_ACCESS_KEY,
            TEST_SECRET_KEY,
            None,
            None,
            "test",
        ));
    }
    aws_sdk_bedrockruntime::Client::from_conf(config.build())
}

pub fn model_clients(bedrock: aws_sdk_bedrockruntime::Client) -> app::chat::client::ModelClients {
    app::chat::client::ModelClients::new(bedrock, TEST_IDLE_LIMIT)
}

pub async fn spawn_app_with_clients(
    pool: PgPool,
    settings: RouterSettings,
    clients: app::chat::client::ModelClients,
) -> TestApp {
    let catalog = app::catalog::Catalog::load().expect("the catalog loads");
    let services = server::Services {
        pool: pool.clone(),
        prompts: Arc::new(app::chat::prompts::Prompts::load(&catalog).expect("the prompts load")),
        catalog: Arc::new(catalog),
        master_keys: Arc::new(test_master_keys()),
        model_clients: Arc::new(clients),
    };
    let router = server::router(services, &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let address = format!("http://{}", listener.local_addr().expect("a bound address"));
    // As in main.rs: streamed replies go out piece by piece.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        let _ = stream.set_nodelay(true);
    });
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .expect("the test server runs");
    });
    TestApp { address, pool, client: new_client() }
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
