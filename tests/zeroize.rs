//! Key buffers are zeroized before their memory goes back to the allocator.
//!
//! The global allocator here is the graveyard (`tests/support/graveyard.rs`): while armed it keeps
//! a copy of every freed block. Each case loads a key file made by openssl, signs, drops the
//! signer, and then searches what was freed for any 16 bytes in a row of the key's secret
//! numbers, of the file's text where it encodes them, and of the passphrase.
//!
//! EC and Ed25519 keys leave nothing behind. RSA keys leave the `rsa` crate's big-integer
//! temporaries (its arithmetic in `num-bigint-dig` does not zeroize); the test attributes
//! every such block to that arithmetic and fails on any other. `tests/zeroize_alloc.rs` shows
//! the documented remedy, a zero-on-free global allocator, removing those too.
//!
//! The in-memory surrogates (the `SurrogateSigner`'s, and the agent's certified keys) are
//! checked the same way across rotations, with the signer or agent dropped at the end.

mod support;

use std::fs;
use std::path::Path;

use remote_signer::backend::local::{LocalKeyOptions, LocalSigner};
use remote_signer::{Algorithm, KeyType, RemoteSigner as _};
use support::graveyard::{
    self, Fixture, Graveyard, found, freed_while, needles, secret_fields, secret_text,
};

#[global_allocator]
static ALLOCATOR: Graveyard = Graveyard;

const PASSPHRASE: &str = "graveyard passphrase 4f1c";
/// The passphrase of the encrypted keys in `tests/data/openssh/`.
const PASSPHRASE_ENC: &str = "pass phrase";

/// Opens `path` (with `passphrase`), signs if it opened, and drops the signer, all armed.
/// Fails if anything freed meanwhile held key material, except RSA arithmetic temporaries
/// when `rsa`. Returns whether the key opened.
fn assert_leaves_nothing(
    label: &str,
    path: &Path,
    passphrase: &str,
    algorithm: Algorithm,
    secrets: &[Vec<u8>],
    rsa: bool,
) -> bool {
    let file = fs::read(path).unwrap();
    let mut text = vec![passphrase.as_bytes().to_vec()];
    if file.starts_with(b"-----") && pem_rfc7468::decode_vec(&file).is_ok() {
        text.extend(secret_text(&file, secrets));
    }
    // Big-endian as in DER, and little-endian as big integers hold them in memory.
    let reversed: Vec<Vec<u8>> = secrets
        .iter()
        .map(|s| s.iter().rev().copied().collect())
        .collect();
    let all = needles(
        secrets
            .iter()
            .chain(&reversed)
            .chain(&text)
            .map(Vec::as_slice),
    );
    let text = needles(text.iter().map(Vec::as_slice));

    let (opened, freed) = freed_while(Some(&all), || {
        match LocalKeyOptions::new().passphrase(passphrase).open(path) {
            Ok(signer) => {
                assert!(signer.sign_blocking(algorithm, b"graveyard").is_ok());
                true
            }
            Err(_) => false,
        }
    });
    let (arithmetic, other): (Vec<_>, Vec<_>) = freed
        .leaks
        .iter()
        .partition(|l| rsa && l.in_bignum_arithmetic());
    assert!(
        other.is_empty(),
        "{label}: {} freed blocks held key material; the first was {} bytes freed by {:?}",
        other.len(),
        other[0].size,
        other[0].freed_by
    );
    // Text is never in arithmetic temporaries, so none may be left at all.
    assert!(
        found(&freed.bytes, &text).is_empty(),
        "{label}: freed memory held the key file's text or the passphrase"
    );
    if !rsa {
        assert!(
            found(&freed.bytes, &all).is_empty(),
            "{label}: freed memory held key material"
        );
    }
    let mut freers: Vec<&str> = arithmetic
        .iter()
        .filter_map(|l| l.freed_by.first().map(String::as_str))
        .collect();
    freers.sort();
    freers.dedup();
    eprintln!(
        "{label}: {} bytes freed; key material only in {} big-integer temporaries {freers:?}",
        freed.bytes.len(),
        arithmetic.len()
    );
    opened
}

