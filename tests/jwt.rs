//! Key-pair JWTs for other services (GitHub App, Entra ID, APNs, RFC 7523), checked the way the
//! services check them: every header member and claim compared with the service's rules, and
//! the signature verified by an independent JOSE library (`jsonwebtoken`) with the public key.
//! Also: the caps and key types each service imposes, the caches' timing, and domain
//! separation from session tokens.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use remote_signer::backend::local::LocalSigner;
use remote_signer::cookie::{SessionSigner, SessionVerifier, SigningMode};
use remote_signer::jwt::{
    ASSERTION_DEFAULT_LIFETIME, ApnsToken, ClientAssertion, GITHUB_DEFAULT_LIFETIME,
    GITHUB_MAX_LIFETIME, GitHubAppJwt,
};
use remote_signer::surrogate::{Clock, ManualClock, TrustedKey};
use remote_signer::{Algorithm, Counted, ErrorKind, KeyType, RemoteSigner};
use serde_json::{Value, json};

use crate::support;
use support::keys::key_file;

const BIN: &str = env!("CARGO_BIN_EXE_remote-signer");
const NOW: u64 = 1_700_000_000;

fn at(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Runs the CLI: exit code, stdout, stderr.
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The CLI's one token: exactly one line on stdout, nothing on stderr.
fn cli_token(args: &[&str]) -> String {
    let (code, stdout, stderr) = cli(args);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let token = stdout.strip_suffix('\n').expect("one line");
    assert!(!token.contains('\n'));
    token.to_string()
}

/// The CLI refuses with one line on stderr that contains `reason`, and prints nothing.
fn cli_refuses(args: &[&str], reason: &str) {
    let (code, stdout, stderr) = cli(args);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(reason), "{stderr:?} lacks {reason:?}");
}

/// The header and claims exactly as they were signed.
fn raw_parts(token: &str) -> (String, String) {
    let mut parts = token.split('.');
    let mut part =
        || String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let header = part();
    let claims = part();
    (header, claims)
}

fn decoding_key(signer: &dyn RemoteSigner) -> jsonwebtoken::DecodingKey {
    let pem = signer.public_key().to_pem();
    match signer.key_type() {
        KeyType::Rsa => jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        KeyType::Ed25519 => jsonwebtoken::DecodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        _ => jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    }
}

/// A validation with only the signature and the given algorithm checked (times are fixed in
/// the past here; the tests compare every claim themselves).
fn signature_only(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
}

/// Verifies with `jsonwebtoken` and returns the header and claims as it decoded them.
fn verified(
    token: &str,
    signer: &dyn RemoteSigner,
    validation: &jsonwebtoken::Validation,
) -> (jsonwebtoken::Header, Value) {
    let data = jsonwebtoken::decode::<Value>(token, &decoding_key(signer), validation)
        .unwrap_or_else(|e| panic!("jsonwebtoken refused the token: {e}"));
    (data.header, data.claims)
}

/// A `jti` is a UUID v4 in its hyphenated lowercase form.
fn assert_uuid_v4(jti: &str) {
    let uuid = uuid::Uuid::parse_str(jti).unwrap();
    assert_eq!(uuid.get_version_num(), 4, "{jti}");
    assert_eq!(uuid.hyphenated().to_string(), jti);
}

// ---- GitHub App ----

