"""UAPI get/set semantics on a real core Device behind a fake host (no sockets, no root).

The expected texts and errnos are what wireguard-go 0.0.20220316 answers; the root-only
test_uapi_vs_wireguard_go.py checks the same ground against the real binary.
"""

import gc
import ipaddress
import weakref

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wgpy.core.crypto import clamp_private_key, public_key
from wgpy.uapi import netip, protocol
from wgpy.uapi.protocol import (
    GetFormatter,
    UapiError,
    apply_set,
    format_drops,
    format_endpoint,
    format_get,
    parse_endpoint,
    parse_prefix,
    parse_set,
)


def private(n: int) -> bytes:
    return clamp_private_key(bytes([n]) * 32)


def pub(n: int) -> str:
    return public_key(private(n)).hex()


ZERO = "00" * 32


def uapi_set(host, body: str, formatter: GetFormatter | None = None) -> int:
    """What the server does with a `set=1` body: the reply's errno (0, or negative)."""
    try:
        apply_set(host, parse_set(body.splitlines()), formatter)
    except UapiError as exc:
        return -exc.code
    return 0


def state(host) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for line in format_get(host).splitlines():
        key, _, value = line.partition("=")
        result.setdefault(key, []).append(value)
    return result


def peer_blocks(host) -> list[list[str]]:
    blocks: list[list[str]] = []
    for line in format_get(host).splitlines():
        if line.startswith("public_key="):
            blocks.append([])
        if blocks:
            blocks[-1].append(line)
    return blocks


# ---------------------------------------------------------------------- get


def test_empty_device_gets_nothing_and_has_zero_drop_counters(host):
    assert format_get(host) == ""  # as wireguard-go: no key of its own
    lines = format_drops(host).splitlines()
    assert lines and all(line.startswith("drop_") for line in lines)
    assert {line.split("=")[1] for line in lines} == {"0"}


def test_round_trip_in_wireguard_go_order_and_formats(host):
    unclamped = "ff" * 32
    body = (f"private_key={unclamped}\nlisten_port=51820\nfwmark=7\n"
            f"public_key={pub(1)}\npreshared_key={'AB' * 32}\nendpoint=[2001:DB8:0::1]:51820\n"
            "persistent_keepalive_interval=25\nallowed_ip=10.0.0.1/24\nallowed_ip=FD00::1/64\n"
            "allowed_ip=::ffff:10.9.0.0/112\nprotocol_version=1\n"
            f"public_key={pub(2)}\nendpoint=192.0.2.9:1\nallowed_ip=10.0.0.0/24\n")
    assert uapi_set(host, body) == 0
    peer = host.device.peers[bytes.fromhex(pub(1))]
    peer.last_handshake_wall = 1_700_000_123.25
    peer.rx_bytes, peer.tx_bytes = 1000, 2000
    text = format_get(host)
    assert text == (
        "private_key=f8" + "ff" * 30 + "7f\nlisten_port=51820\nfwmark=7\n"
        + f"public_key={pub(1)}\npreshared_key={'ab' * 32}\nprotocol_version=1\n"
        "endpoint=[2001:db8::1]:51820\nlast_handshake_time_sec=1700000123\n"
        "last_handshake_time_nsec=250000000\ntx_bytes=2000\nrx_bytes=1000\n"
        "persistent_keepalive_interval=25\nallowed_ip=fd00::/64\n"
        "allowed_ip=::ffff:10.9.0.0/112\n"
        f"public_key={pub(2)}\npreshared_key={ZERO}\nprotocol_version=1\n"
        "endpoint=192.0.2.9:1\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n"
        "tx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\nallowed_ip=10.0.0.0/24\n"
    )


def test_peers_in_insertion_order_and_readded_peer_goes_last(host):
    for n in (5, 3, 9):
        assert uapi_set(host, f"public_key={pub(n)}") == 0
    assert uapi_set(host, f"public_key={pub(5)}\nremove=true\npublic_key={pub(5)}") == 0
    assert state(host)["public_key"] == [pub(3), pub(9), pub(5)]


def test_allowed_ips_in_the_tables_order_reinsert_moves_to_end(host):
    body = (f"public_key={pub(1)}\nallowed_ip=1.2.3.4/32\nallowed_ip=1.2.3.0/24\n"
            "allowed_ip=1.2.3.4/32\nallowed_ip=::/0\nallowed_ip=0.0.0.0/0")
    assert uapi_set(host, body) == 0
    assert state(host)["allowed_ip"] == ["1.2.3.0/24", "1.2.3.4/32", "::/0", "0.0.0.0/0"]


