//! `GET /metrics`, in Prometheus's text format, for a bearer token (`METRICS_TOKEN`; unset, the
//! endpoint does not exist). A token and not an address list: replicas sit behind load
//! balancers and proxies whose addresses say nothing about who scrapes.
//!
//! Two kinds of series. The console's own requests are counted by this process (the
//! `prometheus` crate), so each replica reports its own. The models' and features' health is
//! read from the database at each scrape (last test, test history), so every replica reports
//! the same: whichever one is scraped, "is every feature served?" has one answer.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use sha2::{Digest, Sha256};

use app::state::AppState;

pub const METRICS_PATH: &str = "/metrics";

/// Latency buckets of the model series, in milliseconds.
const MODEL_BUCKETS_MS: [i64; 9] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    durations: HistogramVec,
    features_pages: IntCounterVec,
    /// SHA-256 of the token: compared digest to digest, so the comparison's time says nothing
    /// about how much of a guess was right.
    token: Option<[u8; 32]>,
}

impl Metrics {
    pub fn new(token: Option<&str>) -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "duo_http_requests_total",
                "Requests answered by this console process, by kind and status.",
            ),
            &["kind", "status"],
        )
        .expect("valid metric options");
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "duo_http_request_duration_seconds",
                "Time to the answer's head, by kind (a streamed reply goes on after it).",
            ),
            &["kind"],
        )
        .expect("valid metric options");
        let features_pages = IntCounterVec::new(
            Opts::new(
                "duo_features_page_answers_total",
                "Features tabs answered by this process: from the page kept for the user (kept) or drawn afresh (drawn).",
            ),
            &["from"],
        )
        .expect("valid metric options");
        registry.register(Box::new(requests.clone())).expect("registered once");
        registry.register(Box::new(durations.clone())).expect("registered once");
        registry.register(Box::new(features_pages.clone())).expect("registered once");
        let token =
            token.filter(|token| !token.is_empty()).map(|token| Sha256::digest(token.as_bytes()).into());
        Metrics { registry, requests, durations, features_pages, token }
    }

    /// Counts a features tab answered: `kept` or `drawn` (`page_cache.rs`).
    pub fn features_page(&self, from: &'static str) {
        self.features_pages.with_label_values(&[from]).inc();
    }
}

/// A coarse kind for a path: labels must stay few, whatever paths clients make up.
fn kind(path: &str) -> &'static str {
    if path.starts_with("/api/") {
        "server_function"
    } else if path.starts_with("/pkg/") || path == "/favicon.ico" {
        "static"
    } else if path == "/healthz" || path == "/readyz" || path == METRICS_PATH {
        "probe"
    } else if path.starts_with("/admin") || path.starts_with("/users/") {
        "page"
    } else {
        "other"
    }
}

/// Counts every request and times it to its answer's head.
pub async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let kind = kind(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.durations.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
    metrics.requests.with_label_values(&[kind, response.status().as_str()]).inc();
    response
}

pub async fn scrape(
    State(state): State<AppState>,
    axum::Extension(metrics): axum::Extension<Arc<Metrics>>,
    headers: HeaderMap,
) -> Response {
    let Some(expected) = metrics.token else { return StatusCode::NOT_FOUND.into_response() };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|token| <[u8; 32]>::from(Sha256::digest(token.as_bytes())));
    if presented != Some(expected) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response();
    }
    let mut text = String::new();
    if let Err(error) = health_series(&state, &mut text).await {
        tracing::error!(%error, "the models' series could not be read");
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let mut encoded = Vec::new();
    if TextEncoder::new().encode(&metrics.registry.gather(), &mut encoded).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    text.push_str(&String::from_utf8_lossy(&encoded));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

async fn health_series(state: &AppState, out: &mut String) -> Result<(), app::error::AppError> {
    let models = app::models::store::health(&state.pool, &MODEL_BUCKETS_MS).await?;
    let beta = app::configuration::api::ssr::beta_enabled(&state.pool).await?;
    let features = app::features::api::ssr::served_by(&state.pool, &state.catalog, beta).await?;
    let _ = writeln!(
        out,
        "# HELP duo_model_last_test_ok Whether the model's last test (by hand, chat or scheduled) answered."
    );
    let _ = writeln!(out, "# TYPE duo_model_last_test_ok gauge");
    for model in models.iter().filter(|m| m.last_ok.is_some()) {
        let _ = writeln!(
            out,
            "duo_model_last_test_ok{{model=\"{}\"}} {}",
            label(&model.name),
            u8::from(model.last_ok == Some(true))
        );
    }
    let _ = writeln!(out, "# HELP duo_model_last_test_seconds How long the model's last answered test took.");
    let _ = writeln!(out, "# TYPE duo_model_last_test_seconds gauge");
    for model in &models {
        if let (Some(true), Some(ms)) = (model.last_ok, model.last_total_ms) {
            let _ = writeln!(
                out,
                "duo_model_last_test_seconds{{model=\"{}\"}} {}",
                label(&model.name),
                seconds(ms)
            );
        }
    }
    let _ = writeln!(out, "# HELP duo_model_tests_total The model's tests in its kept history, by outcome.");
    let _ = writeln!(out, "# TYPE duo_model_tests_total counter");
    for model in &models {
        let name = label(&model.name);
        let _ = writeln!(
            out,
            "duo_model_tests_total{{model=\"{name}\",outcome=\"answered\"}} {}",
            model.answered
        );
        let _ =
            writeln!(out, "duo_model_tests_total{{model=\"{name}\",outcome=\"failed\"}} {}", model.failed);
    }
    for (metric, help, pick) in [
        ("duo_model_test_duration_seconds", "Answered tests' total latency, from the kept history.", 0),
        (
            "duo_model_time_to_first_token_seconds",
            "Answered tests' time to first token, from the kept history.",
            1,
        ),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} histogram");
        for model in &models {
            let name = label(&model.name);
            let (buckets, sum, count) = if pick == 0 {
                (&model.latency_buckets, model.latency_sum_ms, model.answered)
            } else {
                (&model.first_token_buckets, model.first_token_sum_ms, model.first_token_count)
            };
            for (le, below) in MODEL_BUCKETS_MS.iter().zip(buckets) {
                let _ = writeln!(out, "{metric}_bucket{{model=\"{name}\",le=\"{}\"}} {below}", seconds(*le));
            }
            let _ = writeln!(out, "{metric}_bucket{{model=\"{name}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{metric}_sum{{model=\"{name}\"}} {}", seconds(sum));
            let _ = writeln!(out, "{metric}_count{{model=\"{name}\"}} {count}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP duo_feature_ready Whether the model serving the feature (its own or its fallback's) answered its last test; 0 with no model."
    );
    let _ = writeln!(out, "# TYPE duo_feature_ready gauge");
    for (feature, model) in &features {
        let ready =
            model.and_then(|id| models.iter().find(|m| m.id == id)).is_some_and(|m| m.last_ok == Some(true));
        let _ = writeln!(out, "duo_feature_ready{{feature=\"{}\"}} {}", label(feature), u8::from(ready));
    }
    let _ = writeln!(
        out,
        "# HELP duo_feature_has_model Whether the feature is served by a model (its own or its fallback's)."
    );
    let _ = writeln!(out, "# TYPE duo_feature_has_model gauge");
    for (feature, model) in &features {
        let _ = writeln!(
            out,
            "duo_feature_has_model{{feature=\"{}\"}} {}",
            label(feature),
            u8::from(model.is_some())
        );
    }
    Ok(())
}
