"""What happened to a peer that an operator wants in the log: a handshake completed, failed
or was given up, an endpoint moved. The core only records them (it does no I/O); the shell
takes them and logs them at info, naming the peer as wireguard-go does, by the ends of its
public key, never by any secret.

The record is bounded: a core whose events nobody takes (an embedded core, a test) keeps the
latest EVENT_BACKLOG and forgets older ones rather than growing.
"""

from collections import deque
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # (peer imports timers, which imports this module)
    from wgpy.core.peer import Endpoint

EVENT_BACKLOG = 256


class PeerEventKind(StrEnum):
    HANDSHAKE_COMPLETED = "handshake completed"
    HANDSHAKE_FAILED = "handshake failed"
    HANDSHAKE_GAVE_UP = "handshake did not complete; giving up until there is traffic"
    ENDPOINT_CHANGED = "endpoint changed"


class PeerEvent(NamedTuple):
    kind: PeerEventKind
    public_key: bytes
    detail: str = ""


def new_event_log() -> deque[PeerEvent]:
    return deque(maxlen=EVENT_BACKLOG)


def endpoint_text(endpoint: "Endpoint | None") -> str:
    """host:port, [v6]:port, or "none", for a log line."""
    if endpoint is None:
        return "none"
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
