"""A big `set` is applied in turns (protocol.apply_set), on a fake host whose clock stands still.

What a turned set must keep: every turn bounded, the device's lines and everything that can
fail in the first, a refused set still changing nothing, and after each turn the state that
applying the device's lines and the sections so far in one call gives, so that the end
state (peers, their order, prefixes and who owns them) is the one-call set's exactly.
"""

import contextlib
import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_uapi_server import connect, read_replies

from wgpy.core.constants import ZERO_KEY
from wgpy.core.crypto import clamp_private_key, public_key
from wgpy.uapi import protocol
from wgpy.uapi.protocol import (
    AddAllowedIP,
    GetFormatter,
    PeerChange,
    RemovePeer,
    ReplaceAllowedIPs,
    ReplacePeers,
    SetEndpoint,
    SetPersistentKeepalive,
    SetPresharedKey,
    SetPrivateKey,
    SetRequest,
    UapiError,
    UpdateOnly,
    apply_set,
    format_get,
    parse_set,
    set_turns,
)
from wgpy.uapi.server import UapiServer

FakeHost = Any  # tests/uapi/conftest.py's, given by the make_host fixture


def private(n: int) -> bytes:
    return clamp_private_key(bytes([n]) * 32)


def pub(n: int) -> bytes:
    return public_key(private(n))


# Overlapping prefixes, so that sections take them from each other.
PREFIXES = [(4, 10 << 24, 8), (4, 10 << 24, 16), (4, 10 << 24 | 1 << 16, 16), (4, 0, 0),
            (6, 0xFD << 120, 8), (6, 0xFD << 120, 64)]


def snapshot(host: FakeHost) -> tuple:
    """All a set changes and a packet or a handshake is decided by: the device's key, port
    and mark; each peer in order with its preshared key, endpoint, keepalive, static-static
    secret and prefixes; and the owner of every prefix."""
    device = host.device
    keys_for_peer = device.allowed_ips.keys_for_peer
    peers = tuple((key, peer.handshake.preshared_key, peer.endpoint,
                   peer.persistent_keepalive_interval,
                   peer.handshake.precomputed_static_static, keys_for_peer(peer))
                  for key, peer in device.peers.items())
    owners = {}
    for key, peer in device.peers.items():
        for prefix in keys_for_peer(peer):
            owners[prefix] = key
    return (device.private_key, device.public_key, host.port, host.mark, peers,
            sorted(owners.items()), len(device.outbox))


class Recorder:
    """Keeps a snapshot of the host's device after each call (what the data plane works
    with until the next one), and runs `during[n]` after call n, as the data plane would."""

    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.after_each_call: list[tuple] = []
        self.during: dict[int, Callable[[], None]] = {}
        host.calls = 0
        host.after_call = self.called

    def called(self, count: int) -> None:
        if count in self.during:
            self.during[count]()
        self.after_each_call.append(snapshot(self.host))


@contextlib.contextmanager
def turn_sizes(peers: int, lines: int) -> Iterator[None]:
    saved = protocol.SET_PEERS_PER_CALL, protocol.SET_LINES_PER_CALL
    protocol.SET_PEERS_PER_CALL, protocol.SET_LINES_PER_CALL = peers, lines
    try:
        yield
    finally:
        protocol.SET_PEERS_PER_CALL, protocol.SET_LINES_PER_CALL = saved


def apply_in_one_call(host: FakeHost, request: SetRequest, sections: int | None = None) -> None:
    """The set as it was applied before turns, in one call: the device's lines in request
    order (a new key before replace_peers recomputes every peer's secret first), then the
    first `sections` sections (all of them by default)."""
    def apply() -> None:
        device = host.device
        if request.listen_port is not None:
            host.set_listen_port(request.listen_port)
        if request.fwmark is not None:
            host.set_fwmark(request.fwmark)
        now = host.now()
        for operation in request.device_operations:
            if isinstance(operation, SetPrivateKey):
                device.set_private_key(operation.key, now)
            else:
                device.remove_all_peers()
        for change in request.peers[:sections]:
            protocol._apply_peer(device, change, now)

    host.call(apply)


def host_with(make_host: type, start: SetRequest) -> tuple[FakeHost, Recorder]:
    """A host configured by `start` (in one call), recording from then on."""
    host = make_host()
    apply_in_one_call(host, start)
    return host, Recorder(host)


# ---------------------------------------------------------------------- requests at random

peer_numbers = st.integers(1, 7)  # 1-3 may also be the device's own key
peer_operations = st.one_of(
    st.just(UpdateOnly()), st.just(RemovePeer()), st.just(ReplaceAllowedIPs()),
    st.sampled_from([ZERO_KEY, b"\x01" * 32]).map(SetPresharedKey),
    st.builds(lambda n, port: SetEndpoint((f"192.0.2.{n}", port)), st.integers(1, 3),
              st.integers(1, 2)),
    st.sampled_from([0, 5, 25]).map(SetPersistentKeepalive),
    st.sampled_from(PREFIXES).map(AddAllowedIP),
)
sections = st.lists(st.builds(lambda n, ops: PeerChange(pub(n), ops), peer_numbers,
                              st.lists(peer_operations, max_size=6)), max_size=12)