def test_zero_values_are_not_listed(host):
    assert uapi_set(host, "listen_port=5\nfwmark=9") == 0
    assert uapi_set(host, f"private_key={ZERO}\nlisten_port=0\nfwmark=0") == 0
    keys = state(host).keys()
    assert not {"private_key", "listen_port", "fwmark"} & keys


@pytest.mark.parametrize("made_by_the_set", [False, True])
def test_kept_text_follows_every_change_a_fresh_get_shows(host, monkeypatch, made_by_the_set):
    """GetFormatter keeps each peer's text between gets: after each kind of change its
    reply must be what a fresh formatting gives, byte for byte (here two peers a turn),
    also when the sets make the text of the peers they name (as the server's do)."""
    monkeypatch.setattr(protocol, "GET_PEERS_PER_CALL", 2)
    kept = GetFormatter()
    formatter = kept if made_by_the_set else None

    def check() -> None:
        assert b"".join(kept.reply(host)) == (format_get(host) + "errno=0\n\n").encode()

    assert uapi_set(host, f"private_key={'11' * 32}\nlisten_port=51820\n"
                          f"public_key={pub(1)}\nendpoint=192.0.2.1:1\nallowed_ip=10.1.0.0/16\n"
                          f"public_key={pub(2)}\nallowed_ip=10.2.0.0/16\nallowed_ip=fd02::/64\n"
                          f"public_key={pub(3)}\npersistent_keepalive_interval=5",
                    formatter) == 0
    check()
    one = host.device.peers[bytes.fromhex(pub(1))]
    changes = [
        f"public_key={pub(1)}\nendpoint=[2001:db8::7]:9",
        f"public_key={pub(1)}\npreshared_key={'cd' * 32}",
        f"public_key={pub(2)}\npersistent_keepalive_interval=25",
        f"public_key={pub(2)}\nallowed_ip=10.1.0.0/16",  # moved from peer 1
        f"public_key={pub(2)}\nallowed_ip=10.2.0.0/16",  # re-insert: to the end of the list
        f"public_key={pub(3)}\nallowed_ip=10.3.0.0/16\npersistent_keepalive_interval=0",
        f"public_key={pub(2)}\nreplace_allowed_ips=true\nallowed_ip=10.9.0.0/16",
        f"public_key={pub(1)}\nremove=true",
        f"public_key={pub(1)}\nendpoint=192.0.2.1:1",  # the same key again: a new peer
        "listen_port=0\nfwmark=3",
        "replace_peers=true\n" f"public_key={pub(4)}\nallowed_ip=::/0",
    ]
    for change in changes:
        assert uapi_set(host, change, formatter) == 0, change
        check()
        one.endpoint = ("192.0.2.200", 7)  # roaming (the data plane), for peers still there
        for peer in host.device.peers.values():
            peer.tx_bytes += 1
        check()
    host.device.allowed_ips.remove("::/0", host.device.peers[bytes.fromhex(pub(4))])
    host.device.peers[bytes.fromhex(pub(4))].last_handshake_wall = 1_700_000_000.5
    check()


def test_a_big_get_lets_the_data_plane_run_between_turns_of_peers(host, monkeypatch):
    monkeypatch.setattr(protocol, "GET_PEERS_PER_CALL", 2)
    assert uapi_set(host, "\n".join(f"public_key={pub(n)}" for n in range(1, 6))) == 0
    host.calls = 0
    assert len(peer_blocks(host)) == 5
    assert host.calls == 1 + 3  # the device's lines, then peers 1-2, 3-4 and 5


def test_a_set_of_many_peers_pays_the_full_collection_itself(host, monkeypatch):
    """Python's collector runs a full pass after a set of many peers (a quarter of the
    device's at least), inside the set's own host.call, not at a later allocation."""
    monkeypatch.setattr(protocol, "COLLECT_AFTER_PEERS", 4)
    full_passes: list[int] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full_passes.append(host.calls)

    def add_peers(first: int, count: int) -> None:
        body = "\n".join(f"public_key={pub(n)}" for n in range(first, first + count))
        assert uapi_set(host, body) == 0

    gc.disable()  # only the collections asked for
    gc.callbacks.append(seen)
    try:
        add_peers(1, 4)
        assert full_passes == [1]  # during the set's own call
        add_peers(5, 3)  # 3 sections: under the limit
        add_peers(8, 12)  # 12 new of 19 peers: over it
        assert full_passes == [1, 3]
        for first in range(20, 40, 4):  # 4 sections, but no longer a quarter of the peers
            add_peers(first, 4)
        assert full_passes == [1, 3]
    finally:
        gc.callbacks.remove(seen)
        gc.enable()


