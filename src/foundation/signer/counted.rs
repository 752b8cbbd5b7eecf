//! [`Counted`]: counts the signatures any signer makes, to watch what a managed key costs.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::error::Result;
use crate::key::{Algorithm, PublicKey, Signature};
use crate::signer::{KeyId, RemoteSigner};

/// Wraps a signer and counts its sign operations and their failures.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> remote_signer::Result<()> {
/// use remote_signer::backend::local::LocalSigner;
/// use remote_signer::{Counted, KeyType, RemoteSigner};
///
/// let signer = Counted::new(LocalSigner::generate(KeyType::Ed25519)?);
/// signer.sign(signer.default_algorithm(), b"m").await?;
/// assert_eq!(signer.signatures(), 1);
/// # Ok(()) }
/// ```
pub struct Counted<S> {
    inner: S,
    counts: Arc<Counts>,
}

// Each outcome has its own counter, so a reader never computes one from two loads that a
// concurrent sign can separate (`attempts - failures` could underflow).
#[derive(Default)]
struct Counts {
    attempts: AtomicU64,
    signatures: AtomicU64,
    failures: AtomicU64,
}

impl<S: RemoteSigner> Counted<S> {
    /// Counts from zero.
    pub fn new(inner: S) -> Self {
        Counted {
            inner,
            counts: Arc::default(),
        }
    }

    /// Sign operations that returned a signature.
    pub fn signatures(&self) -> u64 {
        self.counts.signatures.load(Ordering::Relaxed)
    }

    /// Sign operations attempted, including any still in flight.
    pub fn attempts(&self) -> u64 {
        self.counts.attempts.load(Ordering::Relaxed)
    }

    /// Sign operations that failed.
    pub fn failures(&self) -> u64 {
        self.counts.failures.load(Ordering::Relaxed)
    }

    /// The wrapped signer.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: RemoteSigner> fmt::Debug for Counted<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counted")
            .field("inner", &self.inner)
            .field("attempts", &self.attempts())
            .field("failures", &self.failures())
            .finish()
    }
}

#[async_trait]
impl<S: RemoteSigner> RemoteSigner for Counted<S> {
    fn key_id(&self) -> &KeyId {
        self.inner.key_id()
    }

    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }

    async fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature> {
        self.counts.attempts.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.sign(algorithm, message).await;
        let outcome = match result {
            Ok(_) => &self.counts.signatures,
            Err(_) => &self.counts.failures,
        };
        outcome.fetch_add(1, Ordering::Relaxed);
        result
    }
}
