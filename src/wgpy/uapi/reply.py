"""A `get=1` reply read into plain records: what `wgpy show`, `showconf` and `syncconf` print
or compare, and what get_device turns into the typed config model.

A 10,000-peer device answers with 120,000 lines (4 MB); `wg` reads them in about 20 ms. The
rules are `wg`'s (ipc-uapi.h userspace_get_device): every line `key=value`, a blank line at
the end, numbers by its NUM() macro, keys 64 hex digits, addresses through inet_pton and
printed back by inet_ntop, endpoints through getaddrinfo and getnameinfo, the first bad line
failing the whole reply. Records keep values as `wg` prints them (numbers as canonical
decimal text, addresses in inet_ntop's form), so printing is joining text.

Two readers give the same records. `_read_regular` takes a reply laid out as wireguard-go
and wgpyd lay it out (their key order, canonical numbers: nearly every reply) a peer at a
time with one regular expression, which also checks every value `wg` checks that a pattern
can: hex keys, bounded decimal numbers, IPv4 addresses in the only form inet_pton accepts
(which is the form inet_ntop prints). IPv6 addresses still go through inet_pton/inet_ntop.
Anything else in the reply (another order, an unknown key, a zone, a leading zero, a bad
value) makes it give up, and `_read_lines` reads the reply line by line, with `wg`'s exact
rules and errors. Standard library only, nothing imported that `wgpy show` does not need:
the interpreter's start-up is part of its time.
"""

import functools
import re
import socket
from typing import Any, NamedTuple

from wgpy.uapi.text import UapiFormatError, parse_hex_key, parse_unsigned

_AF_INET6 = socket.AF_INET6
_inet_pton, _inet_ntop = socket.inet_pton, socket.inet_ntop
_pton6 = functools.partial(_inet_pton, _AF_INET6)
_ntop6 = functools.partial(_inet_ntop, _AF_INET6)
_ZERO_HEX = "0" * 64
_PORT_MAX = 0xFFFF


class EndpointUnreachable(Exception):
    """An endpoint getaddrinfo cannot resolve: `wg` reports ENETUNREACH for the reply."""


class PeerState(NamedTuple):
    """One peer of a reply; numbers are decimal text without leading zeros. A tuple: a big
    device has tens of thousands, and a tuple is made in a third of an object's time."""

    public_key: bytes
    allowed_ips: list[str]  # "address/cidr" as `wg` prints them
    preshared_key: bytes | None = None  # None: absent or all zero (wg: no preshared key)
    endpoint: str | None = None  # as `wg` prints it: 192.0.2.1:51820, [fe80::1%lo]:51820
    last_handshake_sec: str = "0"
    last_handshake_nsec: str = "0"
    tx_bytes: str = "0"
    rx_bytes: str = "0"
    persistent_keepalive: str | None = None  # None: the reply had no such line
    protocol_version: str | None = None

    def __repr__(self) -> str:  # never the preshared key: a repr ends up in logs
        return (f"PeerState(public_key={self.public_key.hex()}, endpoint={self.endpoint!r}, "
                f"allowed_ips={self.allowed_ips!r})")