def test_removed_peers_are_freed_by_their_set_which_owes_no_collection(host, monkeypatch):
    """A set removing many peers (remove=true, or replace_peers) frees them by reference
    counting as each turn removes them, the get text kept for them included; it pays no full
    collection for them (a replace_peers set still does for the peers it adds)."""
    monkeypatch.setattr(protocol, "COLLECT_AFTER_PEERS", 4)
    monkeypatch.setattr(protocol, "SET_PEERS_PER_CALL", 3)
    full_passes: list[int] = []
    monkeypatch.setattr(protocol.gc, "collect", lambda: full_passes.append(host.calls))
    formatter = GetFormatter()

    def peers_set(body: str) -> list[weakref.ref]:
        """Apply `body` (its host.calls counted from 1), then get (the formatter keeps the
        text of every peer)."""
        host.calls = 0
        assert uapi_set(host, body, formatter) == 0
        formatter.reply(host)
        return [weakref.ref(peer) for peer in host.device.peers.values()]

    def sections(numbers: range, extra: str = "") -> str:
        return "\n".join(f"public_key={pub(n)}\nallowed_ip=10.0.{n}.0/24{extra}"
                         for n in numbers)

    old = peers_set(sections(range(1, 9)))
    assert len(old) == 8 and full_passes == [3]
    gc.disable()  # from here on, only reference counting frees anything
    try:
        new = peers_set("replace_peers=true\n" + sections(range(11, 19)))
        assert [ref() for ref in old] == [None] * 8
        assert full_passes == [3, 3]  # in the last of its 3 turns, for the peers it added
        host.calls = 0
        assert uapi_set(host, sections(range(11, 19), "\nremove=true"), formatter) == 0
        assert [ref() for ref in new] == [None] * 8 and host.device.peers == {}
        assert full_passes == [3, 3]  # nothing added: no collection
    finally:
        gc.enable()


def test_the_end_of_set_collection_leaves_what_was_there_before_the_set(host, monkeypatch):
    """Frozen for the set, then unfrozen: the pass scans the set's own objects only, and
    they are put back behind the older ones."""
    monkeypatch.setattr(protocol, "COLLECT_AFTER_PEERS", 4)
    assert uapi_set(host, f"public_key={pub(1)}") == 0
    old_peer = host.device.peers[bytes.fromhex(pub(1))]
    scanned: list[tuple[bool, bool]] = []  # (old peer, a peer of the set) open to the pass

    def collect() -> None:
        objects = gc.get_objects()  # (the collector's generations: not what is frozen)
        new_peer = host.device.peers[bytes.fromhex(pub(2))]
        scanned.append((any(o is old_peer for o in objects),
                        any(o is new_peer for o in objects)))

    monkeypatch.setattr(protocol.gc, "collect", collect)
    assert gc.get_freeze_count() == 0
    assert uapi_set(host, "\n".join(f"public_key={pub(n)}" for n in range(2, 7))) == 0
    assert scanned == [(False, True)]
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    oldest = [id(o) for o in gc.get_objects(generation=2)]  # in age order: the old peer first
    new_peer = host.device.peers[bytes.fromhex(pub(2))]
    assert oldest.index(id(old_peer)) < oldest.index(id(new_peer))


def test_drop_counters_are_reported_by_their_own_request_only(host):
    host.device.drops["src_not_allowed"] = 412
    host.shell_drops["udp_send_failed"] = 3
    drops = dict(line.split("=") for line in format_drops(host).splitlines())
    assert drops["drop_src_not_allowed"] == "412" and drops["drop_udp_send_failed"] == "3"
    assert list(drops)[-1] == "drop_udp_send_failed"  # the core's, then the shell's
    assert "drop" not in format_get(host)


@pytest.mark.parametrize(("endpoint", "shown"), [
    (("192.0.2.1", 51820), "192.0.2.1:51820"),
    (("2001:db8::1", 1), "[2001:db8::1]:1"),
    (("fe80::1%eth0", 7), "[fe80::1]:7"),  # DstToString drops the zone
])
def test_format_endpoint(endpoint, shown):
    assert format_endpoint(endpoint) == shown


