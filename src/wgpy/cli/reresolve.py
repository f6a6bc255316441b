"""`wgpy reresolve IFACE`: endpoints given by name follow the name when its address changes.

WireGuard resolves an Endpoint hostname once, when the configuration is applied; the device
only ever holds the address. When a dynamic-DNS name moves, the tunnel stays dead until
someone applies the file again. wireguard-tools answers with a contrib script run from a
timer (reresolve-dns.sh); this is that, built in: the names live only in the configuration
file, so it is read again, and every [Peer] whose Endpoint is a name and whose latest
handshake is older than 135 s (the script's threshold: by then a whole round of handshake
attempts has failed) or never happened has its name resolved again; a changed address is
`set` over UAPI
(update_only: a peer removed meanwhile is not brought back). While handshakes succeed, no
name is looked up at all. It speaks only UAPI, so it works on wgpyd and wireguard-go alike.

The file is the one given (--config), else the one wgpy-quick remembered bringing the
interface up from; names given to `wgpy set` are remembered too (both in config/names.py).
`--interval S` repeats every S seconds until interrupted (what the `wgpy-reresolve@.service`
unit runs); without it, one pass.
"""

import contextlib
import ipaddress
import logging
import os
import sys
import time
from dataclasses import dataclass

from wgpy.config.model import DeviceConfig, PeerConfig
from wgpy.config.names import peer_names, remembered_config_file, remembered_endpoint_names
from wgpy.config.parser import classify
from wgpy.config.values import ConfigError, parse_endpoint, split_endpoint
from wgpy.core.keys import KeyFormatError, key_from_base64, key_to_base64
from wgpy.uapi.client import get_device, set_device

log = logging.getLogger("wgpy.reresolve")

# reresolve-dns.sh's threshold (seconds since the latest handshake)
DEFAULT_STALE_AFTER = 135.0
STALE_ENV = "WGPY_RERESOLVE_AFTER"
USAGE = ("<interface> [--config <file>] [--interval <seconds>] [--stale <seconds>]")


@dataclass
class NamedEndpoint:
    """A peer whose Endpoint was written as a hostname, as written (host:port)."""

    public_key: bytes
    endpoint: str
    name: str | None = None


def is_hostname_endpoint(endpoint: str) -> bool:
    """`host:port` whose host is a name, not an IPv4 or IPv6 address (maybe with a zone)."""
    try:
        host = split_endpoint(endpoint)[0]
    except ConfigError:
        return False
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return True
    return False


def named_endpoints(text: str) -> list[NamedEndpoint]:
    """The [Peer] sections of a wg or wg-quick file whose Endpoint host is not an address."""
    found: list[NamedEndpoint] = []
    key: bytes | None = None
    endpoint: str | None = None

    def close() -> None:
        if key is not None and endpoint is not None and is_hostname_endpoint(endpoint):
            found.append(NamedEndpoint(key, endpoint))

    for line in classify(text, quick=True):
        if line.kind in ("interface", "peer"):
            close()
            key, endpoint = None, None
        elif line.kind == "wg" and line.key.lower() == "publickey":
            with contextlib.suppress(KeyFormatError):
                key = key_from_base64(line.value)
        elif line.kind == "wg" and line.key.lower() == "endpoint":
            endpoint = line.value
    close()
    names = peer_names(text)
    for entry in found:
        entry.name = names.get(entry.public_key)
    return found


def reresolve_once(iface: str, text: str, stale_after: float, now: float) -> int:
    """One pass over `iface` with the file `text` (maybe empty) and the names `wgpy set`
    was given; returns how many endpoints were changed."""
    wanted = {entry.public_key: entry for entry in named_endpoints(text)}
    for key, endpoint in remembered_endpoint_names(iface).items():
        wanted[key] = NamedEndpoint(key, endpoint, wanted[key].name if key in wanted else None)
    if not wanted:
        return 0
    changed = 0
    for peer in get_device(iface).peers:
        entry = wanted.get(peer.public_key)
        if entry is None:
            continue
        handshake = peer.last_handshake_sec + peer.last_handshake_nsec / 1e9
        if handshake and now - handshake < stale_after:
            continue  # handshakes succeed: the address is right, no DNS
        who = entry.name or key_to_base64(peer.public_key)
        try:
            new = parse_endpoint(entry.endpoint, retries=0)
        except ConfigError as exc:
            log.warning("%s: peer %s: %s", iface, who, exc)
            continue
        if new == peer.endpoint:
            continue
        set_device(iface, DeviceConfig(peers=[PeerConfig(
            public_key=peer.public_key, endpoint=new, update_only=True)]))
        log.info("%s: peer %s: %s now resolves to %s (was %s)", iface, who, entry.endpoint,
                 new, peer.endpoint or "none")
        changed += 1
    return changed


def _stale_after(option: str | None) -> float:
    text = option if option is not None else os.environ.get(STALE_ENV)
    if text is None:
        return DEFAULT_STALE_AFTER
    value = float(text)
    if value < 0:
        raise ValueError(text)
    return value


def cmd_reresolve(program: str, args: list[str]) -> int:
    usage = f"Usage: {program} reresolve {USAGE}"
    if not args or args[0].startswith("-"):
        print(usage, file=sys.stderr)
        return 1
    iface, rest = args[0], args[1:]
    options: dict[str, str] = {}
    while rest:
        if rest[0] not in ("--config", "--interval", "--stale") or len(rest) < 2:
            print(usage, file=sys.stderr)
            return 1
        options[rest[0]] = rest[1]
        rest = rest[2:]
    try:
        stale_after = _stale_after(options.get("--stale"))
        interval = float(options["--interval"]) if "--interval" in options else None
    except ValueError:
        print(f"{program}: not a number of seconds in {options or os.environ.get(STALE_ENV)}",
              file=sys.stderr)
        return 1
    path = options.get("--config") or remembered_config_file(iface)
    if path is None and not remembered_endpoint_names(iface):
        print(f"{program}: no configuration file known for {iface} (it was not brought up "
              "by wgpy-quick) and no endpoint names given to `set`: give a file with "
              "--config", file=sys.stderr)
        return 1
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    while True:
        try:
            text = ""
            if path is not None:
                with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                    text = handle.read()
            reresolve_once(iface, text, stale_after, time.time())
        except OSError as exc:
            # a device down for a moment (restart) or a file being rewritten: next pass
            print(f"{program}: {iface}: {exc.strerror or exc}", file=sys.stderr)
            if interval is None:
                return 1
        if interval is None:
            return 0
        time.sleep(interval)
