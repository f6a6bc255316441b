"""The cross-platform userspace API (`get=1` / `set=1`), as wireguard-go 0.0.20220316 has it.

Same keys, order, formats, validation and errno values as its device/uapi.go, down to the
address grammar of Go 1.19's net/netip that the packaged binary is built with (netip.py,
checked against that binary, see tests/uapi), so `wg` cannot tell wgpyd from wireguard-go.
A `set` is parsed into small typed operations (the records below), then applied.

Deliberate differences, each because the reference's behaviour can hurt a user:

* A `set` is all or nothing. wireguard-go applies lines as it reads them and stops at the
  first bad one, leaving half a configuration. Here the whole request is validated first
  (SetParser) and applied only if every line is valid. The failures left at apply time (the
  peer limit; binding the port, setting the fwmark: OSError from the host) come first, in
  the first turn (see apply_set), before the device is touched, and a failed fwmark rebinds
  the old port; so an errno reply always means "nothing changed" (wireguard-go, refused a
  port, is even left with no socket at all). A repeated listen_port or fwmark line binds
  only its last value. Other UAPI clients see a set whole: one thread serves them all, a
  request at a time. The data plane, which forwards between the turns of a big set, sees
  it applied whole peer sections at a time (apply_set), as wireguard-go's sees it applied
  line by line.
* Without a private key the device's own public key counts as all-zero (a peer with the
  zero key is ignored, as in wireguard-go and the kernel); after `private_key=00…00`
  wireguard-go keeps X25519(0)'s public key instead, which the core does not remember.

`get` answers exactly wireguard-go's keys: other clients than `wg` (wgctrl-go, exporters,
scripts) parse it too. The drop counters are wgpyd's own request, `wgpy_get=1` (format_drops:
`drop_<reason>=<count>` lines, the core's then the I/O shell's), an operation wireguard-go
refuses by closing the connection, so a client can tell a device without counters.
"""

import contextlib
import functools
import gc
import ipaddress
import math
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, assert_never

from wgpy.config.values import decimal
from wgpy.core.constants import ZERO_KEY
from wgpy.core.crypto import clamp_private_key, public_key
from wgpy.core.device import Device
from wgpy.core.peer import Endpoint, Peer
from wgpy.uapi.netip import (
    NetipError,
    Network,
    PrefixKey,
    ipv6_string,
    parse_host,
    parse_prefix_key,
    prefix_string,
    split_addr_port,
)
from wgpy.uapi.text import (
    EADDRINUSE,
    EINVAL,
    EPROTO,
    UapiFormatError,
    parse_hex_key,
    parse_unsigned,
)

T = TypeVar("T")

# wireguard-go's device.MaxPeers: creating one more peer fails with EINVAL.
MAX_PEERS = 1 << 16
COLLECT_AFTER_PEERS = 1000  # see apply_set
_DECIMAL = re.compile(r"[0-9]+\Z")
_KEY_NAME = re.compile(r"[a-z_]{1,40}\Z")


class DeviceHost(Protocol):
    """What the UAPI needs from a running interface (the I/O shell implements it)."""

    device: Device  # the core; mutate only from inside `call`

    def listen_port(self) -> int: ...  # actual bound UDP port (0 before bound)
    def set_listen_port(self, port: int) -> None: ...  # may raise OSError (EADDRINUSE)
    def fwmark(self) -> int: ...
    def set_fwmark(self, mark: int) -> None: ...  # may raise OSError
    def now(self) -> float: ...  # monotonic seconds, the `now` the core expects
    def call(self, fn: Callable[[], T]) -> T: ...  # run fn on the data-plane thread
    def io_drops(self) -> dict[str, int]: ...  # the shell's own counters, by reason


