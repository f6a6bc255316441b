"""The UDP side: one dual-stack socket carrying IPv4 and IPv6 endpoints on ListenPort.

Endpoints inside wgpy are `(ip_text, port)` with IPv4-mapped IPv6 unmapped, so the core and
`wg show` see `192.0.2.1:51820`, not `[::ffff:192.0.2.1]:51820`.
"""

import errno
import logging
import select
import socket
import struct

log = logging.getLogger("wgpy.udp")

SO_MARK = 36
UDP_SEGMENT = 103  # UDP GSO: one sendmsg carries many equal-size datagrams
UDP_GRO = 104  # UDP GRO: one recvmsg returns many coalesced datagrams
# The kernel's limits for one GSO send: UDP_MAX_SEGMENTS (64 on older kernels) and 64 KiB.
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000
_SEGMENT_SIZE = struct.Struct("H")
_GRO_SIZE = struct.Struct("i")
# SO_MARK is a u32; Python's int setsockopt passes a C int, which stops at 2**31 - 1.
_MARK = struct.Struct("=I")
RECEIVE_BUFFER_BYTES = 65536
_GRO_ANCILLARY = socket.CMSG_SPACE(_GRO_SIZE.size)
# Socket buffers sized for bursts of full-size datagrams (SO_*BUFFORCE needs CAP_NET_ADMIN).
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32

Endpoint = tuple[str, int]


def normalize(address: tuple) -> Endpoint:
    """A sockaddr from recvfrom as a core endpoint."""
    host, port = address[0], address[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, port


def _open(port: int, fwmark: int) -> socket.socket:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        bind_address: tuple = ("::", port)
    except OSError:  # IPv6 disabled: fall back to IPv4 only
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bind_address = ("0.0.0.0", port)
    try:
        for option, fallback in ((SO_RCVBUFFORCE, socket.SO_RCVBUF),
                                 (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, fallback, SOCKET_BUFFER_BYTES)
        if fwmark:
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, _MARK.pack(fwmark))
        sock.bind(bind_address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class UdpSocket:
    """The bound socket plus the endpoint -> sockaddr cache used on the send path."""

    def __init__(self, port: int = 0, fwmark: int = 0) -> None:
        self.sock = _open(port, fwmark)
        self.fwmark = fwmark
        self.dual_stack = self.sock.family == socket.AF_INET6
        self._addresses: dict[Endpoint, tuple] = {}
        self.gso = True
        try:
            self.sock.setsockopt(socket.SOL_UDP, UDP_GRO, 1)
            self.gro = True
        except OSError:
            self.gro = False
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
            address = (host, port)
            if len(self._addresses) > 65536:
                self._addresses.clear()
            self._addresses[endpoint] = address
        return address

    def send_batch(self, batch: list[tuple[Endpoint, bytes]]) -> int:
        """Send datagrams, coalescing runs to one endpoint into UDP GSO sends.

        A run is consecutive datagrams to the same endpoint of the same size (the last may be
        shorter), as UDP_SEGMENT requires. Returns the number of send errors.
        """
        count = len(batch)
        if count == 1:  # a quiet tunnel's case, kept short: every line is a cold one there
            endpoint, datagram = batch[0]
            try:
                self.sock.sendto(datagram, self.sockaddr(endpoint))
            except OSError as exc:
                log.debug("UDP send to %s:%d failed: %s", endpoint[0], endpoint[1], exc)
                return 1
            return 0
        errors = 0
        start = 0
        while start < count:
            endpoint, first = batch[start]
            size = len(first)
            end = start + 1
            if self.gso:
                limit = min(count, start + GSO_MAX_SEGMENTS, start + GSO_MAX_BYTES // size)
                while end < limit:
                    next_endpoint, datagram = batch[end]
                    if next_endpoint != endpoint or len(datagram) > size:
                        break
                    end += 1
                    if len(datagram) < size:
                        break
            try:
                if end - start == 1:
                    self.sock.sendto(first, self.sockaddr(endpoint))
                else:
                    self._send_segments(endpoint, [d for _, d in batch[start:end]], size)
            except OSError as exc:
                errors += end - start
                log.debug("UDP send to %s:%d failed: %s", endpoint[0], endpoint[1], exc)
            start = end
        return errors

    def _send_segments(self, endpoint: Endpoint, datagrams: list[bytes], size: int) -> None:
        address = self.sockaddr(endpoint)
        try:
            self.sock.sendmsg(
                [b"".join(datagrams)],
                [(socket.SOL_UDP, UDP_SEGMENT, _SEGMENT_SIZE.pack(size))],
                0,
                address,
            )
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOPROTOOPT, errno.EIO, errno.EINVAL):
                if exc.errno != errno.EINVAL:
                    log.info("UDP GSO unavailable (%s); sending one datagram per call", exc)
                    self.gso = False
                for datagram in datagrams:  # EINVAL: e.g. larger than the path MTU
                    self.sock.sendto(datagram, address)
            else:
                raise

    def receive(self) -> tuple[memoryview, int, tuple] | None:
        """One receive: (data, segment size, sockaddr), or None when nothing is waiting.

        With GRO the data holds several datagrams of `segment size` each (the last may be
        shorter); without, segment size is the whole length. The view is only valid until the
        next call.
        """
        try:
            length, ancillary, _, address = self.sock.recvmsg_into(
                [self._receive_buffer], _GRO_ANCILLARY
            )
        except BlockingIOError:
            return None
        if ancillary:  # UDP_GRO is the only control message we ask for
            level, kind, data = ancillary[0]
            if level == socket.SOL_UDP and kind == UDP_GRO:
                return self._receive_view[:length], _GRO_SIZE.unpack_from(data)[0], address
        return self._receive_view[:length], length, address

    def waiting(self) -> bool:
        """Whether a datagram is queued: a zero-timeout poll, which (unlike a receive that
        finds nothing) raises no exception, whose path is cold on an idle tunnel."""
        return bool(self._waiting.poll(0))

    def set_fwmark(self, fwmark: int) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, SO_MARK, _MARK.pack(fwmark))
        self.fwmark = fwmark

    def close(self) -> None:
        self.sock.close()
