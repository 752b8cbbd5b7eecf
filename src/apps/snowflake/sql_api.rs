//! Bearer tokens for the Snowflake SQL API, cached and renewed ahead of expiry.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::token::{KeyPairAuth, MAX_LIFETIME, Token};
use crate::clock::{SystemClock, unix_seconds_strict};
#[cfg(doc)]
use crate::error::ErrorKind;
use crate::error::{Error, Result};
use crate::renewal::{Credential, Issuer, Rotation, RotationOptions, RotationStatus};

/// Lifetime of SQL API tokens unless set otherwise: the one hour Snowflake allows.
pub const DEFAULT_SQL_API_LIFETIME: Duration = MAX_LIFETIME;

/// How long before expiry a cached token is renewed unless set otherwise. It covers clock skew
/// and requests still in flight, and leaves time to retry a failed renewal while the old token
/// is still good.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(300);

/// After a failed renewal, no new attempt before this long; each further failure doubles it,
/// up to [`RETRY_MAX`] (the crate's renewal engine's backoff).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Bearer tokens for the Snowflake SQL API.
///
/// Hands out one cached token to every caller and signs a new one only when the cached token
/// is within `renew_before` of its expiry, so the managed key signs once per
/// `lifetime - renew_before` however many requests are made. The crate's renewal engine
/// ([`renewal::Rotation`](crate::renewal::Rotation)) does the caching: when many tasks find the
/// token due at once, exactly one signs (single flight); the others go on with the current
/// token while it has not expired, or wait for the new one once it has. If that renewal fails
/// while the old token has not expired yet, the old token is returned, and the renewal is
/// tried again by a call at least 5 s later (the backoff doubles with each further failure, up
/// to 60 s). Once the token has expired after a failure, callers get the error at once.
///
/// Cheap to clone; clones share the cache.
///
/// ```no_run
/// # async fn demo(signer: std::sync::Arc<dyn remote_signer::RemoteSigner>) -> remote_signer::Result<()> {
/// use remote_signer::snowflake::{KeyPairAuth, SqlApiTokens};
/// let tokens = SqlApiTokens::new(KeyPairAuth::new(signer, "myorg-myaccount", "jdoe")?);
/// for (name, value) in tokens.bearer_token().await?.sql_api_headers() {
///     // request.header(name, value)
/// #   let _ = (name, value);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqlApiTokens {
    tokens: Rotation<TokenIssuer>,
}

/// Signs SQL API tokens for the renewal engine: each issue is one signature.
#[derive(Debug)]
struct TokenIssuer {
    auth: KeyPairAuth,
    lifetime: Duration,
    renew_before: Duration,
}

/// A token as the renewal engine sees it.
#[derive(Debug)]
struct CachedToken {
    token: Token,
    id: String,
}

impl Credential for CachedToken {
    fn id(&self) -> &str {
        &self.id
    }
    fn not_after(&self) -> SystemTime {
        self.token.expires_at()
    }
}

#[async_trait::async_trait]
impl Issuer for TokenIssuer {
    type Credential = CachedToken;

    async fn issue(&self, now: SystemTime) -> Result<CachedToken> {
        let token = self.auth.token_at(now, self.lifetime).await?;
        let id = format!(
            "token issued at {}",
            unix_seconds_strict(token.issued_at())?
        );
        Ok(CachedToken { token, id })
    }
}

impl SqlApiTokens {
    /// Tokens valid for [`DEFAULT_SQL_API_LIFETIME`], renewed [`DEFAULT_RENEW_BEFORE`] ahead of
    /// expiry.
    pub fn new(auth: KeyPairAuth) -> Self {
        Self::build(auth, DEFAULT_SQL_API_LIFETIME, DEFAULT_RENEW_BEFORE)
    }

    /// Tokens valid for `lifetime`, renewed `renew_before` ahead of their expiry.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if `lifetime` is zero, fractional or over one hour, or if
    /// `renew_before` is not shorter than `lifetime`.
    pub fn with_lifetime(
        auth: KeyPairAuth,
        lifetime: Duration,
        renew_before: Duration,
    ) -> Result<Self> {
        if lifetime.is_zero() || lifetime > MAX_LIFETIME || lifetime.subsec_nanos() != 0 {
            return Err(Error::invalid_input(format!(
                "Snowflake token lifetime must be 1 to {} whole seconds",
                MAX_LIFETIME.as_secs()
            )));
        }
        if renew_before >= lifetime {
            return Err(Error::invalid_input(
                "renewal margin must be shorter than the token lifetime",
            ));
        }
        Ok(Self::build(auth, lifetime, renew_before))
    }

    fn build(auth: KeyPairAuth, lifetime: Duration, renew_before: Duration) -> Self {
        // Whole seconds, as tokens count time.
        let renew_before = Duration::from_secs(renew_before.as_secs());
        let options = RotationOptions::new()
            .refresh_margin(renew_before)
            .jitter(Duration::ZERO)
            .retry_backoff(RETRY_AFTER_FAILURE, RETRY_MAX);
        let issuer = TokenIssuer {
            auth,
            lifetime,
            renew_before,
        };
        SqlApiTokens {
            tokens: Rotation::new(
                issuer,
                Arc::new(SystemClock),
                options,
                Box::new(rand_core::OsRng),
            ),
        }
    }

    /// The account, user and key the tokens are for.
    pub fn auth(&self) -> &KeyPairAuth {
        &self.tokens.issuer().auth
    }

    /// The token lifetime.
    pub fn lifetime(&self) -> Duration {
        self.tokens.issuer().lifetime
    }

    /// Signatures so far, the cached token's expiry, the next renewal and the last failure.
    pub fn status(&self) -> RotationStatus {
        self.tokens.status()
    }

    /// A token valid now, renewed first if it is within the renewal margin of its expiry.
    ///
    /// # Errors
    /// As [`SqlApiTokens::bearer_token_at`].
    pub async fn bearer_token(&self) -> Result<Token> {
        self.bearer_token_at(self.tokens.clock().now()).await
    }

    /// A token valid at `now`, signing a new one only if the cached one is within the renewal
    /// margin of its expiry (the caller that finds it so renews; others meanwhile get the
    /// cached token while it lasts).
    ///
    /// # Errors
    /// The signer's errors when a renewal is due and fails while no unexpired token is cached
    /// (within the backoff after a failure, callers get an error of the same kind without a
    /// new attempt); [`ErrorKind::InvalidInput`] for a time before 1970.
    pub async fn bearer_token_at(&self, now: SystemTime) -> Result<Token> {
        unix_seconds_strict(now)?;
        Ok(self.tokens.get_at(now).await?.token.clone())
    }
}

impl fmt::Debug for SqlApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issuer = self.tokens.issuer();
        f.debug_struct("SqlApiTokens")
            .field("auth", &issuer.auth)
            .field("lifetime", &issuer.lifetime)
            .field("renew_before", &issuer.renew_before)
            .field("status", &self.tokens.status())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<SqlApiTokens>();
        check::<KeyPairAuth>();
        check::<Token>();
    }
}
