//! AWS KMS keys, through the official SDK (feature `aws`).
//!
//! A [`KmsSigner`] signs with one KMS key. Only the digest of a message leaves the process
//! (`MessageType=DIGEST`; pure Ed25519, which needs the message, is the one exception); the
//! signature that comes back is verified locally against the public key fetched at open before
//! it is handed out, so a wrong key or a tampered reply is caught.
//!
//! ```no_run
//! # async fn demo() -> remote_signer::Result<()> {
//! use remote_signer::backend::aws::KmsSigner;
//! use remote_signer::{Algorithm, RemoteSigner};
//!
//! let signer =
//!     KmsSigner::open("arn:aws:kms:eu-west-1:111122223333:alias/signing").await?;
//! // The alias was resolved once; the key it named is pinned:
//! println!("signing with {}", signer.key_id());
//! let signature = signer.sign(Algorithm::ES256, b"message").await?;
//! # Ok(()) }
//! ```
//!
//! # Key ARNs
//! `arn:aws:kms:<region>:<account>:key/<key-id>` or `arn:aws:kms:<region>:<account>:alias/<name>`
//! as the console shows them (also the `aws-cn` and `aws-us-gov` partitions; see [`KmsArn`]).
//! An alias is resolved once, at [`build`](KmsSignerBuilder::build), to its key's ARN, which is
//! then pinned and reported as [`key_id`](crate::RemoteSigner::key_id): retargeting the alias
//! later does not change a running signer (a Snowflake user or sshd trusts one exact key).
//!
//! # Credentials, region and endpoint
//! Unless the builder is given an [`SdkConfig`](KmsSignerBuilder::sdk_config), everything comes
//! from the standard AWS chain (`aws-config`'s defaults): the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), `AWS_PROFILE` and the
//! shared config and credentials files (with SSO and `credential_process`), web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`, as EKS sets them), ECS container
//! credentials and IMDSv2. The region in the ARN always wins over the environment's. The
//! SDK's endpoint override, `AWS_ENDPOINT_URL_KMS` or `AWS_ENDPOINT_URL` (or `endpoint_url` in
//! the profile), points the signer at a VPC endpoint or an emulator.
//!
//! # Algorithms
//! | key spec | algorithms | KMS signing algorithm |
//! |---|---|---|
//! | `RSA_2048`, `RSA_3072`, `RSA_4096` | RS256/384/512, PS256/384/512 | `RSASSA_PKCS1_V1_5_SHA_*`, `RSASSA_PSS_SHA_*` |
//! | `ECC_NIST_P256`, `ECC_NIST_P384` | ES256, ES384 | `ECDSA_SHA_256`, `ECDSA_SHA_384` |
//! | `ECC_SECG_P256K1` | ES256K | `ECDSA_SHA_256` |
//! | `ECC_NIST_EDWARDS25519` | EdDSA | `ED25519_SHA_512` (`MessageType=RAW`, at most 4,096 bytes) |
//!
//! KMS returns ECDSA signatures DER-encoded; they are converted to the JOSE form (r||s), from
//! which [`Signature::to_ssh`] gives the SSH form. At open, `GetPublicKey` (the one call the
//! signer makes before its first signature) must report `KeyUsage` `SIGN_VERIFY`; a key for
//! encryption, or a disabled key or one pending deletion, is refused then, not at first use.
//! An algorithm the key's `SigningAlgorithms` does not list is refused locally.
//!
//! # TLS and what the feature pulls in
//! The feature brings `aws-config` and `aws-sdk-kms` without their default HTTPS client
//! (rustls over aws-lc); requests go through `aws-smithy-http-client`'s hyper 1 client on
//! rustls with the ring provider and the system's roots (the same rustls and ring the Azure
//! transport uses, so no second TLS stack or crypto library is built). `aws-config` brings
//! its SSO and `credential_process` providers (with the small SSO service clients).
//!
//! # Retries and errors
//! One retry layer: the SDK's standard retry strategy, configured here from [`RetryPolicy`]
//! (attempts, exponential backoff with full jitter, the SDK's retry quota), with a time bound
//! per attempt and for the whole call. `ThrottlingException`, `KMSInternalException`,
//! `DependencyTimeoutException`, other 5xx answers, timeouts and dropped connections are
//! retried; the sleeps between attempts and the timeouts go through an injectable
//! [`AsyncSleep`](KmsSignerBuilder::sleep_impl). (The SDK's stalled-stream detector is off: its
//! 100 ms timer adds nothing to replies of a few hundred bytes that the attempt timeout bounds.) Failures map to [`ErrorKind`]s:
//!
//! | what happened | kind |
//! |---|---|
//! | `AccessDeniedException` (the message names the refused action, `kms:Sign` or `kms:GetPublicKey`) | `PermissionDenied` |
//! | `InvalidSignatureException` (a wrong secret key), `UnrecognizedClientException`, `ExpiredTokenException`, no credentials anywhere in the chain | `PermissionDenied` |
//! | `NotFoundException` | `KeyNotFound` |
//! | `DisabledException`, `KMSInvalidStateException` (disabled, pending deletion) | `KeyDisabled` |
//! | `InvalidKeyUsageException`, a key that is not `SIGN_VERIFY` | `UnsupportedKey` |
//! | still `ThrottlingException` after the retries | `Throttled` |
//! | still `KMSInternalException`, `DependencyTimeoutException`, 5xx or unreachable | `Unavailable` |
//! | no answer within the time bounds | `Timeout` |
//! | a signature that does not verify with the pinned public key | `InvalidSignature` |
//!
//! An error's text carries the key, the action, the AWS error code, the HTTP status and the
//! request id; never the service's message, a response body, a signature, a digest or a
//! credential.
//!
//! # Cost
//! [`KmsSigner::stats`] counts the requests sent (each retry is one) and their outcomes, with
//! the same [`OperationStats`] as Key Vault (`get_key` counts `GetPublicKey`); share one among
//! signers with [`KmsSignerBuilder::stats`].

