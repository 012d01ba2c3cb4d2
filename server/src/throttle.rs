//! Sign-in throttling: repeated failures for one login, or from one client, are first slowed
//! down, then refused for a while.
//!
//! Each attempt counts as a failure the moment it starts and is forgiven only when it succeeds,
//! so a burst of parallel guesses cannot slip past the limit before the first one fails. The
//! counters key on the login as typed (lower-cased), whether or not such a user exists: a
//! locked-out unknown login answers exactly like a locked-out real one, so nothing tells them
//! apart. A client is its IPv4 address, or its IPv6 /64 (one subscriber holds a whole /64, so
//! counting single IPv6 addresses would give one attacker 2^64 fresh clients).
//!
//! The counts live in PostgreSQL (`sign_in_attempts`), so every replica sees the same ones and a
//! restart forgets none. Each attempt takes a transaction-scoped advisory lock per key, which is
//! what makes "count, then add" atomic across replicas. Rows older than the window are deleted as
//! attempts come in, so the table holds one window of attempts at most.
//!
//! A browser that has signed in as the user before (a known device, see `devices.rs`) counts
//! against its own key instead of the login's and the client's: an attacker who keeps a login
//! or an address locked does not lock its owner out, and a stolen device cookie still gets only
//! `max_failures_per_login` guesses per window.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// How many failures are tolerated, for how long they count, and how much each one beyond
/// `slow_after` delays the next attempt.
#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    /// Failures for one login (or one known device) within `window` before it is refused.
    pub max_failures_per_login: usize,
    /// Failures from one client within `window` before that client is refused.
    pub max_failures_per_client: usize,
    /// How long a failure counts; also how long a refusal lasts at most.
    pub window: Duration,
    /// Failures after which each further attempt waits `delay_step` more before it is checked.
    pub slow_after: usize,
    pub delay_step: Duration,
}

impl ThrottlePolicy {
    /// The longest an attempt is held back, however many failures came before.
    const MAX_DELAY: Duration = Duration::from_secs(5);

    pub fn new(max_failures_per_login: usize, max_failures_per_client: usize, window: Duration) -> Self {
        ThrottlePolicy {
            max_failures_per_login,
            max_failures_per_client,
            window,
            slow_after: 2,
            delay_step: Duration::from_secs(1),
        }
    }
}

/// The key a client counts under: its IPv4 address, or its IPv6 /64. An IPv4 address written
/// as IPv6 (`::ffff:192.0.2.1`) counts as the IPv4 address. Anything else counts as written.
pub fn client_key(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
        Err(_) => address.to_owned(),
    }
}

/// A sign-in attempt under way, counted as a failure until `SignInThrottle::succeeded`.
#[derive(Debug)]
pub struct Attempt {
    /// The key a success forgives wholly: the login's, or the known device's.
    forgiven: String,
    /// This attempt's own rows.
    rows: Vec<i64>,
    /// How long to wait before checking the password.
    pub delay: Duration,
}

/// Refused: too many recent failures. `retry_after` is when the oldest one stops counting;
/// `by_client` says the whole client is refused, not just this login.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Locked {
    pub retry_after: Duration,
    pub by_client: bool,
}

#[derive(Debug)]
pub struct SignInThrottle {
    policy: ThrottlePolicy,
    pool: PgPool,
    /// When this process last deleted expired attempts: at most once a second, not per attempt.
    last_pruned: Mutex<Option<Instant>>,
}

