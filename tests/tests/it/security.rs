//! The guard in front of every route, checked over every route the router serves (taken from
//! the router's own sources, so a page or server function added later is covered unedited), and
//! the Content-Security-Policy on every page.

use crate::common::*;
use app::auth::Role;
use reqwest::{Method, StatusCode};
use server::{Access, RouteInfo, route_inventory};
use sqlx::PgPool;

async fn send(app: &TestApp, method: Method, path: &str) -> reqwest::Response {
    app.client.request(method, app.url(path)).send().await.expect("the server answers")
}

fn guarded() -> Vec<RouteInfo> {
    route_inventory().into_iter().filter(|route| route.access == Access::SignedIn).collect()
}

#[test]
fn the_inventory_holds_the_pages_server_functions_and_public_exceptions() {
    let routes = route_inventory();
    let has = |method: Method, path: &str, access: Access| {
        routes.iter().any(|r| r.method == method && r.path == path && r.access == access)
    };

    assert!(has(Method::GET, "/admin/gitlab_duo/self_hosted", Access::SignedIn), "{routes:#?}");
    assert!(has(Method::GET, "/admin/gitlab_duo/self_hosted/models/{id}/edit", Access::SignedIn));
    assert!(has(Method::POST, "/api/save_self_hosted_model", Access::SignedIn));
    assert!(has(Method::GET, "/api/self_hosted_models", Access::SignedIn));
    assert!(has(Method::POST, "/users/sign_out", Access::SignedIn));
    assert!(has(Method::GET, "/metrics", Access::BearerToken));
    assert!(has(Method::GET, "/api/v1/models", Access::SignedIn));
    assert!(has(Method::DELETE, "/api/v1/models/{id}", Access::SignedIn));
    assert!(has(Method::GET, "/-/user_settings/personal_access_tokens", Access::SignedIn));
    assert!(has(Method::POST, "/api/create_personal_access_token", Access::SignedIn));
    // The exceptions, all of them: sign-in, probes, the icon, GitLab's moved addresses.
    let public: Vec<_> =
        routes.iter().filter(|r| r.access == Access::Public).map(|r| r.path.as_str()).collect();
    let mut expected = vec!["/users/sign_in", "/users/sign_in", "/healthz", "/readyz", "/favicon.ico"];
    expected.extend(server::MOVED.iter().map(|(old, _)| *old));
    let (mut public, mut expected) = (public, expected);
    public.sort();
    expected.sort();
    assert_eq!(public, expected);
    assert!(routes.len() > 25, "pages and server functions are all listed: {}", routes.len());
}

