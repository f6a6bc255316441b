"""ICMP unreachable errors for packets no peer can take: their bytes, when none may be sent,
the rate limit, and the device handing them to the TUN side."""

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgpy.core.device import Device
from wgpy.core.drops import Drop
from wgpy.core.icmp import (
    IPV4_QUOTE_MAX,
    IPV6_QUOTE_MAX,
    RATE_BURST,
    UnreachableReporter,
    unreachable_error,
)
from wgpy.core.inet import ones_complement_sum
from wgpy.inmemory import ipv4_packet, ipv6_packet


def verifies(data: bytes) -> bool:
    """A region whose checksum is right sums to 0xFFFF (all ones)."""
    return ones_complement_sum(data) == 0xFFFF


def icmp4(kind: int, payload: bytes = b"") -> bytes:
    return ipv4_packet("10.0.0.1", "10.250.0.9", bytes([kind, 0, 0, 0, 0, 0, 0, 1]) + payload)


def test_ipv4_host_unreachable_from_the_destination_quoting_the_packet():
    packet = ipv4_packet("10.0.0.1", "10.250.0.9", b"x" * 1000, proto=17)
    error = unreachable_error(packet)
    assert error is not None
    version_ihl, tos, total, _, _, ttl, proto, _, src, dst = struct.unpack_from(
        "!BBHHHBBH4s4s", error)
    assert (version_ihl, tos, total, ttl, proto) == (0x45, 0xC0, len(error), 64, 1)
    assert (src, dst) == (packet[16:20], packet[12:16])  # from the unreachable destination
    assert verifies(error[:20])
    icmp = error[20:]
    assert icmp[:2] == bytes([3, 1]) and icmp[4:8] == bytes(4) and verifies(icmp)
    assert icmp[8:] == packet[:IPV4_QUOTE_MAX] and len(error) == 576


def test_ipv6_address_unreachable_with_pseudo_header_checksum():
    packet = ipv6_packet("fd00::1", "fd99::9", bytes([128, 0, 0, 0]) + b"y" * 2000)  # echo
    error = unreachable_error(packet)
    assert error is not None
    first_word, length, next_header, hops, src, dst = struct.unpack_from("!IHBB16s16s", error)
    assert (first_word >> 28, length, next_header, hops) == (6, len(error) - 40, 58, 64)
    assert (src, dst) == (packet[24:40], packet[8:24])
    icmp = error[40:]
    pseudo = src + dst + struct.pack("!I3xB", len(icmp), 58)
    assert icmp[:2] == bytes([1, 3]) and verifies(pseudo + icmp)
    assert icmp[8:] == packet[:IPV6_QUOTE_MAX] and len(error) == 1280


def test_an_echo_request_is_answered_but_never_an_icmp_error():
    assert unreachable_error(icmp4(8)) is not None  # ping
    for error_type in (0 + 3, 4, 5, 11, 12):
        assert unreachable_error(icmp4(error_type)) is None
    v6_echo = ipv6_packet("fd00::1", "fd99::9", bytes([128, 0, 0, 0]) + bytes(4))
    v6_error = ipv6_packet("fd00::1", "fd99::9", bytes([1, 3, 0, 0]) + bytes(4))
    assert unreachable_error(v6_echo) is not None and unreachable_error(v6_error) is None


@pytest.mark.parametrize(("source", "destination"), [
    ("0.0.0.0", "10.250.0.9"), ("10.0.0.1", "224.0.0.5"), ("10.0.0.1", "255.255.255.255"),
    ("240.0.0.1", "10.250.0.9"),
])
def test_no_error_to_or_about_non_unicast_ipv4(source, destination):
    assert unreachable_error(ipv4_packet(source, destination)) is None


@pytest.mark.parametrize(("source", "destination"), [("::", "fd99::9"), ("fd00::1", "ff02::1")])
def test_no_error_to_or_about_non_unicast_ipv6(source, destination):
    assert unreachable_error(ipv6_packet(source, destination)) is None


def test_only_the_first_fragment_gets_an_error():
    first = bytearray(ipv4_packet("10.0.0.1", "10.250.0.9", b"z" * 64))
    first[6:8] = (0x2000).to_bytes(2, "big")  # more fragments, offset 0
    later = bytearray(first)
    later[6:8] = (0x2000 | 8).to_bytes(2, "big")  # offset 64 bytes
    assert unreachable_error(bytes(first)) is not None
    assert unreachable_error(bytes(later)) is None


