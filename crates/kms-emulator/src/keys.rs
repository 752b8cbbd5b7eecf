//! Key material and the signing algorithms KMS offers for each key spec.

use ed25519_dalek::Signer as _;
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use rsa::pkcs8::EncodePublicKey;
use rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use signature::hazmat::{PrehashSigner, PrehashVerifier};

/// The key specs the emulator creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// `RSA_2048`, `RSA_3072`, `RSA_4096` (the bit count).
    Rsa(usize),
    /// `ECC_NIST_P256`.
    P256,
    /// `ECC_NIST_P384`.
    P384,
    /// `ECC_SECG_P256K1`.
    K256,
    /// `ECC_NIST_EDWARDS25519`.
    Ed25519,
    /// `SYMMETRIC_DEFAULT` (encryption only; no public key).
    SymmetricDefault,
}

impl KeySpec {
    /// Parses the API name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "RSA_2048" => KeySpec::Rsa(2048),
            "RSA_3072" => KeySpec::Rsa(3072),
            "RSA_4096" => KeySpec::Rsa(4096),
            "ECC_NIST_P256" => KeySpec::P256,
            "ECC_NIST_P384" => KeySpec::P384,
            "ECC_SECG_P256K1" => KeySpec::K256,
            "ECC_NIST_EDWARDS25519" => KeySpec::Ed25519,
            "SYMMETRIC_DEFAULT" => KeySpec::SymmetricDefault,
            _ => return None,
        })
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::Rsa(3072) => "RSA_3072",
            KeySpec::Rsa(4096) => "RSA_4096",
            KeySpec::Rsa(_) => "RSA_2048",
            KeySpec::P256 => "ECC_NIST_P256",
            KeySpec::P384 => "ECC_NIST_P384",
            KeySpec::K256 => "ECC_SECG_P256K1",
            KeySpec::Ed25519 => "ECC_NIST_EDWARDS25519",
            KeySpec::SymmetricDefault => "SYMMETRIC_DEFAULT",
        }
    }

    /// `SigningAlgorithms` for a `SIGN_VERIFY` key of this spec.
    pub(crate) fn signing_algorithms(self) -> Vec<&'static str> {
        match self {
            KeySpec::Rsa(_) => vec![
                "RSASSA_PKCS1_V1_5_SHA_256",
                "RSASSA_PKCS1_V1_5_SHA_384",
                "RSASSA_PKCS1_V1_5_SHA_512",
                "RSASSA_PSS_SHA_256",
                "RSASSA_PSS_SHA_384",
                "RSASSA_PSS_SHA_512",
            ],
            KeySpec::P256 | KeySpec::K256 => vec!["ECDSA_SHA_256"],
            KeySpec::P384 => vec!["ECDSA_SHA_384"],
            KeySpec::Ed25519 => vec!["ED25519_SHA_512", "ED25519_PH_SHA_512"],
            KeySpec::SymmetricDefault => vec![],
        }
    }

    /// `EncryptionAlgorithms` for an `ENCRYPT_DECRYPT` key of this spec.
    pub(crate) fn encryption_algorithms(self) -> Vec<&'static str> {
        match self {
            KeySpec::Rsa(_) => vec!["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"],
            _ => vec!["SYMMETRIC_DEFAULT"],
        }
    }
}

