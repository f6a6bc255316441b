"""Two device cores back to back on a fake clock: handshake, data, rotation, timers, drops."""

import itertools

import pytest

from wgpy.core.constants import (
    KEEPALIVE_TIMEOUT,
    MAX_STAGED_PACKETS,
    MAX_TIMER_HANDSHAKES,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_KEEPALIVE_SIZE,
    MESSAGE_RESPONSE_SIZE,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
    REKEY_ATTEMPT_TIME,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
)
from wgpy.core.drops import Drop
from wgpy.inmemory import Pair, ipv4_packet, ipv6_packet


def initiations(datagrams: list[bytes]) -> int:
    return sum(1 for d in datagrams if len(d) == MESSAGE_INITIATION_SIZE and d[0] == 1)


def keepalives(datagrams: list[bytes]) -> int:
    return sum(1 for d in datagrams if len(d) == MESSAGE_KEEPALIVE_SIZE and d[0] == 4)


def drops(side) -> dict[str, int]:
    return {k: v for k, v in side.device.drops.items() if v}


@pytest.mark.parametrize("psk", [None, bytes(range(32))])
def test_handshake_then_data_both_ways(psk):
    pair = Pair(psk=psk)
    packet = ipv4_packet(pair.a.address, pair.b.address, b"hello")
    pair.send(pair.a, packet)
    pair.run()
    # initiation, response, then the waiting packet as transport data
    assert [len(d) for d in pair.a.sent][:1] == [MESSAGE_INITIATION_SIZE]
    assert [len(d) for d in pair.b.sent] == [MESSAGE_RESPONSE_SIZE]
    assert pair.b.delivered == [packet]
    reply = ipv6_packet("fd00::2", "fd00::1", b"v6 reply")
    pair.send(pair.b, reply)
    pair.run()
    assert pair.a.delivered == [reply]
    assert drops(pair.a) == {} and drops(pair.b) == {}
    assert pair.a.peer.last_handshake_wall > 0 and pair.b.peer.last_handshake_wall > 0
    assert pair.a.peer.tx_bytes == sum(len(d) for d in pair.a.sent)
    assert pair.b.peer.rx_bytes == pair.a.peer.tx_bytes


def test_mismatched_psk_fails_handshake():
    pair = Pair()
    pair.a.device.set_preshared_key(pair.a.peer, bytes(32 * [7]))
    pair.handshake()
    assert pair.b.delivered == []
    assert drops(pair.a) == {Drop.HANDSHAKE_FAILED: 1}


def test_padding_to_sixteen_and_inner_length_trimmed():
    pair = Pair()
    pair.handshake()
    packet = ipv4_packet(pair.a.address, pair.b.address, b"x" * 5)  # 25 bytes -> padded 32
    pair.send(pair.a, packet)
    assert len(pair.wire[-1][2]) == 16 + 32 + 16
    pair.run()
    assert pair.b.delivered[-1] == packet


def test_responder_keeps_next_until_first_data():
    pair = Pair()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    pair.step(2)  # initiation and response only; the data packet is in flight
    assert pair.b.peer.keypairs.next is not None and pair.b.peer.keypairs.current is None
    # B cannot send under an unconfirmed session: it stages until A's first data confirms it
    pair.run()
    assert pair.b.peer.keypairs.current is not None and pair.b.peer.keypairs.next is None


def test_replayed_transport_packet_is_dropped_and_state_kept():
    pair = Pair()
    pair.handshake()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"once"))
    datagram = pair.wire[-1][2]
    pair.run()
    before = len(pair.b.delivered)
    assert pair.b.device.decrypt(datagram, pair.a.endpoint, pair.now) is None
    assert pair.b.device.drops[Drop.REPLAYED] == 1
    assert len(pair.b.delivered) == before
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"after"))
    pair.run()
    assert pair.b.delivered[-1].endswith(b"after")


def test_only_an_authenticated_datagram_vouches_for_its_source():
    """What `decrypt` returns says whether the datagram authenticated its sender (what lets
    the I/O layer keep the local address for replies): a packet, or an empty one for a
    keepalive; None for anything forged, replayed or malformed."""
    pair = Pair()
    pair.handshake()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"real"))
    (_, _, datagram), = pair.wire
    device = pair.b.device
    elsewhere = ("198.51.100.9", 4444)
    forged = bytearray(datagram)
    forged[-1] ^= 1
    for bad in (bytes(forged), b"\x04\x00\x00", b"\x09" + bytes(40)):
        assert device.decrypt(bad, elsewhere, pair.now) is None
    assert device.decrypt(datagram, pair.a.endpoint, pair.now)
    assert device.decrypt(datagram, elsewhere, pair.now) is None  # replayed from elsewhere
    assert pair.b.peer.endpoint == pair.a.endpoint
    pair.a.device.send_keepalive(pair.a.peer, pair.now)  # a keepalive authenticates too
    [(_, keepalive)] = pair.a.device.take_outbox()
    assert device.decrypt(keepalive, pair.a.endpoint, pair.now) == b""


