//! The AWS KMS backend through the official SDK against the project's KMS emulator
//! (crates/kms-emulator): configured only by the standard AWS environment, signatures checked by
//! openssl against the public key the emulator holds, every error case for its kind and text,
//! operation counts read from the emulator.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kms_emulator::{ACCESS_KEY_ID, ACCOUNT, Emulator, Fault, KeySpec, KeyState, SECRET_ACCESS_KEY};
use remote_signer::backend::aws::{AsyncSleep, KmsSigner, KmsSignerBuilder, RetryPolicy, Sleep};
use remote_signer::{Algorithm, ErrorKind, KeyRef, OpenOptions, RemoteSigner};
use serde_json::{Value, json};

/// The keys live here; the environment says another region, which the ARN must override.
const REGION: &str = "eu-west-1";
const ENV_REGION: &str = "us-west-2";
const MESSAGE: &[u8] = b"a message that never leaves the process";

/// One emulator for the whole file, reached through the standard variables only. Every test
/// makes keys of its own, and faults, latency and counts are per key, so tests do not meet.
fn kms() -> &'static Emulator {
    static KMS: OnceLock<Emulator> = OnceLock::new();
    KMS.get_or_init(|| {
        let emu = Emulator::start(17);
        // SAFETY: changing the environment is unsound only while another thread reads it
        // without std's lock (C code calling `getenv`); Rust readers, the AWS SDK included,
        // take that lock. This runs once, before any test here opens a KMS key, but other
        // tests of the binary may be running on other threads: a risk this test binary takes
        // to check that the standard variables alone configure the SDK, as in a deployment
        // (the emulator's port is known only now). The library and the CLI never do this.
        for (name, value) in standard_env(&emu) {
            unsafe { std::env::set_var(name, value) };
        }
        for name in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_DEFAULT_REGION",
        ] {
            // SAFETY: as for `set_var` above.
            unsafe { std::env::remove_var(name) };
        }
        emu
    })
}

/// The standard AWS environment that points the SDK at `emu`, with every other source of
/// credentials (profiles, IMDS) switched off, so nothing can leave the machine.
fn standard_env(emu: &Emulator) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_KMS", emu.endpoint()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()),
        ("AWS_REGION", ENV_REGION.to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("AWS_CONFIG_FILE", "/nonexistent/aws/config".to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws/credentials".to_string(),
        ),
    ]
}

fn key(spec: KeySpec) -> String {
    kms().create_key(REGION, spec, "SIGN_VERIFY")
}

async fn open(arn: &str) -> Arc<dyn RemoteSigner> {
    let key_ref: KeyRef = arn.parse().unwrap();
    key_ref.open(&OpenOptions::new()).await.unwrap()
}

/// Waits between retries return at once (and are recorded); waits of a second or more are the
/// SDK's timeouts, which then never fire.
#[derive(Debug, Default, Clone)]
struct RecordedSleep(Arc<Mutex<Vec<Duration>>>);

impl AsyncSleep for RecordedSleep {
    fn sleep(&self, duration: Duration) -> Sleep {
        if duration >= Duration::from_secs(1) {
            return Sleep::new(std::future::pending());
        }
        self.0.lock().unwrap().push(duration);
        Sleep::new(std::future::ready(()))
    }
}

fn quick(arn: &str, attempts: u32) -> (KmsSignerBuilder, RecordedSleep) {
    kms();
    let sleep = RecordedSleep::default();
    let builder = KmsSigner::builder(arn)
        .retry(
            RetryPolicy::new()
                .max_attempts(attempts)
                .backoff(Duration::from_millis(50), Duration::from_millis(400)),
        )
        .sleep_impl(sleep.clone());
    (builder, sleep)
}

