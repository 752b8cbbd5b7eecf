//! Local key files and the key CLI, checked against the `openssl` command-line tool
//! (an independent implementation) in both directions.
//!
//! Keys are made by `openssl` in a temporary directory at test time, in every container this
//! crate reads: PKCS#8 PEM and DER, PKCS#8 encrypted with PBES2/AES-256-CBC (OpenSSL 3's
//! default) and with DES-EDE3-CBC (`-v2 des3`, Snowflake's documented command), PKCS#1 RSA and
//! SEC1 EC.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use remote_signer::backend::local::{LocalKeyOptions, LocalSigner};
use remote_signer::{Algorithm, ErrorKind, KeyType, PublicKey, RemoteSigner, Signature};

const BIN: &str = env!("CARGO_BIN_EXE_remote-signer");
const MESSAGE: &[u8] = b"the quick brown fox jumps over the lazy dog\n";
const PASSPHRASE: &str = "correct horse battery staple";

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn private(path: &Path) -> &Path {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Self {
        Keys {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Generates a PKCS#8 PEM key with openssl; returns its path (mode 0600).
    fn generate(&self, name: &str, key_type: KeyType, rsa_bits: u32) -> PathBuf {
        let path = self.path(name);
        let bits = format!("rsa_keygen_bits:{rsa_bits}");
        let args: Vec<&str> = match key_type {
            KeyType::Rsa => vec!["-algorithm", "RSA", "-pkeyopt", &bits],
            KeyType::P256 => vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyType::P384 => vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            KeyType::Ed25519 => vec!["-algorithm", "ED25519"],
            _ => unreachable!(),
        };
        let mut full = vec!["genpkey", "-out", path.to_str().unwrap()];
        full.extend(args);
        openssl(&full);
        private(&path);
        path
    }

    /// Converts `key` with `openssl <args>`, writing `name` (mode 0600).
    fn convert(&self, key: &Path, name: &str, args: &[&str]) -> PathBuf {
        let path = self.path(name);
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["-in", key.to_str().unwrap(), "-out", path.to_str().unwrap()]);
        openssl(&full);
        private(&path);
        path
    }

    fn public_pem(&self, key: &Path) -> Vec<u8> {
        openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"])
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, bytes).unwrap();
        private(&path);
        path
    }
}

fn cli(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove(remote_signer::backend::local::PASSPHRASE_ENV)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The CLI may fail before reading its input; a closed pipe is fine then.
    let _ = input.write_all(stdin.unwrap_or_default());
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(101), "the CLI panicked: {out:?}");
    out
}

