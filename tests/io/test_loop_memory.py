"""The real data loop on in-memory devices (io/memory.py): two Tunnels back to back, no root.

What could only be tested as root before: a handshake and traffic through the loop, batching
past one wake-up's BATCH, cookie replies from the arrival address, sticky sources, link
down/up/MTU, rebinding the port, the I/O drops, and the interface going away.
"""

import contextlib
import errno
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from wgpy.core.constants import MESSAGE_HANDSHAKE_COOKIE
from wgpy.core.crypto import public_key
from wgpy.core.device import Device
from wgpy.core.drops import Drop
from wgpy.core.keys import generate_private_key
from wgpy.inmemory import ipv4_packet
from wgpy.io.loop import BATCH, LISTEN_SHARE, Tunnel
from wgpy.io.memory import ChannelBind, ChannelNetwork, ChannelTun


@dataclass
class End:
    tun: ChannelTun
    tunnel: Tunnel
    address: str

    @property
    def device(self) -> Device:
        return self.tunnel.device

    @property
    def bind(self) -> ChannelBind:
        assert isinstance(self.tunnel.udp, ChannelBind)
        return self.tunnel.udp


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


@contextlib.contextmanager
def back_to_back(*, under_load: bool = False) -> Iterator[tuple[End, End]]:
    """A (10.7.0.1) and B (10.7.0.2), each a Tunnel on a ChannelTun, over one ChannelNetwork;
    A knows B's endpoint. `under_load`: B answers every handshake with a cookie reply first."""
    network = ChannelNetwork()
    keys = [generate_private_key(os.urandom) for _ in range(2)]
    ends: list[End] = []
    for index, key in enumerate(keys):
        device = Device(key)
        tun = ChannelTun(f"mem{index}")
        ends.append(End(tun, Tunnel(tun, device, network.open, keep_warm=0), f"10.7.0.{index + 1}"))
    a, b = ends
    for this, other, other_key in ((a, b, keys[1]), (b, a, keys[0])):
        peer = this.device.add_peer(public_key(other_key))
        this.device.allowed_ips.insert(f"{other.address}/32", peer)
    a.device.peers[public_key(keys[1])].endpoint = network.endpoint(b.bind)
    if under_load:
        b.device.handshakes.under_load_depth = 0
    threads = [threading.Thread(target=end.tunnel.run) for end in ends]
    for thread in threads:
        thread.start()
    try:
        assert wait_for(lambda: a.device.running and b.device.running)
        yield a, b
    finally:
        for end, thread in zip(ends, threads, strict=True):
            end.tunnel.stop()
            thread.join(timeout=5)
            end.tun.close()


def ping(sender: End, receiver: End, payload: bytes = b"ping") -> bytes:
    packet = ipv4_packet(sender.address, receiver.address, payload)
    sender.tun.inject(packet)
    return packet


def test_handshake_and_traffic_both_ways():
    with back_to_back() as (a, b):
        first = ping(a, b, b"first")
        assert b.tun.take(1) == [first]
        back = ping(b, a, b"back")
        assert a.tun.take(1) == [back]
        for end in (a, b):
            assert not any(end.device.drops.values())
            assert not any(end.tunnel.io_drops().values())


def test_a_burst_larger_than_one_batch_arrives_whole_and_in_order():
    with back_to_back() as (a, b):
        sent = ping(a, b)  # the session exists
        assert b.tun.take(1) == [sent]
        burst = [ipv4_packet(a.address, b.address, i.to_bytes(2, "big"))
                 for i in range(2 * BATCH + 5)]
        for packet in burst:
            a.tun.inject(packet)
        assert b.tun.take(len(burst)) == burst


def test_a_sender_that_authenticated_keeps_the_address_it_reached_us_on():
    with back_to_back() as (a, b):
        sent = ping(a, b)
        assert b.tun.take(1) == [sent]
        a_endpoint = (b.bind.network.host, a.tunnel.listen_port())
        assert next(iter(b.device.peers.values())).endpoint == a_endpoint
        assert b.bind.sources == {a_endpoint: b.bind.pktinfo}
        assert b.bind.replies == []


