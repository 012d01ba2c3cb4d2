//! Probes for load balancers and orchestrators: `/healthz` says the process answers,
//! `/readyz` says the database answers too.

use std::time::Duration;

use app::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let check = sqlx::query_scalar!("SELECT 1 AS \"one!\"").fetch_one(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({ "status": "ok", "database": "ok" }))),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
        }
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "database": "timeout" })))
        }
    }
}
