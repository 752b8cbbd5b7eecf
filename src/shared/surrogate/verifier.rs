//! [`SurrogateVerifier`]: checks certificates against trusted managed keys, then signatures
//! with the certified surrogate; caches verified certificates.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use super::certificate::{self, CertificateInfo};
use crate::clock::{check_window, unix_seconds};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, PublicKey};
use crate::signer::RemoteSigner;

/// A managed public key whose certificates (and direct-mode tokens) are trusted, with the
/// algorithms it may use.
///
/// Certificates and tokens name the key that signed them in the header `kid`: by default its
/// RFC 7638 JWK thumbprint, which reveals nothing about where the key is kept. A verifier only
/// tries the trusted keys whose name matches.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedKey {
    public: PublicKey,
    kid: String,
    algorithms: Vec<Algorithm>,
}

impl TrustedKey {
    /// Trusts `public` for its key type's default algorithm (RS256, ES256, ES384, ES256K or
    /// EdDSA), named by its RFC 7638 JWK thumbprint.
    pub fn new(public: PublicKey) -> Self {
        let algorithms = vec![public.key_type().default_algorithm()];
        TrustedKey {
            kid: public.jwk_thumbprint(),
            public,
            algorithms,
        }
    }

    /// Trusts a signer's public key (named by its thumbprint, as [`new`](Self::new)).
    pub fn from_signer(signer: &dyn RemoteSigner) -> Self {
        Self::new(signer.public_key().clone())
    }