#[test]
fn key_file_buffers_are_zeroized_in_every_container() {
    let _serial = graveyard::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new();
    let cases: [(&str, &[&str], Algorithm); 4] = [
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            Algorithm::RS256,
        ),
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Algorithm::ES256,
        ),
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            Algorithm::ES384,
        ),
        ("ed25519", &["-algorithm", "ED25519"], Algorithm::EdDSA),
    ];
    for (name, args, algorithm) in cases {
        let rsa = name == "rsa";
        let pem = format!("{name}.pem");
        let der = fx.generate(&pem, args);
        let secrets = secret_fields(&der);
        let check = |label: &str, path: &Path, passphrase: &str| {
            let label = format!("{name} {label}");
            assert_leaves_nothing(&label, path, passphrase, algorithm, &secrets, rsa)
        };
        assert!(check("PKCS#8 PEM", &fx.path(&pem), PASSPHRASE));
        let der_path = fx.write(&format!("{name}.der"), &der);
        assert!(check("PKCS#8 DER", &der_path, PASSPHRASE));

        let pass = format!("pass:{PASSPHRASE}");
        for cipher in ["aes-256-cbc", "des3"] {
            let encrypted = fx.convert(
                &pem,
                &format!("{name}.{cipher}.pem"),
                &["pkcs8", "-topk8", "-v2", cipher, "-passout", &pass],
            );
            assert!(check(&format!("PKCS#8 {cipher}"), &encrypted, PASSPHRASE));
            let wrong = format!("{PASSPHRASE} but wrong");
            assert!(!check(
                &format!("PKCS#8 {cipher}, wrong passphrase"),
                &encrypted,
                &wrong
            ));
        }
        match name {
            "rsa" => {
                let pkcs1 = fx.convert(&pem, "rsa.pkcs1.pem", &["rsa", "-traditional"]);
                assert!(check("PKCS#1 PEM", &pkcs1, PASSPHRASE));
            }
            "p256" | "p384" => {
                let sec1 = fx.convert(&pem, &format!("{name}.sec1.pem"), &["ec"]);
                assert!(check("SEC1 PEM", &sec1, PASSPHRASE));
            }
            _ => {}
        }

        // Files that fail part-way: base64 broken after the secret, the END line missing,
        // DER cut short.
        let text = fs::read_to_string(fx.path(&pem)).unwrap();
        let end = text.rfind("-----END").unwrap();
        let mut broken = text.clone();
        broken.replace_range(end - 3..end - 2, "!");
        let path = fx.write(&format!("{name}.broken.pem"), broken.as_bytes());
        assert!(!check("PEM with bad base64 at the end", &path, PASSPHRASE));
        let path = fx.write(&format!("{name}.noend.pem"), &text.as_bytes()[..end]);
        assert!(!check("PEM without END", &path, PASSPHRASE));
        let path = fx.write(&format!("{name}.short.der"), &der[..der.len() - 1]);
        assert!(!check("DER cut short", &path, PASSPHRASE));
    }
}

/// The file written by `generate_to_file` is the only place the key goes: its encoding
/// buffers are zeroized.
#[test]
fn a_generated_key_file_leaves_nothing_behind() {
    let _serial = graveyard::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new();
    for (name, key_type, algorithm) in [
        ("rsa", KeyType::Rsa, Algorithm::PS256),
        ("p256", KeyType::P256, Algorithm::ES256),
        ("p384", KeyType::P384, Algorithm::ES384),
        ("ed25519", KeyType::Ed25519, Algorithm::EdDSA),
    ] {
        let path = fx.path(&format!("generated-{name}.pem"));
        let ((), freed) = freed_while(None, || {
            let signer = LocalSigner::generate_to_file(key_type, &path).unwrap();
            assert!(signer.sign_blocking(algorithm, b"graveyard").is_ok());
        });
        let file = fs::read(&path).unwrap();
        let secrets = secret_fields(&pem_rfc7468::decode_vec(&file).unwrap().1);
        let text = secret_text(&file, &secrets);
        assert!(!text.is_empty());
        assert!(
            found(&freed.bytes, &needles(text.iter().map(Vec::as_slice))).is_empty(),
            "generated {name}: freed memory held the key file's text"
        );
        // RSA key generation's big-integer temporaries are not zeroized (see the module docs).
        if key_type != KeyType::Rsa {
            assert!(
                found(&freed.bytes, &needles(secrets.iter().map(Vec::as_slice))).is_empty(),
                "generated {name}: freed memory held key material"
            );
        }
    }
}