fn cli_ok(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let out = cli(args, stdin);
    assert!(
        out.status.success(),
        "remote-signer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Asserts the CLI failed cleanly: exit 2, exactly one line on stderr, containing `needle`.
fn cli_fails(args: &[&str], needle: &str) -> String {
    let out = cli(args, Some(MESSAGE));
    assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

/// The openssl command line that signs (`verify: None`) or verifies (`verify: Some(sig)`)
/// `message` with `key` under `alg`: `pkeyutl -rawin` for Ed25519, `dgst` otherwise.
fn openssl_args<'a>(
    alg: Algorithm,
    key: &'a str,
    message: &'a str,
    verify: Option<&'a str>,
) -> Vec<&'a str> {
    let digest = match alg.hash() {
        Some(remote_signer::key::Hash::Sha256) => "-sha256",
        Some(remote_signer::key::Hash::Sha384) => "-sha384",
        Some(remote_signer::key::Hash::Sha512) => "-sha512",
        _ => "",
    };
    let mut args = match (alg, verify) {
        (Algorithm::EdDSA, Some(sig)) => vec![
            "pkeyutl", "-verify", "-pubin", "-inkey", key, "-rawin", "-in", message, "-sigfile",
            sig,
        ],
        (Algorithm::EdDSA, None) => {
            vec!["pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", message]
        }
        (_, Some(sig)) => vec!["dgst", digest, "-verify", key, "-signature", sig],
        (_, None) => vec!["dgst", digest, "-sign", key],
    };
    if matches!(alg, Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512) {
        args.extend([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ]);
    }
    if alg != Algorithm::EdDSA {
        args.push(message);
    }
    args
}

/// openssl verifies a JOSE signature made by the CLI.
fn openssl_verifies(keys: &Keys, public_pem: &Path, alg: Algorithm, jose_sig: &[u8]) -> bool {
    let msg = keys.write("msg.bin", MESSAGE);
    let der = Signature::new(alg, jose_sig.to_vec()).to_der().unwrap();
    let sig = keys.write("sig.bin", &der);
    let args = openssl_args(
        alg,
        public_pem.to_str().unwrap(),
        msg.to_str().unwrap(),
        Some(sig.to_str().unwrap()),
    );
    Command::new("openssl")
        .args(&args)
        .output()
        .unwrap()
        .status
        .success()
}

/// openssl signs; returns the signature as the CLI takes it (base64url; ECDSA in DER).
fn openssl_signs(keys: &Keys, key: &Path, alg: Algorithm) -> String {
    let msg = keys.write("msg-o.bin", MESSAGE);
    let args = openssl_args(alg, key.to_str().unwrap(), msg.to_str().unwrap(), None);
    URL_SAFE_NO_PAD.encode(openssl(&args))
}

#[test]
fn every_algorithm_interoperates_with_openssl_both_ways() {
    let keys = Keys::new();
    for (name, key_type, bits) in [
        ("rsa2048", KeyType::Rsa, 2048),
        ("rsa4096", KeyType::Rsa, 4096),
        ("p256", KeyType::P256, 0),
        ("p384", KeyType::P384, 0),
        ("ed25519", KeyType::Ed25519, 0),
    ] {
        let key = keys.generate(&format!("{name}.pem"), key_type, bits);
        let public = keys.write(&format!("{name}.pub"), &keys.public_pem(&key));
        let key_s = key.to_str().unwrap();
        for &alg in key_type.algorithms() {
            let sig = cli_ok(
                &["sign", "--key", key_s, "--alg", alg.as_str()],
                Some(MESSAGE),
            );
            let sig = String::from_utf8(sig).unwrap();
            let sig_bytes = URL_SAFE_NO_PAD.decode(sig.trim()).unwrap();
            assert!(
                openssl_verifies(&keys, &public, alg, &sig_bytes),
                "openssl rejects {name} {alg}"
            );

            let theirs = openssl_signs(&keys, &key, alg);
            let args = [
                "verify",
                "--public-key",
                public.to_str().unwrap(),
                "--alg",
                alg.as_str(),
                "--signature",
                &theirs,
            ];
            cli_ok(&args, Some(MESSAGE));
            // The same signature over another message is invalid: exit 1.
            let out = cli(&args, Some(b"another message"));
            assert_eq!(out.status.code(), Some(1), "{name} {alg}: {out:?}");
        }
        // The default algorithm is the key's natural one.
        let sig = cli_ok(&["sign", "--key", key_s], Some(MESSAGE));
        let sig_bytes = URL_SAFE_NO_PAD
            .decode(String::from_utf8(sig).unwrap().trim())
            .unwrap();
        assert!(openssl_verifies(
            &keys,
            &public,
            key_type.default_algorithm(),
            &sig_bytes
        ));
    }
}

#[test]
fn algorithms_that_do_not_fit_the_key_are_refused() {
    let keys = Keys::new();
    let ed = keys.generate("ed.pem", KeyType::Ed25519, 0);
    let p256 = keys.generate("p256.pem", KeyType::P256, 0);
    let pub256 = keys.write("p256.pub", &keys.public_pem(&p256));
    cli_fails(
        &["sign", "--key", ed.to_str().unwrap(), "--alg", "RS256"],
        "RS256 cannot be used with an Ed25519 key",
    );
    cli_fails(
        &["sign", "--key", p256.to_str().unwrap(), "--alg", "ES384"],
        "ES384 cannot be used with an EC P-256 key",
    );
    cli_fails(
        &["sign", "--key", p256.to_str().unwrap(), "--alg", "none"],
        "unknown algorithm",
    );
    cli_fails(
        &["sign", "--key", p256.to_str().unwrap(), "--alg", "HS256"],
        "unknown algorithm",
    );
    // A verifier never lets the algorithm pick the key type.
    let sig = String::from_utf8(cli_ok(
        &["sign", "--key", p256.to_str().unwrap()],
        Some(MESSAGE),
    ))
    .unwrap();
    cli_fails(
        &[
            "verify",
            "--public-key",
            pub256.to_str().unwrap(),
            "--alg",
            "EdDSA",
            "--signature",
            sig.trim(),
        ],
        "EdDSA cannot be used",
    );
}

#[test]
fn a_signature_that_starts_with_a_hyphen_is_a_value_not_a_flag() {
    // One base64url signature in 64 starts with '-'; it must reach the verifier.
    let keys = Keys::new();
    let ed = keys.generate("ed.pem", KeyType::Ed25519, 0);
    let public = keys.write("ed.pub", &keys.public_pem(&ed));
    let forged = format!("-{}", "A".repeat(85));
    let out = cli(
        &[
            "verify",
            "--public-key",
            public.to_str().unwrap(),
            "--alg",
            "EdDSA",
            "--signature",
            &forged,
        ],
        Some(MESSAGE),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("unexpected argument"), "{err}");
}

#[test]
fn public_key_output_is_byte_identical_to_openssl() {
    let keys = Keys::new();
    for (name, key_type, bits) in [
        ("rsa3072", KeyType::Rsa, 3072),
        ("p256", KeyType::P256, 0),
        ("p384", KeyType::P384, 0),
        ("ed25519", KeyType::Ed25519, 0),
    ] {
        let key = keys.generate(&format!("{name}.pem"), key_type, bits);
        let k = key.to_str().unwrap();
        assert_eq!(
            cli_ok(&["public-key", "--key", k], None),
            keys.public_pem(&key),
            "{name} pem"
        );
        assert_eq!(
            cli_ok(&["public-key", "--key", k, "--format", "der"], None),
            openssl(&["pkey", "-in", k, "-pubout", "-outform", "DER"]),
            "{name} der"
        );

        // Snowflake form: padded standard base64 of SHA-256 over the SPKI DER.
        let der = openssl(&["pkey", "-in", k, "-pubout", "-outform", "DER"]);
        let der_file = keys.write("spki.der", &der);
        let digest = openssl(&["dgst", "-sha256", "-binary", der_file.to_str().unwrap()]);
        let expected = format!("SHA256:{}\n", STANDARD.encode(&digest));
        assert_eq!(
            String::from_utf8(cli_ok(&["fingerprint", "--key", k], None)).unwrap(),
            expected
        );

        // OpenSSH form: unpadded base64 of SHA-256 over the SSH blob, as `ssh-keygen -l`.
        let line = String::from_utf8(cli_ok(
            &["public-key", "--key", k, "--format", "openssh"],
            None,
        ))
        .unwrap();
        let blob = STANDARD
            .decode(line.split_whitespace().nth(1).unwrap())
            .unwrap();
        let blob_file = keys.write("blob.bin", &blob);
        let digest = openssl(&["dgst", "-sha256", "-binary", blob_file.to_str().unwrap()]);
        let expected = format!("SHA256:{}", STANDARD_NO_PAD.encode(&digest));
        let fp = String::from_utf8(cli_ok(
            &["fingerprint", "--key", k, "--format", "openssh"],
            None,
        ))
        .unwrap();
        assert_eq!(fp.trim(), expected);
        if let Ok(out) = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(line.as_bytes())?;
                c.wait_with_output()
            })
        {
            let printed = String::from_utf8_lossy(&out.stdout);
            assert!(printed.contains(&expected), "ssh-keygen -l says {printed}");
        }

        // JWK: its thumbprint is the kid, and it decodes back to the same key.
        let jwk = cli_ok(&["public-key", "--key", k, "--format", "jwk"], None);
        let parsed = PublicKey::from_any(&jwk).unwrap();
        assert_eq!(
            parsed,
            PublicKey::from_pem(&String::from_utf8(keys.public_pem(&key)).unwrap()).unwrap()
        );
        let json: serde_json::Value = serde_json::from_slice(&jwk).unwrap();
        assert_eq!(json["kid"].as_str().unwrap(), parsed.jwk_thumbprint());
    }
}

