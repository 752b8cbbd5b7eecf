//! Microsoft Entra ID certificate client assertions (Microsoft identity platform,
//! "certificate credentials").

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    Jwt, add, check_lifetime, check_text, fresh_jti, require_key_type, rotation, sign_json,
};
use crate::clock::unix_seconds_strict;
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, KeyType};
use crate::signer::RemoteSigner;
use crate::surrogate::{Clock, Issuer, Rotation, SystemClock};

/// The assertion lifetime unless set otherwise: ten minutes, as MSAL uses.
pub const ENTRA_DEFAULT_LIFETIME: Duration = Duration::from_secs(600);

/// The longest assertion lifetime taken: one hour.
pub const ENTRA_MAX_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    #[serde(rename = "x5t#S256")]
    x5t_s256: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: &'a str,
    nbf: u64,
    iat: u64,
    exp: u64,
}

/// The client assertion an Entra ID application sends instead of a client secret
/// (`client_assertion` with `client_assertion_type`
/// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`), signed by the key of a
/// certificate registered on the application.
///
/// ```text
/// header  {"alg":"PS256","typ":"JWT","x5t#S256":"<base64url SHA-256 of the certificate DER>"}
/// claims  {"aud":"https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token",
///          "iss":"<client id>","sub":"<client id>","jti":"<fresh UUID v4>",
///          "nbf":<now>,"iat":<now>,"exp":<now + lifetime>}
/// ```
///
/// Entra asks for PS256, so only RSA keys are taken, and the certificate must hold the
/// signing key's public key (Entra finds the key by the certificate's thumbprint).
/// [`cached`](EntraAssertion::cached) reuses an assertion until two to three minutes before it
/// expires, as MSAL does. [`new`](EntraAssertion::new) takes the defaults;
/// [`builder`](EntraAssertion::builder) sets the lifetime or the clock.
#[derive(Clone)]
pub struct EntraAssertion {
    signer: Arc<dyn RemoteSigner>,
    audience: String,
    client_id: String,
    thumbprint: String,
    lifetime: u64,
    clock: Arc<dyn Clock>,
}

impl EntraAssertion {
    /// Assertions for the application `client_id` in `tenant` (a tenant id or domain),
    /// naming `certificate` (PEM or DER), signed by `signer`, with the default lifetime
    /// (600 s) and the system clock.
    ///
    /// # Errors
    /// As [`EntraAssertionBuilder::build`].
    pub fn new(
        signer: Arc<dyn RemoteSigner>,
        tenant: &str,
        client_id: impl Into<String>,
        certificate: &[u8],
    ) -> Result<Self> {
        Self::builder(signer, tenant, client_id, certificate).build()
    }

    /// Configures assertions for the application `client_id` in `tenant`, naming
    /// `certificate` (as in [`new`](Self::new)), signed by `signer`.
    pub fn builder(
        signer: Arc<dyn RemoteSigner>,
        tenant: &str,
        client_id: impl Into<String>,
        certificate: &[u8],
    ) -> EntraAssertionBuilder {
        EntraAssertionBuilder {
            signer,
            tenant: tenant.to_string(),
            client_id: client_id.into(),
            certificate: certificate.to_vec(),
            lifetime: ENTRA_DEFAULT_LIFETIME,
            clock: Arc::new(SystemClock),
        }
    }

    /// The `aud` claim: the tenant's v2.0 token endpoint.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The header's `x5t#S256`: base64url of the SHA-256 of the certificate's DER.
    pub fn certificate_thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// How long an assertion lives.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime)
    }

    /// The clock [`sign`](Self::sign) and the cache read.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Signs an assertion for now.
    ///
    /// # Errors
    /// As [`sign_at`](EntraAssertion::sign_at).
    pub async fn sign(&self) -> Result<Jwt> {
        self.sign_at(self.clock.now()).await
    }

    /// Signs an assertion issued at `now`, with a fresh `jti`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a time before 1970; the signer's errors;
    /// [`ErrorKind::Signing`] if the signature does not verify.
    pub async fn sign_at(&self, now: SystemTime) -> Result<Jwt> {
        let iat = unix_seconds_strict(now)?;
        let exp = add(iat, self.lifetime)?;
        let jti = fresh_jti();
        let header = Header {
            alg: Algorithm::PS256.as_str(),
            typ: "JWT",
            x5t_s256: &self.thumbprint,
        };
        let claims = Claims {
            aud: &self.audience,
            iss: &self.client_id,
            sub: &self.client_id,
            jti: &jti,
            nbf: iat,
            iat,
            exp,
        };
        let text = sign_json(&*self.signer, Algorithm::PS256, &header, &claims).await?;
        Ok(Jwt::new("entra", text, iat, exp))
    }

    /// A cache that reuses an assertion until 120 s plus up to 60 s before it expires, once
    /// however many tasks ask.
    pub fn cached(self) -> Rotation<Self> {
        let clock = self.clock.clone();
        rotation(
            self,
            clock,
            Duration::from_secs(120),
            Duration::from_secs(60),
        )
    }
}

