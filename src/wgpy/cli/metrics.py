"""Prometheus metrics for WireGuard interfaces (wgpyd and wireguard-go alike), in the
Prometheus text exposition format (0.0.4).

Where they overlap, names and labels are prometheus_wireguard_exporter's, so dashboards built
on it work unchanged: `wireguard_sent_bytes_total`, `wireguard_received_bytes_total` and
`wireguard_latest_handshake_seconds`, labelled `interface`, `public_key`, `allowed_ips` and
`friendly_name`. wgpy's own are under `wgpy_`: peer info (endpoint), peer count, and the drop
counters by reason (wgpyd only).

Every scrape reads the devices live over UAPI (jsonview.read_interfaces: what `wgpy show
--json` holds, without the routing its `path` needs). The text is written here, byte for
byte what the official prometheus-client's generate_latest writes for the same families
(tests/cli/test_scale_references.py keeps it as the reference): it validates and escapes every
label name of every sample, 0.3 s a scrape for a 10,000-peer hub's 40,000 samples, where
these label names are fixed and their text is made once per peer.
"""

import math
from collections.abc import Callable
from itertools import chain

from wgpy.cli.jsonview import LiveInterface, all_names, read_interfaces
from wgpy.core.keys import key_to_base64
from wgpy.uapi.reply import joined

# (name as exposed, help, type) of each family, in the order of the exposition
SENT = ("wireguard_sent_bytes_total", "Bytes sent to the peer", "counter")
RECEIVED = ("wireguard_received_bytes_total", "Bytes received from the peer", "counter")
HANDSHAKE = ("wireguard_latest_handshake_seconds",
             "UNIX time of the latest handshake with the peer (0: never)", "gauge")
PEER_INFO = ("wgpy_peer_info", "A peer's endpoint and keepalive", "gauge")
PEERS = ("wgpy_peers", "Peers configured on the interface", "gauge")
DROPS = ("wgpy_drops_total", "Packets wgpyd dropped, by named reason", "counter")


def go_float(value: float) -> str:
    """A sample's value as Prometheus (Go) prints it: prometheus-client's floatToGoString."""
    value = float(value)
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _escape(value: str) -> str:
    """A label value, escaped as the text format says."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _header(family: tuple[str, str, str]) -> str:
    name, help_text, kind = family  # help texts without a backslash or newline to escape
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def exposition(interfaces: list[LiveInterface]) -> bytes:
    """The text of one scrape of `interfaces`; label names in sorted order, as
    prometheus-client writes them."""
    sent, received, handshake, info = [_header(SENT)], [_header(RECEIVED)], \
        [_header(HANDSHAKE)], [_header(PEER_INFO)]
    peers, drops = [_header(PEERS)], [_header(DROPS)]
    for live in interfaces:
        table = live.state.table
        interface = _escape(live.state.name)
        names = all_names(live.file.names, live.links)
        peers.append(f'{PEERS[0]}{{interface="{interface}"}} {go_float(len(table))}\n')
        for public, lines, rx, tx, handshake_sec, endpoint, keepalive in zip(
                table.public_keys, table.allowed_ip_lines, table.rx_bytes, table.tx_bytes,
                table.last_handshake_secs, table.endpoints, table.keepalives, strict=True):
            key = bytes.fromhex(public)
            name = _escape(names.get(key) or "")
            encoded = key_to_base64(key)
            labels = (f'{{allowed_ips="{joined(lines, ",")}",friendly_name="{name}",'
                      f'interface="{interface}",public_key="{encoded}"}} ')
            sent.append(f"{SENT[0]}{labels}{go_float(int(tx))}\n")
            received.append(f"{RECEIVED[0]}{labels}{go_float(int(rx))}\n")
            handshake.append(f"{HANDSHAKE[0]}{labels}{go_float(int(handshake_sec))}\n")
            info.append(f'{PEER_INFO[0]}{{endpoint="{_escape(endpoint or "")}",'
                        f'friendly_name="{name}",interface="{interface}",'
                        f'persistent_keepalive="{int(keepalive or 0)}",'
                        f'public_key="{encoded}"}} 1.0\n')
        for reason, count in (live.drops or {}).items():
            drops.append(f'{DROPS[0]}{{interface="{interface}",reason="{_escape(reason)}"}} '
                         f"{go_float(count)}\n")
    return "".join(chain(sent, received, handshake, info, peers, drops)).encode()


def scrape(names: Callable[[], list[str]]) -> bytes:
    """One scrape of the interfaces `names()` returns now (unreadable ones left out)."""
    return exposition(read_interfaces(names())[0])
