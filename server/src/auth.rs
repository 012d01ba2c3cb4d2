//! Sign-in, sign-out and the guard in front of every route.
//!
//! The guard works by construction: every request passes through `require_sign_in` except the
//! few paths in `PUBLIC_PATHS`, so a page or server function added later is protected without
//! anyone remembering to protect it. Auditors may read everything; any request that could change
//! something (every non-GET) is refused to them here, before it reaches a handler.

use std::net::SocketAddr;
use std::sync::Arc;

use app::audit::ssr::{Actor, ClientAddress, NewAuditEvent, record};
use app::auth::CurrentUser;
use app::error::AppError;
use app::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tower_sessions::Session;

use crate::page_cache::FeaturesGeneration;
use crate::sessions::{self, SEEN_KEY, SIGNED_IN_KEY, SignedIn};
use crate::throttle::{Locked, SignInThrottle};
use crate::users::{self, PasswordChecks};
use crate::{devices, throttle};

const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);
pub const SIGN_IN_PATH: &str = "/users/sign_in";
pub const SIGN_OUT_PATH: &str = "/users/sign_out";
pub const DEFAULT_LANDING: &str = "/admin";
/// An admin ends all of a user's sessions (as `duo-admin users end-sessions` does).
pub const END_SESSIONS_PATH: &str = "/admin/users/{login}/end_sessions";

/// Paths anyone may reach: the sign-in page and form, the browser bundle and icons, and the
/// health probes. Everything else needs a signed-in user.
pub const PUBLIC_PATHS: &[&str] = &[SIGN_IN_PATH, "/healthz", "/readyz", "/favicon.ico"];
pub const PUBLIC_PREFIXES: &[&str] = &["/pkg/"];

/// Changes any signed-in user may make, auditors included, because they concern only
/// themselves: signing out, and minting or revoking their own access tokens (whose scope is
/// capped by their role).
pub const SELF_SERVICE_PATHS: &[&str] =
    &[SIGN_OUT_PATH, app::tokens::api::CREATE_PATH, app::tokens::api::REVOKE_PATH];

