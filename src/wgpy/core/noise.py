"""Noise_IKpsk2 handshake (whitepaper section 5.4.2 - 5.4.5), as pure functions over state.

The device owns identities, indices and peers; this module only computes messages and
transitions a peer's `Handshake`. Each consume function leaves the state untouched unless the
message fully authenticates, so a forged or replayed message can never disturb a session.
"""

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from wgpy.core import crypto
from wgpy.core.constants import (
    CONSTRUCTION,
    HANDSHAKE_INITIATION_RATE,
    IDENTIFIER,
    KEY_LEN,
    MESSAGE_HANDSHAKE_INITIATION,
    MESSAGE_HANDSHAKE_RESPONSE,
    ZERO_KEY,
)
from wgpy.core.messages import INITIATION, RESPONSE

INITIAL_CHAINING_KEY = crypto.hash_(CONSTRUCTION)
INITIAL_HASH = crypto.hash_(INITIAL_CHAINING_KEY, IDENTIFIER)

# TAI64N: label 2^62 + 10 (the TAI-UTC offset the references use), nanoseconds rounded down to
# 2^24 ns so a timestamp does not leak fine-grained timing (kernel and wireguard-go agree).
_TAI64_BASE = (1 << 62) + 10
_TIMESTAMP_WHITENER = (1 << 24) - 1
_TAI64N = struct.Struct(">QI")


def tai64n(wall_time: float) -> bytes:
    """The 12-byte TAI64N timestamp of a Unix time, whitened like the references."""
    seconds = int(wall_time)
    nanoseconds = int((wall_time - seconds) * 1e9) & ~_TIMESTAMP_WHITENER
    return _TAI64N.pack(_TAI64_BASE + seconds, nanoseconds)


class HandshakeState(IntEnum):
    ZEROED = 0
    CREATED_INITIATION = 1
    CONSUMED_INITIATION = 2
    CREATED_RESPONSE = 3
    CONSUMED_RESPONSE = 4


@dataclass
class Handshake:
    """One peer's handshake: fixed parts (keys) and the transient Noise state."""

    # Secrets (the preshared key, DH results, the Noise chaining key) stay out of repr().
    remote_static: bytes
    preshared_key: bytes = field(default=ZERO_KEY, repr=False)
    precomputed_static_static: bytes = field(default=ZERO_KEY, repr=False)
    state: HandshakeState = HandshakeState.ZEROED
    hash: bytes = field(default=b"", repr=False)
    chaining_key: bytes = field(default=b"", repr=False)
    local_ephemeral: X25519PrivateKey | None = field(default=None, repr=False)
    remote_ephemeral: bytes = b""
    local_index: int = 0
    remote_index: int = 0
    latest_timestamp: bytes = bytes(12)
    last_initiation_consumption: float | None = None

    def clear(self) -> None:
        """Forget the transient state (keys and the replay timestamp stay)."""
        self.state = HandshakeState.ZEROED
        self.hash = b""
        self.chaining_key = b""
        self.local_ephemeral = None
        self.remote_ephemeral = b""
        self.local_index = 0
        self.remote_index = 0


@dataclass(frozen=True)
class StaticIdentity:
    """The interface's key pair, with the private key loaded once for every DH it takes part in
    (loading costs as much as a DH)."""

    private_key: bytes = field(repr=False)
    public_key: bytes
    key: X25519PrivateKey = field(repr=False, compare=False)

    @classmethod
    def load(cls, private_key: bytes) -> "StaticIdentity":
        key = crypto.load_private_key(private_key)
        return cls(private_key, crypto.public_bytes(key), key)


def precompute_static_static(identity: StaticIdentity | None, remote_static: bytes) -> bytes:
    """DH(S_priv, S_pub_peer), or zeros when there is no identity or the result is zero."""
    if identity is None:
        return ZERO_KEY
    try:
        return crypto.dh(identity.key, remote_static)
    except crypto.ZeroSharedSecret:
        return ZERO_KEY


def _mix_hash(h: bytes, data: bytes) -> bytes:
    return crypto.hash_(h, data)


