"""The protocol's timers (whitepaper section 6): every rule in this one file.

The five per-peer timers, when the events below arm or cancel them, and what their expiry does
(as the Linux module's timers.c opens; the hook names follow wireguard-go's timers.go):

timer                 rule (hooks are the functions below)
--------------------  ---------------------------------------------------------------------------
RETRANSMIT_HANDSHAKE  armed:     handshake_initiated, for REKEY_TIMEOUT + jitter
                      cancelled: handshake_complete
                      expiry:    resend the initiation; after MAX_TIMER_HANDSHAKES retries give
                                 up: drop the staged packets (handshake_timeout), cancel
                                 SEND_KEEPALIVE, arm ZERO_KEY_MATERIAL unless pending
SEND_KEEPALIVE        armed:     data_received, for KEEPALIVE_TIMEOUT, unless pending (then
                                 one more keepalive is owed after it)
                      cancelled: any_authenticated_packet_sent (what we sent serves instead)
                      expiry:    send a keepalive; re-arm if one more is owed
NEW_HANDSHAKE         armed:     data_sent, for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter,
                                 unless pending
                      cancelled: any_authenticated_packet_received (the peer is alive)
                      expiry:    initiate a new handshake
ZERO_KEY_MATERIAL     armed:     session_derived, for 3 * REJECT_AFTER_TIME (again by each one)
                      expiry:    forget every session and staged packet of the peer
PERSISTENT_KEEPALIVE  armed:     any_authenticated_packet_traversal, for the configured
                                 interval when there is one
                      cancelled: persistent_keepalive_off
                      expiry:    send a keepalive

handshake_complete also resets the retry count and the last-minute flag and stamps the
handshake time `wg show` prints.

The core never sleeps: hooks record deadlines in a TimerQueue and the I/O shell calls
`Device.tick(now)` at `next_deadline()`, which dispatches each due timer through EXPIRY.
Timers are re-armed on nearly every packet (keepalive, persistent keepalive), so the heap is
lazy: arming a timer later than an entry already queued for it pushes nothing, and a popped
entry whose timer has since moved is re-queued or discarded.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from wgpy.core.constants import (
    KEEPALIVE_TIMEOUT,
    MAX_TIMER_HANDSHAKES,
    REJECT_AFTER_TIME,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
)
from wgpy.core.drops import Drop
from wgpy.core.events import PeerEvent, PeerEventKind

if TYPE_CHECKING:
    from wgpy.core.peer import Peer


class Timer(IntEnum):
    RETRANSMIT_HANDSHAKE = 0
    SEND_KEEPALIVE = 1
    NEW_HANDSHAKE = 2
    ZERO_KEY_MATERIAL = 3
    PERSISTENT_KEEPALIVE = 4


TIMER_COUNT = len(Timer)
# PeerTimers.deadlines holds each timer's deadline, then from QUEUED on its earliest heap entry.
QUEUED = TIMER_COUNT
_NOT_PENDING = (None,) * TIMER_COUNT
ZERO_KEY_MATERIAL_AFTER = REJECT_AFTER_TIME * 3
# The per-packet hooks name their timers through module globals: in Python 3.11 an enum member
# access (`Timer.X`) runs enum.property's Python code, ~12 µs each on an idle (cold) machine.
_RETRANSMIT_HANDSHAKE = Timer.RETRANSMIT_HANDSHAKE
_SEND_KEEPALIVE = Timer.SEND_KEEPALIVE
_NEW_HANDSHAKE = Timer.NEW_HANDSHAKE
_ZERO_KEY_MATERIAL = Timer.ZERO_KEY_MATERIAL
_PERSISTENT_KEEPALIVE = Timer.PERSISTENT_KEEPALIVE


class PeerTimers:
    """One peer's deadlines (None = not pending) and the earliest heap entry for each.

    It names its peer by public key, not by reference: the heap keeps a PeerTimers until its
    entries fire, and a reference back to the Peer would make a cycle (Peer -> PeerTimers ->
    Peer) that only Python's cyclic collector frees, and keep a removed peer alive meanwhile.
    The device looks the key up and checks the peer still has these timers.

    Both halves are one list (`deadlines[timer]`, `deadlines[QUEUED + timer]`): every object
    a peer holds is one more for each full collection to scan (50,000 peers, 50,000 lists)."""

    __slots__ = ("deadlines", "public_key")

    def __init__(self, public_key: bytes) -> None:
        self.public_key = public_key
        self.deadlines: list[float | None] = [None] * (2 * TIMER_COUNT)

    def pending(self, timer: Timer) -> bool:
        return self.deadlines[timer] is not None

    def cancel(self, timer: Timer) -> None:
        self.deadlines[timer] = None

    def cancel_all(self) -> None:
        self.deadlines[:TIMER_COUNT] = _NOT_PENDING


class TimerQueue:
    """Every peer's deadlines on one heap, and the jitter the handshake timers add."""

    def __init__(self, jitter_seed: int) -> None:
        self._heap: list[tuple[float, int, PeerTimers, int]] = []
        self._sequence = itertools.count()
        # Timer jitter is not secret; a seeded PRNG keeps it off the syscall path.
        self._jitter = random.Random(jitter_seed)

    def jitter(self) -> float:
        """Up to REKEY_TIMEOUT_JITTER_MAX, so that peers do not handshake in lockstep."""
        return self._jitter.random() * REKEY_TIMEOUT_JITTER_MAX

    def arm(self, timers: PeerTimers, timer: Timer, deadline: float) -> None:
        """Set (or move) `timer` of one peer to fire at `deadline`."""
        deadlines = timers.deadlines
        deadlines[timer] = deadline
        queued = deadlines[QUEUED + timer]
        if queued is None or deadline < queued:
            deadlines[QUEUED + timer] = deadline
            heapq.heappush(self._heap, (deadline, next(self._sequence), timers, timer))

    def expired(self, now: float) -> Iterator[tuple[PeerTimers, Timer]]:
        """Yield each timer due at `now`, marking it no longer pending before it runs."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, timers, timer = heapq.heappop(heap)
            deadlines = timers.deadlines
            if deadlines[QUEUED + timer] == when:
                deadlines[QUEUED + timer] = None
            deadline = deadlines[timer]
            if deadline is None:
                continue
            if deadline > now:
                self.arm(timers, Timer(timer), deadline)
                continue
            deadlines[timer] = None
            yield timers, Timer(timer)

    def next_deadline(self) -> float | None:
        """The earliest time worth waking for (may be a stale entry: waking early is harmless)."""
        heap = self._heap
        while heap:
            when, _, timers, timer = heap[0]
            deadlines = timers.deadlines
            if deadlines[timer] is not None:
                return when
            heapq.heappop(heap)
            if deadlines[QUEUED + timer] == when:
                deadlines[QUEUED + timer] = None
        return None


# ---------------------------------------------------------------------- event hooks


def data_sent(queue: TimerQueue, peer: Peer, now: float) -> None:
    """timersDataSent: if the peer does not answer our data, start a new handshake."""
    timers = peer.timers
    if timers.deadlines[_NEW_HANDSHAKE] is None:
        queue.arm(timers, _NEW_HANDSHAKE, now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + queue.jitter())


def data_received(queue: TimerQueue, peer: Peer, now: float) -> None:
    """timersDataReceived: answer data with a keepalive unless we send something first."""
    timers = peer.timers
    if timers.deadlines[_SEND_KEEPALIVE] is None:
        queue.arm(timers, _SEND_KEEPALIVE, now + KEEPALIVE_TIMEOUT)
    else:
        peer.need_another_keepalive = True


def any_authenticated_packet_sent(peer: Peer) -> None:
    """timersAnyAuthenticatedPacketSent: whatever we sent serves as the keepalive."""
    peer.timers.deadlines[_SEND_KEEPALIVE] = None


def any_authenticated_packet_received(peer: Peer) -> None:
    """timersAnyAuthenticatedPacketReceived: the peer is alive, no new handshake needed."""
    peer.timers.deadlines[_NEW_HANDSHAKE] = None


def any_authenticated_packet_traversal(queue: TimerQueue, peer: Peer, now: float) -> None:
    """timersAnyAuthenticatedPacketTraversal: push the persistent keepalive back."""
    interval = peer.persistent_keepalive_interval
    if interval:
        queue.arm(peer.timers, _PERSISTENT_KEEPALIVE, now + interval)


def handshake_initiated(queue: TimerQueue, peer: Peer, now: float) -> None:
    """timersHandshakeInitiated: retransmit unless a response comes in time."""
    queue.arm(peer.timers, _RETRANSMIT_HANDSHAKE, now + REKEY_TIMEOUT + queue.jitter())


def handshake_complete(peer: Peer, wall_now: float) -> None:
    """timersHandshakeComplete: stop retransmitting; `wall_now` is what `wg show` prints."""
    peer.timers.deadlines[_RETRANSMIT_HANDSHAKE] = None
    peer.handshake_attempts = 0
    peer.sent_last_minute_handshake = False
    peer.last_handshake_wall = wall_now


def session_derived(queue: TimerQueue, peer: Peer, now: float) -> None:
    """timersSessionDerived: no session key outlives 3 * REJECT_AFTER_TIME."""
    queue.arm(peer.timers, _ZERO_KEY_MATERIAL, now + ZERO_KEY_MATERIAL_AFTER)


def persistent_keepalive_off(peer: Peer) -> None:
    """The interval was set to 0."""
    peer.timers.deadlines[_PERSISTENT_KEEPALIVE] = None


def stopped(peer: Peer) -> None:
    """timersStop: the interface went down or the peer was removed."""
    peer.timers.cancel_all()


# ---------------------------------------------------------------------- expiry


class TimerHost(Protocol):
    """What an expiring timer asks of the device that owns the peer."""

    timers: TimerQueue
    drops: dict[str, int]
    events: deque[PeerEvent]

    def send_initiation(self, peer: Peer, now: float, *, is_retry: bool = False) -> None: ...

    def send_keepalive(self, peer: Peer, now: float) -> None: ...

    def zero_and_flush(self, peer: Peer) -> None: ...


def expired_retransmit_handshake(host: TimerHost, peer: Peer, now: float) -> None:
    """expiredRetransmitHandshake: try again, or give up after MAX_TIMER_HANDSHAKES."""
    if peer.handshake_attempts > MAX_TIMER_HANDSHAKES:
        # Give up: stop asking, drop what waited, and zero keys later.
        timers = peer.timers
        timers.cancel(_SEND_KEEPALIVE)
        host.drops[Drop.HANDSHAKE_TIMEOUT] += sum(1 for packet in peer.staged or () if packet)
        host.events.append(PeerEvent(PeerEventKind.HANDSHAKE_GAVE_UP, peer.public_key,
                                     f"after {MAX_TIMER_HANDSHAKES + 2} attempts"))  # (kernel's)
        peer.staged = None
        if not timers.pending(_ZERO_KEY_MATERIAL):
            host.timers.arm(timers, _ZERO_KEY_MATERIAL, now + ZERO_KEY_MATERIAL_AFTER)
    else:
        peer.handshake_attempts += 1
        host.send_initiation(peer, now, is_retry=True)


def expired_send_keepalive(host: TimerHost, peer: Peer, now: float) -> None:
    """expiredSendKeepalive."""
    host.send_keepalive(peer, now)
    if peer.need_another_keepalive:
        peer.need_another_keepalive = False
        host.timers.arm(peer.timers, _SEND_KEEPALIVE, now + KEEPALIVE_TIMEOUT)


def expired_new_handshake(host: TimerHost, peer: Peer, now: float) -> None:
    """expiredNewHandshake."""
    host.send_initiation(peer, now)


def expired_zero_key_material(host: TimerHost, peer: Peer, now: float) -> None:
    """expiredZeroKeyMaterial."""
    host.zero_and_flush(peer)


def expired_persistent_keepalive(host: TimerHost, peer: Peer, now: float) -> None:
    """expiredPersistentKeepalive (the interval may have been turned off since)."""
    if peer.persistent_keepalive_interval:
        host.send_keepalive(peer, now)


EXPIRY: dict[Timer, Callable[[TimerHost, Peer, float], None]] = {
    Timer.RETRANSMIT_HANDSHAKE: expired_retransmit_handshake,
    Timer.SEND_KEEPALIVE: expired_send_keepalive,
    Timer.NEW_HANDSHAKE: expired_new_handshake,
    Timer.ZERO_KEY_MATERIAL: expired_zero_key_material,
    Timer.PERSISTENT_KEEPALIVE: expired_persistent_keepalive,
}
