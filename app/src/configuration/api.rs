//! The server functions of the Configuration page, and the one owner of `instance_settings`
//! and `testing_terms_acceptances`: whether beta is on, the AI Gateway timeout, and the gateway
//! health check are asked here by every other module.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
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

/// What was typed into the Configuration form when a save posted without JavaScript was
/// refused: the page that the browser is sent back to shows it beside the errors, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationDraft {
    pub beta_enabled: bool,
    pub ai_gateway_timeout_seconds: String,
    pub ai_gateway_url: String,
    pub duo_agent_platform_service_url: String,
    /// Why it was refused, at each field: kept with it in the session (never read from the
    /// address, which anyone could forge into a link).
    #[serde(default)]
    pub errors: crate::error::FieldErrors,
}

#[server(endpoint = "update_duo_configuration")]
pub async fn save_configuration(
    beta_enabled: Option<String>,
    ai_gateway_timeout_seconds: String,
    ai_gateway_url: String,
    duo_agent_platform_service_url: String,
) -> Result<(), AppError> {
    let draft = ConfigurationDraft {
        beta_enabled: beta_enabled.is_some(),
        ai_gateway_timeout_seconds: ai_gateway_timeout_seconds.clone(),
        ai_gateway_url: ai_gateway_url.clone(),
        duo_agent_platform_service_url: duo_agent_platform_service_url.clone(),
        errors: Default::default(),
    };
    let saved = ssr::save(
        beta_enabled.is_some(),
        ai_gateway_timeout_seconds,
        ai_gateway_url,
        duo_agent_platform_service_url,
    )
    .await;
    // With JavaScript off the browser is sent back to the page, which would otherwise show
    // the saved values under the errors of the typed ones.
    if let Err(AppError::Validation(errors)) = &saved
        && crate::error::is_plain_form_post()
    {
        ssr::keep_draft(ConfigurationDraft { errors: errors.clone(), ..draft }).await;
    }
    if saved.is_ok() {
        crate::flash::ssr::keep(crate::flash::Flash::notice(super::rules::SAVED)).await;
    }
    saved.map_err(AppError::respond)
}

/// The draft a refused plain-form save kept, taken (so it is shown once).
#[server(endpoint = "duo_configuration_draft", input = GetUrl)]
pub async fn take_configuration_draft() -> Result<Option<ConfigurationDraft>, AppError> {
    async {
        crate::auth::ssr::current_user().await?;
        Ok(ssr::take_draft().await)
    }
    .await
    .map_err(AppError::respond)
}

/// Calls the AI Gateway's `GET /monitoring/healthz` at `ai_gateway_url` (the URL in the
/// field, saved or not; blank: the saved one) and describes what happened, naming the URL it
/// checked. A POST for admins: it makes the console send a request, which a link or an auditor
/// must not trigger. A check of the saved URL is stored, so every page and replica shows the
/// same last check.
#[server(endpoint = "ai_gateway_health_check")]
pub async fn run_health_check(#[server(default)] ai_gateway_url: String) -> Result<HealthCheck, AppError> {
    let checked = ssr::health_check(ai_gateway_url).await;
    // The health block's button is a plain form: its page shows the stored check, and this.
    let flash = match &checked {
        Ok(check) if check.healthy => crate::flash::Flash::notice(&check.message),
        Ok(check) => crate::flash::Flash::alert(&check.message),
        Err(error) => crate::flash::Flash::refusal(error, crate::error::INTERNAL_MESSAGE),
    };
    crate::flash::ssr::keep(flash.about(crate::flash::GATEWAY)).await;
    checked.map_err(AppError::respond)
}

/// The last AI Gateway reachability check of the URL now set, if any.
#[server(endpoint = "ai_gateway_reachability", input = GetUrl)]
pub async fn load_gateway_reachability() -> Result<Option<HealthCheck>, AppError> {
    async {
        crate::auth::ssr::current_user().await?;
        ssr::gateway_reachability(&expect_context::<sqlx::PgPool>()).await
    }
    .await
    .map_err(AppError::respond)
}

