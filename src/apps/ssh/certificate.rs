//! Short-lived OpenSSH user certificates for in-memory Ed25519 surrogate keys, signed by a
//! managed key acting as the user CA (OpenSSH `PROTOCOL.certkeys`).
//!
//! `ssh-key`'s certificate builder signs synchronously, while the CA signs asynchronously
//! (it may be a remote service). The bridge is explicit and never blocks the runtime: the
//! certificate is built once with a signer that only records the exact to-be-signed bytes, those
//! bytes are signed asynchronously by the CA, and the same certificate is built a second time
//! with a signer that hands over that signature, and only for those bytes.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rand_core::{OsRng, RngCore};
use ssh_encoding::Encode;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::public::{Ed25519PublicKey, KeyData};

use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, KeyType};
use crate::signer::RemoteSigner;

/// The extensions OpenSSH's `ssh-keygen -s` grants a user certificate by default.
const DEFAULT_EXTENSIONS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// What goes into each short-lived user certificate the agent mints.
///
/// ```
/// use std::time::Duration;
/// use remote_signer::ssh::CertificateOptions;
/// let options = CertificateOptions::new(["deploy"]).validity(Duration::from_secs(15 * 60));
/// ```
#[derive(Debug, Clone)]
pub struct CertificateOptions {
    pub(crate) principals: Vec<String>,
    pub(crate) validity: Duration,
    pub(crate) backdate: Duration,
    pub(crate) key_id: Option<String>,
    pub(crate) extensions: Vec<String>,
}

impl CertificateOptions {
    /// Certificates valid for these principals (user names on the server). The agent refuses
    /// to start without at least one: a certificate without principals is valid for every user.
    ///
    /// Defaults: valid for one hour, valid-after set 60 seconds in the past (for servers whose
    /// clocks run slightly behind), the default OpenSSH extensions (`permit-pty`,
    /// `permit-port-forwarding`, `permit-agent-forwarding`, `permit-X11-forwarding`,
    /// `permit-user-rc`), and `remote-signer:<CA public key's JWK thumbprint>` as the
    /// certificate's key id (see [`CertificateOptions::key_id`]).
    pub fn new<S: Into<String>>(principals: impl IntoIterator<Item = S>) -> Self {
        CertificateOptions {
            principals: principals.into_iter().map(Into::into).collect(),
            validity: Duration::from_secs(3600),
            backdate: Duration::from_secs(60),
            key_id: None,
            extensions: DEFAULT_EXTENSIONS.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// How long each certificate is valid from the moment it is minted (default one hour).
    /// The agent renews it when a quarter of this is left.
    pub fn validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }

    /// How far in the past the validity starts, for servers with slow clocks (default 60 s).
    pub fn backdate(mut self, backdate: Duration) -> Self {
        self.backdate = backdate;
        self
    }

    /// The certificate's key id, which sshd logs. The default is `remote-signer:` followed by the
    /// RFC 7638 JWK thumbprint of the CA's public key (SHA-256, base64url), which names the CA
    /// without revealing where its key is kept (no file path, vault URL or key name).
    pub fn key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// Replaces the extensions (each granted with empty data); pass nothing to grant none.
    pub fn extensions<S: Into<String>>(mut self, extensions: impl IntoIterator<Item = S>) -> Self {
        self.extensions = extensions.into_iter().map(Into::into).collect();
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.principals.is_empty() || self.principals.iter().any(String::is_empty) {
            return Err(Error::with_context(
                ErrorKind::Config,
                "a certificate needs at least one principal, and no empty ones",
            ));
        }
        if self.validity < Duration::from_secs(1) {
            return Err(Error::with_context(
                ErrorKind::Config,
                "certificate validity must be at least one second",
            ));
        }
        if self.validity > Duration::from_secs(366 * 24 * 3600) {
            return Err(Error::with_context(
                ErrorKind::Config,
                "certificate validity must be at most a year",
            ));
        }
        Ok(())
    }

    /// How long before expiry a certificate is renewed.
    pub(crate) fn renew_ahead(&self) -> Duration {
        self.validity / 4
    }
}

/// An Ed25519 surrogate key that lives only in memory, with its certificate.
pub(crate) struct Minted {
    /// Boxed from the start: `mint` holds it across an await, and a key held by value in a
    /// (heap-allocated) future would be left there, unwiped, when it moved out.
    surrogate: Box<ed25519_dalek::SigningKey>,
    /// The certificate, encoded as the agent lists it.
    pub(crate) certificate_blob: Vec<u8>,
    /// The surrogate's bare public key blob.
    pub(crate) key_blob: Vec<u8>,
    pub(crate) serial: u64,
    pub(crate) valid_before: SystemTime,
}

impl Minted {
    /// Whether the certificate can still be offered at `now`.
    pub(crate) fn valid_at(&self, now: SystemTime) -> bool {
        now < self.valid_before
    }

