"""A removed peer is freed by reference counting alone, as it is removed.

Python's cyclic collector stops every thread for a pass over every object; objects in
reference cycles wait for it. A peer refers to nothing that refers back to it once the device
has removed it (its sessions, its handshake's index and its timers are let go), so removing
peers leaves the collector nothing to do. Checked with automatic collection off: a weak
reference to what the peer held dies at its removal, and a collection then finds none of it.
"""

import contextlib
import gc
import weakref
from collections.abc import Iterator

from wgpy.core.constants import MESSAGE_INITIATION_SIZE, REKEY_TIMEOUT
from wgpy.core.device import Device
from wgpy.core.peer import Peer
from wgpy.inmemory import Pair, ipv4_packet


@contextlib.contextmanager
def no_automatic_collection() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def cyclic_garbage_of_wgpy() -> list[str]:
    """What a full collection finds unreachable that wgpy's core made (type names)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = [type(o).__qualname__ for o in gc.garbage
                 if type(o).__module__.startswith("wgpy.")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


def held_by(peer: Peer) -> list[weakref.ref]:
    """Weak references to the peer and the objects it holds that accept one."""
    return [weakref.ref(peer), weakref.ref(peer.handshake), weakref.ref(peer.cookie_generator)]


def live_pair() -> Pair:
    """Both sides with a session, packets both ways, timers pending on the heap (a persistent
    keepalive, zeroing of key material, a new handshake) and a packet waiting for a session
    on A's side of a second rotation."""
    pair = Pair()
    pair.a.device.set_persistent_keepalive(pair.a.peer, 25, pair.now)
    pair.handshake()
    pair.send(pair.b, ipv4_packet(pair.b.address, pair.a.address))
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address))
    pair.run()
    assert pair.a.peer.keypairs.current is not None and pair.b.peer.keypairs.current is not None
    assert pair.a.device.next_deadline() is not None
    return pair


def test_a_removed_peer_with_sessions_and_timers_is_freed_at_its_removal():
    pair = live_pair()
    with no_automatic_collection():
        for side in (pair.a, pair.b):
            refs = held_by(side.peer)
            side.device.remove_peer(side.peer.public_key)
            side.peer = None  # the test's own reference
            assert [ref() for ref in refs] == [None, None, None]
        assert cyclic_garbage_of_wgpy() == []


def test_a_peer_removed_mid_handshake_is_freed_at_its_removal():
    """Its handshake holds an index and the retransmit timer is armed."""
    device = Device(bytes(range(32)))
    peer = device.add_peer(Device(bytes(range(1, 33))).public_key)
    peer.endpoint = ("192.0.2.9", 51820)
    device.send_initiation(peer, 10.0)
    assert len(device.take_outbox()[0][1]) == MESSAGE_INITIATION_SIZE
    assert device.index_table.entries  # the handshake's index names the peer
    with no_automatic_collection():
        refs = held_by(peer)
        device.remove_peer(peer.public_key)
        del peer
        assert [ref() for ref in refs] == [None, None, None]
        assert not device.index_table.entries
        assert cyclic_garbage_of_wgpy() == []


def test_the_timers_of_a_removed_peer_never_act_on_a_peer_added_again_with_its_key():
    """The heap still holds the removed peer's timers (named by public key): when they come
    due they must not retransmit for the new peer, which sent nothing."""
    device = Device(bytes(range(32)))
    key = Device(bytes(range(1, 33))).public_key
    peer = device.add_peer(key)
    peer.endpoint = ("192.0.2.9", 51820)
    device.send_initiation(peer, 10.0)
    device.take_outbox()
    device.remove_peer(key)
    again = device.add_peer(key)
    again.endpoint = ("192.0.2.9", 51820)
    device.tick(10.0 + REKEY_TIMEOUT + 1.0)  # past the old retransmit, jitter included
    assert device.take_outbox() == []
    assert again.handshake_attempts == 0


def test_many_peers_removed_leave_no_cyclic_garbage():
    device = Device(bytes(range(32)))
    keys = [bytes([n]) * 32 for n in range(1, 201)]
    for n, key in enumerate(keys):
        peer = device.add_peer(key)
        device.allowed_ips.insert(f"10.0.{n}.0/24", peer)
        peer.endpoint = ("192.0.2.1", 1000 + n)
        device.set_persistent_keepalive(peer, 25, 1.0)  # a keepalive queued and timed
    refs = [weakref.ref(peer) for peer in device.peers.values()]
    del peer
    with no_automatic_collection():
        device.remove_all_peers()
        assert sum(ref() is not None for ref in refs) == 0
        assert cyclic_garbage_of_wgpy() == []
