"""`wg show` output, byte for byte as wireguard-tools' show.c (v1.0.20210914) prints it.

`pretty` is the human form (colour only when asked for, peers with the latest handshake
first), `show_field` the tab-separated forms scripts read (`dump`, `endpoints`, …), which keep
the device's peer order, and `showconf` the configuration. All format the plain records of
uapi.reply in one pass, touching per peer only what the output shows: a 10,000-peer reply is
read in about 45 ms and printed in 5-15 ms more (bench/README.md, "Scale").
"""

import importlib
import os
import time

from wgpy.core.keys import key_to_base64
from wgpy.uapi.reply import DeviceState, PeerState

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


def prepare(field: str | None) -> None:
    """Import what printing `field` (None: the human form) will need beyond this module: the
    X25519 that derives the interface's public key (DeviceState.public_key), for the outputs
    that show it; 5 ms spent while the device is still writing its reply, when this is
    called in between."""
    if field in (None, "public-key", "dump"):
        importlib.import_module("nacl.bindings")


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


def sorted_peers(peers: list[PeerState]) -> list[PeerState]:
    """show.c sort_peers: latest handshake first (seconds, then nanoseconds), peers that never
    shook hands last; ties keep the device's order (glibc's qsort is a stable merge sort)."""
    never = [p for p in peers if p.last_handshake_sec == "0" == p.last_handshake_nsec]
    shook = [p for p in peers if p.last_handshake_sec != "0" or p.last_handshake_nsec != "0"]
    shook.sort(key=lambda p: (-int(p.last_handshake_sec), -int(p.last_handshake_nsec)))
    return shook + never


def pretty(device: DeviceState, color: bool, now: int | None = None) -> str:
    c = _Painter(color)
    bold, reset = c(BOLD), c(RESET)
    out = [reset, f"{c(GREEN, BOLD)}interface{reset}: {c(GREEN)}{device.name}{reset}\n"]
    public = device.public_key()
    if public is not None:
        out.append(f"  {bold}public key{reset}: {_key(public)}\n")
    if device.private_key is not None:
        out.append(f"  {bold}private key{reset}: {_masked(device.private_key)}\n")
    if device.listen_port:
        out.append(f"  {bold}listening port{reset}: {device.listen_port}\n")
    if device.fwmark:
        out.append(f"  {bold}fwmark{reset}: 0x{device.fwmark:x}\n")
    peers = sorted_peers(device.peers)
    if peers:
        out.append("\n")
    # the labels painted once, not per peer
    peer_label, key_color = f"{c(YELLOW, BOLD)}peer{reset}: {c(YELLOW)}", f"{reset}\n"
    psk_label, endpoint_label = f"  {bold}preshared key{reset}: ", f"  {bold}endpoint{reset}: "
    allowed_label, slash = f"  {bold}allowed ips{reset}: ", f"{c(CYAN)}/{reset}"
    handshake_label = f"  {bold}latest handshake{reset}: "
    transfer_label = f"  {bold}transfer{reset}: "
    keepalive_label = f"  {bold}persistent keepalive{reset}: every "
    append = out.append
    for peer in peers:
        append(f"{peer_label}{key_to_base64(peer.public_key)}{key_color}")
        if peer.preshared_key is not None:
            append(f"{psk_label}{_masked(peer.preshared_key)}\n")
        if peer.endpoint is not None:
            append(f"{endpoint_label}{peer.endpoint}\n")
        allowed = ", ".join(peer.allowed_ips) or "(none)"
        if color:
            allowed = allowed.replace("/", slash)
        append(f"{allowed_label}{allowed}\n")
        if peer.last_handshake_sec != "0":
            append(f"{handshake_label}{ago(int(peer.last_handshake_sec), c, now)}\n")
        if peer.rx_bytes != "0" or peer.tx_bytes != "0":
            append(f"{transfer_label}{human_bytes(int(peer.rx_bytes), c)} received, "
                   f"{human_bytes(int(peer.tx_bytes), c)} sent\n")
        if _keepalive(peer) != "off":
            append(f"{keepalive_label}{pretty_time(int(_keepalive(peer)), c)}\n")
        append("\n")
    if peers:
        out.pop()  # no blank line after the last peer
    return "".join(out)


