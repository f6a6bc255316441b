"""Prometheus metrics for WireGuard interfaces (wgpyd and wireguard-go alike), made with the
official prometheus-client library (an optional dependency: `pip install 'wgpy[web]'`).

Where they overlap, names and labels are prometheus_wireguard_exporter's, so dashboards built
on it work unchanged: `wireguard_sent_bytes_total`, `wireguard_received_bytes_total` and
`wireguard_latest_handshake_seconds`, labelled `interface`, `public_key`, `allowed_ips` and
`friendly_name`. wgpy's own are under `wgpy_`: peer info (endpoint), peer count, and the drop
counters by reason (wgpyd only).

Every scrape reads the devices live over UAPI (what the JSON of `wgpy show --json` holds).
"""

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from wgpy.cli.jsonview import collect

PEER_LABELS = ["interface", "public_key", "allowed_ips", "friendly_name"]


def _families(doc: dict[str, Any]) -> Iterator[Any]:
    sent = CounterMetricFamily("wireguard_sent_bytes", "Bytes sent to the peer",
                               labels=PEER_LABELS)
    received = CounterMetricFamily("wireguard_received_bytes", "Bytes received from the peer",
                                   labels=PEER_LABELS)
    handshake = GaugeMetricFamily("wireguard_latest_handshake_seconds",
                                  "UNIX time of the latest handshake with the peer (0: never)",
                                  labels=PEER_LABELS)
    info = InfoMetricFamily("wgpy_peer", "A peer's endpoint and keepalive",
                            labels=["interface", "public_key", "friendly_name"])
    peers = GaugeMetricFamily("wgpy_peers", "Peers configured on the interface",
                              labels=["interface"])
    drops = CounterMetricFamily("wgpy_drops", "Packets wgpyd dropped, by named reason",
                                labels=["interface", "reason"])
    for interface in doc["interfaces"]:
        name = interface["name"]
        peers.add_metric([name], len(interface["peers"]))
        for peer in interface["peers"]:
            labels = [name, peer["public_key"], ",".join(peer["allowed_ips"]),
                      peer["name"] or ""]
            sent.add_metric(labels, peer["transfer_tx"])
            received.add_metric(labels, peer["transfer_rx"])
            handshake.add_metric(labels, peer["latest_handshake"])
            info.add_metric([name, peer["public_key"], peer["name"] or ""], {
                "endpoint": peer["endpoint"] or "",
                "persistent_keepalive": str(peer["persistent_keepalive"] or 0),
            })
        for reason, count in (interface["drops"] or {}).items():
            drops.add_metric([name, reason], count)
    yield from (sent, received, handshake, info, peers, drops)


class WireGuardCollector(Collector):
    """Collects the interfaces `names()` returns at each scrape."""

    def __init__(self, names: Callable[[], list[str]]) -> None:
        self._names = names

    def collect(self) -> Iterator[Any]:
        doc, _ = collect(self._names())
        yield from _families(doc)


def registry_for(names: Callable[[], list[str]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WireGuardCollector(names))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition format of one scrape."""
    return generate_latest(registry)
