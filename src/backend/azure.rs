//! Azure Key Vault and Managed HSM keys, through the official SDK (feature `azure`).
//!
//! A [`KeyVaultSigner`] signs with one key version held by Key Vault. Only the digest of a
//! message leaves the process; the signature that comes back is verified locally against the
//! public key fetched at start before it is handed out, so a wrong key or a tampered reply is
//! caught.
//!
//! ```no_run
//! # async fn demo() -> remote_signer::Result<()> {
//! use remote_signer::backend::azure::KeyVaultSigner;
//! use remote_signer::{Algorithm, RemoteSigner};
//!
//! let signer = KeyVaultSigner::builder("https://myvault.vault.azure.net/keys/signing")
//!     .build()
//!     .await?;
//! // The version that was current at start is pinned:
//! println!("signing with {}", signer.key_id());
//! let signature = signer.sign(Algorithm::RS256, b"message").await?;
//! # Ok(()) }
//! ```
//!
//! # Key URLs
//! `https://<vault>.vault.azure.net/keys/<name>[/<version>]` as the portal shows it (also the
//! sovereign clouds and `https://<hsm>.managedhsm.azure.net/keys/...`). Without a version the
//! current version is resolved once, at [`build`](KeyVaultSignerBuilder::build), and pinned:
//! [`key_id`](crate::RemoteSigner::key_id) is then the full versioned URL the service returned.
//!
//! # Credentials
//! Unless the builder is given a [`TokenCredential`], credentials come from the standard
//! environment in the order the other Azure SDKs' `DefaultAzureCredential` uses (see
//! [`DefaultCredential`]).
//!
//! # TLS
//! The SDK's HTTP transport is `reqwest` 0.13 over rustls with the ring provider (the SDK's
//! default TLS features, which bring aws-lc, are not used). Trusted roots are the system's
//! plus the certificates in `SSL_CERT_FILE` (and `SSL_CERT_DIR`) when set, which is how a
//! private CA or an emulator's CA is trusted;
//! [`KeyVaultSignerBuilder::add_root_certificate_pem`] adds roots in code.
//!
//! # Retries and errors
//! Throttling (429, honouring `Retry-After` in seconds or as an HTTP-date, `retry-after-ms` and
//! `x-ms-retry-after-ms`), 5xx answers, dropped connections and attempts that exceed their
//! timeout are retried with exponential backoff, within a bound on retries and on the total
//! time ([`RetryPolicy`]). The waits and the time bound run on a [`RetryTimer`] (real time by
//! default; [`KeyVaultSignerBuilder::retry_timer`] lets tests run them without waiting).
//! Failures map to [`ErrorKind`]s:
//!
//! | what happened | kind |
//! |---|---|
//! | 401, 403 (`Forbidden`, `ForbiddenByRbac`), no credential | `PermissionDenied` |
//! | 404 (`KeyNotFound`) | `KeyNotFound` |
//! | key disabled, before `nbf` or after `exp` | `KeyDisabled` |
//! | still 429 after the allowed retries or time | `Throttled` |
//! | still 5xx or unreachable (connection, TLS) | `Unavailable` |
//! | the last attempt exceeded its timeout | `Timeout` |
//! | a challenge naming another resource | `Config` |
//!
//! The error's text carries the HTTP status, the Azure error code (and inner code) and the
//! `x-ms-request-id`; never a token, a digest or a response body.
//!
//! # Failure behaviour
//! What [`sign`](crate::RemoteSigner::sign) returns when the vault, its token endpoint or the
//! network fails for good, with the [`RetryPolicy`] bounding every case by `max_elapsed`.
//! `tests/faults.rs` checks each row against the Key Vault emulator over real TLS (3 retries,
//! 1 s per attempt, 3 s in all, the waits and the bound on a timer that skips the waits),
//! together with the cookie and ssh behaviour below the table.
//!
//! | fault | `sign` returns | attempts |
//! |---|---|---|
//! | 429 storm without `Retry-After` | `Throttled` | 1 + `max_retries` |
//! | 429 storm with `Retry-After` that fits the budget | `Throttled`, after waiting as asked | as many as fit |
//! | 429 with `Retry-After` beyond the budget | `Throttled` ("the service asked to wait ...") at once | 1 |
//! | 5xx storm | `Unavailable` | 1 + `max_retries` |
//! | replies slower than `attempt_timeout` | `Timeout` | as many as fit |
//! | dropped connections, TLS handshakes cut short | `Unavailable` | 1 + `max_retries` |
//! | a server certificate that is not trusted | `Unavailable` ("certificate is not trusted") | 1 (2 when a pooled connection closed first) |
//! | token endpoint: 5xx, unreachable | `Unavailable` | 1 + `max_retries` |
//! | token endpoint: 429 | `Throttled` | 1 + `max_retries` |
//! | token endpoint: slow | `Timeout` | as many as fit |
//! | token endpoint refuses the credential (a rotated secret) | `PermissionDenied` | 1 |
//! | key disabled, or outside its `nbf`/`exp` | `KeyDisabled` | 1 |
//! | access revoked (403) | `PermissionDenied` | 1 |
//! | key deleted | `KeyNotFound` | 1 |
//! | a reply whose signature does not verify | `InvalidSignature` | 1 |
//! | a burst shorter than the retries | the signature (only the latency shows) | failures + 1 |
//!
//! Token endpoint faults are felt only once the token in hand expires: the SDK refreshes
//! tokens 5 minutes before they expire and keeps using the old one while refreshing fails.
//!
//! Meanwhile, what is built on surrogates rides the fault out:
//! - [`SurrogateSigner`](crate::surrogate::SurrogateSigner) and the session cookies on it keep
//!   signing with the current surrogate until its certificate expires, retrying the
//!   certification in the background with backoff. After expiry, signing fails with the
//!   fault's kind and says the certificate expired; it recovers by itself once the vault does.
//! - The [ssh-agent](crate::ssh) in certificate mode keeps offering its certificate until it
//!   expires, logging each failed renewal (with the error kind) at `error`; then it offers
//!   none, so logins fail rather than present an expired certificate. It renews by itself
//!   (a failed renewal is retried after 5 s) once the vault is back.
//!
//! In short, a vault outage shorter than the surrogate certificates' remaining validity is not
//! seen by cookie or ssh users at all.
//!
//! # Cost
//! [`KeyVaultSigner::stats`] counts remote operations and their outcomes; share one
//! [`OperationStats`] among signers with [`KeyVaultSignerBuilder::stats`].

