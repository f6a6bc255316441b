"""Named reasons a packet is dropped, and the per-device counters for them.

WireGuard drops silently on the wire; wgpy still drops silently but counts *why*, so "nothing
comes through" turns into "412 packets dropped: src_not_allowed" (see DESIGN.md).
"""

from enum import StrEnum


class Drop(StrEnum):
    # Datagrams from the network
    BAD_LENGTH = "bad_length"  # shorter than any message, or wrong size for its type
    BAD_TYPE = "bad_type"  # unknown message type (or non-zero reserved bytes)
    BAD_MAC1 = "bad_mac1"  # handshake not addressed to our public key
    COOKIE_NEEDED = "cookie_needed"  # under load and mac2 missing/stale: cookie reply sent
    RATELIMITED = "ratelimited"  # under load and this source exceeded its handshake rate
    COOKIE_RATELIMITED = "cookie_ratelimited"  # as cookie_needed, but this source had its share
    HANDSHAKE_QUEUE_FULL = "handshake_queue_full"  # MAX_QUEUED_INCOMING_HANDSHAKES waiting
    UNKNOWN_PEER = "unknown_peer"  # initiation from a static key we have no peer for
    HANDSHAKE_FAILED = "handshake_failed"  # handshake did not authenticate
    HANDSHAKE_REPLAY = "handshake_replay"  # initiation timestamp not newer than the last one
    HANDSHAKE_FLOOD = "handshake_flood"  # initiations from one peer faster than 50/s
    UNEXPECTED_RESPONSE = "unexpected_response"  # response for no initiation in flight
    BAD_COOKIE_REPLY = "bad_cookie_reply"  # cookie reply that does not decrypt or answers nothing
    UNKNOWN_INDEX = "unknown_index"  # receiver index names no session of ours
    EXPIRED_KEY = "expired_key"  # session older than REJECT_AFTER_TIME
    DECRYPT_FAILED = "decrypt_failed"  # transport data failed authentication
    REPLAYED = "replayed"  # counter already seen or behind the replay window
    BAD_INNER_PACKET = "bad_inner_packet"  # decrypted payload is not a sane IPv4/IPv6 packet
    SRC_NOT_ALLOWED = "src_not_allowed"  # inner source address outside the peer's AllowedIPs
    # Packets from the TUN
    NO_KEY = "no_key"  # no peer's AllowedIPs holds the destination (sender gets ICMP unreachable)
    NO_ENDPOINT = "no_endpoint"  # the peer has no known endpoint yet
    BAD_OUTBOUND_PACKET = "bad_outbound_packet"  # not an IPv4/IPv6 packet
    STAGED_OVERFLOW = "staged_overflow"  # waiting for a handshake and the queue was full
    HANDSHAKE_TIMEOUT = "handshake_timeout"  # waited packets discarded after REKEY_ATTEMPT_TIME


def new_counters() -> dict[str, int]:
    """A counter per reason, all present (so `show --drops` lists zeros too)."""
    return {reason.value: 0 for reason in Drop}
