//! Issuing and verifying session tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cache::{TokenCache, entry_cost};
use crate::clock::{Clock, SystemClock, check_window, from_unix_seconds, unix_seconds};
use crate::error::{Error, ErrorKind, Result};
use crate::jws;
use crate::key::Algorithm;
use crate::signer::RemoteSigner;
use crate::surrogate::{
    CertificateInfo, CertifiedKey, SurrogateSigner, SurrogateVerifier, SurrogateVerifierBuilder,
    TrustedKey,
};

/// The default token lifetime (one hour).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// The default cap on a token's length, checked before any decoding (8 KiB).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The `typ` header of every session token (RFC 8725 explicit typing), in both modes: no
/// other JWT signed by the same key (a Snowflake JWT, an OAuth assertion) passes for one.
pub const SESSION_TYP: &str = "session+jwt";

/// The claims an application may not set in a direct-mode token: every registered JWT claim
/// (RFC 7519 section 4.1), so a token the managed key signs cannot be shaped into another
/// service's token.
pub const DIRECT_RESERVED_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// The claims an application may not set in a surrogate-mode token (the surrogate can sign
/// nothing but session tokens, so `iss`, `sub` and `jti` are the application's).
pub const SURROGATE_RESERVED_CLAIMS: [&str; 4] = ["aud", "exp", "nbf", "iat"];

/// The default cap on a token's lifetime (`exp - iat`) at verification: 24 hours.
pub const DEFAULT_MAX_SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The default memory budget of a verifier's cache of verified tokens: 16 MiB.
pub const DEFAULT_TOKEN_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// How a token was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigningMode {
    /// The managed key signed the token itself (one managed operation per token).
    Direct,
    /// A certified surrogate signed it; the certificate travels in the header (`cert`).
    Surrogate,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert: Option<String>,
    /// Present (even as `null`) means refused: no critical extension is understood here.
    #[serde(
        default,
        deserialize_with = "jws::present",
        skip_serializing_if = "Option::is_none"
    )]
    crit: Option<Value>,
}

enum Mode {
    Direct {
        managed: Arc<dyn RemoteSigner>,
        algorithm: Algorithm,
        /// The managed key's name in the header `kid`.
        kid: String,
    },
    Surrogate(SurrogateSigner),
}

