"""The UDP side: one dual-stack socket carrying IPv4 and IPv6 endpoints on ListenPort.

Endpoints inside wgpy are `(ip_text, port)` with IPv4-mapped IPv6 unmapped, so the core and
`wg show` see `192.0.2.1:51820`, not `[::ffff:192.0.2.1]:51820`.
"""

import socket

SO_MARK = 36
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
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, fwmark)
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

    def send(self, endpoint: Endpoint, datagram: bytes) -> None:
        self.sock.sendto(datagram, self.sockaddr(endpoint))

    def set_fwmark(self, fwmark: int) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, SO_MARK, fwmark)
        self.fwmark = fwmark

    def close(self) -> None:
        self.sock.close()
