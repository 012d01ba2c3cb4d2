//! The one owner of `personal_access_tokens`: minting (the token is returned once, only its
//! SHA-256 is stored), listing, revoking, and authenticating a presented token. Every check is a
//! query, so a token revoked or expired on one replica is refused by every replica at its very
//! next request: nothing is cached in a process.

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgExecutor};

use super::domain::{
    CreatedToken, MAX_ACTIVE_PER_USER, TOKEN_PREFIX, TOO_MANY, TokenRow, TokenScope, ValidToken,
};
use crate::audit::ssr::{Actor, NewAuditEvent, record};
use crate::auth::{CurrentUser, Role, UserId};
use crate::error::AppError;

/// A token's last use is written when the stored one is older than this: a token used a
/// thousand times a minute writes once.
pub const LAST_USED_EVERY_SECONDS: f64 = 60.0;
/// The longest token a header may carry before it is refused unread.
const MAX_TOKEN_LENGTH: usize = 128;

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// 32 random bytes from the operating system, base64url, after the recognisable prefix.
fn generate() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn scope_of(key: &str) -> Result<TokenScope, sqlx::Error> {
    TokenScope::parse(key).ok_or_else(|| sqlx::Error::Decode(format!("unknown token scope {key:?}").into()))
}

/// The constraints of the table in the words of the form.
pub fn constraint_violation(constraint: &str) -> Option<AppError> {
    use super::domain::*;
    match constraint {
        "personal_access_tokens_name_length" => Some(AppError::field("name", NAME_BLANK)),
        "personal_access_tokens_expiry_range" => Some(AppError::field("expires_at", EXPIRY_PAST)),
        _ => None,
    }
}

/// Mints a token for `owner` and audits it, in the caller's transaction. A lock per owner keeps
/// two creations at once from both slipping under the cap on active tokens.
pub async fn create(
    tx: &mut PgConnection,
    owner: &CurrentUser,
    token: &ValidToken,
    actor: &Actor,
) -> Result<CreatedToken, AppError> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('personal_access_tokens:' || $1::bigint, 0))",
        owner.id.0
    )
    .execute(&mut *tx)
    .await?;
    let active = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM personal_access_tokens
           WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()"#,
        owner.id.0
    )
    .fetch_one(&mut *tx)
    .await?;
    if active >= MAX_ACTIVE_PER_USER {
        return Err(AppError::field("name", TOO_MANY));
    }
    let secret = generate();
    let row = sqlx::query!(
        r#"INSERT INTO personal_access_tokens (user_id, name, scope, token_sha256, expires_at)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING id, created_at AS "created_at: DateTime<Utc>""#,
        owner.id.0,
        token.name,
        token.scope.key(),
        digest(&secret),
        token.expires_at as _,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|error| AppError::from_database(error, constraint_violation))?;
    let expires_on = token.expires_at.date_naive();
    record(
        &mut *tx,
        actor,
        NewAuditEvent {
            action: "personal_access_token_created",
            target_type: "PersonalAccessToken",
            target_id: Some(row.id.to_string()),
            target_name: Some(&token.name),
            message: format!(
                "Created personal access token {} of {} with scope {}, expiring on {expires_on}",
                token.name,
                owner.username,
                token.scope.key()
            ),
            before: None,
            // Never the token nor its digest.
            after: Some(serde_json::json!({
                "name": token.name,
                "user": owner.username,
                "scope": token.scope.key(),
                "expires_at": token.expires_at,
            })),
        },
    )
    .await?;
    let row = TokenRow {
        id: row.id,
        name: token.name.clone(),
        scope: token.scope,
        created_at: row.created_at,
        expires_at: token.expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    Ok(CreatedToken { token: secret, row })
}

