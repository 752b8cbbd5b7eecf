//! The identities an agent offers: managed keys themselves, or certified surrogates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use ssh_encoding::Encode;

use super::certificate::{CertificateOptions, Minted, mint};
use super::protocol::{RSA_SHA2_256, RSA_SHA2_512};
use crate::clock::{Clock, unix_seconds};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, KeyType};
use crate::renewal::{Credential, Issuer, Rotation, RotationOptions};
use crate::signer::RemoteSigner;

/// Where this module logs: the module's public path, whatever the source layout.
const LOG_TARGET: &str = "remote_signer::ssh::identity";

/// The background renewer looks at least this often, so a changed clock is noticed...
const RENEWER_MAX_SLEEP: Duration = Duration::from_secs(30);
/// ... and at most this often, whatever the clock says.
const RENEWER_MIN_SLEEP: Duration = Duration::from_millis(50);

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
        let algorithm = match self.signer.key_type() {
            KeyType::Rsa if flags & RSA_SHA2_256 != 0 => Algorithm::RS256,
            KeyType::Rsa if flags & RSA_SHA2_512 != 0 => Algorithm::RS512,
            KeyType::Rsa => {
                return Err(Error::algorithm(
                    "SHA-1 ssh-rsa signatures are refused (ask for rsa-sha2-256 or rsa-sha2-512)",
                ));
            }
            KeyType::P256 => Algorithm::ES256,
            KeyType::P384 => Algorithm::ES384,
            KeyType::Ed25519 => Algorithm::EdDSA,
            other => return Err(Error::algorithm(format!("{other} keys have no SSH form"))),
        };
        self.signer.sign(algorithm, data).await?.to_ssh()
    }
}

/// An in-memory surrogate with a short-lived certificate from a managed CA key, kept fresh by
/// the crate's renewal engine: renewed ahead of expiry in the background, once however many
/// requests arrive, with its backoff after failures. Readers never wait for a renewal.
pub(crate) struct CertifiedSurrogate {
    rotation: Rotation<CertificateIssuer>,
    /// The CA's public key blob, so the agent can refuse to offer it as an identity too.
    pub(crate) ca_blob: Vec<u8>,
}

impl std::fmt::Debug for CertifiedSurrogate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedSurrogate")
            .field("ca", self.ca().key_id())
            .field("principals", &self.issuer().options.principals)
            .field("status", &self.rotation.status())
            .finish_non_exhaustive()
    }
}

/// Mints certificates for the renewal engine: each issue is one CA signature.
struct CertificateIssuer {
    ca: Arc<dyn RemoteSigner>,
    options: CertificateOptions,
    last_serial: AtomicU64,
    /// The newest certificate and the one before it: the older one still signs for clients
    /// that listed identities just before a renewal.
    recent: Mutex<[Option<Arc<Minted>>; 2]>,
}

impl std::fmt::Debug for CertificateIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateIssuer")
            .field("ca", self.ca.key_id())
            .field("principals", &self.options.principals)
            .finish_non_exhaustive()
    }
}

/// A minted certificate as the renewal engine sees it.
pub(crate) struct MintedCertificate {
    pub(crate) minted: Arc<Minted>,
    id: String,
}

impl Credential for MintedCertificate {
    fn id(&self) -> &str {
        &self.id
    }
    fn not_after(&self) -> SystemTime {
        self.minted.valid_before
    }
}

#[async_trait::async_trait]
impl Issuer for CertificateIssuer {
    type Credential = MintedCertificate;

