//! Session-token verification on arbitrary input: errors only, never a panic. The input is
//! also spliced into a genuine token's parts, so the fuzzer reaches past the framing checks.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use remote_signer::backend::local::LocalSigner;
use remote_signer::cookie::{SessionSigner, SessionVerifier};
use remote_signer::surrogate::TrustedKey;
use remote_signer::{KeyType, RemoteSigner};

struct Fixture {
    verifier: SessionVerifier,
    token: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let managed: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::P256).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let signer = SessionSigner::surrogate(managed.clone(), "session").unwrap();
        let token = runtime
            .block_on(signer.sign(&serde_json::json!({"user": "fuzz"})))
            .unwrap();
        Fixture {
            verifier: SessionVerifier::new([TrustedKey::from_signer(&*managed)], "session"),
            token,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let text = String::from_utf8_lossy(data);
    let _ = f.verifier.verify_at(&text, now);
    let parts: Vec<&str> = f.token.split('.').collect();
    for i in 0..3 {
        let mut spliced: Vec<&str> = parts.clone();
        spliced[i] = &text;
        let _ = f.verifier.verify_at(&spliced.join("."), now);
    }
});