#[test]
fn github_app_token_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, signer) = key_file(dir.path(), KeyType::Rsa);
    let rsa = rsa.to_str().unwrap();
    let issued = NOW.to_string();
    let args = [
        "jwt",
        "github-app",
        "--key",
        rsa,
        "--app-id",
        "123456",
        "--issued-at",
        &issued,
    ];
    let token = cli_token(&args);
    let (header, claims) = raw_parts(&token);
    assert_eq!(header, r#"{"alg":"RS256","typ":"JWT"}"#);
    assert_eq!(
        claims,
        format!(
            r#"{{"iat":{},"exp":{},"iss":"123456"}}"#,
            NOW - 60,
            NOW + 540
        )
    );
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iat", "exp", "iss"]);
    validation.set_issuer(&["123456"]);
    verified(&token, &*signer, &validation);
    // RS256 is deterministic: the same inputs give the same token.
    assert_eq!(cli_token(&args), token);

    // A client id works as the issuer too, and 600 s is the longest lifetime.
    let token = cli_token(&[
        "jwt",
        "github-app",
        "--key",
        rsa,
        "--app-id",
        "Iv23liABCDEF",
        "--lifetime",
        "600",
        "--issued-at",
        &issued,
    ]);
    let (_, claims) = raw_parts(&token);
    assert_eq!(
        claims,
        format!(
            r#"{{"iat":{},"exp":{},"iss":"Iv23liABCDEF"}}"#,
            NOW - 60,
            NOW + 600
        )
    );

    cli_refuses(
        &[
            "jwt",
            "github-app",
            "--key",
            rsa,
            "--app-id",
            "1",
            "--lifetime",
            "601",
        ],
        "600 s",
    );
    cli_refuses(
        &[
            "jwt",
            "github-app",
            "--key",
            rsa,
            "--app-id",
            "1",
            "--lifetime",
            "0",
        ],
        "at least 1",
    );
    cli_refuses(
        &["jwt", "github-app", "--key", rsa, "--app-id", ""],
        "GitHub App id",
    );
    let (p256, _) = key_file(dir.path(), KeyType::P256);
    cli_refuses(
        &[
            "jwt",
            "github-app",
            "--key",
            p256.to_str().unwrap(),
            "--app-id",
            "1",
        ],
        "needs an RSA key",
    );
}

#[tokio::test]
async fn github_app_cache_signs_once_per_period_and_renews_ahead_of_expiry() {
    let counted = Arc::new(Counted::new(support::keys::rsa(0)));
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let tokens = GitHubAppJwt::builder(counted.clone(), "42")
        .clock(clock.clone())
        .build()
        .unwrap()
        .cached();
    let gets: Vec<_> = (0..16)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.get().await.unwrap() })
        })
        .collect();
    let mut first = Vec::new();
    for get in gets {
        first.push(get.await.unwrap());
    }
    assert_eq!(counted.signatures(), 1, "single flight");
    assert!(first.iter().all(|t| t.as_str() == first[0].as_str()));
    assert_eq!(first[0].issued_at(), at(NOW - 60));
    assert_eq!(first[0].expires_at(), at(NOW + 540));

    // Renewal is due 60 s plus up to 60 s before exp: not at 419 s, surely at 481 s.
    clock.advance(Duration::from_secs(419));
    assert_eq!(tokens.get().await.unwrap().as_str(), first[0].as_str());
    tokens.settled().await;
    assert_eq!(counted.signatures(), 1);
    clock.advance(Duration::from_secs(62));
    let _ = tokens.get().await.unwrap();
    tokens.settled().await;
    assert_eq!(counted.signatures(), 2);
    let renewed = tokens.get().await.unwrap();
    assert_eq!(renewed.issued_at(), at(NOW + 481 - 60));
    assert_ne!(renewed.as_str(), first[0].as_str());
}

#[test]
fn github_app_builder_reports_what_does_not_fit() {
    let rsa: Arc<dyn RemoteSigner> = Arc::new(support::keys::rsa(0));
    for (lifetime, reason) in [
        (
            Duration::from_secs(601),
            "lifetime of 601 s is over the 600 s",
        ),
        (Duration::ZERO, "whole number of seconds"),
        (Duration::from_millis(1500), "whole number of seconds"),
    ] {
        let err = GitHubAppJwt::builder(rsa.clone(), "42")
            .lifetime(lifetime)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{lifetime:?}");
        assert!(err.to_string().contains(reason), "{err}");
    }
    let err = GitHubAppJwt::builder(rsa.clone(), "").build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let p256: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::P256).unwrap());
    let err = GitHubAppJwt::builder(p256, "42").build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey);

    // The getters read back what was built; `new` is the defaults.
    let built = GitHubAppJwt::builder(rsa.clone(), "42")
        .lifetime(GITHUB_MAX_LIFETIME)
        .build()
        .unwrap();
    assert_eq!(built.lifetime(), GITHUB_MAX_LIFETIME);
    assert_eq!(built.app_id(), "42");
    let defaults = GitHubAppJwt::new(rsa, "42").unwrap();
    assert_eq!(defaults.lifetime(), GITHUB_DEFAULT_LIFETIME);
}