/// The check can fail: a copy of a key freed without zeroizing is found, as the secret
/// number or as the file's text, and so is the old block of a zeroizing buffer that grew.
#[test]
fn the_graveyard_finds_a_copy_freed_without_zeroizing() {
    let _serial = graveyard::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new();
    let der = fx.generate(
        "control.pem",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let file = fs::read(fx.path("control.pem")).unwrap();
    let secrets = secret_fields(&der);
    let text = secret_text(&file, &secrets);
    assert_eq!(text.len(), 2, "the scalar spans whole base64 groups");
    let scalar = needles(secrets.iter().map(Vec::as_slice));
    let text = needles(text.iter().map(Vec::as_slice));

    let ((), freed) = freed_while(Some(&scalar), || {
        drop(std::hint::black_box(secrets[0].clone()))
    });
    assert!(
        !found(&freed.bytes, &scalar).is_empty(),
        "a freed scalar is found"
    );
    assert_eq!(freed.leaks.len(), 1, "and attributed");
    assert!(!freed.leaks[0].in_bignum_arithmetic());
    let ((), freed) = freed_while(None, || drop(std::hint::black_box(file.clone())));
    assert!(
        !found(&freed.bytes, &text).is_empty(),
        "a freed file buffer is found"
    );
    let ((), freed) = freed_while(None, || drop(zeroize::Zeroizing::new(file.clone())));
    assert!(
        found(&freed.bytes, &text).is_empty(),
        "a zeroized buffer is not"
    );
    // Growing a zeroizing buffer moves it and frees the old block as it was.
    let ((), freed) = freed_while(None, || {
        let mut copy = zeroize::Zeroizing::new(file.clone());
        let more = copy.capacity() + 1;
        copy.reserve(more);
    });
    assert!(
        !found(&freed.bytes, &text).is_empty(),
        "a reallocated buffer is found"
    );
}

/// Surrogate keys live only in memory and are wiped when dropped: three rotations' worth of
/// in-memory Ed25519 keys (their seeds, expanded scalars and hash prefixes) leave nothing in
/// freed memory once the signer is gone. The seeds are known because the signer draws them
/// from a seeded RNG that the test replays.
#[test]
fn surrogate_keys_leave_nothing_behind() {
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use remote_signer::surrogate::{ManualClock, SurrogateSigner};
    use std::sync::Arc;
    use std::time::Duration;

    let _serial = graveyard::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let managed: Arc<dyn remote_signer::RemoteSigner> =
        Arc::new(LocalSigner::generate(KeyType::P256).unwrap());
    let rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    // The signer draws its jitter seed first, then one 32-byte seed per surrogate.
    let mut replay = rng.clone();
    let rng = WipedRng(rng);
    replay.next_u64();
    let seeds: Vec<[u8; 32]> = (0..3)
        .map(|_| {
            let mut seed = [0; 32];
            replay.fill_bytes(&mut seed);
            seed
        })
        .collect();
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for seed in &seeds {
        let expanded = ed25519_dalek::hazmat::ExpandedSecretKey::from(seed);
        secrets.push(seed.to_vec());
        secrets.push(expanded.scalar.to_bytes().to_vec());
        secrets.push(expanded.hash_prefix.to_vec());
    }
    let watch = needles(secrets.iter().map(Vec::as_slice));

    let period = Duration::from_secs(3600);
    let (used, freed) = freed_while(Some(&watch), || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let used = runtime.block_on(async {
            let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
            let signer = SurrogateSigner::builder(managed.clone(), "session")
                .period(period)
                .jitter(Duration::ZERO)
                .clock(clock.clone())
                .rng(rng)
                .build()
                .unwrap();
            let mut used = Vec::new();
            for _ in 0..3 {
                let signed = signer.sign(b"graveyard").await.unwrap();
                used.push(signed.key().public_key().clone());
                signer.settled().await;
                clock.advance(period);
            }
            used
        });
        drop(runtime);
        used
    });
    // The needles are the keys the signer really used.
    for (seed, public) in seeds.iter().zip(&used) {
        let expected = ed25519_dalek::SigningKey::from_bytes(seed).verifying_key();
        let expected = remote_signer::PublicKey::from_ed25519_bytes(expected.as_bytes()).unwrap();
        assert_eq!(
            public.jwk_thumbprint(),
            expected.jwk_thumbprint(),
            "replayed seed"
        );
    }
    assert!(
        freed.leaks.is_empty() && found(&freed.bytes, &watch).is_empty(),
        "{} freed blocks held surrogate key material, e.g. {:?}",
        freed.leaks.len(),
        freed.leaks.first()
    );
}