    /// Expects the key to be named `kid` instead of by its thumbprint: for signers given an
    /// explicit key id ([`SurrogateSignerBuilder::managed_kid`](super::SurrogateSignerBuilder::managed_kid)).
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = kid.into();
        self
    }

    /// Trusts `public` for `algorithms` instead of its key type's default one (an RSA key may
    /// sign with RS256 to RS512 and PS256 to PS512), named by its RFC 7638 JWK thumbprint.
    ///
    /// # Errors
    /// [`ErrorKind::Algorithm`] for an algorithm that does not fit the key, or none at all.
    pub fn with_algorithms(
        public: PublicKey,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self> {
        let key_type = public.key_type();
        let algorithms: Vec<Algorithm> = algorithms.into_iter().collect();
        if algorithms.is_empty() {
            return Err(Error::algorithm(format!(
                "no algorithm is trusted for the {key_type} key"
            )));
        }
        for algorithm in &algorithms {
            algorithm.check_key_type(key_type)?;
        }
        Ok(TrustedKey {
            algorithms,
            ..Self::new(public)
        })
    }

    /// The algorithms accepted for this key.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The name certificates and tokens must give this key (`kid`).
    pub fn name(&self) -> &str {
        &self.kid
    }

    pub(crate) fn matches_id(&self, kid: &str) -> bool {
        self.kid == kid
    }

    pub(crate) fn allows(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey")
            .field("public", &self.public)
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// The default allowance for clocks that disagree (60 s).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// The default cap on a certificate's signing window (`exp - nbf`): 7 days, the limit RFC 9345
/// sets for TLS delegated credentials. Signers certify for an hour by default.
pub const DEFAULT_MAX_CERTIFICATE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// The default cap on how long a token may outlive its certificate's window (`max_exp - exp`):
/// 24 hours, the signers' default bound
/// ([`DEFAULT_MAX_TOKEN_LIFETIME`](super::DEFAULT_MAX_TOKEN_LIFETIME)). A stolen surrogate
/// or certificate signature can forge nothing that lives longer than window plus bound.
pub const DEFAULT_MAX_TOKEN_BOUND: Duration = Duration::from_secs(24 * 3600);

/// How many verified certificates are cached (a fleet of this many signers verifies at one
/// signature check per message).
const CACHE_CAPACITY: usize = 1024;

/// Verifies what surrogates signed, with nothing but the trusted managed public keys.
///
/// The certificate is checked first (signature by the trusted key its `kid` names, the policy
/// bounds, the purpose, the times), then the message signature with the certified key
/// (`cnf.jwk`). Verified certificates are cached (by their exact text), so steady-state
/// verification costs one Ed25519 check; their times and purpose are checked on every use. A
/// certificate leaves the cache once no token it signed can be valid any more, so a
/// long-running verifier holds about as many as there are live surrogates.
///
/// Policy, whatever a certificate's signature says (set through
/// [`SurrogateVerifier::builder`]):
///
/// | bound | default |
/// |---|---|
/// | signing window `exp - nbf` | 7 days ([`DEFAULT_MAX_CERTIFICATE_WINDOW`]) |
/// | token bound `max_exp - exp` | 24 hours ([`DEFAULT_MAX_TOKEN_BOUND`]) |
/// | `iat` in the future | no more than the leeway, 60 s ([`DEFAULT_LEEWAY`]) |
pub struct SurrogateVerifier {
    trusted: Vec<TrustedKey>,
    leeway: Duration,
    policy: certificate::Policy,
    cache: RwLock<HashMap<Box<str>, Arc<CertificateInfo>>>,
}

impl fmt::Debug for SurrogateVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SurrogateVerifier")
            .field("trusted", &self.trusted)
            .field("leeway", &self.leeway)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Configures a [`SurrogateVerifier`]; from [`SurrogateVerifier::builder`].
#[derive(Debug, Clone)]
pub struct SurrogateVerifierBuilder {
    trusted: Vec<TrustedKey>,
    leeway: Duration,
    max_certificate_window: Duration,
    max_token_bound: Duration,
}

impl SurrogateVerifierBuilder {
    /// The allowance for clock differences between signer and verifier (default 60 s,
    /// [`DEFAULT_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest signing window (`exp - nbf`) a certificate may have (default 7 days,
    /// [`DEFAULT_MAX_CERTIFICATE_WINDOW`]); longer ones are refused.
    pub fn max_certificate_window(mut self, max: Duration) -> Self {
        self.max_certificate_window = max;
        self
    }

    /// The longest a token may outlive its certificate's window (`max_exp - exp`; default 24
    /// hours, [`DEFAULT_MAX_TOKEN_BOUND`]); certificates that allow more are refused.
    pub fn max_token_bound(mut self, max: Duration) -> Self {
        self.max_token_bound = max;
        self
    }

    /// The verifier.
    pub fn build(self) -> SurrogateVerifier {
        SurrogateVerifier {
            trusted: self.trusted,
            leeway: self.leeway,
            policy: certificate::Policy {
                max_window: self.max_certificate_window.as_secs(),
                max_token_bound: self.max_token_bound.as_secs(),
            },
            cache: RwLock::new(HashMap::new()),
        }
    }
}

impl SurrogateVerifier {
    /// Trusts certificates signed by any of `trusted` (several during a managed key's own
    /// rotation), with the default policy.
    pub fn new(trusted: impl IntoIterator<Item = TrustedKey>) -> Self {
        Self::builder(trusted).build()
    }

    /// A verifier for certificates signed by any of `trusted`, with policy to configure.
    pub fn builder(trusted: impl IntoIterator<Item = TrustedKey>) -> SurrogateVerifierBuilder {
        SurrogateVerifierBuilder {
            trusted: trusted.into_iter().collect(),
            leeway: DEFAULT_LEEWAY,
            max_certificate_window: DEFAULT_MAX_CERTIFICATE_WINDOW,
            max_token_bound: DEFAULT_MAX_TOKEN_BOUND,
        }
    }

    /// The allowance for clock differences.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The trusted keys.
    pub fn trusted(&self) -> &[TrustedKey] {
        &self.trusted
    }

    /// Checks a certificate's signature and consistency and that it certifies `purpose`; no
    /// time checks (see [`check_signing_window`](Self::check_signing_window) and
    /// [`check_token_times`](Self::check_token_times)). Cached.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidToken`] for a malformed or tampered certificate, one not signed by
    /// the trusted key its `kid` names, one outside the policy bounds, one issued in the
    /// future (beyond the leeway), or one for another purpose.
    pub fn verify_certificate(
        &self,
        certificate: &str,
        purpose: &str,
    ) -> Result<Arc<CertificateInfo>> {
        self.verify_certificate_at(SystemTime::now(), certificate, purpose)
    }

    /// [`verify_certificate`](Self::verify_certificate) at `now`, which also decides which
    /// cached certificates are past use and can go.
    pub(crate) fn verify_certificate_at(
        &self,
        now: SystemTime,
        certificate: &str,
        purpose: &str,
    ) -> Result<Arc<CertificateInfo>> {
        let cached = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(certificate)
            .cloned();
        let info = match cached {
            Some(info) => info,
            None => {
                let info = Arc::new(certificate::verify(
                    certificate,
                    &self.trusted,
                    self.policy,
                )?);
                let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
                make_room(&mut cache, now, self.leeway, CACHE_CAPACITY);
                cache.insert(certificate.into(), info.clone());
                info
            }
        };
        if !info.allows(purpose) {
            return Err(Error::with_context(
                ErrorKind::InvalidToken,
                "certificate is for another purpose",
            ));
        }
        if info.issued_at_secs() > unix_seconds(now).saturating_add(self.leeway.as_secs()) {
            return Err(Error::with_context(
                ErrorKind::InvalidToken,
                "certificate is issued in the future",
            ));
        }
        Ok(info)
    }

    /// Errors unless `now` is inside the certificate's signing window (with leeway).
    ///
    /// # Errors
    /// [`ErrorKind::Expired`] for an expired or not yet valid certificate.
    pub fn check_signing_window(&self, now: SystemTime, info: &CertificateInfo) -> Result<()> {
        let (nbf, exp) = info.window_secs();
        check_window(unix_seconds(now), nbf, exp, self.leeway, "certificate")
    }

    /// Checks at `now` a token's `iat` and `exp` (Unix seconds) against its certificate: it
    /// was issued inside the signing window, its expiry is within the certificate's bound, and
    /// it is valid now (all with leeway). A token may outlive its certificate's window, up to
    /// the bound.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidToken`] for an `iat` outside the signing window, an `exp` past the
    /// bound or before `iat`; [`ErrorKind::Expired`] for a token expired or not yet valid.
    pub fn check_token_times(
        &self,
        now: SystemTime,
        info: &CertificateInfo,
        issued_at: u64,
        expires_at: u64,
    ) -> Result<()> {
        let (nbf, exp) = info.window_secs();
        let leeway = self.leeway.as_secs();
        let invalid = |what: &str| Error::with_context(ErrorKind::InvalidToken, what.to_string());
        if issued_at.saturating_add(leeway) < nbf || issued_at > exp.saturating_add(leeway) {
            return Err(invalid("token was issued outside its certificate's window"));
        }
        if expires_at > info.max_token_expiry_secs() {
            return Err(invalid("token expiry exceeds its certificate's bound"));
        }
        if expires_at < issued_at {
            return Err(invalid("token expires before it was issued"));
        }
        check_window(
            unix_seconds(now),
            issued_at,
            expires_at,
            self.leeway,
            "token",
        )
    }

    /// Verifies a message signed by a surrogate at time `now`: the certificate (cached), its
    /// purpose and signing window, then the Ed25519 signature with the certified key.
    ///
    /// # Errors
    /// As [`verify_certificate`](Self::verify_certificate) and
    /// [`check_signing_window`](Self::check_signing_window);
    /// [`ErrorKind::InvalidSignature`] if the message signature does not verify.
    pub fn verify_at(
        &self,
        now: SystemTime,
        certificate: &str,
        purpose: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<Arc<CertificateInfo>> {
        let info = self.verify_certificate_at(now, certificate, purpose)?;
        self.check_signing_window(now, &info)?;
        info.public_key()
            .verify(Algorithm::EdDSA, message, signature)?;
        Ok(info)
    }

    /// [`verify_at`](Self::verify_at) with the system clock.
    ///
    /// # Errors
    /// As [`verify_at`](Self::verify_at).
    pub fn verify(
        &self,
        certificate: &str,
        purpose: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<Arc<CertificateInfo>> {
        self.verify_at(SystemTime::now(), certificate, purpose, message, signature)
    }

    /// How many certificates are cached.
    pub fn cached_certificates(&self) -> usize {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Makes room for one more entry in a cache of verified certificates: drops those that nothing
/// can use at `now` any more (past the bound of the tokens they sign, with leeway), and if it is
/// still full, all of them. Without the first step a verifier would keep every certificate it
/// has seen until the cache fills.
pub(crate) fn make_room<K: std::hash::Hash + Eq>(
    cache: &mut HashMap<K, Arc<CertificateInfo>>,
    now: SystemTime,
    leeway: Duration,
    capacity: usize,
) {
    let now = unix_seconds(now);
    let leeway = leeway.as_secs();
    cache.retain(|_, info| info.max_token_expiry_secs().saturating_add(leeway) >= now);
    if cache.len() >= capacity {
        cache.clear();
    }
}
