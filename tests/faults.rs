//! Fault injection against the Key Vault emulator. For each way the vault, its token endpoint
//! or the network between can fail, these tests check what a caller of the signer sees (the
//! error kind, how many attempts were made, and that the answer comes within the retry
//! policy's time bound), and that surrogate-mode session cookies and certificate-mode ssh
//! logins keep working through the failure until their certificates expire, then fail
//! clearly, then recover by themselves once the fault is gone.
//!
//! Everything is real except the vault itself: the official SDK over TLS to the emulator
//! (tests/support/keyvault.rs), `ssh`, `ssh-add` and a throwaway `sshd` on 127.0.0.1. The
//! table of faults and outcomes these tests check is in the `remote_signer::backend::azure`
//! docs, under "Failure behaviour".
//!
//! Time is controlled, not spent: the signers' retry waits and time bound run on a
//! [`FastForward`] timer (a wait moves its clock instead of taking time; the network and the
//! vault's work still count), the cookie signer and the agent read manual clocks, and only
//! network timeouts (a reply slower than an attempt may wait) take real time.

use crate::support;

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use remote_signer::backend::azure::{KeyVaultSigner, RetryPolicy, RetryTimer as _};
use remote_signer::cookie::{SessionSigner, SessionVerifier};
use remote_signer::ssh::{Agent, CertificateOptions};
use remote_signer::surrogate::{ManualClock, SurrogateSigner, TrustedKey};
use remote_signer::{Algorithm, Error, ErrorKind, RemoteSigner};
use serde_json::json;
use support::keyvault::{
    Attributes, Deny, Emulator, EmulatorSigners as _, Fault, KeySpec, RetryAfter, TlsFault,
};
use support::retry_timer::FastForward;
use support::ssh::{RunningAgent, Sshd, captured_log, current_user};

/// Retries as an application with a latency budget would set them.
const MAX_RETRIES: u32 = 3;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
const BUDGET: Duration = Duration::from_secs(3);
/// Allowance over [`BUDGET`] (on the retry timer, which counts the real time attempts take) for
/// a loaded CI machine. The bound is what is checked, not speed: without it a failing vault
/// would hold a caller for a minute or more.
const SLACK: Duration = Duration::from_secs(3);
/// A reply slower than any attempt may wait.
const SLOW: Duration = Duration::from_secs(5);

/// The lifetime of the agent's certificates (on the agent's manual clock).
const SSH_VALIDITY: Duration = Duration::from_secs(3600);
/// How far back the agent's certificates start. sshd checks them against the real clock,
/// while the agent mints them at its manual clock's time, which the tests move hours ahead:
/// backdating keeps every certificate the agent mints valid for sshd during the test, so a
/// login fails only when the agent has no certificate to offer.
const SSH_BACKDATE: Duration = Duration::from_secs(2 * 3600);
/// The surrogate period of the cookie signer (on a manual clock).
const PERIOD: Duration = Duration::from_secs(3600);
/// Inside the refresh window: after the rotation point, before expiry.
const INTO_REFRESH_WINDOW: Duration = Duration::from_secs(3600 - 5 * 60);

fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .max_retries(MAX_RETRIES)
        .initial_backoff(Duration::from_millis(50))
        .max_backoff(Duration::from_millis(200))
        .attempt_timeout(ATTEMPT_TIMEOUT)
        .max_elapsed(BUDGET)
}

/// The emulator with three P-256 keys ("direct", "cookies", "ca") opened as an application
/// would, plus everything built on them: a cookie signer in surrogate mode on a manual clock,
/// and an agent in certificate mode with an sshd that trusts the CA key.
struct Rig {
    emu: Emulator,
    runtime: tokio::runtime::Runtime,
    direct: Arc<KeyVaultSigner>,
    /// The retry timer of `direct`.
    direct_timer: Arc<FastForward>,
    clock: Arc<ManualClock>,
    /// The agent's clock.
    ssh_clock: Arc<ManualClock>,
    surrogate: SurrogateSigner,
    cookies: SessionSigner,
    verifier: SessionVerifier,
    ca_id: String,
    agent: RunningAgent,
    sshd: Sshd,
}