class DeviceState:
    """A device as its `get=1` reply describes it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.private_key: bytes | None = None
        self.listen_port: int | None = None
        self.fwmark: int | None = None
        self.peers: list[PeerState] = []

    def public_key(self) -> bytes | None:
        """The private key's X25519 public key (what `wg` derives), computed only when asked,
        by libsodium (PyNaCl): it loads in 5 ms where `cryptography`'s X25519 takes 30 (its
        OpenSSL initialises on first use), and every `wgpy show` run would pay that."""
        if self.private_key is None:
            return None
        from nacl.bindings import crypto_scalarmult_base  # here: see above

        return crypto_scalarmult_base(self.private_key)


def read_reply(iface: str, text: str) -> tuple[DeviceState, int | None]:
    """The device and the reply's errno (None when it has no `errno=` line). Raises
    UapiFormatError for a reply `wg` would refuse with EPROTO, EndpointUnreachable for one
    it would refuse with ENETUNREACH (whichever bad line comes first)."""
    device = DeviceState(iface)
    if _read_regular(device, text):
        return device, 0
    device = DeviceState(iface)
    return device, _read_lines(device, text)


# ---------------------------------------------------------------------- the regular layout

_NUM63 = r"(0|[1-9][0-9]{0,17})"  # NUM(2**63 - 1), in canonical form (longer: line reader)
_NUM64 = r"(0|[1-9][0-9]{0,18})"  # NUM(2**64 - 1), likewise
_U16 = (r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
        r"|[1-9][0-9]{0,3}|0)")  # 0-65535
# glibc's inet_pton takes IPv4 only as four decimal octets of 0-255 without leading zeros,
# which is also exactly what inet_ntop prints
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_IPV6ISH = r"[0-9a-fA-F.]*:[0-9a-fA-F:.]*"  # a colon: read as IPv6 (inet_pton decides)
_HEADER = re.compile(
    r"(?:private_key=([0-9a-fA-F]{64})\n)?"
    rf"(?:listen_port=({_U16})\n)?"
    r"(?:fwmark=(0|[1-9][0-9]{0,8})\n)?")  # up to 999,999,999: within 0xffffffff
_PEER = re.compile(
    r"public_key=([0-9a-fA-F]{64})\n"
    r"preshared_key=([0-9a-fA-F]{64})\n"
    r"protocol_version=(1)\n"
    rf"(?:endpoint=(?:({_IPV4}:{_U16})|\[({_IPV6ISH})\]:({_U16}))\n)?"
    rf"last_handshake_time_sec={_NUM63}\n"
    rf"last_handshake_time_nsec={_NUM63}\n"
    rf"tx_bytes={_NUM64}\n"
    rf"rx_bytes={_NUM64}\n"
    rf"persistent_keepalive_interval=({_U16})\n"
    rf"((?:allowed_ip=(?:{_IPV4}/(?:3[0-2]|[12]?[0-9])"
    rf"|{_IPV6ISH}/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))\n)*+)")
_ALLOWED_IPV6 = re.compile(r"\nallowed_ip=([^/\n]*:[^/\n]*)/")  # in a reply _PEER has read
_TRAILER = "errno=0\n\n"


def _read_regular(device: DeviceState, text: str) -> bool:
    """Read a reply in wireguard-go's layout into `device`; False (with `device` partly
    filled: discard it) for any other reply, which `_read_lines` must read."""
    header = _HEADER.match(text)
    assert header is not None  # every part is optional
    private_key, listen_port, fwmark = header.groups()
    if private_key is not None:
        device.private_key = bytes.fromhex(private_key)
    if listen_port is not None:
        device.listen_port = int(listen_port)
    if fwmark is not None:
        device.fwmark = int(fwmark)
    start = position = header.end()
    match = _PEER.match
    fromhex = bytes.fromhex
    append = device.peers.append
    try:
        while (peer := match(text, position)) is not None:
            (public, preshared, version, endpoint, host6, port6, seconds, nanoseconds, tx, rx,
             keepalive, allowed) = peer.groups()
            if host6 is not None:
                endpoint = f"[{_inet_ntop(_AF_INET6, _inet_pton(_AF_INET6, host6))}]:{port6}"
            append(PeerState(fromhex(public),
                             allowed[11:-1].split("\nallowed_ip=") if allowed else [],
                             None if preshared == _ZERO_HEX else fromhex(preshared), endpoint,
                             seconds, nanoseconds, tx, rx, keepalive, version))
            position = peer.end()
        if not (text.startswith(_TRAILER, position)
                and position + len(_TRAILER) == len(text)):
            return False
        # IPv6 prefixes through inet_pton and inet_ntop all at once (map: no Python code
        # per address); the device's text is nearly always inet_ntop's already
        hosts = _ALLOWED_IPV6.findall(text, start, position)
        canonical = list(map(_ntop6, map(_pton6, hosts)))
    except (OSError, ValueError):  # an IPv6 address inet_pton refuses
        return False
    if canonical != hosts:
        replacements = iter(canonical)
        for record in device.peers:
            addresses = record.allowed_ips
            for index, address in enumerate(addresses):
                if ":" in address:
                    addresses[index] = f"{next(replacements)}/{address.partition('/')[2]}"
    return True


# ---------------------------------------------------------------------- line by line

# per-peer numbers: UAPI key -> (PeerState field, NUM()'s bound)
_PEER_NUMBERS = {
    "last_handshake_time_sec": ("last_handshake_sec", 2**63 - 1),
    "last_handshake_time_nsec": ("last_handshake_nsec", 2**63 - 1),
    "rx_bytes": ("rx_bytes", 2**64 - 1),
    "tx_bytes": ("tx_bytes", 2**64 - 1),
    "persistent_keepalive_interval": ("persistent_keepalive", 0xFFFF),
    "protocol_version": ("protocol_version", 2**64 - 1),
}


def _read_lines(device: DeviceState, text: str) -> int | None:
    """Any reply, a line at a time, as userspace_get_device reads it; the errno."""
    lines = text.split("\n")
    try:
        end = lines.index("")
    except ValueError:
        raise UapiFormatError("message not terminated by a blank line") from None
    if end == len(lines) - 1:
        raise UapiFormatError("message not terminated by a blank line")
    peer: dict[str, Any] | None = None  # the fields of the peer being read
    code: int | None = None
    for line in lines[:end]:
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiFormatError(f"line without '=': {line!r}")
        if key == "public_key":
            if peer is not None:
                device.peers.append(PeerState(**peer))
            peer = {"public_key": parse_hex_key(value), "allowed_ips": []}
        elif key == "errno":
            code = parse_unsigned(value, 0x7FFFFFFF)
        elif peer is None:
            if key == "private_key":
                device.private_key = parse_hex_key(value)
            elif key == "listen_port":
                device.listen_port = parse_unsigned(value, 0xFFFF)
            elif key == "fwmark":
                device.fwmark = parse_unsigned(value, 0xFFFFFFFF)
        elif key == "allowed_ip":
            peer["allowed_ips"].append(_read_allowed_ip(value))
        elif key in _PEER_NUMBERS:
            field, bound = _PEER_NUMBERS[key]
            peer[field] = str(parse_unsigned(value, bound))
        elif key == "endpoint":
            peer["endpoint"] = read_endpoint(value)
        elif key == "preshared_key":
            psk = parse_hex_key(value)
            peer["preshared_key"] = psk if any(psk) else None
    if peer is not None:
        device.peers.append(PeerState(**peer))
    return code


def _read_allowed_ip(value: str) -> str:
    address, slash, cidr = value.partition("/")
    family = _AF_INET6 if ":" in address else socket.AF_INET
    try:
        address = _inet_ntop(family, _inet_pton(family, address))
    except (OSError, ValueError):
        raise UapiFormatError(f"bad allowed ip {value!r}") from None
    if not slash:
        raise UapiFormatError(f"bad allowed ip {value!r}")
    return f"{address}/{parse_unsigned(cidr, 128 if family == _AF_INET6 else 32)}"


def read_endpoint(value: str) -> str:
    """An endpoint as `wg` prints it, read through getaddrinfo and getnameinfo as `wg` does,
    so scopes print as names (fe80::1%eth0).

    A numeric address and port takes inet_pton/inet_ntop instead, which give the same text
    (getnameinfo's NI_NUMERICHOST is inet_ntop) in a tenth of the time; anything else (a
    zone, a port getaddrinfo would have to read) goes the long way."""
    if value[:1] == "[":
        host, bracket, port = value[1:].partition("]:")
        family = _AF_INET6
    else:
        host, bracket, port = value.rpartition(":")
        family = socket.AF_INET
    if bracket and port.isascii() and port.isdigit() and len(port) <= 5 \
            and int(port) <= _PORT_MAX:
        try:
            text = _inet_ntop(family, _inet_pton(family, host))
        except (OSError, ValueError):
            pass
        else:
            return f"[{text}]:{int(port)}" if family == _AF_INET6 else f"{text}:{int(port)}"
    return _resolve_endpoint(value)


def _resolve_endpoint(value: str) -> str:
    """The long way: split as `wg` splits (config.values, imported only for these), then
    getaddrinfo and getnameinfo."""
    from wgpy.config.values import ConfigError, split_endpoint  # here: see above

    try:
        host, port = split_endpoint(value)
    except ConfigError:
        raise UapiFormatError(f"bad endpoint {value!r}") from None
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM,
                                   socket.IPPROTO_UDP)
        host, port = socket.getnameinfo(
            infos[0][4], socket.NI_NUMERICHOST | socket.NI_NUMERICSERV | socket.NI_DGRAM)
    except (OSError, UnicodeError, ValueError):
        raise EndpointUnreachable(value) from None
    return f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"
