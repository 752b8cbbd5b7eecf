//! The Key Vault backend through the official SDK, over real TLS, against the emulator in
//! tests/support/keyvault.rs; and the emulator itself against the recorded exchanges in
//! tests/data/keyvault/.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use remote_signer::backend::azure::{KeyVaultSigner, KeyVaultSignerBuilder, RetryPolicy};
use remote_signer::{Algorithm, ErrorKind, KeyRef, OpenOptions, RemoteSigner};
use serde_json::{Value, json};
use support::keyvault::{
    Attributes, CLIENT_SECRET, Deny, Emulator, EmulatorSigners as _, Fault, KeySpec, RetryAfter,
    TENANT_ID,
};

const MESSAGE: &[u8] = b"remote-signer test message\n";

/// Quick retries so fault tests stay short.
fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_retries(3)
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(40))
        .attempt_timeout(Duration::from_secs(10))
        .max_elapsed(Duration::from_secs(20))
}

/// A builder that authenticates with the client-secret credential against the emulator's
/// token endpoint and trusts the emulator's CA, with the challenge check off (127.0.0.1 is
/// not under vault.azure.net).
fn builder(emu: &Emulator, url: &str) -> KeyVaultSignerBuilder {
    emu.signer_builder(url).retry(quick_retry())
}

fn env_without_cert_file(emu: &Emulator) -> Vec<(String, String)> {
    emu.env()
        .into_iter()
        .filter(|(k, _)| k != "SSL_CERT_FILE")
        .collect()
}

async fn open(emu: &Emulator, url: &str) -> KeyVaultSigner {
    builder(emu, url).build().await.expect("open Key Vault key")
}

fn openssl_verifies(dir: &Path, signer: &dyn RemoteSigner, sig: &remote_signer::Signature) -> bool {
    let alg = sig.algorithm();
    std::fs::write(dir.join("pub.pem"), signer.public_key().to_pem()).unwrap();
    std::fs::write(dir.join("msg"), MESSAGE).unwrap();
    std::fs::write(dir.join("sig"), sig.to_der().unwrap()).unwrap();
    let digest = match alg.hash().unwrap() {
        remote_signer::key::Hash::Sha256 => "-sha256",
        remote_signer::key::Hash::Sha384 => "-sha384",
        _ => "-sha512",
    };
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir)
        .args(["dgst", digest, "-verify", "pub.pem", "-signature", "sig"]);
    if alg.as_str().starts_with("PS") {
        cmd.args([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ]);
    }
    let out = cmd.arg("msg").output().expect("run openssl");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

#[tokio::test]
async fn every_algorithm_signs_and_verifies_with_openssl_and_the_public_key() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("rsa", KeySpec::Rsa(2048)),
        ("p256", KeySpec::P256),
        ("p384", KeySpec::P384),
        ("p256k", KeySpec::P256K),
    ];
    for (name, spec) in cases {
        let version = emu.create_key(name, spec);
        let signer = open(&emu, &emu.key_url(name, Some(&version))).await;
        assert_eq!(
            signer.public_key().to_pem(),
            emu.public_key_pem(name, &version),
            "{name}: public key"
        );
        for alg in signer.key_type().algorithms() {
            let sig = signer.sign(*alg, MESSAGE).await.expect("sign");
            assert_eq!(sig.algorithm(), *alg);
            signer
                .public_key()
                .verify(*alg, MESSAGE, sig.as_bytes())
                .expect("verifies with the public key");
            assert!(
                openssl_verifies(dir.path(), &signer, &sig),
                "{alg}: openssl verify"
            );
        }
        // Algorithms outside the key's family are refused before anything is sent.
        let before = emu.count("sign");
        let other = if spec == KeySpec::Rsa(2048) {
            Algorithm::ES256
        } else {
            Algorithm::RS256
        };
        assert_eq!(
            signer.sign(other, MESSAGE).await.unwrap_err().kind(),
            ErrorKind::Algorithm
        );
        assert_eq!(emu.count("sign"), before);
    }
    // The client-secret credential got its tokens from the emulator's token endpoint, after
    // the vault's challenge.
    assert!(emu.count("token") >= 1);
    assert!(emu.count("challenge") >= 1);
}

