//! X.509 certificates and PKCS#10 certificate requests signed by a managed key (feature `x509`).
//!
//! Entra ID applications, mTLS clients and several SaaS key uploads want a certificate rather
//! than a bare public key. [`SelfSigned`] makes a self-signed certificate for the managed key;
//! [`certificate_request`] makes a CSR to take to a CA. `rcgen` builds and encodes both (no
//! DER is written by hand here); the managed key signs the to-be-signed bytes rcgen produces.
//!
//! | field | value |
//! |---|---|
//! | serial | 16 random bytes (positive) |
//! | signature | RSA: sha256WithRSAEncryption; P-256: ecdsa-with-SHA256; P-384: ecdsa-with-SHA384; Ed25519: Ed25519 |
//! | subject (and issuer) | the given `CN=...,O=...` name |
//! | validity | now to now + days (default 365, at most 3650) |
//! | extensions | basic constraints `CA:FALSE` (critical), key usage `digitalSignature` (critical), subject key identifier (SHA-256 of the key, RFC 7093 method 1) |
//!
//! rcgen signs synchronously; the managed key's [`RemoteSigner::sign`] is async. The bridge
//! runs rcgen on a blocking thread of the caller's tokio runtime and waits there for the
//! signature, so these functions need a tokio runtime. secp256k1 keys have no X.509 signature
//! algorithm here and are refused.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rand_core::{OsRng, RngCore};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, IsCa, KeyIdMethod, KeyUsagePurpose,
    PublicKeyData, SerialNumber, SignatureAlgorithm, SigningKey,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, KeyType, Signature};
use crate::signer::RemoteSigner;
use crate::surrogate::{Clock, SystemClock};

/// Validity of a certificate unless set otherwise, in days.
pub const DEFAULT_DAYS: u32 = 365;

/// The longest validity taken, in days (ten years).
pub const MAX_DAYS: u32 = 3650;

/// A distinguished name given as `CN=name,O=org,...`.
///
/// Attributes: `CN`, `O`, `OU`, `C`, `ST`, `L`, each at most once, in the order given; a
/// comma inside a value is written `\,`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    entries: Vec<(&'static str, String)>,
}

const ATTRIBUTES: [&str; 6] = ["CN", "O", "OU", "C", "ST", "L"];

impl FromStr for Subject {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid_input(format!(
                "the subject {why}; write it as CN=name[,O=org,OU=unit,C=US,ST=state,L=city]"
            ))
        };
        if text.len() > 4096 {
            return Err(bad("is too long"));
        }
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(next @ (',' | '\\')) => current.push(next),
                    _ => return Err(bad("has a \\ that escapes neither , nor \\")),
                },
                ',' => parts.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        parts.push(current);
        let mut entries: Vec<(&'static str, String)> = Vec::new();
        for part in parts {
            let Some((name, value)) = part.split_once('=') else {
                return Err(bad("has a part without ="));
            };
            let name = name.trim().to_ascii_uppercase();
            let Some(&name) = ATTRIBUTES.iter().find(|a| **a == name) else {
                let shown: String = name.chars().take(16).collect();
                return Err(bad(&format!("has an unknown attribute {shown:?}")));
            };
            let value = value.trim();
            if value.is_empty() || value.chars().any(char::is_control) {
                return Err(bad(&format!("has an empty or unprintable {name}")));
            }
            if name == "C" && !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()))
            {
                return Err(bad("has a C that is not a two-letter country code"));
            }
            if entries.iter().any(|(n, _)| *n == name) {
                return Err(bad(&format!("has {name} twice")));
            }
            entries.push((name, value.to_string()));
        }
        if !entries.iter().any(|(n, _)| *n == "CN") {
            return Err(bad("has no CN"));
        }
        Ok(Subject { entries })
    }
}