mod arn;
mod error;
#[doc(hidden)]
pub mod fuzzing;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_kms::Client;
use aws_sdk_kms::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{
    ConfigBag, Intercept, Region, RuntimeComponents, StalledStreamProtectionConfig,
};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::check::SignatureCheck;
use super::safe_text;
use super::stats::Operation;
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, KeyType, PublicKey, Signature};
use crate::signer::{KeyId, RemoteSigner};

pub use super::stats::{OperationCounts, OperationStats, StatsSnapshot};
pub use arn::{ArnResource, KmsArn};
pub use aws_sdk_kms::config::{AsyncSleep, SharedAsyncSleep, Sleep};

/// The longest message KMS signs with pure Ed25519 (`MessageType=RAW`).
pub const MAX_RAW_MESSAGE: usize = 4096;

/// Retries and time bounds for KMS calls, applied through the SDK's standard retry strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    attempt_timeout: Duration,
    max_elapsed: Duration,
    connect_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, backoff from 100 ms up to 2 s (with full jitter), 5 s per attempt, 15 s per
    /// call, 3.1 s to connect.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(15),
            connect_timeout: Duration::from_millis(3100),
        }
    }
}

impl RetryPolicy {
    /// The defaults (see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Attempts per call, the first included (default 4; at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff before the first retry, doubled for each further retry up to `max` (defaults
    /// 100 ms and 2 s); each wait is drawn at random below the bound (full jitter).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The time one attempt may take (default 5 s).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The time a whole call may take, retries and waits included (default 15 s).
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = limit;
        self
    }

    /// The time to establish a connection (default 3.1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.max_elapsed)
            .build()
    }
}

/// Builds a [`KmsSigner`]. Setters document their defaults; problems with the given values are
/// reported by [`build`](KmsSignerBuilder::build).
#[must_use]
pub struct KmsSignerBuilder {
    arn: String,
    sdk_config: Option<SdkConfig>,
    retry: RetryPolicy,
    sleep: Option<SharedAsyncSleep>,
    stats: Option<Arc<OperationStats>>,
}

