"""mac1 / mac2 and cookie replies (whitepaper section 5.4.4 and 5.4.7).

Two roles. The *checker* belongs to the device: it verifies mac1 on every handshake message
(proof the sender knows our public key) and, when the device is under load, mac2 (proof the
sender can receive at its source address) and makes cookie replies. The *generator* belongs to
each peer: it adds mac1/mac2 to the handshakes we send and stores the cookie a peer returns.
"""

import hashlib
import hmac as _hmac
from collections.abc import Callable

from wgpy.core import crypto
from wgpy.core.constants import (
    COOKIE_NONCE_LEN,
    COOKIE_REFRESH_TIME,
    COOKIE_SECRET_LATENCY,
    LABEL_COOKIE,
    LABEL_MAC1,
    MESSAGE_HANDSHAKE_COOKIE,
)
from wgpy.core.messages import COOKIE_REPLY, MAC1_OFFSET_FROM_END, MAC2_OFFSET_FROM_END

# mac2 of a sender that holds no cookie (a valid mac2 is all zero with probability 2^-128).
_NO_MAC2 = bytes(16)
# Cookies remembered per source address until the secret rotates (a flood from random
# sources empties the memo rather than growing it).
MAX_REMEMBERED_COOKIES = 65536


def _mac1_key(public_key: bytes) -> bytes:
    return crypto.hash_(LABEL_MAC1, public_key)


def _cookie_key(public_key: bytes) -> bytes:
    return crypto.hash_(LABEL_COOKIE, public_key)


class CookieChecker:
    """The device's side: verify MACs on incoming handshakes and issue cookies."""

    def __init__(self, random_bytes: Callable[[int], bytes]) -> None:
        self._random = random_bytes
        # BLAKE2s keyed with HASH(LABEL_MAC1 || our public key), its key block already
        # compressed: each check copies it (cheaper than keying a new one; every datagram of a
        # handshake flood pays this)
        self._mac1_state: hashlib.blake2s | None = None
        self._encryption_key = b""
        self._secret = b""
        self._secret_time: float | None = None
        self._cookies: dict[bytes, bytes] = {}

    def set_public_key(self, public_key: bytes | None) -> None:
        """Key the checker to the device's identity (None: no identity, every mac1 fails)."""
        if public_key is None:
            self._mac1_state = None
            return
        self._mac1_state = crypto.mac_state(_mac1_key(public_key))
        self._encryption_key = _cookie_key(public_key)

    def check_mac1(self, message: bytes | memoryview) -> bool:
        """`message` may be a view into a receive buffer: it is read, not kept or copied."""
        if self._mac1_state is None:
            return False
        end = len(message) - MAC1_OFFSET_FROM_END
        mac = self._mac1_state.copy()
        mac.update(message[:end])
        return _hmac.compare_digest(mac.digest(), message[end : end + 16])

    def _current_cookie(self, source: bytes, now: float) -> bytes:
        """Cookie = MAC(R, source address || port), R rotated every COOKIE_REFRESH_TIME;
        remembered per source, since under a flood the same few sources ask again and again."""
        if self._secret_time is None or now - self._secret_time >= COOKIE_REFRESH_TIME:
            self._secret = self._random(32)
            self._secret_time = now
            self._cookies.clear()
        cookie = self._cookies.get(source)
        if cookie is None:
            if len(self._cookies) >= MAX_REMEMBERED_COOKIES:
                self._cookies.clear()
            cookie = self._cookies[source] = crypto.mac(self._secret, source)
        return cookie

    @staticmethod
    def lacks_mac2(message: bytes | memoryview) -> bool:
        """Whether mac2 is all zero: the sender holds no cookie (a mac1-only flood's case)."""
        return message[len(message) - MAC2_OFFSET_FROM_END:] == _NO_MAC2

    def check_mac2(self, message: bytes | memoryview, source: bytes, now: float) -> bool:
        """Whether mac2 is MAC(cookie of `source`, message up to mac2). An all-zero mac2 (the
        sender has no cookie: every initiation of a mac1-only flood) fails without a MAC."""
        if self.lacks_mac2(message):
            return False
        end = len(message) - MAC2_OFFSET_FROM_END
        expected = crypto.mac(self._current_cookie(source, now), message[:end])
        return _hmac.compare_digest(expected, message[end:])

    def create_reply(self, message: bytes | memoryview, receiver: int, source: bytes,
                     now: float) -> bytes:
        """A cookie reply to `message`, encrypted with its mac1 as associated data."""
        end = len(message) - MAC1_OFFSET_FROM_END
        mac1 = bytes(message[end : end + 16])
        nonce = self._random(COOKIE_NONCE_LEN)
        cookie = self._current_cookie(source, now)
        sealed = crypto.xaead_encrypt(self._encryption_key, nonce, cookie, mac1)
        return COOKIE_REPLY.pack(MESSAGE_HANDSHAKE_COOKIE, receiver, nonce, sealed)


class CookieGenerator:
    """A peer's side: add MACs to outgoing handshakes and accept the cookie it sends back."""

    def __init__(self, peer_public_key: bytes) -> None:
        self._mac1_key = _mac1_key(peer_public_key)
        self._decryption_key = _cookie_key(peer_public_key)
        self._last_mac1: bytes | None = None
        self._cookie: bytes | None = None
        self._cookie_time = 0.0

    def add_macs(self, message: bytearray, now: float) -> None:
        """Fill mac1, and mac2 while a received cookie is fresh (else mac2 stays zero)."""
        end1 = len(message) - MAC1_OFFSET_FROM_END
        end2 = len(message) - MAC2_OFFSET_FROM_END
        mac1 = crypto.mac(self._mac1_key, bytes(message[:end1]))
        message[end1:end2] = mac1
        self._last_mac1 = mac1
        if self._cookie is not None and (
            now - self._cookie_time < COOKIE_REFRESH_TIME - COOKIE_SECRET_LATENCY
        ):
            message[end2:] = crypto.mac(self._cookie, bytes(message[:end2]))
        else:
            message[end2:] = bytes(16)

    def consume_reply(self, reply: bytes, now: float) -> bool:
        """Decrypt and store the cookie; False if we sent nothing it answers or it is forged."""
        if self._last_mac1 is None:
            return False
        _, _, nonce, sealed = COOKIE_REPLY.unpack(reply)
        try:
            cookie = crypto.xaead_decrypt(self._decryption_key, nonce, sealed, self._last_mac1)
        except crypto.InvalidTag:
            return False
        self._cookie = cookie
        self._cookie_time = now
        self._last_mac1 = None
        return True
