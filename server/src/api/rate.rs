//! The API's rate limit: each caller (a token, or a signed-in user's session) may make
//! `API_RATE_LIMIT_PER_MINUTE` requests per minute window on this replica; more get 429 with
//! `Retry-After`.
//!
//! Counted in this process, not in PostgreSQL, on purpose: a shared counter would be a write on
//! every API request, the very load the once-a-minute last-use write avoids, and a database
//! under a flood would then be the thing flooded. The price is that N replicas allow a token at
//! most N times the limit: bounded by the replica count, never unbounded. The map is bounded
//! too: its keys are authenticated callers only (a made-up token is refused before it gets
//! here), and beyond `MAX_CALLERS` windows the finished ones are dropped, then new callers are
//! refused until one ends, so memory stays flat whatever arrives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::auth::CurrentUser;
use app::error::AppError;
use app::tokens::store::TokenCaller;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Callers counted at once; far above any real console's tokens and users.
pub const MAX_CALLERS: usize = 100_000;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    Token(i64),
    Session(i64),
}

#[derive(Debug)]
pub struct Limiter {
    per_minute: u32,
    windows: Mutex<HashMap<Caller, (Instant, u32)>>,
}

impl Limiter {
    pub fn new(per_minute: u32) -> Self {
        Limiter { per_minute: per_minute.max(1), windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one request of `caller`; `Err` with the seconds until its window ends when it is
    /// over the limit.
    fn admit(&self, caller: Caller, now: Instant) -> Result<(), u64> {
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= MAX_CALLERS && !windows.contains_key(&caller) {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if windows.len() >= MAX_CALLERS {
                return Err(WINDOW.as_secs());
            }
        }
        let (start, count) = windows.entry(caller).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            (*start, *count) = (now, 0);
        }
        if *count >= self.per_minute {
            let left = WINDOW.saturating_sub(now.duration_since(*start));
            return Err(left.as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }
}

pub async fn limit(State(limiter): State<Arc<Limiter>>, request: Request, next: Next) -> Response {
    let extensions = request.extensions();
    let caller = match (extensions.get::<TokenCaller>(), extensions.get::<CurrentUser>()) {
        (Some(token), _) => Caller::Token(token.token_id),
        (None, Some(user)) => Caller::Session(user.id.0),
        // The guard lets nobody else through; nothing to count.
        (None, None) => return next.run(request).await,
    };
    match limiter.admit(caller, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            tracing::warn!(?caller, "API rate limit reached");
            let mut response = super::problem(AppError::RateLimited);
            if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_gets_its_allowance_per_window_and_no_more() {
        let limiter = Limiter::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit(Caller::Token(1), start), Ok(()));
        }
        assert!(limiter.admit(Caller::Token(1), start).is_err());
        assert_eq!(limiter.admit(Caller::Token(2), start), Ok(()), "each token has its own");
        assert_eq!(limiter.admit(Caller::Token(1), start + WINDOW), Ok(()), "a new window");
    }
}