/// A seeded generator that wipes its buffered output (the surrogates' seeds) when dropped, as
/// the operating system's generator, which buffers nothing, needs not.
struct WipedRng(rand_chacha::ChaCha20Rng);

impl Drop for WipedRng {
    fn drop(&mut self) {
        use rand_chacha::rand_core::SeedableRng;
        // SAFETY: `self.0` is valid for writes; ChaCha20Rng has no destructor to skip. The
        // volatile write is not optimised away before the memory is freed.
        unsafe {
            std::ptr::write_volatile(&mut self.0, rand_chacha::ChaCha20Rng::from_seed([0; 32]))
        };
    }
}

impl rand_chacha::rand_core::RngCore for WipedRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_chacha::rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl rand_chacha::rand_core::CryptoRng for WipedRng {}

/// The agent's certificate-mode surrogates are wiped too. Their seeds come from the operating
/// system, so the test looks for them by what they are: every 32 bytes in a row of freed
/// memory are tried as an Ed25519 seed against the public keys the agent certified (windows
/// with eight or more zero bytes are skipped; a random seed has them with odds of about
/// 1 in 10^9). The renewals and signatures run as spawned tasks, on the heap, as in
/// `remote-signer agent`.
#[test]
fn agent_certificate_keys_leave_nothing_behind() {
    use remote_signer::ssh::{Agent, CertificateOptions};
    use ssh_encoding::{Decode, Encode};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    let _serial = graveyard::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ca: Arc<dyn remote_signer::RemoteSigner> =
        Arc::new(LocalSigner::generate(KeyType::P256).unwrap());
    let (publics, freed) = freed_while(None, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let publics = runtime.block_on(async {
            let clock = Arc::new(remote_signer::clock::ManualClock::new(SystemTime::now()));
            let agent = Arc::new(
                Agent::builder()
                    .certificate_authority(
                        ca,
                        CertificateOptions::new(["graveyard"]).validity(Duration::from_secs(60)),
                    )
                    .clock(clock.clone())
                    .build()
                    .unwrap(),
            );
            let mut publics = Vec::new();
            for _ in 0..3 {
                let renewing = agent.clone();
                tokio::spawn(async move { renewing.renew_certificates().await })
                    .await
                    .unwrap()
                    .unwrap();
                // SSH_AGENTC_REQUEST_IDENTITIES; the answer lists the certificate.
                let answer = agent.respond(&[11]).await;
                let mut reader = &answer[..];
                assert_eq!(u8::decode(&mut reader).unwrap(), 12);
                assert_eq!(u32::decode(&mut reader).unwrap(), 1);
                let blob = Vec::<u8>::decode(&mut reader).unwrap();
                let certificate = ssh_key::Certificate::from_bytes(&blob).unwrap();
                let public = certificate.public_key().ed25519().unwrap().0;
                // SSH_AGENTC_SIGN_REQUEST with the certificate, for what ssh signs to log in.
                let mut login = Vec::new();
                [1u8; 32].as_slice().encode(&mut login).unwrap();
                login.push(50);
                for field in ["graveyard", "ssh-connection", "publickey"] {
                    field.encode(&mut login).unwrap();
                }
                login.push(1);
                "ssh-ed25519-cert-v01@openssh.com"
                    .encode(&mut login)
                    .unwrap();
                blob.encode(&mut login).unwrap();
                let mut request = vec![13u8];
                blob.encode(&mut request).unwrap();
                login.encode(&mut request).unwrap();
                0u32.encode(&mut request).unwrap();
                let signing = agent.clone();
                let answer = tokio::spawn(async move { signing.respond(&request).await })
                    .await
                    .unwrap();
                assert_eq!(answer[0], 14, "SSH_AGENT_SIGN_RESPONSE");
                publics.push(public);
                clock.advance(Duration::from_secs(30));
            }
            publics
        });
        drop(runtime);
        publics
    });
    assert_eq!(
        seeds_in(&freed.bytes, &publics),
        0,
        "freed memory held a certified surrogate's seed"
    );

    // The search finds a seed that is there.
    let planted = ed25519_dalek::SigningKey::from_bytes(&[0x5a; 32]);
    let ((), freed) = freed_while(None, || {
        drop(std::hint::black_box(planted.to_bytes().to_vec()))
    });
    assert_eq!(
        seeds_in(&freed.bytes, &[planted.verifying_key().to_bytes()]),
        1
    );
}

