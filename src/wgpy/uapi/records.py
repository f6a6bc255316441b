"""A `get=1` reply's peers one record each (DeviceState.peers), for callers that take a peer
at a time, such as get_device and syncconf; `wgpy show` prints from uapi.reply's columns and
never imports this (nor typing, which it needs)."""

from typing import NamedTuple


class PeerState(NamedTuple):
    """One peer of a reply; numbers are decimal text without leading zeros. A tuple: a big
    device has tens of thousands, and a tuple is made in a third of an object's time."""

    public_key: bytes
    allowed_ips: list[str]  # "address/cidr" as `wg` prints them
    preshared_key: bytes | None = None  # None: absent or all zero (wg: no preshared key)
    endpoint: str | None = None  # as `wg` prints it: 192.0.2.1:51820, [fe80::1%lo]:51820
    last_handshake_sec: str = "0"
    last_handshake_nsec: str = "0"
    tx_bytes: str = "0"
    rx_bytes: str = "0"
    persistent_keepalive: str | None = None  # None: the reply had no such line
    protocol_version: str | None = None

    def __repr__(self) -> str:  # never the preshared key: a repr ends up in logs
        return (f"PeerState(public_key={self.public_key.hex()}, endpoint={self.endpoint!r}, "
                f"allowed_ips={self.allowed_ips!r})")
