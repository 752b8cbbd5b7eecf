//! The core types every other part is written against: keys and signatures ([`key`]), the
//! [`RemoteSigner`](crate::RemoteSigner) trait ([`signer`]), key references ([`keyref`]) and
//! errors ([`error`]). Nothing here knows a protocol; [`keyref`] alone names the backends, to
//! open the key a KEYREF names.

pub(crate) mod error;
pub mod key;
pub mod keyref;
pub(crate) mod signer;
