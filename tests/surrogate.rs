//! Surrogate keys: rotation counts, single flight, outage behaviour, independent verification
//! and every refusal.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use remote_signer::backend::local::LocalSigner;
use remote_signer::surrogate::{
    CertifiedKey, ManualClock, SurrogateSigner, SurrogateVerifier, TrustedKey,
};
use remote_signer::{Algorithm, Error, ErrorKind, KeyType, RemoteSigner, Result};
use support::faulty::{FaultySigner, Mode};

use crate::support;

const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const HOUR: Duration = Duration::from_secs(3600);
const MARGIN: Duration = Duration::from_secs(600);

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn signer_with(
    managed: &Arc<FaultySigner>,
    clock: &Arc<ManualClock>,
    seed: u64,
) -> SurrogateSigner {
    SurrogateSigner::builder(managed.clone(), "session")
        .period(HOUR)
        .refresh_margin(MARGIN)
        .jitter(Duration::ZERO)
        .retry_backoff(Duration::from_secs(1), Duration::from_secs(8))
        .clock(clock.clone())
        .rng(ChaCha20Rng::seed_from_u64(seed))
        .build()
        .unwrap()
}

fn verifier_for(managed: &Arc<FaultySigner>) -> SurrogateVerifier {
    SurrogateVerifier::new([TrustedKey::from_signer(&**managed)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_messages_over_three_periods_cost_three_managed_signatures() {
    let managed = FaultySigner::new(Arc::new(support::keys::rsa(0)));
    let clock = Arc::new(ManualClock::at_unix(T0));
    let signer = signer_with(&managed, &clock, 1);
    let verifier = verifier_for(&managed);

    // Rotation is due every period minus the margin: three periods are [T0, T0 + 3 * 3000 s).
    let rotation_every = HOUR - MARGIN;
    let span = rotation_every * 3;
    let messages = 20_000u32;
    let step = span / messages;
    let mut seen: Vec<(String, Weak<CertifiedKey>)> = Vec::new();
    for i in 0..messages {
        clock.set(at(T0) + step * i);
        let message = i.to_be_bytes();
        let signed = signer.sign(&message).await.unwrap();
        let id = signed.key().thumbprint().to_string();
        if seen.last().is_none_or(|(last, _)| *last != id) {
            seen.push((id, Arc::downgrade(signed.key())));
        }
        if i % 1_000 == 0 {
            verifier
                .verify_at(
                    clock.now_for_test(),
                    signed.certificate(),
                    "session",
                    &message,
                    signed.signature().as_bytes(),
                )
                .unwrap();
        }
        if step * (i + 1) >= span {
            break;
        }
    }
    signer.settled().await;
    assert_eq!(managed.calls(), 3, "the managed key signs once per period");
    let status = signer.status();
    assert_eq!((status.attempts, status.issued), (3, 3));
    assert!(status.last_error.is_none());
    // Three surrogates were used in turn; the signer holds the current one only.
    assert_eq!(seen.len(), 3);
    assert!(seen[..2].iter().all(|(_, weak)| weak.upgrade().is_none()));
    assert!(seen[2].1.upgrade().is_some());
    assert_eq!(status.current_id.as_deref(), Some(seen[2].0.as_str()));
}

trait NowForTest {
    fn now_for_test(&self) -> SystemTime;
}

impl NowForTest for ManualClock {
    fn now_for_test(&self) -> SystemTime {
        remote_signer::surrogate::Clock::now(self)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_tasks_at_the_rotation_point_cause_one_background_certification() {
    let managed = FaultySigner::with_delay(
        Arc::new(LocalSigner::generate(KeyType::P256).unwrap()),
        Duration::from_millis(50),
    );
    let clock = Arc::new(ManualClock::at_unix(T0));
    let signer = signer_with(&managed, &clock, 2);
    let first = signer.current().await.unwrap();
    assert_eq!(managed.calls(), 1);

    clock.set(at(T0) + HOUR - MARGIN); // rotation due, current still valid
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let signer = signer.clone();
            tokio::spawn(async move { signer.sign(format!("m{i}").as_bytes()).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    signer.settled().await;
    assert_eq!(managed.calls(), 2, "exactly one certification");
    let next = signer.current().await.unwrap();
    assert_ne!(next.thumbprint(), first.thumbprint());
    assert_eq!(managed.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_tasks_after_expiry_wait_for_one_certification() {
    let managed = FaultySigner::with_delay(
        Arc::new(LocalSigner::generate(KeyType::P256).unwrap()),
        Duration::from_millis(50),
    );
    let clock = Arc::new(ManualClock::at_unix(T0));
    let signer = signer_with(&managed, &clock, 3);
    signer.current().await.unwrap();

    clock.set(at(T0) + HOUR + Duration::from_secs(1)); // nothing valid: everyone must wait
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let signer = signer.clone();
            tokio::spawn(async move {
                let signed = signer.sign(format!("m{i}").as_bytes()).await?;
                Ok::<_, Error>(signed.key().thumbprint().to_string())
            })
        })
        .collect();
    let mut thumbprints = Vec::new();
    for task in tasks {
        thumbprints.push(task.await.unwrap().unwrap());
    }
    assert_eq!(managed.calls(), 2, "exactly one certification");
    thumbprints.dedup();
    assert_eq!(
        thumbprints.len(),
        1,
        "all tasks signed with the new surrogate"
    );
}

#[tokio::test]
async fn outage_keeps_signing_until_expiry_then_fails_clearly_and_recovers() {
    let managed = FaultySigner::new(Arc::new(support::keys::rsa(0)));
    let clock = Arc::new(ManualClock::at_unix(T0));
    let signer = signer_with(&managed, &clock, 4);
    let verifier = verifier_for(&managed);
    let a = signer.sign(b"before").await.unwrap();
    let a_id = a.key().thumbprint().to_string();
    assert_eq!(signer.status().next_rotation, Some(at(T0 + 3000)));

    // The vault goes down. At the rotation point signing goes on with surrogate A; the
    // background rotation fails and is retried after 1 s, not before.
    managed.set(Mode::Down);
    clock.set(at(T0 + 3000));
    let signed = signer.sign(b"during").await.unwrap();
    assert_eq!(signed.key().thumbprint(), a_id);
    signer.settled().await;
    let status = signer.status();
    assert_eq!(status.attempts, 2);
    assert_eq!(status.issued, 1);
    assert_eq!(status.consecutive_failures, 1);
    assert_eq!(status.next_rotation, Some(at(T0 + 3001)));
    let (when, text) = status.last_error.clone().unwrap();
    assert_eq!(when, at(T0 + 3000));
    assert!(text.contains("503"), "{text}");
    verifier
        .verify_at(
            at(T0 + 3000),
            signed.certificate(),
            "session",
            b"during",
            signed.signature().as_bytes(),
        )
        .unwrap();

    signer.sign(b"still in backoff").await.unwrap();
    signer.settled().await;
    assert_eq!(signer.status().attempts, 2, "no attempt inside the backoff");

    clock.set(at(T0 + 3001));
    assert_eq!(
        signer.sign(b"retry").await.unwrap().key().thumbprint(),
        a_id
    );
    signer.settled().await;
    let status = signer.status();
    assert_eq!(status.attempts, 3);
    assert_eq!(status.consecutive_failures, 2);
    assert_eq!(status.next_rotation, Some(at(T0 + 3003)), "backoff doubled");

    // Past the certificate's expiry: a clear error, naming the cause.
    clock.set(at(T0 + 3600));
    let err = signer.sign(b"after expiry").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_transient());
    let text = err.to_string();
    assert!(text.contains("expired") && text.contains("503"), "{text}");
    assert_eq!(signer.status().attempts, 4);
    // In backoff: fail fast, without calling the vault.
    assert!(signer.sign(b"again").await.is_err());
    assert_eq!(signer.status().attempts, 4);

    // The vault returns; the next retry (4 s later) succeeds and signing resumes by itself.
    managed.set(Mode::Working);
    assert!(signer.sign(b"too early").await.is_err());
    clock.set(at(T0 + 3604));
    let b = signer.sign(b"recovered").await.unwrap();
    assert_ne!(b.key().thumbprint(), a_id);
    let status = signer.status();
    assert_eq!((status.attempts, status.issued), (5, 2));
    assert_eq!(status.consecutive_failures, 0);
    assert!(status.last_error.is_none());
    assert_eq!(status.current_id.as_deref(), Some(b.key().thumbprint()));
    assert_eq!(status.current_not_after, Some(at(T0 + 3604 + 3600)));
    assert_eq!(status.next_rotation, Some(at(T0 + 3604 + 3000)));
    verifier
        .verify_at(
            at(T0 + 3604),
            b.certificate(),
            "session",
            b"recovered",
            b.signature().as_bytes(),
        )
        .unwrap();
}

#[tokio::test]
async fn a_garbled_managed_signature_never_puts_a_surrogate_in_use() {
    let managed = FaultySigner::local(KeyType::P256);
    let clock = Arc::new(ManualClock::at_unix(T0));
    let signer = signer_with(&managed, &clock, 5);
    managed.set(Mode::Garbled);
    let err = signer.sign(b"m").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Signing);
    assert!(signer.status().current_id.is_none());

    managed.set(Mode::Working);
    clock.set(at(T0 + 1));
    let a = signer.sign(b"m").await.unwrap();
    managed.set(Mode::Garbled);
    clock.set(at(T0 + 1 + 3000)); // rotation due
    let still_a = signer.sign(b"m").await.unwrap();
    signer.settled().await;
    assert_eq!(still_a.key().thumbprint(), a.key().thumbprint());
    assert_eq!(
        signer.status().current_id.as_deref(),
        Some(a.key().thumbprint())
    );
    assert!(signer.status().last_error.is_some());
}

#[tokio::test]
async fn seeded_randomness_makes_surrogates_reproducible() {
    let managed = FaultySigner::local(KeyType::P256);
    let clock = Arc::new(ManualClock::at_unix(T0));
    let one = signer_with(&managed, &clock, 42).current().await.unwrap();
    let two = signer_with(&managed, &clock, 42).current().await.unwrap();
    let other = signer_with(&managed, &clock, 43).current().await.unwrap();
    assert_eq!(one.thumbprint(), two.thumbprint());
    assert_ne!(one.thumbprint(), other.thumbprint());
}

#[tokio::test]
async fn jitter_spreads_rotation_inside_the_margin() {
    let managed = FaultySigner::local(KeyType::P256);
    let clock = Arc::new(ManualClock::at_unix(T0));
    let mut times = Vec::new();
    for seed in 0..8 {
        let signer = SurrogateSigner::builder(managed.clone(), "session")
            .clock(clock.clone())
            .rng(ChaCha20Rng::seed_from_u64(seed))
            .build()
            .unwrap();
        signer.current().await.unwrap();
        let next = signer.status().next_rotation.unwrap();
        // Defaults: period 1 h, margin 10 min, jitter up to 5 min.
        assert!(next <= at(T0 + 3000) && next >= at(T0 + 2700), "{next:?}");
        times.push(next);
    }
    times.sort();
    times.dedup();
    assert!(times.len() > 4, "rotation times differ between signers");
}

#[test]
fn bad_configuration_is_refused() {
    let managed: Arc<dyn RemoteSigner> = FaultySigner::local(KeyType::P256);
    let err = SurrogateSigner::builder(managed.clone(), "")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = SurrogateSigner::builder(managed.clone(), "s")
        .period(Duration::from_secs(600))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = SurrogateSigner::builder(managed, "s")
        .managed_algorithm(Algorithm::RS256)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Algorithm);
}

// ---- independent verification with the `jsonwebtoken` crate ----

#[derive(serde::Deserialize)]
struct CertClaims {
    iss: Option<String>,
    sub: Option<String>,
    iat: u64,
    nbf: Option<u64>,
    exp: u64,
    pur: Vec<String>,
    max_exp: u64,
    cnf: Cnf,
}

#[derive(serde::Deserialize)]
struct Cnf {
    jwk: jsonwebtoken::jwk::Jwk,
}

async fn check_with_jsonwebtoken(key_type: KeyType, alg: jsonwebtoken::Algorithm) {
    let managed = FaultySigner::new(Arc::new(support::keys::any(key_type, 0)));
    let signer = SurrogateSigner::builder(managed.clone(), "session")
        .purpose("csrf")
        .build()
        .unwrap();
    let signed = signer.sign(b"hello").await.unwrap();

    let pem = managed.public_key().to_pem();
    let key = match key_type {
        KeyType::Rsa => jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        _ => jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    };
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_required_spec_claims(&["exp", "iat"]);
    let data = jsonwebtoken::decode::<CertClaims>(signed.certificate(), &key, &validation).unwrap();
    assert_eq!(data.header.alg, alg);
    // The managed key is named by its RFC 7638 thumbprint, never by where it lives.
    assert_eq!(
        data.header.kid.as_deref(),
        Some(managed.public_key().jwk_thumbprint().as_str())
    );
    assert_eq!(data.header.typ.as_deref(), Some("surrogate+jwt"));
    let claims = data.claims;
    // Nothing the verifier can compute is sent: no issuer, no subject, no nbf equal to iat.
    assert_eq!((claims.iss, claims.sub, claims.nbf), (None, None, None));
    assert_eq!(
        jsonwebtoken::jwk::Jwk::thumbprint(
            &claims.cnf.jwk,
            jsonwebtoken::jwk::ThumbprintHash::SHA256
        ),
        signed.key().thumbprint()
    );
    assert_eq!(claims.pur, ["session", "csrf"]);
    assert_eq!(claims.exp, claims.iat + 3600);
    assert_eq!(claims.max_exp, claims.exp + 24 * 3600);

    // The message signature verifies with the certified key, taken from `cnf.jwk`.
    let surrogate = jsonwebtoken::DecodingKey::from_jwk(&claims.cnf.jwk).unwrap();
    let signature = URL_SAFE_NO_PAD.encode(signed.signature().as_bytes());
    assert!(
        jsonwebtoken::crypto::verify(
            &signature,
            b"hello",
            &surrogate,
            jsonwebtoken::Algorithm::EdDSA
        )
        .unwrap()
    );
    assert!(
        !jsonwebtoken::crypto::verify(
            &signature,
            b"hellO",
            &surrogate,
            jsonwebtoken::Algorithm::EdDSA
        )
        .unwrap()
    );

    // The certificate does not verify with another managed key.
    let other = support::keys::any(key_type, 1);
    let other_pem = other.public_key().to_pem();
    let other_key = match key_type {
        KeyType::Rsa => jsonwebtoken::DecodingKey::from_rsa_pem(other_pem.as_bytes()).unwrap(),
        _ => jsonwebtoken::DecodingKey::from_ec_pem(other_pem.as_bytes()).unwrap(),
    };
    assert!(
        jsonwebtoken::decode::<CertClaims>(signed.certificate(), &other_key, &validation).is_err()
    );
}

#[tokio::test]
async fn rsa_certificates_verify_with_jsonwebtoken() {
    check_with_jsonwebtoken(KeyType::Rsa, jsonwebtoken::Algorithm::RS256).await;
}

#[tokio::test]
async fn ec_certificates_verify_with_jsonwebtoken() {
    check_with_jsonwebtoken(KeyType::P256, jsonwebtoken::Algorithm::ES256).await;
    check_with_jsonwebtoken(KeyType::P384, jsonwebtoken::Algorithm::ES384).await;
}

// ---- refusals ----

struct Fixture {
    /// The managed key's own local key, for signing forgeries past the wrapper.
    key: Arc<LocalSigner>,
    managed: Arc<FaultySigner>,
    verifier: SurrogateVerifier,
    certificate: String,
    signature: Vec<u8>,
}

async fn fixture() -> Fixture {
    let key = Arc::new(LocalSigner::generate(KeyType::P256).unwrap());
    let managed = FaultySigner::new(key.clone());
    let clock = Arc::new(ManualClock::at_unix(T0));
    let signer = signer_with(&managed, &clock, 9);
    let signed = signer.sign(b"message").await.unwrap();
    Fixture {
        verifier: SurrogateVerifier::builder([TrustedKey::from_signer(&*managed)])
            .leeway(Duration::from_secs(60))
            .build(),
        certificate: signed.certificate().to_string(),
        signature: signed.signature().as_bytes().to_vec(),
        key,
        managed,
    }
}

fn refused(result: Result<impl Sized>, kind: ErrorKind, reason: &str) {
    let Err(err) = result else {
        panic!("accepted, expected refusal: {reason}")
    };
    assert_eq!(err.kind(), kind, "{err}");
    assert!(err.to_string().contains(reason), "{err}");
    assert!(err.is_verification());
}

/// A long-running verifier keeps only certificates something can still use: once a
/// certificate is past the bound of every token it signs (plus leeway), the next new
/// certificate replaces it in the cache.
#[tokio::test]
async fn certificates_past_use_leave_the_cache() {
    let managed = FaultySigner::local(KeyType::P256);
    let clock = Arc::new(ManualClock::at_unix(T0));
    let signer = SurrogateSigner::builder(managed.clone(), "session")
        .period(HOUR)
        .jitter(Duration::ZERO)
        .max_token_lifetime(HOUR)
        .clock(clock.clone())
        .build()
        .unwrap();
    let verifier = verifier_for(&managed);
    let verify = |signed: &remote_signer::surrogate::SurrogateSignature, now: u64| {
        verifier
            .verify_at(
                at(now),
                signed.certificate(),
                "session",
                b"m",
                signed.signature().as_bytes(),
            )
            .unwrap();
    };
    // Two certificates an hour apart are both still of use (tokens live an hour past them).
    let first = signer.sign(b"m").await.unwrap();
    verify(&first, T0 + 10);
    clock.set(at(T0 + 3600));
    let second = signer.sign(b"m").await.unwrap();
    verify(&second, T0 + 3600);
    assert_ne!(first.certificate(), second.certificate());
    assert_eq!(verifier.cached_certificates(), 2);
    // Past the first's token bound (its end + an hour) and the leeway, but not the second's.
    let later = T0 + 2 * 3600 + 61;
    clock.set(at(later));
    let third = signer.sign(b"m").await.unwrap();
    verify(&third, later);
    assert_eq!(
        verifier.cached_certificates(),
        2,
        "the first certificate left"
    );
    verify(&second, T0 + 3600 + 10);
}

#[tokio::test]
async fn a_valid_message_verifies_and_the_certificate_is_cached() {
    let f = fixture().await;
    for _ in 0..3 {
        f.verifier
            .verify_at(
                at(T0 + 10),
                &f.certificate,
                "session",
                b"message",
                &f.signature,
            )
            .unwrap();
    }
    assert_eq!(f.verifier.cached_certificates(), 1);
    refused(
        f.verifier.verify_at(
            at(T0 + 10),
            &f.certificate,
            "session",
            b"messagE",
            &f.signature,
        ),
        ErrorKind::InvalidSignature,
        "signature",
    );
}

#[tokio::test]
async fn a_certificate_for_another_purpose_is_refused() {
    let f = fixture().await;
    refused(
        f.verifier.verify_at(
            at(T0 + 10),
            &f.certificate,
            "csrf",
            b"message",
            &f.signature,
        ),
        ErrorKind::InvalidToken,
        "another purpose",
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_certificates_are_refused() {
    let f = fixture().await;
    let verify = |t| {
        f.verifier
            .verify_at(at(t), &f.certificate, "session", b"message", &f.signature)
    };
    refused(verify(T0 + 3600 + 61), ErrorKind::Expired, "expired");
    // Its `iat` is its `nbf`: before it (beyond the leeway) it is a certificate from the future.
    refused(
        verify(T0 - 61),
        ErrorKind::InvalidToken,
        "issued in the future",
    );
    verify(T0 + 3600 + 59).unwrap(); // within the leeway
    verify(T0 - 59).unwrap();
    // A window that starts after issue (`nbf` sent): not yet valid before it.
    let later = resign(&f, |_, claims| {
        claims["nbf"] = (T0 + 600).into();
    });
    let verify_later = |t| {
        f.verifier
            .verify_at(at(t), &later, "session", b"message", &f.signature)
    };
    refused(verify_later(T0 + 539), ErrorKind::Expired, "not yet valid");
    verify_later(T0 + 541).unwrap();
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_managed_key_is_refused() {
    let f = fixture().await;
    let stranger = LocalSigner::generate(KeyType::P256).unwrap();
    for verifier in [
        SurrogateVerifier::new([TrustedKey::new(stranger.public_key().clone())]),
        // The right public key, expected under another name than its thumbprint.
        SurrogateVerifier::new([
            TrustedKey::new(f.managed.public_key().clone()).kid("cookies-2026")
        ]),
        SurrogateVerifier::new([]),
    ] {
        refused(
            verifier.verify_at(
                at(T0 + 10),
                &f.certificate,
                "session",
                b"message",
                &f.signature,
            ),
            ErrorKind::InvalidToken,
            "trusted managed key",
        );
    }
    // An algorithm that does not fit the key is an error, not a key that trusts nothing.
    let err = TrustedKey::with_algorithms(f.managed.public_key().clone(), [Algorithm::ES384])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Algorithm, "{err}");
    let err = TrustedKey::with_algorithms(f.managed.public_key().clone(), []).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Algorithm, "{err}");
    // The right key, but only for an algorithm the certificate does not use (RS256).
    let rsa = FaultySigner::new(Arc::new(support::keys::rsa(0)));
    let clock = Arc::new(ManualClock::at_unix(T0));
    let signed = signer_with(&rsa, &clock, 9).sign(b"message").await.unwrap();
    let verify = |trusted: TrustedKey| {
        SurrogateVerifier::new([trusted]).verify_at(
            at(T0 + 10),
            signed.certificate(),
            "session",
            b"message",
            signed.signature().as_bytes(),
        )
    };
    let pss = TrustedKey::with_algorithms(rsa.public_key().clone(), [Algorithm::PS256]).unwrap();
    assert_eq!(pss.algorithms(), [Algorithm::PS256]);
    refused(verify(pss), ErrorKind::InvalidToken, "trusted managed key");
    let both = [Algorithm::PS256, Algorithm::RS256];
    verify(TrustedKey::with_algorithms(rsa.public_key().clone(), both).unwrap()).unwrap();
    // A set of trusted keys: the stranger and the real one.
    SurrogateVerifier::new([
        TrustedKey::new(stranger.public_key().clone()),
        TrustedKey::new(f.managed.public_key().clone()),
    ])
    .verify_at(
        at(T0 + 10),
        &f.certificate,
        "session",
        b"message",
        &f.signature,
    )
    .unwrap();
}

/// Re-signs a certificate's header and claims, edited, with the real managed key.
fn resign(
    f: &Fixture,
    edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
) -> String {
    let parts: Vec<&str> = f.certificate.split('.').collect();
    let mut header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut header, &mut claims);
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let sig = f
        .key
        .sign_blocking(Algorithm::ES256, input.as_bytes())
        .unwrap();
    format!("{input}.{}", sig.to_base64url())
}

#[tokio::test]
async fn a_certificate_naming_another_managed_key_is_refused() {
    let f = fixture().await;
    let other = LocalSigner::generate(KeyType::P256).unwrap();
    // Signed by the trusted key, but its `kid` names another: the key is selected by name.
    let forged = resign(&f, |header, _| {
        header["kid"] = other.public_key().jwk_thumbprint().into();
    });
    refused(
        f.verifier
            .verify_at(at(T0 + 10), &forged, "session", b"message", &f.signature),
        ErrorKind::InvalidToken,
        "trusted managed key",
    );
    // And the managed key's own signature over an unmodified certificate still passes.
    let same = resign(&f, |_, _| {});
    f.verifier
        .verify_at(at(T0 + 10), &same, "session", b"message", &f.signature)
        .unwrap();
}

#[tokio::test]
async fn a_certificate_under_an_explicit_managed_kid_verifies_only_under_that_name() {
    let managed = FaultySigner::local(KeyType::P256);
    let signer = SurrogateSigner::builder(managed.clone(), "session")
        .managed_kid("cookies-2026")
        .build()
        .unwrap();
    assert_eq!(signer.managed_kid(), "cookies-2026");
    let signed = signer.sign(b"m").await.unwrap();
    let verify = |trusted: TrustedKey| {
        SurrogateVerifier::new([trusted]).verify(
            signed.certificate(),
            "session",
            b"m",
            signed.signature().as_bytes(),
        )
    };
    let info = verify(TrustedKey::from_signer(&*managed).kid("cookies-2026")).unwrap();
    assert_eq!(info.issuer(), "cookies-2026");
    refused(
        verify(TrustedKey::from_signer(&*managed)),
        ErrorKind::InvalidToken,
        "trusted managed key",
    );
}

#[tokio::test]
async fn certificates_with_the_wrong_type_crit_or_algorithm_are_refused() {
    let f = fixture().await;
    let untyped = resign(&f, |header, _| {
        header["typ"] = "JWT".into();
    });
    let crit_null = resign(&f, |header, _| {
        header["crit"] = serde_json::Value::Null;
    });
    let crit_unknown = resign(&f, |header, _| {
        header["crit"] = serde_json::json!(["exp"]);
        header["exp"] = (T0 + 10).into();
    });
    let none = resign(&f, |header, _| {
        header["alg"] = "none".into();
    });
    let inconsistent = resign(&f, |_, claims| {
        claims["max_exp"] = (T0 + 10).into();
    });
    let starts_before_issue = resign(&f, |_, claims| {
        claims["nbf"] = (T0 - 10).into();
    });
    for (cert, reason) in [
        (untyped, "typ"),
        (crit_null, "critical"),
        (crit_unknown, "critical"),
        (none, "trusted managed key"),
        (inconsistent, "inconsistent"),
        (starts_before_issue, "inconsistent"),
    ] {
        refused(
            f.verifier
                .verify_at(at(T0 + 10), &cert, "session", b"message", &f.signature),
            ErrorKind::InvalidToken,
            reason,
        );
    }
}

/// Whatever the managed key signed, the verifier bounds what a certificate may claim.
#[tokio::test]
async fn over_long_or_future_certificates_are_refused_by_policy() {
    let f = fixture().await;
    let day = 24 * 3600;
    let long_window = resign(&f, |_, claims| {
        claims["exp"] = (T0 + 7 * day + 1).into();
        claims["max_exp"] = (T0 + 7 * day + 1).into();
    });
    let long_bound = resign(&f, |_, claims| {
        claims["max_exp"] = (T0 + 3600 + day + 1).into();
    });
    let future = resign(&f, |_, claims| {
        claims["iat"] = (T0 + 120).into();
    });
    for (cert, reason) in [
        (&long_window, "signing window is longer than allowed"),
        (&long_bound, "token bound is longer than allowed"),
        (&future, "issued in the future"),
    ] {
        refused(
            f.verifier
                .verify_at(at(T0 + 10), cert, "session", b"message", &f.signature),
            ErrorKind::InvalidToken,
            reason,
        );
    }
    // Exactly at the caps, and a future `iat` within the leeway, pass.
    for cert in [
        resign(&f, |_, claims| {
            claims["exp"] = (T0 + 7 * day).into();
            claims["max_exp"] = (T0 + 7 * day).into();
        }),
        resign(&f, |_, claims| {
            claims["max_exp"] = (T0 + 3600 + day).into();
        }),
        resign(&f, |_, claims| {
            claims["iat"] = (T0 + 60).into();
            claims["nbf"] = (T0 + 60).into();
        }),
    ] {
        f.verifier
            .verify_at(at(T0 + 10), &cert, "session", b"message", &f.signature)
            .unwrap();
    }
    // The caps are the verifier's policy, set on its builder.
    let lenient = SurrogateVerifier::builder([TrustedKey::from_signer(&*f.managed)])
        .max_certificate_window(Duration::from_secs(8 * day))
        .max_token_bound(Duration::from_secs(2 * day))
        .build();
    for cert in [&long_window, &long_bound] {
        lenient
            .verify_at(at(T0 + 10), cert, "session", b"message", &f.signature)
            .unwrap();
    }
    let strict = SurrogateVerifier::builder([TrustedKey::from_signer(&*f.managed)])
        .max_certificate_window(Duration::from_secs(1800))
        .build();
    refused(
        strict.verify_at(
            at(T0 + 10),
            &f.certificate,
            "session",
            b"message",
            &f.signature,
        ),
        ErrorKind::InvalidToken,
        "signing window",
    );
}

#[tokio::test]
async fn a_token_whose_expiry_exceeds_the_bound_is_refused() {
    let f = fixture().await;
    let info = f
        .verifier
        .verify_certificate(&f.certificate, "session")
        .unwrap();
    let bound = T0 + 3600 + 24 * 3600;
    assert_eq!(info.max_token_expiry(), at(bound));
    // A token issued inside the window and living up to the bound is fine, even long after
    // the certificate's own window.
    f.verifier
        .check_token_times(at(bound - 10), &info, T0 + 3000, bound)
        .unwrap();
    refused(
        f.verifier
            .check_token_times(at(T0 + 3000), &info, T0 + 3000, bound + 1),
        ErrorKind::InvalidToken,
        "exceeds",
    );
    refused(
        f.verifier
            .check_token_times(at(T0 + 3700), &info, T0 + 3600 + 61, T0 + 7200),
        ErrorKind::InvalidToken,
        "outside",
    );
    refused(
        f.verifier
            .check_token_times(at(T0 + 200), &info, T0 + 10, T0 + 100),
        ErrorKind::Expired,
        "token has expired",
    );
}

#[tokio::test]
async fn a_tampered_certificate_is_refused() {
    let f = fixture().await;
    let parts: Vec<&str> = f.certificate.split('.').collect();
    let mut claims = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    let text = String::from_utf8(claims.clone()).unwrap();
    let pos = text.find("session").unwrap();
    claims[pos] = b'S';
    let tampered_claims = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(&claims),
        parts[2]
    );
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let tampered_sig = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    for cert in [
        tampered_claims,
        tampered_sig,
        f.certificate[..f.certificate.len() - 2].to_string(),
        format!("{}.", f.certificate),
        f.certificate.replace('.', ""),
        String::new(),
    ] {
        let err = f
            .verifier
            .verify_at(at(T0 + 10), &cert, "session", b"message", &f.signature)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidToken, "{err}");
    }
}

#[tokio::test]
async fn errors_and_debug_output_hold_no_key_material() {
    let f = fixture().await;
    let managed: Arc<dyn RemoteSigner> = f.managed.clone();
    let signer = SurrogateSigner::new(managed, "session").unwrap();
    let key = signer.current().await.unwrap();
    let debug = format!("{signer:?} {key:?}");
    assert!(!debug.contains(key.certificate()));
    assert!(debug.contains(key.thumbprint()));
    let err = f
        .verifier
        .verify_at(
            at(T0 + 10),
            &f.certificate,
            "csrf",
            b"message",
            &f.signature,
        )
        .unwrap_err();
    assert!(!format!("{err:?}").contains(&f.certificate[..20]));
}

// ---- the Key Vault emulator as the managed key ----

#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_vault_outage_step_by_step() {
    use remote_signer::backend::azure::{KeyVaultSigner, RetryPolicy};
    use support::keyvault::{Emulator, Fault, KeySpec};

    let emu = Emulator::start();
    let version = emu.create_key("cookies", KeySpec::Rsa(2048));
    let environment: Vec<(String, String)> = emu
        .env()
        .into_iter()
        .filter(|(k, _)| k != "SSL_CERT_FILE")
        .collect();
    let managed: Arc<dyn RemoteSigner> = Arc::new(
        KeyVaultSigner::builder(&emu.key_url("cookies", Some(&version)))
            .environment(environment)
            .add_root_certificate_pem(emu.ca_pem())
            .verify_challenge_resource(false)
            .retry(
                RetryPolicy::default()
                    .max_retries(1)
                    .initial_backoff(Duration::from_millis(10))
                    .max_backoff(Duration::from_millis(20)),
            )
            .build()
            .await
            .unwrap(),
    );
    let clock = Arc::new(ManualClock::at_unix(T0));
    let signer = SurrogateSigner::builder(managed.clone(), "session")
        .jitter(Duration::ZERO)
        .retry_backoff(Duration::from_secs(1), Duration::from_secs(8))
        .clock(clock.clone())
        .rng(ChaCha20Rng::seed_from_u64(11))
        .build()
        .unwrap();
    let verifier = SurrogateVerifier::new([TrustedKey::from_signer(&*managed)]);

    // Many messages, one vault signature; the certificate names the vault key version.
    let mut a = None;
    for i in 0..1_000u32 {
        a = Some(signer.sign(&i.to_be_bytes()).await.unwrap());
    }
    let a = a.unwrap();
    assert_eq!(emu.count("sign"), 1);
    let info = verifier
        .verify_at(
            at(T0),
            a.certificate(),
            "session",
            &999u32.to_be_bytes(),
            a.signature().as_bytes(),
        )
        .unwrap();
    // The Key Vault key is named by its thumbprint: no vault, key name or version.
    assert_eq!(info.issuer(), managed.public_key().jwk_thumbprint());

    // The vault fails: signing goes on with surrogate A until its certificate expires.
    emu.inject_always(Fault::Status(503));
    clock.set(at(T0 + 3000));
    let during = signer.sign(b"during").await.unwrap();
    assert_eq!(during.key().thumbprint(), a.key().thumbprint());
    signer.settled().await;
    let status = signer.status();
    assert_eq!((status.attempts, status.issued), (2, 1));
    assert_eq!(status.next_rotation, Some(at(T0 + 3001)));
    assert!(status.last_error.is_some());

    clock.set(at(T0 + 3600));
    let err = signer.sign(b"after expiry").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(emu.count("sign"), 1);

    // The vault returns: the next retry certifies surrogate B and signing resumes.
    emu.clear_faults();
    clock.set(at(T0 + 3600 + 2));
    let b = signer.sign(b"recovered").await.unwrap();
    assert_ne!(b.key().thumbprint(), a.key().thumbprint());
    assert_eq!(emu.count("sign"), 2);
    assert!(signer.status().last_error.is_none());
    verifier
        .verify_at(
            at(T0 + 3602),
            b.certificate(),
            "session",
            b"recovered",
            b.signature().as_bytes(),
        )
        .unwrap();
}
