"""The topologies the seed documents describe, built the way their readers build them: wg-quick
files brought up with `wgpy-quick` (wgpyd) and, for the wireguard-go nodes, the real `wg-quick`.

* Bounce server: two clients behind NATs (masquerading routers) that cannot reach each other,
  each with one peer — the public relay — whose AllowedIPs is the whole VPN subnet, and a
  PersistentKeepalive to hold its NAT mapping open. The relay learns each client's translated
  endpoint from its packets, and forwards between them with the kernel's ip_forward.
* Full mesh: three nodes, each a peer of the others, where AllowedIPs is the routing table: the
  most specific prefix picks the peer, a wider one catches the rest.
* Forwarding all traffic: AllowedIPs = 0.0.0.0/0, ::/0 on a client, a server that forwards and
  masquerades to a host beyond it.
* A network written by `wgpy mesh`, brought up as written.
"""

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest

from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64

from netlab import Namespace, veth_pair

pytestmark = pytest.mark.root

TOOLS = {"wgpyd": "wgpy-quick", "wireguard-go": "wg-quick"}


@dataclass
class Node:
    ns: Namespace
    iface: str
    implementation: str
    private_key: str
    public_key: str

    def wg(self, *args: str) -> str:
        return self.ns.run("wg", *args).stdout

    def field(self, name: str) -> dict[str, str]:
        """`wg show IFACE NAME` as {peer public key: value}."""
        lines = self.wg("show", self.iface, name).strip().splitlines()
        return dict(line.split("\t", 1) for line in lines)

    def wait_for_handshake(self, peer: "Node", timeout: float = 12.0) -> None:
        """Until a handshake with `peer` (a lost first initiation is retried after 5 s)."""
        deadline = time.monotonic() + timeout
        while self.field("latest-handshakes").get(peer.public_key, "0") == "0":
            assert time.monotonic() < deadline, f"{self.iface}: no handshake with {peer.iface}"
            time.sleep(0.1)

    def ping(self, address: str, count: int = 2) -> None:
        result = self.ns.run("ping", "-c", str(count), "-i", "0.2", "-W", "3", address,
                             timeout=30, check=False)
        assert result.returncode == 0, f"{self.iface}: ping {address}: {result.stdout}\n" \
            f"{self.ns.run('wg', 'show', self.iface).stdout}"


def new_node(ns: Namespace, iface: str, implementation: str) -> Node:
    key = generate_private_key(os.urandom)
    return Node(ns, iface, implementation, key_to_base64(key), key_to_base64(public_key(key)))


@contextmanager
def up_file(ns: Namespace, iface: str, implementation: str, path: str,
            env: dict | None = None) -> Iterator[None]:
    """`wg-quick up PATH` with the implementation's tool (`env` instead of ours); `down`
    afterwards (deleting the link also stops the daemon the tool started)."""
    tool = TOOLS[implementation]
    env = dict(env or os.environ, WG_QUICK_USERSPACE_IMPLEMENTATION=implementation)
    result = ns.run(tool, "up", path, env=env, check=False)
    assert result.returncode == 0, f"{tool} up {iface}: {result.stderr}"
    try:
        yield
    finally:
        ns.run(tool, "down", path, env=env, check=False)
        ns.run("ip", "link", "del", iface, check=False)


@contextmanager
def quick_up(node: Node, directory: str, body: str) -> Iterator[None]:
    """/dir/IFACE.conf with the node's key and `body`, brought up (see up_file)."""
    path = os.path.join(directory, f"{node.iface}.conf")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(f"[Interface]\nPrivateKey = {node.private_key}\n{body}")
    with up_file(node.ns, node.iface, node.implementation, path):
        yield


def masquerade(router: Namespace, outside: str) -> None:
    """The router forwards and source-NATs what leaves through `outside`, like a home router."""
    router.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    router.run("nft", "-f", "-", input=(
        "table ip nat {\n chain post {\n  type nat hook postrouting priority 100;\n"
        f'  oifname "{outside}" masquerade\n }}\n}}\n'))


@pytest.mark.parametrize("clients", [("wgpyd", "wireguard-go"), ("wireguard-go", "wgpyd")],
                         ids=lambda c: "-and-".join(c))