impl fmt::Debug for KmsSignerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsSignerBuilder")
            .field("arn", &self.arn)
            .field("sdk_config", &self.sdk_config.is_some())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl KmsSignerBuilder {
    /// Uses this SDK configuration (credentials, endpoint, HTTP client) instead of loading the
    /// standard chain (default: `aws-config`'s defaults, over rustls with ring). The ARN's
    /// region, the [`retry`](Self::retry) policy and the [`sleep_impl`](Self::sleep_impl)
    /// still apply.
    pub fn sdk_config(mut self, config: SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    /// Retries and time bounds (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Waits between retries and times attempts out with `sleep` (default: tokio's timer).
    /// Tests inject a sleep that records and returns at once.
    pub fn sleep_impl(mut self, sleep: impl AsyncSleep + 'static) -> Self {
        self.sleep = Some(SharedAsyncSleep::new(sleep));
        self
    }

    /// Counts this signer's requests in `stats` (default: counters of its own).
    pub fn stats(mut self, stats: Arc<OperationStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Loads the configuration, calls `GetPublicKey` once (resolving an alias to its key, which
    /// is pinned) and checks the key.
    ///
    /// # Errors
    /// [`ErrorKind::KeyRef`] for a malformed ARN; [`ErrorKind::UnsupportedKey`] for a key that
    /// is not `SIGN_VERIFY`, or whose spec cannot sign here (P-521, ML-DSA, SM2, HMAC);
    /// [`ErrorKind::Protocol`] for a reply that names another key or carries a malformed public
    /// key; and the remote errors in the [module docs](self).
    pub async fn build(self) -> Result<KmsSigner> {
        let arn = KmsArn::parse(&self.arn)?;
        let region = Region::new(arn.region().to_string());
        let sdk_config = match self.sdk_config {
            Some(config) => config,
            None => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(region.clone())
                    .http_client(
                        aws_smithy_http_client::Builder::new()
                            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                            .build_https(),
                    );
                if let Some(sleep) = &self.sleep {
                    loader = loader.sleep_impl(sleep.clone());
                }
                loader.load().await
            }
        };
        let stats = self.stats.unwrap_or_default();
        let mut config = aws_sdk_kms::config::Builder::from(&sdk_config)
            .region(region)
            .retry_config(self.retry.retry_config())
            .timeout_config(self.retry.timeout_config())
            // KMS bodies are a few hundred bytes: the attempt timeout bounds a stalled reply, and
            // the stall detector's 100 ms timer would only add wake-ups to every call.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        if let Some(sleep) = self.sleep {
            config = config.sleep_impl(sleep);
        }
        let client = Client::from_conf(config.build());
        let what = arn.to_string();

        let reply = counted(&stats, Operation::GetKey, async {
            client
                .get_public_key()
                .key_id(&what)
                .customize()
                .interceptor(AttemptCounter::new(&stats, Operation::GetKey))
                .send()
                .await
                .map_err(|e| error::classify("kms:GetPublicKey", &what, &e))
        })
        .await?;
        let key = PublicKeyReply {
            key_id: reply.key_id(),
            public_key: reply.public_key().map(Blob::as_ref),
            key_usage: reply.key_usage(),
            key_spec: reply.key_spec(),
            signing_algorithms: reply.signing_algorithms(),
        }
        .check(&arn, &what)?;
        Ok(KmsSigner {
            key_id: KeyId::new(key.arn.to_string()),
            display: key.arn.to_string(),
            check: SignatureCheck::new(&key.public_key),
            public_key: key.public_key,
            algorithms: key.algorithms,
            client,
            stats,
        })
    }
}

/// Counts one operation's outcome (its attempts are counted by [`AttemptCounter`]).
async fn counted<T>(
    stats: &OperationStats,
    op: Operation,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let result = call.await;
    match &result {
        Ok(_) => stats.succeeded(op),
        Err(e) => stats.failed(op, e.kind()),
    }
    result
}

/// Counts every attempt the SDK sends for one call (retries included) as it goes on the wire.
#[derive(Debug)]
struct AttemptCounter {
    stats: Arc<OperationStats>,
    op: Operation,
    sent: AtomicBool,
}

impl AttemptCounter {
    fn new(stats: &Arc<OperationStats>, op: Operation) -> Self {
        AttemptCounter {
            stats: stats.clone(),
            op,
            sent: AtomicBool::new(false),
        }
    }
}

impl Intercept for AttemptCounter {
    fn name(&self) -> &'static str {
        "remote-signer attempt counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), aws_sdk_kms::error::BoxError> {
        if self.sent.swap(true, Ordering::Relaxed) {
            self.stats.retried(self.op);
        }
        self.stats.attempt(self.op);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), aws_sdk_kms::error::BoxError> {
        let response = context.response();
        if response.status().as_u16() == 400
            && response.body().bytes().is_some_and(error::is_throttling)
        {
            self.stats.throttled(self.op);
        }
        Ok(())
    }
}

