//! The identities an agent offers: managed keys themselves, or certified surrogates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use ssh_encoding::Encode;

use super::certificate::{mint, CertificateOptions, Minted};
use super::protocol::{RSA_SHA2_256, RSA_SHA2_512};
use super::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, KeyType};
use crate::signer::RemoteSigner;

/// How long after a failed renewal the next one may be tried.
const RENEWAL_RETRY: Duration = Duration::from_secs(5);

/// A managed key offered as itself: every signature is a managed-key call.
pub(crate) struct ManagedKey {
    signer: Arc<dyn RemoteSigner>,
    pub(crate) blob: Vec<u8>,
    pub(crate) comment: String,
}

impl std::fmt::Debug for ManagedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedKey")
            .field("key_id", self.signer.key_id())
            .field("comment", &self.comment)
            .finish_non_exhaustive()
    }
}

impl ManagedKey {
    pub(crate) fn new(signer: Arc<dyn RemoteSigner>, comment: Option<String>) -> Result<Self> {
        let mut blob = Vec::new();
        signer
            .public_key()
            .to_ssh_key_data()?
            .encode(&mut blob)
            .map_err(|_| Error::with_context(ErrorKind::UnsupportedKey, "no SSH form"))?;
        let comment = comment.unwrap_or_else(|| signer.key_id().to_string());
        Ok(ManagedKey {
            signer,
            blob,
            comment,
        })
    }

    pub(crate) fn signer(&self) -> &dyn RemoteSigner {
        &*self.signer
    }

    /// Signs `data` as the request's `flags` ask: RSA keys honour the SHA-2 flags exactly and
    /// refuse SHA-1 `ssh-rsa`; other keys ignore the flags, as OpenSSH's agent does.
    pub(crate) async fn sign(&self, data: &[u8], flags: u32) -> Result<ssh_key::Signature> {
        let algorithm =
            match self.signer.key_type() {
                KeyType::Rsa if flags & RSA_SHA2_256 != 0 => Algorithm::RS256,
                KeyType::Rsa if flags & RSA_SHA2_512 != 0 => Algorithm::RS512,
                KeyType::Rsa => return Err(Error::algorithm(
                    "SHA-1 ssh-rsa signatures are refused (ask for rsa-sha2-256 or rsa-sha2-512)",
                )),
                KeyType::P256 => Algorithm::ES256,
                KeyType::P384 => Algorithm::ES384,
                KeyType::Ed25519 => Algorithm::EdDSA,
                other => return Err(Error::algorithm(format!("{other} keys have no SSH form"))),
            };
        self.signer.sign(algorithm, data).await?.to_ssh()
    }
}

/// An in-memory surrogate with a short-lived certificate from a managed CA key, renewed ahead
/// of expiry once however many requests arrive at that moment.
pub(crate) struct CertifiedSurrogate {
    ca: Arc<dyn RemoteSigner>,
    /// The CA's public key blob, so the agent can refuse to offer it as an identity too.
    pub(crate) ca_blob: Vec<u8>,
    options: CertificateOptions,
    clock: Clock,
    /// The newest certificate, and the one before it (still honoured for sign requests from
    /// clients that listed identities just before a renewal).
    current: RwLock<Certificates>,
    renewing: tokio::sync::Mutex<()>,
    /// No renewal is tried before this time after one failed.
    retry_after: RwLock<Option<SystemTime>>,
    last_serial: AtomicU64,
}

#[derive(Default)]
struct Certificates {
    newest: Option<Arc<Minted>>,
    previous: Option<Arc<Minted>>,
}

impl Certificates {
    fn find(&self, blob: &[u8], now: SystemTime) -> Option<Arc<Minted>> {
        [&self.newest, &self.previous]
            .into_iter()
            .flatten()
            .find(|m| m.valid_at(now) && m.matches(blob))
            .cloned()
    }
}

impl std::fmt::Debug for CertifiedSurrogate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedSurrogate")
            .field("ca", self.ca.key_id())
            .field("principals", &self.options.principals)
            .finish_non_exhaustive()
    }
}

impl CertifiedSurrogate {
    pub(crate) fn new(
        ca: Arc<dyn RemoteSigner>,
        options: CertificateOptions,
        clock: Clock,
    ) -> Result<Self> {
        options.check()?;
        let mut ca_blob = Vec::new();
        ca.public_key()
            .to_ssh_key_data()?
            .encode(&mut ca_blob)
            .map_err(|_| Error::with_context(ErrorKind::UnsupportedKey, "no SSH form"))?;
        Ok(CertifiedSurrogate {
            ca,
            ca_blob,
            options,
            clock,
            current: RwLock::new(Certificates::default()),
            renewing: tokio::sync::Mutex::new(()),
            retry_after: RwLock::new(None),
            last_serial: AtomicU64::new(0),
        })
    }

