//! Faults the console must survive: its database going away and coming back, a shutdown while
//! replies are streaming, and many streaming replies at once.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::fake_bedrock::FakeBedrock;
use crate::common::*;
use app::auth::Role;
use app::chat::client::ModelFailure;
use app::chat::{ChatEvent, LineBuffer};
use futures::StreamExt;
use reqwest::StatusCode;
use server::postgres::PrivateCluster;
use sqlx::PgPool;

const CLAUDE: &str = "bedrock/anthropic.claude-3-haiku-20240307-v1:0";

/// Stops the test's own cluster and removes its folder however the test ends, so a failed
/// assertion leaves no PostgreSQL running behind it.
struct ClusterFolder(std::path::PathBuf);

impl Drop for ClusterFolder {
    fn drop(&mut self) {
        let dir = self.0.clone();
        // Its own thread and runtime: this may run inside the test's runtime, which cannot block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _ = runtime.block_on(PrivateCluster::stop_dir(&dir.join("postgres")));
            let _ = std::fs::remove_dir_all(&dir);
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_rides_out_a_database_restart_without_being_restarted() {
    // A cluster of its own, so that stopping it disturbs no other test. A short path under
    // /tmp, enterable by the postgres user that runs the cluster when the tests run as root.
    let dir = ClusterFolder(format!("/tmp/duo-admin-faults-{}", std::process::id()).into());
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cluster_dir = dir.0.join("postgres");
    let cluster = PrivateCluster::start(&cluster_dir).await.expect("the private cluster starts");
    // The console's own pool settings: how it hands out connections decides how it recovers.
    let pool = server::database::pool_options()
        .max_connections(5)
        .connect_with(cluster.connect_options())
        .await
        .unwrap();
    server::database::MIGRATOR.run(&pool).await.unwrap();
    let app = spawn_signed_in(pool.clone(), Role::Admin).await;
    app.save_model(&bedrock_form(CLAUDE)).await;
    let models_page = "/admin/gitlab_duo/self_hosted";
    assert_eq!(app.get(models_page).await.status(), StatusCode::OK);

    PrivateCluster::stop_dir(&cluster_dir).await.expect("the cluster stops");

    let page = app.get(models_page).await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.text().await.unwrap().contains("The database is unavailable right now."));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["status"], "unavailable");
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK, "the process itself is alive");
    let mut during = bedrock_form(CLAUDE);
    during[0].1 = "Saved during the outage".into();
    let save = app.client.post(app.url("/api/save_self_hosted_model")).form(&during).send().await.unwrap();
    assert_eq!(save.status(), StatusCode::SERVICE_UNAVAILABLE);

    let cluster = PrivateCluster::start(&cluster_dir).await.expect("the cluster starts again");
    let mut ready = false;
    for _ in 0..50 {
        if app.get("/readyz").await.status() == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "/readyz recovers by itself");
    let page = app.get(models_page).await;
    assert_eq!(page.status(), StatusCode::OK, "the session survived too");
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM self_hosted_models").fetch_all(&pool).await.unwrap();
    assert_eq!(names, ["Claude"], "nothing of the refused save was written");
    let mut after = bedrock_form(CLAUDE);
    after[0].1 = "Saved after the outage".into();
    app.save_model(&after).await;

    pool.close().await;
    cluster.stop().await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_connection_idle_for_a_while_is_checked_before_use_and_one_in_steady_use_is_not(pool: PgPool) {
    let console = server::database::pool_options()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let backend =
        || async { sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()").fetch_one(&console).await };
    let cut = |pid: i32| {
        let pool = pool.clone();
        async move {
            let cut: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
                .bind(pid)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert!(cut);
        }
    };

    // In steady use a connection is not pinged first (that would double every query's round
    // trips): cut just now, its next query fails once, and the one after gets a new connection.
    let first = backend().await.unwrap();
    // sqlx pings a connection as it is given back, in the background: let that finish first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    cut(first).await;
    assert!(backend().await.is_err(), "used straight away, unchecked");
    let second = backend().await.unwrap();
    assert_ne!(second, first);

    // Idle for longer than CHECK_IDLE_AFTER, it is checked, found cut and replaced unseen.
    cut(second).await;
    tokio::time::sleep(server::database::CHECK_IDLE_AFTER + Duration::from_millis(300)).await;
    let third = backend().await.expect("the cut connection was replaced before use");
    assert_ne!(third, second);
    console.close().await;
}

/// Starts a chat with a model whose reply takes about a second and a half, and returns the
/// response once its first piece of text has arrived.
async fn start_slow_chat(app: &TestApp, model_id: i64) -> (reqwest::Response, LineBuffer, Vec<ChatEvent>) {
    let mut response = app.start_chat(model_id, "Hello").await;
    let mut lines = LineBuffer::default();
    let mut events = Vec::new();
    while !events.iter().any(|e| matches!(e, ChatEvent::Text(_))) {
        let chunk = response.chunk().await.unwrap().expect("the reply has begun");
        events.extend(lines.push(std::str::from_utf8(&chunk).unwrap()));
    }
    (response, lines, events)
}

async fn rest_of(
    mut response: reqwest::Response,
    mut lines: LineBuffer,
    mut events: Vec<ChatEvent>,
) -> Vec<ChatEvent> {
    while let Some(chunk) = response.chunk().await.unwrap() {
        events.extend(lines.push(std::str::from_utf8(&chunk).unwrap()));
    }
    events
}

async fn app_for_shutdown(pool: PgPool, grace: Duration) -> (TestApp, i64) {
    let fake = FakeBedrock::start().await;
    let app = TestApp::builder(pool)
        .bedrock(bedrock_client(&fake.url, true))
        .grace(grace)
        .spawn_signed_in(Role::Admin)
        .await;
    let id = app.save_model(&bedrock_form("bedrock/slow-reply")).await;
    (app, id)
}

#[sqlx::test(migrations = "../migrations")]
async fn a_shutdown_lets_a_streaming_reply_finish_within_the_grace_period(pool: PgPool) {
    let (app, id) = app_for_shutdown(pool, Duration::from_secs(10)).await;
    let (response, lines, events) = start_slow_chat(&app, id).await;

    app.shutdown.notify_one();
    let events = rest_of(response, lines, events).await;

    assert_eq!(reply_text(&events), "Hello! How can I help you today?");
    assert!(matches!(events.last(), Some(ChatEvent::Done(_))), "{events:?}");
    let health = app.url("/healthz");
    let served = tokio::time::timeout(Duration::from_secs(10), app.served).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "the server stops once the reply is done: {served:?}");
    assert!(reqwest::get(health).await.is_err(), "and takes no new connection");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_reply_outlasting_the_grace_period_ends_with_a_clear_message(pool: PgPool) {
    let (app, id) = app_for_shutdown(pool, Duration::from_millis(100)).await;
    let (response, lines, events) = start_slow_chat(&app, id).await;

    app.shutdown.notify_one();
    let events = rest_of(response, lines, events).await;

    assert_eq!(events.last(), Some(&ChatEvent::Failed(ModelFailure::ShuttingDown.to_string())), "{events:?}");
    let served = tokio::time::timeout(Duration::from_secs(10), app.served).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");
    let last_test: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT last_test FROM self_hosted_models").fetch_one(&app.pool).await.unwrap();
    assert_eq!(last_test, None, "a reply cut short by a shutdown is not the model's failure");
}

#[sqlx::test(migrations = "../migrations")]
async fn two_hundred_streaming_chats_at_once_all_finish_and_memory_stays_bounded(pool: PgPool) {
    // It measures the process's resident memory: alone in a process, so that the tests running
    // beside it in this binary do not count.
    if !alone::in_own_process(
        "faults::two_hundred_streaming_chats_at_once_all_finish_and_memory_stays_bounded",
        &pool,
    )
    .await
    {
        return;
    }
    let fake = FakeBedrock::start().await;
    let app =
        TestApp::builder(pool).bedrock(bedrock_client(&fake.url, true)).spawn_signed_in(Role::Admin).await;
    let id = app.save_model(&bedrock_form(CLAUDE)).await;

    let mut resident = Vec::new();
    for _round in 0..3 {
        let chats = (0..200).map(|_| app.chat(id, "Hello"));
        let replies = futures::stream::iter(chats).buffer_unordered(200).collect::<Vec<_>>().await;
        for events in &replies {
            assert_eq!(reply_text(events), "Hello! How can I help you today?", "{events:?}");
            assert!(matches!(events.last(), Some(ChatEvent::Done(_))), "{events:?}");
        }
        resident.push(memory_kib("VmRSS"));
    }

    assert_eq!(fake.request_count(), 600);
    // The first round grows the pools and caches to their working size; after it, more of the
    // same work must not need more memory.
    let growth = resident[2].saturating_sub(resident[0]);
    assert!(growth < 32 * 1024, "resident memory grew by {growth} KiB over two more rounds: {resident:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_memory_of_password_checks_is_given_back_once_they_are_done(pool: PgPool) {
    // Resident memory again: alone in a process.
    if !alone::in_own_process("faults::the_memory_of_password_checks_is_given_back_once_they_are_done", &pool)
        .await
    {
        return;
    }
    let app = spawn_app(pool).await;
    // One login each: parallel attempts at one login are held to its failure limit.
    let logins: Vec<String> = (0..9).map(|n| format!("ada{n}")).collect();
    for login in &logins {
        app.add_user(login, Role::Admin).await;
    }
    let sign_in = |login: &str| {
        let answer = new_client()
            .post(app.url("/users/sign_in"))
            .form(&[("login", login), ("password", PASSWORD)])
            .send();
        async move {
            let answer = answer.await.unwrap();
            assert_eq!(answer.status(), StatusCode::SEE_OTHER);
            assert_eq!(answer.headers()["location"], "/admin", "signed in");
        }
    };
    // The lowest resident memory over a few seconds of light use (the allocator gives freed
    // memory back as it goes on working, not at the instant of the free).
    let settled = || async {
        let mut lowest = u64::MAX;
        for _ in 0..25 {
            app.get("/healthz").await;
            lowest = lowest.min(memory_kib("VmRSS"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        lowest
    };
    // A first sign-in brings the pools and caches to their working size.
    sign_in(&logins[0]).await;
    let before = settled().await;

    // Sign-ins from many clients at once: as many 19 MiB checks at a time as there are turns.
    futures::future::join_all(logins[1..].iter().map(|login| sign_in(login))).await;
    let after = settled().await;

    let kept = after.saturating_sub(before);
    assert!(
        kept < 8 * 1024,
        "{kept} KiB still resident after the checks ({before} KiB before, {after} KiB after)"
    );
}

/// The threads of this process that a `server::runtime` made.
fn runtime_threads() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").expect("Linux's /proc");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "duo-admin")
        .count()
}

#[test]
fn a_flood_of_bundle_requests_is_read_by_a_few_blocking_threads_not_hundreds() {
    // The server's own runtime, as main.rs builds it, with two password checks at once.
    let password_checks = 2;
    let runtime = server::runtime(password_checks).expect("a runtime");
    let workers = server::users::cores();
    runtime.block_on(async {
        let name = "flood_of_bundle_requests";
        let (mut admin, pool) = scratch_database(name).await;
        let app = TestApp::builder(pool.clone()).spawn().await;
        // 64 clients at once, 512 requests of a bundle file, each read from disk on a blocking
        // thread. Tokio's default would start a thread for each waiting read, up to 512.
        let client = new_client();
        let answers = futures::stream::iter(0..512)
            .map(|_| {
                let request = client.get(app.url("/pkg/duo_admin.css"));
                async move { request.send().await.map(|response| response.status()) }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        assert!(answers.iter().all(|status| matches!(status, Ok(StatusCode::OK))), "{answers:?}");
        // Idle blocking threads live on for 10 s: they are all still here to be counted.
        let threads = runtime_threads();
        let most = workers + password_checks + server::BLOCKING_THREADS_BESIDES_PASSWORDS;
        assert!(threads <= most, "{threads} threads, at most {most} expected");
        app.shutdown.notify_one();
        pool.close().await;
        drop_scratch_database(&mut admin, name).await;
    });
}
