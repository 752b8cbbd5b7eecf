//! JWK Sets (RFC 7517 section 5): the document services fetch from a JWKS URL.

use serde::{Deserialize, Serialize};

use super::{Jwk, PublicKey};

/// A JWK Set, `{"keys":[...]}`, of public signing keys.
///
/// Each key carries `kid` = its RFC 7638 thumbprint, `alg` = the key's default algorithm
/// (RS256, ES256, ES384, ES256K or EdDSA) and `use` = `sig`, for services that fetch a JWKS
/// URL to check client assertions, and for session verifiers in other languages. Serve
/// [`to_json`](Jwks::to_json) as `application/jwk-set+json` (or `application/json`).
///
/// ```
/// # fn demo(a: &remote_signer::PublicKey, b: &remote_signer::PublicKey) {
/// use remote_signer::key::Jwks;
/// let body = Jwks::from_keys([a, b]).to_json();
/// # let _ = body; }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, in the order given.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The set of `keys`, each with `kid`, `alg` and `use`; a key given twice appears once.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a PublicKey>) -> Self {
        let mut out: Vec<Jwk> = Vec::new();
        for key in keys {
            let mut jwk = key.to_jwk();
            if out.iter().any(|k| k.kid == jwk.kid) {
                continue;
            }
            jwk.alg = Some(key.key_type().default_algorithm().as_str().to_string());
            jwk.use_ = Some("sig".to_string());
            out.push(jwk);
        }
        Jwks { keys: out }
    }

    /// The compact JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a JWK Set serialises")
    }
}
