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
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::throttle::SignInThrottle;
use crate::users;

/// What the session remembers about who signed in.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignedIn {
    user_id: i64,
    at: DateTime<Utc>,
}

const SESSION_KEY: &str = "signed_in";
pub const SIGN_IN_PATH: &str = "/users/sign_in";
pub const SIGN_OUT_PATH: &str = "/users/sign_out";
pub const DEFAULT_LANDING: &str = "/admin";

/// Paths anyone may reach: the sign-in page and form, the browser bundle and icons, and the
/// health probes. Everything else needs a signed-in user.
pub const PUBLIC_PATHS: &[&str] = &[SIGN_IN_PATH, "/healthz", "/readyz", "/favicon.ico"];
pub const PUBLIC_PREFIXES: &[&str] = &["/pkg/"];

pub fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path) || PUBLIC_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// Server functions live under /api/: they answer with JSON errors, not redirects.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

pub async fn require_sign_in(
    State(state): State<AppState>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if is_public(&path) && path != SIGN_IN_PATH {
        return next.run(request).await;
    }
    let user = match signed_in_user(&state, &session).await {
        Ok(user) => user,
        Err(error) => return error_response(&path, error),
    };
    match user {
        // A signed-in visit to the sign-in page goes where sign-in would have gone.
        Some(_) if path == SIGN_IN_PATH && request.method() == Method::GET => {
            Redirect::to(DEFAULT_LANDING).into_response()
        }
        _ if path == SIGN_IN_PATH => next.run(request).await,
        Some(user) => {
            let changes_something = !matches!(*request.method(), Method::GET | Method::HEAD);
            if changes_something && !user.is_admin() && path != SIGN_OUT_PATH {
                return error_response(&path, AppError::Forbidden);
            }
            request.extensions_mut().insert(user);
            next.run(request).await
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

async fn signed_in_user(state: &AppState, session: &Session) -> Result<Option<CurrentUser>, AppError> {
    let signed_in = session.get::<SignedIn>(SESSION_KEY).await.map_err(|error| {
        tracing::error!(error = %error, "could not load the session");
        AppError::Unavailable
    })?;
    let Some(signed_in) = signed_in else { return Ok(None) };
    let user = users::find_for_session(&state.pool, signed_in.user_id, signed_in.at).await?;
    if user.is_none() {
        // The user was deleted or their sessions were ended: forget this one too.
        let _ = session.flush().await;
    }
    Ok(user)
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

/// An error as the client expects it: JSON for server functions, a short page otherwise.
fn error_response(path: &str, error: AppError) -> Response {
    let status = error.status();
    if is_api(path) {
        (status, Json(error)).into_response()
    } else {
        let body = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title>\
             <link rel=\"stylesheet\" href=\"/pkg/{name}.css\"></head><body><main class=\"not-found\">\
             <h1>{code}</h1><p>{error}</p><a class=\"btn\" href=\"/admin\">Go to the Admin area</a></main></body></html>",
            code = status.as_u16(),
            name = app::OUTPUT_NAME,
        );
        (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
    }
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

pub async fn sign_in(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<SignInThrottle>>,
    session: Session,
    ClientIp(ip): ClientIp,
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
    let actor = Actor { id: None, name: login.clone(), ip_address: ip.clone() };

    // Refused before the password is looked at, and the same for a login that does not exist.
    let attempt = match throttle.begin(&login, ip.as_deref()) {
        Ok(attempt) => attempt,
        Err(locked) => {
            let minutes = locked.retry_after.as_secs().div_ceil(60).max(1);
            tracing::warn!(login = %login, client = ip.as_deref().unwrap_or("unknown"), "sign-in refused: too many failed attempts");
            let event = NewAuditEvent {
                action: "user_sign_in_locked",
                target_type: "User",
                target_id: None,
                target_name: Some(&login),
                message: format!(
                    "Sign-in refused after too many failed attempts; allowed again in {minutes} min"
                ),
                before: None,
                after: None,
            };
            record(&state.pool, &actor, event)
                .await
                .map_err(|error| error_response(SIGN_IN_PATH, error.into()))?;
            return Ok(back_to_form("locked"));
        }
    };
    tokio::time::sleep(attempt.delay).await;

    let stored = users::find_by_login(&state.pool, &login)
        .await
        .map_err(|error| error_response(SIGN_IN_PATH, error.into()))?;
    // Always one full argon2 check, so an unknown login answers as slowly as a wrong password.
    let hash =
        stored.as_ref().map(|s| s.password_hash.clone()).unwrap_or_else(|| users::decoy_hash().to_owned());
    let password = form.password;
    let password_ok =
        tokio::task::spawn_blocking(move || users::verify_password(&password, &hash)).await.unwrap_or(false);

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
        record(&state.pool, &actor, event)
            .await
            .map_err(|error| error_response(SIGN_IN_PATH, error.into()))?;
        return Ok(back_to_form("invalid"));
    };
    throttle.succeeded(attempt);

    // A fresh session id at sign-in, so an id planted before sign-in is worth nothing after it.
    let signed_in = SignedIn { user_id: user.id.0, at: Utc::now() };
    let saved = async {
        session.cycle_id().await?;
        session.insert(SESSION_KEY, &signed_in).await
    };
    saved.await.map_err(|error| {
        tracing::error!(error = %error, "could not store the session");
        error_response(SIGN_IN_PATH, AppError::Unavailable)
    })?;
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
    record(&state.pool, &actor, event).await.map_err(|error| error_response(SIGN_IN_PATH, error.into()))?;
    Ok(Redirect::to(redirect_to.unwrap_or(DEFAULT_LANDING)).into_response())
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

/// Only a path on this site may be a target after sign-in: never another host.
fn safe_redirect(target: &str) -> Option<&str> {
    let is_local = target.starts_with('/') && !target.starts_with("//") && !target.contains('\\');
    (is_local && !target.starts_with(SIGN_IN_PATH)).then_some(target)
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
