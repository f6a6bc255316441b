"""The cross-platform userspace API (`get=1` / `set=1`), as wireguard-go implements it.

Same keys, same order, same formats and the same errno values as wireguard-go's uapi.go, so
the real `wg` cannot tell wgpyd from wireguard-go. One deliberate difference: a `set` is
atomic. wireguard-go applies lines as it reads them and stops at the first bad one, leaving
half a configuration; wgpyd validates the whole request first and changes nothing unless every
line is valid. The only failures left at apply time (binding the port, setting the fwmark) are
applied first, so they too leave the device as it was.

`get` also carries `wgpy_drop_<reason>=<count>` lines (the core's drop counters) between the
interface keys and the first peer; `wg` ignores keys it does not know.
"""

import errno
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from wgpy.core.device import Device
from wgpy.core.keys import KeyFormatError, key_from_hex

T = TypeVar("T")

# The errno numbers wireguard-go answers with (ipc.IpcError*); on the wire they are
# negative (`errno=-22`), which `wg` negates back for strerror.
EIO = errno.EIO
EPROTO = errno.EPROTO
EINVAL = errno.EINVAL
EADDRINUSE = errno.EADDRINUSE


class DeviceHost(Protocol):
    """What the UAPI needs from a running interface (the I/O shell implements it)."""

    device: Device

    def listen_port(self) -> int: ...
    def set_listen_port(self, port: int) -> None: ...
    def fwmark(self) -> int: ...
    def set_fwmark(self, mark: int) -> None: ...
    def now(self) -> float: ...
    def call(self, fn: Callable[[], T]) -> T: ...


class UapiError(Exception):
    """A request we refuse, with the errno the client receives."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------- get


def format_get(host: DeviceHost) -> str:
    """The body of a `get=1` answer (without the final errno line); call on the loop thread."""
    device = host.device
    lines: list[str] = []
    if device.private_key is not None:
        lines.append(f"private_key={device.private_key.hex()}")
    port = host.listen_port()
    if port:
        lines.append(f"listen_port={port}")
    mark = host.fwmark()
    if mark:
        lines.append(f"fwmark={mark}")
    lines.extend(f"wgpy_drop_{reason}={count}" for reason, count in device.drops.items())
    for peer in device.peers.values():
        lines.append(f"public_key={peer.public_key.hex()}")
        lines.append(f"preshared_key={peer.preshared_key.hex()}")
        lines.append("protocol_version=1")
        if peer.endpoint is not None:
            lines.append(f"endpoint={format_endpoint(peer.endpoint)}")
        nanoseconds = round(peer.last_handshake_wall * 1e9) if peer.last_handshake_wall else 0
        lines.append(f"last_handshake_time_sec={nanoseconds // 1_000_000_000}")
        lines.append(f"last_handshake_time_nsec={nanoseconds % 1_000_000_000}")
        lines.append(f"tx_bytes={peer.tx_bytes}")
        lines.append(f"rx_bytes={peer.rx_bytes}")
        lines.append(f"persistent_keepalive_interval={peer.persistent_keepalive_interval}")
        lines.extend(f"allowed_ip={network}" for network in
                     device.allowed_ips.entries_for_peer(peer))
    return "".join(line + "\n" for line in lines)


def format_endpoint(endpoint: tuple[str, int]) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------------- set: parsing

_DECIMAL = re.compile(r"[0-9]+\Z")


def _unsigned(value: str, bits: int, what: str) -> int:
    """strconv.ParseUint(value, 10, bits)."""
    if not _DECIMAL.match(value) or int(value) >= 1 << bits:
        raise UapiError(EINVAL, f"failed to parse {what}: {value!r}")
    return int(value)


def _key(value: str, what: str) -> bytes:
    try:
        return key_from_hex(value)
    except KeyFormatError as exc:
        raise UapiError(EINVAL, f"failed to set {what}: {exc}") from exc


def _true(value: str, what: str) -> None:
    if value != "true":
        raise UapiError(EINVAL, f"failed to set {what}, invalid value: {value}")


def parse_endpoint(value: str) -> tuple[str, int]:
    """netip.ParseAddrPort: `1.2.3.4:51820` or `[2001:db8::1]:51820` (zone allowed)."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise UapiError(EINVAL, f"failed to set endpoint {value}: missing port")
        address_text, _, zone = host.partition("%")
        try:
            ipaddress.IPv6Address(address_text)
        except ValueError as exc:
            raise UapiError(EINVAL, f"failed to set endpoint {value}: {exc}") from exc
        if "%" in host and not zone:
            raise UapiError(EINVAL, f"failed to set endpoint {value}: empty zone")
    else:
        host, sep, port = value.rpartition(":")
        if not sep:
            raise UapiError(EINVAL, f"failed to set endpoint {value}: missing port")
        try:
            ipaddress.IPv4Address(host)
        except ValueError as exc:
            raise UapiError(EINVAL, f"failed to set endpoint {value}: {exc}") from exc
    if not _DECIMAL.match(port) or int(port) > 65535:
        raise UapiError(EINVAL, f"failed to set endpoint {value}: invalid port")
    return host, int(port)


