"""ICMP errors for packets no peer can take, as the kernel's WireGuard sends them.

When AllowedIPs gives no peer for a destination, or the peer has no endpoint, the kernel module
answers the sender with ICMP host unreachable (ICMPv6 address unreachable): `ping` prints
"Destination Host Unreachable" and a TCP connect fails at once with "No route to host" instead
of timing out. wgpy does the same, writing the error back into the TUN.

Its source address is the unreachable destination itself, as a router directly in front of
it would answer: an error written into the TUN from one of the host's own addresses would be
dropped by the kernel as a martian.

Never about an ICMP error, a non-initial fragment, or a packet from or to an address that is
not unicast (RFC 1122 3.2.2, RFC 4443 2.4 e), and rate-limited per sender as the kernel's
icmp_ratelimit does (a burst of 6, then one a second).
"""

import struct

from wgpy.core.inet import internet_checksum

ICMP_DEST_UNREACH = 3
ICMP_HOST_UNREACH = 1
ICMPV6_DEST_UNREACH = 1
ICMPV6_ADDR_UNREACH = 3
IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58
# ICMP messages that are themselves errors: never answered with one
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})  # unreachable, quench, redirect, time, param
ICMPV6_INFORMATIONAL_MIN = 128  # ICMPv6 types below this are errors
# IPv6 extension headers walked to find the upper layer (hop-by-hop, routing, dest options)
_IPV6_EXTENSIONS = frozenset({0, 43, 60})
_IPV6_FRAGMENT = 44
# As much of the offending packet as keeps the error within the minimum MTU (576 / 1280)
IPV4_QUOTE_MAX = 576 - 20 - 8
IPV6_QUOTE_MAX = 1280 - 40 - 8
ERROR_TTL = 64
IPTOS_PREC_INTERNETCONTROL = 0xC0
RATE_BURST = 6
RATE_PER_SECOND = 1.0
_MAX_TRACKED_SENDERS = 4096

_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_IPV6_HEADER = struct.Struct("!IHBB16s16s")
_ICMP_HEADER = struct.Struct("!BBHI")


def _unicast4(address: bytes) -> bool:
    return 0 < address[0] < 224  # not 0.0.0.0/8, multicast, reserved or broadcast


def _ipv4_error(packet: bytes) -> bytes | None:
    header_length = (packet[0] & 0x0F) * 4
    if header_length < 20 or len(packet) < header_length:
        return None
    if int.from_bytes(packet[6:8], "big") & 0x1FFF:
        return None  # a non-initial fragment
    source, destination = packet[12:16], packet[16:20]
    if not (_unicast4(source) and _unicast4(destination)):
        return None
    if packet[9] == IPPROTO_ICMP and (
        len(packet) <= header_length or packet[header_length] in ICMP_ERROR_TYPES
    ):
        return None
    message = bytearray(_ICMP_HEADER.pack(ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, 0, 0))
    message += packet[:IPV4_QUOTE_MAX]
    message[2:4] = internet_checksum(bytes(message))
    header = bytearray(_IPV4_HEADER.pack(
        0x45, IPTOS_PREC_INTERNETCONTROL, 20 + len(message), 0, 0, ERROR_TTL, IPPROTO_ICMP, 0,
        destination, source))
    header[10:12] = internet_checksum(bytes(header))
    return bytes(header + message)


def _ipv6_upper_layer(packet: bytes) -> tuple[int, int] | None:
    """(next header, offset) of the upper-layer header; None for a non-initial fragment or
    a truncated chain."""
    next_header, offset = packet[6], 40
    while next_header in _IPV6_EXTENSIONS or next_header == _IPV6_FRAGMENT:
        if len(packet) < offset + 8:
            return None
        if next_header == _IPV6_FRAGMENT:
            if int.from_bytes(packet[offset + 2 : offset + 4], "big") >> 3:
                return None
            next_header, offset = packet[offset], offset + 8
        else:
            next_header, offset = packet[offset], offset + (packet[offset + 1] + 1) * 8
    return next_header, offset


def _ipv6_error(packet: bytes) -> bytes | None:
    source, destination = packet[8:24], packet[24:40]
    if source == bytes(16) or source[0] == 0xFF or destination[0] == 0xFF:
        return None  # unspecified or multicast
    upper = _ipv6_upper_layer(packet)
    if upper is None:
        return None
    next_header, offset = upper
    if next_header == IPPROTO_ICMPV6 and (
        len(packet) <= offset or packet[offset] < ICMPV6_INFORMATIONAL_MIN
    ):
        return None
    message = bytearray(_ICMP_HEADER.pack(ICMPV6_DEST_UNREACH, ICMPV6_ADDR_UNREACH, 0, 0))
    message += packet[:IPV6_QUOTE_MAX]
    pseudo_header = destination + source + struct.pack("!I3xB", len(message), IPPROTO_ICMPV6)
    message[2:4] = internet_checksum(pseudo_header + bytes(message))
    header = _IPV6_HEADER.pack(6 << 28, len(message), IPPROTO_ICMPV6, ERROR_TTL,
                               destination, source)
    return header + bytes(message)


def unreachable_error(packet: bytes) -> bytes | None:
    """The ICMP(v6) unreachable error answering `packet` (an IPv4 or IPv6 packet of at least
    its fixed header), or None where none may be sent."""
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        return _ipv4_error(packet)
    if version == 6 and len(packet) >= 40:
        return _ipv6_error(packet)
    return None


class UnreachableReporter:
    """Makes the errors, rate-limited per sender: a token bucket of RATE_BURST, refilled at
    RATE_PER_SECOND (a `ping -i 0.2` sees the first six, then one a second)."""

    def __init__(self) -> None:
        self._buckets: dict[bytes, tuple[float, float]] = {}  # sender -> (tokens, time)

    def error_for(self, packet: bytes, now: float) -> bytes | None:
        error = unreachable_error(packet)
        if error is None:
            return None
        sender = packet[12:16] if packet[0] >> 4 == 4 else packet[8:24]
        tokens, last = self._buckets.get(sender, (float(RATE_BURST), now))
        tokens = min(float(RATE_BURST), tokens + (now - last) * RATE_PER_SECOND)
        if tokens < 1.0:
            self._buckets[sender] = (tokens, now)
            return None
        if len(self._buckets) >= _MAX_TRACKED_SENDERS and sender not in self._buckets:
            self._buckets.clear()
        self._buckets[sender] = (tokens - 1.0, now)
        return error
