//! What `x509` and `jwt entra` read from their user: a subject (`CN=...,O=...`) and the
//! certificate an Entra ID assertion names (PEM or DER).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use remote_signer::RemoteSigner;
use remote_signer::backend::local::LocalSigner;
use remote_signer::jwt::EntraAssertion;
use remote_signer::x509::Subject;

/// The throw-away RSA test key of the Snowflake vectors.
fn signer() -> Arc<dyn RemoteSigner> {
    static SIGNER: OnceLock<Arc<dyn RemoteSigner>> = OnceLock::new();
    SIGNER
        .get_or_init(|| {
            let pem = include_bytes!("../../tests/data/snowflake/rsa_key.p8");
            Arc::new(LocalSigner::from_bytes(pem, None).expect("test key"))
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(subject) = text.parse::<Subject>()
    {
        // What Display writes parses back to the same name.
        let again: Subject = subject.to_string().parse().expect("Display parses");
        assert_eq!(again, subject);
    }
    // Never a panic; a certificate is taken only if it holds the key (this one never does).
    assert!(EntraAssertion::new(signer(), "contoso.com", "app", data).is_err());
});
