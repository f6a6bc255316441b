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

import binascii
import contextlib
import ipaddress
import os
from collections.abc import Iterable
from typing import Any, NamedTuple

from wgpy.cli.directpaths import RELAYED, Link
from wgpy.cli.pathstate import load_links
from wgpy.cli.route import allowed_key, packed_network, prefix_key, state_routing_table
from wgpy.config.model import AllowedIP
from wgpy.config.names import names_of_lines, remembered_config_file
from wgpy.config.parser import Line, classify
from wgpy.config.values import ConfigError, parse_allowed_ips
from wgpy.core.keys import KeyFormatError, key_from_base64, key_to_base64
from wgpy.uapi.client import get_drops, get_state
from wgpy.uapi.reply import ZERO_KEY_HEX, DeviceState, joined

SCHEMA_VERSION = 3


def first_prefixes_of_lines(lines: Iterable[Line]) -> dict[bytes, AllowedIP | None]:
    """Public key -> the first AllowedIPs entry a wg or wg-quick file gives it (None: none),
    what `path` routes by (nothing resolved: a JSON view must not wait on DNS for Endpoint
    names), from the file's lines as config.parser.classify(quick=True) gives them. An
    unreadable AllowedIPs line is skipped, and so is every line after the first one that
    gives an entry: only the first entry is used."""
    found: dict[bytes, AllowedIP | None] = {}
    key: bytes | None = None
    first: AllowedIP | None = None
    for line in [*lines, None]:
        if line is None or line.kind in ("interface", "peer"):
            if key is not None:
                found[key] = first
            key, first = None, None
        elif line.kind == "wg" and line.key.lower() == "publickey":
            with contextlib.suppress(KeyFormatError):
                key = key_from_base64(line.value)
        elif first is None and line.kind == "wg" and line.key.lower() == "allowedips":
            with contextlib.suppress(ConfigError):
                first = next(iter(parse_allowed_ips(line.value)), None)
    return found


# SPACE (config.values) but the newline, which must keep the lines apart
_SQUEEZE = str.maketrans("", "", " \t\v\f\r")


def peer_lines(text: str) -> str:
    """The lines of a wg or wg-quick file that can give a peer its name, key or AllowedIPs,
    picked out of the whole text at once: names_of_lines and first_prefixes_of_lines make
    of them what they make of the whole file, in a fraction of the time (a 10,000-peer hub
    file has 50,000 lines, and `wgpy serve` reads it at every request).

    Kept: every line that, lowercased and without its spaces, holds "[" (a section header:
    all are kept, so each line is in the same section as in the file, and the file's
    lines are read one at a time), "publickey", "allowedips" or "name" (a name comment),
    which each of those needs to be recognised; NUL bytes go first, as wg-quick drops
    them."""
    text = text.replace("\0", "")
    folded = text.lower().translate(_SQUEEZE).split("\n")  # lower() makes no newline
    return "".join([line + "\n" for line, key in zip(text.split("\n"), folded, strict=True)
                    if "[" in key or "publickey" in key or "allowedips" in key
                    or "name" in key])


class PeerFile(NamedTuple):
    """What a config file says of its peers, beyond the device."""

    names: dict[bytes, str]  # config.names.names_of_lines
    first_prefixes: dict[bytes, AllowedIP | None]  # first_prefixes_of_lines


_NO_FILE = PeerFile({}, {})
_read_files: dict[str, tuple[tuple[int, int, int], PeerFile]] = {}


def read_peer_file(path: str | None) -> PeerFile:
    """The names and first AllowedIPs entries of the file at `path` (none when it cannot be
    read: names are a nicety, never an error), read again only when its inode, size or
    modification time changed (`wgpy serve` asks at every request)."""
    if path is None:
        return _NO_FILE
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            status = os.fstat(handle.fileno())
            stamp = (status.st_ino, status.st_size, status.st_mtime_ns)
            known = _read_files.get(path)
            if known is not None and known[0] == stamp:
                return known[1]
            lines = list(classify(peer_lines(handle.read()), quick=True))
    except OSError:
        return _NO_FILE
    found = PeerFile(names_of_lines(lines), first_prefixes_of_lines(lines))
    _read_files[path] = (stamp, found)
    return found


def _link_network(link: Link) -> bytes | None:
    """The first address of a link's first prefix, packed (None: it records none)."""
    if not link.prefixes:
        return None
    return ipaddress.ip_network(link.prefixes[0]).network_address.packed