    pub(crate) fn ca(&self) -> &dyn RemoteSigner {
        &*self.ca
    }

    /// The comment the certificate is listed with.
    pub(crate) fn comment(&self) -> String {
        format!(
            "certificate for {} from CA {}",
            self.options.principals.join(","),
            self.ca.key_id()
        )
    }

    fn newest(&self) -> Option<Arc<Minted>> {
        self.current.read().ok().and_then(|c| c.newest.clone())
    }

    fn renew_at(&self, minted: &Minted) -> SystemTime {
        minted.valid_before - self.options.renew_ahead()
    }

    fn needs_renewal(&self, minted: Option<&Minted>, now: SystemTime) -> bool {
        minted.is_none_or(|m| now >= self.renew_at(m))
    }

    fn may_retry(&self, now: SystemTime) -> bool {
        self.retry_after
            .read()
            .ok()
            .and_then(|r| *r)
            .is_none_or(|t| now >= t)
    }

    /// When the background renewer should next look (real time from now).
    pub(crate) fn next_check_in(&self) -> Duration {
        let now = (self.clock)();
        let due = match self.newest() {
            Some(m) => self.renew_at(&m),
            None => now,
        };
        due.duration_since(now).unwrap_or(Duration::ZERO)
    }

    /// The certificate to offer now, minting or renewing as needed. `None` when there is no
    /// valid certificate and one cannot be minted now (the cause is logged).
    pub(crate) async fn usable(self: &Arc<Self>) -> Option<Arc<Minted>> {
        let now = (self.clock)();
        if let Some(minted) = self.newest().filter(|m| m.valid_at(now)) {
            if self.needs_renewal(Some(&minted), now) && self.may_retry(now) {
                // Outside a Tokio runtime the serving loop's renewer (or expiry) renews instead;
                // while a renewal is in flight there is nothing to start.
                let idle = self.renewing.try_lock().is_ok();
                if let (true, Ok(runtime)) = (idle, tokio::runtime::Handle::try_current()) {
                    let this = Arc::clone(self);
                    runtime.spawn(async move { this.renew_logged().await });
                }
            }
            return Some(minted);
        }
        if !self.may_retry(now) {
            return None;
        }
        self.renew_logged().await
    }

    /// The certificate (current or previous, if still valid) whose blob or key is `blob`.
    pub(crate) fn find(&self, blob: &[u8]) -> Option<Arc<Minted>> {
        let now = (self.clock)();
        self.current.read().ok()?.find(blob, now)
    }

    /// Renews unless someone else just did; logs a failure with its cause.
    pub(crate) async fn renew_logged(&self) -> Option<Arc<Minted>> {
        match self.renew().await {
            Ok(minted) => Some(minted),
            Err(e) => {
                log::error!(
                    "cannot renew the certificate from CA {}: {}",
                    self.ca.key_id(),
                    super::with_causes(&e)
                );
                None
            }
        }
    }

    /// Mints a certificate now, unless another task renewed while this one waited.
    ///
    /// # Errors
    /// The CA's signing errors.
    pub(crate) async fn renew(&self) -> Result<Arc<Minted>> {
        let _single_flight = self.renewing.lock().await;
        let now = (self.clock)();
        if let Some(minted) = self.newest() {
            if minted.valid_at(now) && !self.needs_renewal(Some(&minted), now) {
                return Ok(minted);
            }
        }
        let unix_now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Serials grow strictly, and start at the Unix time so restarts do not repeat them.
        let serial = self
            .last_serial
            .load(Ordering::Relaxed)
            .max(unix_now.saturating_sub(1))
            + 1;
        match mint(&*self.ca, &self.options, now, serial).await {
            Ok(minted) => {
                let minted = Arc::new(minted);
                self.last_serial.store(serial, Ordering::Relaxed);
                if let Ok(mut current) = self.current.write() {
                    current.previous = current.newest.replace(Arc::clone(&minted));
                }
                if let Ok(mut retry) = self.retry_after.write() {
                    *retry = None;
                }
                log::info!(
                    "minted certificate serial {serial} for {} from CA {}",
                    self.options.principals.join(","),
                    self.ca.key_id()
                );
                Ok(minted)
            }
            Err(e) => {
                if let Ok(mut retry) = self.retry_after.write() {
                    *retry = Some(now + RENEWAL_RETRY);
                }
                Err(e)
            }
        }
    }
}
