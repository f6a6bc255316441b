"""A `get=1` reply read into a table of text: what `wgpy show`, `showconf` and `syncconf`
print or compare, and what get_device turns into the typed config model.

A 10,000-peer device answers with 120,000 lines (4 MB), and `wgpy show` on it must stay near
`wg show`'s time, start-up included. The rules are `wg`'s (ipc-uapi.h userspace_get_device):
every line `key=value`, a blank line at the end, numbers by its NUM() macro, keys 64 hex
digits, addresses through inet_pton and printed back by inet_ntop, endpoints through
getaddrinfo and getnameinfo, the first bad line failing the whole reply. The peers are kept
as columns of the text `wg` prints (PeerTable: numbers as canonical decimal text, addresses
in inet_ntop's form, keys in hex), so printing is zipping columns and joining text;
DeviceState.peers gives a record per peer (uapi.records) to callers that want one.

Two readers fill the same table. `_read_regular` takes a reply laid out as wireguard-go and
wgpyd lay it out (their key order, canonical numbers: nearly every reply) by splitting it on
one regular expression, which leaves no object per peer and checks every value `wg` checks
that a pattern can: hex keys, bounded decimal numbers, IPv4 addresses in the only form
inet_pton accepts (which is the form inet_ntop prints). IPv6 addresses go through
inet_pton/inet_ntop all at once. Anything else in the reply (another order, an unknown key, a
zone, a leading zero, a bad value) makes it give up, and `_read_lines` reads the reply line
by line, with `wg`'s exact rules and errors. Standard library only, and not even typing:
the interpreter's start-up and imports are part of `wgpy show`'s time.
"""

import re
import socket
from itertools import repeat

from wgpy.uapi.text import UapiFormatError, parse_hex_key, parse_unsigned

TYPE_CHECKING = False  # typing's own flag, without importing typing (`wgpy show` start-up)
if TYPE_CHECKING:
    from typing import Any

    from wgpy.uapi.records import PeerState

_AF_INET6 = socket.AF_INET6
_inet_pton, _inet_ntop = socket.inet_pton, socket.inet_ntop
ZERO_KEY_HEX = "0" * 64  # a preshared key of all zeros is no preshared key (as `wg` shows it)
_PORT_MAX = 0xFFFF


class EndpointUnreachable(Exception):
    """An endpoint getaddrinfo cannot resolve: `wg` reports ENETUNREACH for the reply."""


class PeerTable:
    """The peers of a reply as columns, one list per field in the device's order, values as
    text: what the printers of `wgpy show` read. The regular reader takes the columns out of
    the reply with list slices, so a 10,000-peer reply makes no object per peer; `wg`'s
    output then comes from zipping the columns a printer needs.

    Keys are the reply's hex (an all-zero preshared key means none); numbers, endpoints and
    prefixes are as `wg` prints them; a peer's prefixes are its `allowed_ip=` lines as they
    stand in the reply ("allowed_ip=10.0.0.0/8\nallowed_ip=::/0\n"), which `joined` turns
    into any of `wg`'s lists with one replace. A keepalive or protocol version the reply
    did not give is None."""

    __slots__ = ("allowed_ip_lines", "endpoints", "keepalives", "last_handshake_nsecs",
                 "last_handshake_secs", "preshared_keys", "protocol_versions", "public_keys",
                 "rx_bytes", "tx_bytes")

    def __init__(self) -> None:
        self.public_keys: list[str] = []
        self.preshared_keys: list[str] = []
        self.endpoints: list[str | None] = []
        self.last_handshake_secs: list[str] = []
        self.last_handshake_nsecs: list[str] = []
        self.tx_bytes: list[str] = []
        self.rx_bytes: list[str] = []
        self.keepalives: list[str | None] = []
        self.allowed_ip_lines: list[str] = []
        self.protocol_versions: list[str | None] = []

    def __len__(self) -> int:
        return len(self.public_keys)

    def append(self, public_key: str, allowed_ips: list[str], preshared_key: str = ZERO_KEY_HEX,
               endpoint: str | None = None, last_handshake_sec: str = "0",
               last_handshake_nsec: str = "0", tx_bytes: str = "0", rx_bytes: str = "0",
               keepalive: str | None = None, protocol_version: str | None = None) -> None:
        """One more peer (keys in hex, prefixes as `wg` prints them)."""
        self.public_keys.append(public_key)
        self.preshared_keys.append(preshared_key)
        self.endpoints.append(endpoint)
        self.last_handshake_secs.append(last_handshake_sec)
        self.last_handshake_nsecs.append(last_handshake_nsec)
        self.tx_bytes.append(tx_bytes)
        self.rx_bytes.append(rx_bytes)
        self.keepalives.append(keepalive)
        self.allowed_ip_lines.append("".join(f"allowed_ip={prefix}\n"
                                             for prefix in allowed_ips))
        self.protocol_versions.append(protocol_version)

    def extend(self, other: "PeerTable") -> None:
        """`other`'s peers after these."""
        for column in self.__slots__:
            getattr(self, column).extend(getattr(other, column))

    @classmethod
    def of(cls, records: "list[PeerState]") -> "PeerTable":
        table = cls()
        for peer in records:
            table.append(peer.public_key.hex(), peer.allowed_ips,
                         (peer.preshared_key or bytes(32)).hex(), peer.endpoint,
                         peer.last_handshake_sec, peer.last_handshake_nsec, peer.tx_bytes,
                         peer.rx_bytes, peer.persistent_keepalive, peer.protocol_version)
        return table

    def records(self) -> "list[PeerState]":
        from wgpy.uapi.records import PeerState  # here: `wgpy show` never needs it

        fromhex = bytes.fromhex
        return [PeerState(fromhex(public), joined(lines, "\n").split("\n") if lines else [],
                          None if preshared == ZERO_KEY_HEX else fromhex(preshared), *values)
                for public, preshared, lines, *values in zip(
                    self.public_keys, self.preshared_keys, self.allowed_ip_lines,
                    self.endpoints, self.last_handshake_secs, self.last_handshake_nsecs,
                    self.tx_bytes, self.rx_bytes, self.keepalives, self.protocol_versions,
                    strict=True)]