def _paths(state: DeviceState, keys: list[bytes], encoded: list[str],
           configured: dict[bytes, AllowedIP | None],
           links: dict[bytes, Link]) -> tuple[list[tuple[str, str | None]], list[dict[str, Any]]]:
    """(path, via) per peer of `state` (module docstring), and the spokes `wgpy punch`
    manages, routed by the live table (built once for both). `keys` and `encoded` are the
    peers' public keys, raw and in base64."""
    table = state_routing_table(state.table)
    lookup = table.lookup
    answers: list[tuple[str, str | None]] = []
    for index, (key, lines) in enumerate(zip(keys, state.table.allowed_ip_lines,
                                             strict=True)):
        chosen = configured.get(key)
        link = links.get(key)
        if chosen is not None:
            address: bytes | None = packed_network(allowed_key(chosen))
        elif link is not None and link.prefixes:
            address = _link_network(link)
        elif lines:
            address = packed_network(prefix_key(lines[11:lines.index("\n")]))
        else:
            address = None
        owner = lookup(address) if address is not None else None
        if owner is None:
            answers.append(("unrouted", None))
        elif owner == index:
            answers.append(("direct", None))
        else:
            answers.append(("relayed", encoded[owner]))
    punch = []
    for key, link in links.items():
        address = _link_network(link)
        owner = lookup(address) if address is not None else None
        owner_key = keys[owner] if owner is not None else None
        path = "unrouted" if owner_key is None else "direct" if owner_key == key else "relayed"
        waiting = link.path == RELAYED and link.probe_started is None
        punch.append({"public_key": key_to_base64(key), "name": link.name, "path": path,
                      "via": encoded[owner] if path == "relayed" and owner is not None
                      else None,
                      "path_since": link.since, "prefixes": list(link.prefixes),
                      "trying_since": link.probe_started,
                      "next_attempt": link.retry_at if waiting else None})
    return answers, punch


def interface_document(state: DeviceState, names: dict[bytes, str],
                       drops: dict[str, int] | None,
                       configured: dict[bytes, AllowedIP | None] | None = None,
                       links: dict[bytes, Link] | None = None) -> dict[str, Any]:
    """One interface of the document, made from the columns of its `get` reply (what
    get_state reads: no object per prefix); `names` from config.names, `drops` None when
    the device keeps no drop counters (wireguard-go), `configured` the first AllowedIPs
    entry its file gives each peer (first_prefixes_of_lines), `links` what `wgpy punch`
    manages."""
    links = links or {}
    peers = state.table
    keys = [bytes.fromhex(key) for key in peers.public_keys]
    encoded = [binascii.b2a_base64(key, newline=False).decode("ascii") for key in keys]
    paths, punch = _paths(state, keys, encoded, configured or {}, links)
    names = all_names(names, links)
    since = {key: link.since for key, link in links.items()}
    documents = [
        {"public_key": public,
         "name": names.get(key),
         "has_preshared_key": preshared != ZERO_KEY_HEX,
         "endpoint": endpoint,
         "allowed_ips": joined(lines, "\n").split("\n") if lines else [],
         "latest_handshake": int(handshake),
         "transfer_rx": int(rx),
         "transfer_tx": int(tx),
         "persistent_keepalive": int(keepalive) or None if keepalive is not None else None,
         "path": path,
         "via": via,
         "path_since": since.get(key)}
        for key, public, preshared, endpoint, lines, handshake, rx, tx, keepalive, (path, via)
        in zip(keys, encoded, peers.preshared_keys, peers.endpoints, peers.allowed_ip_lines,
               peers.last_handshake_secs, peers.rx_bytes, peers.tx_bytes, peers.keepalives,
               paths, strict=True)]
    private_key = state.private_key
    public_key = state.public_key()
    return {
        "name": state.name,
        "public_key": key_to_base64(public_key) if public_key else None,
        "has_private_key": bool(private_key and any(private_key)),
        "listen_port": state.listen_port,
        "fwmark": state.fwmark or None,
        "drops": drops,
        "peers": documents,
        "punch": punch,
    }


def document(interfaces: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "interfaces": interfaces}


class LiveInterface(NamedTuple):
    """One interface as read for a document or a scrape."""

    state: DeviceState  # its `get` reply
    drops: dict[str, int] | None  # None: not wgpyd
    links: dict[bytes, Link]  # what `wgpy punch` manages on it
    file: PeerFile  # what its file says (the one given, or the one wgpy-quick remembered)


def read_interfaces(names: list[str], config_file: str | None = None
                    ) -> tuple[list[LiveInterface], list[str]]:
    """The interfaces `names`, read live over UAPI, and an error line for each interface
    that could not be read (it is left out, as `wg show all` skips it). `config_file` gives
    the peers' names when there is one interface."""
    interfaces = []
    errors = []
    for name in names:
        try:
            state = get_state(name)
        except OSError as exc:
            errors.append(f"Unable to access interface {name}: {exc.strerror or exc}")
            continue
        try:
            drops: dict[str, int] | None = get_drops(name)
        except OSError:  # not wgpyd (NoDropCountersError), or gone since the get
            drops = None
        interfaces.append(LiveInterface(
            state, drops, load_links(name)[1],
            read_peer_file(config_file or remembered_config_file(name))))
    return interfaces, errors


def all_names(names: dict[bytes, str], links: dict[bytes, Link]) -> dict[bytes, str]:
    """Peer names: the file's, else the name `wgpy punch` keeps for the spoke."""
    return {**{key: link.name for key, link in links.items() if link.name}, **names}


def collect(names: list[str], config_file: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """The document for the interfaces `names` (read_interfaces), and the error lines."""
    interfaces, errors = read_interfaces(names, config_file)
    return document([
        interface_document(live.state, live.file.names, live.drops,
                           live.file.first_prefixes, live.links)
        for live in interfaces]), errors
