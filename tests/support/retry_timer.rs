//! A [`RetryTimer`] whose waits cost no real time, so the Azure backend's retry policies run in
//! full (every backoff, every `Retry-After`, the time bound) in a fraction of a second.
#![allow(dead_code)] // each test binary uses a different part

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use remote_signer::backend::azure::RetryTimer;

/// Real time plus every wait asked of it: `sleep` returns at once and moves this timer's clock
/// forward by the wait instead. Time spent on real work (the network, the vault) still counts,
/// so a bound checked on this timer is the bound the policy keeps in real time.
#[derive(Debug, Default)]
pub struct FastForward {
    skipped: Mutex<Duration>,
}

impl FastForward {
    /// A timer that has skipped nothing yet.
    pub fn new() -> FastForward {
        FastForward::default()
    }

    /// The total of the waits skipped so far.
    pub fn skipped(&self) -> Duration {
        *self.skipped.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl RetryTimer for FastForward {
    fn now(&self) -> Instant {
        Instant::now() + self.skipped()
    }

    async fn sleep(&self, duration: Duration) {
        *self.skipped.lock().unwrap_or_else(|e| e.into_inner()) += duration;
        // A wait is a point where other tasks run; keep it one.
        tokio::task::yield_now().await;
    }
}
