"""Configuration text from the model: `wg showconf` output and whole wg-quick files.

Both are built from the same (Key, value) lists, which `save` also uses to decide whether a
line of an existing file still says the right thing.
"""

from wgpy.config.model import DeviceConfig, PeerConfig, QuickConfig
from wgpy.core.keys import key_to_base64


def interface_items(device: DeviceConfig) -> list[tuple[str, str]]:
    """[Interface] keys in showconf's order; zero and unset values are left out, as wg does
    (an all-zero key is "no key": it is what setconf sends to clear one)."""
    items = []
    if device.listen_port:
        items.append(("ListenPort", str(device.listen_port)))
    if device.fwmark:
        items.append(("FwMark", f"0x{device.fwmark:x}"))
    if device.private_key is not None and any(device.private_key):
        items.append(("PrivateKey", key_to_base64(device.private_key)))
    return items


def quick_items(quick: QuickConfig) -> list[tuple[str, str]]:
    """wg-quick's keys in the order `wg-quick save` writes them (one line per hook)."""
    items = []
    if quick.addresses:
        items.append(("Address", ", ".join(quick.addresses)))
    if quick.dns or quick.dns_search:
        items.append(("DNS", ", ".join(quick.dns + quick.dns_search)))
    if quick.mtu is not None:
        items.append(("MTU", str(quick.mtu)))
    if quick.table is not None:
        items.append(("Table", quick.table))
    if quick.save_config:
        items.append(("SaveConfig", "true"))
    for key, hooks in (("PreUp", quick.pre_up), ("PostUp", quick.post_up),
                       ("PreDown", quick.pre_down), ("PostDown", quick.post_down)):
        items.extend((key, hook) for hook in hooks)
    return items


def peer_items(peer: PeerConfig) -> list[tuple[str, str]]:
    """[Peer] keys in showconf's order."""
    items = [("PublicKey", key_to_base64(peer.public_key))]
    if peer.preshared_key is not None and any(peer.preshared_key):
        items.append(("PresharedKey", key_to_base64(peer.preshared_key)))
    if peer.allowed_ips:
        items.append(("AllowedIPs", ", ".join(str(a) for a in peer.allowed_ips)))
    if peer.endpoint is not None:
        items.append(("Endpoint", str(peer.endpoint)))
    if peer.persistent_keepalive:
        items.append(("PersistentKeepalive", str(peer.persistent_keepalive)))
    return items


def _lines(items: list[tuple[str, str]]) -> str:
    return "".join(f"{key} = {value}\n" for key, value in items)


def format_showconf(device: DeviceConfig) -> str:
    """Exactly what `wg showconf` prints for a device read over UAPI."""
    peers = "\n".join("[Peer]\n" + _lines(peer_items(peer)) for peer in device.peers)
    return "[Interface]\n" + _lines(interface_items(device)) + "\n" + peers


def format_quick(device: DeviceConfig) -> str:
    """A wg-quick file: showconf with wg-quick's keys first in [Interface], as `wg-quick save`
    lays it out."""
    return format_showconf(device).replace(
        "[Interface]\n", "[Interface]\n" + _lines(quick_items(device.quick)), 1)
