//! X.509 certificates and CSRs signed by a managed key, checked by openssl: the self-signature
//! (`openssl verify -check_ss_sig`), the request's signature (`openssl req -verify`), the public
//! key, the extensions and the validity; refusals; and signer failures carried through rcgen.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use remote_signer::jwt::{ENTRA_DEFAULT_LIFETIME, ENTRA_MAX_LIFETIME, EntraAssertion};
use remote_signer::surrogate::ManualClock;
use remote_signer::x509::{DEFAULT_DAYS, MAX_DAYS, SelfSigned, Subject, certificate_request};
use remote_signer::{ErrorKind, KeyId, KeyType, RemoteSigner};

use crate::support;
use support::keys::key_file;
use support::public_only::{PublicOnly, k256_public};

use support::faulty::{FaultySigner, Mode};

const BIN: &str = env!("CARGO_BIN_EXE_remote-signer");

fn run(program: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(program).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn openssl(args: &[&str]) -> String {
    let (code, stdout, stderr) = run("openssl", args);
    assert_eq!(code, 0, "openssl {args:?}: {stdout}{stderr}");
    stdout + &stderr
}

/// Runs the CLI and writes its stdout (one PEM document) to `out`.
fn cli_pem(args: &[&str], out: &Path) -> String {
    let (code, stdout, stderr) = run(BIN, args);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    std::fs::write(out, &stdout).unwrap();
    stdout
}

fn cli_refuses(args: &[&str], reason: &str) {
    let (code, stdout, stderr) = run(BIN, args);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(reason), "{stderr:?} lacks {reason:?}");
}

#[test]
fn self_signed_certificates_and_requests_verify_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    for (key_type, signature) in [
        (KeyType::Rsa, "sha256WithRSAEncryption"),
        (KeyType::P256, "ecdsa-with-SHA256"),
        (KeyType::P384, "ecdsa-with-SHA384"),
        (KeyType::Ed25519, "ED25519"),
    ] {
        let (key, signer) = key_file(dir.path(), key_type);
        let key = key.to_str().unwrap();
        let public_pem = signer.public_key().to_pem();

        let cert = dir.path().join("cert.pem");
        let cert_s = cert.to_str().unwrap();
        let pem = cli_pem(
            &[
                "x509",
                "self-signed",
                "--key",
                key,
                "--subject",
                "CN=my-app,O=Example\\, Inc.,OU=Ops,C=US,ST=Somewhere,L=Town",
                "--days",
                "30",
            ],
            &cert,
        );
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
        // The self-signature, which `openssl x509` alone would not check.
        let verified = openssl(&["verify", "-check_ss_sig", "-CAfile", cert_s, cert_s]);
        assert!(verified.contains(": OK"), "{key_type}: {verified}");
        assert_eq!(
            openssl(&["x509", "-in", cert_s, "-noout", "-pubkey"]),
            public_pem
        );
        let text = openssl(&["x509", "-in", cert_s, "-noout", "-text"]);
        assert!(
            text.contains(&format!("Signature Algorithm: {signature}")),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("Digital Signature"), "{text}");
        assert!(!text.contains("Certificate Sign"), "{text}");
        let subject = openssl(&[
            "x509", "-in", cert_s, "-noout", "-subject", "-nameopt", "RFC2253",
        ]);
        assert_eq!(
            subject.trim(),
            "subject=L=Town,ST=Somewhere,C=US,OU=Ops,O=Example\\, Inc.,CN=my-app"
        );
        let der = pem_der(&pem);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let validity = parsed.validity();
        assert_eq!(
            validity.not_after.timestamp() - validity.not_before.timestamp(),
            30 * 86_400
        );
        assert_eq!(parsed.issuer(), parsed.subject());
        let serial = parsed.raw_serial();
        assert_eq!(serial.len(), 16, "{serial:?}");
        assert!(serial[0] & 0x80 == 0, "positive serial");
        // A fresh random serial every time.
        let again = cli_pem(
            &["x509", "self-signed", "--key", key, "--subject", "CN=a"],
            &dir.path().join("again.pem"),
        );
        let again = pem_der(&again);
        let (_, again) = x509_parser::parse_x509_certificate(&again).unwrap();
        assert_ne!(again.raw_serial(), serial);
        let days = again.validity().not_after.timestamp() - again.validity().not_before.timestamp();
        assert_eq!(days, 365 * 86_400, "default validity");

        let csr = dir.path().join("csr.pem");
        let csr_s = csr.to_str().unwrap();
        let pem = cli_pem(
            &[
                "x509",
                "csr",
                "--key",
                key,
                "--subject",
                "CN=my-app,O=Example",
            ],
            &csr,
        );
        assert!(
            pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"),
            "{pem}"
        );
        let verified = openssl(&["req", "-in", csr_s, "-verify", "-noout"]);
        assert!(verified.contains("verify OK"), "{key_type}: {verified}");
        assert_eq!(
            openssl(&["req", "-in", csr_s, "-noout", "-pubkey"]),
            public_pem
        );
        let subject = openssl(&[
            "req", "-in", csr_s, "-noout", "-subject", "-nameopt", "RFC2253",
        ]);
        assert_eq!(subject.trim(), "subject=O=Example,CN=my-app");
    }
}

