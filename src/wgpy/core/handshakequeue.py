"""Handshake messages waiting for their costly part, apart from data, and "under load".

A handshake message costs at least one Curve25519 operation (~50 µs here, a whole handshake
~190 µs) where a data packet costs ~5 µs, and anyone who knows our public key can send
initiations with a valid mac1. So, as the kernel (a ring of MAX_QUEUED_INCOMING_HANDSHAKES)
and wireguard-go (a handshake channel and workers) do, a handshake that passed the cheap
checks waits here and the shell works through the queue after the data packets, a slice at a
time; beyond the bound new ones are dropped. The queue's depth says when the device is under
load: at least 1/8 full, and for UNDER_LOAD_AFTER_TIME after it last was (kernel receive.c
wg_receive_handshake_packet). Under load a handshake needs a valid mac2 (else it gets a cookie
reply) and passes the per-source rate limiter, which keeps the queue short.

Clock-free like the rest of the core: whoever asks passes `now`.
"""

from collections import deque
from typing import Generic, TypeVar

from wgpy.core.constants import (
    MAX_QUEUED_INCOMING_HANDSHAKES,
    UNDER_LOAD_AFTER_TIME,
    UNDER_LOAD_QUEUE_LENGTH,
)

T = TypeVar("T")


class HandshakeQueue(Generic[T]):
    """A bounded FIFO of handshake messages that also keeps the under-load state."""

    def __init__(self, capacity: int = MAX_QUEUED_INCOMING_HANDSHAKES,
                 under_load_depth: int = UNDER_LOAD_QUEUE_LENGTH) -> None:
        self.capacity = capacity
        # Depth from which the device is under load (tests set 0: always under load).
        self.under_load_depth = under_load_depth
        self._waiting: deque[T] = deque()
        self._last_under_load: float | None = None

    def under_load(self, now: float) -> bool:
        """At least `under_load_depth` waiting now, or so within UNDER_LOAD_AFTER_TIME."""
        if len(self._waiting) >= self.under_load_depth:
            self._last_under_load = now
            return True
        last = self._last_under_load
        return last is not None and now - last < UNDER_LOAD_AFTER_TIME

    def push(self, item: T) -> bool:
        """Queue `item`; False (and not queued) when the queue is full."""
        if len(self._waiting) >= self.capacity:
            return False
        self._waiting.append(item)
        return True

    def pop(self) -> T:
        """The oldest waiting item (IndexError when empty)."""
        return self._waiting.popleft()

    def clear(self) -> None:
        self._waiting.clear()

    def __len__(self) -> int:
        return len(self._waiting)
