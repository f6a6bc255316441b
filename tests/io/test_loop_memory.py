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
from wgpy.io.loop import BATCH, Tunnel
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