#[test]
fn rfc7638_thumbprint_example() {
    // RFC 7638 section 3.1.
    let jwk = r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#;
    let key = PublicKey::from_any(jwk.as_bytes()).unwrap();
    assert_eq!(
        key.jwk_thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn snowflake_fingerprint_of_the_connector_test_key() {
    // tests/data/snowflake/: copied from shared/data/snowflake (official Python connector vectors).
    let keys = Keys::new();
    let key = keys.write(
        "rsa_key.p8",
        &fs::read("tests/data/snowflake/rsa_key.p8").unwrap(),
    );
    let vectors: serde_json::Value =
        serde_json::from_slice(&fs::read("tests/data/snowflake/connector_vectors.json").unwrap())
            .unwrap();
    let fp = cli_ok(&["fingerprint", "--key", key.to_str().unwrap()], None);
    assert_eq!(
        String::from_utf8(fp).unwrap().trim(),
        vectors["fingerprint"].as_str().unwrap()
    );
    let signer = LocalSigner::open(&key).unwrap();
    assert_eq!(
        STANDARD.encode(signer.public_key().to_spki_der()),
        vectors["alter_user_value"].as_str().unwrap()
    );
}

#[test]
fn every_container_loads_the_same_key() {
    let keys = Keys::new();
    let rsa = keys.generate("rsa.pem", KeyType::Rsa, 2048);
    let p256 = keys.generate("p256.pem", KeyType::P256, 0);
    let p384 = keys.generate("p384.pem", KeyType::P384, 0);
    let ed = keys.generate("ed.pem", KeyType::Ed25519, 0);
    let pass = format!("pass:{PASSPHRASE}");
    for (name, key) in [("rsa", &rsa), ("p256", &p256), ("p384", &p384), ("ed", &ed)] {
        let expected = LocalSigner::open(key).unwrap().public_key().clone();
        let mut variants = vec![
            keys.convert(key, &format!("{name}.der"), &["pkey", "-outform", "DER"]),
            keys.convert(
                key,
                &format!("{name}.aes.p8"),
                &["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", &pass],
            ),
            keys.convert(
                key,
                &format!("{name}.des3.p8"),
                &["pkcs8", "-topk8", "-v2", "des3", "-passout", &pass],
            ),
            keys.convert(
                key,
                &format!("{name}.aes.der"),
                &[
                    "pkcs8",
                    "-topk8",
                    "-v2",
                    "aes-128-cbc",
                    "-passout",
                    &pass,
                    "-outform",
                    "DER",
                ],
            ),
        ];
        if name == "rsa" {
            variants.push(keys.convert(key, "rsa.pkcs1.pem", &["rsa", "-traditional"]));
            variants.push(keys.convert(
                key,
                "rsa.pkcs1.der",
                &["rsa", "-traditional", "-outform", "DER"],
            ));
        }
        if name.starts_with('p') {
            variants.push(keys.convert(key, &format!("{name}.sec1.pem"), &["ec"]));
            variants.push(keys.convert(
                key,
                &format!("{name}.sec1.der"),
                &["ec", "-outform", "DER"],
            ));
        }
        for variant in variants {
            let signer = LocalKeyOptions::new()
                .passphrase(PASSPHRASE)
                .open(&variant)
                .unwrap_or_else(|e| panic!("{}: {e}", variant.display()));
            assert_eq!(signer.public_key(), &expected, "{}", variant.display());
        }
    }
    // `openssl ecparam -genkey` writes an EC PARAMETERS block before the key.
    let with_params = keys.path("params.pem");
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        with_params.to_str().unwrap(),
    ]);
    private(&with_params);
    assert_eq!(
        LocalSigner::open(&with_params).unwrap().key_type(),
        KeyType::P256
    );
}

