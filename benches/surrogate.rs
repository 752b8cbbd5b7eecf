//! Signing through a surrogate against bare ed25519-dalek signing, side by side in one run.
//!
//! Prints criterion's figures for both, then a ratio measured by interleaving the two
//! (speed of surrogate signing / speed of bare signing; target >= 0.9).

mod support;
use support::side_by_side::side_by_side;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use ed25519_dalek::Signer as _;
use remote_signer::backend::local::LocalSigner;
use remote_signer::surrogate::{SurrogateSigner, SurrogateVerifier, TrustedKey};
use remote_signer::{KeyType, RemoteSigner};

const MESSAGE: &[u8] = b"a 64-byte message, as a small session token's signing input is..";

struct Setup {
    runtime: tokio::runtime::Runtime,
    bare: ed25519_dalek::SigningKey,
    surrogate: SurrogateSigner,
    verifier: SurrogateVerifier,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let managed: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::Rsa).unwrap());
    let surrogate = SurrogateSigner::new(managed.clone(), "bench").unwrap();
    runtime.block_on(surrogate.current()).unwrap();
    Setup {
        runtime,
        bare: ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng),
        surrogate,
        verifier: SurrogateVerifier::new([TrustedKey::from_signer(&*managed)]),
    }
}

fn bare_sign(s: &Setup) {
    black_box(s.bare.sign(black_box(MESSAGE)));
}

fn surrogate_sign(s: &Setup) {
    black_box(
        s.runtime
            .block_on(s.surrogate.sign(black_box(MESSAGE)))
            .unwrap(),
    );
}

fn signing(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("sign");
    group.bench_function("bare ed25519-dalek", |b| b.iter(|| bare_sign(&s)));
    group.bench_function("surrogate", |b| b.iter(|| surrogate_sign(&s)));
    group.finish();

    let signed = s.runtime.block_on(s.surrogate.sign(MESSAGE)).unwrap();
    s.verifier
        .verify(
            signed.certificate(),
            "bench",
            MESSAGE,
            signed.signature().as_bytes(),
        )
        .unwrap();
    let mut group = c.benchmark_group("verify");
    group.bench_function("surrogate, certificate cached", |b| {
        b.iter(|| {
            s.verifier
                .verify(
                    black_box(signed.certificate()),
                    "bench",
                    MESSAGE,
                    signed.signature().as_bytes(),
                )
                .unwrap()
        })
    });
    group.finish();
}

fn ratio_report() {
    let s = setup();
    let (bare, surrogate) = side_by_side(&s, bare_sign, surrogate_sign, 300);
    println!();
    println!("side by side, median of interleaved rounds:");
    println!("  bare ed25519-dalek sign: {bare:>9.0} ns/op");
    println!("  surrogate sign:          {surrogate:>9.0} ns/op");
    println!(
        "  ratio (surrogate speed / bare speed): {:.3}  (target >= 0.9)",
        bare / surrogate
    );
    let status = s.surrogate.status();
    println!(
        "  managed-key operations during the run: {}",
        status.attempts
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = signing
}

fn main() {
    benches();
    ratio_report();
    Criterion::default().configure_from_args().final_summary();
}
