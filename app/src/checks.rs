//! Scheduled checks: every few minutes, each model a feature uses is asked GitLab's probe
//! ("Just say hello.", 16 tokens), and the outcome joins its history (`model_tests`) and
//! becomes its last test, so a model that starts failing shows within one interval without
//! anyone pressing "Test". With several replicas on one database, exactly one runs each round:
//! a round is claimed by moving `check_schedule.next_due` forward in one UPDATE, so a replica
//! that dies mid-round leaves nothing locked. The same round prunes history past its period.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sqlx::PgPool;

use crate::chat::api::ssr::{probe, record_last_test};
use crate::chat::client::ModelClients;
use crate::configuration::api::ssr::exchange_limit;
use crate::error::AppError;
use crate::models::secrets::MasterKeys;
use crate::models::store::{self, TestKind};

/// Who the history says ran a scheduled test.
pub const SCHEDULED_BY: &str = "scheduled checks";
/// How many models a round tests at once.
pub const FAN_OUT: usize = 8;

/// What a round needs, shared with the server.
#[derive(Clone)]
pub struct Checks {
    pub pool: PgPool,
    pub clients: Arc<ModelClients>,
    pub master_keys: Arc<MasterKeys>,
    /// Time between two rounds.
    pub interval: Duration,
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
    /// Runs a round if one is due and no other replica has claimed it; `None` otherwise.
    pub async fn run_if_due(&self, replica: &str) -> Result<Option<Round>, AppError> {
        let interval_seconds = self.interval.as_secs_f64();
        let claimed = sqlx::query_scalar!(
            r#"UPDATE check_schedule
               SET next_due = now() + make_interval(secs => $1), last_round_at = now(), last_round_by = $2
               WHERE next_due <= now() RETURNING true AS "claimed!""#,
            interval_seconds,
            replica
        )
        .fetch_optional(&self.pool)
        .await?;
        if claimed.is_none() {
            return Ok(None);
        }
        let models = store::in_use(&self.pool).await?;
        let limit = exchange_limit(&self.pool).await?;
        let outcomes: Vec<bool> = futures::stream::iter(models.iter().copied())
            .map(|id| self.check(id, limit))
            .buffer_unordered(FAN_OUT)
            .collect()
            .await;
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
            Ok(model) => probe(&self.clients, &self.master_keys, model, limit).await,
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
        let tick = self.interval.min(Duration::from_secs(60)).max(Duration::from_secs(1));
        let mut ticks = tokio::time::interval(tick);
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
