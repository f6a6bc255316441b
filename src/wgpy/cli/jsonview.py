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
                                "persistent_keepalive": seconds | null}]}]}

Keys are never printed in full secret form: private and preshared keys only say whether they
are set, as `wg show` says "(hidden)".
"""

from typing import Any

from wgpy.config.model import DeviceConfig, PeerConfig
from wgpy.config.names import interface_peer_names
from wgpy.core.keys import key_to_base64
from wgpy.uapi.client import get_device, get_drops

SCHEMA_VERSION = 1


def _peer(peer: PeerConfig, names: dict[bytes, str]) -> dict[str, Any]:
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
    }


def interface_document(device: DeviceConfig, names: dict[bytes, str],
                       drops: dict[str, int] | None) -> dict[str, Any]:
    """One interface of the document; `names` from config.names, `drops` None when the
    device keeps no drop counters (wireguard-go)."""
    return {
        "name": device.name,
        "public_key": key_to_base64(device.public_key) if device.public_key else None,
        "has_private_key": bool(device.private_key and any(device.private_key)),
        "listen_port": device.listen_port,
        "fwmark": device.fwmark or None,
        "drops": drops,
        "peers": [_peer(peer, names) for peer in device.peers],
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
        interfaces.append(interface_document(device, interface_peer_names(name, config_file),
                                             drops))
    return document(interfaces), errors
