"""Transport keypairs and the current / previous / next rotation (whitepaper section 5.4.6).

The initiator may use a new keypair as soon as it has the response. The responder keeps its new
keypair as `next` until the first authenticated data packet under it arrives, which proves the
initiator has it too (key confirmation); only then it becomes `current`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from wgpy.core.replay import ReplayWindow

if TYPE_CHECKING:  # peer.py imports this module
    from wgpy.core.peer import Peer


class Keypair:
    """One direction pair of transport keys with its counters; shared hot-path object."""

    __slots__ = (
        "created",
        "is_initiator",
        "local_index",
        "peer",
        "receive",
        "remote_index",
        "replay",
        "send",
        "send_counter",
    )

    def __init__(
        self,
        send_key: bytes,
        receive_key: bytes,
        is_initiator: bool,
        local_index: int,
        remote_index: int,
        created: float,
        peer: Peer,
    ) -> None:
        self.send = ChaCha20Poly1305(send_key)
        self.receive = ChaCha20Poly1305(receive_key)
        self.send_counter = 0
        self.replay = ReplayWindow()
        self.created = created
        self.is_initiator = is_initiator
        self.local_index = local_index
        self.remote_index = remote_index
        self.peer = peer


class KeypairSlots:
    """A peer's three keypair slots and the reference's rotation rules."""

    __slots__ = ("current", "next", "previous")

    def __init__(self) -> None:
        self.current: Keypair | None = None
        self.previous: Keypair | None = None
        self.next: Keypair | None = None

    def install(self, keypair: Keypair) -> list[Keypair]:
        """Place a freshly derived keypair; returns the keypairs that are now discarded."""
        dropped: list[Keypair] = []
        if keypair.is_initiator:
            if self.next is not None:
                # An unconfirmed responder keypair is superseded; keep it as previous so
                # packets the peer already sent under it still decrypt.
                if self.previous is not None:
                    dropped.append(self.previous)
                if self.current is not None:
                    dropped.append(self.current)
                self.previous = self.next
                self.next = None
            else:
                if self.previous is not None:
                    dropped.append(self.previous)
                self.previous = self.current
            self.current = keypair
        else:
            if self.next is not None:
                dropped.append(self.next)
            if self.previous is not None:
                dropped.append(self.previous)
            self.next = keypair
            self.previous = None
        return dropped

    def confirm(self, keypair: Keypair) -> Keypair | bool | None:
        """Called for a keypair that authenticated data: promote `next` on first use.

        Returns False when nothing changed; otherwise the keypair dropped by the rotation
        (possibly None).
        """
        if keypair is not self.next:
            return False
        dropped = self.previous
        self.previous = self.current
        self.current = keypair
        self.next = None
        return dropped

    def all(self) -> list[Keypair]:
        return [kp for kp in (self.current, self.previous, self.next) if kp is not None]

    def clear(self) -> list[Keypair]:
        dropped = self.all()
        self.current = self.previous = self.next = None
        return dropped
