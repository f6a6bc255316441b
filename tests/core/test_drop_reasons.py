"""Every drop reason, one row each: the smallest input that provokes it on a fresh pair.

Each row returns the device expected to count the drop; the test checks that this reason went
up there (and not on the other end). The rows together must cover every Drop, so a new reason
cannot ship without a way to trigger it.
"""

from collections.abc import Callable

import pytest

from wgpy.core.constants import (
    HANDSHAKE_INITIATION_RATE,
    MAX_STAGED_PACKETS,
    MAX_TIMER_HANDSHAKES,
    RATELIMITER_PACKETS_BURSTABLE,
    REJECT_AFTER_TIME,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
)
from wgpy.core.device import Device
from wgpy.core.drops import Drop
from wgpy.core.noise import HandshakeState
from wgpy.inmemory import Pair, ipv4_packet

# Where mac1 sits in a handshake message: the 32 bytes before the end are mac1 then mac2.
MAC1_BYTE = -20


def initiation(pair: Pair) -> bytes:
    """A's first initiation to B (A stages a packet and asks for a session), not delivered."""
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    sender, _, message = pair.wire.pop(0)
    assert sender is pair.a and message[0] == 1
    return message


def transport(pair: Pair, payload: bytes = b"data") -> bytes:
    """A data datagram from A to B under a fresh session, not delivered."""
    pair.handshake()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, payload))
    return pair.wire.pop()[2]


def to_b(pair: Pair, datagram: bytes) -> Device:
    pair.b.device.decrypt(datagram, pair.a.endpoint, pair.now)
    return pair.b.device


def answer_from_b(pair: Pair) -> bytes:
    """What B answered last: a cookie reply, or else a handshake response."""
    replies = pair.b.device.take_cookie_replies()
    return replies[-1][1] if replies else pair.b.device.take_outbox()[-1][1]


def short_datagram(pair: Pair) -> Device:
    return to_b(pair, b"\x01")


def unknown_type(pair: Pair) -> Device:
    return to_b(pair, b"\x09\0\0\0" + bytes(40))


def wrong_mac1(pair: Pair) -> Device:
    message = bytearray(initiation(pair))
    message[MAC1_BYTE] ^= 1
    return to_b(pair, bytes(message))


def under_load_without_mac2(pair: Pair) -> Device:
    pair.b.device.handshakes.under_load_depth = 0
    return to_b(pair, initiation(pair))


def under_load_cookie_replies_beyond_their_rate(pair: Pair) -> Device:
    pair.b.device.handshakes.under_load_depth = 0
    message = initiation(pair)
    for _ in range(RATELIMITER_PACKETS_BURSTABLE + 1):
        to_b(pair, message)
    return pair.b.device


def under_load_handshakes_beyond_their_rate(pair: Pair) -> Device:
    """mac2-valid initiations (A holds B's cookie) faster than the per-source rate."""
    pair.b.device.handshakes.under_load_depth = 0
    to_b(pair, initiation(pair))
    pair.a.device.decrypt(answer_from_b(pair), pair.b.endpoint, pair.now)  # the cookie
    pair.now += REKEY_TIMEOUT + 1  # A may initiate again, now with mac2
    pair.a.device.send_initiation(pair.a.peer, pair.now)
    pair.collect(pair.a)
    message = pair.wire.pop()[2]
    for _ in range(RATELIMITER_PACKETS_BURSTABLE + 1):
        to_b(pair, message)
    return pair.b.device


def handshake_queue_full(pair: Pair) -> Device:
    pair.b.device.defer_handshakes = True
    pair.b.device.handshakes.capacity = 1
    message = initiation(pair)
    to_b(pair, message)
    return to_b(pair, message)


def unknown_peer(pair: Pair) -> Device:
    message = initiation(pair)
    pair.b.device.remove_peer(pair.a.device.public_key)
    return to_b(pair, message)


def mismatched_preshared_keys(pair: Pair) -> Device:
    """The preshared key enters at the response: the initiator is the one that fails."""
    pair.b.device.set_preshared_key(pair.b.peer, bytes(range(32)))
    to_b(pair, initiation(pair))
    pair.a.device.decrypt(answer_from_b(pair), pair.b.endpoint, pair.now)
    return pair.a.device


def replayed_initiation(pair: Pair) -> Device:
    message = initiation(pair)
    to_b(pair, message)
    pair.b.device.take_outbox()
    pair.now += 1
    return to_b(pair, message)


def initiations_faster_than_their_rate(pair: Pair) -> Device:
    """Two genuine initiations (newer timestamps) closer than HANDSHAKE_INITIATION_RATE."""
    first = initiation(pair)
    pair.a.peer.last_sent_handshake = None  # A's own once-per-REKEY_TIMEOUT rule aside
    pair.a.device.send_initiation(pair.a.peer, pair.now + 1)  # a second later on A's clock
    pair.collect(pair.a)
    second = pair.wire.pop()[2]
    to_b(pair, first)
    pair.now += HANDSHAKE_INITIATION_RATE / 2
    return to_b(pair, second)


