"""`wg show` output, byte for byte as wireguard-tools' show.c (v1.0.20210914) prints it.

`pretty` is the human form (colour only when asked for, peers with the latest handshake
first), `show_field` the tab-separated forms scripts read (`dump`, `endpoints`, …), which keep
the device's peer order.
"""

import os
import time

from wgpy.config.model import AllowedIP, DeviceConfig, PeerConfig
from wgpy.core.keys import key_to_base64

FIELDS = ("public-key", "private-key", "listen-port", "fwmark", "peers", "preshared-keys",
          "endpoints", "allowed-ips", "latest-handshakes", "transfer", "persistent-keepalive",
          "dump")

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


def _masked(key: bytes) -> str:
    """(hidden), unless WG_HIDE_KEYS=never."""
    return key_to_base64(key) if os.environ.get("WG_HIDE_KEYS") == "never" else "(hidden)"


def pretty_time(seconds: int, c: _Painter) -> str:
    units = [("year", 365 * 24 * 3600), ("day", 24 * 3600), ("hour", 3600), ("minute", 60),
             ("second", 1)]
    parts = []
    for name, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {c(CYAN)}{name}{'' if count == 1 else 's'}{c(RESET)}")
    return ", ".join(parts)


_CLOCK_REALTIME_COARSE = 5  # <linux/time.h>; the time module does not name it


def wall_clock_seconds() -> int:
    """The clock wg's time(NULL) reads (glibc's vDSO: the coarse realtime clock, up to a tick
    behind the precise one), so "Now" and "N seconds ago" flip at the same instant as wg's."""
    return int(time.clock_gettime(_CLOCK_REALTIME_COARSE))


def ago(seconds_since_epoch: int, c: _Painter, now: int | None = None) -> str:
    now = wall_clock_seconds() if now is None else now
    if now == seconds_since_epoch:
        return "Now"
    if now < seconds_since_epoch:
        return (f"({c(RED)}System clock wound backward; connection problems may ensue."
                f"{c(RESET)})")
    return pretty_time(now - seconds_since_epoch, c) + " ago"


def human_bytes(count: int, c: _Painter) -> str:
    """show.c bytes(): B below 1 KiB, else two decimals of KiB, MiB, GiB or TiB (the division
    done in C's order, on a double)."""
    value = float(count)
    if count < 1024:
        return f"{count} {c(CYAN)}B{c(RESET)}"
    if count < 1024**2:
        return f"{value / 1024:.2f} {c(CYAN)}KiB{c(RESET)}"
    if count < 1024**3:
        return f"{value / (1024 * 1024):.2f} {c(CYAN)}MiB{c(RESET)}"
    if count < 1024**4:
        return f"{value / (1024 * 1024 * 1024):.2f} {c(CYAN)}GiB{c(RESET)}"
    return f"{value / (1024 * 1024 * 1024) / 1024:.2f} {c(CYAN)}TiB{c(RESET)}"


def sorted_peers(peers: list[PeerConfig]) -> list[PeerConfig]:
    """show.c sort_peers: latest handshake first (seconds, then nanoseconds), peers that never
    shook hands last; ties keep the device's order (glibc's qsort is a stable merge sort)."""
    def key(peer: PeerConfig) -> tuple[bool, int, int]:
        never = not peer.last_handshake_sec and not peer.last_handshake_nsec
        return never, -peer.last_handshake_sec, -peer.last_handshake_nsec

    return sorted(peers, key=key)


def _allowed(allowed: AllowedIP, c: _Painter) -> str:
    address, _, cidr = str(allowed).rpartition("/")
    return f"{address}{c(CYAN)}/{c(RESET)}{cidr}"


