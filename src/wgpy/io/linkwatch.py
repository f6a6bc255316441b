"""Link changes as events: a netlink socket subscribed to RTNLGRP_LINK, in the loop's epoll set.

The loop used to ask the kernel for the interface's flags and MTU every 100 ms, which made an
idle daemon wake ten times a second for nothing. The kernel announces every change of a link
(up/down, MTU, rename, deletion) to RTNLGRP_LINK subscribers, so the loop sleeps until one
concerns its interface and only then looks (Tun.is_up / Tun.mtu).

Only the message type and the interface index of each message are read. pyroute2, the
project's netlink library, would parse the whole message but costs 117 ms of import and 13 MB
of resident memory in the daemon (28.8 -> 41.9 MB measured); two struct fields do not need it.
"""

import errno
import socket
import struct

RTMGRP_LINK = 0x1  # the group mask of RTNLGRP_LINK (1): bit RTNLGRP_LINK - 1
RTM_NEWLINK = 16
RTM_DELLINK = 17
_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFINFOMSG = struct.Struct("=BxHiII")  # family, (pad), device type, index, flags, change
_RECV_SIZE = 65536


class NetlinkEvents:
    """A non-blocking rtnetlink socket subscribed to `groups` (a mask of RTMGRP_* bits), for
    the loop's epoll set."""

    def __init__(self, groups: int) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
            socket.NETLINK_ROUTE)
        try:
            self._sock.bind((0, groups))
        except BaseException:
            self._sock.close()
            raise

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive_all(self) -> tuple[list[bytes], bool]:
        """Every queued datagram, and whether some were lost (ENOBUFS: the queue overflowed)."""
        datagrams: list[bytes] = []
        lost = False
        while True:
            try:
                data = self._sock.recv(_RECV_SIZE)
            except BlockingIOError:
                return datagrams, lost
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                lost = True
                continue
            if not data:
                return datagrams, lost
            datagrams.append(data)

    def close(self) -> None:
        self._sock.close()


class LinkEvents(NetlinkEvents):
    """Readable when a link changed; `drain` tells whether the change may concern ours."""

    def __init__(self, ifindex: int) -> None:
        super().__init__(RTMGRP_LINK)
        self.ifindex = ifindex

    def drain(self) -> bool:
        """Read every queued message; True if one was about our interface or some were lost
        (then ours may have been among them)."""
        datagrams, lost = self.receive_all()
        return lost or any(self._mentions_ours(data) for data in datagrams)

    def _mentions_ours(self, data: bytes) -> bool:
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                return False  # malformed: stop reading this datagram
            body = offset + _NLMSGHDR.size
            if (kind in (RTM_NEWLINK, RTM_DELLINK) and body + _IFINFOMSG.size <= len(data)
                    and _IFINFOMSG.unpack_from(data, body)[2] == self.ifindex):
                return True
            offset += (length + 3) & ~3  # NLMSG_ALIGN
        return False
