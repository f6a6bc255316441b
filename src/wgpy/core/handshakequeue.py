"""Handshake messages waiting for their costly part, apart from data, and "under load".

A handshake message costs at least one Curve25519 operation (~50 µs here, a whole handshake
~190 µs) where a data packet costs ~5 µs, and anyone who knows our public key can send
initiations with a valid mac1. So, as the kernel (a ring of MAX_QUEUED_INCOMING_HANDSHAKES)
and wireguard-go (a handshake channel and workers) do, a handshake that passed the cheap
checks waits here and the shell works through the queue after the data packets, a slice at a
time; beyond the bound new ones are dropped.

The device is under load while at least 1/8 of the queue waits, and for UNDER_LOAD_AFTER_TIME
after it last did (kernel receive.c wg_receive_handshake_packet), and also -- unlike the
references -- when as many handshakes as that arrived within one second. The kernel finishes
handshakes on every core, so a backlog is its sign of trouble; here they share one thread with
the data, and 5,000 initiations a second that never pile up would still cost that thread a
quarter of its time (~55 µs each). Past 512 a second (~3 % of a core) the device asks for
cookies instead. Under load a handshake needs a valid mac2 (else it gets a cookie reply) and
passes the per-source rate limiter, which keeps the queue short.

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
# The arrival-rate rule counts handshakes per window of this many seconds.
ARRIVAL_WINDOW = 1.0


class HandshakeQueue(Generic[T]):
    """A bounded FIFO of handshake messages that also keeps the under-load state."""

    def __init__(self, capacity: int = MAX_QUEUED_INCOMING_HANDSHAKES,
                 under_load_depth: int = UNDER_LOAD_QUEUE_LENGTH) -> None:
        self.capacity = capacity
        # Under load from this many waiting, or arrived within a second (tests set 0: always
        # under load; more than they send: never).
        self.under_load_depth = under_load_depth
        self._waiting: deque[T] = deque()
        self._last_under_load: float | None = None
        self._window_start = float("-inf")
        self._arrivals = 0

    def under_load(self, now: float) -> bool:
        """Asked once per arriving handshake: whether `under_load_depth` wait or arrived in the
        current one-second window, now or within UNDER_LOAD_AFTER_TIME."""
        if now - self._window_start >= ARRIVAL_WINDOW:
            self._window_start = now
            self._arrivals = 0
        self._arrivals += 1
        if len(self._waiting) >= self.under_load_depth or self._arrivals > self.under_load_depth:
            self._last_under_load = now
            return True
        last = self._last_under_load
        return last is not None and now - last < UNDER_LOAD_AFTER_TIME

    def loaded(self, now: float) -> bool:
        """Whether the device was under load within UNDER_LOAD_AFTER_TIME, without counting an
        arrival (for a check that may end before a handshake is known to be one)."""
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