class UapiError(Exception):
    """A request we refuse, with the (positive) errno; the reply carries it negated."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------- get


# Peers formatted per host.call: the data plane forwards nothing while a call runs, so a big
# `get` is made in turns of this many peers (~1-5 ms each), with packets handled in between.
GET_PEERS_PER_CALL = 1000


class GetFormatter:
    """Builds `get=1` replies, keeping each peer's formatted lines from one `get` to the next.

    A hub's reply is mostly text that seldom changes (keys, endpoint, keepalive, allowed IPs:
    ~300 bytes a peer, 15 MiB at 50,000 peers), and it is made on the data-plane thread, which
    forwards nothing meanwhile. So each peer's lines before and after its counters are kept
    as bytes and made again only when what they show changed: the preshared key or endpoint
    object replaced (the core replaces, never mutates them), the keepalive interval, or its
    prefixes (looked at only after AllowedIPs.generation moved). Peers gone since the last
    `get` are forgotten by it, and the peers a set removes by that set. The text is kept by
    public key, not by Peer: it is made only from what it is checked against, so it serves a
    peer removed and added again as well, and it keeps no removed Peer alive (a removed peer
    is freed by reference counting, at its removal: core/peer.py). What is kept per peer is a
    plain tuple of bytes, ints and tuples, which the garbage collector stops tracking: 50,000
    more objects to scan would lengthen every full collection, and those stop every thread.

    The peers are taken GET_PEERS_PER_CALL at a time, each turn a host.call of its own, so a
    50,000-peer `get` delays packets by milliseconds, not by the whole reply. Peers change
    only through `set`, which the UAPI thread serves after this `get`; what the data plane
    changes meanwhile (counters, a roaming endpoint) is read as of each peer's turn, as
    wireguard-go reads each peer under its own lock. A formatter serves one device.
    """

    __slots__ = ("_generation", "_peers")

    def __init__(self) -> None:
        self._peers: dict[bytes, _PeerText] = {}
        self._generation = -1

    def reply(self, host: DeviceHost,
              emit: Callable[[bytes], None] | None = None) -> list[bytes]:
        """The whole answer, `errno=0` and its blank line included, in chunks of one turn
        each (a few hundred kB: written as they are, never joined into one big copy);
        calls host.call. Each chunk is also handed to `emit` as soon as it is made, so that
        a client can read the first peers while the data plane makes the next."""
        chunks: list[bytes] = []

        def made(parts: list[bytes]) -> None:
            chunk = b"".join(parts)
            chunks.append(chunk)
            if emit is not None:
                emit(chunk)

        parts: list[bytes] = []
        peers, generation = host.call(lambda: self._device_lines(host, parts))
        kept: dict[bytes, _PeerText] = {}
        made(parts)
        for first in range(0, len(peers), GET_PEERS_PER_CALL):
            parts = []
            turn = peers[first:first + GET_PEERS_PER_CALL]
            host.call(functools.partial(self._peer_lines, host, turn, parts, kept))
            made(parts)
        self._peers = kept
        self._generation = generation  # as of the first turn: a later change is seen next get
        made([b"errno=0\n\n"])
        return chunks

    def remember(self, host: DeviceHost, sections: "Iterable[PeerChange]") -> None:
        """Make the text of the peers a set just configured; run it inside the host.call of
        the set's turn that applied `sections`, so that the first `get` after a big set finds
        their text made (it still checks every peer's prefixes, as after any change: a set
        may take a prefix from a peer it does not name), and the text of those it removed
        forgotten."""
        peers = host.device.peers
        keys_for_peer = host.device.allowed_ips.keys_for_peer
        kept = self._peers
        for change in sections:
            peer = peers.get(change.public_key)
            if peer is not None:
                kept[change.public_key] = _peer_text(peer, keys_for_peer(peer))
            else:
                kept.pop(change.public_key, None)

    @staticmethod
    def _device_lines(host: DeviceHost, parts: list[bytes]) -> tuple[list[Peer], int]:
        """The device's lines into parts; its peers and the AllowedIPs generation, now."""
        device = host.device
        if device.private_key is not None:
            parts.append(f"private_key={device.private_key.hex()}\n".encode())
        port = host.listen_port()
        if port:
            parts.append(f"listen_port={port}\n".encode())
        mark = host.fwmark()
        if mark:
            parts.append(f"fwmark={mark}\n".encode())
        return list(device.peers.values()), device.allowed_ips.generation

    def _peer_lines(self, host: DeviceHost, peers: list[Peer], parts: list[bytes],
                    kept: "dict[bytes, _PeerText]") -> None:
        """Each peer's lines into parts, its kept text checked (or made) into kept."""
        allowed_ips = host.device.allowed_ips
        prefixes_moved = allowed_ips.generation != self._generation
        keys_for_peer = allowed_ips.keys_for_peer
        known = self._peers
        append = parts.append
        for peer in peers:
            key = peer.public_key
            text = known.get(key)
            if (text is None or text[0] is not peer.handshake.preshared_key
                    or text[1] is not peer.endpoint
                    or text[2] != peer.persistent_keepalive_interval
                    or (prefixes_moved and text[3] != keys_for_peer(peer))):
                text = _peer_text(peer, keys_for_peer(peer))
            kept[key] = text
            append(text[4])
            wall, tx, rx = peer.last_handshake_wall, peer.tx_bytes, peer.rx_bytes
            if wall or tx or rx:
                seconds, nanoseconds = _split_time(wall)
                append(f"last_handshake_time_sec={seconds}\nlast_handshake_time_nsec="
                       f"{nanoseconds}\ntx_bytes={tx}\nrx_bytes={rx}\n".encode())
            else:
                append(_NO_TRAFFIC)
            append(text[5])


