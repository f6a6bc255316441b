"""TUN write coalescing (virtio_net_hdr GSO): pure functions, no TUN needed."""

import os
import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from wgpy.core.inet import ones_complement_sum
from wgpy.io.offload import (
    NO_OFFLOAD,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VNET_HDR,
    coalesce,
    strip_read,
)


def reference_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def tcp4(seq: int, payload: bytes, flags: int = 0x10, sport: int = 4000, ident: int = 1,
         options: bytes = b"") -> bytes:
    src, dst = socket.inet_aton("10.1.0.2"), socket.inet_aton("10.1.0.1")
    offset = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, 5000, seq, 77, offset << 4, flags, 512, 0, 0) + options
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    check = ~reference_sum(pseudo + tcp + payload) & 0xFFFF
    tcp = tcp[:16] + struct.pack("!H", check) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), ident, 0x4000, 64,
                     6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", ~reference_sum(ip) & 0xFFFF) + ip[12:]
    return ip + tcp + payload


def tcp6(seq: int, payload: bytes, flags: int = 0x10) -> bytes:
    src, dst = bytes(15) + b"\2", bytes(15) + b"\1"
    tcp = struct.pack("!HHIIBBHHH", 4000, 5000, seq, 77, 5 << 4, flags, 512, 0, 0)
    pseudo = src + dst + struct.pack("!I", len(tcp) + len(payload)) + b"\0\0\0\x06"
    check = ~reference_sum(pseudo + tcp + payload) & 0xFFFF
    tcp = tcp[:16] + struct.pack("!H", check) + tcp[18:]
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp) + len(payload), 6, 64, src, dst)
    return ip + tcp + payload


def finish_checksum(write: bytes) -> bytes:
    """What the kernel does with NEEDS_CSUM: sum from csum_start, store the complement."""
    flags, _, _, _, start, offset = VNET_HDR.unpack_from(write)
    packet = bytearray(write[VNET_HDR.size :])
    if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
        value = ~reference_sum(bytes(packet[start:])) & 0xFFFF
        packet[start + offset : start + offset + 2] = struct.pack("!H", value)
    return bytes(packet)


def segments(count: int, size: int = 1000, last: int | None = None, **kwargs) -> list[bytes]:
    out, seq = [], 1000
    for i in range(count):
        length = last if (last is not None and i == count - 1) else size
        out.append(tcp4(seq, os.urandom(length), ident=i + 1, **kwargs))
        seq += length
    return out


@given(st.binary(max_size=300))
def test_ones_complement_sum_matches_rfc1071(data):
    assert ones_complement_sum(data) % 0xFFFF == reference_sum(data) % 0xFFFF


def test_in_order_segments_become_one_gso_write_with_valid_checksums():
    packets = segments(4, last=500)
    writes = coalesce(packets)
    assert len(writes) == 1
    flags, gso_type, hdr_len, gso_size, start, offset = VNET_HDR.unpack_from(writes[0])
    assert (flags, gso_type, hdr_len, gso_size, start, offset) == (
        VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 40, 1000, 20, 16)
    merged = finish_checksum(writes[0])
    assert merged[40:] == b"".join(p[40:] for p in packets)
    assert struct.unpack("!H", merged[2:4])[0] == len(merged)
    assert reference_sum(merged[:20]) == 0xFFFF  # IPv4 header checksum valid
    pseudo = merged[12:20] + struct.pack("!BBH", 0, 6, len(merged) - 20)
    assert reference_sum(pseudo + merged[20:]) == 0xFFFF  # TCP checksum valid


def test_ipv6_segments_coalesce():
    packets = [tcp6(1, b"a" * 800), tcp6(801, b"b" * 800), tcp6(1601, b"c" * 100, flags=0x18)]
    writes = coalesce(packets)
    assert len(writes) == 1
    assert VNET_HDR.unpack_from(writes[0])[1] == VIRTIO_NET_HDR_GSO_TCPV6
    merged = finish_checksum(writes[0])
    assert merged[13 + 40] & 0x08  # PSH carried to the merged segment
    pseudo = merged[8:40] + struct.pack("!I", len(merged) - 40) + b"\0\0\0\x06"
    assert reference_sum(pseudo + merged[40:]) == 0xFFFF


def test_gap_in_sequence_or_short_segment_starts_a_new_write():
    a, b = segments(2)
    gap = tcp4(5000, os.urandom(1000))
    assert len(coalesce([a, b, gap])) == 2
    short_then_full = segments(2, size=1000, last=1000)
    short_then_full[0] = tcp4(1000, os.urandom(400))
    short_then_full[1] = tcp4(1400, os.urandom(1000))
    assert len(coalesce(short_then_full)) == 2


def test_psh_ends_a_run_and_fin_is_written_alone_in_order():
    first = segments(2, flags=0x18)  # PSH on each: the first closes its run
    assert len(coalesce(first)) == 2
    run = segments(3)
    fin = tcp4(4000, b"", flags=0x11)
    writes = coalesce([*run, fin])
    assert len(writes) == 2 and writes[1] == NO_OFFLOAD + fin


def test_interleaved_flows_each_coalesce_and_other_packets_pass_through():
    flow_a = segments(3, sport=4000)
    flow_b = segments(3, sport=4001)
    icmp = bytes([0x45, 0, 0, 28]) + bytes(5) + b"\x01" + bytes(18)
    mixed = [flow_a[0], flow_b[0], icmp, flow_a[1], flow_b[1], flow_a[2], flow_b[2]]
    writes = coalesce(mixed)
    assert len(writes) == 3
    assert writes[2] == NO_OFFLOAD + icmp  # slots keep first-seen order
    assert finish_checksum(writes[0])[40:] == b"".join(p[40:] for p in flow_a)


def test_differing_options_or_ack_do_not_merge():
    a = tcp4(1, b"x" * 100, options=b"\x01\x01\x08\x0a" + bytes(4) + b"\0\0\0\1")
    b = tcp4(101, b"y" * 100, options=b"\x01\x01\x08\x0a" + bytes(4) + b"\0\0\0\2")
    assert len(coalesce([a, b])) == 2


def test_strip_read_rejects_offloads_we_never_enabled():
    packet = tcp4(1, b"z")
    assert strip_read(NO_OFFLOAD + packet) == packet
    assert strip_read(VNET_HDR.pack(1, 0, 0, 0, 20, 16) + packet) is None
    assert strip_read(VNET_HDR.pack(0, 1, 40, 1000, 0, 0) + packet) is None
    assert strip_read(NO_OFFLOAD) is None
