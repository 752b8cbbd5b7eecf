//! Session tokens: both modes, independent verification, every refusal, random input, the CLI,
//! and (feature `axum`) the example app end to end.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use remote_signer::backend::local::LocalSigner;
use remote_signer::cookie::{
    DIRECT_RESERVED_CLAIMS, SURROGATE_RESERVED_CLAIMS, SessionSigner, SessionVerifier, SigningMode,
};
use remote_signer::surrogate::{ManualClock, SurrogateSigner, TrustedKey};
use remote_signer::{ErrorKind, KeyType, RemoteSigner};
use serde_json::{Value, json};

use crate::support;

const T0: u64 = 1_767_225_600;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn managed(key_type: KeyType) -> Arc<dyn RemoteSigner> {
    Arc::new(support::keys::any(key_type, 0))
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at_unix(T0))
}

fn surrogate_signer(managed: &Arc<dyn RemoteSigner>, clock: &Arc<ManualClock>) -> SessionSigner {
    let surrogates = SurrogateSigner::builder(managed.clone(), "session")
        .clock(clock.clone())
        .rng(ChaCha20Rng::seed_from_u64(7))
        .build()
        .unwrap();
    SessionSigner::builder(surrogates, "session")
        .build()
        .unwrap()
}

fn verifier(managed: &Arc<dyn RemoteSigner>) -> SessionVerifier {
    SessionVerifier::new([TrustedKey::from_signer(&**managed)], "session")
}

fn parts(token: &str) -> (Value, Value, String) {
    let p: Vec<&str> = token.split('.').collect();
    let dec = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (dec(p[0]), dec(p[1]), p[2].to_string())
}