// ---- APNs ----

#[test]
fn apns_token_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (p256, signer) = key_file(dir.path(), KeyType::P256);
    let p256 = p256.to_str().unwrap();
    let issued = NOW.to_string();
    let token = cli_token(&[
        "jwt",
        "apns",
        "--key",
        p256,
        "--team-id",
        "DEF123GHIJ",
        "--key-id",
        "ABC123DEFG",
        "--issued-at",
        &issued,
    ]);
    let (header, claims) = raw_parts(&token);
    assert_eq!(header, r#"{"alg":"ES256","kid":"ABC123DEFG"}"#);
    assert_eq!(claims, format!(r#"{{"iss":"DEF123GHIJ","iat":{NOW}}}"#));
    let (header, _) = verified(
        &token,
        &*signer,
        &signature_only(jsonwebtoken::Algorithm::ES256),
    );
    assert_eq!(header.kid.as_deref(), Some("ABC123DEFG"));

    for key_type in [KeyType::Rsa, KeyType::P384, KeyType::Ed25519] {
        let (other, _) = key_file(dir.path(), key_type);
        cli_refuses(
            &[
                "jwt",
                "apns",
                "--key",
                other.to_str().unwrap(),
                "--team-id",
                "T",
                "--key-id",
                "K",
            ],
            "needs an EC P-256 key",
        );
    }
    cli_refuses(
        &[
            "jwt",
            "apns",
            "--key",
            p256,
            "--team-id",
            "T",
            "--key-id",
            "K\u{7}",
        ],
        "APNs key id",
    );
}

#[tokio::test]
async fn apns_cache_reuses_each_token_for_20_to_50_minutes() {
    let counted = Arc::new(Counted::new(LocalSigner::generate(KeyType::P256).unwrap()));
    // Apple: a new token no sooner than 20 minutes after the last, none older than 60.
    for round in 0..24u64 {
        let start = NOW + round * 7_200;
        let clock = Arc::new(ManualClock::at_unix(start));
        let tokens = ApnsToken::builder(counted.clone(), "TEAM", "KEY")
            .clock(clock.clone())
            .build()
            .unwrap()
            .cached();
        let token = tokens.get().await.unwrap();
        assert_eq!(token.issued_at(), at(start));
        assert_eq!(token.expires_at(), at(start + 3600));
        let due = tokens.status().next_rotation.unwrap();
        assert!(
            due >= at(start + 20 * 60) && due <= at(start + 50 * 60),
            "{due:?}"
        );

        clock.set(at(start + 20 * 60 - 1));
        assert_eq!(tokens.get().await.unwrap().as_str(), token.as_str());
        tokens.settled().await;
        assert_eq!(tokens.status().issued, 1);
        clock.set(at(start + 50 * 60));
        let _ = tokens.get().await.unwrap();
        tokens.settled().await;
        assert_eq!(tokens.status().issued, 2, "renewed by 50 minutes");
    }
}

#[test]
fn apns_builder_reports_what_does_not_fit() {
    let p256: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::P256).unwrap());
    for (team, key) in [("", "KEY"), ("TEAM", "K\u{7}")] {
        let err = ApnsToken::builder(p256.clone(), team, key)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{team:?} {key:?}");
    }
    let ed25519: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::Ed25519).unwrap());
    let err = ApnsToken::builder(ed25519, "TEAM", "KEY")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey);
    assert!(err.to_string().contains("needs an EC P-256 key"), "{err}");

    let built = ApnsToken::new(p256, "TEAM", "KEY").unwrap();
    assert_eq!((built.team_id(), built.key_id()), ("TEAM", "KEY"));
}

// ---- RFC 7523 client assertion ----