impl SignInThrottle {
    pub fn new(policy: ThrottlePolicy, pool: PgPool) -> Self {
        SignInThrottle { policy, pool, last_pruned: Mutex::new(None) }
    }

    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    /// Starts an attempt for `login` from `client` (an address), or refuses it. With
    /// `known_device` (the device's key, when it signed in as this login's user before), the
    /// attempt counts against that device only.
    pub async fn begin(
        &self,
        login: &str,
        client: Option<&str>,
        known_device: Option<&str>,
    ) -> Result<Result<Attempt, Locked>, sqlx::Error> {
        self.prune().await?;
        let window = self.policy.window.as_secs_f64();
        let (primary, client) = match known_device {
            Some(device) => (format!("device:{device}"), None),
            None => (
                format!("login:{}", login.trim().to_lowercase()),
                client.map(|address| format!("client:{}", client_key(address))),
            ),
        };
        let mut keys: Vec<String> = std::iter::once(primary.clone()).chain(client.clone()).collect();
        // One order for every attempt, so two attempts never wait on each other's locks.
        keys.sort();

        let mut tx = self.pool.begin().await?;
        for key in &keys {
            sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)
                .execute(&mut *tx)
                .await?;
        }
        let counts = sqlx::query!(
            r#"SELECT key, count(*) AS "failures!",
                      extract(epoch FROM min(started_at) + make_interval(secs => $2) - now())::float8
                          AS "retry_after_seconds!"
               FROM sign_in_attempts
               WHERE key = ANY($1) AND started_at > now() - make_interval(secs => $2)
               GROUP BY key"#,
            &keys,
            window
        )
        .fetch_all(&mut *tx)
        .await?;
        let count_of = |key: &str| {
            counts
                .iter()
                .find(|row| row.key == key)
                .map(|row| (row.failures as usize, row.retry_after_seconds))
                .unwrap_or((0, 0.0))
        };
        let (primary_failures, primary_retry) = count_of(&primary);
        let (client_failures, client_retry) = client.as_deref().map(count_of).unwrap_or((0, 0.0));

        let login_locked = primary_failures >= self.policy.max_failures_per_login;
        let client_locked = client_failures >= self.policy.max_failures_per_client;
        if login_locked || client_locked {
            let retry = [(login_locked, primary_retry), (client_locked, client_retry)]
                .into_iter()
                .filter(|(locked, _)| *locked)
                .map(|(_, seconds)| seconds)
                .fold(0.0_f64, f64::max);
            let retry_after = Duration::try_from_secs_f64(retry.max(0.0)).unwrap_or(self.policy.window);
            return Ok(Err(Locked { retry_after, by_client: client_locked }));
        }

        let rows = sqlx::query_scalar!(
            "INSERT INTO sign_in_attempts (key) SELECT unnest($1::text[]) RETURNING id",
            &keys
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let beyond = primary_failures.max(client_failures).saturating_sub(self.policy.slow_after);
        let delay = self.policy.delay_step.saturating_mul(beyond as u32).min(ThrottlePolicy::MAX_DELAY);
        Ok(Ok(Attempt { forgiven: primary, rows, delay }))
    }