_NO_TRAFFIC = (b"last_handshake_time_sec=0\nlast_handshake_time_nsec=0\n"
               b"tx_bytes=0\nrx_bytes=0\n")
# What a peer's lines were made from (preshared key, endpoint, keepalive interval, prefixes)
# and the lines before and after its counters.
_PeerText = tuple[bytes, Endpoint | None, int, tuple[PrefixKey, ...], bytes, bytes]


def _peer_text(peer: Peer, prefixes: tuple[PrefixKey, ...]) -> _PeerText:
    preshared_key, endpoint = peer.handshake.preshared_key, peer.endpoint
    keepalive = peer.persistent_keepalive_interval
    head = (f"public_key={peer.public_key.hex()}\npreshared_key={preshared_key.hex()}\n"
            "protocol_version=1\n"
            + ("" if endpoint is None else f"endpoint={format_endpoint(endpoint)}\n"))
    tail = (f"persistent_keepalive_interval={keepalive}\n"
            + "".join(f"allowed_ip={prefix_string(*key)}\n" for key in prefixes))
    return preshared_key, endpoint, keepalive, prefixes, head.encode(), tail.encode()


def format_get(host: DeviceHost) -> str:
    """The body of a `get=1` answer without its `errno=0` line, made afresh (GetFormatter
    keeps text between gets); calls host.call."""
    return b"".join(GetFormatter().reply(host)).decode().removesuffix("errno=0\n\n")


def format_drops(host: DeviceHost) -> str:
    """The body of a `wgpy_get=1` answer without its `errno=0` line; run it inside host.call."""
    counters = [*host.device.drops.items(), *host.io_drops().items()]
    return "".join(f"drop_{reason}={count}\n" for reason, count in counters)


def _split_time(wall: float) -> tuple[int, int]:
    """Unix time as whole seconds and nanoseconds (0.0, never, is 0 and 0). The fraction is
    taken before scaling: wall * 1e9 would lose the last ~8 bits at today's dates."""
    seconds = math.floor(wall)
    return seconds, min(round((wall - seconds) * 1e9), 999_999_999)


def format_endpoint(endpoint: Endpoint) -> str:
    """netip.AddrPort.String of the destination, which (as in wireguard-go) drops the zone."""
    host, port = endpoint
    if ":" not in host:
        return f"{host}:{port}"
    packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    return f"[{ipv6_string(int.from_bytes(packed, 'big'))}]:{port}"


# ---------------------------------------------------------------------- set: parsing


def _invalid(message: str) -> UapiError:
    return UapiError(EINVAL, message)


def _unsigned(value: str, bits: int, what: str) -> int:
    """strconv.ParseUint(value, 10, bits): ASCII digits only, no sign."""
    try:
        return parse_unsigned(value, (1 << bits) - 1)
    except UapiFormatError:
        raise _invalid(f"failed to parse {what}: {value!r}") from None


def _key(value: str, what: str) -> bytes:
    """loadExactHex: exactly 32 bytes of hex, either case. Never echoes the value."""
    try:
        return parse_hex_key(value)
    except UapiFormatError:
        raise _invalid(f"failed to set {what}: not 64 hex digits") from None


