//! Session-token verification on arbitrary input: errors only, never a panic. The input is
//! also spliced into a genuine token's parts, so the fuzzer reaches past the framing checks.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use remote_signer::backend::local::LocalSigner;
use remote_signer::cookie::{SessionSigner, SessionVerifier, SigningMode};
use remote_signer::surrogate::{ManualClock, SurrogateSigner, TrustedKey};
use remote_signer::{KeyType, RemoteSigner};

const NOW: u64 = 1_767_225_600;

struct Fixture {
    verifier: SessionVerifier,
    /// A surrogate-mode and a direct-mode token, both valid at `NOW`.
    tokens: [String; 2],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let managed: Arc<dyn RemoteSigner> =
            Arc::new(LocalSigner::generate(KeyType::P256).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Signed at the fixed time the fuzzer verifies at, so mutations reach every check.
        let clock = Arc::new(ManualClock::at_unix(NOW));
        let surrogates = SurrogateSigner::builder(managed.clone(), "session")
            .clock(clock.clone())
            .build()
            .unwrap();
        let surrogate = SessionSigner::builder(surrogates, "session")
            .build()
            .unwrap();
        let direct = SessionSigner::builder(managed.clone(), "session")
            .mode(SigningMode::Direct)
            .clock(clock)
            .build()
            .unwrap();
        let claims = serde_json::json!({"user": "fuzz"});
        let tokens = [
            runtime.block_on(surrogate.sign(&claims)).unwrap(),
            runtime.block_on(direct.sign(&claims)).unwrap(),
        ];
        Fixture {
            verifier: SessionVerifier::new([TrustedKey::from_signer(&*managed)], "session"),
            tokens,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let text = String::from_utf8_lossy(data);
    let _ = f.verifier.verify_at(now, &text);
    for token in &f.tokens {
        let parts: Vec<&str> = token.split('.').collect();
        for i in 0..3 {
            let mut spliced: Vec<&str> = parts.clone();
            spliced[i] = &text;
            let _ = f.verifier.verify_at(now, &spliced.join("."));
        }
    }
});
