//! `/admin/gitlab_duo/configuration`: GitLab Duo's instance settings. Beta models and features
//! (turning them on records the admin's acceptance of the testing agreement), the AI Gateway
//! request timeout and URL, the Agent Platform service address, and a gateway health check.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::error::{AppError, FieldErrors};

pub const SAVED: &str = "Application settings saved successfully.";
pub const SAVE_FAILED: &str = "An error occurred while updating your settings. Reload the page to try again.";
pub const TIMEOUT_RANGE: &str = "The AI Gateway request timeout must be a whole number from 60 to 600.";
pub const GATEWAY_URL_INVALID: &str =
    "The URL must be a complete URL, including either the \"http://\" or \"https://\" protocol.";
pub const AGENT_URL_INVALID: &str =
    "Enter a host and port without a protocol, for example example.com:50052.";

/// "AI Gateway request timeout": whole seconds, 60 to 600.
pub fn parse_timeout(value: &str) -> Result<i32, &'static str> {
    value.trim().parse::<i32>().ok().filter(|seconds| (60..=600).contains(seconds)).ok_or(TIMEOUT_RANGE)
}

/// "Local AI Gateway URL": blank clears it; otherwise an absolute http(s) URL of at most 2048
/// characters, stored without its trailing slash.
pub fn parse_gateway_url(value: &str) -> Result<Option<String>, &'static str> {
    let value = value.trim().trim_end_matches('/');
    if value.is_empty() {
        return Ok(None);
    }
    let url = url::Url::parse(value).map_err(|_| GATEWAY_URL_INVALID)?;
    let absolute =
        value.split_once("://").is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    if !matches!(url.scheme(), "http" | "https") || !absolute || value.chars().count() > 2048 {
        return Err(GATEWAY_URL_INVALID);
    }
    Ok(Some(value.to_owned()))
}

/// "Local URL for the GitLab Duo Agent Platform service": `host:port`, no protocol.
pub fn parse_agent_platform_url(value: &str) -> Result<Option<String>, &'static str> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let (host, port) = value.rsplit_once(':').ok_or(AGENT_URL_INVALID)?;
    let host_ok = !host.is_empty()
        && !host.contains('/')
        && !host.contains(':')
        && !host.chars().any(char::is_whitespace);
    let port_ok = port.parse::<u16>().is_ok_and(|port| port > 0);
    if host_ok && port_ok { Ok(Some(value.to_owned())) } else { Err(AGENT_URL_INVALID) }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSettings {
    pub beta_enabled: bool,
    pub ai_gateway_timeout_seconds: i32,
    pub ai_gateway_url: Option<String>,
    pub duo_agent_platform_service_url: Option<String>,
    /// Who accepted the testing agreement, and when, while beta is on.
    pub accepted_by: Option<String>,
}

#[server(endpoint = "duo_configuration", input = GetUrl)]
pub async fn load_configuration() -> Result<InstanceSettings, AppError> {
    crate::auth::ssr::current_user().await?;
    ssr::load(&expect_context::<crate::state::AppState>().pool).await
}

#[server(endpoint = "update_duo_configuration")]
pub async fn save_configuration(
    beta_enabled: Option<String>,
    ai_gateway_timeout_seconds: String,
    ai_gateway_url: String,
    duo_agent_platform_service_url: String,
) -> Result<(), AppError> {
    ssr::save(
        beta_enabled.is_some(),
        ai_gateway_timeout_seconds,
        ai_gateway_url,
        duo_agent_platform_service_url,
    )
    .await
}

