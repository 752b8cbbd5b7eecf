"""``cryptography`` private key objects that sign through a remote key.

PyO3 classes cannot subclass Python ABCs, so these small pure-Python classes do: each **is** a
``cryptography`` ``RSAPrivateKey``, ``EllipticCurvePrivateKey`` or ``Ed25519PrivateKey``, and
every library that takes such an object (snowflake-connector-python 4.x, PyJWT, ...) can sign
with a key it never holds. ``sign`` goes through the managed key for the paddings and hashes the
key's family allows and refuses the others; ``public_key()`` is a real ``cryptography`` public key;
``private_bytes``, ``private_numbers`` and ``private_bytes_raw`` raise ``KeyNotExportableError``.

Every abstract method of the pinned ``cryptography`` release is implemented here. Should a later
release add one, :func:`_complete` gives it a body that raises, so the class keeps
instantiating; ``_ADDED_BY_COMPLETE`` lists such methods (the tests require it to be empty).
"""

from __future__ import annotations

import typing

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as _padding

from . import _native
from ._errors import KeyNotExportableError, make_error

_RSA_HASHES = {"sha256": "256", "sha384": "384", "sha512": "512"}
_EC_CURVES = {
    "P-256": (ec.SECP256R1, "sha256", "ES256"),
    "P-384": (ec.SECP384R1, "sha384", "ES384"),
    "secp256k1": (ec.SECP256K1, "sha256", "ES256K"),
}
_ADDED_BY_COMPLETE: typing.Dict[str, typing.List[str]] = {}


def _unsupported(message: str) -> Exception:
    return make_error(_native.UnsupportedKeyError, "algorithm", message)


def _not_exportable(key: _native.Key) -> Exception:
    return KeyNotExportableError(
        f"{key.key_id} is a remote key: its private half cannot be exported "
        "(use a library that signs through the key object, not one that exports it)"
    )


def _as_bytes(data: typing.Any) -> bytes:
    try:
        return bytes(data)
    except TypeError:
        raise TypeError("data must be bytes-like") from None


def _check_plain_hash(algorithm: typing.Any) -> str:
    if isinstance(algorithm, utils.Prehashed):
        raise _unsupported(
            "a remote key signs whole messages: pass the message, not a Prehashed digest"
        )
    if not isinstance(algorithm, hashes.HashAlgorithm):
        raise TypeError("Expected instance of hashes.HashAlgorithm.")
    return algorithm.name


