//! The Configuration page's health block: "Features ready: 9 of 10" with the features that are
//! not, the AI Gateway's reachability (the last check, stored, and a button to check again), and
//! the schedule of the scheduled checks. Drawn on the server; its forms are plain forms. Every figure is read from what the console stored, the
//! same answer the features tab, the overview and `/metrics` give.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use super::api::{HealthCheck, RunHealthCheck, load_gateway_reachability};
use crate::checks::{SaveSchedule, Schedule, load_schedule};
use crate::features::api::{Readiness, load_readiness};
use crate::flash::{Flash, FlashAlert, GATEWAY, SCHEDULE, SCHEDULE_INTERVAL};
use crate::form_field::FormField;
use crate::models::domain::status_time;

/// `flash`: the page's, shown here when it is about the gateway's check or the schedule.
#[component]
pub fn HealthBlock(flash: Option<Flash>) -> impl IntoView {
    let readiness = crate::page_data::once(load_readiness());
    let gateway = crate::page_data::once(load_gateway_reachability());
    let schedule = crate::page_data::once(load_schedule());
    view! {
        <section class="settings-section health" aria-labelledby="health-heading">
            <h2 id="health-heading">"Health"</h2>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match readiness.await {
                        Ok(readiness) => view! { <FeaturesReady readiness/> }.into_any(),
                        Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                    }
                })}
            </Suspense>
            <h3>"AI Gateway reachability"</h3>
            <p class="form-text">"Whether the Local AI Gateway URL answers GitLab's health check (GET /monitoring/healthz). The models are checked on their own: by the scheduled checks below, Test all, and every test or chat."</p>
            // Read again after "Run health check" above (`refresh.rs`).
            <div data-refresh="gateway-check">
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        match gateway.await {
                            Ok(Some(last)) => view! { <GatewayCheck last/> }.into_any(),
                            Ok(None) => view! { <p class="gateway-check">"Not checked yet."</p> }.into_any(),
                            Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                        }
                    })}
                </Suspense>
            </div>
            // A plain form: the page comes back with the stored check.
            <form method="post" action=RunHealthCheck::url() class="inline-form">
                <button type="submit" class="btn">"Check AI Gateway reachability"</button>
            </form>
            <FlashAlert flash=flash.clone() about=GATEWAY/>
            <h3>"Scheduled checks"</h3>
            <Suspense fallback=|| ()>
                {move || {
                    let flash = flash.clone();
                    Suspend::new(async move {
                    match schedule.await {
                        Ok(schedule) => {
                            let error = flash
                                .clone()
                                .filter(|flash| flash.about.as_deref() == Some(SCHEDULE_INTERVAL))
                                .map(|flash| flash.text);
                            view! { <ScheduleForm schedule error/> <FlashAlert flash about=SCHEDULE/> }.into_any()
                        }
                        Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                    }
                })}}
            </Suspense>
        </section>
    }
}

#[component]
fn FeaturesReady(readiness: Readiness) -> impl IntoView {
    let all_ready = readiness.ready == readiness.total;
    view! {
        <div class="readiness">
            <p>
                <strong class=if all_ready { "status status-ready" } else { "status status-failing" }>{readiness.summary()}</strong>
                " "
                <a href="/admin/gitlab_duo/self_hosted/features">"View AI-native features"</a>
            </p>
            {(!readiness.not_ready.is_empty()).then(|| view! {
                <ul aria-label="Features not ready">
                    {readiness.not_ready.into_iter().map(|(title, status)| view! {
                        <li>
                            {title}": "<span class=status.class()>{status.text()}</span>
                            {status.detail().map(|detail| view! { <span class="form-text">" "{detail}</span> })}
                        </li>
                    }).collect_view()}
                </ul>
            })}
        </div>
    }
}

#[component]
fn GatewayCheck(last: HealthCheck) -> impl IntoView {
    view! {
        <p class="gateway-check">
            <span class=if last.healthy { "status status-ready" } else { "status status-failing" }>
                {if last.healthy { "Reachable" } else { "Not reachable" }}
            </span>
            " "{last.message}" "
            <span class="form-text">{format!("Checked {}.", status_time(last.checked_at))}</span>
        </p>
    }
}

/// A plain form: the page comes back with the schedule saved and a notice, or with the
/// interval's `error` at its field.
#[component]
fn ScheduleForm(schedule: Schedule, error: Option<String>) -> impl IntoView {
    let rounds = match (schedule.last_round_at, schedule.next_due) {
        (_, None) => "Off: no model is checked unless someone tests it.".to_owned(),
        (None, Some(next)) => format!("Next round {}.", status_time(next)),
        (Some(last), Some(next)) => format!("Last round {}; next {}.", status_time(last), status_time(next)),
    };
    view! {
        <form method="post" action=SaveSchedule::url() class="schedule-form">
            <FormField
                id="check-interval"
                label="Check every"
                error
                help="Each model a feature uses is asked GitLab's probe (\"Just say hello.\") this often, and the AI Gateway's reachability is checked; the outcomes join each model's history. 0 turns the checks off."
            >
                <div class="input-with-unit">
                    <input
                        id="check-interval"
                        name="interval_minutes"
                        type="number"
                        min="0"
                        max=crate::checks::MAX_INTERVAL_MINUTES
                        class="form-control"
                        value=schedule.interval_minutes
                    />
                    <span>"minutes"</span>
                </div>
            </FormField>
            <p class="form-text">{rounds}</p>
            <button type="submit" class="btn">"Save schedule"</button>
        </form>
    }
}
