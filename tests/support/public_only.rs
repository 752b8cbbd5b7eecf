//! A secp256k1 public key and a signer that holds only a public key: for refusal tests of keys
//! the local backend cannot hold.

use async_trait::async_trait;
use remote_signer::{
    Algorithm, Error, ErrorKind, KeyId, KeyType, PublicKey, RemoteSigner, Signature,
};

/// A secp256k1 public key (the curve's generator point): the local backend holds no such keys,
/// Key Vault does.
pub fn k256_public() -> PublicKey {
    let point = hex_bytes(concat!(
        "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
    ));
    PublicKey::from_sec1_point(KeyType::K256, &point).unwrap()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// A signer that has only a public key and never signs.
#[derive(Debug)]
pub struct PublicOnly {
    pub id: KeyId,
    pub public: PublicKey,
}

#[async_trait]
impl RemoteSigner for PublicOnly {
    fn key_id(&self) -> &KeyId {
        &self.id
    }
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    async fn sign(&self, _: Algorithm, _: &[u8]) -> remote_signer::Result<Signature> {
        Err(Error::new(ErrorKind::Signing))
    }
}
