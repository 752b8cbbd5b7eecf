#!/usr/bin/env python3
"""Makes ec_vectors.json (and, when missing, the throw-away keys ec_p256.p8 and ec_p384.p8) with
the official Python connector, which signs ES256 for P-256 and ES384 for P-384 keys since 4.5.0.

Run: python3 -m venv venv && venv/bin/pip install 'snowflake-connector-python>=4.5,<5'
     venv/bin/python generate_ec.py > ec_vectors.json

ECDSA signatures are randomized, so a token cannot be reproduced; the signing input
(header "." claims) can, byte for byte, and the connector's signature must verify with the key.
The clock is frozen at iat = 1700000000, as in generate_extra.py.
"""
import datetime
import json
import os
from unittest import mock

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
import base64
import jwt
import snowflake.connector
from snowflake.connector.auth import keypair

IAT = 1700000000
HERE = os.path.dirname(os.path.abspath(__file__))


class FrozenDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(IAT, tz)


def load_or_make(name, curve):
    path = os.path.join(HERE, name)
    if not os.path.exists(path):
        key = ec.generate_private_key(curve)
        with open(path, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


keys = []
for name, curve, alg in [
    ("ec_p256.p8", ec.SECP256R1(), "ES256"),
    ("ec_p384.p8", ec.SECP384R1(), "ES384"),
]:
    key = load_or_make(name, curve)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cases = []
    for account, user, lifetime in [
        ("myorg-myaccount", "jdoe", 60),
        ("xy12345.us-east-2.aws", "first.last@example.com", 3600),
    ]:
        auth = keypair.AuthByKeyPair(key, lifetime_in_seconds=lifetime)
        with mock.patch.object(keypair, "datetime", FrozenDatetime):
            token = auth.prepare(account=account, user=user)
        header = jwt.get_unverified_header(token)
        assert header == {"alg": alg, "typ": "JWT"}, header
        claims = jwt.decode(
            token, key.public_key(), algorithms=[alg], options={"verify_exp": False}
        )
        assert claims["iat"] == IAT, claims
        cases.append(
            {
                "account": account,
                "user": user,
                "iat": claims["iat"],
                "exp": claims["exp"],
                "iss": claims["iss"],
                "sub": claims["sub"],
                "signing_input": token.rsplit(".", 1)[0],
                "token": token,
            }
        )
    keys.append(
        {
            "key": name,
            "alg": alg,
            "fingerprint": auth.calculate_public_key_fingerprint(key),
            "alter_user_value": base64.b64encode(spki).decode(),
            "cases": cases,
        }
    )

print(
    json.dumps(
        {
            "source": "snowflake-connector-python %s (AuthByKeyPair.prepare with an "
            "EllipticCurvePrivateKey), PyJWT %s, iat frozen at %d; verified with the public key; "
            "made by generate_ec.py" % (snowflake.connector.__version__, jwt.__version__, IAT),
            "keys": keys,
        },
        indent=2,
    )
)