def _true(value: str, what: str) -> None:
    if value != "true":
        raise _invalid(f"failed to set {what}, invalid value: {value!r}")


def _check_zone(zone: str, value: str) -> None:
    """zoneToUint32: an interface name that exists here, or a number."""
    if _DECIMAL.match(zone) and decimal(zone) < 1 << 32:
        return
    try:
        socket.if_nametoindex(zone)
    except (OSError, ValueError):
        raise _invalid(f"failed to set endpoint {value}: unknown zone") from None


def parse_endpoint(value: str) -> Endpoint:
    """LinuxSocketBind.ParseEndpoint (netip.ParseAddrPort): `192.0.2.1:51820` or
    `[2001:db8::1]:51820`, an IPv6 zone allowed; no host names (wg resolves them). Returns
    the core's form: canonical text as netip prints it (an IPv4-mapped address keeps its
    `::ffff:a.b.c.d` form, as wireguard-go and the kernel keep it), the zone kept."""
    try:
        host, port_text, bracketed = split_addr_port(value)
        port = _unsigned(port_text, 16, f"endpoint {value} port")
        address, zone = parse_host(host, bracketed)
    except NetipError as exc:
        raise _invalid(f"failed to set endpoint {value}: {exc}") from None
    if address.version == 4:
        return str(address), port
    if zone is not None:
        _check_zone(zone, value)
    return ipv6_string(int(address)) + (f"%{zone}" if zone is not None else ""), port


def parse_prefix(value: str) -> Network:
    """netip.ParsePrefix as built into wireguard-go (Go 1.19): `address/bits`, no zone, bits
    read by strconv.Atoi (so `+8` and `08` pass); host bits are allowed and masked."""
    version, network, length = _prefix_key(value)
    if version == 4:
        return ipaddress.IPv4Network((network, length))
    return ipaddress.IPv6Network((network, length))


def _prefix_key(value: str) -> PrefixKey:
    try:
        return parse_prefix_key(value)
    except NetipError as exc:
        raise _invalid(f"failed to set allowed ip {value!r}: {exc}") from None


@dataclass(frozen=True)
class UpdateOnly:
    """`update_only=true`: the section changes the peer only if it exists already."""


@dataclass(frozen=True)
class RemovePeer:
    """`remove=true`."""


@dataclass(frozen=True)
class SetPresharedKey:
    key: bytes = field(repr=False)  # all-zero: none; never in a repr (nor a log)


@dataclass(frozen=True)
class SetEndpoint:
    endpoint: Endpoint


@dataclass(frozen=True)
class SetPersistentKeepalive:
    interval: int  # seconds, 0 for off


@dataclass(frozen=True)
class ReplaceAllowedIPs:
    """`replace_allowed_ips=true`: forget the peer's prefixes before the ones that follow."""


@dataclass(frozen=True)
class AddAllowedIP:
    prefix: PrefixKey  # as AllowedIPs keys it: (IP version, network int, length)


PeerOperation = (UpdateOnly | RemovePeer | SetPresharedKey | SetEndpoint
                 | SetPersistentKeepalive | ReplaceAllowedIPs | AddAllowedIP)


@dataclass(frozen=True)
class SetPrivateKey:
    key: bytes = field(repr=False)  # clamped, or all-zero to remove it (FromMaybeZeroHex)


@dataclass(frozen=True)
class ReplacePeers:
    """`replace_peers=true`: remove every peer before the sections that follow."""


DeviceOperation = SetPrivateKey | ReplacePeers


def _flag(operation: PeerOperation, what: str) -> Callable[[str], PeerOperation]:
    """A `key=true` line: that operation, or EINVAL."""
    def parse(value: str) -> PeerOperation:
        _true(value, what)
        return operation
    return parse


def _protocol_version(value: str) -> None:
    """Checked, and nothing to do: there is only version 1."""
    if value != "1":
        raise _invalid(f"invalid protocol version: {value!r}")


