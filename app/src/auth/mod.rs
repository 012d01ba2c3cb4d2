//! Who is signed in, and what they may do. The server's middleware puts the signed-in user into
//! every request (see `server/src/auth.rs`); server functions read it from there.

pub mod sign_in;

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserId(pub i64);

/// `admin` may change everything; `auditor` may see every page and change nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Admin,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "admin" => Ok(Role::Admin),
            "auditor" => Ok(Role::Auditor),
            other => Err(format!("Unknown role \"{other}\": use admin or auditor.")),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Administrator",
            Role::Auditor => "Auditor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub role: Role,
}

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The signed-in user, for the page chrome.
#[server(endpoint = "current_user", input = GetUrl)]
pub async fn fetch_current_user() -> Result<CurrentUser, AppError> {
    ssr::current_user().await
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::CurrentUser;
    use crate::error::AppError;

    /// The session key under which the signed-in user's id is stored.
    pub const SESSION_USER_ID: &str = "user_id";

    /// The user the auth middleware attached to this request.
    pub async fn current_user() -> Result<CurrentUser, AppError> {
        leptos_axum::extract::<axum::Extension<CurrentUser>>()
            .await
            .map(|axum::Extension(user)| user)
            .map_err(|_| AppError::Unauthorized.respond())
    }

    /// The signed-in user, if they may change things. The middleware already refuses every
    /// POST from an auditor; this second check keeps each server function safe on its own.
    pub async fn require_admin() -> Result<CurrentUser, AppError> {
        let user = current_user().await?;
        if user.is_admin() { Ok(user) } else { Err(AppError::Forbidden.respond()) }
    }
}
