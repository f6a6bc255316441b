"""Bad input never raises and never changes state: random and mutated datagrams into a live core.

Every test (and every Hypothesis example) works on its own live pair: `live_pair_with_samples`
is deterministic, so the captured samples fit each fresh pair and no test depends on another
having run first.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wgpy.core.drops import Drop
from wgpy.core.inet import IPV4_HEADER_SIZE
from wgpy.inmemory import ipv4_packet, live_pair_with_samples


def snapshot(side) -> tuple:
    device, peer = side.device, side.peer
    slots = peer.keypairs
    return (
        slots.current, slots.previous, slots.next,
        tuple(kp.replay.would_accept(c) for kp in slots.all() for c in range(8)),
        dict(device.index_table.entries),
        peer.endpoint, peer.rx_bytes, peer.handshake.state, peer.handshake.latest_timestamp,
        len(device.peers),
    )


SAMPLES = live_pair_with_samples()[1]

mutation = st.tuples(
    st.sampled_from(sorted(SAMPLES)),
    st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), max_size=4),
    st.one_of(st.none(), st.integers(0, 200)),
    st.binary(max_size=8),
)


def apply(kind: str, flips: list[tuple[int, int]], cut: int | None, tail: bytes) -> bytes:
    data = bytearray(SAMPLES[kind])
    for position, mask in flips:
        if position < len(data):
            data[position] ^= mask
    if cut is not None:
        data = data[:cut]
    return bytes(data) + tail


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), mutation.map(lambda m: apply(*m))),
       st.sampled_from([("192.0.2.1", 51820), ("203.0.113.5", 9), ("2001:db8::1", 51820)]))
def test_garbage_is_dropped_and_counted_without_state_change(datagram, source):
    pair, _ = live_pair_with_samples()
    device = pair.b.device
    before = snapshot(pair.b)
    dropped_before = sum(device.drops.values())
    assert device.decrypt(datagram, source, pair.now) is None
    assert device.take_outbox() == []  # a cookie reply is the only thing it may answer with
    assert snapshot(pair.b) == before
    assert sum(device.drops.values()) == dropped_before + 1


def test_tunnel_still_works_after_garbage():
    pair, _ = live_pair_with_samples()
    for kind, sample in sorted(SAMPLES.items()):
        for flip in range(0, len(sample), 7):
            pair.b.device.decrypt(apply(kind, [(flip, 0x80)], None, b""), pair.a.endpoint,
                                  pair.now)
    pair.b.device.take_cookie_replies()
    pair.send(pair.a, ipv4_packet(pair.a.address, pair.b.address, b"still alive"))
    pair.run()
    assert pair.b.delivered[-1].endswith(b"still alive")


# Packets from the TUN: anything at all, and IPv4 packets to the peer with arbitrary contents
# (whose header fields lie about lengths and protocols).
routed_to_b = st.tuples(st.binary(min_size=12, max_size=12), st.binary(max_size=100)).map(
    lambda parts: bytes([0x45]) + parts[0][1:12] + bytes([10, 9, 0, 1, 10, 9, 0, 2]) + parts[1])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=120), routed_to_b))
def test_garbage_from_the_tun_is_dropped_counted_or_sent_whole(packet):
    """What the TUN hands over is either refused with one named drop and nothing sent, or
    sealed for the peer, whose core then delivers exactly that packet or drops it by name."""
    pair, _ = live_pair_with_samples()
    a, b = pair.a.device, pair.b.device
    before_a, before_b = dict(a.drops), dict(b.drops)
    result = a.encrypt(packet, pair.now)
    assert a.take_outbox() == [] and not pair.a.peer.staged
    if result is None:
        assert changed(a.drops, before_a) in ({Drop.BAD_OUTBOUND_PACKET: 1}, {Drop.NO_KEY: 1})
        return
    assert changed(a.drops, before_a) == {}
    endpoint, datagram = result
    assert endpoint == pair.b.endpoint
    delivered = b.decrypt(datagram, pair.a.endpoint, pair.now)
    if delivered is None:
        assert changed(b.drops, before_b) in ({Drop.BAD_INNER_PACKET: 1},
                                              {Drop.SRC_NOT_ALLOWED: 1})
    else:
        assert changed(b.drops, before_b) == {}
        assert packet.startswith(delivered) and len(delivered) >= IPV4_HEADER_SIZE


def changed(drops: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {reason: count - before[reason] for reason, count in drops.items()
            if count != before[reason]}


def test_each_malformed_kind_has_its_reason():
    pair, samples = live_pair_with_samples()
    device = pair.b.device
    cases = [
        (b"\x01", Drop.BAD_LENGTH),
        (b"\x09\0\0\0" + bytes(40), Drop.BAD_TYPE),
        (b"\x01\0\0\1" + samples["initiation"][4:], Drop.BAD_TYPE),  # reserved bytes set
        (samples["initiation"][:-1], Drop.BAD_LENGTH),
        (samples["transport"][:31], Drop.BAD_LENGTH),
        (b"\x04\0\0\0" + b"\xff" * 4 + bytes(24), Drop.UNKNOWN_INDEX),
    ]
    for datagram, reason in cases:
        before = device.drops[reason]
        assert device.decrypt(datagram, pair.a.endpoint, pair.now) is None
        assert device.drops[reason] == before + 1, reason
