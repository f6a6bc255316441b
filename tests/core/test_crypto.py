"""Known-answer tests for the primitives in wgpy.core.crypto."""

import hashlib
import hmac as stdlib_hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from wgpy.core import crypto
from wgpy.core.constants import CONSTRUCTION

KEY = bytes(range(0x80, 0xA0))
SUNSCREEN = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
             b"the future, sunscreen would be it.")
AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")


def test_rfc8439_aead_vector():
    nonce = bytes.fromhex("070000004041424344454647")
    sealed = ChaCha20Poly1305(KEY).encrypt(nonce, SUNSCREEN, AAD)
    assert sealed.hex() == (
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca967128"
        "2fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab"
        "324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
        "1ae10b594f09e26a7e902ecbd0600691")


def test_protocol_nonce_layout_is_zero_prefix_then_little_endian_counter():
    counter = 0x0102030405060708
    assert crypto.aead_nonce(counter) == bytes(4) + bytes.fromhex("0807060504030201")
    sealed = crypto.aead_encrypt(KEY, counter, SUNSCREEN, AAD)
    assert sealed == ChaCha20Poly1305(KEY).encrypt(crypto.aead_nonce(counter), SUNSCREEN, AAD)
    assert crypto.aead_decrypt(KEY, counter, sealed, AAD) == SUNSCREEN
    with pytest.raises(crypto.InvalidTag):
        crypto.aead_decrypt(KEY, counter + 1, sealed, AAD)
    tampered = bytearray(sealed)
    tampered[0] ^= 1
    with pytest.raises(crypto.InvalidTag):
        crypto.aead_decrypt(KEY, counter, bytes(tampered), AAD)


def test_xchacha20_poly1305_draft_vector():
    """draft-irtf-cfrg-xchacha A.3.1: covers the HChaCha20 subkey step inside libsodium too."""
    nonce = bytes.fromhex("404142434445464748494a4b4c4d4e4f5051525354555657")
    sealed = crypto.xaead_encrypt(KEY, nonce, SUNSCREEN, AAD)
    assert sealed.hex() == (
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440"
        "bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f"
        "3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"
        "c0875924c1c7987947deafd8780acf49")
    assert crypto.xaead_decrypt(KEY, nonce, sealed, AAD) == SUNSCREEN
    with pytest.raises(crypto.InvalidTag):
        crypto.xaead_decrypt(KEY, nonce, sealed, AAD + b"x")


def test_rfc7748_x25519_alice_and_bob():
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    alice_public = crypto.public_key(alice)
    bob_public = crypto.public_key(bob)
    assert alice_public.hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert bob_public.hex() == (
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert crypto.dh(crypto.load_private_key(alice), bob_public).hex() == shared
    assert crypto.dh(crypto.load_private_key(bob), alice_public).hex() == shared
    assert crypto.public_bytes(crypto.load_private_key(alice)) == alice_public


@pytest.mark.parametrize("point", [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
])
def test_small_order_points_give_the_all_zero_secret_and_are_refused(point):
    with pytest.raises(crypto.ZeroSharedSecret):
        crypto.dh(crypto.load_private_key(crypto.clamp_private_key(bytes(range(32)))),
                  bytes.fromhex(point))


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=200), data=st.binary(max_size=300))
def test_hmac_is_rfc2104_over_blake2s(key, data):
    """Our HMAC-BLAKE2s (written out for speed) against the standard library's generic one,
    including keys longer than the 64-byte block, which are hashed first."""
    assert crypto.hmac(key, data) == stdlib_hmac.new(key, data, hashlib.blake2s).digest()


def test_clamping():
    clamped = crypto.clamp_private_key(b"\xff" * 32)
    assert clamped[0] == 0xF8 and clamped[31] == 0x7F
    assert crypto.clamp_private_key(bytes(32))[31] == 0x40


def test_blake2s_hash_mac_and_hmac():
    assert crypto.hash_(b"abc").hex() == (
        "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982")
    assert crypto.hash_(b"a", b"bc") == crypto.hash_(b"abc")
    assert crypto.mac(b"k" * 32, b"data") == hashlib.blake2s(
        b"data", digest_size=16, key=b"k" * 32).digest()
    assert crypto.hmac(b"key", b"data") == stdlib_hmac.new(
        b"key", b"data", hashlib.blake2s).digest()


def test_kdf_chain_is_hkdf_over_hmac_blake2s():
    key, data = bytes(range(32)), b"input key material"
    prk = stdlib_hmac.new(key, data, hashlib.blake2s).digest()
    t1 = stdlib_hmac.new(prk, b"\x01", hashlib.blake2s).digest()
    t2 = stdlib_hmac.new(prk, t1 + b"\x02", hashlib.blake2s).digest()
    t3 = stdlib_hmac.new(prk, t2 + b"\x03", hashlib.blake2s).digest()
    assert crypto.kdf1(key, data) == t1
    assert crypto.kdf2(key, data) == (t1, t2)
    assert crypto.kdf3(key, data) == (t1, t2, t3)


def test_initial_chaining_key_of_the_construction():
    assert crypto.hash_(CONSTRUCTION).hex() == (
        "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36")