#[test]
fn encrypted_keys_need_the_right_passphrase() {
    let keys = Keys::new();
    let key = keys.generate("k.pem", KeyType::P256, 0);
    let pass = format!("pass:{PASSPHRASE}");
    for cipher in ["aes-256-cbc", "des3"] {
        let enc = keys.convert(
            &key,
            &format!("k.{cipher}.p8"),
            &["pkcs8", "-topk8", "-v2", cipher, "-passout", &pass],
        );
        let e = enc.to_str().unwrap();

        let missing = LocalSigner::open(&enc).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::Passphrase);
        // The library gives no command-line advice; the CLI adds its own.
        assert!(
            missing.to_string().contains("no passphrase was given")
                && !missing.to_string().contains("REMOTE_SIGNER_KEY_PASSPHRASE")
                && !missing.to_string().contains("--passphrase-file"),
            "{missing}"
        );
        for wrong in ["hunter2", "", "correct horse battery stapler"] {
            let err = LocalKeyOptions::new()
                .passphrase(wrong)
                .open(&enc)
                .unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Passphrase,
                "{cipher} {wrong:?}: {err}"
            );
            assert!(!err.to_string().contains(wrong) || wrong.is_empty());
        }

        // The CLI: environment variable, passphrase file, and failures.
        let out = Command::new(BIN)
            .args(["fingerprint", "--key", e])
            .env(remote_signer::backend::local::PASSPHRASE_ENV, PASSPHRASE)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let pass_file = keys.write("pass.txt", format!("{PASSPHRASE}\n").as_bytes());
        cli_ok(
            &[
                "fingerprint",
                "--key",
                e,
                "--passphrase-file",
                pass_file.to_str().unwrap(),
            ],
            None,
        );
        let err = cli_fails(&["fingerprint", "--key", e], "no passphrase was given");
        assert!(
            err.contains("set REMOTE_SIGNER_KEY_PASSPHRASE or use --passphrase-file"),
            "{err}"
        );
        let wrong_file = keys.write("wrong.txt", b"nope\n");
        let err = cli_fails(
            &[
                "fingerprint",
                "--key",
                e,
                "--passphrase-file",
                wrong_file.to_str().unwrap(),
            ],
            "wrong passphrase",
        );
        assert!(!err.contains("nope"));
    }
    // A file asking for absurd KDF work is refused at once instead of hanging. (Built
    // directly: openssl itself would spend the rounds to write it.)
    let iv = [7u8; 16];
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(100_000_000, b"saltsalt", &iv)
            .unwrap();
    let costly = pkcs8::EncryptedPrivateKeyInfo {
        encryption_algorithm: params.into(),
        encrypted_data: &[0u8; 64],
    };
    let costly = keys.write("costly.p8", &pkcs8::der::Encode::to_der(&costly).unwrap());
    let err = LocalKeyOptions::new()
        .passphrase(PASSPHRASE)
        .open(&costly)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey, "{err}");
    // The passphrase is never a command-line argument.
    let out = cli(
        &[
            "fingerprint",
            "--key",
            key.to_str().unwrap(),
            "--passphrase",
            "x",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_key_files_give_clear_errors_never_panics() {
    let keys = Keys::new();
    let good = keys.generate("good.pem", KeyType::Rsa, 2048);
    let good_pem = fs::read_to_string(&good).unwrap();
    let good_der = openssl(&["pkey", "-in", good.to_str().unwrap(), "-outform", "DER"]);
    let public = keys.public_pem(&good);
    let small = keys.generate("rsa1024.pem", KeyType::Rsa, 1024);
    let x25519 = keys.path("x25519.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "X25519",
        "-out",
        x25519.to_str().unwrap(),
    ]);
    private(&x25519);
    let secp256k1 = keys.path("k1.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:secp256k1",
        "-out",
        secp256k1.to_str().unwrap(),
    ]);
    private(&secp256k1);

    let cases: Vec<(&str, PathBuf, ErrorKind, &str)> = vec![
        ("empty", keys.write("empty", b""), ErrorKind::KeyFile, "empty"),
        ("blank", keys.write("blank", b"\n  \n"), ErrorKind::KeyFile, "empty"),
        ("garbage", keys.write("garbage", b"\x00\x01garbage\xff"), ErrorKind::KeyFile, "not a PEM or DER"),
        ("text", keys.write("text", b"hello world"), ErrorKind::KeyFile, "not a PEM or DER"),
        (
            "truncated pem",
            keys.write("trunc.pem", &good_pem.as_bytes()[..good_pem.len() / 2]),
            ErrorKind::KeyFile,
            "truncated",
        ),
        (
            "truncated der",
            keys.write("trunc.der", &good_der[..good_der.len() - 10]),
            ErrorKind::KeyFile,
            "not a PEM or DER",
        ),
        (
            "corrupt base64",
            keys.write("corrupt.pem", good_pem.replacen("MII", "M!I", 1).as_bytes()),
            ErrorKind::KeyFile,
            "malformed PEM",
        ),
        ("public key", keys.write("pub.pem", &public), ErrorKind::KeyFile, "no private key"),
        ("rsa 1024", small, ErrorKind::UnsupportedKey, "1024 bits"),
        ("x25519", x25519, ErrorKind::UnsupportedKey, "key algorithm"),
        ("secp256k1", secp256k1, ErrorKind::UnsupportedKey, "EC curve"),
        (
            "openssh",
            keys.write("id.pem", b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
            ErrorKind::KeyFile,
            "malformed OpenSSH private key",
        ),
        ("directory", keys.dir.path().to_path_buf(), ErrorKind::KeyFile, "it is a directory"),
        ("missing", keys.path("does-not-exist"), ErrorKind::KeyFile, "no such file"),
    ];
    for (what, path, kind, needle) in cases {
        let err = LocalSigner::open(&path).unwrap_err();
        assert_eq!(err.kind(), kind, "{what}: {err}");
        let text = err.to_string();
        assert!(text.contains(needle), "{what}: {text:?} lacks {needle:?}");
        let name = path.to_str().unwrap();
        assert_eq!(
            text.matches(name).count(),
            1,
            "{what}: the file once: {text}"
        );
        let err = cli_fails(&["public-key", "--key", name], needle);
        assert_eq!(err.matches(name).count(), 1, "{what}: the file once: {err}");
    }
}

#[test]
fn readable_key_files_are_refused_unless_allowed() {
    let keys = Keys::new();
    let key = keys.generate("k.pem", KeyType::Ed25519, 0);
    for mode in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
        let err = LocalSigner::open(&key).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InsecureKeyFile);
        let text = err.to_string();
        assert!(text.contains(&format!("{mode:04o}")), "{text}");
        let chmod = format!("chmod 600 {}", key.display());
        assert!(text.contains(&chmod), "{text}");
        assert!(text.contains("dangerous_allow_readable_file"), "{text}");
        let err = cli_fails(
            &["public-key", "--key", key.to_str().unwrap()],
            &format!("mode {mode:04o}"),
        );
        assert!(err.contains(&chmod), "{err}");
        assert!(err.contains("--allow-readable-key-file"), "{err}");
        assert!(!err.contains("LocalKeyOptions"), "{err}");
        // The explicitly named opt-out.
        LocalKeyOptions::new()
            .dangerous_allow_readable_file(true)
            .open(&key)
            .unwrap();
        cli_ok(
            &[
                "public-key",
                "--key",
                key.to_str().unwrap(),
                "--allow-readable-key-file",
            ],
            None,
        );
    }
    for mode in [0o600, 0o400] {
        fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
        LocalSigner::open(&key).unwrap();
    }
}

