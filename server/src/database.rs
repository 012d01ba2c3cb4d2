//! Connecting to PostgreSQL: the given `DATABASE_URL`, or the private cluster. Migrations run
//! here, at every start.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::config::Config;
use crate::postgres::PrivateCluster;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A connection idle for longer than this is checked before it is used again.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// How the console's pool hands out connections.
///
/// sqlx pings every connection before handing it out by default: a second round trip for every
/// query, on a hot path that is mostly round trips (a kept features tab is one query). Here only a connection that sat
/// idle for a while is checked (a database restart or a proxy may have cut it meanwhile); one
/// in steady use is not, and should it break all the same, its one query fails (the page
/// answers 503) and the connection is dropped for a new one.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(10)
        // Fail fast while the database is down, so pages can answer 503 instead of hanging.
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .before_acquire(|connection, metadata| {
            Box::pin(
                async move { Ok(metadata.idle_for < CHECK_IDLE_AFTER || connection.ping().await.is_ok()) },
            )
        })
}

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
    let pool = pool_options()
        .connect_with(options)
        .await
        .context("could not connect to PostgreSQL (check DATABASE_URL)")?;
    MIGRATOR.run(&pool).await.context("could not apply the database migrations")?;
    Ok(Database { pool, cluster })
}
