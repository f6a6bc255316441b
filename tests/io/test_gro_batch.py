"""Batching does not weaken the protocol: in one UDP GRO bundle every datagram is
authenticated and replay-checked on its own, so a forged or replayed one is dropped and
counted alone and the rest of the bundle is delivered, in order. Nor does it assume how the
datagrams arrive: on a narrow path some come reassembled from fragments, one per receive,
between GRO bundles of other sizes, and all of them reach the TUN in order.

The loop runs for real on loopback (its UDP socket with GRO), with an in-memory TUN that
records what it is given (io/memory.py); the sender is an in-memory core that completed a
handshake with it.
"""

import threading
import time

import pytest

from wgpy.core.drops import Drop
from wgpy.inmemory import Pair, Side, ipv4_packet
from wgpy.io import udp
from wgpy.io.loop import Tunnel
from wgpy.io.memory import ChannelTun
from wgpy.io.udp import UdpSocket

from netlab import Namespace, in_namespace, unique_name


def receive(sock: UdpSocket, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = sock.receive()
        if result is not None:
            return bytes(result[0])
        time.sleep(0.005)
    raise AssertionError("nothing received")


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def record_bundles(tunnel: Tunnel, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(length, segment size) of every receive the loop makes from now on, on its listening
    socket or on a lane (an authenticated sender's datagrams arrive on its lane)."""
    assert tunnel.udp is not None and tunnel.udp.gro
    bundles: list[tuple[int, int]] = []
    real_receive = udp.receive_from

    def recording_receive(*args):
        result = real_receive(*args)
        if result is not None:
            bundles.append((len(result[0]), result[1]))
        return result

    monkeypatch.setattr(udp, "receive_from", recording_receive)
    return bundles


def handshake(client: Side, server: Side, tunnel: Tunnel, sock: UdpSocket,
              tun: ChannelTun) -> tuple[tuple[str, int], bytes]:
    """The handshake over the real socket (the loop running), then a first packet that
    confirms the session: returns the tunnel's endpoint and that packet."""
    endpoint = ("127.0.0.1", tunnel.listen_port())
    client.peer.endpoint = endpoint
    server.peer.endpoint = ("127.0.0.1", sock.port)  # (replies stay on loopback)
    wait_for(lambda: server.device.running)
    first = ipv4_packet(client.address, server.address, b"first", proto=17)
    assert client.device.encrypt(first, time.monotonic()) is None  # staged
    [(_, initiation)] = client.device.take_outbox()
    sock.send_batch([(endpoint, initiation)])
    assert client.device.decrypt(receive(sock), endpoint, time.monotonic()) is None
    sock.send_batch(client.device.take_outbox())  # the staged packet
    assert tun.take(1) == [first]
    return endpoint, first


def test_a_bad_datagram_in_a_gro_bundle_costs_only_itself(monkeypatch):
    pair = Pair()
    client, server = pair.a, pair.b
    tun = ChannelTun()
    tunnel = Tunnel(tun, server.device, UdpSocket, keep_warm=0)
    bundles = record_bundles(tunnel, monkeypatch)
    sock = UdpSocket(0)  # the client's
    thread = threading.Thread(target=tunnel.run)
    thread.start()
    try:
        endpoint, _ = handshake(client, server, tunnel, sock, tun)
        packets = [ipv4_packet(client.address, server.address, bytes([i]) * 200, proto=17)
                   for i in range(6)]
        datagrams = []
        for packet in packets:
            result = client.device.encrypt(packet, time.monotonic())
            assert result is not None
            datagrams.append(bytearray(result[1]))
        datagrams[1][-1] ^= 1  # forged: its tag no longer verifies
        datagrams[4] = bytearray(datagrams[2])  # replayed: a counter already seen
        assert len({len(d) for d in datagrams}) == 1  # one GSO send, one GRO bundle
        bundles.clear()
        assert sock.send_batch([(endpoint, bytes(d)) for d in datagrams]) == 0
        delivered = tun.take(4)
        time.sleep(0.1)  # nothing more is coming
        assert tun.written.empty()
    finally:
        sock.close()
        tunnel.stop()
        thread.join(timeout=5)
        tun.close()
    assert any(length > segment for length, segment in bundles), bundles  # really bundled
    assert delivered == [packets[0], packets[2], packets[3], packets[5]]
    assert server.device.drops[Drop.DECRYPT_FAILED] == 1
    assert server.device.drops[Drop.REPLAYED] == 1


@pytest.mark.root
def test_reassembled_fragments_and_bundles_of_mixed_sizes_all_arrive(root_netns, monkeypatch):
    """In a namespace whose loopback is 1280 bytes wide, full-size tunnel datagrams (1452
    bytes) cannot go in a GSO send: they leave one by one, are fragmented and arrive
    reassembled, one per receive, between GRO bundles of smaller datagrams of several sizes.
    Every packet reaches the TUN, in the order sent."""
    pair = Pair()
    client, server = pair.a, pair.b
    with Namespace(unique_name("wgpyfrag-")) as ns:
        ns.run("ip", "link", "set", "lo", "mtu", "1280")
        tun = ChannelTun()
        tunnel, sock = in_namespace(ns, lambda: (
            Tunnel(tun, server.device, UdpSocket, keep_warm=0), UdpSocket(0)))
        bundles = record_bundles(tunnel, monkeypatch)
        # (in the namespace: the loop opens its lanes there)
        thread = threading.Thread(target=lambda: in_namespace(ns, tunnel.run))
        thread.start()
        try:
            handshake(client, server, tunnel, sock, tun)
            sizes = [1400] * 5 + [300] * 6 + [1000] * 4 + [1400] * 3 + [200] * 3 + [60]
            packets = [ipv4_packet(client.address, server.address, bytes([i]) * size,
                                   proto=17) for i, size in enumerate(sizes)]
            batch = []
            for packet in packets:
                result = client.device.encrypt(packet, time.monotonic())
                assert result is not None
                batch.append(result)
            bundles.clear()
            assert sock.send_batch(batch) == 0  # nothing lost on the way out either
            delivered = tun.take(len(packets))
            time.sleep(0.1)  # nothing more is coming
            assert tun.written.empty()
            reassembled = int(ns.run("nstat", "-asz", "IpReasmOKs").stdout.split()[-2])
        finally:
            sock.close()
            tunnel.stop()
            thread.join(timeout=5)
            tun.close()
    assert delivered == packets
    assert reassembled >= 8  # the 1452-byte datagrams came in fragments
    whole = [length for length, segment in bundles if length == segment]
    assert sum(length > 1280 for length in whole) == 8, bundles  # ... one per receive
    bundled = {segment for length, segment in bundles if length > segment}
    assert len(bundled) >= 2, bundles  # GRO bundles of more than one size
