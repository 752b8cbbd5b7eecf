//! A signer that fails on demand: a wrapper over any [`RemoteSigner`] (a local key, a Key
//! Vault key, another wrapper) that counts its calls and how many run at once and, as told,
//! signs, fails as a service outage does, returns a corrupted signature, hangs until released
//! (then fails, as a stopped vault does), or stalls until released (then signs, as a slow
//! vault does).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use remote_signer::backend::local::LocalSigner;
use remote_signer::{
    Algorithm, Error, ErrorKind, KeyId, KeyType, PublicKey, RemoteSigner, Result, Signature,
};
use tokio::sync::Notify;

/// What a [`FaultySigner`] does with the next `sign` calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Passes the call to the wrapped signer.
    Working,
    /// Fails with [`ErrorKind::Unavailable`], the error text naming HTTP 503.
    Down,
    /// Returns the wrapped signer's signature with one bit flipped.
    Garbled,
    /// Waits until [`FaultySigner::release`], then fails with [`ErrorKind::Timeout`].
    Hang,
    /// Waits until [`FaultySigner::release`], then passes the call to the wrapped signer.
    Stall,
}

impl Mode {
    fn from_u8(value: u8) -> Mode {
        [
            Mode::Working,
            Mode::Down,
            Mode::Garbled,
            Mode::Hang,
            Mode::Stall,
        ][usize::from(value)]
    }
}

/// Wraps a signer; see the [module docs](self).
#[derive(Debug)]
pub struct FaultySigner {
    inner: Arc<dyn RemoteSigner>,
    mode: AtomicU8,
    calls: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    delay: Duration,
    entered: Notify,
    release: Notify,
}

impl FaultySigner {
    /// Wraps `inner`, working.
    pub fn new(inner: Arc<dyn RemoteSigner>) -> Arc<FaultySigner> {
        FaultySigner::with_delay(inner, Duration::ZERO)
    }

    /// Wraps a fresh local key of `key_type`, working.
    pub fn local(key_type: KeyType) -> Arc<FaultySigner> {
        FaultySigner::new(Arc::new(LocalSigner::generate(key_type).unwrap()))
    }

    /// Wraps `inner`, each call first waiting `delay` (a stand-in for a round trip).
    pub fn with_delay(inner: Arc<dyn RemoteSigner>, delay: Duration) -> Arc<FaultySigner> {
        Arc::new(FaultySigner {
            inner,
            mode: AtomicU8::new(Mode::Working as u8),
            calls: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            delay,
            entered: Notify::new(),
            release: Notify::new(),
        })
    }

    /// Sets what the next calls do (calls already hanging keep hanging until released).
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// The `sign` calls so far, whatever they returned.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The most `sign` calls that were running at once.
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Waits until a call has started hanging or stalling (returns at once if one did since
    /// the last wait).
    pub async fn entered(&self) {
        self.entered.notified().await;
    }

    /// Lets one hanging call fail, or one stalled call go on (the next one, if none waits yet).
    pub fn release(&self) {
        self.release.notify_one();
    }
}

#[async_trait]
impl RemoteSigner for FaultySigner {
    fn key_id(&self) -> &KeyId {
        self.inner.key_id()
    }

    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }

    async fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let running = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(running, Ordering::SeqCst);
        let result = self.sign_as_told(algorithm, message).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl FaultySigner {
    async fn sign_as_told(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match Mode::from_u8(self.mode.load(Ordering::SeqCst)) {
            Mode::Working => self.inner.sign(algorithm, message).await,
            Mode::Down => Err(Error::with_context(
                ErrorKind::Unavailable,
                "test outage (HTTP 503)",
            )),
            Mode::Garbled => {
                let mut bytes = self.inner.sign(algorithm, message).await?.into_bytes();
                bytes[3] ^= 0x40;
                Ok(Signature::new(algorithm, bytes))
            }
            Mode::Hang => {
                self.entered.notify_one();
                self.release.notified().await;
                Err(Error::with_context(
                    ErrorKind::Timeout,
                    "test vault stopped",
                ))
            }
            Mode::Stall => {
                self.entered.notify_one();
                self.release.notified().await;
                self.inner.sign(algorithm, message).await
            }
        }
    }
}