/// What `GetPublicKey` said, as the SDK parsed it.
pub(crate) struct PublicKeyReply<'a> {
    pub(crate) key_id: Option<&'a str>,
    pub(crate) public_key: Option<&'a [u8]>,
    pub(crate) key_usage: Option<&'a KeyUsageType>,
    pub(crate) key_spec: Option<&'a KeySpec>,
    pub(crate) signing_algorithms: &'a [SigningAlgorithmSpec],
}

/// A key fit for signing.
pub(crate) struct CheckedKey {
    pub(crate) arn: KmsArn,
    pub(crate) public_key: PublicKey,
    pub(crate) algorithms: Vec<SigningAlgorithmSpec>,
}

impl PublicKeyReply<'_> {
    /// Checks the reply against the ARN that was asked for: the key it names (an alias resolves
    /// to a key in the same account and region), its usage, spec and public key.
    pub(crate) fn check(&self, asked: &KmsArn, what: &str) -> Result<CheckedKey> {
        let protocol =
            |why: &str| Error::with_context(ErrorKind::Protocol, format!("{what}: {why}"));
        let unsupported =
            |why: &str| Error::with_context(ErrorKind::UnsupportedKey, format!("{what}: {why}"));
        let key_id = self.key_id.ok_or_else(|| protocol("no key id in reply"))?;
        let returned = KmsArn::parse(key_id).map_err(|_| protocol("malformed key ARN in reply"))?;
        let ArnResource::Key(id) = returned.resource() else {
            return Err(protocol("reply names an alias, not a key"));
        };
        let pinned = asked.with_key(id);
        if returned != pinned {
            return Err(protocol("reply names a key in another account or region"));
        }
        if let ArnResource::Key(asked_id) = asked.resource()
            && asked_id != id
        {
            return Err(protocol("reply names another key"));
        }
        match self.key_usage {
            Some(KeyUsageType::SignVerify) => {}
            Some(other) => {
                return Err(unsupported(&format!(
                    "the key's usage is {}, not SIGN_VERIFY",
                    safe_text(other.as_str(), 64)
                )));
            }
            None => return Err(protocol("no key usage in reply")),
        }
        let der = self
            .public_key
            .ok_or_else(|| protocol("no public key in reply"))?;
        let public_key =
            PublicKey::from_spki_der(der).map_err(|_| protocol("malformed public key in reply"))?;
        let expected = match self.key_spec {
            Some(KeySpec::Rsa2048) => Some((KeyType::Rsa, Some(2048))),
            Some(KeySpec::Rsa3072) => Some((KeyType::Rsa, Some(3072))),
            Some(KeySpec::Rsa4096) => Some((KeyType::Rsa, Some(4096))),
            Some(KeySpec::EccNistP256) => Some((KeyType::P256, None)),
            Some(KeySpec::EccNistP384) => Some((KeyType::P384, None)),
            Some(KeySpec::EccSecgP256K1) => Some((KeyType::K256, None)),
            Some(KeySpec::EccNistEdwards25519) => Some((KeyType::Ed25519, None)),
            Some(other) => {
                return Err(unsupported(&format!(
                    "key spec {} cannot sign here",
                    safe_text(other.as_str(), 64)
                )));
            }
            None => None,
        };
        if let Some((key_type, bits)) = expected
            && (public_key.key_type() != key_type || public_key.rsa_bits() != bits)
        {
            return Err(protocol("the public key does not match the key spec"));
        }
        if public_key
            .rsa_bits()
            .is_some_and(|b| !(2048..=4096).contains(&b))
        {
            return Err(unsupported("RSA keys must have 2048 to 4096 bits"));
        }
        Ok(CheckedKey {
            arn: pinned,
            public_key,
            algorithms: self.signing_algorithms.to_vec(),
        })
    }
}

