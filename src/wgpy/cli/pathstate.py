"""The state file of `wgpy punch IFACE`: its links (cli/directpaths.Link), by peer key.

`IFACE.paths.json` under the state directory (/run/wgpy, or $WGPY_STATE_DIR, as
config/names.py): the device holds only AllowedIPs and counters, so *since when* a peer is
direct or relayed, and which entries the agent made (and may change or remove) live here.
`wgpy show --json` and `wgpy show IFACE --paths` read it; a restarted agent takes its links
back from it; `wgpy-quick down` forgets it with the interface's other state. Written whole to
a temporary file and renamed, so a reader never sees half.
"""

import contextlib
import json
import os

from wgpy.cli.directpaths import Link
from wgpy.config.names import punch_state_path
from wgpy.core.keys import KeyFormatError, key_from_base64, key_to_base64


def state_path(iface: str) -> str:
    return punch_state_path(iface)


def load_links(iface: str) -> tuple[bytes | None, dict[bytes, Link]]:
    """(the hub's key, the links) as last saved; (None, {}) when there is no readable file.
    A record that cannot be read is skipped (its peer is then left alone, never guessed)."""
    try:
        with open(state_path(iface), encoding="utf-8") as handle:
            data = json.load(handle)
        hub = key_from_base64(data["hub"])
        records = data["links"]
        if not isinstance(records, dict):
            return None, {}
    except (OSError, ValueError, KeyError, TypeError, KeyFormatError):
        return None, {}
    links: dict[bytes, Link] = {}
    for key_text, record in records.items():
        with contextlib.suppress(ValueError, KeyError, TypeError, KeyFormatError):
            key = key_from_base64(key_text)
            links[key] = Link.from_json(key, record)
    return hub, links


def save_links(iface: str, hub: bytes, links: dict[bytes, Link]) -> None:
    path = state_path(iface)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    document = {"hub": key_to_base64(hub),
                "links": {key_to_base64(key): link.to_json() for key, link in links.items()}}
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    os.replace(temporary, path)


def forget_links(iface: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(state_path(iface))