#[test]
fn file_uri_names_the_same_key() {
    let keys = Keys::new();
    let key = keys.generate("k.pem", KeyType::P384, 0);
    let uri = format!("file://{}", key.display());
    assert_eq!(
        cli_ok(&["public-key", "--key", &uri], None),
        cli_ok(&["public-key", "--key", key.to_str().unwrap()], None)
    );
}

/// All the ways private material could show up in text: the file, its base64 body in
/// 12-character windows, and the passphrase.
fn secret_fragments(pem: &str) -> Vec<String> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(&body).unwrap();
    let mut fragments: Vec<String> = body
        .as_bytes()
        .windows(12)
        .step_by(7)
        .map(|w| String::from_utf8(w.to_vec()).unwrap())
        .collect();
    // Hex of the DER, in case something prints bytes. Whole chunks only: a short last chunk
    // ("38") is found in innocent text ("ES384") by chance.
    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
    fragments.extend(
        hex.as_bytes()
            .chunks_exact(16)
            .skip(2)
            .map(|c| String::from_utf8(c.to_vec()).unwrap()),
    );
    fragments.push(PASSPHRASE.to_string());
    fragments
}

#[tokio::test]
async fn debug_output_and_errors_hold_no_private_material() {
    let keys = Keys::new();
    for (name, key_type, bits) in [
        ("rsa", KeyType::Rsa, 2048),
        ("p256", KeyType::P256, 0),
        ("ed", KeyType::Ed25519, 0),
    ] {
        let key = keys.generate(&format!("{name}.pem"), key_type, bits);
        let pem = fs::read_to_string(&key).unwrap();
        let signer = LocalSigner::open(&key).unwrap();
        let shared: std::sync::Arc<dyn RemoteSigner> =
            std::sync::Arc::new(LocalSigner::open(&key).unwrap());
        let mut texts = vec![
            format!("{signer:?}"),
            format!("{signer:#?}"),
            format!("{shared:?}"),
            format!("{:?}", signer.public_key()),
            format!("{:?}", LocalKeyOptions::new().passphrase(PASSPHRASE)),
        ];
        // Errors from a half-broken copy of the key, a wrong passphrase, wrong algorithms.
        let broken = keys.write("broken.pem", pem.replacen("\n", "\n!", 3).as_bytes());
        let enc = keys.convert(
            &key,
            "enc.p8",
            &[
                "pkcs8",
                "-topk8",
                "-v2",
                "des3",
                "-passout",
                &format!("pass:{PASSPHRASE}"),
            ],
        );
        for err in [
            LocalSigner::open(&broken).unwrap_err(),
            LocalKeyOptions::new()
                .passphrase("x")
                .open(&enc)
                .unwrap_err(),
            LocalSigner::open(&enc).unwrap_err(),
            signer.sign(Algorithm::ES384, b"m").await.unwrap_err(),
        ] {
            texts.push(err.to_string());
            texts.push(format!("{err:?}"));
        }
        for text in &texts {
            for fragment in secret_fragments(&pem) {
                assert!(
                    !text.contains(&fragment),
                    "{name}: {text:?} contains {fragment:?}"
                );
            }
        }
        assert!(texts[0].contains("LocalSigner") && texts[0].contains("key_id"));
    }
}