def create_initiation(
    identity: StaticIdentity,
    handshake: Handshake,
    sender_index: int,
    wall_time: float,
    random_bytes: Callable[[int], bytes],
) -> bytearray | None:
    """Build an initiation (macs zero) and move `handshake` to CREATED_INITIATION."""
    if handshake.precomputed_static_static == ZERO_KEY:
        return None
    ck = INITIAL_CHAINING_KEY
    h = _mix_hash(INITIAL_HASH, handshake.remote_static)
    ephemeral_private = crypto.load_private_key(crypto.clamp_private_key(random_bytes(KEY_LEN)))
    ephemeral_public = crypto.public_bytes(ephemeral_private)
    ck = crypto.kdf1(ck, ephemeral_public)
    h = _mix_hash(h, ephemeral_public)
    try:
        ck, key = crypto.kdf2(ck, crypto.dh(ephemeral_private, handshake.remote_static))
    except crypto.ZeroSharedSecret:
        return None
    encrypted_static = crypto.aead_encrypt(key, 0, identity.public_key, h)
    h = _mix_hash(h, encrypted_static)
    ck, key = crypto.kdf2(ck, handshake.precomputed_static_static)
    encrypted_timestamp = crypto.aead_encrypt(key, 0, tai64n(wall_time), h)
    h = _mix_hash(h, encrypted_timestamp)

    handshake.chaining_key = ck
    handshake.hash = h
    handshake.local_ephemeral = ephemeral_private
    handshake.local_index = sender_index
    handshake.state = HandshakeState.CREATED_INITIATION
    return bytearray(
        INITIATION.pack(
            MESSAGE_HANDSHAKE_INITIATION,
            sender_index,
            ephemeral_public,
            encrypted_static,
            encrypted_timestamp,
            bytes(16),
            bytes(16),
        )
    )


@dataclass(frozen=True)
class ReceivedInitiation:
    """An initiation whose static key decrypted: who sent it, and the state to continue from."""

    remote_static: bytes
    sender_index: int
    remote_ephemeral: bytes
    encrypted_timestamp: bytes
    chaining_key: bytes = field(repr=False)
    hash: bytes = field(repr=False)


def open_initiation(identity: StaticIdentity, message: bytes) -> ReceivedInitiation | None:
    """First half of consuming an initiation: learn the initiator's static key."""
    _, sender, ephemeral, encrypted_static, encrypted_timestamp, _, _ = INITIATION.unpack(message)
    h = _mix_hash(_mix_hash(INITIAL_HASH, identity.public_key), ephemeral)
    ck = crypto.kdf1(INITIAL_CHAINING_KEY, ephemeral)
    try:
        ck, key = crypto.kdf2(ck, crypto.dh(identity.key, ephemeral))
        remote_static = crypto.aead_decrypt(key, 0, encrypted_static, h)
    except (crypto.ZeroSharedSecret, crypto.InvalidTag):
        return None
    h = _mix_hash(h, encrypted_static)
    return ReceivedInitiation(remote_static, sender, ephemeral, encrypted_timestamp, ck, h)


