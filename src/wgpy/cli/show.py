"""`wg show` output, byte for byte as wireguard-tools' show.c prints it."""

import time

from wgpy.config.model import DeviceConfig, PeerConfig
from wgpy.core.keys import key_to_base64

RESET, BOLD = "\x1b[0m", "\x1b[1m"
GREEN, YELLOW, CYAN, RED = "\x1b[32m", "\x1b[33m", "\x1b[36m", "\x1b[31m"


class _Painter:
    """terminal_printf: colour codes only when colour is on."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, *codes: str) -> str:
        return "".join(codes) if self.color else ""


def _key(key: bytes | None) -> str:
    return key_to_base64(key) if key is not None else "(none)"


def pretty_time(seconds: int, c: _Painter) -> str:
    units = [("year", 365 * 24 * 3600), ("day", 24 * 3600), ("hour", 3600), ("minute", 60),
             ("second", 1)]
    parts = []
    for name, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {c(CYAN)}{name}{'' if count == 1 else 's'}{c(RESET)}")
    return ", ".join(parts)


def ago(seconds_since_epoch: int, c: _Painter) -> str:
    now = int(time.time())
    if now == seconds_since_epoch:
        return "Now"
    if now < seconds_since_epoch:
        return (f"({c(RED)}System clock wound backward; connection problems may ensue."
                f"{c(RESET)})")
    return pretty_time(now - seconds_since_epoch, c) + " ago"


def human_bytes(count: int, c: _Painter) -> str:
    if count < 1024:
        return f"{count} {c(CYAN)}B{c(RESET)}"
    for unit, size in (("KiB", 1024), ("MiB", 1024**2), ("GiB", 1024**3)):
        if count < size * 1024:
            return f"{count / size:.2f} {c(CYAN)}{unit}{c(RESET)}"
    return f"{count / 1024**4:.2f} {c(CYAN)}TiB{c(RESET)}"


def sorted_peers(peers: list[PeerConfig]) -> list[PeerConfig]:
    """Most recent handshake first, peers without a handshake last (stable)."""
    return sorted(peers, key=lambda p: (p.last_handshake_sec == 0, -p.last_handshake_sec))


def pretty(device: DeviceConfig, color: bool) -> str:
    c = _Painter(color)
    out = [c(RESET),
           f"{c(GREEN, BOLD)}interface{c(RESET)}: {c(GREEN)}{device.name}{c(RESET)}\n"]
    if device.public_key is not None:
        out.append(f"  {c(BOLD)}public key{c(RESET)}: {_key(device.public_key)}\n")
    if device.private_key is not None:
        out.append(f"  {c(BOLD)}private key{c(RESET)}: (hidden)\n")
    if device.listen_port:
        out.append(f"  {c(BOLD)}listening port{c(RESET)}: {device.listen_port}\n")
    if device.fwmark:
        out.append(f"  {c(BOLD)}fwmark{c(RESET)}: 0x{device.fwmark:x}\n")
    peers = sorted_peers(device.peers)
    if peers:
        out.append("\n")
    for index, peer in enumerate(peers):
        out.append(f"{c(YELLOW, BOLD)}peer{c(RESET)}: {c(YELLOW)}{_key(peer.public_key)}"
                   f"{c(RESET)}\n")
        if peer.preshared_key is not None:
            out.append(f"  {c(BOLD)}preshared key{c(RESET)}: (hidden)\n")
        if peer.endpoint is not None:
            out.append(f"  {c(BOLD)}endpoint{c(RESET)}: {peer.endpoint}\n")
        out.append(f"  {c(BOLD)}allowed ips{c(RESET)}: ")
        if peer.allowed_ips:
            out.append(", ".join(f"{a.address}{c(CYAN)}/{c(RESET)}{a.cidr}"
                                 for a in peer.allowed_ips) + "\n")
        else:
            out.append("(none)\n")
        if peer.last_handshake_sec:
            out.append(f"  {c(BOLD)}latest handshake{c(RESET)}: "
                       f"{ago(peer.last_handshake_sec, c)}\n")
        if peer.rx_bytes or peer.tx_bytes:
            out.append(f"  {c(BOLD)}transfer{c(RESET)}: {human_bytes(peer.rx_bytes, c)} "
                       f"received, {human_bytes(peer.tx_bytes, c)} sent\n")
        if peer.persistent_keepalive:
            out.append(f"  {c(BOLD)}persistent keepalive{c(RESET)}: every "
                       f"{pretty_time(peer.persistent_keepalive, c)}\n")
        if index != len(peers) - 1:
            out.append("\n")
    return "".join(out)


def show_dump(device: DeviceConfig, with_interface: bool) -> str:
    prefix = f"{device.name}\t" if with_interface else ""
    fwmark = f"0x{device.fwmark:x}" if device.fwmark else "off"
    lines = [f"{prefix}{_key(device.private_key)}\t{_key(device.public_key)}\t"
             f"{device.listen_port or 0}\t{fwmark}\n"]
    for peer in device.peers:
        endpoint = str(peer.endpoint) if peer.endpoint is not None else "(none)"
        allowed = ",".join(str(a) for a in peer.allowed_ips) or "(none)"
        keepalive = str(peer.persistent_keepalive) if peer.persistent_keepalive else "off"
        lines.append(f"{prefix}{_key(peer.public_key)}\t{_key(peer.preshared_key)}\t"
                     f"{endpoint}\t{allowed}\t{peer.last_handshake_sec}\t{peer.rx_bytes}\t"
                     f"{peer.tx_bytes}\t{keepalive}\n")
    return "".join(lines)


def show_field(device: DeviceConfig, field: str, with_interface: bool) -> str:
    """One field of `wg show IFACE FIELD` (ugly_print in show.c)."""
    prefix = f"{device.name}\t" if with_interface else ""
    if field == "dump":
        return show_dump(device, with_interface)
    if field == "public-key":
        return f"{prefix}{_key(device.public_key)}\n"
    if field == "private-key":
        return f"{prefix}{_key(device.private_key)}\n"
    if field == "listen-port":
        return f"{prefix}{device.listen_port or 0}\n"
    if field == "fwmark":
        return f"{prefix}{f'0x{device.fwmark:x}' if device.fwmark else 'off'}\n"
    lines = []
    if field == "endpoints":
        # wireguard-tools v1.0.20210914 prints the interface name once, before the peers
        lines.append(prefix)
        prefix = ""
    for peer in device.peers:
        head = f"{prefix}{_key(peer.public_key)}"
        if field == "peers":
            lines.append(f"{head}\n")
        elif field == "endpoints":
            lines.append(f"{head}\t{peer.endpoint if peer.endpoint is not None else '(none)'}\n")
        elif field == "allowed-ips":
            allowed = " ".join(str(a) for a in peer.allowed_ips) or "(none)"
            lines.append(f"{head}\t{allowed}\n")
        elif field == "latest-handshakes":
            lines.append(f"{head}\t{peer.last_handshake_sec}\n")
        elif field == "transfer":
            lines.append(f"{head}\t{peer.rx_bytes}\t{peer.tx_bytes}\n")
        elif field == "persistent-keepalive":
            lines.append(f"{head}\t{peer.persistent_keepalive or 'off'}\n")
        elif field == "preshared-keys":
            lines.append(f"{head}\t{_key(peer.preshared_key)}\n")
    return "".join(lines)