def pretty(device: DeviceConfig, color: bool, now: int | None = None) -> str:
    c = _Painter(color)
    out = [c(RESET),
           f"{c(GREEN, BOLD)}interface{c(RESET)}: {c(GREEN)}{device.name}{c(RESET)}\n"]
    if device.public_key is not None:
        out.append(f"  {c(BOLD)}public key{c(RESET)}: {_key(device.public_key)}\n")
    if device.private_key is not None:
        out.append(f"  {c(BOLD)}private key{c(RESET)}: {_masked(device.private_key)}\n")
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
            out.append(f"  {c(BOLD)}preshared key{c(RESET)}: {_masked(peer.preshared_key)}\n")
        if peer.endpoint is not None:
            out.append(f"  {c(BOLD)}endpoint{c(RESET)}: {peer.endpoint}\n")
        allowed = ", ".join(_allowed(a, c) for a in peer.allowed_ips) or "(none)"
        out.append(f"  {c(BOLD)}allowed ips{c(RESET)}: {allowed}\n")
        if peer.last_handshake_sec:
            out.append(f"  {c(BOLD)}latest handshake{c(RESET)}: "
                       f"{ago(peer.last_handshake_sec, c, now)}\n")
        if peer.rx_bytes or peer.tx_bytes:
            out.append(f"  {c(BOLD)}transfer{c(RESET)}: {human_bytes(peer.rx_bytes, c)} "
                       f"received, {human_bytes(peer.tx_bytes, c)} sent\n")
        if peer.persistent_keepalive:
            out.append(f"  {c(BOLD)}persistent keepalive{c(RESET)}: every "
                       f"{pretty_time(peer.persistent_keepalive, c)}\n")
        if index != len(peers) - 1:
            out.append("\n")
    return "".join(out)


def _endpoint(peer: PeerConfig) -> str:
    return str(peer.endpoint) if peer.endpoint is not None else "(none)"


def _fwmark(device: DeviceConfig) -> str:
    return f"0x{device.fwmark:x}" if device.fwmark else "off"


def show_dump(device: DeviceConfig, with_interface: bool) -> str:
    prefix = f"{device.name}\t" if with_interface else ""
    lines = [f"{prefix}{_key(device.private_key)}\t{_key(device.public_key)}\t"
             f"{device.listen_port or 0}\t{_fwmark(device)}\n"]
    for peer in device.peers:
        allowed = ",".join(str(a) for a in peer.allowed_ips) or "(none)"
        keepalive = str(peer.persistent_keepalive) if peer.persistent_keepalive else "off"
        lines.append(f"{prefix}{_key(peer.public_key)}\t{_key(peer.preshared_key)}\t"
                     f"{_endpoint(peer)}\t{allowed}\t{peer.last_handshake_sec}\t"
                     f"{peer.rx_bytes}\t{peer.tx_bytes}\t{keepalive}\n")
    return "".join(lines)


def _peer_field(peer: PeerConfig, field: str) -> str:
    if field == "peers":
        return ""
    if field == "endpoints":
        return f"\t{_endpoint(peer)}"
    if field == "allowed-ips":
        return "\t" + (" ".join(str(a) for a in peer.allowed_ips) or "(none)")
    if field == "latest-handshakes":
        return f"\t{peer.last_handshake_sec}"
    if field == "transfer":
        return f"\t{peer.rx_bytes}\t{peer.tx_bytes}"
    if field == "persistent-keepalive":
        return f"\t{peer.persistent_keepalive or 'off'}"
    return f"\t{_key(peer.preshared_key)}"  # preshared-keys


def show_field(device: DeviceConfig, field: str, with_interface: bool) -> str:
    """One field of `wg show IFACE FIELD` (ugly_print in show.c); `field` must be in FIELDS."""
    prefix = f"{device.name}\t" if with_interface else ""
    if field == "dump":
        return show_dump(device, with_interface)
    interface_fields = {
        "public-key": lambda: _key(device.public_key),
        "private-key": lambda: _key(device.private_key),
        "listen-port": lambda: str(device.listen_port or 0),
        "fwmark": lambda: _fwmark(device),
    }
    if field in interface_fields:
        return f"{prefix}{interface_fields[field]()}\n"
    if field == "endpoints":
        # show.c prints the interface name once, before the first peer's line
        return prefix + "".join(f"{_key(p.public_key)}\t{_endpoint(p)}\n" for p in device.peers)
    return "".join(f"{prefix}{_key(p.public_key)}{_peer_field(p, field)}\n"
                   for p in device.peers)
