"""`wg show` output, byte for byte as wireguard-tools' show.c (v1.0.20210914) prints it.

`pretty` is the human form (colour only when asked for, peers with the latest handshake
first), `show_field` the tab-separated forms scripts read (`dump`, `endpoints`, …), which keep
the device's peer order, and `showconf` the configuration. All print from the columns of
uapi.reply's PeerTable, zipping those the output shows (keys turned to base64 a column at a
time): a 10,000-peer reply is read in about 30 ms and printed in 5-13 ms more
(bench/README.md, "Scale").
"""

import importlib
import os
import time
from binascii import b2a_base64

from wgpy.uapi.reply import ZERO_KEY_HEX, DeviceState, PeerTable, joined

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
    return "(none)" if key is None else b2a_base64(key, newline=False).decode()


def _masked(key: bytes) -> str:
    """(hidden), unless WG_HIDE_KEYS=never."""
    return _key(key) if _shown() else "(hidden)"


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


def handshake_order(table: PeerTable) -> list[int]:
    """show.c sort_peers, as indexes into the table: latest handshake first (seconds, then
    nanoseconds), peers that never shook hands last; ties keep the device's order (glibc's
    qsort is a stable merge sort)."""
    times = zip(table.last_handshake_secs, table.last_handshake_nsecs, strict=True)
    shook = [index for index, (seconds, nanoseconds) in enumerate(times)
             if seconds != "0" or nanoseconds != "0"]
    if not shook:
        return list(range(len(table)))
    secs, nsecs = table.last_handshake_secs, table.last_handshake_nsecs
    shook.sort(key=lambda index: (-int(secs[index]), -int(nsecs[index])))
    chosen = set(shook)
    return shook + [index for index in range(len(table)) if index not in chosen]


def _keys(hex_keys: list[str]) -> list[str]:
    """Keys in base64, all converted at once: each key with a zero byte after it makes 33
    bytes, a whole number of base64 groups, so the keys come out of one b2a_base64 call 44
    characters apiece, their last one (the padding's place) to be replaced by "="."""
    if not hex_keys:
        return []
    text = b2a_base64(bytes.fromhex("00".join(hex_keys) + "00"), newline=False).decode()
    return [text[start:start + 43] + "=" for start in range(0, len(text), 44)]


def _preshared(hex_keys: list[str], shown: bool) -> list[str | None]:
    """Per peer: None without a preshared key, else its base64 or "(hidden)" (not `shown`)."""
    if not shown:
        return [None if key == ZERO_KEY_HEX else "(hidden)" for key in hex_keys]
    return [None if key == ZERO_KEY_HEX else _hex_to_base64(key) for key in hex_keys]


def _hex_to_base64(key: str) -> str:
    return b2a_base64(bytes.fromhex(key), newline=False).decode()


def _shown() -> bool:
    """Keys the human form prints unless WG_HIDE_KEYS=never: hidden."""
    return os.environ.get("WG_HIDE_KEYS") == "never"


def _off(keepalive: str | None) -> str:
    return "off" if keepalive is None or keepalive == "0" else keepalive


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
    table = device.table
    if table.public_keys:
        out.append("\n")
    # the labels painted once, not per peer
    peer_label, key_color = f"{c(YELLOW, BOLD)}peer{reset}: {c(YELLOW)}", f"{reset}\n"
    psk_label, endpoint_label = f"  {bold}preshared key{reset}: ", f"  {bold}endpoint{reset}: "
    allowed_label = f"  {bold}allowed ips{reset}: "
    allowed_separator = f"{c(CYAN)}/{reset}" if color else "/"
    handshake_label = f"  {bold}latest handshake{reset}: "
    transfer_label = f"  {bold}transfer{reset}: "
    keepalive_label = f"  {bold}persistent keepalive{reset}: every "
    keys, preshared = _keys(table.public_keys), _preshared(table.preshared_keys, _shown())
    endpoints, lines = table.endpoints, table.allowed_ip_lines
    secs, rx, tx, keepalives = (table.last_handshake_secs, table.rx_bytes, table.tx_bytes,
                                table.keepalives)
    append = out.append
    for index in handshake_order(table):
        append(f"{peer_label}{keys[index]}{key_color}")
        if preshared[index] is not None:
            append(f"{psk_label}{preshared[index]}\n")
        if endpoints[index] is not None:
            append(f"{endpoint_label}{endpoints[index]}\n")
        allowed = joined(lines[index], ", ") or "(none)"
        if color:
            allowed = allowed.replace("/", allowed_separator)
        append(f"{allowed_label}{allowed}\n")
        if secs[index] != "0":
            append(f"{handshake_label}{ago(int(secs[index]), c, now)}\n")
        if rx[index] != "0" or tx[index] != "0":
            append(f"{transfer_label}{human_bytes(int(rx[index]), c)} received, "
                   f"{human_bytes(int(tx[index]), c)} sent\n")
        if _off(keepalives[index]) != "off":
            append(f"{keepalive_label}{pretty_time(int(keepalives[index] or 0), c)}\n")
        append("\n")
    if table.public_keys:
        out.pop()  # no blank line after the last peer
    return "".join(out)


