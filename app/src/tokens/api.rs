//! The server functions of the personal access tokens page. Each concerns only the signed-in
//! user's own tokens, so auditors may use them too (the guard lets these two changes through
//! for every signed-in user, `SELF_SERVICE_PATHS`); the scope rule keeps an auditor's tokens at
//! `read`. Bearer tokens are never accepted here: a token cannot mint or revoke tokens.

use chrono::NaiveDate;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use super::domain::{CreatedToken, TokenForm, TokenRow, TokenScope};
use crate::error::AppError;

pub const CREATE_PATH: &str = "/api/create_personal_access_token";
pub const REVOKE_PATH: &str = "/api/revoke_personal_access_token";
pub const NEEDS_SCRIPT: &str =
    "Creating a token needs JavaScript: the new token is shown once, on this page, and is never stored.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensPage {
    pub tokens: Vec<TokenRow>,
    /// The scopes this user may choose.
    pub scopes: Vec<TokenScope>,
    pub default_expiry: NaiveDate,
    pub latest_expiry: NaiveDate,
    pub today: NaiveDate,
}

#[server(endpoint = "personal_access_tokens", input = GetUrl)]
pub async fn load_tokens() -> Result<TokensPage, AppError> {
    ssr::load_tokens().await.map_err(AppError::respond)
}

#[server(endpoint = "create_personal_access_token")]
pub async fn create_token(#[server(flatten)] form: TokenForm) -> Result<CreatedToken, AppError> {
    ssr::create_token(form).await.map_err(AppError::respond)
}

#[server(endpoint = "revoke_personal_access_token")]
pub async fn revoke_token(id: i64) -> Result<(), AppError> {
    let revoked = ssr::revoke_token(id).await;
    // A plain form: its page comes back without the token, or says why it is still there.
    if let Err(error) = &revoked {
        crate::flash::ssr::keep(crate::flash::Flash::refusal(error, crate::error::INTERNAL_MESSAGE)).await;
    }
    revoked.map_err(AppError::respond)
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use chrono::{Days, Utc};

    use super::*;
    use crate::audit::ssr::Actor;
    use crate::auth::CurrentUser;
    use crate::auth::ssr::current_user;
    use crate::tokens::domain::{MAX_DAYS, default_expiry};
    use crate::tokens::store;

    fn pool() -> sqlx::PgPool {
        expect_context()
    }

    pub async fn load_tokens() -> Result<TokensPage, AppError> {
        let user = current_user().await?;
        let today = Utc::now().date_naive();
        let tokens = store::list(&pool(), user.id, false).await?;
        Ok(TokensPage {
            tokens,
            scopes: TokenScope::ALL.into_iter().filter(|scope| scope.allowed_for(user.role)).collect(),
            default_expiry: default_expiry(today),
            latest_expiry: today.checked_add_days(Days::new(MAX_DAYS)).unwrap_or(today),
            today,
        })
    }

    pub async fn create_token(form: TokenForm) -> Result<CreatedToken, AppError> {
        let user = current_user().await?;
        // Posted without JavaScript, the answer would be a redirect back to the page, and the
        // token, shown only in this answer, would be lost: nothing is created then.
        if crate::error::is_plain_form_post() {
            return Err(AppError::Conflict(NEEDS_SCRIPT.to_owned()));
        }
        let actor = Actor::signed_in(&user).await;
        create_for(&pool(), &user, &form, &actor).await
    }

    /// Creates a token for `owner` from the form's fields: the page and the command line.
    pub async fn create_for(
        pool: &sqlx::PgPool,
        owner: &CurrentUser,
        form: &TokenForm,
        actor: &Actor,
    ) -> Result<CreatedToken, AppError> {
        let valid = form.parse(owner.role, Utc::now().date_naive()).map_err(AppError::Validation)?;
        let mut tx = pool.begin().await?;
        let created = store::create(&mut tx, owner, &valid, actor).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn revoke_token(id: i64) -> Result<(), AppError> {
        let user = current_user().await?;
        let actor = Actor::signed_in(&user).await;
        revoke_for(&pool(), &user, id, &actor).await
    }

    /// Revokes one of `owner`'s tokens: the page and the command line.
    pub async fn revoke_for(
        pool: &sqlx::PgPool,
        owner: &CurrentUser,
        id: i64,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let mut tx = pool.begin().await?;
        store::revoke(&mut tx, owner, id, actor).await?;
        tx.commit().await?;
        Ok(())
    }
}
