//! What a failed module call means for the user, as an [`ErrorKind`].
//!
//! Texts name the token or key and the `CKR_` code, never a PIN, an attribute value or the
//! module's own description of the failure.

use cryptoki::error::{Error as CkError, RvError};

use crate::error::{Error, ErrorKind};

/// The `CKR_` name of a module error (or a short word for the binding's own errors).
pub(crate) fn code(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, _) => format!("{rv:?}"),
        CkError::LibraryLoading(_) => "library loading".to_string(),
        CkError::NotSupported => "not supported".to_string(),
        _ => "binding error".to_string(),
    }
}

/// Whether the session (or the token behind it) is gone, so a fresh session on a freshly
/// found slot may succeed: a closed session, a removed or re-inserted token.
pub(crate) fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid,
            _
        )
    )
}

/// Whether the token forgot the login (a reset, another application logged out).
pub(crate) fn not_logged_in(e: &CkError) -> bool {
    matches!(e, CkError::Pkcs11(RvError::UserNotLoggedIn, _))
}

/// Maps a module error during `what` (e.g. "pkcs11:token=ci;object=k: sign") to an [`Error`].
pub(crate) fn map(e: &CkError, what: &str) -> Error {
    let rv = match e {
        CkError::Pkcs11(rv, _) => rv,
        CkError::NotSupported => {
            return Error::with_context(
                ErrorKind::Algorithm,
                format!("{what}: not supported by this token"),
            );
        }
        other => {
            return Error::with_context(ErrorKind::Signing, format!("{what}: {}", code(other)));
        }
    };
    let (kind, why) = match rv {
        RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange => {
            (ErrorKind::Pin, "the token refused the PIN")
        }
        RvError::PinExpired => (ErrorKind::Pin, "the PIN has expired and must be changed"),
        RvError::PinLocked => (
            ErrorKind::PinLocked,
            "the user PIN is locked after too many wrong tries; unlock it with the \
             security officer PIN",
        ),
        RvError::UserPinNotInitialized => (
            ErrorKind::Pin,
            "the token has no user PIN yet; initialise it first",
        ),
        RvError::TokenNotPresent
        | RvError::DeviceRemoved
        | RvError::TokenNotRecognized
        | RvError::SlotIdInvalid => (ErrorKind::Unavailable, "the token is not present"),
        RvError::DeviceError | RvError::DeviceMemory | RvError::GeneralError => {
            (ErrorKind::Unavailable, "the token failed")
        }
        RvError::MechanismInvalid
        | RvError::MechanismParamInvalid
        | RvError::KeyTypeInconsistent => (
            ErrorKind::Algorithm,
            "the mechanism is not supported by this token for this key",
        ),
        RvError::KeyFunctionNotPermitted => (
            ErrorKind::UnsupportedKey,
            "the key may not sign (CKA_SIGN is false)",
        ),
        RvError::UserNotLoggedIn => (ErrorKind::PermissionDenied, "not logged in to the token"),
        RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid => {
            (ErrorKind::KeyNotFound, "the key is gone from the token")
        }
        RvError::SessionHandleInvalid | RvError::SessionClosed | RvError::SessionCount => {
            (ErrorKind::Unavailable, "no session with the token")
        }
        RvError::TokenWriteProtected => (ErrorKind::PermissionDenied, "the token is read-only"),
        _ => (ErrorKind::Signing, "the token refused"),
    };
    Error::with_context(kind, format!("{what}: {why} ({rv:?})"))
}
