//! `/api/v1/audit_events`: the audit trail, newest first, filtered by action, actor and time.

use app::audit::{AuditEventsPage, EventQuery, ssr};
use app::state::AppState;
use axum::extract::State;
use axum::http::request::Parts;
use serde::Deserialize;

use super::{ApiResult, Params, in_app, ok};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// From 1; 20 events a page, newest first.
    #[serde(default = "first_page")]
    page: i64,
    /// An action such as model_created, exactly.
    action: Option<String>,
    /// The actor's name, in any letter case.
    actor: Option<String>,
    /// RFC 3339, such as `2026-12-01T00:00:00Z`.
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// RFC 3339: events before this moment.
    until: Option<chrono::DateTime<chrono::Utc>>,
}

fn first_page() -> i64 {
    1
}

#[utoipa::path(get, path = "/api/v1/audit_events", tag = "audit events", params(ListParams),
    responses((status = 200, body = AuditEventsPage), (status = "4XX", description = "A problem: unauthorized, forbidden, not found, invalid (with each field's message), rate limited", body = super::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    parts: Parts,
    Params(params): Params<ListParams>,
) -> ApiResult<AuditEventsPage> {
    let filter =
        EventQuery { action: params.action, actor: params.actor, since: params.since, until: params.until };
    ok(in_app(&state, parts, async move { ssr::list_events(params.page, &filter).await }).await?)
}
