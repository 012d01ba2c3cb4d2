//! Benchmark: how many gateway reads (`GET /api/v1/features/{key}/model` with a `gateway`
//! token) the console answers per second, with a full answer and with a matching
//! `If-None-Match` (304). Clients, server and database share this machine.
//!
//! Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run -p tests --example gateway_poll
//! (it creates and drops a scratch database on that server).

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::Instant;

use reqwest::{Method, StatusCode};

const REQUESTS: usize = 4000;
const CONCURRENT: usize = 16;

#[tokio::main]
async fn main() {
    let (mut admin, pool) = common::scratch_database("duo_admin_gateway_bench").await;

    let settings = server::RouterSettings { api_rate_limit_per_minute: u32::MAX, ..common::settings() };
    let app = common::TestApp::builder(pool.clone())
        .settings(settings)
        .spawn_signed_in(app::auth::Role::Admin)
        .await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
         VALUES ('bench', 'bedrock', 'claude_3', 'bedrock/benchmark') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO feature_settings (feature, provider, self_hosted_model_id) VALUES ('code_generations', 'self_hosted', $1)")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let token = app.create_token("bench", "gateway").await;
    let client = reqwest::Client::new();
    let path = app.url("/api/v1/features/code_generations/model");
    let first = client.request(Method::GET, &path).bearer_auth(&token).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();

    for (label, if_none_match, expected) in [
        ("full answer (200)", None, StatusCode::OK),
        ("If-None-Match (304)", Some(etag), StatusCode::NOT_MODIFIED),
    ] {
        let started = Instant::now();
        let workers = (0..CONCURRENT).map(|_| {
            let (client, path, token, if_none_match) =
                (client.clone(), path.clone(), token.clone(), if_none_match.clone());
            tokio::spawn(async move {
                for _ in 0..REQUESTS / CONCURRENT {
                    let mut request = client.get(&path).bearer_auth(&token);
                    if let Some(tag) = &if_none_match {
                        request = request.header("if-none-match", tag);
                    }
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), expected);
                    response.bytes().await.unwrap();
                }
            })
        });
        for worker in futures::future::join_all(workers).await {
            worker.unwrap();
        }
        let elapsed = started.elapsed();
        println!(
            "{label}: {REQUESTS} requests, {CONCURRENT} at once, {:.0} ms, {:.0} requests/s",
            elapsed.as_secs_f64() * 1000.0,
            REQUESTS as f64 / elapsed.as_secs_f64()
        );
    }

    pool.close().await;
    common::drop_scratch_database(&mut admin, "duo_admin_gateway_bench").await;
}