def _fwmark(device: DeviceState) -> str:
    return f"0x{device.fwmark:x}" if device.fwmark else "off"


def show_dump(device: DeviceState, with_interface: bool) -> str:
    prefix = f"{device.name}\t" if with_interface else ""
    table = device.table
    lines = [f"{prefix}{_key(device.private_key)}\t{_key(device.public_key())}\t"
             f"{device.listen_port or 0}\t{_fwmark(device)}\n"]
    lines += [f"{prefix}{key}\t{psk or '(none)'}\t{endpoint or '(none)'}\t"
              f"{joined(allowed, ',') or '(none)'}\t{seconds}\t{rx}\t{tx}\t{_off(keepalive)}\n"
              for key, psk, endpoint, allowed, seconds, rx, tx, keepalive in zip(
                  _keys(table.public_keys), _preshared(table.preshared_keys, True),
                  table.endpoints, table.allowed_ip_lines, table.last_handshake_secs,
                  table.rx_bytes, table.tx_bytes, table.keepalives, strict=True)]
    return "".join(lines)


def _peer_fields(table: PeerTable, field: str) -> list[str]:
    """Per peer, what `wg show IFACE FIELD` prints after the peer's key."""
    if field == "peers":
        return [""] * len(table)
    if field == "endpoints":
        return [f"\t{endpoint or '(none)'}" for endpoint in table.endpoints]
    if field == "allowed-ips":
        return [f"\t{joined(lines, ' ') or '(none)'}" for lines in table.allowed_ip_lines]
    if field == "latest-handshakes":
        return [f"\t{seconds}" for seconds in table.last_handshake_secs]
    if field == "transfer":
        return [f"\t{rx}\t{tx}" for rx, tx in zip(table.rx_bytes, table.tx_bytes, strict=True)]
    if field == "persistent-keepalive":
        return [f"\t{_off(keepalive)}" for keepalive in table.keepalives]
    # preshared-keys
    return [f"\t{psk or '(none)'}" for psk in _preshared(table.preshared_keys, True)]


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
    keys = _keys(device.table.public_keys)
    values = _peer_fields(device.table, field)
    if field == "endpoints":
        # show.c prints the interface name once, before the first peer's line
        return prefix + "".join(f"{key}{value}\n" for key, value in zip(keys, values,
                                                                         strict=True))
    return "".join(f"{prefix}{key}{value}\n" for key, value in zip(keys, values, strict=True))


def showconf(device: DeviceState) -> str:
    """`wg showconf`: the configuration a setconf would restore (showconf.c); zero and unset
    values left out (an all-zero key is "no key")."""
    out = ["[Interface]\n"]
    if device.listen_port:
        out.append(f"ListenPort = {device.listen_port}\n")
    if device.fwmark:
        out.append(f"FwMark = 0x{device.fwmark:x}\n")
    if device.private_key is not None and any(device.private_key):
        out.append(f"PrivateKey = {_key(device.private_key)}\n")
    out.append("\n")  # after [Interface] even without peers, then between peers
    table = device.table
    peers = [_peer_conf(key, psk, allowed, endpoint, keepalive)
             for key, psk, allowed, endpoint, keepalive in zip(
                 _keys(table.public_keys), _preshared(table.preshared_keys, True),
                 table.allowed_ip_lines, table.endpoints, table.keepalives, strict=True)]
    out.append("\n".join(peers))
    return "".join(out)


def _peer_conf(key: str, psk: str | None, allowed_ip_lines: str, endpoint: str | None,
               keepalive: str | None) -> str:
    lines = [f"[Peer]\nPublicKey = {key}\n"]
    if psk is not None:
        lines.append(f"PresharedKey = {psk}\n")
    if allowed_ip_lines:
        lines.append(f"AllowedIPs = {joined(allowed_ip_lines, ', ')}\n")
    if endpoint is not None:
        lines.append(f"Endpoint = {endpoint}\n")
    if _off(keepalive) != "off":
        lines.append(f"PersistentKeepalive = {keepalive}\n")
    return "".join(lines)
