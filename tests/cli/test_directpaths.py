"""The direct-path decisions of `wgpy punch` (cli/directpaths.py), with a fake clock.

A spoke's device is modelled as the DeviceConfig a UAPI get returns; `apply` gives it a step's
changes with the UAPI's rules (remove, update_only, replace_allowed_ips, a prefix has one
owner), and cli/route.py's table says where a packet for the other spoke goes after each step,
so "relayed traffic never stops" is checked on the routing the device would do.
"""

import ipaddress
import itertools
import os

from wgpy.cli.directpaths import (
    DIRECT,
    RELAYED,
    HubPeer,
    HubView,
    Link,
    Timers,
    next_retry,
    step,
    withdraw,
)
from wgpy.cli.route import routing_table
from wgpy.config.model import AllowedIP, DeviceConfig, Endpoint, PeerConfig
from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key

TIMERS = Timers(keepalive=1, probe_timeout=6, settle=0.5, dead_after=3, retry=4, retry_max=16,
                hub_fresh=60)


def key() -> bytes:
    return public_key(generate_private_key(os.urandom))


def allowed(text: str) -> AllowedIP:
    network = ipaddress.ip_network(text)
    return AllowedIP(network.network_address, network.prefixlen)


class Spoke:
    """Spoke A's device: the hub peer with the subnet's catch-all (as `wgpy mesh --hub`)."""

    def __init__(self, hub_allowed: tuple[str, ...] = ("10.100.0.0/24",)) -> None:
        self.own = key()
        self.hub = key()
        self.b = key()
        self.device = DeviceConfig(public_key=self.own, peers=[PeerConfig(
            public_key=self.hub, endpoint=Endpoint("203.0.113.1", 51820), persistent_keepalive=25,
            allowed_ips=[allowed(p) for p in hub_allowed])])
        self.links: dict[bytes, Link] = {}

    def view(self, b_endpoint: str | None = "203.0.113.3:40000", b_handshake: float = 990.0,
             b_allowed: tuple[str, ...] = ("10.100.0.3/32",), others=()) -> HubView:
        host, _, port = (b_endpoint or ":0").rpartition(":")
        host = host.strip("[]")
        peers = [HubPeer(self.own, Endpoint("203.0.113.2", 50000), ("10.100.0.2/32",), 990.0),
                 HubPeer(self.b, Endpoint(host, int(port)) if b_endpoint else None, b_allowed,
                         b_handshake), *others]
        return HubView(self.hub, tuple(peers))

    def run(self, view: HubView, now: float):
        result = step(TIMERS, view, self.device, self.links, now)
        apply(self.device, result.changes)
        self.links = result.links
        return result

    def peer(self, peer_key: bytes) -> PeerConfig | None:
        return next((p for p in self.device.peers if p.public_key == peer_key), None)

    def route(self, address: str = "10.100.0.3") -> bytes | None:
        owner = routing_table(self.device).lookup(ipaddress.ip_address(address).packed)
        return None if owner is None else self.device.peers[owner[0]].public_key

    def go_direct(self, handshake_at: float = 1000.2, now: float = 1001.0) -> None:
        """A first round at 1000 makes the entry; its handshake completes; prefixes move."""
        self.run(self.view(), 1000.0)
        self.handshake(self.b, handshake_at)
        self.run(self.view(), now)
        assert self.route() == self.b

    def handshake(self, peer_key: bytes, at: float) -> None:
        peer = self.peer(peer_key)
        assert peer is not None
        peer.last_handshake_sec, peer.last_handshake_nsec = int(at), int(at % 1 * 1e9)
        peer.rx_bytes += 92


def apply(device: DeviceConfig, changes: list[PeerConfig]) -> None:
    """A `set` request's peer sections, with the UAPI's rules."""
    for change in changes:
        existing = next((p for p in device.peers if p.public_key == change.public_key), None)
        if change.remove:
            if existing is not None:
                device.peers.remove(existing)
            continue
        if existing is None:
            if change.update_only:
                continue
            existing = PeerConfig(public_key=change.public_key)
            device.peers.append(existing)
        if change.endpoint is not None:
            existing.endpoint = change.endpoint
        if change.persistent_keepalive is not None:
            existing.persistent_keepalive = change.persistent_keepalive
        if change.replace_allowed_ips:
            existing.allowed_ips = []
        for prefix in change.allowed_ips:
            for other in device.peers:  # a prefix has one owner: the last to claim it
                other.allowed_ips = [a for a in other.allowed_ips if a.network != prefix.network]
            existing.allowed_ips.append(prefix)


def test_a_new_spoke_gets_an_entry_without_allowed_ips_and_a_keepalive():
    spoke = Spoke()
    result = spoke.run(spoke.view(), 1000.0)
    entry = spoke.peer(spoke.b)
    assert entry is not None and entry.allowed_ips == []
    assert entry.endpoint == Endpoint("203.0.113.3", 40000)
    assert entry.persistent_keepalive == TIMERS.keepalive
    assert spoke.route() == spoke.hub  # still relayed
    assert result.wake_at == 1000.0 + TIMERS.probe_timeout
    assert spoke.links[spoke.b].path == RELAYED
    # ourselves and the hub never get an entry
    assert {p.public_key for p in spoke.device.peers} == {spoke.hub, spoke.b}


