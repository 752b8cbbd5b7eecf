//! Key buffers are zeroized before their memory goes back to the allocator.
//!
//! The global allocator here is the graveyard (`tests/graveyard/mod.rs`): while armed it keeps
//! a copy of every freed block. Each case loads a key file made by openssl, signs, drops the
//! signer, and then searches what was freed for any 16 bytes in a row of the key's secret
//! numbers, of the file's text where it encodes them, and of the passphrase.
//!
//! EC and Ed25519 keys leave nothing behind. RSA keys leave the `rsa` crate's big-integer
//! temporaries (its arithmetic in `num-bigint-dig` does not zeroize); the test attributes
//! every such block to that arithmetic and fails on any other. `tests/zeroize_alloc.rs` shows
//! the documented remedy, a zero-on-free global allocator, removing those too.

mod graveyard;

use std::fs;
use std::path::Path;

use graveyard::{found, freed_while, needles, secret_fields, secret_text, Fixture, Graveyard};
use remote_signer::backend::local::{LocalKeyOptions, LocalSigner};
use remote_signer::{Algorithm, KeyType};

#[global_allocator]
static ALLOCATOR: Graveyard = Graveyard;

const PASSPHRASE: &str = "graveyard passphrase 4f1c";

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
    let text = needles(text.iter().map(Vec::as_slice));
    // Big-endian as in DER, and little-endian as big integers hold them in memory.
    let reversed: Vec<Vec<u8>> = secrets
        .iter()
        .map(|s| s.iter().rev().copied().collect())
        .collect();
    let all: graveyard::Needles = needles(secrets.iter().chain(&reversed).map(Vec::as_slice))
        .union(&text)
        .copied()
        .collect();

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
