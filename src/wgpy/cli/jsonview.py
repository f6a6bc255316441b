"""`wgpy show ... --json`: what `wg show` says, as one JSON document for scripts and
dashboards (the role of wireguard-tools' contrib `json` script), plus names and drops.

The schema is stable (SCHEMA_VERSION; README "wgpy show --json"): keys are only ever added.

    {"schema": 1,
     "interfaces": [{"name": "wg0", "public_key": "base64" | null,
                     "has_private_key": bool, "listen_port": int | null, "fwmark": int | null,
                     "drops": {"reason": count, ...} | null,   (null: not wgpyd)
                     "peers": [{"public_key": "base64", "name": str | null,
                                "has_preshared_key": bool, "endpoint": "host:port" | null,
                                "allowed_ips": ["10.0.0.2/32", ...],
                                "latest_handshake": epoch seconds (0: never),
                                "transfer_rx": bytes, "transfer_tx": bytes,
                                "persistent_keepalive": seconds | null,
                                "path": "direct" | "relayed" | "unrouted",   (schema 2)
                                "via": "base64" | null,                      (schema 2)
                                "path_since": epoch seconds | null}],        (schema 3)
                     "punch": [{"public_key": "base64", "name": str | null,
                                "path": "direct" | "relayed" | "unrouted",
                                "via": "base64" | null,
                                "path_since": epoch seconds, "prefixes": ["10.0.0.3/32"],
                                "trying_since": epoch seconds | null,
                                "next_attempt": epoch seconds | null}]}]}    (schema 3)

`path` says where traffic for the peer goes now: the live AllowedIPs table is asked which peer
gets a packet for the peer's first address (its first AllowedIPs entry in the configuration
file, else its first live one): the peer itself ("direct"), another peer ("relayed": `via`
names it, typically the hub of a `wgpy mesh --hub` network whose catch-all carries the
prefix once the peer's own entry lost it), or none ("unrouted": no entry anywhere). The file
is the one given with --config or the one wgpy-quick remembered (config/names.py).

Keys are never printed in full secret form: private and preshared keys only say whether they
are set, as `wg show` says "(hidden)".
"""

import contextlib
import ipaddress
from typing import Any

from wgpy.cli.directpaths import RELAYED, Link
from wgpy.cli.pathstate import load_links
from wgpy.cli.route import routing_table
from wgpy.config.model import AllowedIP, DeviceConfig, PeerConfig
from wgpy.config.names import interface_peer_names, remembered_config_file
from wgpy.config.parser import classify
from wgpy.config.values import ConfigError, parse_allowed_ips
from wgpy.core.keys import KeyFormatError, key_from_base64, key_to_base64
from wgpy.uapi.client import get_device, get_drops

SCHEMA_VERSION = 3


def configured_allowed_ips(text: str) -> dict[bytes, list[AllowedIP]]:
    """Public key -> AllowedIPs as a wg or wg-quick file gives them (nothing resolved: a
    JSON view must not wait on DNS for Endpoint names); unreadable entries are skipped."""
    found: dict[bytes, list[AllowedIP]] = {}
    key: bytes | None = None
    allowed: list[AllowedIP] = []
    for line in [*classify(text, quick=True), None]:
        if line is None or line.kind in ("interface", "peer"):
            if key is not None:
                found[key] = allowed
            key, allowed = None, []
        elif line.kind == "wg" and line.key.lower() == "publickey":
            with contextlib.suppress(KeyFormatError):
                key = key_from_base64(line.value)
        elif line.kind == "wg" and line.key.lower() == "allowedips":
            with contextlib.suppress(ConfigError):
                allowed.extend(parse_allowed_ips(line.value))
    return found


def _read_configured(path: str | None) -> dict[bytes, list[AllowedIP]]:
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return configured_allowed_ips(handle.read())
    except OSError:
        return {}


