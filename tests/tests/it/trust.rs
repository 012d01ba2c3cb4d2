//! Trust under attack and at scale (issue 11): floods of sign-ins bounded, the server's own
//! limits (header-read timeout, connection cap, request timeout), sessions that end, inputs that
//! cannot forge a redirect or a log line, the private cluster's safety in its own files, secret
//! files checked, and two replicas on one database behaving as one console.

use std::sync::Arc;
use std::time::Duration;

use crate::common::fake_bedrock::FakeBedrock;
use crate::common::logs::LogCapture;
use crate::common::*;
use app::auth::Role;
use reqwest::StatusCode;
use server::{Limits, RouterSettings};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Long enough never to be reached by a passing test; a failing one ends instead of hanging.
const NEVER: Duration = Duration::from_secs(20);

/// The app as main.rs serves it (`serve_with`), with these limits.
async fn spawn_limited(
    pool: PgPool,
    settings: RouterSettings,
    clients: app::chat::client::ModelClients,
) -> TestApp {
    let catalog = app::catalog::Catalog::load().expect("the catalog loads");
    let model_clients = Arc::new(clients);
    let services = server::Services {
        pool: pool.clone(),
        prompts: Arc::new(app::chat::prompts::Prompts::load(&catalog).expect("the prompts load")),
        catalog: Arc::new(catalog),
        master_keys: Arc::new(test_master_keys()),
        model_clients: model_clients.clone(),
    };
    let clients = model_clients.clone();
    let limits = settings.limits.clone();
    let router = server::router(services, &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let address = format!("http://{}", listener.local_addr().expect("a bound address"));
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let stop = shutdown.clone();
    let served_clients = model_clients.clone();
    let served = tokio::spawn(async move {
        server::serve_with(
            listener,
            router,
            served_clients,
            async move { stop.notified().await },
            Duration::from_secs(5),
            &limits,
        )
        .await
    });
    TestApp { address, pool, client: new_client(), shutdown, served, model_clients: clients }
}

fn with_limits(change: impl FnOnce(&mut Limits)) -> RouterSettings {
    let mut settings = settings();
    change(&mut settings.limits);
    settings
}

fn no_models() -> app::chat::client::ModelClients {
    model_clients(bedrock_client("http://127.0.0.1:9", true))
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn sign_in_from(app: &TestApp, client: &str, login: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/users/sign_in"))
        .header("x-forwarded-for", client)
        .form(&[("login", login), ("password", password)])
        .send()
        .await
        .unwrap()
}

fn behind_proxy() -> RouterSettings {
    RouterSettings { trust_forwarded_for: true, ..settings() }
}

// ---- A. Floods ------------------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn a_flood_of_refused_sign_ins_adds_to_one_audit_row_per_login_and_client(pool: PgPool) {
    let app = TestApp::builder(pool).settings(behind_proxy()).spawn().await;
    app.add_user("ada", Role::Admin).await;
    for _ in 0..5 {
        sign_in_from(&app, "203.0.113.7", "ada", "wrong").await;
    }

    for _ in 0..25 {
        let refused = sign_in_from(&app, "203.0.113.7", "ada", "wrong").await;
        assert_eq!(location(&refused), "/users/sign_in?error=locked&login=ada");
    }
    sign_in_from(&app, "203.0.113.8", "ada", "wrong").await;

    let rows: Vec<(Option<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT ip_address, after FROM audit_events WHERE action = 'user_sign_in_locked' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "one row per login and client: {rows:?}");
    assert_eq!(rows[0].0.as_deref(), Some("203.0.113.7"));
    assert_eq!(rows[0].1["count"], 25, "the other refusals are counted on it");
    assert_eq!(rows[0].1["login"], "ada");
    assert_eq!(rows[1].0.as_deref(), Some("203.0.113.8"));
    assert_eq!(rows[1].1["count"], 1);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM audit_events WHERE action = 'user_sign_in_failed'").await,
        5
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_client_locked_out_spraying_many_logins_adds_to_one_audit_row(pool: PgPool) {
    let app = TestApp::builder(pool).settings(behind_proxy()).spawn().await;
    for n in 0..20 {
        sign_in_from(&app, "203.0.113.7", &format!("user{n}"), "wrong").await;
    }

    for n in 20..60 {
        sign_in_from(&app, "203.0.113.7", &format!("user{n}"), "wrong").await;
    }

    let after: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT after FROM audit_events WHERE action = 'user_sign_in_locked'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["count"], 40);
    assert_eq!(after[0]["locked"], "client");
}

#[sqlx::test(migrations = "../migrations")]
async fn password_checks_beyond_the_limit_are_refused_as_busy_and_do_not_count(pool: PgPool) {
    // One check at a time and no waiting: a sign-in that finds the check busy is refused.
    let settings = with_limits(|limits| {
        limits.password_checks = 1;
        limits.password_queue_timeout = Duration::ZERO;
    });
    let app = spawn_limited(pool, settings, no_models()).await;

    let attempts = (0..8).map(|n| {
        let request = app
            .client
            .post(app.url("/users/sign_in"))
            .form(&[("login", format!("user{n}")), ("password", "wrong".to_owned())]);
        async move { request.send().await.unwrap() }
    });
    let answers = futures::future::join_all(attempts).await;

    let busy: Vec<_> =
        answers.into_iter().filter(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert!(!busy.is_empty(), "with one check at a time, eight at once find it busy");
    let checked = 8 - busy.len() as i64;
    assert!(checked >= 1);
    assert_eq!(busy[0].headers()["retry-after"], "5");
    let page = busy.into_iter().next().unwrap().text().await.unwrap();
    assert!(page.contains(server::users::BUSY_MESSAGE), "{page}");
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM audit_events WHERE action = 'user_sign_in_failed'").await,
        checked
    );
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM sign_in_attempts WHERE key LIKE 'client:%'").await,
        checked,
        "a refused-as-busy attempt counts against no one"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn ipv6_clients_count_per_64_so_rotating_addresses_does_not_help(pool: PgPool) {
    let app = TestApp::builder(pool).settings(behind_proxy()).spawn().await;
    app.add_user("ada", Role::Admin).await;

    for n in 0..20 {
        sign_in_from(&app, &format!("2001:db8:1:2::{n:x}"), &format!("user{n}"), "wrong").await;
    }

    let same_64 = sign_in_from(&app, "2001:db8:1:2:ffff:ffff:ffff:ffff", "ada", PASSWORD).await;
    assert_eq!(location(&same_64), "/users/sign_in?error=locked&login=ada");
    let other_64 = sign_in_from(&app, "2001:db8:1:3::1", "ada", PASSWORD).await;
    assert_eq!(location(&other_64), "/admin");
}

#[sqlx::test(migrations = "../migrations")]
async fn throttle_counts_live_in_the_database_and_survive_a_restart(pool: PgPool) {
    let first = spawn_app(pool.clone()).await;
    first.add_user("ada", Role::Admin).await;
    for _ in 0..5 {
        first.sign_in("ada", "wrong").await;
    }
    first.shutdown.notify_one();
    first.served.await.unwrap().unwrap();

    let restarted = spawn_app(pool).await;

    let locked = restarted.sign_in("ada", PASSWORD).await;
    assert_eq!(location(&locked), "/users/sign_in?error=locked&login=ada");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_locked_login_still_signs_in_from_a_browser_that_signed_in_before(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let signed_in = app.sign_in("ada", PASSWORD).await;
    let device = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|value| value.starts_with(server::devices::DEVICE_COOKIE))
        .expect("a known-device cookie");
    assert!(device.contains("HttpOnly") && device.contains("Path=/users/sign_in"), "{device}");
    app.sign_out().await;

    // An attacker keeps the login locked.
    let attacker = new_client();
    for _ in 0..6 {
        attacker
            .post(app.url("/users/sign_in"))
            .form(&[("login", "ada"), ("password", "wrong")])
            .send()
            .await
            .unwrap();
    }
    let stranger = attacker
        .post(app.url("/users/sign_in"))
        .form(&[("login", "ada"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&stranger), "/users/sign_in?error=locked&login=ada");

    let owner = app.sign_in("ada", PASSWORD).await;
    assert_eq!(location(&owner), "/admin", "the owner's known browser is not locked out");
    assert_eq!(app.get("/admin").await.status(), StatusCode::OK);
}

// ---- B. Server limits -----------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn a_client_sending_its_headers_slowly_is_dropped_after_the_header_timeout(pool: PgPool) {
    let settings = with_limits(|limits| limits.header_read_timeout = Duration::from_secs(1));
    let app = spawn_limited(pool, settings, no_models()).await;
    let mut slow = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();

    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(NEVER, slow.read_to_end(&mut rest)).await;

    assert!(closed.is_ok(), "the server still holds a connection whose headers never end");
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
}

async fn get_over(stream: &mut tokio::net::TcpStream) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = vec![0; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

#[sqlx::test(migrations = "../migrations")]
async fn connections_beyond_the_cap_wait_until_one_closes(pool: PgPool) {
    let settings = with_limits(|limits| limits.max_connections = 1);
    let app = spawn_limited(pool, settings, no_models()).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut first = tokio::net::TcpStream::connect(&host).await.unwrap();
    assert!(get_over(&mut first).await.starts_with("HTTP/1.1 200"));

    let mut second = tokio::net::TcpStream::connect(&host).await.unwrap();
    let mut waiting = tokio::spawn(async move { get_over(&mut second).await });
    // Absence cannot be awaited: the second connection is given a while to be (wrongly) served.
    let served_early = tokio::time::timeout(Duration::from_millis(500), &mut waiting).await;
    assert!(served_early.is_err(), "a connection beyond the cap was served at once");

    drop(first);
    let answer = tokio::time::timeout(NEVER, waiting).await.expect("served once the first closed").unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_slow_request_gets_503_after_the_request_timeout_and_a_streaming_reply_is_not_cut(pool: PgPool) {
    let fake = FakeBedrock::start().await;
    // Both limits shorter than the slow reply, which must still stream to its end.
    let settings = with_limits(|limits| {
        limits.request_timeout = Duration::from_secs(1);
        limits.header_read_timeout = Duration::from_secs(1);
    });
    let app = spawn_limited(pool, settings, model_clients(bedrock_client(&fake.url, true))).await;
    app.add_user("ada", Role::Admin).await;
    app.sign_in("ada", PASSWORD).await;
    let id = app.save_model(&bedrock_form("bedrock/slow-reply")).await;

    // A stuck query: the models table held by another transaction.
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE self_hosted_models IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let page = tokio::time::timeout(NEVER, app.get("/admin/gitlab_duo/self_hosted")).await.expect("answered");
    let api = tokio::time::timeout(NEVER, app.get("/api/self_hosted_models?search=&page=1"))
        .await
        .expect("answered");
    blocker.rollback().await.unwrap();

    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.text().await.unwrap().contains(server::TIMEOUT_MESSAGE));
    assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(api.text().await.unwrap().contains(server::TIMEOUT_MESSAGE));
    // The slow reply streams for about a second and a half: longer than either timeout.
    let events = app.chat(id, "Hello").await;
    assert_eq!(reply_text(&events), "Hello! How can I help you today?");
}

#[test]
fn every_route_bounded_elsewhere_is_still_a_route() {
    let routes = server::route_inventory();
    for path in server::BOUNDED_ELSEWHERE {
        assert!(routes.iter().any(|route| route.path == *path), "{path} is no longer served");
    }
}

// ---- C. Sessions ----------------------------------------------------------------------------

async fn session_row(pool: &PgPool) -> (Vec<u8>, chrono::DateTime<chrono::Utc>) {
    sqlx::query_as("SELECT data, expiry_date FROM tower_sessions.session").fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_session_is_saved_only_when_it_changes_or_once_a_minute(pool: PgPool) {
    let logs = LogCapture::start();
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    app.sign_in("ada", PASSWORD).await;
    let before = session_row(&app.pool).await;

    // Every page, read again and again, changes nothing of the session.
    let pages = [
        "/admin",
        "/api/current_user",
        "/admin/gitlab_duo/configuration",
        "/admin/gitlab_duo/self_hosted/models",
        "/admin/gitlab_duo/self_hosted/models/new",
        "/admin/gitlab_duo/self_hosted/features",
        "/admin/audit_events",
        "/-/user_settings/personal_access_tokens",
    ];
    for page in pages {
        for _ in 0..3 {
            let status = app.get(page).await.status();
            assert_eq!(status, StatusCode::OK, "{page}, the log:\n{}", logs.text());
        }
        assert!(session_row(&app.pool).await == before, "{page} wrote the session, which it did not change");
    }

    // As if the last save were two minutes ago: the next request saves, moving the idle expiry.
    age_last_save(&app.pool).await;
    let aged = session_row(&app.pool).await;

    assert_eq!(app.get("/admin").await.status(), StatusCode::OK, "the log:\n{}", logs.text());
    let touched = session_row(&app.pool).await;
    assert!(
        touched.1 > aged.1 + chrono::TimeDelta::seconds(100),
        "the idle expiry moved: {:?} -> {:?}",
        aged.1,
        touched.1
    );
}

/// Makes the only session look as if it was last saved two minutes ago, as the store would
/// have saved it (whatever its row says of its user stays as it is).
async fn age_last_save(pool: &PgPool) {
    use tower_sessions::SessionStore;
    let store = server::sessions::SessionRows::new(pool.clone());
    let (id, user_id): (String, Option<i64>) =
        sqlx::query_as("SELECT id, user_id FROM tower_sessions.session").fetch_one(pool).await.unwrap();
    let mut record = store.load(&id.parse().unwrap()).await.unwrap().unwrap();
    let two_minutes_ago = chrono::Utc::now() - chrono::TimeDelta::minutes(2);
    record.data.insert(server::sessions::SEEN_KEY.to_owned(), serde_json::json!(two_minutes_ago));
    record.expiry_date -= tower_sessions::cookie::time::Duration::minutes(2);
    store.save(&record).await.unwrap();
    sqlx::query("UPDATE tower_sessions.session SET user_id = $1").bind(user_id).execute(pool).await.unwrap();
}

async fn user_of_the_session(pool: &PgPool) -> Option<i64> {
    sqlx::query_scalar("SELECT user_id FROM tower_sessions.session").fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_session_from_before_sessions_named_their_user_still_works_and_names_them_at_its_next_save(
    pool: PgPool,
) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    app.sign_in("ada", PASSWORD).await;
    let ada: i64 =
        sqlx::query_scalar("SELECT id FROM users WHERE username = 'ada'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(user_of_the_session(&app.pool).await, Some(ada), "a sign-in names its user");

    // A session saved by the version before: its row names no one.
    sqlx::query("UPDATE tower_sessions.session SET user_id = NULL").execute(&app.pool).await.unwrap();
    assert_eq!(app.get("/admin").await.status(), StatusCode::OK, "still signed in");
    assert_eq!(app.get("/admin/gitlab_duo/self_hosted/features").await.status(), StatusCode::OK);
    assert_eq!(user_of_the_session(&app.pool).await, None, "read, not written");
    // Its next save (the idle expiry's, once a minute) names the user.
    age_last_save(&app.pool).await;
    assert_eq!(app.get("/admin").await.status(), StatusCode::OK);
    assert_eq!(user_of_the_session(&app.pool).await, Some(ada));

    // A row naming someone other than the one the session holds signs in no one.
    app.add_user("grace", Role::Admin).await;
    let cookie = session_cookie(&app.sign_in("ada", PASSWORD).await).unwrap();
    sqlx::query(
        "UPDATE tower_sessions.session SET user_id = (SELECT id FROM users WHERE username = 'grace')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let mismatched = new_client().get(app.url("/admin")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(mismatched.status(), StatusCode::SEE_OTHER);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM tower_sessions.session").await, 0, "forgotten");
    app.sign_in("ada", PASSWORD).await;

    // Such a session still ends with its user's sessions.
    sqlx::query("UPDATE tower_sessions.session SET user_id = NULL").execute(&app.pool).await.unwrap();
    sqlx::query("UPDATE users SET sessions_valid_after = now()").execute(&app.pool).await.unwrap();
    assert_eq!(app.get("/admin").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM tower_sessions.session").await, 0, "forgotten");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_session_whose_user_is_deleted_ends_with_them(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let cookie = session_cookie(&app.sign_in("ada", PASSWORD).await).unwrap();
    sqlx::query("DELETE FROM users WHERE username = 'ada'").execute(&app.pool).await.unwrap();
    let replay = new_client().get(app.url("/admin")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM tower_sessions.session").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn signing_out_during_a_slow_request_is_not_undone_when_it_finishes(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let cookie = session_cookie(&app.sign_in("ada", PASSWORD).await).unwrap();

    // A request that loads the session, then waits on a table held by another transaction.
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE self_hosted_models IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let slow = tokio::spawn(
        new_client().get(app.url("/admin/gitlab_duo/self_hosted")).header("cookie", &cookie).send(),
    );
    let waiting =
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'self_hosted_models'::regclass";
    while count(&app.pool, waiting).await == 0 {
        tokio::task::yield_now().await;
    }

    let signed_out =
        new_client().post(app.url("/users/sign_out")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(location(&signed_out), "/users/sign_in?signed_out=1");
    blocker.rollback().await.unwrap();
    assert_eq!(slow.await.unwrap().unwrap().status(), StatusCode::OK);

    let replay = new_client().get(app.url("/admin")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER, "the old cookie no longer works");
    assert_eq!(count(&app.pool, "SELECT count(*) FROM tower_sessions.session").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_deleted_session_is_never_written_back_by_a_save(pool: PgPool) {
    use tower_sessions::SessionStore;
    use tower_sessions::session::{Id, Record};
    let store = server::sessions::SessionRows::new(pool);
    let mut record = Record {
        id: Id::default(),
        data: Default::default(),
        expiry_date: tower_sessions::cookie::time::OffsetDateTime::now_utc()
            + tower_sessions::cookie::time::Duration::hours(1),
    };
    store.create(&mut record).await.unwrap();
    assert!(store.load(&record.id).await.unwrap().is_some());

    store.delete(&record.id).await.unwrap();
    store.save(&record).await.unwrap();

    assert!(store.load(&record.id).await.unwrap().is_none());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_session_ends_at_its_maximum_lifetime_however_active(pool: PgPool) {
    let settings = with_limits(|limits| limits.session_max_age = Duration::ZERO);
    let app = TestApp::builder(pool).settings(settings).spawn().await;
    app.add_user("ada", Role::Admin).await;

    assert_eq!(location(&app.sign_in("ada", PASSWORD).await), "/admin");

    assert_eq!(app.get("/admin").await.status(), StatusCode::SEE_OTHER, "older than the maximum: over");
    assert_eq!(count(&app.pool, "SELECT count(*) FROM tower_sessions.session").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn signed_in_pages_and_json_are_never_cached(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    app.sign_in("ada", PASSWORD).await;

    for path in [
        "/admin",
        "/admin/gitlab_duo/self_hosted",
        "/api/current_user",
        "/api/self_hosted_models?search=&page=1",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers().get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{path}"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_ends_all_of_a_users_sessions(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    app.add_user("bob", Role::Auditor).await;
    app.sign_in("ada", PASSWORD).await;
    let bob = new_client();
    let mut bobs = Vec::new();
    for _ in 0..2 {
        let response = bob
            .post(app.url("/users/sign_in"))
            .form(&[("login", "bob"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        bobs.push(session_cookie(&response).unwrap());
    }

    let ended = app.client.post(app.url("/admin/users/bob/end_sessions")).send().await.unwrap();

    assert_eq!(location(&ended), "/admin/audit_events");
    for cookie in &bobs {
        let page = new_client().get(app.url("/admin")).header("cookie", cookie).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::SEE_OTHER, "every session of bob is over");
    }
    assert_eq!(app.get("/admin").await.status(), StatusCode::OK, "ada's own session goes on");
    let (actor, target): (String, String) = sqlx::query_as(
        "SELECT actor_name, target_name FROM audit_events WHERE action = 'user_sessions_ended'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((actor.as_str(), target.as_str()), ("ada", "bob"));
    let unknown = app.client.post(app.url("/admin/users/nobody/end_sessions")).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // The command line does the same (`duo-admin users end-sessions ada`).
    let actor = app::audit::ssr::Actor::system("Command line");
    server::users::end_sessions(&app.pool, "ada", &actor).await.unwrap();
    assert_eq!(app.get("/admin").await.status(), StatusCode::SEE_OTHER);
}

// ---- D. Inputs ------------------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn control_characters_in_redirect_to_cannot_lead_to_another_site(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;

    // Browsers drop TAB, CR and LF from URLs: "/\t/evil.example" is followed as "//evil.example".
    for target in ["/\t/evil.example/", "/\n/evil.example/", "/\r/evil.example/", "/admin\u{0}"] {
        let response = app.sign_in_to("ada", PASSWORD, target).await;
        assert_eq!(location(&response), "/admin", "redirect_to={target:?}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_typed_login_cannot_forge_log_lines(pool: PgPool) {
    let logs = LogCapture::start();
    let app = spawn_app(pool).await;
    let forged = "eve\r\n2026-01-01T00:00:00Z  INFO server: FORGED admin signed in";

    for _ in 0..6 {
        app.sign_in(forged, "wrong").await;
    }

    let text = logs.text();
    let server_lines: Vec<&str> =
        text.lines().filter(|l| l.contains("server") || l.contains("sign")).collect();
    assert!(text.contains("FORGED"), "the refusal was logged, with its login; the lines:\n{server_lines:#?}");
    for line in text.lines() {
        assert!(!line.starts_with("2026-01-01"), "a forged line: {line}");
    }
}

// ---- E. Private cluster and secret files ----------------------------------------------------

/// Deletes the folder (after stopping any cluster in it) when the test ends, passed or not.
struct Folder(std::path::PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let dir = self.0.clone();
        // Its own thread and runtime: this may run inside the test's runtime, which cannot block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _ = runtime.block_on(server::postgres::PrivateCluster::stop_dir(&dir.join("postgres")));
            let _ = std::fs::remove_dir_all(&dir);
        })
        .join();
    }
}

#[tokio::test]
async fn the_private_cluster_is_as_private_when_started_by_hand() {
    use std::os::unix::fs::MetadataExt;
    // /tmp, enterable by the postgres user that runs the cluster when the tests run as root.
    let folder = Folder(format!("/tmp/duo-admin-trust-{}", std::process::id()).into());
    let dir = folder.0.join("postgres");
    let cluster = server::postgres::PrivateCluster::start(&dir).await.expect("the private cluster starts");
    cluster.stop().await.unwrap();

    // Started by hand, with no options at all.
    let bin = server::postgres::find_bin_dir().unwrap();
    let pg_ctl = bin.join("pg_ctl");
    let dir_text = dir.canonicalize().unwrap().to_string_lossy().into_owned();
    let log = format!("{dir_text}/by-hand.log");
    let mut command = if server::postgres::running_as_root() {
        let mut command = tokio::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        command
    } else {
        tokio::process::Command::new(&pg_ctl)
    };
    let started =
        command.args(["-D", &dir_text, "-l", &log, "-w", "start"]).current_dir("/").output().await.unwrap();
    assert!(started.status.success(), "{}", std::fs::read_to_string(&log).unwrap_or_default());

    let options = sqlx::postgres::PgConnectOptions::new()
        .host(&dir_text)
        .port(5432)
        .username("postgres")
        .database("postgres");
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
        .await
        .expect("the socket is in the cluster's folder");
    let listen: String =
        sqlx::query_scalar("SHOW listen_addresses").fetch_one(&mut connection).await.unwrap();
    let socket_mode: String =
        sqlx::query_scalar("SHOW unix_socket_permissions").fetch_one(&mut connection).await.unwrap();
    let remote_rules: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_hba_file_rules WHERE type <> 'local'")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    drop(connection);

    assert_eq!(listen, "", "no TCP");
    assert_eq!(socket_mode, "0700");
    assert_eq!(remote_rules, 0, "pg_hba.conf lets in local connections only");
    let socket = std::fs::metadata(dir.join(".s.PGSQL.5432")).unwrap();
    assert_eq!(socket.mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700, "the socket's folder");
}

#[test]
fn secret_files_must_be_this_users_and_mode_0600() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let folder = Folder(format!("/tmp/duo-admin-trust-keys-{}", std::process::id()).into());
    std::fs::create_dir_all(&folder.0).unwrap();
    let key_file = folder.0.join(server::keys::KEY_FILE);
    server::keys::load(None, &folder.0).expect("a key is generated");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused =
        format!("{:#}", server::keys::load(None, &folder.0).expect_err("a readable key file is refused"));
    assert!(refused.contains("chmod 600") && refused.contains(&key_file.display().to_string()), "{refused}");

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    server::keys::load(None, &folder.0).expect("fixed as the message said");

    // A file of another user is refused too (the tests run as root in CI, which may chown).
    if server::postgres::running_as_root() {
        chown(&key_file, Some(65534), None).unwrap();
        let refused = format!("{:#}", server::keys::load(None, &folder.0).expect_err("another user's file"));
        assert!(refused.contains("belongs to another user") && refused.contains("chown"), "{refused}");
    }

    // A leftover world-readable file gets 0600 before a password is written into it.
    let password_file = folder.0.join(server::users::INITIAL_PASSWORD_FILE);
    std::fs::write(&password_file, "old").unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    server::users::write_private_file(&password_file, "Password: secret\n").unwrap();
    assert_eq!(std::fs::metadata(&password_file).unwrap().permissions().mode() & 0o777, 0o600);
}

// ---- F. Two replicas on one database --------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn two_replicas_on_one_database_behave_as_one_console(pool: PgPool) {
    // Each replica has its own pool, router, listener and in-memory state; only the database
    // is shared, as between two processes.
    let other_pool =
        sqlx::postgres::PgPoolOptions::new().connect_with((*pool.connect_options()).clone()).await.unwrap();
    let one = spawn_app(pool).await;
    let two = spawn_app(other_pool).await;
    one.add_user("ada", Role::Admin).await;
    one.add_user("grace", Role::Admin).await;

    // The throttle counts across both.
    for replica in [&one, &two, &one, &two, &one] {
        replica.sign_in("grace", "wrong").await;
    }
    assert_eq!(location(&two.sign_in("grace", PASSWORD).await), "/users/sign_in?error=locked&login=grace");
    assert_eq!(location(&one.sign_in("grace", PASSWORD).await), "/users/sign_in?error=locked&login=grace");

    // A session made on one works on the other.
    let cookie = session_cookie(&one.sign_in("ada", PASSWORD).await).unwrap();
    let on_two = new_client().get(two.url("/admin")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(on_two.status(), StatusCode::OK);
    let two_as_ada = TestApp { client: with_cookie(&cookie), ..two };
    let one_as_ada = TestApp { client: with_cookie(&cookie), ..one };

    // A change through one is seen at once through the other.
    let claude = one_as_ada.save_model(&bedrock_form("bedrock/anthropic.claude-3")).await;
    let listed = two_as_ada.get("/api/self_hosted_models?search=&page=1").await.text().await.unwrap();
    assert!(listed.contains("anthropic.claude-3"), "{listed}");
    let mistral: i64 = sqlx::query_scalar(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
         VALUES ('Mistral', 'bedrock', 'mistral', 'bedrock/mistral') RETURNING id",
    )
    .fetch_one(&one_as_ada.pool)
    .await
    .unwrap();

    // 50 concurrent updates split across the two lose nothing.
    let ids = [claude, mistral];
    let updates = (0..50).map(|n| {
        let replica = if n % 2 == 0 { &one_as_ada } else { &two_as_ada };
        let request = replica
            .client
            .post(replica.url("/api/update_ai_feature_setting"))
            .form(&[("feature", "duo_chat".to_owned()), ("choice", ids[(n / 2) % 2].to_string())]);
        tokio::spawn(async move { request.send().await.unwrap().status() })
    });
    for update in updates.collect::<Vec<_>>() {
        assert_eq!(update.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        count(&one_as_ada.pool, "SELECT count(*) FROM audit_events WHERE action = 'feature_setting_updated'")
            .await,
        50
    );
    let stored: (String, Option<i64>) = sqlx::query_as(
        "SELECT provider, self_hosted_model_id FROM feature_settings WHERE feature = 'duo_chat'",
    )
    .fetch_one(&one_as_ada.pool)
    .await
    .unwrap();
    let last: serde_json::Value = sqlx::query_scalar(
        "SELECT after FROM audit_events WHERE action = 'feature_setting_updated' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&one_as_ada.pool)
    .await
    .unwrap();
    assert_eq!(last["self_hosted_model_id"], serde_json::json!(stored.1), "the last event describes the row");

    // Apply to all through one, after choosing through the other.
    let chosen = two_as_ada
        .client
        .post(two_as_ada.url("/api/update_ai_feature_setting"))
        .form(&[("feature", "duo_chat".to_owned()), ("choice", claude.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), StatusCode::OK);
    let applied = one_as_ada
        .client
        .post(one_as_ada.url("/api/apply_ai_feature_setting_to_all"))
        .form(&[("feature", "duo_chat")])
        .send()
        .await
        .unwrap();
    assert_eq!(applied.status(), StatusCode::OK, "{}", applied.text().await.unwrap());
    for feature in
        ["duo_chat_explain_code", "duo_chat_write_tests", "duo_chat_refactor_code", "duo_chat_fix_code"]
    {
        let model: Option<i64> =
            sqlx::query_scalar("SELECT self_hosted_model_id FROM feature_settings WHERE feature = $1")
                .bind(feature)
                .fetch_one(&two_as_ada.pool)
                .await
                .unwrap();
        assert_eq!(model, Some(claude), "{feature}");
    }
    let seen_by_two = two_as_ada.get("/api/ai_feature_settings").await.text().await.unwrap();
    assert!(seen_by_two.contains("anthropic.claude-3") || seen_by_two.contains("Claude"), "{seen_by_two}");
}

fn with_cookie(cookie: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("cookie", cookie.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
