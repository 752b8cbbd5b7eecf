//! What SoftHSM2 never does on its own (a locked PIN, a pulled token, a closed session, a
//! forgotten login), injected through the [`ModuleCalls`] seam around the real module.

use softhsm_token as softhsm;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use cryptoki::types::AuthPin;

use super::module::{CkResult, ModuleCalls};
use super::{KeySpec, Pkcs11Signer};
use crate::error::ErrorKind;
use crate::key::Algorithm;
use crate::signer::RemoteSigner;

/// What to do to the next sign call.
#[derive(Debug, Clone, Copy)]
enum SignFault {
    /// Return this code without asking the module.
    Fail(RvError),
    /// Log the token out for real, then sign.
    LogOut,
    /// Sign, then flip a bit of the signature (a faulty token or a tampering module).
    Corrupt,
}

/// The real module, with failures on demand and counts of the calls that matter.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn ModuleCalls>,
    login_fails: Mutex<Option<RvError>>,
    removed: AtomicBool,
    sign_faults: Mutex<VecDeque<SignFault>>,
    logins: AtomicUsize,
    opens: AtomicUsize,
    signs: AtomicUsize,
}

impl Faulty {
    fn new(inner: Arc<dyn ModuleCalls>) -> Faulty {
        Faulty {
            inner,
            login_fails: Mutex::new(None),
            removed: AtomicBool::new(false),
            sign_faults: Mutex::new(VecDeque::new()),
            logins: AtomicUsize::new(0),
            opens: AtomicUsize::new(0),
            signs: AtomicUsize::new(0),
        }
    }

    fn gone(&self) -> CkResult<()> {
        if self.removed.load(Ordering::SeqCst) {
            return Err(CkError::Pkcs11(
                RvError::TokenNotPresent,
                cryptoki::context::Function::GetTokenInfo,
            ));
        }
        Ok(())
    }

    fn queue(&self, faults: &[SignFault]) {
        self.sign_faults.lock().unwrap().extend(faults);
    }
}

fn fail(rv: RvError) -> CkError {
    CkError::Pkcs11(rv, cryptoki::context::Function::Sign)
}

impl ModuleCalls for Faulty {
    fn slots(&self) -> CkResult<Vec<Slot>> {
        if self.removed.load(Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        self.inner.slots()
    }
    fn token_info(&self, slot: Slot) -> CkResult<TokenInfo> {
        self.gone()?;
        self.inner.token_info(slot)
    }
    fn mechanisms(&self, slot: Slot) -> CkResult<Vec<MechanismType>> {
        self.inner.mechanisms(slot)
    }
    fn open_session(&self, slot: Slot, read_write: bool) -> CkResult<Session> {
        self.gone()?;
        self.opens.fetch_add(1, Ordering::SeqCst);
        self.inner.open_session(slot, read_write)
    }
    fn login(&self, session: &Session, user: UserType, pin: Option<&AuthPin>) -> CkResult<()> {
        self.logins.fetch_add(1, Ordering::SeqCst);
        if let Some(rv) = *self.login_fails.lock().unwrap() {
            return Err(fail(rv));
        }
        self.inner.login(session, user, pin)
    }
    fn find_objects(
        &self,
        session: &Session,
        template: &[Attribute],
    ) -> CkResult<Vec<ObjectHandle>> {
        self.inner.find_objects(session, template)
    }
    fn attributes(
        &self,
        session: &Session,
        object: ObjectHandle,
        types: &[AttributeType],
    ) -> CkResult<Vec<Attribute>> {
        self.inner.attributes(session, object, types)
    }
    fn sign(
        &self,
        session: &Session,
        mechanism: &Mechanism,
        key: ObjectHandle,
        data: &[u8],
    ) -> CkResult<Vec<u8>> {
        self.signs.fetch_add(1, Ordering::SeqCst);
        if self.removed.load(Ordering::SeqCst) {
            return Err(fail(RvError::DeviceRemoved));
        }
        let fault = self.sign_faults.lock().unwrap().pop_front();
        match fault {
            Some(SignFault::Fail(rv)) => Err(fail(rv)),
            Some(SignFault::LogOut) => {
                session.logout()?;
                self.inner.sign(session, mechanism, key, data)
            }
            Some(SignFault::Corrupt) => {
                let mut signature = self.inner.sign(session, mechanism, key, data)?;
                signature[7] ^= 0x10;
                Ok(signature)
            }
            None => self.inner.sign(session, mechanism, key, data),
        }
    }
    fn sign_authenticated(
        &self,
        session: &Session,
        mechanism: &Mechanism,
        key: ObjectHandle,
        data: &[u8],
        pin: Option<&AuthPin>,
    ) -> CkResult<Vec<u8>> {
        self.inner
            .sign_authenticated(session, mechanism, key, data, pin)
    }
}

/// The test token's login state belongs to the whole process: a real log-out
/// ([`SignFault::LogOut`]) logs out every signer on the token, and they log in again. The test
/// that logs out holds this alone; the others that count logins or queue faults share it, so
/// none of them sees a log-out it did not ask for.
static LOGIN_STATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The URI of a P-256 key created on the test token once per process.
fn key_uri() -> &'static str {
    static URI: OnceLock<String> = OnceLock::new();
    URI.get_or_init(|| {
        let hsm = softhsm::token();
        // Its own thread and runtime: the callers are already inside one.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Runtime::new().unwrap();
                    let signer = runtime
                        .block_on(
                            Pkcs11Signer::builder(&hsm.uri("object=seam"))
                                .pin(softhsm::PIN)
                                .generate(KeySpec::P256),
                        )
                        .unwrap();
                    signer.uri().to_string()
                })
                .join()
                .unwrap()
        })
    })
}

