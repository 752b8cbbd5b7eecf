//! [`SurrogateSigner`]: signs with a certified in-memory Ed25519 key, rotated by the managed key.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ed25519_dalek::hazmat::ExpandedSecretKey;
use rand_core::{CryptoRngCore, OsRng, RngCore};

use super::certificate::{self, CertificateInfo};
use super::clock::{Clock, SystemClock, unix_seconds};
use super::rotation::{Credential, Issuer, Rotation, RotationOptions, RotationStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, PublicKey, Signature};
use crate::signer::{KeyId, RemoteSigner};

/// The default period: how long each surrogate may sign (one hour).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(3600);

/// The default bound on a token's lifetime past its surrogate's certificate (24 hours).
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A surrogate key with its certificate: an in-memory Ed25519 key that the managed key vouched
/// for, for a few purposes, for one period.
///
/// Obtained from [`SurrogateSigner::current`]; signing with it is synchronous and local. The
/// secret key is never exposed, is not `Clone`, and is zeroized when the last holder drops it.
pub struct CertifiedKey {
    /// The expanded form, so each signature skips re-deriving it (zeroized on drop).
    secret: Box<ExpandedSecretKey>,
    verifying: ed25519_dalek::VerifyingKey,
    certificate: String,
    info: CertificateInfo,
}

impl CertifiedKey {
    /// The certificate: a compact JWS signed by the managed key.
    pub fn certificate(&self) -> &str {
        &self.certificate
    }

    /// What the certificate says.
    pub fn info(&self) -> &CertificateInfo {
        &self.info
    }

    /// The surrogate's RFC 7638 thumbprint: the certificate's `sub`, and the `kid` of what it
    /// signs.
    pub fn thumbprint(&self) -> &str {
        self.info.subject()
    }

    /// The surrogate's public key.
    pub fn public_key(&self) -> &PublicKey {
        self.info.public_key()
    }

    /// The end of the signing window.
    pub fn not_after(&self) -> SystemTime {
        self.info.expires_at()
    }

    /// The latest expiry a token signed by this surrogate may carry.
    pub fn max_token_expiry(&self) -> SystemTime {
        self.info.max_token_expiry()
    }

    /// Signs `message` with Ed25519 (algorithm `EdDSA`).
    pub fn sign(&self, message: &[u8]) -> Signature {
        let signature =
            ed25519_dalek::hazmat::raw_sign::<sha2::Sha512>(&self.secret, message, &self.verifying);
        Signature::new(Algorithm::EdDSA, signature.to_bytes().to_vec())
    }
}

impl Credential for CertifiedKey {
    fn id(&self) -> &str {
        self.thumbprint()
    }

    fn not_after(&self) -> SystemTime {
        self.info.expires_at()
    }
}

impl fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("thumbprint", &self.thumbprint())
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A signature by a surrogate, with the surrogate that made it (and so its certificate).
#[derive(Debug, Clone)]
pub struct SurrogateSignature {
    signature: Signature,
    key: Arc<CertifiedKey>,
}

impl SurrogateSignature {
    /// The Ed25519 signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The certificate a verifier needs alongside the signature.
    pub fn certificate(&self) -> &str {
        self.key.certificate()
    }

    /// The surrogate that signed.
    pub fn key(&self) -> &Arc<CertifiedKey> {
        &self.key
    }
}

/// Makes certified surrogates: one managed-key signature each.
pub struct SurrogateIssuer {
    managed: Arc<dyn RemoteSigner>,
    /// The managed key's name in certificates: its thumbprint unless set explicitly.
    kid: String,
    algorithm: Algorithm,
    purposes: Vec<String>,
    period: Duration,
    max_token_lifetime: Duration,
    rng: Mutex<Box<dyn CryptoRngCore + Send>>,
}

impl fmt::Debug for SurrogateIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SurrogateIssuer")
            .field("managed", &self.managed.key_id())
            .field("algorithm", &self.algorithm)
            .field("purposes", &self.purposes)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Issuer for SurrogateIssuer {
    type Credential = CertifiedKey;

    async fn issue(&self, now: SystemTime) -> Result<CertifiedKey> {
        // Boxed before the await below: this future lives on the heap, and a key held in it
        // by value would be left there, unwiped, when it moves into the `CertifiedKey`.
        let (secret, verifying) = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            generate(&mut *rng)
        };
        let public = PublicKey::from_ed25519_bytes(verifying.as_bytes())?;
        let (certificate, info) = certificate::issue(
            &*self.managed,
            certificate::Request {
                kid: &self.kid,
                algorithm: self.algorithm,
                key: &public,
                purposes: &self.purposes,
                now: unix_seconds(now),
                lifetime: self.period.as_secs(),
                max_token_lifetime: self.max_token_lifetime.as_secs(),
            },
        )
        .await?;
        Ok(CertifiedKey {
            secret,
            verifying,
            certificate,
            info,
        })
    }
}