def test_a_cookie_reply_leaves_from_the_arrival_address_and_sticks_to_nobody():
    with back_to_back(under_load=True) as (a, b):
        packet = ping(a, b)
        assert b.tun.take(1, timeout=10) == [packet]  # after the cookie round and a retry
        assert b.device.drops[Drop.COOKIE_NEEDED] >= 1
        cookie_replies = [reply for _, reply in b.bind.replies]
        assert cookie_replies and all(r[0] == MESSAGE_HANDSHAKE_COOKIE for r in cookie_replies)
        assert b.bind.replies[0][0] == next(iter(b.device.peers.values())).endpoint
        # the initiation that did authenticate (with mac2) made the address sticky
        assert list(b.bind.sources.values()) == [b.bind.pktinfo]


def test_link_down_stops_traffic_and_up_brings_it_back_with_the_new_mtu():
    with back_to_back() as (a, b):
        sent = ping(a, b)
        assert b.tun.take(1) == [sent]
        a.tun.set_up(False)
        assert wait_for(lambda: not a.device.running)
        ping(a, b, b"while down")
        with pytest.raises(queue.Empty):
            b.tun.take(1, timeout=0.2)
        a.tun.set_mtu(1280)
        a.tun.set_up(True)
        assert wait_for(lambda: a.device.running and a.device.mtu == 1280)
        after = ping(a, b, b"after")
        assert b.tun.take(1) == [after]  # a new session: going down forgot the old one


def test_rebinding_moves_the_port_and_a_taken_port_keeps_the_old_one():
    with back_to_back() as (a, b):
        old = a.bind
        taken = b.tunnel.listen_port()
        with pytest.raises(OSError) as refused:
            a.tunnel.call(lambda: a.tunnel.set_listen_port(taken))
        assert refused.value.errno == errno.EADDRINUSE
        assert a.bind is old and not old.closed
        a.tunnel.call(lambda: a.tunnel.set_listen_port(51999))
        assert a.tunnel.listen_port() == 51999 and old.closed
        sent = ping(a, b)  # the new port carries traffic
        assert b.tun.take(1) == [sent]


def test_what_the_io_shell_loses_is_counted():
    with back_to_back() as (a, b):
        sent = ping(a, b)
        assert b.tun.take(1) == [sent]
        b.tun.refuse_writes = True
        ping(a, b)
        assert wait_for(lambda: b.tunnel.io_drops()["tun_write_failed"] == 1)
        peer = next(iter(a.device.peers.values()))
        a.tunnel.call(lambda: setattr(peer, "endpoint", ("127.0.0.1", 9)))  # nobody there
        ping(a, b)
        assert wait_for(lambda: a.tunnel.io_drops()["udp_send_failed"] >= 1)


def test_the_loop_ends_when_the_interface_goes_away():
    with back_to_back() as (a, _):
        a.tun.delete()
        assert wait_for(lambda: a.tunnel.udp is None)  # run() returned and let go of the bind


# ---------------------------------------------------------------------- lanes


def test_an_authenticated_sender_gets_a_lane_and_its_datagrams_arrive_there():
    with back_to_back() as (a, b):
        first = ping(a, b, b"first")
        assert b.tun.take(1) == [first]
        a_endpoint = (b.bind.network.host, a.tunnel.listen_port())
        assert b.tunnel.call(b.tunnel.lanes.endpoints) == [a_endpoint]
        [lane] = b.bind.lanes  # (opened by the initiation that authenticated)
        on_lane, on_listening_socket = lane.received, b.bind.received
        later = [ping(a, b, bytes([i])) for i in range(5)]
        assert b.tun.take(5) == later
        assert lane.received == on_lane + 5 and b.bind.received == on_listening_socket
        # the peer's replies still leave from the listening socket, as before
        back = ping(b, a, b"back")
        assert a.tun.take(1) == [back]
        assert b.bind.sent[-1][0] == a_endpoint