def _keepalive(peer: PeerState) -> str:
    keepalive = peer.persistent_keepalive
    return "off" if keepalive is None or keepalive == "0" else keepalive


def _fwmark(device: DeviceState) -> str:
    return f"0x{device.fwmark:x}" if device.fwmark else "off"


def show_dump(device: DeviceState, with_interface: bool) -> str:
    prefix = f"{device.name}\t" if with_interface else ""
    lines = [f"{prefix}{_key(device.private_key)}\t{_key(device.public_key())}\t"
             f"{device.listen_port or 0}\t{_fwmark(device)}\n"]
    append = lines.append
    for peer in device.peers:
        psk = peer.preshared_key
        append(f"{prefix}{key_to_base64(peer.public_key)}\t"
               f"{'(none)' if psk is None else key_to_base64(psk)}\t"
               f"{peer.endpoint or '(none)'}\t{','.join(peer.allowed_ips) or '(none)'}\t"
               f"{peer.last_handshake_sec}\t{peer.rx_bytes}\t{peer.tx_bytes}\t"
               f"{_keepalive(peer)}\n")
    return "".join(lines)


def _peer_field(peer: PeerState, field: str) -> str:
    if field == "peers":
        return ""
    if field == "endpoints":
        return f"\t{peer.endpoint or '(none)'}"
    if field == "allowed-ips":
        return "\t" + (" ".join(peer.allowed_ips) or "(none)")
    if field == "latest-handshakes":
        return f"\t{peer.last_handshake_sec}"
    if field == "transfer":
        return f"\t{peer.rx_bytes}\t{peer.tx_bytes}"
    if field == "persistent-keepalive":
        return f"\t{_keepalive(peer)}"
    return f"\t{_key(peer.preshared_key)}"  # preshared-keys


def show_field(device: DeviceState, field: str, with_interface: bool) -> str:
    """One field of `wg show IFACE FIELD` (ugly_print in show.c); `field` must be in FIELDS."""
    prefix = f"{device.name}\t" if with_interface else ""
    if field == "dump":
        return show_dump(device, with_interface)
    interface_fields = {
        "public-key": lambda: _key(device.public_key()),
        "private-key": lambda: _key(device.private_key),
        "listen-port": lambda: str(device.listen_port or 0),
        "fwmark": lambda: _fwmark(device),
    }
    if field in interface_fields:
        return f"{prefix}{interface_fields[field]()}\n"
    if field == "endpoints":
        # show.c prints the interface name once, before the first peer's line
        return prefix + "".join(f"{key_to_base64(p.public_key)}\t{p.endpoint or '(none)'}\n"
                                for p in device.peers)
    return "".join(f"{prefix}{key_to_base64(p.public_key)}{_peer_field(p, field)}\n"
                   for p in device.peers)


def showconf(device: DeviceState) -> str:
    """`wg showconf`: the configuration a setconf would restore (showconf.c); zero and unset
    values left out (an all-zero key is "no key")."""
    out = ["[Interface]\n"]
    if device.listen_port:
        out.append(f"ListenPort = {device.listen_port}\n")
    if device.fwmark:
        out.append(f"FwMark = 0x{device.fwmark:x}\n")
    if device.private_key is not None and any(device.private_key):
        out.append(f"PrivateKey = {key_to_base64(device.private_key)}\n")
    out.append("\n")  # after [Interface] even without peers, then between peers
    append = out.append
    for index, peer in enumerate(device.peers):
        if index:
            append("\n")
        append(f"[Peer]\nPublicKey = {key_to_base64(peer.public_key)}\n")
        if peer.preshared_key is not None:
            append(f"PresharedKey = {key_to_base64(peer.preshared_key)}\n")
        if peer.allowed_ips:
            append(f"AllowedIPs = {', '.join(peer.allowed_ips)}\n")
        if peer.endpoint is not None:
            append(f"Endpoint = {peer.endpoint}\n")
        if _keepalive(peer) != "off":
            append(f"PersistentKeepalive = {peer.persistent_keepalive}\n")
    return "".join(out)
