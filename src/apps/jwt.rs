//! Key-pair JWTs for the services people sign in to with a key: GitHub Apps, Microsoft Entra
//! ID, Apple push (APNs), and any OAuth server that takes an RFC 7523 client assertion.
//!
//! Each service fixes its token exactly; this module builds those tokens and nothing else, so
//! the managed key signs only signing inputs this crate wrote (the domain-separation rule of
//! the crate: none of these tokens is a session token, and no session token is one of these).
//!
//! | service (its name for the token) | type | header | claims, in this order | limit enforced |
//! |---|---|---|---|---|
//! | GitHub App JWT | [`GitHubAppJwt`] | `{"alg":"RS256","typ":"JWT"}` | `iat` = now - 60, `exp` = now + lifetime, `iss` = app or client id | RSA only; lifetime 540 s by default, 600 s at most |
//! | Entra ID certificate client assertion | [`EntraAssertion`] (feature `x509`) | `{"alg":"PS256","typ":"JWT","x5t#S256":...}` | `aud` = token endpoint, `iss` = `sub` = client id, `jti`, `nbf` = `iat` = now, `exp` | RSA only; the certificate must hold the key; lifetime 600 s by default, 3600 s at most |
//! | APNs provider token | [`ApnsToken`] | `{"alg":"ES256","kid":<key id>}` | `iss` = team id, `iat` = now | P-256 only; Apple takes a token for one hour and refuses new ones more often than every 20 minutes |
//! | RFC 7523 client assertion (`private_key_jwt`) | [`ClientAssertion`] | `{"alg":...}` (+ `"kid"` if given) | `iss`, `sub`, `aud`, `jti`, `iat`, `exp`, then extra claims | lifetime 300 s by default, 3600 s at most; registered claims cannot be overridden |
//!
//! All claims are compact JSON in the order shown, times are integer seconds since 1970, and
//! `jti` is a fresh UUID v4. Every token's signature is checked with the public key before it
//! is returned.
//!
//! # Configuration
//! Each type is made from its required inputs: `new(..)` on the defaults, or `builder(..)`,
//! whose setters (lifetime, clock, and for [`ClientAssertion`] the algorithm, `kid` and extra
//! claims) each document their default, then `build()`, which reports what does not fit (a key
//! of the wrong type, an empty id, a lifetime over the service's cap). A built value is not
//! changed afterwards; its getters read back what it was built with.
//!
//! ```no_run
//! # async fn demo(signer: std::sync::Arc<dyn remote_signer::RemoteSigner>) -> remote_signer::Result<()> {
//! use std::time::Duration;
//! use remote_signer::jwt::ClientAssertion;
//!
//! let token_endpoint = "https://login.example/oauth2/token";
//! let assertion = ClientAssertion::builder(signer, "my-client", "my-client", token_endpoint)
//!     .lifetime(Duration::from_secs(60))
//!     .claim("scope", serde_json::json!("read"))
//!     .build()?;
//! let token = assertion.sign().await?;
//! # let _ = token; Ok(()) }
//! ```
//!
//! # Time and caching
//! Each type reads "now" from its [`Clock`] (the system clock unless the builder's `clock`,
//! such as [`GitHubAppJwtBuilder::clock`], sets another) in `sign()`, or takes it as a
//! parameter in `sign_at(now)`. Each type that makes reusable tokens is an [`Issuer`], so the
//! crate's one renewal engine, [`Rotation`], caches its tokens and renews them ahead of
//! expiry, once however many tasks ask (single flight); `cached()` gives a rotation with the
//! timing the service needs. RFC 7523 assertions are not cached: servers may refuse a `jti`
//! seen before.
//!
//! ```no_run
//! # async fn demo() -> remote_signer::Result<()> {
//! use remote_signer::jwt::GitHubAppJwt;
//! use remote_signer::{KeyRef, OpenOptions};
//!
//! let signer = "app.pem".parse::<KeyRef>()?.open(&OpenOptions::new()).await?;
//! let tokens = GitHubAppJwt::new(signer, "123456")?.cached();
//! let bearer = format!("Bearer {}", tokens.get().await?.as_str());
//! # let _ = bearer; Ok(()) }
//! ```

mod apns;
mod assertion;
#[cfg(feature = "x509")]
mod entra;
mod github;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand_core::{OsRng, RngCore};
use serde::Serialize;