fn openssl_verifies(dir: &Path, der_key: &[u8], sig: &remote_signer::Signature) -> bool {
    let alg = sig.algorithm();
    std::fs::write(dir.join("pub.der"), der_key).unwrap();
    std::fs::write(dir.join("msg"), MESSAGE).unwrap();
    std::fs::write(dir.join("sig"), sig.to_der().unwrap()).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir);
    if alg == Algorithm::EdDSA {
        cmd.args([
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.der", "-keyform", "DER", "-rawin",
            "-in", "msg", "-sigfile", "sig",
        ]);
    } else {
        let digest = match alg.hash().unwrap() {
            remote_signer::key::Hash::Sha256 => "-sha256",
            remote_signer::key::Hash::Sha384 => "-sha384",
            _ => "-sha512",
        };
        cmd.args([
            "dgst",
            digest,
            "-keyform",
            "DER",
            "-verify",
            "pub.der",
            "-signature",
            "sig",
        ]);
        if alg.as_str().starts_with("PS") {
            cmd.args([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ]);
        }
        cmd.arg("msg");
    }
    let out = cmd.output().expect("run openssl");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified")
}

#[tokio::test]
async fn every_algorithm_signs_through_the_standard_environment_and_openssl_verifies() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, algorithms) in [
        (
            KeySpec::Rsa(2048),
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ][..],
        ),
        (KeySpec::P256, &[Algorithm::ES256][..]),
        (KeySpec::P384, &[Algorithm::ES384][..]),
        (KeySpec::K256, &[Algorithm::ES256K][..]),
        (KeySpec::Ed25519, &[Algorithm::EdDSA][..]),
    ] {
        let arn = key(spec);
        let signer = open(&arn).await;
        // The ARN's region won over AWS_REGION (the emulator refuses ARNs of other regions).
        assert_eq!(signer.key_id().as_str(), arn);
        let der = kms().public_key_der(&arn).unwrap();
        assert_eq!(signer.public_key().to_spki_der(), der);
        for &alg in algorithms {
            let sig = signer.sign(alg, MESSAGE).await.unwrap();
            assert!(openssl_verifies(dir.path(), &der, &sig), "{spec:?} {alg}");
            signer
                .public_key()
                .verify(alg, MESSAGE, sig.as_bytes())
                .unwrap();
            if matches!(alg, Algorithm::ES256 | Algorithm::ES384) {
                // JOSE form r||s, and the SSH form converts from it.
                assert_eq!(
                    sig.as_bytes().len(),
                    if alg == Algorithm::ES256 { 64 } else { 96 }
                );
                sig.to_ssh().unwrap();
            }
        }
        assert_eq!(kms().count(&arn, "GetPublicKey"), 1, "{spec:?}");
        assert_eq!(
            kms().count(&arn, "Sign"),
            algorithms.len() as u64,
            "{spec:?}"
        );
    }
}

#[tokio::test]
async fn only_the_digest_leaves_the_process_except_for_pure_ed25519() {
    let arn = key(KeySpec::P256);
    let signer = open(&arn).await;
    let long = vec![7u8; 10_000];
    signer.sign(Algorithm::ES256, &long).await.unwrap();
    assert_eq!(kms().last_sign(&arn), Some(("DIGEST".to_string(), 32)));

    let arn = key(KeySpec::Rsa(2048));
    let signer = open(&arn).await;
    signer.sign(Algorithm::PS512, &long).await.unwrap();
    assert_eq!(kms().last_sign(&arn), Some(("DIGEST".to_string(), 64)));

    let arn = key(KeySpec::Ed25519);
    let signer = open(&arn).await;
    signer.sign(Algorithm::EdDSA, &[1u8; 4096]).await.unwrap();
    assert_eq!(kms().last_sign(&arn), Some(("RAW".to_string(), 4096)));
    let err = signer
        .sign(Algorithm::EdDSA, &[1u8; 4097])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("4096"), "{err}");
    assert_eq!(
        kms().count(&arn, "Sign"),
        1,
        "a too-long message is refused locally"
    );
}

