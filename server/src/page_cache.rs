//! The features tab, kept as drawn, per replica, until anything it shows changes.
//!
//! It is the page admins reload most, and drawing its HTML (about 60 KB for 20 models, the
//! dropdowns' props among it) costs more CPU than the rest of the request. What it shows depends on
//! three things only: the path, the signed-in user (the top bar) and the features tab's data.
//! `features_generation` versions those data across replicas: any change to them, made by any
//! replica, `config import` or psql, moves it in the change's own transaction (see its
//! migration). So the page drawn for a user at generation G stays that user's page while the
//! generation is G, and the sign-in guard reads it with the session, in the same query.
//!
//! What must differ on every answer is the Content-Security-Policy nonce: a kept page's nonce is
//! replaced by a fresh one, in the HTML and in the header, so no two answers share one.
//! A request with a query string is drawn afresh (a form's refusal comes back in one, and a
//! flood of distinct queries must not fill memory); so is a page that shows a flash (a form's
//! outcome, shown once), and anything but a plain 200 page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use app::auth::CurrentUser;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use leptos::nonce::Nonce;

use crate::{page_policy, policy_nonce};

/// The paths that draw the features tab (GitLab 18's and 19's).
pub const FEATURES_PAGES: &[&str] = &[
    "/admin/gitlab_duo/self_hosted",
    "/admin/gitlab_duo/self_hosted/features",
    "/admin/gitlab_duo/model_selection",
    "/admin/gitlab_duo/model_selection/features",
];

/// How many pages are kept: a few paths times the admins signed in. Past it, pages of older
/// generations go first, then all; a page is about 50 KB.
const KEPT_AT_MOST: usize = 64;

/// A page larger than this is not kept (a console with thousands of models).
const LARGEST_KEPT: usize = 2 * 1024 * 1024;

/// The features tab's generation as the sign-in guard read it, beside the session and the user
/// in the same round trip (`sessions::find_signed_in`).
#[derive(Debug, Clone, Copy)]
pub struct FeaturesGeneration(pub i64);

/// What the middleware needs: this replica's pages, and the metrics that count them.
#[derive(Clone)]
pub struct FeaturesPages {
    pub cache: Arc<PageCache>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

#[derive(Default)]
pub struct PageCache(Mutex<HashMap<(&'static str, String), Kept>>);

#[derive(Clone)]
struct Kept {
    generation: i64,
    headers: HeaderMap,
    /// The page cut where its nonce was: an answer puts its own nonce between the pieces.
    around_nonce: Vec<Bytes>,
}

impl Kept {
    fn new(generation: i64, headers: HeaderMap, html: &Bytes, nonce: &str) -> Kept {
        // The nonce is 128 random bits, so it occurs only where Leptos put it.
        let mut around_nonce = Vec::new();
        let mut rest = html.clone();
        while let Some(at) = rest.windows(nonce.len()).position(|window| window == nonce.as_bytes()) {
            around_nonce.push(rest.slice(..at));
            rest = rest.slice(at + nonce.len()..);
        }
        around_nonce.push(rest);
        Kept { generation, headers, around_nonce }
    }
}

impl PageCache {
    fn get(&self, key: &(&'static str, String), generation: i64) -> Option<Kept> {
        let pages = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pages.get(key).filter(|kept| kept.generation == generation).cloned()
    }

    fn keep(&self, key: (&'static str, String), kept: Kept) {
        let mut pages = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Requests finish in any order: an older generation never replaces a newer one.
        if pages.get(&key).is_some_and(|newer| newer.generation > kept.generation) {
            return;
        }
        if pages.len() >= KEPT_AT_MOST && !pages.contains_key(&key) {
            pages.retain(|_, page| page.generation >= kept.generation);
            if pages.len() >= KEPT_AT_MOST {
                pages.clear();
            }
        }
        pages.insert(key, kept);
    }
}

/// Answers a features tab from what is kept when it is current; otherwise draws it and keeps it.
/// Runs inside the sign-in guard, which has put the signed-in user on the request.
pub async fn features_pages(
    State(FeaturesPages { cache, metrics }): State<FeaturesPages>,
    request: Request,
    next: Next,
) -> Response {
    // Every request inside the guard passes here: only the features tab's is looked at further.
    let path = FEATURES_PAGES.iter().copied().find(|page| *page == request.uri().path());
    let (Some(path), true, None) = (path, request.method() == Method::GET, request.uri().query()) else {
        return next.run(request).await;
    };
    // A flash waits (a form's outcome): the page drawn with it is for this one visit.
    let held = request.extensions().get::<app::drafts::SessionHolds>();
    if held.is_some_and(|held| held.holds(app::flash::FLASH_KEY)) {
        return next.run(request).await;
    }
    let Some(user) =
        request.extensions().get::<CurrentUser>().and_then(|user| serde_json::to_string(user).ok())
    else {
        return next.run(request).await;
    };
    // Read by the guard before the page is drawn: what is drawn after it is at least as new.
    let Some(&FeaturesGeneration(generation)) = request.extensions().get::<FeaturesGeneration>() else {
        return next.run(request).await;
    };
    let key = (path, user);
    if let Some(kept) = cache.get(&key, generation) {
        metrics.features_page("kept");
        return answer(kept);
    }
    let response = next.run(request).await;
    metrics.features_page("drawn");
    let nonce = response
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|policy| policy.to_str().ok())
        .and_then(policy_nonce)
        .filter(|nonce| !nonce.is_empty())
        .map(str::to_owned);
    let (Some(nonce), StatusCode::OK) = (nonce, response.status()) else { return response };
    let (parts, body) = response.into_parts();
    let html = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(html) => html,
        Err(error) => {
            tracing::warn!(error = %error, "could not read the features page being drawn");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if html.len() <= LARGEST_KEPT {
        let mut headers = parts.headers.clone();
        headers.remove(header::CONTENT_SECURITY_POLICY);
        // The new nonce may differ in length.
        headers.remove(header::CONTENT_LENGTH);
        cache.keep(key, Kept::new(generation, headers, &html, &nonce));
    }
    Response::from_parts(parts, Body::from(html))
}

/// A kept page with a nonce of its own.
fn answer(kept: Kept) -> Response {
    let nonce = Nonce::new().to_string();
    let size =
        kept.around_nonce.iter().map(Bytes::len).sum::<usize>() + nonce.len() * kept.around_nonce.len();
    let mut html = Vec::with_capacity(size);
    for (n, piece) in kept.around_nonce.iter().enumerate() {
        if n > 0 {
            html.extend_from_slice(nonce.as_bytes());
        }
        html.extend_from_slice(piece);
    }
    let mut response = Response::new(Body::from(html));
    *response.headers_mut() = kept.headers;
    if let Ok(policy) = HeaderValue::from_str(&page_policy(&nonce)) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}
