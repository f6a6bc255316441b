"""The UDP side: one dual-stack socket carrying IPv4 and IPv6 endpoints on ListenPort.

Endpoints inside wgpy are `(ip_text, port)`. What arrives over IPv4 is unmapped, so the core
and `wg show` see `192.0.2.1:51820` as the kernel and wireguard-go show it; an endpoint set as
`[::ffff:192.0.2.1]:51820` keeps that form (as they keep it) and is sent to over IPv4 all the
same.

Sticky source address, as the kernel module and wireguard-go keep it: every datagram arrives
with its destination address (IP_PKTINFO / IPV6_PKTINFO), and once a datagram from an endpoint
has authenticated, replies to that endpoint leave from the address it was sent to. On a host
with several addresses the kernel would otherwise pick the route's preferred source, and a
peer behind NAT or a stateful firewall would drop replies from an address it never contacted.
If that address goes away, the send fails (EINVAL, ENETUNREACH); the source is forgotten and
the kernel picks one again. As in the kernel module (socket.c send4), a source also holds
only while the route to the peer leaves through the interface it was learned on: it is
checked when learned and, after a route change (`route_changed`, from routewatch.py's
netlink events), again before its next send; when the route leaves elsewhere (a better route
through another link appeared) it is forgotten and the route's own source is used. That is
the kernel's rule for IPv4 only: an IPv6 source stays as long as it is ours (send6), in the
kernel and in wireguard-go alike.

Narrow paths: a UDP GSO segment is never fragmented, so the kernel refuses a GSO send whose
segments exceed the path MTU (EMSGSIZE; EINVAL on older kernels), where a plain send of the
same datagram would be fragmented (the socket keeps the default IP_PMTUDISC_WANT, as
wireguard-go does). A refused batch goes out one datagram per send, and the path's limit (the
kernel's path MTU to that endpoint, IP_MTU / IPV6_MTU, learned from the local link or from ICMP
frag-needed / Packet Too Big) is remembered for PATH_RECHECK_SECONDS so later batches skip
the refusal; after that GSO is tried again, in case the path has grown.
"""

import errno
import logging
import select
import socket
import struct
import time
from dataclasses import dataclass

from wgpy.core.peer import Endpoint
from wgpy.io.protocols import ControlMessage, Received
from wgpy.io.routewatch import RouteQuery

log = logging.getLogger("wgpy.udp")

SO_MARK = 36
UDP_SEGMENT = 103  # UDP GSO: one sendmsg carries many equal-size datagrams
UDP_GRO = 104  # UDP GRO: one recvmsg returns many coalesced datagrams
# The kernel's limits for one GSO send: UDP_MAX_SEGMENTS (64 on older kernels) and 64 KiB.
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000
_SEGMENT_SIZE = struct.Struct("H")
_GRO_SIZE = struct.Struct("i")
IP_PKTINFO = 8
IP_MTU = 14
IPV6_MTU = 24
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
_IN_PKTINFO = struct.Struct("=i4s4s")  # ipi_ifindex, ipi_spec_dst, ipi_addr
_IN6_PKTINFO = struct.Struct("=16si")  # ipi6_addr, ipi6_ifindex
_LINK_LOCAL = b"\xfe\x80"
_V4_MAPPED = bytes(10) + b"\xff\xff"
# SO_MARK is a u32; Python's int setsockopt passes a C int, which stops at 2**31 - 1.
_MARK = struct.Struct("=I")
RECEIVE_BUFFER_BYTES = 65536
_ANCILLARY = socket.CMSG_SPACE(_GRO_SIZE.size) + socket.CMSG_SPACE(_IN6_PKTINFO.size)
# How a send from a source address that is no longer ours fails (IPv6: EINVAL; IPv4, routed
# by source: ENETUNREACH).
_SOURCE_GONE = (errno.EINVAL, errno.EADDRNOTAVAIL, errno.ENETUNREACH)
# Socket buffers sized for bursts of full-size datagrams (SO_*BUFFORCE needs CAP_NET_ADMIN).
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
# How a GSO send whose segments do not fit the path MTU is refused (EINVAL before Linux 6.x).
_SEGMENT_TOO_BIG = (errno.EMSGSIZE, errno.EINVAL)
# How a kernel (or the route's device) without usable UDP GSO refuses it: GSO off for good.
_NO_GSO = (errno.EOPNOTSUPP, errno.ENOPROTOOPT, errno.EIO)
# How long a narrow path's limit is trusted before GSO is tried at full size again: a refusal
# costs one extra system call and no datagram, and paths widen (a route or link MTU change, the
# kernel's learned PMTU expiring after net.ipv4.route.mtu_expires).
PATH_RECHECK_SECONDS = 5.0
_IP_HEADER = 20
_IPV6_HEADER = 40
_UDP_HEADER = 8