# ---------------------------------------------------------------------- set: errors


BAD_DEVICE_LINES = [
    ("listen_port=65536", 22), ("listen_port=-1", 22), ("listen_port=+5", 22),
    ("listen_port=", 22), ("listen_port= 5", 22), ("fwmark=4294967296", 22), ("fwmark=x", 22),
    ("private_key=abc", 22), (f"private_key={'g' * 64}", 22), (f"private_key={'ab' * 33}", 22),
    (f"private_key={'ab cd ' * 10}abcd", 22), ("replace_peers=false", 22),
    ("replace_peers=True", 22), ("bogus=1", 22), ("=x", 22), ("endpoint=1.2.3.4:5", 22),
    ("allowed_ip=10.0.0.0/8", 22), ("protocol_version=1", 22), ("no equals sign", 71),
    ("", 71), ("public_key=abc", 22), (f"public_key={'ab' * 31}", 22),
]

BAD_PEER_LINES = [
    ("allowed_ip=10.0.0.0/33", 22), ("allowed_ip=10.0.0.0", 22), ("allowed_ip=/8", 22),
    ("allowed_ip=10.0.0.0/8/8", 22), ("allowed_ip=10.0.0.0/ 8", 22), ("allowed_ip=10.0.0.0/", 22),
    ("allowed_ip=10.0.0.0/0x8", 22), ("allowed_ip=10.0.0.0/-1", 22), ("allowed_ip=fe80::%1/64", 22),
    ("allowed_ip=::/129", 22), ("allowed_ip=010.0.0.0/8", 22), ("allowed_ip=10.0.0.0/8 ", 22),
    ("endpoint=example.com:1", 22), ("endpoint=1.2.3.4", 22), ("endpoint=1.2.3.4:", 22),
    ("endpoint=1.2.3.4:65536", 22), ("endpoint=1.2.3.4:+5", 22), ("endpoint=[1.2.3.4]:5", 22),
    ("endpoint=2001:db8::1:51820", 22), ("endpoint=[::1]5", 22), ("endpoint=[::1]:5:6", 22),
    ("endpoint=01.2.3.4:5", 22), ("endpoint= 1.2.3.4:5", 22), ("endpoint=1.2.3.4%x:5", 22),
    ("endpoint=[fe80::1%]:5", 22), ("endpoint=[fe80::1%nosuchif0]:5", 22), ("endpoint=", 22),
    ("endpoint=[1::2:3:4:5:6:7:8]:5", 22), ("endpoint=[]:5", 22),
    ("persistent_keepalive_interval=65536", 22), ("persistent_keepalive_interval=+5", 22),
    ("persistent_keepalive_interval=", 22), ("preshared_key=", 22), ("preshared_key=0", 22),
    ("protocol_version=2", 22), ("protocol_version=01", 22), ("update_only=True", 22),
    ("remove=1", 22), ("replace_allowed_ips=yes", 22), (f"private_key={'11' * 32}", 22),
    ("listen_port=1", 22), ("tx_bytes=0", 22), ("allowed_ip", 71),
]


def configured(host) -> None:
    body = (f"private_key={private(9).hex()}\nlisten_port=1000\nfwmark=3\n"
            f"public_key={pub(1)}\nendpoint=192.0.2.1:1\nallowed_ip=10.1.0.0/16\n"
            "persistent_keepalive_interval=5\n"
            f"public_key={pub(2)}\nallowed_ip=10.2.0.0/16\n")
    assert uapi_set(host, body) == 0


@pytest.mark.parametrize(("line", "code"), BAD_DEVICE_LINES)
def test_bad_device_line_changes_nothing(host, line, code):
    configured(host)
    before = format_get(host)
    # valid lines of every kind around the bad one must not be applied either
    body = (f"listen_port=2000\nfwmark=4\nreplace_peers=true\nprivate_key={private(8).hex()}\n"
            f"{line}\npublic_key={pub(3)}\nallowed_ip=10.3.0.0/16\n")
    assert uapi_set(host, body) == -code
    assert format_get(host) == before


