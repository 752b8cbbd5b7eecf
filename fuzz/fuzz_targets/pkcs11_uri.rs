//! PKCS#11 URIs (RFC 7512) as a KEYREF gives them: parsed, written back, parsed again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_signer::KeyRef;
use remote_signer::backend::pkcs11::Pkcs11Uri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Pkcs11Uri::parse(text) {
        Ok(uri) => {
            assert!(uri.object().is_some() || uri.id().is_some());
            let written = uri.to_string();
            assert!(!written.contains("?pin-value") && !written.contains("&pin-value"));
            // %-encoding may lengthen the URI past the parser's cap; below it, it reads back.
            if written.len() <= 4096 {
                assert_eq!(Pkcs11Uri::parse(&written).unwrap(), uri, "{written}");
            }
            assert!(!uri.key_part().contains('?'));
            assert!(text.parse::<KeyRef>().is_ok());
        }
        Err(e) => {
            // A URI with a pin-value gets the one refusal that quotes nothing of it.
            let has_pin = text.len() <= 4096
                && text.starts_with("pkcs11:")
                && !text.contains('#')
                && text.split_once('?').is_some_and(|(_, query)| {
                    query
                        .split('&')
                        .any(|a| a.split_once('=').map_or(a, |(n, _)| n) == "pin-value")
                });
            if has_pin {
                assert!(e.to_string().contains("pin-value is refused"), "{e}");
            }
        }
    }
});
