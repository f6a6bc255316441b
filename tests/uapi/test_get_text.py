"""`get` prints addresses through inet_ntop where that gives netip's text; everywhere it would
not (IPv4-compatible and -mapped IPv6) it must fall back, so both ways agree on every address."""

import ipaddress
import random

from wgpy.uapi.netip import addr_string, ipv6_string
from wgpy.uapi.protocol import format_endpoint


def _addresses(count: int) -> list[int]:
    """IPv6 addresses rich in zero runs, ::ffff and ::1 groups (where text forms differ)."""
    rng = random.Random(16)
    values = [0, 1, 0xFFFF << 32 | 0x0A000001, 0x0A000001, 0xFFFF, 1 << 127]
    for _ in range(count):
        words = [rng.choice((0, 0, 0, 1, 0xFFFF, rng.randrange(1 << 16))) for _ in range(8)]
        values.append(int.from_bytes(b"".join(w.to_bytes(2, "big") for w in words), "big"))
    return values


def test_ipv6_text_is_netip_text():
    for value in _addresses(20_000):
        assert ipv6_string(value) == addr_string(ipaddress.IPv6Address(value)), hex(value)


def test_endpoint_text_drops_the_zone_and_keeps_mapped_form():
    assert format_endpoint(("fe80::1%eth0", 51820)) == "[fe80::1]:51820"
    assert format_endpoint(("::ffff:10.0.0.1", 1)) == "[::ffff:10.0.0.1]:1"
    assert format_endpoint(("2001:db8::0:1", 2)) == "[2001:db8::1]:2"
    assert format_endpoint(("192.0.2.1", 3)) == "192.0.2.1:3"
