//! What a form's post did, shown on the page it goes back to. Pages are drawn on the server and
//! their forms post to server functions as plain HTML forms (with JavaScript on as with it off),
//! which answer with a redirect: the outcome waits in the session until that page takes it, as
//! GitLab's flash messages do.

use serde::{Deserialize, Serialize};

/// One message: a success or a failure, shown where it belongs: `about` names what it concerns
/// (a feature's key, whose section shows it, or a block of a page such as `SCHEDULE`), and
/// none is the page's top. After "Apply to all" it carries what "Undo" sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    pub text: String,
    pub failed: bool,
    pub about: Option<String>,
    pub undo: Option<Undo>,
}

/// What a flash about the scheduled checks' form names.
pub const SCHEDULE: &str = "schedule";
/// What a flash about the schedule's interval names: shown at that field.
pub const SCHEDULE_INTERVAL: &str = "schedule.interval_minutes";
/// What a flash about the AI Gateway's reachability check names.
pub const GATEWAY: &str = "gateway";

/// What "Undo" after "Apply to all" posts: the feature whose model was applied, that model, and
/// each changed feature's earlier choice (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub feature: String,
    pub model_id: i64,
    pub previous: String,
}

impl Flash {
    pub fn notice(text: impl Into<String>) -> Flash {
        Flash { text: text.into(), failed: false, about: None, undo: None }
    }

    pub fn alert(text: impl Into<String>) -> Flash {
        Flash { text: text.into(), failed: true, about: None, undo: None }
    }

    /// The message about `about`: a feature's key, or a block of a page.
    pub fn about(mut self, about: &str) -> Flash {
        self.about = Some(about.to_owned());
        self
    }

    /// A failure's message: the server's reason when it gives one an admin can act on, else
    /// `otherwise`.
    pub fn refusal(error: &crate::error::AppError, otherwise: &str) -> Flash {
        use crate::error::AppError;
        let text = match error {
            AppError::Validation(errors) => errors.values().next().cloned().unwrap_or_default(),
            AppError::Conflict(message) => message.clone(),
            AppError::Forbidden | AppError::Unavailable | AppError::RateLimited | AppError::NotFound => {
                error.to_string()
            }
            _ => otherwise.to_owned(),
        };
        Flash::alert(text)
    }
}

/// The flash waiting for the page being drawn, taken (a page's resource; nothing in the browser).
/// Looked for only when the session held one as the guard read it (`drafts::SessionHolds`); a
/// page drawn with one is neither answered from the kept features tab nor kept
/// (`server/src/page_cache.rs`).
pub async fn take_for_page() -> Option<Flash> {
    #[cfg(feature = "ssr")]
    {
        ssr::take().await
    }
    #[cfg(not(feature = "ssr"))]
    {
        None
    }
}

/// The page's flash as an alert, a success or a failure, where it belongs: a flash `about`
/// something shows where the page passes that name, one about nothing at the page's top.
#[leptos::component]
pub fn FlashAlert(
    flash: Option<Flash>,
    #[prop(optional)] about: Option<&'static str>,
) -> impl leptos::IntoView {
    use leptos::prelude::*;
    flash.filter(|flash| flash.about.as_deref() == about).map(|flash| {
        if flash.failed {
            view! { <div class="alert alert-danger" role="alert">{flash.text}</div> }.into_any()
        } else {
            view! { <div class="alert alert-success" role="status">{flash.text}</div> }.into_any()
        }
    })
}

/// The session key of the flash; the sign-in guard looks for it too (a page drawn with a flash
/// is drawn for that one visit, never kept).
pub const FLASH_KEY: &str = "flash";

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::{FLASH_KEY, Flash};

    /// Keeps `flash` for the page a plain form post goes back to. A server function called by
    /// other means (the JSON API, an island) answers with its result instead.
    pub async fn keep(flash: Flash) {
        if crate::error::is_plain_form_post() {
            crate::drafts::ssr::keep(FLASH_KEY, flash).await;
        }
    }

    /// The flash waiting for this page, taken (it is shown once).
    pub async fn take() -> Option<Flash> {
        crate::drafts::ssr::take(FLASH_KEY).await
    }
}
