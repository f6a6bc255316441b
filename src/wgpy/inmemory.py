"""Two device cores wired back to back in memory, with a fake clock.

Used by the core tests and by `python3 -m wgpy.demo` without root alike: nothing here touches
the OS, so every timer scenario runs in milliseconds and is reproducible from the seed.
"""

import ipaddress
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from wgpy.core.crypto import public_key
from wgpy.core.device import Device
from wgpy.core.inet import IPV4_HEADER_SIZE
from wgpy.core.keys import generate_private_key
from wgpy.core.peer import Endpoint, Peer


def seeded_random(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return rng.randbytes


def ipv4_packet(source: str, destination: str, payload: bytes = b"ping", proto: int = 1) -> bytes:
    """A minimal IPv4 packet (header checksum left zero: the core does not check it)."""
    total = IPV4_HEADER_SIZE + len(payload)
    src = bytes(int(x) for x in source.split("."))
    dst = bytes(int(x) for x in destination.split("."))
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, proto, 0, src, dst)
    return header + payload


def ipv6_packet(source: str, destination: str, payload: bytes = b"ping6") -> bytes:
    src = ipaddress.IPv6Address(source).packed
    dst = ipaddress.IPv6Address(destination).packed
    header = struct.pack("!IHBB16s16s", 6 << 28, len(payload), 58, 64, src, dst)
    return header + payload


@dataclass
class Side:
    name: str
    device: Device
    endpoint: Endpoint
    address: str
    peer: Peer = field(init=False)
    delivered: list[bytes] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)


class Pair:
    """Devices A (10.9.0.1) and B (10.9.0.2); `run()` carries datagrams until quiet."""

    def __init__(self, seed: int = 1, *, psk: bytes | None = None, b_knows_a_endpoint=True):
        self.now = 1000.0
        rand_a, rand_b = seeded_random(seed), seeded_random(seed + 1000)
        key_a, key_b = generate_private_key(rand_a), generate_private_key(rand_b)
        self.a = Side("A", Device(key_a, random_bytes=rand_a, wall_offset=1.7e9),
                      ("192.0.2.1", 51820), "10.9.0.1")
        self.b = Side("B", Device(key_b, random_bytes=rand_b, wall_offset=1.7e9),
                      ("192.0.2.2", 51821), "10.9.0.2")
        self.a.peer = self.a.device.add_peer(public_key(key_b))
        self.b.peer = self.b.device.add_peer(public_key(key_a))
        self.a.device.allowed_ips.insert("10.9.0.2/32", self.a.peer)
        self.a.device.allowed_ips.insert("fd00::2/128", self.a.peer)
        self.b.device.allowed_ips.insert("10.9.0.1/32", self.b.peer)
        self.b.device.allowed_ips.insert("fd00::1/128", self.b.peer)
        self.a.peer.endpoint = self.b.endpoint
        if b_knows_a_endpoint:
            self.b.peer.endpoint = self.a.endpoint
        if psk:
            self.a.device.set_preshared_key(self.a.peer, psk)
            self.b.device.set_preshared_key(self.b.peer, psk)
        # Datagrams in flight, dropped when `link_up` is False.
        self.link_up = True
        self.wire: list[tuple[Side, Endpoint, bytes]] = []

    def other(self, side: Side) -> Side:
        return self.b if side is self.a else self.a

    def send(self, side: Side, packet: bytes) -> None:
        """A packet enters `side`'s TUN."""
        result = side.device.encrypt(packet, self.now)
        if result is not None:
            self.wire.append((side, *result))
        self.collect(side)

    def collect(self, side: Side) -> None:
        for endpoint, datagram in side.device.take_outbox():
            self.wire.append((side, endpoint, datagram))
        for endpoint, datagram, _ in side.device.take_cookie_replies():
            self.wire.append((side, endpoint, datagram))

    def run(self, limit: int = 100) -> None:
        """Deliver in-flight datagrams (and whatever they provoke) until none are left."""
        self.step(limit)
        if self.wire:
            raise AssertionError("datagram storm")

    def step(self, count: int) -> None:
        """Deliver at most `count` datagrams."""
        for _ in range(count):
            if not self.wire:
                return
            sender, endpoint, datagram = self.wire.pop(0)
            sender.sent.append(datagram)
            if not self.link_up:
                continue
            receiver = self.other(sender)
            assert endpoint == receiver.endpoint, (endpoint, receiver.endpoint)
            packet = receiver.device.decrypt(datagram, sender.endpoint, self.now)
            if packet:
                receiver.delivered.append(packet)
            self.collect(receiver)

    def advance(self, seconds: float, step: float = 0.25) -> None:
        """Move the clock, firing each device's timers as their deadlines pass."""
        end = self.now + seconds
        while True:
            deadlines = [d for s in (self.a, self.b) if (d := s.device.next_deadline()) is not None]
            upcoming = min(deadlines, default=end + 1)
            if upcoming > end:
                self.now = end
                return
            self.now = max(self.now, upcoming)
            for side in (self.a, self.b):
                side.device.tick(self.now)
                self.collect(side)
            self.run()

    def handshake(self) -> None:
        self.send(self.a, ipv4_packet(self.a.address, self.b.address))
        self.run()


def live_pair_with_samples(seed: int = 7) -> tuple[Pair, dict[str, bytes]]:
    """A pair after a handshake and traffic both ways, plus one captured datagram of each kind
    (initiation, response, transport, cookie reply): the material for feeding a live core
    mutated valid input (tests/core/test_device_fuzz.py, bench/fuzz.py)."""
    pair = Pair(seed=seed)
    pair.b.device.handshakes.under_load_depth = 10**9
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"first"))
    samples = {"initiation": pair.wire[0][2]}
    pair.step(1)
    samples["response"] = pair.wire[0][2]
    pair.run()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"second"))
    samples["transport"] = pair.wire[-1][2]
    pair.run()
    pair.send(pair.b, ipv4_packet(pair.b.address, pair.a.address, b"back"))
    pair.run()
    # a cookie reply in its real format, made by B's checker as under load
    samples["cookie"] = pair.b.device.cookie_checker.create_reply(
        samples["initiation"], 1, b"\x01\x02\x03\x04\x00\x01", pair.now)
    return pair, samples