pub fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path) || PUBLIC_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// Server functions live under /api/: they answer with JSON errors, not redirects.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// A page's form posted to a server function as plain HTML, whose answer the browser shows: a
/// refusal goes back to the form's page with a flash saying why, never as JSON.
fn is_plain_form_post(path: &str, request: &Request) -> bool {
    is_api(path)
        && request.method() == Method::POST
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// The page a plain form was posted from: only the path and query of its `Referer`, so that a
/// redirect back can never lead to another site.
fn form_page(headers: &HeaderMap) -> String {
    headers
        .get(header::REFERER)
        .and_then(|referer| referer.to_str().ok())
        .and_then(|referer| referer.parse::<axum::http::Uri>().ok())
        .and_then(|uri| uri.path_and_query().map(|page| page.as_str().to_owned()))
        .filter(|page| is_local_path(page))
        .unwrap_or_else(|| DEFAULT_LANDING.to_owned())
}

/// What the guard needs: the app's state and the longest a session may last.
#[derive(Clone)]
pub struct Guard {
    pub state: AppState,
    /// From sign-in, however active the session (`SESSION_MAX_HOURS`).
    pub session_max_age: chrono::TimeDelta,
}

pub async fn require_sign_in(
    State(Guard { state, session_max_age }): State<Guard>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if is_public(&path) && path != SIGN_IN_PATH {
        return next.run(request).await;
    }
    let changes_something = !matches!(*request.method(), Method::GET | Method::HEAD);
    // The JSON API also takes a personal access token; nothing else does, so a token cannot
    // mint tokens or drive the pages. A token that is presented and fails is refused outright,
    // never passed on to the session.
    if crate::api::is_api_v1(&path)
        && let Some(authorization) = request.headers().get(header::AUTHORIZATION)
    {
        let caller = match crate::api::bearer(authorization) {
            Some(token) => app::tokens::store::authenticate(&state.pool, token).await,
            None => Ok(None),
        };
        let caller = match caller {
            Ok(Some(caller)) => caller,
            Ok(None) => return crate::api::invalid_token(),
            Err(error) => return error_response(&path, error),
        };
        if changes_something && !caller.user.is_admin() {
            return error_response(&path, AppError::Forbidden);
        }
        request.extensions_mut().insert(caller.user.clone());
        request.extensions_mut().insert(caller);
        let mut response = next.run(request).await;
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return response;
    }
    let user = match signed_in_user(&state, &session, session_max_age).await {
        Ok(user) => user,
        Err(error) => return error_response(&path, error),
    };
    match user {
        // A signed-in visit to the sign-in page goes where sign-in would have gone.
        Some(_) if path == SIGN_IN_PATH && request.method() == Method::GET => {
            Redirect::to(DEFAULT_LANDING).into_response()
        }
        _ if path == SIGN_IN_PATH => next.run(request).await,
        Some((user, generation, held)) => {
            if changes_something && !user.is_admin() && !SELF_SERVICE_PATHS.contains(&path.as_str()) {
                if is_plain_form_post(&path, &request) {
                    let refused = app::flash::Flash::alert(AppError::Forbidden.to_string());
                    if let Err(error) = session.insert(app::flash::FLASH_KEY, refused).await {
                        tracing::warn!(%error, "could not keep the refusal for the form's page");
                    }
                    return Redirect::to(&form_page(request.headers())).into_response();
                }
                return error_response(&path, AppError::Forbidden);
            }
            request.extensions_mut().insert(user);
            request.extensions_mut().insert(generation);
            request.extensions_mut().insert(held);
            let mut response = next.run(request).await;
            // What a signed-in user sees stays out of shared and browser caches (the back button
            // after sign-out, a proxy, the next person at a shared computer).
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        // Signed out meanwhile: a page's form leads to sign-in, and back to its page after.
        None if is_plain_form_post(&path, &request) => {
            let target = format!("{SIGN_IN_PATH}?redirect_to={}", urlencode(&form_page(request.headers())));
            Redirect::to(&target).into_response()
        }
        None if is_api(&path) || request.method() != Method::GET => {
            error_response(&path, AppError::Unauthorized)
        }
        None => {
            let back_to = request.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
            let target = format!("{SIGN_IN_PATH}?redirect_to={}", urlencode(back_to));
            Redirect::to(&target).into_response()
        }
    }
}

/// The signed-in user of this request, with the features tab's generation read beside them, and
/// the names of what the session holds (a flash or a refused form's values waiting for a page).
///
/// The session, its user and the generation come in one round trip (`sessions::find_signed_in`)
/// and tower-sessions' own copy of the session is left unloaded: a request that only reads a
/// page reads the database once here. Only what changes the session (the touch for the idle
/// expiry, a flush) goes through tower-sessions, which then loads and saves it itself.
async fn signed_in_user(
    state: &AppState,
    session: &Session,
    max_age: chrono::TimeDelta,
) -> Result<Option<(CurrentUser, FeaturesGeneration, app::drafts::SessionHolds)>, AppError> {
    let unavailable = |error: tower_sessions::session::Error| {
        tracing::error!(error = %error, "could not load the session");
        AppError::Unavailable
    };
    let Some(id) = session.id() else { return Ok(None) };
    let Some(found) = sessions::find_signed_in(&state.pool, &id).await? else { return Ok(None) };
    let Some(signed_in) = sessions::value::<SignedIn>(&found.record, SIGNED_IN_KEY) else { return Ok(None) };
    let now = Utc::now();
    let user = match found.user {
        _ if now - signed_in.at > max_age => None,
        Some((user, valid_after)) => {
            (user.id.0 == signed_in.user_id && valid_after <= signed_in.at).then_some(user)
        }
        // Saved before sessions named their user: looked up apart until its next save names them.
        None => users::find_for_session(&state.pool, signed_in.user_id, signed_in.at).await?,
    };
    let Some(user) = user else {
        // Too old, the user was deleted, or their sessions were ended: forget this one too.
        let _ = session.flush().await;
        return Ok(None);
    };
    // The idle expiry counts from the last save: save at most once a minute, not per request.
    let seen = sessions::value::<DateTime<Utc>>(&found.record, SEEN_KEY);
    if seen.is_none_or(|seen| now - seen >= TOUCH_EVERY) {
        // tower-sessions loads the session afresh to change it. One signed out meanwhile, on
        // any replica, stays signed out rather than coming back as a new, empty session.
        if session.get::<SignedIn>(SIGNED_IN_KEY).await.map_err(unavailable)?.is_none() {
            return Ok(None);
        }
        session.insert(SEEN_KEY, now).await.map_err(unavailable)?;
    }
    // What waits in the session for the page (a flash, a refused form's values) is looked for
    // only when the row holds it.
    let held = app::drafts::SessionHolds(found.record.data.keys().cloned().collect());
    Ok(Some((user, FeaturesGeneration(found.features_generation), held)))
}

pub const CROSS_SITE_MESSAGE: &str = "This request came from another site and was refused.";

/// Refuses any request that could change something (every non-GET) when the browser says it
/// comes from another site: its `Origin` names another host, or, without `Origin`,
/// `Sec-Fetch-Site` says "cross-site". Behind a proxy, `X-Forwarded-Host` counts as the host.
pub async fn same_site_only(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let hosts = [text("x-forwarded-host"), text(header::HOST.as_str())];
    let cross_site = match text(header::ORIGIN.as_str()) {
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, host)| host.trim_end_matches('/'));
            origin_host.is_none_or(|origin_host| !hosts.contains(&Some(origin_host)))
        }
        None => text("sec-fetch-site") == Some("cross-site"),
    };
    if cross_site {
        tracing::warn!(path = %request.uri().path(), "refused a cross-site request");
        return (StatusCode::FORBIDDEN, CROSS_SITE_MESSAGE).into_response();
    }
    next.run(request).await
}