def joined(allowed_ip_lines: str, separator: str) -> str:
    """A peer's prefixes (PeerTable.allowed_ip_lines) as one text, `separator` between them;
    "" when it has none."""
    return allowed_ip_lines[11:-1].replace("\nallowed_ip=", separator)


class DeviceState:
    """A device as its `get=1` reply describes it: its peers as a PeerTable (`table`), or as
    records (`peers`, made from the table when first asked for)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.private_key: bytes | None = None
        self.listen_port: int | None = None
        self.fwmark: int | None = None
        self.table = PeerTable()
        self._records: list[PeerState] | None = None

    @property
    def peers(self) -> "list[PeerState]":
        if self._records is None:
            self._records = self.table.records()
        return self._records

    @peers.setter
    def peers(self, records: "list[PeerState]") -> None:
        self.table = PeerTable.of(records)
        self._records = records

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
    reader = ReplyReader(DeviceState(iface))
    reader.feed(text)
    return reader.result()


class ReplyReader:
    """A reply read as it arrives: `feed` it each piece of text, then ask for the `result`.

    A reply in the regular layout is read a run of whole peers at a time (those before the
    last `public_key=` line so far), so that reading a big reply overlaps the device's
    writing of it (wgpyd writes each 1,000 peers as it makes them). Any other reply is read
    line by line once it is whole; so is one that turns out not to be regular halfway."""

    def __init__(self, device: DeviceState) -> None:
        self.device = device
        self._pieces: list[str] = []
        self._unread = ""  # after the last whole peer read
        self._regular = True
        self._header_read = False

    def feed(self, text: str) -> None:
        self._pieces.append(text)
        if not self._regular:
            return
        unread = self._unread + text
        cut = unread.rfind("\npublic_key=") + 1  # the peers before it are whole
        if cut:
            self._regular = self._read(unread[:cut])
        self._unread = unread[cut:]

    def result(self) -> tuple[DeviceState, int | None]:
        """The device and the errno, as read_reply gives them (and raises)."""
        if self.read_regular_end():
            return self.device, 0
        device = DeviceState(self.device.name)
        return device, _read_lines(device, "".join(self._pieces))

    def read_regular_end(self) -> bool:
        """Read the rest of a whole reply in the regular layout (the peers not read yet, then
        `errno=0` and the blank line, the end of the text); False if it is not one."""
        unread = self._unread
        end = len(unread) - len(_TRAILER)
        return (self._regular and end >= 0 and unread.startswith(_TRAILER, end)
                and self._read(unread[:end]))

    def _read(self, text: str) -> bool:
        """Read whole peers (after the header, the first time) into the table; False for
        text that is not in the regular layout."""
        if not self._header_read:
            self._header_read = True
            header = _HEADER.match(text)
            assert header is not None  # every part is optional
            private_key, listen_port, fwmark = header.groups()
            if private_key is not None:
                self.device.private_key = bytes.fromhex(private_key)
            if listen_port is not None:
                self.device.listen_port = int(listen_port)
            if fwmark is not None:
                self.device.fwmark = int(fwmark)
            text = text[header.end():]
        peers = _regular_peers(text)
        if peers is None:
            return False
        self.device.table.extend(peers)
        return True


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
# One peer; its groups in this order make the columns (_COLUMNS). The reply is split on it:
# the text between two peers must be empty, which is how a reply with anything else in it
# (another order, an unknown key, a zone, a leading zero, a bad value) is told.
_PEER = re.compile(
    r"public_key=([0-9a-fA-F]{64})\n"
    r"preshared_key=([0-9a-fA-F]{64})\n"
    r"protocol_version=1\n"
    rf"(?:endpoint=({_IPV4}:{_U16}|\[({_IPV6ISH})\]:{_U16})\n)?"
    rf"last_handshake_time_sec={_NUM63}\n"
    rf"last_handshake_time_nsec={_NUM63}\n"
    rf"tx_bytes={_NUM64}\n"
    rf"rx_bytes={_NUM64}\n"
    rf"persistent_keepalive_interval=({_U16})\n"
    rf"((?:allowed_ip=(?:{_IPV4}/(?:3[0-2]|[12]?[0-9])"
    rf"|{_IPV6ISH}/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))\n)*+)")
_COLUMNS = ("public_keys", "preshared_keys", "endpoints", None, "last_handshake_secs",
            "last_handshake_nsecs", "tx_bytes", "rx_bytes", "keepalives", "allowed_ip_lines")
_ENDPOINT_HOST6 = _COLUMNS.index(None)  # the IPv6 endpoint's address, to check by inet_pton
_STRIDE = len(_COLUMNS) + 1  # split() gives the text before each peer, then its groups
# an IPv6 prefix's address, in the allowed_ip lines _PEER has taken
_ALLOWED_IPV6 = re.compile(r"=([0-9a-fA-F:.]*:[0-9a-fA-F:.]*)/")
_TRAILER = "errno=0\n\n"


def _read_regular(device: DeviceState, text: str) -> bool:
    """Read a whole reply in wireguard-go's layout into `device`; False (with `device` partly
    filled: discard it) for any other reply, which `_read_lines` must read."""
    reader = ReplyReader(device)
    reader.feed(text)
    return reader.read_regular_end()


def _regular_peers(text: str) -> PeerTable | None:
    """Whole peers in the regular layout (nothing else) as a table; None for other text."""
    parts = _PEER.split(text)
    if any(parts[::_STRIDE]):  # text no peer's pattern took
        return None
    table = PeerTable()
    for offset, column in enumerate(_COLUMNS, start=1):
        if column is not None:
            setattr(table, column, parts[offset::_STRIDE])
    table.protocol_versions = ["1"] * len(table.public_keys)
    try:
        _canonical_ipv6(table, parts[_ENDPOINT_HOST6 + 1::_STRIDE])
    except (OSError, ValueError):  # an IPv6 address inet_pton refuses
        return None
    return table


def _canonical_ipv6(table: PeerTable, endpoint_hosts: list[str | None]) -> None:
    """IPv6 addresses through inet_pton and inet_ntop all at once (map: no Python code per
    address), and put in as inet_ntop prints them where the device's text differs (it
    nearly never does). Raises OSError or ValueError for one inet_pton refuses."""
    hosts = [host for host in endpoint_hosts if host is not None]
    canonical = _inet_ntop6(hosts)
    if canonical != hosts:
        replacements = iter(canonical)
        table.endpoints = [
            endpoint if host is None or endpoint is None
            else f"[{next(replacements)}]:{endpoint.rpartition(':')[2]}"
            for endpoint, host in zip(table.endpoints, endpoint_hosts, strict=True)]
    hosts = _ALLOWED_IPV6.findall("".join(table.allowed_ip_lines))
    canonical = _inet_ntop6(hosts)
    if canonical != hosts:
        replacements = iter(canonical)
        table.allowed_ip_lines = [
            _ALLOWED_IPV6.sub(lambda _: f"={next(replacements)}/", lines)
            for lines in table.allowed_ip_lines]


def _inet_ntop6(hosts: list[str]) -> list[str]:
    """IPv6 addresses through inet_pton and inet_ntop (map: no Python code per address)."""
    return list(map(_inet_ntop, repeat(_AF_INET6), map(_inet_pton, repeat(_AF_INET6), hosts)))


# ---------------------------------------------------------------------- line by line

# per-peer numbers: UAPI key -> (PeerTable.append's argument, NUM()'s bound)
_PEER_NUMBERS = {
    "last_handshake_time_sec": ("last_handshake_sec", 2**63 - 1),
    "last_handshake_time_nsec": ("last_handshake_nsec", 2**63 - 1),
    "rx_bytes": ("rx_bytes", 2**64 - 1),
    "tx_bytes": ("tx_bytes", 2**64 - 1),
    "persistent_keepalive_interval": ("keepalive", 0xFFFF),
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
    table = device.table
    peer: dict[str, Any] | None = None  # the fields of the peer being read (PeerTable.append's)
    code: int | None = None
    for line in lines[:end]:
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiFormatError(f"line without '=': {line!r}")
        if key == "public_key":
            if peer is not None:
                table.append(**peer)
            peer = {"public_key": parse_hex_key(value).hex(), "allowed_ips": []}
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
            peer["preshared_key"] = parse_hex_key(value).hex()
    if peer is not None:
        table.append(**peer)
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
