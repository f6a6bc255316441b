"""A flood of mac1-valid handshake initiations, on the fake clock (handshakequeue.py).

The attacker knows only the victim's public key: its initiations carry a valid mac1 and random
everything else, so each would cost the victim a Curve25519 operation. What must hold: the
cheap checks run on arrival and the costly part waits in a bounded queue, data of established
sessions is not held behind it, the queue's depth puts the device under load, under load only
mac2-valid handshakes within the per-source rate get queued and cookie replies are rate-limited
per source too, and a legitimate peer that restarts gets through within one cookie round.
"""

import random

from wgpy.core.constants import (
    MAX_QUEUED_INCOMING_HANDSHAKES,
    MESSAGE_HANDSHAKE_COOKIE,
    MESSAGE_HANDSHAKE_RESPONSE,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_TRANSPORT_DATA,
    RATELIMITER_PACKETS_BURSTABLE,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
    UNDER_LOAD_AFTER_TIME,
    UNDER_LOAD_QUEUE_LENGTH,
)
from wgpy.core.cookie import CookieGenerator
from wgpy.core.device import Device
from wgpy.core.drops import Drop
from wgpy.core.handshakequeue import HandshakeQueue
from wgpy.inmemory import Pair, ipv4_packet

SOURCES = [(f"198.51.100.{i}", 40000 + i) for i in range(64)]


class Attacker:
    """Initiations with a valid mac1 for `victim` and random ephemeral, static and timestamp."""

    def __init__(self, victim: Device, seed: int = 7) -> None:
        assert victim.public_key is not None
        self._macs = CookieGenerator(victim.public_key)
        self._random = random.Random(seed)
        self.sent = 0

    def initiation(self) -> bytes:
        message = bytearray(self._random.randbytes(MESSAGE_INITIATION_SIZE))
        message[0:4] = b"\x01\0\0\0"
        self._macs.add_macs(message, 0.0)  # no cookie: mac2 stays zero
        return bytes(message)

    def flood(self, victim: Device, count: int, now: float, sources=SOURCES) -> None:
        for _ in range(count):
            victim.decrypt(self.initiation(), sources[self.sent % len(sources)], now)
            self.sent += 1


def established() -> tuple[Pair, Device]:
    """A session A <-> B, then B queues its handshakes as wgpyd's loop has it do."""
    pair = Pair()
    pair.handshake()
    assert pair.b.delivered
    pair.b.device.defer_handshakes = True
    pair.now += UNDER_LOAD_AFTER_TIME  # the handshake's arrival is history for the load rule
    return pair, pair.b.device


def cookie_replies(device: Device) -> int:
    return sum(1 for _, datagram, _ in device.take_cookie_replies()
               if datagram[0] == MESSAGE_HANDSHAKE_COOKIE)


def test_under_load_from_the_queue_depth_and_for_a_second_after():
    queue: HandshakeQueue[int] = HandshakeQueue(capacity=4, under_load_depth=2)
    assert not queue.under_load(10.0)
    assert queue.push(1) and not queue.under_load(11.0)
    assert queue.push(2) and queue.under_load(12.0)
    assert queue.pop() == 1 and queue.pop() == 2 and len(queue) == 0
    assert queue.under_load(12.0 + UNDER_LOAD_AFTER_TIME - 0.001)
    assert not queue.under_load(12.0 + UNDER_LOAD_AFTER_TIME)
    assert all(queue.push(n) for n in range(4))
    assert not queue.push(5) and len(queue) == 4


def test_under_load_from_the_arrival_rate_even_when_nothing_waits():
    """5,000 a second that are finished as they come never pile up, yet would cost the one
    thread ~55 µs each: the 513th within a second puts the device under load."""
    queue: HandshakeQueue[int] = HandshakeQueue()
    answers = [queue.under_load(100.0 + i / 5000) for i in range(5000)]
    assert answers.index(True) == UNDER_LOAD_QUEUE_LENGTH
    assert all(answers[UNDER_LOAD_QUEUE_LENGTH:])  # the flood goes on: so does the state
    assert queue.under_load(101.0 + UNDER_LOAD_AFTER_TIME - 0.001)
    assert not queue.under_load(101.0 + UNDER_LOAD_AFTER_TIME)


def test_a_busy_hub_is_not_under_load():
    """10,000 peers renewing every REKEY_AFTER_TIME is ~83 initiations a second."""
    queue: HandshakeQueue[int] = HandshakeQueue()
    assert not any(queue.under_load(i / 200) for i in range(200 * 60))


def test_the_reference_bounds():
    queue: HandshakeQueue[int] = HandshakeQueue()
    assert queue.capacity == MAX_QUEUED_INCOMING_HANDSHAKES == 4096
    assert queue.under_load_depth == UNDER_LOAD_QUEUE_LENGTH == 4096 // 8