#[tokio::test]
async fn key_id_names_the_file_and_the_exact_key() {
    let keys = Keys::new();
    let a = keys.generate("a.pem", KeyType::Ed25519, 0);
    let signer = LocalSigner::open(&a).unwrap();
    let id = signer.key_id().as_str().to_string();
    assert!(id.starts_with("file:///") && id.contains("a.pem#"), "{id}");
    assert!(id.ends_with(&signer.public_key().jwk_thumbprint()));
    // Replacing the file with another key gives another id.
    fs::remove_file(&a).unwrap();
    keys.generate("a.pem", KeyType::Ed25519, 0);
    assert_ne!(LocalSigner::open(&a).unwrap().key_id().as_str(), id);
}

#[test]
fn generate_writes_a_private_key_file() {
    let keys = Keys::new();
    let out = keys.path("gen.pem");
    let id = cli_ok(
        &["generate", "--out", out.to_str().unwrap(), "--type", "p256"],
        None,
    );
    assert!(String::from_utf8(id).unwrap().starts_with("file://"));
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // openssl reads it, and it refuses to overwrite.
    openssl(&["pkey", "-in", out.to_str().unwrap(), "-noout"]);
    // Every type, Ed25519 (the default) too, is readable by the OpenSSL at hand (3.0 reads
    // only PKCS#8 v1 Ed25519 keys).
    for key_type in ["ed25519", "rsa", "p384"] {
        let path = keys.path(&format!("gen-{key_type}.pem"));
        cli_ok(
            &[
                "generate",
                "--out",
                path.to_str().unwrap(),
                "--type",
                key_type,
            ],
            None,
        );
        openssl(&["pkey", "-in", path.to_str().unwrap(), "-noout"]);
    }
    let err = cli_fails(&["generate", "--out", out.to_str().unwrap()], "gen.pem");
    assert!(err.contains("cannot write key file"), "{err}");
    assert!(err.contains("it already exists"), "{err}");
}