def test_no_lane_for_a_sender_that_did_not_authenticate():
    with back_to_back() as (a, b):
        sent = ping(a, b)
        assert b.tun.take(1) == [sent]
        stranger = ("127.0.0.1", 40999)
        for _ in range(20):  # garbage and forged data from someone without a session
            b.bind.network.deliver(b"\x04" + bytes(40), stranger, b.bind.network.endpoint(b.bind))
            b.bind.network.deliver(b"\x01" + bytes(147), stranger, b.bind.network.endpoint(b.bind))
        assert wait_for(lambda: b.bind.pending() == 0)
        assert b.tunnel.call(b.tunnel.lanes.endpoints) == [(b.bind.network.host,
                                                            a.tunnel.listen_port())]


def test_lanes_are_read_first_and_the_listening_socket_gets_only_its_share():
    """With a lane and the listening socket both full when the loop wakes, the lane is read
    BATCH at a time and the listening socket LISTEN_SHARE per wake-up until the lane is
    empty (not starved, not more), then BATCH at a time."""
    with back_to_back() as (a, b):
        sent = ping(a, b)
        assert b.tun.take(1) == [sent]
        [lane] = b.bind.lanes
        order: list[str] = []
        for name, inbox in (("lane", lane), ("listen", b.bind)):
            def recording(real=inbox.receive, name=name):
                result = real()
                if result is not None:
                    order.append(name)
                return result
            inbox.receive = recording  # type: ignore[method-assign]
        gate = threading.Event()
        blocked = threading.Thread(target=lambda: b.tunnel.call(gate.wait))
        blocked.start()  # b's loop waits in this call while both fill up
        try:
            count = 2 * BATCH + 8  # three wake-ups' worth
            packets = [ping(a, b, i.to_bytes(2, "big") * 4) for i in range(count)]
            assert wait_for(lambda: lane.pending() == count)
            stranger = ("127.0.0.1", 40999)
            for _ in range(4 * BATCH):
                b.bind.arrive(b"\xff" + bytes(31), stranger)  # no message type: dropped
        finally:
            gate.set()
            blocked.join()
        assert b.tun.take(count) == packets
        assert wait_for(lambda: b.bind.pending() == 0)
        last_of_lane = len(order) - 1 - order[::-1].index("lane")
        assert order.count("lane") == count
        assert 1 <= order[:last_of_lane].count("listen") <= 3 * LISTEN_SHARE
        assert order.count("listen") == 4 * BATCH  # then all of it, BATCH per wake-up


def test_a_roaming_peer_gets_a_lane_at_its_new_endpoint_and_traffic_follows():
    with back_to_back() as (a, b):
        sent = ping(a, b)
        assert b.tun.take(1) == [sent]
        a.tunnel.call(lambda: a.tunnel.set_listen_port(52111))  # a moves to another port
        moved = ping(a, b, b"from the new port")
        assert b.tun.take(1) == [moved]
        host = b.bind.network.host
        peer = next(iter(b.device.peers.values()))
        assert peer.endpoint == (host, 52111)
        assert set(b.tunnel.call(b.tunnel.lanes.endpoints)) >= {(host, 52111)}
        back = ping(b, a, b"to the new port")
        assert a.tun.take(1) == [back]
        later = ping(a, b, b"on the new lane")
        assert b.tun.take(1) == [later]
        assert b.bind.lanes[-1].received >= 1


def test_rebinding_closes_the_lanes_of_the_old_port():
    with back_to_back() as (a, b):
        sent = ping(a, b)
        assert b.tun.take(1) == [sent]
        [lane] = b.bind.lanes
        b.tunnel.call(lambda: b.tunnel.set_listen_port(52222))
        assert lane.closed and len(b.tunnel.lanes) == 0


def test_a_refused_lane_leaves_the_peer_on_the_listening_socket():
    with back_to_back() as (a, b):
        b.bind.refuse_lanes = True  # (too many open files)
        packets = [ping(a, b, bytes([i])) for i in range(3)]
        assert b.tun.take(3) == packets
        assert b.tunnel.lanes.refused >= 1 and len(b.tunnel.lanes) == 0
