//! The crate's [`ErrorKind`]s as a small Python exception hierarchy.
//!
//! Every exception is a `RemoteSignerError` with two attributes: `kind`, the crate's error kind
//! in snake case (`"key_not_found"`, ...), and `transient`, true when retrying later may succeed.
//! The message is the crate's error text, which never carries key material, passphrases, tokens
//! or response bodies.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use remote_signer::{Error, ErrorKind};

create_exception!(
    remote_signer,
    RemoteSignerError,
    PyException,
    "Base of every remote_signer error; `kind` names the crate's error kind and `transient` says whether retrying later may succeed."
);
create_exception!(
    remote_signer,
    KeyFileError,
    RemoteSignerError,
    "A key file cannot be read, its permissions are too open, or its passphrase is missing or wrong."
);
create_exception!(
    remote_signer,
    UnsupportedKeyError,
    RemoteSignerError,
    "The key's type or size is not supported, or the algorithm does not fit the key."
);
create_exception!(
    remote_signer,
    ConfigError,
    RemoteSignerError,
    "A key reference or option cannot be used (for example missing credentials)."
);
create_exception!(
    remote_signer,
    InvalidInputError,
    RemoteSignerError,
    "An argument (public key, signature, claims, account name, ...) cannot be used."
);
create_exception!(
    remote_signer,
    PermissionDeniedError,
    RemoteSignerError,
    "The key service refused the caller (HTTP 401/403)."
);
create_exception!(
    remote_signer,
    KeyNotFoundError,
    RemoteSignerError,
    "The key or key version does not exist, is disabled, or is outside its validity window."
);
create_exception!(
    remote_signer,
    UnavailableError,
    RemoteSignerError,
    "The key service is throttling, unreachable or too slow; retrying later may succeed."
);
create_exception!(
    remote_signer,
    SigningError,
    RemoteSignerError,
    "Signing failed, or the key service answered unexpectedly (details are withheld)."
);
create_exception!(
    remote_signer,
    VerificationError,
    RemoteSignerError,
    "A signature, token or certificate was refused (invalid, forged, wrong purpose, expired)."
);

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RemoteSignerError", py.get_type::<RemoteSignerError>())?;
    m.add("KeyFileError", py.get_type::<KeyFileError>())?;
    m.add("UnsupportedKeyError", py.get_type::<UnsupportedKeyError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add(
        "PermissionDeniedError",
        py.get_type::<PermissionDeniedError>(),
    )?;
    m.add("KeyNotFoundError", py.get_type::<KeyNotFoundError>())?;
    m.add("UnavailableError", py.get_type::<UnavailableError>())?;
    m.add("SigningError", py.get_type::<SigningError>())?;
    m.add("VerificationError", py.get_type::<VerificationError>())?;
    Ok(())
}

/// The kind's name in Python (`ErrorKind::KeyNotFound` is `"key_not_found"`).
fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::KeyFile => "key_file",
        ErrorKind::InsecureKeyFile => "insecure_key_file",
        ErrorKind::Passphrase => "passphrase",
        ErrorKind::UnsupportedKey => "unsupported_key",
        ErrorKind::Algorithm => "algorithm",
        ErrorKind::InvalidSignature => "invalid_signature",
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::Signing => "signing",
        ErrorKind::KeyRef => "key_ref",
        ErrorKind::PermissionDenied => "permission_denied",
        ErrorKind::KeyNotFound => "key_not_found",
        ErrorKind::KeyDisabled => "key_disabled",
        ErrorKind::Throttled => "throttled",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Protocol => "protocol",
        ErrorKind::InvalidToken => "invalid_token",
        ErrorKind::Expired => "expired",
        ErrorKind::Config => "config",
        ErrorKind::Io => "io",
        _ => "other",
    }
}

/// The Python exception for a crate error.
pub fn to_py(error: Error) -> PyErr {
    let message = error.to_string();
    let err = match error.kind() {
        ErrorKind::KeyFile | ErrorKind::InsecureKeyFile | ErrorKind::Passphrase => {
            KeyFileError::new_err(message)
        }
        ErrorKind::UnsupportedKey | ErrorKind::Algorithm => UnsupportedKeyError::new_err(message),
        ErrorKind::KeyRef | ErrorKind::Config => ConfigError::new_err(message),
        ErrorKind::InvalidInput => InvalidInputError::new_err(message),
        ErrorKind::PermissionDenied => PermissionDeniedError::new_err(message),
        ErrorKind::KeyNotFound | ErrorKind::KeyDisabled => KeyNotFoundError::new_err(message),
        ErrorKind::Throttled | ErrorKind::Unavailable | ErrorKind::Timeout => {
            UnavailableError::new_err(message)
        }
        ErrorKind::Signing | ErrorKind::Protocol | ErrorKind::Io => SigningError::new_err(message),
        ErrorKind::InvalidSignature | ErrorKind::InvalidToken | ErrorKind::Expired => {
            VerificationError::new_err(message)
        }
        _ => RemoteSignerError::new_err(message),
    };
    Python::attach(|py| {
        let value = err.value(py);
        // Setting attributes on a fresh exception object cannot fail short of memory exhaustion;
        // the exception is raised either way.
        let _ = value.setattr("kind", kind_name(error.kind()));
        let _ = value.setattr("transient", error.is_transient());
    });
    err
}

/// An [`InvalidInputError`] for a bad argument found on the Python side of the boundary.
pub fn invalid_input(message: impl Into<String>) -> PyErr {
    to_py(Error::with_context(ErrorKind::InvalidInput, message))
}