/// How many 32-byte runs of `freed` are Ed25519 seeds of one of `publics`.
fn seeds_in(freed: &[u8], publics: &[[u8; 32]]) -> usize {
    freed
        .windows(32)
        .filter(|w| w.iter().filter(|b| **b == 0).count() < 8)
        .filter(|w| {
            let key = ed25519_dalek::SigningKey::from_bytes((*w).try_into().unwrap());
            publics.contains(&key.verifying_key().to_bytes())
        })
        .count()
}

/// Opening a key file through a `KeyRef`, in a spawned task (a future on the heap, as a
/// server opens its keys), leaves nothing behind either.
#[test]
fn a_key_opened_through_a_keyref_in_a_task_leaves_nothing_behind() {
    use remote_signer::{KeyRef, OpenOptions};

    let _serial = graveyard::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new();
    let der = fx.generate(
        "p256.pem",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let file = fs::read(fx.path("p256.pem")).unwrap();
    let secrets = secret_fields(&der);
    let mut all = secret_text(&file, &secrets);
    all.extend(secrets);
    let watch = needles(all.iter().map(Vec::as_slice));
    let keyref: KeyRef = fx.path("p256.pem").to_str().unwrap().parse().unwrap();

    let ((), freed) = freed_while(Some(&watch), || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            tokio::spawn(async move {
                let signer = keyref.open(&OpenOptions::default()).await.unwrap();
                signer.sign(Algorithm::ES256, b"graveyard").await.unwrap();
            })
            .await
            .unwrap();
        });
    });
    assert!(
        freed.leaks.is_empty() && found(&freed.bytes, &watch).is_empty(),
        "{} freed blocks held key material, e.g. {:?}",
        freed.leaks.len(),
        freed.leaks.first().map(|l| &l.freed_by)
    );
}

/// OpenSSH private keys (`ssh-keygen`'s format), plain and encrypted, and a wrong passphrase:
/// nothing of the key or the passphrase is left in freed memory. The secret numbers come from
/// the plain file itself, parsed before the check is armed; the encrypted file is the same key
/// encrypted by `ssh-keygen -p` (one key generation, and no bcrypt decryption, per type) with
/// one bcrypt round: what is checked is what gets freed, not the strength of the KDF.
#[test]
fn openssh_key_files_leave_nothing_behind() {
    use ssh_key::private::{EcdsaKeypair, KeypairData};
    let ssh_keygen = |args: &[&str], path: &Path| {
        let status = std::process::Command::new("ssh-keygen")
            .args(args)
            .arg("-f")
            .arg(path)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-keygen {args:?}");
    };
    let _serial = graveyard::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new();
    let cases: [(&str, &[&str], Algorithm); 4] = [
        ("rsa", &["-t", "rsa", "-b", "2048"], Algorithm::RS256),
        ("p256", &["-t", "ecdsa", "-b", "256"], Algorithm::ES256),
        ("p384", &["-t", "ecdsa", "-b", "384"], Algorithm::ES384),
        ("ed25519", &["-t", "ed25519"], Algorithm::EdDSA),
    ];
    for (name, args, algorithm) in cases {
        let plain = fx.path(&format!("id_{name}"));
        ssh_keygen(&[args, &["-q", "-N", "", "-C", ""]].concat(), &plain);
        let encrypted = fx.path(&format!("id_{name}_encrypted"));
        fs::copy(&plain, &encrypted).unwrap();
        ssh_keygen(
            &["-q", "-p", "-P", "", "-N", PASSPHRASE, "-a", "1"],
            &encrypted,
        );

        let key = ssh_key::PrivateKey::from_openssh(fs::read_to_string(&plain).unwrap()).unwrap();
        let locked =
            ssh_key::PrivateKey::from_openssh(fs::read_to_string(&encrypted).unwrap()).unwrap();
        assert!(!key.is_encrypted() && locked.is_encrypted());
        assert_eq!(
            locked.public_key(),
            key.public_key(),
            "{name}: the same key"
        );
        let secrets: Vec<Vec<u8>> = match key.key_data() {
            KeypairData::Rsa(pair) => [
                &pair.private.d,
                &pair.private.p,
                &pair.private.q,
                &pair.private.iqmp,
            ]
            .iter()
            .map(|m| m.as_positive_bytes().unwrap().to_vec())
            .collect(),
            KeypairData::Ecdsa(EcdsaKeypair::NistP256 { private, .. }) => {
                vec![private.as_slice().to_vec()]
            }
            KeypairData::Ecdsa(EcdsaKeypair::NistP384 { private, .. }) => {
                vec![private.as_slice().to_vec()]
            }
            KeypairData::Ed25519(pair) => vec![pair.private.to_bytes().to_vec()],
            _ => unreachable!(),
        };
        drop(key);
        for (path, passphrase) in [(&plain, ""), (&encrypted, PASSPHRASE)] {
            let label = format!("OpenSSH {name}, passphrase {:?}", !passphrase.is_empty());
            let given = if passphrase.is_empty() {
                "unused"
            } else {
                passphrase
            };
            assert!(assert_leaves_nothing(
                &label,
                path,
                given,
                algorithm,
                &secrets,
                name == "rsa"
            ));
            if !passphrase.is_empty() {
                let wrong = format!("{PASSPHRASE} but wrong");
                assert!(!assert_leaves_nothing(
                    &format!("{label}, wrong passphrase"),
                    path,
                    &wrong,
                    algorithm,
                    &secrets,
                    name == "rsa"
                ));
            }
        }
    }
}

