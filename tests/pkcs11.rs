//! The PKCS#11 backend against a real module, SoftHSM2, on a token this file sets up with
//! SoftHSM's own tools (tests/support/softhsm.rs): through the library and the CLI, checked by
//! openssl, `jsonwebtoken`, `ssh-keygen` and a real sshd.

use crate::support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use remote_signer::backend::pkcs11::{KeySpec, Pkcs11Signer};
use remote_signer::ssh::{Agent, CertificateOptions};
use remote_signer::{Algorithm, ErrorKind, KeyRef, KeyType, OpenOptions, PublicKey, RemoteSigner};
use serde_json::Value;
use softhsm_token::{self as softhsm, MODULE, PIN, TOKEN, openssl, token};
use support::ssh::{RunningAgent, Sshd, current_user};

const BIN: &str = env!("CARGO_BIN_EXE_remote-signer");

/// One test at a time: SoftHSM2's file store fails (`CKR_GENERAL_ERROR`) in a process that
/// reads the token while another process writes to it, so the tests take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
const MESSAGE: &[u8] = b"a message signed on the token\n";

/// A key imported with `softhsm2-util --import`, and its public key as openssl wrote it.
struct Imported {
    label: &'static str,
    id: &'static str,
    key_type: KeyType,
    public_pem: String,
}

impl Imported {
    /// `pkcs11:token=...;object=<label>?module-path=...&pin-source=file:...`
    fn uri(&self) -> String {
        format!(
            "{}&pin-source=file:{}",
            token().uri(&format!("object={}", self.label)),
            token().pin_file().display()
        )
    }
}

/// RSA-2048, P-256, P-384 and Ed25519 keys, imported once per test process. The RSA key is
/// the Snowflake connector vectors' fixed one (tests/data/snowflake/rsa_key.p8): generating one
/// costs more CPU than most tests here; the others openssl generates.
fn imported() -> &'static [Imported] {
    static KEYS: OnceLock<Vec<Imported>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let hsm = token();
        let rsa = Imported {
            label: "rsa",
            id: "01",
            key_type: KeyType::Rsa,
            public_pem: hsm.import_pkcs8(Path::new("tests/data/snowflake/rsa_key.p8"), "rsa", "01"),
        };
        let generated = [
            (
                "p256",
                "02",
                KeyType::P256,
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            ),
            (
                "p384",
                "03",
                KeyType::P384,
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            ),
            (
                "ed25519",
                "04",
                KeyType::Ed25519,
                &["-algorithm", "ed25519"],
            ),
        ]
        .into_iter()
        .map(|(label, id, key_type, genpkey)| Imported {
            label,
            id,
            key_type,
            public_pem: hsm.import(genpkey, label, id),
        });
        std::iter::once(rsa).chain(generated).collect()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn open(uri: &str) -> Arc<dyn RemoteSigner> {
    let key_ref: KeyRef = uri.parse().unwrap();
    key_ref.open(&OpenOptions::new()).await.unwrap()
}