#[test]
fn demo_runs() {
    let out = cli_ok(&["demo"], None);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("all signatures verified"), "{text}");
    // It says what did not happen, and prints no path that is deleted at exit.
    assert!(text.contains("no Snowflake service is contacted"), "{text}");
    assert!(text.contains("no ssh client, no sshd"), "{text}");
    assert!(
        !text.contains("/tmp/") && !text.contains("file://"),
        "{text}"
    );
    assert!(text.contains("next:"), "{text}");
}

fn ssh_keygen(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ssh-keygen")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The key type and base64 blob of an OpenSSH public key line (the comment differs).
fn ssh_public_blob(line: &[u8]) -> String {
    let text = String::from_utf8(line.to_vec()).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// OpenSSH private keys as `ssh-keygen` writes them, plain and with a passphrase, load as the
/// same key `ssh-keygen -y` derives, sign verifiably, and follow the rules of every key file.
#[test]
fn openssh_private_keys_from_ssh_keygen_load_and_sign() {
    let keys = Keys::new();
    let cases = [
        ("ed25519", vec!["-t", "ed25519"], KeyType::Ed25519),
        ("p256", vec!["-t", "ecdsa", "-b", "256"], KeyType::P256),
        ("p384", vec!["-t", "ecdsa", "-b", "384"], KeyType::P384),
        ("rsa", vec!["-t", "rsa", "-b", "2048"], KeyType::Rsa),
    ];
    for (name, type_args, key_type) in cases {
        for passphrase in ["", PASSPHRASE] {
            let path = keys.path(&format!("id_{name}_{}", passphrase.len()));
            let mut args = type_args.clone();
            let p = path.to_str().unwrap();
            args.extend(["-q", "-N", passphrase, "-C", "test", "-f", p]);
            ssh_keygen(&args);
            let expected = ssh_public_blob(&ssh_keygen(&["-y", "-P", passphrase, "-f", p]));

            let signer = if passphrase.is_empty() {
                LocalSigner::open(&path).unwrap()
            } else {
                let missing = LocalSigner::open(&path).unwrap_err();
                assert_eq!(missing.kind(), ErrorKind::Passphrase, "{name}: {missing}");
                assert!(missing.to_string().contains("no passphrase"), "{missing}");
                let wrong = LocalKeyOptions::new()
                    .passphrase("hunter2")
                    .open(&path)
                    .unwrap_err();
                assert_eq!(wrong.kind(), ErrorKind::Passphrase, "{name}: {wrong}");
                assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
                LocalKeyOptions::new()
                    .passphrase(passphrase)
                    .open(&path)
                    .unwrap()
            };
            assert_eq!(signer.public_key().key_type(), key_type);
            assert_eq!(
                ssh_public_blob(signer.public_key().to_openssh("x").unwrap().as_bytes()),
                expected,
                "{name}"
            );
            for &alg in key_type.algorithms() {
                let sig = signer.sign_blocking(alg, MESSAGE).unwrap();
                signer
                    .public_key()
                    .verify(alg, MESSAGE, sig.as_bytes())
                    .unwrap();
            }

            // The CLI, with the passphrase from a file.
            let pass_file = keys.write("pass", format!("{passphrase}\n").as_bytes());
            let mut cli_args = vec!["public-key", "--format", "openssh", "--key", p];
            if !passphrase.is_empty() {
                cli_args.extend(["--passphrase-file", pass_file.to_str().unwrap()]);
            }
            assert_eq!(ssh_public_blob(&cli_ok(&cli_args, None)), expected);

            // The permission rule of every key file.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let err = LocalSigner::open(&path).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InsecureKeyFile, "{name}: {err}");
            private(&path);
        }
    }
    // The same key wrapped at 64 columns, as some SSH tools write it, reads as well.
    let plain = fs::read_to_string(keys.path("id_ed25519_0")).unwrap();
    let blob = ssh_key::PrivateKey::from_openssh(&plain)
        .unwrap()
        .to_bytes()
        .unwrap();
    let narrow =
        pem_rfc7468::encode_string("OPENSSH PRIVATE KEY", pem_rfc7468::LineEnding::LF, &blob)
            .unwrap();
    assert!(narrow.lines().nth(1).unwrap().len() == 64);
    let narrow = keys.write("narrow", narrow.as_bytes());
    assert_eq!(
        LocalSigner::open(&narrow).unwrap().public_key(),
        LocalSigner::open(keys.path("id_ed25519_0"))
            .unwrap()
            .public_key()
    );
    // A crafted file asking for absurd bcrypt work is refused before any is done.
    let costly = keys.path("costly");
    ssh_keygen(&[
        "-t",
        "ed25519",
        "-q",
        "-N",
        PASSPHRASE,
        "-f",
        costly.to_str().unwrap(),
    ]);
    let pem = fs::read_to_string(&costly).unwrap();
    let key = ssh_key::PrivateKey::from_openssh(&pem).unwrap();
    let mut blob = key.to_bytes().unwrap().to_vec();
    // After the KDF name: `uint32 length, string salt (16 bytes), uint32 rounds`.
    let kdf_name_end = blob.windows(6).position(|w| w == b"bcrypt").unwrap() + 6;
    let rounds_at = kdf_name_end + 4 + 4 + 16;
    assert_eq!(blob[rounds_at..rounds_at + 4], 16u32.to_be_bytes());
    blob[rounds_at..rounds_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let crafted = ssh_key::PrivateKey::from_bytes(&blob)
        .unwrap()
        .to_openssh(ssh_key::LineEnding::LF)
        .unwrap();
    let crafted = keys.write("crafted", crafted.as_bytes());
    let err = LocalKeyOptions::new()
        .passphrase(PASSPHRASE)
        .open(&crafted)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey, "{err}");
}