impl Subject {
    fn to_rcgen(&self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        for (name, value) in &self.entries {
            let ty = match *name {
                "CN" => DnType::CommonName,
                "O" => DnType::OrganizationName,
                "OU" => DnType::OrganizationalUnitName,
                "C" => DnType::CountryName,
                "ST" => DnType::StateOrProvinceName,
                _ => DnType::LocalityName,
            };
            dn.push(ty, value.as_str());
        }
        dn
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{name}={}",
                value.replace('\\', "\\\\").replace(',', "\\,")
            )?;
        }
        Ok(())
    }
}

/// A DER document (certificate or request) with its PEM form.
macro_rules! der_document {
    ($name:ident, $label:literal, $what:literal) => {
        #[doc = concat!("A ", $what, ", DER encoded.")]
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name {
            der: Vec<u8>,
        }

        impl $name {
            /// The DER encoding.
            pub fn der(&self) -> &[u8] {
                &self.der
            }

            #[doc = concat!("The PEM form (`-----BEGIN ", $label, "-----`), ending in a newline.")]
            pub fn to_pem(&self) -> String {
                pem_rfc7468::encode_string($label, pem_rfc7468::LineEnding::LF, &self.der)
                    .expect("PEM encoding of a DER document")
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("der_len", &self.der.len())
                    .finish()
            }
        }
    };
}

der_document!(Certificate, "CERTIFICATE", "X.509 certificate");
der_document!(
    CertificateRequest,
    "CERTIFICATE REQUEST",
    "PKCS#10 certificate request"
);

/// A self-signed certificate for a managed key: [`new`](SelfSigned::new) on the defaults
/// (valid [`DEFAULT_DAYS`] from now by the system clock), or [`builder`](SelfSigned::builder)
/// to set the validity or the clock.
///
/// ```no_run
/// # async fn demo(signer: std::sync::Arc<dyn remote_signer::RemoteSigner>) -> Result<(), Box<dyn std::error::Error>> {
/// use remote_signer::x509::SelfSigned;
/// let cert = SelfSigned::builder(signer, &"CN=my-app,O=Example".parse()?)
///     .days(730)
///     .build()?
///     .sign()
///     .await?;
/// std::fs::write("my-app.pem", cert.to_pem())?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SelfSigned {
    signer: Arc<dyn RemoteSigner>,
    subject: Subject,
    days: u32,
    clock: Arc<dyn Clock>,
}

impl SelfSigned {
    /// A certificate for `signer`'s key naming `subject`, valid [`DEFAULT_DAYS`] from now by
    /// the system clock.
    pub fn new(signer: Arc<dyn RemoteSigner>, subject: &Subject) -> Self {
        SelfSigned {
            signer,
            subject: subject.clone(),
            days: DEFAULT_DAYS,
            clock: Arc::new(SystemClock),
        }
    }

    /// Configures a certificate for `signer`'s key naming `subject`.
    pub fn builder(signer: Arc<dyn RemoteSigner>, subject: &Subject) -> SelfSignedBuilder {
        SelfSignedBuilder {
            signer,
            subject: subject.clone(),
            days: DEFAULT_DAYS,
            clock: Arc::new(SystemClock),
        }
    }

    /// The subject (and issuer).
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The validity in days.
    pub fn days(&self) -> u32 {
        self.days
    }

    /// The clock [`sign`](Self::sign) reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Signs the certificate, valid from now.
    ///
    /// # Errors
    /// As [`sign_at`](SelfSigned::sign_at).
    pub async fn sign(&self) -> Result<Certificate> {
        self.sign_at(self.clock.now()).await
    }

