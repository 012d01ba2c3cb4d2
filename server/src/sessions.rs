//! The session store, and what a session holds about who signed in.
//!
//! It is tower-sessions' PostgreSQL layout with two differences:
//! - Saving a session only updates a row that still exists. tower-sessions' own `save` is an
//!   upsert, so a request that loaded the session before a sign-out (or before its user's
//!   sessions were ended) and saves it as it finishes would write the deleted session back: the
//!   sign-out would be undone. Here a new session is inserted only by `create` (at sign-in, with
//!   a fresh id), and a deleted one stays deleted whatever is still in flight.
//! - A signed-in session names its user in a column (`user_id`), so that `find_signed_in`
//!   reads the session, its user and the features tab's generation in one round trip.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};
use tower_sessions_sqlx_store::PostgresStore;

use app::auth::CurrentUser;

/// What the session remembers about who signed in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedIn {
    pub user_id: i64,
    pub at: DateTime<Utc>,
}

pub const SIGNED_IN_KEY: &str = "signed_in";
/// When the session was last saved for its idle expiry: it is saved again at most once a
/// minute, not on every request.
pub const SEEN_KEY: &str = "seen_at";

/// One value of a session's data, as tower-sessions' `Session::get` would read it.
pub fn value<T: DeserializeOwned>(record: &Record, key: &str) -> Option<T> {
    record.data.get(key).and_then(|value| T::deserialize(value).ok())
}

/// The user a session says signed in, for its row's `user_id`.
fn user_of(record: &Record) -> Option<i64> {
    value::<SignedIn>(record, SIGNED_IN_KEY).map(|signed_in| signed_in.user_id)
}

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

/// Encoded as the PostgreSQL store encodes it, so that its `load` reads it back.
fn encode(record: &Record) -> Result<Vec<u8>> {
    rmp_serde::to_vec(record).map_err(|error| Error::Encode(error.to_string()))
}

/// Decoded as the PostgreSQL store decodes it.
fn decode(data: &[u8]) -> std::result::Result<Record, sqlx::Error> {
    rmp_serde::from_slice(data).map_err(|error| sqlx::Error::Decode(error.into()))
}

fn backend(error: sqlx::Error) -> Error {
    Error::Backend(error.to_string())
}

#[async_trait]
impl SessionStore for SessionRows {
    async fn create(&self, record: &mut Record) -> Result<()> {
        let user_id = user_of(record);
        loop {
            let inserted = sqlx::query!(
                "INSERT INTO tower_sessions.session (id, data, expiry_date, user_id) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
                record.id.to_string(),
                encode(record)?,
                record.expiry_date,
                user_id
            )
            .execute(&self.pool)
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            // Another session has this id (128 random bits: never in practice): draw another.
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        sqlx::query!(
            "UPDATE tower_sessions.session SET data = $2, expiry_date = $3, user_id = $4 WHERE id = $1",
            record.id.to_string(),
            encode(record)?,
            record.expiry_date,
            user_of(record)
        )
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        self.store.load(session_id).await
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        self.store.delete(session_id).await
    }
}

/// A live session as the sign-in guard reads it.
pub struct Found {
    pub record: Record,
    /// The user the session names, as they are now, with the moment before which their
    /// sessions are void. `None` for a session that names no one: signed out, or saved before
    /// sessions named their user.
    pub user: Option<(CurrentUser, DateTime<Utc>)>,
    /// The features tab's generation, read here because the tab, the page admins reload most,
    /// is answered from memory while it stays put (`page_cache.rs`): one round trip, not two.
    pub features_generation: i64,
}

/// The session `id` unless it expired, with its user and the features tab's generation, in one
/// round trip.
pub async fn find_signed_in(pool: &PgPool, id: &Id) -> std::result::Result<Option<Found>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT s.data, u.id AS "user_id?", u.username AS "username?", u.email AS "email?",
                  u.role AS "role?", u.sessions_valid_after AS "sessions_valid_after?: DateTime<Utc>", g.generation
           FROM tower_sessions.session s
           LEFT JOIN users u ON u.id = s.user_id
           CROSS JOIN features_generation g
           WHERE s.id = $1 AND s.expiry_date > now()"#,
        id.to_string()
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let record = decode(&row.data)?;
    let user = match (row.user_id, row.username, row.email, row.role, row.sessions_valid_after) {
        (Some(id), Some(username), Some(email), Some(role), Some(valid_after)) => {
            Some((crate::users::user_from_row(id, username, email, &role)?, valid_after))
        }
        _ => None,
    };
    Ok(Some(Found { record, user, features_generation: row.generation }))
}
