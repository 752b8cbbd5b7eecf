//! Bearer tokens for the Snowflake SQL API, cached and renewed ahead of expiry.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::token::{unix_seconds, KeyPairAuth, Token, MAX_LIFETIME};
use crate::error::{Error, ErrorKind, Result};

/// Lifetime of SQL API tokens unless set otherwise: the one hour Snowflake allows.
pub const DEFAULT_SQL_API_LIFETIME: Duration = MAX_LIFETIME;

/// How long before expiry a cached token is renewed unless set otherwise. It covers clock skew
/// and requests still in flight, and leaves time to retry a failed renewal while the old token
/// is still good.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(300);

/// After a failed renewal, callers get the old token (while it lasts) or the failure's kind
/// without another signing attempt for this long.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Bearer tokens for the Snowflake SQL API.
///
/// Hands out one cached token to every caller and signs a new one only when the cached token
/// is within `renew_before` of its expiry, so the managed key signs once per
/// `lifetime - renew_before` however many requests are made. When many tasks find the token
/// due at once, exactly one signs (single flight); the others go on with the current token
/// while it has not expired, or wait for the new one once it has. If that
/// renewal fails while the old token has not expired yet, the old token is returned, and the
/// renewal is tried again by a call at least 5 s later.
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
    inner: Arc<Inner>,
}

struct Inner {
    auth: KeyPairAuth,
    lifetime: Duration,
    renew_before: u64,
    current: RwLock<Option<Token>>,
    /// Held by the one task that renews; the others queue on it. Holds the last failure.
    renewal: tokio::sync::Mutex<Option<Failure>>,
}

/// A failed renewal, remembered so that callers do not hammer a failing key service.
#[derive(Clone, Copy)]
struct Failure {
    kind: ErrorKind,
    retry_at: u64,
}

impl SqlApiTokens {
    /// Tokens valid for [`DEFAULT_SQL_API_LIFETIME`], renewed [`DEFAULT_RENEW_BEFORE`] ahead of
    /// expiry.
    pub fn new(auth: KeyPairAuth) -> Self {
        Self::build(
            auth,
            DEFAULT_SQL_API_LIFETIME,
            DEFAULT_RENEW_BEFORE.as_secs(),
        )
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
        Ok(Self::build(auth, lifetime, renew_before.as_secs()))
    }

    fn build(auth: KeyPairAuth, lifetime: Duration, renew_before: u64) -> Self {
        SqlApiTokens {
            inner: Arc::new(Inner {
                auth,
                lifetime,
                renew_before,
                current: RwLock::new(None),
                renewal: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The account, user and key the tokens are for.
    pub fn auth(&self) -> &KeyPairAuth {
        &self.inner.auth
    }

    /// The token lifetime.
    pub fn lifetime(&self) -> Duration {
        self.inner.lifetime
    }

    /// A token valid now and for at least the renewal margin.
    ///
    /// # Errors
    /// As [`SqlApiTokens::bearer_token_at`].
    pub async fn bearer_token(&self) -> Result<Token> {
        self.bearer_token_at(SystemTime::now()).await
    }

    /// A token valid at `now` and for at least the renewal margin after it, signing a new one
    /// only if the cached one is due.
    ///
    /// # Errors
    /// The signer's errors when a renewal is due and fails while no unexpired token is cached
    /// (for 5 s after a failure, callers get an error of the same kind without a new attempt);
    /// [`ErrorKind::InvalidInput`] for a time before 1970.
    pub async fn bearer_token_at(&self, now: SystemTime) -> Result<Token> {
        let now_secs = unix_seconds(now)?;
        if let Some(token) = self.cached(now_secs, self.inner.renew_before) {
            return Ok(token);
        }
        let mut renewal = match self.inner.renewal.try_lock() {
            Ok(renewal) => renewal,
            Err(_) => {
                // Another task is renewing: the current token serves until it expires.
                if let Some(token) = self.cached(now_secs, 0) {
                    return Ok(token);
                }
                self.inner.renewal.lock().await
            }
        };
        // Whoever held the lock may have renewed already.
        if let Some(token) = self.cached(now_secs, self.inner.renew_before) {
            return Ok(token);
        }
        if let Some(failure) = renewal.filter(|f| now_secs < f.retry_at) {
            return self.cached(now_secs, 0).ok_or_else(|| {
                Error::with_context(
                    failure.kind,
                    format!(
                        "renewing the Snowflake SQL API token failed; next try in {} s",
                        failure.retry_at - now_secs
                    ),
                )
            });
        }
        match self.inner.auth.token_at(now, self.inner.lifetime).await {
            Ok(token) => {
                *renewal = None;
                *self
                    .inner
                    .current
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
                Ok(token)
            }
            Err(error) => {
                *renewal = Some(Failure {
                    kind: error.kind(),
                    retry_at: now_secs.saturating_add(RETRY_AFTER_FAILURE.as_secs()),
                });
                // The old token still works until it expires; the margin exists for this.
                self.cached(now_secs, 0).ok_or(error)
            }
        }
    }

    /// The cached token if it is valid for more than `margin` seconds after `now`.
    fn cached(&self, now: u64, margin: u64) -> Option<Token> {
        let current = self.inner.current.read().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|token| now.saturating_add(margin) < token.expires_at_secs())
            .cloned()
    }
}

impl fmt::Debug for SqlApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlApiTokens")
            .field("auth", &self.inner.auth)
            .field("lifetime", &self.inner.lifetime)
            .field("renew_before_secs", &self.inner.renew_before)
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
