"""Route changes as events, and the kernel's own answer to "which interface would this leave by".

The sticky source address (udp.py) must give way when the route to the peer changes, as in
the kernel module (socket.c send4: a cached IPv4 source is dropped when the route's output
interface is no longer the one it was learned on). Asking the kernel for the route before
every send would cost a netlink round trip per datagram; instead the loop subscribes to the
route groups (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE), sleeps until a route is added, changed
or removed, and only then asks, once per remembered source (`output_interface`). A source
newly learned is checked once too, since the route back may already leave elsewhere.

Hand-written like linkwatch.py (the daemon does without pyroute2's import time and memory):
a RTM_GETROUTE request is a header, an rtmsg and three attributes; of the answer only the
output interface (RTA_OIF) or the error is read.
"""

import errno
import itertools
import socket
import struct

from wgpy.io.linkwatch import NetlinkEvents

# group masks: bit RTNLGRP_IPV4_ROUTE (7) - 1 and bit RTNLGRP_IPV6_ROUTE (11) - 1
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
RTA_DST = 1
RTA_SRC = 2
RTA_OIF = 4
RTA_MARK = 16
_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
# family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")  # length, type
_U32 = struct.Struct("=I")
_ERROR = struct.Struct("=i")
_RECV_SIZE = 65536
_TIMEOUT = 1.0


class RouteEvents(NetlinkEvents):
    """Readable when a route changed (in any table: policy routing counts too)."""

    def __init__(self) -> None:
        super().__init__(RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE)

    def drain(self) -> bool:
        """Read every queued message; True if there was any (or some were lost)."""
        datagrams, lost = self.receive_all()
        return lost or bool(datagrams)


def _attribute(kind: int, data: bytes) -> bytes:
    length = _RTATTR.size + len(data)
    return _RTATTR.pack(length, kind) + data + bytes(-length % 4)


class RouteQuery:
    """`ip route get DST from SRC mark MARK`, answered with the output interface's index."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   socket.NETLINK_ROUTE)
        self._sock.settimeout(_TIMEOUT)
        self._sequence = itertools.count(1)

    def output_interface(self, destination: str, source: str, mark: int) -> int:
        """The index of the interface a datagram from `source` to `destination` leaves by.
        OSError with the kernel's errno when there is no such route (e.g. ENETUNREACH, also
        when `source` is no longer an address of this host)."""
        family = socket.AF_INET6 if ":" in destination else socket.AF_INET
        bits = 128 if family == socket.AF_INET6 else 32
        sequence = next(self._sequence) & 0xFFFFFFFF
        body = (_RTMSG.pack(family, bits, bits, 0, 0, 0, 0, 0, 0)
                + _attribute(RTA_DST, socket.inet_pton(family, destination))
                + _attribute(RTA_SRC, socket.inet_pton(family, source))
                + (_attribute(RTA_MARK, _U32.pack(mark)) if mark else b""))
        self._sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETROUTE, NLM_F_REQUEST,
                                       sequence, 0) + body)
        while True:
            data = self._sock.recv(_RECV_SIZE)
            length, kind, _, answered, _ = _NLMSGHDR.unpack_from(data)
            if answered != sequence:
                continue  # the answer to an earlier query that timed out
            body_start = _NLMSGHDR.size
            if kind == NLMSG_ERROR:
                code = -_ERROR.unpack_from(data, body_start)[0]
                raise OSError(code, f"route to {destination} from {source}: "
                                    f"{errno.errorcode.get(code, code)}")
            if kind == RTM_NEWROUTE:
                return _find_oif(data[body_start + _RTMSG.size : length])
            raise OSError(errno.EPROTO, f"unexpected netlink message {kind}")

    def close(self) -> None:
        self._sock.close()


def _find_oif(attributes: bytes) -> int:
    offset = 0
    while offset + _RTATTR.size <= len(attributes):
        length, kind = _RTATTR.unpack_from(attributes, offset)
        if length < _RTATTR.size:
            break
        if kind == RTA_OIF:
            return _U32.unpack_from(attributes, offset + _RTATTR.size)[0]
        offset += (length + 3) & ~3
    raise OSError(errno.EPROTO, "route without an output interface")
