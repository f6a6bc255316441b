"""Byte compatibility of the sans-I/O core with wireguard-go, with no TUN on our side.

wireguard-go runs in a namespace of its own, configured with the real `wg`. The test holds a
plain UDP socket in a second namespace (joined by veth) and drives a wgpy Device by hand:
handshake both ways, an ICMP echo built by hand each way, checked after decryption; and the
cookie exchange both ways, each side put under load in turn.
"""

import functools
import os
import select
import socket
import subprocess
import time

import pytest

from wgpy.core.constants import (
    MESSAGE_HANDSHAKE_COOKIE,
    MESSAGE_HANDSHAKE_INITIATION,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
)
from wgpy.core.cookie import CookieGenerator
from wgpy.core.crypto import public_key
from wgpy.core.device import Device
from wgpy.core.drops import Drop
from wgpy.core.keys import generate_private_key, key_to_base64

from netlab import Namespace, socket_in_namespace, start_wireguard_go, veth_pair

pytestmark = pytest.mark.root

GO_UNDERLAY, PY_UNDERLAY = "192.168.231.1", "192.168.231.2"
GO_TUNNEL, PY_TUNNEL = "10.231.0.1", "10.231.0.2"
GO_PORT = 51820


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp_echo(source: str, destination: str, kind: int, ident: int, seq: int, data: bytes) -> bytes:
    """An IPv4 ICMP echo request (kind 8) or reply (kind 0) with valid checksums."""
    icmp = bytearray(bytes([kind, 0, 0, 0]) + ident.to_bytes(2, "big") + seq.to_bytes(2, "big"))
    icmp += data
    icmp[2:4] = checksum(bytes(icmp)).to_bytes(2, "big")
    header = bytearray(20)
    header[0], header[8], header[9] = 0x45, 64, 1
    header[2:4] = (20 + len(icmp)).to_bytes(2, "big")
    header[12:16] = socket.inet_aton(source)
    header[16:20] = socket.inet_aton(destination)
    header[10:12] = checksum(bytes(header)).to_bytes(2, "big")
    return bytes(header) + bytes(icmp)


class Driver:
    """Moves datagrams between the core and the UDP socket."""

    def __init__(self, device: Device, sock: socket.socket) -> None:
        self.device, self.sock = device, sock
        self.delivered: list[bytes] = []
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.clock_offset = 0.0  # the core's clock may be moved ahead (timers on demand)

    def now(self) -> float:
        return time.monotonic() + self.clock_offset

    def flush(self) -> None:
        replies = [(endpoint, datagram) for endpoint, datagram, _ in
                   self.device.take_cookie_replies()]
        for (host, port), datagram in self.device.take_outbox() + replies:
            self.sent.append(datagram)
            self.sock.sendto(datagram, (host, port))

    def send_packet(self, packet: bytes) -> None:
        result = self.device.encrypt(packet, self.now())
        if result is not None:
            (host, port), datagram = result
            self.sent.append(datagram)
            self.sock.sendto(datagram, (host, port))
        self.flush()

    def pump_until(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; drops={self.nonzero_drops()}, received "
                                     f"{[d[0] for d in self.received]}")
            ready, _, _ = select.select([self.sock], [], [], min(remaining, 0.2))
            self.device.tick(self.now())
            if ready:
                datagram, (host, port) = self.sock.recvfrom(65535)
                self.received.append(datagram)
                packet = self.device.decrypt(datagram, (host, port), self.now())
                if packet:
                    self.delivered.append(packet)
            self.flush()

    def nonzero_drops(self) -> dict[str, int]:
        return {k: v for k, v in self.device.drops.items() if v}