#[test]
fn client_assertion_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, signer) = key_file(dir.path(), KeyType::Rsa);
    let rsa = rsa.to_str().unwrap();
    let issued = NOW.to_string();
    let aud = "https://auth.example.com/oauth2/v1/token";
    let args = [
        "jwt",
        "assertion",
        "--key",
        rsa,
        "--issuer",
        "client-1",
        "--subject",
        "client-1",
        "--audience",
        aud,
        "--kid",
        "k1",
        "--claim",
        "scope=\"read write\"",
        "--claim",
        "n={\"a\":[1,2]}",
        "--issued-at",
        &issued,
    ];
    let token = cli_token(&args);
    let (header, claims) = raw_parts(&token);
    assert_eq!(header, r#"{"alg":"RS256","kid":"k1"}"#);
    let parsed: Value = serde_json::from_str(&claims).unwrap();
    let jti = parsed["jti"].as_str().unwrap();
    assert_uuid_v4(jti);
    assert_eq!(
        claims,
        format!(
            r#"{{"iss":"client-1","sub":"client-1","aud":"{aud}","jti":"{jti}","iat":{NOW},"exp":{},"scope":"read write","n":{{"a":[1,2]}}}}"#,
            NOW + 300
        )
    );
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
    validation.set_audience(&[aud]);
    validation.set_issuer(&["client-1"]);
    validation.sub = Some("client-1".into());
    verified(&token, &*signer, &validation);
    // Every assertion has its own jti.
    let again = cli_token(&args);
    let (_, claims_again) = raw_parts(&again);
    let again: Value = serde_json::from_str(&claims_again).unwrap();
    assert_ne!(again["jti"], parsed["jti"]);

    // Another algorithm of the key's family; EC keys sign with their own.
    let token = cli_token(&[
        "jwt",
        "assertion",
        "--key",
        rsa,
        "--issuer",
        "i",
        "--subject",
        "s",
        "--audience",
        "a",
        "--alg",
        "PS256",
        "--lifetime",
        "3600",
        "--issued-at",
        &issued,
    ]);
    let (header, claims) = raw_parts(&token);
    assert_eq!(header, r#"{"alg":"PS256"}"#);
    assert!(claims.ends_with(&format!(r#","iat":{NOW},"exp":{}}}"#, NOW + 3600)));
    verified(
        &token,
        &*signer,
        &signature_only(jsonwebtoken::Algorithm::PS256),
    );
    let (p384, ec) = key_file(dir.path(), KeyType::P384);
    let p384 = p384.to_str().unwrap();
    let token = cli_token(&[
        "jwt",
        "assertion",
        "--key",
        p384,
        "--issuer",
        "i",
        "--subject",
        "s",
        "--audience",
        "a",
    ]);
    assert_eq!(raw_parts(&token).0, r#"{"alg":"ES384"}"#);
    verified(
        &token,
        &*ec,
        &signature_only(jsonwebtoken::Algorithm::ES384),
    );

    let base = [
        "jwt",
        "assertion",
        "--key",
        rsa,
        "--issuer",
        "i",
        "--subject",
        "s",
        "--audience",
        "a",
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    cli_refuses(&with(&["--alg", "ES256"]), "cannot be used with an RSA key");
    cli_refuses(&with(&["--alg", "HS256"]), "unknown algorithm");
    cli_refuses(&with(&["--alg", "none"]), "unknown algorithm");
    cli_refuses(&with(&["--lifetime", "3601"]), "3600 s");
    for reserved in ["iss", "sub", "aud", "jti", "iat", "exp", "nbf"] {
        let claim: &'static str = Box::leak(format!("{reserved}=1").into_boxed_str());
        cli_refuses(&with(&["--claim", claim]), "set by the assertion itself");
    }
    cli_refuses(&with(&["--claim", "scope=read"]), "not JSON");
    cli_refuses(&with(&["--claim", "scope"]), "NAME=JSON");
    cli_refuses(&with(&["--claim", "a=1", "--claim", "a=2"]), "given twice");
    cli_refuses(
        &[
            "jwt",
            "assertion",
            "--key",
            rsa,
            "--issuer",
            "",
            "--subject",
            "s",
            "--audience",
            "a",
        ],
        "issuer",
    );
}

#[tokio::test]
async fn client_assertion_library_reads_its_clock() {
    let signer: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::Ed25519).unwrap());
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let assertion = ClientAssertion::builder(signer.clone(), "i", "s", "a")
        .claim("scope", json!("x"))
        .clock(clock.clone())
        .build()
        .unwrap();
    let token = assertion.sign().await.unwrap();
    assert_eq!(token.issued_at(), at(NOW));
    assert_eq!(token.expires_at(), at(NOW + 300));
    assert_eq!(raw_parts(token.as_str()).0, r#"{"alg":"EdDSA"}"#);
    verified(
        token.as_str(),
        &*signer,
        &signature_only(jsonwebtoken::Algorithm::EdDSA),
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(assertion.sign().await.unwrap().issued_at(), at(NOW + 10));
    // No secret in Debug.
    assert!(!format!("{token:?}").contains(token.as_str()));
    let err = ClientAssertion::builder(signer, "i", "s", "a")
        .lifetime(Duration::from_millis(1500))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn client_assertion_builder_reports_what_does_not_fit() {
    let signer: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::Ed25519).unwrap());
    let builder = || ClientAssertion::builder(signer.clone(), "i", "s", "a");
    let refusals = [
        (
            builder().lifetime(Duration::from_secs(3601)),
            ErrorKind::InvalidInput,
            "lifetime of 3601 s is over the 3600 s",
        ),
        (
            builder().algorithm(Algorithm::ES256),
            ErrorKind::Algorithm,
            "cannot be used with an",
        ),
        (builder().kid(""), ErrorKind::InvalidInput, "key id"),
        (
            builder().claim("exp", json!(1)),
            ErrorKind::InvalidInput,
            "set by the assertion itself",
        ),
        (
            builder().claim("a", json!(1)).claim("a", json!(2)),
            ErrorKind::InvalidInput,
            "given twice",
        ),
        (
            ClientAssertion::builder(signer.clone(), "i", "s", ""),
            ErrorKind::InvalidInput,
            "audience",
        ),
    ];
    for (builder, kind, reason) in refusals {
        let shown = format!("{builder:?}");
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), kind, "{shown}: {err}");
        assert!(err.to_string().contains(reason), "{shown}: {err}");
    }

    // The getters read back what was built; `new` is the defaults.
    let built = builder()
        .algorithm(Algorithm::EdDSA)
        .kid("k1")
        .lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(built.algorithm(), Algorithm::EdDSA);
    assert_eq!(built.kid(), Some("k1"));
    assert_eq!(built.lifetime(), Duration::from_secs(60));
    let defaults = ClientAssertion::new(signer.clone(), "i", "s", "a").unwrap();
    assert_eq!(defaults.algorithm(), signer.default_algorithm());
    assert_eq!(defaults.kid(), None);
    assert_eq!(defaults.lifetime(), ASSERTION_DEFAULT_LIFETIME);
}

// ---- Entra ID ----

#[cfg(feature = "x509")]
mod entra {
    use super::*;

    fn openssl(args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A certificate for the key in `key`, made by openssl.
    fn certificate(dir: &Path, key: &Path, name: &str) -> PathBuf {
        let cert = dir.join(name);
        openssl(&[
            "req",
            "-new",
            "-x509",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            "/CN=app",
            "-days",
            "2",
            "-out",
            cert.to_str().unwrap(),
        ]);
        cert
    }

    #[test]
    fn entra_assertion_from_the_cli() {
        let dir = tempfile::tempdir().unwrap();
        let (rsa, signer) = key_file(dir.path(), KeyType::Rsa);
        let cert = certificate(dir.path(), &rsa, "app.pem");
        let (rsa, cert) = (rsa.to_str().unwrap(), cert.to_str().unwrap());
        // x5t#S256 as openssl computes it: SHA-256 over the certificate's DER.
        let der = openssl(&["x509", "-in", cert, "-outform", "DER"]);
        let digest = openssl_digest(&der);
        let x5t = URL_SAFE_NO_PAD.encode(digest);
        let issued = NOW.to_string();
        let tenant = "contoso.onmicrosoft.com";
        let client = "6731de76-14a6-49ae-97bc-6eba6914391e";
        let token = cli_token(&[
            "jwt",
            "entra",
            "--key",
            rsa,
            "--tenant",
            tenant,
            "--client-id",
            client,
            "--certificate",
            cert,
            "--issued-at",
            &issued,
        ]);
        let (header, claims) = raw_parts(&token);
        assert_eq!(
            header,
            format!(r#"{{"alg":"PS256","typ":"JWT","x5t#S256":"{x5t}"}}"#)
        );
        let parsed: Value = serde_json::from_str(&claims).unwrap();
        let jti = parsed["jti"].as_str().unwrap();
        assert_uuid_v4(jti);
        let aud = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token");
        assert_eq!(
            claims,
            format!(
                r#"{{"aud":"{aud}","iss":"{client}","sub":"{client}","jti":"{jti}","nbf":{NOW},"iat":{NOW},"exp":{}}}"#,
                NOW + 600
            )
        );
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["aud", "iss", "sub", "exp", "nbf"]);
        validation.set_audience(&[&aud]);
        validation.set_issuer(&[client]);
        let (header, _) = verified(&token, &*signer, &validation);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.x5t_s256.as_deref(), Some(x5t.as_str()));

        let base = [
            "jwt",
            "entra",
            "--key",
            rsa,
            "--tenant",
            tenant,
            "--client-id",
            client,
        ];
        let with = |extra: &[&str]| -> Vec<String> {
            base.iter()
                .chain(extra.iter())
                .map(|s| s.to_string())
                .collect()
        };
        let refuses = |args: Vec<String>, reason: &str| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli_refuses(&args, reason);
        };
        refuses(
            with(&["--certificate", cert, "--lifetime", "3601"]),
            "3600 s",
        );
        // A certificate of another key.
        let (other_key, _) = key_file(&dir.path().join(""), KeyType::P256);
        let other_cert = certificate(dir.path(), &other_key, "other.pem");
        refuses(
            with(&["--certificate", other_cert.to_str().unwrap()]),
            "holds another public key",
        );
        refuses(with(&["--certificate", rsa]), "no CERTIFICATE block");
        refuses(
            vec![
                "jwt",
                "entra",
                "--key",
                rsa,
                "--tenant",
                "a/b",
                "--client-id",
                client,
                "--certificate",
                cert,
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            "tenant",
        );
        // Entra asks for PS256: EC keys are refused.
        refuses(
            vec![
                "jwt",
                "entra",
                "--key",
                other_key.to_str().unwrap(),
                "--tenant",
                tenant,
                "--client-id",
                client,
                "--certificate",
                other_cert.to_str().unwrap(),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            "needs an RSA key",
        );
    }

    fn openssl_digest(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-binary"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[tokio::test]
    async fn entra_assertion_is_not_a_session_token() {
        let dir = tempfile::tempdir().unwrap();
        let (rsa, signer) = key_file(dir.path(), KeyType::Rsa);
        let cert = std::fs::read(certificate(dir.path(), &rsa, "app.pem")).unwrap();
        let assertion =
            remote_signer::jwt::EntraAssertion::new(signer.clone(), "contoso.com", "app", &cert)
                .unwrap();
        let token = assertion.sign_at(at(NOW)).await.unwrap();
        // Even with the assertion's audience as the cookie purpose.
        for purpose in ["session", assertion.audience()] {
            let verifier = SessionVerifier::new([TrustedKey::from_signer(&*signer)], purpose);
            assert!(
                verifier.verify_at(at(NOW + 1), token.as_str()).is_err(),
                "{purpose}"
            );
        }
    }
}

// ---- domain separation ----

/// A verifier for session tokens of `signer`'s key that takes every algorithm of its family.
fn session_verifier(signer: &Arc<dyn RemoteSigner>, purpose: &str) -> SessionVerifier {
    let every = signer.key_type().algorithms().iter().copied();
    let key = TrustedKey::with_algorithms(signer.public_key().clone(), every).unwrap();
    SessionVerifier::new([key], purpose)
}

#[tokio::test]
async fn no_token_of_these_kinds_is_a_session_token() {
    let rsa: Arc<dyn RemoteSigner> = Arc::new(support::keys::rsa(0));
    let p256: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::P256).unwrap());
    let now = at(NOW + 1);
    let github = GitHubAppJwt::new(rsa.clone(), "session")
        .unwrap()
        .sign_at(at(NOW))
        .await
        .unwrap();
    let apns = ApnsToken::new(p256.clone(), "session", "session")
        .unwrap()
        .sign_at(at(NOW))
        .await
        .unwrap();
    for (signer, token) in [(&rsa, &github), (&p256, &apns)] {
        assert!(
            session_verifier(signer, "session")
                .verify_at(now, token.as_str())
                .is_err()
        );
    }
    // An assertion whose audience is a cookie purpose, with each key type and algorithm.
    for signer in [&rsa, &p256] {
        for alg in signer.key_type().algorithms() {
            let token = ClientAssertion::builder(signer.clone(), "session", "session", "session")
                .algorithm(*alg)
                .kid(signer.key_id().as_str())
                .build()
                .unwrap()
                .sign_at(at(NOW))
                .await
                .unwrap();
            let err = session_verifier(signer, "session")
                .verify_at(now, token.as_str())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidToken, "{alg}");
        }
    }
}

/// What GitHub checks: RS256, `iat`, `exp` and `iss` (the app id), and a token that lives at
/// most ten minutes (plus the 60 s back-dating).
fn github_accepts(token: &str, signer: &dyn RemoteSigner, app_id: &str) -> bool {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["iat", "exp", "iss"]);
    validation.set_issuer(&[app_id]);
    let Ok(data) = jsonwebtoken::decode::<Value>(token, &decoding_key(signer), &validation) else {
        return false;
    };
    let (iat, exp) = (data.claims["iat"].as_u64(), data.claims["exp"].as_u64());
    matches!((iat, exp), (Some(iat), Some(exp)) if exp > iat && exp - iat <= 660)
}

/// What APNs checks: ES256, a `kid` that is an APNs key id and an `iss` that is a team id
/// (both ten characters, A-Z and 0-9, as Apple assigns them), and `iat`.
fn apns_accepts(token: &str, signer: &dyn RemoteSigner) -> bool {
    let apple_id = |s: Option<&str>| {
        s.is_some_and(|s| {
            s.len() == 10
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
    };
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return false;
    };
    let Ok(data) = jsonwebtoken::decode::<Value>(
        token,
        &decoding_key(signer),
        &signature_only(jsonwebtoken::Algorithm::ES256),
    ) else {
        return false;
    };
    apple_id(header.kid.as_deref())
        && apple_id(data.claims["iss"].as_str())
        && data.claims["iat"].is_u64()
}

/// What an OAuth server checks of a client assertion (RFC 7523 section 3): `iss` = `sub` = the
/// client id, `aud` = its token endpoint, `exp`, and a `jti` it has not seen.
fn assertion_accepts(token: &str, signer: &dyn RemoteSigner, client: &str, aud: &str) -> bool {
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return false;
    };
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
    validation.set_issuer(&[client]);
    validation.sub = Some(client.to_string());
    validation.set_audience(&[aud]);
    jsonwebtoken::decode::<Value>(token, &decoding_key(signer), &validation)
        .is_ok_and(|data| data.claims["jti"].is_string())
}

#[tokio::test]
async fn no_session_token_or_surrogate_certificate_is_a_token_of_these_kinds() {
    let rsa: Arc<dyn RemoteSigner> = Arc::new(support::keys::rsa(0));
    let p256: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::P256).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_unix(NOW));

    // The service checks take the real tokens.
    let github = GitHubAppJwt::new(rsa.clone(), "123456")
        .unwrap()
        .sign_at(at(NOW))
        .await
        .unwrap();
    assert!(github_accepts(github.as_str(), &*rsa, "123456"));
    let apns = ApnsToken::new(p256.clone(), "DEF123GHIJ", "ABC123DEFG")
        .unwrap()
        .sign_at(at(NOW))
        .await
        .unwrap();
    assert!(apns_accepts(apns.as_str(), &*p256));
    for signer in [&rsa, &p256] {
        let token = ClientAssertion::new(signer.clone(), "client", "client", "session")
            .unwrap()
            .sign_at(at(NOW))
            .await
            .unwrap();
        assert!(assertion_accepts(
            token.as_str(),
            &**signer,
            "client",
            "session"
        ));
    }

    for signer in [&rsa, &p256] {
        let claims = json!({"user": "bob"});
        let direct = SessionSigner::builder(signer.clone(), "session")
            .mode(SigningMode::Direct)
            .clock(clock.clone())
            .build()
            .unwrap()
            .sign(&claims)
            .await
            .unwrap();
        let surrogate = SessionSigner::builder(signer.clone(), "session")
            .clock(clock.clone())
            .build()
            .unwrap()
            .sign(&claims)
            .await
            .unwrap();
        let certificate = jsonwebtoken::decode_header(&surrogate).unwrap().extras["cert"].clone();
        for token in [direct.as_str(), certificate.as_str()] {
            // Signed by the managed key itself: only the claims rules can tell the kinds apart.
            let alg = signer.default_algorithm().as_str().parse().unwrap();
            let (_, claims) = verified(token, &**signer, &signature_only(alg));
            // The most favourable parameters: whatever the token claims as its issuer.
            let iss = claims["iss"].as_str().unwrap_or("123456");
            assert!(!github_accepts(token, &**signer, iss), "{claims}");
            assert!(!apns_accepts(token, &**signer), "{claims}");
            for aud in ["session", iss] {
                assert!(!assertion_accepts(token, &**signer, iss, aud), "{claims}");
            }
        }
    }
}