const KEYS: [&str; 3] = ["direct", "cookies", "ca"];

/// Opens key `name` with [`policy`] on a retry timer of its own (so one signer's waits do
/// not count against another's bound).
fn open(
    emu: &Emulator,
    runtime: &tokio::runtime::Runtime,
    name: &str,
) -> (Arc<KeyVaultSigner>, Arc<FastForward>) {
    let timer = Arc::new(FastForward::new());
    let builder = emu
        .signer_builder(&emu.key_url(name, None))
        .retry(policy())
        .retry_timer(timer.clone());
    let signer = runtime
        .block_on(builder.build())
        .expect("open emulator key");
    (Arc::new(signer), timer)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

impl Rig {
    /// Starts everything; with a `token_lifetime` below 5 minutes every vault request fetches
    /// a new token first (the SDK refreshes tokens that expire within 5 minutes).
    fn start(token_lifetime: Option<Duration>) -> Rig {
        drop(captured_log()); // install the log capture before the agent logs anything
        let emu = Emulator::start();
        if let Some(lifetime) = token_lifetime {
            emu.set_token_lifetime(lifetime);
        }
        for name in KEYS {
            emu.create_key(name, KeySpec::P256);
        }
        let runtime = runtime();
        let (direct, direct_timer) = open(&emu, &runtime, "direct");
        let cookie_key: Arc<dyn RemoteSigner> = open(&emu, &runtime, "cookies").0;
        let ca: Arc<dyn RemoteSigner> = open(&emu, &runtime, "ca").0;

        let clock = Arc::new(ManualClock::new(SystemTime::now()));
        let surrogate = SurrogateSigner::builder(Arc::clone(&cookie_key), "session")
            .period(PERIOD)
            .jitter(Duration::ZERO)
            .retry_backoff(Duration::from_secs(1), Duration::from_secs(8))
            .clock(clock.clone())
            .build()
            .unwrap();
        let cookies = SessionSigner::builder(surrogate.clone(), "session")
            .ttl(Duration::from_secs(600))
            .build()
            .unwrap();
        let verifier = SessionVerifier::builder([TrustedKey::from_signer(&*cookie_key)], "session")
            .clock(clock.clone())
            .build();

        let ssh_clock = Arc::new(ManualClock::new(SystemTime::now()));
        let agent_clock = ssh_clock.clone();
        let agent = RunningAgent::start(
            Agent::builder()
                .certificate_authority(
                    Arc::clone(&ca),
                    CertificateOptions::new([current_user()])
                        .validity(SSH_VALIDITY)
                        .backdate(SSH_BACKDATE),
                )
                .clock(agent_clock)
                .build()
                .unwrap(),
        );
        let sshd = Sshd::start(&[], &[ca.public_key().to_openssh("").unwrap()]);
        let rig = Rig {
            emu,
            runtime,
            direct,
            direct_timer,
            clock,
            ssh_clock,
            surrogate,
            cookies,
            verifier,
            ca_id: ca.key_id().to_string(),
            agent,
            sshd,
        };
        rig.cookie_round_trip().expect("a first cookie");
        rig.sshd.assert_login(&rig.agent.socket, &[]);
        rig
    }

    /// Signs a session cookie and verifies it.
    fn cookie_round_trip(&self) -> Result<(), Error> {
        let token = self
            .runtime
            .block_on(self.cookies.sign(&json!({"user": "alice"})))?;
        let session = self
            .verifier
            .verify(&token)
            .expect("a cookie we signed verifies");
        assert_eq!(session.claims()["user"], "alice");
        Ok(())
    }

    /// The agent's listed certificate, if any.
    fn listed_certificate(&self) -> Option<ssh_key::Certificate> {
        let listed = self.agent.list();
        assert!(listed.len() <= 1, "{listed:?}");
        listed
            .first()
            .map(|line| ssh_key::Certificate::from_openssh(line).unwrap())
    }

    fn login_works(&self) -> bool {
        self.sshd
            .login(&self.agent.socket, &current_user(), &[])
            .status
            .success()
    }

    /// Waits (a bounded while, in real time: the agent renews in the background) until the
    /// agent has logged a failed renewal of kind `kind`.
    fn wait_for_logged_renewal_failure(&self, kind: ErrorKind) {
        for _ in 0..1500 {
            if self.agent_logged_renewal_failure(kind) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the failed renewal is logged with its kind ({kind}): {:?}",
            captured_log()
        );
    }

    fn agent_logged_renewal_failure(&self, kind: ErrorKind) -> bool {
        captured_log().iter().any(|line| {
            line.contains("cannot renew the certificate")
                && line.contains(&self.ca_id)
                && line.contains(&kind.to_string())
        })
    }
}

impl Rig {
    /// Step 2 of [`ride_out`]: a direct signature fails as `expected`, within the retry
    /// policy's time bound.
    fn direct_signature_fails(&self, expected: &Expected) {
        let before = self.direct.stats().sign.attempts;
        let started = self.direct_timer.now();
        let error = self
            .runtime
            .block_on(self.direct.sign(Algorithm::ES256, b"under a fault"))
            .expect_err("signing under a permanent fault");
        let took = self.direct_timer.now() - started;
        let attempts = self.direct.stats().sign.attempts - before;
        assert_eq!(error.kind(), expected.kind, "{error}");
        assert!(
            error.to_string().contains(expected.says),
            "the error says {:?}: {error}",
            expected.says
        );
        assert!(
            expected.attempts.contains(&attempts),
            "{attempts} attempts, expected {:?}: {error}",
            expected.attempts
        );
        assert!(took <= BUDGET + SLACK, "took {took:?}: {error}");
    }

    /// Step 3 of [`ride_out`], cookies: inside the refresh window the current surrogate signs
    /// while a new certificate cannot be had; past its expiry signing fails with the fault's
    /// `kind`.
    fn cookies_ride_out(&self, kind: ErrorKind) {
        self.clock.advance(INTO_REFRESH_WINDOW);
        self.cookie_round_trip()
            .expect("cookies sign until the certificate expires");
        self.runtime.block_on(self.surrogate.settled());
        let status = self.surrogate.status();
        assert!(status.consecutive_failures >= 1, "{status:?}");
        assert_eq!(status.issued, 1, "{status:?}");
        self.cookie_round_trip()
            .expect("cookies sign until the certificate expires");
        self.clock
            .advance(PERIOD - INTO_REFRESH_WINDOW + Duration::from_secs(1));
        let error = self
            .cookie_round_trip()
            .expect_err("no cookie once the certificate expired");
        assert_eq!(error.kind(), kind, "{error}");
        assert!(error.to_string().contains("expired"), "{error}");
    }

    /// Step 4 of [`ride_out`], ssh: past the renewal point of `certificate` the agent's renewal
    /// fails, and logins go on with it; past its expiry the agent offers no certificate (sshd
    /// would still take it: the agent's own check is what is tested), logins fail, and the
    /// failed renewal is logged with its `kind`.
    fn ssh_ride_out(&self, certificate: &ssh_key::Certificate, kind: ErrorKind) {
        let valid_before = SystemTime::UNIX_EPOCH + Duration::from_secs(certificate.valid_before());
        let renew_at = valid_before - SSH_VALIDITY / 4;
        self.ssh_clock.set(renew_at + Duration::from_secs(1));
        assert_eq!(
            self.listed_certificate().map(|c| c.serial()),
            Some(certificate.serial()),
            "the certificate is offered until it expires"
        );
        assert!(
            self.login_works(),
            "a login failed while the certificate was valid: {}",
            self.sshd.log()
        );
        self.ssh_clock.set(valid_before + Duration::from_secs(1));
        assert!(
            self.listed_certificate().is_none(),
            "an expired certificate is offered"
        );
        assert!(
            !self.login_works(),
            "a login succeeded with no valid certificate"
        );
        self.wait_for_logged_renewal_failure(kind);
    }
}

/// What the caller of a direct signature must see under a fault.
struct Expected {
    kind: ErrorKind,
    /// Attempts the signer may make (each one costs a vault operation).
    attempts: RangeInclusive<u64>,
    /// A phrase the error text must contain.
    says: &'static str,
}

fn expect(kind: ErrorKind, attempts: RangeInclusive<u64>, says: &'static str) -> Expected {
    Expected {
        kind,
        attempts,
        says,
    }
}

const ALL_ATTEMPTS: u64 = MAX_RETRIES as u64 + 1;

/// Runs one fault from start to recovery:
///
/// 1. `inject` breaks the vault, the token endpoint or TLS for good;
/// 2. a direct signature fails as `expected`, within the time bound;
/// 3. cookies keep signing (and verifying) inside the refresh window, while renewing fails in
///    the background; past the certificate's expiry signing fails with the fault's kind;
/// 4. ssh logins keep working until the agent's certificate expires (its renewal fails and
///    is logged with the cause); then the certificate is no longer offered and logins fail;
/// 5. `restore` undoes the fault; cookies, logins and direct signatures work again without a
///    restart (when `restore` is `None`, as for a deleted key, they keep failing clearly).
fn ride_out(
    token_lifetime: Option<Duration>,
    inject: impl FnOnce(&Emulator),
    expected: Expected,
    restore: Option<&dyn Fn(&Emulator)>,
) {
    let rig = Rig::start(token_lifetime);
    let certificate = rig.listed_certificate().expect("a certificate");

    inject(&rig.emu);
    // Logins go on with the current certificate (no vault call is needed for them).
    rig.sshd.assert_login(&rig.agent.socket, &[]);

    // The three parts are independent (each has a key and signer of its own) and run side by
    // side: where the fault is a slow vault, each spends real seconds on network timeouts.
    std::thread::scope(|scope| {
        let cookies = scope.spawn(|| rig.cookies_ride_out(expected.kind));
        let ssh = scope.spawn(|| rig.ssh_ride_out(&certificate, expected.kind));
        rig.direct_signature_fails(&expected);
        cookies
            .join()
            .expect("cookies signed until their certificate expired, then failed");
        ssh.join()
            .expect("ssh went on until the certificate expired, then failed");
    });

    // 5. Recovery, without restarting anything.
    let Some(restore) = restore else {
        let error = rig
            .runtime
            .block_on(rig.direct.sign(Algorithm::ES256, b"still"))
            .unwrap_err();
        assert_eq!(error.kind(), expected.kind, "{error}");
        return;
    };
    restore(&rig.emu);
    rig.runtime
        .block_on(rig.direct.sign(Algorithm::ES256, b"recovered"))
        .expect("direct signing recovers");
    rig.clock.advance(Duration::from_secs(10)); // past the cookie signer's retry backoff
    rig.cookie_round_trip().expect("cookies recover");
    rig.runtime
        .block_on(rig.agent.agent.renew_certificates())
        .expect("the agent renews once the vault is back");
    rig.sshd.assert_login(&rig.agent.socket, &[]);
}

fn clear(emu: &Emulator) {
    emu.clear_faults();
}

// ---- the vault answers, but not with a signature ----

#[test]
fn a_429_storm_without_retry_after_ends_throttled_after_the_allowed_retries() {
    ride_out(
        None,
        |emu| emu.inject_always(Fault::Throttle(None)),
        expect(
            ErrorKind::Throttled,
            ALL_ATTEMPTS..=ALL_ATTEMPTS,
            "HTTP 429",
        ),
        Some(&clear),
    );
}

#[test]
fn a_429_storm_with_retry_after_is_waited_out_within_the_time_allowed() {
    // `Retry-After: 1` is honoured: about three attempts fit in the 3 s budget.
    ride_out(
        None,
        |emu| emu.inject_always(Fault::Throttle(Some(RetryAfter::Seconds(1)))),
        expect(ErrorKind::Throttled, 2..=4, "HTTP 429"),
        Some(&clear),
    );
}

#[test]
fn a_retry_after_beyond_the_time_allowed_ends_at_once() {
    ride_out(
        None,
        |emu| emu.inject_always(Fault::Throttle(Some(RetryAfter::Seconds(30)))),
        expect(ErrorKind::Throttled, 1..=1, "asked to wait 30.0 s"),
        Some(&clear),
    );
}

#[test]
fn a_5xx_storm_ends_unavailable_after_the_allowed_retries() {
    ride_out(
        None,
        |emu| emu.inject_always(Fault::Status(503)),
        expect(
            ErrorKind::Unavailable,
            ALL_ATTEMPTS..=ALL_ATTEMPTS,
            "HTTP 503",
        ),
        Some(&clear),
    );
}

#[test]
fn replies_slower_than_the_attempt_timeout_end_in_a_timeout_within_the_budget() {
    // Each attempt is cut at 1 s; the third is cut short by the 3 s budget.
    ride_out(
        None,
        |emu| emu.inject_always(Fault::Latency(SLOW)),
        expect(ErrorKind::Timeout, 2..=ALL_ATTEMPTS, "no answer within"),
        Some(&clear),
    );
}

#[test]
fn dropped_connections_end_unavailable_after_the_allowed_retries() {
    ride_out(
        None,
        |emu| emu.inject_always(Fault::Drop),
        expect(
            ErrorKind::Unavailable,
            ALL_ATTEMPTS..=ALL_ATTEMPTS,
            "connection failure",
        ),
        Some(&clear),
    );
}

#[test]
fn a_tampered_signature_is_refused_and_not_retried() {
    ride_out(
        None,
        |emu| emu.inject_always(Fault::Tamper),
        expect(ErrorKind::InvalidSignature, 1..=1, "does not verify"),
        Some(&clear),
    );
}

// ---- TLS ----

#[test]
fn an_untrusted_server_certificate_is_not_retried() {
    // The emulator closes the pooled connections; one the client has not yet seen closed
    // is one retryable failure. Then a new connection meets a certificate from an unknown CA:
    // retrying cannot help.
    ride_out(
        None,
        |emu| emu.break_tls(TlsFault::UntrustedCertificate),
        expect(ErrorKind::Unavailable, 1..=2, "certificate is not trusted"),
        Some(&clear),
    );
}

#[test]
fn handshakes_cut_short_end_unavailable_after_the_allowed_retries() {
    ride_out(
        None,
        |emu| emu.break_tls(TlsFault::AbortHandshake),
        expect(
            ErrorKind::Unavailable,
            ALL_ATTEMPTS..=ALL_ATTEMPTS,
            "connection failure",
        ),
        Some(&clear),
    );
}

// ---- the token endpoint ----

/// Tokens that have expired when they arrive. The SDK refreshes a token 5 minutes before it
/// expires but keeps using it while refreshing fails, so a token endpoint outage is felt only
/// once the token in hand has expired; with these every request needs a new token.
const SHORT_TOKENS: Option<Duration> = Some(Duration::ZERO);

#[test]
fn a_failing_token_endpoint_ends_unavailable_after_the_allowed_retries() {
    ride_out(
        SHORT_TOKENS,
        |emu| emu.inject_token_always(Fault::Status(503)),
        expect(
            ErrorKind::Unavailable,
            ALL_ATTEMPTS..=ALL_ATTEMPTS,
            "token endpoint answered HTTP 503",
        ),
        Some(&clear),
    );
}

#[test]
fn a_throttling_token_endpoint_ends_throttled() {
    ride_out(
        SHORT_TOKENS,
        |emu| emu.inject_token_always(Fault::Throttle(None)),
        expect(
            ErrorKind::Throttled,
            ALL_ATTEMPTS..=ALL_ATTEMPTS,
            "token endpoint answered HTTP 429",
        ),
        Some(&clear),
    );
}

#[test]
fn an_unreachable_token_endpoint_ends_unavailable() {
    ride_out(
        SHORT_TOKENS,
        |emu| emu.inject_token_always(Fault::Drop),
        expect(
            ErrorKind::Unavailable,
            ALL_ATTEMPTS..=ALL_ATTEMPTS,
            "cannot reach the token endpoint",
        ),
        Some(&clear),
    );
}

#[test]
fn a_slow_token_endpoint_ends_in_a_timeout() {
    ride_out(
        SHORT_TOKENS,
        |emu| emu.inject_token_always(Fault::Latency(SLOW)),
        expect(ErrorKind::Timeout, 2..=ALL_ATTEMPTS, "no answer within"),
        Some(&clear),
    );
}

#[test]
fn a_refused_client_secret_is_permission_denied_and_not_retried() {
    // The secret was rotated away: Entra answers 401 invalid_client.
    ride_out(
        SHORT_TOKENS,
        |emu| emu.inject_token_always(Fault::Status(401)),
        expect(
            ErrorKind::PermissionDenied,
            1..=1,
            "token endpoint answered HTTP 401 (Entra error codes 7000222)",
        ),
        Some(&clear),
    );
}

// ---- the key changes under the running signers ----

#[test]
fn a_key_disabled_mid_run_is_key_disabled_and_not_retried() {
    let set = |enabled: bool| {
        move |emu: &Emulator| {
            for name in KEYS {
                emu.set_attributes(
                    name,
                    None,
                    Attributes {
                        enabled,
                        ..Attributes::default()
                    },
                );
            }
        }
    };
    ride_out(
        None,
        set(false),
        expect(ErrorKind::KeyDisabled, 1..=1, "KeyDisabled"),
        Some(&set(true)),
    );
}

#[test]
fn access_revoked_mid_run_is_permission_denied_and_not_retried() {
    ride_out(
        None,
        |emu| {
            for name in KEYS {
                emu.deny(name, Deny::Rbac);
            }
        },
        expect(ErrorKind::PermissionDenied, 1..=1, "ForbiddenByRbac"),
        Some(&|emu: &Emulator| {
            for name in KEYS {
                emu.allow(name);
            }
        }),
    );
}

#[test]
fn a_key_deleted_mid_run_is_key_not_found_and_not_retried() {
    ride_out(
        None,
        |emu| {
            for name in KEYS {
                emu.delete_key(name);
            }
        },
        expect(ErrorKind::KeyNotFound, 1..=1, "HTTP 404"),
        None,
    );
}

// ---- short bursts are absorbed by the retries ----

fn burst(token_lifetime: Option<Duration>, inject: impl FnOnce(&Emulator), attempts: u64) {
    let emu = Emulator::start();
    if let Some(lifetime) = token_lifetime {
        emu.set_token_lifetime(lifetime);
    }
    emu.create_key("direct", KeySpec::P256);
    let runtime = runtime();
    let (signer, _) = open(&emu, &runtime, "direct");
    inject(&emu);
    let before = signer.stats().sign;
    let signature = runtime
        .block_on(signer.sign(Algorithm::ES256, b"through a burst"))
        .expect("a burst shorter than the retries is not seen by the caller");
    signer
        .public_key()
        .verify(Algorithm::ES256, b"through a burst", signature.as_bytes())
        .unwrap();
    let after = signer.stats().sign;
    assert_eq!(after.attempts - before.attempts, attempts);
    assert_eq!(after.retries - before.retries, attempts - 1);
}

#[test]
fn short_bursts_of_5xx_429_and_dropped_connections_are_retried_transparently() {
    burst(
        None,
        |emu| {
            emu.inject(Fault::Status(500), 1);
            emu.inject(Fault::Status(503), 1);
        },
        3,
    );
    burst(
        None,
        |emu| emu.inject(Fault::Throttle(Some(RetryAfter::Millis(200))), 2),
        3,
    );
    burst(None, |emu| emu.inject(Fault::Drop, 1), 2);
    burst(None, |emu| emu.inject(Fault::Latency(SLOW), 1), 2);
}

#[test]
fn a_token_endpoint_blip_is_retried_transparently() {
    burst(
        SHORT_TOKENS,
        |emu| emu.inject_token(Fault::Status(503), 1),
        2,
    );
    burst(SHORT_TOKENS, |emu| emu.inject_token(Fault::Drop, 1), 2);
}
