"""TCP through tunnels whose underlay cannot carry a whole tunnel packet (issue 17).

With the default tunnel MTU of 1420 a full datagram needs 1480 bytes on an IPv4 underlay and
1500 on IPv6; over a 1400-byte path the datagrams must be fragmented. wgpyd's UDP GSO sends
are refused for such paths (a GSO segment is never fragmented), so these tests fail if it
does not fall back to sends the kernel fragments: TCP would stall. Both directions carry data
at once, with the narrow link local to both hosts or behind a router (where the sender learns
the path MTU only from ICMP frag-needed / Packet Too Big), v4 and v6 underlays, wgpyd paired
with itself and with wireguard-go either way round.
"""

import socket
import threading
import time

import pytest

from netlab import Namespace, socket_in_namespace
from tunnel_lab import Lab, tunnel_lab

pytestmark = pytest.mark.root

PATH_MTU = 1400
TRANSFER_BYTES = 8 * 1024 * 1024
TIMEOUT = 20.0
PAIRINGS = [("wgpyd", "wgpyd"), ("wgpyd", "wireguard-go"), ("wireguard-go", "wgpyd")]
FRAGMENTS_CREATED = {"4": "IpFragCreates", "6": "Ip6FragCreates", "mapped": "IpFragCreates"}


def transfer_both_ways(lab: Lab, size: int = TRANSFER_BYTES,
                       timeout: float = TIMEOUT) -> dict[str, int]:
    """A TCP connection through the tunnel (A connects to B) carrying `size` bytes each way
    at once; returns the bytes that arrived at each end within `timeout`."""
    listener = socket_in_namespace(lab.b.ns, socket.AF_INET, socket.SOCK_STREAM)
    client = socket_in_namespace(lab.a.ns, socket.AF_INET, socket.SOCK_STREAM)
    with listener, client:
        listener.bind((lab.b.tunnel4, 0))
        listener.listen(1)
        listener.settimeout(5)
        client.settimeout(5)
        client.connect((lab.b.tunnel4, listener.getsockname()[1]))
        server, _ = listener.accept()
        with server:
            deadline = time.monotonic() + timeout
            received = {"a": 0, "b": 0}
            chunk = bytes(range(256)) * 256

            def send(sock: socket.socket) -> None:
                sock.settimeout(timeout)
                try:
                    for _ in range(size // len(chunk)):
                        sock.sendall(chunk)
                except OSError:
                    pass  # the receiving side reports the shortfall

            def receive(sock: socket.socket, name: str) -> None:
                while received[name] < size and time.monotonic() < deadline:
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    try:
                        data = sock.recv(1 << 20)
                    except OSError:
                        return
                    if not data:
                        return
                    received[name] += len(data)

            threads = [threading.Thread(target=send, args=(client,)),
                       threading.Thread(target=send, args=(server,)),
                       threading.Thread(target=receive, args=(client, "a")),
                       threading.Thread(target=receive, args=(server, "b"))]
            for thread in threads:
                thread.start()
            for thread in threads[2:]:
                thread.join(timeout + 5)
            for sock in (client, server):  # unblock a sender stuck on a dead connection
                sock.shutdown(socket.SHUT_RDWR)
            for thread in threads[:2]:
                thread.join(5)
    return received


def wait_for_tunnel(lab: Lab, timeout: float = 10.0) -> None:
    """Ping B until it answers: the handshake is done (the routed lab's first packets can
    wait on neighbour discovery)."""
    deadline = time.monotonic() + timeout
    while lab.ping(lab.a, lab.b.tunnel4, count=1, check=False).returncode != 0:
        assert time.monotonic() < deadline, "no ping reply through the tunnel"


def fragments_created(ns: Namespace, family: str) -> int:
    """How many fragments the kernel made in `ns` (of datagrams larger than the path)."""
    counter = FRAGMENTS_CREATED[family]
    output = ns.run("nstat", "-asz", counter).stdout.split()
    return int(output[output.index(counter) + 1]) if counter in output else 0


def assert_nothing_lost_on_send(lab: Lab) -> None:
    for host in (lab.a, lab.b):
        if host.kind == "wgpyd":
            drops = host.drops()
            assert drops["udp_send_failed"] == 0, (host.iface, drops)


@pytest.mark.parametrize("pairing", PAIRINGS, ids="-to-".join)
@pytest.mark.parametrize("family", ["4", "6"])
@pytest.mark.parametrize("routed", [False, True], ids=["local", "routed"])
def test_tcp_moves_both_ways_through_a_narrow_path(wireguard_go, pairing, family, routed):
    with tunnel_lab(*pairing, endpoint_on_a=family, endpoint_on_b=family,
                    underlay_mtu=PATH_MTU, routed=routed) as lab:
        wait_for_tunnel(lab)
        received = transfer_both_ways(lab)
        assert received == {"a": TRANSFER_BYTES, "b": TRANSFER_BYTES}, received
        assert_nothing_lost_on_send(lab)
        # The path really was narrow: B's datagrams were fragmented by B, A's by A or, IPv4
        # only, by the router (UDP GSO sends go out without DF, so an IPv4 router fragments
        # them; IPv6 routers never do, so there A learned the path MTU from Packet Too Big).
        assert fragments_created(lab.b.ns, family) > 0
        assert fragments_created(lab.a.ns, family) + (
            fragments_created(lab.router, family) if lab.router else 0) > 0
        if routed and family == "6":
            route = lab.a.ns.run("ip", "route", "get", lab.b.underlay6).stdout
            assert f"mtu {PATH_MTU}" in route, route


def test_an_ipv4_mapped_endpoint_is_an_ipv4_path(wireguard_go):
    """An endpoint configured as [::ffff:a.b.c.d] travels over IPv4 and its path MTU is
    IPv4's: the same narrow link, the same result."""
    with tunnel_lab("wgpyd", "wgpyd", endpoint_on_a="mapped", endpoint_on_b="mapped",
                    underlay_mtu=PATH_MTU) as lab:
        wait_for_tunnel(lab)
        received = transfer_both_ways(lab)
        assert received == {"a": TRANSFER_BYTES, "b": TRANSFER_BYTES}, received
        assert_nothing_lost_on_send(lab)
        assert fragments_created(lab.a.ns, "mapped") > 0


@pytest.mark.parametrize("family", ["4", "6"])
def test_tcp_keeps_moving_when_the_path_narrows_mid_transfer(wireguard_go, family):
    """The router's far link shrinks while data flows, then widens again."""
    with tunnel_lab("wgpyd", "wgpyd", endpoint_on_a=family, endpoint_on_b=family,
                    underlay_mtu=1500, routed=True) as lab:
        wait_for_tunnel(lab)
        changes = threading.Timer(0.2, lab.set_path_mtu, (1280,))
        changes.start()
        try:
            received = transfer_both_ways(lab, size=4 * TRANSFER_BYTES)
        finally:
            changes.cancel()
        assert received == {"a": 4 * TRANSFER_BYTES, "b": 4 * TRANSFER_BYTES}, received
        assert fragments_created(lab.b.ns, family) > 0
        lab.set_path_mtu(1500)
        received = transfer_both_ways(lab)
        assert received == {"a": TRANSFER_BYTES, "b": TRANSFER_BYTES}, received
        assert_nothing_lost_on_send(lab)
