//! The session store: tower-sessions' PostgreSQL store, except that saving a session only
//! updates a row that still exists. tower-sessions' own `save` is an upsert, so a request that
//! loaded the session before a sign-out (or before its user's sessions were ended) and saves it
//! as it finishes would write the deleted session back: the sign-out would be undone. Here a new
//! session is inserted only by `create` (at sign-in, with a fresh id), and a deleted one stays
//! deleted whatever is still in flight.

use async_trait::async_trait;
use sqlx::PgPool;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};
use tower_sessions_sqlx_store::PostgresStore;

#[derive(Debug, Clone)]
pub struct SessionRows {
    store: PostgresStore,
    pool: PgPool,
}

impl SessionRows {
    pub fn new(pool: PgPool) -> Self {
        SessionRows { store: PostgresStore::new(pool.clone()), pool }
    }
}

#[async_trait]
impl SessionStore for SessionRows {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.store.create(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        // Encoded as the PostgreSQL store encodes it, so that its `load` reads it back.
        let data = rmp_serde::to_vec(record).map_err(|error| Error::Encode(error.to_string()))?;
        sqlx::query!(
            "UPDATE tower_sessions.session SET data = $2, expiry_date = $3 WHERE id = $1",
            record.id.to_string(),
            data,
            record.expiry_date
        )
        .execute(&self.pool)
        .await
        .map_err(|error| Error::Backend(error.to_string()))?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        self.store.load(session_id).await
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        self.store.delete(session_id).await
    }
}