/// Issues session tokens for one purpose (a cookie's name or role).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> remote_signer::Result<()> {
/// use std::sync::Arc;
/// use remote_signer::backend::local::LocalSigner;
/// use remote_signer::cookie::{SessionSigner, SessionVerifier};
/// use remote_signer::surrogate::TrustedKey;
/// use remote_signer::{KeyType, RemoteSigner};
///
/// let managed: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::P256)?);
/// let signer = SessionSigner::new(managed.clone(), "session")?;
/// let token = signer.sign(&serde_json::json!({"user": "alice"})).await?;
///
/// let verifier = SessionVerifier::new([TrustedKey::from_signer(&*managed)], "session");
/// let session = verifier.verify(&token)?;
/// assert_eq!(session.claims()["user"], "alice");
/// # Ok(()) }
/// ```
pub struct SessionSigner {
    mode: Mode,
    /// The encoded header for the current surrogate: the same for every token it signs.
    /// Holds the key weakly, so a rotated-out surrogate is dropped (and zeroized) on time.
    header_cache: std::sync::Mutex<Option<(std::sync::Weak<CertifiedKey>, Arc<str>)>>,
    purpose: String,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SessionSigner");
        match &self.mode {
            Mode::Direct {
                managed,
                algorithm,
                kid,
            } => d
                .field("mode", &SigningMode::Direct)
                .field("managed", managed.key_id())
                .field("kid", kid)
                .field("algorithm", algorithm),
            Mode::Surrogate(s) => d
                .field("mode", &SigningMode::Surrogate)
                .field("managed", s.managed_key_id()),
        };
        d.field("purpose", &self.purpose)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl SessionSigner {
    /// Surrogate mode for `purpose` on the defaults: a [`SurrogateSigner`] of its own, the
    /// managed key signing once per hour, tokens living one hour.
    ///
    /// # Errors
    /// As [`SessionSignerBuilder::build`].
    pub fn new(managed: Arc<dyn RemoteSigner>, purpose: impl Into<String>) -> Result<Self> {
        Self::builder(managed, purpose).build()
    }

    /// Configures a signer of tokens for `purpose`, signed by a managed key (surrogate mode by
    /// default, or direct) or by a shared, configured [`SurrogateSigner`].
    pub fn builder(
        signed_by: impl Into<SignedBy>,
        purpose: impl Into<String>,
    ) -> SessionSignerBuilder {
        SessionSignerBuilder {
            signed_by: signed_by.into(),
            purpose: purpose.into(),
            mode: SigningMode::Surrogate,
            ttl: DEFAULT_TTL,
            kid: None,
            clock: None,
        }
    }

    /// The purpose: every token's `aud`.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// How tokens are signed.
    pub fn mode(&self) -> SigningMode {
        match self.mode {
            Mode::Direct { .. } => SigningMode::Direct,
            Mode::Surrogate(_) => SigningMode::Surrogate,
        }
    }

    /// The lifetime of tokens from [`sign`](Self::sign).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The clock the signer reads (in surrogate mode, its surrogate signer's).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Signs the application's `claims` (a JSON object) with the default lifetime.
    ///
    /// # Errors
    /// As [`sign_with_ttl`](Self::sign_with_ttl).
    pub async fn sign<C: Serialize + ?Sized>(&self, claims: &C) -> Result<String> {
        self.sign_with_ttl(claims, self.ttl).await
    }

    /// Signs the application's `claims` (a JSON object without the reserved claims:
    /// [`DIRECT_RESERVED_CLAIMS`] or [`SURROGATE_RESERVED_CLAIMS`]), adding `iat` = now,
    /// `exp` = now + `ttl` and `aud` = the purpose.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if `claims` is not a JSON object or sets a reserved claim;
    /// [`ErrorKind::Config`] if, in surrogate mode, `ttl` reaches past the certificate's
    /// token-expiry bound; the managed key's errors (direct mode, or certifying a surrogate).
    pub async fn sign_with_ttl<C: Serialize + ?Sized>(
        &self,
        claims: &C,
        ttl: Duration,
    ) -> Result<String> {
        let Value::Object(mut claims) = serde_json::to_value(claims)
            .map_err(|_| Error::invalid_input("claims cannot be encoded as JSON"))?
        else {
            return Err(Error::invalid_input("claims must be a JSON object"));
        };
        let reserved: &[&str] = match self.mode {
            Mode::Direct { .. } => &DIRECT_RESERVED_CLAIMS,
            Mode::Surrogate(_) => &SURROGATE_RESERVED_CLAIMS,
        };
        if let Some(reserved) = reserved.iter().find(|c| claims.contains_key(**c)) {
            return Err(Error::invalid_input(format!(
                "claim {reserved:?} is set by the token issuer"
            )));
        }
        let now = self.clock.now();
        let iat = unix_seconds(now);
        let exp = iat.saturating_add(ttl.as_secs());
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), exp.into());
        claims.insert("aud".into(), self.purpose.clone().into());
        match &self.mode {
            Mode::Direct {
                managed,
                algorithm,
                kid,
            } => {
                let header = Header {
                    alg: algorithm.as_str().into(),
                    kid: Some(kid.clone()),
                    typ: Some(SESSION_TYP.into()),
                    cert: None,
                    crit: None,
                };
                let input = jws::signing_input(&header, &claims)?;
                let signature = managed.sign(*algorithm, input.as_bytes()).await?;
                Ok(format!("{input}.{}", signature.to_base64url()))
            }
            Mode::Surrogate(signer) => {
                let key = signer.current().await?;
                if from_unix_seconds(exp) > key.max_token_expiry() {
                    return Err(Error::with_context(
                        ErrorKind::Config,
                        "token lifetime exceeds the surrogate's token-expiry bound",
                    ));
                }
                let header = self.surrogate_header(&key)?;
                let payload = serde_json::to_vec(&claims)
                    .map_err(|_| Error::invalid_input("claims cannot be encoded as JSON"))?;
                let mut input = String::with_capacity(header.len() + 1 + payload.len() * 4 / 3 + 4);
                input.push_str(&header);
                input.push('.');
                input.push_str(&jws::encode_part(&payload));
                let signature = key.sign(input.as_bytes());
                Ok(format!("{input}.{}", signature.to_base64url()))
            }
        }
    }
}

