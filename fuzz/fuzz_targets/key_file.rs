//! Private key files: PEM or DER, PKCS#8 (plain and encrypted), PKCS#1, SEC1, OpenSSH.
//! The first byte chooses whether a passphrase is given, so both paths are explored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_signer::backend::local::LocalSigner;

fuzz_target!(|data: &[u8]| {
    let (passphrase, key) = match data.split_first() {
        Some((flag, rest)) if flag & 1 == 1 => (Some(&b"fuzz"[..]), rest),
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    if let Ok(signer) = LocalSigner::from_bytes(key, passphrase) {
        // A key that loads must sign and verify.
        use remote_signer::RemoteSigner;
        let alg = signer.default_algorithm();
        let sig = signer
            .sign_blocking(alg, b"fuzz")
            .expect("a loaded key signs");
        signer
            .public_key()
            .verify(alg, b"fuzz", sig.as_bytes())
            .expect("its own signature verifies");
    }
});