#[tokio::test]
async fn an_alias_is_resolved_once_and_its_key_pinned() {
    let first = key(KeySpec::P256);
    let second = key(KeySpec::P256);
    let alias = format!("alias/pinned-{}", &first[first.len() - 12..]);
    kms().set_alias(REGION, &alias, &first);
    let alias_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:{alias}");
    let signer = open(&alias_arn).await;
    assert_eq!(signer.key_id().as_str(), first);

    kms().set_alias(REGION, &alias, &second);
    let sig = signer.sign(Algorithm::ES256, MESSAGE).await.unwrap();
    let first_key =
        remote_signer::PublicKey::from_spki_der(&kms().public_key_der(&first).unwrap()).unwrap();
    first_key
        .verify(Algorithm::ES256, MESSAGE, sig.as_bytes())
        .unwrap();
    assert_eq!(kms().count(&first, "Sign"), 1);
    assert_eq!(
        kms().count(&second, "Sign"),
        0,
        "a retargeted alias must not move the signer"
    );
    assert_eq!(kms().count(&first, "GetPublicKey"), 1);
}

#[tokio::test]
async fn keys_in_the_china_and_govcloud_partitions_open_by_their_arns() {
    for region in ["cn-north-1", "us-gov-west-1"] {
        let arn = kms().create_key(region, KeySpec::P256, "SIGN_VERIFY");
        assert!(arn.starts_with(if region.starts_with("cn") {
            "arn:aws-cn:"
        } else {
            "arn:aws-us-gov:"
        }));
        let signer = open(&arn).await;
        assert_eq!(signer.key_id().as_str(), arn);
        signer.sign(Algorithm::ES256, MESSAGE).await.unwrap();
    }
}

#[tokio::test]
async fn keys_that_cannot_sign_are_refused_at_open() {
    kms();
    let open_err =
        |arn: String| async move { KmsSigner::open(&arn).await.map(|_| ()).unwrap_err() };
    let encrypting = kms().create_key(REGION, KeySpec::Rsa(2048), "ENCRYPT_DECRYPT");
    let err = open_err(encrypting).await;
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey, "{err}");
    assert!(err.to_string().contains("ENCRYPT_DECRYPT"), "{err}");

    let symmetric = kms().create_key(REGION, KeySpec::SymmetricDefault, "ENCRYPT_DECRYPT");
    let err = open_err(symmetric).await;
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey, "{err}");

    let disabled = key(KeySpec::P256);
    kms().set_state(&disabled, KeyState::Disabled);
    let err = open_err(disabled.clone()).await;
    assert_eq!(err.kind(), ErrorKind::KeyDisabled, "{err}");
    assert!(err.to_string().contains("DisabledException"), "{err}");

    let deleting = key(KeySpec::P256);
    kms().set_state(&deleting, KeyState::PendingDeletion);
    let err = open_err(deleting).await;
    assert_eq!(err.kind(), ErrorKind::KeyDisabled, "{err}");
    assert!(
        err.to_string().contains("KMSInvalidStateException"),
        "{err}"
    );

    let missing =
        format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-4000-8000-000000000000");
    let err = open_err(missing).await;
    assert_eq!(err.kind(), ErrorKind::KeyNotFound, "{err}");
    let err = open_err(format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/nobody")).await;
    assert_eq!(err.kind(), ErrorKind::KeyNotFound, "{err}");

    let err = open_err("arn:aws:kms:eu-west-1:111122223333:key/nope".into()).await;
    assert_eq!(err.kind(), ErrorKind::KeyRef, "{err}");
}

#[tokio::test]
async fn an_algorithm_outside_the_key_is_refused_locally() {
    let arn = key(KeySpec::P256);
    let signer = open(&arn).await;
    for alg in [Algorithm::RS256, Algorithm::ES384, Algorithm::EdDSA] {
        assert_eq!(
            signer.sign(alg, MESSAGE).await.unwrap_err().kind(),
            ErrorKind::Algorithm
        );
    }
    assert_eq!(kms().count(&arn, "Sign"), 0);
}

