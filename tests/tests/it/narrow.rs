//! Layout: at a phone's width (390 px) no page scrolls sideways, and the menu and "Sign out" stay
//! reachable; at a desktop's (1280 px) each page's description reads under its title, as in GitLab.

use fantoccini::Locator;
use sqlx::PgPool;

use crate::browser::Browser;
use crate::common::*;
use app::auth::Role;

#[sqlx::test(migrations = "../migrations")]
async fn at_390_px_no_page_scrolls_sideways(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    sqlx::query(
        "INSERT INTO self_hosted_models (name, platform, model_family, endpoint, identifier) VALUES
           ('Mixtral on a very long deployment name for vLLM', 'api', 'mixtral',
            'http://vllm-with-a-long-host-name.internal.example.com:8000/v1', 'custom_openai/mistralai/Mixtral-8x7B-Instruct-v0.1')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let browser = Browser::start().await;

    browser
        .run("narrow", |b| async move {
            let base = app.address.clone();
            b.client.set_window_size(390, 844).await.unwrap();
            b.client.goto(&format!("{base}/users/sign_in")).await.unwrap();
            b.sign_in_as(&base, "ada").await;
            for (name, path) in [
                ("overview", "/admin"),
                ("features", "/admin/gitlab_duo/self_hosted/features"),
                ("models", "/admin/gitlab_duo/self_hosted/models"),
                ("new-model", "/admin/gitlab_duo/self_hosted/models/new"),
                ("configuration", "/admin/gitlab_duo/configuration"),
                ("audit", "/admin/audit_events"),
            ] {
                b.client.goto(&format!("{base}{path}")).await.unwrap();
                b.find(Locator::Css("h1")).await;
                let width =
                    b.client.execute("return document.documentElement.scrollWidth;", vec![]).await.unwrap();
                let viewport = b.client.execute("return window.innerWidth;", vec![]).await.unwrap();
                crate::browser::save_screenshot(&b, &format!("narrow-{name}")).await;
                assert!(width.as_u64() <= viewport.as_u64(), "{path} scrolls sideways: {width} > {viewport}");
            }
            // "Sign out" is on screen.
            let sign_out = b.find(Locator::XPath("//button[normalize-space()='Sign out']")).await;
            let right = b
                .client
                .execute(
                    "return arguments[0].getBoundingClientRect().right;",
                    vec![serde_json::to_value(&sign_out).unwrap()],
                )
                .await
                .unwrap();
            assert!(right.as_f64().unwrap() <= 390.0, "Sign out is off-screen at {right}");
        })
        .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn at_1280_px_each_pages_description_is_under_its_title(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.add_user("ada", Role::Admin).await;
    let browser = Browser::start().await;

    browser
        .run("wide", |b| async move {
            let base = app.address.clone();
            b.client.set_window_size(1280, 800).await.unwrap();
            b.sign_in_as(&base, "ada").await;
            for (name, path) in [
                ("models", "/admin/gitlab_duo/self_hosted/models"),
                ("new-model", "/admin/gitlab_duo/self_hosted/models/new"),
                ("configuration", "/admin/gitlab_duo/configuration"),
                ("tokens", "/-/user_settings/personal_access_tokens"),
            ] {
                b.client.goto(&format!("{base}{path}")).await.unwrap();
                let title = b.find(Locator::Css("h1.page-title")).await;
                let description = b.find(Locator::Css("p.page-description")).await;
                crate::browser::save_screenshot(&b, &format!("wide-{name}")).await;
                let (title, description) =
                    (title.rectangle().await.unwrap(), description.rectangle().await.unwrap());
                // (x, y, width, height): the description starts below the title, at its left edge.
                assert!(description.1 >= title.1 + title.3, "{path}: the description is beside its title");
                assert!(
                    (description.0 - title.0).abs() < 1.0,
                    "{path}: the description is not under its title"
                );
            }
        })
        .await;
}
