"""Per-peer protocol timers (whitepaper section 6) on one deadline heap.

The core never sleeps: it records deadlines and the I/O shell calls `Device.tick(now)` at
`next_deadline()`. Timers are re-armed on nearly every packet (keepalive, persistent
keepalive), so the heap is lazy: arming a timer later than an entry already queued for it
pushes nothing, and a popped entry whose timer has since moved is re-queued or discarded.
"""

import heapq
import itertools
from collections.abc import Iterator
from enum import IntEnum


class Timer(IntEnum):
    RETRANSMIT_HANDSHAKE = 0  # REKEY_TIMEOUT + jitter after sending an initiation
    SEND_KEEPALIVE = 1  # KEEPALIVE_TIMEOUT after receiving data we have not answered
    NEW_HANDSHAKE = 2  # KEEPALIVE_TIMEOUT + REKEY_TIMEOUT after sending unanswered data
    ZERO_KEY_MATERIAL = 3  # 3 * REJECT_AFTER_TIME after a session is derived
    PERSISTENT_KEEPALIVE = 4  # the configured interval after any authenticated packet


TIMER_COUNT = len(Timer)


class PeerTimers:
    """One peer's deadlines (None = not pending) and the earliest heap entry for each."""

    __slots__ = ("deadlines", "owner", "queued")

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.deadlines: list[float | None] = [None] * TIMER_COUNT
        self.queued: list[float | None] = [None] * TIMER_COUNT

    def pending(self, timer: Timer) -> bool:
        return self.deadlines[timer] is not None

    def cancel(self, timer: Timer) -> None:
        self.deadlines[timer] = None

    def cancel_all(self) -> None:
        self.deadlines = [None] * TIMER_COUNT


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, PeerTimers, int]] = []
        self._sequence = itertools.count()

    def arm(self, timers: PeerTimers, timer: Timer, deadline: float) -> None:
        """Set (or move) `timer` of one peer to fire at `deadline`."""
        timers.deadlines[timer] = deadline
        queued = timers.queued[timer]
        if queued is None or deadline < queued:
            timers.queued[timer] = deadline
            heapq.heappush(self._heap, (deadline, next(self._sequence), timers, timer))

    def expired(self, now: float) -> Iterator[tuple[PeerTimers, Timer]]:
        """Yield each timer due at `now`, marking it no longer pending before it runs."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, timers, timer = heapq.heappop(heap)
            if timers.queued[timer] == when:
                timers.queued[timer] = None
            deadline = timers.deadlines[timer]
            if deadline is None:
                continue
            if deadline > now:
                self.arm(timers, Timer(timer), deadline)
                continue
            timers.deadlines[timer] = None
            yield timers, Timer(timer)

    def next_deadline(self) -> float | None:
        """The earliest time worth waking for (may be a stale entry: waking early is harmless)."""
        heap = self._heap
        while heap:
            when, _, timers, timer = heap[0]
            if timers.deadlines[timer] is not None:
                return when
            heapq.heappop(heap)
            if timers.queued[timer] == when:
                timers.queued[timer] = None
        return None
