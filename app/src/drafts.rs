//! A refused form's values, kept in the session for the next rendering of its page. With
//! JavaScript off a refused post goes back to the page, which shows what was typed, not what is
//! stored. Best effort: without a session the page shows the stored values.

/// The names of the values the session held when the sign-in guard read its row (which it reads
/// anyway, to know the user). A page takes a draft (or a flash, kept the same way) only when its
/// name is here: a page with nothing waiting never loads the session a second time.
#[derive(Debug, Clone, Default)]
pub struct SessionHolds(pub Vec<String>);

impl SessionHolds {
    pub fn holds(&self, key: &str) -> bool {
        self.0.iter().any(|held| held == key)
    }
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use tower_sessions::Session;

    /// Keeps `draft` under `key` until the page takes it.
    pub async fn keep<T: Serialize>(key: &str, draft: T) {
        if let Ok(session) = leptos_axum::extract::<Session>().await
            && let Err(error) = session.insert(key, draft).await
        {
            tracing::warn!(%error, form = key, "could not keep a refused form's values");
        }
    }

    /// The draft kept under `key`, taken out of the session. Looked for only when the session
    /// held it as the guard read it (`SessionHolds`); a request the guard did not mark has none.
    pub async fn take<T: DeserializeOwned>(key: &str) -> Option<T> {
        let axum::Extension(held) =
            leptos_axum::extract::<axum::Extension<super::SessionHolds>>().await.ok()?;
        if !held.holds(key) {
            return None;
        }
        let session = leptos_axum::extract::<Session>().await.ok()?;
        // Looked for first: removing marks the session changed, and a changed session is
        // written back at the end of the request, so every visit of the page would write it.
        session.get::<T>(key).await.ok().flatten()?;
        let draft = session.remove::<T>(key).await.ok().flatten()?;
        // Saved here, not left to the session layer: a streamed page's session is saved when
        // the page starts streaming, which can be before this runs.
        if let Err(error) = session.save().await {
            tracing::warn!(%error, form = key, "could not forget a refused form's values");
        }
        Some(draft)
    }
}