device_operations = st.lists(st.one_of(
    st.just(ReplacePeers()),
    st.sampled_from([0, 1, 2, 3, 9]).map(
        lambda n: SetPrivateKey(private(n) if n else ZERO_KEY))), max_size=3)
requests = st.builds(SetRequest, st.one_of(st.none(), st.integers(1000, 1003)),
                     st.one_of(st.none(), st.integers(0, 2)), device_operations, sections)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(start=requests, request=requests, peers_per_call=st.integers(1, 4),
       lines_per_call=st.integers(1, 9))
def test_after_every_turn_the_state_is_the_one_call_set_up_to_its_sections(
        make_host, start, request, peers_per_call, lines_per_call):
    """The end state is the one-call set's, and in between, the data plane sees the device's
    lines and the sections so far applied as one call would apply them: never a section in
    part, a removed peer back, or a prefix with an owner the request never gave it."""
    turned, recorder = host_with(make_host, start)
    with turn_sizes(peers_per_call, lines_per_call):
        turns = set_turns(request.peers)
        apply_set(turned, request)
    assert turned.calls == len(turns)
    applied = 0
    for turn, after in zip(turns, recorder.after_each_call, strict=True):
        applied += len(turn)
        reference, _ = host_with(make_host, start)
        apply_in_one_call(reference, request, applied)
        assert after == snapshot(reference)
    assert applied == len(request.peers)
    assert format_get(turned) == format_get(reference)


@given(request=requests, peers_per_call=st.integers(1, 6), lines_per_call=st.integers(1, 20))
def test_turns_take_whole_sections_in_order_within_both_limits(
        request, peers_per_call, lines_per_call):
    with turn_sizes(peers_per_call, lines_per_call):
        turns = set_turns(request.peers)
    assert [change for turn in turns for change in turn] == request.peers
    assert turns and (turns[1:] == [] or all(turns))  # an empty turn only for no sections
    for turn in turns:
        assert len(turn) <= peers_per_call
        lines = sum(1 + len(change.operations) for change in turn)
        assert lines <= lines_per_call or len(turn) == 1  # a long section alone, whole


# ---------------------------------------------------------------------- chosen cases


def peer_lines(numbers: range) -> str:
    return "\n".join(f"public_key={pub(n).hex()}\nallowed_ip=10.{n}.0.0/16" for n in numbers)


def configured(make_host: type) -> tuple[FakeHost, Recorder]:
    """Key 40, port 1000, mark 3, peers 41-43 owning 10.41-43.0.0/16."""
    host = make_host()
    body = (f"private_key={private(40).hex()}\nlisten_port=1000\nfwmark=3\n"
            f"{peer_lines(range(41, 44))}")
    apply_set(host, parse_set(body.splitlines()))
    return host, Recorder(host)


def test_the_device_lines_come_in_the_first_turn_then_the_sections_in_bounded_turns(
        make_host, monkeypatch):
    monkeypatch.setattr(protocol, "SET_PEERS_PER_CALL", 3)
    host, recorder = configured(make_host)
    body = (f"listen_port=2000\nfwmark=4\nprivate_key={private(30).hex()}\nreplace_peers=true\n"
            f"{peer_lines(range(1, 11))}")
    apply_set(host, parse_set(body.splitlines()))
    assert host.calls == 4  # sections 1-3 with the device's lines, 4-6, 7-9, 10
    key, _, port, mark, peers, _, _ = recorder.after_each_call[0]
    assert (key, port, mark) == (private(30), 2000, 4)
    assert [peer[0] for peer in peers] == [pub(1), pub(2), pub(3)]  # the old ones gone
    assert [len(after[4]) for after in recorder.after_each_call] == [3, 6, 9, 10]


def test_a_long_section_is_a_turn_of_its_own_and_never_split(make_host, monkeypatch):
    monkeypatch.setattr(protocol, "SET_LINES_PER_CALL", 10)
    host = make_host()
    recorder = Recorder(host)
    many = "\n".join(f"allowed_ip=172.16.{n}.0/24" for n in range(20))
    body = (f"{peer_lines(range(1, 3))}\npublic_key={pub(3).hex()}\n{many}\n"
            f"{peer_lines(range(4, 6))}")
    apply_set(host, parse_set(body.splitlines()))
    assert [len(after[5]) for after in recorder.after_each_call] == [2, 22, 24]


@pytest.mark.parametrize(("failing", "errno"), [
    ("listen_port=4242", 98), ("fwmark=666", 98), ("listen_port=2000", 22)])
