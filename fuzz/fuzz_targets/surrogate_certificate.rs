//! Surrogate-certificate verification on arbitrary input: errors only, never a panic.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use remote_signer::KeyType;
use remote_signer::backend::local::LocalSigner;
use remote_signer::surrogate::{SurrogateVerifier, TrustedKey};

fn verifier() -> &'static SurrogateVerifier {
    static VERIFIER: OnceLock<SurrogateVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let managed = LocalSigner::generate(KeyType::P256).unwrap();
        SurrogateVerifier::new([TrustedKey::from_signer(&managed)])
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let _ = verifier().verify_at(now, &text, "session", b"message", &[0u8; 64]);
});