def test_bounce_server_relays_between_clients_behind_nats(wireguard_go, clients):
    tag = f"{os.getpid() % 10000}"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as files:
        enter = stack.enter_context
        hub_ns = enter(Namespace(f"wgpys-hub{tag}"))
        hub = new_node(hub_ns, f"wsh{tag}", "wgpyd")
        hub_ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        sides = []
        for n, implementation in enumerate(clients, 1):
            router = enter(Namespace(f"wgpys-r{n}{tag}"))
            client_ns = enter(Namespace(f"wgpys-c{n}{tag}"))
            # hub <-> router: the "internet"; router <-> client: the client's private LAN
            veth_pair(hub_ns, f"wsu{n}h{tag}", f"10.203.{n}.1/24",
                      router, f"wsu{n}r{tag}", f"10.203.{n}.2/24")
            veth_pair(router, f"wsl{n}r{tag}", f"192.168.{60 + n}.1/24",
                      client_ns, f"wsl{n}c{tag}", f"192.168.{60 + n}.2/24")
            client_ns.run("ip", "route", "add", "default", "via", f"192.168.{60 + n}.1")
            masquerade(router, f"wsu{n}r{tag}")
            sides.append((new_node(client_ns, f"wsc{n}{tag}", implementation), n))

        # The relay: every client is a peer with its own address; no endpoints (they roam).
        hub_body = "Address = 10.90.0.1/24\nListenPort = 51820\n" + "".join(
            f"\n[Peer]\nPublicKey = {client.public_key}\nAllowedIPs = 10.90.0.{n + 1}/32\n"
            for client, n in sides)
        enter(quick_up(hub, files, hub_body))
        # Each client: the relay only, with the whole VPN subnet, and a keepalive.
        for client, n in sides:
            enter(quick_up(client, files, (
                f"Address = 10.90.0.{n + 1}/32\n\n[Peer]\nPublicKey = {hub.public_key}\n"
                f"Endpoint = 10.203.{n}.1:51820\nAllowedIPs = 10.90.0.0/24\n"
                "PersistentKeepalive = 1\n")))

        (first, _), (second, _) = sides
        # The second client pings the first, which has sent nothing but keepalives: the relay
        # knows where the first is only from them, through its NAT.
        hub.wait_for_handshake(first)
        second.ping("10.90.0.2")
        first.ping("10.90.0.3")
        endpoints = hub.field("endpoints")
        for client, n in sides:
            host, _port = endpoints[client.public_key].rsplit(":", 1)
            assert host == f"10.203.{n}.2", endpoints  # the router's address: translated
        for client, _ in sides:
            assert hub.field("latest-handshakes")[client.public_key] != "0"
            # the client has one peer, the relay: everything reached it through the relay
            assert list(client.field("endpoints")) == [hub.public_key]
        assert hub.field("transfer")  # counters readable after the relayed traffic
        drops = hub_ns.run("wgpy", "show", hub.iface, "--drops").stdout
        counts = dict(line.split() for line in drops.splitlines())
        # (no_key is not asserted: the hub's own IPv6 router solicitations go to no peer)
        assert counts["src_not_allowed"] == counts["no_endpoint"] == "0", counts


def on_a_switch(stack: ExitStack, tag: str, count: int) -> list[Namespace]:
    """`count` hosts on one bridge (a LAN), host n at 10.204.0.n/24."""
    switch = stack.enter_context(Namespace(f"wgpys-sw{tag}"))
    switch.run("ip", "link", "add", "br0", "type", "bridge")
    switch.run("ip", "link", "set", "br0", "up")
    hosts = []
    for n in range(1, count + 1):
        ns = stack.enter_context(Namespace(f"wgpys-m{n}{tag}"))
        veth_pair(switch, f"wsb{n}{tag}", [], ns, f"wsm{n}{tag}", f"10.204.0.{n}/24")
        switch.run("ip", "link", "set", f"wsb{n}{tag}", "master", "br0")
        hosts.append(ns)
    return hosts