    /// Signs the certificate, valid from `now` (whole seconds) for the set number of days.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedKey`] for a secp256k1 key; [`ErrorKind::Config`] outside a tokio
    /// runtime; [`ErrorKind::InvalidInput`] for a time before 1970; the signer's errors;
    /// [`ErrorKind::Signing`] if a signature does not verify.
    pub async fn sign_at(&self, now: SystemTime) -> Result<Certificate> {
        let start = crate::clock::unix_seconds(now);
        if start == 0 {
            return Err(Error::invalid_input("time before 1970"));
        }
        let end = start + u64::from(self.days) * 86_400;
        let time = |secs: u64| {
            i64::try_from(secs)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .ok_or_else(|| Error::invalid_input("certificate time out of range"))
        };
        let mut serial = [0u8; 16];
        OsRng.fill_bytes(&mut serial);
        serial[0] &= 0x7f;
        serial[0] |= 0x40; // positive, and 16 bytes long in DER
        let mut params = base_params(&self.subject, &*self.signer);
        params.not_before = time(start)?;
        params.not_after = time(end)?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let der = with_remote_key(self.signer.clone(), move |key| {
            params.self_signed(key).map(|c| c.der().to_vec())
        })
        .await?;
        Ok(Certificate { der })
    }
}

impl fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSigned")
            .field("subject", &self.subject.to_string())
            .field("days", &self.days)
            .field("key_id", self.signer.key_id())
            .finish_non_exhaustive()
    }
}

/// Configures a [`SelfSigned`] certificate; from [`SelfSigned::builder`]. Every setter
/// documents its default; [`build`](Self::build) reports what does not fit.
#[must_use]
pub struct SelfSignedBuilder {
    signer: Arc<dyn RemoteSigner>,
    subject: Subject,
    days: u32,
    clock: Arc<dyn Clock>,
}

impl SelfSignedBuilder {
    /// The validity in days from the signing time (default [`DEFAULT_DAYS`], 365): 1 to
    /// [`MAX_DAYS`].
    pub fn days(mut self, days: u32) -> Self {
        self.days = days;
        self
    }

    /// Where [`sign`](SelfSigned::sign) reads the time (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration. Nothing is signed until [`SelfSigned::sign`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a validity of 0 or more than [`MAX_DAYS`] days.
    pub fn build(self) -> Result<SelfSigned> {
        let SelfSignedBuilder {
            signer,
            subject,
            days,
            clock,
        } = self;
        if days == 0 || days > MAX_DAYS {
            return Err(Error::invalid_input(format!(
                "certificate validity must be 1 to {MAX_DAYS} days"
            )));
        }
        Ok(SelfSigned {
            signer,
            subject,
            days,
            clock,
        })
    }
}

impl fmt::Debug for SelfSignedBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSignedBuilder")
            .field("subject", &self.subject.to_string())
            .field("days", &self.days)
            .field("key_id", self.signer.key_id())
            .finish_non_exhaustive()
    }
}

/// Signs a PKCS#10 certificate request for `signer`'s key naming `subject`.
///
/// # Errors
/// As [`SelfSigned::sign_at`].
pub async fn certificate_request(
    signer: Arc<dyn RemoteSigner>,
    subject: &Subject,
) -> Result<CertificateRequest> {
    let params = base_params(subject, &*signer);
    let der = with_remote_key(signer, move |key| {
        params.serialize_request(key).map(|r| r.der().to_vec())
    })
    .await?;
    Ok(CertificateRequest { der })
}

fn base_params(subject: &Subject, signer: &dyn RemoteSigner) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.to_rcgen();
    let spki = signer.public_key().to_spki_der();
    params.key_identifier_method = KeyIdMethod::PreSpecified(Sha256::digest(&spki)[..20].to_vec());
    params
}

/// The managed key as rcgen's synchronous [`SigningKey`].
struct RemoteKey {
    signer: Arc<dyn RemoteSigner>,
    algorithm: Algorithm,
    rcgen_algorithm: &'static SignatureAlgorithm,
    /// The subjectPublicKey BIT STRING's content (what rcgen calls the key's DER).
    key_bits: Vec<u8>,
    runtime: tokio::runtime::Handle,
    failure: Mutex<Option<Error>>,
}

impl PublicKeyData for RemoteKey {
    fn der_bytes(&self) -> &[u8] {
        &self.key_bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.rcgen_algorithm
    }
}

