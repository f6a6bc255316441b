"""`wgpy mesh`: wg-quick files for a whole network, following the rules the seed documents
teach (and `wgpy check` verifies).

    wgpy mesh [-o DIR] [--subnet CIDR] [--port N] [--keepalive S] [--psk] [--hub NAME]
              [--punch] NAME[=HOST[:PORT]]...

A node given a HOST is publicly reachable there; a node without one is behind a NAT. Every pair
that can reach each other directly (at least one side reachable) becomes a pair of peers,
each with the other's single address. Two nodes behind NATs cannot: with `--hub NAME` (a
reachable node, the bounce server) every node also takes the hub as a peer for the whole
subnet — the catch-all, which more specific direct peers override — and the hub forwards
between them (its file turns on ip_forward); without a hub such pairs are reported and left
unconnected. Nodes behind NATs keep their mappings open with PersistentKeepalive (default 25 s)
towards every peer they have an endpoint for. Addresses are given out in order from the
subnet; keys are fresh, and with `--psk` every pair shares its own preshared key.

With `--punch` (needs --hub) the nodes behind NATs also look for direct paths to each other
(`wgpy punch`, cli/punch.py): their files say where the hub publishes its peers' endpoints, in
a comment wg-quick ignores (`# PunchHub = http://HUB-ADDRESS:9586/json`), and the hub's file
says, in a comment too, the `wgpy serve` that publishes them on its tunnel address.
"""

import argparse
import ipaddress
import os
import sys
from dataclasses import dataclass, field

from wgpy.cli.qr import config_text, segno_module, write_png
from wgpy.config.values import unsigned
from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64

DEFAULT_PORT = 51820
DEFAULT_KEEPALIVE = 25
PUNCH_PORT = 9586  # `wgpy serve`'s default port, on the hub's tunnel address


@dataclass
class Node:
    name: str
    host: str | None
    port: int
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    private_key: bytes = field(repr=False)

    @property
    def public(self) -> str:
        return key_to_base64(public_key(self.private_key))

    @property
    def endpoint(self) -> str | None:
        if self.host is None:
            return None
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class Mesh:
    nodes: list[Node]
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network
    hub: Node | None
    keepalive: int
    psks: dict[frozenset[str], bytes] = field(repr=False)
    unconnected: list[tuple[str, str]]  # pairs behind NATs with no hub between them
    punch: bool = False  # nodes behind NATs look for direct paths through the hub

    def hub_json(self) -> str:
        """Where the hub's `wgpy serve` publishes its peers (its tunnel address)."""
        assert self.hub is not None
        host = str(self.hub.address.ip)
        return f"http://{f'[{host}]' if ':' in host else host}:{PUNCH_PORT}/json"


def _port(text: str) -> int:
    port = unsigned(text, 65535)
    if not port:
        raise ValueError(f"'{text}' is not a port (1-65535)")
    return port


def parse_node(text: str, default_port: int) -> tuple[str, str | None, int]:
    """NAME, NAME=HOST, NAME=HOST:PORT or NAME=[V6HOST]:PORT."""
    name, _, where = text.partition("=")
    if not name or not name.replace("-", "").replace("_", "").isalnum() or len(name) > 15:
        raise ValueError(f"'{name}' is not a usable node name (letters, digits, - and _, "
                         "at most 15: it names the interface file)")
    if not where:
        return name, None, default_port
    if where.startswith("["):
        host, _, rest = where[1:].partition("]")
        port = _port(rest[1:]) if rest.startswith(":") else default_port
    elif where.count(":") == 1:
        host, _, port_text = where.partition(":")
        port = _port(port_text)
    else:
        host, port = where, default_port
    return name, host, port


def plan(specs: list[str], subnet_text: str, port: int, keepalive: int, with_psk: bool,
         hub_name: str | None, random_bytes=os.urandom) -> Mesh:
    """ValueError for anything that cannot make a network."""
    subnet = ipaddress.ip_network(subnet_text)
    _port(str(port))
    hosts = subnet.hosts()
    nodes: list[Node] = []
    for spec in specs:
        name, host, node_port = parse_node(spec, port)
        if any(node.name == name for node in nodes):
            raise ValueError(f"node '{name}' is given twice")
        try:
            address = next(hosts)
        except StopIteration:
            raise ValueError(f"{subnet} has no address left for '{name}'") from None
        nodes.append(Node(name, host, node_port,
                          ipaddress.ip_interface(f"{address}/{subnet.max_prefixlen}"),
                          generate_private_key(random_bytes)))
    hub = next((node for node in nodes if node.name == hub_name), None)
    if hub_name is not None and hub is None:
        raise ValueError(f"--hub {hub_name}: no such node")
    if hub is not None and hub.host is None:
        raise ValueError(f"--hub {hub.name} needs a public HOST: nodes behind NATs reach it")
    if hub is not None:
        hub.address = ipaddress.ip_interface(f"{hub.address.ip}/{subnet.prefixlen}")
    psks = {}
    unconnected = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if a.host is None and b.host is None:
                if hub is None:
                    unconnected.append((a.name, b.name))
                continue
            if with_psk:
                psks[frozenset((a.name, b.name))] = random_bytes(32)
    return Mesh(nodes, subnet, hub, keepalive, psks, unconnected)