def ipv6_with_extensions(*headers: bytes, upper: int, payload: bytes) -> bytes:
    """IPv6 packet whose chain starts with hop-by-hop; `headers` are (next, rest) blocks."""
    body = b"".join(headers) + payload
    fixed = struct.pack("!IHBB16s16s", 6 << 28, len(body), 0, 64,
                        ipaddress.IPv6Address("fd00::1").packed,
                        ipaddress.IPv6Address("fd99::9").packed)
    return fixed + body


def test_ipv6_extension_headers_are_walked_to_the_upper_layer():
    hop_by_hop_to_fragment = bytes([44, 0]) + bytes(6)
    fragment = lambda offset: bytes([58, 0]) + (offset << 3).to_bytes(2, "big") + bytes(4)  # noqa: E731
    hop_by_hop_to_icmp = bytes([58, 0]) + bytes(6)
    icmp_error = bytes([1, 0, 0, 0]) + bytes(4)
    echo = bytes([128, 0, 0, 0]) + bytes(4)
    # an ICMPv6 error behind a hop-by-hop header is still an error: no answer
    assert unreachable_error(ipv6_with_extensions(hop_by_hop_to_icmp, upper=58,
                                                  payload=icmp_error)) is None
    assert unreachable_error(ipv6_with_extensions(hop_by_hop_to_icmp, upper=58,
                                                  payload=echo)) is not None
    # behind a fragment header: the first fragment is answered, a later one is not
    assert unreachable_error(ipv6_with_extensions(hop_by_hop_to_fragment, fragment(0),
                                                  upper=58, payload=echo)) is not None
    assert unreachable_error(ipv6_with_extensions(hop_by_hop_to_fragment, fragment(5),
                                                  upper=58, payload=echo)) is None
    # a chain cut short: no answer, no exception
    assert unreachable_error(ipv6_with_extensions(upper=58, payload=b"\x3a")) is None


def test_truncated_packets_get_nothing():
    short_icmp = ipv4_packet("10.0.0.1", "10.250.0.9", b"", proto=1)
    assert unreachable_error(short_icmp) is None  # cannot tell whether it is an error
    bad_ihl = bytearray(ipv4_packet("10.0.0.1", "10.250.0.9"))
    bad_ihl[0] = 0x4F  # 60-byte header in a 24-byte packet
    assert unreachable_error(bytes(bad_ihl)) is None


def test_rate_limited_per_sender_like_icmp_ratelimit():
    reporter = UnreachableReporter()
    packet = icmp4(8)
    other_sender = ipv4_packet("10.0.0.2", "10.250.0.9", bytes([8]) + bytes(7))
    sent = [reporter.error_for(packet, 100.0) is not None for _ in range(RATE_BURST + 3)]
    assert sent == [True] * RATE_BURST + [False] * 3
    assert reporter.error_for(other_sender, 100.0) is not None  # its own bucket
    assert reporter.error_for(packet, 100.5) is None
    assert reporter.error_for(packet, 101.01) is not None  # one token a second
    assert reporter.error_for(packet, 101.02) is None


def test_device_queues_the_error_for_the_tun_and_still_counts_the_drop():
    device = Device(bytes(range(32)))
    packet = ipv4_packet("10.0.0.1", "10.250.0.9", bytes([8]) + bytes(7))
    assert device.encrypt(packet, 1.0) is None
    assert device.drops[Drop.NO_KEY] == 1
    [error] = device.take_tun_outbox()
    assert error == unreachable_error(packet) and device.tun_outbox == []

    peer = device.add_peer(bytes([9]) * 32)
    device.allowed_ips.insert("10.250.0.0/24", peer)  # a peer, but no endpoint yet
    assert device.encrypt(packet, 2.0) is None
    assert device.drops[Drop.NO_ENDPOINT] == 1
    assert device.take_tun_outbox() == [unreachable_error(packet)]


@given(st.binary(min_size=20, max_size=1600))
def test_any_ipv4_bytes_give_a_well_formed_error_or_none(data):
    packet = bytes([0x40 | (data[0] & 0x0F)]) + data[1:]
    error = unreachable_error(packet)
    if error is not None:
        assert error[0] == 0x45 and verifies(error[:20]) and verifies(error[20:])
        assert int.from_bytes(error[2:4], "big") == len(error) <= 576


@given(st.binary(min_size=40, max_size=1600))
def test_any_ipv6_bytes_give_a_well_formed_error_or_none(data):
    packet = bytes([0x60 | (data[0] & 0x0F)]) + data[1:]
    error = unreachable_error(packet)
    if error is not None:
        icmp = error[40:]
        pseudo = error[8:40] + struct.pack("!I3xB", len(icmp), 58)
        assert error[0] >> 4 == 6 and verifies(pseudo + icmp) and len(error) <= 1280