/// Configures an [`EntraAssertion`]; from [`EntraAssertion::builder`]. Every setter documents
/// its default; [`build`](Self::build) reports what does not fit.
#[must_use]
pub struct EntraAssertionBuilder {
    signer: Arc<dyn RemoteSigner>,
    tenant: String,
    client_id: String,
    certificate: Vec<u8>,
    lifetime: Duration,
    clock: Arc<dyn Clock>,
}

impl EntraAssertionBuilder {
    /// How long an assertion lives (default [`ENTRA_DEFAULT_LIFETIME`], 600 s): whole seconds,
    /// at most [`ENTRA_MAX_LIFETIME`].
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Where [`sign`](EntraAssertion::sign) and the cache read the time (default: the system
    /// clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration and reads the certificate. Nothing is signed until first use.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedKey`] unless the key is RSA; [`ErrorKind::InvalidInput`] for a
    /// tenant that is not a tenant id or domain name, an empty client id, a certificate that
    /// cannot be read, one that holds another public key than the signer's, and a zero or
    /// fractional lifetime or one over [`ENTRA_MAX_LIFETIME`].
    pub fn build(self) -> Result<EntraAssertion> {
        let EntraAssertionBuilder {
            signer,
            tenant,
            client_id,
            certificate,
            lifetime,
            clock,
        } = self;
        require_key_type(
            &*signer,
            KeyType::Rsa,
            "an Entra ID client assertion (PS256)",
        )?;
        if tenant.is_empty()
            || tenant.len() > 253
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(Error::invalid_input(
                "the tenant must be a tenant id (GUID) or a domain name such as contoso.onmicrosoft.com",
            ));
        }
        check_text(&client_id, "the client id")?;
        let der = certificate_der(&certificate)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|_| Error::invalid_input("the certificate is not an X.509 certificate"))?;
        if parsed.public_key().raw != signer.public_key().to_spki_der().as_slice() {
            return Err(Error::with_context(
                ErrorKind::InvalidInput,
                format!(
                    "the certificate holds another public key than {}",
                    signer.key_id()
                ),
            ));
        }
        let lifetime = check_lifetime(lifetime, ENTRA_MAX_LIFETIME, "Entra ID client assertion")?;
        Ok(EntraAssertion {
            signer,
            audience: format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
            client_id,
            thumbprint: crate::jws::encode_part(&Sha256::digest(&der)),
            lifetime,
            clock,
        })
    }
}

impl fmt::Debug for EntraAssertionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraAssertionBuilder")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("certificate_len", &self.certificate.len())
            .field("lifetime", &self.lifetime)
            .field("key_id", self.signer.key_id())
            .finish_non_exhaustive()
    }
}

/// The DER of a certificate given as PEM (`CERTIFICATE`) or DER.
fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid_input("the certificate is neither PEM nor DER"))?;
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or_else(|| Error::invalid_input("the certificate PEM has no CERTIFICATE block"))?;
    // A file may hold a chain: the first block is the application's certificate.
    const END: &str = "-----END CERTIFICATE-----";
    let end = text[start..]
        .find(END)
        .map_or(text.len(), |e| start + e + END.len());
    let (label, der) = pem_rfc7468::decode_vec(&text.as_bytes()[start..end])
        .map_err(|_| Error::invalid_input("the certificate PEM cannot be decoded"))?;
    if label != "CERTIFICATE" {
        return Err(Error::invalid_input(
            "the certificate PEM has no CERTIFICATE block",
        ));
    }
    Ok(der)
}

#[async_trait]
impl Issuer for EntraAssertion {
    type Credential = Jwt;

    async fn issue(&self, now: SystemTime) -> Result<Jwt> {
        self.sign_at(now).await
    }
}

impl fmt::Debug for EntraAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraAssertion")
            .field("audience", &self.audience)
            .field("client_id", &self.client_id)
            .field("x5t#S256", &self.thumbprint)
            .field("lifetime", &self.lifetime)
            .field("key_id", self.signer.key_id())
            .finish_non_exhaustive()
    }
}
