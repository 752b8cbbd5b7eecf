//! Signatures per second through `Pkcs11Signer` against direct `cryptoki` calls on the same
//! SoftHSM2 token, with 1 and with 8 signers at once.
//!
//! Baseline: threads that each hold a logged-in session and loop over hash, `C_Sign`
//! (`CKM_RSA_PKCS` over DigestInfo, or `CKM_ECDSA` over the digest) and the same signature check
//! the crate makes. Measured: `RemoteSigner::sign` from as many tokio tasks (the session pool,
//! the blocking-thread hop, the check). Rounds interleave and the medians are compared; the
//! ratio (crate / direct, target at least 0.9 for RSA-2048) is printed at the end. EC keys are
//! reported, not gated: checking an ECDSA signature costs about as much as SoftHSM's signing.
//!
//! `cargo bench --features pkcs11 --bench pkcs11`

use softhsm_token as softhsm;

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use remote_signer::backend::pkcs11::Pkcs11Signer;
use remote_signer::key::Hash;
use remote_signer::{Algorithm, PublicKey, RemoteSigner};

const MESSAGE: &[u8] = b"a session cookie payload of ordinary size, signed once per rotation";

struct Setup {
    algorithm: Algorithm,
    signer: Arc<Pkcs11Signer>,
    /// The baseline's threads, each with a session opened and logged in once, as the crate's
    /// pool keeps its sessions and tokio its blocking threads: each takes a count of signatures
    /// to make and answers when done.
    workers: Vec<mpsc::Sender<(usize, mpsc::Sender<()>)>>,
    runtime: tokio::runtime::Runtime,
}

fn setup(label: &'static str, id: &str, genpkey: &[&str], algorithm: Algorithm) -> Setup {
    let hsm = softhsm::token();
    let public_pem = hsm.import(genpkey, label, id);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let signer = runtime
        .block_on(
            Pkcs11Signer::builder(&hsm.uri(&format!("object={label}")))
                .pin(softhsm::PIN)
                .sessions(8)
                .build(),
        )
        .expect("open");
    let context = Pkcs11::new(softhsm::MODULE).unwrap();
    // The crate initialised the module already; a second C_Initialize says so.
    let _ = context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = context
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| context.get_token_info(*s).unwrap().label() == softhsm::TOKEN)
        .unwrap();
    let public = PublicKey::from_pem(&public_pem).unwrap();
    let workers = (0..8)
        .map(|_| {
            let session = context.open_ro_session(slot).unwrap();
            let _ = session.login(UserType::User, Some(&AuthPin::from(softhsm::PIN)));
            let key = session
                .find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Label(label.as_bytes().to_vec()),
                ])
                .unwrap()[0];
            let (tx, rx) = mpsc::channel::<(usize, mpsc::Sender<()>)>();
            let public = public.clone();
            std::thread::spawn(move || {
                for (count, done) in rx {
                    for _ in 0..count {
                        direct_sign(&session, key, &public, algorithm);
                    }
                    done.send(()).unwrap();
                }
            });
            tx
        })
        .collect();
    Setup {
        algorithm,
        signer: Arc::new(signer),
        workers,
        runtime,
    }
}

/// One baseline signature: hash, `C_Sign`, the same check the crate makes.
fn direct_sign(session: &Session, key: ObjectHandle, public: &PublicKey, algorithm: Algorithm) {
    let (mechanism, data) = match algorithm {
        Algorithm::RS256 => {
            let mut data = rsa::Pkcs1v15Sign::new::<sha2::Sha256>().prefix.into_vec();
            data.extend(Hash::Sha256.digest(MESSAGE));
            (Mechanism::RsaPkcs, data)
        }
        _ => (Mechanism::Ecdsa, Hash::Sha256.digest(MESSAGE)),
    };
    let sig = session.sign(&mechanism, key, &data).unwrap();
    public.verify(algorithm, MESSAGE, &sig).unwrap();
}

impl Setup {
    /// `total` signatures from `threads` of the baseline's threads.
    fn direct(&self, threads: usize, total: usize) -> Duration {
        let start = Instant::now();
        let (done, finished) = mpsc::channel();
        for worker in &self.workers[..threads] {
            worker.send((total / threads, done.clone())).unwrap();
        }
        for _ in 0..threads {
            finished.recv().unwrap();
        }
        start.elapsed()
    }

    /// `total` signatures through the crate from `tasks` concurrent tasks.
    fn through_crate(&self, tasks: usize, total: usize) -> Duration {
        let start = Instant::now();
        self.runtime.block_on(async {
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let signer = self.signer.clone();
                    let algorithm = self.algorithm;
                    tokio::spawn(async move {
                        for _ in 0..total / tasks {
                            signer.sign(algorithm, MESSAGE).await.unwrap();
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
        });
        start.elapsed()
    }

    /// Signatures per second, direct and through the crate: medians of interleaved rounds.
    fn compare(&self, concurrency: usize, rounds: usize, per_round: usize) -> (f64, f64) {
        let (mut direct, mut ours) = (Vec::new(), Vec::new());
        let rate = |d: Duration| per_round as f64 / d.as_secs_f64();
        for _ in 0..rounds {
            direct.push(rate(self.direct(concurrency, per_round)));
            ours.push(rate(self.through_crate(concurrency, per_round)));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        (median(&mut direct), median(&mut ours))
    }
}

fn bench(c: &mut Criterion) {
    // `cargo test --all-targets` runs this once as a smoke test (criterion's `--test`).
    let smoke = std::env::args().any(|a| a == "--test");
    let (rounds, per_round) = if smoke { (1, 16) } else { (9, 400) };
    let mut summary = Vec::new();
    for (label, id, genpkey, algorithm, gated) in [
        (
            "bench-rsa2048",
            "42",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            Algorithm::RS256,
            true,
        ),
        (
            "bench-p256",
            "43",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            Algorithm::ES256,
            false,
        ),
    ] {
        let s = setup(label, id, genpkey, algorithm);
        let mut group = c.benchmark_group(format!("pkcs11_sign_{algorithm}"));
        group.bench_function("direct_cryptoki", |b| {
            b.iter_custom(|iters| s.direct(1, iters as usize))
        });
        group.bench_function("remote_signer_sign", |b| {
            b.iter_custom(|iters| s.through_crate(1, iters as usize))
        });
        group.finish();
        for concurrency in [1, 8] {
            let (direct, ours) = s.compare(concurrency, rounds, per_round);
            summary.push((label, algorithm, concurrency, direct, ours, gated));
        }
    }
    println!();
    for (label, algorithm, concurrency, direct, ours, gated) in summary {
        let target = if gated {
            " (target >= 0.90)"
        } else {
            " (reported, not gated)"
        };
        println!(
            "pkcs11 {label} {algorithm} x{concurrency}: direct {direct:.0} sig/s, crate \
             {ours:.0} sig/s, ratio {:.2}{target}",
            ours / direct
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
