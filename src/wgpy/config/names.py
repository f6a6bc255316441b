"""Friendly peer names from comments in wg / wg-quick files, and which file an interface came
from.

WireGuard has no name for a peer, only its key; people write one in a comment inside the
[Peer] section, in one of two forms in common use:

    # Name = phone.example-vpn.dev       (the unofficial WireGuard docs' examples)
    # friendly_name = phone              (what prometheus_wireguard_exporter reads)

Comments reach neither wg nor the device, so the names are read from the file again when
shown. `wgpy-quick up` remembers which file an interface was brought up from (a one-line file
under the state directory, removed by `down`), so `wgpy show --json` and the metrics find the
names without being told.

Endpoint hostnames given to `wgpy set` are remembered the same way (`IFACE.endpoint-names`,
one `base64-key host:port` line per peer), since the device keeps only the address and
`wgpy reresolve` needs the name to look it up again; an address given later for the same
peer, or the peer's removal, forgets the name.
"""

import contextlib
import os
import re
from collections.abc import Callable, Iterable

from wgpy.config.parser import Line, classify
from wgpy.core.keys import KeyFormatError, key_from_base64, key_to_base64

STATE_DIR_ENV = "WGPY_STATE_DIR"
DEFAULT_STATE_DIR = "/run/wgpy"
_NAME_COMMENT = re.compile(r"^\s*#\s*(?:name|friendly_name)\s*=\s*(.*?)\s*$", re.IGNORECASE)


def peer_names(text: str) -> dict[bytes, str]:
    """Public key -> name for every [Peer] section of `text` that has both."""
    return names_of_lines(classify(text, quick=True))


def names_of_lines(lines: Iterable[Line]) -> dict[bytes, str]:
    """peer_names of a file's lines as config.parser.classify(quick=True) gives them (for a
    caller that reads them for more than names)."""
    names: dict[bytes, str] = {}
    in_peer = False
    key: bytes | None = None
    name: str | None = None

    def close() -> None:
        if in_peer and key is not None and name:
            names[key] = name

    for line in lines:
        if line.kind in ("interface", "peer"):
            close()
            in_peer, key, name = line.kind == "peer", None, None
        elif line.kind == "blank":
            match = _NAME_COMMENT.match(line.raw)
            if match and in_peer:
                name = match.group(1)
        elif line.kind == "wg" and line.key.lower() == "publickey":
            with contextlib.suppress(KeyFormatError):
                key = key_from_base64(line.value)
    close()
    return names


def _state_path(iface: str) -> str:
    directory = os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
    return os.path.join(directory, f"{iface}.config-file")


def remember_config_file(iface: str, path: str) -> None:
    """Note that `iface` was brought up from `path` (best effort)."""
    state = _state_path(iface)
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(state), exist_ok=True)
        with open(state, "w") as handle:
            handle.write(os.path.abspath(path) + "\n")


def punch_state_path(iface: str) -> str:
    """`wgpy punch`'s state file for `iface` (cli/pathstate.py), forgotten with the rest."""
    directory = os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
    return os.path.join(directory, f"{iface}.paths.json")


def forget_config_file(iface: str) -> None:
    """The interface is gone: forget its file, the endpoint names `wgpy set` gave it and what
    `wgpy punch` knew of its paths."""
    for path in (_state_path(iface), _endpoint_names_path(iface), punch_state_path(iface)):
        with contextlib.suppress(OSError):
            os.unlink(path)


def remembered_config_file(iface: str) -> str | None:
    """The file `iface` was brought up from by wgpy-quick, if it still exists."""
    try:
        with open(_state_path(iface)) as handle:
            path = handle.read().strip()
    except OSError:
        return None
    return path if path and os.path.exists(path) else None


def _endpoint_names_path(iface: str) -> str:
    directory = os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
    return os.path.join(directory, f"{iface}.endpoint-names")


def remembered_endpoint_names(iface: str) -> dict[bytes, str]:
    """Public key -> `host:port` as last given by name to `wgpy set` for `iface`."""
    names: dict[bytes, str] = {}
    with contextlib.suppress(OSError), open(_endpoint_names_path(iface)) as handle:
        for line in handle:
            key_text, _, endpoint = line.strip().partition(" ")
            with contextlib.suppress(KeyFormatError):
                if endpoint:
                    names[key_from_base64(key_text)] = endpoint
    return names


def remember_set_endpoints(iface: str, words: list[str], is_name: Callable[[str], bool]
                           ) -> None:
    """Note the endpoints of a `wg set` argument list (`words` after the interface) that
    `is_name` says are hostnames; forget a peer's name on a new address or `remove`. Best
    effort: the set itself has already succeeded."""
    names = remembered_endpoint_names(iface)
    before = dict(names)
    key: bytes | None = None
    index = 0
    while index < len(words):
        word = words[index]
        value = words[index + 1] if index + 1 < len(words) else ""
        if word == "remove":
            if key is not None:
                names.pop(key, None)
            index += 1
            continue
        if word == "peer":
            key = None
            with contextlib.suppress(KeyFormatError):
                key = key_from_base64(value)
        elif word == "endpoint" and key is not None:
            if is_name(value):
                names[key] = value
            else:
                names.pop(key, None)
        index += 2
    if names == before:
        return
    with contextlib.suppress(OSError):
        path = _endpoint_names_path(iface)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.writelines(f"{key_to_base64(k)} {v}\n" for k, v in names.items())
