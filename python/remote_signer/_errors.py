"""Errors raised by the pure-Python half of the package, in the native module's hierarchy."""

from __future__ import annotations

from . import _native


def make_error(cls: type, kind: str, message: str) -> Exception:
    """An exception of ``cls`` with the ``kind`` and ``transient`` attributes every
    ``RemoteSignerError`` carries."""
    error = cls(message)
    error.kind = kind
    error.transient = False
    return error


class KeyNotExportableError(_native.RemoteSignerError, NotImplementedError):
    """The private half of a remote key was asked for (``private_bytes``, ``private_numbers``);
    it never leaves the key service."""

    __module__ = "remote_signer"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.kind = "not_exportable"
        self.transient = False
