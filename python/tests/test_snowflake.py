"""Snowflake: the real connector (4.x) given the adapter object, and remote_signer.snowflake."""

from __future__ import annotations

import base64
import datetime
import json

import jwt as pyjwt
import pytest
import snowflake.connector as connector
from snowflake.connector.auth import keypair as connector_keypair

import remote_signer
from remote_signer import snowflake as sf

ISSUED_AT = 1767225600  # 2026-01-01T00:00:00Z
ACCOUNT = "myorg-myaccount"
USER = "first.last@example.com"


def test_connector_is_the_4x_line():
    assert connector.__version__.startswith("4.")


@pytest.fixture
def frozen_connector_clock(monkeypatch):
    """The connector reads `datetime.now(timezone.utc)`; pin it to ISSUED_AT."""

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime.fromtimestamp(ISSUED_AT, tz)

    monkeypatch.setattr(connector_keypair, "datetime", Frozen)


def connector_jwt(private_key) -> str:
    auth = connector_keypair.AuthByKeyPair(private_key=private_key)
    return auth.prepare(account=ACCOUNT, user=USER)


def test_rsa_connector_token_is_byte_identical(rsa_pair, frozen_connector_clock):
    from_adapter = connector_jwt(rsa_pair.key.as_cryptography_key())
    from_raw = connector_jwt(rsa_pair.raw)
    assert from_adapter == from_raw
    claims = pyjwt.decode(from_adapter, rsa_pair.key.public_key_pem(), algorithms=["RS256"],
                          options={"verify_exp": False})
    assert claims["iat"] == ISSUED_AT
    # The crate's own token (Rust) is the same bytes.
    assert sf.jwt(rsa_pair.key, ACCOUNT, USER, issued_at=ISSUED_AT) == from_raw


@pytest.mark.parametrize(("name", "alg"), [("p256", "ES256"), ("p384", "ES384")])
def test_ec_connector_token_verifies(request, name, alg, frozen_connector_clock):
    pair = request.getfixturevalue(f"{name}_pair")
    token = connector_jwt(pair.key.as_cryptography_key())
    assert pyjwt.get_unverified_header(token)["alg"] == alg
    claims = pyjwt.decode(token, pair.key.public_key_pem(), algorithms=[alg],
                          options={"verify_exp": False})
    fingerprint = connector_keypair.AuthByKeyPair.calculate_public_key_fingerprint(pair.raw)
    assert claims["iss"] == f"MYORG-MYACCOUNT.FIRST.LAST@EXAMPLE.COM.{fingerprint}"
    assert claims["iat"] == ISSUED_AT


def test_key_pair_auth_names_and_fingerprint(rsa_pair):
    auth = sf.KeyPairAuth(rsa_pair.key, ACCOUNT, USER)
    fingerprint = connector_keypair.AuthByKeyPair.calculate_public_key_fingerprint(rsa_pair.raw)
    assert auth.fingerprint == fingerprint
    assert auth.subject == "MYORG-MYACCOUNT.FIRST.LAST@EXAMPLE.COM"
    assert auth.issuer == f"{auth.subject}.{fingerprint}"
    token = auth.token(issued_at=ISSUED_AT, lifetime=600)
    assert (token.issued_at, token.expires_at) == (ISSUED_AT, ISSUED_AT + 600)
    assert token.value not in repr(token)
    payload = pyjwt.decode(token.value, rsa_pair.key.public_key_pem(), algorithms=["RS256"],
                           options={"verify_exp": False})
    assert list(payload) == ["iss", "sub", "iat", "exp"]


def test_refusals(rsa_pair, p256_pair, ed25519_pair):
    # Snowflake takes RSA and (since 2026) P-256/P-384 keys, never Ed25519.
    with pytest.raises(remote_signer.UnsupportedKeyError):
        sf.KeyPairAuth(ed25519_pair.key, ACCOUNT, USER)
    header = json.loads(base64.urlsafe_b64decode(
        sf.jwt(p256_pair.key, ACCOUNT, USER).split(".")[0] + "=="))
    assert header == {"alg": "ES256", "typ": "JWT"}
    with pytest.raises(remote_signer.InvalidInputError) as info:
        sf.KeyPairAuth(rsa_pair.key, "myorg.myaccount", USER)
    assert "MYORG-MYACCOUNT" in str(info.value)
    with pytest.raises(remote_signer.InvalidInputError):
        sf.jwt(rsa_pair.key, ACCOUNT, USER, lifetime=3601)


