//! Known devices: browsers that have signed in successfully as a user. Each gets a random token
//! in an HttpOnly cookie scoped to the sign-in form; the database keeps only its SHA-256, with
//! the user it belongs to. A login that an attacker keeps locked still signs in from its owner's
//! known device (`throttle.rs` counts such an attempt against the device alone), which is how
//! GitHub and Okta keep lockouts from becoming a denial of service.
//!
//! Why a token in the database rather than a cookie signed with a server key: every replica sees
//! it without sharing another secret, ending a user's sessions revokes it with one DELETE, and
//! nothing in the database can be replayed as a cookie.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, PgPool};

pub const DEVICE_COOKIE: &str = "duo_admin_device";
/// How long a device stays known without signing in again.
const KNOWN_FOR_DAYS: i64 = 90;
/// Devices kept per user: the most recently used ones.
const MAX_PER_USER: i64 = 20;

/// The token a request's device cookie carries, if any.
pub fn token_from(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == DEVICE_COOKIE)
        .map(|(_, token)| token.to_owned())
        .filter(|token| !token.is_empty() && token.len() <= 64)
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The key a known device counts under in the throttle: a prefix of its digest, never the token.
pub fn throttle_key(token: &str) -> String {
    digest(token).iter().take(16).map(|byte| format!("{byte:02x}")).collect()
}

/// The user the device signed in as, if it is known and has been used within 90 days.
pub async fn user_of(db: impl PgExecutor<'_>, token: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT user_id FROM known_devices
         WHERE token_sha256 = $1 AND last_used_at > now() - make_interval(days => $2)",
        digest(token),
        KNOWN_FOR_DAYS as i32
    )
    .fetch_optional(db)
    .await
}

/// After a successful sign-in: marks the presented device as used, or remembers a new one and
/// returns its fresh token. Keeps the user's most recent devices only.
pub async fn remember(
    pool: &PgPool,
    user_id: i64,
    presented: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    if let Some(token) = presented {
        let touched = sqlx::query!(
            "UPDATE known_devices SET last_used_at = now() WHERE token_sha256 = $1 AND user_id = $2",
            digest(token),
            user_id
        )
        .execute(pool)
        .await?;
        if touched.rows_affected() == 1 {
            return Ok(None);
        }
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO known_devices (token_sha256, user_id) VALUES ($1, $2)",
        digest(&token),
        user_id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM known_devices WHERE user_id = $1 AND (
             last_used_at <= now() - make_interval(days => $2)
             OR token_sha256 NOT IN (SELECT token_sha256 FROM known_devices WHERE user_id = $1
                                     ORDER BY last_used_at DESC LIMIT $3))",
        user_id,
        KNOWN_FOR_DAYS as i32,
        MAX_PER_USER
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(token))
}

/// Forgets every known device of a user (when their sessions are ended).
pub async fn forget_all(db: impl PgExecutor<'_>, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM known_devices WHERE user_id = $1", user_id).execute(db).await?;
    Ok(())
}

/// The `Set-Cookie` value for a new device token: sent back only to the sign-in form.
pub fn cookie(token: &str, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = KNOWN_FOR_DAYS * 24 * 3600;
    HeaderValue::from_str(&format!(
        "{DEVICE_COOKIE}={token}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
        crate::auth::SIGN_IN_PATH
    ))
    .ok()
}
