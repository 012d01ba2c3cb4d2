//! The JSON API, `/api/v1`: the console's models, features, settings and audit events for
//! scripts and other programs, with a personal access token (`Authorization: Bearer`) or a
//! signed-in session. The guard (`auth.rs`) decides who is asking, as for every route.
//!
//! Nothing here is written twice: each handler parses its JSON and calls the very server
//! function body the pages call (`app::*::api::ssr`), inside the same request context the
//! server functions get (`in_app`). So the rules, the messages, the audit rows and the
//! write-only API keys are those of the pages. Errors leave as `application/problem+json`,
//! mapped from the one `AppError` by `problem`.

mod audit;
mod configuration;
mod features;
mod models;
pub mod rate;
mod settings;

use std::future::Future;

use app::error::AppError;
use app::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use leptos::prelude::provide_context;
use leptos::reactive::computed::ScopedFuture;
use leptos::reactive::owner::Owner;
use leptos_axum::ResponseOptions;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub const PREFIX: &str = "/api/v1";

pub fn is_api_v1(path: &str) -> bool {
    path == PREFIX || path.starts_with("/api/v1/")
}

pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The document's frame; the paths and schemas come from the handlers' own annotations and
/// types as `api()` registers them.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "GitLab Duo Self-Hosted admin console API",
        version = "1",
        description = "Models, AI-native features, settings, audit events and the whole configuration as one file. Authenticate with a personal access token (`Authorization: Bearer duopat-...`) or a signed-in session."
    ),
    components(schemas(Problem)),
    modifiers(&BearerSecurity),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("personal access token");
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme.build()));
    }
}

/// The API's router and its OpenAPI document, from one list of handlers: a route cannot be
/// served without being documented, nor documented without being served.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;

    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(models::list, models::create))
        .routes(routes!(models::show, models::update, models::destroy))
        .routes(routes!(models::test))
        .routes(routes!(features::list))
        .routes(routes!(features::assign))
        .routes(routes!(features::model))
        .routes(routes!(features::apply_to_all))
        .routes(routes!(settings::show, settings::update))
        .routes(routes!(audit::list))
        .routes(routes!(configuration::show))
        .routes(routes!(configuration::apply))
        .split_for_parts()
}

/// Every route of the API with its method, as `route_inventory()` lists them for the security
/// sweeps: the documented ones, and the document itself.
pub fn endpoints() -> Vec<(Method, String)> {
    let (_, document) = api();
    let mut endpoints = vec![(Method::GET, OPENAPI_PATH.to_owned())];
    for (path, item) in document.paths.paths {
        let operations = [
            (Method::GET, item.get.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::DELETE, item.delete.is_some()),
            (Method::PATCH, item.patch.is_some()),
        ];
        endpoints.extend(
            operations.into_iter().filter(|(_, present)| *present).map(|(method, _)| (method, path.clone())),
        );
    }
    endpoints
}

/// Routes whose answer waits on a model: bounded by the AI Gateway request timeout, like the
/// server functions in `BOUNDED_ELSEWHERE`, not by the request timeout.
pub fn bounded_elsewhere(path: &str) -> bool {
    path.starts_with("/api/v1/models/") && path.ends_with("/test")
}

pub fn router(limiter: rate::Limiter) -> Router<AppState> {
    let (router, document) = api();
    // Rendered once: it describes the code, which does not change while it runs.
    let document = axum::body::Bytes::from(document.to_json().unwrap_or_default());
    router
        .route(
            OPENAPI_PATH,
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], document.clone()) }),
        )
        // An unknown address under /api/v1 is a problem document, not a server function.
        .route("/api/v1/{*rest}", any(|| async { problem(AppError::NotFound) }))
        // Inside the guard: the caller is known by now.
        .route_layer(axum::middleware::from_fn_with_state(std::sync::Arc::new(limiter), rate::limit))
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|token| !token.is_empty())
}

/// The answer to a token that is unknown, expired or revoked (RFC 6750's `invalid_token`).
pub fn invalid_token() -> Response {
    let mut response = problem_with(
        AppError::Unauthorized,
        Some("The personal access token is invalid, expired or revoked.".to_owned()),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    response
}

/// An RFC 9457 problem document: `title` and `status` from the error's kind, `detail` its
/// message, and for invalid input `errors`, each field's message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<app::error::FieldErrors>,
}

/// The one map from `AppError` to the API's error answers.
pub fn problem(error: AppError) -> Response {
    problem_with(error, None)
}

fn problem_with(error: AppError, detail: Option<String>) -> Response {
    let status = error.status();
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail: detail.unwrap_or_else(|| error.to_string()),
        errors: match error {
            AppError::Validation(errors) => Some(errors),
            _ => None,
        },
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

/// What every handler returns: JSON, or a problem document.
pub type ApiResult<T> = Result<(StatusCode, Json<T>), ApiError>;

pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        ApiError(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem(self.0)
    }
}

pub fn ok<T>(value: T) -> ApiResult<T> {
    Ok((StatusCode::OK, Json(value)))
}

/// A JSON body; one that does not parse is refused as a problem naming what is wrong, at the
/// field `body`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError(AppError::field("body", rejection_message(&rejection)))),
        }
    }
}

fn rejection_message(rejection: &JsonRejection) -> String {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "The body must be JSON, sent with Content-Type: application/json.".to_owned()
        }
        // serde's own words: the field and what it expected, with the position.
        other => other.body_text(),
    }
}

/// Runs `work` (a server function's body) with the context a server function gets: the request
/// (for the signed-in user and the client's address), the response options, and the app's
/// parts. This is how the API shares the pages' code rather than copying it.
pub async fn in_app<T>(
    state: &AppState,
    parts: Parts,
    work: impl Future<Output = Result<T, AppError>> + Send,
) -> Result<T, AppError> {
    let state = state.clone();
    Owner::new()
        .with(|| {
            ScopedFuture::new(async move {
                provide_context(parts);
                provide_context(ResponseOptions::default());
                state.provide();
                work.await
            })
        })
        .await
}

/// Query parameters; ones that do not parse are refused as a problem at the field `query`.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError(AppError::field("query", rejection.body_text()))),
        }
    }
}
