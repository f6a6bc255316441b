"""Lanes: a socket of its own per authenticated endpoint, so data never queues behind a flood.

Anyone who knows our public key can fill the listening socket with handshake initiations
faster than one Python thread can read them (a sender on the bench machine reaches 150,000
a second). When everything arrives on one socket, an established peer's data then waits
behind the flood in the same buffer and is dropped with it when the buffer overflows: TCP
through the tunnel collapses however cheap each refused initiation is made. The kernel
module has no socket buffer to share (its receive hook sorts handshakes onto their own
bounded queue before anything waits); wireguard-go reads one socket as wgpyd did.

So once a datagram from an endpoint authenticates (a data packet or a finished handshake),
the loop opens a lane for it: a socket bound to our port and to the local address the
endpoint sends to, connected to the endpoint (Bind.open_lane; the kernel delivers each
datagram to the socket that matches it most exactly). From then on that endpoint's
datagrams, data and handshakes alike, arrive on the lane, which the loop reads before
the listening socket; the listening socket keeps new and roaming peers and whatever an
attacker sends, and the loop reads it with a bounded share per wake-up while lanes carry
traffic. Only an endpoint that proved it holds a session key gets a lane: a flood cannot
make lanes, or push them out.

A peer that roams authenticates from its new endpoint on the listening socket and gets a
new lane; lanes that have carried nothing authenticated for LANE_IDLE seconds (an endpoint
left behind, a peer removed or gone quiet) are closed, and a closed lane's endpoint is back
on the listening socket, where it gets a lane again at its next authenticated datagram.
At most MAX_LANES are open (and never more than a quarter of the file descriptors the
process may open); endpoints beyond that share the listening socket as before.
"""

import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass

from wgpy.core.constants import REJECT_AFTER_TIME
from wgpy.core.peer import Endpoint
from wgpy.io.protocols import Bind, ControlMessage, Lane

log = logging.getLogger("wgpy.lanes")

# A session's keys are rejected after REJECT_AFTER_TIME: a lane that carried nothing
# authenticated for that long serves a peer that is gone, moved or idle.
LANE_IDLE = REJECT_AFTER_TIME
SWEEP_INTERVAL = 10.0
MAX_LANES = 4096


def lane_limit() -> int:
    """MAX_LANES, or a quarter of the process's file descriptor limit if that is lower."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_LANES
    return max(0, min(MAX_LANES, soft // 4))


@dataclass(slots=True)
class _Open:
    lane: Lane
    endpoint: Endpoint
    pktinfo: ControlMessage  # the arrival it was opened for (its local address)
    seen: float  # when a datagram on it last authenticated


class Lanes:
    """The open lanes of one bind, by endpoint and by file descriptor (for the loop's epoll:
    `watch(fd)` and `unwatch(fd)` are called as lanes open and close)."""

    def __init__(self, watch: Callable[[int], None], unwatch: Callable[[int], None],
                 limit: int | None = None) -> None:
        self._watch = watch
        self._unwatch = unwatch
        self.limit = lane_limit() if limit is None else limit
        self._by_endpoint: dict[Endpoint, _Open] = {}
        self.by_fd: dict[int, _Open] = {}
        self._next_sweep = 0.0
        self.refused = 0  # lanes the kernel would not open (counted, logged once)

    def __len__(self) -> int:
        return len(self._by_endpoint)

    def endpoints(self) -> list[Endpoint]:
        return list(self._by_endpoint)

    def authenticated(self, bind: Bind, endpoint: Endpoint, pktinfo: ControlMessage | None,
                      now: float) -> None:
        """A datagram from `endpoint`, received at the local address `pktinfo` names,
        authenticated: open its lane, unless it has one or none may be. An endpoint whose
        lane is bound to another local address (it now sends to another of ours) gets a
        new one."""
        known = self._by_endpoint.get(endpoint)
        if known is not None:
            known.seen = now
            if pktinfo is None or pktinfo == known.pktinfo:
                return
            self._close(known)
        if pktinfo is None or len(self._by_endpoint) >= self.limit:
            return
        try:
            lane = bind.open_lane(endpoint, pktinfo)
        except OSError as exc:
            if not self.refused:
                log.info("no lane for %s:%d (%s); it stays on the listening socket",
                         endpoint[0], endpoint[1], exc)
            self.refused += 1
            return
        if lane is None:
            return
        entry = _Open(lane, endpoint, pktinfo, now)
        self._by_endpoint[endpoint] = entry
        self.by_fd[lane.fileno()] = entry
        self._watch(lane.fileno())

    def seen(self, fd: int, now: float) -> None:
        """A datagram on lane `fd` authenticated."""
        self.by_fd[fd].seen = now

    def sweep(self, now: float) -> None:
        """Close lanes idle for LANE_IDLE (checked every SWEEP_INTERVAL)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        for entry in [e for e in self._by_endpoint.values() if now - e.seen >= LANE_IDLE]:
            self._close(entry)

    def close_all(self) -> None:
        """Every lane (the port or the mark changed, the loop ends)."""
        for entry in list(self._by_endpoint.values()):
            self._close(entry)

    def _close(self, entry: _Open) -> None:
        fd = entry.lane.fileno()
        self._unwatch(fd)
        del self.by_fd[fd]
        del self._by_endpoint[entry.endpoint]
        entry.lane.close()
