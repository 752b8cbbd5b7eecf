//! JOSE algorithm names and the key types they belong to.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The family of a key, fixed by the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// RSA, 2048 to 4096 bits for signing keys.
    Rsa,
    /// ECDSA over NIST P-256.
    P256,
    /// ECDSA over NIST P-384.
    P384,
    /// ECDSA over secp256k1 (Key Vault `P-256K`).
    K256,
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    /// The algorithm a key of this type uses when the caller names none:
    /// RS256, ES256, ES384, ES256K or EdDSA.
    pub fn default_algorithm(self) -> Algorithm {
        match self {
            KeyType::Rsa => Algorithm::RS256,
            KeyType::P256 => Algorithm::ES256,
            KeyType::P384 => Algorithm::ES384,
            KeyType::K256 => Algorithm::ES256K,
            KeyType::Ed25519 => Algorithm::EdDSA,
        }
    }

    /// Every algorithm a key of this type can sign with.
    pub fn algorithms(self) -> &'static [Algorithm] {
        use Algorithm::*;
        match self {
            KeyType::Rsa => &[RS256, RS384, RS512, PS256, PS384, PS512],
            KeyType::P256 => &[ES256],
            KeyType::P384 => &[ES384],
            KeyType::K256 => &[ES256K],
            KeyType::Ed25519 => &[EdDSA],
        }
    }

    /// Whether `alg` belongs to this key type.
    pub fn supports(self, alg: Algorithm) -> bool {
        alg.key_type() == self
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            KeyType::Rsa => "RSA",
            KeyType::P256 => "EC P-256",
            KeyType::P384 => "EC P-384",
            KeyType::K256 => "EC P-256K",
            KeyType::Ed25519 => "Ed25519",
        })
    }
}

/// A hash function used by a signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    /// Hashes `message`.
    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hash::Sha256 => sha2::Sha256::digest(message).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(message).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(message).to_vec(),
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// A signature algorithm, by its JOSE name (RFC 7518, RFC 8037, RFC 8812).
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256 (MGF1 SHA-256, salt of 32 bytes).
    PS256,
    /// RSASSA-PSS with SHA-384 (MGF1 SHA-384, salt of 48 bytes).
    PS384,
    /// RSASSA-PSS with SHA-512 (MGF1 SHA-512, salt of 64 bytes).
    PS512,
    /// ECDSA P-256 with SHA-256; signature is raw `r || s` (64 bytes).
    ES256,
    /// ECDSA P-384 with SHA-384; signature is raw `r || s` (96 bytes).
    ES384,
    /// ECDSA secp256k1 with SHA-256; signature is raw `r || s` (64 bytes).
    ES256K,
    /// Ed25519 (the message itself is signed, no pre-hash).
    EdDSA,
}

impl Algorithm {
    /// All algorithms, in a stable order.
    pub const ALL: [Algorithm; 10] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES256K,
        Algorithm::EdDSA,
    ];

    /// The JOSE name (`"RS256"`, `"EdDSA"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES256K => "ES256K",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The key type this algorithm needs.
    pub fn key_type(self) -> KeyType {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyType::Rsa,
            Algorithm::ES256 => KeyType::P256,
            Algorithm::ES384 => KeyType::P384,
            Algorithm::ES256K => KeyType::K256,
            Algorithm::EdDSA => KeyType::Ed25519,
        }
    }

    /// The hash a remote backend applies before signing; `None` for EdDSA, which signs the
    /// message itself.
    pub fn hash(self) -> Option<Hash> {
        match self {
            Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::ES256K => {
                Some(Hash::Sha256)
            }
            Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => Some(Hash::Sha384),
            Algorithm::RS512 | Algorithm::PS512 => Some(Hash::Sha512),
            Algorithm::EdDSA => None,
        }
    }

    /// Errors unless this algorithm belongs to `key_type`.
    ///
    /// # Errors
    /// [`ErrorKind::Algorithm`](crate::ErrorKind::Algorithm) naming both.
    pub fn check_key_type(self, key_type: KeyType) -> Result<()> {
        if key_type.supports(self) {
            Ok(())
        } else {
            // Every key type's name is said with a vowel first: "an RSA", "an EC", "an Ed25519".
            Err(Error::algorithm(format!(
                "{self} cannot be used with an {key_type} key"
            )))
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
                let shown: String = s.chars().take(16).collect();
                Error::algorithm(format!(
                    "unknown algorithm {shown:?} (expected one of {})",
                    known.join(" ")
                ))
            })
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_families_are_fixed() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>().unwrap(), alg);
            assert!(alg.key_type().algorithms().contains(&alg));
        }
        assert!("none".parse::<Algorithm>().is_err());
        assert!("HS256".parse::<Algorithm>().is_err());
        assert!(Algorithm::ES256.check_key_type(KeyType::Rsa).is_err());
        assert!(Algorithm::PS512.check_key_type(KeyType::Rsa).is_ok());
    }
}
