"""Key text formats: base64 as `wg` reads and prints them (the UAPI's hex is in wgpy.uapi.text),
and the clamping of private keys. No crypto library here: `wgpy show` imports this module."""

import base64
from collections.abc import Callable

from wgpy.core.constants import KEY_LEN


class KeyFormatError(ValueError):
    """A key that is not 32 bytes of valid base64 or hex."""


def key_from_base64(text: str) -> bytes:
    """Decode a 44-character base64 key exactly as wg does (strict length and padding)."""
    text = text.strip()
    if len(text) != 44 or text[43] != "=":
        raise KeyFormatError("Key is not the correct length or format")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error, or text that is not ASCII (found by fuzzing)
        raise KeyFormatError("Key is not the correct length or format") from exc
    if len(raw) != KEY_LEN or base64.b64encode(raw).decode() != text:
        raise KeyFormatError("Key is not the correct length or format")
    return raw


def key_to_base64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def clamp_private_key(key: bytes) -> bytes:
    """Clamp a Curve25519 scalar as RFC 7748 section 5 (and `wg genkey`) do."""
    b = bytearray(key)
    b[0] &= 248
    b[31] = (b[31] & 127) | 64
    return bytes(b)


def generate_private_key(random_bytes: Callable[[int], bytes]) -> bytes:
    """A fresh clamped Curve25519 private key, as `wg genkey` makes."""
    return clamp_private_key(random_bytes(KEY_LEN))
