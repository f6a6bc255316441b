"""Configuration text from the model: `wg showconf` output and `wg-quick strip`."""

from wgpy.config.model import DeviceConfig
from wgpy.core.keys import key_to_base64


def format_showconf(device: DeviceConfig) -> str:
    """Exactly what `wg showconf` prints for a device read over UAPI."""
    out = ["[Interface]\n"]
    if device.listen_port:
        out.append(f"ListenPort = {device.listen_port}\n")
    if device.fwmark:
        out.append(f"FwMark = 0x{device.fwmark:x}\n")
    if device.private_key is not None:
        out.append(f"PrivateKey = {key_to_base64(device.private_key)}\n")
    out.append("\n")
    for index, peer in enumerate(device.peers):
        out.append(f"[Peer]\nPublicKey = {key_to_base64(peer.public_key)}\n")
        if peer.preshared_key is not None:
            out.append(f"PresharedKey = {key_to_base64(peer.preshared_key)}\n")
        if peer.allowed_ips:
            out.append("AllowedIPs = " + ", ".join(str(a) for a in peer.allowed_ips) + "\n")
        if peer.endpoint is not None:
            out.append(f"Endpoint = {peer.endpoint}\n")
        if peer.persistent_keepalive:
            out.append(f"PersistentKeepalive = {peer.persistent_keepalive}\n")
        if index != len(device.peers) - 1:
            out.append("\n")
    return "".join(out)