_PEER_PARSERS: dict[str, Callable[[str], PeerOperation | None]] = {
    "update_only": _flag(UpdateOnly(), "update only"),
    "remove": _flag(RemovePeer(), "remove"),
    "preshared_key": lambda v: SetPresharedKey(_key(v, "preshared key")),
    "endpoint": lambda v: SetEndpoint(parse_endpoint(v)),
    "persistent_keepalive_interval": lambda v: SetPersistentKeepalive(
        _unsigned(v, 16, "persistent keepalive interval")),
    "replace_allowed_ips": _flag(ReplaceAllowedIPs(), "replace allowedips"),
    "allowed_ip": lambda v: AddAllowedIP(_prefix_key(v)),
    "protocol_version": _protocol_version,
}


def _key_name(key: str) -> str:
    """A key for a log line: shown only if it looks like one, so that key material pasted
    where a key name belongs never reaches the log."""
    return repr(key) if _KEY_NAME.match(key) else "(not shown)"


@dataclass
class PeerChange:
    """One `public_key=` section: its other lines, parsed, in request order."""

    public_key: bytes
    operations: list[PeerOperation] = field(default_factory=list)


@dataclass
class SetRequest:
    """A validated `set=1` request."""

    listen_port: int | None = None
    fwmark: int | None = None
    device_operations: list[DeviceOperation] = field(default_factory=list)  # in order
    peers: list[PeerChange] = field(default_factory=list)


class SetParser:
    """Validates a `set=1` body line by line (lines without their newline), raising
    UapiError at the first bad one with the errno wireguard-go would answer."""

    def __init__(self) -> None:
        self.request = SetRequest()
        self._peer: PeerChange | None = None

    def feed(self, line: str) -> None:
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiError(EPROTO, "failed to parse a line without '='")
        if key == "public_key":
            self._peer = PeerChange(_key(value, "peer public key"))
            self.request.peers.append(self._peer)
        elif self._peer is not None:
            parser = _PEER_PARSERS.get(key)
            if parser is None:
                raise _invalid(f"invalid UAPI peer key: {_key_name(key)}")
            operation = parser(value)
            if operation is not None:
                self._peer.operations.append(operation)
        elif key == "private_key":
            key_bytes = _key(value, "private_key")
            if key_bytes != ZERO_KEY:  # FromMaybeZeroHex: zero stays zero (no key)
                key_bytes = clamp_private_key(key_bytes)
            self.request.device_operations.append(SetPrivateKey(key_bytes))
        elif key == "listen_port":
            self.request.listen_port = _unsigned(value, 16, "listen_port")
        elif key == "fwmark":
            self.request.fwmark = _unsigned(value, 32, "fwmark")
        elif key == "replace_peers":
            _true(value, "replace_peers")
            self.request.device_operations.append(ReplacePeers())
        else:
            raise _invalid(f"invalid UAPI device key: {_key_name(key)}")


def parse_set(lines: Iterable[str]) -> SetRequest:
    """Validate a whole `set=1` body (the lines after `set=1`, without the blank line)."""
    parser = SetParser()
    for line in lines:
        parser.feed(line)
    return parser.request


# ---------------------------------------------------------------------- set: applying