// ---- JWKS ----

#[tokio::test]
async fn jwks_lists_each_key_once_and_verifies_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<(PathBuf, Arc<dyn RemoteSigner>)> =
        [KeyType::Rsa, KeyType::P256, KeyType::Ed25519]
            .into_iter()
            .map(|t| key_file(dir.path(), t))
            .collect();
    let paths: Vec<&str> = keys.iter().map(|(p, _)| p.to_str().unwrap()).collect();
    let mut args = vec!["public-key", "--format", "jwks"];
    for path in paths.iter().chain([&paths[0]]) {
        args.extend(["--key", path]);
    }
    let line = cli_token(&args);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&line).unwrap();
    let raw: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(raw.as_object().unwrap().len(), 1, "only \"keys\"");
    assert_eq!(set.keys.len(), 3, "the repeated key appears once");
    for ((_, signer), jwk) in keys.iter().zip(&set.keys) {
        let public = signer.public_key();
        let alg = signer.default_algorithm().as_str();
        assert_eq!(
            jwk.common.key_id.as_deref(),
            Some(public.jwk_thumbprint().as_str())
        );
        let member = |name: &str| {
            raw["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["kid"] == public.jwk_thumbprint().as_str())
                .unwrap()[name]
                .clone()
        };
        assert_eq!(member("alg"), alg);
        assert_eq!(member("use"), "sig");
        // A server holding only the JWKS verifies the client's assertion.
        let token = ClientAssertion::builder(signer.clone(), "c", "c", "a")
            .kid(public.jwk_thumbprint())
            .build()
            .unwrap()
            .sign_at(at(NOW))
            .await
            .unwrap();
        let kid = jsonwebtoken::decode_header(token.as_str())
            .unwrap()
            .kid
            .unwrap();
        let found = set.find(&kid).expect("kid in the set");
        let key = jsonwebtoken::DecodingKey::from_jwk(found).unwrap();
        jsonwebtoken::decode::<Value>(token.as_str(), &key, &signature_only(alg.parse().unwrap()))
            .unwrap();
    }
    let library = remote_signer::key::Jwks::from_keys(keys.iter().map(|(_, s)| s.public_key()));
    assert_eq!(library.to_json(), line);
    cli_refuses(
        &["public-key", "--key", paths[0], "--key", paths[1]],
        "only --format jwks takes several keys",
    );
}
