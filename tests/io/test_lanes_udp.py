"""Lanes on real sockets (lanes.py, UdpSocket.open_lane), over IPv4 and IPv6 in a namespace
of the test's own: once a peer's handshake authenticates, the kernel gives that peer's
datagrams to its lane (a socket connected to it on our port) and a stranger's still to the
listening socket; a peer that moves to another port gets a lane there and the tunnel's
replies follow it; and the listening socket's port stays ours alone.

The loop runs for real (inside the namespace, where it opens its lanes) with an in-memory
TUN (io/memory.py); the peer is an in-memory core sending through a UdpSocket of its own.
"""

import errno
import socket
import threading
import time

import pytest

from wgpy.inmemory import Pair, ipv4_packet
from wgpy.io import udp
from wgpy.io.loop import Tunnel
from wgpy.io.memory import ChannelTun
from wgpy.io.udp import UdpSocket

from netlab import Namespace, in_namespace, unique_name


def receive(sock: UdpSocket, timeout: float = 5.0) -> tuple[bytes, tuple]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = sock.receive()
        if result is not None:
            return bytes(result[0]), result[2]
        time.sleep(0.005)
    raise AssertionError("nothing received")


def record_receivers(monkeypatch: pytest.MonkeyPatch, *others: UdpSocket) -> list[int]:
    """The file descriptor of every socket a datagram is received from, from now on, but
    for the `others` (the test's own)."""
    receivers: list[int] = []
    real_receive = udp.receive_from
    ignored = {other.fileno() for other in others}

    def recording(sock, *args):
        result = real_receive(sock, *args)
        if result is not None and sock.fileno() not in ignored:
            receivers.append(sock.fileno())
        return result

    monkeypatch.setattr(udp, "receive_from", recording)
    return receivers


@pytest.mark.root
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_peer_s_datagrams_arrive_on_its_lane_and_follow_it_when_it_roams(
        root_netns, monkeypatch, host):
    pair = Pair()
    client, server = pair.a, pair.b
    with Namespace(unique_name("wgpylane-")) as ns:
        tun = ChannelTun()
        tunnel, sock, moved, stranger = in_namespace(ns, lambda: (
            Tunnel(tun, server.device, UdpSocket, keep_warm=0), UdpSocket(0), UdpSocket(0),
            UdpSocket(0)))
        receivers = record_receivers(monkeypatch, sock, moved, stranger)
        thread = threading.Thread(target=lambda: in_namespace(ns, tunnel.run))
        thread.start()
        try:
            assert tunnel.udp is not None
            listening = tunnel.udp.fileno()
            endpoint = (host, tunnel.listen_port())
            client.peer.endpoint = endpoint
            deadline = time.monotonic() + 5
            while not server.device.running and time.monotonic() < deadline:
                time.sleep(0.01)
            first = ipv4_packet(client.address, server.address, b"first", proto=17)
            assert client.device.encrypt(first, time.monotonic()) is None  # staged
            sock.send_batch(client.device.take_outbox())  # the initiation
            response, _ = receive(sock)
            assert client.device.decrypt(response, endpoint, time.monotonic()) is None
            assert receivers == [listening]  # a stranger until it authenticated
            sock.send_batch(client.device.take_outbox())  # the staged packet
            assert tun.take(1) == [first]
            [(lane_endpoint, lane)] = tunnel.call(
                lambda: [(e.endpoint, fd) for fd, e in tunnel.lanes.by_fd.items()])
            assert lane_endpoint == (host, sock.port) and lane != listening
            assert receivers == [listening, lane]

            # a stranger's datagram still reaches the listening socket
            stranger.send_batch([(endpoint, b"\x01" + bytes(147))])
            deadline = time.monotonic() + 5
            while len(receivers) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert receivers[2:] == [listening]

            # the peer roams to another port: the listening socket, then a lane of its own
            for payload in (b"moved", b"on its new lane"):
                packet = ipv4_packet(client.address, server.address, payload, proto=17)
                moved.send_batch([client.device.encrypt(packet, time.monotonic())])
                assert tun.take(1) == [packet]
            lanes = tunnel.call(lambda: {e.endpoint: fd for fd, e in tunnel.lanes.by_fd.items()})
            assert set(lanes) == {(host, sock.port), (host, moved.port)}
            assert receivers[3:] == [listening, lanes[(host, moved.port)]]
            assert server.peer.endpoint == (host, moved.port)
            reply = ipv4_packet(server.address, client.address, b"to the new port", proto=17)
            tun.inject(reply)
            datagram, source = receive(moved)
            assert udp.normalize(source) == endpoint  # from the listening socket, as before
            assert client.device.decrypt(datagram, endpoint, time.monotonic()) == reply

            # nobody else can bind the port, with or without SO_REUSEPORT
            for reuse in (0, 1):
                def bind_again(reuse=reuse) -> int:
                    other = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, reuse)
                    try:
                        other.bind(("::", endpoint[1]))
                    except OSError as exc:
                        return exc.errno
                    finally:
                        other.close()
                    return 0
                assert in_namespace(ns, bind_again) == errno.EADDRINUSE
        finally:
            tunnel.stop()
            thread.join(timeout=5)
            tun.close()
            for each in (sock, moved, stranger):
                each.close()
