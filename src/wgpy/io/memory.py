"""In-memory TUN devices and UDP binds for the loop (wireguard-go's tun/tuntest and conn/bindtest).

A ChannelTun is an interface whose packets a test injects and collects; a ChannelNetwork joins
ChannelBinds by port, as loopback would, and gives a datagram to the bind's lane for its
sender (a ChannelLane) when there is one, as the kernel gives it to a connected socket.
All signal readiness through an eventfd, so the real loop (loop.py) sleeps in epoll on them
exactly as on a TUN fd and a UDP socket: its batching, control replies, link changes,
lanes and rebinding run without root, in milliseconds, with two Tunnels back to back in one
process. Safe to feed from a test thread while the loop runs.
"""

import contextlib
import errno
import os
import queue
import socket
import threading
from collections import deque
from collections.abc import Sequence

from wgpy.core.peer import Endpoint
from wgpy.io.protocols import ControlMessage, Received
from wgpy.io.tun import InterfaceGone
from wgpy.io.udp import IP_PKTINFO


class _Signal:
    """An eventfd that is readable while something waits (epoll is level-triggered)."""

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def set(self) -> None:
        os.eventfd_write(self.fd, 1)

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class ChannelLinks:
    """Link events of a ChannelTun: readable after each change of its state."""

    def __init__(self) -> None:
        self._signal = _Signal()
        self._changed = False

    def announce(self) -> None:
        self._changed = True
        self._signal.set()

    def fileno(self) -> int:
        return self._signal.fd

    def drain(self) -> bool:
        self._signal.clear()
        changed, self._changed = self._changed, False
        return changed

    def close(self) -> None:
        self._signal.close()


