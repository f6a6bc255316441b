"""Handshake rate limiter on a fake clock (rules of the kernel's ratelimiter selftest)."""

import pytest

from wgpy.core.constants import RATELIMITER_PACKETS_BURSTABLE, RATELIMITER_PACKETS_PER_SECOND
from wgpy.core.ratelimiter import RateLimiter

V4 = bytes([192, 0, 2, 1])
V6 = bytes.fromhex("20010db8000000010000000000000001")


# The kernel's selftest (ratelimiter.c, expected_results): whether the next handshake from one
# source is allowed, after waiting so long since the previous one.
PACKET_INTERVAL = 1 / RATELIMITER_PACKETS_PER_SECOND
EXPECTED_RESULTS: list[tuple[bool, float]] = [
    *[(True, 0.0)] * RATELIMITER_PACKETS_BURSTABLE,  # the initial burst
    (False, 0.0),  # after the burst
    (True, PACKET_INTERVAL),  # tokens refilled for one packet
    (False, 0.0),  # not refilled enough
    (True, 2 * PACKET_INTERVAL),  # tokens for a burst of two
    (True, 0.0),  # the second packet of that burst
    (False, 0.0),  # the packet after it
]


def other_source(source: bytes, step: int) -> bytes:
    """A source the selftest's step also tries, which must still be allowed: another IPv4
    address, an IPv6 address in another /64."""
    if len(source) == 4:
        return (int.from_bytes(source, "big") + step + 1).to_bytes(4, "big")
    network = int.from_bytes(source[4:8], "big") + step + 1
    return source[:4] + network.to_bytes(4, "big") + source[8:]


@pytest.mark.parametrize("source", [V4, V6], ids=["ipv4", "ipv6"])
def test_kernel_selftest_timings(source):
    limiter = RateLimiter()
    now = 100.0
    for step, (allowed, wait) in enumerate(EXPECTED_RESULTS):
        now += wait
        # exhausted() tells beforehand what allow() will answer, and takes no token
        assert limiter.exhausted(source, now) is not allowed, step
        assert limiter.exhausted(source, now) is not allowed, step
        assert limiter.allow(source, now) is allowed, step
        assert limiter.allow(other_source(source, step), now), step


def test_sources_are_independent_and_ipv6_groups_by_slash_64():
    limiter = RateLimiter()
    for _ in range(RATELIMITER_PACKETS_BURSTABLE):
        assert limiter.allow(V6, 5.0)
    same_64 = V6[:8] + bytes(7) + b"\x99"
    other_64 = V6[:7] + b"\x02" + V6[8:]
    assert not limiter.allow(same_64, 5.0)
    assert limiter.allow(other_64, 5.0)
    assert limiter.allow(V4, 5.0)


def test_idle_entries_are_collected():
    limiter = RateLimiter()
    limiter.allow(V4, 1.0)
    limiter.allow(V6, 1.5)
    assert len(limiter) == 2
    limiter.allow(bytes([198, 51, 100, 1]), 2.6)
    assert len(limiter) == 1