fn encode(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn refused(result: remote_signer::Result<impl std::fmt::Debug>, kind: ErrorKind, reason: &str) {
    let err = result.expect_err(reason);
    assert_eq!(err.kind(), kind, "{err}");
    assert!(
        err.to_string().contains(reason),
        "{err} (expected {reason:?})"
    );
}

#[tokio::test]
async fn both_modes_round_trip_with_the_claims_iat_exp_and_aud() {
    let clock = clock();
    for key_type in [KeyType::Rsa, KeyType::P256] {
        let managed = managed(key_type);
        let direct = SessionSigner::builder(managed.clone(), "session")
            .mode(SigningMode::Direct)
            .clock(clock.clone())
            .build()
            .unwrap();
        for signer in [surrogate_signer(&managed, &clock), direct] {
            let token = signer
                .sign(&json!({"user": "alice", "roles": ["admin"]}))
                .await
                .unwrap();
            let session = verifier(&managed).verify_at(at(T0 + 5), &token).unwrap();
            assert_eq!(session.mode(), signer.mode());
            assert_eq!(session.get("user"), Some(&json!("alice")));
            assert_eq!(session.get("roles"), Some(&json!(["admin"])));
            assert_eq!(session.get("aud"), Some(&json!("session")));
            assert_eq!(session.issued_at(), at(T0));
            assert_eq!(session.expires_at(), at(T0 + 3600));
            assert_eq!(session.max_age_at(at(T0 + 600)), 3000);
            let (header, _, _) = parts(&token);
            match signer.mode() {
                SigningMode::Surrogate => {
                    assert_eq!(header["alg"], "EdDSA");
                    assert!(header["cert"].is_string());
                    // No `kid`: it would only repeat the thumbprint of the certified key.
                    assert!(header.get("kid").is_none());
                }
                _ => {
                    assert_eq!(header["alg"], managed.default_algorithm().as_str());
                    assert_eq!(header["kid"], managed.public_key().jwk_thumbprint());
                    assert!(header.get("cert").is_none());
                }
            }
            assert_eq!(header["typ"], "session+jwt");
        }
    }
}

#[tokio::test]
async fn surrogate_mode_calls_the_managed_key_once_for_many_tokens() {
    let managed = managed(KeyType::P256);
    let clock = clock();
    let surrogates = SurrogateSigner::builder(managed.clone(), "session")
        .clock(clock.clone())
        .build()
        .unwrap();
    let signer = SessionSigner::builder(surrogates.clone(), "session")
        .build()
        .unwrap();
    for i in 0..200 {
        signer.sign(&json!({ "n": i })).await.unwrap();
    }
    assert_eq!(surrogates.status().attempts, 1);
}

#[tokio::test]
async fn the_builder_reports_what_does_not_fit_together() {
    let managed = managed(KeyType::P256);
    let clock = clock();
    let shared = || {
        SurrogateSigner::builder(managed.clone(), "session")
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    let config = |result: remote_signer::Result<SessionSigner>, why: &str| {
        let err = result.expect_err(why);
        assert_eq!(err.kind(), ErrorKind::Config, "{why}: {err}");
    };
    config(
        SessionSigner::builder(shared(), "session")
            .mode(SigningMode::Direct)
            .build(),
        "direct mode with a surrogate signer",
    );
    config(
        SessionSigner::builder(shared(), "other").build(),
        "a surrogate signer not certified for the purpose",
    );
    config(
        SessionSigner::builder(shared(), "session")
            .clock(clock.clone())
            .build(),
        "a clock that could differ from the surrogate signer's",
    );
    config(
        SessionSigner::builder(shared(), "session").kid("k").build(),
        "a kid the surrogate signer would not use",
    );
    config(
        SessionSigner::builder(managed.clone(), "session")
            .ttl(Duration::from_secs(24 * 3600 + 1))
            .build(),
        "a lifetime past the surrogates' token-expiry bound",
    );
    config(
        SessionSigner::builder(managed.clone(), "").build(),
        "an empty purpose",
    );

    // What fits: the signer reads its surrogates' clock, and a `kid` names the managed key
    // in the certificates of its own surrogates.
    let signer = SessionSigner::builder(managed.clone(), "session")
        .clock(clock.clone())
        .kid("cookies-2026")
        .ttl(Duration::from_secs(600))
        .build()
        .unwrap();
    assert_eq!(signer.ttl(), Duration::from_secs(600));
    assert_eq!(unix(signer.clock().now()), T0);
    let token = signer.sign(&json!({})).await.unwrap();
    let (header, claims, _) = parts(&token);
    assert_eq!(claims["iat"], T0);
    let cert = header["cert"].as_str().unwrap();
    let (cert_header, _, _) = parts(cert);
    assert_eq!(cert_header["kid"], "cookies-2026");
    let trusted = TrustedKey::from_signer(&*managed).kid("cookies-2026");
    SessionVerifier::new([trusted], "session")
        .verify_at(at(T0 + 5), &token)
        .unwrap();
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn reserved_claims_and_non_objects_are_refused_when_signing() {
    let managed = managed(KeyType::P256);
    let direct = SessionSigner::builder(managed.clone(), "session")
        .mode(SigningMode::Direct)
        .build()
        .unwrap();
    let surrogate = SessionSigner::new(managed, "session").unwrap();
    // Direct mode: every registered claim, so the managed key's signature cannot be shaped
    // into another service's token; surrogate mode: the times and the audience.
    for (signer, reserved) in [
        (&direct, &DIRECT_RESERVED_CLAIMS[..]),
        (&surrogate, &SURROGATE_RESERVED_CLAIMS[..]),
    ] {
        for claim in reserved {
            let err = signer.sign(&json!({ *claim: 1 })).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{claim}");
            assert!(err.to_string().contains(claim), "{err}");
        }
        for claims in [json!([1]), json!("s")] {
            let err = signer.sign(&claims).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
        }
    }
    assert_eq!(
        DIRECT_RESERVED_CLAIMS,
        ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]
    );
    assert_eq!(SURROGATE_RESERVED_CLAIMS, ["aud", "exp", "nbf", "iat"]);
    // The surrogate signs only session tokens: `sub`, `iss` and `jti` are the application's.
    let token = surrogate
        .sign(&json!({"sub": "alice", "iss": "app", "jti": "1"}))
        .await
        .unwrap();
    assert_eq!(parts(&token).1["sub"], "alice");
}

#[tokio::test]
async fn a_token_lifetime_past_the_bound_is_refused_when_signing() {
    let managed = managed(KeyType::P256);
    let clock = clock();
    let signer = surrogate_signer(&managed, &clock);
    // Certificate exp = T0 + 1 h, bound = exp + 24 h.
    signer
        .sign_with_ttl(&json!({}), Duration::from_secs(25 * 3600))
        .await
        .unwrap();
    let err = signer
        .sign_with_ttl(&json!({}), Duration::from_secs(25 * 3600 + 1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

// ---- independent verification with the `jsonwebtoken` crate ----

fn jwt_key(managed: &Arc<dyn RemoteSigner>) -> jsonwebtoken::DecodingKey {
    let pem = managed.public_key().to_pem();
    match managed.key_type() {
        KeyType::Rsa => jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        _ => jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    }
}

fn jwt_alg(managed: &Arc<dyn RemoteSigner>) -> jsonwebtoken::Algorithm {
    managed.default_algorithm().as_str().parse().unwrap()
}

#[tokio::test]
async fn tokens_from_both_modes_verify_with_jsonwebtoken() {
    for key_type in [KeyType::Rsa, KeyType::P256] {
        let managed = managed(key_type);
        let claims = json!({"user": "bob"});

        // Surrogate: the certificate with the managed key, then the token with `cnf.jwk`.
        let token = SessionSigner::new(managed.clone(), "session")
            .unwrap()
            .sign(&claims)
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
        let cert = header.extras.get("cert").expect("cert header");
        assert_eq!(header.typ.as_deref(), Some("session+jwt"));
        assert_eq!(header.kid, None);
        let cert_validation = jsonwebtoken::Validation::new(jwt_alg(&managed));
        let cert_data =
            jsonwebtoken::decode::<Value>(cert, &jwt_key(&managed), &cert_validation).unwrap();
        assert_eq!(
            cert_data.header.kid.as_deref(),
            Some(managed.public_key().jwk_thumbprint().as_str())
        );
        let cert_claims = cert_data.claims;
        for derivable in ["iss", "sub", "nbf"] {
            assert!(cert_claims.get(derivable).is_none(), "{derivable} is sent");
        }
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(cert_claims["cnf"]["jwk"].clone()).unwrap();
        let surrogate = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_audience(&["session"]);
        let data = jsonwebtoken::decode::<Value>(&token, &surrogate, &validation).unwrap();
        assert_eq!(data.claims["user"], "bob");
        validation.set_audience(&["csrf"]);
        assert!(jsonwebtoken::decode::<Value>(&token, &surrogate, &validation).is_err());

        // Direct: the token with the managed key.
        let token = SessionSigner::builder(managed.clone(), "session")
            .mode(SigningMode::Direct)
            .build()
            .unwrap()
            .sign(&claims)
            .await
            .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jwt_alg(&managed));
        validation.set_audience(&["session"]);
        let data = jsonwebtoken::decode::<Value>(&token, &jwt_key(&managed), &validation).unwrap();
        assert_eq!(data.claims["user"], "bob");
        assert_eq!(
            data.header.kid.as_deref(),
            Some(managed.public_key().jwk_thumbprint().as_str())
        );
        assert_eq!(data.header.typ.as_deref(), Some("session+jwt"));
    }
}

// ---- refusals ----

struct Fixture {
    managed: Arc<dyn RemoteSigner>,
    clock: Arc<ManualClock>,
    surrogate_token: String,
    direct_token: String,
}

async fn fixture(key_type: KeyType) -> Fixture {
    let managed = managed(key_type);
    let clock = clock();
    let surrogate_token = surrogate_signer(&managed, &clock)
        .sign(&json!({"user": "alice"}))
        .await
        .unwrap();
    let direct_token = SessionSigner::builder(managed.clone(), "session")
        .mode(SigningMode::Direct)
        .clock(clock.clone())
        .build()
        .unwrap()
        .sign(&json!({"user": "alice"}))
        .await
        .unwrap();
    Fixture {
        managed,
        clock,
        surrogate_token,
        direct_token,
    }
}

impl Fixture {
    fn verify(&self, token: &str) -> remote_signer::Result<remote_signer::cookie::Session> {
        verifier(&self.managed).verify_at(at(T0 + 5), token)
    }
}

#[tokio::test]
async fn alg_none_hmac_with_the_public_key_and_algorithm_swaps_are_refused() {
    let f = fixture(KeyType::Rsa).await;
    for token in [&f.surrogate_token, &f.direct_token] {
        let (mut header, claims, _) = parts(token);
        // alg none, empty signature and a junk one.
        header["alg"] = "none".into();
        let unsigned = format!("{}.{}.", encode(&header), encode(&claims));
        refused(f.verify(&unsigned), ErrorKind::InvalidToken, "compact JWS");
        let junk = format!("{}.{}.AAAA", encode(&header), encode(&claims));
        assert_eq!(f.verify(&junk).unwrap_err().kind(), ErrorKind::InvalidToken);

        // HS256 keyed with the managed public key, in PEM and DER (the classic confusion).
        for secret in [
            f.managed.public_key().to_pem().into_bytes(),
            f.managed.public_key().to_spki_der(),
        ] {
            let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            hs_header.typ = Some("session+jwt".into());
            hs_header.kid = header["kid"].as_str().map(str::to_string);
            if let Some(cert) = header.get("cert").and_then(Value::as_str) {
                hs_header.extras.insert("cert".into(), cert.into());
            }
            let forged = jsonwebtoken::encode(
                &hs_header,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(&secret),
            )
            .unwrap();
            assert_eq!(
                f.verify(&forged).unwrap_err().kind(),
                ErrorKind::InvalidToken
            );
        }
    }
    // Swaps: PS256 over an RS256 signature (same key family), ES256 on an RSA key.
    let (mut header, claims, sig) = parts(&f.direct_token);
    for alg in ["PS256", "ES256", "RS512", "EdDSA"] {
        header["alg"] = alg.into();
        let swapped = format!("{}.{}.{sig}", encode(&header), encode(&claims));
        assert_eq!(
            f.verify(&swapped).unwrap_err().kind(),
            ErrorKind::InvalidToken,
            "{alg}"
        );
    }
    let (mut header, claims, sig) = parts(&f.surrogate_token);
    header["alg"] = "RS256".into();
    let swapped = format!("{}.{}.{sig}", encode(&header), encode(&claims));
    refused(f.verify(&swapped), ErrorKind::InvalidToken, "algorithm");
}

#[tokio::test]
async fn tampered_headers_payloads_signatures_and_certificates_are_refused() {
    let f = fixture(KeyType::P256).await;
    for token in [&f.surrogate_token, &f.direct_token] {
        f.verify(token).unwrap();
        let (header, claims, sig) = parts(token);

        let mut h = header.clone();
        h["kid"] = "someone-else".into();
        let t = format!("{}.{}.{sig}", encode(&h), encode(&claims));
        assert_eq!(f.verify(&t).unwrap_err().kind(), ErrorKind::InvalidToken);

        let mut h = header.clone();
        h["typ"] = "surrogate+jwt".into();
        let t = format!("{}.{}.{sig}", encode(&h), encode(&claims));
        refused(f.verify(&t), ErrorKind::InvalidToken, "typ");

        for crit in [json!(["exp"]), Value::Null, json!([])] {
            let mut h = header.clone();
            h["crit"] = crit;
            let t = format!("{}.{}.{sig}", encode(&h), encode(&claims));
            refused(f.verify(&t), ErrorKind::InvalidToken, "critical");
        }

        let mut c = claims.clone();
        c["user"] = "mallory".into();
        let t = format!("{}.{}.{sig}", encode(&header), encode(&c));
        refused(f.verify(&t), ErrorKind::InvalidToken, "signature");

        let mut raw = URL_SAFE_NO_PAD.decode(&sig).unwrap();
        raw[0] ^= 1;
        let t = format!(
            "{}.{}.{}",
            encode(&header),
            encode(&claims),
            URL_SAFE_NO_PAD.encode(raw)
        );
        refused(f.verify(&t), ErrorKind::InvalidToken, "signature");
    }

    // The certificate inside the header: tampered claims, or another key's certificate.
    let (header, claims, sig) = parts(&f.surrogate_token);
    let cert = header["cert"].as_str().unwrap();
    let (cert_header, mut cert_claims, cert_sig) = parts(cert);
    cert_claims["max_exp"] = json!(T0 + 100 * 24 * 3600);
    let mut h = header.clone();
    h["cert"] = format!(
        "{}.{}.{cert_sig}",
        encode(&cert_header),
        encode(&cert_claims)
    )
    .into();
    let t = format!("{}.{}.{sig}", encode(&h), encode(&claims));
    refused(f.verify(&t), ErrorKind::InvalidToken, "trusted managed key");

    let stranger = managed(KeyType::P256);
    let foreign = surrogate_signer(&stranger, &f.clock)
        .sign(&json!({"user": "alice"}))
        .await
        .unwrap();
    refused(
        f.verify(&foreign),
        ErrorKind::InvalidToken,
        "trusted managed key",
    );
}

#[tokio::test]
async fn wrong_audience_and_wrong_purpose_certificates_are_refused() {
    let f = fixture(KeyType::P256).await;
    let other = SessionVerifier::new([TrustedKey::from_signer(&*f.managed)], "csrf");
    refused(
        other.verify_at(at(T0 + 5), &f.direct_token),
        ErrorKind::InvalidToken,
        "audience",
    );
    refused(
        other.verify_at(at(T0 + 5), &f.surrogate_token),
        ErrorKind::InvalidToken,
        "another purpose",
    );
    // A surrogate certified for "csrf" only, signing a token whose aud says "session".
    let surrogates = SurrogateSigner::builder(f.managed.clone(), "csrf")
        .clock(f.clock.clone())
        .build()
        .unwrap();
    let key = surrogates.current().await.unwrap();
    let header = json!({"alg":"EdDSA","typ":"session+jwt","cert":key.certificate()});
    let claims = json!({"user":"alice","iat":T0,"exp":T0+60,"aud":"session"});
    let input = format!("{}.{}", encode(&header), encode(&claims));
    let t = format!("{input}.{}", key.sign(input.as_bytes()).to_base64url());
    refused(f.verify(&t), ErrorKind::InvalidToken, "another purpose");
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_with_bounded_leeway() {
    let f = fixture(KeyType::P256).await;
    for token in [&f.surrogate_token, &f.direct_token] {
        let v = SessionVerifier::builder([TrustedKey::from_signer(&*f.managed)], "session")
            .leeway(Duration::from_secs(30))
            .build();
        v.verify_at(at(T0 + 3600 + 30), token).unwrap();
        refused(
            v.verify_at(at(T0 + 3600 + 31), token),
            ErrorKind::Expired,
            "expired",
        );
        v.verify_at(at(T0 - 30), token).unwrap();
        refused(
            v.verify_at(at(T0 - 31), token),
            ErrorKind::Expired,
            "not yet valid",
        );
    }
}

/// A token signed by a real certified surrogate, with chosen times.
async fn surrogate_token_with_times(f: &Fixture, iat: u64, exp: u64) -> String {
    let surrogates = SurrogateSigner::builder(f.managed.clone(), "session")
        .clock(f.clock.clone())
        .build()
        .unwrap();
    let key = surrogates.current().await.unwrap();
    let header = json!({"alg":"EdDSA","typ":"session+jwt","cert":key.certificate()});
    let claims = json!({"user":"alice","iat":iat,"exp":exp,"aud":"session"});
    let input = format!("{}.{}", encode(&header), encode(&claims));
    format!("{input}.{}", key.sign(input.as_bytes()).to_base64url())
}

#[tokio::test]
async fn tokens_signed_outside_the_certificate_window_or_past_its_bound_are_refused() {
    let f = fixture(KeyType::P256).await;
    // Tokens here may live longer than the default day, to reach the certificate's bound.
    let v = SessionVerifier::builder([TrustedKey::from_signer(&*f.managed)], "session")
        .max_token_lifetime(Duration::from_secs(2 * 24 * 3600))
        .build();
    // The certificate's window is [T0, T0 + 1 h]; its bound T0 + 25 h.
    let late = surrogate_token_with_times(&f, T0 + 2 * 3600, T0 + 3 * 3600).await;
    refused(
        v.verify_at(at(T0 + 2 * 3600 + 5), &late),
        ErrorKind::InvalidToken,
        "outside its certificate's window",
    );
    let early = surrogate_token_with_times(&f, T0 - 3600, T0 + 60).await;
    refused(
        v.verify_at(at(T0), &early),
        ErrorKind::InvalidToken,
        "outside its certificate's window",
    );
    let beyond = surrogate_token_with_times(&f, T0 + 10, T0 + 25 * 3600 + 1).await;
    refused(
        v.verify_at(at(T0 + 20), &beyond),
        ErrorKind::InvalidToken,
        "bound",
    );
    // Long sessions outlive the surrogate's window, up to the bound.
    let long = surrogate_token_with_times(&f, T0 + 10, T0 + 25 * 3600).await;
    v.verify_at(at(T0 + 20 * 3600), &long).unwrap();
}

#[tokio::test]
async fn oversized_input_is_refused_before_decoding() {
    let f = fixture(KeyType::P256).await;
    let v = verifier(&f.managed);
    let huge = "A".repeat(8 * 1024 + 1);
    refused(
        v.verify_at(at(T0), &huge),
        ErrorKind::InvalidToken,
        "larger",
    );
    let v = SessionVerifier::builder([TrustedKey::from_signer(&*f.managed)], "session")
        .max_token_len(100)
        .build();
    refused(
        v.verify_at(at(T0 + 5), &f.surrogate_token),
        ErrorKind::InvalidToken,
        "larger",
    );
}

#[tokio::test]
async fn random_and_mutated_tokens_only_ever_produce_errors() {
    let f = fixture(KeyType::P256).await;
    let v = verifier(&f.managed);
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    let alphabet =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\"\0\xff";
    let originals = [f.surrogate_token.clone(), f.direct_token.clone()];
    for i in 0..6_000u32 {
        let base = &originals[(i % 2) as usize];
        let mut bytes = base.clone().into_bytes();
        match rng.next_u32() % 6 {
            0 => {
                let n = (rng.next_u32() % 400) as usize;
                bytes = (0..n)
                    .map(|_| alphabet[(rng.next_u32() as usize) % alphabet.len()])
                    .collect();
            }
            1 => {
                let at = (rng.next_u32() as usize) % bytes.len();
                bytes[at] = alphabet[(rng.next_u32() as usize) % alphabet.len()];
            }
            2 => bytes.truncate((rng.next_u32() as usize) % bytes.len()),
            3 => {
                let at = (rng.next_u32() as usize) % bytes.len();
                bytes.insert(at, b'.');
            }
            4 => {
                let at = (rng.next_u32() as usize) % bytes.len();
                bytes[at] ^= 1 << (rng.next_u32() % 7);
            }
            _ => {
                let at = (rng.next_u32() as usize) % bytes.len();
                bytes.drain(at..(at + 4).min(bytes.len()));
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(session) = v.verify_at(at(T0 + 5), &text) {
            // Only an unchanged token may pass.
            assert_eq!(&*text, base.as_str(), "a mutated token was accepted");
            assert_eq!(session.get("user"), Some(&json!("alice")));
        }
    }
}

// ---- the command-line tool ----

fn cli(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_remote-signer"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn cli_signs_and_verifies_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("managed.pem");
    let signer = LocalSigner::generate_to_file(KeyType::P256, &key).unwrap();
    let public = dir.path().join("managed.pub.pem");
    std::fs::write(&public, signer.public_key().to_pem()).unwrap();
    let key = key.to_str().unwrap();
    let public = public.to_str().unwrap();
    let claims_file = dir.path().join("claims.json");
    std::fs::write(&claims_file, r#"{"user":"carol"}"#).unwrap();

    for direct in [false, true] {
        let mut args = vec!["cookie", "sign", "--key", key, "--purpose", "session"];
        if direct {
            args.push("--direct");
        }
        let (code, token, err) = cli(&args, r#"{"user":"carol","n":1}"#);
        assert_eq!(code, 0, "{err}");
        assert_eq!(token.lines().count(), 1);
        let (header, claims, _) = parts(token.trim());
        // Nothing in the token (or its certificate) says where the managed key is kept.
        let mut decoded = format!("{header}{claims}");
        if let Some(cert) = header["cert"].as_str() {
            let (cert_header, cert_claims, _) = parts(cert);
            assert_eq!(cert_header["kid"], signer.public_key().jwk_thumbprint());
            decoded.push_str(&format!("{cert_header}{cert_claims}"));
        } else {
            assert_eq!(header["kid"], signer.public_key().jwk_thumbprint());
        }
        let dir_name = dir.path().file_name().unwrap().to_str().unwrap();
        for location in [dir_name, "managed.pem", "file:", "/tmp"] {
            assert!(!decoded.contains(location), "{location} in {decoded}");
        }
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );

        for trust in [key, public] {
            let (code, out, err) = cli(
                &["cookie", "verify", "--trust", trust, "--purpose", "session"],
                &token,
            );
            assert_eq!(code, 0, "{err}");
            let claims: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(claims["user"], "carol");
            assert_eq!(claims["aud"], "session");
        }
        // Wrong purpose, tampered token, untrusted key: exit 1, one line on stderr.
        let other = LocalSigner::generate_to_file(
            KeyType::P256,
            dir.path().join(format!("other-{direct}.pem")),
        )
        .unwrap();
        let other_path = other.path().unwrap().to_str().unwrap().to_string();
        let mut tampered = token.trim().to_string();
        let mid = tampered.len() / 2;
        let c = if &tampered[mid..=mid] == "A" {
            "B"
        } else {
            "A"
        };
        tampered.replace_range(mid..=mid, c);
        for (trust, purpose, input) in [
            (public, "csrf", token.as_str()),
            (public, "session", tampered.as_str()),
            (other_path.as_str(), "session", token.as_str()),
            (public, "session", "not a token"),
        ] {
            let (code, out, err) = cli(
                &["cookie", "verify", "--trust", trust, "--purpose", purpose],
                input,
            );
            assert_eq!(code, 1, "{err}");
            assert!(out.is_empty());
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
    // --in FILE and --ttl; several --trust.
    let (code, token, err) = cli(
        &[
            "cookie",
            "sign",
            "--key",
            key,
            "--purpose",
            "p",
            "--ttl",
            "60",
            "--in",
            claims_file.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let (_, claims, _) = parts(token.trim());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        60
    );
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let stranger = dir.path().join("stranger.pub.pem");
    std::fs::write(&stranger, support::keys::rsa(0).public_key().to_pem()).unwrap();
    let (code, out, err) = cli(
        &[
            "cookie",
            "verify",
            "--trust",
            stranger.to_str().unwrap(),
            "--trust",
            public,
            "--purpose",
            "p",
            "--in",
            token_file.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("carol"));
    // A trusted key that cannot be read: also one line and exit 1.
    let (code, out, err) = cli(
        &[
            "cookie",
            "verify",
            "--trust",
            "/nonexistent/key.pem",
            "--purpose",
            "p",
        ],
        &token,
    );
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    // Claims that are not a JSON object.
    let (code, _, err) = cli(&["cookie", "sign", "--key", key, "--purpose", "p"], "[1]");
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1);
}

// ---- the example app, end to end ----

#[cfg(feature = "axum")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_logs_in_shows_the_page_refuses_tampering_and_logs_out() {
    use reqwest::cookie::CookieStore as _;
    use std::io::BufRead as _;
    // reqwest is built without a TLS provider of its own (the suite uses rustls with ring).
    let _ = rustls::crypto::ring::default_provider().install_default();

    // The app as a user starts it, on an RSA key file and a port of its own choosing.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("cookies.pem");
    support::keys::rsa_file(0, &key);
    let mut app = support::examples::Running(
        Command::new(support::examples::path("cookie_app"))
            .env("COOKIE_APP_KEY", &key)
            .env("COOKIE_APP_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    std::io::BufReader::new(app.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first
        .trim_end()
        .split_once("listening on ")
        .map(|(_, url)| url.trim_end_matches('/').to_string())
        .unwrap_or_else(|| panic!("the app did not say where it listens: {first:?}"));

    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let url = |path: &str| format!("{base}{path}");

    let page = client.get(url("/account")).send().await.unwrap();
    assert_eq!(page.status(), 401, "no session yet");
    let home = client
        .get(url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("Log in"), "{home}");

    // Log in: the form post sets the cookie and redirects to the account page.
    let login = client
        .post(url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=alice%20%3Cadmin%3E")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(login.url().path(), "/account");
    let body = login.text().await.unwrap();
    assert!(body.contains("Signed in as alice &lt;admin&gt;."), "{body}");

    let page = client.get(url("/account")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let home = client
        .get(url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("You are signed in."), "{home}");

    // The cookie as the browser holds it, and its attributes as the server set them.
    let cookie_header = jar
        .cookies(&url("/").parse().unwrap())
        .expect("session cookie stored");
    let cookie = cookie_header.to_str().unwrap().to_string();
    let token = cookie.strip_prefix("session=").unwrap().to_string();
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let set = raw
        .post(url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=bob")
        .send()
        .await
        .unwrap();
    let set_cookie = set.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in [
        "Max-Age=3600",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }

    // A tampered cookie is refused.
    let (header, mut claims, sig) = parts(&token);
    claims["user"] = "mallory".into();
    let forged = format!("{}.{}.{sig}", encode(&header), encode(&claims));
    for value in [forged, format!("{token}x"), String::new()] {
        let page = raw
            .get(url("/account"))
            .header("cookie", format!("session={value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 401);
    }
    let page = raw
        .get(url("/account"))
        .header("cookie", format!("other=1; session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the genuine cookie still works");

    // Log out: the cookie is cleared and the page needs a session again.
    let out = client.post(url("/logout")).send().await.unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(out.url().path(), "/");
    assert!(out.text().await.unwrap().contains("Log in"));
    assert!(jar.cookies(&url("/").parse().unwrap()).is_none());
    let page = client.get(url("/account")).send().await.unwrap();
    assert_eq!(page.status(), 401);
}

// ---- tokens and certificates built by an independent JOSE library ----

/// A managed key in a PEM file, so `jsonwebtoken` can sign with the very same key.
struct PemKey {
    _dir: tempfile::TempDir,
    managed: Arc<dyn RemoteSigner>,
    encoding: jsonwebtoken::EncodingKey,
}

fn pem_key(key_type: KeyType) -> PemKey {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    let local = support::keys::any_file(key_type, 0, &path);
    let pem = std::fs::read(&path).unwrap();
    let encoding = match key_type {
        KeyType::Rsa => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
        KeyType::Ed25519 => jsonwebtoken::EncodingKey::from_ed_pem(&pem),
        _ => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
    }
    .unwrap();
    PemKey {
        _dir: dir,
        managed: Arc::new(local),
        encoding,
    }
}

fn jose_header(
    alg: jsonwebtoken::Algorithm,
    typ: &str,
    kid: Option<String>,
) -> jsonwebtoken::Header {
    let mut header = jsonwebtoken::Header::new(alg);
    header.typ = Some(typ.into());
    header.kid = kid;
    header
}

/// A surrogate-mode token in this crate's format, built with `jsonwebtoken` alone: a
/// certificate signed by the managed key over `cert_claims` (plus `cnf.jwk`), and a token
/// signed by the certified Ed25519 key over `claims`.
fn independent_surrogate_token(managed: &PemKey, mut cert_claims: Value, claims: &Value) -> String {
    let surrogate = pem_key(KeyType::Ed25519);
    let mut jwk = serde_json::to_value(surrogate.managed.public_key().to_jwk()).unwrap();
    jwk.as_object_mut().unwrap().remove("kid");
    cert_claims["cnf"] = json!({ "jwk": jwk });
    let alg = jwt_alg(&managed.managed);
    let kid = managed.managed.public_key().jwk_thumbprint();
    let cert = jsonwebtoken::encode(
        &jose_header(alg, "surrogate+jwt", Some(kid)),
        &cert_claims,
        &managed.encoding,
    )
    .unwrap();
    let mut header = jose_header(jsonwebtoken::Algorithm::EdDSA, "session+jwt", None);
    header.extras.insert("cert".into(), cert);
    jsonwebtoken::encode(&header, claims, &surrogate.encoding).unwrap()
}

fn independent_direct_token(managed: &PemKey, typ: &str, claims: &Value) -> String {
    let alg = jwt_alg(&managed.managed);
    let kid = managed.managed.public_key().jwk_thumbprint();
    jsonwebtoken::encode(&jose_header(alg, typ, Some(kid)), claims, &managed.encoding).unwrap()
}

fn session_claims(iat: u64, exp: u64) -> Value {
    json!({"user": "alice", "iat": iat, "exp": exp, "aud": "session"})
}

#[tokio::test]
async fn tokens_an_independent_implementation_builds_in_the_same_format_are_accepted() {
    for key_type in [KeyType::Rsa, KeyType::P256] {
        let key = pem_key(key_type);
        let v = verifier(&key.managed);
        let cert = json!({"iat": T0, "exp": T0 + 3600, "pur": ["session"], "max_exp": T0 + 7200});
        let token = independent_surrogate_token(&key, cert, &session_claims(T0, T0 + 600));
        let session = v.verify_at(at(T0 + 5), &token).unwrap();
        assert_eq!(session.mode(), SigningMode::Surrogate);
        assert_eq!(session.get("user"), Some(&json!("alice")));

        let token = independent_direct_token(&key, "session+jwt", &session_claims(T0, T0 + 600));
        let session = v.verify_at(at(T0 + 5), &token).unwrap();
        assert_eq!(session.mode(), SigningMode::Direct);
    }
}

/// The managed key's signature over another protocol's JWT (plain `typ` `JWT`, as Snowflake
/// and OAuth assertions carry, or none) is no session token, in either mode.
#[tokio::test]
async fn jwts_of_another_type_signed_by_the_managed_key_are_refused() {
    let key = pem_key(KeyType::Rsa);
    let v = verifier(&key.managed);
    for typ in ["JWT", "surrogate+jwt", "at+jwt"] {
        let token = independent_direct_token(&key, typ, &session_claims(T0, T0 + 600));
        refused(
            v.verify_at(at(T0 + 5), &token),
            ErrorKind::InvalidToken,
            "typ",
        );
    }
    let alg = jwt_alg(&key.managed);
    let mut untyped = jsonwebtoken::Header::new(alg);
    untyped.typ = None;
    untyped.kid = Some(key.managed.public_key().jwk_thumbprint());
    let token =
        jsonwebtoken::encode(&untyped, &session_claims(T0, T0 + 600), &key.encoding).unwrap();
    refused(
        v.verify_at(at(T0 + 5), &token),
        ErrorKind::InvalidToken,
        "typ",
    );
    // A direct token that does not name its key, or names another, is refused too.
    let token = jsonwebtoken::encode(
        &jose_header(alg, "session+jwt", None),
        &session_claims(T0, T0 + 600),
        &key.encoding,
    )
    .unwrap();
    refused(
        v.verify_at(at(T0 + 5), &token),
        ErrorKind::InvalidToken,
        "kid",
    );
    let token = jsonwebtoken::encode(
        &jose_header(
            alg,
            "session+jwt",
            Some("file:///srv/keys/session.pem".into()),
        ),
        &session_claims(T0, T0 + 600),
        &key.encoding,
    )
    .unwrap();
    refused(
        v.verify_at(at(T0 + 5), &token),
        ErrorKind::InvalidToken,
        "not trusted",
    );
}

/// Whatever the managed key signed, the verifier bounds what certificates and tokens claim.
#[tokio::test]
async fn over_long_certificates_and_tokens_signed_by_the_real_managed_key_are_refused() {
    let day = 24 * 3600;
    let key = pem_key(KeyType::P256);
    let v = verifier(&key.managed);
    let token = |cert: Value, claims: Value| independent_surrogate_token(&key, cert, &claims);
    let claims = session_claims(T0, T0 + 600);
    let cases = [
        // A certificate for ten years (the forgery from the issue).
        (
            token(
                json!({"iat": T0, "exp": T0 + 3650 * day, "pur": ["session"], "max_exp": T0 + 3650 * day}),
                claims.clone(),
            ),
            "signing window is longer than allowed",
        ),
        // A window of 7 days and a second.
        (
            token(
                json!({"iat": T0, "exp": T0 + 7 * day + 1, "pur": ["session"], "max_exp": T0 + 7 * day + 1}),
                claims.clone(),
            ),
            "signing window is longer than allowed",
        ),
        // Tokens may outlive the certificate by a day and a second.
        (
            token(
                json!({"iat": T0, "exp": T0 + 3600, "pur": ["session"], "max_exp": T0 + 3600 + day + 1}),
                claims.clone(),
            ),
            "token bound is longer than allowed",
        ),
        // A certificate issued ten minutes in the future.
        (
            token(
                json!({"iat": T0 + 600, "exp": T0 + 3600, "pur": ["session"], "max_exp": T0 + 3600}),
                claims.clone(),
            ),
            "issued in the future",
        ),
        // A token living a day and a second, though within its certificate's bound.
        (
            token(
                json!({"iat": T0, "exp": T0 + 3600, "pur": ["session"], "max_exp": T0 + 3600 + day}),
                session_claims(T0, T0 + day + 1),
            ),
            "lifetime is longer than allowed",
        ),
        // A direct token for purpose `session` valid until 2100 (the forgery from the issue).
        (
            independent_direct_token(&key, "session+jwt", &session_claims(T0, 4_102_444_800)),
            "lifetime is longer than allowed",
        ),
    ];
    for (token, reason) in &cases {
        refused(
            v.verify_at(at(T0 + 5), token),
            ErrorKind::InvalidToken,
            reason,
        );
    }
    // At the caps they pass; and the caps are the verifier's to set, on its builder.
    let at_caps = [
        token(
            json!({"iat": T0, "exp": T0 + 7 * day, "pur": ["session"], "max_exp": T0 + 7 * day}),
            claims.clone(),
        ),
        token(
            json!({"iat": T0, "exp": T0 + 3600, "pur": ["session"], "max_exp": T0 + 3600 + day}),
            session_claims(T0, T0 + day),
        ),
        independent_direct_token(&key, "session+jwt", &session_claims(T0, T0 + day)),
    ];
    for token in &at_caps {
        v.verify_at(at(T0 + 5), token).unwrap();
    }
    let lenient = SessionVerifier::builder([TrustedKey::from_signer(&*key.managed)], "session")
        .max_certificate_window(Duration::from_secs(8 * day))
        .max_token_bound(Duration::from_secs(2 * day))
        .max_token_lifetime(Duration::from_secs(2 * day))
        .build();
    for (token, _) in &cases[1..3] {
        lenient.verify_at(at(T0 + 5), token).unwrap();
    }
    lenient.verify_at(at(T0 + 5), &cases[4].0).unwrap();
    let strict = SessionVerifier::builder([TrustedKey::from_signer(&*key.managed)], "session")
        .max_token_lifetime(Duration::from_secs(60))
        .build();
    let direct = independent_direct_token(&key, "session+jwt", &session_claims(T0, T0 + 61));
    refused(
        strict.verify_at(at(T0 + 5), &direct),
        ErrorKind::InvalidToken,
        "lifetime",
    );
}

#[tokio::test]
async fn a_token_before_its_nbf_is_refused_in_both_modes() {
    let key = pem_key(KeyType::P256);
    let v = verifier(&key.managed);
    let mut claims = session_claims(T0, T0 + 3600);
    claims["nbf"] = json!(T0 + 600);
    let cert = json!({"iat": T0, "exp": T0 + 3600, "pur": ["session"], "max_exp": T0 + 7200});
    for token in [
        independent_surrogate_token(&key, cert, &claims),
        independent_direct_token(&key, "session+jwt", &claims),
    ] {
        refused(
            v.verify_at(at(T0 + 539), &token),
            ErrorKind::Expired,
            "not yet valid",
        );
        // The refusal is not remembered, nor is the acceptance served early.
        v.verify_at(at(T0 + 540), &token).unwrap();
        refused(
            v.verify_at(at(T0 + 500), &token),
            ErrorKind::Expired,
            "not yet valid",
        );
    }
    let mut bad = session_claims(T0, T0 + 3600);
    bad["nbf"] = json!("soon");
    let token = independent_direct_token(&key, "session+jwt", &bad);
    refused(
        v.verify_at(at(T0 + 5), &token),
        ErrorKind::InvalidToken,
        "nbf",
    );
}

// ---- the cache of verified tokens ----

#[tokio::test]
async fn a_cached_token_is_never_served_past_its_expiry() {
    let f = fixture(KeyType::P256).await;
    for token in [&f.surrogate_token, &f.direct_token] {
        let v = SessionVerifier::builder([TrustedKey::from_signer(&*f.managed)], "session")
            .leeway(Duration::ZERO)
            .build();
        let first = v.verify_at(at(T0 + 5), token).unwrap();
        assert_eq!(v.cached_tokens(), 1);
        assert_eq!(v.verify_at(at(T0 + 3599), token).unwrap(), first);
        assert_eq!(v.cached_tokens(), 1);
        // Expiry is T0 + 3600: verified in full there (still valid, no leeway), refused after.
        v.verify_at(at(T0 + 3600), token).unwrap();
        refused(
            v.verify_at(at(T0 + 3601), token),
            ErrorKind::Expired,
            "expired",
        );
        refused(
            v.verify_at(at(T0 + 90_000), token),
            ErrorKind::Expired,
            "expired",
        );
    }
}

/// Entries are found by the signature and confirmed on the whole token: a token that shares
/// a cached token's signature but not its claims gets no cached session.
#[tokio::test]
async fn a_different_token_never_hits_another_tokens_entry() {
    let f = fixture(KeyType::P256).await;
    let v = verifier(&f.managed);
    for token in [&f.surrogate_token, &f.direct_token] {
        v.verify_at(at(T0 + 5), token).unwrap();
        let (header, mut claims, sig) = parts(token);
        claims["user"] = "mallory".into();
        let forged = format!("{}.{}.{sig}", encode(&header), encode(&claims));
        refused(
            v.verify_at(at(T0 + 6), &forged),
            ErrorKind::InvalidToken,
            "signature",
        );
        // A prefix or an extension of the cached token is no hit either.
        assert!(v.verify_at(at(T0 + 6), &token[..token.len() - 1]).is_err());
        assert!(v.verify_at(at(T0 + 6), &format!("{token}A")).is_err());
        assert!(v.verify_at(at(T0 + 6), &format!("x{token}")).is_err());
    }
    assert_eq!(v.cached_tokens(), 2);
}

#[tokio::test]
async fn the_token_cache_stays_within_its_budget() {
    let managed = managed(KeyType::P256);
    let clock = clock();
    let signer = surrogate_signer(&managed, &clock);
    let first = signer.sign(&json!({"n": 0})).await.unwrap();
    // Room for three such tokens in each of the 16 parts (this thread uses one).
    let cost = first.len() + 2 * first.split('.').nth(1).unwrap().len() + 256;
    let bounded = SessionVerifier::builder([TrustedKey::from_signer(&*managed)], "session")
        .token_cache_bytes(16 * (3 * cost + 10))
        .build();
    let off = SessionVerifier::builder([TrustedKey::from_signer(&*managed)], "session")
        .token_cache_bytes(0)
        .build();
    for n in 0..50 {
        let token = signer.sign(&json!({ "n": n })).await.unwrap();
        for v in [&bounded, &off] {
            assert_eq!(
                v.verify_at(at(T0 + 5), &token).unwrap().get("n"),
                Some(&json!(n))
            );
            assert_eq!(
                v.verify_at(at(T0 + 5), &token).unwrap().get("n"),
                Some(&json!(n))
            );
        }
        assert!(bounded.cached_tokens() <= 3, "{}", bounded.cached_tokens());
        assert!(bounded.cached_tokens() >= 1);
        assert_eq!(off.cached_tokens(), 0);
    }
}