@pytest.fixture
def lab(wireguard_go):
    suffix = f"{os.getpid() % 100000}"
    with Namespace(f"wgpyi-go{suffix}") as go_ns, Namespace(f"wgpyi-py{suffix}") as py_ns:
        veth_pair(go_ns, f"vgo{suffix}", GO_UNDERLAY + "/24", py_ns, f"vpy{suffix}",
                  PY_UNDERLAY + "/24")
        iface = f"wgi{suffix}"
        go_key = generate_private_key(os.urandom)
        with start_wireguard_go(go_ns, iface):
            key_file = f"/tmp/{iface}.key"
            with open(key_file, "w") as handle:
                handle.write(key_to_base64(go_key))
            go_ns.run("wg", "set", iface, "private-key", key_file, "listen-port", str(GO_PORT))
            os.unlink(key_file)
            go_ns.run("ip", "addr", "add", GO_TUNNEL + "/24", "dev", iface)
            go_ns.run("ip", "link", "set", iface, "up")
            sock = socket_in_namespace(py_ns, socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((PY_UNDERLAY, 0))
            try:
                yield go_ns, iface, public_key(go_key), sock, py_ns
            finally:
                sock.close()


def make_core(go_ns, iface: str, go_public: bytes, sock: socket.socket, psk: bytes | None):
    key = generate_private_key(os.urandom)
    device = Device(key, wall_offset=time.time() - time.monotonic())
    peer = device.add_peer(go_public)
    device.allowed_ips.insert(GO_TUNNEL + "/32", peer)
    peer.endpoint = (GO_UNDERLAY, GO_PORT)
    args = ["wg", "set", iface, "peer", key_to_base64(public_key(key)),
            "allowed-ips", PY_TUNNEL + "/32",
            "endpoint", f"{PY_UNDERLAY}:{sock.getsockname()[1]}"]
    if psk:
        device.set_preshared_key(peer, psk)
        psk_file = f"/tmp/{iface}.psk"
        with open(psk_file, "w") as handle:
            handle.write(key_to_base64(psk))
        args += ["preshared-key", psk_file]
    go_ns.run(*args)
    if psk:
        os.unlink(psk_file)
    return Driver(device, sock), peer


@pytest.mark.parametrize("psk", [None, os.urandom(32)], ids=["no-psk", "psk"])
def test_core_initiates_and_pings_wireguard_go(lab, psk):
    go_ns, iface, go_public, sock, _py_ns = lab
    driver, peer = make_core(go_ns, iface, go_public, sock, psk)
    request = icmp_echo(PY_TUNNEL, GO_TUNNEL, 8, 0x1234, 1, b"wgpy interop payload")
    driver.send_packet(request)  # staged; sends the initiation
    driver.pump_until(lambda: len(driver.delivered) >= 1)
    reply = driver.delivered[0]
    assert reply[9] == 1 and reply[20] == 0, "expected an ICMP echo reply"
    assert socket.inet_ntoa(reply[12:16]) == GO_TUNNEL
    assert reply[24:26] == (0x1234).to_bytes(2, "big")
    assert reply[28:] == b"wgpy interop payload"
    assert peer.keypairs.current is not None and peer.keypairs.current.is_initiator
    dump = go_ns.run("wg", "show", iface, "latest-handshakes").stdout
    assert key_to_base64(driver.device.public_key) in dump
    assert not dump.strip().endswith("\t0")


def test_wireguard_go_initiates_and_core_responds(lab):
    go_ns, iface, go_public, sock, _py_ns = lab
    driver, peer = make_core(go_ns, iface, go_public, sock, None)
    peer.endpoint = None  # learn it from wireguard-go's initiation (roaming)
    ping = subprocess.Popen(
        ["ip", "netns", "exec", go_ns.name, "ping", "-c", "1", "-W", "5", PY_TUNNEL],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        driver.pump_until(lambda: len(driver.delivered) >= 1)
        request = driver.delivered[0]
        assert request[9] == 1 and request[20] == 8, "expected an ICMP echo request"
        assert socket.inet_ntoa(request[12:16]) == GO_TUNNEL
        assert peer.endpoint == (GO_UNDERLAY, GO_PORT)
        assert peer.keypairs.current is not None and not peer.keypairs.current.is_initiator
        ident, seq = request[24:26], request[26:28]
        reply = icmp_echo(PY_TUNNEL, GO_TUNNEL, 0, int.from_bytes(ident, "big"),
                          int.from_bytes(seq, "big"), request[28:])
        driver.send_packet(reply)
        output, _ = ping.communicate(timeout=10)
        assert ping.returncode == 0, output.decode()
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait()


def test_wireguard_go_rejects_forged_core_traffic(lab):
    """A transport packet with one flipped bit must not reach wireguard-go's TUN."""
    go_ns, iface, go_public, sock, _py_ns = lab
    driver, _peer = make_core(go_ns, iface, go_public, sock, None)
    driver.send_packet(icmp_echo(PY_TUNNEL, GO_TUNNEL, 8, 7, 1, b"first"))
    driver.pump_until(lambda: len(driver.delivered) >= 1)
    result = driver.device.encrypt(icmp_echo(PY_TUNNEL, GO_TUNNEL, 8, 7, 2, b"forged"),
                                   time.monotonic())
    assert result is not None
    endpoint, datagram = result
    forged = bytearray(datagram)
    forged[-1] ^= 1
    sock.sendto(bytes(forged), endpoint)
    with pytest.raises(AssertionError, match="timed out"):
        driver.pump_until(lambda: len(driver.delivered) >= 2, timeout=1.5)


def _initiations(datagrams: list[bytes]) -> list[bytes]:
    return [d for d in datagrams if d[0] == MESSAGE_HANDSHAKE_INITIATION]


def test_core_under_load_sends_a_cookie_that_wireguard_go_answers_with_mac2(lab):
    """We are under load: wireguard-go's initiation gets a cookie reply, and its retry after
    REKEY_TIMEOUT carries a mac2 from that cookie, which we accept."""
    go_ns, iface, go_public, sock, _py_ns = lab
    driver, peer = make_core(go_ns, iface, go_public, sock, None)
    driver.device.handshakes.under_load_depth = 0  # every handshake finds us under load
    ping = subprocess.Popen(
        ["ip", "netns", "exec", go_ns.name, "ping", "-c", "1", "-W", "15", PY_TUNNEL],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        driver.pump_until(lambda: len(driver.delivered) >= 1, timeout=15)
        assert driver.device.drops[Drop.COOKIE_NEEDED] >= 1
        assert driver.sent[0][0] == MESSAGE_HANDSHAKE_COOKIE
        first, *retries = _initiations(driver.received)
        assert first[-16:] == bytes(16)  # no cookie yet: mac2 zero
        assert retries and retries[-1][-16:] != bytes(16), "the retry must carry mac2"
        assert peer.keypairs.current is not None and not peer.keypairs.current.is_initiator
    finally:
        ping.kill()
        ping.wait()


class Blaster:
    """Handshake initiations with a valid mac1 and garbage inside, from a socket of its own,
    as fast as Python sends: wireguard-go's handshake queue passes 1/8 full and it goes under
    load (for UnderLoadAfterTime, 1 s). The cookie replies it gets back prove it."""

    def __init__(self, py_ns, go_public: bytes) -> None:
        self.sock = socket_in_namespace(py_ns, socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((PY_UNDERLAY, 0))
        self.sock.setblocking(False)
        message = bytearray(os.urandom(148))
        message[:4] = bytes([MESSAGE_HANDSHAKE_INITIATION, 0, 0, 0])
        CookieGenerator(go_public).add_macs(message, 0.0)
        self.message = bytes(message)
        self.cookie_replies = 0

    def burst(self, count: int) -> None:
        for _ in range(count):
            try:
                self.sock.sendto(self.message, (GO_UNDERLAY, GO_PORT))
            except BlockingIOError:
                time.sleep(0.0005)

    def load(self) -> None:
        """Burst until the first cookie reply: wireguard-go is under load, and once we stop
        its receive buffer (which the bursts overflow) has room again for our initiation."""
        before = self.count_replies()
        deadline = time.monotonic() + 5
        while self.count_replies() == before:
            assert time.monotonic() < deadline, "wireguard-go never went under load"
            self.burst(300)
            time.sleep(0.001)

    def count_replies(self) -> int:
        while True:
            try:
                reply = self.sock.recv(2048)
            except BlockingIOError:
                return self.cookie_replies
            self.cookie_replies += reply[0] == MESSAGE_HANDSHAKE_COOKIE

    def close(self) -> None:
        self.sock.close()


def _under_load(driver: Driver, blaster: Blaster, initiate, answered) -> None:
    """Load wireguard-go, initiate, wait for `answered`; an initiation lost in the flood (its
    receive buffer overflows) is sent again, as the retransmit timer would, up to 3 times."""
    for _attempt in range(3):
        blaster.load()
        initiate()
        try:
            driver.pump_until(answered, timeout=1.5)
            return
        except AssertionError:
            initiate = functools.partial(_retransmit_now, driver)
    driver.pump_until(answered, timeout=0)  # fails, saying what was received


def _retransmit_now(driver: Driver) -> None:
    """Move the core's clock past the retransmit time and let its timers send."""
    driver.clock_offset += REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 0.1
    driver.device.tick(driver.now())
    driver.flush()


def test_wireguard_go_under_load_cookie_is_taken_and_mac2_accepted(lab):
    """wireguard-go is under load: our initiation gets its cookie reply, which we decrypt;
    our next initiation carries mac2 and wireguard-go, still under load, answers it (a bad
    mac2 would get a second cookie reply instead)."""
    go_ns, iface, go_public, sock, py_ns = lab
    driver, peer = make_core(go_ns, iface, go_public, sock, None)
    blaster = Blaster(py_ns, go_public)
    try:
        request = icmp_echo(PY_TUNNEL, GO_TUNNEL, 8, 9, 1, b"under load")
        _under_load(driver, blaster, lambda: driver.send_packet(request),
                    lambda: MESSAGE_HANDSHAKE_COOKIE in [d[0] for d in driver.received])
        assert driver.device.drops[Drop.BAD_COOKIE_REPLY] == 0
        assert peer.keypairs.current is None
        cookies = [d[0] for d in driver.received].count(MESSAGE_HANDSHAKE_COOKIE)
        sent_before = len(_initiations(driver.sent))

        _under_load(driver, blaster, functools.partial(_retransmit_now, driver),
                    lambda: len(driver.delivered) >= 1)
        assert all(i[-16:] != bytes(16) for i in _initiations(driver.sent)[sent_before:]), \
            "initiations after the cookie must carry mac2"
        assert peer.keypairs.current is not None and peer.keypairs.current.is_initiator
        assert [d[0] for d in driver.received].count(MESSAGE_HANDSHAKE_COOKIE) == cookies
        assert driver.delivered[0][28:] == b"under load"
    finally:
        blaster.close()
