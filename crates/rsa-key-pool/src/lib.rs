//! Pre-generated RSA keys for the Key Vault and KMS emulators.
//!
//! Generating an RSA-2048 key costs about a quarter of a CPU second (0.08 to 0.4 s, at random),
//! and the test suite creates many emulator keys whose generation is not what it tests. The
//! emulators take their RSA keys from [`rsa()`]: it hands out the keys in `keys/` in order, each
//! at most once per process (one process-wide index shared by every emulator), so keys stay
//! distinct across emulators, key names and versions; once they are used up, or for a size
//! the pool does not hold, it generates a key as before.
//!
//! Tests that need *some* RSA key of a given size, rather than a generated one, take a fixed
//! key from [`fixed_pem()`]: those are never handed out by [`rsa()`], so they differ from every
//! emulator key.
//!
//! The keys are public (they are in this repository): they stand in for keys a test or an
//! emulator makes up, never for a secret.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use rand_core::CryptoRngCore;
use rsa::RsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;

/// The pooled RSA-2048 keys, made with `openssl genpkey` (see `keys/README.md`).
const RSA_2048: [&str; 24] = [
    include_str!("../keys/rsa2048-00.pem"),
    include_str!("../keys/rsa2048-01.pem"),
    include_str!("../keys/rsa2048-02.pem"),
    include_str!("../keys/rsa2048-03.pem"),
    include_str!("../keys/rsa2048-04.pem"),
    include_str!("../keys/rsa2048-05.pem"),
    include_str!("../keys/rsa2048-06.pem"),
    include_str!("../keys/rsa2048-07.pem"),
    include_str!("../keys/rsa2048-08.pem"),
    include_str!("../keys/rsa2048-09.pem"),
    include_str!("../keys/rsa2048-10.pem"),
    include_str!("../keys/rsa2048-11.pem"),
    include_str!("../keys/rsa2048-12.pem"),
    include_str!("../keys/rsa2048-13.pem"),
    include_str!("../keys/rsa2048-14.pem"),
    include_str!("../keys/rsa2048-15.pem"),
    include_str!("../keys/rsa2048-16.pem"),
    include_str!("../keys/rsa2048-17.pem"),
    include_str!("../keys/rsa2048-18.pem"),
    include_str!("../keys/rsa2048-19.pem"),
    include_str!("../keys/rsa2048-20.pem"),
    include_str!("../keys/rsa2048-21.pem"),
    include_str!("../keys/rsa2048-22.pem"),
    include_str!("../keys/rsa2048-23.pem"),
];

/// The fixed keys for tests, by size (see `keys/README.md`).
const FIXED: [(usize, &str); 6] = [
    (2048, include_str!("../keys/fixed-2048-0.pem")),
    (2048, include_str!("../keys/fixed-2048-1.pem")),
    (2048, include_str!("../keys/fixed-2048-2.pem")),
    (2048, include_str!("../keys/fixed-2048-3.pem")),
    (3072, include_str!("../keys/fixed-3072-0.pem")),
    (4096, include_str!("../keys/fixed-4096-0.pem")),
];

/// Fixed RSA key number `n` of `bits` bits (unencrypted PKCS#8 PEM), for a test that needs some
/// RSA key but does not test key generation: distinct `(bits, n)`, distinct keys, none of them
/// ever returned by [`rsa()`].
///
/// # Panics
/// If there is no such key (four of 2048 bits, one each of 3072 and 4096).
pub fn fixed_pem(bits: usize, n: usize) -> &'static str {
    FIXED
        .iter()
        .filter(|(size, _)| *size == bits)
        .nth(n)
        .map(|(_, pem)| *pem)
        .unwrap_or_else(|| panic!("no fixed RSA-{bits} key number {n} (see keys/README.md)"))
}

/// How many RSA-2048 keys this process has taken from the pool (it may count past the end).
static TAKEN_2048: AtomicUsize = AtomicUsize::new(0);

/// An RSA key of `bits` bits that no earlier call in this process returned: the next pooled
/// key while any is left, otherwise one freshly generated from `rng`.
///
/// # Panics
/// If a key must be generated and `bits` is not a size the `rsa` crate generates.
pub fn rsa(bits: usize, rng: &mut impl CryptoRngCore) -> RsaPrivateKey {
    if bits == 2048
        && let Some(pem) = RSA_2048.get(TAKEN_2048.fetch_add(1, Ordering::Relaxed))
    {
        return RsaPrivateKey::from_pkcs8_pem(pem).expect("a pooled RSA key");
    }
    RsaPrivateKey::new(rng, bits).expect("RSA key generation")
}

#[cfg(test)]
mod tests {
    use rsa::traits::PublicKeyParts;

    #[test]
    fn hands_out_every_pooled_key_once_then_generates_distinct_keys() {
        let mut rng = rand_core::OsRng;
        let keys: Vec<_> = (0..super::RSA_2048.len() + 1)
            .map(|_| super::rsa(2048, &mut rng))
            .collect();
        let mut moduli: Vec<_> = keys.iter().map(|k| k.n().clone()).collect();
        assert!(keys.iter().all(|k| k.size() == 256), "all 2048 bits");
        moduli.sort();
        moduli.dedup();
        assert_eq!(moduli.len(), keys.len(), "no key handed out twice");
        for key in &keys {
            key.validate().expect("a consistent RSA key");
        }
    }

    #[test]
    fn the_fixed_keys_have_their_size_and_differ_from_the_pool() {
        use rsa::pkcs8::DecodePrivateKey;
        let mut moduli = Vec::new();
        for (bits, count) in [(2048, 4), (3072, 1), (4096, 1)] {
            for n in 0..count {
                let key = rsa::RsaPrivateKey::from_pkcs8_pem(super::fixed_pem(bits, n)).unwrap();
                assert_eq!(key.size() * 8, bits);
                key.validate().expect("a consistent RSA key");
                moduli.push(key.n().clone());
            }
        }
        for pem in super::RSA_2048 {
            moduli.push(rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap().n().clone());
        }
        let all = moduli.len();
        moduli.sort();
        moduli.dedup();
        assert_eq!(moduli.len(), all, "every key differs");
    }
}