@pytest.mark.parametrize(("line", "code"), BAD_PEER_LINES)
def test_bad_peer_line_changes_nothing(host, line, code):
    configured(host)
    before = format_get(host)
    body = (f"listen_port=2000\nreplace_peers=true\npublic_key={pub(3)}\n"
            f"allowed_ip=10.1.0.0/16\npublic_key={pub(1)}\nremove=true\n"
            f"public_key={pub(2)}\n{line}\nallowed_ip=10.9.0.0/16")
    assert uapi_set(host, body) == -code
    assert format_get(host) == before


def test_port_in_use_changes_nothing(host):
    configured(host)
    before = format_get(host)
    body = f"fwmark=8\nlisten_port={host.busy_port}\nreplace_peers=true"
    assert uapi_set(host, body) == -98
    assert format_get(host) == before


def test_refused_fwmark_restores_the_port_and_changes_nothing(host):
    configured(host)
    before = format_get(host)
    body = f"listen_port=2222\nfwmark={host.bad_mark}\nreplace_peers=true"
    assert uapi_set(host, body) == -98  # wireguard-go's answer for any fwmark failure
    assert format_get(host) == before
    assert host.port == 1000


def test_a_host_bug_in_set_fwmark_still_changes_nothing(host, monkeypatch):
    configured(host)
    before = format_get(host)

    def broken(mark: int) -> None:
        raise TypeError("a bytes-like object is required")

    monkeypatch.setattr(host, "set_fwmark", broken)
    with pytest.raises(TypeError):  # the server answers ENOANO, as for any internal error
        apply_set(host, parse_set(["listen_port=2222", "fwmark=1"]))
    assert format_get(host) == before


def test_a_small_set_is_one_call_on_the_data_plane(host):
    # (a big one is applied in turns: test_set_turns.py)
    body = "\n".join(f"public_key={pub(n)}\nallowed_ip=10.{n}.0.0/16" for n in range(1, 30))
    host.calls = 0
    assert uapi_set(host, body) == 0
    assert host.calls == 1


def test_too_many_peers_changes_nothing(host, monkeypatch):
    monkeypatch.setattr(protocol, "MAX_PEERS", 3)
    configured(host)
    before = format_get(host)
    assert uapi_set(host, f"public_key={pub(3)}\npublic_key={pub(4)}") == -22
    assert format_get(host) == before
    # removing first, or not creating (update_only), or replacing all, stays in bounds
    assert uapi_set(host, f"public_key={pub(5)}\nupdate_only=true\npublic_key={pub(3)}") == 0
    assert uapi_set(host, f"public_key={pub(1)}\nremove=true\npublic_key={pub(4)}") == 0
    body = "replace_peers=true\n" + "\n".join(f"public_key={pub(n)}" for n in (5, 6, 7))
    assert uapi_set(host, body) == 0
    assert len(host.device.peers) == 3
    # the own key (after this request's private_key) is no peer, and takes no slot
    body = f"private_key={private(5).hex()}\npublic_key={pub(8)}\npublic_key={pub(5)}"
    assert uapi_set(host, body) == 0
    assert set(state(host)["public_key"]) == {pub(6), pub(7), pub(8)}


# ---------------------------------------------------------------------- set: semantics


def test_replace_peers(host):
    configured(host)
    assert uapi_set(host, f"replace_peers=true\npublic_key={pub(3)}\nallowed_ip=10.1.0.0/16") == 0
    assert state(host)["public_key"] == [pub(3)]
    assert state(host)["allowed_ip"] == ["10.1.0.0/16"]


def test_update_only_updates_but_does_not_create(host):
    configured(host)
    body = (f"public_key={pub(1)}\nupdate_only=true\nallowed_ip=10.11.0.0/16\n"
            f"public_key={pub(3)}\nupdate_only=true\nallowed_ip=10.3.0.0/16")
    assert uapi_set(host, body) == 0
    assert state(host)["public_key"] == [pub(1), pub(2)]
    assert state(host)["allowed_ip"] == ["10.1.0.0/16", "10.11.0.0/16", "10.2.0.0/16"]


def test_update_only_late_in_a_section_undoes_the_new_peer_as_wireguard_go(host):
    configured(host)
    # wireguard-go applies line by line: the new peer takes 10.2.0.0/16 from peer 2, then
    # update_only removes the new peer with it; the prefix is gone from both.
    body = f"public_key={pub(3)}\nallowed_ip=10.2.0.0/16\nupdate_only=true\nallowed_ip=1.0.0.0/8"
    assert uapi_set(host, body) == 0
    assert state(host)["public_key"] == [pub(1), pub(2)]
    assert state(host)["allowed_ip"] == ["10.1.0.0/16"]