class _RemoteKey:
    """What the three adapters share: the native key, copying and the refusals."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: _native.Key) -> None:
        self._key = key
        self._public = serialization.load_der_public_key(key.public_key_der())

    @property
    def remote_key(self) -> _native.Key:
        """The ``remote_signer.Key`` this object signs with."""
        return self._key

    def public_key(self) -> typing.Any:
        return self._public

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _not_exportable(self._key)

    def private_numbers(self) -> typing.Any:
        raise _not_exportable(self._key)

    # The object is an immutable handle on the remote key: a copy is the same key.
    def __copy__(self) -> "_RemoteKey":
        return self

    def __deepcopy__(self, memo: dict) -> "_RemoteKey":
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._key.key_id}>"


class RemoteRSAPrivateKey(_RemoteKey, rsa.RSAPrivateKey):
    """An ``RSAPrivateKey`` whose private half stays in the key service.

    ``sign`` accepts PKCS1v15 and PSS (MGF1 with the same hash, salt as long as the digest:
    ``PSS.DIGEST_LENGTH`` or that length) with SHA-256, SHA-384 or SHA-512.
    """

    __slots__ = ()

    @property
    def key_size(self) -> int:
        return self._key.key_size

    def sign(
        self,
        data: bytes,
        padding: _padding.AsymmetricPadding,
        algorithm: typing.Any,
    ) -> bytes:
        name = _check_plain_hash(algorithm)
        bits = _RSA_HASHES.get(name)
        if bits is None:
            raise _unsupported(f"RSA signs with SHA-256, SHA-384 or SHA-512, not {name}")
        if isinstance(padding, _padding.PKCS1v15):
            alg = "RS" + bits
        elif isinstance(padding, _padding.PSS):
            mgf = padding.mgf
            mgf_hash = getattr(mgf, "_algorithm", None)
            if not isinstance(mgf, _padding.MGF1) or getattr(mgf_hash, "name", None) != name:
                raise _unsupported("PSS needs MGF1 with the same hash as the signature")
            salt = getattr(padding, "_salt_length", None)
            if salt is not _padding.PSS.DIGEST_LENGTH and salt != algorithm.digest_size:
                raise _unsupported(
                    "PSS needs a salt as long as the digest (PSS.DIGEST_LENGTH), as JOSE does"
                )
            alg = "PS" + bits
        else:
            raise _unsupported(f"RSA padding {type(padding).__name__} is not supported")
        return self._key.sign(_as_bytes(data), alg)

    def decrypt(self, ciphertext: bytes, padding: _padding.AsymmetricPadding) -> bytes:
        raise _unsupported(f"{self._key.key_id} is a signing key: it does not decrypt")


class RemoteEllipticCurvePrivateKey(_RemoteKey, ec.EllipticCurvePrivateKey):
    """An ``EllipticCurvePrivateKey`` whose private half stays in the key service.

    ``sign`` accepts ``ECDSA`` with the curve's hash (SHA-256 for P-256 and secp256k1, SHA-384
    for P-384) and returns a DER signature, as ``cryptography`` does.
    """

    __slots__ = ()

    @property
    def curve(self) -> ec.EllipticCurve:
        return _EC_CURVES[self._key.key_type][0]()

    @property
    def key_size(self) -> int:
        return self._key.key_size

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise _unsupported("elliptic-curve keys sign with ECDSA only")
        if getattr(signature_algorithm, "deterministic_signing", False):
            raise _unsupported(
                "a remote key cannot promise deterministic (RFC 6979) ECDSA signatures"
            )
        name = _check_plain_hash(signature_algorithm.algorithm)
        _, hash_name, alg = _EC_CURVES[self._key.key_type]
        if name != hash_name:
            raise _unsupported(f"a {self._key.key_type} key signs with {hash_name}, not {name}")
        raw = self._key.sign(_as_bytes(data), alg)
        half = len(raw) // 2
        return utils.encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise _unsupported(f"{self._key.key_id} is a signing key: it does no key exchange")


class RemoteEd25519PrivateKey(_RemoteKey, ed25519.Ed25519PrivateKey):
    """An ``Ed25519PrivateKey`` whose private half stays in the key service."""

    __slots__ = ()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(_as_bytes(data), "EdDSA")

    def private_bytes_raw(self) -> bytes:
        raise _not_exportable(self._key)


def _complete(cls: type) -> None:
    """Gives abstract methods added by a newer ``cryptography`` a body that raises."""
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    for name in missing:

        def refuse(self: _RemoteKey, *args: typing.Any, _name: str = name, **kwargs: typing.Any):
            raise _unsupported(f"{_name} is not supported by a remote key")

        setattr(cls, name, refuse)
    cls.__abstractmethods__ = frozenset()  # type: ignore[attr-defined]
    _ADDED_BY_COMPLETE[cls.__name__] = missing


for _cls in (RemoteRSAPrivateKey, RemoteEllipticCurvePrivateKey, RemoteEd25519PrivateKey):
    _complete(_cls)


def adapter(key: _native.Key) -> _RemoteKey:
    """The ``cryptography`` object for ``key`` (``Key.as_cryptography_key`` calls this)."""
    if key.key_type == "RSA":
        return RemoteRSAPrivateKey(key)
    if key.key_type in _EC_CURVES:
        return RemoteEllipticCurvePrivateKey(key)
    if key.key_type == "Ed25519":
        return RemoteEd25519PrivateKey(key)
    raise _unsupported(f"no cryptography key type for a {key.key_type} key")
