//! Apple Push Notification service provider tokens ("Establishing a token-based connection to
//! APNs").

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;

use super::{Jwt, add, check_text, require_key_type, rotation, sign_json};
use crate::clock::unix_seconds_strict;
use crate::error::Result;
use crate::key::{Algorithm, KeyType};
use crate::signer::RemoteSigner;
use crate::surrogate::{Clock, Issuer, Rotation, SystemClock};

/// How long Apple accepts a provider token after its `iat`: one hour.
pub const APNS_MAX_AGE: Duration = Duration::from_secs(3600);

/// Apple answers 429 `TooManyProviderTokenUpdates` to a new token sooner than this after the
/// last one.
const MIN_REUSE: Duration = Duration::from_secs(20 * 60);

/// The latest a cached token is replaced: 50 minutes after `iat`, ten before Apple stops taking it.
const MAX_REUSE: Duration = Duration::from_secs(50 * 60);

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
}

/// The provider authentication token APNs takes in the `authorization: bearer` header.
///
/// ```text
/// header  {"alg":"ES256","kid":"<10-character key id>"}
/// claims  {"iss":"<team id>","iat":<now>}
/// ```
///
/// APNs accepts ES256 only, so only P-256 keys are taken. A token has no `exp`: Apple takes it
/// for an hour after `iat` ([`APNS_MAX_AGE`]) and answers 429 `TooManyProviderTokenUpdates`
/// when a provider changes tokens more often than every 20 minutes, so
/// [`cached`](ApnsToken::cached) reuses each token for 20 to 50 minutes (chosen at random per
/// token) and signs once per period however many notifications are sent.
/// [`new`](ApnsToken::new) takes the defaults; [`builder`](ApnsToken::builder) sets the clock.
#[derive(Clone)]
pub struct ApnsToken {
    signer: Arc<dyn RemoteSigner>,
    team_id: String,
    key_id: String,
    clock: Arc<dyn Clock>,
}

impl ApnsToken {
    /// Tokens for team `team_id` with the APNs key `key_id` (the key's id in the Apple
    /// developer account), signed by `signer`, reading the system clock.
    ///
    /// # Errors
    /// As [`ApnsTokenBuilder::build`].
    pub fn new(
        signer: Arc<dyn RemoteSigner>,
        team_id: impl Into<String>,
        key_id: impl Into<String>,
    ) -> Result<Self> {
        Self::builder(signer, team_id, key_id).build()
    }

    /// Configures tokens for team `team_id` with the APNs key `key_id` (as in
    /// [`new`](Self::new)), signed by `signer`.
    pub fn builder(
        signer: Arc<dyn RemoteSigner>,
        team_id: impl Into<String>,
        key_id: impl Into<String>,
    ) -> ApnsTokenBuilder {
        ApnsTokenBuilder {
            signer,
            team_id: team_id.into(),
            key_id: key_id.into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The `iss` claim: the team id.
    pub fn team_id(&self) -> &str {
        &self.team_id
    }

    /// The header's `kid`: the APNs key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The clock [`sign`](Self::sign) and the cache read.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Signs a token for now.
    ///
    /// # Errors
    /// As [`sign_at`](ApnsToken::sign_at).
    pub async fn sign(&self) -> Result<Jwt> {
        self.sign_at(self.clock.now()).await
    }

    /// Signs a token issued at `now`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a time before 1970; the
    /// signer's errors; [`ErrorKind::Signing`](crate::ErrorKind::Signing) if the signature does
    /// not verify.
    pub async fn sign_at(&self, now: SystemTime) -> Result<Jwt> {
        let iat = unix_seconds_strict(now)?;
        let header = Header {
            alg: Algorithm::ES256.as_str(),
            kid: &self.key_id,
        };
        let claims = Claims {
            iss: &self.team_id,
            iat,
        };
        let text = sign_json(&*self.signer, Algorithm::ES256, &header, &claims).await?;
        Ok(Jwt::new(
            "apns",
            text,
            iat,
            add(iat, APNS_MAX_AGE.as_secs())?,
        ))
    }

    /// A cache that reuses each token for 20 to 50 minutes, then signs the next, once however
    /// many tasks ask.
    pub fn cached(self) -> Rotation<Self> {
        let clock = self.clock.clone();
        rotation(self, clock, APNS_MAX_AGE - MAX_REUSE, MAX_REUSE - MIN_REUSE)
    }
}

#[async_trait]
impl Issuer for ApnsToken {
    type Credential = Jwt;

    async fn issue(&self, now: SystemTime) -> Result<Jwt> {
        self.sign_at(now).await
    }
}

/// Configures an [`ApnsToken`]; from [`ApnsToken::builder`]. Every setter documents its
/// default; [`build`](Self::build) reports what does not fit.
#[must_use]
pub struct ApnsTokenBuilder {
    signer: Arc<dyn RemoteSigner>,
    team_id: String,
    key_id: String,
    clock: Arc<dyn Clock>,
}

impl ApnsTokenBuilder {
    /// Where [`sign`](ApnsToken::sign) and the cache read the time (default: the system
    /// clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration and makes the token source. Nothing is signed until first use.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedKey`](crate::ErrorKind::UnsupportedKey) unless the key is P-256;
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty id or one with
    /// control characters.
    pub fn build(self) -> Result<ApnsToken> {
        let ApnsTokenBuilder {
            signer,
            team_id,
            key_id,
            clock,
        } = self;
        require_key_type(
            &*signer,
            KeyType::P256,
            "an APNs provider token (ES256 only)",
        )?;
        check_text(&team_id, "the APNs team id")?;
        check_text(&key_id, "the APNs key id")?;
        Ok(ApnsToken {
            signer,
            team_id,
            key_id,
            clock,
        })
    }
}

impl fmt::Debug for ApnsTokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApnsTokenBuilder")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("signer", self.signer.key_id())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ApnsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApnsToken")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("signer", self.signer.key_id())
            .finish_non_exhaustive()
    }
}
