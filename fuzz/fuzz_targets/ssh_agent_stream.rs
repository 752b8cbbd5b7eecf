//! Any bytes as what a client sends on one agent connection: framing (length prefixes,
//! oversized and truncated messages) and the messages in it. The connection loop answers and
//! ends without panicking, whatever arrives. Run with `scripts/fuzz ssh_agent_stream`.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use remote_signer::KeyType;
use remote_signer::backend::local::LocalSigner;
use remote_signer::ssh::{Agent, CertificateOptions};

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
            // Small, so oversized messages are common in fuzzed input.
            .max_message_len(4096)
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Fixture { runtime, agent }
    })
}

fuzz_target!(|client: &[u8]| {
    let fixture = fixture();
    let connection = tokio::io::join(client, tokio::io::sink());
    // Ends at the input's end (Ok) or on a framing error; either way without a panic.
    let _ = fixture
        .runtime
        .block_on(fixture.agent.serve_connection(connection));
});