def response_without_initiation_in_flight(pair: Pair) -> Device:
    """A response for A's index while A's handshake is in no state to take one. The public
    API releases the index whenever the state leaves CREATED_INITIATION, so the row sets the
    state directly: the check guards that invariant."""
    to_b(pair, initiation(pair))
    response = answer_from_b(pair)
    pair.a.peer.handshake.state = HandshakeState.CONSUMED_INITIATION
    pair.a.device.decrypt(response, pair.b.endpoint, pair.now)
    return pair.a.device


def forged_cookie_reply(pair: Pair) -> Device:
    sender_index = initiation(pair)[4:8]
    pair.a.device.decrypt(b"\x03\0\0\0" + sender_index + bytes(56), pair.b.endpoint, pair.now)
    return pair.a.device


def unknown_receiver_index(pair: Pair) -> Device:
    return to_b(pair, b"\x04\0\0\0" + b"\xff" * 4 + bytes(24))


def session_older_than_reject_after_time(pair: Pair) -> Device:
    datagram = transport(pair)
    pair.now += REJECT_AFTER_TIME + 1
    return to_b(pair, datagram)


def flipped_ciphertext_bit(pair: Pair) -> Device:
    forged = bytearray(transport(pair))
    forged[-1] ^= 1
    return to_b(pair, bytes(forged))


def replayed_transport(pair: Pair) -> Device:
    datagram = transport(pair)
    to_b(pair, datagram)
    return to_b(pair, datagram)


def inner_length_beyond_the_packet(pair: Pair) -> Device:
    packet = bytearray(ipv4_packet(pair.a.address, pair.b.address))
    packet[2:4] = (1000).to_bytes(2, "big")  # total length says 1000, 24 bytes follow
    pair.handshake()
    pair.send(pair.a, bytes(packet))
    return to_b(pair, pair.wire.pop()[2])


def inner_source_not_allowed(pair: Pair) -> Device:
    pair.handshake()
    pair.send(pair.a, ipv4_packet("10.9.0.77", pair.b.address))
    return to_b(pair, pair.wire.pop()[2])


def no_peer_for_destination(pair: Pair) -> Device:
    pair.a.device.encrypt(ipv4_packet(pair.a.address, "10.99.0.1"), pair.now)
    return pair.a.device


def peer_without_endpoint(pair: Pair) -> Device:
    pair.b.peer.endpoint = None
    pair.b.device.encrypt(ipv4_packet(pair.b.address, pair.a.address), pair.now)
    return pair.b.device


def not_an_ip_packet(pair: Pair) -> Device:
    pair.a.device.encrypt(b"\x00" * 40, pair.now)
    return pair.a.device


def more_waiting_than_the_queue_holds(pair: Pair) -> Device:
    pair.link_up = False
    for _ in range(MAX_STAGED_PACKETS + 1):
        pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    return pair.a.device


def no_answer_within_rekey_attempt_time(pair: Pair) -> Device:
    pair.link_up = False
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    pair.advance((MAX_TIMER_HANDSHAKES + 2) * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX))
    return pair.a.device


ROWS: list[tuple[Drop, Callable[[Pair], Device]]] = [
    (Drop.BAD_LENGTH, short_datagram),
    (Drop.BAD_TYPE, unknown_type),
    (Drop.BAD_MAC1, wrong_mac1),
    (Drop.COOKIE_NEEDED, under_load_without_mac2),
    (Drop.RATELIMITED, under_load_handshakes_beyond_their_rate),
    (Drop.COOKIE_RATELIMITED, under_load_cookie_replies_beyond_their_rate),
    (Drop.HANDSHAKE_QUEUE_FULL, handshake_queue_full),
    (Drop.UNKNOWN_PEER, unknown_peer),
    (Drop.HANDSHAKE_FAILED, mismatched_preshared_keys),
    (Drop.HANDSHAKE_REPLAY, replayed_initiation),
    (Drop.HANDSHAKE_FLOOD, initiations_faster_than_their_rate),
    (Drop.UNEXPECTED_RESPONSE, response_without_initiation_in_flight),
    (Drop.BAD_COOKIE_REPLY, forged_cookie_reply),
    (Drop.UNKNOWN_INDEX, unknown_receiver_index),
    (Drop.EXPIRED_KEY, session_older_than_reject_after_time),
    (Drop.DECRYPT_FAILED, flipped_ciphertext_bit),
    (Drop.REPLAYED, replayed_transport),
    (Drop.BAD_INNER_PACKET, inner_length_beyond_the_packet),
    (Drop.SRC_NOT_ALLOWED, inner_source_not_allowed),
    (Drop.NO_KEY, no_peer_for_destination),
    (Drop.NO_ENDPOINT, peer_without_endpoint),
    (Drop.BAD_OUTBOUND_PACKET, not_an_ip_packet),
    (Drop.STAGED_OVERFLOW, more_waiting_than_the_queue_holds),
    (Drop.HANDSHAKE_TIMEOUT, no_answer_within_rekey_attempt_time),
]


def test_every_reason_has_a_row():
    assert sorted(reason for reason, _ in ROWS) == sorted(Drop)


@pytest.mark.parametrize(("reason", "trigger"), ROWS, ids=[reason.value for reason, _ in ROWS])
def test_each_reason_is_counted_where_it_happens(reason, trigger):
    pair = Pair()
    device = trigger(pair)
    assert device.drops[reason] >= 1
    other = pair.other(pair.a if device is pair.a.device else pair.b)
    assert other.device.drops[reason] == 0