#[tokio::test]
async fn the_shared_helper_serves_a_known_key() {
    // What other areas' tests use: a known local key, served by the emulator.
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    let local = support::keys::rsa_file(0, &path);
    emu.import_pem("known", &std::fs::read_to_string(&path).unwrap());
    let signer = emu.signer("known").await;
    assert_eq!(signer.public_key(), local.public_key());
    let sig = signer.sign(Algorithm::RS256, MESSAGE).await.unwrap();
    local
        .public_key()
        .verify(Algorithm::RS256, MESSAGE, sig.as_bytes())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signs_share_one_signer_and_are_all_counted() {
    let emu = Emulator::start();
    emu.create_key("busy", KeySpec::P256);
    let signer = emu.signer("busy").await;
    let tasks: Vec<_> = (0..40u32)
        .map(|i| {
            let signer = signer.clone();
            tokio::spawn(async move {
                let message = format!("message {i}");
                let sig = signer
                    .sign(Algorithm::ES256, message.as_bytes())
                    .await
                    .unwrap();
                signer
                    .public_key()
                    .verify(Algorithm::ES256, message.as_bytes(), sig.as_bytes())
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(emu.count("sign"), 40);
    // One token for all of them.
    assert_eq!(emu.count("token"), 1);
}

#[tokio::test]
async fn hsm_protected_keys_sign_too() {
    let emu = Emulator::start();
    for (name, spec, alg) in [
        ("rsa-hsm", KeySpec::Rsa(2048), Algorithm::PS384),
        ("ec-hsm", KeySpec::P384, Algorithm::ES384),
    ] {
        emu.create_key(name, spec);
        emu.set_hsm(name, None);
        let signer = emu.signer(name).await;
        let sig = signer.sign(alg, MESSAGE).await.unwrap();
        signer
            .public_key()
            .verify(alg, MESSAGE, sig.as_bytes())
            .unwrap();
    }
}

#[tokio::test]
async fn keys_that_may_not_sign_are_refused_at_start() {
    let emu = Emulator::start();
    emu.create_key("verify-only", KeySpec::P256);
    emu.set_key_ops("verify-only", None, &["verify"]);
    let err = builder(&emu, &emu.key_url("verify-only", None))
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey, "{err}");
}

#[tokio::test]
async fn a_version_less_url_pins_the_current_version() {
    let emu = Emulator::start();
    let v1 = emu.create_key("rotating", KeySpec::P256);
    let pinned = open(&emu, &emu.key_url("rotating", None)).await;
    assert_eq!(pinned.version(), v1);
    assert_eq!(
        pinned.key_id().as_str(),
        format!("https://{}/keys/rotating/{v1}", emu.addr())
    );
    // The SDK resolved it with the version-less path the real service sees.
    assert!(
        emu.served()
            .iter()
            .any(|s| s.method == "GET" && s.path == "/keys/rotating/" && s.status == 200)
    );

    let v2 = emu.create_key("rotating", KeySpec::P256);
    assert_ne!(v1, v2);
    let sig = pinned.sign(Algorithm::ES256, MESSAGE).await.unwrap();
    let v1_key = remote_signer::PublicKey::from_pem(&emu.public_key_pem("rotating", &v1)).unwrap();
    let v2_key = remote_signer::PublicKey::from_pem(&emu.public_key_pem("rotating", &v2)).unwrap();
    v1_key
        .verify(Algorithm::ES256, MESSAGE, sig.as_bytes())
        .unwrap();
    assert!(
        v2_key
            .verify(Algorithm::ES256, MESSAGE, sig.as_bytes())
            .is_err()
    );
    assert!(
        emu.served()
            .iter()
            .any(|s| s.method == "POST" && s.path == format!("/keys/rotating/{v1}/sign"))
    );
    assert_eq!(
        pinned.key_id().as_str(),
        format!("https://{}/keys/rotating/{v1}", emu.addr())
    );

    let fresh = open(&emu, &emu.key_url("rotating", None)).await;
    assert_eq!(fresh.version(), v2);
}

#[tokio::test]
async fn forbidden_keys_are_permission_denied_with_code_and_request_id() {
    let emu = Emulator::start();
    emu.create_key("policy", KeySpec::P256);
    emu.create_key("rbac", KeySpec::P256);
    emu.deny("policy", Deny::AccessPolicy);
    emu.deny("rbac", Deny::Rbac);
    for (name, code) in [
        ("policy", "Forbidden/AccessDenied"),
        ("rbac", "Forbidden/ForbiddenByRbac"),
    ] {
        let err = builder(&emu, &emu.key_url(name, None))
            .build()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        let text = err.to_string();
        assert!(text.contains("HTTP 403") && text.contains(code), "{text}");
        assert!(text.contains("request id "), "{text}");
        // Nothing of the response body's message reaches the error.
        assert!(
            !text.contains("Caller") && !text.contains("appid"),
            "{text}"
        );
    }
    // Not retried: one attempt each.
    assert_eq!(emu.count("denied"), 2);
}

#[tokio::test]
async fn a_permission_revoked_after_start_fails_sign() {
    let emu = Emulator::start();
    emu.create_key("k", KeySpec::P256);
    let signer = open(&emu, &emu.key_url("k", None)).await;
    emu.deny("k", Deny::Rbac);
    let err = signer.sign(Algorithm::ES256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("keys/sign permission"), "{err}");
    assert_eq!(signer.stats().sign.denied, 1);
}

#[tokio::test]
async fn missing_keys_and_versions_are_key_not_found() {
    let emu = Emulator::start();
    emu.create_key("present", KeySpec::P256);
    for url in [
        emu.key_url("absent", None),
        emu.key_url("present", Some("00000000000000000000000000000000")),
    ] {
        let err = builder(&emu, &url).build().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyNotFound, "{url}");
        assert!(err.to_string().contains("HTTP 404 KeyNotFound"), "{err}");
    }
}

#[tokio::test]
async fn disabled_and_out_of_window_keys_are_key_disabled() {
    let emu = Emulator::start();
    let cases = [
        (
            "disabled",
            Attributes {
                enabled: false,
                ..Attributes::default()
            },
        ),
        (
            "early",
            Attributes {
                not_before: Some(4_102_444_800),
                ..Attributes::default()
            },
        ), // 2100
        (
            "late",
            Attributes {
                expires: Some(946_684_800),
                ..Attributes::default()
            },
        ), // 2000
    ];
    for (name, attributes) in cases {
        emu.create_key(name, KeySpec::P256);
        emu.set_attributes(name, None, attributes);
        let err = builder(&emu, &emu.key_url(name, None))
            .build()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyDisabled, "{name}: {err}");
    }
    // The window is read on the builder's clock: in 2100 the early key is usable, the late
    // one still is not.
    let in_2100: Arc<dyn remote_signer::clock::Clock> = Arc::new(
        remote_signer::clock::ManualClock::at_unix(4_102_444_800 + 60),
    );
    builder(&emu, &emu.key_url("early", None))
        .clock(in_2100.clone())
        .build()
        .await
        .unwrap();
    let err = builder(&emu, &emu.key_url("late", None))
        .clock(in_2100)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyDisabled, "{err}");
    // Disabled after the signer started: the service's 403 KeyDisabled.
    emu.create_key("later", KeySpec::P256);
    let signer = open(&emu, &emu.key_url("later", None)).await;
    emu.set_attributes(
        "later",
        None,
        Attributes {
            enabled: false,
            ..Attributes::default()
        },
    );
    let err = signer.sign(Algorithm::ES256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyDisabled, "{err}");
    assert!(err.to_string().contains("Forbidden/KeyDisabled"), "{err}");
}

#[tokio::test]
async fn throttling_is_retried_and_honours_retry_after() {
    let emu = Emulator::start();
    emu.create_key("k", KeySpec::P256);
    let signer = open(&emu, &emu.key_url("k", None)).await;
    emu.inject(Fault::Throttle(None), 1);
    emu.inject(Fault::Throttle(Some(RetryAfter::Millis(30))), 1);
    emu.inject(Fault::Throttle(Some(RetryAfter::Seconds(0))), 1);
    signer
        .sign(Algorithm::ES256, MESSAGE)
        .await
        .expect("sign after throttling");
    let sign = signer.stats().sign;
    assert_eq!(
        (sign.attempts, sign.retries, sign.throttled, sign.succeeded),
        (4, 3, 3, 1)
    );
}

#[tokio::test]
async fn a_throttling_storm_ends_in_throttled_within_the_bounds() {
    let emu = Emulator::start();
    emu.create_key("k", KeySpec::P256);
    let signer = open(&emu, &emu.key_url("k", None)).await;
    emu.inject_always(Fault::Throttle(None));
    let policy = quick_retry();
    let start = Instant::now();
    let err = signer.sign(Algorithm::ES256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(err.to_string().contains("HTTP 429 Throttled"), "{err}");
    assert!(err.to_string().contains("after 4 attempts"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "bounded by max_elapsed"
    );
    assert_eq!(signer.stats().sign.attempts, 4);
    let _ = policy;

    // A Retry-After beyond the time budget ends the operation at once.
    emu.inject_always(Fault::Throttle(Some(RetryAfter::Seconds(3600))));
    let err = signer.sign(Algorithm::ES256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(err.to_string().contains("beyond the time allowed"), "{err}");
    assert_eq!(signer.stats().sign.attempts, 5);
    emu.clear_faults();
    signer
        .sign(Algorithm::ES256, MESSAGE)
        .await
        .expect("recovers");
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    let emu = Emulator::start();
    emu.create_key("k", KeySpec::Rsa(2048));
    let signer = open(&emu, &emu.key_url("k", None)).await;
    emu.inject(Fault::Status(503), 1);
    emu.inject(Fault::Drop, 1);
    emu.inject(Fault::Status(500), 1);
    signer
        .sign(Algorithm::PS256, MESSAGE)
        .await
        .expect("sign after faults");
    assert_eq!(signer.stats().sign.retries, 3);

    emu.inject_always(Fault::Status(502));
    let err = signer.sign(Algorithm::RS256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("HTTP 502"), "{err}");

    emu.inject_always(Fault::Drop);
    let err = signer.sign(Algorithm::RS256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn latency_beyond_the_attempt_timeout_is_a_timeout() {
    let emu = Emulator::start();
    emu.create_key("k", KeySpec::P256);
    let policy = RetryPolicy::default()
        .max_retries(1)
        .initial_backoff(Duration::from_millis(10))
        .attempt_timeout(Duration::from_millis(300))
        .max_elapsed(Duration::from_secs(5));
    let signer = builder(&emu, &emu.key_url("k", None))
        .retry(policy)
        .build()
        .await
        .unwrap();
    emu.inject_always(Fault::Latency(Duration::from_secs(3)));
    let start = Instant::now();
    let err = signer.sign(Algorithm::ES256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_timeout() && err.is_transient());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "bounded by max_elapsed"
    );
    let sign = signer.stats().sign;
    assert_eq!((sign.attempts, sign.timed_out), (2, 1));

    // Latency within the timeout is just slow.
    emu.clear_faults();
    emu.inject(Fault::Latency(Duration::from_millis(50)), 1);
    signer
        .sign(Algorithm::ES256, MESSAGE)
        .await
        .expect("slow but in time");
}

#[tokio::test]
async fn an_untrusted_certificate_fails_at_once_with_a_hint() {
    let emu = Emulator::start();
    let other = Emulator::start();
    emu.create_key("k", KeySpec::P256);
    let err = KeyVaultSigner::builder(&emu.key_url("k", None))
        .environment(env_without_cert_file(&emu))
        .add_root_certificate_pem(other.ca_pem())
        .verify_challenge_resource(false)
        .retry(quick_retry())
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("SSL_CERT_FILE"), "{err}");
    assert!(!err.to_string().contains("after"), "not retried: {err}");
}

#[tokio::test]
async fn a_tampered_signature_is_caught() {
    let emu = Emulator::start();
    emu.create_key("k", KeySpec::Rsa(2048));
    let signer = open(&emu, &emu.key_url("k", None)).await;
    emu.inject(Fault::Tamper, 1);
    let err = signer.sign(Algorithm::RS256, MESSAGE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature);
}

#[tokio::test]
async fn the_challenge_resource_check_is_on_by_default() {
    let emu = Emulator::start();
    emu.create_key("k", KeySpec::P256);
    let err = KeyVaultSigner::builder(&emu.key_url("k", None))
        .environment(env_without_cert_file(&emu))
        .add_root_certificate_pem(emu.ca_pem())
        .retry(quick_retry())
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("challenge"), "{err}");

    // Under the vault domain (resolved to the emulator) the check passes.
    let host = "emulated.vault.azure.net";
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(client_tls(&emu))
        .resolve(host, emu.addr())
        .build()
        .unwrap();
    let url = format!("https://{host}:{}/keys/k", emu.addr().port());
    let signer = KeyVaultSigner::builder(&url)
        .environment(env_without_cert_file(&emu))
        .http_client(http)
        .retry(quick_retry())
        .build()
        .await
        .expect("challenge resource matches");
    assert!(
        signer
            .key_id()
            .as_str()
            .starts_with(&format!("https://{host}:"))
    );
    signer.sign(Algorithm::ES256, MESSAGE).await.unwrap();
}

fn client_tls(emu: &Emulator) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(emu.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[tokio::test]
async fn workload_identity_gets_its_token_from_the_emulator() {
    let emu = Emulator::start();
    emu.create_key("k", KeySpec::P256);
    let token_file = emu.federated_token_file();
    let vars = vec![
        ("AZURE_TENANT_ID".to_string(), TENANT_ID.to_string()),
        (
            "AZURE_CLIENT_ID".to_string(),
            support::keyvault::CLIENT_ID.to_string(),
        ),
        (
            "AZURE_FEDERATED_TOKEN_FILE".to_string(),
            token_file.to_string_lossy().into_owned(),
        ),
        ("AZURE_AUTHORITY_HOST".to_string(), emu.authority_host()),
    ];
    let signer = KeyVaultSigner::builder(&emu.key_url("k", None))
        .environment(vars)
        .add_root_certificate_pem(emu.ca_pem())
        .verify_challenge_resource(false)
        .retry(quick_retry())
        .build()
        .await
        .expect("workload identity");
    signer.sign(Algorithm::ES256, MESSAGE).await.unwrap();
    assert_eq!(emu.count("token"), 1);
}

/// Any `TokenCredential` can be given; this one hands out a token the emulator issued.
#[derive(Debug)]
struct FixedToken(String);

#[async_trait::async_trait]
impl remote_signer::backend::azure::TokenCredential for FixedToken {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        assert_eq!(scopes, ["https://vault.azure.net/.default"]);
        Ok(azure_core::credentials::AccessToken::new(
            self.0.clone(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

#[tokio::test]
async fn any_token_credential_can_be_given() {
    let emu = Emulator::start();
    emu.create_key("k", KeySpec::P256);
    let signer = KeyVaultSigner::builder(&emu.key_url("k", None))
        .credential(Arc::new(FixedToken(emu.issue_token())))
        .add_root_certificate_pem(emu.ca_pem())
        .verify_challenge_resource(false)
        .build()
        .await
        .unwrap();
    signer.sign(Algorithm::ES256, MESSAGE).await.unwrap();
    assert_eq!(emu.count("token"), 0, "the token endpoint was not used");

    // A token the vault does not accept is a permission error, not a retry loop.
    let err = KeyVaultSigner::builder(&emu.key_url("k", None))
        .credential(Arc::new(FixedToken("forged".into())))
        .add_root_certificate_pem(emu.ca_pem())
        .verify_challenge_resource(false)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(!err.to_string().contains("forged"));
}

#[tokio::test]
async fn a_wrong_client_secret_is_permission_denied_without_the_secret() {
    let emu = Emulator::start();
    emu.create_key("k", KeySpec::P256);
    let vars: Vec<_> = env_without_cert_file(&emu)
        .into_iter()
        .map(|(k, v)| {
            if k == "AZURE_CLIENT_SECRET" {
                (k, "not-the-secret-xyz".to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let err = KeyVaultSigner::builder(&emu.key_url("k", None))
        .environment(vars)
        .add_root_certificate_pem(emu.ca_pem())
        .verify_challenge_resource(false)
        .retry(quick_retry())
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("client secret credential") && text.contains("7000215"),
        "{text}"
    );
    assert!(
        !text.contains("not-the-secret-xyz") && !text.contains(CLIENT_SECRET),
        "{text}"
    );
    assert!(
        !text.contains("Invalid client secret provided"),
        "no body text: {text}"
    );
}

#[tokio::test]
async fn an_imported_pem_key_is_served_and_keyrefs_reach_the_backend() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("k.pem");
    let made = Command::new("openssl")
        .args(["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out"])
        .arg(&pem_path)
        .status()
        .unwrap();
    assert!(made.success());
    let version = emu.import_pem("known", &std::fs::read_to_string(&pem_path).unwrap());
    let expected = Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&pem_path)
        .output()
        .unwrap()
        .stdout;
    let key_ref: KeyRef = emu.key_url("known", Some(&version)).parse().unwrap();
    assert!(matches!(key_ref, KeyRef::AzureKeyVault(_)));
    let signer = builder(&emu, &key_ref.to_string()).build().await.unwrap();
    assert_eq!(
        signer.public_key().to_pem().trim(),
        String::from_utf8(expected).unwrap().trim()
    );
    // A URL that is not a key URL is refused before any request.
    let err = "https://v.vault.azure.net/secrets/x"
        .parse::<KeyRef>()
        .unwrap()
        .open(&OpenOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyRef);
}

/// The CLI with no credential variables and no CA file from this process's environment.
fn cli_without_credentials() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_remote-signer"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AZURE_")
            || k.starts_with("IDENTITY_")
            || k.starts_with("MSI_")
            || k.starts_with("IMDS_")
            || k.starts_with("SSL_CERT")
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The CLI, given only the standard variables, SSL_CERT_FILE and the flag.
#[test]
fn the_cli_works_against_the_emulator_with_the_standard_environment() {
    let emu = Emulator::start();
    let version = emu.create_key("cli", KeySpec::Rsa(2048));
    let url = emu.key_url("cli", Some(&version));
    let cli = || {
        let mut cmd = cli_without_credentials();
        cmd.envs(emu.env());
        cmd
    };
    let out = cli()
        .args([
            "public-key",
            "--key",
            &url,
            "--no-verify-challenge-resource",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        emu.public_key_pem("cli", &version)
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("msg"), MESSAGE).unwrap();
    let out = cli()
        .args([
            "sign",
            "--key",
            &url,
            "--no-verify-challenge-resource",
            "--alg",
            "PS512",
            "--in",
        ])
        .arg(dir.path().join("msg"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sig = URL_SAFE_NO_PAD
        .decode(String::from_utf8(out.stdout).unwrap().trim())
        .unwrap();
    let public = remote_signer::PublicKey::from_pem(&emu.public_key_pem("cli", &version)).unwrap();
    public.verify(Algorithm::PS512, MESSAGE, &sig).unwrap();

    // With no AZURE_* secret, the default chain falls through to managed identity, served
    // here by the emulator as App Service's identity endpoint.
    let mut cmd = cli();
    for (k, _) in emu.env() {
        cmd.env_remove(k);
    }
    let out = cmd
        .envs(emu.managed_identity_env())
        .args([
            "public-key",
            "--key",
            &url,
            "--no-verify-challenge-resource",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        emu.public_key_pem("cli", &version)
    );

    // Without the flag the SDK's check refuses the emulator's challenge.
    let out = cli().args(["public-key", "--key", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("challenge"), "{stderr}");
    assert!(!stderr.contains(CLIENT_SECRET));
}

/// An `az` on PATH that answers `az account get-access-token -o json` in the Azure CLI's
/// documented output format (the real CLI needs a cloud sign-in), logging its arguments.
/// With `AZ_FAIL` set it fails as a signed-out CLI does, with a secret-looking line on stderr.
const FAKE_AZ: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> "$AZ_ARGS_LOG"
if [ -n "$AZ_FAIL" ]; then
    echo "ERROR: Please run 'az login' to setup account. ($AZ_FAIL)" >&2
    exit 1
fi
expires=$(( $(date +%s) + 3600 ))
printf '{"accessToken": "%s", "expiresOn": "2099-01-01 00:00:00.000000", "expires_on": %s, "subscription": "00000000-0000-0000-0000-000000000000", "tenant": "%s", "tokenType": "Bearer"}\n' "$AZ_TOKEN" "$expires" "$AZURE_TENANT_ID"
"#;

/// [`FAKE_AZ`] installed in a directory of its own: the directory (kept while it lives), a
/// `PATH` that finds it first, and the file it logs its arguments to.
struct FakeAz {
    _dir: tempfile::TempDir,
    path: String,
    log: std::path::PathBuf,
}

impl FakeAz {
    fn install() -> FakeAz {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let az = dir.path().join("az");
        std::fs::write(&az, FAKE_AZ).unwrap();
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeAz {
            path: format!(
                "{}:{}",
                dir.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
            log: dir.path().join("az-args.log"),
            _dir: dir,
        }
    }
}

/// With no `AZURE_*` secret and no managed identity (IMDS does not answer here), the default
/// chain falls through to the `az` CLI's signed-in account, passing the tenant; a signed-out
/// CLI gives the one-line "no credential" error without echoing what `az` printed.
#[test]
fn without_a_managed_identity_the_cli_uses_the_az_login() {
    const IMDS_PROXY: &str = "http://127.0.0.1:9";

    let emu = Emulator::start();
    let version = emu.create_key("az", KeySpec::P256);
    let url = emu.key_url("az", Some(&version));
    let az = FakeAz::install();
    let (path, log) = (&az.path, &az.log);
    let token = emu.issue_token();
    let run = |fail: Option<&str>| {
        let mut cmd = cli_without_credentials();
        cmd.env("PATH", path)
            .env("AZ_ARGS_LOG", log)
            .env("AZ_TOKEN", &token)
            .env("AZURE_TENANT_ID", TENANT_ID)
            .env("SSL_CERT_FILE", emu.ca_path())
            // IMDS is plain http to 169.254.169.254: send it to a closed port, so that a CI
            // machine on Azure cannot answer with an identity of its own.
            .env("HTTP_PROXY", IMDS_PROXY)
            .env("http_proxy", IMDS_PROXY);
        if let Some(secret) = fail {
            cmd.env("AZ_FAIL", secret);
        }
        let started = Instant::now();
        let child = cmd
            .args([
                "public-key",
                "--key",
                &url,
                "--no-verify-challenge-resource",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        move || {
            let out = child.wait_with_output().unwrap();
            (out, started.elapsed())
        }
    };

    // Signed in and signed out side by side: each waits out the managed-identity probe.
    let sentinel = "az-stderr-sentinel-7f3a";
    let (signed_in, signed_out) = (run(None), run(Some(sentinel)));
    let (out, elapsed) = signed_in();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        emu.public_key_pem("az", &version)
    );
    let args = std::fs::read_to_string(log).unwrap();
    assert!(
        args.lines().all(
            |line| line.starts_with("account get-access-token -o json --scope ")
                && line.ends_with(&format!(" --tenant {TENANT_ID}"))
        ),
        "{args}"
    );
    assert!(!args.is_empty());
    // The managed-identity probe is bounded: 3 s, plus process start and the vault calls.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    // The only token the vault accepts is the one `az` printed: no token endpoint was asked.
    assert_eq!(emu.count("token"), 0);
    assert!(emu.served().iter().any(|s| s.authorized && s.status == 200));

    let (out, _) = signed_out();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no credential"), "{stderr}");
    assert!(stderr.contains("az login"), "{stderr}");
    assert!(!stderr.contains(sentinel), "{stderr}");
    assert!(!stderr.contains(&token), "{stderr}");
}

/// A stand-in for the instance metadata service, reached as a plain-http proxy (IMDS is
/// `http://169.254.169.254`, which no test can bind): every request gets a managed-identity
/// token in IMDS's documented reply format; the request lines are kept.
fn imds_stand_in(token: String) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            log.lock().unwrap().push(head.join("\n"));
            let expires = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 3600;
            let body = format!(
                r#"{{"access_token":"{token}","refresh_token":"","expires_in":"3600","expires_on":"{expires}","not_before":"{}","resource":"https://vault.azure.net","token_type":"Bearer"}}"#,
                expires - 3600
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (address, seen)
}

/// On Azure (IMDS answers), the default chain takes the managed identity's token and never
/// runs `az`: first one request checks that IMDS answers, then the SDK asks it for a token.
#[test]
fn where_imds_answers_the_cli_uses_the_managed_identity() {
    let emu = Emulator::start();
    let version = emu.create_key("mi", KeySpec::P256);
    let url = emu.key_url("mi", Some(&version));
    let (imds, seen) = imds_stand_in(emu.issue_token());
    let az = FakeAz::install();
    let out = cli_without_credentials()
        .env("PATH", &az.path)
        .env("AZ_ARGS_LOG", &az.log)
        .env("AZ_FAIL", "signed-out")
        .env("SSL_CERT_FILE", emu.ca_path())
        .env("HTTP_PROXY", &imds)
        .env("http_proxy", &imds)
        .args([
            "public-key",
            "--key",
            &url,
            "--no-verify-challenge-resource",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        emu.public_key_pem("mi", &version)
    );
    assert!(!az.log.exists(), "az was run although IMDS answered");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 2, "{seen:?}");
    for request in &seen {
        assert!(
            request.starts_with("GET http://169.254.169.254/metadata/identity/oauth2/token?"),
            "{request}"
        );
        assert!(
            request.to_ascii_lowercase().contains("\nmetadata: true"),
            "{request}"
        );
    }
    assert!(
        seen.iter()
            .any(|r| r.contains("resource=https%3A%2F%2Fvault.azure.net")
                || r.contains("resource=https://vault.azure.net")),
        "the token request names the vault's resource: {seen:?}"
    );
    assert_eq!(emu.count("token"), 0);
}

// ---- The emulator against the recorded exchanges -------------------------------------------

fn data(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/keyvault")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Raw HTTPS to the emulator, trusting its CA.
struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    fn new(emu: &Emulator) -> Self {
        Raw {
            http: reqwest::Client::builder()
                .tls_backend_preconfigured(client_tls(emu))
                .build()
                .unwrap(),
            base: format!("https://{}", emu.addr()),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = format!("{}{path}?api-version=2025-07-01", self.base);
        let mut req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        if let Some(token) = token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn emulator_matches_the_recorded_challenge_get_sign_verify() {
    let emu = Emulator::start();
    let raw = Raw::new(&emu);
    let recording = data("recorded_real_ec_p256k_challenge_get_sign_verify.json");
    let ex = recording["exchanges"].as_array().unwrap();
    let version = emu.create_key("EC162542139619007515", KeySpec::P256K);
    let path = format!("/keys/EC162542139619007515/{version}");

    // 1. The challenge, exactly as recorded (tenant and resource of the recording's form).
    let (status, headers, body) = raw.send("GET", &path, None, None).await;
    let expected = &ex[0]["response"];
    assert_eq!(status, 401);
    assert_eq!(body, expected["body"]);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    let recorded = expected["headers"]["WWW-Authenticate"].as_str().unwrap();
    assert_eq!(
        challenge,
        recorded.replace("12345678-1234-1234-1234-123456789012", TENANT_ID)
    );
    for h in [
        "Content-Type",
        "x-ms-keyvault-service-version",
        "x-ms-keyvault-region",
    ] {
        assert!(headers.contains_key(h.to_ascii_lowercase().as_str()), "{h}");
    }
    assert_eq!(
        headers["content-type"],
        expected["headers"]["Content-Type"].as_str().unwrap()
    );

    // 2. The key bundle has the recorded members, integer times, and a kid naming the version.
    let token = emu.issue_token();
    let (status, _, bundle) = raw.send("GET", &path, Some(&token), None).await;
    let expected = &ex[1]["response"]["body"];
    assert_eq!(status, 200);
    assert_eq!(keys_of(&bundle), keys_of(expected));
    assert_eq!(keys_of(&bundle["key"]), keys_of(&expected["key"]));
    assert_eq!(
        keys_of(&bundle["attributes"]),
        keys_of(&expected["attributes"])
    );
    for member in ["kty", "crv", "key_ops"] {
        assert_eq!(bundle["key"][member], expected["key"][member], "{member}");
    }
    for t in ["created", "updated"] {
        assert!(bundle["attributes"][t].is_i64(), "{t} is integer seconds");
    }
    assert_eq!(
        bundle["attributes"]["recoveryLevel"],
        expected["attributes"]["recoveryLevel"]
    );
    let kid = bundle["key"]["kid"].as_str().unwrap();
    assert!(kid.ends_with(&path), "{kid}");

    // 3. Sign the recorded request body: the reply has the recorded shape, a 64-byte r||s.
    let sign_request = &ex[2]["request"]["body"];
    let (status, _, signed) = raw
        .send(
            "POST",
            &format!("{path}/sign"),
            Some(&token),
            Some(&sign_request.to_string()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(keys_of(&signed), keys_of(&ex[2]["response"]["body"]));
    assert_eq!(signed["kid"].as_str().unwrap(), kid);
    let sig = signed["value"].as_str().unwrap();
    let recorded_sig = ex[2]["response"]["body"]["value"].as_str().unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(sig).unwrap().len(),
        URL_SAFE_NO_PAD.decode(recorded_sig).unwrap().len()
    );

    // 4. Verify in the recorded request form (digest = hash, value = signature).
    let mut verify = ex[3]["request"]["body"].clone();
    verify["value"] = json!(sig);
    let (status, _, verified) = raw
        .send(
            "POST",
            &format!("{path}/verify"),
            Some(&token),
            Some(&verify.to_string()),
        )
        .await;
    assert_eq!((status, &verified), (200, &ex[3]["response"]["body"]));
    // The recorded signature was made by another key: it does not verify here.
    let (_, _, verified) = raw
        .send(
            "POST",
            &format!("{path}/verify"),
            Some(&token),
            Some(&ex[3]["request"]["body"].to_string()),
        )
        .await;
    assert_eq!(verified, json!({"value": false}));
}

#[tokio::test]
async fn emulator_errors_match_the_recorded_service_errors() {
    let emu = Emulator::start();
    let raw = Raw::new(&emu);
    let recorded = data("errors_real_service.json");
    let token = emu.issue_token();
    emu.create_key("policy", KeySpec::P256);
    emu.create_key("rbac", KeySpec::P256);
    emu.create_key("busy", KeySpec::P256);
    emu.deny("policy", Deny::AccessPolicy);
    emu.deny("rbac", Deny::Rbac);

    let (status, _, body) = raw.send("GET", "/keys/missing/", Some(&token), None).await;
    let expected = &recorded["404_key_not_found"];
    assert_eq!(status, expected["status"]);
    assert_eq!(body["error"]["code"], expected["body"]["error"]["code"]);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("A key with (name/id) missing was not found in this key vault."));

    for (name, case) in [("policy", "403_access_policy"), ("rbac", "403_rbac")] {
        let (status, _, body) = raw
            .send("GET", &format!("/keys/{name}/"), Some(&token), None)
            .await;
        let expected = &recorded[case];
        assert_eq!(status, expected["status"], "{case}");
        assert_eq!(
            body["error"]["code"], expected["body"]["error"]["code"],
            "{case}"
        );
        assert_eq!(
            body["error"]["innererror"], expected["body"]["error"]["innererror"],
            "{case}"
        );
    }

    emu.inject(Fault::Throttle(None), 1);
    let (status, headers, body) = raw.send("GET", "/keys/busy/", Some(&token), None).await;
    let expected = &recorded["429_throttled"];
    assert_eq!(status, expected["status"]);
    assert_eq!(body, expected["body"]);
    assert!(
        !headers.contains_key("retry-after"),
        "recorded 429 has no Retry-After"
    );
    assert!(headers.contains_key("x-ms-request-id"));
    assert_eq!(
        headers["content-type"],
        expected["headers"]["Content-Type"].as_str().unwrap()
    );
}

#[tokio::test]
async fn emulator_serves_the_requests_the_sdks_were_observed_to_send() {
    let emu = Emulator::start();
    let raw = Raw::new(&emu);
    let token = emu.issue_token();
    let rsa_version = emu.create_key("rsa-key", KeySpec::Rsa(2048));
    emu.create_key("ec-key", KeySpec::P256);
    emu.create_key("forbidden", KeySpec::P256);
    emu.create_key("throttled", KeySpec::P256);
    emu.deny("forbidden", Deny::AccessPolicy);
    let log = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/keyvault/sdk_requests_observed.jsonl"),
    )
    .unwrap();
    let mut seen = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let req: Value = serde_json::from_str(line).unwrap();
        let (method, path) = (
            req["method"].as_str().unwrap(),
            req["path"].as_str().unwrap(),
        );
        let path = path.replace("019c0863cf454d86a33f96c863e81d34", &rsa_version);
        let name = path.split('/').nth(2).unwrap();
        if path.contains("ec-key/0836") {
            continue; // a Python-only run against another key version
        }
        let auth = req["auth"].as_bool().unwrap();
        let body = req["body"].as_str().filter(|b| !b.is_empty());
        if auth && name == "throttled" {
            emu.inject(Fault::Throttle(None), 1);
        }
        let (status, headers, _) = raw
            .send(method, &path, auth.then_some(token.as_str()), body)
            .await;
        let expected = match (auth, name) {
            (false, _) => 401,
            (_, "missing-key") => 404,
            (_, "forbidden") => 403,
            (_, "throttled") => 429,
            _ => 200,
        };
        assert_eq!(status, expected, "{method} {path}");
        if status == 401 {
            assert!(headers.contains_key("www-authenticate"));
        }
        seen += 1;
    }
    assert!(seen > 20);
    // The version-less forms the Rust SDK sends were among them.
    let served = emu.served();
    assert!(
        served
            .iter()
            .any(|s| s.path == "/keys/rsa-key/" && s.status == 200)
    );
    assert!(
        served
            .iter()
            .any(|s| s.path == "/keys/rsa-key//sign" && s.status == 200)
    );
}