use super::check;
use super::safe_text;
mod credential;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod retry;
use super::stats;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use azure_core::http::{ClientOptions, RetryOptions, Transport, Url};
use azure_security_keyvault_keys::models::{
    CurveName, Key, KeyClientGetKeyOptions, KeyClientSignOptions, KeyType as AzKeyType,
    SignParameters, SignatureAlgorithm,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, KeyType, PublicKey, Signature};
use crate::signer::{KeyId, RemoteSigner};

pub use azure_core::credentials::TokenCredential;
pub use credential::DefaultCredential;
pub use retry::{RetryPolicy, RetryTimer, TokioTimer};
pub use stats::{OperationCounts, OperationStats, StatsSnapshot};

use error::Operation;

/// A parsed Key Vault key URL: the vault endpoint, the key name, and the version if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUrl {
    vault: Url,
    name: String,
    version: Option<String>,
}

impl KeyUrl {
    /// Parses `https://<vault>/keys/<name>[/<version>]` (a trailing `/` is accepted).
    ///
    /// # Errors
    /// [`ErrorKind::KeyRef`] when the URL is not an `https` Key Vault key URL.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| Error::with_context(ErrorKind::KeyRef, why.to_string());
        let parsed = Url::parse(url).map_err(|_| bad("not a URL"))?;
        if parsed.scheme() != "https" {
            return Err(bad("Key Vault URLs must use https"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("Key Vault URL without a host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("Key Vault key URL must not have a query or fragment"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("Key Vault key URL must not carry user information"));
        }
        let path = parsed.path().trim_end_matches('/');
        let mut parts = path.trim_start_matches('/').split('/');
        if parts.next() != Some("keys") {
            return Err(bad(
                "expected https://<vault>.vault.azure.net/keys/<name>[/<version>]",
            ));
        }
        let name = parts.next().filter(|n| !n.is_empty()).ok_or_else(|| {
            bad("expected https://<vault>.vault.azure.net/keys/<name>[/<version>]")
        })?;
        let version = parts.next();
        if parts.next().is_some() {
            return Err(bad("Key Vault key URL has too many path segments"));
        }
        let valid_name =
            name.len() <= 127 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid_name {
            return Err(bad("key names are 1 to 127 letters, digits and dashes"));
        }
        if let Some(v) = version
            && (v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(bad("key versions are letters and digits"));
        }
        let mut vault = parsed.clone();
        vault.set_path("/");
        Ok(KeyUrl {
            vault,
            name: name.to_string(),
            version: version.map(str::to_string),
        })
    }

    /// The vault endpoint, `https://<vault>/`.
    pub fn vault(&self) -> &str {
        self.vault.as_str()
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key version, if the URL names one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    fn display_id(&self) -> String {
        let host = self.vault.host_str().unwrap_or_default();
        let host = match self.vault.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        match &self.version {
            Some(v) => format!("{host}/keys/{}/{v}", self.name),
            None => format!("{host}/keys/{}", self.name),
        }
    }
}

impl fmt::Display for KeyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}keys/{}", self.vault, self.name)?;
        if let Some(v) = &self.version {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Builds a [`KeyVaultSigner`]. Setters document their defaults; problems with the given
/// values are reported by [`build`](KeyVaultSignerBuilder::build).
#[must_use]
pub struct KeyVaultSignerBuilder {
    url: String,
    credential: Option<Arc<dyn TokenCredential>>,
    environment: Option<HashMap<String, String>>,
    verify_challenge_resource: bool,
    retry: RetryPolicy,
    retry_timer: Arc<dyn RetryTimer>,
    extra_roots: Vec<Vec<u8>>,
    http_client: Option<reqwest::Client>,
    stats: Option<Arc<OperationStats>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for KeyVaultSignerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVaultSignerBuilder")
            .field("url", &self.url)
            .field("credential", &self.credential.is_some())
            .field("verify_challenge_resource", &self.verify_challenge_resource)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl KeyVaultSignerBuilder {
    fn new(url: &str) -> Self {
        KeyVaultSignerBuilder {
            url: url.to_string(),
            credential: None,
            environment: None,
            verify_challenge_resource: true,
            retry: RetryPolicy::default(),
            retry_timer: Arc::new(TokioTimer),
            extra_roots: Vec::new(),
            http_client: None,
            stats: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Authenticates with `credential` instead of the standard environment
    /// (default: [`DefaultCredential`]).
    pub fn credential(mut self, credential: Arc<dyn TokenCredential>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Reads the standard variables of [`DefaultCredential`] (`AZURE_TENANT_ID`, ...) from
    /// `vars` instead of the process environment (default: the process environment). Ignored
    /// when a [`credential`](Self::credential) is given.
    pub fn environment(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.environment = Some(vars.into_iter().collect());
        self
    }

    /// Whether the resource named in the vault's authentication challenge must match the vault's
    /// domain (default: `true`, the SDK's check). Switch it off only for emulators and private
    /// endpoints whose host is not under the Key Vault domain.
    pub fn verify_challenge_resource(mut self, verify: bool) -> Self {
        self.verify_challenge_resource = verify;
        self
    }

    /// Retries, per-attempt timeout and total time bound (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Waits between retries, and measures the retry policy's time bound, on `timer`
    /// (default: [`TokioTimer`], real time). A timer whose waits cost no real time lets tests
    /// run a whole retry policy at once.
    pub fn retry_timer(mut self, timer: Arc<dyn RetryTimer>) -> Self {
        self.retry_timer = timer;
        self
    }

    /// Where the time of day comes from (default the system clock): for the key's
    /// not-before and expiry attributes at [`build`](Self::build), and for a `Retry-After`
    /// given as an HTTP date.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Trusts the CA certificates in `pem` in addition to the system's roots (default: none).
    pub fn add_root_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.extra_roots.push(pem.as_ref().to_vec());
        self
    }

    /// Sends requests (to the vault and to the token endpoints of the default credentials)
    /// through this client instead of the one built here (default: rustls with the system's
    /// roots). Roots added with [`add_root_certificate_pem`](Self::add_root_certificate_pem) are
    /// then ignored.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Counts this signer's remote operations in `stats` (default: counters of its own).
    pub fn stats(mut self, stats: Arc<OperationStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Resolves the key (pinning the current version when the URL names none), fetches and
    /// checks its public key.
    ///
    /// # Errors
    /// [`ErrorKind::KeyRef`] for a malformed URL; [`ErrorKind::Config`] when no credential is
    /// configured or a root certificate is malformed; [`ErrorKind::UnsupportedKey`] for keys
    /// that cannot sign here (symmetric, P-521, RSA outside 2048-4096 bits, no `sign`
    /// operation); [`ErrorKind::KeyDisabled`] for a disabled key or one outside its
    /// `nbf`/`exp`; and the remote errors listed in the [module docs](self).
    pub async fn build(self) -> Result<KeyVaultSigner> {
        let url = KeyUrl::parse(&self.url)?;
        let http = match self.http_client {
            Some(client) => client,
            None => transport::http_client(&self.extra_roots, self.retry.connect_timeout())?,
        };
        let client_options = ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            // Retries happen in this crate, bounded in count and time.
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        };
        let credential = match self.credential {
            Some(credential) => credential,
            None => match &self.environment {
                Some(vars) => {
                    DefaultCredential::from_vars(|k| vars.get(k).cloned(), client_options.clone())?
                }
                None => DefaultCredential::from_env(client_options.clone())?,
            },
        };
        let options = KeyClientOptions {
            client_options,
            verify_challenge_resource: Some(self.verify_challenge_resource),
            ..KeyClientOptions::default()
        };
        let client = KeyClient::new(url.vault(), credential, Some(options)).map_err(|_| {
            Error::with_context(ErrorKind::Config, "cannot create Key Vault client")
        })?;
        let stats = self.stats.unwrap_or_default();
        let caller = retry::Caller::new(
            self.retry,
            stats.clone(),
            self.retry_timer,
            self.clock.clone(),
        );

        let what = url.display_id();
        let key: Key = caller
            .call(Operation::GetKey, &what, || {
                let options = KeyClientGetKeyOptions {
                    key_version: url.version.clone(),
                    ..Default::default()
                };
                let client = &client;
                let name = url.name.as_str();
                async move { client.get_key(name, Some(options)).await?.into_model() }
            })
            .await?;
        let resolved = ResolvedKey::from_bundle(&url, &key, &what)?;
        resolved.check_usable(self.clock.now(), &what)?;
        Ok(KeyVaultSigner {
            key_id: KeyId::new(resolved.kid),
            display: format!("{}/keys/{}/{}", host_of(&url), url.name, resolved.version),
            check: check::SignatureCheck::new(&resolved.public_key),
            public_key: resolved.public_key,
            name: url.name,
            version: resolved.version,
            client,
            caller,
        })
    }
}

fn host_of(url: &KeyUrl) -> String {
    let host = url.vault.host_str().unwrap_or_default();
    match url.vault.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// What the key bundle says about the pinned version.
struct ResolvedKey {
    kid: String,
    version: String,
    public_key: PublicKey,
    enabled: bool,
    not_before: Option<i64>,
    expires: Option<i64>,
}

impl ResolvedKey {
    fn from_bundle(url: &KeyUrl, key: &Key, what: &str) -> Result<Self> {
        let protocol =
            |why: &str| Error::with_context(ErrorKind::Protocol, format!("{what}: {why}"));
        let unsupported =
            |why: &str| Error::with_context(ErrorKind::UnsupportedKey, format!("{what}: {why}"));
        let jwk = key
            .key
            .as_ref()
            .ok_or_else(|| protocol("no key in reply"))?;
        let kid = jwk
            .kid
            .clone()
            .ok_or_else(|| protocol("no key id in reply"))?;
        let returned = KeyUrl::parse(&kid).map_err(|_| protocol("malformed key id in reply"))?;
        let version = returned
            .version
            .clone()
            .ok_or_else(|| protocol("key id in reply has no version"))?;
        if returned.name != url.name || url.version.as_ref().is_some_and(|v| *v != version) {
            return Err(protocol("reply names another key"));
        }
        if let Some(ops) = &jwk.key_ops
            && !ops.iter().any(|op| op == "sign")
        {
            return Err(unsupported("the key does not permit the sign operation"));
        }
        let field = |name: &str, value: &Option<Vec<u8>>| {
            value
                .clone()
                .ok_or_else(|| protocol(&format!("key lacks \"{name}\"")))
        };
        let public_key = match jwk.kty.as_ref() {
            Some(AzKeyType::Rsa | AzKeyType::RsaHsm) => {
                PublicKey::from_rsa_components(&field("n", &jwk.n)?, &field("e", &jwk.e)?)?
            }
            Some(AzKeyType::Ec | AzKeyType::EcHsm) => {
                let key_type = match jwk.crv.as_ref() {
                    Some(CurveName::P256) => KeyType::P256,
                    Some(CurveName::P384) => KeyType::P384,
                    Some(CurveName::P256K) => KeyType::K256,
                    Some(other) => {
                        return Err(unsupported(&format!(
                            "curve {} is not supported",
                            safe_text(other.as_ref(), 16)
                        )));
                    }
                    None => return Err(protocol("EC key without a curve")),
                };
                PublicKey::from_ec_coordinates(
                    key_type,
                    &field("x", &jwk.x)?,
                    &field("y", &jwk.y)?,
                )?
            }
            Some(other) => {
                return Err(unsupported(&format!(
                    "key type {} cannot sign",
                    safe_text(other.as_ref(), 16)
                )));
            }
            None => return Err(protocol("key without a type")),
        };
        let attributes = key.attributes.as_ref();
        Ok(ResolvedKey {
            kid,
            version,
            public_key,
            enabled: attributes.and_then(|a| a.enabled).unwrap_or(true),
            not_before: attributes
                .and_then(|a| a.not_before)
                .map(|t| t.unix_timestamp()),
            expires: attributes
                .and_then(|a| a.expires)
                .map(|t| t.unix_timestamp()),
        })
    }

    /// Refuses a key that Key Vault would refuse to sign with at `now`.
    fn check_usable(&self, now: SystemTime, what: &str) -> Result<()> {
        let now = i64::try_from(crate::clock::unix_seconds(now)).unwrap_or(i64::MAX);
        let disabled =
            |why: &str| Error::with_context(ErrorKind::KeyDisabled, format!("{what}: {why}"));
        if !self.enabled {
            return Err(disabled("the key is disabled"));
        }
        if self.not_before.is_some_and(|nbf| now < nbf) {
            return Err(disabled("the key is not valid yet (nbf)"));
        }
        if self.expires.is_some_and(|exp| now >= exp) {
            return Err(disabled("the key has expired (exp)"));
        }
        Ok(())
    }
}

/// Signs with one pinned version of a Key Vault or Managed HSM key.
///
/// Cheap to share as `Arc<dyn RemoteSigner>`; all clones of the `Arc` use one HTTP connection
/// pool and one token cache.
pub struct KeyVaultSigner {
    key_id: KeyId,
    display: String,
    public_key: PublicKey,
    check: check::SignatureCheck,
    name: String,
    version: String,
    client: KeyClient,
    caller: retry::Caller,
}

impl KeyVaultSigner {
    /// A builder for the key at `url` (`https://<vault>.vault.azure.net/keys/<name>[/<version>]`).
    pub fn builder(url: &str) -> KeyVaultSignerBuilder {
        KeyVaultSignerBuilder::new(url)
    }

    /// Opens the key at `url` with the defaults: credentials from the environment, the SDK's
    /// challenge check, [`RetryPolicy::default`].
    ///
    /// # Errors
    /// As [`KeyVaultSignerBuilder::build`].
    pub async fn open(url: &str) -> Result<Self> {
        Self::builder(url).build().await
    }

    /// The pinned key version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Counts of this signer's remote operations and their outcomes.
    pub fn stats(&self) -> StatsSnapshot {
        self.caller.stats().snapshot()
    }

    /// The shared counters behind [`stats`](Self::stats).
    pub fn operation_stats(&self) -> &Arc<OperationStats> {
        self.caller.stats()
    }
}

impl fmt::Debug for KeyVaultSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVaultSigner")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

fn sdk_algorithm(alg: Algorithm) -> Option<SignatureAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => SignatureAlgorithm::Rs256,
        Algorithm::RS384 => SignatureAlgorithm::Rs384,
        Algorithm::RS512 => SignatureAlgorithm::Rs512,
        Algorithm::PS256 => SignatureAlgorithm::Ps256,
        Algorithm::PS384 => SignatureAlgorithm::Ps384,
        Algorithm::PS512 => SignatureAlgorithm::Ps512,
        Algorithm::ES256 => SignatureAlgorithm::Es256,
        Algorithm::ES384 => SignatureAlgorithm::Es384,
        Algorithm::ES256K => SignatureAlgorithm::Es256K,
        _ => return None,
    })
}

#[async_trait]
impl RemoteSigner for KeyVaultSigner {
    fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    async fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature> {
        algorithm.check_key_type(self.public_key.key_type())?;
        let (Some(sdk_alg), Some(hash)) = (sdk_algorithm(algorithm), algorithm.hash()) else {
            return Err(Error::algorithm(format!(
                "{algorithm} is not offered by Key Vault"
            )));
        };
        let digest = hash.digest(message);
        let result = self
            .caller
            .call(Operation::Sign, &self.display, || {
                let parameters = SignParameters {
                    algorithm: Some(sdk_alg.clone()),
                    value: Some(digest.clone()),
                };
                let options = KeyClientSignOptions {
                    key_version: Some(self.version.clone()),
                    ..Default::default()
                };
                async move {
                    self.client
                        .sign(&self.name, parameters.try_into()?, Some(options))
                        .await?
                        .into_model()
                }
            })
            .await?;
        let protocol = |why: &str| {
            Error::with_context(ErrorKind::Protocol, format!("{}: {why}", self.display))
        };
        if let Some(kid) = &result.kid {
            let returned = KeyUrl::parse(kid).map_err(|_| protocol("malformed key id in reply"))?;
            if returned.name != self.name || returned.version.as_deref() != Some(&self.version) {
                return Err(protocol("signed with another key version"));
            }
        }
        let bytes = result
            .result
            .ok_or_else(|| protocol("no signature in reply"))?;
        if self
            .check
            .verify(&self.public_key, algorithm, message, &bytes)
            .is_err()
        {
            return Err(Error::with_context(
                ErrorKind::InvalidSignature,
                format!(
                    "{}: the returned signature does not verify with the pinned public key",
                    self.display
                ),
            ));
        }
        Ok(Signature::new(algorithm, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_the_service_are_not_echoed_into_errors() {
        // Found by the keyvault_reply fuzz target: an unknown `kty` used to appear whole.
        let long = "Z".repeat(300);
        for fields in [
            format!(r#""kty":"{long}""#),
            format!(r#""kty":"EC","crv":"{long}""#),
        ] {
            let body =
                format!(r#"{{"key":{{"kid":"https://fuzz.vault.azure.net/keys/k/v1",{fields}}}}}"#);
            let err = fuzzing::service_reply(200, "", body.as_bytes()).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains(&"Z".repeat(17)), "{text}");
        }
    }

    #[test]
    fn parses_key_urls() {
        let u = KeyUrl::parse("https://v.vault.azure.net/keys/k1").unwrap();
        assert_eq!(
            (u.vault(), u.name(), u.version()),
            ("https://v.vault.azure.net/", "k1", None)
        );
        let u = KeyUrl::parse("https://h.managedhsm.azure.net/keys/k-2/0123abcd/").unwrap();
        assert_eq!(u.version(), Some("0123abcd"));
        let u = KeyUrl::parse("https://127.0.0.1:8443/keys/k/").unwrap();
        assert_eq!(u.vault(), "https://127.0.0.1:8443/");
        assert_eq!(u.display_id(), "127.0.0.1:8443/keys/k");
        for bad in [
            "http://v.vault.azure.net/keys/k",
            "https://v.vault.azure.net/secrets/k",
            "https://v.vault.azure.net/keys/",
            "https://v.vault.azure.net/keys/k/v/sign",
            "https://v.vault.azure.net/keys/k_1",
            "https://v.vault.azure.net/keys/k?x=1",
            "https://u:p@v.vault.azure.net/keys/k",
            "not a url",
        ] {
            assert_eq!(
                KeyUrl::parse(bad).unwrap_err().kind(),
                ErrorKind::KeyRef,
                "{bad}"
            );
        }
    }

    #[test]
    fn key_attributes_are_checked_at_a_given_time() {
        let key = ResolvedKey {
            kid: String::new(),
            version: String::new(),
            public_key: crate::backend::local::LocalSigner::generate(KeyType::P256)
                .unwrap()
                .public_key()
                .clone(),
            enabled: true,
            not_before: Some(1_000),
            expires: Some(2_000),
        };
        let at = crate::clock::from_unix_seconds;
        assert!(key.check_usable(at(1_500), "k").is_ok());
        assert_eq!(
            key.check_usable(at(999), "k").unwrap_err().kind(),
            ErrorKind::KeyDisabled
        );
        assert_eq!(
            key.check_usable(at(2_000), "k").unwrap_err().kind(),
            ErrorKind::KeyDisabled
        );
    }
}