fn pem_der(pem: &str) -> Vec<u8> {
    pem_rfc7468::decode_vec(pem.as_bytes()).unwrap().1
}

#[test]
fn refusals_exit_2_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = key_file(dir.path(), KeyType::P256);
    let key = key.to_str().unwrap();
    let self_signed = |subject: &'static str, extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["x509", "self-signed", "--key", key, "--subject", subject];
        args.extend_from_slice(extra);
        args
    };
    cli_refuses(&self_signed("O=Example", &[]), "has no CN");
    cli_refuses(&self_signed("CN=a,XX=b", &[]), "unknown attribute \"XX\"");
    cli_refuses(&self_signed("CN=a,CN=b", &[]), "CN twice");
    cli_refuses(&self_signed("CN=", &[]), "empty or unprintable CN");
    cli_refuses(&self_signed("CN=a,C=USA", &[]), "two-letter country code");
    cli_refuses(&self_signed("CN=a\\b", &[]), "escapes neither");
    cli_refuses(&self_signed("CN", &[]), "without =");
    cli_refuses(&self_signed("CN=a", &["--days", "0"]), "1 to 3650 days");
    cli_refuses(&self_signed("CN=a", &["--days", "3651"]), "1 to 3650 days");
}

#[tokio::test]
async fn secp256k1_keys_are_refused() {
    let signer: Arc<dyn RemoteSigner> = Arc::new(PublicOnly {
        id: KeyId::new("k256"),
        public: k256_public(),
    });
    let subject: Subject = "CN=a".parse().unwrap();
    let err = certificate_request(signer.clone(), &subject)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey);
    assert!(
        err.to_string()
            .contains("X.509 certificates need an RSA, EC P-256, EC P-384 or Ed25519 key"),
        "{err}"
    );
    let err = SelfSigned::new(signer, &subject).sign().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey);
}

