//! GitHub App JWTs ("Generating a JSON Web Token for a GitHub App").

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;

use super::{Jwt, add, check_lifetime, check_text, require_key_type, rotation, sign_json};
use crate::clock::unix_seconds_strict;
use crate::error::Result;
use crate::key::{Algorithm, KeyType};
use crate::signer::RemoteSigner;
use crate::surrogate::{Clock, Issuer, Rotation, SystemClock};

/// How far `iat` is set into the past, as GitHub recommends against clock drift.
pub const GITHUB_BACKDATE: Duration = Duration::from_secs(60);

/// The token lifetime unless set otherwise: nine minutes from now (ten from `iat`).
pub const GITHUB_DEFAULT_LIFETIME: Duration = Duration::from_secs(540);

/// The longest lifetime GitHub accepts: ten minutes.
pub const GITHUB_MAX_LIFETIME: Duration = Duration::from_secs(600);

/// `{"alg":"RS256","typ":"JWT"}`
#[derive(Serialize)]
struct Header {
    alg: &'static str,
    typ: &'static str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iat: u64,
    exp: u64,
    iss: &'a str,
}

/// The JWT a GitHub App signs to authenticate as the app (to list installations or get an
/// installation access token).
///
/// ```text
/// header  {"alg":"RS256","typ":"JWT"}
/// claims  {"iat":<now - 60>,"exp":<now + lifetime>,"iss":"<app id or client id>"}
/// ```
///
/// GitHub accepts RS256 only, so only RSA keys are taken, and refuses tokens that expire more
/// than ten minutes ahead, so the lifetime (counted from now, not from the back-dated `iat`)
/// is at most 600 s. [`cached`](GitHubAppJwt::cached) reuses a token until one to two minutes
/// before it expires. [`new`](GitHubAppJwt::new) takes the defaults;
/// [`builder`](GitHubAppJwt::builder) sets the lifetime or the clock.
#[derive(Clone)]
pub struct GitHubAppJwt {
    signer: Arc<dyn RemoteSigner>,
    issuer: String,
    lifetime: u64,
    clock: Arc<dyn Clock>,
}

impl GitHubAppJwt {
    /// Tokens for the app `app_id` (the numeric app id or the app's client id, put in `iss`
    /// as a string, as given), signed by `signer`, with the default lifetime (540 s) and the
    /// system clock.
    ///
    /// # Errors
    /// As [`GitHubAppJwtBuilder::build`].
    pub fn new(signer: Arc<dyn RemoteSigner>, app_id: impl Into<String>) -> Result<Self> {
        Self::builder(signer, app_id).build()
    }

    /// Configures tokens for the app `app_id` (as in [`new`](Self::new)), signed by `signer`.
    pub fn builder(
        signer: Arc<dyn RemoteSigner>,
        app_id: impl Into<String>,
    ) -> GitHubAppJwtBuilder {
        GitHubAppJwtBuilder {
            signer,
            app_id: app_id.into(),
            lifetime: GITHUB_DEFAULT_LIFETIME,
            clock: Arc::new(SystemClock),
        }
    }

    /// The `iss` claim.
    pub fn app_id(&self) -> &str {
        &self.issuer
    }

    /// How long a token lives from now.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime)
    }

    /// The clock [`sign`](Self::sign) and the cache read.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Signs a token for now.
    ///
    /// # Errors
    /// As [`sign_at`](GitHubAppJwt::sign_at).
    pub async fn sign(&self) -> Result<Jwt> {
        self.sign_at(self.clock.now()).await
    }

    /// Signs a token with `now` as the current time: `iat` = now - 60, `exp` = now + lifetime.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a time before 1970 + 60 s;
    /// the signer's errors; [`ErrorKind::Signing`](crate::ErrorKind::Signing) if the signature
    /// does not verify.
    pub async fn sign_at(&self, now: SystemTime) -> Result<Jwt> {
        let now = unix_seconds_strict(now)?;
        let iat = now
            .checked_sub(GITHUB_BACKDATE.as_secs())
            .ok_or_else(|| crate::Error::invalid_input("time before 1970"))?;
        let exp = add(now, self.lifetime)?;
        let header = Header {
            alg: Algorithm::RS256.as_str(),
            typ: "JWT",
        };
        let claims = Claims {
            iat,
            exp,
            iss: &self.issuer,
        };
        let text = sign_json(&*self.signer, Algorithm::RS256, &header, &claims).await?;
        Ok(Jwt::new("github-app", text, iat, exp))
    }

    /// A cache of tokens that renews each one 60 s plus up to 60 s before it expires (one
    /// signature per seven to eight minutes with the default lifetime), once however many
    /// tasks ask.
    pub fn cached(self) -> Rotation<Self> {
        let clock = self.clock.clone();
        rotation(
            self,
            clock,
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
    }
}

#[async_trait]
impl Issuer for GitHubAppJwt {
    type Credential = Jwt;

    async fn issue(&self, now: SystemTime) -> Result<Jwt> {
        self.sign_at(now).await
    }
}

/// Configures a [`GitHubAppJwt`]; from [`GitHubAppJwt::builder`]. Every setter documents its
/// default; [`build`](Self::build) reports what does not fit.
#[must_use]
pub struct GitHubAppJwtBuilder {
    signer: Arc<dyn RemoteSigner>,
    app_id: String,
    lifetime: Duration,
    clock: Arc<dyn Clock>,
}

impl GitHubAppJwtBuilder {
    /// How long a token lives from now (default [`GITHUB_DEFAULT_LIFETIME`], 540 s): whole
    /// seconds, at most [`GITHUB_MAX_LIFETIME`].
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Where [`sign`](GitHubAppJwt::sign) and the cache read the time (default: the system
    /// clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration and makes the token source. Nothing is signed until first use.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedKey`](crate::ErrorKind::UnsupportedKey) unless the key is RSA;
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty app id or one
    /// with control characters, and for a zero or fractional lifetime or one over
    /// [`GITHUB_MAX_LIFETIME`].
    pub fn build(self) -> Result<GitHubAppJwt> {
        let GitHubAppJwtBuilder {
            signer,
            app_id,
            lifetime,
            clock,
        } = self;
        require_key_type(&*signer, KeyType::Rsa, "a GitHub App JWT (RS256 only)")?;
        check_text(&app_id, "the GitHub App id")?;
        let lifetime = check_lifetime(lifetime, GITHUB_MAX_LIFETIME, "GitHub App")?;
        Ok(GitHubAppJwt {
            signer,
            issuer: app_id,
            lifetime,
            clock,
        })
    }
}

impl fmt::Debug for GitHubAppJwtBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubAppJwtBuilder")
            .field("app_id", &self.app_id)
            .field("lifetime", &self.lifetime)
            .field("key_id", self.signer.key_id())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for GitHubAppJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubAppJwt")
            .field("app_id", &self.issuer)
            .field("lifetime", &self.lifetime)
            .field("key_id", self.signer.key_id())
            .finish_non_exhaustive()
    }
}
