"""UdpSocket on loopback: batches, GRO segments, and the sticky source address.

127.0.0.0/8 is all local, so a datagram sent to 127.0.0.2 arrives on an address the kernel
would not pick itself for a reply to 127.0.0.1: the sticky source must be what makes it.
"""

import errno
import os
import socket
import sys
import time

import pytest

from wgpy.io import udp as udp_module
from wgpy.io.udp import IPV6_PKTINFO, UDP_SEGMENT, UdpSocket, gso_supported, path_mtu


def wait_receive(udp: UdpSocket, timeout: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = udp.receive()
        if result is not None:
            return result
        time.sleep(0.01)
    raise AssertionError("nothing received")


def client(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    sock.settimeout(2)
    return sock


@pytest.fixture
def udp():
    sock = UdpSocket(0)
    yield sock
    sock.close()


def test_receive_reports_the_local_address_the_datagram_was_sent_to(udp):
    with client("127.0.0.1") as peer:
        peer.sendto(b"hello", ("127.0.0.2", udp.port))
        data, segment, address, pktinfo = wait_receive(udp)
        assert address[:2] == ("::ffff:127.0.0.1", peer.getsockname()[1])
    assert bytes(data) == b"hello" and segment == 5
    assert pktinfo is not None and pktinfo[1] == IPV6_PKTINFO
    assert socket.inet_ntop(socket.AF_INET6, pktinfo[2][:16]) == "::ffff:127.0.0.2"


def test_replies_leave_from_the_remembered_source(udp):
    with client("127.0.0.1") as peer:
        endpoint = ("127.0.0.1", peer.getsockname()[1])
        udp.send_batch([(endpoint, b"before")])
        assert peer.recvfrom(100) == (b"before", ("127.0.0.1", udp.port))

        peer.sendto(b"hello", ("127.0.0.2", udp.port))
        *_, pktinfo = wait_receive(udp)
        udp.remember_source(endpoint, pktinfo)
        udp.send_batch([(endpoint, b"single")])
        assert peer.recvfrom(100) == (b"single", ("127.0.0.2", udp.port))
        # a GSO batch carries the source too
        udp.send_batch([(endpoint, b"x" * 100)] * 3)
        for _ in range(3):
            assert peer.recvfrom(200) == (b"x" * 100, ("127.0.0.2", udp.port))


def test_truncated_pktinfo_is_ignored(udp):
    with client("127.0.0.1") as peer:
        endpoint = ("127.0.0.1", peer.getsockname()[1])
        truncated = (socket.IPPROTO_IPV6, IPV6_PKTINFO, b"\x00" * 7)
        udp.remember_source(endpoint, truncated)
        udp.send_batch([(endpoint, b"plain")])
        assert peer.recvfrom(100) == (b"plain", ("127.0.0.1", udp.port))
        udp.reply_once(endpoint, b"once", truncated)
        assert peer.recvfrom(100) == (b"once", ("127.0.0.1", udp.port))


def test_gro_bundle_is_one_receive_with_its_segment_size(udp):
    sender = UdpSocket(0)
    try:
        sender.send_batch([(("127.0.0.1", udp.port), bytes([i]) * 300) for i in range(4)])
    finally:
        sender.close()
    received = []
    while len(received) < 4:
        data, segment, _, _ = wait_receive(udp)
        received += [bytes(data[i:i + segment]) for i in range(0, len(data), segment)]
    assert received == [bytes([i]) * 300 for i in range(4)]


def test_without_offload_every_datagram_is_its_own_send_and_receive():
    receiver, sender = UdpSocket(0, offload=False), UdpSocket(0, offload=False)
    try:
        assert not (receiver.gso or receiver.gro or sender.gso or sender.gro)
        sender.send_batch([(("127.0.0.1", receiver.port), bytes([i]) * 300) for i in range(4)])
        received = []
        while len(received) < 4:
            data, segment, _, _ = wait_receive(receiver)
            assert segment == len(data) == 300
            received.append(bytes(data))
        assert received == [bytes([i]) * 300 for i in range(4)]
    finally:
        receiver.close()
        sender.close()


class KernelWithoutGso:
    """A socket whose kernel refuses UDP_SEGMENT, as one without GSO (or whose route's device
    cannot checksum) does: the option is unknown and a send carrying it fails."""

    def __init__(self, sock: socket.socket, error: int, above: int = 0) -> None:
        """Refuses GSO sends whose segments are larger than `above` with `error`."""
        self._sock, self._error, self._above = sock, error, above
        self.gso_sends = 0

    def getsockopt(self, level: int, option: int, *args):
        if (level, option) == (socket.SOL_UDP, UDP_SEGMENT):
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")
        return self._sock.getsockopt(level, option, *args)

    def sendmsg(self, buffers, controls=(), flags=0, address=None):
        segment = [data for _, kind, data in controls if kind == UDP_SEGMENT]
        if segment:
            self.gso_sends += 1
            if int.from_bytes(segment[0], sys.byteorder) > self._above:
                raise OSError(self._error, os.strerror(self._error))
        return self._sock.sendmsg(buffers, controls, flags, address)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def test_gso_probe_says_no_on_a_kernel_without_udp_segment(udp):
    assert gso_supported(udp.sock)
    assert not gso_supported(KernelWithoutGso(udp.sock, errno.EIO))  # type: ignore[arg-type]


@pytest.mark.parametrize("error", [errno.EIO, errno.EOPNOTSUPP, errno.EMSGSIZE, errno.EINVAL])
def test_a_refused_gso_send_falls_back_to_one_send_per_datagram(udp, error):
    """EIO/EOPNOTSUPP: GSO is off from then on; EMSGSIZE/EINVAL (segments larger than the
    path takes) keep it. Either way every datagram arrives, in order, and none is counted as
    a failure."""
    with client("127.0.0.1") as peer:
        endpoint = ("127.0.0.1", peer.getsockname()[1])
        udp.sock = KernelWithoutGso(udp.sock, error)  # type: ignore[assignment]
        batch = [(endpoint, bytes([i]) * 200) for i in range(5)]
        assert udp.send_batch(batch) == 0
        assert [peer.recvfrom(300)[0] for _ in range(5)] == [d for _, d in batch]
        assert udp.gso == (error in (errno.EMSGSIZE, errno.EINVAL))


def test_a_narrow_path_is_remembered_then_rechecked(udp, monkeypatch):
    """After a refusal, batches too big for the path MTU the kernel then reports go to that
    endpoint one by one without asking the kernel again (those that fit, and other endpoints,
    still use GSO), until PATH_RECHECK_SECONDS have passed: then GSO is tried again at full
    size, in case the path grew."""
    clock = [1000.0]
    monkeypatch.setattr(udp_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(udp_module, "path_mtu", lambda endpoint, fwmark: 1200 + 28)
    with client("127.0.0.1") as narrow_peer, client("127.0.0.1") as other_peer:
        narrow = ("127.0.0.1", narrow_peer.getsockname()[1])
        other = ("127.0.0.1", other_peer.getsockname()[1])
        kernel = KernelWithoutGso(udp.sock, errno.EMSGSIZE, above=1200)
        udp.sock = kernel  # type: ignore[assignment]

        def send(endpoint, size, peer) -> None:
            batch = [(endpoint, bytes([i]) * size) for i in range(4)]
            assert udp.send_batch(batch) == 0
            assert [peer.recvfrom(2000)[0] for _ in range(4)] == [d for _, d in batch]

        send(narrow, 1400, narrow_peer)
        assert kernel.gso_sends == 1
        send(narrow, 1400, narrow_peer)
        send(narrow, 1300, narrow_peer)
        assert kernel.gso_sends == 1  # remembered: no refused send again
        send(narrow, 1200, narrow_peer)
        send(other, 1400, other_peer)
        assert kernel.gso_sends == 3  # datagrams that fit, and other endpoints: GSO as before
        clock[0] += udp_module.PATH_RECHECK_SECONDS
        send(narrow, 1400, narrow_peer)
        assert kernel.gso_sends == 4  # rechecked
        assert udp.gso


def test_path_mtu_is_the_route_mtu():
    """Loopback's MTU is what the kernel reports for a path over it (IP_MTU stops at 65535)."""
    with open("/sys/class/net/lo/mtu") as handle:
        mtu = min(int(handle.read()), 65535)
    assert path_mtu(("127.0.0.1", 9)) == path_mtu(("::ffff:127.0.0.1", 9)) == mtu
    assert path_mtu(("192.0.2.1", 9)) in (None, *range(68, 65537))  # routed or not: no crash


def test_route_query_names_the_output_interface_or_the_kernels_refusal():
    from wgpy.io.routewatch import RouteQuery
    query = RouteQuery()
    try:
        loopback = socket.if_nametoindex("lo")
        assert query.output_interface("127.0.0.1", "127.0.0.2", 0) == loopback
        assert query.output_interface("::1", "::1", 7) == loopback
        with pytest.raises(OSError) as refused:  # not an address of this host
            query.output_interface("127.0.0.1", "192.0.2.77", 0)
        assert refused.value.errno == errno.ENETUNREACH
    finally:
        query.close()


def test_a_source_whose_route_leaves_elsewhere_is_not_kept(udp, monkeypatch):
    """The kernel's send4 rule, with the route lookup answering another interface: the source
    is refused when learned, and one kept is dropped at its first send after a route change."""
    with client("127.0.0.1") as peer:
        endpoint = ("127.0.0.1", peer.getsockname()[1])
        peer.sendto(b"hello", ("127.0.0.2", udp.port))
        *_, pktinfo = wait_receive(udp)
        udp.remember_source(endpoint, pktinfo)
        udp.send_batch([(endpoint, b"sticky")])
        assert peer.recvfrom(100) == (b"sticky", ("127.0.0.2", udp.port))

        monkeypatch.setattr(udp_module.RouteQuery, "output_interface",
                            lambda self, destination, source, mark: 999)
        udp.send_batch([(endpoint, b"same routes")])  # no change announced: not asked
        assert peer.recvfrom(100) == (b"same routes", ("127.0.0.2", udp.port))
        udp.route_changed()
        udp.send_batch([(endpoint, b"moved")])
        assert peer.recvfrom(100) == (b"moved", ("127.0.0.1", udp.port))
        udp.remember_source(endpoint, pktinfo)  # refused until the routes change again
        udp.send_batch([(endpoint, b"still")])
        assert peer.recvfrom(100) == (b"still", ("127.0.0.1", udp.port))
