//! `/admin/gitlab_duo/self_hosted/models/{id}`: a model's test history. Its latest tests (by
//! hand, chats, Test all, scheduled) as a chart of latency over time with failures marked,
//! drawn on the server as inline SVG (no chart library, nothing to hydrate), and the failures
//! with their messages.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use super::ModelConfigurationHeader;
use crate::error::AppError;

/// How many tests the chart shows.
pub const HISTORY_POINTS: i64 = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestPoint {
    pub at: chrono::DateTime<chrono::Utc>,
    pub ran_by: String,
    pub kind: String,
    pub ok: bool,
    pub message: String,
    pub total_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelHistory {
    pub name: String,
    /// Oldest first.
    pub points: Vec<TestPoint>,
}

#[server(endpoint = "self_hosted_model_history", input = GetUrl)]
pub async fn load_model_history(id: i64) -> Result<ModelHistory, AppError> {
    ssr::load(id).await.map_err(AppError::respond)
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use crate::models::store;

    pub async fn load(id: i64) -> Result<ModelHistory, AppError> {
        crate::auth::ssr::current_user().await?;
        let pool = expect_context::<sqlx::PgPool>();
        let model = store::find(&pool, id).await?.ok_or(AppError::NotFound)?;
        let mut points: Vec<TestPoint> = store::history(&pool, id, HISTORY_POINTS)
            .await?
            .into_iter()
            .map(|row| TestPoint {
                at: row.ran_at,
                ran_by: row.ran_by,
                kind: row.kind,
                ok: row.ok,
                message: row.message,
                total_ms: row.total_ms,
            })
            .collect();
        points.reverse();
        Ok(ModelHistory { name: model.name, points })
    }
}

#[component]
pub fn ModelHistoryPage() -> impl IntoView {
    let params = use_params_map();
    let id = params.read_untracked().get("id").and_then(|id| id.parse::<i64>().ok());
    let history = crate::page_data::resource(
        move || id,
        |id| async move {
            match id {
                Some(id) => load_model_history(id).await,
                None => Err(AppError::NotFound),
            }
        },
    );
    view! {
        <Title text="Model history"/>
        <ModelConfigurationHeader active_tab="models"/>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match history.await {
                    Ok(history) => view! { <HistoryView history/> }.into_any(),
                    Err(AppError::NotFound) => view! { <crate::layout::NotFound/> }.into_any(),
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                }
            })}
        </Suspense>
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const MARGIN: f64 = 24.0;

#[component]
fn HistoryView(history: ModelHistory) -> impl IntoView {
    let ModelHistory { name, points } = history;
    if points.is_empty() {
        return view! {
            <h2>{format!("{name}: test history")}</h2>
            <p class="empty-state">"No tests yet. Test the model, or wait for the scheduled checks."</p>
        }
        .into_any();
    }
    let answered = points.iter().filter(|p| p.ok).count();
    let (first, last) = (points[0].at.timestamp_millis(), points[points.len() - 1].at.timestamp_millis());
    let span = (last - first).max(1) as f64;
    let slowest = points.iter().filter(|p| p.ok).map(|p| p.total_ms).max().unwrap_or(1).max(1) as f64;
    // Tests at one instant (or a single test) sit in the middle.
    let x = move |at: chrono::DateTime<chrono::Utc>| {
        if first == last {
            WIDTH / 2.0
        } else {
            MARGIN + (at.timestamp_millis() - first) as f64 / span * (WIDTH - 2.0 * MARGIN)
        }
    };
    let y = move |ms: i64| HEIGHT - MARGIN - ms as f64 / slowest * (HEIGHT - 2.0 * MARGIN);
    let line: String = points
        .iter()
        .filter(|p| p.ok)
        .map(|p| format!("{:.1},{:.1}", x(p.at), y(p.total_ms)))
        .collect::<Vec<_>>()
        .join(" ");
    let summary = format!(
        "Latency of the last {} tests of {name}: {answered} answered, slowest {} ms; {} failed.",
        points.len(),
        slowest as i64,
        points.len() - answered
    );
    let failures: Vec<TestPoint> = points.iter().rev().filter(|p| !p.ok).take(20).cloned().collect();
    view! {
        <h2>{format!("{name}: test history")}</h2>
        <p class="form-text">{summary.clone()}</p>
        <svg class="history-chart" viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=summary>
            <line x1=MARGIN y1=HEIGHT - MARGIN x2=WIDTH - MARGIN y2=HEIGHT - MARGIN class="axis"/>
            <text x=MARGIN y=MARGIN - 8.0 class="axis-label">{format!("{} ms", slowest as i64)}</text>
            <polyline points=line class="latency"/>
            {points
                .iter()
                .map(|p| {
                    let (cx, title) = (x(p.at), format!("{} · {} · {}", p.at.format("%Y-%m-%d %H:%M UTC"), p.ran_by, p.message));
                    if p.ok {
                        view! { <circle cx=cx cy=y(p.total_ms) r="3" class="answered"><title>{title}</title></circle> }.into_any()
                    } else {
                        view! { <line x1=cx y1=HEIGHT - MARGIN - 10.0 x2=cx y2=HEIGHT - MARGIN + 6.0 class="failed"><title>{title}</title></line> }.into_any()
                    }
                })
                .collect_view()}
        </svg>
        {(!failures.is_empty()).then(|| view! {
            <h3>"Failures"</h3>
            <table class="table" aria-label="Failures">
                <thead><tr><th scope="col">"When"</th><th scope="col">"By"</th><th scope="col">"What happened"</th></tr></thead>
                <tbody>
                    {failures.into_iter().map(|p| view! {
                        <tr>
                            <td>{p.at.format("%Y-%m-%d %H:%M:%S UTC").to_string()}</td>
                            <td>{p.ran_by}</td>
                            <td class="failure-message">{p.message}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        })}
    }
    .into_any()
}
