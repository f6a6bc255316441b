"""Internet checksums (RFC 1071), for the packets wgpy builds or rewrites itself: ICMP errors
in the core, coalesced TCP segments in the I/O shell."""

import struct

IPV4_HEADER_SIZE = 20  # without options: the least an IPv4 packet carries
IPV6_HEADER_SIZE = 40

_U16 = struct.Struct("!H")


def ones_complement_sum(data: bytes) -> int:
    """RFC 1071 sum of 16-bit big-endian words, folded to 16 bits (0 only for all-zero data)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = int.from_bytes(data, "big") % 0xFFFF
    return total if total or not any(data) else 0xFFFF


def internet_checksum(data: bytes) -> bytes:
    """The checksum field for `data` (summed with its checksum field zero), as 2 bytes."""
    return _U16.pack(~ones_complement_sum(data) & 0xFFFF)


def ipv4_header_checksum(header: bytearray) -> None:
    """Recompute the checksum of the 20-byte IPv4 header at the start of `header`."""
    header[10:12] = b"\0\0"
    header[10:12] = internet_checksum(bytes(header[:20]))