pub(crate) enum Material {
    Rsa(Box<RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    K256(k256::ecdsa::SigningKey),
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Symmetric,
}

/// The `Message` of a request, as its `MessageType` says.
#[derive(Clone, Copy)]
pub(crate) enum Prepared<'a> {
    Raw(&'a [u8]),
    Digest(&'a [u8]),
}

/// A version 4 UUID from the seeded generator (key ids, request ids).
pub(crate) fn uuid(rng: &mut ChaCha20Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn hash_of(algorithm: &str) -> Option<(&'static str, usize)> {
    Some(match algorithm {
        "RSASSA_PKCS1_V1_5_SHA_256" | "RSASSA_PSS_SHA_256" | "ECDSA_SHA_256" => ("SHA_256", 32),
        "RSASSA_PKCS1_V1_5_SHA_384" | "RSASSA_PSS_SHA_384" | "ECDSA_SHA_384" => ("SHA_384", 48),
        "RSASSA_PKCS1_V1_5_SHA_512" | "RSASSA_PSS_SHA_512" | "ED25519_PH_SHA_512" => {
            ("SHA_512", 64)
        }
        _ => return None,
    })
}

/// The digest KMS signs: the message hashed (RAW) or the given digest, whose length must match.
fn digest(algorithm: &str, message: Prepared<'_>) -> Result<Vec<u8>, String> {
    let (hash, len) = hash_of(algorithm).ok_or("unknown signing algorithm")?;
    match message {
        Prepared::Digest(d) if d.len() == len => Ok(d.to_vec()),
        Prepared::Digest(_) => Err(format!(
            "Digest is invalid length for algorithm {algorithm}."
        )),
        Prepared::Raw(m) => Ok(match hash {
            "SHA_256" => Sha256::digest(m).to_vec(),
            "SHA_384" => Sha384::digest(m).to_vec(),
            _ => Sha512::digest(m).to_vec(),
        }),
    }
}

fn rsa_padding(algorithm: &str) -> (bool, Pkcs1v15Sign) {
    let pss = algorithm.starts_with("RSASSA_PSS");
    let pkcs1 = match algorithm {
        a if a.ends_with("384") => Pkcs1v15Sign::new::<Sha384>(),
        a if a.ends_with("512") => Pkcs1v15Sign::new::<Sha512>(),
        _ => Pkcs1v15Sign::new::<Sha256>(),
    };
    (pss, pkcs1)
}

fn pss(algorithm: &str) -> Pss {
    match algorithm {
        a if a.ends_with("384") => Pss::new::<Sha384>(),
        a if a.ends_with("512") => Pss::new::<Sha512>(),
        _ => Pss::new::<Sha256>(),
    }
}

impl Material {
    pub(crate) fn generate(spec: KeySpec, rng: &mut ChaCha20Rng) -> Material {
        match spec {
            KeySpec::Rsa(bits) => Material::Rsa(Box::new(rsa_key_pool::rsa(bits, rng))),
            KeySpec::P256 => Material::P256(p256::ecdsa::SigningKey::random(rng)),
            KeySpec::P384 => Material::P384(p384::ecdsa::SigningKey::random(rng)),
            KeySpec::K256 => Material::K256(k256::ecdsa::SigningKey::random(rng)),
            KeySpec::Ed25519 => {
                Material::Ed25519(Box::new(ed25519_dalek::SigningKey::generate(rng)))
            }
            KeySpec::SymmetricDefault => Material::Symmetric,
        }
    }

    pub(crate) fn spki_der(&self) -> Option<Vec<u8>> {
        let der = match self {
            Material::Rsa(k) => k.to_public_key().to_public_key_der(),
            Material::P256(k) => k.verifying_key().to_public_key_der(),
            Material::P384(k) => k.verifying_key().to_public_key_der(),
            Material::K256(k) => k.verifying_key().to_public_key_der(),
            Material::Ed25519(k) => k.verifying_key().to_public_key_der(),
            Material::Symmetric => return None,
        };
        der.ok().map(|d| d.as_bytes().to_vec())
    }

    /// Signs as KMS does: ECDSA signatures DER-encoded, RSA-PSS with a salt as long as the hash.
    pub(crate) fn sign(
        &self,
        algorithm: &str,
        message: Prepared<'_>,
        rng: &mut ChaCha20Rng,
    ) -> Result<Vec<u8>, String> {
        fn failed(_: impl std::fmt::Display) -> String {
            "signing failed".to_string()
        }
        match self {
            Material::Rsa(k) => {
                let d = digest(algorithm, message)?;
                let (is_pss, pkcs1) = rsa_padding(algorithm);
                if is_pss {
                    k.sign_with_rng(rng, pss(algorithm), &d).map_err(failed)
                } else {
                    k.sign(pkcs1, &d).map_err(failed)
                }
            }
            Material::P256(k) => {
                let s: p256::ecdsa::Signature = k
                    .sign_prehash(&digest(algorithm, message)?)
                    .map_err(failed)?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            Material::P384(k) => {
                let s: p384::ecdsa::Signature = k
                    .sign_prehash(&digest(algorithm, message)?)
                    .map_err(failed)?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            Material::K256(k) => {
                let s: k256::ecdsa::Signature = k
                    .sign_prehash(&digest(algorithm, message)?)
                    .map_err(failed)?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            Material::Ed25519(k) => match (algorithm, message) {
                ("ED25519_SHA_512", Prepared::Raw(m)) => Ok(k.sign(m).to_bytes().to_vec()),
                ("ED25519_SHA_512", Prepared::Digest(_)) => {
                    Err("ED25519_SHA_512 requires MessageType RAW.".to_string())
                }
                ("ED25519_PH_SHA_512", Prepared::Raw(m)) => k
                    .sign_prehashed(Sha512::new().chain_update(m), None)
                    .map(|s| s.to_bytes().to_vec())
                    .map_err(failed),
                _ => Err("ED25519_PH_SHA_512 with MessageType DIGEST is not emulated".into()),
            },
            Material::Symmetric => Err("symmetric keys do not sign".into()),
        }
    }

    pub(crate) fn verify(
        &self,
        algorithm: &str,
        message: Prepared<'_>,
        signature: &[u8],
    ) -> Result<bool, String> {
        Ok(match self {
            Material::Rsa(k) => {
                let d = digest(algorithm, message)?;
                let public = k.to_public_key();
                let (is_pss, pkcs1) = rsa_padding(algorithm);
                if is_pss {
                    public.verify(pss(algorithm), &d, signature).is_ok()
                } else {
                    public.verify(pkcs1, &d, signature).is_ok()
                }
            }
            Material::P256(k) => p256::ecdsa::Signature::from_der(signature).is_ok_and(|s| {
                k.verifying_key()
                    .verify_prehash(&digest(algorithm, message).unwrap_or_default(), &s)
                    .is_ok()
            }),
            Material::P384(k) => p384::ecdsa::Signature::from_der(signature).is_ok_and(|s| {
                k.verifying_key()
                    .verify_prehash(&digest(algorithm, message).unwrap_or_default(), &s)
                    .is_ok()
            }),
            Material::K256(k) => k256::ecdsa::Signature::from_der(signature).is_ok_and(|s| {
                k.verifying_key()
                    .verify_prehash(&digest(algorithm, message).unwrap_or_default(), &s)
                    .is_ok()
            }),
            Material::Ed25519(k) => match (algorithm, message) {
                ("ED25519_SHA_512", Prepared::Raw(m)) => {
                    ed25519_dalek::Signature::from_slice(signature)
                        .is_ok_and(|s| k.verifying_key().verify_strict(m, &s).is_ok())
                }
                _ => return Err("only ED25519_SHA_512 over a RAW message is verified here".into()),
            },
            Material::Symmetric => return Err("symmetric keys do not verify".into()),
        })
    }
}
