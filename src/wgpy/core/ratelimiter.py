"""Per-source token bucket for handshake messages under load (kernel ratelimiter.c).

Each source may send PACKETS_PER_SECOND handshakes with bursts of PACKETS_BURSTABLE. IPv4
sources count by address, IPv6 by /64 (a host owns at least that much). Entries idle for more
than RATELIMITER_GARBAGE_COLLECT_TIME are forgotten; collection runs inline, at most once per
that interval, since the core has no threads.
"""

from wgpy.core.constants import (
    RATELIMITER_GARBAGE_COLLECT_TIME,
    RATELIMITER_PACKETS_BURSTABLE,
    RATELIMITER_PACKETS_PER_SECOND,
)

# Integer nanoseconds, as the kernel counts, so bucket arithmetic is exact.
NSEC_PER_SEC = 1_000_000_000
PACKET_COST = NSEC_PER_SEC // RATELIMITER_PACKETS_PER_SECOND
TOKEN_MAX = PACKET_COST * RATELIMITER_PACKETS_BURSTABLE
# Beyond this many tracked sources new ones are refused (kernel: max_entries), bounding memory.
MAX_ENTRIES = 65536


class RateLimiter:
    def __init__(self) -> None:
        self._entries: dict[bytes, list[int]] = {}  # key -> [tokens, last_time] in ns
        self._last_collection = float("-inf")

    @staticmethod
    def _key(source_ip: bytes) -> bytes:
        return source_ip if len(source_ip) == 4 else source_ip[:8]

    def allow(self, source_ip: bytes, now: float) -> bool:
        if now - self._last_collection >= RATELIMITER_GARBAGE_COLLECT_TIME:
            self.collect_garbage(now)
        key = self._key(source_ip)
        now_ns = round(now * NSEC_PER_SEC)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= MAX_ENTRIES:
                return False
            self._entries[key] = [TOKEN_MAX - PACKET_COST, now_ns]
            return True
        tokens = min(TOKEN_MAX, entry[0] + (now_ns - entry[1]))
        entry[1] = now_ns
        if tokens >= PACKET_COST:
            entry[0] = tokens - PACKET_COST
            return True
        entry[0] = tokens
        return False

    def exhausted(self, source_ip: bytes, now: float) -> bool:
        """Whether `allow` would refuse `source_ip` now; takes no token and changes nothing."""
        entry = self._entries.get(self._key(source_ip))
        if entry is None:
            return len(self._entries) >= MAX_ENTRIES
        elapsed = round(now * NSEC_PER_SEC) - entry[1]
        return min(TOKEN_MAX, entry[0] + elapsed) < PACKET_COST

    def collect_garbage(self, now: float) -> None:
        self._last_collection = now
        limit = round((now - RATELIMITER_GARBAGE_COLLECT_TIME) * NSEC_PER_SEC)
        stale = [k for k, (_, last) in self._entries.items() if last < limit]
        for key in stale:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
