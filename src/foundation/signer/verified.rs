//! Sign, then check the signature with the signer's own public key: every certificate and token
//! this crate mints goes through [`sign_verified`], so a garbled signature from a remote key is
//! never handed out.

use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, Signature};
use crate::signer::RemoteSigner;

/// Signs `message` with `algorithm` and returns the signature only if it is made with that
/// algorithm and verifies with `signer`'s public key.
///
/// # Errors
/// The signer's own failures; [`ErrorKind::Signing`] if the signature it returned does not
/// verify (the text names the key, never the signature).
pub(crate) async fn sign_verified(
    signer: &(impl RemoteSigner + ?Sized),
    algorithm: Algorithm,
    message: &[u8],
) -> Result<Signature> {
    let signature = signer.sign(algorithm, message).await?;
    if signature.algorithm() != algorithm
        || signer
            .public_key()
            .verify(algorithm, message, signature.as_bytes())
            .is_err()
    {
        return Err(Error::with_context(
            ErrorKind::Signing,
            format!(
                "{} returned a signature that does not verify",
                signer.key_id()
            ),
        ));
    }
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::PublicKey;
    use crate::signer::KeyId;
    use async_trait::async_trait;

    /// Signs with one key and claims another's public key.
    #[derive(Debug)]
    struct Mismatched {
        signing: crate::backend::local::LocalSigner,
        claimed: PublicKey,
    }

    #[async_trait]
    impl RemoteSigner for Mismatched {
        fn key_id(&self) -> &KeyId {
            self.signing.key_id()
        }
        fn public_key(&self) -> &PublicKey {
            &self.claimed
        }
        async fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature> {
            self.signing.sign(algorithm, message).await
        }
    }

    fn mismatched() -> Mismatched {
        let signing = crate::backend::local::LocalSigner::generate(crate::KeyType::P256).unwrap();
        let other = crate::backend::local::LocalSigner::generate(crate::KeyType::P256).unwrap();
        Mismatched {
            signing,
            claimed: other.public_key().clone(),
        }
    }

    #[tokio::test]
    async fn a_signature_that_verifies_is_returned() {
        let signer = crate::backend::local::LocalSigner::generate(crate::KeyType::P256).unwrap();
        let signature = sign_verified(&signer, Algorithm::ES256, b"message")
            .await
            .unwrap();
        assert_eq!(signature.algorithm(), Algorithm::ES256);
        signer
            .public_key()
            .verify(Algorithm::ES256, b"message", signature.as_bytes())
            .unwrap();
    }

    #[tokio::test]
    async fn a_signature_from_another_key_is_refused_naming_the_key() {
        let signer = mismatched();
        let err = sign_verified(&signer, Algorithm::ES256, b"message")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Signing);
        assert!(err.to_string().contains(signer.key_id().as_ref()), "{err}");
        assert!(err.to_string().contains("does not verify"), "{err}");
    }
}