#[sqlx::test(migrations = "../migrations")]
async fn signed_out_every_route_but_the_exceptions_is_refused(pool: PgPool) {
    let app = spawn_app(pool).await;

    for route in guarded() {
        let path = route.path_with(1);
        // Each route with its own method, and every page also with POST.
        let mut methods = vec![route.method.clone()];
        if route.method == Method::GET {
            methods.push(Method::POST);
        }
        for method in methods {
            let response = send(&app, method.clone(), &path).await;
            let status = response.status();
            if path.starts_with("/api/") || method != Method::GET {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            } else {
                assert_eq!(status, StatusCode::SEE_OTHER, "{method} {path}");
                assert!(location(&response).starts_with("/users/sign_in?redirect_to="), "{method} {path}");
            }
        }
    }
    // An address no route knows gets the same answer, not a hint that it does not exist.
    assert_eq!(app.get("/admin/not/a/page").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get("/api/not_a_function").await.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../migrations")]
async fn signed_out_the_exceptions_answer(pool: PgPool) {
    let app = spawn_app(pool).await;

    for route in route_inventory().into_iter().filter(|route| route.access == Access::Public) {
        if route.method != Method::GET {
            continue;
        }
        let response = send(&app, Method::GET, &route.path).await;
        assert!(
            response.status() == StatusCode::OK || response.status() == StatusCode::MOVED_PERMANENTLY,
            "GET {} answered {}",
            route.path,
            response.status()
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn an_auditor_reads_every_page_but_every_change_is_refused(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Auditor).await;
    let models_before = count(&app, "self_hosted_models").await;

    for route in guarded() {
        let path = route.path_with(1);
        if route.method == Method::GET && !path.starts_with("/api/") {
            let page = send(&app, Method::GET, &path).await.status();
            let fine = [StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::SEE_OTHER];
            assert!(fine.contains(&page), "GET {path}: {page}");
        }
        // Signing out and their own tokens: changes of their own, which auditors may make.
        if server::auth::SELF_SERVICE_PATHS.contains(&path.as_str()) {
            continue;
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let response = send(&app, method.clone(), &path).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
        }
    }
    assert_eq!(count(&app, "self_hosted_models").await, models_before);
    assert_eq!(app.get("/admin").await.status(), StatusCode::OK, "still signed in");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_read_token_reads_every_api_route_but_every_change_is_refused(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let model = app.save_model(&bedrock_form("bedrock/anthropic.claude-3-haiku-20240307-v1:0")).await;
    let token = app.create_token("reader", "read").await;
    let audit_before = count(&app, "audit_events").await;
    let api_routes: Vec<RouteInfo> =
        guarded().into_iter().filter(|r| server::api::is_api_v1(&r.path)).collect();
    assert!(api_routes.len() >= 12, "{api_routes:#?}");

    for route in api_routes {
        let path = route.path_with(model);
        if route.method == Method::GET {
            let status = app.api(Method::GET, &path, &token).send().await.unwrap().status();
            assert!([StatusCode::OK, StatusCode::NOT_FOUND].contains(&status), "GET {path}: {status}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let response =
                app.api(method.clone(), &path, &token).json(&serde_json::json!({})).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
        }
    }
    assert_eq!(count(&app, "self_hosted_models").await, 1, "nothing changed");
    assert_eq!(count(&app, "audit_events").await, audit_before, "nothing was even attempted");
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&app.pool).await.expect("a count")
}

/// The nonce named by a page's Content-Security-Policy.
fn policy_nonce(policy: &str) -> String {
    let start = policy.find("'nonce-").expect("the policy names a nonce") + "'nonce-".len();
    policy[start..].split('\'').next().unwrap_or_default().to_owned()
}

#[sqlx::test(migrations = "../migrations")]
async fn every_page_allows_only_its_own_nonced_scripts(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let model = app.save_model(&bedrock_form("bedrock/anthropic.claude-3-haiku-20240307-v1:0")).await;
    let mut nonces = std::collections::HashSet::new();

    let pages = guarded().into_iter().filter(|r| r.method == Method::GET && !r.path.starts_with("/api/"));
    let mut pages: Vec<String> = pages.map(|route| route.path_with(model)).collect();
    pages.push("/users/sign_in".to_owned());
    pages.retain(|path| path != "/");
    for path in pages {
        let client = if path == "/users/sign_in" { new_client() } else { app.client.clone() };
        let response = client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
        let body = response.text().await.unwrap();

        assert!(policy.contains("script-src 'self' 'nonce-"), "{path}: {policy}");
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains("object-src 'none'"));
        assert!(!policy.contains("unsafe-inline") && !policy.contains("'unsafe-eval'"), "{policy}");
        let nonce = policy_nonce(&policy);
        assert!(nonce.len() >= 16, "{nonce}");
        let scripts: Vec<&str> = body.split("<script").skip(1).collect();
        assert!(!scripts.is_empty(), "{path} hydrates, so it has scripts");
        for script in scripts {
            let tag = &script[..script.find('>').unwrap_or(script.len())];
            assert!(
                tag.contains(&format!("nonce=\"{nonce}\"")),
                "{path}: a script without the nonce: <script{tag}>"
            );
        }
        assert!(nonces.insert(nonce), "every page gets a fresh nonce");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn responses_that_are_not_pages_allow_no_script_at_all(pool: PgPool) {
    let app = spawn_app(pool).await;

    for path in ["/admin", "/api/self_hosted_models", "/healthz", "/favicon.ico"] {
        let response = app.get(path).await;
        let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert_eq!(policy, server::NO_SCRIPT_POLICY, "{path}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn every_page_is_whole_without_javascript(pool: PgPool) {
    let app = spawn_signed_in(pool, Role::Admin).await;
    let model = app.save_model(&bedrock_form("bedrock/anthropic.claude-3-haiku-20240307-v1:0")).await;

    let pages = guarded().into_iter().filter(|r| r.method == Method::GET && !r.path.starts_with("/api/"));
    for path in pages.map(|route| route.path_with(model)).filter(|path| path != "/") {
        let page = app.get(&path).await.text().await.unwrap();
        // Out-of-order streaming would leave a loading placeholder, with the content in a
        // <template> that only a script moves into place.
        assert!(!page.contains("<template"), "{path} needs a script to show its content");
        assert!(!page.contains("Loading"), "{path} shows a loading placeholder");
        assert!(page.contains("Sign out"), "{path} shows the shell");
    }
}
