//! Public keys: decoding, verification and every encoding a protocol here needs
//! (SPKI PEM/DER, JWK with RFC 7638 thumbprint, OpenSSH, Snowflake and OpenSSH fingerprints).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use signature::Verifier;

use super::{Algorithm, KeyType};
use crate::error::{Error, ErrorKind, Result};

/// Smallest RSA modulus accepted anywhere in this crate.
pub(crate) const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted anywhere in this crate.
pub(crate) const RSA_MAX_BITS: usize = 4096;

/// A public key of one of the supported types.
///
/// Cheap to clone. Equality compares the key itself.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: Inner,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Inner {
    Rsa(rsa::RsaPublicKey),
    P256(p256::PublicKey),
    P384(p384::PublicKey),
    K256(k256::PublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A JSON Web Key (RFC 7517) holding a public key.
///
/// Members appear in the order `kty`, `crv`, `x`, `y`, `n`, `e`, `kid`, `alg`, `use`;
/// absent members are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Curve for `EC` (`P-256`, `P-384`, `P-256K`/`secp256k1`) and `OKP` (`Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// X coordinate (EC) or the public key (OKP), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Y coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Key id; this crate sets it to the RFC 7638 thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended algorithm, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use (`sig`).
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64url(field: &str, value: Option<&String>) -> Result<Vec<u8>> {
    let value = value.ok_or_else(|| Error::invalid_input(format!("JWK lacks \"{field}\"")))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| Error::invalid_input(format!("JWK \"{field}\" is not base64url")))
}

