"""What the loop needs of a TUN device and of a UDP bind, as the core's DeviceHost is for UAPI.

The loop (loop.py) is written against these, not against Tun, LinkEvents and UdpSocket: the
daemon passes the real ones, and tests pass the in-memory channel devices of memory.py (as
wireguard-go's tun/tuntest and conn/bindtest), so batching, control replies, link state and
rebinding run without root in milliseconds. Every readiness is a file descriptor, because the
loop sleeps in epoll.
"""

from collections.abc import Callable, Sequence
from typing import Protocol

from wgpy.core.peer import Endpoint

# A control message as recvmsg returns it and sendmsg takes it: (level, type, data).
ControlMessage = tuple[int, int, bytes]
# One receive: (data, segment size, sockaddr, pktinfo); see UdpSocket.receive.
Received = tuple[memoryview, int, tuple[object, ...], ControlMessage | None]


class LinkWatch(Protocol):
    """Readable when a link changed; `drain` says whether the change may concern ours."""

    def fileno(self) -> int: ...

    def drain(self) -> bool: ...

    def close(self) -> None: ...


class TunDevice(Protocol):
    """The interface's packet side and its link state (tun.py)."""

    name: str
    fd: int
    malformed_reads: int  # reads that asked for an offload we never enabled

    def read_batch(self, limit: int) -> list[bytes]:
        """Up to `limit` packets; raises InterfaceGone when the interface was deleted."""
        ...

    def write_batch(self, packets: Sequence[bytes]) -> int:
        """Write packets; returns how many writes failed."""
        ...

    def waiting(self) -> bool: ...

    def is_up(self) -> bool: ...

    def mtu(self) -> int | None: ...

    def link_events(self) -> LinkWatch: ...

    def close(self) -> None: ...


class Lane(Protocol):
    """A socket receiving one authenticated endpoint's datagrams (udp.py UdpLane, lanes.py)."""

    def fileno(self) -> int: ...

    def receive(self) -> Received | None: ...

    def waiting(self) -> bool: ...

    def close(self) -> None: ...


class Bind(Protocol):
    """The bound UDP socket (udp.py)."""

    gso: bool
    gro: bool

    @property
    def port(self) -> int: ...

    def fileno(self) -> int: ...

    def receive(self) -> Received | None: ...

    def waiting(self) -> bool: ...

    def send_batch(self, batch: list[tuple[Endpoint, bytes]]) -> int:
        """Send datagrams; returns how many failed."""
        ...

    def remember_source(self, endpoint: Endpoint, pktinfo: ControlMessage) -> None:
        """Send to `endpoint` from the local address in `pktinfo` from now on."""
        ...

    def reply_once(self, endpoint: Endpoint, data: bytes, pktinfo: ControlMessage) -> None:
        """Send one datagram from the address in `pktinfo`, remembering nothing."""
        ...

    def open_lane(self, endpoint: Endpoint, pktinfo: ControlMessage) -> Lane | None:
        """A socket of its own for `endpoint`'s datagrams to the address in `pktinfo`; None
        where lanes do not apply; OSError if the kernel refuses."""
        ...

    def route_changed(self) -> None:
        """The host's routes changed: check again that the sticky sources still apply."""
        ...

    def set_fwmark(self, fwmark: int) -> None: ...

    def close(self) -> None: ...


# Opens a bind on (port, fwmark); port 0 picks a free one; OSError (EADDRINUSE) if taken.
BindOpener = Callable[[int, int], Bind]
