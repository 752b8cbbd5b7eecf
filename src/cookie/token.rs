//! Issuing and verifying session tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::jws;
use crate::key::Algorithm;
use crate::signer::RemoteSigner;
use crate::surrogate::{
    from_unix_seconds, unix_seconds, CertificateInfo, CertifiedKey, Clock, SurrogateSigner,
    SurrogateVerifier, SystemClock, TrustedKey,
};

/// The default token lifetime (one hour).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// The default cap on a token's length, checked before any decoding (8 KiB).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The claims this module sets itself; an application's claims may not use them.
pub const RESERVED_CLAIMS: [&str; 3] = ["iat", "exp", "aud"];

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<Value>,
}

const TOKEN_TYP: &str = "JWT";

enum Mode {
    Direct {
        managed: Arc<dyn RemoteSigner>,
        algorithm: Algorithm,
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
/// let signer = SessionSigner::surrogate(managed.clone(), "session")?;
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
            Mode::Direct { managed, algorithm } => d
                .field("mode", &SigningMode::Direct)
                .field("managed", managed.key_id())
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
    /// Surrogate mode (the default choice) with a new [`SurrogateSigner`] for `purpose` on the
    /// defaults: the managed key signs once per hour.
    ///
    /// # Errors
    /// As [`SurrogateSigner::new`].
    pub fn surrogate(managed: Arc<dyn RemoteSigner>, purpose: impl Into<String>) -> Result<Self> {
        let purpose = purpose.into();
        let signer = SurrogateSigner::new(managed, purpose.clone())?;
        Self::with_surrogate(signer, purpose)
    }

    /// Surrogate mode with a configured [`SurrogateSigner`] (its clock is used too).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] if the surrogates are not certified for `purpose`.
    pub fn with_surrogate(signer: SurrogateSigner, purpose: impl Into<String>) -> Result<Self> {
        let purpose = purpose.into();
        if !signer.purposes().contains(&purpose) {
            return Err(Error::with_context(
                ErrorKind::Config,
                format!("the surrogate signer is not certified for purpose {purpose:?}"),
            ));
        }
        Ok(SessionSigner {
            clock: signer.clock().clone(),
            mode: Mode::Surrogate(signer),
            header_cache: Default::default(),
            purpose,
            ttl: DEFAULT_TTL,
        })
    }

    /// Direct mode: the managed key signs every token with its default algorithm. For low
    /// volume only (each token is one managed-key operation).
    pub fn direct(managed: Arc<dyn RemoteSigner>, purpose: impl Into<String>) -> Self {
        let algorithm = managed.default_algorithm();
        SessionSigner {
            mode: Mode::Direct { managed, algorithm },
            header_cache: Default::default(),
            purpose: purpose.into(),
            ttl: DEFAULT_TTL,
            clock: Arc::new(SystemClock),
        }
    }

    /// The lifetime of tokens from [`sign`](Self::sign) (default one hour).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Where time comes from (default: the system clock, or the surrogate signer's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
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

    /// The configured token lifetime.
    pub fn get_ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs the application's `claims` (a JSON object) with the default lifetime.
    ///
    /// # Errors
    /// As [`sign_with_ttl`](Self::sign_with_ttl).
    pub async fn sign<C: Serialize + ?Sized>(&self, claims: &C) -> Result<String> {
        self.sign_with_ttl(claims, self.ttl).await
    }

    /// Signs the application's `claims` (a JSON object without `iat`, `exp` or `aud`), adding
    /// `iat` = now, `exp` = now + `ttl` and `aud` = the purpose.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if `claims` is not a JSON object or uses a reserved claim;
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
        if let Some(reserved) = RESERVED_CLAIMS.iter().find(|c| claims.contains_key(**c)) {
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
            Mode::Direct { managed, algorithm } => {
                let header = Header {
                    alg: algorithm.as_str().into(),
                    kid: Some(managed.key_id().as_str().into()),
                    typ: Some(TOKEN_TYP.into()),
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

impl SessionSigner {
    /// `base64url(header)` for tokens signed by `key`, encoded once per surrogate.
    fn surrogate_header(&self, key: &Arc<CertifiedKey>) -> Result<Arc<str>> {
        let mut cache = self
            .header_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((cached_key, header)) = &*cache {
            if std::ptr::eq(cached_key.as_ptr(), Arc::as_ptr(key)) {
                return Ok(header.clone());
            }
        }
        let header = Header {
            alg: Algorithm::EdDSA.as_str().into(),
            kid: Some(key.thumbprint().into()),
            typ: Some(TOKEN_TYP.into()),
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

/// A verified session: the token's claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    claims: Map<String, Value>,
    issued_at: u64,
    expires_at: u64,
    mode: SigningMode,
}

impl Session {
    /// All claims, including `iat`, `exp` and `aud`.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// One claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// The claims as the application's own type.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the claims do not fit `T`.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&Value::Object(self.claims.clone()))
            .map_err(|_| Error::invalid_input("session claims do not fit the requested type"))
    }

    /// `iat`.
    pub fn issued_at(&self) -> SystemTime {
        from_unix_seconds(self.issued_at)
    }

    /// `exp`.
    pub fn expires_at(&self) -> SystemTime {
        from_unix_seconds(self.expires_at)
    }

    /// Seconds from `now` until expiry (0 once expired): a cookie's `Max-Age`.
    pub fn max_age_at(&self, now: SystemTime) -> u64 {
        self.expires_at.saturating_sub(unix_seconds(now))
    }

    /// How the token was signed.
    pub fn mode(&self) -> SigningMode {
        self.mode
    }
}

/// Verifies session tokens for one purpose with nothing but trusted managed public keys.
///
/// Follows RFC 8725: the algorithm comes from the trusted key (or, in surrogate mode, from the
/// certified Ed25519 key), never from the token, so `none`, HMAC keyed with a public key and
/// algorithm swaps fail; input longer than the cap is refused before any decoding; the
/// audience must be the purpose; times are checked with a bounded leeway. Errors are
/// [`ErrorKind::InvalidToken`] or [`ErrorKind::Expired`] with a coarse reason fit for logs.
pub struct SessionVerifier {
    trusted: Vec<TrustedKey>,
    surrogates: SurrogateVerifier,
    purpose: String,
    leeway: Duration,
    max_len: usize,
    clock: Arc<dyn Clock>,
    /// Encoded surrogate-mode headers that passed every header check, with their certificate.
    headers: RwLock<HashMap<Box<str>, Arc<CertificateInfo>>>,
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
            .finish_non_exhaustive()
    }
}

fn invalid(reason: &str) -> Error {
    Error::with_context(ErrorKind::InvalidToken, reason.to_string())
}

impl SessionVerifier {
    /// Accepts tokens for `purpose` signed (directly or through a certified surrogate) by any
    /// of `trusted`.
    pub fn new(trusted: impl IntoIterator<Item = TrustedKey>, purpose: impl Into<String>) -> Self {
        let trusted: Vec<TrustedKey> = trusted.into_iter().collect();
        let leeway = crate::surrogate::DEFAULT_LEEWAY;
        SessionVerifier {
            surrogates: SurrogateVerifier::new(trusted.clone()).leeway(leeway),
            trusted,
            purpose: purpose.into(),
            leeway,
            max_len: DEFAULT_MAX_TOKEN_LEN,
            clock: Arc::new(SystemClock),
            headers: RwLock::new(HashMap::new()),
        }
    }

    /// The allowance for clock differences (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        let trusted = self.trusted.clone();
        self.surrogates = SurrogateVerifier::new(trusted).leeway(leeway);
        self.headers = RwLock::new(HashMap::new());
        self
    }

    /// The longest token accepted, in bytes (default 8 KiB).
    pub fn max_token_len(mut self, max: usize) -> Self {
        self.max_len = max;
        self
    }

    /// Where time comes from (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The purpose tokens must carry as `aud`.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// Verifies `token` now.
    ///
    /// # Errors
    /// As [`verify_at`](Self::verify_at).
    pub fn verify(&self, token: &str) -> Result<Session> {
        self.verify_at(token, self.clock.now())
    }

    /// Verifies `token` at time `now`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidToken`] for a token too large, malformed, not signed by a trusted
    /// key (or a surrogate certified by one for this purpose), using an algorithm the key does
    /// not allow, or for another audience; [`ErrorKind::Expired`] for a token (or, in surrogate
    /// mode, one whose certificate) is expired or not yet valid.
    pub fn verify_at(&self, token: &str, now: SystemTime) -> Result<Session> {
        if token.len() > self.max_len {
            return Err(invalid("token is larger than allowed"));
        }
        let parts = jws::split(token, "token")?;
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
        if header.typ.as_deref() != Some(TOKEN_TYP) {
            return Err(invalid("token is not a session token (typ)"));
        }
        let (mode, certificate) = match &header.cert {
            Some(cert) => {
                let info = self
                    .surrogates
                    .verify_certificate_at(cert, &self.purpose, now)?;
                if header.alg != Algorithm::EdDSA.as_str() {
                    return Err(invalid("token algorithm does not fit its key"));
                }
                if header.kid.as_deref() != Some(info.subject()) {
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
                let kid = header.kid.as_deref().unwrap_or_default();
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
    ) -> Result<Session> {
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
        match certificate {
            Some(info) => self.surrogates.check_token_times(&info, iat, exp, now)?,
            None => {
                let leeway = self.leeway.as_secs();
                let now = unix_seconds(now);
                if exp < iat {
                    return Err(invalid("token expires before it was issued"));
                }
                if now.saturating_add(leeway) < iat {
                    return Err(Error::with_context(
                        ErrorKind::Expired,
                        "token is not yet valid",
                    ));
                }
                if now > exp.saturating_add(leeway) {
                    return Err(Error::with_context(ErrorKind::Expired, "token has expired"));
                }
            }
        }
        Ok(Session {
            claims,
            issued_at: iat,
            expires_at: exp,
            mode,
        })
    }
}
