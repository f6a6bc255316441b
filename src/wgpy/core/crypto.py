"""The protocol's primitives (whitepaper section 5.4): DH, AEAD, XAEAD, HASH, MAC, HMAC, KDF.

X25519 and ChaCha20-Poly1305 come from `cryptography`, BLAKE2s from `hashlib`. XChaCha20-Poly1305
(used only for cookie replies) is HChaCha20 plus ChaCha20-Poly1305; no dependency ships
HChaCha20, so it is written here from RFC draft-irtf-cfrg-xchacha section 2.2.
"""

import hashlib
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from wgpy.core.constants import KEY_LEN

__all__ = [
    "InvalidTag",
    "aead_decrypt",
    "aead_encrypt",
    "aead_nonce",
    "clamp_private_key",
    "dh",
    "hash_",
    "hchacha20",
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

ZERO_KEY = bytes(KEY_LEN)
_NONCE_PREFIX = bytes(4)
_NONCE = struct.Struct("<4xQ")  # 32 zero bits, then the 64-bit little-endian counter


class ZeroSharedSecret(ValueError):
    """X25519 produced the all-zero value: the peer's key is of small order."""


def clamp_private_key(key: bytes) -> bytes:
    """Clamp a Curve25519 scalar as RFC 7748 section 5 (and `wg genkey`) do."""
    b = bytearray(key)
    b[0] &= 248
    b[31] = (b[31] & 127) | 64
    return bytes(b)


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


def mac(key: bytes, data: bytes) -> bytes:
    """MAC(key, input): keyed BLAKE2s with a 16-byte digest."""
    return hashlib.blake2s(data, digest_size=16, key=key).digest()


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


_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
_M32 = 0xFFFFFFFF


def _quarter_round(s: list[int], a: int, b: int, c: int, d: int) -> None:
    s[a] = (s[a] + s[b]) & _M32
    s[d] ^= s[a]
    s[d] = ((s[d] << 16) | (s[d] >> 16)) & _M32
    s[c] = (s[c] + s[d]) & _M32
    s[b] ^= s[c]
    s[b] = ((s[b] << 12) | (s[b] >> 20)) & _M32
    s[a] = (s[a] + s[b]) & _M32
    s[d] ^= s[a]
    s[d] = ((s[d] << 8) | (s[d] >> 24)) & _M32
    s[c] = (s[c] + s[d]) & _M32
    s[b] ^= s[c]
    s[b] = ((s[b] << 7) | (s[b] >> 25)) & _M32


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20: 20 ChaCha rounds without the final addition, keeping words 0-3 and 12-15."""
    state = [*_SIGMA, *struct.unpack("<8I", key), *struct.unpack("<4I", nonce16)]
    for _ in range(10):
        _quarter_round(state, 0, 4, 8, 12)
        _quarter_round(state, 1, 5, 9, 13)
        _quarter_round(state, 2, 6, 10, 14)
        _quarter_round(state, 3, 7, 11, 15)
        _quarter_round(state, 0, 5, 10, 15)
        _quarter_round(state, 1, 6, 11, 12)
        _quarter_round(state, 2, 7, 8, 13)
        _quarter_round(state, 3, 4, 9, 14)
    return struct.pack("<8I", *state[0:4], *state[12:16])


def _xchacha_subkey_and_nonce(key: bytes, nonce24: bytes) -> tuple[bytes, bytes]:
    return hchacha20(key, nonce24[:16]), _NONCE_PREFIX + nonce24[16:]


def xaead_encrypt(key: bytes, nonce24: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """XAEAD: XChaCha20-Poly1305 with a 24-byte random nonce (cookie replies)."""
    subkey, nonce = _xchacha_subkey_and_nonce(key, nonce24)
    return ChaCha20Poly1305(subkey).encrypt(nonce, plaintext, ad)


def xaead_decrypt(key: bytes, nonce24: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """Inverse of xaead_encrypt; raises InvalidTag when authentication fails."""
    subkey, nonce = _xchacha_subkey_and_nonce(key, nonce24)
    return ChaCha20Poly1305(subkey).decrypt(nonce, ciphertext, ad)
