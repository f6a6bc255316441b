"""The configuration of one interface, as `wg` models it (struct wgdevice / wgpeer).

`None` means "not given" (wg's HAS_* flags unset), which matters: `wg set` sends only what was
given, `wg setconf` sends everything. The same model carries what a UAPI `get` returns
(handshake time, transfer counters, protocol version, keys only wgpyd sends) and wg-quick's
extra interface settings.
"""

import ipaddress
import socket
from dataclasses import dataclass, field

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class Endpoint:
    """A resolved endpoint: numeric host text as getnameinfo(NI_NUMERICHOST) prints it (IPv6
    without brackets, maybe with a %zone), and the port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class AllowedIP:
    """An address and prefix length exactly as written (host bits kept, as wg sends them)."""

    address: Address
    cidr: int

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The prefix it means (host bits cleared, as the device stores it)."""
        return ipaddress.ip_network(f"{self.address}/{self.cidr}", strict=False)

    def __str__(self) -> str:
        # inet_ntop, not ipaddress: they disagree on IPv4-mapped/compatible IPv6 forms, and
        # wg prints inet_ntop's.
        family = socket.AF_INET6 if self.address.version == 6 else socket.AF_INET
        return f"{socket.inet_ntop(family, self.address.packed)}/{self.cidr}"


@dataclass
class PeerConfig:
    public_key: bytes
    preshared_key: bytes | None = field(default=None, repr=False)  # secret: never in a repr
    endpoint: Endpoint | None = None
    persistent_keepalive: int | None = None
    allowed_ips: list[AllowedIP] = field(default_factory=list)
    replace_allowed_ips: bool = False
    remove: bool = False
    update_only: bool = False
    # Runtime state, from a UAPI get
    last_handshake_sec: int = 0
    last_handshake_nsec: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    protocol_version: int | None = None


@dataclass
class QuickConfig:
    """wg-quick's [Interface] extras, which `wg` itself rejects."""

    addresses: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)  # name servers (IP addresses)
    dns_search: list[str] = field(default_factory=list)  # other DNS= entries: search domains
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
    private_key: bytes | None = field(default=None, repr=False)  # secret: never in a repr
    public_key: bytes | None = None
    listen_port: int | None = None
    fwmark: int | None = None
    replace_peers: bool = False
    peers: list[PeerConfig] = field(default_factory=list)
    quick: QuickConfig = field(default_factory=QuickConfig)
