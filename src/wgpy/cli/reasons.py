"""One sentence per drop reason, for people: the status page shows it beside each counter
(the README's "Why packets were dropped" table says the same)."""

REASONS: dict[str, str] = {
    "no_key": "No peer's AllowedIPs holds the destination; the sender gets ICMP host "
              "unreachable.",
    "src_not_allowed": "A decrypted packet's source is outside that peer's AllowedIPs.",
    "no_endpoint": "The peer has no endpoint yet (set one, or wait for it to contact you).",
    "bad_mac1": "A handshake not addressed to our public key (wrong key configured on the "
                "other side).",
    "unknown_peer": "A valid handshake from a public key we have no peer for.",
    "handshake_failed": "A handshake that did not authenticate (e.g. mismatched preshared "
                        "keys).",
    "handshake_replay": "An initiation with an old timestamp.",
    "handshake_flood": "Initiations from one peer faster than 50 per second.",
    "cookie_needed": "Under load: a cookie reply was sent instead of an answer.",
    "ratelimited": "Under load: the source exceeded its handshake rate.",
    "cookie_ratelimited": "Under load, no valid mac2, and this source already had its cookie "
                          "replies (decided before mac1).",
    "handshake_queue_full": "Under load: 4,096 handshakes were already waiting.",
    "unexpected_response": "A handshake response for no initiation in flight.",
    "bad_cookie_reply": "A cookie reply that does not decrypt or answers nothing.",
    "unknown_index": "Data for a session we do not have.",
    "expired_key": "Data for a session older than REJECT_AFTER_TIME.",
    "decrypt_failed": "Data that fails authentication.",
    "replayed": "Data with a counter already seen.",
    "bad_length": "A malformed datagram (wrong size for its type).",
    "bad_type": "A datagram of an unknown message type.",
    "bad_inner_packet": "A decrypted payload that is not a sane IPv4/IPv6 packet.",
    "bad_outbound_packet": "A packet from the TUN that is not IPv4/IPv6.",
    "staged_overflow": "Packets waiting for a handshake overflowed their queue.",
    "handshake_timeout": "Packets that waited for a handshake that never completed.",
    "tun_write_failed": "The kernel refused a decrypted packet on the TUN.",
    "udp_send_failed": "The kernel refused a datagram to the network (no route, unreachable).",
    "tun_bad_vnet_header": "A TUN read asking for an offload we never enabled.",
    "internal_error": "A bug in wgpyd, logged with its traceback.",
}


def describe(reason: str) -> str:
    return REASONS.get(reason, "")
