"""Direct paths between spokes behind NATs, decided without I/O (`wgpy punch`'s brain).

In a hub-and-spoke network (`wgpy mesh --hub`) every spoke has the hub as a peer for the whole
subnet, and the hub relays. The hub sees each spoke's public address and port (the NAT's
mapping) and publishes them (`wgpy serve`'s /json on its tunnel address). From that view and
the local device, `step` says what to change on the local device, over UAPI only:

* For each other spoke the hub lists (fresh handshake with the hub, an endpoint), a peer entry
  is created with the spoke's key, the endpoint the hub sees and a short PersistentKeepalive,
  and NO AllowedIPs: the keepalive starts a handshake from the port this spoke already uses
  with the hub, so its NAT has a mapping the other side's packets can come back through. The
  other spoke does the same at about the same time (hole punching).
* Once a handshake completes on that entry, the other spoke's prefixes (those the hub lists
  for it, and only those the local hub peer already carries) are put on the direct entry:
  AllowedIPs are longest-prefix routing, so they override the hub's catch-all (and a prefix
  given exactly to the hub peer moves, since a prefix has one owner: seed 004). Both sides do
  it at the handshake's time + `settle`, which they see within a round trip of each other, so
  neither side accepts only relayed packets while the other already sends direct.
* A direct path is alive while its entry receives (the keepalives guarantee something every
  `keepalive` seconds each way). When nothing came for `dead_after`, the entry is removed
  (prefixes the hub peer held exactly are given back to it) and traffic is relayed again; the
  other spoke, hearing nothing more from this one, does the same within `dead_after`.
* A handshake that does not complete within `probe_timeout` (a NAT that picks a new port per
  destination) leaves everything relayed, removes the entry, and is retried with doubling
  back-off. Retries fall on multiples of the back-off period in wall-clock time, so both
  spokes retry together.

Nothing here reads a clock, a socket or a file: the caller gives the hub's view, the device
(a UAPI get) and the time, and gets back the UAPI changes, the new link states and when to
call again. Relayed traffic never stops: the hub peer keeps its catch-all throughout.
"""

import ipaddress
import math
from dataclasses import dataclass, field, replace
from typing import Any

from wgpy.config.model import AllowedIP, DeviceConfig, Endpoint, PeerConfig

DIRECT = "direct"
RELAYED = "relayed"


@dataclass(frozen=True)
class Timers:
    """Seconds. Defaults suit real networks; tests shorten them (`wgpy punch` options)."""

    keepalive: int = 5          # PersistentKeepalive of a direct entry (liveness, NAT mapping)
    probe_timeout: float = 20.0  # no direct handshake by then: this attempt failed
    settle: float = 1.0          # prefixes move at handshake time + settle (both sides alike)
    dead_after: float = 15.0     # nothing received direct for this long: back to the hub
    retry: float = 30.0          # first back-off after a failed attempt (doubles each time)
    retry_max: float = 600.0     # the back-off's ceiling
    hub_fresh: float = 600.0     # a spoke whose hub handshake is older: endpoint not trusted


@dataclass(frozen=True)
class HubPeer:
    """One peer of the hub's interface, as its /json gives it."""

    public_key: bytes
    endpoint: Endpoint | None
    allowed_ips: tuple[str, ...]
    latest_handshake: float
    name: str | None = None      # from a `# Name =` comment in the hub's file


@dataclass(frozen=True)
class HubView:
    public_key: bytes            # the hub interface's own key: which local peer is the hub
    peers: tuple[HubPeer, ...]


