//! Scheduled checks: every few minutes, each model a feature uses is asked GitLab's probe
//! ("Just say hello.", 16 tokens), and the outcome joins its history (`model_tests`) and
//! becomes its last test, so a model that starts failing shows within one interval without
//! anyone pressing "Test"; the AI Gateway's reachability is checked in the same round. The
//! interval is a console setting (the Configuration page, audited), kept in `check_schedule`,
//! whose one owner this module is. With several replicas on one database, exactly one runs each
//! round: a round is claimed by moving `check_schedule.next_due` forward in one UPDATE, so a
//! replica that dies mid-round leaves nothing locked. The same round prunes history past its
//! period.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Who the history says ran a scheduled test.
pub const SCHEDULED_BY: &str = "scheduled checks";
/// How many models a round tests at once.
pub const FAN_OUT: usize = 8;
/// The longest interval: a rarer check would no longer say whether a feature is served now.
pub const MAX_INTERVAL_MINUTES: i32 = 1440;
pub const INTERVAL_INVALID: &str = "Enter a whole number of minutes from 0 (off) to 1440 (a day).";

/// The schedule as the Configuration page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Minutes between rounds; 0 means off.
    pub interval_minutes: i32,
    pub last_round_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the next round is due (now, if it is overdue); `None` while off.
    pub next_due: Option<chrono::DateTime<chrono::Utc>>,
}

impl Schedule {
    /// The schedule in words: "Every 5 minutes", or "Off".
    pub fn describe(interval_minutes: i32) -> String {
        match interval_minutes {
            0 => "Off".to_owned(),
            1 => "Every minute".to_owned(),
            minutes => format!("Every {minutes} minutes"),
        }
    }
}

/// "Check every N minutes": a whole number from 0 (off) to a day.
pub fn parse_interval(value: &str) -> Result<i32, &'static str> {
    value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|minutes| (0..=MAX_INTERVAL_MINUTES).contains(minutes))
        .ok_or(INTERVAL_INVALID)
}

#[server(endpoint = "check_schedule", input = GetUrl)]
pub async fn load_schedule() -> Result<Schedule, AppError> {
    async {
        crate::auth::ssr::current_user().await?;
        ssr::schedule(&expect_context::<sqlx::PgPool>()).await
    }
    .await
    .map_err(AppError::respond)
}

/// Sets the interval of the scheduled checks (admins only, audited); answers with the new
/// schedule in words.
#[server(endpoint = "update_check_schedule")]
pub async fn save_schedule(interval_minutes: String) -> Result<String, AppError> {
    let saved = ssr::save_schedule(interval_minutes).await;
    use crate::flash::{Flash, SCHEDULE, SCHEDULE_INTERVAL};
    // A refused interval comes back at its field; anything else under the form.
    let flash = match &saved {
        Ok(message) => Flash::notice(message).about(SCHEDULE),
        Err(error @ AppError::Validation(_)) => Flash::refusal(error, "").about(SCHEDULE_INTERVAL),
        Err(error) => Flash::refusal(error, crate::error::INTERNAL_MESSAGE).about(SCHEDULE),
    };
    crate::flash::ssr::keep(flash).await;
    saved.map_err(AppError::respond)
}