class InitiationRejected(Exception):
    """Why an authenticated-looking initiation was refused (named for the drop counter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def accept_initiation(handshake: Handshake, received: ReceivedInitiation, now: float) -> None:
    """Second half: decrypt the timestamp, apply replay and flood rules, then commit state.

    Raises InitiationRejected("handshake_failed" | "handshake_replay" | "handshake_flood").
    """
    if handshake.precomputed_static_static == ZERO_KEY:
        raise InitiationRejected("handshake_failed")
    ck, key = crypto.kdf2(received.chaining_key, handshake.precomputed_static_static)
    try:
        timestamp = crypto.aead_decrypt(key, 0, received.encrypted_timestamp, received.hash)
    except crypto.InvalidTag as exc:
        raise InitiationRejected("handshake_failed") from exc
    if timestamp <= handshake.latest_timestamp:
        raise InitiationRejected("handshake_replay")
    last = handshake.last_initiation_consumption
    if last is not None and now < last + HANDSHAKE_INITIATION_RATE:
        raise InitiationRejected("handshake_flood")

    handshake.hash = _mix_hash(received.hash, received.encrypted_timestamp)
    handshake.chaining_key = ck
    handshake.remote_index = received.sender_index
    handshake.remote_ephemeral = received.remote_ephemeral
    handshake.latest_timestamp = timestamp
    handshake.last_initiation_consumption = now
    handshake.state = HandshakeState.CONSUMED_INITIATION


def create_response(
    handshake: Handshake, sender_index: int, random_bytes: Callable[[int], bytes]
) -> bytearray | None:
    """Build a response (macs zero) to a consumed initiation; state -> CREATED_RESPONSE."""
    if handshake.state != HandshakeState.CONSUMED_INITIATION:
        return None
    ephemeral_private = crypto.load_private_key(crypto.clamp_private_key(random_bytes(KEY_LEN)))
    ephemeral_public = crypto.public_bytes(ephemeral_private)
    ck = crypto.kdf1(handshake.chaining_key, ephemeral_public)
    h = _mix_hash(handshake.hash, ephemeral_public)
    try:
        ck = crypto.kdf1(ck, crypto.dh(ephemeral_private, handshake.remote_ephemeral))
        ck = crypto.kdf1(ck, crypto.dh(ephemeral_private, handshake.remote_static))
    except crypto.ZeroSharedSecret:
        return None
    ck, tau, key = crypto.kdf3(ck, handshake.preshared_key)
    h = _mix_hash(h, tau)
    encrypted_nothing = crypto.aead_encrypt(key, 0, b"", h)
    h = _mix_hash(h, encrypted_nothing)

    handshake.chaining_key = ck
    handshake.hash = h
    handshake.local_ephemeral = ephemeral_private
    handshake.local_index = sender_index
    handshake.state = HandshakeState.CREATED_RESPONSE
    return bytearray(
        RESPONSE.pack(
            MESSAGE_HANDSHAKE_RESPONSE,
            sender_index,
            handshake.remote_index,
            ephemeral_public,
            encrypted_nothing,
            bytes(16),
            bytes(16),
        )
    )


def consume_response(identity: StaticIdentity, handshake: Handshake, message: bytes) -> bool:
    """Authenticate a response to our initiation; on success state -> CONSUMED_RESPONSE."""
    if handshake.state != HandshakeState.CREATED_INITIATION:
        return False
    _, sender, _, ephemeral, encrypted_nothing, _, _ = RESPONSE.unpack(message)
    ck = crypto.kdf1(handshake.chaining_key, ephemeral)
    h = _mix_hash(handshake.hash, ephemeral)
    if handshake.local_ephemeral is None:
        return False
    try:
        ck = crypto.kdf1(ck, crypto.dh(handshake.local_ephemeral, ephemeral))
        ck = crypto.kdf1(ck, crypto.dh(identity.key, ephemeral))
    except crypto.ZeroSharedSecret:
        return False
    ck, tau, key = crypto.kdf3(ck, handshake.preshared_key)
    h = _mix_hash(h, tau)
    try:
        crypto.aead_decrypt(key, 0, encrypted_nothing, h)
    except crypto.InvalidTag:
        return False
    handshake.chaining_key = ck
    handshake.hash = _mix_hash(h, encrypted_nothing)
    handshake.remote_ephemeral = ephemeral
    handshake.remote_index = sender
    handshake.state = HandshakeState.CONSUMED_RESPONSE
    return True


def derive_transport_keys(handshake: Handshake) -> tuple[bytes, bytes, bool]:
    """(send_key, receive_key, is_initiator) from a completed handshake; clears its secrets."""
    first, second = crypto.kdf2(handshake.chaining_key, b"")
    is_initiator = handshake.state == HandshakeState.CONSUMED_RESPONSE
    handshake.chaining_key = b""
    handshake.hash = b""
    handshake.local_ephemeral = None
    handshake.remote_ephemeral = b""
    if is_initiator:
        return first, second, True
    return second, first, False