@dataclass
class Link:
    """What the agent knows about one other spoke (kept in the state file between runs)."""

    public_key: bytes
    prefixes: list[str]              # the other spoke's prefixes, moved when direct
    path: str = RELAYED              # where its traffic goes now: DIRECT or RELAYED
    since: float = 0.0               # when `path` last changed (or the link was made)
    probe_started: float | None = None  # a direct attempt in flight since then
    attempts: int = 0                # failed attempts in a row (the back-off's exponent)
    retry_at: float = 0.0            # when relayed and not probing: the next attempt
    handshake_seen: float = 0.0      # latest direct handshake already acted upon
    rx_bytes: int = 0                # the direct entry's receive counter, last seen
    rx_at: float = 0.0               # when it last grew
    hub_exact: list[str] = field(default_factory=list)  # prefixes taken from the hub peer
    name: str | None = None          # the hub's name for the spoke, if it has one

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "prefixes": self.prefixes, "path": self.path,
                "since": self.since, "probe_started": self.probe_started, "attempts": self.attempts,
                "retry_at": self.retry_at, "handshake_seen": self.handshake_seen,
                "rx_bytes": self.rx_bytes, "rx_at": self.rx_at, "hub_exact": self.hub_exact}

    @classmethod
    def from_json(cls, public_key: bytes, data: dict[str, Any]) -> "Link":
        """ValueError/TypeError/KeyError on a record that is not one."""
        path = data["path"]
        if path not in (DIRECT, RELAYED):
            raise ValueError(f"bad path {path!r}")
        probe = data.get("probe_started")
        return cls(public_key, [str(ipaddress.ip_network(p)) for p in data["prefixes"]],
                   path, float(data["since"]), None if probe is None else float(probe),
                   int(data["attempts"]), float(data["retry_at"]),
                   float(data["handshake_seen"]), int(data["rx_bytes"]), float(data["rx_at"]),
                   [str(ipaddress.ip_network(p)) for p in data["hub_exact"]],
                   None if data.get("name") is None else str(data["name"]))


@dataclass
class Step:
    changes: list[PeerConfig]   # one `set` request's peers, in order
    links: dict[bytes, Link]
    wake_at: float              # call again by then (sooner is harmless)
    events: list[tuple[bytes, str]] = field(default_factory=list)  # (key, what happened)


def handshake_time(peer: PeerConfig) -> float:
    return peer.last_handshake_sec + peer.last_handshake_nsec / 1e9


def next_retry(now: float, attempts: int, timers: Timers) -> float:
    """The next multiple of the back-off period after `now` (wall-clock aligned, so two
    spokes that failed together retry together)."""
    period = min(timers.retry * 2 ** max(attempts - 1, 0), timers.retry_max)
    return (math.floor(now / period) + 1) * period