#[tokio::test]
async fn access_denied_names_the_refused_action_and_the_request_id_only() {
    let arn = key(KeySpec::P256);
    kms().deny(&arn, "kms:GetPublicKey");
    let err = KmsSigner::open(&arn).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(
        text.contains("kms:GetPublicKey") && text.contains("AccessDeniedException"),
        "{text}"
    );
    assert!(text.contains("request id "), "{text}");
    assert!(
        !text.contains("not authorized to perform"),
        "the service's message leaked: {text}"
    );

    let arn = key(KeySpec::P256);
    let signer = open(&arn).await;
    kms().deny(&arn, "kms:Sign");
    let err = signer.sign(Algorithm::ES256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("kms:Sign was refused"), "{err}");

    // Disabled after open: the next sign says so.
    let arn = key(KeySpec::P256);
    let signer = open(&arn).await;
    kms().set_state(&arn, KeyState::Disabled);
    let err = signer.sign(Algorithm::ES256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyDisabled, "{err}");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_with_jittered_backoff_within_the_budget() {
    let arn = key(KeySpec::P256);
    let (builder, sleep) = quick(&arn, 4);
    let signer = builder.build().await.unwrap();
    kms().fail_next(&arn, "Sign", 1, Fault::Throttling);
    kms().fail_next(&arn, "Sign", 1, Fault::Internal);
    kms().fail_next(&arn, "Sign", 1, Fault::DependencyTimeout);
    signer.sign(Algorithm::ES256, MESSAGE).await.unwrap();
    assert_eq!(kms().count(&arn, "Sign"), 4);
    let stats = signer.stats().sign;
    assert_eq!(
        (stats.attempts, stats.retries, stats.succeeded, stats.failed),
        (4, 3, 1, 0)
    );
    let waits = sleep.0.lock().unwrap().clone();
    assert_eq!(waits.len(), 3, "{waits:?}");
    // Full jitter: each wait is drawn below its exponential bound, never above the maximum.
    for (i, wait) in waits.iter().enumerate() {
        let bound = Duration::from_millis(50 * (1 << i)).min(Duration::from_millis(400));
        assert!(*wait <= bound, "wait {i} was {wait:?}, bound {bound:?}");
    }

    // A storm longer than the budget ends in the fault's kind after exactly the allowed attempts.
    for (fault, kind) in [
        (Fault::Throttling, ErrorKind::Throttled),
        (Fault::Internal, ErrorKind::Unavailable),
        (Fault::DependencyTimeout, ErrorKind::Unavailable),
        (Fault::BadGateway, ErrorKind::Unavailable),
    ] {
        let arn = key(KeySpec::P256);
        let (builder, _) = quick(&arn, 3);
        let signer = builder.build().await.unwrap();
        kms().fail_next(&arn, "Sign", 10, fault);
        let err = signer.sign(Algorithm::ES256, MESSAGE).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{fault:?}: {err}");
        assert!(err.to_string().contains("request id "), "{err}");
        assert!(!err.to_string().contains("<html>"), "{err}");
        assert_eq!(kms().count(&arn, "Sign"), 3, "{fault:?}");
        let stats = signer.stats().sign;
        assert_eq!(
            (stats.attempts, stats.retries, stats.failed),
            (3, 2, 1),
            "{fault:?}"
        );
    }

    // Failures at open are retried the same way.
    let arn = key(KeySpec::P256);
    kms().fail_next(&arn, "GetPublicKey", 2, Fault::Throttling);
    let (builder, _) = quick(&arn, 3);
    let signer = builder.build().await.unwrap();
    assert_eq!(signer.stats().get_key.attempts, 3);
}

#[tokio::test]
async fn replies_slower_than_the_attempt_timeout_are_a_timeout() {
    let arn = key(KeySpec::P256);
    kms();
    let signer = KmsSigner::builder(&arn)
        .retry(
            RetryPolicy::new()
                .max_attempts(2)
                .backoff(Duration::from_millis(1), Duration::from_millis(1))
                .attempt_timeout(Duration::from_millis(200)),
        )
        .build()
        .await
        .unwrap();
    kms().set_latency(&arn, "Sign", Duration::from_secs(2));
    let err = signer.sign(Algorithm::ES256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(signer.stats().sign.timed_out, 1);
}

#[tokio::test]
async fn a_tampered_signature_is_caught_before_it_is_returned() {
    let arn = key(KeySpec::Rsa(2048));
    let signer = open(&arn).await;
    kms().corrupt_signatures(&arn);
    for alg in [Algorithm::RS256, Algorithm::PS256] {
        let err = signer.sign(alg, MESSAGE).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature, "{err}");
    }
    let arn = key(KeySpec::P384);
    let signer = open(&arn).await;
    kms().corrupt_signatures(&arn);
    let err = signer.sign(Algorithm::ES384, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature, "{err}");
}

/// Cookies, Snowflake tokens and agent certificates cost what they cost with Key Vault: one
/// managed signature per period (surrogates, token cache), one `GetPublicKey` per open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surrogate_cookie_snowflake_and_agent_paths_cost_one_managed_operation() {
    use remote_signer::cookie::{SessionSigner, SessionVerifier, SigningMode};
    use remote_signer::snowflake::{KeyPairAuth, SqlApiTokens};
    use remote_signer::ssh::{Agent, CertificateOptions};
    use remote_signer::surrogate::TrustedKey;

    // Session cookies on surrogates: one Sign for any number of cookies.
    let arn = key(KeySpec::P256);
    let managed = open(&arn).await;
    let cookies = SessionSigner::new(managed.clone(), "session").unwrap();
    let verifier = SessionVerifier::new([TrustedKey::from_signer(&*managed)], "session");
    for i in 0..20 {
        let token = cookies.sign(&json!({"user": i})).await.unwrap();
        verifier.verify(&token).unwrap();
    }
    assert_eq!(kms().count(&arn, "Sign"), 1);
    assert_eq!(kms().count(&arn, "GetPublicKey"), 1);

    // Direct cookies: one Sign each, as with Key Vault.
    let direct = SessionSigner::builder(managed.clone(), "session")
        .mode(SigningMode::Direct)
        .build()
        .unwrap();
    for i in 0..3 {
        let token = direct.sign(&json!({"user": i})).await.unwrap();
        verifier.verify(&token).unwrap();
    }
    assert_eq!(kms().count(&arn, "Sign"), 4);

    // Snowflake SQL API tokens: cached, one Sign.
    let arn = key(KeySpec::Rsa(2048));
    let managed = open(&arn).await;
    let tokens = SqlApiTokens::new(KeyPairAuth::new(managed, "myorg-account", "user").unwrap());
    let first = tokens.bearer_token().await.unwrap();
    for _ in 0..10 {
        assert_eq!(
            tokens.bearer_token().await.unwrap().as_str(),
            first.as_str()
        );
    }
    assert_eq!(kms().count(&arn, "Sign"), 1);

    // The agent as a certificate authority: one Sign per certificate, none per listing.
    let arn = key(KeySpec::P256);
    let ca = open(&arn).await;
    let agent = Agent::builder()
        .certificate_authority(ca, CertificateOptions::new(["deploy"]))
        .build()
        .unwrap();
    agent.renew_certificates().await.unwrap();
    for _ in 0..3 {
        // SSH_AGENTC_REQUEST_IDENTITIES, answered by SSH_AGENT_IDENTITIES_ANSWER with one key.
        let reply = agent.respond(&[11]).await;
        assert_eq!(&reply[..5], &[12, 0, 0, 0, 1]);
    }
    assert_eq!(kms().count(&arn, "Sign"), 1);
    assert_eq!(kms().count(&arn, "GetPublicKey"), 1);
}