class ChannelTun:
    """A TUN interface in memory: `inject` hands it a packet from the kernel, `written`
    receives what the loop delivers; `set_up`, `set_mtu` and `delete` act as `ip link` would."""

    def __init__(self, name: str = "memtun0", mtu: int = 1420, up: bool = True) -> None:
        self.name = name
        self._signal = _Signal()
        self.fd = self._signal.fd
        self.malformed_reads = 0
        self.written: queue.Queue[bytes] = queue.Queue()
        self.refuse_writes = False  # a kernel refusing every packet (tun_write_failed)
        self._inbound: deque[bytes] = deque()
        self._up = up
        self._mtu = mtu
        self._gone = False
        self._links = ChannelLinks()

    # what a test does

    def inject(self, packet: bytes) -> None:
        self._inbound.append(packet)
        self._signal.set()

    def set_up(self, up: bool) -> None:
        self._up = up
        self._links.announce()

    def set_mtu(self, mtu: int) -> None:
        self._mtu = mtu
        self._links.announce()

    def take(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """The next `count` packets the loop delivered (queue.Empty if they do not come)."""
        return [self.written.get(timeout=timeout) for _ in range(count)]

    def delete(self) -> None:
        self._gone = True
        self._signal.set()

    # the TunDevice protocol

    def read_batch(self, limit: int) -> list[bytes]:
        if self._gone:
            raise InterfaceGone(self.name)
        self._signal.clear()
        packets: list[bytes] = []
        while self._inbound and len(packets) < limit:
            packets.append(self._inbound.popleft())
        if self._inbound:
            self._signal.set()
        return packets

    def write_batch(self, packets: Sequence[bytes]) -> int:
        if self._gone:
            raise InterfaceGone(self.name)
        if self.refuse_writes:
            return len(packets)
        for packet in packets:
            self.written.put(bytes(packet))
        return 0

    def waiting(self) -> bool:
        return bool(self._inbound)

    def is_up(self) -> bool:
        return self._up

    def mtu(self) -> int | None:
        return self._mtu

    def link_events(self) -> ChannelLinks:
        return self._links

    def close(self) -> None:
        self._signal.close()


class ChannelNetwork:
    """Binds on one host address, reachable from each other by port (as on loopback)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._binds: dict[int, ChannelBind] = {}
        self._lanes: dict[tuple[int, Endpoint], ChannelLane] = {}
        self._lock = threading.Lock()
        self._next_port = 40000

    def open(self, port: int, fwmark: int) -> "ChannelBind":
        """A BindOpener: port 0 picks a free one; a taken port is EADDRINUSE."""
        with self._lock:
            if port == 0:
                while self._next_port in self._binds:
                    self._next_port += 1
                port = self._next_port
            elif port in self._binds:
                raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
            bind = ChannelBind(self, port, fwmark)
            self._binds[port] = bind
            return bind

    def endpoint(self, bind: "ChannelBind") -> Endpoint:
        return self.host, bind.port

    def deliver(self, data: bytes, source: Endpoint, destination: Endpoint) -> bool:
        """Carry one datagram; False when nothing listens there (a failed send)."""
        with self._lock:
            if destination[0] != self.host:
                return False
            receiver: _Inbox | None = self._lanes.get((destination[1], source))
            if receiver is None:
                receiver = self._binds.get(destination[1])
        if receiver is None:
            return False
        receiver.arrive(data, source)
        return True

    def add_lane(self, lane: "ChannelLane") -> None:
        with self._lock:
            self._lanes[lane.bind.port, lane.endpoint] = lane

    def remove_lane(self, lane: "ChannelLane") -> None:
        with self._lock:
            if self._lanes.get((lane.bind.port, lane.endpoint)) is lane:
                del self._lanes[lane.bind.port, lane.endpoint]

    def forget(self, bind: "ChannelBind") -> None:
        with self._lock:
            if self._binds.get(bind.port) is bind:
                del self._binds[bind.port]


class _Inbox:
    """Datagrams waiting to be received, each with a pktinfo naming `host`; `received`
    counts the receives that returned one."""

    def __init__(self, host: str) -> None:
        self.pktinfo: ControlMessage = (socket.IPPROTO_IP, IP_PKTINFO, socket.inet_aton(host))
        self._inbox: deque[tuple[bytes, Endpoint]] = deque()
        self._signal = _Signal()
        self.received = 0
        self.closed = False

    def arrive(self, data: bytes, source: Endpoint) -> None:
        self._inbox.append((data, source))
        self._signal.set()

    def fileno(self) -> int:
        return self._signal.fd

    def receive(self) -> Received | None:
        self._signal.clear()
        if not self._inbox:
            return None
        data, source = self._inbox.popleft()
        if self._inbox:
            self._signal.set()
        self.received += 1
        return memoryview(data), len(data), source, self.pktinfo

    def waiting(self) -> bool:
        return bool(self._inbox)

    def pending(self) -> int:
        """How many datagrams wait (for a test to know they all arrived)."""
        return len(self._inbox)


class ChannelLane(_Inbox):
    """A bind's lane for one endpoint: the network hands it that endpoint's datagrams."""

    def __init__(self, bind: "ChannelBind", endpoint: Endpoint) -> None:
        super().__init__(bind.network.host)
        self.bind = bind
        self.endpoint = endpoint

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bind.network.remove_lane(self)
            self._signal.close()


class ChannelBind(_Inbox):
    """A UDP socket on a ChannelNetwork. Each datagram arrives with a pktinfo naming the
    address it was sent to; `sources` holds what the loop made sticky (remember_source),
    `replies` what it sent once from an arrival address (reply_once), `sent` all it sent,
    `lanes` the lanes it opened (`refuse_lanes`: the kernel refuses them)."""

    gso = False
    gro = False

    def __init__(self, network: ChannelNetwork, port: int, fwmark: int) -> None:
        super().__init__(network.host)
        self.network = network
        self.port = port
        self.fwmark = fwmark
        self.sources: dict[Endpoint, ControlMessage] = {}
        self.replies: list[tuple[Endpoint, bytes]] = []
        self.sent: list[tuple[Endpoint, bytes]] = []
        self.lanes: list[ChannelLane] = []
        self.refuse_lanes = False

    # the Bind protocol

    def send_batch(self, batch: list[tuple[Endpoint, bytes]]) -> int:
        failures = 0
        for endpoint, datagram in batch:
            self.sent.append((endpoint, datagram))
            if not self.network.deliver(datagram, self.network.endpoint(self), endpoint):
                failures += 1
        return failures

    def remember_source(self, endpoint: Endpoint, pktinfo: ControlMessage) -> None:
        self.sources[endpoint] = pktinfo

    def reply_once(self, endpoint: Endpoint, data: bytes, pktinfo: ControlMessage) -> None:
        self.replies.append((endpoint, data))
        self.sent.append((endpoint, data))
        if not self.network.deliver(data, self.network.endpoint(self), endpoint):
            raise OSError(errno.ECONNREFUSED, "nothing listens there")

    def open_lane(self, endpoint: Endpoint, pktinfo: ControlMessage) -> ChannelLane:
        if self.refuse_lanes:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        lane = ChannelLane(self, endpoint)
        self.lanes.append(lane)
        self.network.add_lane(lane)
        return lane

    def route_changed(self) -> None:
        """(One host address, no routes: every source stays as it is.)"""

    def set_fwmark(self, fwmark: int) -> None:
        self.fwmark = fwmark

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.network.forget(self)
            self._signal.close()
