"""TUN write coalescing (virtio_net_hdr GSO): pure functions, no TUN needed."""

import os
import struct

from hypothesis import given
from hypothesis import strategies as st

from tcpsegment import corrupt, reference_sum, tcp_segment
from wgpy.core.inet import ones_complement_sum
from wgpy.io.offload import (
    NO_OFFLOAD,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VNET_HDR,
    checksums_valid,
    coalesce,
    strip_read,
)


def tcp4(seq: int, payload: bytes, flags: int = 0x10, sport: int = 4000, ident: int = 1,
         **fields) -> bytes:
    return tcp_segment("10.1.0.2", "10.1.0.1", sport, 5000, seq, payload, flags=flags,
                       ident=ident, **fields)


def tcp6(seq: int, payload: bytes, flags: int = 0x10, **fields) -> bytes:
    return tcp_segment("::2", "::1", 4000, 5000, seq, payload, flags=flags, **fields)


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


# ------------------------------------------------------------------ checksums before merging


@given(st.binary(min_size=1, max_size=1500), st.sampled_from(["v4", "v6"]), st.data())
def test_checksums_valid_accepts_good_and_rejects_any_single_byte_change(payload, family, data):
    build = tcp4 if family == "v4" else tcp6
    packet = build(1, payload)
    version = 4 if family == "v4" else 6
    assert checksums_valid(packet, version)
    # any byte the checksums cover: IPv4 header (ID, TTL...), addresses, TCP header, payload
    first_covered = 0 if family == "v4" else 8
    at = data.draw(st.integers(first_covered, len(packet) - 1))
    assert not checksums_valid(corrupt(packet, at), version)


def test_corrupt_segment_inside_a_run_is_written_alone_without_needs_csum():
    packets = segments(5)
    bad = corrupt(packets[2], 60)
    writes = coalesce([*packets[:2], bad, *packets[3:]])
    assert len(writes) == 3
    assert VNET_HDR.unpack_from(writes[0])[0] == VIRTIO_NET_HDR_F_NEEDS_CSUM
    assert finish_checksum(writes[0])[40:] == b"".join(p[40:] for p in packets[:2])
    assert writes[1] == NO_OFFLOAD + bad  # the kernel verifies it, drops it and counts it
    # what follows starts afresh after it (and is itself still merged)
    assert finish_checksum(writes[2])[40:] == b"".join(p[40:] for p in packets[3:])


def test_corrupt_first_segment_stays_alone_and_the_rest_merge():
    packets = segments(3)
    bad = corrupt(packets[0])
    writes = coalesce([bad, *packets[1:]])
    assert writes[0] == NO_OFFLOAD + bad
    assert len(writes) == 2 and VNET_HDR.unpack_from(writes[1])[0] == VIRTIO_NET_HDR_F_NEEDS_CSUM


def test_bad_ipv4_header_checksum_is_not_merged():
    """Merging rewrites the IPv4 header checksum, which would launder a broken one."""
    packets = segments(3)
    header = bytearray(packets[1])
    header[10] ^= 0x01
    writes = coalesce([packets[0], bytes(header), packets[2]])
    assert NO_OFFLOAD + bytes(header) in writes
    assert all(VNET_HDR.unpack_from(w)[0] == 0 for w in writes)


def test_bad_ipv6_segment_is_not_merged():
    good = [tcp6(1 + 800 * i, bytes([i]) * 800) for i in range(3)]
    writes = coalesce([good[0], corrupt(good[1]), good[2]])
    assert [VNET_HDR.unpack_from(w)[0] for w in writes] == [0, 0, 0]


# ------------------------------------------------------------------ GRO flush rules, one each


def merges(first: bytes, second: bytes) -> bool:
    """Whether two in-order segments become one write."""
    return len(coalesce([first, second])) == 1


def pair4(**second_fields) -> tuple[bytes, bytes]:
    return (tcp4(1000, b"a" * 500, ident=1),
            tcp4(1500, b"b" * 500, **{"ident": 2, **second_fields}))


def pair6(**second_fields) -> tuple[bytes, bytes]:
    return tcp6(1000, b"a" * 500), tcp6(1500, b"b" * 500, **second_fields)


def test_plain_pairs_merge():
    assert merges(*pair4()) and merges(*pair6())


def test_ipv4_fields_that_must_match():
    assert not merges(*pair4(tos=0x10))  # TOS
    assert not merges(*pair4(ttl=63))  # TTL
    assert not merges(*pair4(frag=0))  # DF differs
    assert not merges(*pair4(frag=0xC000))  # reserved ("evil") flag bit: never merged
    assert not merges(*pair4(frag=0x2000))  # more fragments


def test_ipv4_id_increments_or_with_df_stays_fixed():
    assert not merges(*pair4(ident=3))  # skips one
    assert merges(*pair4(ident=1))  # DF set: a fixed ID is allowed
    without_df = tcp4(1000, b"a" * 500, ident=1, frag=0)
    assert merges(without_df, tcp4(1500, b"b" * 500, ident=2, frag=0))
    assert not merges(without_df, tcp4(1500, b"b" * 500, ident=1, frag=0))
    # once fixed (or incrementing), the flow keeps to it
    fixed = [tcp4(1000 + 500 * i, b"c" * 500, ident=7) for i in range(3)]
    assert len(coalesce(fixed)) == 1
    assert len(coalesce([*fixed[:2], tcp4(2000, b"c" * 500, ident=9)])) == 2
    rising = [tcp4(1000 + 500 * i, b"c" * 500, ident=7 + i) for i in range(2)]
    assert len(coalesce([*rising, tcp4(2000, b"c" * 500, ident=7)])) == 2
    wraps = [tcp4(1000, b"d" * 500, ident=0xFFFF), tcp4(1500, b"d" * 500, ident=0)]
    assert merges(*wraps)


def test_ipv6_fields_that_must_match():
    assert not merges(*pair6(tos=0x20))  # traffic class
    assert not merges(*pair6(flow_label=0x12345))  # flow label
    assert not merges(*pair6(ttl=63))  # hop limit


def test_tcp_fields_that_must_match():
    for family in (pair4, pair6):
        assert not merges(*family(ack=78))
        assert not merges(*family(window=513))
        assert not merges(*family(reserved=0x1))  # AE / reserved bits
        assert not merges(*family(flags=0x18 | 0x80))  # CWR
        assert not merges(*family(flags=0x11))  # FIN
        assert not merges(*family(options=b"\x01\x01\x01\x01"))  # header length
    stamp = b"\x01\x01\x08\x0a" + bytes(4)
    assert not merges(tcp4(1, b"x" * 100, options=stamp + b"\0\0\0\1"),
                      tcp4(101, b"y" * 100, ident=2, options=stamp + b"\0\0\0\2"))
    assert merges(tcp4(1, b"x" * 100, options=stamp + b"\0\0\0\1"),
                  tcp4(101, b"y" * 100, ident=2, options=stamp + b"\0\0\0\1"))


def test_segment_order_and_size_rules():
    assert not merges(tcp4(1000, b"a" * 500), tcp4(1499, b"b" * 500, ident=2))  # seq gap
    assert not merges(tcp4(1000, b"a" * 500), tcp4(1500, b"b" * 501, ident=2))  # larger
    assert merges(tcp4(1000, b"a" * 500), tcp4(1500, b"b" * 10, ident=2))  # smaller last
    assert not merges(tcp4(1000, b"a" * 500, flags=0x18), tcp4(1500, b"b" * 500, ident=2))
