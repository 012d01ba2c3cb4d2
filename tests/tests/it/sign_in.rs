//! Sign-in, sessions and the guard in front of every route, over real HTTP and real Postgres.

use crate::common::*;
use app::auth::Role;
use reqwest::StatusCode;
use server::RouterSettings;
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn a_signed_out_page_request_redirects_to_sign_in_and_remembers_the_page(pool: PgPool) {
    let app = spawn_app(pool).await;

    let response = app.get("/admin/audit_events?page=2").await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/users/sign_in?redirect_to=%2Fadmin%2Faudit_events%3Fpage%3D2");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_signed_out_server_function_call_gets_401(pool: PgPool) {
    let app = spawn_app(pool).await;

    let response = app.get("/api/audit_events?page=1").await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.text().await.unwrap(), "\"Unauthorized\"");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_sign_in_page_shows_gitlabs_fields(pool: PgPool) {
    let app = spawn_app(pool).await;

    let page = app.get("/users/sign_in").await.text().await.unwrap();

    assert!(page.contains("Username or primary email"));
    assert!(page.contains("Password"));
    assert!(page.contains(">Sign in</button>"));
    assert!(page.contains(r#"action="/users/sign_in""#), "a plain form works without JavaScript");
}

#[sqlx::test(migrations = "../migrations")]
async fn signing_in_lands_on_the_page_asked_for_with_a_strict_cookie(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;

    let response = app.sign_in_to("ada", PASSWORD, "/admin/audit_events").await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin/audit_events");
    // The session's cookie; the known-device cookie (trust.rs) comes alongside it.
    let mut cookies = response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned());
    let cookie = cookies.find(|c| c.starts_with("duo_admin_session=")).unwrap_or_default();
    assert!(cookie.starts_with("duo_admin_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not Secure unless configured for https: {cookie}");
    let page = app.get("/admin/audit_events").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Signed in with standard authentication"));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_cookie_is_secure_when_configured_for_https(pool: PgPool) {
    let app =
        TestApp::builder(pool).settings(RouterSettings { secure_cookies: true, ..settings() }).spawn().await;
    app.add_user("ada", Role::Admin).await;

    let response = app.sign_in("ada", PASSWORD).await;

    let cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[sqlx::test(migrations = "../migrations")]
async fn signing_in_by_email_ignores_letter_case(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;

    let response = app.sign_in("ADA@Example.com", PASSWORD).await;

    assert_eq!(location(&response), "/admin");
    assert_eq!(app.get("/admin").await.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_wrong_password_is_refused_with_gitlabs_message_and_audited(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;

    let response = app.sign_in_to("ada", "not the password", "/admin/audit_events").await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert_eq!(target, "/users/sign_in?error=invalid&login=ada&redirect_to=%2Fadmin%2Faudit_events");
    assert!(session_cookie(&response).is_none(), "no session for a failed sign-in");
    let page = app.get(&target).await.text().await.unwrap();
    assert!(page.contains("Invalid login or password."));
    assert_eq!(app.get("/admin").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.audit_actions().await.last().unwrap(), "user_sign_in_failed");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unknown_login_gets_the_same_answer_as_a_wrong_password(pool: PgPool) {
    let app = spawn_app(pool).await;

    let response = app.sign_in("nobody", "whatever-it-is").await;

    assert_eq!(location(&response), "/users/sign_in?error=invalid&login=nobody");
}

#[sqlx::test(migrations = "../migrations")]
async fn sign_in_never_redirects_to_another_site(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;

    for target in ["//evil.example/", "https://evil.example/", "/\\evil.example"] {
        let response = app.sign_in_to("ada", PASSWORD, target).await;
        assert_eq!(location(&response), "/admin", "redirect_to={target}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_session_id_changes_at_sign_in_and_the_old_one_dies(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let first = session_cookie(&app.sign_in("ada", PASSWORD).await).unwrap();

    let second = session_cookie(&app.sign_in("ada", PASSWORD).await).unwrap();

    assert_ne!(first, second);
    let with_old_id = new_client().get(app.url("/admin")).header("cookie", &first).send().await.unwrap();
    assert_eq!(with_old_id.status(), StatusCode::SEE_OTHER);
    let with_new_id = new_client().get(app.url("/admin")).header("cookie", &second).send().await.unwrap();
    assert_eq!(with_new_id.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn signing_out_deletes_the_session_on_the_server(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let cookie = session_cookie(&app.sign_in("ada", PASSWORD).await).unwrap();

    let response = app.sign_out().await;

    assert_eq!(location(&response), "/users/sign_in?signed_out=1");
    let sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session").fetch_one(&app.pool).await.unwrap();
    assert_eq!(sessions, 0);
    // Replaying the old cookie by hand gets nowhere.
    let replay = new_client().get(app.url("/admin")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    let page = app.get("/users/sign_in?signed_out=1").await.text().await.unwrap();
    assert!(page.contains("Signed out successfully."));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_session_idle_past_its_expiry_is_over(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let expiry_in_minutes: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expiry_date - now())::float8 / 60 FROM tower_sessions.session",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!((119.0..=120.5).contains(&expiry_in_minutes), "expires {expiry_in_minutes} minutes from now");

    sqlx::query("UPDATE tower_sessions.session SET expiry_date = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();

    assert_eq!(app.get("/admin").await.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_password_reset_ends_the_users_sessions(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    assert_eq!(app.get("/admin").await.status(), StatusCode::OK);

    let actor = app::audit::ssr::Actor::system("test");
    server::users::reset_password(&app.pool, "ada", "a brand new password", &actor).await.unwrap();

    assert_eq!(app.get("/admin").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&app.sign_in("ada", "a brand new password").await), "/admin");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_auditor_sees_pages_but_every_change_is_refused_with_403(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Auditor).await;

    assert_eq!(app.get("/admin/audit_events").await.status(), StatusCode::OK);
    assert_eq!(app.get("/api/audit_events?page=1").await.status(), StatusCode::OK);
    let change = app.client.post(app.url("/api/any_change")).body("x=1").send().await.unwrap();

    assert_eq!(change.status(), StatusCode::FORBIDDEN);
    assert_eq!(change.text().await.unwrap(), "\"Forbidden\"");
    let page_post = app.client.post(app.url("/admin")).send().await.unwrap();
    assert_eq!(page_post.status(), StatusCode::FORBIDDEN);
    assert!(
        page_post.text().await.unwrap().contains("Auditors can see every page but cannot change anything.")
    );
    assert_eq!(location(&app.sign_out().await), "/users/sign_in?signed_out=1", "an auditor may sign out");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admins_change_passes_the_guard(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    let change = app.client.post(app.url("/api/any_change")).body("x=1").send().await.unwrap();

    // Past the guard, the server function router answers: there is no such function.
    assert_eq!(change.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_signed_in_visit_to_the_sign_in_page_goes_to_the_admin_area(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    let response = app.get("/users/sign_in").await;

    assert_eq!(location(&response), "/admin");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_shell_shows_the_user_and_the_gitlab_duo_menu(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    let page = app.get("/admin").await.text().await.unwrap();

    for text in ["GitLab Duo", "Configuration", "Model configuration", "Audit events", "Sign out", "ada"] {
        assert!(page.contains(text), "the shell shows {text}");
    }
    assert!(page.contains(r#"href="/admin/gitlab_duo/configuration""#));
    assert!(page.contains(r#"href="/admin/gitlab_duo/self_hosted""#));
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unknown_page_answers_404(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;

    let response = app.get("/admin/no_such_page").await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("Page not found"));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_probes_answer_json_without_signing_in(pool: PgPool) {
    let app = spawn_app(pool).await;

    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["database"], "ok");
}

#[sqlx::test(migrations = "../migrations")]
async fn static_files_need_no_session(pool: PgPool) {
    let app = spawn_app(pool).await;

    let icon = app.get("/favicon.ico").await;

    assert_eq!(icon.status(), StatusCode::OK, "the site is built into {}", site_root().display());
    assert!(icon.headers().get("set-cookie").is_none());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_change_sent_from_another_site_is_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let sign_in = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut request =
            app.client.post(app.url("/users/sign_in")).form(&[("login", "ada"), ("password", PASSWORD)]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        request.send()
    };

    let evil = sign_in(Some("https://evil.example"), None).await.unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    assert_eq!(evil.text().await.unwrap(), server::auth::CROSS_SITE_MESSAGE);
    assert_eq!(sign_in(Some("null"), None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(sign_in(None, Some("cross-site")).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        sign_in(Some(&format!("http://{host}")), Some("same-origin")).await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn every_response_carries_the_security_headers_and_big_bodies_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;

    let page = app.get("/users/sign_in").await;

    let header =
        |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "same-origin");
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    let huge = "x".repeat(server::MAX_REQUEST_BYTES + 1);
    let too_big = app
        .client
        .post(app.url("/users/sign_in"))
        .body(huge)
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = $1")
        .bind(action)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn repeated_failures_lock_the_login_even_for_the_right_password(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    app.add_user("grace", Role::Admin).await;

    for _ in 0..5 {
        let response = app.sign_in("ada", "not the password").await;
        assert_eq!(location(&response), "/users/sign_in?error=invalid&login=ada");
    }
    let locked = app.sign_in("ada", PASSWORD).await;

    assert_eq!(location(&locked), "/users/sign_in?error=locked&login=ada");
    assert!(session_cookie(&locked).is_none());
    let page = app.get(&location(&locked)).await.text().await.unwrap();
    assert!(page.contains("Too many failed sign-in attempts. Wait a few minutes, then try again."));
    assert_eq!(audit_count(&app, "user_sign_in_failed").await, 5);
    assert_eq!(audit_count(&app, "user_sign_in_locked").await, 1);
    let (ip, message): (Option<String>, String) =
        sqlx::query_as("SELECT ip_address, message FROM audit_events WHERE action = 'user_sign_in_locked'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    assert!(message.starts_with("Sign-in refused after too many failed attempts"), "{message}");
    assert_eq!(location(&app.sign_in("grace", PASSWORD).await), "/admin", "other logins are not locked");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unknown_login_locks_exactly_like_a_real_one(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;

    let mut answers = Vec::new();
    for login in ["ada", "nobody"] {
        let mut locations = Vec::new();
        for _ in 0..6 {
            locations.push(location(&app.sign_in(login, "wrong").await).replace(login, "LOGIN"));
        }
        answers.push(locations);
    }

    assert_eq!(answers[0], answers[1], "nothing tells a real login from an unknown one");
    assert_eq!(answers[0][5], "/users/sign_in?error=locked&login=LOGIN");
}

#[sqlx::test(migrations = "../migrations")]
async fn failures_slow_down_the_next_attempts(pool: PgPool) {
    let step = std::time::Duration::from_millis(300);
    let throttle = server::throttle::ThrottlePolicy { delay_step: step, ..settings().sign_in_throttle };
    let app = TestApp::builder(pool)
        .settings(RouterSettings { sign_in_throttle: throttle, ..settings() })
        .spawn()
        .await;

    for _ in 0..3 {
        app.sign_in("ada", "wrong").await;
    }
    let fourth = std::time::Instant::now();
    app.sign_in("ada", "wrong").await;
    let fifth = std::time::Instant::now();
    app.sign_in("ada", "wrong").await;

    // Two failures are free; each one after them holds the next attempt back one step more.
    assert!(fifth - fourth >= step, "the fourth attempt waited only {:?}", fifth - fourth);
    assert!(fifth.elapsed() >= step * 2, "the fifth attempt waited only {:?}", fifth.elapsed());
}

#[sqlx::test(migrations = "../migrations")]
async fn one_client_guessing_many_logins_is_locked_out(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;

    for n in 0..20 {
        app.sign_in(&format!("user{n}"), "wrong").await;
    }

    let locked = app.sign_in("ada", PASSWORD).await;
    assert_eq!(location(&locked), "/users/sign_in?error=locked&login=ada");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_burst_of_parallel_guesses_gets_no_more_tries_than_the_limit(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;

    let guesses = (0..30).map(|n| app.sign_in("ada", if n == 29 { PASSWORD } else { "wrong" }));
    let answers = futures::future::join_all(guesses).await;

    let checked = answers.iter().filter(|r| !location(r).contains("error=locked")).count();
    assert!(checked <= 5, "{checked} guesses reached the password check");
    assert_eq!(
        audit_count(&app, "user_sign_in_failed").await + audit_count(&app, "user_signed_in").await,
        checked as i64
    );
}

async fn sign_in_from(app: &TestApp, forwarded_for: &str, login: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/users/sign_in"))
        .header("x-forwarded-for", forwarded_for)
        .form(&[("login", login), ("password", password)])
        .send()
        .await
        .unwrap()
}

async fn last_audit_address(app: &TestApp) -> Option<String> {
    sqlx::query_scalar("SELECT ip_address FROM audit_events ORDER BY id DESC LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn behind_a_trusted_proxy_each_forwarded_client_counts_on_its_own(pool: PgPool) {
    let behind_proxy = RouterSettings { trust_forwarded_for: true, ..settings() };
    let app = TestApp::builder(pool).settings(behind_proxy).spawn().await;
    app.add_user("ada", Role::Admin).await;

    for n in 0..20 {
        // A client may send its own X-Forwarded-For; the proxy appends the real address last.
        sign_in_from(&app, "10.9.9.9, 203.0.113.7", &format!("user{n}"), "wrong").await;
    }
    assert_eq!(last_audit_address(&app).await.as_deref(), Some("203.0.113.7"));

    let locked = sign_in_from(&app, "203.0.113.7", "ada", PASSWORD).await;
    assert_eq!(location(&locked), "/users/sign_in?error=locked&login=ada");
    let other_client = sign_in_from(&app, "203.0.113.8", "ada", PASSWORD).await;
    assert_eq!(location(&other_client), "/admin", "another client behind the proxy is not locked out");
    assert_eq!(last_audit_address(&app).await.as_deref(), Some("203.0.113.8"));
}

#[sqlx::test(migrations = "../migrations")]
async fn without_a_trusted_proxy_a_forwarded_address_is_ignored(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;

    sign_in_from(&app, "203.0.113.7", "ada", "wrong").await;

    assert_eq!(last_audit_address(&app).await.as_deref(), Some("127.0.0.1"));
}
