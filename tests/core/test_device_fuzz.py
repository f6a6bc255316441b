"""Bad input never raises and never changes state: random and mutated datagrams into a live core."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wgpy.core.drops import Drop
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


PAIR, SAMPLES = live_pair_with_samples()

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
    device = PAIR.b.device
    before = snapshot(PAIR.b)
    dropped_before = sum(device.drops.values())
    assert device.decrypt(datagram, source, PAIR.now) is None
    device.take_outbox()  # a cookie reply is the only thing it may answer with
    assert snapshot(PAIR.b) == before
    assert sum(device.drops.values()) == dropped_before + 1


def test_tunnel_still_works_after_the_garbage():
    PAIR.send(PAIR.a, ipv4_packet(PAIR.a.address, PAIR.b.address, b"still alive"))
    PAIR.run()
    assert PAIR.b.delivered[-1].endswith(b"still alive")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_from_the_tun_is_dropped(packet):
    device = PAIR.a.device
    staged = len(PAIR.a.peer.staged)
    result = device.encrypt(packet, PAIR.now)
    if result is None:
        assert len(PAIR.a.peer.staged) <= staged + 1
    device.take_outbox()


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
