"""`wgpy punch`: two spokes behind their own NATs find a direct path through the hub.

The network is built as a user would: `wgpy mesh --hub hub --punch` writes the files, the hub
and wgpyd spokes come up with `wgpy-quick`, a wireguard-go spoke with the real `wg-quick`;
the hub runs `wgpy serve` on its tunnel address and each spoke runs `wgpy punch` (timers
shortened). The "internet" is a bridge between the hub and the two NAT routers; each router
masquerades its LAN and drops unsolicited new traffic arriving from the internet (as home
routers do), so a direct path exists only where both spokes punched from the ports they use
with the hub.

Direct means the hub carries none of it: its transfer counters for the two spokes stay put
while the spokes exchange tens of kilobytes. With one NAT choosing a new port per destination
(masquerade fully-random) no direct handshake can complete and a ping run through the whole
attempt loses nothing. The routers' connection tracking flushed, the direct path carries on by
itself; cut at a router (and flushed), it falls back to the hub within seconds and comes back
once the cut is lifted.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from test_seed_topologies import up_file

from conftest import require
from wgpy.cli.pathstate import load_links

from netlab import Namespace, end_process, unique_name, veth_pair

pytestmark = pytest.mark.root

WAN = {"hub": "203.0.113.1", "a": "203.0.113.2", "b": "203.0.113.3"}
TUNNEL = {"hub": "10.100.0.1", "a": "10.100.0.2", "b": "10.100.0.3"}
PUNCH_TIMERS = ["--interval", "0.5", "--keepalive", "1", "--probe-timeout", "8",
                "--dead-after", "4", "--retry", "2", "--settle", "0.5"]


@dataclass
class Node:
    name: str
    ns: Namespace
    iface: str
    config: str
    implementation: str

    def wgpy(self, *args: str, env: dict) -> subprocess.CompletedProcess:
        return self.ns.run(sys.executable, "-m", "wgpy.cli.main", *args, env=env)

    def peers(self, env: dict, part: str = "peers") -> dict[str, dict]:
        """`wgpy show IFACE --json`'s peers (or the spokes `punch` manages) by public key."""
        doc = json.loads(self.wgpy("show", self.iface, "--json", env=env).stdout)
        return {peer["public_key"]: peer for peer in doc["interfaces"][0][part]}

    def key(self, env: dict) -> str:
        doc = json.loads(self.wgpy("show", self.iface, "--json", env=env).stdout)
        return doc["interfaces"][0]["public_key"]


@dataclass
class Lab:
    hub: Node
    a: Node
    b: Node
    routers: dict[str, Namespace]
    env: dict
    logs: str
    agents: dict[str, subprocess.Popen]
    start_agents: Callable[[], object] = lambda: None

    def ping(self, source: Node, target: str, count: int = 3, size: int = 56,
             interval: float = 0.2) -> subprocess.CompletedProcess:
        return source.ns.run("ping", "-c", str(count), "-s", str(size), "-i", str(interval),
                             "-W", "1", TUNNEL[target], check=False, timeout=120)

    def wait_ping(self, source: Node, target: str, within: float) -> None:
        """Until a ping goes through (each try waits 1 s for its answer)."""
        start = time.monotonic()
        while self.ping(source, target, count=1).returncode != 0:
            assert time.monotonic() - start < within, self.explain()

    def hub_forwarded(self) -> int:
        """Packets the hub forwarded from one spoke to the other (its nft counter on the
        forward hook: the agents' polling of its page ends at the hub, it is not counted)."""
        text = self.hub.ns.run("nft", "list", "table", "inet", "relay").stdout
        return int(text.split("counter packets ")[1].split()[0])

    def path(self, node: Node, other: Node) -> dict:
        """How `node` reaches `other` (its `wgpy show --json` "punch" entry)."""
        return node.peers(self.env, "punch").get(other.key(self.env), {"path": "unmanaged"})

    def wait_direct(self, timeout: float) -> float:
        """Until both spokes route to each other directly; the seconds it took."""
        start = time.monotonic()
        while not all(self.path(x, y)["path"] == "direct"
                      for x, y in ((self.a, self.b), (self.b, self.a))):
            assert time.monotonic() - start < timeout, self.explain()
            time.sleep(0.2)
        return time.monotonic() - start

    def explain(self) -> str:
        text = []
        for node in (self.hub, self.a, self.b):
            text.append(node.ns.run("wg", "show", node.iface).stdout)
        for name in os.listdir(self.logs):
            with open(os.path.join(self.logs, name)) as handle:
                text.append(f"--- {name}\n{handle.read()}")
        return "\n".join(text)