def normalize(address: tuple) -> Endpoint:
    """A sockaddr from recvfrom as a core endpoint."""
    host, port = address[0], address[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, port


def _configure(sock: socket.socket, fwmark: int) -> None:
    """What every socket of a bind gets before its bind(): buffers, mark, arrival addresses."""
    for option, fallback in ((SO_RCVBUFFORCE, socket.SO_RCVBUF),
                             (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, fallback, SOCKET_BUFFER_BYTES)
    if fwmark:
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, _MARK.pack(fwmark))
    # On the dual-stack socket IPV6_PKTINFO covers IPv4 too (as ::ffff:a.b.c.d), both
    # ways; asking for IP_PKTINFO as well would make every IPv4 datagram carry both.
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)


def _open(port: int, fwmark: int) -> socket.socket:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        bind_address: tuple = ("::", port)
    except OSError:  # IPv6 disabled: fall back to IPv4 only
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bind_address = ("0.0.0.0", port)
    try:
        _configure(sock, fwmark)
        sock.bind(bind_address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def gso_supported(sock: socket.socket) -> bool:
    """Whether the kernel knows UDP_SEGMENT (Linux 4.18+), asked as wireguard-go asks."""
    try:
        sock.getsockopt(socket.SOL_UDP, UDP_SEGMENT)
    except OSError as exc:
        log.info("UDP GSO unavailable (%s); one datagram per send", exc)
        return False
    return True


def path_mtu(endpoint: Endpoint, fwmark: int = 0) -> int | None:
    """The kernel's path MTU towards `endpoint` (the route's, or what ICMP taught it), asked
    through a connected probe socket carrying the same fwmark (so that wg-quick's policy
    routing picks the same route as the tunnel's datagrams); None if it cannot tell."""
    host, port = normalize(endpoint)  # (an IPv4-mapped endpoint travels over IPv4)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            if fwmark:
                probe.setsockopt(socket.SOL_SOCKET, SO_MARK, _MARK.pack(fwmark))
            probe.connect((host, port))  # (a UDP connect sends nothing)
            if family == socket.AF_INET:
                return probe.getsockopt(socket.IPPROTO_IP, IP_MTU)
            return probe.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU)
    except OSError:
        return None


def largest_segment(endpoint: Endpoint, refused_size: int, fwmark: int = 0) -> int:
    """The largest datagram that can go in a GSO send to `endpoint` now that one of
    `refused_size` was refused: what the path MTU leaves after the IP and UDP headers, and in
    any case less than what was refused."""
    mtu = path_mtu(endpoint, fwmark)
    if mtu is None:
        return refused_size - 1
    header = _IPV6_HEADER if ":" in normalize(endpoint)[0] else _IP_HEADER
    return min(refused_size - 1, mtu - header - _UDP_HEADER)


@dataclass(slots=True)
class _Source:
    """A sticky source: what to send with, and where it was learned (for the route check)."""

    pktinfo: ControlMessage  # as received
    control: ControlMessage  # to send from its local address
    local: str  # that address, IPv4 unmapped
    ifindex: int  # the interface the datagram arrived on
    generation: int  # the route generation it was last checked in


