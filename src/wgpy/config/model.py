"""The configuration of one interface, as `wg` models it (struct wgdevice / wgpeer).

`None` means "not given" (wg's HAS_* flags unset), which matters: `wg set` sends only what was
given, `wg setconf` sends everything. The same model carries what a UAPI `get` returns
(handshake time, transfer counters) and wg-quick's extra interface settings.
"""

import ipaddress
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Endpoint:
    """A resolved endpoint: numeric host text (IPv6 without brackets, maybe a %zone)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class AllowedIP:
    """An address and prefix length exactly as written (host bits kept, as wg sends them)."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    cidr: int

    def __str__(self) -> str:
        return f"{self.address}/{self.cidr}"


@dataclass
class PeerConfig:
    public_key: bytes
    preshared_key: bytes | None = None
    endpoint: Endpoint | None = None
    persistent_keepalive: int | None = None
    allowed_ips: list[AllowedIP] = field(default_factory=list)
    replace_allowed_ips: bool = False
    remove: bool = False
    # Runtime state, from a UAPI get
    last_handshake_sec: int = 0
    last_handshake_nsec: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass
class QuickConfig:
    """wg-quick's [Interface] extras, which `wg` itself rejects."""

    addresses: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    mtu: int | None = None
    table: str | None = None
    pre_up: list[str] = field(default_factory=list)
    post_up: list[str] = field(default_factory=list)
    pre_down: list[str] = field(default_factory=list)
    post_down: list[str] = field(default_factory=list)
    save_config: bool = False


@dataclass
class DeviceConfig:
    name: str = ""
    private_key: bytes | None = None
    public_key: bytes | None = None
    listen_port: int | None = None
    fwmark: int | None = None
    replace_peers: bool = False
    peers: list[PeerConfig] = field(default_factory=list)
    quick: QuickConfig = field(default_factory=QuickConfig)
