//! Benchmark: how long the console's streaming path adds between a model's first text event
//! and the first byte of it reaching the browser. A local Bedrock-compatible fake sends the
//! first delta and notes the instant; the client (standing in for the browser) notes when the
//! first text line arrives through the real router, auth, server function and stream. Then
//! rounds of 200 chats at once, with their throughput and the process's memory.
//!
//! Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run -p tests --example streaming_overhead
//! (it creates and drops a scratch database on that server).

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use app::chat::{ChatEvent, ChatMessage, LineBuffer, Speaker};
use common::fake_bedrock::FakeBedrock;
use futures::StreamExt;

const ROUNDS: usize = 200;
const CONCURRENT: usize = 200;
const CONCURRENT_ROUNDS: usize = 5;

#[tokio::main]
async fn main() {
    let (mut admin, pool) = common::scratch_database("duo_admin_bench").await;

    let fake = FakeBedrock::start().await;
    let app = common::TestApp::builder(pool.clone())
        .bedrock(common::bedrock_client(&fake.url, true))
        .spawn_signed_in(app::auth::Role::Admin)
        .await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO self_hosted_models (name, platform, model_family, identifier)
         VALUES ('bench', 'bedrock', 'claude_3', 'bedrock/benchmark') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let messages =
        serde_json::to_string(&[ChatMessage { speaker: Speaker::User, text: "Hello".into() }]).unwrap();

    let mut added = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS + 10 {
        let response = app
            .client
            .post(app.url("/api/chat_with_self_hosted_model"))
            .form(&[("model_id", id.to_string()), ("messages", messages.clone())])
            .send()
            .await
            .unwrap();
        let mut body = response.bytes_stream();
        let mut lines = LineBuffer::default();
        let mut first_text_at = None;
        while let Some(chunk) = body.next().await {
            let events = lines.push(std::str::from_utf8(&chunk.unwrap()).unwrap());
            if first_text_at.is_none() && events.iter().any(|e| matches!(e, ChatEvent::Text(_))) {
                first_text_at = Some(Instant::now());
            }
        }
        let sent = fake.first_delta_sent.lock().unwrap().take().expect("the fake sent a delta");
        // The first rounds warm connections and caches.
        if round >= 10 {
            added.push(first_text_at.expect("a text line arrived").duration_since(sent));
        }
    }
    added.sort();
    let at = |q: f64| added[((added.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "streaming overhead, model's first text event -> first text byte at the client, {ROUNDS} rounds:"
    );
    println!("  median {:.3} ms   p95 {:.3} ms   max {:.3} ms", ms(at(0.5)), ms(at(0.95)), ms(at(1.0)));

    // Many at once: rounds of CONCURRENT chats, with the process's resident memory after each.
    println!(
        "{CONCURRENT} streaming chats at once, {CONCURRENT_ROUNDS} rounds (server, fake model and clients in one process):"
    );
    println!("  before: resident {} MiB", common::memory_kib("VmRSS") / 1024);
    for round in 1..=CONCURRENT_ROUNDS {
        let started = Instant::now();
        let chats = (0..CONCURRENT).map(|_| {
            let request = app
                .client
                .post(app.url("/api/chat_with_self_hosted_model"))
                .form(&[("model_id", id.to_string()), ("messages", messages.clone())]);
            async move {
                let text = request.send().await.unwrap().text().await.unwrap();
                assert!(text.contains("today?"), "a whole reply: {text}");
            }
        });
        futures::future::join_all(chats).await;
        let elapsed = started.elapsed();
        println!(
            "  round {round}: {:.0} ms, {:.0} chats/s, resident {} MiB (peak {} MiB)",
            ms(elapsed),
            CONCURRENT as f64 / elapsed.as_secs_f64(),
            common::memory_kib("VmRSS") / 1024,
            common::memory_kib("VmHWM") / 1024,
        );
    }

    pool.close().await;
    common::drop_scratch_database(&mut admin, "duo_admin_bench").await;
}