/// Signs with one KMS key, pinned at open.
///
/// Cheap to share as `Arc<dyn RemoteSigner>`; all clones of the `Arc` use one SDK client (one
/// connection pool, one credential cache).
pub struct KmsSigner {
    key_id: KeyId,
    display: String,
    public_key: PublicKey,
    check: SignatureCheck,
    algorithms: Vec<SigningAlgorithmSpec>,
    client: Client,
    stats: Arc<OperationStats>,
}

impl KmsSigner {
    /// A builder for the key or alias `arn`.
    pub fn builder(arn: &str) -> KmsSignerBuilder {
        KmsSignerBuilder {
            arn: arn.to_string(),
            sdk_config: None,
            retry: RetryPolicy::default(),
            sleep: None,
            stats: None,
        }
    }

    /// Opens the key or alias `arn` with the defaults: the standard AWS chain,
    /// [`RetryPolicy::default`].
    ///
    /// # Errors
    /// As [`KmsSignerBuilder::build`].
    pub async fn open(arn: &str) -> Result<Self> {
        Self::builder(arn).build().await
    }

    /// Counts of this signer's requests and their outcomes.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The shared counters behind [`stats`](Self::stats).
    pub fn operation_stats(&self) -> &Arc<OperationStats> {
        &self.stats
    }
}

impl fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsSigner")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

/// The KMS signing algorithm for a JOSE algorithm, and whether KMS takes the message itself.
pub(crate) fn kms_algorithm(alg: Algorithm) -> (SigningAlgorithmSpec, MessageType) {
    use SigningAlgorithmSpec as S;
    let digest = MessageType::Digest;
    match alg {
        Algorithm::RS256 => (S::RsassaPkcs1V15Sha256, digest),
        Algorithm::RS384 => (S::RsassaPkcs1V15Sha384, digest),
        Algorithm::RS512 => (S::RsassaPkcs1V15Sha512, digest),
        Algorithm::PS256 => (S::RsassaPssSha256, digest),
        Algorithm::PS384 => (S::RsassaPssSha384, digest),
        Algorithm::PS512 => (S::RsassaPssSha512, digest),
        Algorithm::ES256 | Algorithm::ES256K => (S::EcdsaSha256, digest),
        Algorithm::ES384 => (S::EcdsaSha384, digest),
        Algorithm::EdDSA => (S::Ed25519Sha512, MessageType::Raw),
    }
}