def apply_set(host: DeviceHost, request: SetRequest,
              formatter: GetFormatter | None = None) -> None:
    """Apply a validated request on the data-plane thread; UapiError leaves no change.
    With the server's `formatter`, the `get` text of the peers it names is made as they are
    configured (GetFormatter.remember).

    The data plane forwards nothing while a host.call runs, and a new peer costs ~0.1 ms
    (its static-static X25519), so a 50,000-peer setconf in one call held packets for ~5 s.
    It is applied in turns instead (set_turns), each a host.call of its own, with packets
    handled in between. The first turn does everything that can still fail (the peer limit,
    the listen port, the fwmark) before it changes anything, then the device's lines, then
    its share of the peer sections; each later turn applies whole sections, in request
    order. So the device ends exactly as one call would leave it (nothing else changes its
    peers meanwhile: sets come one at a time from the one UAPI thread), and in between the
    data plane sees the request applied up to a section boundary: after replace_peers, the
    peers not yet re-added are absent (their packets dropped, never sent to a removed
    peer); a prefix that a section moves stays with its old owner until that section's
    turn. wireguard-go's data plane sees the same, between lines instead of sections.

    Python's collector stops every thread for a full pass over every object (~0.1 s at
    50,000 peers) each time the objects that survived collections grew by a quarter: a
    50,000-peer set would trigger five such passes while it runs, each a stall of the data
    plane between turns. So a set of many peers (COLLECT_AFTER_PEERS sections) runs with
    automatic collection paused, and if the peers it added (net of those it removed) are
    at least COLLECT_AFTER_PEERS and a quarter of the device's, pays the one full pass their
    objects owe at the end of its last turn (else it would come at some later allocation,
    at an unknown moment). A set that removes peers owes nothing for them: a removed peer
    is freed by reference counting as it is removed (no cycles: core/peer.py).

    That pass need not scan what existed before the set: the objects the collector would
    find again (the peers already there, and the request itself: 300,000 objects at 50,000
    peers, freed by reference counting once the set is done) were scanned by earlier
    passes or will be by later ones. So a big set freezes them (gc.freeze: the collector
    leaves them alone) until it ends: the pass is over the set's own survivors, ~40% shorter
    for a 50,000-peer setconf. The survivors of the pass are frozen too, behind them, so that
    unfreezing leaves the oldest generation in age order, as a pass over everything would:
    a full pass is quickest when containers come before what they hold (the other way, it
    first takes every newer object for garbage, then moves it back: 1.5x as long at 50,000
    peers). Unfrozen, a cycle among them that became garbage meanwhile is found by the next
    full pass."""
    turns = set_turns(request.peers)
    last = len(turns) - 1
    paused = len(request.peers) >= COLLECT_AFTER_PEERS and gc.isenabled()
    peers_at_start: list[int] = []  # the device's, once the first turn applied its lines
    if paused:
        gc.disable()  # (only this thread changes it; the data plane's garbage waits too)
        gc.freeze()
    try:
        for index, sections in enumerate(turns):
            host.call(functools.partial(_apply_turn, host, request if index == 0 else None,
                                        sections, formatter, peers_at_start, index == last,
                                        paused))
    finally:
        if paused:
            gc.unfreeze()
            gc.enable()


# Peer sections per host.call of a set (~0.1 ms each when it creates the peer), and the
# section lines they may hold together (prefixes cost ~5 µs each): a turn ends at either
# limit (taking at least one section, which is never split).
SET_PEERS_PER_CALL = 50
SET_LINES_PER_CALL = 1000


def set_turns(sections: list[PeerChange]) -> list[list[PeerChange]]:
    """The request's peer sections cut into turns (at least one turn, maybe empty)."""
    turns: list[list[PeerChange]] = []
    turn: list[PeerChange] = []
    lines = 0
    for change in sections:
        size = 1 + len(change.operations)
        if turn and (len(turn) == SET_PEERS_PER_CALL or lines + size > SET_LINES_PER_CALL):
            turns.append(turn)
            turn, lines = [], 0
        turn.append(change)
        lines += size
    turns.append(turn)
    return turns


def _apply_turn(host: DeviceHost, request: SetRequest | None, sections: list[PeerChange],
                formatter: GetFormatter | None, peers_at_start: list[int], last: bool,
                frozen: bool) -> None:
    """One turn on the data-plane thread: the device's part (`request`, first turn only:
    it notes the peer count then in `peers_at_start`), then `sections`. The last turn pays
    the full collection owed for the peers the whole set added, and when apply_set `frozen`
    what was there before, freezes the survivors behind it (see apply_set)."""
    device = host.device
    if request is not None:
        _apply_device(host, request)
        peers_at_start.append(len(device.peers))
    now = host.now()
    for change in sections:
        _apply_peer(device, change, now)
    if formatter is not None:
        formatter.remember(host, sections)
    if last:
        added = len(device.peers) - peers_at_start[0]
        if added >= COLLECT_AFTER_PEERS and added * 4 >= len(device.peers):
            gc.collect()
            if frozen:
                gc.freeze()