/// A signer whose module calls go through a [`Faulty`], which the test keeps.
async fn faulty_signer(sessions: usize) -> (Pkcs11Signer, Arc<Faulty>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let signer = Pkcs11Signer::builder(key_uri())
        .pin(softhsm::PIN)
        .sessions(sessions)
        .wrap_calls(move |real| {
            let faulty = Arc::new(Faulty::new(real));
            tx.send(faulty.clone()).unwrap();
            faulty
        })
        .build()
        .await
        .unwrap();
    (signer, rx.recv().unwrap())
}

async fn signs(signer: &Pkcs11Signer) -> crate::Result<()> {
    let sig = signer.sign(Algorithm::ES256, b"m").await?;
    signer
        .public_key()
        .verify(Algorithm::ES256, b"m", sig.as_bytes())
}

#[tokio::test]
async fn a_locked_pin_says_so_and_shows_no_pin() {
    let _login = LOGIN_STATE.read().await;
    key_uri();
    let err = Pkcs11Signer::builder(key_uri())
        .pin(softhsm::PIN)
        .wrap_calls(|real| {
            let faulty = Faulty::new(real);
            *faulty.login_fails.lock().unwrap() = Some(RvError::PinLocked);
            Arc::new(faulty)
        })
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PinLocked);
    let text = format!("{err} {err:?}");
    assert!(text.contains("security officer PIN"), "{text}");
    assert!(!text.contains(softhsm::PIN), "{text}");
}

#[tokio::test]
async fn a_removed_token_is_not_present_and_found_again_once_reinserted() {
    let _login = LOGIN_STATE.read().await;
    let (signer, faulty) = faulty_signer(2).await;
    signs(&signer).await.unwrap();
    faulty.removed.store(true, Ordering::SeqCst);
    let err = signs(&signer).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("not present"), "{err}");
    assert!(err.is_transient());
    let logins = faulty.logins.load(Ordering::SeqCst);
    faulty.removed.store(false, Ordering::SeqCst);
    signs(&signer).await.unwrap();
    assert_eq!(
        faulty.logins.load(Ordering::SeqCst),
        logins + 1,
        "a re-inserted token is logged in to again"
    );
}

#[tokio::test]
async fn a_forgotten_login_is_renewed_and_the_signature_made() {
    let _login = LOGIN_STATE.write().await; // it logs the token out
    let (signer, faulty) = faulty_signer(1).await;
    signs(&signer).await.unwrap();
    assert_eq!(faulty.logins.load(Ordering::SeqCst), 1);
    faulty.queue(&[SignFault::LogOut]);
    signs(&signer).await.unwrap();
    assert_eq!(faulty.logins.load(Ordering::SeqCst), 2);
    faulty.queue(&[SignFault::Fail(RvError::UserNotLoggedIn)]);
    signs(&signer).await.unwrap();
    assert_eq!(faulty.logins.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_closed_session_is_replaced_once_and_a_lasting_failure_is_returned() {
    let _login = LOGIN_STATE.read().await;
    let (signer, faulty) = faulty_signer(1).await;
    signs(&signer).await.unwrap();
    let opens = faulty.opens.load(Ordering::SeqCst);
    faulty.queue(&[SignFault::Fail(RvError::SessionHandleInvalid)]);
    signs(&signer).await.unwrap();
    assert_eq!(faulty.opens.load(Ordering::SeqCst), opens + 1);

    let before = faulty.signs.load(Ordering::SeqCst);
    faulty.queue(&[
        SignFault::Fail(RvError::SessionHandleInvalid),
        SignFault::Fail(RvError::SessionHandleInvalid),
    ]);
    let err = signs(&signer).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(faulty.signs.load(Ordering::SeqCst), before + 2, "one retry");
    signs(&signer).await.unwrap();

    // Failures that a new session cannot cure are not retried.
    let before = faulty.signs.load(Ordering::SeqCst);
    faulty.queue(&[SignFault::Fail(RvError::MechanismInvalid)]);
    let err = signs(&signer).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Algorithm, "{err}");
    assert_eq!(faulty.signs.load(Ordering::SeqCst), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_signs_log_in_once_and_use_a_bounded_pool() {
    let _login = LOGIN_STATE.read().await;
    let (signer, faulty) = faulty_signer(3).await;
    let signer = Arc::new(signer);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let signer = signer.clone();
            tokio::spawn(async move { signs(&signer).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(faulty.logins.load(Ordering::SeqCst), 1);
    let opens = faulty.opens.load(Ordering::SeqCst);
    assert!(opens <= 3, "{opens} sessions opened for a pool of 3");
}

#[tokio::test]
async fn a_signature_that_does_not_verify_is_never_returned() {
    let _login = LOGIN_STATE.read().await;
    let (signer, faulty) = faulty_signer(1).await;
    faulty.queue(&[SignFault::Corrupt]);
    let err = signer.sign(Algorithm::ES256, b"m").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature, "{err}");
    assert!(err.to_string().contains("does not verify"), "{err}");
    signs(&signer).await.unwrap();
}