/// A fresh Ed25519 key in its expanded form, on the heap from the start; every transient copy
/// is wiped.
fn generate(rng: &mut dyn CryptoRngCore) -> (Box<ExpandedSecretKey>, ed25519_dalek::VerifyingKey) {
    let key = ed25519_dalek::SigningKey::generate(rng);
    let seed = zeroize::Zeroizing::new(key.to_bytes());
    (
        Box::new(ExpandedSecretKey::from(&*seed)),
        key.verifying_key(),
    )
}

/// Signs any number of messages for one purpose with short-lived in-memory Ed25519 keys
/// certified by a managed key, which signs once per period.
///
/// Cheap to clone; clones share the surrogate. See the [module docs](crate::surrogate) for the
/// certificate format and the rotation rules.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> remote_signer::Result<()> {
/// use std::sync::Arc;
/// use remote_signer::backend::local::LocalSigner;
/// use remote_signer::surrogate::{SurrogateSigner, SurrogateVerifier, TrustedKey};
/// use remote_signer::{KeyType, RemoteSigner};
///
/// let managed: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::P256)?);
/// let signer = SurrogateSigner::builder(managed.clone(), "audit-log").build()?;
/// let signed = signer.sign(b"entry 1").await?;
///
/// let verifier = SurrogateVerifier::new([TrustedKey::from_signer(&*managed)]);
/// verifier.verify(signed.certificate(), "audit-log", b"entry 1", signed.signature().as_bytes())?;
/// assert_eq!(signer.status().attempts, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SurrogateSigner {
    rotation: Rotation<SurrogateIssuer>,
}

impl fmt::Debug for SurrogateSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SurrogateSigner")
            .field("rotation", &self.rotation)
            .finish()
    }
}

impl SurrogateSigner {
    /// A signer with the defaults for `purpose`.
    ///
    /// # Errors
    /// As [`SurrogateSignerBuilder::build`].
    pub fn new(managed: Arc<dyn RemoteSigner>, purpose: impl Into<String>) -> Result<Self> {
        Self::builder(managed, purpose).build()
    }

    /// Configures a signer for `purpose` (more with [`SurrogateSignerBuilder::purpose`]).
    pub fn builder(
        managed: Arc<dyn RemoteSigner>,
        purpose: impl Into<String>,
    ) -> SurrogateSignerBuilder {
        SurrogateSignerBuilder {
            managed,
            purposes: vec![purpose.into()],
            algorithm: None,
            kid: None,
            period: DEFAULT_PERIOD,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            rotation: RotationOptions::default(),
            clock: Arc::new(SystemClock),
            rng: None,
        }
    }

    /// The current surrogate, certifying a new one first if none is valid. When rotation is
    /// due this starts it in the background and returns the current one meanwhile.
    ///
    /// # Errors
    /// When no surrogate is valid and the managed key cannot certify one (or the signer is
    /// waiting out its retry backoff): the managed key's failure kind, with a text naming the
    /// last failure.
    pub async fn current(&self) -> Result<Arc<CertifiedKey>> {
        self.rotation.get().await
    }

    /// Signs `message` with the current surrogate.
    ///
    /// # Errors
    /// As [`SurrogateSigner::current`].
    pub async fn sign(&self, message: &[u8]) -> Result<SurrogateSignature> {
        let key = self.current().await?;
        Ok(SurrogateSignature {
            signature: key.sign(message),
            key,
        })
    }

    /// Waits for a rotation in progress; if rotation is due, certifies a new surrogate now
    /// (ignoring retry backoff). Useful at start-up and in tests.
    ///
    /// # Errors
    /// As [`SurrogateSigner::current`].
    pub async fn refresh(&self) -> Result<Arc<CertifiedKey>> {
        self.rotation.refresh().await
    }

    /// Waits until no rotation is in progress.
    pub async fn settled(&self) {
        self.rotation.settled().await
    }

    /// Managed-key operations so far, the surrogate in use and its expiry, the next rotation,
    /// the last error.
    pub fn status(&self) -> RotationStatus {
        self.rotation.status()
    }

    /// The managed key's id (its location; it never goes into a certificate).
    pub fn managed_key_id(&self) -> &KeyId {
        self.rotation.issuer().managed.key_id()
    }

    /// The managed key's name in certificates (header `kid`): its RFC 7638 JWK thumbprint
    /// unless set with [`SurrogateSignerBuilder::managed_kid`].
    pub fn managed_kid(&self) -> &str {
        &self.rotation.issuer().kid
    }

    /// The certified purposes.
    pub fn purposes(&self) -> &[String] {
        &self.rotation.issuer().purposes
    }

    /// The longest a token may live past the end of its surrogate's signing window.
    pub fn max_token_lifetime(&self) -> Duration {
        self.rotation.issuer().max_token_lifetime
    }