def _networks(prefixes: list[AllowedIP]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [prefix.network for prefix in prefixes]


def _covered(prefix: str, hub_networks: list) -> bool:
    network = ipaddress.ip_network(prefix)
    return any(network.version == hub.version and network.subnet_of(hub)
               for hub in hub_networks)


def _allowed(prefixes: list[str]) -> list[AllowedIP]:
    result = []
    for prefix in prefixes:
        network = ipaddress.ip_network(prefix)
        result.append(AllowedIP(network.network_address, network.prefixlen))
    return result


def _probe(link: Link, endpoint: Endpoint, recreate: bool, timers: Timers) -> list[PeerConfig]:
    """The entry made anew (a fresh session: the attempt's success is a new handshake)."""
    changes = [PeerConfig(public_key=link.public_key, remove=True)] if recreate else []
    changes.append(PeerConfig(public_key=link.public_key, endpoint=endpoint,
                              persistent_keepalive=timers.keepalive, replace_allowed_ips=True))
    return changes


def _remove(link: Link, hub_key: bytes, present: bool) -> list[PeerConfig]:
    """The entry goes; prefixes the hub peer held exactly go back to it first. Removed, not
    just emptied: an entry left behind would go on answering the other spoke (keepalives,
    and passive keepalives for its data), which would then never fall silent on its side and
    would keep sending direct to a spoke that drops what it sends."""
    changes = []
    if link.path == DIRECT and link.hub_exact:
        changes.append(PeerConfig(public_key=hub_key, update_only=True,
                                  allowed_ips=_allowed(link.hub_exact)))
    if present:
        changes.append(PeerConfig(public_key=link.public_key, remove=True))
    return changes


def _usable(seen: HubPeer, now: float, timers: Timers) -> bool:
    """The hub knows where the spoke is: an endpoint, and a recent handshake behind it."""
    return seen.endpoint is not None and seen.latest_handshake > 0 \
        and now - seen.latest_handshake < timers.hub_fresh


def step(timers: Timers, hub: HubView, device: DeviceConfig, links: dict[bytes, Link],
         now: float) -> Step:
    """What to do now (module docstring). `links` is not modified; the answer's links replace
    it. Peers on the device that no link manages are never touched."""
    local = {peer.public_key: peer for peer in device.peers}
    hub_peer = local.get(hub.public_key)
    result = Step([], {}, now + max(timers.probe_timeout, timers.dead_after))
    if hub_peer is None:
        result.links = dict(links)
        result.events.append((hub.public_key, "the hub is not a peer of this interface"))
        return result
    hub_networks = _networks(hub_peer.allowed_ips)
    hub_exact = {str(network) for network in hub_networks}
    listed = {peer.public_key: peer for peer in hub.peers}
    work = {key: replace(link, prefixes=list(link.prefixes), hub_exact=list(link.hub_exact))
            for key, link in links.items()}
    for key, seen in listed.items():
        if key in work or key in local or key in (device.public_key, hub.public_key):
            continue  # managed already, configured by someone else, ourselves or the hub
        if any(_covered(p, hub_networks) for p in seen.allowed_ips):  # else: nothing to move
            work[key] = Link(key, list(seen.allowed_ips), since=now, retry_at=now)

    def wake(at: float) -> None:
        result.wake_at = min(result.wake_at, at)

    def event(link: Link, what: str) -> None:
        result.events.append((link.public_key, what))

    for key, link in work.items():
        peer = local.get(key)
        if key not in listed:  # gone from the hub: its entry goes too
            result.changes += _remove(link, hub.public_key, peer is not None)
            event(link, "left the hub: direct entry removed")
            continue
        result.links[key] = link
        seen = listed[key]
        link.name = seen.name
        if link.path == DIRECT:
            if peer is not None and peer.rx_bytes != link.rx_bytes:
                link.rx_bytes, link.rx_at = peer.rx_bytes, now
            if peer is not None and now - link.rx_at < timers.dead_after:
                wake(link.rx_at + timers.dead_after)
                continue
            result.changes += _remove(link, hub.public_key, peer is not None)
            link.path, link.since, link.attempts, link.hub_exact = RELAYED, now, 1, []
            link.retry_at = next_retry(now, link.attempts, timers)
            event(link, "direct path silent: relayed through the hub")
            wake(link.retry_at)
            continue
        if link.probe_started is not None and peer is not None:
            handshake = handshake_time(peer)
            if handshake > link.handshake_seen and now - handshake < timers.dead_after:
                if now < handshake + timers.settle:
                    wake(handshake + timers.settle)
                    continue
                prefixes = [p for p in link.prefixes if _covered(p, hub_networks)]
                result.changes.append(PeerConfig(public_key=key, update_only=True,
                                                 replace_allowed_ips=True,
                                                 allowed_ips=_allowed(prefixes)))
                link.path, link.since, link.attempts = DIRECT, now, 0
                link.probe_started, link.handshake_seen = None, handshake
                link.rx_bytes, link.rx_at = peer.rx_bytes, now
                link.hub_exact = [p for p in prefixes if p in hub_exact]
                event(link, "direct handshake: traffic goes direct")
                wake(now + timers.dead_after)
                continue
            if now - link.probe_started < timers.probe_timeout:
                wake(link.probe_started + timers.probe_timeout)
                continue
        if link.probe_started is not None:  # timed out, or the entry vanished meanwhile
            result.changes += _remove(link, hub.public_key, peer is not None)
            peer = None
            link.probe_started = None
            link.attempts += 1
            link.retry_at = next_retry(now, link.attempts, timers)
            event(link, "no direct handshake: still relayed, retry later")
        if now >= link.retry_at and _usable(seen, now, timers) and seen.endpoint is not None:
            link.prefixes = list(seen.allowed_ips)
            result.changes += _probe(link, seen.endpoint, peer is not None, timers)
            link.probe_started = now
            link.handshake_seen = handshake_time(peer) if peer is not None else 0.0
            event(link, f"trying a direct path to {seen.endpoint}")
            wake(now + timers.probe_timeout)
        else:
            wake(max(link.retry_at, now + 1.0))
    return result


def withdraw(links: dict[bytes, Link], hub_key: bytes) -> list[PeerConfig]:
    """The agent stops: every entry it made goes, prefixes back to the hub, so the device is
    as its configuration file made it (nothing left that no one watches)."""
    changes: list[PeerConfig] = []
    for link in links.values():
        changes += _remove(link, hub_key, True)
    return changes