/// An error as the client expects it: a problem document for the JSON API, JSON for server
/// functions, a short page otherwise.
fn error_response(path: &str, error: AppError) -> Response {
    let status = error.status();
    if crate::api::is_api_v1(path) {
        crate::api::problem(error)
    } else if is_api(path) {
        (status, Json(error)).into_response()
    } else {
        error_page(status, &error.to_string())
    }
}

/// A short page saying what went wrong, in the console's style.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    // Every message here is the console's own text, but escaped all the same.
    let error = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title>\
         <link rel=\"stylesheet\" href=\"/pkg/{name}.css\"></head><body><main class=\"not-found\">\
         <h1>{code}</h1><p>{error}</p><a class=\"btn\" href=\"/admin\">Go to the Admin area</a></main></body></html>",
        code = status.as_u16(),
        name = app::OUTPUT_NAME,
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

#[derive(Deserialize)]
pub struct SignInForm {
    login: String,
    password: String,
    #[serde(default)]
    redirect_to: String,
}

/// Decides the client's address once per request, for every handler and audit event after it:
/// the connection's peer, or, when the console is told it sits behind a reverse proxy, the
/// address that proxy appended last to `X-Forwarded-For`. Without that setting the header is
/// ignored, since any client could write it.
pub async fn client_address(
    State(trust_forwarded_for): State<bool>,
    mut request: Request,
    next: Next,
) -> Response {
    let forwarded = trust_forwarded_for
        .then(|| request.headers().get_all("x-forwarded-for").iter().next_back()?.to_str().ok())
        .flatten()
        .and_then(|list| list.rsplit(',').next())
        .map(|address| address.trim().to_owned())
        .filter(|address| !address.is_empty());
    let peer = || {
        request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string())
    };
    let address = ClientAddress(forwarded.or_else(peer));
    request.extensions_mut().insert(address);
    next.run(request).await
}

/// The client's address, as `client_address` decided it.
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts.extensions.get::<ClientAddress>().and_then(|ClientAddress(address)| address.clone()),
        ))
    }
}

/// What the sign-in form needs besides the app's state.
#[derive(Debug)]
pub struct SignInGate {
    pub throttle: SignInThrottle,
    /// Sign-ins handled at once (`SIGN_INS_AT_ONCE`); the rest queue for a turn, as long as
    /// a password check would.
    pub in_flight: tokio::sync::Semaphore,
    pub password_checks: PasswordChecks,
    /// Mark the known-device cookie `Secure`, as the session cookie.
    pub secure_cookies: bool,
}

