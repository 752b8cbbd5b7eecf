//! Where keys live. Applications use [`RemoteSigner`](crate::RemoteSigner) and never name a
//! backend; the backends are here for constructing signers.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(any(feature = "azure", feature = "aws"))]
mod check;
pub mod local;
#[cfg(any(feature = "azure", feature = "aws"))]
mod stats;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
