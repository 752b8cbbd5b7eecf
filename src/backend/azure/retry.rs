//! Bounded retries around one remote operation: per-attempt timeout, exponential backoff,
//! `Retry-After`, and a bound on the total time, waited and measured on a [`RetryTimer`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::error::{Failure, Operation, classify};
use super::stats::OperationStats;
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};

/// How remote operations are retried and bounded in time.
///
/// A failed attempt is retried when it was throttled (429), the service failed (408, 5xx), the
/// connection failed, or the attempt exceeded [`attempt_timeout`](Self::attempt_timeout). The
/// wait before retry `n` (1-based) is `initial_backoff * 2^(n-1)`, capped at `max_backoff`, or
/// the service's `Retry-After` when that is longer. No attempt starts, and no wait is begun,
/// that would end after [`max_elapsed`](Self::max_elapsed): a `Retry-After` beyond the budget
/// ends the operation at once with [`ErrorKind::Throttled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    attempt_timeout: Duration,
    max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries, backoff from 500 ms up to 8 s, 20 s per attempt, 60 s in total.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            attempt_timeout: Duration::from_secs(20),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all; each operation is one attempt bounded by `attempt_timeout`.
    pub fn no_retries(attempt_timeout: Duration) -> Self {
        RetryPolicy {
            max_retries: 0,
            attempt_timeout,
            max_elapsed: attempt_timeout,
            ..Self::default()
        }
    }

    /// How many times a failed attempt may be retried (default 4).
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The first wait between attempts; later waits double (default 500 ms).
    #[must_use]
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest computed wait between attempts (default 8 s). A longer `Retry-After` from the
    /// service is honoured while it fits in [`max_elapsed`](Self::max_elapsed).
    #[must_use]
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The longest one attempt (connect, request, response) may take (default 20 s).
    #[must_use]
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The longest a whole operation, retries and waits included, may take (default 60 s).
    #[must_use]
    pub fn max_elapsed(mut self, total: Duration) -> Self {
        self.max_elapsed = total;
        self
    }

    pub(super) fn connect_timeout(&self) -> Duration {
        self.attempt_timeout
    }

    fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// The time in which retries wait and their [`max_elapsed`](RetryPolicy::max_elapsed) bound is
/// measured.
///
/// The default, [`TokioTimer`], is real time. Tests and simulations can give a signer a timer
/// whose waits cost no real time (each wait moves the timer's clock forward instead), so a
/// policy's backoff, `Retry-After` waits and time bound are exercised in full without being
/// spent. Per-attempt timeouts ([`attempt_timeout`](RetryPolicy::attempt_timeout)) are network
/// timeouts and always run in Tokio's time: an answer that does not come is waited for.
#[async_trait]
pub trait RetryTimer: fmt::Debug + Send + Sync {
    /// The current time on this timer; only differences between its readings matter.
    fn now(&self) -> Instant;

    /// Waits `duration` on this timer.
    async fn sleep(&self, duration: Duration);
}

/// Real time through Tokio: `tokio::time::sleep` and `tokio::time::Instant`, so a paused Tokio
/// clock pauses it too.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

#[async_trait]
impl RetryTimer for TokioTimer {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Runs operations under a [`RetryPolicy`] and counts them.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    policy: RetryPolicy,
    stats: Arc<OperationStats>,
    timer: Arc<dyn RetryTimer>,
    clock: Arc<dyn Clock>,
}

impl Caller {
    pub(super) fn new(
        policy: RetryPolicy,
        stats: Arc<OperationStats>,
        timer: Arc<dyn RetryTimer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Caller {
            policy,
            stats,
            timer,
            clock,
        }
    }