def _direct(a: Node, b: Node) -> bool:
    return a is not b and (a.host is not None or b.host is not None)


def render(mesh: Mesh, node: Node) -> str:
    """The wg-quick file of `node`."""
    lines = [f"# {node.name}: generated by wgpy mesh", "[Interface]",
             f"PrivateKey = {key_to_base64(node.private_key)}",
             f"Address = {node.address}"]
    if mesh.punch and mesh.hub is not None:
        if node is mesh.hub:
            lines.append(f"# publish the peers' endpoints for `wgpy punch` on the spokes: "
                         f"wgpy serve --listen {mesh.hub.address.ip}:{PUNCH_PORT} "
                         f"{node.name}")
        elif node.host is None:
            lines.append(f"# PunchHub = {mesh.hub_json()}  (read by `wgpy punch`)")
    if node.host is not None:
        lines.append(f"ListenPort = {node.port}")
    if node is mesh.hub:
        family = "ipv4" if mesh.subnet.version == 4 else "ipv6"
        setting = "net.ipv4.ip_forward" if family == "ipv4" else "net.ipv6.conf.all.forwarding"
        lines.append(f"PreUp = sysctl -w {setting}=1  # relay between peers (bounce server)")
    for other in mesh.nodes:
        if not _direct(node, other):  # (the hub is reachable: every node has it)
            continue
        allowed = mesh.subnet if other is mesh.hub else ipaddress.ip_network(other.address.ip)
        lines += ["", "[Peer]", f"# Name = {other.name}", f"PublicKey = {other.public}"]
        psk = mesh.psks.get(frozenset((node.name, other.name)))
        if psk is not None:
            lines.append(f"PresharedKey = {key_to_base64(psk)}")
        lines.append(f"AllowedIPs = {allowed}")
        if other.endpoint is not None:
            lines.append(f"Endpoint = {other.endpoint}")
            if node.host is None and mesh.keepalive:
                lines.append(f"PersistentKeepalive = {mesh.keepalive}")
    return "\n".join(lines) + "\n"


def _arguments(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{prog} mesh", description=(
        "Write a wg-quick file per node: NAME=HOST[:PORT] is reachable there, NAME alone is "
        "behind a NAT."))
    parser.add_argument("nodes", nargs="+", metavar="NAME[=HOST[:PORT]]")
    parser.add_argument("-o", "--output", default=".", help="directory for NAME.conf files")
    parser.add_argument("--subnet", default="10.100.0.0/24", help="the VPN's addresses")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default ListenPort")
    parser.add_argument("--keepalive", type=int, default=DEFAULT_KEEPALIVE,
                        help="PersistentKeepalive from nodes behind NATs (0: none)")
    parser.add_argument("--psk", action="store_true", help="a preshared key per pair")
    parser.add_argument("--hub", help="the reachable node that relays for nodes behind NATs")
    parser.add_argument("--punch", action="store_true",
                        help="nodes behind NATs look for direct paths to each other through "
                             "the hub (`wgpy punch`; the hub runs `wgpy serve`)")
    parser.add_argument("--qr", action="append", default=[], metavar="NAME",
                        help="also NAME.png, a QR code of NAME's file for the mobile apps "
                             "(repeatable)")
    return parser


def cmd_mesh(prog: str, args: list[str]) -> int:
    try:
        options = _arguments(prog).parse_args(args)
    except SystemExit as exc:  # argparse has printed the usage or the error
        return int(exc.code or 0)
    try:
        mesh = plan(options.nodes, options.subnet, options.port, options.keepalive,
                    options.psk, options.hub)
    except ValueError as exc:
        print(f"{prog} mesh: {exc}", file=sys.stderr)
        return 1
    if options.punch and mesh.hub is None:
        print(f"{prog} mesh: --punch needs --hub NAME (the hub publishes the endpoints)",
              file=sys.stderr)
        return 1
    mesh.punch = options.punch
    unknown = sorted(set(options.qr) - {node.name for node in mesh.nodes})
    if unknown:
        print(f"{prog} mesh: --qr {', '.join(unknown)}: no such node", file=sys.stderr)
        return 1
    if options.qr:
        try:
            segno_module()
        except RuntimeError as exc:
            print(f"{prog} mesh: {exc}", file=sys.stderr)
            return 1
    paths = [os.path.join(options.output, f"{node.name}.conf") for node in mesh.nodes]
    existing = [path for path in paths if os.path.exists(path)]
    if existing:
        print(f"{prog} mesh: {', '.join(existing)} already exist; not overwriting",
              file=sys.stderr)
        return 1
    os.makedirs(options.output, exist_ok=True)
    for node, path in zip(mesh.nodes, paths, strict=True):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(render(mesh, node))
        where = node.endpoint or "behind NAT"
        print(f"{path}: {node.name} {node.address} ({where})")
        if node.name in options.qr:
            png = os.path.join(options.output, f"{node.name}.png")
            write_png(config_text(path), png)
            print(f"{png}: {node.name} as a QR code (WireGuard app: Create from QR code)")
    for a, b in mesh.unconnected:
        print(f"{prog} mesh: {a} and {b} are both behind NATs and cannot reach each other "
              "without a relay (--hub NAME)", file=sys.stderr)
    return 0