#[async_trait]
impl RemoteSigner for KmsSigner {
    fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    async fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature> {
        algorithm.check_key_type(self.public_key.key_type())?;
        let (spec, message_type) = kms_algorithm(algorithm);
        if !self.algorithms.contains(&spec) {
            return Err(Error::algorithm(format!(
                "{}: the key does not allow {}",
                self.display,
                spec.as_str()
            )));
        }
        let payload = match (&message_type, algorithm.hash()) {
            (MessageType::Raw, _) => {
                if message.len() > MAX_RAW_MESSAGE {
                    return Err(Error::invalid_input(format!(
                        "{}: the message is {} bytes; KMS signs at most {MAX_RAW_MESSAGE} bytes \
                         with Ed25519",
                        self.display,
                        message.len()
                    )));
                }
                message.to_vec()
            }
            (_, Some(hash)) => hash.digest(message),
            (_, None) => return Err(Error::algorithm(format!("{algorithm} has no digest"))),
        };
        let reply = counted(&self.stats, Operation::Sign, async {
            self.client
                .sign()
                .key_id(self.key_id.as_str())
                .message(Blob::new(payload))
                .message_type(message_type)
                .signing_algorithm(spec)
                .customize()
                .interceptor(AttemptCounter::new(&self.stats, Operation::Sign))
                .send()
                .await
                .map_err(|e| error::classify("kms:Sign", &self.display, &e))
        })
        .await?;
        let protocol = |why: &str| {
            Error::with_context(ErrorKind::Protocol, format!("{}: {why}", self.display))
        };
        if reply.key_id().is_some_and(|id| id != self.key_id.as_str()) {
            return Err(protocol("signed with another key"));
        }
        let bytes = reply
            .signature()
            .ok_or_else(|| protocol("no signature in reply"))?;
        self.finish(algorithm, message, bytes.as_ref())
    }
}

impl KmsSigner {
    /// Turns KMS's signature into the JOSE form and checks it against the pinned public key.
    fn finish(&self, algorithm: Algorithm, message: &[u8], bytes: &[u8]) -> Result<Signature> {
        let invalid = || {
            Error::with_context(
                ErrorKind::InvalidSignature,
                format!(
                    "{}: the returned signature does not verify with the pinned public key",
                    self.display
                ),
            )
        };
        let signature = Signature::from_der(algorithm, bytes).map_err(|_| invalid())?;
        self.check
            .verify(&self.public_key, algorithm, message, signature.as_bytes())
            .map_err(|_| invalid())?;
        Ok(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalSigner;

    fn reply_for(key_id: &str, key: &PublicKey, spec: &str) -> String {
        use base64::Engine as _;
        serde_json::json!({
            "KeyId": key_id,
            "PublicKey": base64::engine::general_purpose::STANDARD.encode(key.to_spki_der()),
            "KeyUsage": "SIGN_VERIFY",
            "KeySpec": spec,
            "SigningAlgorithms": ["ECDSA_SHA_256"],
        })
        .to_string()
    }

    #[test]
    fn a_get_public_key_reply_must_name_a_key_of_the_asked_account_and_match_its_spec() {
        let p256 = RemoteSigner::public_key(&LocalSigner::generate(KeyType::P256).unwrap()).clone();
        let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        fuzzing::public_key_reply(reply_for(key, &p256, "ECC_NIST_P256").as_bytes(), b"").unwrap();
        for (key_id, spec) in [
            (
                "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "ECC_NIST_P256",
            ),
            (
                "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "ECC_NIST_P256",
            ),
            (
                "arn:aws:kms:us-east-1:111122223333:alias/other",
                "ECC_NIST_P256",
            ),
            (key, "ECC_NIST_P384"),
            (key, "RSA_2048"),
        ] {
            let err = fuzzing::public_key_reply(reply_for(key_id, &p256, spec).as_bytes(), b"")
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{key_id} {spec}: {err}");
        }
        let err = fuzzing::public_key_reply(reply_for(key, &p256, "ECC_NIST_P521").as_bytes(), b"")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedKey);
    }

    #[test]
    fn values_from_the_service_are_not_echoed_into_errors() {
        let long = "Z".repeat(300);
        let body = format!(
            r#"{{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab","KeyUsage":"{long}"}}"#
        );
        let err = fuzzing::public_key_reply(body.as_bytes(), b"").unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains(&"Z".repeat(65)), "{text}");
    }
}
