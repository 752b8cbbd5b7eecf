//! The renewal engine: keeps a short-lived credential fresh, whatever it is. Issue one, use it
//! until shortly before it expires, issue the next in the background, once, however many tasks
//! ask.
//!
//! [`Rotation`] is generic over an [`Issuer`]; it renews the JWS certificates of
//! [`surrogate`](crate::surrogate) keys and the OpenSSH certificates of the ssh-agent.
//!
//! One policy for all of them:
//! - **Single flight**: at most one issuing call at a time, however many callers.
//! - **Backoff**: after a failure, no new attempt before the backoff has passed, measured from
//!   the failure (1 s doubling to 60 s by default); a success resets it.
//! - **Readers never wait on a renewal while a credential is valid**; once it has expired
//!   after a failure, callers get an error at once instead of queueing behind an attempt that
//!   may hang ([`Rotation::current`] never waits at all).
//! - **Poisoning**: the state is plain data, consistent after every write, so a lock poisoned
//!   by a panic elsewhere is used as it is.
//! - **Status**: [`RotationStatus`] (issuing calls, current expiry, next renewal, last error).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rand_core::RngCore;

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};

/// A credential that expires: what a [`Rotation`] keeps fresh.
pub trait Credential: Send + Sync + 'static {
    /// A short identifier for status reports and logs (never secret).
    fn id(&self) -> &str;
    /// The end of the credential's validity.
    fn not_after(&self) -> SystemTime;
}

/// Makes fresh credentials; each call is one operation of the expensive key.
#[async_trait]
pub trait Issuer: fmt::Debug + Send + Sync + 'static {
    /// What this issuer makes.
    type Credential: Credential;

    /// Makes a credential valid from `now`.
    ///
    /// A failure must leave nothing behind: the rotation keeps using the credential it has.
    ///
    /// # Errors
    /// Whatever stopped the issuing; the error is reported in [`RotationStatus::last_error`].
    async fn issue(&self, now: SystemTime) -> Result<Self::Credential>;
}

/// When to rotate and how to retry. Build with [`RotationOptions::new`] and the setters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationOptions {
    pub(crate) refresh_margin: Duration,
    pub(crate) jitter: Duration,
    retry_initial: Duration,
    retry_max: Duration,
}