def _apply_device(host: DeviceHost, request: SetRequest) -> None:
    """Everything but the peer sections: what may fail first (leaving no change), then the
    device's lines."""
    device = host.device
    _check_peer_limit(device, request)
    old_port = host.listen_port()
    if request.listen_port is not None:
        try:
            host.set_listen_port(request.listen_port)
        except OSError as exc:
            raise UapiError(EADDRINUSE, f"failed to set listen_port: {exc}") from None
    if request.fwmark is not None:
        try:
            host.set_fwmark(request.fwmark)
        except Exception as exc:  # not only OSError: a failing host still changes nothing
            if request.listen_port is not None:
                _restore_port(host, old_port)
            if not isinstance(exc, OSError):
                raise
            raise UapiError(EADDRINUSE, f"failed to update fwmark: {exc}") from None

    now = host.now()
    operations = request.device_operations
    if any(isinstance(operation, ReplacePeers) for operation in operations):
        # First, wherever it is among the device's lines: the state is the same (a new key
        # only changes the peers, all about to go), and a new key on a big hub does not
        # recompute every peer's static-static secret (~0.1 ms each) to throw it away.
        device.remove_all_peers()
    for operation in operations:
        match operation:
            case SetPrivateKey(key):
                device.set_private_key(key, now)
            case ReplacePeers():
                pass  # done above
            case _:
                assert_never(operation)


def _restore_port(host: DeviceHost, port: int) -> None:
    # If the old port is gone meanwhile, the new one stays bound: better than none.
    with contextlib.suppress(OSError):
        host.set_listen_port(port)


def _own_key(device: Device) -> bytes:
    return device.public_key or ZERO_KEY


def _check_peer_limit(device: Device, request: SetRequest) -> None:
    """Refuse a request that would, at any point, hold more than MAX_PEERS peers (where
    wireguard-go's NewPeer fails), replaying its effect on the set of peer keys only."""
    if len(device.peers) + len(request.peers) <= MAX_PEERS:
        return
    keys = set(device.peers)
    own = _own_key(device)
    private = device.private_key or ZERO_KEY
    for operation in request.device_operations:
        if isinstance(operation, ReplacePeers):
            keys.clear()
        elif operation.key != private:  # set_private_key: same key, no change
            private = operation.key
            own = public_key(private) if private != ZERO_KEY else ZERO_KEY
            keys.discard(own)
    for change in request.peers:
        if change.public_key == own:
            continue
        created = change.public_key not in keys
        if created:
            keys.add(change.public_key)
            if len(keys) > MAX_PEERS:
                raise _invalid("failed to create new peer: too many peers")
        for peer_operation in change.operations:
            if isinstance(peer_operation, RemovePeer) or (
                    isinstance(peer_operation, UpdateOnly) and created):
                keys.discard(change.public_key)
                break


def _apply_peer(device: Device, change: PeerChange, now: float) -> None:
    """One peer section with wireguard-go's semantics, including its 'dummy' peer: with the
    device's own key, or once removed or not created (update_only), a section's lines have
    no effect."""
    peer: Peer | None = None
    created = False
    if change.public_key != _own_key(device):
        peer = device.peers.get(change.public_key)
        if peer is None:
            peer = device.add_peer(change.public_key)
            created = True
    keepalive_on = False
    for operation in change.operations:
        if isinstance(operation, RemovePeer) or (isinstance(operation, UpdateOnly) and created):
            if peer is not None:
                device.remove_peer(peer.public_key)
            peer = None
            continue
        if peer is None:
            continue
        match operation:
            case SetPresharedKey(key):
                device.set_preshared_key(peer, key)
            case SetEndpoint(endpoint):
                peer.endpoint = endpoint
            case SetPersistentKeepalive(interval):
                # As wireguard-go: the last such line decides whether it was "turned on".
                keepalive_on = peer.persistent_keepalive_interval == 0 and interval != 0
                if interval:
                    peer.persistent_keepalive_interval = interval
                else:
                    device.set_persistent_keepalive(peer, 0, now)
            case ReplaceAllowedIPs():
                device.allowed_ips.remove_by_peer(peer)
            case AddAllowedIP(prefix):
                device.allowed_ips.insert(prefix, peer)
            case UpdateOnly():
                pass  # of a peer that existed: nothing to do
            case _:
                assert_never(operation)
    if peer is not None and keepalive_on:
        # handlePostConfig: a keepalive turned on in this section goes out at its end (after
        # the endpoint lines), if the device is up.
        device.send_keepalive(peer, now)