def test_full_mesh_routes_by_the_most_specific_allowed_ips(wireguard_go):
    tag = f"{os.getpid() % 10000}"
    implementations = ["wgpyd", "wgpyd", "wireguard-go"]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as files:
        hosts = on_a_switch(stack, tag, len(implementations))
        nodes = [new_node(ns, f"wsn{n}{tag}", implementation)
                 for n, (ns, implementation) in enumerate(zip(hosts, implementations,
                                                               strict=True), 1)]
        for n, node in enumerate(nodes, 1):
            body = f"Address = 10.91.0.{n}/24\nListenPort = {51830 + n}\n"
            for m, other in enumerate(nodes, 1):
                if other is node:
                    continue
                # node 1 gives node 3 the whole subnet (a catch-all, as for a bounce
                # server); node 2's /32 is more specific and must still win for node 2
                allowed = "10.91.0.0/24" if (n, m) == (1, 3) else f"10.91.0.{m}/32"
                body += (f"\n[Peer]\nPublicKey = {other.public_key}\n"
                         f"Endpoint = 10.204.0.{m}:{51830 + m}\nAllowedIPs = {allowed}\n")
            stack.enter_context(quick_up(node, files, body))

        for node in nodes:
            for m, other in enumerate(nodes, 1):
                if other is not node:
                    node.ping(f"10.91.0.{m}", count=1)
        first, second, third = nodes

        def sent(peer: Node) -> int:
            return int(first.field("transfer")[peer.public_key].split("\t")[1])

        before = sent(second), sent(third)
        first.ping("10.91.0.2", count=3)
        after = sent(second), sent(third)
        assert after[0] > before[0] and after[1] == before[1], (before, after)
        for node in nodes:
            handshakes = node.field("latest-handshakes")
            assert len(handshakes) == 2 and "0" not in handshakes.values(), handshakes


def test_a_network_from_wgpy_mesh_comes_up(wireguard_go):
    """`wgpy mesh` files, as written, brought up with wgpy-quick and wg-quick: all ping."""
    tag = f"{os.getpid() % 10000}"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as files:
        hosts = on_a_switch(stack, tag, 3)
        names = [f"wsg{n}{tag}" for n in range(1, 4)]
        specs = [f"{name}=10.204.0.{n}:{51840 + n}" for n, name in enumerate(names, 1)]
        hosts[0].run("wgpy", "mesh", "-o", files, "--psk", "--subnet", "10.92.0.0/24", *specs)
        for ns, name, implementation in zip(hosts, names, ["wgpyd", "wireguard-go", "wgpyd"],
                                            strict=True):
            stack.enter_context(up_file(ns, name, implementation,
                                        os.path.join(files, f"{name}.conf")))
        for ns in hosts:
            for n in range(1, 4):
                ns.run("ping", "-c", "1", "-W", "3", f"10.92.0.{n}", timeout=30)


@pytest.mark.parametrize("client_implementation", ["wgpyd", "wireguard-go"])
def test_all_traffic_through_the_tunnel_with_a_default_route(wireguard_go,
                                                             client_implementation):
    """"Forwarding all traffic": the client's AllowedIPs = 0.0.0.0/0, ::/0 makes wg-quick
    route everything into the tunnel, while the tunnel's own datagrams (fwmark 51820, set by
    wg-quick and honoured by the daemon's socket) still leave through the real interface; the
    server forwards and masquerades to a host beyond it."""
    tag = f"{os.getpid() % 10000}"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as files:
        enter = stack.enter_context
        client_ns = enter(Namespace(f"wgpys-fc{tag}"))
        server_ns = enter(Namespace(f"wgpys-fs{tag}"))
        beyond = enter(Namespace(f"wgpys-fi{tag}"))
        veth_pair(client_ns, f"wfc{tag}", "10.206.0.1/24", server_ns, f"wfs{tag}",
                  "10.206.0.2/24")
        veth_pair(server_ns, f"wfo{tag}", "10.207.0.1/24", beyond, f"wfi{tag}",
                  "10.207.0.2/24")
        masquerade(server_ns, f"wfo{tag}")  # also turns on ip_forward
        server = new_node(server_ns, f"wfsv{tag}", "wgpyd")
        client = new_node(client_ns, f"wfcl{tag}", client_implementation)
        enter(quick_up(server, files, (
            f"Address = 10.93.0.1/24\nListenPort = 51820\n\n[Peer]\n"
            f"PublicKey = {client.public_key}\nAllowedIPs = 10.93.0.2/32\n")))
        enter(quick_up(client, files, (
            f"Address = 10.93.0.2/32\n\n[Peer]\nPublicKey = {server.public_key}\n"
            "Endpoint = 10.206.0.2:51820\nAllowedIPs = 0.0.0.0/0, ::/0\n")))

        route = client_ns.run("ip", "route", "get", "10.207.0.2").stdout
        assert f"dev {client.iface}" in route, route  # the host beyond: into the tunnel
        marked = client_ns.run("ip", "route", "get", "10.206.0.2", "mark", "51820").stdout
        assert f"dev wfc{tag}" in marked, marked  # the tunnel's own datagrams: the veth
        client.ping("10.207.0.2", count=3)
        received = int(server.field("transfer")[client.public_key].split("\t")[0])
        assert received >= 3 * 84, received  # the pings came through the tunnel
        assert client.wg("show", client.iface, "fwmark").strip() == "0xca6c"