/// What signs a [`SessionSigner`]'s tokens: the managed key itself, or a configured
/// [`SurrogateSigner`] to share. Made with `into()` from either, so
/// [`SessionSigner::builder`] takes both.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignedBy {
    /// The managed key: in surrogate mode (the default) the session signer makes its own
    /// [`SurrogateSigner`] for its purpose on the defaults; in direct mode the key signs
    /// every token.
    Managed(Arc<dyn RemoteSigner>),
    /// Certified surrogates from this signer (surrogate mode only); its clock and its name
    /// for the managed key are used.
    Surrogates(SurrogateSigner),
}

impl From<Arc<dyn RemoteSigner>> for SignedBy {
    fn from(managed: Arc<dyn RemoteSigner>) -> Self {
        SignedBy::Managed(managed)
    }
}

impl<S: RemoteSigner + 'static> From<Arc<S>> for SignedBy {
    fn from(managed: Arc<S>) -> Self {
        SignedBy::Managed(managed)
    }
}

impl From<SurrogateSigner> for SignedBy {
    fn from(signer: SurrogateSigner) -> Self {
        SignedBy::Surrogates(signer)
    }
}

/// Configures a [`SessionSigner`]; from [`SessionSigner::builder`]. Every setter documents
/// its default; [`build`](Self::build) reports what does not fit together.
pub struct SessionSignerBuilder {
    signed_by: SignedBy,
    purpose: String,
    mode: SigningMode,
    ttl: Duration,
    kid: Option<String>,
    clock: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for SessionSignerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSignerBuilder")
            .field("signed_by", &self.signed_by)
            .field("purpose", &self.purpose)
            .field("mode", &self.mode)
            .field("ttl", &self.ttl)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SessionSignerBuilder {
    /// How tokens are signed (default [`SigningMode::Surrogate`]: the managed key signs once
    /// per surrogate period). [`SigningMode::Direct`] makes every token one managed-key
    /// operation: for low volume only.
    pub fn mode(mut self, mode: SigningMode) -> Self {
        self.mode = mode;
        self
    }

    /// The lifetime of tokens from [`SessionSigner::sign`] (default one hour,
    /// [`DEFAULT_TTL`]).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Names the managed key `name` in tokens and certificates instead of by its RFC 7638 JWK
    /// thumbprint (the default); verifiers then expect it through [`TrustedKey::kid`]. Every
    /// client can read it, so it should say nothing about where the key is kept. With a
    /// shared [`SurrogateSigner`], set it there
    /// ([`SurrogateSignerBuilder::managed_kid`](crate::surrogate::SurrogateSignerBuilder::managed_kid)).
    pub fn kid(mut self, name: impl Into<String>) -> Self {
        self.kid = Some(name.into());
        self
    }

    /// Where time comes from (default the system clock). With a shared [`SurrogateSigner`],
    /// its clock is used: set it there.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks the configuration and makes the signer. Nothing is signed until first use.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an empty purpose; a shared [`SurrogateSigner`] in direct
    /// mode, not certified for the purpose, or with a `kid` or clock set here; a `ttl` past
    /// the surrogates' token-expiry bound; otherwise as [`SurrogateSignerBuilder::build`](crate::surrogate::SurrogateSignerBuilder::build).
    pub fn build(self) -> Result<SessionSigner> {
        let config = |what: String| Error::with_context(ErrorKind::Config, what);
        let SessionSignerBuilder {
            signed_by,
            purpose,
            mode,
            ttl,
            kid,
            clock,
        } = self;
        if purpose.is_empty() {
            return Err(config("the session purpose is empty".into()));
        }
        let (mode, clock) = match (mode, signed_by) {
            (SigningMode::Direct, SignedBy::Managed(managed)) => {
                let algorithm = managed.default_algorithm();
                let kid = kid.unwrap_or_else(|| managed.public_key().jwk_thumbprint());
                let clock = clock.unwrap_or_else(|| Arc::new(SystemClock) as Arc<dyn Clock>);
                let mode = Mode::Direct {
                    managed,
                    algorithm,
                    kid,
                };
                (mode, clock)
            }
            (SigningMode::Direct, SignedBy::Surrogates(_)) => {
                return Err(config(
                    "direct mode signs with the managed key: give the managed key, not a \
                     surrogate signer"
                        .into(),
                ));
            }
            (SigningMode::Surrogate, SignedBy::Managed(managed)) => {
                let mut surrogates = SurrogateSigner::builder(managed, purpose.clone());
                if let Some(kid) = kid {
                    surrogates = surrogates.managed_kid(kid);
                }
                if let Some(clock) = clock {
                    surrogates = surrogates.clock(clock);
                }
                let surrogates = surrogates.build()?;
                let clock = surrogates.clock().clone();
                (Mode::Surrogate(surrogates), clock)
            }
            (SigningMode::Surrogate, SignedBy::Surrogates(surrogates)) => {
                if !surrogates.purposes().contains(&purpose) {
                    return Err(config(format!(
                        "the surrogate signer is not certified for purpose {purpose:?}"
                    )));
                }
                if kid.is_some() || clock.is_some() {
                    return Err(config(
                        "a shared surrogate signer names the managed key and keeps the time: \
                         set kid and clock on its builder"
                            .into(),
                    ));
                }
                let clock = surrogates.clock().clone();
                (Mode::Surrogate(surrogates), clock)
            }
        };
        if let Mode::Surrogate(surrogates) = &mode
            && ttl > surrogates.max_token_lifetime()
        {
            return Err(config(
                "the token lifetime exceeds the surrogates' token-expiry bound".into(),
            ));
        }
        Ok(SessionSigner {
            mode,
            header_cache: Default::default(),
            purpose,
            ttl,
            clock,
        })
    }
}

impl SessionSigner {
    /// `base64url(header)` for tokens signed by `key`, encoded once per surrogate.
    fn surrogate_header(&self, key: &Arc<CertifiedKey>) -> Result<Arc<str>> {
        let mut cache = self
            .header_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((cached_key, header)) = &*cache
            && std::ptr::eq(cached_key.as_ptr(), Arc::as_ptr(key))
        {
            return Ok(header.clone());
        }
        // No `kid`: it would only repeat the thumbprint of the certificate's `cnf.jwk`.
        let header = Header {
            alg: Algorithm::EdDSA.as_str().into(),
            kid: None,
            typ: Some(SESSION_TYP.into()),
            cert: Some(key.certificate().into()),
            crit: None,
        };
        let json = serde_json::to_vec(&header)
            .map_err(|_| Error::invalid_input("cannot encode the token header"))?;
        let encoded: Arc<str> = jws::encode_part(&json).into();
        *cache = Some((Arc::downgrade(key), encoded.clone()));
        Ok(encoded)
    }
}

/// A verified session: the token's claims. Cheap to clone (the claims are shared).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    inner: Arc<SessionData>,
}

