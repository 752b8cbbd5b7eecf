"""Session tokens: the crate's SessionSigner/SessionVerifier from Python, and the Rust CLI
verifying Python's tokens and the reverse."""

from __future__ import annotations

import json
import subprocess

import pytest

import remote_signer

PURPOSE = "session"


@pytest.mark.parametrize("direct", [False, True])
def test_round_trip(any_pair, direct):
    signer = remote_signer.SessionSigner(any_pair.key, PURPOSE, ttl=600, direct=direct)
    assert signer.direct is direct and signer.purpose == PURPOSE
    token = signer.sign({"user": "alice", "roles": ["admin"]})
    claims = remote_signer.SessionVerifier(any_pair.key, PURPOSE).verify(token)
    assert claims["user"] == "alice" and claims["roles"] == ["admin"]
    assert claims["aud"] == PURPOSE and claims["exp"] - claims["iat"] == 600
    # A public key given as PEM text or bytes is trusted the same way.
    pem = any_pair.key.public_key_pem()
    assert remote_signer.SessionVerifier([pem], PURPOSE).verify(token) == claims
    assert remote_signer.SessionVerifier(pem.encode(), PURPOSE).verify(token) == claims


def test_refusals(rsa_pair, p256_pair):
    signer = remote_signer.SessionSigner(rsa_pair.key, PURPOSE)
    token = signer.sign({"user": "alice"})
    with pytest.raises(remote_signer.VerificationError) as info:
        remote_signer.SessionVerifier(rsa_pair.key, "admin").verify(token)
    assert info.value.kind == "invalid_token"
    with pytest.raises(remote_signer.VerificationError) as info:
        remote_signer.SessionVerifier(p256_pair.key, PURPOSE).verify(token)
    assert info.value.kind in ("invalid_token", "invalid_signature")
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    with pytest.raises(remote_signer.VerificationError):
        remote_signer.SessionVerifier(rsa_pair.key, PURPOSE).verify(forged)
    with pytest.raises(remote_signer.VerificationError):
        remote_signer.SessionVerifier(rsa_pair.key, PURPOSE).verify("x" * 10000)
    with pytest.raises(remote_signer.InvalidInputError):
        signer.sign({"aud": "admin"})
    with pytest.raises(remote_signer.InvalidInputError):
        signer.sign(["not", "an", "object"])
    with pytest.raises(remote_signer.InvalidInputError):
        remote_signer.SessionVerifier([], PURPOSE)


def test_expiry_uses_the_given_time(p256_pair):
    token = remote_signer.SessionSigner(p256_pair.key, PURPOSE).sign({"u": 1}, ttl=120)
    verifier = remote_signer.SessionVerifier(p256_pair.key, PURPOSE, leeway=0)
    issued = verifier.verify(token)["iat"]
    assert verifier.verify(token, now=issued + 119)["u"] == 1
    with pytest.raises(remote_signer.VerificationError) as info:
        verifier.verify(token, now=issued + 121)
    assert info.value.kind == "expired"


def run_cli(cli, *args, stdin: str):
    return subprocess.run(
        [str(cli), *args], input=stdin.encode(), capture_output=True, timeout=120, check=False
    )


@pytest.mark.parametrize("direct", [False, True])
def test_python_token_verified_by_the_rust_cli(cli, tmp_path, any_pair, direct):
    pem = tmp_path / "trusted.pem"
    pem.write_text(any_pair.key.public_key_pem())
    signer = remote_signer.SessionSigner(any_pair.key, PURPOSE, direct=direct)
    token = signer.sign({"user": "alice"})
    done = run_cli(cli, "cookie", "verify", "--trust", str(pem), "--purpose", PURPOSE,
                   stdin=token)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["user"] == "alice"
    refused = run_cli(cli, "cookie", "verify", "--trust", str(pem), "--purpose", "admin",
                      stdin=token)
    assert refused.returncode == 1 and b"invalid token" in refused.stderr


@pytest.mark.parametrize("direct", [False, True])
def test_rust_cli_token_verified_by_python(cli, any_pair, direct):
    args = ["cookie", "sign", "--key", str(any_pair.path), "--purpose", PURPOSE, "--ttl", "300"]
    done = run_cli(cli, *args, *(["--direct"] if direct else []), stdin='{"user": "bob"}')
    assert done.returncode == 0, done.stderr.decode()
    token = done.stdout.decode().strip()
    claims = remote_signer.SessionVerifier(any_pair.key, PURPOSE).verify(token)
    assert claims["user"] == "bob" and claims["exp"] - claims["iat"] == 300
    with pytest.raises(remote_signer.VerificationError):
        remote_signer.SessionVerifier(any_pair.key, "admin").verify(token)
