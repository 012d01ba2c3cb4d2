//! Benchmark: "Test all" over 100 models against a local Bedrock-compatible fake whose models
//! answer in 200 to 299 ms. Test all asks `TEST_ALL_FAN_OUT` models at once, so the least it can
//! take is the slowest model's latency times the number of waves (100 / fan-out, rounded up);
//! this prints that bound, the time measured through the real router and server function, and
//! their ratio (the goal: at most 2), beside the slowest model tested alone.
//!
//! Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run -p tests --example test_all_bench
//! (it creates and drops a scratch database on that server).

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use app::chat::api::TEST_ALL_FAN_OUT;
use app::chat::{LineBuffer, TestAllEvent};
use common::fake_bedrock::FakeBedrock;

const MODELS: usize = 100;
const RUNS: usize = 3;

fn latency_ms(n: usize) -> u64 {
    200 + (n as u64 * 37) % 100
}

#[tokio::main]
async fn main() {
    let (mut admin, pool) = common::scratch_database("duo_admin_test_all_bench").await;

    let fake = FakeBedrock::start().await;
    let app = common::TestApp::builder(pool.clone())
        .bedrock(common::bedrock_client(&fake.url, true))
        .spawn_signed_in(app::auth::Role::Admin)
        .await;
    for n in 0..MODELS {
        sqlx::query(
            "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
             VALUES ($1, 'bedrock', 'claude_3', $2)",
        )
        .bind(format!("Model {n:03}"))
        .bind(format!("bedrock/us.latency-{}ms", latency_ms(n)))
        .execute(&pool)
        .await
        .unwrap();
    }
    let slowest_ms = (0..MODELS).map(latency_ms).max().unwrap_or_default();

    // The slowest model alone, through Test connection (its think time plus the console's path).
    let mut alone = Duration::MAX;
    for _ in 0..RUNS {
        let started = Instant::now();
        let result =
            app.test_connection(&common::bedrock_form(&format!("bedrock/us.latency-{slowest_ms}ms"))).await;
        assert!(result.ok, "{}", result.message);
        alone = alone.min(started.elapsed());
    }
    let waves = MODELS.div_ceil(TEST_ALL_FAN_OUT);
    let bound = alone * waves as u32;

    println!(
        "Test all over {MODELS} models, {TEST_ALL_FAN_OUT} at once ({waves} waves), models answering in 200-{slowest_ms} ms:"
    );
    println!("  slowest model alone: {:.0} ms; bound (waves x slowest): {:.0} ms", ms(alone), ms(bound));
    for run in 1..=RUNS {
        let started = Instant::now();
        let response = app.client.post(app.url("/api/test_all_self_hosted_models")).send().await.unwrap();
        let events: Vec<TestAllEvent> = LineBuffer::default().push_as(&response.text().await.unwrap());
        let took = started.elapsed();
        assert_eq!(events.last(), Some(&TestAllEvent::Finished { answered: MODELS, total: MODELS }));
        println!(
            "  run {run}: {:.0} ms, {:.2}x the bound ({:.1} models/s)",
            ms(took),
            took.as_secs_f64() / bound.as_secs_f64(),
            MODELS as f64 / took.as_secs_f64()
        );
    }
    drop(app);
    pool.close().await;
    common::drop_scratch_database(&mut admin, "duo_admin_test_all_bench").await;
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