def _paths(device: DeviceConfig, configured: dict[bytes, list[AllowedIP]],
           links: dict[bytes, Link]) -> list[tuple[str, str | None]]:
    """(path, via) per peer of `device` (module docstring)."""
    table = routing_table(device)
    answers: list[tuple[str, str | None]] = []
    for index, peer in enumerate(device.peers):
        link = links.get(peer.public_key)
        prefixes = configured.get(peer.public_key) or (
            [AllowedIP(n.network_address, n.prefixlen)
             for n in map(ipaddress.ip_network, link.prefixes)] if link is not None else []
        ) or peer.allowed_ips
        owner = table.lookup(prefixes[0].network.network_address.packed) if prefixes else None
        if owner is None:
            answers.append(("unrouted", None))
        elif owner[0] == index:
            answers.append(("direct", None))
        else:
            answers.append(("relayed", key_to_base64(device.peers[owner[0]].public_key)))
    return answers


def _punch(device: DeviceConfig, links: dict[bytes, Link]) -> list[dict[str, Any]]:
    """The spokes `wgpy punch` manages (module docstring), routed by the live table."""
    table = routing_table(device)
    found = []
    for key, link in links.items():
        owner = table.lookup(ipaddress.ip_network(link.prefixes[0]).network_address.packed) \
            if link.prefixes else None
        owner_key = device.peers[owner[0]].public_key if owner is not None else None
        path = "unrouted" if owner_key is None else "direct" if owner_key == key else "relayed"
        waiting = link.path == RELAYED and link.probe_started is None
        found.append({"public_key": key_to_base64(key), "name": link.name, "path": path,
                      "via": key_to_base64(owner_key) if path == "relayed" and owner_key
                      else None,
                      "path_since": link.since, "prefixes": list(link.prefixes),
                      "trying_since": link.probe_started,
                      "next_attempt": link.retry_at if waiting else None})
    return found


def _peer(peer: PeerConfig, names: dict[bytes, str],
          path: tuple[str, str | None], link: Link | None) -> dict[str, Any]:
    return {
        "public_key": key_to_base64(peer.public_key),
        "name": names.get(peer.public_key),
        "has_preshared_key": bool(peer.preshared_key and any(peer.preshared_key)),
        "endpoint": str(peer.endpoint) if peer.endpoint is not None else None,
        "allowed_ips": [str(allowed) for allowed in peer.allowed_ips],
        "latest_handshake": peer.last_handshake_sec,
        "transfer_rx": peer.rx_bytes,
        "transfer_tx": peer.tx_bytes,
        "persistent_keepalive": peer.persistent_keepalive or None,
        "path": path[0],
        "via": path[1],
        "path_since": link.since if link is not None else None,
    }


def interface_document(device: DeviceConfig, names: dict[bytes, str],
                       drops: dict[str, int] | None,
                       configured: dict[bytes, list[AllowedIP]] | None = None,
                       links: dict[bytes, Link] | None = None) -> dict[str, Any]:
    """One interface of the document; `names` from config.names, `drops` None when the
    device keeps no drop counters (wireguard-go), `configured` the AllowedIPs its file
    gives each peer (configured_allowed_ips), `links` what `wgpy punch` manages."""
    links = links or {}
    paths = _paths(device, configured or {}, links)
    names = {**{key: link.name for key, link in links.items() if link.name}, **names}
    return {
        "name": device.name,
        "public_key": key_to_base64(device.public_key) if device.public_key else None,
        "has_private_key": bool(device.private_key and any(device.private_key)),
        "listen_port": device.listen_port,
        "fwmark": device.fwmark or None,
        "drops": drops,
        "peers": [_peer(peer, names, path, links.get(peer.public_key))
                  for peer, path in zip(device.peers, paths, strict=True)],
        "punch": _punch(device, links),
    }


def document(interfaces: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "interfaces": interfaces}


def collect(names: list[str], config_file: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """The document for the interfaces `names` (read live over UAPI), and an error line for
    each interface that could not be read (it is left out, as `wg show all` skips it).
    `config_file` gives the peers' names when there is one interface."""
    interfaces = []
    errors = []
    for name in names:
        try:
            device = get_device(name)
        except OSError as exc:
            errors.append(f"Unable to access interface {name}: {exc.strerror or exc}")
            continue
        try:
            drops: dict[str, int] | None = get_drops(name)
        except OSError:  # not wgpyd (NoDropCountersError), or gone since the get
            drops = None
        path = config_file or remembered_config_file(name)
        interfaces.append(interface_document(device, interface_peer_names(name, config_file),
                                             drops, _read_configured(path),
                                             load_links(name)[1]))
    return document(interfaces), errors
