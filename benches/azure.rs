//! The crate's overhead per remote sign, over the bare HTTPS round trip to the Key Vault
//! emulator (crates/keyvault-emulator) on 127.0.0.1.
//!
//! Baseline: one `POST /keys/<name>/<version>/sign` with a ready token over a kept-alive
//! rustls connection, the same request the SDK sends. Measured: `RemoteSigner::sign` on a
//! `KeyVaultSigner` (hashing, the SDK pipeline, retry bookkeeping, checking the returned
//! signature against the pinned public key). Both include the emulator's own signing, as a
//! real round trip includes the service's. The ratio is printed at the end.
//!
//! `cargo bench --features azure --bench azure`

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use keyvault_emulator::{Emulator, KeySpec};
use remote_signer::backend::azure::{KeyVaultSigner, RetryPolicy};
use remote_signer::{Algorithm, RemoteSigner};
use sha2::Digest;

const MESSAGE: &[u8] = b"a session cookie payload of ordinary size, signed once per rotation";

struct Setup {
    emu: Emulator,
    runtime: tokio::runtime::Runtime,
    signer: KeyVaultSigner,
    http: reqwest::Client,
    sign_url: String,
    token: String,
    algorithm: Algorithm,
}

fn setup(spec: KeySpec, algorithm: Algorithm) -> Setup {
    let emu = Emulator::start();
    let version = emu.create_key("bench", spec);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env: Vec<_> = emu
        .env()
        .into_iter()
        .filter(|(k, _)| k != "SSL_CERT_FILE")
        .collect();
    let signer = runtime
        .block_on(
            KeyVaultSigner::builder(&emu.key_url("bench", Some(&version)))
                .environment(env)
                .add_root_certificate_pem(emu.ca_pem())
                .verify_challenge_resource(false)
                .retry(RetryPolicy::default().max_retries(0))
                .build(),
        )
        .expect("open");
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(emu.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap();
    let sign_url = format!(
        "{}?api-version=2025-07-01",
        emu.key_url("bench", Some(&format!("{version}/sign")))
    );
    let token = emu.issue_token();
    Setup {
        emu,
        runtime,
        signer,
        http,
        sign_url,
        token,
        algorithm,
    }
}

impl Setup {
    async fn bare(&self) {
        let digest = match self.algorithm {
            Algorithm::ES384 => sha2::Sha384::digest(MESSAGE).to_vec(),
            _ => sha2::Sha256::digest(MESSAGE).to_vec(),
        };
        let body = format!(
            r#"{{"alg":"{}","value":"{}"}}"#,
            self.algorithm,
            URL_SAFE_NO_PAD.encode(digest)
        );
        let res = self
            .http
            .post(&self.sign_url)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        let _ = res.bytes().await.unwrap();
    }

    async fn crate_sign(&self) {
        self.signer.sign(self.algorithm, MESSAGE).await.unwrap();
    }

    /// Interleaved timing of both paths; returns the median per operation of the bare round
    /// trip and of the crate's sign. Medians, because on a shared 2-core machine a mean mostly
    /// measures other people's builds.
    fn compare(&self, rounds: usize) -> (Duration, Duration) {
        let (mut bare, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            self.runtime.block_on(self.bare());
            bare.push(t.elapsed());
            let t = Instant::now();
            self.runtime.block_on(self.crate_sign());
            ours.push(t.elapsed());
        }
        (median(bare), median(ours))
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn bench(c: &mut Criterion) {
    let mut summary = Vec::new();
    for (label, spec, alg) in [
        ("rsa2048_rs256", KeySpec::Rsa(2048), Algorithm::RS256),
        ("p256_es256", KeySpec::P256, Algorithm::ES256),
    ] {
        let s = setup(spec, alg);
        let mut group = c.benchmark_group(format!("azure_sign_{label}"));
        group.bench_function("bare_https_round_trip", |b| {
            b.iter(|| s.runtime.block_on(s.bare()))
        });
        group.bench_function("remote_signer_sign", |b| {
            b.iter(|| s.runtime.block_on(s.crate_sign()))
        });
        group.finish();
        // `cargo test --all-targets` runs this once as a smoke test (criterion's `--test`).
        let rounds = if std::env::args().any(|a| a == "--test") {
            3
        } else {
            300
        };
        let (bare, ours) = s.compare(rounds);
        summary.push((label, bare, ours));
        drop(s.emu);
    }
    println!();
    for (label, bare, ours) in summary {
        let overhead = (ours.as_secs_f64() / bare.as_secs_f64() - 1.0) * 100.0;
        println!(
            "azure {label}: median bare round trip {:.1} us, crate sign {:.1} us, \
             overhead {overhead:+.1}% (target < 5%)",
            bare.as_secs_f64() * 1e6,
            ours.as_secs_f64() * 1e6,
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