// ---- The CLI, configured only by the standard environment ----

fn cli(env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_remote-signer"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[test]
fn the_cli_signs_with_key_and_alias_arns_and_openssl_verifies() {
    let emu = Emulator::start(5);
    let env = standard_env(&emu);
    let arn = emu.create_key(REGION, KeySpec::P256, "SIGN_VERIFY");
    emu.set_alias(REGION, "alias/cli", &arn);
    let alias_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/cli");
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("msg");
    std::fs::write(&msg, MESSAGE).unwrap();

    for key_ref in [&arn, &alias_arn] {
        let out = cli(&env)
            .args(["public-key", "--format", "der", "--key", key_ref])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, emu.public_key_der(&arn).unwrap());

        let out = cli(&env)
            .args(["sign", "--alg", "ES256", "--key", key_ref, "--in"])
            .arg(&msg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let b64 = String::from_utf8(out.stdout).unwrap();
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64.trim())
            .unwrap();
        let sig = remote_signer::Signature::new(Algorithm::ES256, raw);
        assert!(openssl_verifies(
            dir.path(),
            &emu.public_key_der(&arn).unwrap(),
            &sig
        ));
    }
    assert_eq!(emu.count(&arn, "Sign"), 2);

    // The general endpoint override works as well as the KMS one.
    let general: Vec<(&str, String)> = env
        .iter()
        .map(|(k, v)| match *k {
            "AWS_ENDPOINT_URL_KMS" => ("AWS_ENDPOINT_URL", v.clone()),
            _ => (*k, v.clone()),
        })
        .collect();
    let out = cli(&general)
        .args(["public-key", "--format", "der", "--key", &alias_arn])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, emu.public_key_der(&arn).unwrap());
}

