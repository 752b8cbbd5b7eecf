#!/usr/bin/env python3
"""Makes extra_vectors.json with the official Python connector (snowflake-connector-python 4.8.1).

Run: python3 -m venv venv && venv/bin/pip install snowflake-connector-python==4.8.1
     venv/bin/python generate_extra.py > extra_vectors.json

The account goes through `parse_account` first, as `SnowflakeConnection` does before it calls
`AuthByKeyPair.prepare`; the clock is frozen at iat = 1700000000.
"""
import datetime
import json
from unittest import mock

from cryptography.hazmat.primitives import serialization
import jwt
import snowflake.connector
from snowflake.connector.auth import keypair
from snowflake.connector.util_text import parse_account

IAT = 1700000000

with open("rsa_key.p8", "rb") as f:
    key = serialization.load_pem_private_key(f.read(), password=None)
der = key.private_bytes(
    serialization.Encoding.DER,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)


class FrozenDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(IAT, tz)


cases = []
for account, user, lifetime in [
    ("myorg-myaccount-mygroup.global", "jdoe", 60),
    ("xy12345-mygroup.global", "jdoe", 60),
    ("myorg-myaccount", "josé.müller@example.com", 60),
    ("myorg-myaccount", 'o"brien\\x', 60),
    ("myorg-myaccount", "jdoe", 3600),
]:
    connection_account = parse_account(account) if "." in account else account
    auth = keypair.AuthByKeyPair(der, lifetime_in_seconds=lifetime)
    with mock.patch.object(keypair, "datetime", FrozenDatetime):
        token = auth.prepare(account=connection_account, user=user)
    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"], options={"verify_exp": False})
    assert claims["iat"] == IAT, claims
    cases.append(
        {
            "account": account,
            "user": user,
            "iat": claims["iat"],
            "exp": claims["exp"],
            "iss": claims["iss"],
            "sub": claims["sub"],
            "token": token,
        }
    )

print(
    json.dumps(
        {
            "source": "snowflake-connector-python %s (parse_account, then AuthByKeyPair.prepare), "
            "PyJWT %s, iat frozen at %d; verified with the public key; made by generate_extra.py"
            % (snowflake.connector.__version__, jwt.__version__, IAT),
            "cases": cases,
        },
        indent=2,
        ensure_ascii=False,
    )
)
