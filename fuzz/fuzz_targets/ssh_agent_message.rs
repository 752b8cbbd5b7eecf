//! Any bytes as one agent message body: the agent answers `FAILURE` or a well-formed answer,
//! and never panics. Run with `cargo +nightly fuzz run ssh_agent_message`.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use remote_signer::backend::local::LocalSigner;
use remote_signer::ssh::{Agent, CertificateOptions};
use remote_signer::KeyType;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    agent: Agent,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = Arc::new(LocalSigner::generate(KeyType::Ed25519).unwrap());
        let ca = Arc::new(LocalSigner::generate(KeyType::P256).unwrap());
        let agent = Agent::builder()
            .key(key)
            .certificate_authority(ca, CertificateOptions::new(["fuzz"]))
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Fixture { runtime, agent }
    })
}

fuzz_target!(|message: &[u8]| {
    let fixture = fixture();
    let answer = fixture.runtime.block_on(fixture.agent.respond(message));
    assert!(matches!(answer.first(), Some(5 | 12 | 14)));
    if answer[0] == 5 {
        assert_eq!(answer.len(), 1);
    }
});