#[derive(Debug, PartialEq)]
struct SessionData {
    claims: Map<String, Value>,
    issued_at: u64,
    expires_at: u64,
    mode: SigningMode,
}

impl Session {
    /// All claims, including `iat`, `exp` and `aud`.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.inner.claims
    }

    /// One claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.inner.claims.get(name)
    }

    /// The claims as the application's own type.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the claims do not fit `T`.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&Value::Object(self.inner.claims.clone()))
            .map_err(|_| Error::invalid_input("session claims do not fit the requested type"))
    }

    /// `iat`.
    pub fn issued_at(&self) -> SystemTime {
        from_unix_seconds(self.inner.issued_at)
    }

    /// `exp`.
    pub fn expires_at(&self) -> SystemTime {
        from_unix_seconds(self.inner.expires_at)
    }

    /// Seconds from `now` until expiry (0 once expired): a cookie's `Max-Age`.
    pub fn max_age_at(&self, now: SystemTime) -> u64 {
        self.inner.expires_at.saturating_sub(unix_seconds(now))
    }

    /// How the token was signed.
    pub fn mode(&self) -> SigningMode {
        self.inner.mode
    }
}

/// Verifies session tokens for one purpose with nothing but trusted managed public keys.
///
/// Follows RFC 8725: the algorithm comes from the trusted key (or, in surrogate mode, from the
/// certified Ed25519 key), never from the token, so `none`, HMAC keyed with a public key and
/// algorithm swaps fail; input longer than the cap is refused before any decoding; `typ` must
/// be `session+jwt` and the audience the purpose; times are checked with a bounded leeway.
/// Errors are [`ErrorKind::InvalidToken`] or [`ErrorKind::Expired`] with a coarse reason fit
/// for logs.
///
/// Policy, whatever a token's signature says (set through [`SessionVerifier::builder`]):
///
/// | bound | default |
/// |---|---|
/// | token length | 8 KiB ([`DEFAULT_MAX_TOKEN_LEN`]) |
/// | token lifetime `exp - iat` | 24 hours ([`DEFAULT_MAX_SESSION_LIFETIME`]) |
/// | clock leeway | 60 s ([`DEFAULT_LEEWAY`](crate::surrogate::DEFAULT_LEEWAY)) |
/// | certificate window, token bound | as [`SurrogateVerifier`]: 7 days, 24 hours |
///
/// # The cache of verified tokens
/// A browser sends the same token on every request, so a verified token's session is kept in
/// memory and returned for that exact token (compared in full) until the token's `exp`, never
/// later; after `exp`, or on a miss, the token is verified in full. The cache holds at most
/// [`DEFAULT_TOKEN_CACHE_BYTES`] (16 MiB; [`SessionVerifierBuilder::token_cache_bytes`]),
/// counting each entry as its token's length plus twice its encoded claims plus 256 bytes. It
/// is split into 16 parts shared round-robin by threads, each with a sixteenth of the budget,
/// so threads do not wait on each other; a part that is full drops its expired entries, then
/// all of them. A budget of 0 turns the cache off.
pub struct SessionVerifier {
    trusted: Vec<TrustedKey>,
    surrogates: SurrogateVerifier,
    purpose: String,
    leeway: Duration,
    max_len: usize,
    max_lifetime: u64,
    clock: Arc<dyn Clock>,
    /// Encoded surrogate-mode headers that passed every header check, with their certificate.
    headers: RwLock<HashMap<Box<str>, Arc<CertificateInfo>>>,
    tokens: TokenCache,
}