/// Every token of a user, newest first: active ones, then (with `include_inactive`) revoked and
/// expired ones too.
pub async fn list(
    db: impl PgExecutor<'_>,
    user: UserId,
    include_inactive: bool,
) -> Result<Vec<TokenRow>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT id, name, scope, created_at AS "created_at: DateTime<Utc>",
                  expires_at AS "expires_at: DateTime<Utc>", last_used_at AS "last_used_at: DateTime<Utc>",
                  revoked_at AS "revoked_at: DateTime<Utc>"
           FROM personal_access_tokens
           WHERE user_id = $1 AND ($2 OR (revoked_at IS NULL AND expires_at > now()))
           ORDER BY created_at DESC, id DESC"#,
        user.0,
        include_inactive
    )
    .fetch_all(db)
    .await?;
    let rows = rows.into_iter().map(|row| {
        Ok(TokenRow {
            id: row.id,
            name: row.name,
            scope: scope_of(&row.scope)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        })
    });
    rows.collect::<Result<_, sqlx::Error>>().map_err(AppError::from)
}

/// Revokes one of `owner`'s active tokens and audits it. Not found if it is not theirs or not
/// active: one user cannot learn which ids another holds.
pub async fn revoke(
    tx: &mut PgConnection,
    owner: &CurrentUser,
    id: i64,
    actor: &Actor,
) -> Result<(), AppError> {
    let revoked = sqlx::query!(
        "UPDATE personal_access_tokens SET revoked_at = now()
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now()
         RETURNING name, scope",
        id,
        owner.id.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    record(
        &mut *tx,
        actor,
        NewAuditEvent {
            action: "personal_access_token_revoked",
            target_type: "PersonalAccessToken",
            target_id: Some(id.to_string()),
            target_name: Some(&revoked.name),
            message: format!(
                "Revoked personal access token {} of {} with scope {}",
                revoked.name, owner.username, revoked.scope
            ),
            before: None,
            after: None,
        },
    )
    .await?;
    Ok(())
}

/// Who a presented token acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCaller {
    pub token_id: i64,
    pub scope: TokenScope,
    /// The owner, with the role this token may act with (`TokenScope::effective_role`).
    pub user: CurrentUser,
}

/// The caller of a presented token, if it is known, not revoked and not expired, and its owner
/// still exists (read with the owner's role in one query, rather than a second query through
/// the users module on every API call). Records its use at most once a minute. Checked in the database on every
/// request, so a revocation holds at once everywhere.
pub async fn authenticate(pool: &sqlx::PgPool, presented: &str) -> Result<Option<TokenCaller>, AppError> {
    if presented.len() > MAX_TOKEN_LENGTH || !presented.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let found = sqlx::query!(
        r#"SELECT t.id, t.scope, t.last_used_at AS "last_used_at: DateTime<Utc>", u.id AS user_id, u.username, u.email, u.role
           FROM personal_access_tokens t JOIN users u ON u.id = t.user_id
           WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND t.expires_at > now()"#,
        digest(presented)
    )
    .fetch_optional(pool)
    .await?;
    let Some(found) = found else { return Ok(None) };
    let scope = scope_of(&found.scope)?;
    let role = Role::parse(&found.role).map_err(|message| {
        tracing::error!(%message, "a user with an unknown role");
        AppError::Internal
    })?;
    if last_use_is_stale(found.last_used_at, Utc::now()) {
        // The condition is checked again in the UPDATE: of concurrent requests at the minute's
        // turn, one writes and the others match no row.
        sqlx::query!(
            "UPDATE personal_access_tokens SET last_used_at = now()
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
            found.id,
            LAST_USED_EVERY_SECONDS
        )
        .execute(pool)
        .await?;
    }
    let user = CurrentUser {
        id: UserId(found.user_id),
        username: found.username,
        email: found.email,
        role: scope.effective_role(role),
    };
    Ok(Some(TokenCaller { token_id: found.id, scope, user }))
}

fn last_use_is_stale(last_used_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_used_at.is_none_or(|at| (now - at).as_seconds_f64() >= LAST_USED_EVERY_SECONDS)
}
