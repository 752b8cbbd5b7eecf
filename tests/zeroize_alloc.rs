//! The remedy `remote_signer::backend::local` documents for RSA keys: with a zero-on-free
//! global allocator (`zeroizing_alloc::ZeroAlloc`) in front of the system allocator, the `rsa`
//! crate's big-integer temporaries are wiped too, and loading, signing with and dropping an
//! RSA key leaves no key material in freed memory at all.
//!
//! The graveyard (`tests/support/graveyard.rs`) sits behind the zeroing allocator, so it sees
//! blocks as the system allocator would get them back. `tests/zeroize.rs` shows the same run
//! without it finding those temporaries.

mod support;

use remote_signer::backend::local::{LocalKeyOptions, LocalSigner};
use remote_signer::{Algorithm, KeyType};
use support::graveyard::{
    self, Fixture, Graveyard, found, freed_while, needles, secret_fields, secret_text,
};
use zeroizing_alloc::ZeroAlloc;

#[global_allocator]
static ALLOCATOR: ZeroAlloc<Graveyard> = ZeroAlloc(Graveyard);

/// The key's secret numbers, big- and little-endian, and the PEM text that encodes them.
fn key_needles(pem: &[u8], secrets: &[Vec<u8>]) -> graveyard::Needles {
    let mut all = secret_text(pem, secrets);
    all.extend(secrets.iter().cloned());
    all.extend(
        secrets
            .iter()
            .map(|s| s.iter().rev().copied().collect::<Vec<u8>>()),
    );
    needles(all.iter().map(Vec::as_slice))
}

#[test]
fn with_a_zero_on_free_allocator_rsa_keys_leave_nothing_behind() {
    let _serial = graveyard::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new();
    let der = fx.generate(
        "rsa.pem",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let secrets = secret_fields(&der);
    let file = std::fs::read(fx.path("rsa.pem")).unwrap();
    let all = key_needles(&file, &secrets);

    let path = fx.path("rsa.pem");
    let ((), freed) = freed_while(Some(&all), || {
        let signer = LocalKeyOptions::new().open(&path).unwrap();
        for algorithm in [Algorithm::RS256, Algorithm::PS512] {
            assert!(signer.sign_blocking(algorithm, b"graveyard").is_ok());
        }
    });
    assert!(
        freed.leaks.is_empty() && found(&freed.bytes, &all).is_empty(),
        "{} freed blocks held key material, e.g. {:?}",
        freed.leaks.len(),
        freed.leaks.first()
    );

    // Generation too: its temporaries are zeroed, and so is the encoding of the file.
    let generated = fx.path("generated.pem");
    let ((), freed) = freed_while(None, || {
        LocalSigner::generate_to_file(KeyType::Rsa, &generated).unwrap();
    });
    let file = std::fs::read(&generated).unwrap();
    let secrets = secret_fields(&pem_rfc7468::decode_vec(&file).unwrap().1);
    let all = key_needles(&file, &secrets);
    assert!(found(&freed.bytes, &all).is_empty());
}