/// How many verified surrogate-mode headers are kept.
const HEADER_CACHE_CAPACITY: usize = 1024;

impl fmt::Debug for SessionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionVerifier")
            .field("trusted", &self.trusted)
            .field("purpose", &self.purpose)
            .field("leeway", &self.leeway)
            .field("max_len", &self.max_len)
            .field("max_lifetime", &self.max_lifetime)
            .finish_non_exhaustive()
    }
}

/// Configures a [`SessionVerifier`]; from [`SessionVerifier::builder`]. Every setter
/// documents its default.
pub struct SessionVerifierBuilder {
    surrogates: SurrogateVerifierBuilder,
    trusted: Vec<TrustedKey>,
    purpose: String,
    leeway: Duration,
    max_len: usize,
    max_lifetime: Duration,
    cache_bytes: usize,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SessionVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionVerifierBuilder")
            .field("surrogates", &self.surrogates)
            .field("purpose", &self.purpose)
            .field("max_len", &self.max_len)
            .field("max_lifetime", &self.max_lifetime)
            .field("cache_bytes", &self.cache_bytes)
            .finish_non_exhaustive()
    }
}

impl SessionVerifierBuilder {
    /// The allowance for clock differences, for tokens and certificates (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self.surrogates = self.surrogates.leeway(leeway);
        self
    }

    /// The longest token accepted, in bytes, checked before any decoding (default 8 KiB).
    pub fn max_token_len(mut self, max: usize) -> Self {
        self.max_len = max;
        self
    }

    /// The longest lifetime (`exp - iat`) a token may have, in both modes (default 24 hours,
    /// [`DEFAULT_MAX_SESSION_LIFETIME`]); longer ones are refused.
    pub fn max_token_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// The longest signing window a surrogate certificate may have (default 7 days; see
    /// [`SurrogateVerifierBuilder::max_certificate_window`]).
    pub fn max_certificate_window(mut self, max: Duration) -> Self {
        self.surrogates = self.surrogates.max_certificate_window(max);
        self
    }

    /// The longest a surrogate-signed token may outlive its certificate's window (default 24
    /// hours; see [`SurrogateVerifierBuilder::max_token_bound`]).
    pub fn max_token_bound(mut self, max: Duration) -> Self {
        self.surrogates = self.surrogates.max_token_bound(max);
        self
    }

    /// The memory budget of the cache of verified tokens, in bytes (default 16 MiB,
    /// [`DEFAULT_TOKEN_CACHE_BYTES`]; 0 turns it off). See [`SessionVerifier`].
    pub fn token_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Where time comes from (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The verifier.
    pub fn build(self) -> SessionVerifier {
        SessionVerifier {
            surrogates: self.surrogates.build(),
            trusted: self.trusted,
            purpose: self.purpose,
            leeway: self.leeway,
            max_len: self.max_len,
            max_lifetime: self.max_lifetime.as_secs(),
            clock: self.clock,
            headers: RwLock::new(HashMap::new()),
            tokens: TokenCache::new(self.cache_bytes),
        }
    }
}

