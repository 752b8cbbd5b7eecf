//! Any bytes as one agent message body, and the same bytes as the data of a sign request for
//! the agent's own key: the agent answers `FAILURE` or a well-formed answer, never panics, and
//! signs only data shaped as an SSH user-authentication request or an SSHSIG blob. Run with
//! `cargo +nightly fuzz run ssh_agent_message`.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use remote_signer::backend::local::LocalSigner;
use remote_signer::ssh::{Agent, CertificateOptions};
use remote_signer::{KeyType, RemoteSigner};
use ssh_encoding::Encode;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    agent: Agent,
    key_blob: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = Arc::new(LocalSigner::generate(KeyType::Ed25519).unwrap());
        let mut key_blob = Vec::new();
        key.public_key()
            .to_ssh_key_data()
            .unwrap()
            .encode(&mut key_blob)
            .unwrap();
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
        Fixture {
            runtime,
            agent,
            key_blob,
        }
    })
}

fn check_answer(answer: &[u8]) {
    assert!(matches!(answer.first(), Some(5 | 12 | 14)));
    if answer[0] == 5 {
        assert_eq!(answer.len(), 1);
    }
}

fuzz_target!(|message: &[u8]| {
    let fixture = fixture();
    check_answer(&fixture.runtime.block_on(fixture.agent.respond(message)));

    let mut request = vec![13u8];
    fixture.key_blob.encode(&mut request).unwrap();
    message.encode(&mut request).unwrap();
    0u32.encode(&mut request).unwrap();
    let answer = fixture.runtime.block_on(fixture.agent.respond(&request));
    check_answer(&answer);
    if answer[0] == 14 {
        // Signed: an SSHSIG blob, or a session id followed by SSH_MSG_USERAUTH_REQUEST.
        let session_id_len = message
            .get(..4)
            .map(|len| u32::from_be_bytes(len.try_into().unwrap()) as usize);
        let userauth = session_id_len.and_then(|len| message.get(4 + len)) == Some(&50);
        assert!(message.starts_with(b"SSHSIG") || userauth);
    }
});
