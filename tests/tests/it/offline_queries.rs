//! The committed `.sqlx/` data is current: what `cargo sqlx prepare --check` checks, without
//! sqlx-cli. Builds run with SQLX_OFFLINE=true, so a query whose text changed fails to compile
//! by itself (its file is missing); what compiling cannot see is the schema moving under an
//! unchanged query. Here every recorded query is described again against the migrated schema,
//! exactly as the query macros do, and must match what was recorded.

use sqlx::{Executor, PgPool};

#[sqlx::test(migrations = "../migrations")]
async fn every_recorded_query_still_describes_the_same_against_the_migrated_schema(pool: PgPool) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.sqlx");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect(".sqlx/ exists") {
        let path = entry.unwrap().path();
        let recorded: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("a query file");
        let query = recorded["query"].as_str().expect("the query's text");
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(name, format!("query-{}.json", recorded["hash"].as_str().unwrap()));

        let described = (&pool).describe(query).await.unwrap_or_else(|e| panic!("{name}: {e}\n{query}"));

        assert_eq!(
            serde_json::to_value(&described).unwrap(),
            recorded["describe"],
            "{name} is out of date: run scripts/prepare-sqlx.sh\n{query}"
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} recorded queries");
}