pub use apns::{APNS_MAX_AGE, ApnsToken, ApnsTokenBuilder};
pub use assertion::{
    ASSERTION_DEFAULT_LIFETIME, ASSERTION_MAX_LIFETIME, ClientAssertion, ClientAssertionBuilder,
    REGISTERED_CLAIMS,
};
#[cfg(feature = "x509")]
pub use entra::{
    ENTRA_DEFAULT_LIFETIME, ENTRA_MAX_LIFETIME, EntraAssertion, EntraAssertionBuilder,
};
pub use github::{
    GITHUB_BACKDATE, GITHUB_DEFAULT_LIFETIME, GITHUB_MAX_LIFETIME, GitHubAppJwt,
    GitHubAppJwtBuilder,
};

use crate::clock::{from_unix_seconds, unix_seconds};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, KeyType};
use crate::signer::RemoteSigner;
use crate::surrogate::{Clock, Credential, Issuer, Rotation, RotationOptions};

/// A signed JWT for one of the services above.
///
/// Its text is a bearer credential: `Debug` shows only the kind and times, never the token.
#[derive(Clone)]
pub struct Jwt {
    text: Arc<str>,
    id: String,
    issued_at: SystemTime,
    expires_at: SystemTime,
}

impl Jwt {
    fn new(kind: &str, text: String, iat: u64, expires_at: u64) -> Self {
        Jwt {
            text: text.into(),
            id: format!("{kind} iat={iat}"),
            issued_at: from_unix_seconds(iat),
            expires_at: from_unix_seconds(expires_at),
        }
    }

    /// The compact JWT.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `iat` claim.
    pub fn issued_at(&self) -> SystemTime {
        self.issued_at
    }

    /// The `exp` claim; for an APNs token, which has none, the end of the hour Apple accepts
    /// it for ([`APNS_MAX_AGE`] after `iat`).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("id", &self.id)
            .field("expires_at", &unix_seconds(self.expires_at))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Credential for Jwt {
    fn id(&self) -> &str {
        &self.id
    }

    fn not_after(&self) -> SystemTime {
        self.expires_at
    }
}

/// Refuses a signer whose key is not `want`, naming the service and the key.
fn require_key_type(signer: &dyn RemoteSigner, want: KeyType, service: &str) -> Result<()> {
    let have = signer.key_type();
    if have == want {
        return Ok(());
    }
    Err(Error::with_context(
        ErrorKind::UnsupportedKey,
        format!(
            "{service} needs {} key; {} is {have}",
            match want {
                KeyType::Rsa => "an RSA",
                KeyType::P256 => "an EC P-256",
                _ => "another",
            },
            signer.key_id()
        ),
    ))
}

/// Checks a lifetime: whole seconds, at least 1, at most `max`.
fn check_lifetime(lifetime: Duration, max: Duration, service: &str) -> Result<u64> {
    if lifetime.is_zero() || lifetime.subsec_nanos() != 0 {
        return Err(Error::invalid_input(format!(
            "{service} token lifetime must be a whole number of seconds, at least 1"
        )));
    }
    if lifetime > max {
        return Err(Error::invalid_input(format!(
            "{service} token lifetime of {} s is over the {} s it accepts",
            lifetime.as_secs(),
            max.as_secs()
        )));
    }
    Ok(lifetime.as_secs())
}

/// Refuses an empty value or one with control characters (a claim the service matches).
fn check_text(value: &str, what: &str) -> Result<()> {
    if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!(
            "{what} must be 1 to 1024 characters without control characters"
        )));
    }
    Ok(())
}

fn add(secs: u64, lifetime: u64) -> Result<u64> {
    secs.checked_add(lifetime)
        .ok_or_else(|| Error::invalid_input("token expiry overflows"))
}

/// A fresh UUID v4 in its hyphenated lowercase form, for `jti`.
fn fresh_jti() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Signs `header` and `claims` (serialised compact, fields in declaration order).
async fn sign_json<H: Serialize, C: Serialize>(
    signer: &dyn RemoteSigner,
    algorithm: Algorithm,
    header: &H,
    claims: &C,
) -> Result<String> {
    let input = crate::jws::signing_input(header, claims)?;
    crate::jws::sign(signer, algorithm, input).await
}

/// A rotation of `issuer`'s tokens: renewed `margin` plus up to `jitter` before they expire.
fn rotation<I: Issuer<Credential = Jwt>>(
    issuer: I,
    clock: Arc<dyn Clock>,
    margin: Duration,
    jitter: Duration,
) -> Rotation<I> {
    Rotation::new(
        issuer,
        clock,
        RotationOptions::new().refresh_margin(margin).jitter(jitter),
        Box::new(OsRng),
    )
}