def _learned(pktinfo: ControlMessage) -> tuple[str, int] | None:
    """The local address (IPv4 unmapped) and arrival interface a received `pktinfo` names."""
    _, kind, data = pktinfo
    if kind == IP_PKTINFO and len(data) >= _IN_PKTINFO.size:
        ifindex, _, local = _IN_PKTINFO.unpack_from(data)
        return socket.inet_ntop(socket.AF_INET, local), ifindex
    if kind == IPV6_PKTINFO and len(data) >= _IN6_PKTINFO.size:
        local, ifindex = _IN6_PKTINFO.unpack_from(data)
        if local[:12] == _V4_MAPPED:
            return socket.inet_ntop(socket.AF_INET, local[12:]), ifindex
        return socket.inet_ntop(socket.AF_INET6, local), ifindex
    return None


def _source_control(pktinfo: ControlMessage) -> ControlMessage | None:
    """The control message that sends from the local address a received `pktinfo` names;
    None when it is truncated."""
    level, kind, data = pktinfo
    if kind == IP_PKTINFO and len(data) >= _IN_PKTINFO.size:
        _, _, local = _IN_PKTINFO.unpack_from(data)
        return (level, kind, _IN_PKTINFO.pack(0, local, bytes(4)))
    if kind == IPV6_PKTINFO and len(data) >= _IN6_PKTINFO.size:
        local, interface = _IN6_PKTINFO.unpack_from(data)
        # Only a link-local source needs its interface; otherwise routing picks it.
        scope = interface if local[:2] == _LINK_LOCAL else 0
        return (level, kind, _IN6_PKTINFO.pack(local, scope))
    return None


