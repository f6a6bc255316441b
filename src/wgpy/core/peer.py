"""A peer as the device core sees it: keys, endpoint, sessions, timers and counters."""

from collections import deque

from wgpy.core.constants import MAX_STAGED_PACKETS
from wgpy.core.cookie import CookieGenerator
from wgpy.core.keypair import KeypairSlots
from wgpy.core.keys import key_to_base64
from wgpy.core.noise import Handshake
from wgpy.core.timers import PeerTimers

# An endpoint is (ip, port) as text and int; the shell unmaps what arrives over IPv4.
Endpoint = tuple[str, int]


class Peer:
    """Mutable per-peer state; the Device drives every transition."""

    def __init__(self, public_key: bytes) -> None:
        self.public_key = public_key
        self.handshake = Handshake(remote_static=public_key)
        self.keypairs = KeypairSlots()
        self.cookie_generator = CookieGenerator(public_key)
        self.timers = PeerTimers(public_key)
        self.endpoint: Endpoint | None = None
        self.persistent_keepalive_interval = 0
        # Packets waiting for a session; the oldest is dropped when full (reference rule).
        # None while none waits, which is most peers most of the time: an empty deque is
        # 760 bytes and one more object for every full collection to scan.
        self.staged: deque[bytes] | None = None
        self.rx_bytes = 0
        self.tx_bytes = 0
        # Wall-clock time of the last completed handshake, 0.0 for never (UAPI reports it).
        self.last_handshake_wall = 0.0
        self.last_sent_handshake: float | None = None
        self.handshake_attempts = 0
        self.need_another_keepalive = False
        self.sent_last_minute_handshake = False

    @property
    def preshared_key(self) -> bytes:
        return self.handshake.preshared_key

    def stage(self, packet: bytes) -> bool:
        """Queue a packet until a session exists; False if that pushed out the oldest one."""
        staged = self.staged
        if staged is None:
            staged = self.staged = deque()
        staged.append(packet)
        if len(staged) > MAX_STAGED_PACKETS:
            staged.popleft()
            return False
        return True

    def __repr__(self) -> str:  # never shows key material beyond the public key
        return f"Peer({key_to_base64(self.public_key)})"