/// The OpenSSH ECDSA keys whose private scalar is shorter than the field
/// (`tests/data/openssh/`, read by the crate's own path because ssh-key 0.6 refuses them), plain
/// and encrypted, leave nothing behind either. The secret numbers come from a copy that
/// ssh-keygen rewrites as PEM and openssl as PKCS#8, before the check is armed.
#[test]
fn openssh_keys_with_a_short_scalar_leave_nothing_behind() {
    let _serial = graveyard::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new();
    let data = |file: &str| fs::read(format!("tests/data/openssh/{file}")).unwrap();
    for (name, algorithm) in [("p256", Algorithm::ES256), ("p384", Algorithm::ES384)] {
        let plain = format!("short-scalar-{name}");
        let sec1 = fx.write(&format!("{plain}.pem"), &data(&plain));
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-p", "-m", "PEM", "-P", "", "-N", "", "-f"])
            .arg(&sec1)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-keygen rewrites {plain} as PEM");
        let pkcs8 = fx.convert(
            &format!("{plain}.pem"),
            &format!("{plain}.der"),
            &["pkcs8", "-topk8", "-nocrypt", "-outform", "DER"],
        );
        let secrets = secret_fields(&fs::read(pkcs8).unwrap());
        for (file, passphrase) in [
            (plain.clone(), "unused"),
            (format!("{plain}.enc"), PASSPHRASE_ENC),
        ] {
            let path = fx.write(&file, &data(&file));
            assert!(assert_leaves_nothing(
                &format!("OpenSSH {file}"),
                &path,
                passphrase,
                algorithm,
                &secrets,
                false
            ));
        }
    }
}

/// A private key read only for its public half (`cookie verify --trust key.pem`,
/// `verify --public-key key.pem`) is wiped as well: nothing of it is left in freed memory.
#[test]
fn a_private_key_read_for_its_public_half_leaves_nothing_behind() {
    let _serial = graveyard::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new();
    let cases: [(&str, &[&str]); 2] = [
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        ("ed25519", &["-algorithm", "ED25519"]),
    ];
    for (name, args) in cases {
        let pem = format!("{name}.pem");
        let der = fx.generate(&pem, args);
        let secrets = secret_fields(&der);
        let file = fs::read(fx.path(&pem)).unwrap();
        let text = secret_text(&file, &secrets);
        let all = needles(secrets.iter().chain(&text).map(Vec::as_slice));
        let (public, freed) = freed_while(Some(&all), || {
            LocalKeyOptions::new().public_key(fx.path(&pem)).unwrap()
        });
        assert_eq!(
            &public,
            LocalSigner::open(fx.path(&pem)).unwrap().public_key(),
            "{name}"
        );
        assert!(
            freed.leaks.is_empty(),
            "{name}: {} leaks",
            freed.leaks.len()
        );
        assert!(
            found(&freed.bytes, &all).is_empty(),
            "{name}: freed memory held key material"
        );
    }
}
