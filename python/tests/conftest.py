"""Key files for the tests: made with cryptography, written mode 0600 as a real key file is."""

from __future__ import annotations

import os
import pathlib
import typing

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import remote_signer

REPO = pathlib.Path(__file__).resolve().parents[2]


def write_key(path: pathlib.Path, private_key: typing.Any, password: typing.Optional[bytes] = None,
              mode: int = 0o600) -> pathlib.Path:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, mode)
    return path


class KeyPair(typing.NamedTuple):
    raw: typing.Any
    """The cryptography key, for comparison."""
    path: pathlib.Path
    key: remote_signer.Key
    """The same key opened through remote_signer."""


def _pair(tmp_dir: pathlib.Path, name: str, raw: typing.Any) -> KeyPair:
    path = write_key(tmp_dir / f"{name}.p8", raw)
    return KeyPair(raw, path, remote_signer.open(str(path)))


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def rsa_pair(key_dir: pathlib.Path) -> KeyPair:
    return _pair(key_dir, "rsa", rsa.generate_private_key(65537, 2048))


@pytest.fixture(scope="session")
def p256_pair(key_dir: pathlib.Path) -> KeyPair:
    return _pair(key_dir, "p256", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="session")
def p384_pair(key_dir: pathlib.Path) -> KeyPair:
    return _pair(key_dir, "p384", ec.generate_private_key(ec.SECP384R1()))


@pytest.fixture(scope="session")
def ed25519_pair(key_dir: pathlib.Path) -> KeyPair:
    return _pair(key_dir, "ed25519", ed25519.Ed25519PrivateKey.generate())


@pytest.fixture(scope="session", params=["rsa", "p256", "p384", "ed25519"])
def any_pair(request: pytest.FixtureRequest) -> KeyPair:
    return request.getfixturevalue(f"{request.param}_pair")


@pytest.fixture(scope="session")
def cli() -> pathlib.Path:
    """The Rust CLI: $REMOTE_SIGNER_CLI, else the workspace's debug build."""
    path = pathlib.Path(os.environ.get("REMOTE_SIGNER_CLI", REPO / "target/debug/remote-signer"))
    assert path.is_file(), f"{path} is missing: build it with `cargo build` (scripts/test does)"
    return path