def test_remove_and_the_rest_of_its_section_is_ignored(host):
    configured(host)
    body = (f"public_key={pub(1)}\nremove=true\nallowed_ip=10.2.0.0/16\nendpoint=1.1.1.1:1\n"
            f"public_key={pub(7)}\nremove=true")  # removing an unknown peer is fine
    assert uapi_set(host, body) == 0
    assert state(host)["public_key"] == [pub(2)]
    assert state(host)["allowed_ip"] == ["10.2.0.0/16"]


def test_replace_allowed_ips(host):
    configured(host)
    body = (f"public_key={pub(1)}\nreplace_allowed_ips=true\nallowed_ip=10.3.0.0/16\n"
            f"public_key={pub(2)}\nreplace_allowed_ips=true")
    assert uapi_set(host, body) == 0
    assert [block[-1] for block in peer_blocks(host)] == [
        "allowed_ip=10.3.0.0/16", "persistent_keepalive_interval=0"]


def test_prefix_moves_to_the_last_peer_that_claims_it_seed_004(host):
    # Seed 004: two peers with AllowedIPs = 0.0.0.0/0 leave the first with none.
    body = (f"public_key={pub(1)}\nallowed_ip=0.0.0.0/0\n"
            f"public_key={pub(2)}\nallowed_ip=0.0.0.0/0")
    assert uapi_set(host, body) == 0
    blocks = peer_blocks(host)
    assert not any(line.startswith("allowed_ip=") for line in blocks[0])
    assert blocks[1][-1] == "allowed_ip=0.0.0.0/0"


def test_host_bits_are_masked_and_the_masked_prefix_is_one_entry(host):
    body = f"public_key={pub(1)}\nallowed_ip=10.1.2.3/8\nallowed_ip=10.0.0.0/8\nallowed_ip=::1/0"
    assert uapi_set(host, body) == 0
    assert state(host)["allowed_ip"] == ["10.0.0.0/8", "::/0"]


def test_own_public_key_is_a_dummy_peer(host):
    own = pub(9)
    body = (f"private_key={private(9).hex()}\npublic_key={own}\nallowed_ip=10.0.0.0/8\n"
            "endpoint=1.2.3.4:5\nupdate_only=true\nremove=true\nreplace_allowed_ips=true")
    assert uapi_set(host, body) == 0
    assert host.device.peers == {}
    assert "allowed_ip" not in state(host)


def test_zero_public_key_is_ignored_without_a_private_key(host):
    assert uapi_set(host, f"public_key={ZERO}\nallowed_ip=1.0.0.0/8") == 0
    assert host.device.peers == {}


def test_new_private_key_removes_the_peer_with_that_public_key(host):
    configured(host)
    assert uapi_set(host, f"private_key={private(1).hex()}") == 0
    assert state(host)["public_key"] == [pub(2)]
    assert state(host)["private_key"] == [private(1).hex()]


def test_keys_are_case_insensitive_and_shown_lowercase(host):
    assert uapi_set(host, f"public_key={pub(1).upper()}\npreshared_key={'CD' * 32}") == 0
    assert state(host)["public_key"] == [pub(1)]
    assert state(host)["preshared_key"] == ["cd" * 32]
    assert uapi_set(host, f"public_key={pub(1)}\npreshared_key={ZERO}") == 0
    assert state(host)["preshared_key"] == [ZERO]


def test_numbers_take_leading_zeros(host):
    body = (f"listen_port=00017\nfwmark=4294967295\npublic_key={pub(1)}\n"
            "persistent_keepalive_interval=065535\nendpoint=1.2.3.4:05")
    assert uapi_set(host, body) == 0
    got = state(host)
    assert (got["listen_port"], got["fwmark"]) == (["17"], ["4294967295"])
    assert got["persistent_keepalive_interval"] == ["65535"]
    assert got["endpoint"] == ["1.2.3.4:5"]


def test_repeated_device_lines_last_one_wins(host):
    body = f"listen_port=1\nlisten_port=2\nfwmark=1\nfwmark=0\nprivate_key={private(3).hex()}"
    assert uapi_set(host, body) == 0
    assert (host.port, host.mark) == (2, 0)


# ---------------------------------------------------------------------- keepalive


