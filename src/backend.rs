//! Where keys live. Applications use [`RemoteSigner`](crate::RemoteSigner) and never name a
//! backend; the backends are here for constructing signers.

pub mod local;
#[cfg(feature = "azure")]
pub mod azure;
