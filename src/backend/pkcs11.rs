//! Keys on PKCS#11 tokens and HSMs (feature `pkcs11`): YubiHSM 2, CloudHSM, Luna, nShield,
//! YubiKey PIV (ykcs11), TPMs (tpm2-pkcs11), Google Cloud KMS (libkmsp11), SoftHSM2.
//!
//! A [`Pkcs11Signer`] signs with one private key on a token, named by an RFC 7512 URI
//! ([`Pkcs11Uri`]). The message is hashed in this process; only the digest goes to the token
//! (for Ed25519, the message itself, as `CKM_EDDSA` requires). Every signature is checked
//! against the public key before it is handed out.
//!
//! ```no_run
//! # async fn demo() -> remote_signer::Result<()> {
//! use remote_signer::backend::pkcs11::Pkcs11Signer;
//! use remote_signer::{Algorithm, RemoteSigner};
//!
//! let signer = Pkcs11Signer::builder(
//!     "pkcs11:token=prod;object=signing?module-path=/usr/lib/softhsm/libsofthsm2.so\
//!      &pin-source=file:/run/secrets/pin",
//! )
//! .build()
//! .await?;
//! let signature = signer.sign(Algorithm::PS256, b"message").await?;
//! # Ok(()) }
//! ```
//!
//! # What it links
//! The `cryptoki` crate, which links no PKCS#11 library at build time: the module named by
//! `module-path` (or `REMOTE_SIGNER_PKCS11_MODULE`) is loaded with `dlopen` when the first key
//! on it is opened, and initialised once per process (`C_Initialize` is per process and shared
//! by every key on the module). Modules are never finalized.
//!
//! # The PIN
//! From [`Pkcs11SignerBuilder::pin`], else the URI's `pin-source=file:PATH` (the first line
//! of a file that, like a key file, group and others may not read), else
//! `REMOTE_SIGNER_PKCS11_PIN`. A token with a protected authentication path (a PIN pad) needs
//! none. A `pin-value` in the URI is refused. The PIN is kept zeroized, never printed, and
//! logged in with once per token; keys marked `CKA_ALWAYS_AUTHENTICATE` (YubiKey PIV slot 9c)
//! get the context-specific login each signature needs.
//!
//! # Keys and mechanisms
//!
//! | key | algorithms | mechanism, input |
//! |---|---|---|
//! | RSA 2048-4096 | RS256, RS384, RS512 | `CKM_RSA_PKCS`, DigestInfo and digest |
//! | RSA 2048-4096 | PS256, PS384, PS512 | `CKM_RSA_PKCS_PSS` (MGF1 of the same hash, salt of the hash's length), digest |
//! | EC P-256, P-384 | ES256, ES384 | `CKM_ECDSA`, digest |
//! | Ed25519 | EdDSA | `CKM_EDDSA`, message (where the token offers it) |
//!
//! The public key is read once from the public key object with the same `CKA_ID` (an EC
//! private key object does not hold its point), checked to belong to the private key (RSA:
//! the modulus and exponent; EC and Ed25519: a test signature), and cached.
//!
//! # Concurrency and recovery
//! PKCS#11 calls block and a session serves one thread at a time, so signing runs on tokio's
//! blocking threads through a bounded pool of sessions
//! ([`sessions`](Pkcs11SignerBuilder::sessions), 8 by default). A call that finds the user
//! logged out (`CKR_USER_NOT_LOGGED_IN`) logs in again and retries; one that finds its
//! session or token gone (`CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`,
//! `CKR_TOKEN_NOT_PRESENT`, `CKR_DEVICE_REMOVED`, a stale key handle after the token was
//! re-inserted) drops the pooled sessions, finds the token and key again, logs in and retries,
//! once.
//!
//! # Errors
//!
//! | what happened | kind |
//! |---|---|
//! | the module does not exist or is not a PKCS#11 library (the text names the path) | `Config` |
//! | no PIN given for a token that needs one, or a wrong or expired PIN | `Pin` |
//! | the user PIN is locked | `PinLocked` |
//! | no token matches, or it was removed | `Unavailable` |
//! | no private key matches the URI | `KeyNotFound` |
//! | several tokens or keys match | `KeyRef` |
//! | the token lacks the mechanism an algorithm needs | `Algorithm` |
//! | a key type or size this crate does not sign with, or a key that may not sign | `UnsupportedKey` |
//! | a signature from the token that does not verify | `InvalidSignature` |
//!
//! Texts name the token and key (the URI's path part) and the `CKR_` code; never a PIN, an
//! attribute value or the module's own messages.

mod error;
mod module;
mod uri;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use cryptoki::types::AuthPin;
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::der::{Decode, Encode};
use rand_core::RngCore;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, Hash, KeyType, PublicKey, Signature};
use crate::signer::{KeyId, RemoteSigner};

pub(crate) use module::ModuleCalls;
pub use uri::Pkcs11Uri;

