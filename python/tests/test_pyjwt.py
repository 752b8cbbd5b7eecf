"""PyJWT signs with the adapter object for RS/PS/ES/EdDSA; tokens verify with the public key."""

from __future__ import annotations

import jwt
import pytest

CLAIMS = {"sub": "alice", "iat": 1767225600, "exp": 1767229200}

CASES = [
    ("rsa", "RS256"),
    ("rsa", "RS384"),
    ("rsa", "RS512"),
    ("rsa", "PS256"),
    ("rsa", "PS384"),
    ("rsa", "PS512"),
    ("p256", "ES256"),
    ("p384", "ES384"),
    ("ed25519", "EdDSA"),
]


@pytest.mark.parametrize(("name", "alg"), CASES)
def test_encode_with_the_adapter_verifies(request, name, alg):
    pair = request.getfixturevalue(f"{name}_pair")
    token = jwt.encode(CLAIMS, pair.key.as_cryptography_key(), algorithm=alg)
    decoded = jwt.decode(
        token,
        pair.key.as_cryptography_key().public_key(),
        algorithms=[alg],
        options={"verify_exp": False},
    )
    assert decoded == CLAIMS
    # The managed public key as PEM (what a verifier elsewhere holds) verifies it too.
    assert jwt.decode(
        token, pair.key.public_key_pem(), algorithms=[alg], options={"verify_exp": False}
    ) == CLAIMS
    assert jwt.get_unverified_header(token)["alg"] == alg


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
def test_rsa_tokens_equal_the_raw_key_tokens(rsa_pair, alg):
    assert jwt.encode(CLAIMS, rsa_pair.key.as_cryptography_key(), algorithm=alg) == jwt.encode(
        CLAIMS, rsa_pair.raw, algorithm=alg
    )


def test_eddsa_tokens_equal_the_raw_key_tokens(ed25519_pair):
    assert jwt.encode(
        CLAIMS, ed25519_pair.key.as_cryptography_key(), algorithm="EdDSA"
    ) == jwt.encode(CLAIMS, ed25519_pair.raw, algorithm="EdDSA")