    pub(super) fn stats(&self) -> &Arc<OperationStats> {
        &self.stats
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy's bounds are reached.
    /// `what` names the key in error texts.
    pub(super) async fn call<T, F, Fut>(
        &self,
        op: Operation,
        what: &str,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        let start = self.timer.now();
        let elapsed = || self.timer.now().saturating_duration_since(start);
        let mut retries = 0u32;
        loop {
            let remaining = self.policy.max_elapsed.saturating_sub(elapsed());
            let timeout = self.policy.attempt_timeout.min(remaining);
            self.stats.attempt(op);
            let failure = match tokio::time::timeout(timeout, attempt()).await {
                Ok(Ok(value)) => {
                    self.stats.succeeded(op);
                    return Ok(value);
                }
                Ok(Err(error)) => classify(self.clock.now(), op, &error),
                Err(_) => Failure::timeout(timeout),
            };
            if failure.kind == ErrorKind::Throttled {
                self.stats.throttled(op);
            }
            let give_up = |why: Option<&str>| {
                self.stats.failed(op, failure.kind);
                let mut text = format!("{what}: {op}: {}", failure.detail);
                if retries > 0 {
                    text.push_str(&format!(
                        " (after {} attempts in {:.1} s)",
                        retries + 1,
                        elapsed().as_secs_f64()
                    ));
                }
                if let Some(why) = why {
                    text.push_str("; ");
                    text.push_str(why);
                }
                let error = Error::with_context(failure.kind, text);
                match failure.source {
                    Some(source) => error.with_source(source),
                    None => error,
                }
            };
            if !failure.retryable || retries >= self.policy.max_retries {
                return Err(give_up(None));
            }
            let backoff = self.policy.backoff(retries + 1);
            let wait = failure
                .retry_after
                .map_or(backoff, |after| after.max(backoff));
            if elapsed() + wait >= self.policy.max_elapsed {
                let why = match failure.retry_after {
                    Some(after) if after > backoff => {
                        format!(
                            "the service asked to wait {:.1} s, beyond the time allowed",
                            after.as_secs_f64()
                        )
                    }
                    _ => "no time left to retry".to_string(),
                };
                return Err(give_up(Some(&why)));
            }
            retries += 1;
            self.stats.retried(op);
            self.timer.sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A timer on which only waiting moves time: it records each wait and returns at once.
    #[derive(Debug)]
    struct Recording {
        start: Instant,
        waits: Mutex<Vec<Duration>>,
    }

    impl Recording {
        fn waits(&self) -> Vec<Duration> {
            self.waits.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl RetryTimer for Recording {
        fn now(&self) -> Instant {
            self.start + self.waits().iter().sum::<Duration>()
        }

        async fn sleep(&self, duration: Duration) {
            self.waits.lock().unwrap().push(duration);
        }
    }

    #[tokio::test]
    async fn backoff_waits_and_the_time_bound_run_on_the_injected_timer() {
        let timer = Arc::new(Recording {
            start: Instant::now(),
            waits: Mutex::new(Vec::new()),
        });
        let policy = RetryPolicy::default()
            .max_retries(10)
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(400))
            .max_elapsed(Duration::from_secs(1));
        let caller = Caller::new(
            policy,
            Arc::default(),
            timer.clone(),
            Arc::new(crate::clock::SystemClock),
        );
        let mut attempts = 0;
        let error = caller
            .call(Operation::Sign, "k", || {
                attempts += 1;
                async {
                    Err::<(), _>(azure_core::Error::with_message(
                        azure_core::error::ErrorKind::Connection,
                        "connection refused",
                    ))
                }
            })
            .await
            .unwrap_err();
        // 100 + 200 + 400 ms waited; a fourth wait (400 ms) would end past the 1 s bound.
        let ms = Duration::from_millis;
        assert_eq!(timer.waits(), [ms(100), ms(200), ms(400)]);
        assert_eq!(attempts, 4);
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        let text = error.to_string();
        assert!(text.contains("after 4 attempts in 0.7 s"), "{text}");
        assert!(text.contains("no time left to retry"), "{text}");
        assert_eq!(caller.stats().snapshot().sign.retries, 3);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(350));
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(350));
        assert_eq!(p.backoff(40), Duration::from_millis(350));
    }
}
