"""Type stubs for the native module (the Rust half of the package)."""

from typing import Any, Dict, Iterable, List, Optional, Union

from . import _cryptography

_PublicKeyText = Union[str, bytes]

class RemoteSignerError(Exception):
    """Base of every remote_signer error."""

    kind: str
    """The crate's error kind in snake case (``"key_not_found"``, ``"expired"``, ...)."""
    transient: bool
    """True when retrying later may succeed (throttling, outage, timeout)."""

class KeyFileError(RemoteSignerError): ...
class UnsupportedKeyError(RemoteSignerError): ...
class ConfigError(RemoteSignerError): ...
class InvalidInputError(RemoteSignerError): ...
class PermissionDeniedError(RemoteSignerError): ...
class KeyNotFoundError(RemoteSignerError): ...
class UnavailableError(RemoteSignerError): ...
class SigningError(RemoteSignerError): ...
class VerificationError(RemoteSignerError): ...

class Key:
    """A key that signs where it lives; the private key is never exposed."""

    @property
    def key_id(self) -> str:
        """The exact key version that signs."""
    @property
    def key_type(self) -> str:
        """``"RSA"``, ``"P-256"``, ``"P-384"``, ``"secp256k1"`` or ``"Ed25519"``."""
    @property
    def key_size(self) -> int:
        """The key size in bits."""
    @property
    def default_algorithm(self) -> str:
        """RS256, ES256, ES384, ES256K or EdDSA."""
    @property
    def algorithms(self) -> List[str]:
        """Every JOSE algorithm this key signs with."""
    def public_key_pem(self) -> str:
        """The public key as PEM (SubjectPublicKeyInfo)."""
    def public_key_der(self) -> bytes:
        """The public key as DER (SubjectPublicKeyInfo)."""
    def public_key_jwk(self) -> Dict[str, Any]:
        """The public key as a JWK."""
    def sign(self, data: bytes, alg: Optional[str] = None) -> bytes:
        """Signs ``data`` (the whole message) with ``alg``; returns the JOSE-form signature.

        It signs any bytes: give a key used this way no other protocol."""
    def verify(self, data: bytes, signature: bytes, alg: Optional[str] = None) -> None:
        """Raises ``VerificationError`` unless ``signature`` (JOSE form) verifies."""
    def as_cryptography_key(self) -> "_cryptography._RemoteKey":
        """This key as a ``cryptography`` private key object that signs through it."""

def open(
    keyref: str,
    *,
    passphrase: Optional[Union[str, bytes]] = None,
    passphrase_file: Optional[str] = None,
    allow_readable_key_file: bool = False,
    verify_challenge_resource: bool = True,
) -> Key:
    """Opens a key file path, ``file:`` URI or Key Vault key URL, as the CLI does."""

class SessionSigner:
    """Issues session tokens for one purpose."""

    def __init__(self, key: Key, purpose: str, *, ttl: int = 3600, direct: bool = False) -> None: ...
    @property
    def purpose(self) -> str: ...
    @property
    def direct(self) -> bool: ...
    def sign(self, claims: Dict[str, Any], *, ttl: Optional[int] = None) -> str:
        """Signs ``claims`` (without ``iat``, ``exp``, ``aud``); returns the token."""

class SessionVerifier:
    """Verifies session tokens for one purpose with the trusted managed public key(s)."""

    def __init__(
        self,
        trusted: Union[Key, _PublicKeyText, Iterable[Union[Key, _PublicKeyText]]],
        purpose: str,
        *,
        leeway: int = 60,
        max_token_len: int = 8192,
    ) -> None: ...
    @property
    def purpose(self) -> str: ...
    def verify(self, token: str, *, now: Optional[float] = None) -> Dict[str, Any]:
        """Returns the token's claims; raises ``VerificationError`` otherwise."""

class KeyPairAuth:
    """Snowflake key-pair JWTs for one account and user, signed by an RSA key."""

    def __init__(self, key: Key, account: str, user: str) -> None: ...
    @property
    def account(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def issuer(self) -> str: ...
    @property
    def subject(self) -> str: ...
    def token(self, *, issued_at: Optional[float] = None, lifetime: int = 60) -> "Token": ...

class Token:
    """A signed key-pair JWT; ``repr`` shows only its times."""

    @property
    def value(self) -> str: ...
    @property
    def issued_at(self) -> int: ...
    @property
    def expires_at(self) -> int: ...
    def sql_api_headers(self) -> Dict[str, str]: ...

class SqlApiTokens:
    """Cached SQL API bearer tokens, renewed ahead of expiry."""

    def __init__(self, auth: KeyPairAuth, *, lifetime: int = 3600, renew_before: int = 300) -> None: ...
    @property
    def lifetime(self) -> int: ...
    def bearer_token(self, *, now: Optional[float] = None) -> Token: ...
    def headers(self, *, now: Optional[float] = None) -> Dict[str, str]: ...

def alter_user_statement(key: Key, user: str, slot: int = 1) -> str:
    """The ``ALTER USER ... SET RSA_PUBLIC_KEY='...'`` statement for ``key``."""
