"""mac1/mac2 and cookies: secret rotation, freshness, and the rate limit under load."""

import random

from wgpy.core.constants import COOKIE_REFRESH_TIME, COOKIE_SECRET_LATENCY
from wgpy.core.cookie import CookieChecker, CookieGenerator
from wgpy.core.crypto import public_key
from wgpy.core.drops import Drop
from wgpy.inmemory import Pair, ipv4_packet

SERVER_PUBLIC = public_key(bytes(range(32)))
SOURCE = bytes([192, 0, 2, 7, 0xCA, 0xFE])


def make_message(generator: CookieGenerator, now: float) -> bytearray:
    message = bytearray(random.Random(1).randbytes(148))
    generator.add_macs(message, now)
    return message


def test_mac2_follows_the_cookie_and_its_secret_rotation():
    checker = CookieChecker(random.Random(2).randbytes)
    checker.set_public_key(SERVER_PUBLIC)
    generator = CookieGenerator(SERVER_PUBLIC)
    message = make_message(generator, 0.0)
    assert checker.check_mac1(bytes(message))
    assert not checker.check_mac2(bytes(message), SOURCE, 0.0)  # no cookie yet: mac2 is zero
    reply = checker.create_reply(bytes(message), 1, SOURCE, 0.0)
    assert generator.consume_reply(reply, 0.0)
    assert not generator.consume_reply(reply, 0.0)  # answers nothing any more
    fresh = make_message(generator, 1.0)
    assert checker.check_mac2(bytes(fresh), SOURCE, 1.0)
    assert not checker.check_mac2(bytes(fresh), SOURCE[:4] + b"\0\1", 1.0)  # other port
    # the responder's secret rotates: the same mac2 no longer verifies
    assert not checker.check_mac2(bytes(fresh), SOURCE, COOKIE_REFRESH_TIME + 1.0)


def test_a_stale_cookie_is_not_used():
    checker = CookieChecker(random.Random(3).randbytes)
    checker.set_public_key(SERVER_PUBLIC)
    generator = CookieGenerator(SERVER_PUBLIC)
    message = make_message(generator, 0.0)
    generator.consume_reply(checker.create_reply(bytes(message), 1, SOURCE, 0.0), 0.0)
    late = make_message(generator, COOKIE_REFRESH_TIME - COOKIE_SECRET_LATENCY + 0.1)
    assert bytes(late[-16:]) == bytes(16)


def test_forged_reply_and_wrong_mac1_key():
    checker = CookieChecker(random.Random(4).randbytes)
    checker.set_public_key(SERVER_PUBLIC)
    generator = CookieGenerator(public_key(bytes(range(1, 33))))  # someone else's key
    message = make_message(generator, 0.0)
    assert not checker.check_mac1(bytes(message))
    forged = bytearray(checker.create_reply(bytes(message), 1, SOURCE, 0.0))
    forged[-1] ^= 1
    assert not CookieGenerator(SERVER_PUBLIC).consume_reply(bytes(forged), 0.0)


def test_under_load_valid_mac2_is_still_rate_limited_per_source():
    pair = Pair()
    device = pair.b.device
    device.handshakes.under_load_depth = 0
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    pair.run()  # cookie reply delivered to A
    accepted = 0
    for attempt in range(12):
        pair.a.peer.last_sent_handshake = None  # let A initiate again at once
        pair.a.device.send_initiation(pair.a.peer, pair.now)
        pair.collect(pair.a)
        before = device.drops[Drop.RATELIMITED]
        pair.run()
        accepted += device.drops[Drop.RATELIMITED] == before
        pair.now += 0.021 * (attempt % 2)  # faster than 20 per second
    assert device.drops[Drop.RATELIMITED] > 0
    assert 5 <= accepted < 12
