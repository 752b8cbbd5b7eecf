//! Counts of remote operations and their outcomes, for watching cost and health. One set of
//! counters serves every remote backend (Key Vault, AWS KMS), so signers of both kinds can
//! share one [`OperationStats`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ErrorKind;

/// The remote operations a backend performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Operation {
    /// Reading the key (its public half and attributes): Key Vault's get key, KMS's
    /// `GetPublicKey`.
    GetKey,
    /// Signing a digest.
    Sign,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::GetKey => "get key",
            Operation::Sign => "sign",
        })
    }
}

/// Counters for one kind of remote operation.
#[derive(Debug, Default)]
struct Counters {
    attempts: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    denied: AtomicU64,
    timed_out: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> OperationCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OperationCounts {
            attempts: get(&self.attempts),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            retries: get(&self.retries),
            throttled: get(&self.throttled),
            denied: get(&self.denied),
            timed_out: get(&self.timed_out),
        }
    }
}

/// Live counters of remote operations, shareable among signers (Key Vault's
/// `KeyVaultSignerBuilder::stats`, AWS KMS's `KmsSignerBuilder::stats`).
///
/// Key Vault and KMS bill each request that reaches them; `attempts` is the number to watch
/// for cost.
#[derive(Debug, Default)]
pub struct OperationStats {
    get_key: Counters,
    sign: Counters,
}

/// The outcome counts of one kind of operation at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationCounts {
    /// Attempts sent (each retry is an attempt; Key Vault's unauthenticated challenge request
    /// that precedes the first attempt is not counted).
    pub attempts: u64,
    /// Operations that succeeded.
    pub succeeded: u64,
    /// Operations that failed for good (after their retries).
    pub failed: u64,
    /// Retries made.
    pub retries: u64,
    /// Attempts answered as throttled (Key Vault: 429; KMS: `ThrottlingException`).
    pub throttled: u64,
    /// Operations that failed with permission denied.
    pub denied: u64,
    /// Operations that failed with a timeout.
    pub timed_out: u64,
}

/// A copy of [`OperationStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Reads of the key (once per signer, at start).
    pub get_key: OperationCounts,
    /// Sign operations.
    pub sign: OperationCounts,
}

impl OperationStats {
    /// New counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            get_key: self.get_key.snapshot(),
            sign: self.sign.snapshot(),
        }
    }

    fn of(&self, op: Operation) -> &Counters {
        match op {
            Operation::GetKey => &self.get_key,
            Operation::Sign => &self.sign,
        }
    }

    pub(crate) fn attempt(&self, op: Operation) {
        self.of(op).attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn succeeded(&self, op: Operation) {
        self.of(op).succeeded.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self, op: Operation) {
        self.of(op).retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn throttled(&self, op: Operation) {
        self.of(op).throttled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, op: Operation, kind: ErrorKind) {
        let c = self.of(op);
        c.failed.fetch_add(1, Ordering::Relaxed);
        match kind {
            ErrorKind::PermissionDenied => {
                c.denied.fetch_add(1, Ordering::Relaxed);
            }
            ErrorKind::Timeout => {
                c.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}
