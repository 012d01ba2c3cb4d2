//! Connecting to PostgreSQL: the given `DATABASE_URL`, or the private cluster. Migrations run
//! here, at every start.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Config;
use crate::postgres::PrivateCluster;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The pool, and the private cluster to stop at exit if one was started.
pub struct Database {
    pub pool: PgPool,
    pub cluster: Option<PrivateCluster>,
}

pub async fn connect(config: &Config) -> anyhow::Result<Database> {
    let (options, cluster) = match &config.database_url {
        Some(url) => {
            let options: PgConnectOptions =
                url.parse().context("DATABASE_URL is not a valid PostgreSQL URL")?;
            (options, None)
        }
        None => {
            let cluster = PrivateCluster::start(&config.data_dir.join("postgres")).await?;
            (cluster.connect_options(), Some(cluster))
        }
    };
    let pool = PgPoolOptions::new()
        .max_connections(10)
        // Fail fast while the database is down, so pages can answer 503 instead of hanging.
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await
        .context("could not connect to PostgreSQL (check DATABASE_URL)")?;
    MIGRATOR.run(&pool).await.context("could not apply the database migrations")?;
    Ok(Database { pool, cluster })
}