    /// The attempt succeeded: the login's (or device's) failures are forgiven, and this attempt
    /// no longer counts against the client. The client's other failures still count, so one
    /// valid account cannot be used to reset the counter between guesses at others.
    pub async fn succeeded(&self, attempt: Attempt) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "DELETE FROM sign_in_attempts WHERE key = $1 OR id = ANY($2)",
            attempt.forgiven,
            &attempt.rows
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The attempt never reached the password check (the server was too busy): it does not
    /// count, for or against anyone.
    pub async fn withdraw(&self, attempt: Attempt) -> Result<(), sqlx::Error> {
        sqlx::query!("DELETE FROM sign_in_attempts WHERE id = ANY($1)", &attempt.rows)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes attempts older than the window, so the table holds one window at most.
    async fn prune(&self) -> Result<(), sqlx::Error> {
        {
            let mut last = self.last_pruned.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        self.forget_expired().await
    }

    /// Deletes every attempt older than the window.
    pub async fn forget_expired(&self) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "DELETE FROM sign_in_attempts WHERE started_at <= now() - make_interval(secs => $1)",
            self.policy.window.as_secs_f64()
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_per_64_and_ipv4_per_address() {
        assert_eq!(client_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
        assert_eq!(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:2:ffff::9"));
        assert_ne!(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:3::1"));
        assert_eq!(client_key("192.0.2.7"), "192.0.2.7");
        assert_ne!(client_key("192.0.2.7"), client_key("192.0.2.8"));
        assert_eq!(client_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(client_key("unknown"), "unknown");
    }

    fn throttle(pool: PgPool, per_login: usize, per_client: usize, window: Duration) -> SignInThrottle {
        SignInThrottle::new(
            ThrottlePolicy {
                delay_step: Duration::from_millis(100),
                ..ThrottlePolicy::new(per_login, per_client, window)
            },
            pool,
        )
    }

    async fn begin(throttle: &SignInThrottle, login: &str, client: &str) -> Result<Attempt, Locked> {
        throttle.begin(login, Some(client), None).await.expect("the database answers")
    }

    #[sqlx::test(migrator = "crate::database::MIGRATOR")]
    async fn failures_for_one_login_slow_it_down_then_lock_it_whatever_the_letter_case(pool: PgPool) {
        let throttle = throttle(pool, 4, 100, Duration::from_secs(600));
        let mut delays = Vec::new();
        for login in ["ada", "Ada", "ADA ", "ada"] {
            delays.push(begin(&throttle, login, "10.0.0.1").await.expect("not locked yet").delay);
        }

        assert_eq!(delays, [Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::from_millis(100)]);
        let locked = begin(&throttle, "ada", "10.0.0.2").await.expect_err("the fifth attempt is refused");
        assert!(locked.retry_after > Duration::from_secs(590), "{locked:?}");
        assert!(!locked.by_client);
        assert!(begin(&throttle, "grace", "10.0.0.1").await.is_ok(), "another login is not affected");
    }

    #[sqlx::test(migrator = "crate::database::MIGRATOR")]
    async fn failures_from_one_client_lock_that_client_for_every_login(pool: PgPool) {
        let throttle = throttle(pool, 100, 3, Duration::from_secs(600));
        for login in ["a", "b", "c"] {
            begin(&throttle, login, "10.0.0.1").await.expect("not locked yet");
        }

        assert!(begin(&throttle, "d", "10.0.0.1").await.expect_err("locked").by_client);
        assert!(begin(&throttle, "d", "10.0.0.2").await.is_ok(), "another client is not affected");
    }

    #[sqlx::test(migrator = "crate::database::MIGRATOR")]
    async fn a_success_forgives_the_login_but_not_the_clients_other_failures(pool: PgPool) {
        let throttle = throttle(pool, 2, 3, Duration::from_secs(600));
        begin(&throttle, "ada", "10.0.0.1").await.expect("first");
        let attempt = begin(&throttle, "ada", "10.0.0.1").await.expect("second");

        throttle.succeeded(attempt).await.unwrap();

        assert!(begin(&throttle, "ada", "10.0.0.1").await.is_ok(), "the login starts over");
        assert!(begin(&throttle, "bob", "10.0.0.1").await.is_ok());
        assert!(begin(&throttle, "cy", "10.0.0.1").await.is_err(), "the client's three failures still count");
    }

    #[sqlx::test(migrator = "crate::database::MIGRATOR")]
    async fn failures_stop_counting_after_the_window_and_are_deleted(pool: PgPool) {
        let throttle = throttle(pool.clone(), 1, 10, Duration::from_secs(600));
        begin(&throttle, "ada", "10.0.0.1").await.expect("first");
        assert!(begin(&throttle, "ada", "10.0.0.1").await.is_err());

        // As if the window had passed: the failures' clock is the database's.
        sqlx::query("UPDATE sign_in_attempts SET started_at = now() - interval '601 seconds'")
            .execute(&pool)
            .await
            .unwrap();

        assert!(begin(&throttle, "ada", "10.0.0.1").await.is_ok());
        throttle.forget_expired().await.unwrap();
        let old: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sign_in_attempts WHERE started_at < now() - interval '600 seconds'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(old, 0, "expired attempts are deleted, so the table stays one window long");
    }

    #[sqlx::test(migrator = "crate::database::MIGRATOR")]
    async fn a_known_device_counts_on_its_own_while_its_login_is_locked(pool: PgPool) {
        let throttle = throttle(pool, 2, 100, Duration::from_secs(600));
        for _ in 0..2 {
            begin(&throttle, "ada", "10.0.0.1").await.expect("not locked yet");
        }
        assert!(begin(&throttle, "ada", "10.0.0.2").await.is_err());

        let device = throttle.begin("ada", Some("10.0.0.2"), Some("d1")).await.unwrap();
        assert!(device.is_ok(), "the owner's known device is not locked out");
        throttle.begin("ada", Some("10.0.0.2"), Some("d1")).await.unwrap().expect("second");
        assert!(
            throttle.begin("ada", Some("10.0.0.2"), Some("d1")).await.unwrap().is_err(),
            "a device's own failures still lock it"
        );
    }
}