fn invalid(reason: &str) -> Error {
    Error::with_context(ErrorKind::InvalidToken, reason.to_string())
}

impl SessionVerifier {
    /// Accepts tokens for `purpose` signed (directly or through a certified surrogate) by any
    /// of `trusted`, with the default policy.
    pub fn new(trusted: impl IntoIterator<Item = TrustedKey>, purpose: impl Into<String>) -> Self {
        Self::builder(trusted, purpose).build()
    }

    /// A verifier for tokens for `purpose` signed by any of `trusted`, with policy to
    /// configure.
    pub fn builder(
        trusted: impl IntoIterator<Item = TrustedKey>,
        purpose: impl Into<String>,
    ) -> SessionVerifierBuilder {
        let trusted: Vec<TrustedKey> = trusted.into_iter().collect();
        SessionVerifierBuilder {
            surrogates: SurrogateVerifier::builder(trusted.clone()),
            trusted,
            purpose: purpose.into(),
            leeway: crate::surrogate::DEFAULT_LEEWAY,
            max_len: DEFAULT_MAX_TOKEN_LEN,
            max_lifetime: DEFAULT_MAX_SESSION_LIFETIME,
            cache_bytes: DEFAULT_TOKEN_CACHE_BYTES,
            clock: Arc::new(SystemClock),
        }
    }

    /// The purpose tokens must carry as `aud`.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// How many verified tokens are cached.
    pub fn cached_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Verifies `token` now.
    ///
    /// # Errors
    /// As [`verify_at`](Self::verify_at).
    pub fn verify(&self, token: &str) -> Result<Session> {
        self.verify_at(self.clock.now(), token)
    }

    /// Verifies `token` at time `now`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidToken`] for a token too large, malformed, not typed `session+jwt`,
    /// with a `crit` header, not signed by a trusted key (or a surrogate certified by one for
    /// this purpose within the policy bounds), using an algorithm the key does not allow, for
    /// another audience, or living longer than allowed; [`ErrorKind::Expired`] for a token
    /// (or, in surrogate mode, one whose certificate) is expired or not yet valid.
    pub fn verify_at(&self, now: SystemTime, token: &str) -> Result<Session> {
        if token.len() > self.max_len {
            return Err(invalid("token is larger than allowed"));
        }
        let now_secs = unix_seconds(now);
        if let Some(session) = self.tokens.get(token, now_secs) {
            return Ok(session);
        }
        let parts = jws::split(token, "token")?;
        let (session, valid_from) = self.verify_parts(&parts, now)?;
        self.tokens.insert(
            token,
            &session,
            valid_from,
            session.inner.expires_at,
            now_secs,
            entry_cost(token, parts.payload.len()),
        );
        Ok(session)
    }