    pub(crate) fn matches(&self, blob: &[u8]) -> bool {
        blob == self.certificate_blob || blob == self.key_blob
    }

    /// Signs with the surrogate (local, no managed-key call).
    pub(crate) fn sign(&self, data: &[u8]) -> Result<ssh_key::Signature> {
        use ed25519_dalek::Signer as _;
        let signature = self.surrogate.sign(data);
        ssh_key::Signature::new(ssh_key::Algorithm::Ed25519, signature.to_bytes().to_vec())
            .map_err(|_| Error::new(ErrorKind::Signing))
    }
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("serial", &self.serial)
            .field("valid_before", &self.valid_before)
            .finish_non_exhaustive()
    }
}

/// Generates a surrogate and has `ca` certify it for `options`, valid from `now`.
pub(crate) async fn mint(
    ca: &dyn RemoteSigner,
    options: &CertificateOptions,
    now: SystemTime,
    serial: u64,
) -> Result<Minted> {
    let surrogate = Box::new(ed25519_dalek::SigningKey::generate(&mut OsRng));
    let subject = KeyData::Ed25519(Ed25519PublicKey(surrogate.verifying_key().to_bytes()));
    let ca_key = ca.public_key().to_ssh_key_data()?;
    let algorithm = match ca.key_type() {
        // OpenSSH's own choice for RSA CAs.
        KeyType::Rsa => Algorithm::RS512,
        KeyType::P256 => Algorithm::ES256,
        KeyType::P384 => Algorithm::ES384,
        KeyType::Ed25519 => Algorithm::EdDSA,
        other => {
            return Err(Error::with_context(
                ErrorKind::UnsupportedKey,
                format!("{other} keys cannot sign OpenSSH certificates"),
            ));
        }
    };
    let mut nonce = [0u8; Builder::RECOMMENDED_NONCE_SIZE];
    OsRng.fill_bytes(&mut nonce);
    let unix = crate::clock::unix_seconds;
    let valid_after = unix(now.checked_sub(options.backdate).unwrap_or(now));
    // Rounded up, so a certificate lives at least the whole validity and is never due for
    // renewal the moment it is minted.
    let end = now + options.validity;
    let valid_before = unix(end) + u64::from(end > crate::clock::from_unix_seconds(unix(end)));
    let key_id = options
        .key_id
        .clone()
        .unwrap_or_else(|| format!("remote-signer:{}", ca.public_key().jwk_thumbprint()));

    // Called twice with the same inputs, so both builds encode the same bytes.
    let builder = || -> ssh_key::Result<Builder> {
        let mut builder = Builder::new(nonce, subject.clone(), valid_after, valid_before)?;
        builder
            .serial(serial)?
            .cert_type(CertType::User)?
            .key_id(key_id.clone())?;
        for principal in &options.principals {
            builder.valid_principal(principal.clone())?;
        }
        for extension in &options.extensions {
            builder.extension(extension.clone(), "")?;
        }
        Ok(builder)
    };
    let build_failed = |_| Error::with_context(ErrorKind::Signing, "cannot build certificate");

    let recorder = RecordToBeSigned {
        ca_key: ca_key.clone(),
        to_be_signed: Mutex::new(None),
    };
    // This build stops at the signature by design; it only yields the bytes to sign.
    let _ = builder().map_err(build_failed)?.sign(&recorder);
    let to_be_signed = recorder
        .to_be_signed
        .into_inner()
        .ok()
        .flatten()
        .ok_or_else(|| Error::with_context(ErrorKind::Signing, "cannot build certificate"))?;

    // A certificate the CA signed wrongly would only surface later as refused logins.
    let signature = crate::signer::sign_verified(ca, algorithm, &to_be_signed).await?;
    let presigned = Presigned {
        ca_key,
        to_be_signed,
        signature: signature.to_ssh()?,
    };
    let certificate = builder()
        .map_err(build_failed)?
        .sign(&presigned)
        .map_err(build_failed)?;

    let mut certificate_blob = Vec::new();
    certificate
        .encode(&mut certificate_blob)
        .map_err(|_| Error::with_context(ErrorKind::Signing, "cannot encode certificate"))?;
    let mut key_blob = Vec::new();
    subject
        .encode(&mut key_blob)
        .map_err(|_| Error::with_context(ErrorKind::Signing, "cannot encode key"))?;
    Ok(Minted {
        surrogate,
        certificate_blob,
        key_blob,
        serial,
        valid_before: crate::clock::from_unix_seconds(valid_before),
    })
}

