//! Soak: unauthenticated wrong sign-ins, as fast as 32 connections can send them, for 30 s
//! (`SOAK_SECONDS` to change), against the real router on a real database. Meanwhile a signed-in
//! admin loads the models page every 200 ms. Prints the audit rows written, the throttle's rows,
//! the process's resident memory, and the admin's page latency before and during the flood.
//!
//! Half the spam guesses `root`'s password, half sprays random logins; all from one address, as
//! in the attack reported in issue 11. The server, the spammers and the admin share one process,
//! so resident memory includes the clients.
//!
//! Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run -p tests --example sign_in_flood
//! (it creates and drops a scratch database on that server).

#[path = "../tests/it/common/mod.rs"]
mod common;

// The server's allocator (server/src/main.rs): its memory figures are production's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

const SPAMMERS: usize = 32;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let url = std::env::var("DATABASE_URL").expect("set DATABASE_URL to a PostgreSQL server");
    let mut admin_db = PgConnection::connect(&url).await.expect("PostgreSQL answers");
    admin_db.execute("DROP DATABASE IF EXISTS duo_admin_soak").await.unwrap();
    admin_db.execute("CREATE DATABASE duo_admin_soak").await.unwrap();
    let soak_url = format!("{}/duo_admin_soak", url.rsplit_once('/').unwrap().0);
    let pool = sqlx::PgPool::connect(&soak_url).await.unwrap();
    server::database::MIGRATOR.run(&pool).await.unwrap();

    let app = Arc::new(common::spawn_app(pool.clone()).await);
    app.add_user("root", app::auth::Role::Admin).await;
    app.add_user("admin", app::auth::Role::Admin).await;
    app.sign_in("admin", common::PASSWORD).await;
    let page = "/admin/gitlab_duo/self_hosted";

    let audit_rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_events").fetch_one(&pool).await.unwrap()
    };
    let rss_mib = || common::memory_kib("VmRSS") as f64 / 1024.0;

    let mut before = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        assert_eq!(app.get(page).await.status(), 200);
        before.push(started.elapsed());
    }
    let audit_before = audit_rows().await;
    let rss_before = rss_mib();

    let stop = Arc::new(AtomicBool::new(false));
    let spammers: Vec<_> = (0..SPAMMERS)
        .map(|n| {
            let app = app.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = common::new_client();
                let mut answers: BTreeMap<String, usize> = BTreeMap::new();
                let mut round = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let login = if n % 2 == 0 { "root".to_owned() } else { format!("guess{n}x{round}") };
                    let response = client
                        .post(app.url("/users/sign_in"))
                        .form(&[("login", login.as_str()), ("password", "wrong")])
                        .send()
                        .await;
                    let answer = match response {
                        Ok(response) if response.status() == 303 => {
                            let location = common::location(&response);
                            if location.contains("error=locked") { "303 locked" } else { "303 invalid" }
                        }
                        Ok(response) if response.status() == 503 => "503 busy",
                        Ok(_) => "other",
                        Err(_) => "connection error",
                    };
                    *answers.entry(answer.to_owned()).or_default() += 1;
                }
                answers
            })
        })
        .collect();

    let flood_started = Instant::now();
    let mut during = Vec::new();
    let mut rss_samples = Vec::new();
    while flood_started.elapsed() < Duration::from_secs(seconds) {
        let started = Instant::now();
        assert_eq!(app.get(page).await.status(), 200, "the admin's page still answers");
        during.push(started.elapsed());
        rss_samples.push(rss_mib());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for spammer in spammers {
        for (answer, n) in spammer.await.unwrap() {
            *answers.entry(answer).or_default() += n;
        }
    }
    let elapsed = flood_started.elapsed();
    let sent: usize = answers.values().sum();
    let audit_after = audit_rows().await;
    let locked_counted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum((after->>'count')::bigint), 0)::bigint FROM audit_events WHERE action = 'user_sign_in_locked'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let throttle_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sign_in_attempts").fetch_one(&pool).await.unwrap();

    let quantiles = |mut samples: Vec<Duration>| {
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
        format!(
            "median {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} loads)",
            at(0.5),
            at(0.95),
            at(1.0),
            samples.len()
        )
    };
    println!(
        "flood: {sent} wrong sign-ins in {:.1} s ({:.0}/s) from {SPAMMERS} connections",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    for (answer, n) in &answers {
        println!("  {answer}: {n}");
    }
    println!(
        "audit rows: {audit_before} before, {audit_after} after (+{}); refusals counted on locked rows: {locked_counted}",
        audit_after - audit_before
    );
    println!("throttle rows (sign_in_attempts): {throttle_rows}");
    let peak = rss_samples.iter().copied().fold(rss_before, f64::max);
    let spread: Vec<String> = rss_samples
        .iter()
        .step_by(rss_samples.len().div_ceil(6).max(1))
        .map(|mib| format!("{mib:.0}"))
        .collect();
    println!("resident memory through the flood (MiB, evenly spaced): {}", spread.join(", "));
    println!(
        "resident memory: {rss_before:.0} MiB before, {:.0} MiB after, peak sampled {peak:.0} MiB (peak ever {:.0} MiB)",
        rss_mib(),
        common::memory_kib("VmHWM") as f64 / 1024.0
    );
    println!("admin page {page}: before the flood {}", quantiles(before));
    println!("admin page {page}: during the flood {}", quantiles(during));

    pool.close().await;
    admin_db.execute("DROP DATABASE duo_admin_soak WITH (FORCE)").await.unwrap();
}
