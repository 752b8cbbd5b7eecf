//! The [`RemoteSigner`] trait: one key, held somewhere else, that signs on request, and
//! wrappers that add behaviour to any signer.

mod counted;
mod verified;

pub use counted::Counted;
pub(crate) use verified::sign_verified;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::key::{Algorithm, KeyType, PublicKey, Signature};

/// Identifies the exact key *version* that signs.
///
/// For a Key Vault key this is the full key URL with its version
/// (`https://<vault>.vault.azure.net/keys/<name>/<version>`); for a local key it is the
/// `file:` URI of the key file followed by `#` and the key's RFC 7638 thumbprint, so a key file
/// replaced by another key has another id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Arc<str>);

impl KeyId {
    /// Wraps an identifier.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        KeyId(id.into())
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({:?})", &*self.0)
    }
}

impl AsRef<str> for KeyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A signing key whose private half this process never holds (or, for the local backend,
/// never hands out).
///
/// Use it as `Arc<dyn RemoteSigner>`: applications depend on this trait, never on a backend.
///
/// # What is signed
/// [`sign`](RemoteSigner::sign) takes the whole message. The backend hashes it locally with the
/// algorithm's hash and, if the key is remote, sends only the digest; Ed25519 signs the message
/// itself. The signature comes back in the JOSE form (see [`Signature`]).
///
/// # Contract for implementations
/// - [`key_id`](RemoteSigner::key_id) names the exact key version that signs, and never changes
///   during the signer's life: a remote signer pins the version it resolved at start.
/// - [`public_key`](RemoteSigner::public_key) is fetched once and cached.
/// - `sign` refuses algorithms outside the key's family with
///   [`ErrorKind::Algorithm`](crate::ErrorKind::Algorithm), and returns only signatures that
///   verify with the public key.
/// - Nothing returns private key material.
#[async_trait]
pub trait RemoteSigner: fmt::Debug + Send + Sync {
    /// The exact key version that signs.
    fn key_id(&self) -> &KeyId;

    /// The public key, cached.
    fn public_key(&self) -> &PublicKey;

    /// The key's family; it fixes which algorithms [`sign`](RemoteSigner::sign) accepts.
    fn key_type(&self) -> KeyType {
        self.public_key().key_type()
    }

    /// The algorithm used when a caller names none: RS256, ES256, ES384, ES256K or EdDSA.
    fn default_algorithm(&self) -> Algorithm {
        self.key_type().default_algorithm()
    }

    /// Signs `message` with `algorithm`.
    ///
    /// # Errors
    /// [`ErrorKind::Algorithm`](crate::ErrorKind::Algorithm) if `algorithm` does not fit the key;
    /// for remote keys, the backend's failures (permission, throttling, outage, timeout).
    async fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature>;
}

/// Forwards the trait through smart pointers and references, so `Arc<dyn RemoteSigner>`,
/// `Box<dyn RemoteSigner>` and `&T` are signers too.
macro_rules! forward_remote_signer {
    ($($ptr:ty),*) => {$(
        #[async_trait]
        impl<T: RemoteSigner + ?Sized> RemoteSigner for $ptr {
            fn key_id(&self) -> &KeyId {
                (**self).key_id()
            }
            fn public_key(&self) -> &PublicKey {
                (**self).public_key()
            }
            fn key_type(&self) -> KeyType {
                (**self).key_type()
            }
            fn default_algorithm(&self) -> Algorithm {
                (**self).default_algorithm()
            }
            async fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature> {
                (**self).sign(algorithm, message).await
            }
        }
    )*};
}

forward_remote_signer!(Arc<T>, Box<T>, &T);

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    fn object_safe_and_send(signer: Arc<dyn RemoteSigner>) -> impl std::future::Future + Send {
        async move { signer.sign(Algorithm::EdDSA, b"m").await }
    }
}