def test_source_outside_allowed_ips_is_dropped():
    pair = Pair()
    pair.handshake()
    # A routes to B, but claims a source B does not allow for A
    spoofed = ipv4_packet("10.9.0.77", pair.b.address, b"spoof")
    pair.send(pair.a, spoofed)
    pair.run()
    assert spoofed not in pair.b.delivered
    assert pair.b.device.drops[Drop.SRC_NOT_ALLOWED] == 1


def test_no_peer_for_destination_is_no_key():
    pair = Pair()
    assert pair.a.device.encrypt(ipv4_packet(pair.a.address, "10.99.0.1"), pair.now) is None
    assert pair.a.device.drops[Drop.NO_KEY] == 1
    assert pair.a.device.take_outbox() == []


def test_forged_bit_flip_fails_decryption():
    pair = Pair()
    pair.handshake()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"data"))
    _, _, datagram = pair.wire.pop()
    forged = bytearray(datagram)
    forged[20] ^= 0x40
    assert pair.b.device.decrypt(bytes(forged), pair.a.endpoint, pair.now) is None
    assert pair.b.device.drops[Drop.DECRYPT_FAILED] == 1
    # the genuine packet still decrypts: the forged one did not touch the replay window
    assert pair.b.device.decrypt(datagram, pair.a.endpoint, pair.now) is not None


def test_replayed_initiation_is_rejected_by_timestamp():
    pair = Pair()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    initiation = pair.wire[0][2]
    pair.run()
    pair.now += 1
    assert pair.b.device.decrypt(initiation, pair.a.endpoint, pair.now) is None
    assert pair.b.device.drops[Drop.HANDSHAKE_REPLAY] == 1
    assert pair.b.device.take_outbox() == []


def test_roaming_follows_authenticated_source():
    pair = Pair()
    pair.handshake()
    pair.a.endpoint = ("198.51.100.7", 40000)  # A's NAT mapping changed
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"moved"))
    pair.run()
    assert pair.b.peer.endpoint == ("198.51.100.7", 40000)
    # an unauthenticated datagram from elsewhere does not move it
    pair.b.device.decrypt(b"\x04\0\0\0" + bytes(40), ("203.0.113.9", 1), pair.now)
    assert pair.b.peer.endpoint == ("198.51.100.7", 40000)


def test_wrong_mac1_and_unknown_peer():
    pair = Pair()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    initiation = bytearray(pair.wire[0][2])
    broken = bytearray(initiation)
    broken[-20] ^= 1
    assert pair.b.device.decrypt(bytes(broken), pair.a.endpoint, pair.now) is None
    assert pair.b.device.drops[Drop.BAD_MAC1] == 1
    pair.b.device.remove_peer(pair.a.device.public_key)
    assert pair.b.device.decrypt(bytes(initiation), pair.a.endpoint, pair.now) is None
    assert pair.b.device.drops[Drop.UNKNOWN_PEER] == 1


def test_cookie_reply_under_load_then_mac2_accepted():
    pair = Pair()
    pair.b.device.handshakes.under_load_depth = 0
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"under load"))
    pair.run()
    assert pair.b.device.drops[Drop.COOKIE_NEEDED] == 1
    assert [len(d) for d in pair.b.sent] == [64]
    assert pair.b.delivered == []
    # the retry after REKEY_TIMEOUT carries mac2 from the cookie and gets through
    pair.advance(REKEY_TIMEOUT + 1)
    assert pair.b.delivered[-1].endswith(b"under load")
    assert pair.b.device.drops[Drop.COOKIE_NEEDED] == 1


def test_forged_cookie_reply_is_dropped():
    pair = Pair()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    sender_index = int.from_bytes(pair.wire[0][2][4:8], "little")
    forged = b"\x03\0\0\0" + sender_index.to_bytes(4, "little") + bytes(56)
    assert pair.a.device.decrypt(forged, pair.b.endpoint, pair.now) is None
    assert pair.a.device.drops[Drop.BAD_COOKIE_REPLY] == 1


# ---------------------------------------------------------------- timers on the fake clock