#[test]
fn the_cli_says_what_failed_without_echoing_secrets() {
    let emu = Emulator::start(6);
    let arn = emu.create_key(REGION, KeySpec::P256, "SIGN_VERIFY");
    emu.add_credentials(
        "ASIATEMPORARY0000001",
        "temporary/secret/0123456789",
        Some("session-token-value"),
    );
    emu.expire_credentials("ASIATEMPORARY0000001");
    let base = standard_env(&emu);
    let with = |changes: &[(&'static str, &str)]| {
        let mut env: Vec<(&str, String)> = base
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .cloned()
            .collect();
        env.extend(
            changes
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, v.to_string())),
        );
        env
    };
    let wrong_secret = "wrong/secret/abcdefghijklmnopqrstuvwxyz0";
    for (env, expected, secrets) in [
        (
            with(&[("AWS_SECRET_ACCESS_KEY", wrong_secret)]),
            "InvalidSignatureException",
            vec![wrong_secret],
        ),
        (
            with(&[("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN000000000")]),
            "UnrecognizedClientException",
            vec![SECRET_ACCESS_KEY],
        ),
        (
            with(&[
                ("AWS_ACCESS_KEY_ID", "ASIATEMPORARY0000001"),
                ("AWS_SECRET_ACCESS_KEY", "temporary/secret/0123456789"),
                ("AWS_SESSION_TOKEN", "session-token-value"),
            ]),
            "ExpiredTokenException",
            vec!["temporary/secret/0123456789", "session-token-value"],
        ),
        (
            with(&[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")]),
            "no AWS credentials found",
            vec![],
        ),
    ] {
        let out = cli(&env)
            .args(["public-key", "--key", &arn])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        for secret in secrets {
            assert!(!stderr.contains(secret), "{stderr}");
        }
        if expected == "no AWS credentials found" {
            assert!(
                stderr.contains("AWS_WEB_IDENTITY_TOKEN_FILE") && stderr.contains("IMDSv2"),
                "{stderr}"
            );
        }
    }
    assert_eq!(emu.count(&arn, "Sign"), 0);
}

// ---- Fidelity: the emulator against the KMS API reference's examples ----

fn examples() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/aws/api-examples.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every member of the documented output is in the emulator's, with the same JSON type; the
/// members named in `same` have the documented value.
fn assert_shape(operation: &str, documented: &Value, got: &Value, same: &[&str]) {
    let doc = documented.as_object().unwrap();
    for (name, value) in doc {
        let mine = got
            .get(name)
            .unwrap_or_else(|| panic!("{operation}: no {name} in {got}"));
        let kind = |v: &Value| match v {
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Bool(_) => "bool",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Null => "null",
        };
        // The examples show blobs as "<binary data>" and some dates as text; the wire has
        // base64 strings and epoch seconds.
        if name != "CreationDate" && name != "DeletionDate" {
            assert_eq!(kind(value), kind(mine), "{operation}.{name}: {mine}");
        }
        if same.contains(&name.as_str()) {
            assert_eq!(value, mine, "{operation}.{name}");
        }
    }
}

#[test]
fn the_emulator_answers_the_api_reference_examples_alike() {
    let emu = Emulator::start(7);
    let ex = examples();
    let region = "us-east-2";

    // CreateKey: an ECC signing key (the example uses P-521, which this crate does not sign
    // with; P-384 has the same shape).
    let create = &ex["CreateKey"];
    let mut input = create["input"].clone();
    input["KeySpec"] = json!("ECC_NIST_P384");
    let (status, out) = emu.call(region, "CreateKey", &input);
    assert_eq!(status, 200, "{out}");
    let mut documented = create["output"]["KeyMetadata"].clone();
    documented["KeySpec"] = json!("ECC_NIST_P384");
    documented["CustomerMasterKeySpec"] = json!("ECC_NIST_P384");
    documented["SigningAlgorithms"] = json!(["ECDSA_SHA_384"]);
    assert_shape(
        "CreateKey",
        &documented,
        &out["KeyMetadata"],
        &[
            "AWSAccountId",
            "KeySpec",
            "KeyUsage",
            "KeyState",
            "Enabled",
            "KeyManager",
            "Origin",
            "MultiRegion",
            "SigningAlgorithms",
            "Description",
        ],
    );
    let arn = out["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    assert!(
        arn.starts_with("arn:aws:kms:us-east-2:111122223333:key/"),
        "{arn}"
    );

    // CreateAlias, then Sign and Verify by the alias as the examples do.
    let (status, out) = emu.call(
        region,
        "CreateAlias",
        &json!({"AliasName": "alias/ECC_signing_key", "TargetKeyId": arn}),
    );
    assert_eq!(status, 200, "{out}");
    let mut sign_input = ex["Sign"]["input"].clone();
    sign_input["Message"] = json!("bWVzc2FnZQ==");
    let (status, signed) = emu.call(region, "Sign", &sign_input);
    assert_eq!(status, 200, "{signed}");
    let mut documented = ex["Sign"]["output"].clone();
    documented["KeyId"] = json!(arn);
    assert_shape("Sign", &documented, &signed, &["KeyId", "SigningAlgorithm"]);

    let mut verify_input = ex["Verify"]["input"].clone();
    verify_input["Message"] = json!("bWVzc2FnZQ==");
    verify_input["Signature"] = signed["Signature"].clone();
    let (status, verified) = emu.call(region, "Verify", &verify_input);
    assert_eq!(status, 200, "{verified}");
    let mut documented = ex["Verify"]["output"].clone();
    documented["KeyId"] = json!(arn);
    assert_shape(
        "Verify",
        &documented,
        &verified,
        &["KeyId", "SignatureValid", "SigningAlgorithm"],
    );
    verify_input["Message"] = json!("bWFzc2FnZQ==");
    let (status, refused) = emu.call(region, "Verify", &verify_input);
    assert_eq!(
        (status, refused["__type"].as_str()),
        (400, Some("KMSInvalidSignatureException"))
    );

    // GetPublicKey of an RSA encryption key, as in the example.
    let rsa = emu.create_key(region, KeySpec::Rsa(2048), "ENCRYPT_DECRYPT");
    let (status, out) = emu.call(region, "GetPublicKey", &json!({"KeyId": rsa}));
    assert_eq!(status, 200, "{out}");
    let mut documented = ex["GetPublicKey"]["output"].clone();
    documented["CustomerMasterKeySpec"] = json!("RSA_2048");
    documented["KeyId"] = json!(rsa);
    assert_shape(
        "GetPublicKey",
        &documented,
        &out,
        &[
            "KeyId",
            "KeyUsage",
            "EncryptionAlgorithms",
            "CustomerMasterKeySpec",
        ],
    );

    // DescribeKey of a disabled RSA signing key (the second example).
    let example = &ex["DescribeKey"][1];
    let signing = emu.create_key(region, KeySpec::Rsa(2048), "SIGN_VERIFY");
    emu.set_state(&signing, KeyState::Disabled);
    let (status, out) = emu.call(region, "DescribeKey", &json!({"KeyId": signing}));
    assert_eq!(status, 200, "{out}");
    assert_shape(
        "DescribeKey",
        &example["output"]["KeyMetadata"],
        &out["KeyMetadata"],
        &[
            "AWSAccountId",
            "KeySpec",
            "KeyUsage",
            "KeyState",
            "Enabled",
            "SigningAlgorithms",
            "Origin",
            "KeyManager",
            "MultiRegion",
        ],
    );

    // ScheduleKeyDeletion, after which the key refuses to sign.
    let (status, out) = emu.call(
        region,
        "ScheduleKeyDeletion",
        &json!({"KeyId": arn, "PendingWindowInDays": 7}),
    );
    assert_eq!(status, 200, "{out}");
    let mut documented = ex["ScheduleKeyDeletion"]["output"].clone();
    documented["KeyId"] = json!(arn);
    assert_shape("ScheduleKeyDeletion", &documented, &out, &["KeyId"]);
    let (status, out) = emu.call(region, "Sign", &sign_input);
    assert_eq!(
        (status, out["__type"].as_str()),
        (400, Some("KMSInvalidStateException"))
    );
}

/// The official SDK itself drives the emulator's other operations.
#[tokio::test]
async fn the_official_sdk_creates_describes_signs_and_verifies_against_the_emulator() {
    use aws_sdk_kms::primitives::Blob;
    use aws_sdk_kms::types::{KeySpec as Spec, KeyUsageType, MessageType, SigningAlgorithmSpec};
    let emu = Emulator::start(8);
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(REGION))
        .endpoint_url(emu.endpoint())
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let client = aws_sdk_kms::Client::from_conf(config);
    let created = client
        .create_key()
        .key_spec(Spec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata().unwrap();
    let arn = meta.arn().unwrap().to_string();
    client
        .create_alias()
        .alias_name("alias/sdk")
        .target_key_id(&arn)
        .send()
        .await
        .unwrap();
    let described = client
        .describe_key()
        .key_id("alias/sdk")
        .send()
        .await
        .unwrap();
    assert_eq!(described.key_metadata().unwrap().arn(), Some(arn.as_str()));
    assert_eq!(
        described.key_metadata().unwrap().signing_algorithms(),
        &[SigningAlgorithmSpec::EcdsaSha256]
    );
    for message_type in [MessageType::Raw, MessageType::Digest] {
        let message = if message_type == MessageType::Raw {
            MESSAGE.to_vec()
        } else {
            use sha2::Digest as _;
            sha2::Sha256::digest(MESSAGE).to_vec()
        };
        let signed = client
            .sign()
            .key_id(&arn)
            .message(Blob::new(message.clone()))
            .message_type(message_type.clone())
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .unwrap();
        let verified = client
            .verify()
            .key_id("alias/sdk")
            .message(Blob::new(message))
            .message_type(message_type)
            .signature(signed.signature().unwrap().clone())
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .unwrap();
        assert!(verified.signature_valid());
    }
    client.disable_key().key_id(&arn).send().await.unwrap();
    let err = client
        .get_public_key()
        .key_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_disabled_exception());
}
