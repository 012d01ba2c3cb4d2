//! `/admin`, where sign-in lands: the state of GitLab Duo at a glance (models, features ready
//! and not, the AI Gateway's reachability, beta on or off), each read from what the console
//! stored, the same answers the pages they link to give, and the ways in.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::configuration::api::HealthCheck;
use crate::error::AppError;
use crate::features::api::Readiness;
use crate::models::domain::status_time;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    pub models: usize,
    /// Models whose last test failed.
    pub models_failing: usize,
    pub readiness: Readiness,
    pub gateway_url_set: bool,
    /// The last reachability check of the gateway URL set now.
    pub gateway: Option<HealthCheck>,
    pub beta_enabled: bool,
}

#[server(endpoint = "admin_overview", input = GetUrl)]
pub async fn load_overview() -> Result<Overview, AppError> {
    ssr::load().await.map_err(AppError::respond)
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use crate::models::domain::Serving;

    pub async fn load() -> Result<Overview, AppError> {
        crate::auth::ssr::current_user().await?;
        let pool = expect_context::<sqlx::PgPool>();
        let catalog = expect_context::<std::sync::Arc<crate::catalog::Catalog>>();
        let serving = crate::models::store::serving(&pool).await?;
        let settings = crate::configuration::api::ssr::load(&pool).await?;
        Ok(Overview {
            models: serving.len(),
            models_failing: serving.values().filter(|s| matches!(s, Serving::Failing { .. })).count(),
            readiness: crate::features::api::ssr::readiness(&pool, &catalog).await?,
            gateway_url_set: settings.ai_gateway_url.is_some(),
            gateway: crate::configuration::api::ssr::gateway_reachability(&pool).await?,
            beta_enabled: settings.beta_enabled,
        })
    }
}

#[component]
pub fn AdminOverview() -> impl IntoView {
    let overview = crate::page_data::resource(|| (), |_| load_overview());
    view! {
        <leptos_meta::Title text="Admin area"/>
        <h1 class="page-title">"Admin area"</h1>
        <div class="overview-cards">
            <section class="card" aria-labelledby="duo-status-heading">
                <h2 id="duo-status-heading">"GitLab Duo status"</h2>
                <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match overview.await {
                            Ok(overview) => view! { <Status overview/> }.into_any(),
                            Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                        }
                    })}
                </Suspense>
            </section>
            <section class="card">
                <h2>"GitLab Duo"</h2>
                <p>"Manage GitLab Duo by configuring and assigning self-hosted models to AI-native features."</p>
                <ul>
                    <li><a href="/admin/gitlab_duo/configuration">"Configuration"</a></li>
                    <li><a href="/admin/gitlab_duo/self_hosted">"Model configuration"</a></li>
                </ul>
            </section>
            <section class="card">
                <h2>"Audit events"</h2>
                <p>"Every change made in this console, and every sign-in attempt."</p>
                <ul>
                    <li><a href="/admin/audit_events">"Audit events"</a></li>
                </ul>
            </section>
        </div>
    }
}

#[component]
fn Status(overview: Overview) -> impl IntoView {
    let Overview { models, models_failing, readiness, gateway_url_set, gateway, beta_enabled } = overview;
    let all_ready = readiness.ready == readiness.total;
    let models_text = match (models, models_failing) {
        (1, 0) => "1 self-hosted model".to_owned(),
        (n, 0) => format!("{n} self-hosted models"),
        (n, 1) => format!("{n} self-hosted models, 1 failing its last test"),
        (n, failing) => format!("{n} self-hosted models, {failing} failing their last tests"),
    };
    let unserved = readiness.not_ready.len();
    let gateway_text = match (&gateway, gateway_url_set) {
        (_, false) => "No Local AI Gateway URL is set".to_owned(),
        (None, true) => "AI Gateway reachability not checked yet".to_owned(),
        (Some(check), true) => format!(
            "AI Gateway {} (checked {})",
            if check.healthy { "reachable" } else { "not reachable" },
            status_time(check.checked_at)
        ),
    };
    view! {
        <dl class="status-list">
            <dt>"Features"</dt>
            <dd>
                <span class=if all_ready { "status status-ready" } else { "status status-failing" }>{readiness.summary()}</span>
                {(unserved > 0).then(|| view! {
                    " "<a href="/admin/gitlab_duo/self_hosted/features">{format!("{unserved} not ready")}</a>
                })}
            </dd>
            <dt>"Models"</dt>
            <dd><a href="/admin/gitlab_duo/self_hosted/models">{models_text}</a></dd>
            <dt>"AI Gateway"</dt>
            <dd><a href="/admin/gitlab_duo/configuration">{gateway_text}</a></dd>
            <dt>"Beta models and features"</dt>
            <dd>{if beta_enabled { "On" } else { "Off" }}</dd>
        </dl>
    }
}