/// A certificate "signer" that records the bytes it is asked to sign and refuses to sign them.
struct RecordToBeSigned {
    ca_key: KeyData,
    to_be_signed: Mutex<Option<Vec<u8>>>,
}

impl signature::Signer<ssh_key::Signature> for RecordToBeSigned {
    fn try_sign(&self, message: &[u8]) -> signature::Result<ssh_key::Signature> {
        if let Ok(mut slot) = self.to_be_signed.lock() {
            *slot = Some(message.to_vec());
        }
        Err(signature::Error::new())
    }
}

// `ssh-key` takes the CA's public key from this conversion.
impl From<&RecordToBeSigned> for KeyData {
    fn from(signer: &RecordToBeSigned) -> KeyData {
        signer.ca_key.clone()
    }
}

/// A certificate "signer" holding a signature the CA already made, for exactly those bytes.
struct Presigned {
    ca_key: KeyData,
    to_be_signed: Vec<u8>,
    signature: ssh_key::Signature,
}

impl signature::Signer<ssh_key::Signature> for Presigned {
    fn try_sign(&self, message: &[u8]) -> signature::Result<ssh_key::Signature> {
        if message == self.to_be_signed.as_slice() {
            Ok(self.signature.clone())
        } else {
            Err(signature::Error::new())
        }
    }
}

// `ssh-key` takes the CA's public key from this conversion.
impl From<&Presigned> for KeyData {
    fn from(signer: &Presigned) -> KeyData {
        signer.ca_key.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalSigner;

    #[tokio::test]
    async fn minted_certificates_verify_with_the_ca_for_every_ca_type() {
        for key_type in [KeyType::Ed25519, KeyType::P256, KeyType::P384, KeyType::Rsa] {
            let ca = LocalSigner::generate(key_type).unwrap();
            let now = crate::clock::from_unix_seconds(1_800_000_000);
            let options = CertificateOptions::new(["alice", "bob"]);
            let minted = mint(&ca, &options, now, 7).await.unwrap();
            let cert = ssh_key::Certificate::from_bytes(&minted.certificate_blob).unwrap();
            let ca_fingerprint = ca
                .public_key()
                .to_ssh_key_data()
                .unwrap()
                .fingerprint(ssh_key::HashAlg::Sha256);
            cert.validate_at(1_800_000_000, [&ca_fingerprint]).unwrap();
            assert!(cert.validate_at(1_800_003_600, [&ca_fingerprint]).is_err());
            assert_eq!(cert.valid_principals(), ["alice", "bob"]);
            assert_eq!(cert.serial(), 7);
            assert_eq!(cert.valid_after(), 1_800_000_000 - 60);
            assert!(minted.valid_at(now + Duration::from_secs(3599)));
            assert!(!minted.valid_at(now + Duration::from_secs(3600)));
        }
    }

    #[tokio::test]
    async fn a_certificate_lives_at_least_its_whole_validity() {
        let ca = LocalSigner::generate(KeyType::Ed25519).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_500);
        let options = CertificateOptions::new(["a"]).validity(Duration::from_secs(1));
        let minted = mint(&ca, &options, now, 1).await.unwrap();
        assert_eq!(
            minted.valid_before,
            crate::clock::from_unix_seconds(1_800_000_002)
        );
        assert!(minted.valid_before - options.renew_ahead() > now);
    }

    #[test]
    fn options_without_principals_are_refused() {
        let none: [&str; 0] = [];
        assert_eq!(
            CertificateOptions::new(none).check().unwrap_err().kind(),
            ErrorKind::Config
        );
        assert!(
            CertificateOptions::new(["a"])
                .validity(Duration::ZERO)
                .check()
                .is_err()
        );
    }
}