/// Calls the AI Gateway's `GET /monitoring/healthz` and describes what happened.
#[server(endpoint = "ai_gateway_health_check", input = GetUrl)]
pub async fn run_health_check() -> Result<HealthCheck, AppError> {
    ssr::health_check().await
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub healthy: bool,
    pub message: String,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::audit::ssr::{Actor, NewAuditEvent, record};
    use crate::auth::ssr::{current_user, require_admin};
    use crate::state::AppState;

    /// How long the health check waits for the gateway.
    pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

    pub async fn load(db: &sqlx::PgPool) -> Result<InstanceSettings, AppError> {
        let row = sqlx::query!(
            r#"SELECT s.ai_gateway_url, s.ai_gateway_timeout_seconds, s.duo_agent_platform_service_url,
                      (SELECT t.user_email || ' on ' || to_char(t.accepted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
                       FROM testing_terms_acceptances t ORDER BY t.accepted_at LIMIT 1) AS accepted_by
               FROM instance_settings s"#
        )
        .fetch_one(db)
        .await?;
        Ok(InstanceSettings {
            beta_enabled: row.accepted_by.is_some(),
            ai_gateway_timeout_seconds: row.ai_gateway_timeout_seconds,
            ai_gateway_url: row.ai_gateway_url,
            duo_agent_platform_service_url: row.duo_agent_platform_service_url,
            accepted_by: row.accepted_by,
        })
    }

    pub async fn save(
        beta_enabled: bool,
        timeout: String,
        gateway_url: String,
        agent_url: String,
    ) -> Result<(), AppError> {
        let user = require_admin().await?;
        let mut errors = FieldErrors::new();
        let timeout =
            parse_timeout(&timeout).map_err(|e| errors.insert("ai_gateway_timeout_seconds".into(), e.into()));
        let gateway_url =
            parse_gateway_url(&gateway_url).map_err(|e| errors.insert("ai_gateway_url".into(), e.into()));
        let agent_url = parse_agent_platform_url(&agent_url)
            .map_err(|e| errors.insert("duo_agent_platform_service_url".into(), e.into()));
        let (Ok(timeout), Ok(gateway_url), Ok(agent_url)) = (timeout, gateway_url, agent_url) else {
            return Err(AppError::Validation(errors).respond());
        };
        let state = expect_context::<AppState>();
        let mut tx = state.pool.begin().await?;
        let before = load_in(&mut tx).await?;
        sqlx::query!(
            "UPDATE instance_settings SET ai_gateway_timeout_seconds = $1, ai_gateway_url = $2,
                    duo_agent_platform_service_url = $3, updated_at = now()",
            timeout,
            gateway_url,
            agent_url
        )
        .execute(&mut *tx)
        .await?;
        let actor = Actor::signed_in(&user).await;
        if beta_enabled && !before.beta_enabled {
            sqlx::query!(
                "INSERT INTO testing_terms_acceptances (user_id, user_email) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                user.id.0,
                user.email
            )
            .execute(&mut *tx)
            .await?;
            let message = format!(
                "Self-hosted model testing terms accepted by user - ID: {}, email: {}",
                user.id.0, user.email
            );
            record(&mut *tx, &actor, event("testing_terms_accepted", message, None, None)).await?;
        } else if !beta_enabled && before.beta_enabled {
            // Beta is on while any acceptance exists: turning it off withdraws them all.
            sqlx::query!("DELETE FROM testing_terms_acceptances").execute(&mut *tx).await?;
            let message = "Self-hosted beta models and features turned off".to_owned();
            record(&mut *tx, &actor, event("testing_terms_withdrawn", message, None, None)).await?;
        }
        let after = InstanceSettings {
            beta_enabled,
            ai_gateway_timeout_seconds: timeout,
            ai_gateway_url: gateway_url.clone(),
            duo_agent_platform_service_url: agent_url.clone(),
            accepted_by: None,
        };
        if (before.ai_gateway_timeout_seconds, &before.ai_gateway_url, &before.duo_agent_platform_service_url)
            != (timeout, &gateway_url, &agent_url)
        {
            record(
                &mut *tx,
                &actor,
                event(
                    "duo_settings_updated",
                    "Updated the GitLab Duo Self-Hosted settings".to_owned(),
                    Some(settings_json(&before)),
                    Some(settings_json(&after)),
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn load_in(tx: &mut sqlx::PgConnection) -> Result<InstanceSettings, AppError> {
        let row = sqlx::query!(
            r#"SELECT ai_gateway_url, ai_gateway_timeout_seconds, duo_agent_platform_service_url,
                      EXISTS(SELECT 1 FROM testing_terms_acceptances) AS "beta!"
               FROM instance_settings FOR UPDATE"#
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(InstanceSettings {
            beta_enabled: row.beta,
            ai_gateway_timeout_seconds: row.ai_gateway_timeout_seconds,
            ai_gateway_url: row.ai_gateway_url,
            duo_agent_platform_service_url: row.duo_agent_platform_service_url,
            accepted_by: None,
        })
    }

    fn settings_json(settings: &InstanceSettings) -> serde_json::Value {
        serde_json::json!({
            "ai_gateway_timeout_seconds": settings.ai_gateway_timeout_seconds,
            "ai_gateway_url": settings.ai_gateway_url,
            "duo_agent_platform_service_url": settings.duo_agent_platform_service_url,
        })
    }

    fn event(
        action: &'static str,
        message: String,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> NewAuditEvent<'static> {
        NewAuditEvent {
            action,
            target_type: "ApplicationSetting",
            target_id: None,
            target_name: Some("GitLab Duo"),
            message,
            before,
            after,
        }
    }

    pub async fn health_check() -> Result<HealthCheck, AppError> {
        current_user().await?;
        let state = expect_context::<AppState>();
        let settings = load(&state.pool).await?;
        let Some(gateway) = settings.ai_gateway_url else {
            return Ok(HealthCheck { healthy: false, message: "No Local AI Gateway URL is set.".to_owned() });
        };
        let url = format!("{gateway}/monitoring/healthz");
        let started = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(HEALTH_CHECK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| AppError::Internal)?;
        let outcome = client.get(&url).send().await;
        let elapsed = started.elapsed().as_millis();
        Ok(match outcome {
            Ok(response) if response.status().is_success() => HealthCheck {
                healthy: true,
                message: format!(
                    "The AI Gateway is healthy: {url} answered {} in {elapsed} ms.",
                    response.status()
                ),
            },
            Ok(response) => HealthCheck {
                healthy: false,
                message: format!("The AI Gateway is not healthy: {url} answered {}.", response.status()),
            },
            Err(error) if error.is_timeout() => HealthCheck {
                healthy: false,
                message: format!(
                    "The AI Gateway did not answer within {} seconds ({url}).",
                    HEALTH_CHECK_TIMEOUT.as_secs()
                ),
            },
            Err(_) => HealthCheck {
                healthy: false,
                message: format!(
                    "Could not reach the AI Gateway at {url}. Check the URL and that the gateway is running."
                ),
            },
        })
    }
}

#[component]
pub fn ConfigurationPage() -> impl IntoView {
    let save = ServerAction::<SaveConfiguration>::new();
    let settings = Resource::new(move || save.version().get(), |_| load_configuration());
    view! {
        <Title text="Configuration"/>
        <h1 class="page-title">"Configuration"</h1>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match settings.await {
                    Ok(settings) => view! { <ConfigurationForm settings save/> }.into_any(),
                    Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ConfigurationForm(settings: InstanceSettings, save: ServerAction<SaveConfiguration>) -> impl IntoView {
    let beta = RwSignal::new(settings.beta_enabled);
    let timeout = RwSignal::new(settings.ai_gateway_timeout_seconds.to_string());
    let gateway = RwSignal::new(settings.ai_gateway_url.clone().unwrap_or_default());
    let agent = RwSignal::new(settings.duo_agent_platform_service_url.clone().unwrap_or_default());
    let initial =
        (beta.get_untracked(), timeout.get_untracked(), gateway.get_untracked(), agent.get_untracked());
    let changed = {
        let initial = initial.clone();
        move || (beta.get(), timeout.get(), gateway.get(), agent.get()) != initial
    };
    // Before hydration (or with JavaScript off) the button stays usable: only the browser can
    // tell whether something changed.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let errors = move || match save.value().get() {
        Some(Err(AppError::Validation(errors))) => errors,
        _ => FieldErrors::new(),
    };
    let error_for = move |field: &'static str| move || errors().get(field).cloned();
    let health = ServerAction::<RunHealthCheck>::new();
    let (initial_timeout, initial_gateway, initial_agent) =
        (initial.1.clone(), initial.2.clone(), initial.3.clone());

    view! {
        {move || match save.value().get() {
            Some(Ok(())) => Some(view! { <div class="alert alert-success" role="status">{SAVED}</div> }.into_any()),
            Some(Err(AppError::Validation(_))) | None => None,
            Some(Err(AppError::Forbidden)) => Some(view! { <div class="alert alert-danger" role="alert">{AppError::Forbidden.to_string()}</div> }.into_any()),
            Some(Err(_)) => Some(view! { <div class="alert alert-danger" role="alert">{SAVE_FAILED}</div> }.into_any()),
        }}
        <ActionForm action=save attr:class="settings-form">
            <section class="settings-section">
                <h2>"Self-hosted beta models and features"</h2>
                <div class="form-check">
                    <input
                        id="beta-enabled"
                        type="checkbox"
                        name="beta_enabled"
                        value="on"
                        checked=settings.beta_enabled
                        prop:checked=move || beta.get()
                        on:change=move |ev| beta.set(event_target_checked(&ev))
                    />
                    <label for="beta-enabled">"Use beta models and features in GitLab Duo Self-Hosted"</label>
                </div>
                <p class="form-text">
                    "Enabling self-hosted beta models and features is your acceptance of the GitLab Testing Agreement."
                </p>
                {settings.accepted_by.clone().map(|by| view! { <p class="form-text">{format!("Accepted by {by}.")}</p> })}
            </section>
            <section class="settings-section">
                <div class="form-group">
                    <label for="ai-gateway-timeout">"AI Gateway request timeout"</label>
                    <div class="input-with-unit">
                        <input
                            id="ai-gateway-timeout"
                            name="ai_gateway_timeout_seconds"
                            type="number"
                            min="60"
                            max="600"
                            class="form-control"
                            value=initial_timeout
                            prop:value=move || timeout.get()
                            on:input=move |ev| timeout.set(event_target_value(&ev))
                        />
                        <span>"seconds"</span>
                    </div>
                    {move || error_for("ai_gateway_timeout_seconds")().map(|m| view! { <p class="invalid-feedback" role="alert">{m}</p> })}
                    <p class="form-text">
                        "Maximum time in seconds to wait for responses from the AI Gateway (up to 600 seconds). Increasing this value might result in degraded user experience."
                    </p>
                </div>
                <div class="form-group">
                    <label for="ai-gateway-url">"Local AI Gateway URL"</label>
                    <input
                        id="ai-gateway-url"
                        name="ai_gateway_url"
                        type="text"
                        class="form-control"
                        value=initial_gateway
                        prop:value=move || gateway.get()
                        on:input=move |ev| gateway.set(event_target_value(&ev))
                    />
                    {move || error_for("ai_gateway_url")().map(|m| view! { <p class="invalid-feedback" role="alert">{m}</p> })}
                    <p class="form-text">
                        "Enter the URL for your local AI Gateway. This endpoint is used for GitLab Duo Self-Hosted requests. The URL must be a complete URL, including either the \"http://\" or \"https://\" protocol. For example \"http://EXAMPLE-URL\"."
                    </p>
                </div>
                <div class="form-group">
                    <label for="agent-platform-url">"Local URL for the GitLab Duo Agent Platform service"</label>
                    <input
                        id="agent-platform-url"
                        name="duo_agent_platform_service_url"
                        type="text"
                        class="form-control"
                        placeholder="example.com:50052"
                        value=initial_agent
                        prop:value=move || agent.get()
                        on:input=move |ev| agent.set(event_target_value(&ev))
                    />
                    {move || error_for("duo_agent_platform_service_url")().map(|m| view! { <p class="invalid-feedback" role="alert">{m}</p> })}
                    <p class="form-text">"Enter the host and port without a protocol, for example example.com:50052."</p>
                </div>
            </section>
            <div class="form-actions">
                <button
                    type="submit"
                    class="btn btn-confirm"
                    disabled=move || hydrated.get() && (!changed() || save.pending().get())
                >
                    "Save changes"
                </button>
                <button type="button" class="btn" on:click=move |_| { health.dispatch(RunHealthCheck {}); }>
                    "Run health check"
                </button>
            </div>
        </ActionForm>
        {move || health.pending().get().then(|| view! { <p class="loading" role="status">"Checking the AI Gateway…"</p> })}
        {move || health.value().get().map(|result| match result {
            Ok(check) => view! {
                <div class=if check.healthy { "alert alert-success" } else { "alert alert-danger" } role="status">{check.message}</div>
            }.into_any(),
            Err(error) => view! { <div class="alert alert-danger" role="alert">{error.to_string()}</div> }.into_any(),
        })}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_60_to_600_whole_seconds() {
        assert_eq!(parse_timeout("60"), Ok(60));
        assert_eq!(parse_timeout(" 600 "), Ok(600));
        for bad in ["59", "601", "", "sixty", "60.5", "-60"] {
            assert_eq!(parse_timeout(bad), Err(TIMEOUT_RANGE), "{bad}");
        }
    }

    #[test]
    fn the_gateway_url_is_absolute_http_without_trailing_slash_and_blank_clears_it() {
        assert_eq!(parse_gateway_url("  "), Ok(None));
        assert_eq!(parse_gateway_url("http://localhost:5052/"), Ok(Some("http://localhost:5052".into())));
        assert_eq!(
            parse_gateway_url("https://gw.example.com/ai//"),
            Ok(Some("https://gw.example.com/ai".into()))
        );
        for bad in ["localhost:5052", "ftp://gw", "http://", "http:///x", "gw.example.com"] {
            assert_eq!(parse_gateway_url(bad), Err(GATEWAY_URL_INVALID), "{bad}");
        }
        assert_eq!(parse_gateway_url(&format!("http://h/{}", "a".repeat(2045))), Err(GATEWAY_URL_INVALID));
    }

    #[test]
    fn the_agent_platform_url_is_host_and_port_without_protocol() {
        assert_eq!(parse_agent_platform_url("example.com:50052"), Ok(Some("example.com:50052".into())));
        assert_eq!(parse_agent_platform_url(""), Ok(None));
        for bad in [
            "http://example.com:50052",
            "example.com",
            "example.com:0",
            "example.com:99999",
            ":50052",
            "a b:1",
        ] {
            assert_eq!(parse_agent_platform_url(bad), Err(AGENT_URL_INVALID), "{bad}");
        }
    }
}