#[cfg(feature = "ssr")]
pub use ssr::{Checks, Round};

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::StreamExt;
    use sqlx::PgPool;

    use super::*;
    use crate::audit::ssr::{Actor, NewAuditEvent, record};
    use crate::auth::ssr::require_admin;
    use crate::chat::api::ssr::{probe, record_last_test};
    use crate::chat::client::ModelClients;
    use crate::configuration::api::ssr::{check_gateway, exchange_limit};
    use crate::models::secrets::MasterKeys;
    use crate::models::store::{self, TestKind};

    /// How often each replica asks whether a round is due: one cheap UPDATE that matches
    /// nothing until it is. Short beside the shortest interval (a minute), so a round starts
    /// at most this late.
    pub const TICK: Duration = Duration::from_secs(15);

    pub async fn schedule(db: impl sqlx::PgExecutor<'_>) -> Result<Schedule, AppError> {
        let row = sqlx::query!(
            r#"SELECT interval_minutes, last_round_at AS "last_round_at: chrono::DateTime<chrono::Utc>",
                      greatest(next_due, now()) AS "next_due!: chrono::DateTime<chrono::Utc>"
               FROM check_schedule"#
        )
        .fetch_one(db)
        .await?;
        Ok(Schedule {
            interval_minutes: row.interval_minutes,
            last_round_at: row.last_round_at,
            next_due: (row.interval_minutes > 0).then_some(row.next_due),
        })
    }

    pub async fn save_schedule(interval_minutes: String) -> Result<String, AppError> {
        let actor = Actor::signed_in(&require_admin().await?).await;
        let minutes = parse_interval(&interval_minutes)
            .map_err(|message| AppError::field("interval_minutes", message))?;
        let pool = expect_context::<PgPool>();
        let mut tx = pool.begin().await?;
        save_schedule_in(&mut tx, &actor, minutes).await?;
        tx.commit().await?;
        Ok(format!("Scheduled checks: {}", Schedule::describe(minutes).to_lowercase()))
    }

    /// Sets the interval (already parsed), audited when it changes, inside the caller's
    /// transaction (the page's one request, or a configuration import).
    pub async fn save_schedule_in(
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        minutes: i32,
    ) -> Result<(), AppError> {
        let before = sqlx::query_scalar!("SELECT interval_minutes FROM check_schedule FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
        // A shorter interval takes effect now, not after the longer one has run out.
        sqlx::query!(
            "UPDATE check_schedule SET interval_minutes = $1,
                    next_due = least(next_due, now() + make_interval(mins => $1))",
            minutes
        )
        .execute(&mut *tx)
        .await?;
        if before != minutes {
            record(
                &mut *tx,
                actor,
                NewAuditEvent {
                    action: "check_schedule_updated",
                    target_type: "CheckSchedule",
                    target_id: None,
                    target_name: Some("Scheduled checks"),
                    message: format!(
                        "Scheduled checks changed from {} to {}",
                        Schedule::describe(before).to_lowercase(),
                        Schedule::describe(minutes).to_lowercase()
                    ),
                    before: Some(serde_json::json!({ "interval_minutes": before })),
                    after: Some(serde_json::json!({ "interval_minutes": minutes })),
                },
            )
            .await?;
        }
        Ok(())
    }

    /// What a round needs, shared with the server.
    #[derive(Clone)]
    pub struct Checks {
        pub pool: PgPool,
        pub clients: Arc<ModelClients>,
        pub master_keys: Arc<MasterKeys>,
        /// How long tests are kept.
        pub history_days: i32,
    }

    /// What a round did.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Round {
        pub tested: usize,
        pub answered: usize,
        pub pruned: u64,
    }

    impl Checks {
        /// Runs a round if one is due (and the checks are on) and no other replica has claimed
        /// it; `None` otherwise.
        pub async fn run_if_due(&self, replica: &str) -> Result<Option<Round>, AppError> {
            let claimed = sqlx::query_scalar!(
                r#"UPDATE check_schedule
                   SET next_due = now() + make_interval(mins => interval_minutes),
                       last_round_at = now(), last_round_by = $1
                   WHERE next_due <= now() AND interval_minutes > 0 RETURNING true AS "claimed!""#,
                replica
            )
            .fetch_optional(&self.pool)
            .await?;
            if claimed.is_none() {
                return Ok(None);
            }
            let models = store::in_use(&self.pool).await?;
            let limit = exchange_limit(&self.pool).await?;
            let probes = futures::stream::iter(models.iter().copied())
                .map(|id| self.check(id, limit))
                .buffer_unordered(FAN_OUT)
                .collect::<Vec<bool>>();
            let (outcomes, gateway) = tokio::join!(probes, check_gateway(&self.pool));
            if let Err(error) = gateway {
                tracing::warn!(%error, "the AI Gateway's reachability could not be checked");
            }
            let pruned = store::prune_tests(&self.pool, self.history_days).await?;
            Ok(Some(Round {
                tested: outcomes.len(),
                answered: outcomes.iter().filter(|ok| **ok).count(),
                pruned,
            }))
        }

        /// Asks one model for the probe and records the outcome; whether it answered.
        async fn check(&self, id: i64, limit: Duration) -> bool {
            let outcome = match store::callable(&self.pool, id).await {
                Ok(model) => probe(&self.clients, &self.master_keys, model, None, limit).await,
                Err(error) => {
                    tracing::warn!(model = id, %error, "a model in use could not be read for its check");
                    return false;
                }
            };
            record_last_test(&self.pool, id, &outcome, "Answered", SCHEDULED_BY, TestKind::Scheduled).await;
            outcome.is_ok()
        }

        /// Runs rounds as they fall due, until the process ends. Every replica runs this loop;
        /// the claim lets one of them do each round.
        pub async fn run_forever(self, replica: String) {
            let mut ticks = tokio::time::interval(TICK);
            loop {
                ticks.tick().await;
                match self.run_if_due(&replica).await {
                    Ok(Some(round)) => tracing::info!(
                        tested = round.tested,
                        answered = round.answered,
                        pruned = round.pruned,
                        "scheduled checks round"
                    ),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "a scheduled checks round failed"),
                }
            }
        }
    }
}