def test_prefixes_move_at_handshake_plus_settle_and_not_before():
    spoke = Spoke()
    spoke.run(spoke.view(), 1000.0)
    spoke.handshake(spoke.b, 1001.2)
    result = spoke.run(spoke.view(), 1001.3)
    assert result.changes == [] and spoke.route() == spoke.hub
    assert result.wake_at == 1001.2 + TIMERS.settle
    spoke.run(spoke.view(), 1001.7)
    assert spoke.route() == spoke.b
    assert [str(a) for a in spoke.peer(spoke.b).allowed_ips] == ["10.100.0.3/32"]
    assert spoke.route("10.100.0.9") == spoke.hub  # the rest of the subnet stays relayed
    link = spoke.links[spoke.b]
    assert (link.path, link.since, link.attempts) == (DIRECT, 1001.7, 0)


def test_no_handshake_stays_relayed_and_retries_with_doubling_aligned_backoff():
    spoke = Spoke()
    now = 1000.0
    routes = []
    starts = []
    while len(starts) < 6:
        result = spoke.run(spoke.view(b_handshake=now - 5), now)
        routes.append(spoke.route())
        entry = spoke.peer(spoke.b)
        if any(change.endpoint is not None for change in result.changes):
            starts.append(now)  # an attempt: the entry made, still without prefixes
            assert entry is not None and entry.allowed_ips == []
        if spoke.links[spoke.b].probe_started is None:
            assert entry is None  # between attempts the entry is gone: nothing answers b
        now += 0.25
    assert set(routes) == {spoke.hub}  # never a moment without a route
    assert starts[0] == 1000.0
    periods = [4, 8, 16, 16, 16]
    for start, period in zip(starts[1:], periods, strict=True):
        assert start % period == 0  # on the wall-clock grid: both spokes retry together
    assert all(b - a >= TIMERS.probe_timeout for a, b in itertools.pairwise(starts))
    assert spoke.links[spoke.b].attempts == 5


def test_next_retry_is_shared_by_spokes_that_failed_at_different_moments():
    assert next_retry(1001.0, 1, TIMERS) == next_retry(1003.9, 1, TIMERS) == 1004.0
    assert next_retry(1004.0, 2, TIMERS) == 1008.0
    assert next_retry(1004.0, 3, TIMERS) == 1008.0  # period 16: 63 * 16
    assert next_retry(1008.0, 9, TIMERS) == 1024.0  # capped at retry_max (16)


def test_a_silent_direct_path_falls_back_and_returns_after_a_retry():
    spoke = Spoke()
    spoke.go_direct(1000.5)
    # alive while the entry receives
    for now in (1002.0, 1003.0, 1004.0, 1005.0):
        spoke.peer(spoke.b).rx_bytes += 32
        spoke.run(spoke.view(), now)
        assert spoke.route() == spoke.b
    spoke.run(spoke.view(), 1007.9)
    assert spoke.route() == spoke.b
    result = spoke.run(spoke.view(), 1008.0)  # 3 s without anything received
    assert spoke.route() == spoke.hub
    link = spoke.links[spoke.b]
    assert (link.path, link.since) == (RELAYED, 1008.0)
    assert spoke.peer(spoke.b) is None  # the entry goes: b stops hearing from us, falls back
    assert result.wake_at == link.retry_at == 1012.0
    # the old handshake does not count again; a retry's new handshake does
    spoke.run(spoke.view(), 1010.0)
    assert spoke.route() == spoke.hub
    spoke.run(spoke.view(), 1012.0)
    assert spoke.links[spoke.b].probe_started == 1012.0
    spoke.handshake(spoke.b, 1013.0)
    spoke.run(spoke.view(), 1013.5)
    assert spoke.route() == spoke.b and spoke.links[spoke.b].since == 1013.5


def test_a_prefix_the_hub_held_exactly_moves_and_comes_back():
    spoke = Spoke(hub_allowed=("10.100.0.1/32", "10.100.0.3/32"))
    spoke.go_direct(1000.2)
    assert [str(a) for a in spoke.peer(spoke.hub).allowed_ips] == ["10.100.0.1/32"]
    spoke.run(spoke.view(), 1004.5)
    assert spoke.route() == spoke.hub
    assert spoke.peer(spoke.b) is None
    assert [str(a) for a in spoke.peer(spoke.hub).allowed_ips] == ["10.100.0.1/32",
                                                                   "10.100.0.3/32"]