    /// The clock the signer reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        self.rotation.clock()
    }
}

/// Configures a [`SurrogateSigner`]; every setter documents its default.
pub struct SurrogateSignerBuilder {
    managed: Arc<dyn RemoteSigner>,
    purposes: Vec<String>,
    algorithm: Option<Algorithm>,
    kid: Option<String>,
    period: Duration,
    max_token_lifetime: Duration,
    rotation: RotationOptions,
    clock: Arc<dyn Clock>,
    rng: Option<Box<dyn CryptoRngCore + Send>>,
}

impl fmt::Debug for SurrogateSignerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SurrogateSignerBuilder")
            .field("managed", self.managed.key_id())
            .field("purposes", &self.purposes)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl SurrogateSignerBuilder {
    /// Certifies the surrogates for one more purpose. A surrogate can sign for its certified
    /// purposes only; by default there is one.
    pub fn purpose(mut self, purpose: impl Into<String>) -> Self {
        self.purposes.push(purpose.into());
        self
    }

    /// The managed key's algorithm for certificates (default: the key's own,
    /// [`RemoteSigner::default_algorithm`]).
    pub fn managed_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }

    /// Names the managed key `kid` in certificates instead of by its RFC 7638 JWK thumbprint
    /// (the default). Verifiers must expect the same name ([`TrustedKey::kid`](super::TrustedKey::kid)).
    /// Choose a name that says nothing about where the key is kept: every client can read it.
    pub fn managed_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// How long each surrogate may sign: its certificate's lifetime (default one hour, whole
    /// seconds). The managed key signs about once per period, minus the refresh margin.
    pub fn period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// How long before expiry the next surrogate is certified (default 10 minutes).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.rotation = self.rotation.refresh_margin(margin);
        self
    }

    /// The most by which each rotation is moved earlier at random (default 5 minutes; zero
    /// turns it off).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.rotation = self.rotation.jitter(jitter);
        self
    }

    /// Backoff between failed certifications: `initial` (default 1 s), doubling up to `max`
    /// (default 60 s).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.rotation = self.rotation.retry_backoff(initial, max);
        self
    }

    /// How long a token may outlive its surrogate's signing window: certificates carry
    /// `max_exp = exp + bound` (default 24 hours).
    pub fn max_token_lifetime(mut self, bound: Duration) -> Self {
        self.max_token_lifetime = bound;
        self
    }

    /// Where time comes from (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The randomness for surrogate keys and jitter (default the operating system's, which
    /// keeps nothing). Give a seeded generator in tests only: a generator that buffers its
    /// output holds the next keys' seeds, and the signer cannot wipe it.
    pub fn rng(mut self, rng: impl CryptoRngCore + Send + 'static) -> Self {
        self.rng = Some(Box::new(rng));
        self
    }

    /// Checks the configuration and makes the signer. Nothing is certified until first use.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an empty purpose, a period under one second, or a refresh
    /// margin plus jitter not shorter than the period; [`ErrorKind::Algorithm`] for a managed
    /// algorithm that does not fit the managed key.
    pub fn build(self) -> Result<SurrogateSigner> {
        let config = |what: &str| Error::with_context(ErrorKind::Config, what.to_string());
        if self.purposes.iter().any(|p| p.is_empty()) {
            return Err(config("a surrogate purpose is empty"));
        }
        if self.period < Duration::from_secs(1) {
            return Err(config("the surrogate period must be at least one second"));
        }
        if self.rotation.refresh_margin + self.rotation.jitter >= self.period {
            return Err(config(
                "refresh margin plus jitter must be shorter than the surrogate period",
            ));
        }
        let algorithm = self
            .algorithm
            .unwrap_or_else(|| self.managed.default_algorithm());
        algorithm.check_key_type(self.managed.key_type())?;
        let mut rng = self
            .rng
            .unwrap_or_else(|| Box::new(OsRng) as Box<dyn CryptoRngCore + Send>);
        let jitter_rng = JitterRng(rng.next_u64());
        if self.kid.as_deref() == Some("") {
            return Err(config("the managed key's kid is empty"));
        }
        let kid = self
            .kid
            .unwrap_or_else(|| self.managed.public_key().jwk_thumbprint());
        let issuer = SurrogateIssuer {
            managed: self.managed,
            kid,
            algorithm,
            purposes: self.purposes,
            period: self.period,
            max_token_lifetime: self.max_token_lifetime,
            rng: Mutex::new(rng),
        };
        Ok(SurrogateSigner {
            rotation: Rotation::new(issuer, self.clock, self.rotation, Box::new(jitter_rng)),
        })
    }
}

/// Jitter needs spread, not secrecy: a small generator (SplitMix64) seeded from the signer's
/// randomness.
struct JitterRng(u64);

impl RngCore for JitterRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<SurrogateSigner>();
    check::<CertifiedKey>();
}
