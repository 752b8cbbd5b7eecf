//! What a Key Vault (or something posing as one) sends back: key URLs, key bundles, error
//! replies with their codes and Retry-After. Error texts must never echo a body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_signer::backend::azure::fuzzing;

const STATUSES: [u16; 10] = [200, 400, 401, 403, 404, 408, 429, 500, 503, 599];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector == 0xff {
        let _ = fuzzing::key_url(&String::from_utf8_lossy(rest));
        return;
    }
    let status = STATUSES[usize::from(selector) % STATUSES.len()];
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(0);
    let retry_after = String::from_utf8_lossy(&rest[..split.min(32)]).into_owned();
    let body = &rest[split..];
    if let Err(e) = fuzzing::service_reply(status, &retry_after, body) {
        let text = format!("{e} {e:?}");
        // Codes are capped at 64 characters (and quoted by `Debug`), so no 67-byte run of the
        // body may appear.
        if body.len() > 67 {
            for window in body.windows(67) {
                if let Ok(w) = std::str::from_utf8(window) {
                    assert!(!text.contains(w), "an error text echoes the reply body");
                }
            }
        }
    }
});