def test_handshakes_wait_and_data_is_not_held_behind_them():
    pair, victim = established()
    attacker = Attacker(victim)
    attacker.flood(victim, 300, pair.now)
    assert len(victim.handshakes) == 300
    assert victim.drops[Drop.HANDSHAKE_FAILED] == 0  # no Curve25519 spent yet
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"data first"))
    pair.run()
    assert pair.b.delivered[-1].endswith(b"data first")
    assert len(victim.handshakes) == 300
    while victim.handshakes:
        assert victim.process_handshake(pair.now) is None
    assert victim.drops[Drop.HANDSHAKE_FAILED] == 300
    assert not victim.handshakes.under_load(pair.now + UNDER_LOAD_AFTER_TIME)


def test_a_full_eighth_means_cookie_replies_and_they_are_rate_limited_per_source():
    pair, victim = established()
    attacker = Attacker(victim)
    attacker.flood(victim, UNDER_LOAD_QUEUE_LENGTH, pair.now)
    assert len(victim.handshakes) == UNDER_LOAD_QUEUE_LENGTH
    assert cookie_replies(victim) == 0
    one_source = [SOURCES[0]]
    attacker.flood(victim, 100, pair.now, one_source)
    assert len(victim.handshakes) == UNDER_LOAD_QUEUE_LENGTH  # under load: nothing queued
    assert cookie_replies(victim) == victim.drops[Drop.COOKIE_NEEDED]
    assert victim.drops[Drop.COOKIE_NEEDED] == RATELIMITER_PACKETS_BURSTABLE
    assert victim.drops[Drop.COOKIE_RATELIMITED] == 100 - RATELIMITER_PACKETS_BURSTABLE
    # a second later the source has its burst back (not more); the others were never limited
    attacker.flood(victim, 100, pair.now + 1.0, one_source)
    attacker.flood(victim, 3, pair.now + 1.0, SOURCES[1:4])
    assert cookie_replies(victim) == RATELIMITER_PACKETS_BURSTABLE + 3


def test_a_source_out_of_cookie_replies_is_refused_before_its_mac1():
    """Under load, a source that used up its cookie replies gets nothing for an initiation
    without mac2, whatever its mac1: counted as cookie_ratelimited, and still an arrival. A
    source with replies left, or a message with a mac2, still has its mac1 checked."""
    pair, victim = established()
    attacker = Attacker(victim)
    attacker.flood(victim, UNDER_LOAD_QUEUE_LENGTH, pair.now)  # under load from here
    attacker.flood(victim, RATELIMITER_PACKETS_BURSTABLE, pair.now, [SOURCES[0]])
    assert cookie_replies(victim) == RATELIMITER_PACKETS_BURSTABLE
    bad = bytearray(attacker.initiation())
    bad[-20] ^= 1  # mac1 wrong, mac2 zero
    victim.decrypt(bytes(bad), SOURCES[0], pair.now)
    assert victim.drops[Drop.COOKIE_RATELIMITED] == 1 and victim.drops[Drop.BAD_MAC1] == 0
    victim.decrypt(bytes(bad), SOURCES[1], pair.now)  # this source has its replies
    assert victim.drops[Drop.BAD_MAC1] == 1
    bad[-1] = 1  # a (wrong) mac2: the message is checked in full
    victim.decrypt(bytes(bad), SOURCES[0], pair.now)
    assert victim.drops[Drop.BAD_MAC1] == 2
    assert cookie_replies(victim) == 0 and len(victim.handshakes) == UNDER_LOAD_QUEUE_LENGTH


def test_refused_before_mac1_still_counts_as_an_arrival():
    """What keeps a device under load while nothing waits is the arrival rate; refusing most
    of a flood before its mac1 must not take that away (else the load state would lapse and
    the flood be queued again)."""
    pair, victim = established()
    attacker = Attacker(victim)
    attacker.flood(victim, UNDER_LOAD_QUEUE_LENGTH, pair.now)  # under load from here
    while victim.handshakes:
        victim.process_handshake(pair.now)
    first = pair.now + 0.5 * UNDER_LOAD_AFTER_TIME
    attacker.flood(victim, RATELIMITER_PACKETS_BURSTABLE, first, [SOURCES[0]])
    assert cookie_replies(victim) == RATELIMITER_PACKETS_BURSTABLE
    second = first + 0.7 * UNDER_LOAD_AFTER_TIME  # (a new one-second arrival window)
    attacker.flood(victim, UNDER_LOAD_QUEUE_LENGTH + 10, second, [SOURCES[0]])
    assert victim.drops[Drop.COOKIE_RATELIMITED] > UNDER_LOAD_QUEUE_LENGTH
    assert len(victim.handshakes) == 0
    assert victim.handshakes.loaded(second + 0.9 * UNDER_LOAD_AFTER_TIME)


def test_a_view_into_a_receive_buffer_is_copied_only_when_queued():
    """The shell passes views into a buffer it reuses: a queued handshake must not change when
    the buffer does, and a refused one needs no copy."""
    _, victim = established()
    buffer = bytearray(Attacker(victim).initiation())
    victim.decrypt(memoryview(buffer), SOURCES[0], 0.0)
    original = bytes(buffer)
    buffer[8:40] = bytes(32)
    assert len(victim.handshakes) == 1
    assert victim.handshakes.pop()[0] == original


