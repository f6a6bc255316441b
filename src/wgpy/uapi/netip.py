"""The address grammar of Go 1.19's net/netip, which wireguard-go's UAPI reads and prints with.

Python's ipaddress accepts and prints some addresses differently (leading zeros, IPv6 groups
with more than four digits, IPv4-mapped IPv6, zones), and `wg` cannot tell wgpyd from
wireguard-go only if every `endpoint=` and `allowed_ip=` line is read and shown as netip does
(checked against the packaged binary in tests/uapi). Failures raise NetipError with the
reason; the UAPI (protocol.py) turns it into the errno wireguard-go answers.
"""

import contextlib
import ipaddress
import re
import socket

from wgpy.config.values import decimal

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PrefixKey = tuple[int, int, int]  # (IP version, network as an int, prefix length)

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_ATOI = re.compile(r"[+-]?[0-9]+\Z")  # strconv.Atoi, which ParsePrefix reads the bits with
_inet_ntop = socket.inet_ntop


class NetipError(ValueError):
    """Text that netip refuses; the message says why."""


# ---------------------------------------------------------------------- reading


def _ipv4_bytes(text: str) -> bytes | None:
    """parseIPv4: four decimal fields of 0-255 without leading zeros."""
    fields = text.split(".")
    if len(fields) != 4:
        return None
    for field_text in fields:
        if not (field_text.isascii() and field_text.isdigit()):
            return None
        if (len(field_text) > 1 and field_text[0] == "0") or decimal(field_text) > 255:
            return None
    return bytes(int(field_text) for field_text in fields)


def _ipv6_groups(part: str, last: bool) -> list[int] | None:
    """The 16-bit groups of one side of `::`; an IPv4 tail is allowed at the very end."""
    if not part:
        return []
    groups: list[int] = []
    items = part.split(":")
    for index, item in enumerate(items):
        if last and index == len(items) - 1 and "." in item:
            quad = _ipv4_bytes(item)
            if quad is None:
                return None
            groups += [quad[0] << 8 | quad[1], quad[2] << 8 | quad[3]]
        elif item and _HEX_DIGITS.issuperset(item) and int(item, 16) <= 0xFFFF:
            groups.append(int(item, 16))  # any number of digits, as Go 1.19 (::00001 passes)
        else:
            return None
    return groups


def _ipv6_bytes(text: str) -> bytes | None:
    """parseIPv6 (zone already split off)."""
    head, ellipsis, tail = text.partition("::")
    before = _ipv6_groups(head, last=not ellipsis)
    after = _ipv6_groups(tail, last=True)
    if before is None or after is None or "::" in tail:
        return None
    count = len(before) + len(after)
    if count > 7 if ellipsis else count != 8:  # `::` stands for at least one zero group
        return None
    groups = before + [0] * (8 - count) + after
    return b"".join(group.to_bytes(2, "big") for group in groups)


def parse_addr(text: str) -> tuple[Address, str | None]:
    """ParseAddr: the address and its IPv6 zone (None without a `%`)."""
    kind = next((c for c in text if c in ".:%"), "")
    with contextlib.suppress(OSError, ValueError):
        # glibc's inet_pton takes a subset of what Go 1.19 takes (the same IPv4 rules, IPv6
        # groups of at most four digits, no zone), with the same value: the fast way for
        # the addresses a big `set` is made of; the rest goes through Go's rules below
        if kind == ".":
            return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text)), None
        if kind == ":":
            return ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, text)), None
    if kind == ".":
        quad = _ipv4_bytes(text)
        if quad is not None:
            return ipaddress.IPv4Address(quad), None
    elif kind == ":":
        address_text, percent, zone = text.partition("%")
        packed = _ipv6_bytes(address_text)
        if packed is not None and not (percent and not zone):
            return ipaddress.IPv6Address(packed), zone if percent else None
    raise NetipError(f"not an IP address: {text!r}")


def split_addr_port(text: str) -> tuple[str, str, bool]:
    """The first half of ParseAddrPort: host text (brackets removed), port text, and whether
    the host was in brackets."""
    host, colon, port_text = text.rpartition(":")
    if not colon or not host or not port_text:
        raise NetipError("not an ip:port")
    bracketed = host.startswith("[")
    if bracketed:
        if len(host) < 2 or not host.endswith("]"):
            raise NetipError("missing ]")
        host = host[1:-1]
    return host, port_text, bracketed


def parse_host(host: str, bracketed: bool) -> tuple[Address, str | None]:
    """The second half of ParseAddrPort: the address, which must be bracketed if IPv6."""
    try:
        address, zone = parse_addr(host)
    except NetipError:
        raise NetipError("invalid address") from None
    if address.version == 4 and bracketed:
        raise NetipError("brackets around IPv4")
    if address.version == 6 and not bracketed:
        raise NetipError("IPv6 needs square brackets")
    return address, zone


def parse_prefix_key(text: str) -> PrefixKey:
    """ParsePrefix as AllowedIPs keys a prefix: (IP version, masked network int, length),
    without building a network object (a big `set` has one allowed_ip line per prefix).
    `address/bits`, no zone, bits read by strconv.Atoi (so `+8` and `08` pass); host bits
    are allowed and masked."""
    address_text, slash, bits_text = text.rpartition("/")
    if not slash:
        raise NetipError("no '/'")
    try:
        address, zone = parse_addr(address_text)
    except NetipError:
        raise NetipError("bad address") from None
    if zone is not None:
        raise NetipError("zone in a prefix")
    if not _ATOI.match(bits_text) or not 0 <= decimal(bits_text) <= address.max_prefixlen:
        raise NetipError("bad prefix length")
    length = decimal(bits_text)
    bits = address.max_prefixlen
    return address.version, int(address) >> (bits - length) << (bits - length), length


# ---------------------------------------------------------------------- printing


def addr_string(address: Address) -> str:
    """Addr.String: like Python's, except that IPv4-mapped IPv6 keeps the dotted quad
    (`::ffff:10.0.0.1`), which Python prints that way only from 3.13 on."""
    if address.version == 6 and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def ipv6_string(value: int) -> str:
    """Addr.String of an IPv6 address given as an int. inet_ntop (C, RFC 5952 like Go) where
    it agrees with Go, which is everywhere but the first 96 bits being 0 or ::ffff (IPv4-
    compatible and -mapped addresses, which glibc writes with a dotted quad): `get` prints
    one per allowed IP and endpoint, and ipaddress's str() costs ten times as much."""
    if value >> 32 in (0, 0xFFFF):
        return addr_string(ipaddress.IPv6Address(value))
    return _inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def prefix_string(version: int, value: int, length: int) -> str:
    """Prefix.String of a prefix as AllowedIPs keys it (version, network int, length)."""
    if version == 4:
        return f"{_inet_ntop(socket.AF_INET, value.to_bytes(4, 'big'))}/{length}"
    return f"{ipv6_string(value)}/{length}"
