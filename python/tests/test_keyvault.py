"""Azure Key Vault keys from Python: the project's Key Vault emulator (over real TLS, through the
official SDK in the native module), with the standard Azure environment the CLI uses."""

from __future__ import annotations

import datetime
import os
import pathlib
import subprocess

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from snowflake.connector.auth import keypair as connector_keypair

import remote_signer
from conftest import REPO
from remote_signer import snowflake as sf


@pytest.fixture(scope="module")
def vault(rsa_pair):
    """Starts the emulator (built by `cargo test` as an example) with the RSA test key imported as
    `snow`, puts its environment in this process, and stops it afterwards."""
    path = pathlib.Path(
        os.environ.get("REMOTE_SIGNER_KEYVAULT_EMULATOR",
                       REPO / "target/debug/examples/keyvault_emulator")
    )
    assert path.is_file(), f"{path} is missing: `cargo test --all-features` builds it"
    process = subprocess.Popen(
        [str(path), "--import", f"snow={rsa_pair.path}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    saved = dict(os.environ)
    try:
        base = None
        for line in process.stdout:
            if line.startswith("export "):
                name, _, value = line[len("export "):].strip().partition("=")
                os.environ[name] = value.strip("'")
            elif line.startswith("# serving on "):
                base = line.split()[3]
                break
        assert base, "the emulator stopped before serving"
        yield base.rstrip("/")
    finally:
        process.terminate()
        process.wait(timeout=30)
        os.environ.clear()
        os.environ.update(saved)


def open_vault_key(url: str) -> remote_signer.Key:
    return remote_signer.open(url, verify_challenge_resource=False)


@pytest.mark.parametrize("name", ["rsa", "ec256", "ec384", "ec256k"])
def test_vault_keys_sign_and_pin_their_version(vault, name):
    key = open_vault_key(f"{vault}/keys/{name}")
    assert key.key_id.startswith(f"{vault}/keys/{name}/")
    assert len(key.key_id) > len(f"{vault}/keys/{name}/")
    for alg in key.algorithms:
        key.verify(b"message", key.sign(b"message", alg), alg)
    token = pyjwt.encode({"sub": "x"}, key.as_cryptography_key(), algorithm=key.default_algorithm)
    assert pyjwt.decode(token, key.public_key_pem(), algorithms=[key.default_algorithm]) == {
        "sub": "x"
    }


def test_cryptography_adapter_over_the_vault(vault):
    rsa_key = open_vault_key(f"{vault}/keys/rsa").as_cryptography_key()
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 2048
    signature = rsa_key.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
    rsa_key.public_key().verify(signature, b"m", padding.PKCS1v15(), hashes.SHA256())
    ec_key = open_vault_key(f"{vault}/keys/ec256").as_cryptography_key()
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    ec_key.public_key().verify(ec_key.sign(b"m", ec.ECDSA(hashes.SHA256())), b"m",
                               ec.ECDSA(hashes.SHA256()))
    k256 = open_vault_key(f"{vault}/keys/ec256k").as_cryptography_key()
    assert isinstance(k256.curve, ec.SECP256K1) and k256.key_size == 256
    k256.public_key().verify(k256.sign(b"m", ec.ECDSA(hashes.SHA256())), b"m",
                             ec.ECDSA(hashes.SHA256()))


def test_snowflake_connector_with_a_vault_key_matches_the_key_file(vault, rsa_pair, monkeypatch):
    """The case that started the project: the connector's JWT from a Key Vault key object is
    the one it makes from the key file."""

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime.fromtimestamp(1767225600, tz)

    monkeypatch.setattr(connector_keypair, "datetime", Frozen)
    vault_key = open_vault_key(f"{vault}/keys/snow")
    tokens = [
        connector_keypair.AuthByKeyPair(private_key=k).prepare(account="myorg-acct", user="jdoe")
        for k in (vault_key.as_cryptography_key(), rsa_pair.raw)
    ]
    assert tokens[0] == tokens[1]
    assert sf.jwt(vault_key, "myorg-acct", "jdoe", issued_at=1767225600) == tokens[1]


def test_vault_session_tokens_verify_with_the_public_key(vault):
    key = open_vault_key(f"{vault}/keys/ec256")
    token = remote_signer.SessionSigner(key, "session").sign({"user": "alice"})
    verifier = remote_signer.SessionVerifier([key.public_key_pem()], "session")
    assert verifier.verify(token)["user"] == "alice"


def test_vault_errors_are_typed_and_say_no_secret(vault):
    with pytest.raises(remote_signer.KeyNotFoundError) as info:
        open_vault_key(f"{vault}/keys/missing")
    assert info.value.kind == "key_not_found" and info.value.transient is False
    assert os.environ["AZURE_CLIENT_SECRET"] not in str(info.value)