pub async fn sign_in(
    State(state): State<AppState>,
    Extension(gate): Extension<Arc<SignInGate>>,
    session: Session,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, Response> {
    let login = form.login.trim().chars().take(255).collect::<String>();
    let redirect_to = safe_redirect(&form.redirect_to);
    let back_to_form = |error: &str| {
        let mut target = format!("{SIGN_IN_PATH}?error={error}&login={}", urlencode(&login));
        if let Some(redirect_to) = redirect_to {
            target.push_str(&format!("&redirect_to={}", urlencode(redirect_to)));
        }
        Redirect::to(&target).into_response()
    };
    let unavailable = |error: sqlx::Error| error_response(SIGN_IN_PATH, error.into());
    let actor = Actor { id: None, name: login.clone(), ip_address: ip.clone() };
    // Each sign-in holds a database connection for a few queries, some waiting on another's
    // advisory lock: without a bound, a flood would take the whole pool from signed-in users.
    let Ok(Ok(turn)) =
        tokio::time::timeout(gate.password_checks.queue_timeout(), gate.in_flight.acquire()).await
    else {
        return Ok(busy());
    };

    let stored = users::find_by_login(&state.pool, &login).await.map_err(unavailable)?;
    // A browser that signed in as this very user before counts on its own (see devices.rs).
    let device = devices::token_from(&headers);
    let known_device = match (&device, &stored) {
        (Some(token), Some(stored)) => {
            let owner = devices::user_of(&state.pool, token).await.map_err(unavailable)?;
            (owner == Some(stored.user.id.0)).then(|| devices::throttle_key(token))
        }
        _ => None,
    };

    // Refused before the password is looked at, and the same for a login that does not exist.
    let begun = gate.throttle.begin(&login, ip.as_deref(), known_device.as_deref()).await;
    let attempt = match begun.map_err(unavailable)? {
        Ok(attempt) => attempt,
        Err(locked) => {
            let window = gate.throttle.policy().window;
            let first = record_refusal(&state.pool, &actor, &login, ip.as_deref(), locked, window)
                .await
                .map_err(unavailable)?;
            // One line per login and client per window, like the audit row: a flood cannot
            // flood the log either. `?` escapes CR and LF, so a typed login cannot forge lines.
            if first {
                tracing::warn!(login = ?login, client = ?ip.as_deref().unwrap_or("unknown"), "sign-in refused: too many failed attempts");
            }
            return Ok(back_to_form("locked"));
        }
    };
    // The turn bounded the queries of a refusal; an attempt let through is bounded by the
    // throttle, and must not keep a turn from others while it is held back.
    drop(turn);
    tokio::time::sleep(attempt.delay).await;

    // Always one full argon2 check, so an unknown login answers as slowly as a wrong password.
    let hash =
        stored.as_ref().map(|s| s.password_hash.clone()).unwrap_or_else(|| users::decoy_hash().to_owned());
    let password_ok = match gate.password_checks.verify(form.password, hash).await {
        Ok(ok) => ok,
        Err(users::Busy) => {
            gate.throttle.withdraw(attempt).await.map_err(unavailable)?;
            return Ok(busy());
        }
    };

    let Some(user) = stored.filter(|_| password_ok).map(|stored| stored.user) else {
        let event = NewAuditEvent {
            action: "user_sign_in_failed",
            target_type: "User",
            target_id: None,
            target_name: Some(&login),
            message: "Failed to sign in with standard authentication".to_owned(),
            before: None,
            after: None,
        };
        record(&state.pool, &actor, event).await.map_err(unavailable)?;
        return Ok(back_to_form("invalid"));
    };
    gate.throttle.succeeded(attempt).await.map_err(unavailable)?;

    // A fresh session id at sign-in, so an id planted before sign-in is worth nothing after it.
    let signed_in = SignedIn { user_id: user.id.0, at: Utc::now() };
    let saved = async {
        session.cycle_id().await?;
        session.insert(SIGNED_IN_KEY, &signed_in).await?;
        session.insert(SEEN_KEY, signed_in.at).await
    };
    saved.await.map_err(|error| {
        tracing::error!(error = %error, "could not store the session");
        error_response(SIGN_IN_PATH, AppError::Unavailable)
    })?;
    let new_device =
        devices::remember(&state.pool, user.id.0, device.as_deref()).await.map_err(unavailable)?;
    let actor = Actor { id: Some(user.id.0), name: user.username.clone(), ip_address: ip.clone() };
    let event = NewAuditEvent {
        action: "user_signed_in",
        target_type: "User",
        target_id: Some(user.id.0.to_string()),
        target_name: Some(&user.username),
        message: "Signed in with standard authentication".to_owned(),
        before: None,
        after: None,
    };
    record(&state.pool, &actor, event).await.map_err(unavailable)?;
    let mut response = Redirect::to(redirect_to.unwrap_or(DEFAULT_LANDING)).into_response();
    if let Some(cookie) = new_device.and_then(|token| devices::cookie(&token, gate.secure_cookies)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Sign-ins at once: the pool has 10 connections (`database.rs`), so a flood of sign-ins
/// leaves at least 6 to signed-in users.
pub const SIGN_INS_AT_ONCE: usize = 4;

/// The answer to a sign-in that found no turn in time.
fn busy() -> Response {
    let mut busy = error_page(StatusCode::SERVICE_UNAVAILABLE, users::BUSY_MESSAGE);
    busy.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    busy
}

/// Audits a refused sign-in. A flood of them adds to one row per login and client per lock
/// window (its `after.count`); while a whole client is refused, to one row per client. Returns
/// whether this refusal started a new row. The advisory lock keeps two replicas from both
/// starting one.
async fn record_refusal(
    pool: &sqlx::PgPool,
    actor: &Actor,
    login: &str,
    ip: Option<&str>,
    locked: Locked,
    window: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let login = login.to_lowercase();
    let client = ip.map(throttle::client_key);
    let mut tx = pool.begin().await?;
    let lock_key = format!(
        "refusal:{}:{}",
        client.as_deref().unwrap_or(""),
        if locked.by_client { "" } else { login.as_str() }
    );
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lock_key).execute(&mut *tx).await?;
    let counted = sqlx::query_scalar!(
        r#"UPDATE audit_events
           SET after = jsonb_set(after, '{count}', to_jsonb((after->>'count')::bigint + 1))
           WHERE id = (SELECT id FROM audit_events
                       WHERE action = 'user_sign_in_locked'
                         AND created_at > now() - make_interval(secs => $1)
                         AND after->>'client' IS NOT DISTINCT FROM $2
                         AND ($3 OR after->>'login' = $4)
                       ORDER BY created_at DESC, id DESC LIMIT 1)
           RETURNING id"#,
        window.as_secs_f64(),
        client,
        locked.by_client,
        login
    )
    .fetch_optional(&mut *tx)
    .await?;
    if counted.is_none() {
        let minutes = locked.retry_after.as_secs().div_ceil(60).max(1);
        let what = if locked.by_client { "from this client" } else { "for this login" };
        let event = NewAuditEvent {
            action: "user_sign_in_locked",
            target_type: "User",
            target_id: None,
            target_name: Some(&login),
            message: format!(
                "Sign-in refused after too many failed attempts {what}; allowed again in {minutes} min"
            ),
            before: None,
            after: Some(serde_json::json!({
                "login": login,
                "client": client,
                "locked": if locked.by_client { "client" } else { "login" },
                "count": 1,
            })),
        };
        record(&mut *tx, actor, event).await?;
    }
    tx.commit().await?;
    Ok(counted.is_none())
}

pub async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    user: Option<axum::Extension<CurrentUser>>,
) -> Response {
    if let Some(axum::Extension(user)) = user {
        let actor = Actor { id: Some(user.id.0), name: user.username.clone(), ip_address: ip.clone() };
        let event = NewAuditEvent {
            action: "user_signed_out",
            target_type: "User",
            target_id: Some(user.id.0.to_string()),
            target_name: Some(&user.username),
            message: "Signed out".to_owned(),
            before: None,
            after: None,
        };
        if let Err(error) = record(&state.pool, &actor, event).await {
            return error_response(SIGN_OUT_PATH, error.into());
        }
    }
    // Deletes the session from the store, not just the cookie.
    if let Err(error) = session.flush().await {
        tracing::error!(error = %error, "could not delete the session");
        return error_response(SIGN_OUT_PATH, AppError::Unavailable);
    }
    Redirect::to(&format!("{SIGN_IN_PATH}?signed_out=1")).into_response()
}

/// Ends every session of the user named in the path, on every replica, and forgets their known
/// devices; then shows the audit log, where the event is the newest. Admins only: the guard
/// refuses every other non-GET, and this checks again.
pub async fn end_user_sessions(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    axum::extract::Path(login): axum::extract::Path<String>,
    user: Option<Extension<CurrentUser>>,
) -> Response {
    let Some(Extension(admin)) = user.filter(|Extension(user)| user.is_admin()) else {
        return error_response("/admin", AppError::Forbidden);
    };
    let actor = Actor { id: Some(admin.id.0), name: admin.username.clone(), ip_address: ip };
    match users::end_sessions(&state.pool, &login, &actor).await {
        Ok(_) => Redirect::to("/admin/audit_events").into_response(),
        Err(error) => match error.downcast::<sqlx::Error>() {
            Ok(error) => error_response("/admin", error.into()),
            Err(_) => error_response("/admin", AppError::NotFound),
        },
    }
}

/// Only a path on this site may be a target after sign-in: never another host. Control
/// characters are refused outright: browsers drop TAB, CR and LF from a URL, so `/<TAB>/evil`
/// would pass as a path here and be followed as `//evil`, another host.
fn safe_redirect(target: &str) -> Option<&str> {
    (is_local_path(target) && !target.starts_with(SIGN_IN_PATH)).then_some(target)
}

/// Whether a browser follows `target` on this site: a path, which neither `//` nor `/\` (read
/// as `//`) starts, with no control character (dropped by browsers, so `/<TAB>/evil` is `//evil`).
fn is_local_path(target: &str) -> bool {
    target.starts_with('/')
        && !target.starts_with("//")
        && !target.contains('\\')
        && !target.chars().any(char::is_control)
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
