//! The server functions of the Configuration page, and the one owner of `instance_settings`
//! and `testing_terms_acceptances`: whether beta is on, the AI Gateway timeout, and the gateway
//! health check are asked here by every other module.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

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
    async {
        crate::auth::ssr::current_user().await?;
        ssr::load(&expect_context::<sqlx::PgPool>()).await
    }
    .await
    .map_err(AppError::respond)
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
    .map_err(AppError::respond)
}

/// Calls the AI Gateway's `GET /monitoring/healthz` and describes what happened. A POST for
/// admins: it makes the console send a request, which a link or an auditor must not trigger.
#[server(endpoint = "ai_gateway_health_check")]
pub async fn run_health_check() -> Result<HealthCheck, AppError> {
    ssr::health_check().await.map_err(AppError::respond)
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
    use crate::auth::ssr::require_admin;
    use crate::configuration::rules::{
        AGENT_URL_INVALID, GATEWAY_URL_INVALID, TIMEOUT_RANGE, parse_agent_platform_url, parse_gateway_url,
        parse_timeout,
    };
    use crate::error::FieldErrors;

    /// How long the health check waits for the gateway.
    pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

    /// The constraints of `instance_settings` (migrations/), in the page's own words.
    pub fn constraint_violation(constraint: &str) -> Option<AppError> {
        let field = AppError::field;
        Some(match constraint {
            "instance_settings_timeout_range" => field("ai_gateway_timeout_seconds", TIMEOUT_RANGE),
            "instance_settings_ai_gateway_url" => field("ai_gateway_url", GATEWAY_URL_INVALID),
            "instance_settings_agent_platform_url" => {
                field("duo_agent_platform_service_url", AGENT_URL_INVALID)
            }
            _ => return None,
        })
    }

    /// Whether beta models and features are on: while any admin's acceptance of the testing
    /// agreement stands.
    pub async fn beta_enabled(db: impl sqlx::PgExecutor<'_>) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar!(r#"SELECT EXISTS(SELECT 1 FROM testing_terms_acceptances) AS "on!""#)
            .fetch_one(db)
            .await
    }

    /// The AI Gateway request timeout: the bound of every whole model exchange.
    pub async fn exchange_limit(db: impl sqlx::PgExecutor<'_>) -> Result<Duration, AppError> {
        let seconds = sqlx::query_scalar!("SELECT ai_gateway_timeout_seconds FROM instance_settings")
            .fetch_one(db)
            .await?;
        Ok(Duration::from_secs(seconds.max(1) as u64))
    }

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
            return Err(AppError::Validation(errors));
        };
        let pool = expect_context::<sqlx::PgPool>();
        let mut tx = pool.begin().await?;
        let before = load_in(&mut tx).await?;
        sqlx::query!(
            "UPDATE instance_settings SET ai_gateway_timeout_seconds = $1, ai_gateway_url = $2,
                    duo_agent_platform_service_url = $3, updated_at = now()",
            timeout,
            gateway_url,
            agent_url
        )
        .execute(&mut *tx)
        .await
        .map_err(|error| AppError::from_database(error, constraint_violation))?;
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
        require_admin().await?;
        let settings = load(&expect_context::<sqlx::PgPool>()).await?;
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
