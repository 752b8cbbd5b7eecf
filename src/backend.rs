//! Where keys live. Applications use [`RemoteSigner`](crate::RemoteSigner) and never name a
//! backend; the backends are here for constructing signers.

#[cfg(feature = "azure")]
pub mod azure;
pub mod local;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
