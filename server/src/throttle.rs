//! Sign-in throttling: repeated failures for one login, or from one client address, are first
//! slowed down, then refused for a while.
//!
//! Each attempt counts as a failure the moment it starts and is forgiven only when it succeeds,
//! so a burst of parallel guesses cannot slip past the limit before the first one fails. The
//! counters key on the login as typed (lower-cased), whether or not such a user exists: a
//! locked-out unknown login answers exactly like a locked-out real one, so nothing tells them
//! apart. The counters live in memory; a restart forgets them, as it would a rate limiter's.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failures are tolerated, for how long they count, and how much each one beyond
/// `slow_after` delays the next attempt.
#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    /// Failures for one login within `window` before that login is refused.
    pub max_failures_per_login: usize,
    /// Failures from one client address within `window` before that client is refused.
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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Login(String),
    Client(String),
}

/// A sign-in attempt under way, counted as a failure until `SignInThrottle::succeeded`.
#[derive(Debug)]
pub struct Attempt {
    login: Key,
    client: Option<Key>,
    started: Instant,
    /// How long to wait before checking the password.
    pub delay: Duration,
}

/// Refused: too many recent failures. `retry_after` is when the oldest one stops counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: Duration,
}

#[derive(Debug)]
pub struct SignInThrottle {
    policy: ThrottlePolicy,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

/// Above this many tracked logins and clients, every call first forgets the expired ones, so
/// memory follows the attempts of one window, not of the process's whole life.
const PRUNE_ABOVE: usize = 1024;

impl SignInThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        SignInThrottle { policy, failures: Mutex::new(HashMap::new()) }
    }

    /// Starts an attempt for `login` from `client`, or refuses it.
    pub fn begin(&self, login: &str, client: Option<&str>) -> Result<Attempt, Locked> {
        let now = Instant::now();
        let login = Key::Login(login.trim().to_lowercase());
        let client = client.map(|address| Key::Client(address.to_owned()));
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if failures.len() > PRUNE_ABOVE {
            failures.retain(|_, times| {
                forget_expired(times, now, self.policy.window);
                !times.is_empty()
            });
        }

        let mut recent = |key: &Key| {
            failures
                .get_mut(key)
                .map(|times| {
                    forget_expired(times, now, self.policy.window);
                    (times.len(), times.front().copied())
                })
                .unwrap_or((0, None))
        };
        let (login_failures, login_oldest) = recent(&login);
        let (client_failures, client_oldest) = client.as_ref().map(&mut recent).unwrap_or((0, None));

        let locked_since = [
            (login_failures >= self.policy.max_failures_per_login).then_some(login_oldest).flatten(),
            (client_failures >= self.policy.max_failures_per_client).then_some(client_oldest).flatten(),
        ];
        if let Some(oldest) = locked_since.into_iter().flatten().max() {
            let retry_after = (oldest + self.policy.window).saturating_duration_since(now);
            return Err(Locked { retry_after });
        }

        failures.entry(login.clone()).or_default().push_back(now);
        if let Some(client) = &client {
            failures.entry(client.clone()).or_default().push_back(now);
        }
        let beyond = login_failures.max(client_failures).saturating_sub(self.policy.slow_after);
        let delay = self.policy.delay_step.saturating_mul(beyond as u32).min(ThrottlePolicy::MAX_DELAY);
        Ok(Attempt { login, client, started: now, delay })
    }

    /// The attempt succeeded: the login's failures are forgiven, and this attempt no longer
    /// counts against the client. The client's other failures still count, so one valid
    /// account cannot be used to reset the counter between guesses at others.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.remove(&attempt.login);
        if let Some(times) = attempt.client.and_then(|client| failures.get_mut(&client))
            && let Some(position) = times.iter().position(|&time| time == attempt.started)
        {
            times.remove(position);
        }
    }
}

fn forget_expired(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|&time| now.duration_since(time) >= window) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_login: usize, per_client: usize) -> SignInThrottle {
        SignInThrottle::new(ThrottlePolicy {
            delay_step: Duration::from_millis(100),
            ..ThrottlePolicy::new(per_login, per_client, Duration::from_secs(600))
        })
    }

    #[test]
    fn failures_for_one_login_slow_it_down_then_lock_it_whatever_the_letter_case() {
        let throttle = throttle(4, 100);
        let delays: Vec<_> = ["ada", "Ada", "ADA ", "ada"]
            .iter()
            .map(|login| throttle.begin(login, Some("10.0.0.1")).expect("not locked yet").delay)
            .collect();

        assert_eq!(delays, [Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::from_millis(100)]);
        let locked = throttle.begin("ada", Some("10.0.0.2")).expect_err("the fifth attempt is refused");
        assert!(locked.retry_after > Duration::from_secs(590), "{locked:?}");
        assert!(throttle.begin("grace", Some("10.0.0.1")).is_ok(), "another login is not affected");
    }

    #[test]
    fn failures_from_one_client_lock_that_client_for_every_login() {
        let throttle = throttle(100, 3);
        for login in ["a", "b", "c"] {
            throttle.begin(login, Some("10.0.0.1")).expect("not locked yet");
        }

        assert!(throttle.begin("d", Some("10.0.0.1")).is_err());
        assert!(throttle.begin("d", Some("10.0.0.2")).is_ok(), "another client is not affected");
    }

    #[test]
    fn a_success_forgives_the_login_but_not_the_clients_other_failures() {
        let throttle = throttle(2, 3);
        throttle.begin("ada", Some("10.0.0.1")).expect("first");
        let attempt = throttle.begin("ada", Some("10.0.0.1")).expect("second");

        throttle.succeeded(attempt);

        assert!(throttle.begin("ada", Some("10.0.0.1")).is_ok(), "the login starts over");
        assert!(throttle.begin("bob", Some("10.0.0.1")).is_ok());
        assert!(throttle.begin("cy", Some("10.0.0.1")).is_err(), "the client's three failures still count");
    }

    #[test]
    fn failures_stop_counting_after_the_window() {
        let throttle = SignInThrottle::new(ThrottlePolicy::new(1, 10, Duration::from_millis(50)));
        throttle.begin("ada", None).expect("first");
        assert!(throttle.begin("ada", None).is_err());

        std::thread::sleep(Duration::from_millis(60));

        assert!(throttle.begin("ada", None).is_ok());
    }
}
