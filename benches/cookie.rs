//! Session tokens against bare ed25519-dalek, side by side in one run; direct-mode figures;
//! token sizes for a 64-byte claim set.
//!
//! Targets: surrogate-mode signing >= 0.85 x bare Ed25519 signing of the same bytes;
//! verification with a cached certificate >= 0.85 x bare Ed25519 verification.

#[path = "support/side_by_side.rs"]
mod side_by_side;
use side_by_side::side_by_side;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{criterion_group, Criterion};
use ed25519_dalek::Signer as _;
use remote_signer::backend::local::LocalSigner;
use remote_signer::cookie::{SessionSigner, SessionVerifier};
use remote_signer::surrogate::TrustedKey;
use remote_signer::{Algorithm, KeyId, KeyType, PublicKey, RemoteSigner, Signature};

/// Exactly 64 bytes of JSON.
fn claims() -> serde_json::Value {
    let claims =
        serde_json::json!({"sub": "user-01234567890", "name": "Alice Example", "role": "admin"});
    assert_eq!(serde_json::to_vec(&claims).unwrap().len(), 64);
    claims
}

/// A local key under a Key Vault-style key id, to measure token size with such an id.
#[derive(Debug)]
struct VaultNamed {
    inner: LocalSigner,
    id: KeyId,
}

#[async_trait]
impl RemoteSigner for VaultNamed {
    fn key_id(&self) -> &KeyId {
        &self.id
    }
    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }
    async fn sign(&self, alg: Algorithm, message: &[u8]) -> remote_signer::Result<Signature> {
        self.inner.sign(alg, message).await
    }
}

struct Setup {
    runtime: tokio::runtime::Runtime,
    bare: ed25519_dalek::SigningKey,
    bare_public: ed25519_dalek::VerifyingKey,
    surrogate: SessionSigner,
    verifier: SessionVerifier,
    token: String,
    /// The signing input of `token`, and its bare signature, for the baselines.
    input: Vec<u8>,
    bare_signature: ed25519_dalek::Signature,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let managed: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::Rsa).unwrap());
    let surrogate = SessionSigner::surrogate(managed.clone(), "session").unwrap();
    let token = runtime.block_on(surrogate.sign(&claims())).unwrap();
    let verifier = SessionVerifier::new([TrustedKey::from_signer(&*managed)], "session");
    verifier.verify(&token).unwrap();
    let bare = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let input = token.as_bytes()[..token.rfind('.').unwrap()].to_vec();
    Setup {
        bare_signature: bare.sign(&input),
        bare_public: bare.verifying_key(),
        runtime,
        bare,
        surrogate,
        verifier,
        token,
        input,
    }
}

fn bare_sign(s: &Setup) {
    black_box(s.bare.sign(black_box(&s.input)));
}

fn surrogate_sign(s: &Setup) {
    black_box(s.runtime.block_on(s.surrogate.sign(&claims())).unwrap());
}

fn bare_verify(s: &Setup) {
    s.bare_public
        .verify_strict(black_box(&s.input), &s.bare_signature)
        .unwrap();
}

fn cached_verify(s: &Setup) {
    black_box(s.verifier.verify(black_box(&s.token)).unwrap());
}

fn tokens(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("cookie sign");
    group.bench_function("bare ed25519-dalek (same bytes)", |b| {
        b.iter(|| bare_sign(&s))
    });
    group.bench_function("surrogate mode", |b| b.iter(|| surrogate_sign(&s)));
    for key_type in [KeyType::Rsa, KeyType::P256] {
        let managed: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(key_type).unwrap());
        let direct = SessionSigner::direct(managed, "session");
        group.bench_function(format!("direct mode, local {key_type}"), |b| {
            b.iter(|| s.runtime.block_on(direct.sign(&claims())).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("cookie verify");
    group.bench_function("bare ed25519-dalek verify_strict (same bytes)", |b| {
        b.iter(|| bare_verify(&s))
    });
    group.bench_function("surrogate mode, certificate cached", |b| {
        b.iter(|| cached_verify(&s))
    });
    group.finish();
}

fn report() {
    let s = setup();
    println!();
    println!(
        "side by side, median of interleaved rounds (token of {} bytes):",
        s.token.len()
    );
    let (bare, ours) = side_by_side(&s, bare_sign, surrogate_sign, 200);
    println!(
        "  sign:   bare {bare:>8.0} ns, surrogate mode {ours:>8.0} ns, ratio {:.3} (target >= 0.85)",
        bare / ours
    );
    let (bare, ours) = side_by_side(&s, bare_verify, cached_verify, 200);
    println!(
        "  verify: bare {bare:>8.0} ns, cached cert    {ours:>8.0} ns, ratio {:.3} (target >= 0.85)",
        bare / ours
    );

    println!("token size for a 64-byte claim set (surrogate mode / direct mode):");
    let runtime = &s.runtime;
    let size = |managed: Arc<dyn RemoteSigner>| {
        let surrogate = SessionSigner::surrogate(managed.clone(), "session").unwrap();
        let direct = SessionSigner::direct(managed, "session");
        (
            runtime.block_on(surrogate.sign(&claims())).unwrap().len(),
            runtime.block_on(direct.sign(&claims())).unwrap().len(),
        )
    };
    let dir = std::env::temp_dir().join(format!("remote-signer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, key_type) in [("RSA-2048", KeyType::Rsa), ("EC P-256", KeyType::P256)] {
        let path = dir.join(format!("{key_type:?}.pem"));
        let _ = std::fs::remove_file(&path);
        let local = LocalSigner::generate_to_file(key_type, &path).unwrap();
        let id = local.key_id().to_string();
        let (sur, dir_mode) = size(Arc::new(local));
        println!("  local {name} (key id {} chars): {sur} / {dir_mode} bytes (target <= 1200 for RSA-2048)", id.len());
        let vault = VaultNamed {
            inner: LocalSigner::generate(key_type).unwrap(),
            id: KeyId::new(
                "https://contoso-prod.vault.azure.net/keys/session-cookies/0123456789abcdef0123456789abcdef",
            ),
        };
        let (sur, dir_mode) = size(Arc::new(vault));
        println!("  Key Vault {name} (key id 89 chars): {sur} / {dir_mode} bytes");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = tokens
}

fn main() {
    benches();
    report();
    Criterion::default().configure_from_args().final_summary();
}
