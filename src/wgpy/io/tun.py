"""Linux TUN device: `/dev/net/tun` with IFF_TUN | IFF_NO_PI, as wireguard-go opens it.

With `vnet_hdr` (IFF_VNET_HDR) writes can hand the kernel many TCP segments coalesced into one
GSO packet (see offload.py); without it (older kernels, or disabled) every packet is one write.

The interface exists as long as the fd is open (not persistent), so closing it removes the
interface, and an `ip link del` of the interface shows up here as EBADFD on the fd: that is
how the daemon learns it should exit.
"""

import errno
import fcntl
import os
import select
import socket
import struct
from collections.abc import Sequence

from wgpy.io.linkwatch import LinkEvents
from wgpy.io.offload import NO_OFFLOAD, coalesce, strip_read

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
IFNAMSIZ = 16
_IFREQ_FLAGS = struct.Struct(f"{IFNAMSIZ}sH")
_IFREQ_MTU = struct.Struct(f"{IFNAMSIZ}si")


class InterfaceGone(Exception):
    """The TUN interface was deleted under us."""


class Tun:
    """A non-blocking TUN file descriptor with its interface name."""

    def __init__(self, name: str, mtu: int | None = None, vnet_hdr: bool = True) -> None:
        if not name or len(name.encode()) >= IFNAMSIZ or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid interface name {name!r}")
        self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.vnet_hdr = vnet_hdr
        self.malformed_reads = 0
        self._control: socket.socket | None = None
        self._waiting = select.poll()
        self._waiting.register(self.fd, select.POLLIN)
        try:
            flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
            try:
                result = fcntl.ioctl(self.fd, TUNSETIFF, _IFREQ_FLAGS.pack(name.encode(), flags))
            except OSError as exc:
                if not vnet_hdr or exc.errno != errno.EINVAL:
                    raise
                self.vnet_hdr = False  # a kernel without vnet headers: plain packets
                request = _IFREQ_FLAGS.pack(name.encode(), IFF_TUN | IFF_NO_PI)
                result = fcntl.ioctl(self.fd, TUNSETIFF, request)
            self.name = _IFREQ_FLAGS.unpack(result)[0].rstrip(b"\0").decode()
            if mtu is not None:
                self.set_mtu(mtu)
        except BaseException:
            os.close(self.fd)
            raise

    def _ioctl(self, request: int, data: bytes) -> bytes:
        """An interface ioctl by name (the loop polls the MTU, so the socket is kept)."""
        if self._control is None:
            self._control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        return fcntl.ioctl(self._control.fileno(), request, data)

    def set_mtu(self, mtu: int) -> None:
        self._ioctl(SIOCSIFMTU, _IFREQ_MTU.pack(self.name.encode(), mtu))

    def is_up(self) -> bool:
        """IFF_UP of the interface; one we cannot see any more (moved to another network
        namespace, where it keeps working for us) counts as up."""
        try:
            flags = _IFREQ_FLAGS.unpack(self._ioctl(SIOCGIFFLAGS, _IFREQ_FLAGS.pack(
                self.name.encode(), 0)))[1]
        except OSError:
            return True
        return bool(flags & IFF_UP)

    def index(self) -> int:
        """The interface index, which netlink link events name it by (linkwatch.py)."""
        return socket.if_nametoindex(self.name)

    def link_events(self) -> LinkEvents:
        """Changes of this interface (up/down, MTU, deletion) as netlink announces them."""
        return LinkEvents(self.index())

    def mtu(self) -> int | None:
        """The interface MTU, or None if it is not visible from our namespace any more."""
        try:
            result = self._ioctl(SIOCGIFMTU, _IFREQ_MTU.pack(self.name.encode(), 0))
        except OSError:
            return None
        return _IFREQ_MTU.unpack(result)[1]

    def read_batch(self, limit: int) -> list[bytes]:
        """Up to `limit` packets waiting on the TUN; InterfaceGone if it was deleted.

        No offloads are enabled towards us: segmenting TSO super-packets and finishing their
        checksums in Python measured slower (about 0.8 against 1.1 Gbit/s) than one read
        per packet, so every read is one complete packet behind an all-zero vnet header.

        After the first packet a zero-timeout poll decides whether to read on: on an idle
        tunnel the read that would fail with EAGAIN costs a Python exception, and that path
        is cold (tens of µs on a VM) just when latency matters; under load it is one poll per
        batch.
        """
        packets: list[bytes] = []
        reads = 0
        while reads < limit:
            if reads == 1 and not self.waiting():
                break
            try:
                data = os.read(self.fd, 65536 + 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.EBADFD, errno.EIO, errno.ENXIO):
                    raise InterfaceGone(self.name) from exc
                raise
            reads += 1
            if not self.vnet_hdr:
                packets.append(data)
                continue
            packet = strip_read(data)
            if packet is None:
                self.malformed_reads += 1
            else:
                packets.append(packet)
        return packets

    def waiting(self) -> bool:
        """Whether a packet is queued to be read (a zero-timeout poll: no exception)."""
        return bool(self._waiting.poll(0))

    def write_batch(self, packets: Sequence[bytes]) -> int:
        """Write decrypted packets (coalesced where possible); returns the failed writes.

        A failed write (a packet the kernel refuses) costs that write only; a deleted
        interface raises InterfaceGone.
        """
        if not self.vnet_hdr:
            writes = packets
        elif len(packets) == 1:  # nothing to coalesce: the common case on a quiet tunnel
            writes = [NO_OFFLOAD + packets[0]]
        else:
            writes = coalesce(packets)
        failures = 0
        for data in writes:
            try:
                os.write(self.fd, data)
            except BlockingIOError:
                failures += 1
            except OSError as exc:
                if exc.errno in (errno.EBADFD, errno.ENXIO):
                    raise InterfaceGone(self.name) from exc
                failures += 1
        return failures

    def close(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