def test_rekey_after_time_by_initiator():
    pair = Pair()
    pair.handshake()
    first = pair.a.peer.keypairs.current
    pair.advance(REKEY_AFTER_TIME - 1)
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    pair.run()
    assert pair.a.peer.keypairs.current is first
    pair.advance(2)
    sent_before = initiations(pair.a.sent)
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"after 120s"))
    pair.run()
    assert initiations(pair.a.sent) == sent_before + 1
    assert pair.a.peer.keypairs.current is not first
    assert pair.a.peer.keypairs.previous is first
    assert pair.b.delivered[-1].endswith(b"after 120s")


def test_rekey_after_messages():
    pair = Pair()
    pair.handshake()
    keypair = pair.a.peer.keypairs.current
    keypair.send_counter = REKEY_AFTER_MESSAGES
    pair.now += REKEY_TIMEOUT + 1  # past the one-initiation-per-REKEY_TIMEOUT limit
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    assert initiations([d for _, _, d in pair.wire]) == 1


def test_reject_after_messages_stages_and_rehandshakes():
    pair = Pair()
    pair.handshake()
    pair.a.peer.keypairs.current.send_counter = REJECT_AFTER_MESSAGES
    pair.advance(REKEY_TIMEOUT + 1)  # leave the handshake rate limit behind
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"fresh key"))
    pair.run()
    assert pair.b.delivered[-1].endswith(b"fresh key")
    assert pair.a.peer.keypairs.current.send_counter < 10


def test_gives_up_after_rekey_attempt_time():
    pair = Pair()
    pair.link_up = False
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"lost"))
    pair.run()
    pair.advance(REKEY_ATTEMPT_TIME - 1)
    attempts = initiations(pair.a.sent)
    assert attempts >= REKEY_ATTEMPT_TIME / (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX) - 1
    pair.advance(4 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX))  # the last retries and giving up
    total = initiations(pair.a.sent)
    assert total == 1 + MAX_TIMER_HANDSHAKES + 1  # the first, then retries, as wireguard-go
    assert not pair.a.peer.staged
    assert pair.a.device.drops[Drop.HANDSHAKE_TIMEOUT] == 1
    pair.advance(300)
    assert initiations(pair.a.sent) == total


def test_retransmit_interval_has_jitter_within_bounds():
    pair = Pair()
    pair.link_up = False
    times = []
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    for _ in range(30):
        deadline = pair.a.device.next_deadline()
        pair.now = deadline
        before = initiations(pair.a.sent)
        pair.a.device.tick(pair.now)
        pair.collect(pair.a)
        pair.run()
        if initiations(pair.a.sent) > before:
            times.append(pair.now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    longest = REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 1e-9
    assert gaps and all(REKEY_TIMEOUT <= g <= longest for g in gaps)
    assert len({round(g, 6) for g in gaps}) > 1


def test_keepalive_after_one_way_traffic():
    pair = Pair()
    pair.handshake()
    pair.advance(3 * KEEPALIVE_TIMEOUT)  # let the handshake's own keepalive exchange settle
    keepalives_before = keepalives(pair.b.sent)
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"one way"))
    pair.run()
    pair.advance(KEEPALIVE_TIMEOUT - 0.5)
    assert keepalives(pair.b.sent) == keepalives_before
    pair.advance(1)
    assert keepalives(pair.b.sent) == keepalives_before + 1
    # a keepalive is not delivered to the TUN
    assert all(len(p) > 0 for p in pair.a.delivered)


def test_new_handshake_when_data_goes_unanswered():
    pair = Pair()
    pair.handshake()
    pair.advance(30)
    pair.link_up = False
    before = initiations(pair.a.sent)
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    pair.run()
    pair.advance(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT - 0.1)
    assert initiations(pair.a.sent) == before
    pair.advance(1)
    assert initiations(pair.a.sent) == before + 1


def test_persistent_keepalive_interval():
    pair = Pair()
    pair.a.device.set_persistent_keepalive(pair.a.peer, 25, pair.now)
    pair.collect(pair.a)
    pair.run()  # turning it on sends at once: handshake then keepalive
    assert pair.b.peer.keypairs.current is not None
    count = keepalives(pair.a.sent)
    pair.advance(24)
    assert keepalives(pair.a.sent) == count
    pair.advance(2)
    assert keepalives(pair.a.sent) == count + 1
    pair.advance(25 * 3)
    assert keepalives(pair.a.sent) >= count + 4
    pair.a.device.set_persistent_keepalive(pair.a.peer, 0, pair.now)
    total = keepalives(pair.a.sent)
    pair.advance(100)
    # only the regular rekey traffic remains; no persistent keepalives
    assert keepalives(pair.a.sent) <= total + 1


