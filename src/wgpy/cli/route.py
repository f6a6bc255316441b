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
import socket
import sys
from dataclasses import dataclass

from wgpy.config.model import AllowedIP, DeviceConfig, PeerConfig
from wgpy.config.parser import read_config
from wgpy.config.values import ConfigError
from wgpy.core.allowedips import AllowedIPs
from wgpy.core.keys import key_to_base64
from wgpy.uapi.client import get_device
from wgpy.uapi.reply import PeerTable, joined

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


PrefixKey = tuple[int, int, int]  # (IP version, network as an int, length): AllowedIPs' key


def prefix_key(text: str) -> PrefixKey:
    """The table key of a prefix as `wg` prints it ("10.1.2.3/8": host bits cleared). Text to
    ints through inet_pton, without an ipaddress object: a 10,000-peer hub has 30,000
    prefixes, and its `wgpy show --json` builds the table on every run."""
    address, _, cidr = text.partition("/")
    length = int(cidr)
    if ":" in address:
        shift = 128 - length
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, address)) >> shift << shift, \
            length
    shift = 32 - length
    return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, address)) >> shift << shift, length


def allowed_key(allowed: AllowedIP) -> PrefixKey:
    """The table key of a config model entry (AllowedIP.network's, without making it)."""
    version = allowed.address.version
    shift = (32 if version == 4 else 128) - allowed.cidr
    return version, int(allowed.address) >> shift << shift, allowed.cidr


def packed_network(key: PrefixKey) -> bytes:
    """The prefix's first address, packed: what AllowedIPs.lookup takes."""
    version, network, _ = key
    return network.to_bytes(4 if version == 4 else 16)


def routing_table(device: DeviceConfig) -> AllowedIPs[tuple[int, int]]:
    """The AllowedIPs trie of `device`; each prefix owned by (index into device.peers, index
    into that peer's allowed_ips). Filled in order, so a prefix given twice ends with the
    later peer, as wg set/setconf leave it."""
    table: AllowedIPs[tuple[int, int]] = AllowedIPs()
    for index, peer in enumerate(device.peers):
        for position, allowed in enumerate(peer.allowed_ips):
            table.insert(allowed_key(allowed), (index, position))
    return table


def state_routing_table(peers: PeerTable) -> AllowedIPs[int]:
    """routing_table for the peers of a `get` reply (uapi.reply's text columns), each prefix
    owned by its peer's index: what `wgpy show --json` routes with."""
    table: AllowedIPs[int] = AllowedIPs()
    insert = table.insert
    for index, lines in enumerate(peers.allowed_ip_lines):
        if lines:
            for text in joined(lines, "\n").split("\n"):
                insert(prefix_key(text), index)
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
            peer = device.peers[owner[0]]
            answers.append(Route(str(address), peer, str(peer.allowed_ips[owner[1]].network)))
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
