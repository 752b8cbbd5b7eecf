//! Loading a PKCS#11 module once per process, and the calls the signer makes into it.
//!
//! `C_Initialize` is per process and shared by every key on the module, so modules live in
//! one registry keyed by their canonical path and are never finalized (another signer, or
//! another library in the process, may still use them).
//!
//! [`ModuleCalls`] is the seam between the signer and the module: the signer makes every
//! call through it, so tests can wrap the real module and inject what SoftHSM2 never does
//! (a locked PIN, a removed token, a closed session).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use cryptoki::types::AuthPin;

use crate::error::{Error, ErrorKind, Result};

/// What a module call returns.
pub(crate) type CkResult<T> = std::result::Result<T, CkError>;

/// The module calls the signer makes. The real one is [`Module`]; tests wrap it.
pub(crate) trait ModuleCalls: fmt::Debug + Send + Sync {
    /// Slots that hold a token.
    fn slots(&self) -> CkResult<Vec<Slot>>;
    /// `C_GetTokenInfo`.
    fn token_info(&self, slot: Slot) -> CkResult<TokenInfo>;
    /// `C_GetMechanismList`.
    fn mechanisms(&self, slot: Slot) -> CkResult<Vec<MechanismType>>;
    /// `C_OpenSession`, read-only or read-write.
    fn open_session(&self, slot: Slot, read_write: bool) -> CkResult<Session>;
    /// `C_Login`; `None` for a protected authentication path.
    fn login(&self, session: &Session, user: UserType, pin: Option<&AuthPin>) -> CkResult<()>;
    /// `C_FindObjects*`.
    fn find_objects(
        &self,
        session: &Session,
        template: &[Attribute],
    ) -> CkResult<Vec<ObjectHandle>>;
    /// `C_GetAttributeValue` (attributes the object lacks are left out).
    fn attributes(
        &self,
        session: &Session,
        object: ObjectHandle,
        types: &[AttributeType],
    ) -> CkResult<Vec<Attribute>>;
    /// `C_SignInit` + `C_Sign`.
    fn sign(
        &self,
        session: &Session,
        mechanism: &Mechanism,
        key: ObjectHandle,
        data: &[u8],
    ) -> CkResult<Vec<u8>>;
    /// `C_SignInit`, `C_Login(CKU_CONTEXT_SPECIFIC)`, `C_SignUpdate`, `C_SignFinal`: for keys
    /// marked `CKA_ALWAYS_AUTHENTICATE`, which need a login between init and sign.
    fn sign_authenticated(
        &self,
        session: &Session,
        mechanism: &Mechanism,
        key: ObjectHandle,
        data: &[u8],
        pin: Option<&AuthPin>,
    ) -> CkResult<Vec<u8>>;
}

/// A loaded, initialised module.
#[derive(Clone)]
pub(crate) struct Module {
    context: Pkcs11,
    path: PathBuf,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Module>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Module>>> = OnceLock::new();
    MODULES.get_or_init(Default::default)
}

impl Module {
    /// The module at `path`, loaded and initialised on first use in this process.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the path when it does not exist, is not a PKCS#11 module
    /// or fails to initialise.
    pub(crate) fn load(path: &Path) -> Result<Module> {
        let cannot = |why: &str| {
            Error::with_context(
                ErrorKind::Config,
                format!("cannot load PKCS#11 module {}: {why}", path.display()),
            )
        };
        let canonical = std::fs::canonicalize(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => cannot("no such file"),
            kind => cannot(&kind.to_string()),
        })?;
        let mut modules = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(module) = modules.get(&canonical) {
            return Ok(module.clone());
        }
        let context = Pkcs11::new(&canonical)
            .map_err(|_| cannot("not a loadable PKCS#11 library (C_GetFunctionList)"))?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(cannot(&format!(
                    "C_Initialize failed ({})",
                    super::error::code(&e)
                )));
            }
        }
        let module = Module {
            context,
            path: canonical.clone(),
        };
        modules.insert(canonical, module.clone());
        Ok(module)
    }
}

impl ModuleCalls for Module {
    fn slots(&self) -> CkResult<Vec<Slot>> {
        self.context.get_slots_with_token()
    }

    fn token_info(&self, slot: Slot) -> CkResult<TokenInfo> {
        self.context.get_token_info(slot)
    }

    fn mechanisms(&self, slot: Slot) -> CkResult<Vec<MechanismType>> {
        self.context.get_mechanism_list(slot)
    }

    fn open_session(&self, slot: Slot, read_write: bool) -> CkResult<Session> {
        if read_write {
            self.context.open_rw_session(slot)
        } else {
            self.context.open_ro_session(slot)
        }
    }

    fn login(&self, session: &Session, user: UserType, pin: Option<&AuthPin>) -> CkResult<()> {
        session.login(user, pin)
    }

    fn find_objects(
        &self,
        session: &Session,
        template: &[Attribute],
    ) -> CkResult<Vec<ObjectHandle>> {
        session.find_objects(template)
    }

    fn attributes(
        &self,
        session: &Session,
        object: ObjectHandle,
        types: &[AttributeType],
    ) -> CkResult<Vec<Attribute>> {
        session.get_attributes(object, types)
    }

    fn sign(
        &self,
        session: &Session,
        mechanism: &Mechanism,
        key: ObjectHandle,
        data: &[u8],
    ) -> CkResult<Vec<u8>> {
        session.sign(mechanism, key, data)
    }

    fn sign_authenticated(
        &self,
        session: &Session,
        mechanism: &Mechanism,
        key: ObjectHandle,
        data: &[u8],
        pin: Option<&AuthPin>,
    ) -> CkResult<Vec<u8>> {
        session.sign_init(mechanism, key)?;
        session.login(UserType::ContextSpecific, pin)?;
        session.sign_update(data)?;
        session.sign_final()
    }
}

/// The module a signer uses: the given path, else `REMOTE_SIGNER_PKCS11_MODULE`.
pub(crate) fn module_path(given: Option<&Path>, env: Option<PathBuf>) -> Result<PathBuf> {
    given.map(Path::to_path_buf).or(env).ok_or_else(|| {
        Error::with_context(
            ErrorKind::Config,
            format!(
                "no PKCS#11 module: add module-path=<path> to the URI or set {}",
                super::MODULE_ENV
            ),
        )
    })
}