def test_sql_api_tokens_are_cached_and_renewed(rsa_pair):
    auth = sf.KeyPairAuth(rsa_pair.key, ACCOUNT, USER)
    tokens = sf.SqlApiTokens(auth, lifetime=3600, renew_before=300)
    first = tokens.bearer_token(now=ISSUED_AT)
    assert tokens.bearer_token(now=ISSUED_AT + 3000).value == first.value
    renewed = tokens.bearer_token(now=ISSUED_AT + 3301)
    assert renewed.value != first.value and renewed.issued_at == ISSUED_AT + 3301
    headers = tokens.headers(now=ISSUED_AT + 3400)
    assert headers == {
        "Authorization": f"Bearer {renewed.value}",
        "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
    }
    with pytest.raises(remote_signer.InvalidInputError):
        sf.SqlApiTokens(auth, lifetime=300, renew_before=300)


def test_alter_user_statement(rsa_pair):
    statement = sf.alter_user_statement(rsa_pair.key, "JDOE")
    body = "".join(rsa_pair.key.public_key_pem().splitlines()[1:-1])
    assert statement == f"ALTER USER JDOE SET RSA_PUBLIC_KEY='{body}';"
    assert "RSA_PUBLIC_KEY_2=" in sf.alter_user_statement(rsa_pair.key, "JDOE", 2)
    with pytest.raises(remote_signer.InvalidInputError):
        sf.alter_user_statement(rsa_pair.key, "JDOE", 3)


def test_connector_vectors_from_the_repository(monkeypatch):
    """The official connector's recorded tokens, re-made by the crate and by the connector given
    the adapter object."""
    from conftest import REPO

    data = REPO / "tests/data/snowflake"
    vectors = json.loads((data / "connector_vectors.json").read_text())
    # A checked-in test key is group-readable in a fresh clone: allowed explicitly here.
    key = remote_signer.open(str(data / vectors["key_pem_file"]), allow_readable_key_file=True)
    assert sf.KeyPairAuth(key, "a", "b").fingerprint == vectors["fingerprint"]
    assert vectors["cases"]
    for case in vectors["cases"]:
        lifetime = case["exp"] - case["iat"]
        made = sf.jwt(key, case["account"], case["user"], issued_at=case["iat"],
                             lifetime=lifetime)
        assert made == case["token"], case["account"]

        class Frozen(datetime.datetime):
            @classmethod
            def now(cls, tz=None, _iat=case["iat"]):
                return datetime.datetime.fromtimestamp(_iat, tz)

        monkeypatch.setattr(connector_keypair, "datetime", Frozen)
        auth = connector_keypair.AuthByKeyPair(
            private_key=key.as_cryptography_key(), lifetime_in_seconds=lifetime
        )
        assert auth.prepare(account=case["account"], user=case["user"]) == case["token"]


@pytest.fixture
def login_endpoint():
    """A stand-in for Snowflake's login endpoint on 127.0.0.1: records each login request's
    JSON body and refuses the login, as Snowflake does for a JWT it does not accept."""
    import gzip
    import http.server
    import threading

    bodies = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            if self.path.startswith("/session/v1/login-request"):
                bodies.append(json.loads(raw))
            out = json.dumps({"success": False, "code": "390144", "data": None,
                              "message": "JWT token is invalid."}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], bodies
    finally:
        server.shutdown()
        thread.join()


def test_connect_sends_the_same_login_jwt_as_with_the_raw_key(
    rsa_pair, login_endpoint, frozen_connector_clock
):
    """`snowflake.connector.connect(private_key=<adapter>)`, end to end up to the login request."""
    port, bodies = login_endpoint
    for private_key in (rsa_pair.key.as_cryptography_key(), rsa_pair.raw):
        with pytest.raises(connector.errors.DatabaseError):
            connector.connect(
                account=ACCOUNT, user=USER, authenticator="SNOWFLAKE_JWT",
                private_key=private_key, host="127.0.0.1", port=port, protocol="http",
                login_timeout=30,
            )
    assert len(bodies) == 2
    from_adapter, from_raw = (body["data"]["TOKEN"] for body in bodies)
    assert bodies[0]["data"]["AUTHENTICATOR"] == "SNOWFLAKE_JWT"
    assert from_adapter == from_raw
    assert from_adapter == sf.jwt(rsa_pair.key, ACCOUNT, USER, issued_at=ISSUED_AT)
