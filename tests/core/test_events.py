"""Peer events for the log (core/events.py), on the fake clock: a handshake completes on both
sides, a roam moves the endpoint, a preshared-key mismatch fails on the initiator, retries end
in giving up, and the record stays bounded when nobody takes it."""

import os

from wgpy.core.constants import MAX_TIMER_HANDSHAKES, REKEY_ATTEMPT_TIME
from wgpy.core.events import EVENT_BACKLOG, PeerEvent, PeerEventKind, endpoint_text
from wgpy.inmemory import Pair, ipv4_packet


def kinds(events: list[PeerEvent]) -> list[PeerEventKind]:
    return [event.kind for event in events]


def test_a_handshake_completes_on_both_sides():
    pair = Pair(seed=3)
    pair.handshake()
    a_events, b_events = pair.a.device.take_events(), pair.b.device.take_events()
    assert kinds(a_events) == [PeerEventKind.HANDSHAKE_COMPLETED]
    assert a_events[0].public_key == pair.a.peer.public_key
    # B learned A's endpoint from the initiation it already knew: no move, one completion
    assert kinds(b_events) == [PeerEventKind.HANDSHAKE_COMPLETED]
    assert pair.a.device.take_events() == []  # taken once


def test_roaming_is_an_endpoint_change_naming_both_addresses():
    pair = Pair(seed=4)
    pair.handshake()
    pair.b.device.take_events()
    pair.a.endpoint = ("198.51.100.9", 4000)  # A moves; B sees its next packet from there
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    pair.run()
    (event,) = pair.b.device.take_events()
    assert event.kind == PeerEventKind.ENDPOINT_CHANGED
    assert event.detail == "192.0.2.1:51820 -> 198.51.100.9:4000"


def test_preshared_key_mismatch_fails_on_the_initiator():
    pair = Pair(seed=5, psk=os.urandom(32))
    pair.b.device.set_preshared_key(pair.b.peer, os.urandom(32))
    pair.handshake()
    events = pair.a.device.take_events()
    assert PeerEventKind.HANDSHAKE_FAILED in kinds(events)
    assert PeerEventKind.HANDSHAKE_COMPLETED not in kinds(events)


def test_retries_end_in_giving_up_once():
    pair = Pair(seed=6)
    pair.link_up = False
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    pair.run()
    pair.advance(REKEY_ATTEMPT_TIME + 30)
    events = pair.a.device.take_events()
    assert kinds(events) == [PeerEventKind.HANDSHAKE_GAVE_UP]
    assert events[0].detail == f"after {MAX_TIMER_HANDSHAKES + 2} attempts"


def test_the_record_is_bounded():
    pair = Pair(seed=8)
    for _ in range(EVENT_BACKLOG + 50):
        pair.a.device._move_endpoint(pair.a.peer, ("192.0.2.77", len(pair.a.device.events)))
    assert len(pair.a.device.take_events()) == EVENT_BACKLOG


def test_endpoint_text():
    assert endpoint_text(None) == "none"
    assert endpoint_text(("fd00::1", 51820)) == "[fd00::1]:51820"