class UdpSocket:
    """The bound socket plus the endpoint -> sockaddr cache used on the send path."""

    def __init__(self, port: int = 0, fwmark: int = 0, *, offload: bool = True) -> None:
        """`offload=False`: no UDP GSO sends and no GRO receives, one datagram per call."""
        self.sock = _open(port, fwmark)
        self.fwmark = fwmark
        self.dual_stack = self.sock.family == socket.AF_INET6
        self._addresses: dict[Endpoint, tuple] = {}
        # endpoint -> its sticky source (the address its authenticated datagrams came to)
        self._sources: dict[Endpoint, _Source] = {}
        # endpoint -> a PKTINFO whose source the route refused (the route back leaves by
        # another interface), not checked again until the routes change
        self._refused: dict[Endpoint, ControlMessage] = {}
        self._routes: RouteQuery | None = None  # opened at the first check
        self._route_generation = 0
        # endpoint -> (largest datagram a GSO send to it may carry, when to try larger again):
        # only endpoints behind a path narrower than the datagrams (see the module docstring)
        self._narrow: dict[Endpoint, tuple[int, float]] = {}
        # GSO: probed here (a kernel older than UDP_SEGMENT would ignore the control message
        # and send one giant datagram), and turned off for good by a send the kernel refuses
        self.gso = offload and gso_supported(self.sock)
        self.gro = False
        if offload:
            try:
                self.sock.setsockopt(socket.SOL_UDP, UDP_GRO, 1)
                self.gro = True
            except OSError:
                log.info("UDP GRO unavailable; one datagram per receive")
        self._waiting = select.poll()
        self._waiting.register(self.sock.fileno(), select.POLLIN)
        self._receive_buffer = bytearray(RECEIVE_BUFFER_BYTES)
        self._receive_view = memoryview(self._receive_buffer)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def fileno(self) -> int:
        return self.sock.fileno()

    def sockaddr(self, endpoint: Endpoint) -> tuple:
        address = self._addresses.get(endpoint)
        if address is None:
            host, port = endpoint
            if self.dual_stack and ":" not in host:
                host = "::ffff:" + host
            elif not self.dual_stack and host.startswith("::ffff:") and "." in host:
                host = host[7:]  # an IPv4-mapped endpoint on the IPv4-only fallback socket
            address = (host, port)
            if len(self._addresses) > 65536:
                self._addresses.clear()
            self._addresses[endpoint] = address
        return address

    def remember_source(self, endpoint: Endpoint, pktinfo: ControlMessage) -> None:
        """Reply to `endpoint` from the local address of `pktinfo` (a datagram from it has
        just authenticated), if the route back to it leaves where that datagram came in."""
        known = self._sources.get(endpoint)
        if known is not None and known.pktinfo == pktinfo:
            return
        if self._refused.get(endpoint) == pktinfo:
            return
        control = _source_control(pktinfo)
        learned = _learned(pktinfo)
        if control is None or learned is None:
            return  # truncated: keep whatever source we had
        source = _Source(pktinfo, control, *learned, self._route_generation)
        if not self._route_agrees(endpoint, source):
            self._sources.pop(endpoint, None)
            self._refused[endpoint] = pktinfo
            return
        if len(self._sources) > 65536:
            self._sources.clear()
            self._refused.clear()
        self._sources[endpoint] = source

    def route_changed(self) -> None:
        """The routes changed: check each sticky source again before its next send (lazily,
        so a route change costs one lookup per peer that still sends, not one per peer)."""
        self._route_generation += 1
        self._refused.clear()

    def _route_agrees(self, endpoint: Endpoint, source: _Source) -> bool:
        """The kernel's rule (send4): an IPv4 source stays while the route from it to the
        peer leaves by the interface it was learned on. A refused lookup (the address is no
        longer ours, or there is no route at all) ends it too: the send has nothing better
        to go by, and the source is learned again once the peer gets through. An IPv6 source
        only has to remain ours (send6 checks nothing else, nor does wireguard-go), which
        the send itself finds out."""
        if ":" in source.local:
            return True
        host = normalize(endpoint)[0].partition("%")[0]
        if self._routes is None:
            self._routes = RouteQuery()
        try:
            return self._routes.output_interface(host, source.local, self.fwmark) == \
                source.ifindex
        except OSError:
            return False

    def reply_once(self, endpoint: Endpoint, data: bytes, pktinfo: ControlMessage) -> None:
        """Answer from the local address `pktinfo` names, remembering nothing: for a reply to
        a datagram that did not authenticate (a cookie reply), which may not move our state
        but should still come back from where the sender sent it, or its NAT drops it."""
        address = self.sockaddr(endpoint)
        control = _source_control(pktinfo)
        if control is None or not self._send_from(data, address, [], control):
            self.sock.sendto(data, address)

    def _send_from(self, data: bytes, address: tuple, controls: list[ControlMessage],
                   source: ControlMessage) -> bool:
        """sendmsg from the local address `source` names; False if that address is gone (or
        no longer routes there), for the caller to let the kernel choose instead."""
        try:
            self.sock.sendmsg([data], [*controls, source], 0, address)
        except OSError as exc:
            if exc.errno not in _SOURCE_GONE:
                raise
            log.info("source address for %s:%d no longer usable (%s)", address[0], address[1],
                     exc)
            return False
        return True

    def _send(self, data: bytes, endpoint: Endpoint, controls: list[ControlMessage]) -> None:
        """One sendmsg, from the endpoint's sticky source if it has one."""
        address = self.sockaddr(endpoint)
        source = self._sources.get(endpoint)
        if source is not None and source.generation != self._route_generation:
            source.generation = self._route_generation
            if not self._route_agrees(endpoint, source):
                log.info("route to %s:%d now leaves by another interface; sending from its "
                         "own source", address[0], address[1])
                del self._sources[endpoint]
                self._refused[endpoint] = source.pktinfo
                source = None
        if source is not None:
            if self._send_from(data, address, controls, source.control):
                return
            del self._sources[endpoint]  # forgotten: the kernel chooses from now on
        if controls:
            self.sock.sendmsg([data], controls, 0, address)
        else:
            self.sock.sendto(data, address)

    def send_batch(self, batch: list[tuple[Endpoint, bytes]]) -> int:
        """Send datagrams, coalescing runs to one endpoint into UDP GSO sends.

        A run is consecutive datagrams to the same endpoint of the same size (the last may be
        shorter), as UDP_SEGMENT requires, and no larger than that endpoint's path allows;
        consecutive datagrams larger than that go one by one. Returns the number of datagrams
        that could not be sent.
        """
        count = len(batch)
        errors = 0
        start = 0
        while start < count:
            endpoint, first = batch[start]
            size = len(first)
            end = start + 1
            coalesced = False
            if self.gso and end < count:  # (a lone datagram, a quiet tunnel's case, skips this)
                largest = self._largest_segment(endpoint)
                if size <= largest:
                    limit = min(count, start + GSO_MAX_SEGMENTS, start + GSO_MAX_BYTES // size)
                    while end < limit:
                        next_endpoint, datagram = batch[end]
                        if next_endpoint != endpoint or len(datagram) > size:
                            break
                        end += 1
                        if len(datagram) < size:
                            break
                    coalesced = end - start > 1
                else:  # a narrow path: this one and the next ones as large go one by one
                    while (end < count and batch[end][0] == endpoint
                           and len(batch[end][1]) > largest):
                        end += 1
            if coalesced:
                errors += self._send_segments(endpoint, [d for _, d in batch[start:end]], size)
            else:
                errors += self._send_each(endpoint, [d for _, d in batch[start:end]])
            start = end
        return errors

    def _largest_segment(self, endpoint: Endpoint) -> int:
        """The largest datagram a GSO send to `endpoint` may carry: any, unless its path was
        found narrower and that is recent enough to still believe."""
        narrow = self._narrow.get(endpoint)
        if narrow is None:
            return GSO_MAX_BYTES
        if time.monotonic() < narrow[1]:
            return narrow[0]
        del self._narrow[endpoint]  # time to find out whether the path has grown
        return GSO_MAX_BYTES

    def _send_segments(self, endpoint: Endpoint, datagrams: list[bytes], size: int) -> int:
        """One GSO send; if the kernel refuses it, one send per datagram (which the kernel
        fragments to fit the path). Returns the number of datagrams not sent."""
        try:
            self._send(b"".join(datagrams),
                       endpoint, [(socket.SOL_UDP, UDP_SEGMENT, _SEGMENT_SIZE.pack(size))])
            return 0
        except OSError as exc:
            if exc.errno in _SEGMENT_TOO_BIG:
                largest = largest_segment(endpoint, size, self.fwmark)
                if len(self._narrow) > 65536:
                    self._narrow.clear()
                self._narrow[endpoint] = (largest, time.monotonic() + PATH_RECHECK_SECONDS)
                log.info("path to %s:%d is narrower than %d-byte datagrams: sending them "
                         "one by one (the kernel fragments them); GSO up to %d bytes",
                         endpoint[0], endpoint[1], size, largest)
            elif exc.errno in _NO_GSO:
                log.info("UDP GSO unavailable (%s); sending one datagram per call", exc)
                self.gso = False
            else:
                log.debug("UDP GSO send to %s:%d failed: %s", endpoint[0], endpoint[1], exc)
                return len(datagrams)
        return self._send_each(endpoint, datagrams)

    def _send_each(self, endpoint: Endpoint, datagrams: list[bytes]) -> int:
        """One send per datagram; returns how many failed."""
        errors = 0
        for datagram in datagrams:
            try:
                self._send(datagram, endpoint, [])
            except OSError as exc:
                errors += 1
                log.debug("UDP send to %s:%d failed: %s", endpoint[0], endpoint[1], exc)
        return errors

    def receive(self) -> Received | None:
        """One receive: (data, segment size, sockaddr, pktinfo), or None when nothing waits.

        With GRO the data holds several datagrams of `segment size` each (the last may be
        shorter); without, segment size is the whole length. `pktinfo` says which local
        address the datagrams were sent to (for `remember_source`). The view is only valid
        until the next receive on this socket or any of its lanes.
        """
        return receive_from(self.sock, self._receive_buffer, self._receive_view)

    def waiting(self) -> bool:
        """Whether a datagram is queued: a zero-timeout poll, which (unlike a receive that
        finds nothing) raises no exception, whose path is cold on an idle tunnel."""
        return bool(self._waiting.poll(0))

    def open_lane(self, endpoint: Endpoint, pktinfo: ControlMessage) -> "UdpLane | None":
        """A socket of its own for `endpoint`'s datagrams to the local address `pktinfo`
        names (see UdpLane); None where a lane does not apply (a link-local address, whose
        scope a sockaddr would have to carry: such peers stay on this socket). OSError if
        the kernel refuses (no route back, too many open files)."""
        learned = _learned(pktinfo)
        remote = self.sockaddr(endpoint)
        if learned is None or "%" in remote[0] or remote[0].startswith("fe80"):
            return None
        local = learned[0]
        if local.startswith("fe80"):
            return None
        if self.dual_stack and ":" not in local:
            local = "::ffff:" + local
        sock = socket.socket(self.sock.family, socket.SOCK_DGRAM)
        try:
            if self.dual_stack:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            _configure(sock, self.fwmark)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            # Only for the moment of this bind does the listening socket allow another on its
            # port: afterwards nobody else (even of our uid) can bind it.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                sock.bind((local, self.port))
            finally:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 0)
            sock.connect(remote)  # (a UDP connect sends nothing)
            sock.setblocking(False)
            if self.gro:
                sock.setsockopt(socket.SOL_UDP, UDP_GRO, 1)
        except BaseException:
            sock.close()
            raise
        return UdpLane(sock, self._receive_buffer, self._receive_view)

    def set_fwmark(self, fwmark: int) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, SO_MARK, _MARK.pack(fwmark))
        self.fwmark = fwmark
        self.route_changed()  # routing by mark: another mark may route elsewhere

    def close(self) -> None:
        self.sock.close()
        if self._routes is not None:
            self._routes.close()