def test_a_set_refused_while_applied_changes_nothing_in_one_call(
        make_host, monkeypatch, failing, errno):
    """Port in use, fwmark refused, or (with the port) one peer more than MAX_PEERS."""
    monkeypatch.setattr(protocol, "SET_PEERS_PER_CALL", 2)
    monkeypatch.setattr(protocol, "MAX_PEERS", 3 + 8 if errno == 98 else 3 + 7)
    monkeypatch.setattr(protocol, "COLLECT_AFTER_PEERS", 4)  # a big set (collection paused)
    host, _ = configured(make_host)
    before = snapshot(host)
    body = f"{failing}\nprivate_key={private(30).hex()}\n{peer_lines(range(1, 9))}"
    with pytest.raises(UapiError) as refused:
        apply_set(host, parse_set(body.splitlines()))
    assert refused.value.code == errno
    assert host.calls == 1
    assert snapshot(host) == before
    assert gc.isenabled()


def test_a_replace_peers_set_never_routes_to_a_peer_it_removed(make_host, monkeypatch):
    """From the first turn on, the old peers are gone: their prefixes go to the peer that
    takes them once its section is applied, and until then to no peer."""
    monkeypatch.setattr(protocol, "SET_PEERS_PER_CALL", 1)
    host, recorder = configured(make_host)
    body = (f"replace_peers=true\npublic_key={pub(1).hex()}\nallowed_ip=10.1.0.0/16\n"
            f"public_key={pub(2).hex()}\nallowed_ip=10.41.0.0/16\n"
            f"public_key={pub(41).hex()}\nallowed_ip=10.42.0.0/16")

    def route() -> bytes | None:  # of a packet to 10.41.0.7, once 10.41.0.0/16 was peer 41's
        peer = host.device.allowed_ips.lookup(bytes([10, 41, 0, 7]))
        return None if peer is None else peer.public_key

    routes: list[bytes | None] = []
    recorder.during = dict.fromkeys(range(1, 4), lambda: routes.append(route()))
    apply_set(host, parse_set(body.splitlines()))
    assert routes == [None, pub(2), pub(2)]
    assert dict(recorder.after_each_call[-1][5]) == {
        (4, 10 << 24 | 1 << 16, 16): pub(1), (4, 10 << 24 | 41 << 16, 16): pub(2),
        (4, 10 << 24 | 42 << 16, 16): pub(41)}


def test_a_turned_set_makes_the_get_text_and_pauses_collection_until_its_end(
        make_host, monkeypatch):
    monkeypatch.setattr(protocol, "SET_PEERS_PER_CALL", 2)
    monkeypatch.setattr(protocol, "COLLECT_AFTER_PEERS", 4)
    host, formatter = make_host(), GetFormatter()
    collections: list[int] = []
    monkeypatch.setattr(protocol.gc, "collect", lambda: collections.append(host.calls))
    automatic: list[bool] = []  # collection, after each turn
    host.after_call = lambda _: automatic.append(gc.isenabled())
    assert gc.isenabled()
    apply_set(host, parse_set(peer_lines(range(1, 6)).splitlines()), formatter)
    assert host.calls == 3 and collections == [3]
    assert automatic == [False, False, False] and gc.isenabled()  # paused for the set only
    host.after_call = None
    expected = format_get(host) + "errno=0\n\n"  # made afresh
    made: list[bytes] = []
    real = protocol._peer_text
    monkeypatch.setattr(protocol, "_peer_text", lambda *a: made.append(a[0]) or real(*a))
    assert b"".join(formatter.reply(host)).decode() == expected
    assert made == []  # every peer's text was made by the set, turn by turn


def test_another_clients_get_waits_for_the_whole_set(make_host, tmp_path, monkeypatch):
    """The server's one thread applies the set's turns one after the other: a get sent in
    between is answered after the last, with every section applied."""
    monkeypatch.setattr(protocol, "SET_PEERS_PER_CALL", 2)
    host = make_host()
    recorder = Recorder(host)
    in_second_turn, go_on = threading.Event(), threading.Event()

    def hold() -> None:
        in_second_turn.set()
        assert go_on.wait(5)

    recorder.during = {2: hold}
    server = UapiServer("wturn0", host, socket_dir=str(tmp_path / "run"))
    server.start()
    try:
        with connect(server.path) as setter, connect(server.path) as getter:
            setter.sendall(f"set=1\n{peer_lines(range(1, 6))}\n\n".encode())
            assert in_second_turn.wait(5)
            getter.sendall(b"get=1\n\n")
            getter.settimeout(0.3)
            with pytest.raises(TimeoutError):  # not answered mid-set
                getter.recv(1)
            getter.settimeout(5)
            go_on.set()
            assert read_replies(setter) == "errno=0\n\n"
            reply = read_replies(getter)
    finally:
        go_on.set()
        server.close()
    assert [len(after[4]) for after in recorder.after_each_call[:3]] == [2, 4, 5]
    assert reply.count("public_key=") == 5