impl SigningKey for RemoteKey {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let result = self
            .runtime
            .block_on(crate::signer::sign_verified(
                &*self.signer,
                self.algorithm,
                message,
            ))
            .and_then(x509_signature);
        result.map_err(|e| {
            *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// X.509 carries ECDSA signatures in DER, RSA and Ed25519 signatures as they are.
fn x509_signature(signature: Signature) -> Result<Vec<u8>> {
    match signature.algorithm() {
        Algorithm::ES256 | Algorithm::ES384 => signature.to_der(),
        _ => Ok(signature.into_bytes()),
    }
}

/// Runs `build` (rcgen, synchronous) on a blocking thread with the managed key as its signer.
async fn with_remote_key<F>(signer: Arc<dyn RemoteSigner>, build: F) -> Result<Vec<u8>>
where
    F: FnOnce(&RemoteKey) -> std::result::Result<Vec<u8>, rcgen::Error> + Send + 'static,
{
    let (algorithm, rcgen_algorithm) = match signer.key_type() {
        KeyType::Rsa => (Algorithm::RS256, &rcgen::PKCS_RSA_SHA256),
        KeyType::P256 => (Algorithm::ES256, &rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::P384 => (Algorithm::ES384, &rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Ed25519 => (Algorithm::EdDSA, &rcgen::PKCS_ED25519),
        other => {
            return Err(Error::with_context(
                ErrorKind::UnsupportedKey,
                format!(
                    "X.509 certificates need an RSA, EC P-256, EC P-384 or Ed25519 key; {} is {other}",
                    signer.key_id()
                ),
            ));
        }
    };
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        Error::with_context(ErrorKind::Config, "X.509 signing needs a tokio runtime")
    })?;
    let spki = signer.public_key().to_spki_der();
    let key_bits = spki::SubjectPublicKeyInfoRef::try_from(spki.as_slice())
        .ok()
        .and_then(|info| info.subject_public_key.as_bytes().map(<[u8]>::to_vec))
        .ok_or_else(|| Error::invalid_input("public key has no subjectPublicKey bits"))?;
    let key = RemoteKey {
        signer,
        algorithm,
        rcgen_algorithm,
        key_bits,
        runtime: runtime.clone(),
        failure: Mutex::new(None),
    };
    // rcgen writes the SubjectPublicKeyInfo from its own algorithm table: it must be the key's.
    if key.subject_public_key_info() != spki {
        return Err(Error::with_context(
            ErrorKind::UnsupportedKey,
            "the key's SubjectPublicKeyInfo cannot be written by the X.509 encoder",
        ));
    }
    let joined = runtime
        .spawn_blocking(move || {
            let built = build(&key);
            (
                built,
                key.failure
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner),
            )
        })
        .await
        .map_err(|_| Error::with_context(ErrorKind::Signing, "X.509 signing task failed"))?;
    match joined {
        (Ok(der), _) => Ok(der),
        (Err(_), Some(failure)) => Err(failure),
        (Err(e), None) => Err(Error::with_context(
            ErrorKind::InvalidInput,
            format!("cannot encode the X.509 document: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_and_print_back() {
        let subject: Subject = " cn = my-app , O=Example\\, Inc.\\\\ ,c=US"
            .parse()
            .unwrap();
        assert_eq!(
            subject.entries,
            [
                ("CN", "my-app".to_string()),
                ("O", "Example, Inc.\\".to_string()),
                ("C", "US".to_string())
            ]
        );
        assert_eq!(subject.to_string(), "CN=my-app,O=Example\\, Inc.\\\\,C=US");
        assert_eq!(subject.to_string().parse::<Subject>().unwrap(), subject);
        for bad in [
            "",
            "CN",
            "CN=a,",
            "O=b",
            "CN=a,cn=b",
            "CN=\u{1}",
            "CN=a\\",
            "E=x,CN=a",
        ] {
            let err = bad.parse::<Subject>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains("CN=name"), "{err}");
        }
    }
}
