//! The local check of every signature a remote backend (Key Vault, AWS KMS) returns, before it
//! is handed out.
//!
//! It runs on every remote sign, so it uses ring (already linked for TLS), several times
//! faster than the RustCrypto verifiers; secp256k1, which ring lacks, goes through
//! [`PublicKey::verify`].

use p256::elliptic_curve::sec1::ToEncodedPoint;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use rsa::traits::PublicKeyParts;

use crate::error::{Error, ErrorKind, Result};
use crate::key::public::Inner;
use crate::key::{Algorithm, PublicKey};

/// Verifies signatures from one key, with its public numbers prepared once.
pub(crate) enum SignatureCheck {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec(Vec<u8>),
    Other,
}

impl SignatureCheck {
    pub(crate) fn new(key: &PublicKey) -> Self {
        match key.inner() {
            Inner::Rsa(k) => SignatureCheck::Rsa {
                n: k.n().to_bytes_be(),
                e: k.e().to_bytes_be(),
            },
            Inner::P256(k) => SignatureCheck::Ec(k.to_encoded_point(false).as_bytes().to_vec()),
            Inner::P384(k) => SignatureCheck::Ec(k.to_encoded_point(false).as_bytes().to_vec()),
            _ => SignatureCheck::Other,
        }
    }

    /// Checks `sig` over `message`; `alg` has already been checked against the key's type.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSignature`] if it does not verify.
    pub(crate) fn verify(
        &self,
        key: &PublicKey,
        alg: Algorithm,
        message: &[u8],
        sig: &[u8],
    ) -> Result<()> {
        let ok = match self {
            SignatureCheck::Rsa { n, e } => {
                let params = match alg {
                    Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return key.verify(alg, message, sig),
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            SignatureCheck::Ec(point) => {
                let algorithm = match alg {
                    Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return key.verify(alg, message, sig),
                };
                UnparsedPublicKey::new(algorithm, point)
                    .verify(message, sig)
                    .is_ok()
            }
            SignatureCheck::Other => return key.verify(alg, message, sig),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::InvalidSignature))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalSigner;
    use crate::key::KeyType;

    #[test]
    fn agrees_with_the_rustcrypto_verifiers() {
        for key_type in [KeyType::Rsa, KeyType::P256, KeyType::P384] {
            let signer = LocalSigner::generate(key_type).unwrap();
            let public = crate::RemoteSigner::public_key(&signer).clone();
            let check = SignatureCheck::new(&public);
            for alg in key_type.algorithms() {
                let sig = signer.sign_blocking(*alg, b"message").unwrap();
                check
                    .verify(&public, *alg, b"message", sig.as_bytes())
                    .unwrap();
                assert!(
                    check
                        .verify(&public, *alg, b"massage", sig.as_bytes())
                        .is_err()
                );
                let mut bad = sig.as_bytes().to_vec();
                bad[3] ^= 0x40;
                assert!(
                    check.verify(&public, *alg, b"message", &bad).is_err(),
                    "{alg}"
                );
                assert!(
                    check.verify(&public, *alg, b"message", &[]).is_err(),
                    "{alg}"
                );
            }
        }
    }
}
