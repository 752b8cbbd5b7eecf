"""Sign with keys the application never holds.

``remote_signer.open(keyref)`` opens any key reference the ``remote-signer`` CLI takes (a key file
path or ``file:`` URI, an Azure Key Vault key URL), with the same environment: the key file
passphrase from ``REMOTE_SIGNER_KEY_PASSPHRASE``, Key Vault credentials from the standard Azure
variables, managed identity or the ``az`` CLI. The returned :class:`Key` signs through the key
service (the GIL is released while it waits) and never exposes the private key.

- :meth:`Key.as_cryptography_key` gives a ``cryptography`` private key object for libraries that
  take one (snowflake-connector-python 4.x, PyJWT).
- :class:`SessionSigner` and :class:`SessionVerifier` issue and check session tokens (cookies)
  in the same format as the Rust crate, so Python and Rust services accept each other's.
- :mod:`remote_signer.snowflake` makes Snowflake key-pair JWTs and SQL API bearer tokens.

Open keys in the process that uses them: after a fork (gunicorn ``--preload``), a key opened in
the parent raises :class:`ConfigError` in the child; open it again there.

Errors are :class:`RemoteSignerError` subclasses with ``kind`` (the crate's error kind) and
``transient`` attributes; their messages never contain key material, passphrases or tokens.
"""

from __future__ import annotations

from ._errors import KeyNotExportableError
from ._native import (
    ConfigError,
    InvalidInputError,
    Key,
    KeyFileError,
    KeyNotFoundError,
    PermissionDeniedError,
    RemoteSignerError,
    SessionSigner,
    SessionVerifier,
    SigningError,
    UnavailableError,
    UnsupportedKeyError,
    VerificationError,
    open,
)

__all__ = [
    "ConfigError",
    "InvalidInputError",
    "Key",
    "KeyFileError",
    "KeyNotExportableError",
    "KeyNotFoundError",
    "PermissionDeniedError",
    "RemoteSignerError",
    "SessionSigner",
    "SessionVerifier",
    "SigningError",
    "UnavailableError",
    "UnsupportedKeyError",
    "VerificationError",
    "open",
]