def keepalive_setup(host, running: bool = True) -> bytes:
    host.device.set_running(running, host.clock)
    body = f"private_key={private(9).hex()}\npublic_key={pub(1)}\nendpoint=192.0.2.1:51820"
    assert uapi_set(host, body) == 0
    host.device.take_outbox()
    return bytes.fromhex(pub(1))


def test_turning_keepalive_on_sends_at_once(host):
    key = keepalive_setup(host)
    assert uapi_set(host, f"public_key={pub(1)}\npersistent_keepalive_interval=25") == 0
    sent = host.device.take_outbox()
    assert len(sent) == 1 and sent[0][0] == ("192.0.2.1", 51820)  # a handshake initiation
    assert host.device.peers[key].persistent_keepalive_interval == 25


def test_keepalive_goes_to_the_endpoint_set_later_in_the_section(host):
    host.device.set_running(True, host.clock)
    body = (f"private_key={private(9).hex()}\npublic_key={pub(1)}\n"
            "persistent_keepalive_interval=25\nendpoint=[2001:db8::7]:9")
    assert uapi_set(host, body) == 0
    assert [endpoint for endpoint, _ in host.device.take_outbox()] == [("2001:db8::7", 9)]


@pytest.mark.parametrize(("lines", "sends"), [
    (["25"], True),
    (["25", "30"], False),  # wireguard-go: the last line decides, and 25 -> 30 is no turn-on
    (["25", "0"], False),
    (["25", "0", "30"], True),
    (["7", "7"], False),
])
def test_keepalive_turn_on_follows_wireguard_go_line_by_line(host, lines, sends):
    keepalive_setup(host)
    body = f"public_key={pub(1)}\n" + "".join(
        f"persistent_keepalive_interval={value}\n" for value in lines)
    assert uapi_set(host, body) == 0
    assert bool(host.device.take_outbox()) is sends
    assert state(host)["persistent_keepalive_interval"] == [lines[-1]]


def test_keepalive_already_on_or_device_down_sends_nothing(host):
    keepalive_setup(host)
    assert uapi_set(host, f"public_key={pub(1)}\npersistent_keepalive_interval=25") == 0
    host.device.take_outbox()
    host.clock += 10  # past REKEY_TIMEOUT, so only the rule under test can hold a send back
    assert uapi_set(host, f"public_key={pub(1)}\npersistent_keepalive_interval=30") == 0
    assert host.device.take_outbox() == []
    host.device.set_running(False, host.clock)
    assert uapi_set(host, f"public_key={pub(1)}\npersistent_keepalive_interval=0\n"
                          f"public_key={pub(1)}\npersistent_keepalive_interval=5") == 0
    assert host.device.take_outbox() == []


# ---------------------------------------------------------------------- parsers


@pytest.mark.parametrize(("text", "endpoint"), [
    ("1.2.3.4:51820", ("1.2.3.4", 51820)),
    ("1.2.3.4:0", ("1.2.3.4", 0)),
    ("[2001:DB8:0:0::1]:1", ("2001:db8::1", 1)),
    ("[::ffff:1.2.3.4]:5", ("::ffff:1.2.3.4", 5)),  # kept mapped, as wireguard-go keeps it
    ("[::FFFF:0102:0304]:5", ("::ffff:1.2.3.4", 5)),
    ("[::1.2.3.4]:5", ("::102:304", 5)),
    ("[0:0:0:0:0:0:0:0]:5", ("::", 5)),
    ("[1:0:0:2:0:0:0:3]:5", ("1:0:0:2::3", 5)),
    ("[fe80::1%lo]:5", ("fe80::1%lo", 5)),
    ("[fe80::1%1]:5", ("fe80::1%1", 5)),
])
def test_parse_endpoint(text, endpoint):
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize(("text", "network"), [
    ("10.0.0.1/24", "10.0.0.0/24"),
    ("10.0.0.0/+8", "10.0.0.0/8"),  # strconv.Atoi, as Go 1.19's netip.ParsePrefix
    ("10.0.0.0/08", "10.0.0.0/8"),
    ("10.0.0.0/0008", "10.0.0.0/8"),
    ("10.0.0.0/-0", "0.0.0.0/0"),
    ("FD00::1/64", "fd00::/64"),
    ("::ffff:10.0.0.0/104", "::ffff:a00:0/104"),
    ("::ffff:10.0.0.0/8", "::/8"),
])
def test_parse_prefix(text, network):
    assert parse_prefix(text) == ipaddress.ip_network(network)


