"""remote_signer.open and Key: the CLI's key references and options, signing, errors."""

from __future__ import annotations

import os
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import remote_signer
from conftest import write_key


def test_metadata_matches_the_key(any_pair):
    key = any_pair.key
    raw_public = any_pair.raw.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key.public_key_pem().encode() == raw_public
    assert key.public_key_der() == any_pair.raw.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key.key_id.startswith(any_pair.path.as_uri() + "#")
    assert key.default_algorithm in key.algorithms
    assert key.public_key_jwk()["kty"] in ("RSA", "EC", "OKP")


def test_every_algorithm_signs_and_verifies(any_pair):
    key = any_pair.key
    for alg in key.algorithms:
        signature = key.sign(b"message", alg)
        key.verify(b"message", signature, alg)
        with pytest.raises(remote_signer.VerificationError) as info:
            key.verify(b"other message", signature, alg)
        assert info.value.kind == "invalid_signature"


def test_algorithm_outside_the_family_is_refused(rsa_pair, ed25519_pair):
    with pytest.raises(remote_signer.UnsupportedKeyError) as info:
        rsa_pair.key.sign(b"m", "ES256")
    assert info.value.kind == "algorithm"
    assert info.value.transient is False
    with pytest.raises(remote_signer.UnsupportedKeyError):
        ed25519_pair.key.sign(b"m", "RS256")
    with pytest.raises(remote_signer.UnsupportedKeyError):
        rsa_pair.key.sign(b"m", "HS256")


def test_file_uri_and_path_open_the_same_key(rsa_pair):
    by_uri = remote_signer.open(rsa_pair.path.as_uri())
    assert by_uri.public_key_pem() == rsa_pair.key.public_key_pem()


def test_bad_references_and_files(tmp_path):
    with pytest.raises(remote_signer.ConfigError) as info:
        remote_signer.open("http://v.vault.azure.net/keys/k")
    assert info.value.kind == "key_ref"
    with pytest.raises(remote_signer.KeyFileError) as info:
        remote_signer.open(str(tmp_path / "missing.pem"))
    assert info.value.kind == "key_file"
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key")
    garbage.chmod(0o600)
    with pytest.raises(remote_signer.KeyFileError):
        remote_signer.open(str(garbage))


def test_readable_key_file_is_refused_unless_allowed(tmp_path):
    path = write_key(tmp_path / "open.p8", rsa.generate_private_key(65537, 2048), mode=0o644)
    with pytest.raises(remote_signer.KeyFileError) as info:
        remote_signer.open(str(path))
    assert info.value.kind == "insecure_key_file"
    assert remote_signer.open(str(path), allow_readable_key_file=True).key_type == "RSA"


def test_passphrases_as_the_cli_takes_them(tmp_path, monkeypatch):
    secret = "correct horse battery staple"
    path = write_key(tmp_path / "enc.p8", rsa.generate_private_key(65537, 2048), secret.encode())
    monkeypatch.delenv("REMOTE_SIGNER_KEY_PASSPHRASE", raising=False)
    with pytest.raises(remote_signer.KeyFileError) as info:
        remote_signer.open(str(path))
    assert info.value.kind == "passphrase"
    assert remote_signer.open(str(path), passphrase=secret).key_type == "RSA"
    assert remote_signer.open(str(path), passphrase=secret.encode()).key_type == "RSA"
    pass_file = tmp_path / "pass"
    pass_file.write_text(secret + "\n")
    assert remote_signer.open(str(path), passphrase_file=str(pass_file)).key_type == "RSA"
    monkeypatch.setenv("REMOTE_SIGNER_KEY_PASSPHRASE", secret)
    assert remote_signer.open(str(path)).key_type == "RSA"
    wrong = "wrong horse battery staple"
    with pytest.raises(remote_signer.KeyFileError) as info:
        remote_signer.open(str(path), passphrase=wrong)
    assert info.value.kind == "passphrase"
    assert wrong not in str(info.value) and secret not in str(info.value)
    assert wrong not in repr(info.value)


def test_threads_sign_at_once(p256_pair):
    """Calls release the GIL and share one runtime: many threads, every signature valid."""
    key = p256_pair.key
    results = {}

    def work(i: int) -> None:
        message = f"message {i}".encode()
        results[i] = (message, key.sign(message))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16
    for message, signature in results.values():
        key.verify(message, signature)


def test_repr_names_the_key_and_nothing_secret(rsa_pair):
    text = repr(rsa_pair.key)
    assert rsa_pair.key.key_id in text
    assert "PRIVATE" not in text
    assert os.path.basename(str(rsa_pair.path)) in text


def _child_outcome(pair) -> int:
    try:
        pair.key.sign(b"m")
        return 1
    except remote_signer.ConfigError as e:
        if "after the fork" not in str(e):
            return 2
    try:
        remote_signer.SessionSigner(pair.key, "session")
        return 3
    except remote_signer.ConfigError:
        pass
    fresh = remote_signer.open(str(pair.path))
    fresh.verify(b"m", fresh.sign(b"m"))
    token = remote_signer.SessionSigner(fresh, "session").sign({"u": 1})
    remote_signer.SessionVerifier(fresh, "session").verify(token)
    return 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_a_clear_error_and_a_runtime_of_its_own(p256_pair):
    """gunicorn --preload forks after import: a key opened before the fork refuses (its
    connections belong to the parent's runtime) instead of hanging; keys opened in the child
    work."""
    p256_pair.key.sign(b"start the runtime in the parent")
    pid = os.fork()
    if pid == 0:
        code = 9
        try:
            code = _child_outcome(p256_pair)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_the_gil_is_released_while_the_backend_waits(tmp_path):
    """`open` reads a FIFO: the read blocks inside the native call until another Python thread
    opens the FIFO's write end, which that thread can only do while the call has released the
    GIL (it polls with O_NONBLOCK, which fails until the reader is waiting). Were the GIL held,
    the two would deadlock; the watchdog turns that into a failure."""
    import errno
    import faulthandler
    import time

    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo, 0o600)
    opened = threading.Event()

    def writer() -> None:
        while True:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                assert e.errno == errno.ENXIO  # no reader yet
                time.sleep(0)
                continue
            opened.set()
            os.close(fd)
            return

    faulthandler.dump_traceback_later(120, exit=True)
    try:
        thread = threading.Thread(target=writer)
        thread.start()
        with pytest.raises(remote_signer.KeyFileError) as info:
            remote_signer.open(str(fifo))
        thread.join()
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert opened.is_set()
    assert "nothing was written to the pipe" in str(info.value)
