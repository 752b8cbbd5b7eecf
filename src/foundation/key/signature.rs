//! Signatures in the JOSE form, with the conversions protocols need.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Algorithm;
use crate::error::{Error, ErrorKind, Result};

/// A signature and the algorithm that made it.
///
/// The bytes are in the JOSE form: the PKCS#1 / PSS block for RSA, raw `r || s` for ECDSA,
/// the 64 bytes of RFC 8032 for Ed25519.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    algorithm: Algorithm,
    bytes: Vec<u8>,
}

impl Signature {
    /// Wraps signature bytes in the JOSE form.
    pub fn new(algorithm: Algorithm, bytes: Vec<u8>) -> Self {
        Signature { algorithm, bytes }
    }

    /// The algorithm that made the signature.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The signature bytes (JOSE form).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signature bytes (JOSE form).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Base64url without padding, as in a compact JWS.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.bytes)
    }

    /// ECDSA signatures as the DER `ECDSA-Sig-Value` (X9.62) that OpenSSL and X.509 use;
    /// other algorithms' bytes are returned as they are.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSignature`] if ECDSA bytes are not a valid `r || s`.
    pub fn to_der(&self) -> Result<Vec<u8>> {
        let invalid = |_| Error::new(ErrorKind::InvalidSignature);
        Ok(match self.algorithm {
            Algorithm::ES256 => p256::ecdsa::Signature::from_slice(&self.bytes)
                .map_err(invalid)?
                .to_der()
                .as_bytes()
                .to_vec(),
            Algorithm::ES384 => p384::ecdsa::Signature::from_slice(&self.bytes)
                .map_err(invalid)?
                .to_der()
                .as_bytes()
                .to_vec(),
            Algorithm::ES256K => k256::ecdsa::Signature::from_slice(&self.bytes)
                .map_err(invalid)?
                .to_der()
                .as_bytes()
                .to_vec(),
            _ => self.bytes.clone(),
        })
    }

    /// Parses an ECDSA DER `ECDSA-Sig-Value` into the JOSE form; other algorithms' bytes are
    /// taken as they are.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSignature`] if the DER is malformed.
    pub fn from_der(algorithm: Algorithm, der: &[u8]) -> Result<Self> {
        let invalid = |_| Error::new(ErrorKind::InvalidSignature);
        let bytes = match algorithm {
            Algorithm::ES256 => p256::ecdsa::Signature::from_der(der)
                .map_err(invalid)?
                .to_vec(),
            Algorithm::ES384 => p384::ecdsa::Signature::from_der(der)
                .map_err(invalid)?
                .to_vec(),
            Algorithm::ES256K => k256::ecdsa::Signature::from_der(der)
                .map_err(invalid)?
                .to_vec(),
            _ => der.to_vec(),
        };
        Ok(Signature { algorithm, bytes })
    }

    /// The signature in the SSH wire form (`string algorithm-name, string blob`) that
    /// ssh-agent and `sshsig` use: `rsa-sha2-256`/`rsa-sha2-512`, `ecdsa-sha2-nistp256`/`384`
    /// (with `mpint r, mpint s` inside), `ssh-ed25519`.
    ///
    /// # Errors
    /// [`ErrorKind::Algorithm`] for algorithms SSH does not define (PS*, RS384, ES256K).
    pub fn to_ssh(&self) -> Result<ssh_key::Signature> {
        use ssh_key::Algorithm as A;
        let (alg, blob) = match self.algorithm {
            Algorithm::RS256 => (
                A::Rsa {
                    hash: Some(ssh_key::HashAlg::Sha256),
                },
                self.bytes.clone(),
            ),
            Algorithm::RS512 => (
                A::Rsa {
                    hash: Some(ssh_key::HashAlg::Sha512),
                },
                self.bytes.clone(),
            ),
            Algorithm::ES256 | Algorithm::ES384 => {
                let half = self.bytes.len() / 2;
                let curve = if self.algorithm == Algorithm::ES256 {
                    ssh_key::EcdsaCurve::NistP256
                } else {
                    ssh_key::EcdsaCurve::NistP384
                };
                let mut blob = Vec::new();
                use ssh_encoding::Encode;
                let r = ssh_key::Mpint::from_positive_bytes(&self.bytes[..half])
                    .map_err(|_| Error::new(ErrorKind::InvalidSignature))?;
                let s = ssh_key::Mpint::from_positive_bytes(&self.bytes[half..])
                    .map_err(|_| Error::new(ErrorKind::InvalidSignature))?;
                r.encode(&mut blob)
                    .and_then(|()| s.encode(&mut blob))
                    .map_err(|_| Error::new(ErrorKind::InvalidSignature))?;
                (A::Ecdsa { curve }, blob)
            }
            Algorithm::EdDSA => (A::Ed25519, self.bytes.clone()),
            other => {
                return Err(Error::algorithm(format!(
                    "{other} has no SSH signature form"
                )));
            }
        };
        ssh_key::Signature::new(alg, blob).map_err(|_| Error::new(ErrorKind::InvalidSignature))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("algorithm", &self.algorithm)
            .field("len", &self.bytes.len())
            .finish()
    }
}