@pytest.mark.parametrize(("text", "packed"), [
    ("::00001", "::1"),  # Go 1.19 bounds a group's value, not its digits
    ("0000000000ffff::", "ffff::"),
    ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
    ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"),
    ("::1:2:3:4:5:1.2.3.4", "0:1:2:3:4:5:102:304"),
    ("FE80::1%eth0", "fe80::1"),
    ("1.2.3.4", "1.2.3.4"),
    ("0.0.0.0", "0.0.0.0"),
])
def test_parse_address_as_go_netip(text, packed):
    assert netip.parse_addr(text)[0] == ipaddress.ip_address(packed)


@pytest.mark.parametrize("text", [
    "::10000", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7", "1::2::3", ":::",
    ":1::", "1::2:", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4:5", "::1.2.3", "::a.2.3.4",
    "1.2.3.4::", "1.2.3.04", "1.2.3.256", "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "",
    "%lo", "::1%", "1.2.3.4%lo", "::\uff11", "\uff11.2.3.4", "1.2.3.4 ", " ::1", "g::",
])
def test_parse_address_refuses_as_go_netip(text):
    with pytest.raises(netip.NetipError):
        netip.parse_addr(text)


def test_mapped_prefix_is_shown_with_a_dotted_quad(host):
    assert uapi_set(host, f"public_key={pub(1)}\nallowed_ip=::ffff:10.0.0.0/104") == 0
    assert state(host)["allowed_ip"] == ["::ffff:10.0.0.0/104"]


# ---------------------------------------------------------------------- atomicity, broadly

LINES = st.sampled_from([
    "listen_port=7", f"listen_port={4242}", "fwmark=3", "fwmark=666", "replace_peers=true",
    f"private_key={private(4).hex()}", f"private_key={ZERO}", f"public_key={pub(1)}",
    f"public_key={pub(2)}", f"public_key={pub(4)}", "update_only=true", "remove=true",
    "replace_allowed_ips=true", "allowed_ip=10.0.0.0/8", "allowed_ip=10.1.0.0/16",
    "allowed_ip=::/0", "endpoint=192.0.2.1:1", "endpoint=[2001:db8::1]:2",
    "persistent_keepalive_interval=0", "persistent_keepalive_interval=25",
    f"preshared_key={'ab' * 32}", "protocol_version=1",
    "allowed_ip=bad", "endpoint=bad:1", "bogus=1", "no-equals",
])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # make_host: a class
@given(setup=st.lists(LINES, max_size=12), request=st.lists(LINES, max_size=12))
def test_any_request_applies_fully_or_not_at_all(make_host, setup, request):
    """Whatever the lines, a failed set leaves the device exactly as it was; a successful
    one leaves it as applying its sections one request at a time would."""
    host = make_host()
    uapi_set(host, "\n".join(setup))
    before = format_get(host), host.port, host.mark
    code = uapi_set(host, "\n".join(request))
    if code:
        assert (format_get(host), host.port, host.mark) == before
        return
    # Section by section on a copy built the same way: the same state.
    step = make_host()
    uapi_set(step, "\n".join(setup))
    chunks: list[list[str]] = [[]]
    for line in request:
        if line.startswith("public_key="):
            chunks.append([])
        chunks[-1].append(line)
    for chunk in chunks:
        assert uapi_set(step, "\n".join(chunk)) == 0
    assert (format_get(step), step.port, step.mark) == (format_get(host), host.port, host.mark)


def test_a_set_parses_into_typed_operations_in_order():
    request = parse_set([
        f"private_key={ZERO}", "replace_peers=true", f"public_key={pub(1)}",
        "protocol_version=1", "endpoint=1.2.3.4:5", "replace_allowed_ips=true",
        "allowed_ip=10.0.0.1/8", "persistent_keepalive_interval=25", "remove=true",
    ])
    assert request.device_operations == [protocol.SetPrivateKey(bytes(32)),
                                         protocol.ReplacePeers()]
    [change] = request.peers
    assert change.public_key.hex() == pub(1)
    assert change.operations == [  # protocol_version=1 is checked and does nothing
        protocol.SetEndpoint(("1.2.3.4", 5)), protocol.ReplaceAllowedIPs(),
        protocol.AddAllowedIP((4, 10 << 24, 8)), protocol.SetPersistentKeepalive(25),
        protocol.RemovePeer(),
    ]
