"""What `bench/fuzz.py` feeds, and what counts as a crash for each input surface.

A target turns one byte string into one call of the code under test and checks the contract:

- `datagram`: `Device.decrypt` on B of a live in-memory pair (wgpy.inmemory). The first byte
  picks the form: raw bytes; a captured valid message (initiation, response, cookie reply,
  transport data) with byte flips, a cut and a tail; or transport data sealed with A's real
  session key around a fuzzed inner packet (the only way past the AEAD to the inner-packet
  checks). Contract: never raises; garbage returns None, is counted under exactly one drop
  reason and changes no session state; a delivered packet is a whole IP packet whose source is
  in A's AllowedIPs; and the tunnel still carries traffic both ways (checked every
  `LIVENESS_EVERY` inputs).
- `uapi`: one connection's bytes through the server's sans-I/O framing (`RequestStream`:
  several requests, `get=1`, `set=1` bodies, CRLF, cut-off requests), each request answered
  as the server does (`format_get`, or `apply_set` on a real core Device). Contract: errno
  replies well-formed, only UapiError (a positive errno) from applying, and a refused request
  leaves the device exactly as it was (`format_get` unchanged).
- `config` / `quick`: `parse_config` of a wg / wg-quick file (plus `strip_quick`, and
  `parse_set_arguments` of the same text as `wg set` words for `config`). Contract: only
  ConfigError, and a file's error names the file and a line.

Host names are never looked up (getaddrinfo is limited to numeric hosts while fuzzing), key
files named in `wg set` words are the fuzzer's own temporary files, and each target keeps its
state small (the UAPI device is reset when it grows), so a million inputs run in minutes.
"""

import logging
import os
import re
import socket
import struct
import tempfile
from collections import Counter
from collections.abc import Callable

from wgpy.config.parser import parse_config, parse_set_arguments, strip_quick
from wgpy.config.values import ConfigError
from wgpy.core.crypto import aead_nonce
from wgpy.core.device import Device
from wgpy.core.messages import TRANSPORT_HEADER
from wgpy.inmemory import Pair, ipv4_packet, ipv6_packet, live_pair_with_samples
from wgpy.uapi.framing import Close, Get, Reply, RequestStream, Set
from wgpy.uapi.protocol import UapiError, apply_set, format_get

MESSAGE_TRANSPORT_DATA = 4
LIVENESS_EVERY = 2000


class ContractViolation(AssertionError):
    """An input broke its target's contract (other than by raising): a crash."""


