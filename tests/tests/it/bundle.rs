//! The browser bundle under `/pkg/`: compressed for browsers that accept it, named by its
//! version so that browsers keep it, and never a stale file under a current name.

use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::common::*;

#[sqlx::test(migrations = "../migrations")]
async fn the_browser_bundle_goes_out_gzipped_to_browsers_that_accept_it(pool: PgPool) {
    let app = spawn_app(pool).await;
    let wasm = format!("/pkg/{}_bg.wasm", app::OUTPUT_NAME);
    let on_disk = std::fs::metadata(site_root().join(&wasm[1..])).unwrap().len();

    // Only gzip accepted: a release bundle (LEPTOS_SITE_ROOT=target/bench-site) has brotli
    // copies too, which a browser accepting both is sent (below).
    let gzipped = app.client.get(app.url(&wasm)).header("accept-encoding", "gzip").send().await.unwrap();
    let plain = app.get(&wasm).await;

    assert_eq!(gzipped.status(), StatusCode::OK);
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(gzipped.headers()["content-type"], "application/wasm");
    let compressed = gzipped.bytes().await.unwrap().len() as u64;
    assert!(compressed < on_disk / 2, "{compressed} bytes gzipped of {on_disk}");
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.bytes().await.unwrap().len() as u64, on_disk);

    let both = app.client.get(app.url(&wasm)).header("accept-encoding", "gzip, br").send().await.unwrap();
    let brotli_copy = std::fs::metadata(site_root().join(format!("{}.br", &wasm[1..])));
    let expected = if brotli_copy.is_ok() { "br" } else { "gzip" };
    assert_eq!(both.headers()["content-encoding"], expected, "the smallest copy the browser reads");
}

#[sqlx::test(migrations = "../migrations")]
async fn pages_name_the_bundle_by_its_contents_version_which_browsers_keep_for_a_year(pool: PgPool) {
    let app = spawn_app(pool).await;
    let name = app::OUTPUT_NAME;
    // In the order build-site.sh hashes them.
    let files = [format!("{name}_bg.wasm"), format!("{name}.js"), format!("{name}.css")];
    // The version is the files' hash: the same build gives the same version on every replica.
    let mut contents = Sha256::new();
    for file in &files {
        contents.update(std::fs::read(site_root().join("pkg").join(file)).unwrap());
    }
    let hash: String = contents.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
    let version = std::fs::read_to_string(site_root().join("pkg/VERSION")).unwrap().trim().to_owned();
    assert_eq!(version, hash[..16]);

    let page = app.get("/users/sign_in").await.text().await.unwrap();
    for file in &files {
        let versioned = format!("/pkg/{version}/{file}");
        assert!(page.contains(&versioned), "the page names {versioned}");
        let answer =
            app.client.get(app.url(&versioned)).header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{versioned}");
        assert_eq!(answer.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(answer.headers()["content-encoding"], "gzip", "{versioned}");
        // By its plain name (as the error pages name the style sheet) it is checked at each use.
        let plain = app.get(&format!("/pkg/{file}")).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(plain.headers()["cache-control"], "no-cache");
        assert!(!page.contains(&format!("\"/pkg/{file}\"")), "the page names {file} only by its version");
    }
    // Another build's version is not this build's: nothing is served under it, so a browser
    // never keeps today's files under yesterday's name.
    let stale = app.get(&format!("/pkg/0123456789abcdef/{name}.js")).await;
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
    assert!(stale.headers().get("cache-control").is_none());
}