class UdpLane:
    """A receive-only socket for one authenticated endpoint: bound to the bind's port and to
    the local address that endpoint sends to, and connected to the endpoint.

    The kernel delivers a datagram to the socket that matches it most exactly, so a
    connected one gets its 4-tuple's datagrams and the listening socket only the rest:
    handshakes from new or roaming peers, and anything an attacker sends. The loop reads lanes
    first and the listening socket with a bounded share, so a flood of handshake messages
    fills only the listening socket's buffer (the kernel drops the excess there) while an
    established peer's data never queues behind it. Everything is still sent from the
    listening socket (sticky sources, GSO, narrow paths: udp.py's send side is unchanged),
    so on the wire nothing differs. The bind and the connect need SO_REUSEPORT on both
    sockets; the listening socket allows it only for the moment of the bind. The lane gets
    the bind's fwmark for the route its connect() looks up; sending nothing, it does not
    follow later changes of the mark.
    """

    def __init__(self, sock: socket.socket, buffer: bytearray, view: memoryview) -> None:
        self.sock = sock
        self._receive_buffer = buffer  # the bind's: the loop reads one socket at a time
        self._receive_view = view
        self._waiting = select.poll()
        self._waiting.register(sock.fileno(), select.POLLIN)

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self) -> Received | None:
        """As UdpSocket.receive."""
        return receive_from(self.sock, self._receive_buffer, self._receive_view)

    def waiting(self) -> bool:
        return bool(self._waiting.poll(0))

    def close(self) -> None:
        self.sock.close()


def receive_from(sock: socket.socket, buffer: bytearray, view: memoryview) -> Received | None:
    """One recvmsg into `buffer` (see UdpSocket.receive); None when nothing waits."""
    try:
        length, ancillary, _, address = sock.recvmsg_into([buffer], _ANCILLARY)
    except BlockingIOError:
        return None
    segment = length
    pktinfo = None
    for control in ancillary:
        kind = control[1]
        if kind == UDP_GRO and control[0] == socket.SOL_UDP:
            segment = _GRO_SIZE.unpack_from(control[2])[0]
        elif kind in (IPV6_PKTINFO, IP_PKTINFO):
            pktinfo = control
    return view[:length], segment, address, pktinfo
