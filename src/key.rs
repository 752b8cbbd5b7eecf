//! Key types: algorithms, public keys and their encodings, signatures.

mod algorithm;
pub(crate) mod public;
mod signature;

pub use algorithm::{Algorithm, Hash, KeyType};
pub use public::{Jwk, PublicKey};
pub use signature::Signature;