def test_the_queue_is_bounded():
    _, victim = established()
    victim.handshakes.under_load_depth = 10**9  # never under load
    Attacker(victim).flood(victim, MAX_QUEUED_INCOMING_HANDSHAKES + 10, 0.0)
    assert len(victim.handshakes) == MAX_QUEUED_INCOMING_HANDSHAKES
    assert victim.drops[Drop.HANDSHAKE_QUEUE_FULL] == 10


def test_bad_mac1_never_reaches_the_queue():
    _, victim = established()
    message = bytearray(Attacker(victim).initiation())
    message[-20] ^= 1
    victim.decrypt(bytes(message), SOURCES[0], 0.0)
    assert victim.drops[Drop.BAD_MAC1] == 1 and len(victim.handshakes) == 0


def test_a_valid_mac2_flood_from_a_few_sources_is_held_to_the_per_source_rate():
    """Sources that answer cookie replies get mac2 right; under load each may still queue only
    20 handshakes a second (bursts of 5), so four of them cannot fill the queue."""
    pair, victim = established()
    attacker = Attacker(victim)
    attacker.flood(victim, UNDER_LOAD_QUEUE_LENGTH, pair.now)  # under load from here
    few = SOURCES[:4]
    generators = []
    for source in few:  # each asks once and takes its cookie
        generator = CookieGenerator(victim.public_key)  # type: ignore[arg-type]
        message = bytearray(attacker.initiation())
        generator.add_macs(message, pair.now)
        victim.decrypt(bytes(message), source, pair.now)
        [(_, reply, _)] = victim.take_cookie_replies()
        assert generator.consume_reply(reply, pair.now)
        generators.append(generator)
    queued_before = len(victim.handshakes)
    for tick in range(100):  # one second at 4 x 1000 per second
        now = pair.now + tick * 0.01
        for source, generator in zip(few, generators, strict=True):
            for _ in range(10):
                message = bytearray(attacker.initiation())
                generator.add_macs(message, now)
                victim.decrypt(bytes(message), source, now)
        victim.process_handshake(now)  # the shell keeps working through the queue
    queued = len(victim.handshakes) - queued_before + 100
    assert victim.drops[Drop.COOKIE_NEEDED] == 4  # mac2 was valid for all the others
    assert queued <= 4 * (RATELIMITER_PACKETS_BURSTABLE + 20)
    assert victim.drops[Drop.RATELIMITED] >= 4 * 1000 - queued


def test_a_restarted_peer_gets_through_a_flood_within_one_cookie_round():
    """20,000 initiations a second from 64 sources while the victim finishes 2,000 a second
    (about what one core does with random ones): the restarted peer's first initiation gets a
    cookie reply, its retry after REKEY_TIMEOUT carries mac2 and completes the handshake."""
    pair, victim = established()
    attacker = Attacker(victim)
    step = 0.01
    restarted = pair.now + 1.0
    pair.a.device.expire_current_keypairs(pair.a.peer)  # as a fresh start: no session
    pair.a.peer.keypairs.clear()
    delivered = len(pair.b.delivered)
    sent_before = len(pair.b.sent)
    asked = 0.0
    end = restarted + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 0.5
    while pair.now < end and len(pair.b.delivered) == delivered:
        attacker.flood(victim, 200, pair.now)
        for _ in range(20):
            victim.process_handshake(pair.now)
        answers = victim.take_outbox() + [(endpoint, datagram) for endpoint, datagram, _
                                          in victim.take_cookie_replies()]
        for endpoint, datagram in answers:  # cookie replies to the attacker go
            if endpoint == pair.a.endpoint:
                pair.wire.append((pair.b, endpoint, datagram))
        if pair.now >= restarted and not asked:
            pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"back"))
            asked = pair.now
        pair.run(limit=10_000)
        pair.advance(step, step)
        assert len(victim.handshakes) <= UNDER_LOAD_QUEUE_LENGTH + 1
    assert pair.b.delivered[-1].endswith(b"back"), victim.drops
    assert REKEY_TIMEOUT <= pair.now - asked <= REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 0.1
    handshake_replies = [d[0] for d in pair.b.sent[sent_before:] if d[0] != MESSAGE_TRANSPORT_DATA]
    assert handshake_replies == [MESSAGE_HANDSHAKE_COOKIE, MESSAGE_HANDSHAKE_RESPONSE]
    # what the flood cost: a bounded number of cookie replies, most attempts refused cheaply
    seconds = pair.now - asked + 1.0
    assert victim.drops[Drop.COOKIE_NEEDED] <= len(SOURCES) * (5 + 20 * seconds) + 1
    assert victim.drops[Drop.COOKIE_RATELIMITED] > attacker.sent // 2


def test_waiting_handshakes_survive_a_key_change_and_go_with_the_link():
    pair, victim = established()
    Attacker(victim).flood(victim, 3, pair.now)
    victim.set_private_key(None, pair.now)
    assert victim.process_handshake(pair.now) is None
    assert victim.drops[Drop.HANDSHAKE_FAILED] == 1
    victim.set_running(False, pair.now)
    assert len(victim.handshakes) == 0
