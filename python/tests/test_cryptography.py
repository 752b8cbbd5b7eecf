"""Key.as_cryptography_key(): a real cryptography private key object over the remote key."""

from __future__ import annotations

import copy

import cryptography
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

import remote_signer
from remote_signer import _cryptography

# scripts/test pins cryptography to its newest release; the adapters must implement every abstract
# method of that release themselves (none filled in by the forward-compatibility fallback).
PINNED_CRYPTOGRAPHY = "50.0.2"

ABCS = {
    "rsa": rsa.RSAPrivateKey,
    "p256": ec.EllipticCurvePrivateKey,
    "p384": ec.EllipticCurvePrivateKey,
    "ed25519": ed25519.Ed25519PrivateKey,
}


def test_pinned_release_and_no_abstract_method_left_to_the_fallback():
    assert cryptography.__version__ == PINNED_CRYPTOGRAPHY
    assert _cryptography._ADDED_BY_COMPLETE == {
        "RemoteRSAPrivateKey": [],
        "RemoteEllipticCurvePrivateKey": [],
        "RemoteEd25519PrivateKey": [],
    }
    for abc_class in (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey):
        assert "__copy__" in abc_class.__abstractmethods__
        assert "__deepcopy__" in abc_class.__abstractmethods__


@pytest.mark.parametrize("name", sorted(ABCS))
def test_is_an_instance_of_the_cryptography_abc(request, name):
    pair = request.getfixturevalue(f"{name}_pair")
    adapted = pair.key.as_cryptography_key()
    assert isinstance(adapted, ABCS[name])
    assert adapted.remote_key is pair.key
    assert copy.copy(adapted) is adapted
    assert copy.deepcopy(adapted) is adapted
    assert pair.key.key_id in repr(adapted)


def test_public_key_is_a_real_cryptography_key(any_pair):
    public = any_pair.key.as_cryptography_key().public_key()
    assert public == any_pair.raw.public_key()


def test_key_size_and_curve(rsa_pair, p256_pair, p384_pair):
    assert rsa_pair.key.as_cryptography_key().key_size == 2048
    p256 = p256_pair.key.as_cryptography_key()
    assert isinstance(p256.curve, ec.SECP256R1) and p256.key_size == 256
    p384 = p384_pair.key.as_cryptography_key()
    assert isinstance(p384.curve, ec.SECP384R1) and p384.key_size == 384


def test_private_key_material_is_refused(any_pair):
    adapted = any_pair.key.as_cryptography_key()
    with pytest.raises(remote_signer.KeyNotExportableError) as info:
        adapted.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    assert isinstance(info.value, NotImplementedError)
    assert info.value.kind == "not_exportable"
    assert any_pair.key.key_id in str(info.value)
    if isinstance(adapted, ed25519.Ed25519PrivateKey):
        with pytest.raises(remote_signer.KeyNotExportableError):
            adapted.private_bytes_raw()
    else:
        with pytest.raises(remote_signer.KeyNotExportableError):
            adapted.private_numbers()


@pytest.mark.parametrize("hash_class", [hashes.SHA256, hashes.SHA384, hashes.SHA512])
def test_rsa_pkcs1v15_is_byte_identical_to_the_raw_key(rsa_pair, hash_class):
    adapted = rsa_pair.key.as_cryptography_key()
    signature = adapted.sign(b"message", padding.PKCS1v15(), hash_class())
    assert signature == rsa_pair.raw.sign(b"message", padding.PKCS1v15(), hash_class())


@pytest.mark.parametrize("hash_class", [hashes.SHA256, hashes.SHA384, hashes.SHA512])
def test_rsa_pss_verifies(rsa_pair, hash_class):
    adapted = rsa_pair.key.as_cryptography_key()
    for salt in (padding.PSS.DIGEST_LENGTH, hash_class.digest_size):
        pss = padding.PSS(mgf=padding.MGF1(hash_class()), salt_length=salt)
        signature = adapted.sign(bytearray(b"message"), pss, hash_class())
        rsa_pair.raw.public_key().verify(signature, b"message", pss, hash_class())


def test_rsa_refuses_what_the_key_service_cannot_do(rsa_pair):
    adapted = rsa_pair.key.as_cryptography_key()
    refused = [
        (padding.PKCS1v15(), hashes.SHA1()),
        (padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())),
        (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
         hashes.SHA256()),
        (padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=32), hashes.SHA256()),
        (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20), hashes.SHA256()),
    ]
    for pad, algorithm in refused:
        with pytest.raises(remote_signer.UnsupportedKeyError):
            adapted.sign(b"message", pad, algorithm)
    with pytest.raises(remote_signer.UnsupportedKeyError):
        adapted.decrypt(b"ciphertext", padding.PKCS1v15())


def test_ecdsa_signs_der_that_verifies(p256_pair, p384_pair):
    for pair, hash_class in ((p256_pair, hashes.SHA256), (p384_pair, hashes.SHA384)):
        adapted = pair.key.as_cryptography_key()
        signature = adapted.sign(b"message", ec.ECDSA(hash_class()))
        utils.decode_dss_signature(signature)
        pair.raw.public_key().verify(signature, b"message", ec.ECDSA(hash_class()))


def test_ecdsa_refuses_other_hashes_prehashed_and_exchange(p256_pair):
    adapted = p256_pair.key.as_cryptography_key()
    for algorithm in (hashes.SHA384(), hashes.SHA1(), utils.Prehashed(hashes.SHA256())):
        with pytest.raises(remote_signer.UnsupportedKeyError):
            adapted.sign(b"message", ec.ECDSA(algorithm))
    with pytest.raises(remote_signer.UnsupportedKeyError):
        adapted.sign(b"message", ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(remote_signer.UnsupportedKeyError):
        adapted.exchange(ec.ECDH(), peer)


def test_ed25519_is_byte_identical_to_the_raw_key(ed25519_pair):
    adapted = ed25519_pair.key.as_cryptography_key()
    assert adapted.sign(b"message") == ed25519_pair.raw.sign(b"message")