impl Default for RotationOptions {
    fn default() -> Self {
        RotationOptions {
            refresh_margin: Duration::from_secs(10 * 60),
            jitter: Duration::from_secs(5 * 60),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

impl RotationOptions {
    /// The defaults: refresh margin 10 minutes, jitter 5 minutes, retries after 1 s doubling
    /// up to 60 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long before a credential expires its successor is issued (default 10 minutes).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The most by which rotation is moved earlier still, chosen at random per credential, so
    /// a fleet started together does not rotate in lockstep (default 5 minutes; zero turns it
    /// off).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// After a failed issue, the first wait before the next attempt (default 1 s); each further
    /// failure doubles it up to `max` (default 60 s).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max.max(initial);
        self
    }
}

/// A snapshot of a rotation's state, for metrics and health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotationStatus {
    /// Issue attempts so far, successful or not (for a surrogate signer: managed-key operations).
    pub attempts: u64,
    /// Credentials issued so far.
    pub issued: u64,
    /// The id of the credential in use, if any.
    pub current_id: Option<String>,
    /// When the credential in use expires.
    pub current_not_after: Option<SystemTime>,
    /// When the next rotation is due (or, after a failure, the next retry).
    pub next_rotation: Option<SystemTime>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The last failure since the last success, and when it happened.
    pub last_error: Option<(SystemTime, String)>,
}

/// Keeps one credential fresh. Cheap to clone; clones share the credential.
///
/// [`get`](Rotation::get) returns the current credential. When rotation is due (the refresh
/// margin plus jitter before expiry) the first caller starts it in the background on the tokio
/// runtime (or, outside one, waits for it) and every caller keeps getting the current
/// credential meanwhile. Only when there is no valid credential do callers wait, and then for
/// one issue between them. A failed issue is retried with exponential backoff, no earlier;
/// once the current credential has expired, callers get an error naming the last failure until
/// an issue succeeds.
///
/// Holds the current credential only; its successor replaces it once complete, and the old
/// one is dropped when the last caller using it lets go.
pub struct Rotation<I: Issuer> {
    shared: Arc<Shared<I>>,
}

impl<I: Issuer> Clone for Rotation<I> {
    fn clone(&self) -> Self {
        Rotation {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<I: Issuer> {
    issuer: I,
    clock: Arc<dyn Clock>,
    options: RotationOptions,
    jitter_rng: Mutex<Box<dyn RngCore + Send>>,
    state: RwLock<State<I::Credential>>,
    /// Held while issuing: the single flight.
    flight: Arc<tokio::sync::Mutex<()>>,
}

struct State<C> {
    current: Option<Current<C>>,
    attempts: u64,
    issued: u64,
    retry_at: Option<SystemTime>,
    backoff: Duration,
    failures: u32,
    last_error: Option<LastError>,
}

struct Current<C> {
    credential: Arc<C>,
    rotate_at: SystemTime,
}

struct LastError {
    at: SystemTime,
    kind: ErrorKind,
    text: String,
}

impl<I: Issuer> fmt::Debug for Rotation<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("issuer", &self.shared.issuer)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Where a call's time comes from: the rotation's clock (read again after a slow issue, so
/// backoff counts from the failure), or a time the caller passed.
#[derive(Clone, Copy)]
enum Time {
    Clock,
    At(SystemTime),
}

/// Whether an issue is wanted because rotation is due, or only because nothing valid is left.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Due,
    Expired,
}

impl<I: Issuer> Rotation<I> {
    /// A rotation that issues with `issuer`, reads time from `clock`, and draws jitter from
    /// `jitter_rng`. Nothing is issued until the first [`get`](Rotation::get).
    pub fn new(
        issuer: I,
        clock: Arc<dyn Clock>,
        options: RotationOptions,
        jitter_rng: Box<dyn RngCore + Send>,
    ) -> Self {
        Rotation {
            shared: Arc::new(Shared {
                issuer,
                clock,
                options,
                jitter_rng: Mutex::new(jitter_rng),
                state: RwLock::new(State {
                    current: None,
                    attempts: 0,
                    issued: 0,
                    retry_at: None,
                    backoff: options.retry_initial,
                    failures: 0,
                    last_error: None,
                }),
                flight: Arc::new(tokio::sync::Mutex::new(())),
            }),
        }
    }

    /// The issuer.
    pub fn issuer(&self) -> &I {
        &self.shared.issuer
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// The current credential, issuing one first if none is valid.
    ///
    /// # Errors
    /// When no valid credential exists and issuing one fails (or is waiting out its backoff):
    /// an error of the issuer's failure kind that says so and names the last failure.
    pub async fn get(&self) -> Result<Arc<I::Credential>> {
        let (credential, due) = self.shared.lookup(self.shared.clock.now());
        match credential {
            Some(credential) => {
                if due {
                    self.start_background().await;
                }
                Ok(credential)
            }
            None => self.get_expired(Time::Clock).await,
        }
    }

    /// Like [`get`](Rotation::get), for callers that carry time themselves: every decision,
    /// issue and failure is taken to happen at `now`, and nothing runs in the background. The
    /// caller that finds renewal due while none is in flight renews, and gets the new
    /// credential (or, if that fails, the current one); the others get the current one
    /// meanwhile, without waiting.
    ///
    /// # Errors
    /// As [`get`](Rotation::get).
    pub async fn get_at(&self, now: SystemTime) -> Result<Arc<I::Credential>> {
        let (credential, due) = self.shared.lookup(now);
        match credential {
            Some(credential) if due => match self.shared.flight.clone().try_lock_owned() {
                Ok(_flight) => Ok(self
                    .shared
                    .issue_locked(Need::Due, Time::At(now))
                    .await
                    .unwrap_or(credential)),
                Err(_) => Ok(credential),
            },
            Some(credential) => Ok(credential),
            None => self.get_expired(Time::At(now)).await,
        }
    }

    /// [`get`](Rotation::get) when nothing valid is left.
    async fn get_expired(&self, time: Time) -> Result<Arc<I::Credential>> {
        if self.shared.read().failures == 0 {
            // The first issue, or a routine one: wait for it, once between callers.
            let _flight = self.shared.flight.lock().await;
            return self.shared.issue_locked(Need::Expired, time).await;
        }
        // After a failure, nobody queues behind an attempt that may hang: whoever finds no
        // attempt in flight makes one, the others get the failure at once.
        match self.shared.flight.clone().try_lock_owned() {
            Ok(_flight) => self.shared.issue_locked(Need::Expired, time).await,
            Err(_) => Err(self.shared.no_credential(&self.shared.read())),
        }
    }

    /// The credential valid now, or `None`, without ever waiting. When renewal is due (or
    /// nothing valid is left) and the backoff allows, one is started in the background on the
    /// current tokio runtime (outside one, nothing is started).
    pub fn current(&self) -> Option<Arc<I::Credential>> {
        let now = self.shared.clock.now();
        let (credential, need) = {
            let state = self.shared.read();
            let valid = state
                .current
                .as_ref()
                .filter(|c| now < c.credential.not_after());
            let need = match valid {
                Some(c) if now < c.rotate_at => None,
                Some(_) => Some(Need::Due),
                None => Some(Need::Expired),
            };
            let may_try = state.retry_at.is_none_or(|r| now >= r);
            (
                valid.map(|c| c.credential.clone()),
                need.filter(|_| may_try),
            )
        };
        if let (Some(need), Ok(runtime)) = (need, tokio::runtime::Handle::try_current())
            && let Ok(flight) = self.shared.flight.clone().try_lock_owned()
        {
            let shared = self.shared.clone();
            runtime.spawn(async move {
                // A failure is recorded in the state.
                let _ = shared.issue_locked(need, Time::Clock).await;
                drop(flight);
            });
        }
        credential
    }

    /// Waits for a rotation in progress, then rotates now if one is due (ignoring backoff)
    /// and returns the current credential. For tests, health checks and warm-up at start.
    ///
    /// # Errors
    /// As [`get`](Rotation::get), when no valid credential results.
    pub async fn refresh(&self) -> Result<Arc<I::Credential>> {
        let _flight = self.shared.flight.lock().await;
        self.shared.write().retry_at = None;
        self.shared.issue_locked(Need::Due, Time::Clock).await
    }

    /// Waits until no rotation is in progress.
    pub async fn settled(&self) {
        drop(self.shared.flight.lock().await);
    }

    /// The state now.
    pub fn status(&self) -> RotationStatus {
        let state = self.shared.read();
        let next_rotation = match (&state.current, state.retry_at) {
            (_, Some(retry)) => Some(retry),
            (Some(c), None) => Some(c.rotate_at),
            (None, None) => None,
        };
        RotationStatus {
            attempts: state.attempts,
            issued: state.issued,
            current_id: state
                .current
                .as_ref()
                .map(|c| c.credential.id().to_string()),
            current_not_after: state.current.as_ref().map(|c| c.credential.not_after()),
            next_rotation,
            consecutive_failures: state.failures,
            last_error: state.last_error.as_ref().map(|e| (e.at, e.text.clone())),
        }
    }

    /// Starts a rotation unless one is in progress: spawned on the current tokio runtime, or,
    /// outside one, awaited here.
    async fn start_background(&self) {
        let Ok(flight) = self.shared.flight.clone().try_lock_owned() else {
            return; // someone is rotating already
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let shared = self.shared.clone();
                runtime.spawn(async move {
                    // A failure is recorded in the state; the current credential stays in use.
                    let _ = shared.issue_locked(Need::Due, Time::Clock).await;
                    drop(flight);
                });
            }
            Err(_) => {
                let _ = self.shared.issue_locked(Need::Due, Time::Clock).await;
                drop(flight);
            }
        }
    }
}

impl<I: Issuer> Shared<I> {
    fn now(&self, time: Time) -> SystemTime {
        match time {
            Time::Clock => self.clock.now(),
            Time::At(now) => now,
        }
    }

    /// The credential valid at `now`, and whether renewing it is due (and the backoff allows).
    fn lookup(&self, now: SystemTime) -> (Option<Arc<I::Credential>>, bool) {
        let state = self.read();
        match &state.current {
            Some(c) if now < c.credential.not_after() => (
                Some(c.credential.clone()),
                now >= c.rotate_at && state.retry_at.is_none_or(|r| now >= r),
            ),
            _ => (None, true),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<I::Credential>> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State<I::Credential>> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues if still needed. The caller holds the flight lock.
    async fn issue_locked(&self, need: Need, time: Time) -> Result<Arc<I::Credential>> {
        let now = self.now(time);
        let valid = {
            let state = self.read();
            let valid = state
                .current
                .as_ref()
                .filter(|c| now < c.credential.not_after());
            if let Some(c) = valid
                && (need == Need::Expired || now < c.rotate_at)
            {
                return Ok(c.credential.clone()); // someone else rotated meanwhile
            }
            if let Some(retry_at) = state.retry_at
                && now < retry_at
            {
                return match valid {
                    Some(c) => Ok(c.credential.clone()),
                    None => Err(self.no_credential(&state)),
                };
            }
            valid.map(|c| c.credential.clone())
        };
        self.write().attempts += 1;
        match self.issuer.issue(now).await {
            Ok(credential) => {
                let credential = Arc::new(credential);
                let rotate_at = self.rotate_at(now, credential.not_after());
                let mut state = self.write();
                state.current = Some(Current {
                    credential: credential.clone(),
                    rotate_at,
                });
                state.issued += 1;
                state.retry_at = None;
                state.backoff = self.options.retry_initial;
                state.failures = 0;
                state.last_error = None;
                Ok(credential)
            }
            Err(error) => {
                let failed_at = self.now(time);
                let mut state = self.write();
                state.failures = state.failures.saturating_add(1);
                state.retry_at = Some(failed_at + state.backoff);
                state.backoff = (state.backoff * 2).min(self.options.retry_max);
                state.last_error = Some(LastError {
                    at: failed_at,
                    kind: error.kind(),
                    text: error.to_string(),
                });
                match valid {
                    Some(_) => Err(error),
                    None => Err(self.no_credential(&state)),
                }
            }
        }
    }

    /// Rotation time for a credential issued at `now` that expires at `not_after`: the refresh
    /// margin and a random part of the jitter before expiry, never before `now`.
    fn rotate_at(&self, now: SystemTime, not_after: SystemTime) -> SystemTime {
        let jitter_nanos = self.options.jitter.as_nanos().min(u64::MAX as u128) as u64;
        let jitter = if jitter_nanos == 0 {
            Duration::ZERO
        } else {
            let draw = self
                .jitter_rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next_u64();
            Duration::from_nanos(draw % (jitter_nanos + 1))
        };
        not_after
            .checked_sub(self.options.refresh_margin + jitter)
            .map_or(now, |t| t.max(now))
    }

    fn no_credential(&self, state: &State<I::Credential>) -> Error {
        let expired = if state.current.is_some() {
            "the current credential has expired"
        } else {
            "no credential has been issued yet"
        };
        match &state.last_error {
            Some(last) => Error::with_context(
                last.kind,
                format!(
                    "{expired} and issuing a new one failed {} time(s), last: {}",
                    state.failures, last.text
                ),
            ),
            None => Error::with_context(ErrorKind::Unavailable, expired),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

    /// Issues credentials valid for 100 s; fails or hangs on demand, counting issuing calls.
    #[derive(Debug, Default)]
    struct Flaky {
        calls: AtomicU32,
        /// 0 works, 1 fails, 2 hangs until `release` is notified (then fails).
        mode: AtomicU8,
        entered: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    #[derive(Debug)]
    struct Token(SystemTime);

    impl Credential for Token {
        fn id(&self) -> &str {
            "token"
        }
        fn not_after(&self) -> SystemTime {
            self.0
        }
    }

    #[async_trait]
    impl Issuer for Arc<Flaky> {
        type Credential = Token;
        async fn issue(&self, now: SystemTime) -> Result<Token> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.mode.load(Ordering::SeqCst) {
                0 => Ok(Token(now + Duration::from_secs(100))),
                1 => Err(Error::with_context(ErrorKind::Unavailable, "outage")),
                _ => {
                    self.entered.notify_one();
                    self.release.notified().await;
                    Err(Error::with_context(ErrorKind::Timeout, "hung"))
                }
            }
        }
    }

    /// `future`'s output if it is ready at the first poll; panics if it would wait.
    async fn at_once<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::select! {
            biased;
            out = future => out,
            () = std::future::ready(()) => panic!("the caller had to wait"),
        }
    }

    fn rotation(flaky: &Arc<Flaky>, clock: &Arc<ManualClock>) -> Rotation<Arc<Flaky>> {
        let options = RotationOptions::new()
            .refresh_margin(Duration::from_secs(25))
            .jitter(Duration::ZERO)
            .retry_backoff(Duration::from_secs(1), Duration::from_secs(8));
        Rotation::new(
            Arc::clone(flaky),
            clock.clone(),
            options,
            Box::new(rand_core::OsRng),
        )
    }

    #[tokio::test]
    async fn after_expiry_and_a_failure_callers_never_queue_behind_a_hanging_attempt() {
        let flaky = Arc::new(Flaky::default());
        let clock = Arc::new(ManualClock::at_unix(1_000_000));
        let rotation = rotation(&flaky, &clock);
        rotation.get().await.unwrap();
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);

        // Expired, and the service fails: an error naming the failure.
        flaky.mode.store(1, Ordering::SeqCst);
        clock.advance(Duration::from_secs(150));
        let err = rotation.get().await.unwrap_err();
        assert!(err.to_string().contains("outage"), "{err}");
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
        // Within the backoff: no attempt, whoever asks, however often.
        for _ in 0..10 {
            assert!(at_once(rotation.get()).await.is_err());
            assert!(rotation.current().is_none());
        }
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);

        // Past the backoff the service hangs: one caller tries, the others fail at once.
        flaky.mode.store(2, Ordering::SeqCst);
        clock.advance(Duration::from_secs(1));
        let trying = {
            let rotation = rotation.clone();
            tokio::spawn(async move { rotation.get().await })
        };
        flaky.entered.notified().await;
        for _ in 0..10 {
            let err = at_once(rotation.get()).await.unwrap_err();
            assert!(err.to_string().contains("has expired"), "{err}");
            assert!(rotation.current().is_none());
        }
        // Time passes many backoff steps; still the one attempt in flight.
        clock.advance(Duration::from_secs(60));
        assert!(at_once(rotation.get()).await.is_err());
        assert!(rotation.current().is_none());
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
        flaky.release.notify_one();
        assert!(trying.await.unwrap().is_err());
        let status = rotation.status();
        assert_eq!(status.consecutive_failures, 2);
        assert_eq!(status.attempts, 3);

        // The service returns: the next attempt after the backoff succeeds, once.
        flaky.mode.store(0, Ordering::SeqCst);
        clock.advance(Duration::from_secs(8));
        rotation.get().await.unwrap();
        rotation.get().await.unwrap();
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 4);
        assert_eq!(rotation.status().last_error, None);
    }

    #[tokio::test]
    async fn current_serves_without_waiting_and_renews_in_the_background() {
        let flaky = Arc::new(Flaky::default());
        let clock = Arc::new(ManualClock::at_unix(1_000_000));
        let rotation = rotation(&flaky, &clock);
        assert!(rotation.current().is_none(), "nothing issued yet");
        rotation.settled().await;
        assert!(rotation.current().is_some(), "issued in the background");
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);

        // Due (25 s left) while the service hangs: the current credential is served meanwhile.
        flaky.mode.store(2, Ordering::SeqCst);
        clock.advance(Duration::from_secs(80));
        assert!(rotation.current().is_some());
        flaky.entered.notified().await;
        for _ in 0..10 {
            assert!(rotation.current().is_some());
            assert!(at_once(rotation.get()).await.is_ok());
        }
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
        // Expired while it still hangs: nothing to serve, at once.
        clock.advance(Duration::from_secs(30));
        assert!(rotation.current().is_none());
        flaky.release.notify_one();
        rotation.settled().await;
        assert_eq!(rotation.status().consecutive_failures, 1);
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn get_at_renews_inline_for_one_caller_and_serves_the_others_at_once() {
        let flaky = Arc::new(Flaky::default());
        let clock = Arc::new(ManualClock::at_unix(0));
        let rotation = rotation(&flaky, &clock);
        let t0 = crate::clock::from_unix_seconds(1_000_000);
        let first = rotation.get_at(t0).await.unwrap();
        // Due at 75 s (25 s margin); the service hangs: the finder waits on its own attempt,
        // everyone else gets the current credential at once.
        flaky.mode.store(2, Ordering::SeqCst);
        let renewing = {
            let rotation = rotation.clone();
            tokio::spawn(async move { rotation.get_at(t0 + Duration::from_secs(80)).await })
        };
        flaky.entered.notified().await;
        for later in 81..90 {
            let served = at_once(rotation.get_at(t0 + Duration::from_secs(later)))
                .await
                .unwrap();
            assert!(Arc::ptr_eq(&served, &first));
        }
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
        // The attempt fails: its caller still gets the valid credential.
        flaky.release.notify_one();
        assert!(Arc::ptr_eq(&renewing.await.unwrap().unwrap(), &first));
        // Within the backoff measured from the failure (at 80 s): no attempt.
        flaky.mode.store(0, Ordering::SeqCst);
        rotation.get_at(t0 + Duration::from_secs(80)).await.unwrap();
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
        let renewed = rotation.get_at(t0 + Duration::from_secs(81)).await.unwrap();
        assert!(!Arc::ptr_eq(&renewed, &first));
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    }
}