/// Verifies `signature` over `message` with openssl and the PEM public key.
fn openssl_verifies(public_pem: &str, alg: Algorithm, message: &[u8], signature: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let (key, msg, sig) = (
        dir.path().join("key.pem"),
        dir.path().join("msg"),
        dir.path().join("sig"),
    );
    std::fs::write(&key, public_pem).unwrap();
    std::fs::write(&msg, message).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let digest = match alg {
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => "-sha256",
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => "-sha384",
        _ => "-sha512",
    };
    let mut args: Vec<String> = match alg {
        Algorithm::EdDSA => {
            std::fs::write(&sig, signature).unwrap();
            [
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                &path(&key),
                "-rawin",
            ]
            .map(String::from)
            .to_vec()
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            // openssl takes ECDSA signatures in DER.
            let der = remote_signer::Signature::new(alg, signature.to_vec())
                .to_der()
                .unwrap();
            std::fs::write(&sig, der).unwrap();
            ["dgst", digest, "-verify", &path(&key)]
                .map(String::from)
                .to_vec()
        }
        _ => {
            std::fs::write(&sig, signature).unwrap();
            ["dgst", digest, "-verify", &path(&key)]
                .map(String::from)
                .to_vec()
        }
    };
    if matches!(alg, Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512) {
        args.extend(
            [
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ]
            .map(String::from),
        );
    }
    if alg == Algorithm::EdDSA {
        args.extend(["-in".into(), path(&msg), "-sigfile".into(), path(&sig)]);
    } else {
        args.extend(["-signature".into(), path(&sig), path(&msg)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(&args);
}

#[test]
fn imported_keys_sign_every_algorithm_and_openssl_verifies() {
    let _serial = serial();
    let rt = runtime();
    for key in imported() {
        let signer = rt.block_on(open(&key.uri()));
        assert_eq!(signer.key_type(), key.key_type);
        assert_eq!(
            signer.public_key(),
            &PublicKey::from_pem(&key.public_pem).unwrap(),
            "{}: the public key read from the token is openssl's",
            key.label
        );
        assert!(
            signer.key_id().as_str().starts_with(&format!(
                "pkcs11:token={TOKEN};object={};id=%{}#",
                key.label, key.id
            )),
            "{}",
            signer.key_id()
        );
        for alg in key.key_type.algorithms() {
            let signature = rt.block_on(signer.sign(*alg, MESSAGE)).unwrap();
            assert_eq!(signature.algorithm(), *alg);
            openssl_verifies(&key.public_pem, *alg, MESSAGE, signature.as_bytes());
        }
        // Another family's algorithm is refused before the token is asked.
        let other = if key.key_type == KeyType::Rsa {
            Algorithm::ES256
        } else {
            Algorithm::RS256
        };
        let err = rt.block_on(signer.sign(other, MESSAGE)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Algorithm);
    }
}

#[test]
fn sixty_four_concurrent_signs_through_one_signer_all_verify() {
    let _serial = serial();
    let rt = runtime();
    for key in &imported()[..2] {
        let signer = rt.block_on(open(&key.uri()));
        let alg = signer.default_algorithm();
        let results = rt.block_on(async {
            let tasks: Vec<_> = (0..64u32)
                .map(|i| {
                    let signer = signer.clone();
                    tokio::spawn(async move {
                        let message = format!("message {i}");
                        let sig = signer.sign(alg, message.as_bytes()).await?;
                        Ok::<_, remote_signer::Error>((message, sig))
                    })
                })
                .collect();
            let mut out = Vec::new();
            for task in tasks {
                out.push(task.await.unwrap().unwrap());
            }
            out
        });
        assert_eq!(results.len(), 64);
        for (message, sig) in results {
            signer
                .public_key()
                .verify(alg, message.as_bytes(), sig.as_bytes())
                .unwrap();
        }
    }
}

#[test]
fn every_uri_form_selects_the_same_key() {
    let _serial = serial();
    let rt = runtime();
    let rsa = &imported()[0];
    let expected = PublicKey::from_pem(&rsa.public_pem).unwrap();
    let slots = token().util(&["--show-slots"]);
    let serial = slots
        .split("\nSlot ")
        .find(|slot| {
            slot.lines()
                .any(|l| l.trim() == format!("Label:            {TOKEN}"))
        })
        .and_then(|slot| {
            slot.lines()
                .find_map(|l| l.trim().strip_prefix("Serial number:"))
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("softhsm2-util --show-slots names no serial: {slots}"));
    let pin_source = format!("&pin-source=file:{}", token().pin_file().display());
    for path in [
        "object=rsa".to_string(),
        "id=%01".to_string(),
        "object=rsa;id=%01;type=private".to_string(),
        format!("serial={serial};id=%01"),
    ] {
        let uri = format!("{}{pin_source}", token().uri(&path));
        let signer = rt.block_on(open(&uri));
        assert_eq!(signer.public_key(), &expected, "{uri}");
    }
    // No token attribute at all: the only initialised token is used.
    let uri = format!("pkcs11:object=rsa?module-path={MODULE}{pin_source}");
    assert_eq!(rt.block_on(open(&uri)).public_key(), &expected);
    // The builder's module and PIN stand in for the URI's.
    let signer = rt
        .block_on(
            Pkcs11Signer::builder(&format!("pkcs11:token={TOKEN};object=rsa"))
                .module(MODULE)
                .pin(PIN)
                .sessions(2)
                .build(),
        )
        .unwrap();
    assert_eq!(signer.public_key(), &expected);
    assert_eq!(signer.uri().id(), Some(&[1u8][..]));
}

#[test]
fn errors_say_what_to_do_and_never_show_the_pin() {
    let _serial = serial();
    let rt = runtime();
    imported();
    let hsm = token();
    let wrong_pin = hsm.dir().join("wrong-pin");
    std::fs::write(&wrong_pin, "00000000\n").unwrap();
    softhsm::chmod(&wrong_pin, 0o600);
    let readable_pin = hsm.dir().join("readable-pin");
    std::fs::write(&readable_pin, format!("{PIN}\n")).unwrap();
    softhsm::chmod(&readable_pin, 0o644);
    let with_pin =
        |path: &str, pin: &Path| format!("{}&pin-source=file:{}", hsm.uri(path), pin.display());
    let good = hsm.pin_file();
    for (uri, kind, says) in [
        (
            with_pin("object=rsa", &wrong_pin),
            ErrorKind::Pin,
            "refused the PIN",
        ),
        (
            with_pin("object=absent", &good),
            ErrorKind::KeyNotFound,
            "no private key",
        ),
        (
            hsm.uri("object=rsa"),
            ErrorKind::Pin,
            "pin-source=file:PATH",
        ),
        (
            with_pin("object=rsa", &readable_pin),
            ErrorKind::InsecureKeyFile,
            "chmod 600",
        ),
        (
            format!("pkcs11:token={TOKEN};object=rsa?module-path=/nonexistent/libnone.so"),
            ErrorKind::Config,
            "/nonexistent/libnone.so",
        ),
        (
            format!("pkcs11:token={TOKEN};object=rsa?module-path=/etc/hostname"),
            ErrorKind::Config,
            "cannot load PKCS#11 module /etc/hostname",
        ),
        (
            with_pin("object=rsa", &good).replace(&format!("token={TOKEN}"), "token=elsewhere"),
            ErrorKind::Unavailable,
            "not present",
        ),
    ] {
        let err = rt
            .block_on(Pkcs11Signer::builder(&uri).build())
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert_eq!(err.kind(), kind, "{uri}: {text}");
        assert!(text.contains(says), "{uri}: {text}");
        assert!(!text.contains(PIN), "{text}");
    }
    let signer = rt
        .block_on(
            Pkcs11Signer::builder(&with_pin("object=rsa", &good))
                .pin(PIN)
                .build(),
        )
        .unwrap();
    let shown = format!(
        "{signer:?} {:?}",
        Pkcs11Signer::builder("pkcs11:id=%01").pin(PIN)
    );
    assert!(!shown.contains(PIN), "{shown}");
    // A PIN in the URI is refused at parse time, and not echoed.
    let err = "pkcs11:token=t;object=a?pin-value=1234"
        .parse::<KeyRef>()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyRef);
    assert!(!err.to_string().contains("1234"));
}

#[test]
fn generated_keys_are_sensitive_never_extractable_and_reopen_by_their_uri() {
    let _serial = serial();
    let rt = runtime();
    let hsm = token();
    for (label, spec, key_type) in [
        ("gen-p256", KeySpec::P256, KeyType::P256),
        ("gen-ed25519", KeySpec::Ed25519, KeyType::Ed25519),
        ("gen-rsa2048", KeySpec::Rsa(2048), KeyType::Rsa),
    ] {
        let signer = rt
            .block_on(
                Pkcs11Signer::builder(&hsm.uri(&format!("object={label}")))
                    .pin(PIN)
                    .generate(spec),
            )
            .unwrap();
        assert_eq!(signer.key_type(), key_type);
        let uri = signer.uri().to_string();
        assert!(uri.contains(&format!("object={label};id=%")), "{uri}");
        assert!(uri.contains(&format!("module-path={MODULE}")), "{uri}");
        assert_eq!(signer.uri().id().map(<[u8]>::len), Some(16));
        let reopened = rt
            .block_on(Pkcs11Signer::builder(&uri).pin(PIN).build())
            .unwrap();
        assert_eq!(reopened.public_key(), signer.public_key());
        let sig = rt
            .block_on(reopened.sign(key_type.default_algorithm(), MESSAGE))
            .unwrap();
        openssl_verifies(
            &signer.public_key().to_pem(),
            key_type.default_algorithm(),
            MESSAGE,
            sig.as_bytes(),
        );
        // The same label again is refused.
        let err = rt
            .block_on(
                Pkcs11Signer::builder(&hsm.uri(&format!("object={label}")))
                    .pin(PIN)
                    .generate(spec),
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyRef);
        assert!(err.to_string().contains("already exists"), "{err}");
    }
    // pkcs11-tool (opensc) reads the flags back independently.
    // A newline in front, so the first object (listed in no fixed order) splits like the rest.
    let objects = format!("\n{}", hsm.list_objects());
    for label in ["gen-p256", "gen-ed25519", "gen-rsa2048"] {
        // One object per unindented line and the indented lines below it.
        let block = objects
            .split("\nP")
            .find(|b| {
                b.starts_with("rivate Key Object") && b.contains(&format!("label:      {label}\n"))
            })
            .unwrap_or_else(|| panic!("{label} not listed: {objects}"));
        assert!(
            block.contains("sensitive, always sensitive, never extractable"),
            "{block}"
        );
    }
    let err = rt
        .block_on(
            Pkcs11Signer::builder(&hsm.uri("object=gen-small"))
                .pin(PIN)
                .generate(KeySpec::Rsa(1024)),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey);
}

// ---- the command-line tool ----

fn cli(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("SOFTHSM2_CONF", token().conf())
        .env_remove("REMOTE_SIGNER_PKCS11_PIN")
        .env_remove("REMOTE_SIGNER_PKCS11_MODULE")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn cli_ok(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> String {
    let out = cli(args, stdin, env);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cli_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cli(args, b"", env);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains(PIN), "{err}");
    err
}

#[test]
fn cli_public_key_fingerprint_and_sign_agree_with_openssl_and_ssh_keygen() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for key in imported() {
        let uri = key.uri();
        let pem = cli_ok(&["public-key", "--key", &uri], b"", &[]);
        assert_eq!(pem, key.public_pem, "{}", key.label);
        let der = cli(&["public-key", "--key", &uri, "--format", "der"], b"", &[]).stdout;
        assert_eq!(
            PublicKey::from_spki_der(&der).unwrap().to_pem(),
            key.public_pem
        );
        let jwk: Value = serde_json::from_str(&cli_ok(
            &["public-key", "--key", &uri, "--format", "jwk"],
            b"",
            &[],
        ))
        .unwrap();
        assert!(jwk["kty"].is_string(), "{jwk}");
        let line = cli_ok(
            &["public-key", "--key", &uri, "--format", "openssh"],
            b"",
            &[],
        );
        let pub_file = dir.path().join(format!("{}.pub", key.label));
        std::fs::write(&pub_file, &line).unwrap();
        let keygen = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(&pub_file)
            .output()
            .unwrap();
        assert!(keygen.status.success());
        let fingerprint = cli_ok(
            &["fingerprint", "--key", &uri, "--format", "openssh"],
            b"",
            &[],
        );
        assert!(
            String::from_utf8_lossy(&keygen.stdout).contains(fingerprint.trim()),
            "{fingerprint}"
        );
        if key.key_type == KeyType::Rsa {
            let snowflake = cli_ok(&["fingerprint", "--key", &uri], b"", &[]);
            assert!(snowflake.starts_with("SHA256:"), "{snowflake}");
        }
        for alg in key.key_type.algorithms() {
            let sig = cli_ok(
                &["sign", "--key", &uri, "--alg", alg.as_str()],
                MESSAGE,
                &[],
            );
            let bytes = base64_url(sig.trim());
            openssl_verifies(&key.public_pem, *alg, MESSAGE, &bytes);
        }
    }
}

fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

#[test]
fn cli_takes_the_module_and_pin_from_the_environment() {
    let _serial = serial();
    imported();
    let uri = format!("pkcs11:token={TOKEN};object=p256");
    let pem = cli_ok(
        &["public-key", "--key", &uri],
        b"",
        &[
            ("REMOTE_SIGNER_PKCS11_MODULE", MODULE),
            ("REMOTE_SIGNER_PKCS11_PIN", PIN),
        ],
    );
    assert_eq!(pem, imported()[1].public_pem);
    let err = cli_fails(
        &["public-key", "--key", &uri],
        &[("REMOTE_SIGNER_PKCS11_PIN", PIN)],
    );
    assert!(err.contains("REMOTE_SIGNER_PKCS11_MODULE"), "{err}");
    let err = cli_fails(
        &["public-key", "--key", &uri],
        &[
            ("REMOTE_SIGNER_PKCS11_MODULE", MODULE),
            ("REMOTE_SIGNER_PKCS11_PIN", "00000000"),
        ],
    );
    assert!(err.contains("PIN not accepted"), "{err}");
    assert!(!err.contains("00000000"), "{err}");
    let err = cli_fails(
        &["public-key", "--key", &format!("{uri}?pin-value={PIN}")],
        &[],
    );
    assert!(err.contains("pin-source=file:PATH"), "{err}");
    assert!(err.contains("REMOTE_SIGNER_PKCS11_PIN"), "{err}");
    let err = cli_fails(
        &[
            "public-key",
            "--key",
            &format!("{uri}?module-path=/nonexistent/mod.so"),
        ],
        &[("REMOTE_SIGNER_PKCS11_PIN", PIN)],
    );
    assert!(err.contains("/nonexistent/mod.so"), "{err}");
    let err = cli_fails(
        &[
            "public-key",
            "--key",
            &format!("pkcs11:token={TOKEN};object=absent"),
        ],
        &[
            ("REMOTE_SIGNER_PKCS11_MODULE", MODULE),
            ("REMOTE_SIGNER_PKCS11_PIN", PIN),
        ],
    );
    assert!(err.contains("key not found"), "{err}");
}

#[test]
fn cli_generate_creates_the_key_on_the_token_and_prints_its_keyref() {
    let _serial = serial();
    let hsm = token();
    let env = [("REMOTE_SIGNER_PKCS11_PIN", PIN)];
    let out = cli_ok(
        &[
            "generate",
            "--type",
            "rsa",
            "--out",
            &hsm.uri("object=cli-rsa"),
        ],
        b"",
        &env,
    );
    let keyref = out.trim();
    assert!(keyref.starts_with(&format!("pkcs11:token={TOKEN};object=cli-rsa;id=%")));
    assert!(!keyref.contains(PIN) && !keyref.contains("pin"), "{keyref}");
    let pem = cli_ok(&["public-key", "--key", keyref], b"", &env);
    assert_eq!(PublicKey::from_pem(&pem).unwrap().rsa_bits(), Some(3072));
    let out = cli_ok(
        &[
            "generate",
            "--type",
            "rsa",
            "--bits",
            "2048",
            "--out",
            &hsm.uri("object=cli-rsa2048"),
        ],
        b"",
        &env,
    );
    let pem = cli_ok(&["public-key", "--key", out.trim()], b"", &env);
    assert_eq!(PublicKey::from_pem(&pem).unwrap().rsa_bits(), Some(2048));
    let out = cli_ok(
        &[
            "generate",
            "--type",
            "p384",
            "--out",
            &hsm.uri("object=cli-p384"),
        ],
        b"",
        &env,
    );
    let sig = cli_ok(&["sign", "--key", out.trim()], MESSAGE, &env);
    let pem = cli_ok(&["public-key", "--key", out.trim()], b"", &env);
    openssl_verifies(&pem, Algorithm::ES384, MESSAGE, &base64_url(sig.trim()));
    let err = cli_fails(
        &[
            "generate",
            "--type",
            "rsa",
            "--out",
            &hsm.uri("object=cli-rsa"),
        ],
        &env,
    );
    assert!(err.contains("already exists"), "{err}");
    let err = cli_fails(
        &[
            "generate",
            "--type",
            "p256",
            "--bits",
            "2048",
            "--out",
            &hsm.uri("object=x"),
        ],
        &env,
    );
    assert!(err.contains("--bits is for RSA"), "{err}");
}

#[test]
fn cli_cookies_and_snowflake_jwts_verify_with_jsonwebtoken() {
    let _serial = serial();
    let rsa = &imported()[0];
    let p256 = &imported()[1];
    for key in [rsa, p256] {
        let decoding = match key.key_type {
            KeyType::Rsa => jsonwebtoken::DecodingKey::from_rsa_pem(key.public_pem.as_bytes()),
            _ => jsonwebtoken::DecodingKey::from_ec_pem(key.public_pem.as_bytes()),
        }
        .unwrap();
        let alg = if key.key_type == KeyType::Rsa {
            jsonwebtoken::Algorithm::RS256
        } else {
            jsonwebtoken::Algorithm::ES256
        };
        let token = cli_ok(
            &[
                "cookie",
                "sign",
                "--key",
                &key.uri(),
                "--purpose",
                "session",
                "--direct",
            ],
            br#"{"user":"carol"}"#,
            &[],
        );
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_audience(&["session"]);
        let data = jsonwebtoken::decode::<Value>(token.trim(), &decoding, &validation).unwrap();
        assert_eq!(data.claims["user"], "carol");

        // Surrogate mode: the CLI's own verifier, trusting the public key openssl wrote.
        let token = cli_ok(
            &[
                "cookie",
                "sign",
                "--key",
                &key.uri(),
                "--purpose",
                "session",
            ],
            br#"{"user":"dave"}"#,
            &[],
        );
        let public = token_dir().join(format!("{}.pub.pem", key.label));
        std::fs::write(&public, &key.public_pem).unwrap();
        let claims: Value = serde_json::from_str(&cli_ok(
            &[
                "cookie",
                "verify",
                "--trust",
                public.to_str().unwrap(),
                "--purpose",
                "session",
            ],
            token.as_bytes(),
            &[],
        ))
        .unwrap();
        assert_eq!(claims["user"], "dave");
    }
    let jwt = cli_ok(
        &[
            "snowflake",
            "jwt",
            "--key",
            &rsa.uri(),
            "--account",
            "myorg-acct",
            "--user",
            "svc",
        ],
        b"",
        &[],
    );
    let decoding = jsonwebtoken::DecodingKey::from_rsa_pem(rsa.public_pem.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data = jsonwebtoken::decode::<Value>(jwt.trim(), &decoding, &validation).unwrap();
    let fingerprint = PublicKey::from_pem(&rsa.public_pem)
        .unwrap()
        .snowflake_fingerprint();
    assert_eq!(data.claims["iss"], format!("MYORG-ACCT.SVC.{fingerprint}"));
}

fn token_dir() -> &'static Path {
    token().dir()
}

// ---- the ssh-agent, with real OpenSSH ----

#[test]
fn token_keys_log_in_to_sshd_and_sign_with_ssh_keygen_through_the_agent() {
    let _serial = serial();
    let rt = runtime();
    let keys: Vec<Arc<dyn RemoteSigner>> = [0, 1, 3]
        .iter()
        .map(|&i| rt.block_on(open(&imported()[i].uri())))
        .collect();
    let mut builder = Agent::builder();
    for key in &keys {
        builder = builder.key_with_comment(Arc::clone(key), "token key");
    }
    let agent = RunningAgent::start(builder.build().unwrap());
    let lines: Vec<String> = keys
        .iter()
        .map(|k| k.public_key().to_openssh("").unwrap())
        .collect();
    assert_eq!(agent.list().len(), 3);
    let sshd = Sshd::start(&lines, &[]);
    for algorithm in [
        "rsa-sha2-256",
        "rsa-sha2-512",
        "ecdsa-sha2-nistp256",
        "ssh-ed25519",
    ] {
        sshd.assert_login(
            &agent.socket,
            &[&format!("PubkeyAcceptedAlgorithms={algorithm}")],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    for line in &lines {
        let public = dir.path().join("key.pub");
        let message = dir.path().join("message.txt");
        std::fs::write(&public, format!("{line}\n")).unwrap();
        std::fs::write(&message, MESSAGE).unwrap();
        let out = Command::new("ssh-keygen")
            .env("SSH_AUTH_SOCK", &agent.socket)
            .args(["-Y", "sign", "-n", "file", "-f"])
            .arg(&public)
            .arg(&message)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let allowed = dir.path().join("allowed_signers");
        std::fs::write(&allowed, format!("signer@example.com {line}\n")).unwrap();
        let out = Command::new("ssh-keygen")
            .args([
                "-Y",
                "verify",
                "-n",
                "file",
                "-I",
                "signer@example.com",
                "-f",
            ])
            .arg(&allowed)
            .arg("-s")
            .arg(dir.path().join("message.txt.sig"))
            .stdin(std::fs::File::open(&message).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(dir.path().join("message.txt.sig")).unwrap();
    }
}

#[test]
fn a_token_key_as_certificate_authority_lets_sshd_trust_the_surrogate() {
    let _serial = serial();
    let rt = runtime();
    let ca = rt.block_on(open(&imported()[0].uri()));
    let agent = RunningAgent::start(
        Agent::builder()
            .certificate_authority(
                Arc::clone(&ca),
                CertificateOptions::new([current_user()]).validity(Duration::from_secs(600)),
            )
            .build()
            .unwrap(),
    );
    let listed = agent.list();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].starts_with("ssh-ed25519-cert-v01@openssh.com "));
    let sshd = Sshd::start(&[], &[ca.public_key().to_openssh("").unwrap()]);
    sshd.assert_login(&agent.socket, &[]);
}

// ---- keys that must be refused ----

/// Writes `pem` to the token with `pkcs11-tool --write-object` as `kind` (privkey, pubkey).
fn write_object(pem: &str, kind: &str, label: &str, id: &str) {
    let file = token().dir().join(format!("{label}-{kind}.pem"));
    std::fs::write(&file, pem).unwrap();
    let out = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", token().conf())
        .args([
            "--module",
            MODULE,
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            PIN,
        ])
        .args(["--write-object", file.to_str().unwrap(), "--type", kind])
        .args(["--label", label, "--id", id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pkcs11-tool --write-object: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(file).unwrap();
}

#[test]
fn a_private_key_whose_public_object_belongs_to_another_key_is_refused() {
    let _serial = serial();
    let rt = runtime();
    let (rsa, p256) = (&imported()[0], &imported()[1]);
    // Each private key's public object is another key of its type: the imported one.
    for (label, id, genpkey, other) in [
        (
            "mismatch-rsa",
            "a1",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            rsa,
        ),
        (
            "mismatch-p256",
            "a2",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            p256,
        ),
    ] {
        let private = String::from_utf8(openssl(&[&["genpkey"], genpkey].concat())).unwrap();
        write_object(&private, "privkey", label, id);
        write_object(&other.public_pem, "pubkey", label, id);
        let uri = format!(
            "{}&pin-source=file:{}",
            token().uri(&format!("object={label}")),
            token().pin_file().display()
        );
        let err = rt
            .block_on(Pkcs11Signer::builder(&uri).build())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature, "{label}: {err}");
        assert!(err.to_string().contains("does not match"), "{err}");
    }
}

#[test]
fn a_key_that_needs_a_login_per_signature_gets_a_clear_error_on_softhsm() {
    let _serial = serial();
    // SoftHSM2 enforces CKA_ALWAYS_AUTHENTICATE but signs raw mechanisms in one part only,
    // and the binding offers no C_Sign after a separate C_SignInit: say so, do not hang or
    // return a bare CKR code.
    let rt = runtime();
    imported();
    let out = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", token().conf())
        .args([
            "--module",
            MODULE,
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            PIN,
        ])
        .args([
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--always-auth",
        ])
        .args(["--label", "always-auth", "--id", "b1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uri = format!(
        "{}&pin-source=file:{}",
        token().uri("object=always-auth"),
        token().pin_file().display()
    );
    let err = rt
        .block_on(Pkcs11Signer::builder(&uri).build())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey, "{err}");
    assert!(err.to_string().contains("CKA_ALWAYS_AUTHENTICATE"), "{err}");
}
