//! What AWS KMS (or something posing as it) sends back, as far as this crate reads it itself: key
//! and alias ARNs, `GetPublicKey` replies (the key ARN an alias resolved to, usage, spec, the SPKI
//! public key, the signing algorithms) and DER ECDSA signatures. Error texts must never echo a
//! reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_signer::backend::aws::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector == 0xff {
        let _ = fuzzing::arn(&String::from_utf8_lossy(rest));
        return;
    }
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let (body, signature) = rest.split_at(split);
    if let Err(e) = fuzzing::public_key_reply(body, signature) {
        let text = format!("{e} {e:?}");
        // Values from the reply are cut to 64 characters of a safe alphabet (and quoted by
        // `Debug`), so no 67-byte run of the body may appear.
        if body.len() > 67 {
            for window in body.windows(67) {
                if let Ok(w) = std::str::from_utf8(window) {
                    assert!(!text.contains(w), "an error text echoes the reply body");
                }
            }
        }
    }
});
