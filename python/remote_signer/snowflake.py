"""Snowflake key-pair JWTs signed by a managed RSA key.

Which connector takes what:

- **snowflake-connector-python 4.x** accepts a key *object*:
  ``snowflake.connector.connect(account=..., user=..., authenticator="SNOWFLAKE_JWT",
  private_key=key.as_cryptography_key())``. It signs each login token through the managed key
  (RS256 for RSA keys; ES256/ES384 for P-256/P-384 keys from 4.5.0).
- **snowflake-connector-python 5.x** moved authentication into a native core that exports the
  key object with ``private_bytes()``, which a managed key refuses (``KeyNotExportableError``).
  On 5.x, use the SQL API with a bearer token from :class:`SqlApiTokens` (``Authorization:
  Bearer``, ``X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT``), pass a pre-acquired
  ``token``/``session_token`` to the connector, or use workload identity federation where the
  platform offers it. Pin ``snowflake-connector-python<5`` to keep passing the key object.
- JDBC, Go, Node.js and .NET drivers need a raw key file.

Tokens are byte-identical to the Python connector's for the same key, account, user and
``iat``. The account is cut at its first ``.`` and uppercased as the connectors do; the dotted
``org.account`` form, which every driver truncates to ``ORG``, is refused with an error naming the
``org-account`` form.
"""

from __future__ import annotations

import typing

from ._native import KeyPairAuth, SqlApiTokens, Token, alter_user_statement

if typing.TYPE_CHECKING:
    from ._native import Key

__all__ = ["KeyPairAuth", "SqlApiTokens", "Token", "alter_user_statement", "jwt"]


def jwt(
    key: "Key",
    account: str,
    user: str,
    *,
    issued_at: typing.Optional[float] = None,
    lifetime: int = 60,
) -> str:
    """A key-pair JWT for ``account`` and ``user``, issued at ``issued_at`` (Unix seconds,
    default now) and valid for ``lifetime`` seconds (at most 3600; the login flow refuses a
    token more than 60 s after its ``iat``). Signs on every call: for SQL API requests use
    :class:`SqlApiTokens`, which caches."""
    return KeyPairAuth(key, account, user).token(issued_at=issued_at, lifetime=lifetime).value