    /// Full verification; also returns from when (Unix seconds) the session may be served
    /// from the cache: the latest of `iat`, `nbf` and the certificate's `iat`, less the leeway.
    fn verify_parts(&self, parts: &jws::Compact<'_>, now: SystemTime) -> Result<(Session, u64)> {
        let signature = jws::decode_part(parts.signature, "token signature")?;
        let message = parts.signing_input.as_bytes();
        let cached = self
            .headers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(parts.header)
            .cloned();
        if let Some(info) = cached {
            // This exact header passed every header check before.
            info.public_key()
                .verify(Algorithm::EdDSA, message, &signature)
                .map_err(|_| invalid("token signature does not verify"))?;
            return self.finish(parts.payload, SigningMode::Surrogate, Some(info), now);
        }
        let header: Header = jws::decode_json(parts.header, "token header")?;
        if header.crit.is_some() {
            return Err(invalid("token has critical header parameters"));
        }
        if header.typ.as_deref() != Some(SESSION_TYP) {
            return Err(invalid("token is not a session token (typ)"));
        }
        let (mode, certificate) = match &header.cert {
            Some(cert) => {
                let info = self
                    .surrogates
                    .verify_certificate_at(now, cert, &self.purpose)?;
                if header.alg != Algorithm::EdDSA.as_str() {
                    return Err(invalid("token algorithm does not fit its key"));
                }
                if header
                    .kid
                    .as_deref()
                    .is_some_and(|kid| kid != info.subject())
                {
                    return Err(invalid("token kid does not name its certified key"));
                }
                info.public_key()
                    .verify(Algorithm::EdDSA, message, &signature)
                    .map_err(|_| invalid("token signature does not verify"))?;
                let mut headers = self.headers.write().unwrap_or_else(PoisonError::into_inner);
                crate::surrogate::make_room(&mut headers, now, self.leeway, HEADER_CACHE_CAPACITY);
                headers.insert(parts.header.into(), info.clone());
                (SigningMode::Surrogate, Some(info))
            }
            None => {
                let Some(kid) = header.kid.as_deref() else {
                    return Err(invalid("token does not name its key (kid)"));
                };
                let algorithm = header
                    .alg
                    .parse::<Algorithm>()
                    .map_err(|_| invalid("token algorithm is not allowed"))?;
                let candidates: Vec<&TrustedKey> = self
                    .trusted
                    .iter()
                    .filter(|t| t.matches_id(kid) && t.allows(algorithm))
                    .collect();
                if candidates.is_empty() {
                    return Err(invalid("token algorithm or key is not trusted"));
                }
                if !candidates.iter().any(|t| {
                    t.public_key()
                        .verify(algorithm, message, &signature)
                        .is_ok()
                }) {
                    return Err(invalid("token signature does not verify"));
                }
                (SigningMode::Direct, None)
            }
        };
        self.finish(parts.payload, mode, certificate, now)
    }

    /// The claims checks, common to both modes.
    fn finish(
        &self,
        payload: &str,
        mode: SigningMode,
        certificate: Option<Arc<CertificateInfo>>,
        now: SystemTime,
    ) -> Result<(Session, u64)> {
        let claims: Map<String, Value> = jws::decode_json(payload, "token claims")?;
        if claims.get("aud").and_then(Value::as_str) != Some(self.purpose.as_str()) {
            return Err(invalid("token is for another audience"));
        }
        let time = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| invalid("token lacks integer iat and exp"))
        };
        let (iat, exp) = (time("iat")?, time("exp")?);
        let nbf = match claims.get("nbf") {
            None => None,
            Some(nbf) => Some(
                nbf.as_u64()
                    .ok_or_else(|| invalid("token nbf is not an integer"))?,
            ),
        };
        if exp < iat {
            return Err(invalid("token expires before it was issued"));
        }
        if exp - iat > self.max_lifetime {
            return Err(invalid("token lifetime is longer than allowed"));
        }
        let leeway = self.leeway.as_secs();
        let now_secs = unix_seconds(now);
        // RFC 7519 4.1.5: not accepted before `nbf`.
        if let Some(nbf) = nbf {
            check_window(now_secs, nbf, u64::MAX, self.leeway, "token")?;
        }
        let mut valid_from = iat.max(nbf.unwrap_or(0));
        match &certificate {
            Some(info) => {
                self.surrogates.check_token_times(now, info, iat, exp)?;
                valid_from = valid_from.max(unix_seconds(info.issued_at()));
            }
            None => check_window(now_secs, iat, exp, self.leeway, "token")?,
        }
        let session = Session {
            inner: Arc::new(SessionData {
                claims,
                issued_at: iat,
                expires_at: exp,
                mode,
            }),
        };
        Ok((session, valid_from.saturating_sub(leeway)))
    }
}
