//! RFC 7523 JWT client assertions (OAuth `private_key_jwt`, OpenID Connect Core section 9).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use super::{Jwt, add, check_lifetime, check_text, fresh_jti, sign_json};
use crate::clock::unix_seconds_strict;
use crate::error::{Error, Result};
use crate::key::Algorithm;
use crate::signer::RemoteSigner;
use crate::surrogate::{Clock, SystemClock};

/// The assertion lifetime unless set otherwise: five minutes.
pub const ASSERTION_DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// The longest assertion lifetime taken: one hour (Google refuses longer; Okta too).
pub const ASSERTION_MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// Claims the assertion sets itself; extra claims cannot replace them.
pub const REGISTERED_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "jti", "iat", "exp", "nbf"];

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: &'a str,
    iat: u64,
    exp: u64,
    extra: &'a [(String, Value)],
}

impl Serialize for Claims<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(6 + self.extra.len()))?;
        map.serialize_entry("iss", self.iss)?;
        map.serialize_entry("sub", self.sub)?;
        map.serialize_entry("aud", self.aud)?;
        map.serialize_entry("jti", self.jti)?;
        map.serialize_entry("iat", &self.iat)?;
        map.serialize_entry("exp", &self.exp)?;
        for (name, value) in self.extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A JWT client assertion (RFC 7523 section 2.2, OAuth `client_assertion_type`
/// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`), for Okta, Salesforce, Google
/// service accounts and any OAuth server that registers the client's public key.
///
/// ```text
/// header  {"alg":"<the key's default, or the one set>","kid":"<if set>"}
/// claims  {"iss":...,"sub":...,"aud":...,"jti":"<fresh UUID v4>","iat":<now>,"exp":<now + lifetime>, <extra claims in order>}
/// ```
///
/// The header carries no `typ` (RFC 7523 defines none), so no assertion is ever mistaken for a
/// session token of this crate, which requires its own. Every call signs a fresh assertion
/// with a fresh `jti`: servers may refuse a `jti` they have seen, so assertions are not cached.
/// [`new`](ClientAssertion::new) takes the defaults; [`builder`](ClientAssertion::builder) sets
/// the algorithm, a `kid`, the lifetime, extra claims or the clock.
#[derive(Clone)]
pub struct ClientAssertion {
    signer: Arc<dyn RemoteSigner>,
    issuer: String,
    subject: String,
    audience: String,
    algorithm: Algorithm,
    kid: Option<String>,
    lifetime: u64,
    extra: Vec<(String, Value)>,
    clock: Arc<dyn Clock>,
}

impl ClientAssertion {
    /// Assertions from `issuer` about `subject` (for a client: both the client id) for
    /// `audience` (usually the token endpoint), signed by `signer` with its default algorithm,
    /// valid for [`ASSERTION_DEFAULT_LIFETIME`], with no `kid` and no extra claims.
    ///
    /// # Errors
    /// As [`ClientAssertionBuilder::build`].
    pub fn new(
        signer: Arc<dyn RemoteSigner>,
        issuer: impl Into<String>,
        subject: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self> {
        Self::builder(signer, issuer, subject, audience).build()
    }

    /// Configures assertions from `issuer` about `subject` for `audience` (as in
    /// [`new`](Self::new)), signed by `signer`.
    pub fn builder(
        signer: Arc<dyn RemoteSigner>,
        issuer: impl Into<String>,
        subject: impl Into<String>,
        audience: impl Into<String>,
    ) -> ClientAssertionBuilder {
        ClientAssertionBuilder {
            signer,
            issuer: issuer.into(),
            subject: subject.into(),
            audience: audience.into(),
            algorithm: None,
            kid: None,
            lifetime: ASSERTION_DEFAULT_LIFETIME,
            extra: Vec::new(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The `iss` claim.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The `aud` claim.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The algorithm assertions are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The header's `kid`, if one is set.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// How long an assertion lives.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime)
    }

    /// The clock [`sign`](Self::sign) reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Signs a fresh assertion for now.
    ///
    /// # Errors
    /// As [`sign_at`](ClientAssertion::sign_at).
    pub async fn sign(&self) -> Result<Jwt> {
        self.sign_at(self.clock.now()).await
    }

    /// Signs a fresh assertion issued at `now`, with a fresh `jti`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a time before 1970; the
    /// signer's errors; [`ErrorKind::Signing`](crate::ErrorKind::Signing) if the signature does
    /// not verify.
    pub async fn sign_at(&self, now: SystemTime) -> Result<Jwt> {
        let iat = unix_seconds_strict(now)?;
        let exp = add(iat, self.lifetime)?;
        let jti = fresh_jti();
        let header = Header {
            alg: self.algorithm.as_str(),
            kid: self.kid.as_deref(),
        };
        let claims = Claims {
            iss: &self.issuer,
            sub: &self.subject,
            aud: &self.audience,
            jti: &jti,
            iat,
            exp,
            extra: &self.extra,
        };
        let text = sign_json(&*self.signer, self.algorithm, &header, &claims).await?;
        Ok(Jwt::new("assertion", text, iat, exp))
    }
}

/// Configures a [`ClientAssertion`]; from [`ClientAssertion::builder`]. Every setter
/// documents its default; [`build`](Self::build) reports what does not fit.
#[must_use]
pub struct ClientAssertionBuilder {
    signer: Arc<dyn RemoteSigner>,
    issuer: String,
    subject: String,
    audience: String,
    algorithm: Option<Algorithm>,
    kid: Option<String>,
    lifetime: Duration,
    extra: Vec<(String, Value)>,
    clock: Arc<dyn Clock>,
}

impl ClientAssertionBuilder {
    /// The algorithm (default: the key's own, RS256 for RSA keys; an RSA key may also use
    /// RS384, RS512 or PS256 to PS512).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }

    /// Puts `kid` in the header (default: none), for servers that pick the client's key by it.
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// How long an assertion lives (default [`ASSERTION_DEFAULT_LIFETIME`], 300 s): whole
    /// seconds, at most [`ASSERTION_MAX_LIFETIME`].
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Adds a claim after the registered ones, in the order added (default: none; `scope`
    /// for Google, for example). It may not be one of [`REGISTERED_CLAIMS`] or given twice.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.push((name.into(), value));
        self
    }

    /// Where [`sign`](ClientAssertion::sign) reads the time (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration and makes the assertion source.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty issuer,
    /// subject, audience or `kid` or one with control characters, a zero or fractional
    /// lifetime or one over [`ASSERTION_MAX_LIFETIME`], and an extra claim that is one of
    /// [`REGISTERED_CLAIMS`], given twice, or has an empty name;
    /// [`ErrorKind::Algorithm`](crate::ErrorKind::Algorithm) for an algorithm that does not fit
    /// the key.
    pub fn build(self) -> Result<ClientAssertion> {
        let ClientAssertionBuilder {
            signer,
            issuer,
            subject,
            audience,
            algorithm,
            kid,
            lifetime,
            extra,
            clock,
        } = self;
        check_text(&issuer, "the assertion issuer")?;
        check_text(&subject, "the assertion subject")?;
        check_text(&audience, "the assertion audience")?;
        let lifetime = check_lifetime(lifetime, ASSERTION_MAX_LIFETIME, "client assertion")?;
        let algorithm = match algorithm {
            Some(algorithm) => {
                algorithm.check_key_type(signer.key_type())?;
                algorithm
            }
            None => signer.default_algorithm(),
        };
        if let Some(kid) = &kid {
            check_text(kid, "the key id")?;
        }
        for (i, (name, _)) in extra.iter().enumerate() {
            check_text(name, "a claim name")?;
            if REGISTERED_CLAIMS.contains(&name.as_str()) {
                return Err(Error::invalid_input(format!(
                    "the claim {name:?} is set by the assertion itself and cannot be given"
                )));
            }
            if extra[..i].iter().any(|(n, _)| n == name) {
                return Err(Error::invalid_input(format!(
                    "the claim {name:?} is given twice"
                )));
            }
        }
        Ok(ClientAssertion {
            signer,
            issuer,
            subject,
            audience,
            algorithm,
            kid,
            lifetime,
            extra,
            clock,
        })
    }
}

impl fmt::Debug for ClientAssertionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAssertionBuilder")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("audience", &self.audience)
            .field("algorithm", &self.algorithm)
            .field("lifetime", &self.lifetime)
            .field("key_id", self.signer.key_id())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAssertion")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("audience", &self.audience)
            .field("algorithm", &self.algorithm)
            .field("lifetime", &self.lifetime)
            .field("key_id", self.signer.key_id())
            .finish_non_exhaustive()
    }
}
