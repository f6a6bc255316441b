"""`wgpy route <interface|file> <address>...`: which peer gets a packet for each address.

AllowedIPs is WireGuard's routing table: a packet goes to the peer whose AllowedIPs holds the
longest prefix matching its destination, and a prefix has one owner (given twice, the later
peer takes it). This answers from the same table the core routes with, for a running
interface (over its UAPI socket) or for a config file (wg or wg-quick format) before it is
applied. Inbound, the same answer names the one peer a packet *from* that address is accepted
from.
"""

import ipaddress
import os
import sys
from dataclasses import dataclass

from wgpy.config.model import DeviceConfig, PeerConfig
from wgpy.config.parser import read_config
from wgpy.config.values import ConfigError
from wgpy.core.allowedips import AllowedIPs
from wgpy.core.keys import key_to_base64
from wgpy.uapi.client import get_device

USAGE = "Usage: {prog} route <interface | config file> <ip address>..."


@dataclass
class Route:
    address: str
    peer: PeerConfig | None
    prefix: str | None  # the AllowedIPs entry that matched, as written

    def describe(self) -> str:
        if self.peer is None:
            return (f"{self.address}: no peer (dropped as no_key; the sender gets ICMP "
                    "host unreachable)")
        text = f"{self.address}: peer {key_to_base64(self.peer.public_key)} via {self.prefix}"
        if self.peer.endpoint is None:
            return text + ", no endpoint (dropped as no_endpoint until the peer sends to us)"
        return text + f", endpoint {self.peer.endpoint}"


def routing_table(device: DeviceConfig) -> AllowedIPs[tuple[int, str]]:
    """The AllowedIPs trie of `device`; each prefix owned by (index into device.peers, the
    prefix as the peer gave it). Filled in order, so a prefix given twice ends with the later
    peer, as wg set/setconf leave it."""
    table: AllowedIPs[tuple[int, str]] = AllowedIPs()
    for index, peer in enumerate(device.peers):
        for allowed in peer.allowed_ips:
            table.insert(allowed.network, (index, str(allowed.network)))
    return table


def routes(device: DeviceConfig, addresses: list[str]) -> list[Route]:
    """ValueError for an address that is not an IP address."""
    table = routing_table(device)
    answers = []
    for text in addresses:
        address = ipaddress.ip_address(text)
        owner = table.lookup(address.packed)
        if owner is None:
            answers.append(Route(str(address), None, None))
        else:
            answers.append(Route(str(address), device.peers[owner[0]], owner[1]))
    return answers


def load(source: str) -> DeviceConfig:
    """A config file if `source` names one, else the running interface of that name."""
    if os.path.isfile(source):
        return read_config(source, quick=True)
    return get_device(source)


def cmd_route(prog: str, args: list[str]) -> int:
    if len(args) < 2 or args[0] in ("-h", "--help"):
        print(USAGE.format(prog=prog), file=sys.stderr)
        return 1
    try:
        device = load(args[0])
        answers = routes(device, args[1:])
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"Unable to access interface: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"{prog} route: {exc}", file=sys.stderr)
        return 1
    for answer in answers:
        print(answer.describe())
    return 0 if all(answer.peer is not None for answer in answers) else 2
