"""UdpSocket on loopback: batches, GRO segments, and the sticky source address.

127.0.0.0/8 is all local, so a datagram sent to 127.0.0.2 arrives on an address the kernel
would not pick itself for a reply to 127.0.0.1: the sticky source must be what makes it.
"""

import socket
import time

import pytest

from wgpy.io.udp import IPV6_PKTINFO, UdpSocket


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
