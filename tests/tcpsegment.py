"""Hand-built TCP segments (IPv4 or IPv6) with correct checksums and every header field
settable, for the TUN coalescing tests: the GRO flush rules are about single fields."""

import ipaddress
import struct


def reference_sum(data: bytes) -> int:
    """RFC 1071 one's complement sum, the slow obvious way (the tests' independent oracle)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def tcp_segment(
    source: str, destination: str, sport: int, dport: int, seq: int, payload: bytes, *,
    ack: int = 77, flags: int = 0x10, window: int = 512, options: bytes = b"",
    reserved: int = 0, ident: int = 1, frag: int = 0x4000, tos: int = 0, ttl: int = 64,
    flow_label: int = 0,
) -> bytes:
    """An IPv4 (ident, frag = flags and offset, tos, ttl) or IPv6 (tos = traffic class,
    ttl = hop limit, flow_label) TCP segment, both checksums valid."""
    src = ipaddress.ip_address(source).packed
    dst = ipaddress.ip_address(destination).packed
    offset = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4 | reserved, flags,
                      window, 0, 0) + options
    length = len(tcp) + len(payload)
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, length)
    else:
        pseudo = src + dst + struct.pack("!I", length) + b"\0\0\0\x06"
    check = ~reference_sum(pseudo + tcp + payload) & 0xFFFF
    tcp = tcp[:16] + struct.pack("!H", check) + tcp[18:]
    if len(src) == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + length, ident, frag, ttl, 6, 0,
                         src, dst)
        ip = ip[:10] + struct.pack("!H", ~reference_sum(ip) & 0xFFFF) + ip[12:]
    else:
        first_word = 6 << 28 | tos << 20 | flow_label
        ip = struct.pack("!IHBB16s16s", first_word, length, 6, ttl, src, dst)
    return ip + tcp + payload


def corrupt(packet: bytes, at: int = -1) -> bytes:
    """The packet with one byte changed and no checksum fixed (a bit error on a LAN)."""
    damaged = bytearray(packet)
    damaged[at] ^= 0x20
    return bytes(damaged)