#[tokio::test]
async fn the_library_reads_its_clock_and_the_certificate_serves_entra() {
    let signer: Arc<dyn RemoteSigner> = Arc::new(support::keys::rsa(0));
    let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
    let subject: Subject = "CN=app".parse().unwrap();
    assert_eq!(subject.to_string(), "CN=app");
    let cert = SelfSigned::builder(signer.clone(), &subject)
        .days(2)
        .clock(clock)
        .build()
        .unwrap()
        .sign()
        .await
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
    assert_eq!(parsed.validity().not_before.timestamp(), 1_700_000_000);
    assert_eq!(
        parsed.validity().not_after.timestamp(),
        1_700_000_000 + 2 * 86_400
    );
    assert_eq!(
        parsed.public_key().raw,
        signer.public_key().to_spki_der().as_slice()
    );
    // The certificate holds the key, so an Entra assertion can name it (PEM and DER alike).
    let from_pem = EntraAssertion::new(
        signer.clone(),
        "contoso.com",
        "app",
        cert.to_pem().as_bytes(),
    )
    .unwrap();
    let from_der = EntraAssertion::new(signer.clone(), "contoso.com", "app", cert.der()).unwrap();
    assert_eq!(
        from_pem.certificate_thumbprint(),
        from_der.certificate_thumbprint()
    );
    let other: Arc<dyn RemoteSigner> = Arc::new(support::keys::rsa(1));
    let err = EntraAssertion::new(other, "contoso.com", "app", cert.der()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(format!("{:?}", cert).len() < 64, "Debug shows no bytes");
}

#[tokio::test]
async fn the_builders_report_what_does_not_fit() {
    let signer: Arc<dyn RemoteSigner> = Arc::new(support::keys::rsa(0));
    let subject: Subject = "CN=app".parse().unwrap();
    for days in [0, MAX_DAYS + 1] {
        let err = SelfSigned::builder(signer.clone(), &subject)
            .days(days)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{days}");
        assert!(err.to_string().contains("1 to 3650 days"), "{err}");
    }
    assert_eq!(
        SelfSigned::new(signer.clone(), &subject).days(),
        DEFAULT_DAYS
    );
    let longest = SelfSigned::builder(signer.clone(), &subject)
        .days(MAX_DAYS)
        .build()
        .unwrap();
    assert_eq!(longest.days(), MAX_DAYS);
    assert_eq!(longest.subject(), &subject);

    // An Entra assertion naming the certificate: a lifetime over the cap is refused by build().
    let cert = longest.sign().await.unwrap();
    for (lifetime, reason) in [
        (
            Duration::from_secs(3601),
            "lifetime of 3601 s is over the 3600 s",
        ),
        (Duration::ZERO, "whole number of seconds"),
    ] {
        let err = EntraAssertion::builder(signer.clone(), "contoso.com", "app", cert.der())
            .lifetime(lifetime)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{lifetime:?}");
        assert!(err.to_string().contains(reason), "{err}");
    }
    let err = EntraAssertion::builder(signer.clone(), "contoso com", "app", cert.der())
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let builder = EntraAssertion::builder(signer.clone(), "contoso.com", "app", cert.der());
    assert!(
        !format!("{builder:?}").contains("CERTIFICATE"),
        "Debug shows no bytes"
    );
    let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
    let assertions = builder
        .lifetime(ENTRA_MAX_LIFETIME)
        .clock(clock)
        .build()
        .unwrap();
    assert_eq!(assertions.lifetime(), ENTRA_MAX_LIFETIME);
    let token = assertions.sign().await.unwrap();
    assert_eq!(
        token.expires_at(),
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 3600)
    );
    assert_eq!(
        EntraAssertion::new(signer, "contoso.com", "app", cert.der())
            .unwrap()
            .lifetime(),
        ENTRA_DEFAULT_LIFETIME
    );
}

#[tokio::test]
async fn signer_failures_come_through_with_their_kind() {
    let subject: Subject = "CN=app".parse().unwrap();
    for (garble, kind) in [(false, ErrorKind::Unavailable), (true, ErrorKind::Signing)] {
        let broken = FaultySigner::local(KeyType::P256);
        broken.set(if garble { Mode::Garbled } else { Mode::Down });
        let signer: Arc<dyn RemoteSigner> = broken;
        let err = SelfSigned::new(signer.clone(), &subject)
            .sign()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        let err = certificate_request(signer, &subject).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
    }
}

/// The bridge from rcgen's synchronous signing to an async signer that needs the network: a
/// Key Vault key through the official SDK, on a single-threaded runtime as `#[tokio::test]`
/// gives (the runtime's own thread drives the I/O while rcgen waits on a blocking thread).
#[cfg(feature = "azure")]
#[tokio::test]
async fn key_vault_keys_sign_certificates_and_requests() {
    use support::keyvault::{Emulator, EmulatorSigners as _, KeySpec};
    let emu = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    for (name, spec) in [
        ("rsa", KeySpec::Rsa(2048)),
        ("p256", KeySpec::P256),
        ("p384", KeySpec::P384),
    ] {
        emu.create_key(name, spec);
        let signer = emu.signer(name).await;
        let subject: Subject = "CN=vault-app".parse().unwrap();
        let before = emu.count("sign");
        let cert = SelfSigned::new(signer.clone(), &subject)
            .sign()
            .await
            .unwrap();
        let csr = certificate_request(signer.clone(), &subject).await.unwrap();
        assert_eq!(emu.count("sign") - before, 2, "one managed signature each");
        let (cert_path, csr_path) = (dir.path().join("c.pem"), dir.path().join("r.pem"));
        std::fs::write(&cert_path, cert.to_pem()).unwrap();
        std::fs::write(&csr_path, csr.to_pem()).unwrap();
        let (cert_s, csr_s) = (cert_path.to_str().unwrap(), csr_path.to_str().unwrap());
        let verified = openssl(&["verify", "-check_ss_sig", "-CAfile", cert_s, cert_s]);
        assert!(verified.contains(": OK"), "{name}: {verified}");
        assert!(openssl(&["req", "-in", csr_s, "-verify", "-noout"]).contains("verify OK"));
        let public_pem = signer.public_key().to_pem();
        assert_eq!(
            openssl(&["x509", "-in", cert_s, "-noout", "-pubkey"]),
            public_pem
        );
    }
}