def test_only_prefixes_the_hub_already_carries_are_taken():
    spoke = Spoke()
    spoke.run(spoke.view(b_allowed=("10.100.0.3/32", "0.0.0.0/0", "192.168.9.0/24")), 1000.0)
    spoke.handshake(spoke.b, 1000.0)
    spoke.run(spoke.view(b_allowed=("10.100.0.3/32", "0.0.0.0/0", "192.168.9.0/24")), 1001.0)
    assert [str(a) for a in spoke.peer(spoke.b).allowed_ips] == ["10.100.0.3/32"]
    # a spoke with nothing routed through the hub here gets no entry at all
    other = Spoke()
    other.run(other.view(b_allowed=("192.168.9.0/24",)), 1000.0)
    assert other.peer(other.b) is None and other.links == {}


def test_unusable_hub_entries_wait_and_foreign_peers_are_left_alone():
    spoke = Spoke()
    spoke.run(spoke.view(b_endpoint=None), 1000.0)
    assert spoke.peer(spoke.b) is None  # no endpoint known to the hub: nothing to punch to
    spoke.run(spoke.view(b_handshake=100.0), 1001.0)
    assert spoke.peer(spoke.b) is None  # the hub's handshake with it is too old
    spoke.run(spoke.view(), 1002.0)
    assert spoke.peer(spoke.b) is not None
    configured = PeerConfig(public_key=key(), allowed_ips=[allowed("10.100.0.4/32")])
    spoke.device.peers.append(configured)
    c = HubPeer(configured.public_key, Endpoint("203.0.113.4", 1), ("10.100.0.4/32",), 1000.0)
    result = spoke.run(spoke.view(others=(c,)), 1003.0)
    assert all(change.public_key != configured.public_key for change in result.changes)
    assert configured.public_key not in spoke.links


def test_a_spoke_gone_from_the_hub_loses_its_entry_and_prefixes_return():
    spoke = Spoke(hub_allowed=("10.100.0.0/24", "10.100.0.3/32"))
    spoke.go_direct(1000.1)
    gone = HubView(spoke.hub, spoke.view().peers[:1])
    spoke.run(gone, 1002.0)
    assert spoke.peer(spoke.b) is None and spoke.links == {}
    assert "10.100.0.3/32" in [str(a) for a in spoke.peer(spoke.hub).allowed_ips]


def test_nothing_is_done_when_the_hub_is_not_a_peer():
    spoke = Spoke()
    view = spoke.view()
    result = step(TIMERS, HubView(key(), view.peers), spoke.device, {}, 1000.0)
    assert result.changes == [] and result.links == {}
    assert result.events and "not a peer" in result.events[0][1]


def test_links_survive_the_state_file():
    spoke = Spoke()
    spoke.run(spoke.view(), 1000.0)
    spoke.handshake(spoke.b, 1000.2)
    spoke.run(spoke.view(), 1001.0)
    link = spoke.links[spoke.b]
    assert Link.from_json(spoke.b, link.to_json()) == link


def test_withdraw_leaves_the_device_as_configured():
    spoke = Spoke(hub_allowed=("10.100.0.0/24", "10.100.0.3/32"))
    before = [str(a) for a in spoke.device.peers[0].allowed_ips]
    spoke.go_direct(1000.1)
    apply(spoke.device, withdraw(spoke.links, spoke.hub))
    assert [p.public_key for p in spoke.device.peers] == [spoke.hub]
    assert sorted(str(a) for a in spoke.device.peers[0].allowed_ips) == sorted(before)


def test_an_entry_left_from_before_is_made_anew_and_a_vanished_one_gives_prefixes_back():
    spoke = Spoke(hub_allowed=("10.100.0.0/24", "10.100.0.3/32"))
    spoke.device.peers.append(PeerConfig(public_key=spoke.b))  # e.g. the agent was killed
    spoke.links = {spoke.b: Link(spoke.b, ["10.100.0.3/32"], since=900.0, retry_at=990.0)}
    result = spoke.run(spoke.view(), 1000.0)
    assert [(c.remove, c.endpoint is not None) for c in result.changes] == [(True, False),
                                                                           (False, True)]
    spoke.handshake(spoke.b, 1000.1)
    spoke.run(spoke.view(), 1001.0)
    assert spoke.route() == spoke.b
    spoke.device.peers = [p for p in spoke.device.peers if p.public_key != spoke.b]
    result = spoke.run(spoke.view(), 1001.5)  # someone removed the entry: no remove sent
    assert [c.public_key for c in result.changes] == [spoke.hub]
    assert spoke.route() == spoke.hub and spoke.links[spoke.b].path == RELAYED


def test_ipv6_prefixes_move_like_ipv4_ones():
    spoke = Spoke(hub_allowed=("10.100.0.0/24", "fd00:100::/64"))
    view = spoke.view(b_endpoint="[2001:db8::3]:40000",
                      b_allowed=("10.100.0.3/32", "fd00:100::3/128"))
    spoke.run(view, 1000.0)
    assert spoke.peer(spoke.b).endpoint == Endpoint("2001:db8::3", 40000)
    spoke.handshake(spoke.b, 1000.2)
    spoke.run(view, 1001.0)
    assert spoke.route("fd00:100::3") == spoke.route("10.100.0.3") == spoke.b
    assert spoke.route("fd00:100::9") == spoke.hub