    async fn issue(&self, now: SystemTime) -> Result<MintedCertificate> {
        // Serials grow strictly, and start at the Unix time so restarts do not repeat them.
        let serial = self
            .last_serial
            .load(Ordering::Relaxed)
            .max(unix_seconds(now).saturating_sub(1))
            + 1;
        match mint(&*self.ca, &self.options, now, serial).await {
            Ok(minted) => {
                let minted = Arc::new(minted);
                self.last_serial.store(serial, Ordering::Relaxed);
                let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
                recent[1] = recent[0].replace(Arc::clone(&minted));
                log::info!(
                    target: LOG_TARGET,
                    "minted certificate serial {serial} for {} from the CA with JWK thumbprint {}",
                    self.options.principals.join(","),
                    // Its thumbprint, not its key id: a key id names where the key is kept.
                    self.ca.public_key().jwk_thumbprint()
                );
                Ok(MintedCertificate {
                    minted,
                    id: format!("serial {serial}"),
                })
            }
            Err(e) => {
                log::error!(
                    target: LOG_TARGET,
                    "cannot renew the certificate from CA {}: {}",
                    self.ca.key_id(),
                    super::with_causes(&e)
                );
                Err(e)
            }
        }
    }
}

impl CertifiedSurrogate {
    pub(crate) fn new(
        ca: Arc<dyn RemoteSigner>,
        options: CertificateOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        options.check()?;
        let mut ca_blob = Vec::new();
        ca.public_key()
            .to_ssh_key_data()?
            .encode(&mut ca_blob)
            .map_err(|_| Error::with_context(ErrorKind::UnsupportedKey, "no SSH form"))?;
        // Renewed when a quarter of the validity is left; no jitter, one agent per user.
        let renewal = RotationOptions::new()
            .refresh_margin(options.renew_ahead())
            .jitter(Duration::ZERO);
        let issuer = CertificateIssuer {
            ca,
            options,
            last_serial: AtomicU64::new(0),
            recent: Mutex::new([None, None]),
        };
        Ok(CertifiedSurrogate {
            rotation: Rotation::new(issuer, clock, renewal, Box::new(rand_core::OsRng)),
            ca_blob,
        })
    }

    pub(crate) fn status(&self) -> crate::renewal::RotationStatus {
        self.rotation.status()
    }

    fn issuer(&self) -> &CertificateIssuer {
        self.rotation.issuer()
    }

    pub(crate) fn ca(&self) -> &dyn RemoteSigner {
        &*self.issuer().ca
    }

    /// The comment the certificate is listed with.
    pub(crate) fn comment(&self) -> String {
        format!(
            "certificate for {} from CA {}",
            self.issuer().options.principals.join(","),
            self.ca().key_id()
        )
    }

    /// The certificate to offer now, if one is valid. The first is minted on first use;
    /// after that this never waits: a renewal that is due (or overdue after an outage) is
    /// started in the background.
    pub(crate) async fn usable(&self) -> Option<Arc<Minted>> {
        let status = self.rotation.status();
        if status.issued == 0 && status.consecutive_failures == 0 {
            // A failure is logged by the issuer.
            return self
                .rotation
                .get()
                .await
                .ok()
                .map(|c| Arc::clone(&c.minted));
        }
        self.rotation.current().map(|c| Arc::clone(&c.minted))
    }

    /// The certificate (current or previous, if still valid) whose blob or key is `blob`.
    pub(crate) fn find(&self, blob: &[u8]) -> Option<Arc<Minted>> {
        let now = self.rotation.clock().now();
        let recent = self
            .issuer()
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recent
            .iter()
            .flatten()
            .find(|m| m.valid_at(now) && m.matches(blob))
            .cloned()
    }

    /// Mints a certificate now unless the current one is valid and not yet due, waiting for a
    /// renewal in progress first.
    ///
    /// # Errors
    /// The CA's signing errors.
    pub(crate) async fn renew(&self) -> Result<Arc<Minted>> {
        self.rotation.refresh().await.map(|c| Arc::clone(&c.minted))
    }

    /// Renews in the background when due, as long as the agent serves.
    pub(crate) async fn renew_ahead(&self) {
        loop {
            // Starts a renewal when one is due and the backoff allows; then waits for it.
            self.rotation.current();
            self.rotation.settled().await;
            let now = self.rotation.clock().now();
            let wait = self
                .rotation
                .status()
                .next_rotation
                .and_then(|next| next.duration_since(now).ok())
                .unwrap_or(Duration::ZERO);
            tokio::time::sleep(wait.clamp(RENEWER_MIN_SLEEP, RENEWER_MAX_SLEEP)).await;
        }
    }
}