def test_key_material_zeroed_after_three_reject_after_time():
    pair = Pair()
    pair.handshake()
    pair.link_up = False
    assert pair.a.peer.keypairs.current is not None
    pair.advance(REJECT_AFTER_TIME * 3 - 5)
    assert pair.a.peer.keypairs.current is not None
    pair.advance(10)
    assert pair.a.peer.keypairs.all() == []
    assert pair.b.peer.keypairs.all() == []
    assert len(pair.a.device.index_table) == 0 and len(pair.b.device.index_table) == 0


def test_expired_session_rejects_old_traffic():
    pair = Pair()
    pair.handshake()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    _, _, datagram = pair.wire.pop()
    pair.now += REJECT_AFTER_TIME + 1
    assert pair.b.device.decrypt(datagram, pair.a.endpoint, pair.now) is None
    assert pair.b.device.drops[Drop.EXPIRED_KEY] == 1


def test_changing_private_key_forces_new_handshake():
    pair = Pair()
    pair.handshake()
    pair.now += REKEY_TIMEOUT + 1
    old = pair.a.peer.keypairs.current
    pair.a.device.set_private_key(pair.a.device.private_key, pair.now)  # same key: no-op
    assert pair.a.peer.keypairs.current.send_counter == old.send_counter
    from wgpy.core.crypto import public_key
    from wgpy.core.keys import generate_private_key
    new_key = generate_private_key(lambda n: bytes([9] * n))
    pair.a.device.set_private_key(new_key, pair.now)
    pair.b.device.remove_peer(pair.b.peer.public_key)
    pair.b.peer = pair.b.device.add_peer(public_key(new_key))
    pair.b.device.allowed_ips.insert("10.9.0.1/32", pair.b.peer)
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"new identity"))
    pair.run()
    assert pair.b.delivered[-1].endswith(b"new identity")


def test_staged_queue_is_bounded():
    pair = Pair()
    pair.link_up = False
    overflow = 72
    for i in range(MAX_STAGED_PACKETS + overflow):
        pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, bytes([i])))
    assert len(pair.a.peer.staged) == MAX_STAGED_PACKETS
    assert pair.a.device.drops[Drop.STAGED_OVERFLOW] == overflow
    assert pair.a.peer.staged[0].endswith(bytes([overflow]))  # the oldest were pushed out


def test_two_way_session_start_is_exactly_one_handshake():
    """The responder answers, then has its own packet before the initiator's first data
    arrives. Sending the response counts as a sent handshake (kernel and wireguard-go set
    last_sent_handshake there), so the responder waits for confirmation instead of starting
    a second handshake and rotating keys at once."""
    pair = Pair()
    request = ipv4_packet(pair.a.address, pair.b.address, b"request")
    reply = ipv4_packet(pair.b.address, pair.a.address, b"reply")
    pair.send(pair.a, request)
    pair.step(1)  # B receives the initiation and answers; its response is in flight
    assert pair.b.peer.keypairs.next is not None and pair.b.peer.keypairs.current is None
    pair.send(pair.b, reply)  # B's own traffic under the unconfirmed session: staged
    pair.run()
    pair.advance(3 * KEEPALIVE_TIMEOUT)
    assert pair.b.delivered == [request] and pair.a.delivered == [reply]
    responses = sum(1 for d in pair.b.sent if len(d) == MESSAGE_RESPONSE_SIZE)
    assert (initiations(pair.a.sent), initiations(pair.b.sent), responses) == (1, 0, 1)
    # one session each side: the keypair A made is the one both still use
    assert pair.a.peer.keypairs.previous is None and pair.b.peer.keypairs.previous is None
    assert pair.a.peer.keypairs.current.local_index == pair.b.peer.keypairs.current.remote_index
    assert drops(pair.a) == {} and drops(pair.b) == {}


def test_down_and_up_again_handshakes_at_once():
    """Taking the interface down forgets the sessions; back up, the first packet starts a
    handshake at once, even within REKEY_TIMEOUT of the last one (wireguard-go's Peer.Start
    clears lastSentHandshake), instead of waiting for the next packet after it."""
    pair = Pair()
    pair.handshake()
    pair.a.device.set_running(False, pair.now)
    pair.now += 1
    pair.a.device.set_running(True, pair.now)
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"after"))
    pair.run()
    assert pair.b.delivered[-1].endswith(b"after")
