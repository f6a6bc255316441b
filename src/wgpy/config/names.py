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
"""

import contextlib
import os
import re

from wgpy.config.parser import classify
from wgpy.core.keys import KeyFormatError, key_from_base64

STATE_DIR_ENV = "WGPY_STATE_DIR"
DEFAULT_STATE_DIR = "/run/wgpy"
_NAME_COMMENT = re.compile(r"^\s*#\s*(?:name|friendly_name)\s*=\s*(.*?)\s*$", re.IGNORECASE)


def peer_names(text: str) -> dict[bytes, str]:
    """Public key -> name for every [Peer] section of `text` that has both."""
    names: dict[bytes, str] = {}
    in_peer = False
    key: bytes | None = None
    name: str | None = None

    def close() -> None:
        if in_peer and key is not None and name:
            names[key] = name

    for line in classify(text, quick=True):
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


def read_peer_names(path: str) -> dict[bytes, str]:
    """peer_names of a file; {} when it cannot be read (names are a nicety, never an error)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return peer_names(handle.read())
    except OSError:
        return {}


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


def forget_config_file(iface: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(_state_path(iface))


def remembered_config_file(iface: str) -> str | None:
    """The file `iface` was brought up from by wgpy-quick, if it still exists."""
    try:
        with open(_state_path(iface)) as handle:
            path = handle.read().strip()
    except OSError:
        return None
    return path if path and os.path.exists(path) else None


def interface_peer_names(iface: str, config_file: str | None = None) -> dict[bytes, str]:
    """Names for `iface`'s peers: from `config_file` if given, else from the remembered one."""
    path = config_file or remembered_config_file(iface)
    return read_peer_names(path) if path else {}