/// An AI Gateway reachability check: whether `GET /monitoring/healthz` answered, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub healthy: bool,
    pub message: String,
    /// Not read in the browser, which shows no date of a check it made itself: reading one would
    /// bring the date parser into the bundle (the page shows the stored check's date).
    #[cfg_attr(not(feature = "ssr"), serde(skip_deserializing))]
    pub checked_at: chrono::DateTime<chrono::Utc>,
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

    const DRAFT_KEY: &str = "configuration_form_draft";

    /// Keeps the refused form's values for the page the browser goes back to.
    pub async fn keep_draft(draft: ConfigurationDraft) {
        crate::drafts::ssr::keep(DRAFT_KEY, draft).await;
    }

    pub async fn take_draft() -> Option<ConfigurationDraft> {
        crate::drafts::ssr::take(DRAFT_KEY).await
    }

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
        let actor = Actor::signed_in(&user).await;
        let pool = expect_context::<sqlx::PgPool>();
        let mut tx = pool.begin().await?;
        save_in(&mut tx, &actor, &user, beta_enabled, &timeout, &gateway_url, &agent_url).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The save itself, with its audit events, inside the caller's transaction (the page's and
    /// the API's one request, or a configuration import). Beta turned on is `user`'s acceptance
    /// of the testing terms.
    pub async fn save_in(
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        user: &crate::auth::CurrentUser,
        beta_enabled: bool,
        timeout: &str,
        gateway_url: &str,
        agent_url: &str,
    ) -> Result<(), AppError> {
        let mut errors = FieldErrors::new();
        let timeout =
            parse_timeout(timeout).map_err(|e| errors.insert("ai_gateway_timeout_seconds".into(), e.into()));
        let gateway_url =
            parse_gateway_url(gateway_url).map_err(|e| errors.insert("ai_gateway_url".into(), e.into()));
        let agent_url = parse_agent_platform_url(agent_url)
            .map_err(|e| errors.insert("duo_agent_platform_service_url".into(), e.into()));
        let (Ok(timeout), Ok(gateway_url), Ok(agent_url)) = (timeout, gateway_url, agent_url) else {
            return Err(AppError::Validation(errors));
        };
        let before = load_in(tx).await?;
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
            record(&mut *tx, actor, event("testing_terms_accepted", message, None, None)).await?;
        } else if !beta_enabled && before.beta_enabled {
            // Beta is on while any acceptance exists: turning it off withdraws them all.
            sqlx::query!("DELETE FROM testing_terms_acceptances").execute(&mut *tx).await?;
            let message = "Self-hosted beta models and features turned off".to_owned();
            record(&mut *tx, actor, event("testing_terms_withdrawn", message, None, None)).await?;
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
                actor,
                event(
                    "duo_settings_updated",
                    "Updated the GitLab Duo Self-Hosted settings".to_owned(),
                    Some(settings_json(&before)),
                    Some(settings_json(&after)),
                ),
            )
            .await?;
        }
        Ok(())
    }

    /// The settings, locked for the rest of the transaction (beta as `beta_enabled`, no `accepted_by`).
    pub async fn load_in(tx: &mut sqlx::PgConnection) -> Result<InstanceSettings, AppError> {
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

    pub async fn health_check(typed: String) -> Result<HealthCheck, AppError> {
        require_admin().await?;
        let pool = expect_context::<sqlx::PgPool>();
        let settings = load(&pool).await?;
        // The field's URL, checked by the rule a save applies; blank, the saved one.
        let typed =
            parse_gateway_url(&typed).map_err(|message| AppError::field("ai_gateway_url", message))?;
        match typed {
            // Not saved yet: checked, not stored (it is not the gateway in use).
            Some(typed) if Some(&typed) != settings.ai_gateway_url.as_ref() => {
                probe_gateway(&typed, true).await
            }
            _ => check_gateway(&pool).await,
        }
    }

    /// The stored last check, if it checked the gateway URL set now.
    pub async fn gateway_reachability(db: &sqlx::PgPool) -> Result<Option<HealthCheck>, AppError> {
        let row = sqlx::query!(
            r#"SELECT ai_gateway_reachable AS "healthy!", ai_gateway_check_message AS "message!",
                      ai_gateway_checked_at AS "checked_at!: chrono::DateTime<chrono::Utc>"
               FROM instance_settings
               WHERE ai_gateway_checked_url IS NOT NULL AND ai_gateway_checked_url = ai_gateway_url"#
        )
        .fetch_optional(db)
        .await?;
        Ok(row.map(|row| HealthCheck {
            healthy: row.healthy,
            message: row.message,
            checked_at: row.checked_at,
        }))
    }

    /// Checks the gateway URL set now and stores the outcome (unless the URL changed meanwhile,
    /// when it no longer speaks of the gateway in use). With no URL set there is nothing to
    /// reach, and nothing is stored.
    pub async fn check_gateway(db: &sqlx::PgPool) -> Result<HealthCheck, AppError> {
        let settings = load(db).await?;
        let Some(gateway) = settings.ai_gateway_url else {
            return Ok(HealthCheck {
                healthy: false,
                message: "No Local AI Gateway URL is set.".to_owned(),
                checked_at: chrono::Utc::now(),
            });
        };
        let mut check = probe_gateway(&gateway, false).await?;
        let stored_at = sqlx::query_scalar!(
            r#"UPDATE instance_settings SET ai_gateway_checked_url = $1, ai_gateway_checked_at = now(),
                    ai_gateway_reachable = $2, ai_gateway_check_message = $3
               WHERE ai_gateway_url = $1
               RETURNING ai_gateway_checked_at AS "checked_at!: chrono::DateTime<chrono::Utc>""#,
            gateway,
            check.healthy,
            check.message
        )
        .fetch_optional(db)
        .await?;
        // The database's clock, as every replica reads it back.
        check.checked_at = stored_at.unwrap_or(check.checked_at);
        Ok(check)
    }

    /// One `GET /monitoring/healthz`; the message says when the URL is not saved yet.
    async fn probe_gateway(gateway: &str, unsaved: bool) -> Result<HealthCheck, AppError> {
        let url = format!("{gateway}/monitoring/healthz");
        let checked = if unsaved { format!("{url} (not saved yet)") } else { url.clone() };
        let started = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(HEALTH_CHECK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| AppError::Internal)?;
        let outcome = client.get(&url).send().await;
        let elapsed = started.elapsed().as_millis();
        let checked_at = chrono::Utc::now();
        Ok(match outcome {
            Ok(response) if response.status().is_success() => HealthCheck {
                checked_at,
                healthy: true,
                message: format!(
                    "The AI Gateway is healthy: {checked} answered {} in {elapsed} ms.",
                    response.status()
                ),
            },
            Ok(response) => HealthCheck {
                checked_at,
                healthy: false,
                message: format!("The AI Gateway is not healthy: {checked} answered {}.", response.status()),
            },
            Err(error) if error.is_timeout() => HealthCheck {
                checked_at,
                healthy: false,
                message: format!(
                    "The AI Gateway did not answer within {} seconds ({checked}).",
                    HEALTH_CHECK_TIMEOUT.as_secs()
                ),
            },
            Err(_) => HealthCheck {
                checked_at,
                healthy: false,
                message: format!(
                    "Could not reach the AI Gateway at {checked}. Check the URL and that the gateway is running."
                ),
            },
        })
    }
}