impl PublicKey {
    pub(crate) fn from_inner(inner: Inner) -> Result<Self> {
        if let Inner::Rsa(key) = &inner {
            let bits = key.n().bits();
            if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                return Err(Error::with_context(
                    ErrorKind::UnsupportedKey,
                    format!("RSA key of {bits} bits (supported: {RSA_MIN_BITS} to {RSA_MAX_BITS})"),
                ));
            }
        }
        Ok(PublicKey { inner })
    }

    #[allow(dead_code)] // for the ssh and azure modules
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Builds an RSA key from its big-endian modulus and exponent.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the numbers do not form an RSA key,
    /// [`ErrorKind::UnsupportedKey`] if the modulus is not 2048 to 4096 bits.
    pub fn from_rsa_components(n: &[u8], e: &[u8]) -> Result<Self> {
        let key = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(n),
            rsa::BigUint::from_bytes_be(e),
        )
        .map_err(|_| Error::invalid_input("not a valid RSA public key"))?;
        Self::from_inner(Inner::Rsa(key))
    }

    /// Builds an EC key from its affine coordinates (big-endian, field-sized).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the point is not on the curve,
    /// [`ErrorKind::UnsupportedKey`] for a key type that is not EC.
    pub fn from_ec_coordinates(key_type: KeyType, x: &[u8], y: &[u8]) -> Result<Self> {
        let mut sec1 = Vec::with_capacity(1 + x.len() + y.len());
        sec1.push(4);
        sec1.extend_from_slice(x);
        sec1.extend_from_slice(y);
        Self::from_sec1_point(key_type, &sec1)
    }

    /// Builds an EC key from a SEC1-encoded point (compressed or not).
    ///
    /// # Errors
    /// As [`PublicKey::from_ec_coordinates`].
    pub fn from_sec1_point(key_type: KeyType, point: &[u8]) -> Result<Self> {
        let bad = |_| Error::invalid_input(format!("not a valid {key_type} point"));
        let inner = match key_type {
            KeyType::P256 => Inner::P256(p256::PublicKey::from_sec1_bytes(point).map_err(bad)?),
            KeyType::P384 => Inner::P384(p384::PublicKey::from_sec1_bytes(point).map_err(bad)?),
            KeyType::K256 => Inner::K256(k256::PublicKey::from_sec1_bytes(point).map_err(bad)?),
            other => {
                return Err(Error::with_context(
                    ErrorKind::UnsupportedKey,
                    format!("{other} is not an EC key type"),
                ));
            }
        };
        Self::from_inner(inner)
    }

    /// Builds an Ed25519 key from its 32 bytes.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the bytes are not a valid Ed25519 point.
    pub fn from_ed25519_bytes(bytes: &[u8]) -> Result<Self> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::invalid_input("Ed25519 public key must be 32 bytes"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| Error::invalid_input("not a valid Ed25519 public key"))?;
        Self::from_inner(Inner::Ed25519(key))
    }

    /// Decodes a DER `SubjectPublicKeyInfo`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for malformed DER, [`ErrorKind::UnsupportedKey`] for another
    /// key type or an RSA size outside 2048 to 4096 bits.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let spki = spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|_| Error::invalid_input("not a DER SubjectPublicKeyInfo"))?;
        const RSA: pkcs8::ObjectIdentifier =
            pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
        const EC: pkcs8::ObjectIdentifier =
            pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
        const ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
        const P256: pkcs8::ObjectIdentifier =
            pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
        const P384: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.34");
        const K256: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.10");
        let bad = |_| Error::invalid_input("malformed public key");
        let inner = match spki.algorithm.oid {
            RSA => {
                // `rsa` refuses keys above 4096 bits as malformed; say what is wrong instead.
                if let Ok(key) = pkcs1::RsaPublicKey::try_from(spki.subject_public_key.raw_bytes())
                {
                    let modulus = key.modulus.as_bytes();
                    let bits = modulus.first().map_or(0, |&top| {
                        (modulus.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
                    });
                    if bits > RSA_MAX_BITS {
                        return Err(Error::with_context(
                            ErrorKind::UnsupportedKey,
                            format!(
                                "RSA key of {bits} bits (supported: {RSA_MIN_BITS} to {RSA_MAX_BITS})"
                            ),
                        ));
                    }
                }
                Inner::Rsa(rsa::RsaPublicKey::from_public_key_der(der).map_err(bad)?)
            }
            ED25519 => {
                Inner::Ed25519(ed25519_dalek::VerifyingKey::from_public_key_der(der).map_err(bad)?)
            }
            EC => match spki.algorithm.parameters_oid().ok() {
                Some(P256) => Inner::P256(p256::PublicKey::from_public_key_der(der).map_err(bad)?),
                Some(P384) => Inner::P384(p384::PublicKey::from_public_key_der(der).map_err(bad)?),
                Some(K256) => Inner::K256(k256::PublicKey::from_public_key_der(der).map_err(bad)?),
                _ => {
                    return Err(Error::with_context(
                        ErrorKind::UnsupportedKey,
                        "EC curve (supported: P-256, P-384, P-256K)",
                    ));
                }
            },
            _ => {
                return Err(Error::with_context(
                    ErrorKind::UnsupportedKey,
                    "public key algorithm (supported: RSA, EC, Ed25519)",
                ));
            }
        };
        Self::from_inner(inner)
    }

    /// Decodes a PEM public key: `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1).
    ///
    /// # Errors
    /// As [`PublicKey::from_spki_der`], and [`ErrorKind::InvalidInput`] for other PEM labels.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let (label, der) = pem_rfc7468_decode(pem)?;
        match label.as_str() {
            "PUBLIC KEY" => Self::from_spki_der(&der),
            "RSA PUBLIC KEY" => {
                use pkcs1::DecodeRsaPublicKey;
                let key = rsa::RsaPublicKey::from_pkcs1_der(&der)
                    .map_err(|_| Error::invalid_input("malformed RSA public key"))?;
                Self::from_inner(Inner::Rsa(key))
            }
            other => Err(Error::invalid_input(format!(
                "PEM label {:?} is not a public key",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }

    /// Decodes a public key given as PEM, DER SPKI, a JWK (JSON) or an OpenSSH line, whichever
    /// `bytes` holds. Useful for command-line input.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when none of the forms matches.
    pub fn from_any(bytes: &[u8]) -> Result<Self> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let trimmed = text.trim_start();
            if trimmed.starts_with("-----BEGIN") {
                return Self::from_pem(text);
            }
            if trimmed.starts_with('{') {
                let jwk: Jwk = serde_json::from_str(text)
                    .map_err(|_| Error::invalid_input("malformed JWK"))?;
                return Self::from_jwk(&jwk);
            }
            if trimmed.starts_with("ssh-") || trimmed.starts_with("ecdsa-") {
                return Self::from_openssh(trimmed);
            }
        }
        Self::from_spki_der(bytes)
    }

    /// Decodes a public JWK.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for missing or malformed members,
    /// [`ErrorKind::UnsupportedKey`] for other key types or curves.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self> {
        match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) => Self::from_rsa_components(
                &unb64url("n", jwk.n.as_ref())?,
                &unb64url("e", jwk.e.as_ref())?,
            ),
            ("EC", Some(crv)) => {
                let key_type = match crv {
                    "P-256" => KeyType::P256,
                    "P-384" => KeyType::P384,
                    "P-256K" | "secp256k1" => KeyType::K256,
                    _ => return Err(Error::with_context(ErrorKind::UnsupportedKey, "JWK curve")),
                };
                Self::from_ec_coordinates(
                    key_type,
                    &unb64url("x", jwk.x.as_ref())?,
                    &unb64url("y", jwk.y.as_ref())?,
                )
            }
            ("OKP", Some("Ed25519")) => Self::from_ed25519_bytes(&unb64url("x", jwk.x.as_ref())?),
            _ => Err(Error::with_context(
                ErrorKind::UnsupportedKey,
                "JWK key type (supported: RSA, EC, OKP Ed25519)",
            )),
        }
    }

    /// Decodes an OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for malformed lines, [`ErrorKind::UnsupportedKey`] for other
    /// key types.
    pub fn from_openssh(line: &str) -> Result<Self> {
        let key = ssh_key::PublicKey::from_openssh(line.trim())
            .map_err(|_| Error::invalid_input("malformed OpenSSH public key"))?;
        Self::from_ssh_key_data(key.key_data())
    }

    /// Converts from `ssh-key`'s key data.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedKey`] for key types this crate does not sign with.
    pub fn from_ssh_key_data(data: &ssh_key::public::KeyData) -> Result<Self> {
        use ssh_key::public::{EcdsaPublicKey, KeyData};
        match data {
            KeyData::Rsa(rsa) => {
                let key = rsa::RsaPublicKey::try_from(rsa)
                    .map_err(|_| Error::invalid_input("malformed RSA public key"))?;
                Self::from_inner(Inner::Rsa(key))
            }
            KeyData::Ecdsa(EcdsaPublicKey::NistP256(point)) => {
                Self::from_sec1_point(KeyType::P256, point.as_bytes())
            }
            KeyData::Ecdsa(EcdsaPublicKey::NistP384(point)) => {
                Self::from_sec1_point(KeyType::P384, point.as_bytes())
            }
            KeyData::Ed25519(key) => Self::from_ed25519_bytes(key.as_ref()),
            _ => Err(Error::with_context(
                ErrorKind::UnsupportedKey,
                "SSH key type (supported: RSA, ECDSA P-256/P-384, Ed25519)",
            )),
        }
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        match &self.inner {
            Inner::Rsa(_) => KeyType::Rsa,
            Inner::P256(_) => KeyType::P256,
            Inner::P384(_) => KeyType::P384,
            Inner::K256(_) => KeyType::K256,
            Inner::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// RSA modulus size in bits; `None` for other key types.
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.inner {
            Inner::Rsa(key) => Some(key.n().bits()),
            _ => None,
        }
    }

    /// The DER `SubjectPublicKeyInfo`, as `openssl pkey -pubout -outform DER` writes it.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let doc = match &self.inner {
            Inner::Rsa(k) => k.to_public_key_der(),
            Inner::P256(k) => k.to_public_key_der(),
            Inner::P384(k) => k.to_public_key_der(),
            Inner::K256(k) => k.to_public_key_der(),
            Inner::Ed25519(k) => k.to_public_key_der(),
        };
        // Encoding a valid in-memory key cannot fail; the types guarantee validity.
        doc.expect("encoding a valid public key").into_vec()
    }

    /// The PEM `PUBLIC KEY`, byte-identical to `openssl pkey -pubout`.
    pub fn to_pem(&self) -> String {
        pem_rfc7468::encode_string(
            "PUBLIC KEY",
            pem_rfc7468::LineEnding::LF,
            &self.to_spki_der(),
        )
        .expect("PEM encoding of a DER document")
    }

    /// The public JWK, with `kid` set to the RFC 7638 thumbprint.
    pub fn to_jwk(&self) -> Jwk {
        let mut jwk = self.jwk_members();
        jwk.kid = Some(self.jwk_thumbprint());
        jwk
    }

    fn jwk_members(&self) -> Jwk {
        let mut jwk = Jwk {
            kty: String::new(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid: None,
            alg: None,
            use_: None,
        };
        let ec = |crv: &str, point: &[u8], jwk: &mut Jwk| {
            let coord = (point.len() - 1) / 2;
            jwk.kty = "EC".into();
            jwk.crv = Some(crv.into());
            jwk.x = Some(b64url(&point[1..1 + coord]));
            jwk.y = Some(b64url(&point[1 + coord..]));
        };
        match &self.inner {
            Inner::Rsa(k) => {
                jwk.kty = "RSA".into();
                jwk.n = Some(b64url(&k.n().to_bytes_be()));
                jwk.e = Some(b64url(&k.e().to_bytes_be()));
            }
            Inner::P256(k) => ec("P-256", k.to_encoded_point(false).as_bytes(), &mut jwk),
            Inner::P384(k) => ec("P-384", k.to_encoded_point(false).as_bytes(), &mut jwk),
            Inner::K256(k) => ec("secp256k1", k.to_encoded_point(false).as_bytes(), &mut jwk),
            Inner::Ed25519(k) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64url(k.as_bytes()));
            }
        }
        jwk
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url without padding).
    pub fn jwk_thumbprint(&self) -> String {
        let jwk = self.jwk_members();
        let s = |v: &Option<String>| {
            serde_json::to_string(v.as_deref().unwrap_or_default()).expect("JSON string")
        };
        let kty = serde_json::to_string(&jwk.kty).expect("JSON string");
        // Required members only, in lexicographic order, no white space (RFC 7638 section 3.2).
        let canonical = match jwk.kty.as_str() {
            "RSA" => format!(r#"{{"e":{},"kty":{kty},"n":{}}}"#, s(&jwk.e), s(&jwk.n)),
            "EC" => format!(
                r#"{{"crv":{},"kty":{kty},"x":{},"y":{}}}"#,
                s(&jwk.crv),
                s(&jwk.x),
                s(&jwk.y)
            ),
            _ => format!(r#"{{"crv":{},"kty":{kty},"x":{}}}"#, s(&jwk.crv), s(&jwk.x)),
        };
        b64url(&Sha256::digest(canonical.as_bytes()))
    }

    /// The key in `ssh-key`'s form.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedKey`] for P-256K, which SSH does not define.
    pub fn to_ssh_key_data(&self) -> Result<ssh_key::public::KeyData> {
        use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData, RsaPublicKey};
        let unsupported = || Error::with_context(ErrorKind::UnsupportedKey, "no SSH form");
        Ok(match &self.inner {
            Inner::Rsa(k) => KeyData::Rsa(RsaPublicKey::try_from(k).map_err(|_| unsupported())?),
            Inner::P256(k) => KeyData::Ecdsa(
                EcdsaPublicKey::from_sec1_bytes(k.to_encoded_point(false).as_bytes())
                    .map_err(|_| unsupported())?,
            ),
            Inner::P384(k) => KeyData::Ecdsa(
                EcdsaPublicKey::from_sec1_bytes(k.to_encoded_point(false).as_bytes())
                    .map_err(|_| unsupported())?,
            ),
            Inner::K256(_) => {
                return Err(Error::with_context(
                    ErrorKind::UnsupportedKey,
                    "EC P-256K keys have no SSH form",
                ));
            }
            Inner::Ed25519(k) => KeyData::Ed25519(Ed25519PublicKey::from(k)),
        })
    }

    /// The OpenSSH public key line (`authorized_keys` form), with `comment` appended if not empty.
    ///
    /// # Errors
    /// As [`PublicKey::to_ssh_key_data`].
    pub fn to_openssh(&self, comment: &str) -> Result<String> {
        ssh_key::PublicKey::new(self.to_ssh_key_data()?, comment)
            .to_openssh()
            .map_err(|_| Error::with_context(ErrorKind::UnsupportedKey, "no SSH form"))
    }

    /// The fingerprint as `ssh-keygen -l` prints it: `SHA256:` and unpadded base64 of SHA-256
    /// over the SSH public key blob.
    ///
    /// # Errors
    /// As [`PublicKey::to_ssh_key_data`].
    pub fn openssh_fingerprint(&self) -> Result<String> {
        Ok(self
            .to_ssh_key_data()?
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string())
    }

    /// The fingerprint Snowflake shows as `RSA_PUBLIC_KEY_FP`: `SHA256:` and padded standard
    /// base64 of SHA-256 over the DER `SubjectPublicKeyInfo`.
    pub fn snowflake_fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            STANDARD.encode(Sha256::digest(self.to_spki_der()))
        )
    }

    /// Verifies `signature` over `message` with `alg`, which must belong to this key's type.
    /// ECDSA signatures are in the JOSE form (raw `r || s`).
    ///
    /// # Errors
    /// [`ErrorKind::Algorithm`] if `alg` does not fit the key; [`ErrorKind::InvalidSignature`]
    /// if the signature does not verify or is malformed.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Result<()> {
        alg.check_key_type(self.key_type())?;
        let invalid = || Error::new(ErrorKind::InvalidSignature);
        let ok = match (&self.inner, alg) {
            (Inner::Rsa(k), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512) => {
                let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| invalid())?;
                let k = k.clone();
                match alg {
                    Algorithm::RS256 => {
                        rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k).verify(message, &sig)
                    }
                    Algorithm::RS384 => {
                        rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(k).verify(message, &sig)
                    }
                    _ => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(k).verify(message, &sig),
                }
                .is_ok()
            }
            (Inner::Rsa(k), _) => {
                let sig = rsa::pss::Signature::try_from(signature).map_err(|_| invalid())?;
                let k = k.clone();
                match alg {
                    Algorithm::PS256 => {
                        rsa::pss::VerifyingKey::<sha2::Sha256>::new(k).verify(message, &sig)
                    }
                    Algorithm::PS384 => {
                        rsa::pss::VerifyingKey::<sha2::Sha384>::new(k).verify(message, &sig)
                    }
                    _ => rsa::pss::VerifyingKey::<sha2::Sha512>::new(k).verify(message, &sig),
                }
                .is_ok()
            }
            (Inner::P256(k), _) => {
                let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|_| invalid())?;
                p256::ecdsa::VerifyingKey::from(k)
                    .verify(message, &sig)
                    .is_ok()
            }
            (Inner::P384(k), _) => {
                let sig = p384::ecdsa::Signature::from_slice(signature).map_err(|_| invalid())?;
                p384::ecdsa::VerifyingKey::from(k)
                    .verify(message, &sig)
                    .is_ok()
            }
            (Inner::K256(k), _) => {
                let sig = k256::ecdsa::Signature::from_slice(signature).map_err(|_| invalid())?;
                // k256 insists on low-S; other signers (Key Vault) may return high-S.
                let sig = sig.normalize_s().unwrap_or(sig);
                k256::ecdsa::VerifyingKey::from(k)
                    .verify(message, &sig)
                    .is_ok()
            }
            (Inner::Ed25519(k), _) => {
                let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| invalid())?;
                k.verify_strict(message, &sig).is_ok()
            }
        };
        if ok { Ok(()) } else { Err(invalid()) }
    }
}

/// PEM decoding that tolerates surrounding text and CRLF, as OpenSSL does.
pub(crate) fn pem_rfc7468_decode(pem: &str) -> Result<(String, Vec<u8>)> {
    let start = pem
        .find("-----BEGIN ")
        .ok_or_else(|| Error::invalid_input("no PEM block found"))?;
    let text = pem[start..].replace('\r', "");
    let (label, der) = pem_rfc7468::decode_vec(text.as_bytes())
        .map_err(|_| Error::invalid_input("malformed PEM"))?;
    Ok((label.to_string(), der))
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PublicKey");
        d.field("type", &self.key_type());
        if let Some(bits) = self.rsa_bits() {
            d.field("bits", &bits);
        }
        d.field("thumbprint", &self.jwk_thumbprint()).finish()
    }
}