def parse_prefix(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """netip.ParsePrefix: address/bits with no zone; host bits allowed (masked on insert)."""
    address, sep, bits = value.partition("/")
    if not sep or not _DECIMAL.match(bits) or "%" in address:
        raise UapiError(EINVAL, f"failed to set allowed ip: invalid prefix {value!r}")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError as exc:
        raise UapiError(EINVAL, f"failed to set allowed ip: {exc}") from exc
    if int(bits) > parsed.max_prefixlen or len(bits) > 3:
        raise UapiError(EINVAL, f"failed to set allowed ip: invalid prefix length {bits}")
    return ipaddress.ip_network(f"{parsed}/{int(bits)}", strict=False)


@dataclass
class PeerChange:
    public_key: bytes
    # Operations in request order: (key, parsed value).
    operations: list[tuple[str, object]] = field(default_factory=list)


@dataclass
class SetRequest:
    private_key: bytes | None = None
    private_key_given: bool = False
    listen_port: int | None = None
    fwmark: int | None = None
    replace_peers: bool = False
    peers: list[PeerChange] = field(default_factory=list)


def _protocol_version(value: str) -> None:
    if value != "1":
        raise UapiError(EINVAL, f"invalid protocol version: {value}")


_PEER_PARSERS: dict[str, Callable[[str], object]] = {
    "update_only": lambda v: _true(v, "update only"),
    "remove": lambda v: _true(v, "remove"),
    "preshared_key": lambda v: _key(v, "preshared key"),
    "endpoint": parse_endpoint,
    "persistent_keepalive_interval": lambda v: _unsigned(
        v, 16, "persistent keepalive interval"),
    "replace_allowed_ips": lambda v: _true(v, "replace allowedips"),
    "allowed_ip": parse_prefix,
    "protocol_version": lambda v: _protocol_version(v),
}


def parse_set(lines: list[str]) -> SetRequest:
    """Validate a whole `set=1` body (the lines after `set=1`, without the blank line)."""
    request = SetRequest()
    peer: PeerChange | None = None
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiError(EPROTO, "failed to parse a line without \"=\"")
        if key == "public_key":
            peer = PeerChange(_key(value, "peer public key"))
            request.peers.append(peer)
        elif peer is None:
            if key == "private_key":
                try:
                    request.private_key = key_from_hex(value)
                except KeyFormatError as exc:
                    raise UapiError(EINVAL, f"failed to set private_key: {exc}") from exc
                request.private_key_given = True
            elif key == "listen_port":
                request.listen_port = _unsigned(value, 16, "listen_port")
            elif key == "fwmark":
                request.fwmark = _unsigned(value, 32, "fwmark")
            elif key == "replace_peers":
                _true(value, "replace_peers")
                request.replace_peers = True
            else:
                raise UapiError(EINVAL, f"invalid UAPI device key: {key}")
        else:
            parser = _PEER_PARSERS.get(key)
            if parser is None:
                raise UapiError(EINVAL, f"invalid UAPI peer key: {key}")
            peer.operations.append((key, parser(value)))
    return request


# ---------------------------------------------------------------------- set: applying


def apply_set(host: DeviceHost, request: SetRequest) -> None:
    """Apply a validated request on the loop thread (through host.call)."""
    host.call(lambda: _apply(host, request))


def _apply(host: DeviceHost, request: SetRequest) -> None:
    old_port = host.listen_port()
    if request.listen_port is not None:
        try:
            host.set_listen_port(request.listen_port)
        except OSError as exc:
            raise UapiError(EADDRINUSE, f"failed to set listen_port: {exc}") from exc
    if request.fwmark is not None:
        try:
            host.set_fwmark(request.fwmark)
        except OSError as exc:
            if request.listen_port is not None:
                host.set_listen_port(old_port)
            raise UapiError(EADDRINUSE, f"failed to update fwmark: {exc}") from exc

    device = host.device
    now = host.now()
    if request.private_key_given:
        device.set_private_key(request.private_key, now)
    if request.replace_peers:
        device.remove_all_peers()
    for change in request.peers:
        _apply_peer(device, change, now)


def _apply_peer(device: Device, change: PeerChange, now: float) -> None:
    """One peer section with wireguard-go's semantics, including its 'dummy' peers: a peer
    with the device's own key, or one removed or not created (update_only), takes the rest
    of its lines without effect."""
    own_key = device.public_key
    dummy = own_key is not None and change.public_key == own_key
    peer = None if dummy else device.peers.get(change.public_key)
    created = False
    if peer is None and not dummy:
        peer = device.add_peer(change.public_key)
        created = True
    keepalive: int | None = None
    for key, value in change.operations:
        if key == "update_only":
            if created and not dummy and peer is not None:
                device.remove_peer(peer.public_key)
                peer, dummy = None, True
        elif key == "remove":
            if not dummy and peer is not None:
                device.remove_peer(peer.public_key)
            peer, dummy = None, True
        elif peer is None:
            continue
        elif key == "preshared_key":
            assert isinstance(value, bytes)
            device.set_preshared_key(peer, value)
        elif key == "endpoint":
            assert isinstance(value, tuple)
            peer.endpoint = value
        elif key == "persistent_keepalive_interval":
            assert isinstance(value, int)
            keepalive = value
        elif key == "replace_allowed_ips":
            device.allowed_ips.remove_by_peer(peer)
        elif key == "allowed_ip":
            device.allowed_ips.insert(value, peer)  # type: ignore[arg-type]
    if peer is not None and keepalive is not None:
        # handlePostConfig: turning it on sends a keepalive at once
        device.set_persistent_keepalive(peer, keepalive, now)