def nat_router(router: Namespace, wan: str, fully_random: bool) -> None:
    """Masquerade what leaves by `wan`; drop anything new that arrives by it."""
    router.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    mode = " fully-random" if fully_random else ""
    router.run("nft", "-f", "-", input=(
        "table ip nat {\n chain post {\n  type nat hook postrouting priority srcnat;\n"
        f'  oifname "{wan}" masquerade{mode}\n }}\n}}\n'
        "table inet filter {\n"
        f' chain input {{\n  type filter hook input priority 0;\n  iifname "{wan}" ct state'
        " new drop\n }\n"
        f' chain forward {{\n  type filter hook forward priority 0;\n  iifname "{wan}" ct '
        "state new drop\n }\n}\n"))


@contextlib.contextmanager
def _process(ns: Namespace, args: list[str], env: dict, log_path: str
             ) -> Iterator[subprocess.Popen]:
    with open(log_path, "w") as log:
        process = ns.popen(*args, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        yield process
    finally:
        end_process(process, timeout=10)


def _wait_for_port(ns: Namespace, address: str, port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while f"{address}:{port}" not in ns.run("ss", "-Hltn").stdout:
        assert time.monotonic() < deadline, f"nothing listens on {address}:{port}"
        time.sleep(0.1)


@contextlib.contextmanager
def two_nats(kinds: tuple[str, str], fully_random: tuple[bool, bool],
             start_agents: bool = True) -> Iterator[Lab]:
    tag = unique_name("", max_len=6)
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as directory:
        enter = stack.enter_context
        state, logs, files = (os.path.join(directory, d) for d in ("state", "logs", "files"))
        os.makedirs(logs)
        env = dict(os.environ, WGPY_STATE_DIR=state)
        internet = enter(Namespace(unique_name("wgpyn-net")))
        internet.run("ip", "link", "add", "br0", "type", "bridge")
        internet.run("ip", "link", "set", "br0", "up")
        spaces = {}
        for name in ("hub", "a", "b"):
            host = enter(Namespace(unique_name(f"wgpyn-{name}")))
            if name == "hub":
                wan_ns, wan = host, f"wnw{name}{tag}"
            else:
                wan_ns, wan = enter(Namespace(unique_name(f"wgpyn-r{name}"))), f"wnw{name}{tag}"
            veth_pair(internet, f"wnp{name}{tag}", [], wan_ns, wan, f"{WAN[name]}/24")
            internet.run("ip", "link", "set", f"wnp{name}{tag}", "master", "br0")
            if name != "hub":
                lan = {"a": "192.168.1", "b": "192.168.2"}[name]
                veth_pair(wan_ns, f"wnl{name}{tag}", f"{lan}.1/24", host, f"wnc{name}{tag}",
                          f"{lan}.2/24")
                host.run("ip", "route", "add", "default", "via", f"{lan}.1")
                nat_router(wan_ns, wan, fully_random[0 if name == "a" else 1])
            spaces[name] = (host, wan_ns)

        result = subprocess.run(
            [sys.executable, "-m", "wgpy.cli.main", "mesh", "-o", files, "--hub", "hub",
             "--punch", "--keepalive", "5", f"hub={WAN['hub']}:51820", "a", "b"],
            capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        nodes = {}
        for name, kind in (("hub", "wgpyd"), ("a", kinds[0]), ("b", kinds[1])):
            iface = f"wn{name}{tag}"
            config = os.path.join(files, f"{iface}.conf")
            os.rename(os.path.join(files, f"{name}.conf"), config)
            nodes[name] = Node(name, spaces[name][0], iface, config, kind)
        for node in nodes.values():
            enter(up_file(node.ns, node.iface, node.implementation, node.config, env=env))
        hub = nodes["hub"]
        hub.ns.run("nft", "-f", "-", input=(
            "table inet relay {\n chain forward {\n  type filter hook forward priority 0;\n"
            f'  iifname "{hub.iface}" oifname "{hub.iface}" counter\n }}\n}}\n'))
        enter(_process(hub.ns, [sys.executable, "-m", "wgpy.cli.main", "serve", "--listen",
                                f"{TUNNEL['hub']}:9586", hub.iface], env,
                       os.path.join(logs, "serve")))
        _wait_for_port(hub.ns, TUNNEL["hub"], 9586)
        lab = Lab(hub, nodes["a"], nodes["b"], {n: spaces[n][1] for n in ("a", "b")}, env,
                  logs, {})
        # both spokes known to the hub (their keepalives), traffic relayed between them
        for source, target in (("a", "b"), ("b", "a")):
            ping = lab.ping(nodes[source], target)
            assert ping.returncode == 0, ping.stdout + lab.explain()
        lab.start_agents = lambda: [_start_agent(lab, stack, node) for node in (lab.a, lab.b)]
        if start_agents:
            lab.start_agents()
        yield lab


def _start_agent(lab: Lab, stack: contextlib.ExitStack, node: Node) -> None:
    # wgpy-quick remembers the file (PunchHub in it); wg-quick does not: --config
    where = ["--config", node.config] if node.implementation == "wireguard-go" else []
    lab.agents[node.name] = stack.enter_context(_process(
        node.ns, [sys.executable, "-m", "wgpy.cli.main", "punch", node.iface, *where,
                  *PUNCH_TIMERS], lab.env, os.path.join(lab.logs, f"punch-{node.name}")))


def assert_hub_carries_nothing(lab: Lab) -> None:
    before = lab.hub_forwarded()
    for source, target in ((lab.a, "b"), (lab.b, "a")):
        ping = lab.ping(source, target, count=20, size=1000, interval=0.05)
        assert ping.returncode == 0, ping.stdout + lab.explain()
    assert lab.hub_forwarded() == before, lab.explain()  # relayed, it would be 80 more


def test_spokes_behind_nats_go_direct_wgpyd_and_wireguard_go(wireguard_go):
    with two_nats(("wgpyd", "wireguard-go"), (False, False), start_agents=False) as lab:
        # a ping every 50 ms through the move from the hub to the direct path: both sides
        # move at the direct handshake's time + --settle, so (next to) nothing is lost
        ping = lab.a.ns.popen("ping", "-c", "200", "-i", "0.05", "-W", "1", TUNNEL["b"],
                              stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        lab.start_agents()
        lab.wait_direct(timeout=20)
        output, _ = ping.communicate(timeout=30)
        ended = time.time()
        received = int(output.split(" received")[0].rsplit(" ", 1)[1])
        assert received >= 197, output + lab.explain()
        moved = [lab.path(x, y)["path_since"] for x, y in ((lab.a, lab.b), (lab.b, lab.a))]
        assert all(since < ended - 0.5 for since in moved), (moved, ended)  # during the run
        assert_hub_carries_nothing(lab)
        view = lab.a.peers(lab.env)[lab.b.key(lab.env)]
        assert (view["allowed_ips"], view["path"]) == ([f"{TUNNEL['b']}/32"], "direct")
        assert view["path_since"] is not None and view["path_since"] <= time.time()
        text = lab.a.wgpy("show", lab.a.iface, "--paths", env=lab.env).stdout
        # names: the spoke's file for its peers (the hub), the hub's file for the other spoke
        assert "peer b: direct since " in text and "peer hub: direct\n" in text, text
        # agent A stops: its entry goes, everything relayed again, as its file made it
        lab.agents["a"].terminate()
        lab.agents["a"].wait(timeout=10)
        assert list(lab.a.peers(lab.env)) == [lab.hub.key(lab.env)]
        # B still sends direct until its entry hears nothing for --dead-after (4 s)
        lab.wait_ping(lab.a, "b", within=8)
        with open(os.path.join(lab.logs, "punch-a")) as handle:
            log = handle.read()
        assert "peer b: direct handshake: traffic goes direct" in log, log


def test_symmetric_nat_stays_relayed_without_a_gap(wireguard_go):
    with two_nats(("wireguard-go", "wgpyd"), (True, False)) as lab:
        before = lab.hub_forwarded()
        # through the whole first attempt (8 s) and past it
        ping = lab.ping(lab.a, "b", count=60, size=500, interval=0.2)
        assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout
        assert lab.hub_forwarded() - before >= 120, lab.explain()  # all through the hub
        for node, other in ((lab.a, lab.b), (lab.b, lab.a)):
            view = lab.path(node, other)
            assert (view["path"], view["via"]) == ("relayed", lab.hub.key(lab.env)), view
            _, links = load_links_in(lab, node)
            (link,) = links.values()
            assert link.attempts >= 1 and link.path == "relayed"
        # (A runs wireguard-go, brought up by wg-quick, which remembers no file: --config)
        text = lab.a.wgpy("show", lab.a.iface, "--paths", "--config", lab.a.config,
                          env=lab.env).stdout
        assert "peer b: relayed via hub since " in text, text


def load_links_in(lab: Lab, node: Node):
    old = os.environ.get("WGPY_STATE_DIR")
    os.environ["WGPY_STATE_DIR"] = lab.env["WGPY_STATE_DIR"]
    try:
        return load_links(node.iface)
    finally:
        if old is None:
            del os.environ["WGPY_STATE_DIR"]
        else:
            os.environ["WGPY_STATE_DIR"] = old


def test_a_cut_direct_path_falls_back_within_seconds_and_returns(root_netns):
    require(shutil.which("conntrack") is not None, "needs conntrack (apt-get install conntrack)")
    with two_nats(("wgpyd", "wgpyd"), (False, False)) as lab:
        lab.wait_direct(timeout=20)
        # both routers forget every mapping: the next packets each way make new ones (with
        # the same ports), so the direct path carries on by itself within a keepalive
        forwarded = lab.hub_forwarded()
        for router in lab.routers.values():
            router.run("conntrack", "-F", check=False)  # (exit 1 when the table was empty)
        lab.wait_ping(lab.a, "b", within=4)
        assert lab.hub_forwarded() == forwarded
        assert_hub_carries_nothing(lab)
        # the path between the NATs cut at A's router (its mappings flushed too)
        router = lab.routers["a"]
        router.run("nft", "-f", "-", input=(
            "table ip cut {\n chain pre {\n  type filter hook prerouting priority -300;\n"
            f"  ip saddr {WAN['b']} drop\n }}\n chain post {{\n  type filter hook postrouting"
            f" priority 300;\n  ip daddr {WAN['b']} drop\n }}\n}}\n"))
        router.run("conntrack", "-F", check=False)
        lab.wait_ping(lab.a, "b", within=10)
        view = lab.path(lab.a, lab.b)
        assert view["path"] == "relayed", view
        before = lab.hub_forwarded()
        assert lab.ping(lab.a, "b", count=5, size=1000).returncode == 0
        assert lab.hub_forwarded() - before >= 10  # through the hub now
        router.run("nft", "delete", "table", "ip", "cut")
        lab.wait_direct(timeout=30)
        assert_hub_carries_nothing(lab)
