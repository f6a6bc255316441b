"""Handshake rate limiter on a fake clock (rules of the kernel's ratelimiter selftest)."""

from wgpy.core.constants import RATELIMITER_PACKETS_BURSTABLE, RATELIMITER_PACKETS_PER_SECOND
from wgpy.core.ratelimiter import RateLimiter

V4 = bytes([192, 0, 2, 1])
V6 = bytes.fromhex("20010db8000000010000000000000001")


def test_burst_then_steady_rate():
    limiter = RateLimiter()
    now = 100.0
    allowed = [limiter.allow(V4, now) for _ in range(RATELIMITER_PACKETS_BURSTABLE + 3)]
    assert allowed == [True] * RATELIMITER_PACKETS_BURSTABLE + [False] * 3
    now += 1 / RATELIMITER_PACKETS_PER_SECOND
    assert limiter.allow(V4, now) and not limiter.allow(V4, now)
    # a full second refills at most the burst
    now += 10
    assert sum(limiter.allow(V4, now) for _ in range(20)) == RATELIMITER_PACKETS_BURSTABLE


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