use module::Module;

/// The environment variable naming the PKCS#11 module when the URI has no `module-path`.
pub const MODULE_ENV: &str = "REMOTE_SIGNER_PKCS11_MODULE";
/// The environment variable holding the user PIN when the URI has no `pin-source`.
pub const PIN_ENV: &str = "REMOTE_SIGNER_PKCS11_PIN";

/// Sessions per signer unless [`Pkcs11SignerBuilder::sessions`] says otherwise.
const DEFAULT_SESSIONS: usize = 8;

/// Signed once at start to check that an EC or Ed25519 private key matches its public key.
const PAIRING_MESSAGE: &[u8] = b"remote-signer pkcs11 key pairing check";

const OID_P256: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");

/// What [`Pkcs11SignerBuilder::generate`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySpec {
    /// RSA with this many bits (2048 to 4096).
    Rsa(usize),
    /// EC P-256.
    P256,
    /// EC P-384.
    P384,
    /// Ed25519 (tokens that offer `CKM_EC_EDWARDS_KEY_PAIR_GEN`).
    Ed25519,
}

impl KeySpec {
    /// The key type, with RSA at 3072 bits (the default of `remote-signer generate`).
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedKey`] for key types this crate does not create on tokens
    /// (secp256k1).
    pub fn from_key_type(key_type: KeyType) -> Result<Self> {
        Ok(match key_type {
            KeyType::Rsa => KeySpec::Rsa(3072),
            KeyType::P256 => KeySpec::P256,
            KeyType::P384 => KeySpec::P384,
            KeyType::Ed25519 => KeySpec::Ed25519,
            other => {
                return Err(Error::with_context(
                    ErrorKind::UnsupportedKey,
                    format!("cannot create {other} keys on a PKCS#11 token"),
                ));
            }
        })
    }
}

/// Builds a [`Pkcs11Signer`]. Setters document their defaults; problems with the given
/// values are reported by [`build`](Self::build).
#[must_use]
pub struct Pkcs11SignerBuilder {
    uri: String,
    module: Option<PathBuf>,
    pin: Option<AuthPin>,
    sessions: usize,
    wrap: Option<CallsWrapper>,
}

type CallsWrapper = Box<dyn FnOnce(Arc<dyn ModuleCalls>) -> Arc<dyn ModuleCalls> + Send>;

impl fmt::Debug for Pkcs11SignerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11SignerBuilder")
            .field("module", &self.module)
            .field("pin", &self.pin.as_ref().map(|_| "<redacted>"))
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl Pkcs11SignerBuilder {
    fn new(uri: &str) -> Self {
        Pkcs11SignerBuilder {
            uri: uri.to_string(),
            module: None,
            pin: None,
            sessions: DEFAULT_SESSIONS,
            wrap: None,
        }
    }

    /// Loads this module (default: the URI's `module-path`, else `REMOTE_SIGNER_PKCS11_MODULE`).
    pub fn module(mut self, path: impl Into<PathBuf>) -> Self {
        self.module = Some(path.into());
        self
    }

    /// Logs in with this user PIN (default: the first line of the URI's `pin-source` file,
    /// else `REMOTE_SIGNER_PKCS11_PIN`, else none, which suits a protected authentication path).
    pub fn pin(mut self, pin: impl Into<String>) -> Self {
        self.pin = Some(AuthPin::from(pin.into()));
        self
    }

    /// At most this many sessions, and so signatures at a time (default: 8; at least 1).
    pub fn sessions(mut self, sessions: usize) -> Self {
        self.sessions = sessions.max(1);
        self
    }

    /// Makes every module call through `wrap(real module)`: the seam for fault tests.
    #[cfg(test)]
    pub(crate) fn wrap_calls(
        mut self,
        wrap: impl FnOnce(Arc<dyn ModuleCalls>) -> Arc<dyn ModuleCalls> + Send + 'static,
    ) -> Self {
        self.wrap = Some(Box::new(wrap));
        self
    }

    /// Loads the module, finds the token and the key, logs in, reads and checks the public key.
    ///
    /// # Errors
    /// The kinds in the [module docs](self): `KeyRef` for a malformed URI, `Config` for a
    /// missing or unloadable module, `Pin`/`PinLocked`, `Unavailable`, `KeyNotFound`,
    /// `UnsupportedKey`, `Algorithm` (no mechanism for the key), `InvalidSignature` (a key whose
    /// private half does not match its public key object).
    pub async fn build(self) -> Result<Pkcs11Signer> {
        tokio::task::spawn_blocking(move || self.build_blocking())
            .await
            .map_err(|_| Error::with_context(ErrorKind::Signing, "PKCS#11 task failed"))?
    }

    /// Creates a key pair on the token named by the URI (which gives `token` and the new key's
    /// `object` label, and no `id`), with a random 16-byte `CKA_ID`, the private key sensitive
    /// and never extractable, then opens it. [`Pkcs11Signer::uri`] names the new key.
    ///
    /// # Errors
    /// As [`build`](Self::build); [`ErrorKind::KeyRef`] when the URI gives no label or gives an
    /// id, or when a key with that label already exists on the token;
    /// [`ErrorKind::UnsupportedKey`] for RSA outside 2048-4096 bits; [`ErrorKind::Algorithm`]
    /// when the token cannot create that key type.
    pub async fn generate(mut self, spec: KeySpec) -> Result<Pkcs11Signer> {
        let built = tokio::task::spawn_blocking(move || -> Result<Self> {
            let (id, pin) = self.generate_blocking(spec)?;
            let uri = Pkcs11Uri::parse(&self.uri)?;
            let object = uri.object().unwrap_or_default();
            let mut named = Pkcs11Uri::new(uri.token().unwrap_or_default(), object, &id);
            if let Some(path) = uri.module_path() {
                named = named.with_module_path(path);
            }
            // The PIN source stays out of the printed URI (it names a file, not a PIN, but a
            // KEYREF is shared more widely than the place the PIN file lives).
            let mut next = Pkcs11SignerBuilder::new(&named.to_string());
            next.module = self
                .module
                .or_else(|| uri.module_path().map(Path::to_path_buf));
            next.pin = pin;
            next.sessions = self.sessions;
            next.wrap = self.wrap;
            Ok(next)
        })
        .await
        .map_err(|_| Error::with_context(ErrorKind::Signing, "PKCS#11 task failed"))??;
        built.build().await
    }

    fn connect(&mut self) -> Result<(Pkcs11Uri, Arc<dyn ModuleCalls>, Option<AuthPin>)> {
        let uri = Pkcs11Uri::parse(&self.uri)?;
        let env_module = std::env::var_os(MODULE_ENV).map(PathBuf::from);
        let path = match &self.module {
            Some(path) => path.clone(),
            None => module::module_path(uri.module_path(), env_module)?,
        };
        let real: Arc<dyn ModuleCalls> = Arc::new(Module::load(&path)?);
        let calls = match self.wrap.take() {
            Some(wrap) => wrap(real),
            None => real,
        };
        let pin = match self.pin.take() {
            Some(pin) => Some(pin),
            None => pin_from(&uri)?,
        };
        Ok((uri, calls, pin))
    }

    fn build_blocking(mut self) -> Result<Pkcs11Signer> {
        let (uri, calls, pin) = self.connect()?;
        let what = uri.key_part();
        let shared = Shared {
            calls,
            what: what.clone(),
            uri,
            pin,
            state: Mutex::new(State::default()),
        };
        let session = shared.connect(&mut shared.lock())?;
        let key = shared.lock().target.map(|t| t.key).ok_or_else(|| {
            Error::with_context(ErrorKind::KeyNotFound, format!("{what}: no private key"))
        })?;
        let found = shared.read_key(&session, key)?;
        shared.lock().idle.push(session);
        let mechanisms = {
            let slot = shared.lock().target.map(|t| t.slot);
            match slot {
                Some(slot) => shared
                    .calls
                    .mechanisms(slot)
                    .map_err(|e| error::map(&e, &format!("{what}: mechanisms")))?
                    .into_iter()
                    .collect(),
                None => Vec::new(),
            }
        };
        let key_type = found.public.key_type();
        let primary = match key_type {
            KeyType::Rsa => MechanismType::RSA_PKCS,
            KeyType::Ed25519 => MechanismType::EDDSA,
            _ => MechanismType::ECDSA,
        };
        if !mechanisms.contains(&primary) {
            return Err(Error::with_context(
                ErrorKind::UnsupportedKey,
                format!(
                    "{what}: the token does not offer {} for this {key_type} key",
                    mechanism_name(primary)
                ),
            ));
        }
        let id = found.id.clone();
        let mut named = shared.uri.clone();
        if named.id().is_none() {
            named = Pkcs11Uri::new(
                named.token().unwrap_or_default(),
                named.object().unwrap_or_default(),
                &id,
            );
            if let Some(path) = shared.uri.module_path() {
                named = named.with_module_path(path);
            }
        }
        let key_id = KeyId::new(format!(
            "{}#{}",
            named.key_part(),
            found.public.jwk_thumbprint()
        ));
        let signer = Pkcs11Signer {
            key_id,
            uri: named,
            public: found.public.clone(),
            inner: Arc::new(Inner {
                shared,
                public: found.public,
                mechanisms,
                always_authenticate: found.always_authenticate,
            }),
            permits: Arc::new(Semaphore::new(self.sessions)),
        };
        if found.check_by_signing {
            let alg = key_type.default_algorithm();
            signer
                .inner
                .sign_checked(alg, PAIRING_MESSAGE)
                .map_err(|e| {
                    if e.kind() == ErrorKind::InvalidSignature {
                        Error::with_context(
                            ErrorKind::InvalidSignature,
                            format!("{what}: the private key does not match its public key object"),
                        )
                    } else {
                        e
                    }
                })?;
        }
        Ok(signer)
    }

    /// Creates the key pair; returns its id and the PIN it logged in with.
    fn generate_blocking(&mut self, spec: KeySpec) -> Result<(Vec<u8>, Option<AuthPin>)> {
        let (uri, calls, pin) = self.connect()?;
        let what = uri.key_part();
        let label = uri.object().ok_or_else(|| {
            Error::with_context(
                ErrorKind::KeyRef,
                "name the new key with object=<label> in the PKCS#11 URI",
            )
        })?;
        if uri.id().is_some() {
            return Err(Error::with_context(
                ErrorKind::KeyRef,
                "leave id= out of the URI: a new key gets a random CKA_ID",
            ));
        }
        let shared = Shared {
            calls,
            what: what.clone(),
            uri: uri.clone(),
            pin,
            state: Mutex::new(State::default()),
        };
        let (slot, info) = shared.find_slot()?;
        let map = |e: CkError, during: &str| error::map(&e, &format!("{what}: {during}"));
        let session = shared
            .calls
            .open_session(slot, true)
            .map_err(|e| map(e, "open session"))?;
        shared.login(&session, &info)?;
        let existing = shared
            .calls
            .find_objects(&session, &[Attribute::Label(label.as_bytes().to_vec())])
            .map_err(|e| map(e, "find objects"))?;
        if !existing.is_empty() {
            return Err(Error::with_context(
                ErrorKind::KeyRef,
                format!("{what}: an object with this label already exists; choose another label"),
            ));
        }
        let mut id = vec![0u8; 16];
        rand_core::OsRng.fill_bytes(&mut id);
        let common = |private: bool| {
            let mut attrs = vec![
                Attribute::Token(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ];
            if private {
                attrs.extend([
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                ]);
            } else {
                attrs.extend([Attribute::Private(false), Attribute::Verify(true)]);
            }
            attrs
        };
        let mut public = common(false);
        let private = common(true);
        let oid_der = |oid: pkcs8::ObjectIdentifier| {
            oid.to_der()
                .map_err(|_| Error::with_context(ErrorKind::Config, "cannot encode curve"))
        };
        let mechanism = match spec {
            KeySpec::Rsa(bits) => {
                if !(2048..=4096).contains(&bits) {
                    return Err(Error::with_context(
                        ErrorKind::UnsupportedKey,
                        format!("RSA keys are 2048 to 4096 bits, not {bits}"),
                    ));
                }
                public.extend([
                    Attribute::ModulusBits((bits as u64).into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                ]);
                Mechanism::RsaPkcsKeyPairGen
            }
            KeySpec::P256 => {
                public.push(Attribute::EcParams(oid_der(OID_P256)?));
                Mechanism::EccKeyPairGen
            }
            KeySpec::P384 => {
                public.push(Attribute::EcParams(oid_der(OID_P384)?));
                Mechanism::EccKeyPairGen
            }
            KeySpec::Ed25519 => {
                public.push(Attribute::EcParams(oid_der(OID_ED25519)?));
                Mechanism::EccEdwardsKeyPairGen
            }
        };
        let offered = shared
            .calls
            .mechanisms(slot)
            .map_err(|e| map(e, "mechanisms"))?;
        if !offered.contains(&mechanism.mechanism_type()) {
            return Err(Error::with_context(
                ErrorKind::Algorithm,
                format!(
                    "{what}: the token cannot create this key type ({} is not offered)",
                    mechanism_name(mechanism.mechanism_type())
                ),
            ));
        }
        session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| map(e, "generate key pair"))?;
        drop(session);
        Ok((id, shared.pin))
    }
}

/// The PIN from the URI's `pin-source` file, else from `REMOTE_SIGNER_PKCS11_PIN`.
fn pin_from(uri: &Pkcs11Uri) -> Result<Option<AuthPin>> {
    if let Some(path) = uri.pin_source() {
        // The same checks as key files: private, regular, small, not empty.
        let bytes = crate::backend::local::read_key_file(path, false, crate::file::DEFAULT_WAIT)
            .map_err(|e| e.prefixed("PIN file (pin-source)"))?;
        let end = bytes
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(bytes.len());
        let pin = std::str::from_utf8(&bytes[..end]).map_err(|_| {
            Error::with_context(
                ErrorKind::Pin,
                format!("PIN file {}: the PIN is not UTF-8", path.display()),
            )
        })?;
        return Ok(Some(AuthPin::from(pin)));
    }
    Ok(std::env::var(PIN_ENV)
        .ok()
        .map(Zeroizing::new)
        .map(|pin| AuthPin::from(pin.as_str())))
}

fn mechanism_name(m: MechanismType) -> &'static str {
    match m {
        MechanismType::RSA_PKCS => "CKM_RSA_PKCS",
        MechanismType::RSA_PKCS_PSS => "CKM_RSA_PKCS_PSS",
        MechanismType::ECDSA => "CKM_ECDSA",
        MechanismType::EDDSA => "CKM_EDDSA",
        MechanismType::RSA_PKCS_KEY_PAIR_GEN => "CKM_RSA_PKCS_KEY_PAIR_GEN",
        MechanismType::ECC_KEY_PAIR_GEN => "CKM_EC_KEY_PAIR_GEN",
        MechanismType::ECC_EDWARDS_KEY_PAIR_GEN => "CKM_EC_EDWARDS_KEY_PAIR_GEN",
        _ => "the mechanism",
    }
}

/// Where the key is: refound after the token comes back.
#[derive(Debug, Clone, Copy)]
struct Target {
    slot: Slot,
    key: ObjectHandle,
}

#[derive(Default)]
struct State {
    target: Option<Target>,
    idle: Vec<Session>,
    logged_in: bool,
}

/// The module, the key's whereabouts and the idle sessions.
struct Shared {
    calls: Arc<dyn ModuleCalls>,
    uri: Pkcs11Uri,
    what: String,
    pin: Option<AuthPin>,
    state: Mutex<State>,
}

/// What the token says about the key.
struct FoundKey {
    id: Vec<u8>,
    public: PublicKey,
    always_authenticate: bool,
    check_by_signing: bool,
}

fn attr_bytes(attrs: &[Attribute], want: AttributeType) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match (a, want) {
        (Attribute::Id(v), AttributeType::Id)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent)
        | (Attribute::EcParams(v), AttributeType::EcParams)
        | (Attribute::EcPoint(v), AttributeType::EcPoint) => Some(v.clone()),
        _ => None,
    })
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, during: &str) -> impl Fn(CkError) -> Error {
        let what = format!("{}: {during}", self.what);
        move |e| error::map(&e, &what)
    }

    /// The one slot whose token matches the URI.
    fn find_slot(&self) -> Result<(Slot, TokenInfo)> {
        let slots = self.calls.slots().map_err(self.fail("list slots"))?;
        let mut matching = Vec::new();
        for slot in slots {
            let info = match self.calls.token_info(slot) {
                // SoftHSM2 and others keep a blank token in a spare slot.
                Ok(info) if !info.token_initialized() => continue,
                Ok(info) => info,
                // A token pulled out while listing is simply not there.
                Err(CkError::Pkcs11(RvError::TokenNotPresent | RvError::DeviceRemoved, _)) => {
                    continue;
                }
                Err(e) => return Err(self.fail("token info")(e)),
            };
            let fits = |want: Option<&str>, have: &str| want.is_none_or(|w| w == have);
            if fits(self.uri.token(), info.label())
                && fits(self.uri.serial(), info.serial_number())
                && fits(self.uri.manufacturer(), info.manufacturer_id())
                && fits(self.uri.model(), info.model())
            {
                matching.push((slot, info));
            }
        }
        match matching.len() {
            0 => Err(Error::with_context(
                ErrorKind::Unavailable,
                format!("{}: the token is not present (no token matches)", self.what),
            )),
            1 => Ok(matching.remove(0)),
            n => Err(Error::with_context(
                ErrorKind::KeyRef,
                format!(
                    "{}: {n} tokens match; add token=<label> or serial=<serial> to the URI",
                    self.what
                ),
            )),
        }
    }

    fn login(&self, session: &Session, info: &TokenInfo) -> Result<()> {
        if !info.login_required() {
            return Ok(());
        }
        let pin = match &self.pin {
            Some(pin) => Some(pin),
            None if info.protected_authentication_path() => None,
            None => {
                return Err(Error::with_context(
                    ErrorKind::Pin,
                    format!(
                        "{}: the token needs a PIN; name a private file holding it with \
                         pin-source=file:PATH in the URI, or set {PIN_ENV}",
                        self.what
                    ),
                ));
            }
        };
        match self.calls.login(session, UserType::User, pin) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(e) => Err(self.fail("login")(e)),
        }
    }

    /// A session on the key's token, logged in; finds the token and key first if needed.
    fn connect(&self, state: &mut State) -> Result<Session> {
        if let Some(target) = state.target {
            let session = self
                .calls
                .open_session(target.slot, false)
                .map_err(self.fail("open session"))?;
            if !state.logged_in {
                let info = self
                    .calls
                    .token_info(target.slot)
                    .map_err(self.fail("token info"))?;
                self.login(&session, &info)?;
                state.logged_in = true;
            }
            return Ok(session);
        }
        let (slot, info) = self.find_slot()?;
        let session = self
            .calls
            .open_session(slot, false)
            .map_err(self.fail("open session"))?;
        self.login(&session, &info)?;
        state.logged_in = true;
        let key = self.find_private_key(&session)?;
        state.target = Some(Target { slot, key });
        Ok(session)
    }

    fn find_private_key(&self, session: &Session) -> Result<ObjectHandle> {
        let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        if let Some(label) = self.uri.object() {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = self.uri.id() {
            template.push(Attribute::Id(id.to_vec()));
        }
        let found = self
            .calls
            .find_objects(session, &template)
            .map_err(self.fail("find key"))?;
        match found.len() {
            0 => Err(Error::with_context(
                ErrorKind::KeyNotFound,
                format!("{}: no private key on the token matches", self.what),
            )),
            1 => Ok(found[0]),
            n => Err(Error::with_context(
                ErrorKind::KeyRef,
                format!(
                    "{}: {n} private keys match; add id=<%-encoded id> to the URI",
                    self.what
                ),
            )),
        }
    }

    /// Reads the private key's type and id, and the public key from its public object.
    fn read_key(&self, session: &Session, key: ObjectHandle) -> Result<FoundKey> {
        let unsupported = |why: &str| {
            Error::with_context(ErrorKind::UnsupportedKey, format!("{}: {why}", self.what))
        };
        let attrs = self
            .calls
            .attributes(
                session,
                key,
                &[
                    AttributeType::KeyType,
                    AttributeType::Id,
                    AttributeType::Sign,
                    AttributeType::AlwaysAuthenticate,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                ],
            )
            .map_err(self.fail("key attributes"))?;
        let key_type = attrs.iter().find_map(|a| match a {
            Attribute::KeyType(t) => Some(*t),
            _ => None,
        });
        if attrs.iter().any(|a| matches!(a, Attribute::Sign(false))) {
            return Err(unsupported("the key may not sign (CKA_SIGN is false)"));
        }
        let always_authenticate = attrs
            .iter()
            .any(|a| matches!(a, Attribute::AlwaysAuthenticate(true)));
        let id = attr_bytes(&attrs, AttributeType::Id).unwrap_or_default();
        let public_object = self.find_public_key(session, &id)?;
        let public_attrs = |types: &[AttributeType]| -> Result<Vec<Attribute>> {
            match public_object {
                Some(object) => self
                    .calls
                    .attributes(session, object, types)
                    .map_err(self.fail("public key attributes")),
                None => Ok(Vec::new()),
            }
        };
        let (public, check_by_signing) = match key_type {
            Some(CkKeyType::RSA) => {
                let private_n = attr_bytes(&attrs, AttributeType::Modulus);
                let private_e = attr_bytes(&attrs, AttributeType::PublicExponent);
                let pub_attrs =
                    public_attrs(&[AttributeType::Modulus, AttributeType::PublicExponent])?;
                let n = attr_bytes(&pub_attrs, AttributeType::Modulus).or(private_n.clone());
                let e = attr_bytes(&pub_attrs, AttributeType::PublicExponent).or(private_e.clone());
                let (Some(n), Some(e)) = (n, e) else {
                    return Err(Error::with_context(
                        ErrorKind::KeyNotFound,
                        format!(
                            "{}: no public key object with the key's CKA_ID, and the private \
                             key does not show its modulus",
                            self.what
                        ),
                    ));
                };
                let same = |a: &Option<Vec<u8>>, b: &[u8]| {
                    a.as_deref()
                        .is_none_or(|a| strip_zeros(a) == strip_zeros(b))
                };
                if !same(&private_n, &n) || !same(&private_e, &e) {
                    return Err(Error::with_context(
                        ErrorKind::InvalidSignature,
                        format!(
                            "{}: the private key does not match its public key object",
                            self.what
                        ),
                    ));
                }
                let public =
                    PublicKey::from_rsa_components(&n, &e).map_err(|e| e.prefixed(&self.what))?;
                // Only when the private object hides its modulus is a test signature needed.
                (public, private_n.is_none())
            }
            Some(CkKeyType::EC) | Some(CkKeyType::EC_EDWARDS) => {
                if public_object.is_none() {
                    return Err(Error::with_context(
                        ErrorKind::KeyNotFound,
                        format!(
                            "{}: no public key object with the key's CKA_ID (an EC private \
                             key object does not hold its point)",
                            self.what
                        ),
                    ));
                }
                let pub_attrs = public_attrs(&[AttributeType::EcParams, AttributeType::EcPoint])?;
                let params = attr_bytes(&pub_attrs, AttributeType::EcParams)
                    .ok_or_else(|| unsupported("the public key has no CKA_EC_PARAMS"))?;
                let point = attr_bytes(&pub_attrs, AttributeType::EcPoint)
                    .ok_or_else(|| unsupported("the public key has no CKA_EC_POINT"))?;
                (self.ec_public_key(&params, &point)?, true)
            }
            _ => return Err(unsupported("only RSA, EC and Ed25519 keys can sign here")),
        };
        Ok(FoundKey {
            id,
            public,
            always_authenticate,
            check_by_signing,
        })
    }

    fn find_public_key(&self, session: &Session, id: &[u8]) -> Result<Option<ObjectHandle>> {
        let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
        if !id.is_empty() {
            template.push(Attribute::Id(id.to_vec()));
        } else if let Some(label) = self.uri.object() {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        } else {
            return Ok(None);
        }
        let found = self
            .calls
            .find_objects(session, &template)
            .map_err(self.fail("find public key"))?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(Some(found[0])),
            n => Err(Error::with_context(
                ErrorKind::KeyRef,
                format!(
                    "{}: {n} public key objects share the key's CKA_ID; cannot tell which is its own",
                    self.what
                ),
            )),
        }
    }

    fn ec_public_key(&self, params: &[u8], point: &[u8]) -> Result<PublicKey> {
        let unsupported = |why: &str| {
            Error::with_context(ErrorKind::UnsupportedKey, format!("{}: {why}", self.what))
        };
        let key_type = match pkcs8::ObjectIdentifier::from_der(params) {
            Ok(oid) if oid == OID_P256 => KeyType::P256,
            Ok(oid) if oid == OID_P384 => KeyType::P384,
            Ok(oid) if oid == OID_ED25519 => KeyType::Ed25519,
            // Tokens written against PKCS#11 3.0 name the curve instead.
            _ if pkcs8::der::asn1::PrintableStringRef::from_der(params)
                .is_ok_and(|s| s.as_str() == "edwards25519") =>
            {
                KeyType::Ed25519
            }
            _ => return Err(unsupported("the curve is not P-256, P-384 or Ed25519")),
        };
        // CKA_EC_POINT is a DER OCTET STRING around the point; a few tokens send it bare.
        let raw = OctetStringRef::from_der(point)
            .map(|o| o.as_bytes().to_vec())
            .unwrap_or_else(|_| point.to_vec());
        let public = match key_type {
            KeyType::Ed25519 => PublicKey::from_ed25519_bytes(&raw),
            _ => PublicKey::from_sec1_point(key_type, &raw),
        };
        public.map_err(|e| e.prefixed(&self.what))
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// What the blocking sign needs, shared by every in-flight signature.
struct Inner {
    shared: Shared,
    public: PublicKey,
    mechanisms: Vec<MechanismType>,
    always_authenticate: bool,
}

/// The mechanism an algorithm uses, and what it signs.
fn prepare(alg: Algorithm, message: &[u8]) -> Result<(MechanismType, Vec<u8>)> {
    let digest_info = |prefix: Box<[u8]>, digest: Vec<u8>| {
        let mut data = prefix.into_vec();
        data.extend_from_slice(&digest);
        data
    };
    Ok(match alg {
        Algorithm::RS256 => (
            MechanismType::RSA_PKCS,
            digest_info(
                rsa::Pkcs1v15Sign::new::<sha2::Sha256>().prefix,
                Hash::Sha256.digest(message),
            ),
        ),
        Algorithm::RS384 => (
            MechanismType::RSA_PKCS,
            digest_info(
                rsa::Pkcs1v15Sign::new::<sha2::Sha384>().prefix,
                Hash::Sha384.digest(message),
            ),
        ),
        Algorithm::RS512 => (
            MechanismType::RSA_PKCS,
            digest_info(
                rsa::Pkcs1v15Sign::new::<sha2::Sha512>().prefix,
                Hash::Sha512.digest(message),
            ),
        ),
        Algorithm::EdDSA => (MechanismType::EDDSA, message.to_vec()),
        other => {
            let hash = other
                .hash()
                .ok_or_else(|| Error::algorithm(format!("{other} cannot sign on a token")))?;
            let mechanism = match other {
                Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 => {
                    MechanismType::RSA_PKCS_PSS
                }
                Algorithm::ES256 | Algorithm::ES384 => MechanismType::ECDSA,
                _ => return Err(Error::algorithm(format!("{other} cannot sign on a token"))),
            };
            (mechanism, hash.digest(message))
        }
    })
}

/// The mechanism with its parameters (PSS: MGF1 of the same hash, salt of the hash's length,
/// as JOSE's PS* and the RustCrypto verifier expect).
fn mechanism(alg: Algorithm, kind: MechanismType) -> Mechanism<'static> {
    match kind {
        MechanismType::RSA_PKCS_PSS => {
            let (hash_alg, mgf, len) = match alg {
                Algorithm::PS384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48u64),
                Algorithm::PS512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64),
                _ => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32),
            };
            Mechanism::RsaPkcsPss(PkcsPssParams {
                hash_alg,
                mgf,
                s_len: len.into(),
            })
        }
        MechanismType::ECDSA => Mechanism::Ecdsa,
        MechanismType::EDDSA => Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519)),
        _ => Mechanism::RsaPkcs,
    }
}

impl Inner {
    /// Signs on this (blocking) thread and checks the signature.
    fn sign_checked(&self, alg: Algorithm, message: &[u8]) -> Result<Vec<u8>> {
        alg.check_key_type(self.public.key_type())?;
        let (kind, data) = prepare(alg, message)?;
        if !self.mechanisms.contains(&kind) {
            return Err(Error::algorithm(format!(
                "{}: the token does not offer {} ({alg})",
                self.shared.what,
                mechanism_name(kind)
            )));
        }
        let mechanism = mechanism(alg, kind);
        let bytes = self.sign_raw(&mechanism, &data)?;
        // PKCS#11 returns ECDSA signatures as r || s, the JOSE form: nothing to convert.
        self.public.verify(alg, message, &bytes).map_err(|_| {
            Error::with_context(
                ErrorKind::InvalidSignature,
                format!(
                    "{}: the token's signature does not verify with the key's public key",
                    self.shared.what
                ),
            )
        })?;
        Ok(bytes)
    }

    /// One signature through a pooled session, recovering once from a lost login or session.
    fn sign_raw(&self, mechanism: &Mechanism, data: &[u8]) -> Result<Vec<u8>> {
        let shared = &self.shared;
        let mut recovered = false;
        loop {
            let (session, key) = {
                let mut state = shared.lock();
                let session = match state.idle.pop() {
                    Some(session) => session,
                    None => shared.connect(&mut state)?,
                };
                let key = state.target.map(|t| t.key).ok_or_else(|| {
                    Error::with_context(
                        ErrorKind::KeyNotFound,
                        format!("{}: no private key", shared.what),
                    )
                })?;
                (session, key)
            };
            let result = if self.always_authenticate {
                shared
                    .calls
                    .sign_authenticated(&session, mechanism, key, data, shared.pin.as_ref())
            } else {
                shared.calls.sign(&session, mechanism, key, data)
            };
            match result {
                Ok(signature) => {
                    shared.lock().idle.push(session);
                    return Ok(signature);
                }
                Err(e) if !recovered && error::not_logged_in(&e) => {
                    recovered = true;
                    let slot = shared.lock().target.map(|t| t.slot);
                    if let Some(slot) = slot {
                        let info = shared
                            .calls
                            .token_info(slot)
                            .map_err(shared.fail("token info"))?;
                        shared.login(&session, &info)?;
                    }
                    shared.lock().idle.push(session);
                }
                Err(e) if !recovered && error::session_lost(&e) => {
                    recovered = true;
                    drop(session);
                    let mut state = shared.lock();
                    state.idle.clear();
                    state.target = None;
                    state.logged_in = false;
                }
                Err(CkError::Pkcs11(
                    RvError::OperationNotInitialized | RvError::FunctionNotSupported,
                    _,
                )) if self.always_authenticate => {
                    return Err(Error::with_context(
                        ErrorKind::UnsupportedKey,
                        format!(
                            "{}: the key needs a login for each signature \
                             (CKA_ALWAYS_AUTHENTICATE), which this crate makes in multi-part \
                             signing, and this token does not sign in parts",
                            shared.what
                        ),
                    ));
                }
                Err(e) => return Err(shared.fail("sign")(e)),
            }
        }
    }
}

/// Signs with one private key on a PKCS#11 token.
///
/// Cheap to share as `Arc<dyn RemoteSigner>`; signatures run on blocking threads through a
/// bounded pool of sessions (see the [module docs](self)).
pub struct Pkcs11Signer {
    key_id: KeyId,
    uri: Pkcs11Uri,
    public: PublicKey,
    inner: Arc<Inner>,
    permits: Arc<Semaphore>,
}

impl Pkcs11Signer {
    /// A builder for the key named by `uri` (an RFC 7512 `pkcs11:` URI).
    pub fn builder(uri: &str) -> Pkcs11SignerBuilder {
        Pkcs11SignerBuilder::new(uri)
    }

    /// Opens the key named by `uri` with the defaults (module and PIN from the URI or the
    /// environment, 8 sessions).
    ///
    /// # Errors
    /// As [`Pkcs11SignerBuilder::build`].
    pub async fn open(uri: &str) -> Result<Self> {
        Self::builder(uri).build().await
    }

    /// The URI naming this key: the token, the key's label and its `CKA_ID`, and the module
    /// path if one was given; never a PIN or PIN file. This is the KEYREF to pass around.
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RemoteSigner for Pkcs11Signer {
    fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    async fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature> {
        algorithm.check_key_type(self.public.key_type())?;
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::with_context(ErrorKind::Signing, "PKCS#11 signer closed"))?;
        let inner = self.inner.clone();
        let message = message.to_vec();
        let bytes = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            inner.sign_checked(algorithm, &message)
        })
        .await
        .map_err(|_| Error::with_context(ErrorKind::Signing, "PKCS#11 signing task failed"))??;
        Ok(Signature::new(algorithm, bytes))
    }
}

#[cfg(test)]
mod tests;
