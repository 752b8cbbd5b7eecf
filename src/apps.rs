//! The applications: what is signed for which protocol. Each signs only what its protocol
//! defines, and each verifier bounds what a credential may claim, so a signature made for one
//! is never valid in another: session cookies ([`cookie`]), Snowflake key-pair JWTs
//! ([`snowflake`]), other services' key-pair JWTs ([`jwt`]), the ssh-agent (`ssh`, feature
//! `ssh-agent`) and X.509 certificates (`x509`, feature `x509`).

pub mod cookie;
pub mod jwt;
pub mod snowflake;
#[cfg(feature = "ssh-agent")]
pub mod ssh;
#[cfg(feature = "x509")]
pub mod x509;
