"""The protocol's primitives (whitepaper section 5.4): DH, AEAD, XAEAD, HASH, MAC, HMAC, KDF.

X25519 and ChaCha20-Poly1305 come from `cryptography`, BLAKE2s from `hashlib`, and
XChaCha20-Poly1305 (cookie replies only) from libsodium through PyNaCl: `cryptography` lacks it,
and a cookie reply is what a device under a handshake flood sends most (libsodium: ~4 µs a
reply, against ~68 µs for the pure-Python HChaCha20 this replaced).
"""

import hashlib
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from wgpy.core.constants import ZERO_KEY
from wgpy.core.keys import clamp_private_key

__all__ = [
    "InvalidTag",
    "aead_decrypt",
    "aead_encrypt",
    "aead_nonce",
    "clamp_private_key",
    "dh",
    "hash_",
    "hmac",
    "kdf1",
    "kdf2",
    "kdf3",
    "load_private_key",
    "mac",
    "public_bytes",
    "public_key",
    "xaead_decrypt",
    "xaead_encrypt",
]

_NONCE = struct.Struct("<4xQ")  # 32 zero bits, then the 64-bit little-endian counter


class ZeroSharedSecret(ValueError):
    """X25519 produced the all-zero value: the peer's key is of small order."""


def public_key(private_key: bytes) -> bytes:
    """The X25519 public key of a private key (clamping happens inside X25519)."""
    return public_bytes(load_private_key(private_key))


def load_private_key(private_key: bytes) -> X25519PrivateKey:
    """A private key ready for `dh`. Loading costs a full scalar multiplication (OpenSSL
    derives the public key), as much as one DH: load each key once, not per exchange."""
    return X25519PrivateKey.from_private_bytes(private_key)


def public_bytes(private_key: X25519PrivateKey) -> bytes:
    """The raw public key of a loaded private key (already derived: no scalar multiplication)."""
    return private_key.public_key().public_bytes_raw()


def dh(private_key: X25519PrivateKey, public: bytes) -> bytes:
    """X25519; raises ZeroSharedSecret on the all-zero result, as the reference rejects it."""
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:  # cryptography refuses the all-zero output itself
        raise ZeroSharedSecret("X25519 result is all zero") from exc
    if shared == ZERO_KEY:
        raise ZeroSharedSecret("X25519 result is all zero")
    return shared


def hash_(*parts: bytes) -> bytes:
    """HASH(input): BLAKE2s-256 of the concatenated parts."""
    h = hashlib.blake2s()
    for part in parts:
        h.update(part)
    return h.digest()


def mac(key: bytes, data: bytes | memoryview) -> bytes:
    """MAC(key, input): keyed BLAKE2s with a 16-byte digest."""
    return hashlib.blake2s(data, digest_size=16, key=key).digest()


def mac_state(key: bytes) -> hashlib.blake2s:
    """MAC with `key` and no input yet, for a key used again and again: `.copy()`, update and
    digest cost ~25 % less than `mac`, which keys (compresses the key block) each time."""
    return hashlib.blake2s(digest_size=16, key=key)


_BLAKE2S_BLOCK = 64
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


def hmac(key: bytes, data: bytes) -> bytes:
    """HMAC(key, input): HMAC-BLAKE2s-256 (RFC 2104 over BLAKE2s, not keyed BLAKE2s).

    Written out because the standard `hmac` module has no fast path for BLAKE2s and falls
    back to a generic one costing about 7 µs a call; a handshake makes some twenty calls.
    """
    if len(key) > _BLAKE2S_BLOCK:
        key = hashlib.blake2s(key).digest()
    key = key.ljust(_BLAKE2S_BLOCK, b"\0")
    inner = hashlib.blake2s(key.translate(_INNER_PAD))
    inner.update(data)
    outer = hashlib.blake2s(key.translate(_OUTER_PAD))
    outer.update(inner.digest())
    return outer.digest()


def kdf1(key: bytes, data: bytes) -> bytes:
    """KDF1: HKDF over HMAC-BLAKE2s returning one 32-byte output."""
    prk = hmac(key, data)
    return hmac(prk, b"\x01")


def kdf2(key: bytes, data: bytes) -> tuple[bytes, bytes]:
    """KDF2: HKDF over HMAC-BLAKE2s returning two 32-byte outputs."""
    prk = hmac(key, data)
    t1 = hmac(prk, b"\x01")
    return t1, hmac(prk, t1 + b"\x02")


def kdf3(key: bytes, data: bytes) -> tuple[bytes, bytes, bytes]:
    """KDF3: HKDF over HMAC-BLAKE2s returning three 32-byte outputs."""
    prk = hmac(key, data)
    t1 = hmac(prk, b"\x01")
    t2 = hmac(prk, t1 + b"\x02")
    return t1, t2, hmac(prk, t2 + b"\x03")


def aead_nonce(counter: int) -> bytes:
    """The 96-bit ChaCha20-Poly1305 nonce: 32 zero bits then the 64-bit little-endian counter."""
    return _NONCE.pack(counter)


def aead_encrypt(key: bytes, counter: int, plaintext: bytes, ad: bytes) -> bytes:
    """AEAD(key, counter, plain, auth): ChaCha20-Poly1305 with the protocol's nonce layout."""
    return ChaCha20Poly1305(key).encrypt(aead_nonce(counter), plaintext, ad)


def aead_decrypt(key: bytes, counter: int, ciphertext: bytes, ad: bytes) -> bytes:
    """Inverse of aead_encrypt; raises InvalidTag when authentication fails."""
    return ChaCha20Poly1305(key).decrypt(aead_nonce(counter), ciphertext, ad)


def xaead_encrypt(key: bytes, nonce24: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """XAEAD: XChaCha20-Poly1305 with a 24-byte random nonce (cookie replies)."""
    return crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce24, key)


def xaead_decrypt(key: bytes, nonce24: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """Inverse of xaead_encrypt; raises InvalidTag when authentication fails."""
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, ad, nonce24, key)
    except CryptoError as exc:
        raise InvalidTag from exc