def numeric_hosts_only() -> None:
    """Make every getaddrinfo numeric (AI_NUMERICHOST): a fuzzed Endpoint must not become a
    DNS query (nor wait through resolution retries). Service names still resolve locally."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host is not None:
            flags |= socket.AI_NUMERICHOST
        return real(host, port, family, type, proto, flags)

    socket.getaddrinfo = getaddrinfo
    os.environ["WG_ENDPOINT_RESOLUTION_RETRIES"] = "0"
    logging.disable(logging.WARNING)  # host-bit warnings, a million times over


# ---------------------------------------------------------------------- datagram


SOURCES = (("192.0.2.1", 51820), ("203.0.113.5", 9), ("2001:db8::1", 51820))


def _session_state(pair: Pair) -> tuple:
    device, peer = pair.b.device, pair.b.peer
    slots = peer.keypairs
    return (slots.current, slots.previous, slots.next, dict(device.index_table.entries),
            peer.endpoint, peer.handshake.state, peer.handshake.latest_timestamp,
            len(device.peers))


def _is_whole_ip_packet(packet: bytes) -> bool:
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        return struct.unpack_from("!H", packet, 2)[0] == len(packet)
    if len(packet) >= 40 and packet[0] >> 4 == 6:
        return struct.unpack_from("!H", packet, 4)[0] + 40 == len(packet)
    return False


class DatagramTarget:
    name = "datagram"
    max_len = 1600

    def __init__(self) -> None:
        self.pair, self.samples = live_pair_with_samples(seed=11)
        # as in wgpyd: handshakes queue in decrypt and are finished after it
        self.pair.b.device.defer_handshakes = True
        self.kinds = sorted(self.samples)
        self.inputs = 0
        self.delivered = 0
        self.forms: Counter[str] = Counter()

    def seeds(self) -> list[bytes]:
        inner = [ipv4_packet("10.9.0.1", "10.9.0.2", b"x" * 20, proto=17),
                 ipv6_packet("fd00::1", "fd00::2", b"y" * 16), b""]
        return ([b"\x00" + sample for sample in self.samples.values()]
                + [bytes([1, i, 3, 0x40, 17, 0x01]) for i in range(len(self.kinds))]
                + [b"\x02" + packet for packet in inner])

    def _sealed(self, plaintext: bytes) -> bytes:
        """Transport data from A's current session around `plaintext`, as A would send it."""
        keypair = self.pair.a.peer.keypairs.current
        counter = keypair.send_counter
        keypair.send_counter = counter + 1
        return (TRANSPORT_HEADER.pack(MESSAGE_TRANSPORT_DATA, keypair.remote_index, counter)
                + keypair.send.encrypt(aead_nonce(counter), plaintext, b""))

    def _mutated(self, data: bytes) -> bytes:
        """data[1]: which sample; then (position, xor) pairs; a trailing odd byte cuts there."""
        message = bytearray(self.samples[self.kinds[data[1] % len(self.kinds)]])
        body = data[2:]
        for i in range(0, len(body) - 1, 2):
            position = body[i] % (len(message) + 1)
            if position < len(message):
                message[position] ^= body[i + 1] or 0xFF
        if len(body) % 2:
            message = message[:body[-1] % (len(message) + 1)]
        return bytes(message)

    def __call__(self, data: bytes) -> None:
        if not data:
            return
        form = data[0] % 3
        source = SOURCES[data[0] // 3 % len(SOURCES)]
        if form == 2:
            source = self.pair.a.endpoint  # authenticated: anything else would roam the peer
        if form == 0:
            datagram, garbage = data[1:], True
        elif form == 1 and len(data) > 1:
            datagram, garbage = self._mutated(data), True
        else:
            datagram, garbage = self._sealed(data[1:]), False
        self.forms[("raw", "mutated", "sealed")[form]] += 1
        device = self.pair.b.device
        before = _session_state(self.pair) if garbage else None
        dropped = sum(device.drops.values())
        packet = device.decrypt(datagram, source, self.pair.now)
        while device.handshakes:
            device.process_handshake(self.pair.now)
        device.take_outbox()
        device.take_cookie_replies()
        device.take_tun_outbox()
        drops = sum(device.drops.values()) - dropped
        if garbage:
            if packet is not None or drops != 1:
                raise ContractViolation(f"garbage gave {packet!r} and {drops} drops")
            if _session_state(self.pair) != before:
                raise ContractViolation("garbage changed the session state")
        elif packet:
            self.delivered += 1
            if not _is_whole_ip_packet(packet):
                raise ContractViolation(f"delivered a malformed packet {packet[:40].hex()}")
            if self.pair.b.device.allowed_ips.lookup(_source_address(packet)) is not \
                    self.pair.b.peer:
                raise ContractViolation("delivered a packet from outside A's AllowedIPs")
        elif drops > 1 or (drops == 0 and data[1:]):
            raise ContractViolation(f"sealed packet: {drops} drops for one datagram")
        self.inputs += 1
        if self.inputs % LIVENESS_EVERY == 0:
            self.check_alive()

    def check_alive(self) -> None:
        """Both directions still deliver: no input lost the session."""
        for side in (self.pair.a, self.pair.b):
            other = self.pair.other(side)
            marker = f"alive {self.inputs} {side.name}".encode()
            self.pair.send(side, ipv4_packet(side.address, other.address, marker))
            self.pair.run()
            if not other.delivered or not other.delivered[-1].endswith(marker):
                raise ContractViolation(f"{side.name} → {other.name} no longer delivers")
            other.delivered.clear()

    def summary(self) -> dict:
        drops = {reason: count for reason, count in self.pair.b.device.drops.items() if count}
        return {"forms": dict(self.forms), "delivered": self.delivered, "drops": drops}


def _source_address(packet: bytes) -> bytes:
    return packet[12:16] if packet[0] >> 4 == 4 else packet[8:24]


# ---------------------------------------------------------------------- uapi


class _Host:
    """A DeviceHost without I/O: ports and marks remembered, port 1 "in use" (OSError)."""

    def __init__(self) -> None:
        self.device = Device(wall_offset=1_700_000_000.0)
        self.port = self.mark = 0

    def listen_port(self) -> int:
        return self.port

    def set_listen_port(self, port: int) -> None:
        if port == 1:
            raise OSError(98, "Address already in use")
        self.port = port

    def fwmark(self) -> int:
        return self.mark

    def set_fwmark(self, mark: int) -> None:
        self.mark = mark

    def now(self) -> float:
        return 100.0

    def call(self, fn: Callable):
        return fn()

    def io_drops(self) -> dict[str, int]:
        return {}


_UAPI_SET = (
    "private_key=" + "a8" * 32 + "\nlisten_port=51820\nfwmark=16\nreplace_peers=true\n"
    "public_key=" + "b9" * 32 + "\npreshared_key=" + "01" * 32 + "\nendpoint=192.0.2.1:51820\n"
    "persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.0.0.0/24\n"
    "allowed_ip=fd00::/64\nprotocol_version=1\n")
_UAPI_SEEDS = (
    f"set=1\n{_UAPI_SET}\n",
    "set=1\npublic_key=" + "c1" * 32 + "\nendpoint=[2001:db8::1%lo]:51820\nremove=true\n\n"
    "get=1\n\n",
    "set=1\npublic_key=" + "d2" * 32 + "\nupdate_only=true\nallowed_ip=192.0.2.0/33\r\n\n",
    "set=1\nlisten_port=99999999999999999999\n\nget=1\nx",
    "get=1\n\nset=1\nfwmark=0\nprivate_key=" + "00" * 32 + "\n",
)
_ERRNO_REPLY = re.compile(rb"errno=-[1-9][0-9]*\n\n\Z")


class UapiTarget:
    """One connection's bytes through the server's sans-I/O framing (RequestStream), every
    request answered as the server does: `get` formatted, `set` applied to the device."""

    name = "uapi"
    max_len = 12_000
    RESET_AT_PEERS = 16

    def __init__(self) -> None:
        self.host = self._fresh_host()
        self.outcomes: Counter[str] = Counter()

    @staticmethod
    def _fresh_host() -> _Host:
        host = _Host()
        stream = RequestStream()
        stream.receive(_UAPI_SEEDS[0].encode())
        request = stream.next_request()
        assert isinstance(request, Set)
        apply_set(host, request.request)
        return host

    def seeds(self) -> list[bytes]:
        return [seed.encode() for seed in _UAPI_SEEDS]

    def __call__(self, data: bytes) -> None:
        stream = RequestStream()
        stream.receive(data)
        while (request := stream.next_request()) is not None:
            if isinstance(request, Close):
                self.outcomes["closed"] += 1
                return
            if isinstance(request, Reply):
                self._check_reply(request.data)
                if not request.keep_open:
                    return
            elif isinstance(request, Get):
                format_get(self.host)
                self.outcomes["get"] += 1
            else:
                self._apply(request.request)
        reply = stream.end()
        if reply is not None:
            self._check_reply(reply.data)

    def _check_reply(self, data: bytes) -> None:
        if not _ERRNO_REPLY.match(data):
            raise ContractViolation(f"malformed reply {data!r}")
        self.outcomes[data.decode().split()[0]] += 1

    def _apply(self, request) -> None:
        host = self.host
        before = format_get(host)
        try:
            apply_set(host, request)
        except UapiError as exc:
            if not (isinstance(exc.code, int) and exc.code > 0):
                raise ContractViolation(f"UapiError with errno {exc.code!r}") from None
            if format_get(host) != before:
                raise ContractViolation("a refused set changed the device") from None
            self.outcomes[f"refused errno={-exc.code}"] += 1
        else:
            format_get(host)
            self.outcomes["applied"] += 1
            if len(host.device.peers) > self.RESET_AT_PEERS:
                self.host = self._fresh_host()

    def summary(self) -> dict:
        return {"outcomes": dict(self.outcomes)}


# ---------------------------------------------------------------------- config files


def _config_seeds() -> list[bytes]:
    """The project's own test configs (good and bad), plus a full wg-quick file."""
    directory = os.path.join(os.path.dirname(__file__), "..", "tests", "cli", "configs")
    seeds = [b"[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"
             b"ListenPort = 51820\nFwMark = 0x10\nAddress = 10.0.0.1/24, fd00::1/64\n"
             b"DNS = 10.0.0.53, example.com\nMTU = 1420\nTable = off\nSaveConfig = true\n"
             b"PostUp = iptables -A FORWARD -i %i -j ACCEPT\n\n[Peer]\n"
             b"PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"
             b"PresharedKey = FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=\n"
             b"AllowedIPs = 10.0.0.2/32, fd00::2/128\nEndpoint = [2001:db8::2]:51820\n"
             b"PersistentKeepalive = 25\n"]
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            with open(os.path.join(directory, name), "rb") as handle:
                seeds.append(handle.read())
    return seeds


class ConfigTarget:
    """wg files (and the same text as `wg set` words); `quick` takes wg-quick files."""

    max_len = 12_000

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.name = "quick" if quick else "config"
        self.outcomes: Counter[str] = Counter()
        self._keydir = tempfile.TemporaryDirectory(prefix="wgpy-fuzz-")

    def seeds(self) -> list[bytes]:
        return _config_seeds()

    def __call__(self, data: bytes) -> None:
        text = data.decode("utf-8", "surrogateescape")
        try:
            parse_config(text, filename="fuzz.conf", quick=self.quick)
            self.outcomes["accepted"] += 1
        except ConfigError as exc:
            if exc.file != "fuzz.conf" or exc.line is None:
                raise ContractViolation(f"error not located: {exc}") from None
            self.outcomes["ConfigError"] += 1
        if self.quick:
            strip_quick(text)
        else:
            self._set_words(text)

    def _set_words(self, text: str) -> None:
        """The text's words as `wg set` arguments; key-file words read the fuzzer's files."""
        words = text.split()
        for i in range(len(words) - 1):
            if words[i] in ("private-key", "preshared-key"):
                path = os.path.join(self._keydir.name, str(i))
                with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
                    handle.write(words[i + 1])
                words[i + 1] = path
        try:
            parse_set_arguments(words)
            self.outcomes["set accepted"] += 1
        except ConfigError:
            self.outcomes["set ConfigError"] += 1

    def summary(self) -> dict:
        return {"outcomes": dict(self.outcomes)}


TARGETS: dict[str, Callable[[], object]] = {
    "datagram": DatagramTarget,
    "uapi": UapiTarget,
    "config": lambda: ConfigTarget(quick=False),
    "quick": lambda: ConfigTarget(quick=True),
}
