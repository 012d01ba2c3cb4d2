//! The one error type every server function returns. It travels to the browser as JSON, so it
//! carries only what an admin may read: field messages, a refusal, or a plain "something went
//! wrong". Internal details are logged once on the server and never serialised.

use std::collections::BTreeMap;

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// Messages keyed by the form field they concern (`"name"`, `"endpoint"`, ...).
pub type FieldErrors = BTreeMap<String, String>;

pub const UNAUTHORIZED_MESSAGE: &str = "You need to sign in or sign up before continuing.";
pub const FORBIDDEN_MESSAGE: &str =
    "You are signed in as an auditor. Auditors can see every page but cannot change anything.";
pub const RATE_LIMITED_MESSAGE: &str =
    "Too many requests with this token or session. Please try again in a moment.";
pub const INTERNAL_MESSAGE: &str = "Something went wrong on our end. Please try again.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// One or more fields are invalid; nothing was saved.
    #[error("{}", first_message(.0))]
    Validation(FieldErrors),
    #[error("{UNAUTHORIZED_MESSAGE}")]
    Unauthorized,
    #[error("{FORBIDDEN_MESSAGE}")]
    Forbidden,
    #[error("The page or record you were looking for could not be found.")]
    NotFound,
    /// The request clashes with the current state (for example a model still in use).
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached right now.
    #[error("The database is unavailable right now. Please try again in a moment.")]
    Unavailable,
    /// Too many API requests from one caller in a minute.
    #[error("{RATE_LIMITED_MESSAGE}")]
    RateLimited,
    #[error("{INTERNAL_MESSAGE}")]
    Internal,
    /// The request never reached the server function, or its answer could not be read.
    #[error("{0}")]
    Transport(String),
}

fn first_message(errors: &FieldErrors) -> String {
    errors.values().next().cloned().unwrap_or_default()
}

impl AppError {
    /// A validation error for a single field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        AppError::Validation(FieldErrors::from([(field.to_owned(), message.into())]))
    }

    /// The message for one field, if this error concerns it.
    pub fn message_for(&self, field: &str) -> Option<String> {
        match self {
            AppError::Validation(errors) => errors.get(field).cloned(),
            _ => None,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

/// What the page being drawn on the server says above its form when a plain form post to the
/// server function `S` came back refused: Leptos puts the error in the address it redirects to
/// (`__err`, `__path`). Anyone can forge that address into a link, so only the kind of error is
/// read from it, and the page says it in its own words: a refusal of the user's role, else
/// `otherwise`. A refusal at the fields gives none here: a form keeps its field errors in the
/// session, with what was typed (`drafts`).
pub fn refusal_message<S: leptos::server_fn::ServerFn>(otherwise: &str) -> Option<String> {
    #[cfg(feature = "ssr")]
    {
        use leptos::server_fn::error::ServerFnUrlError;
        let error = leptos::prelude::use_context::<leptos::prelude::ServerActionError>()?;
        if error.path() != S::PATH {
            return None;
        }
        match ServerFnUrlError::<AppError>::decode_err(error.err()) {
            AppError::Validation(_) => None,
            AppError::Forbidden => Some(AppError::Forbidden.to_string()),
            _ => Some(otherwise.to_owned()),
        }
    }
    #[cfg(not(feature = "ssr"))]
    {
        let _ = otherwise;
        None
    }
}

#[cfg(feature = "ssr")]
pub use ssr::*;

#[cfg(feature = "ssr")]
mod ssr {
    use super::AppError;
    use axum::http::StatusCode;

    impl AppError {
        pub fn status(&self) -> StatusCode {
            match self {
                AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
                AppError::Unauthorized => StatusCode::UNAUTHORIZED,
                AppError::Forbidden => StatusCode::FORBIDDEN,
                AppError::NotFound => StatusCode::NOT_FOUND,
                AppError::Conflict(_) => StatusCode::CONFLICT,
                AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                AppError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                AppError::Internal | AppError::Transport(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }

        /// Sets this error's HTTP status on the response being built, then hands the error
        /// back, so that server functions answer 401, 403, 404, 422... and not a blanket 500.
        /// Called once, by each `#[server]` wrapper on its way out: the code inside only
        /// returns errors.
        pub fn respond(self) -> Self {
            // A plain form post (JavaScript off) is answered with a redirect back to the form,
            // carrying the error; a status here would override that redirect.
            if is_plain_form_post() {
                return self;
            }
            if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(self.status());
            }
            self
        }
    }

    /// Whether the request being served is a server function posted by a plain HTML form
    /// (JavaScript off): Leptos then answers with a redirect back to the form, not with JSON.
    pub fn is_plain_form_post() -> bool {
        leptos::prelude::use_context::<axum::http::request::Parts>().is_some_and(|parts| {
            parts
                .headers
                .get(axum::http::header::ACCEPT)
                .and_then(|accept| accept.to_str().ok())
                .is_some_and(|accept| accept.contains("text/html"))
                && parts.uri.path().starts_with("/api/")
        })
    }

    impl AppError {
        /// A database error from a write, with the owning module's map from its constraints
        /// (migrations/) to the form's words: a rule broken past the form's own checks (a
        /// race, a direct call) still reaches the admin as the same words at the same field.
        pub fn from_database(error: sqlx::Error, constraint_violation: fn(&str) -> Option<AppError>) -> Self {
            error
                .as_database_error()
                .and_then(|db| db.constraint())
                .and_then(constraint_violation)
                .unwrap_or_else(|| AppError::from(error))
        }
    }

    impl From<sqlx::Error> for AppError {
        fn from(error: sqlx::Error) -> Self {
            // Logged here, once, with its detail; the browser only learns that it failed.
            match &error {
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                    tracing::error!(error = %error, "database unavailable");
                    AppError::Unavailable
                }
                _ => {
                    tracing::error!(error = %error, "database error");
                    AppError::Internal
                }
            }
        }
    }
}
