//! Key types: algorithms, public keys and their encodings, signatures.

mod algorithm;
mod jwks;
pub(crate) mod public;
mod signature;

pub use algorithm::{Algorithm, Hash, KeyType};
pub use jwks::Jwks;
pub use public::{Jwk, PublicKey};
pub use signature::Signature;
