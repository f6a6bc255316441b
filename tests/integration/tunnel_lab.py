"""Two hosts in namespaces, each running wgpyd or wireguard-go, configured with the real `wg`.

Underlay: a veth pair with IPv4 192.168.N.x/24 and IPv6 fd00:N::x/64. Tunnel: 10.N.0.x/24 and
fd10:N::x/64 on the WireGuard interfaces. Host 1 is "a", host 2 is "b".

Narrow paths (`underlay_mtu`): either the A-B link itself is that narrow ("local": both
hosts know the MTU from their own link), or (`routed=True`) A and B talk through a router R
whose link towards B is the narrow one, so A learns the path MTU only from R's ICMP
frag-needed / Packet Too Big. Routed, the hosts keep their addresses: each reaches the other
by a host route via R (192.168.N.254 and .253, fd00:N::fe and ::fd).
"""

import contextlib
import functools
import itertools
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64
from wgpy.uapi.client import get_drops

from netlab import Namespace, start_wgpyd, start_wireguard_go, veth_pair

_counter = itertools.count(1)


@dataclass
class Host:
    ns: Namespace
    iface: str
    veth: str
    kind: str
    index: int
    net: int
    private_key: str
    public_key: str
    port: int

    @property
    def underlay4(self) -> str:
        return f"192.168.{self.net}.{self.index}"

    @property
    def underlay6(self) -> str:
        return f"fd00:{self.net}::{self.index}"

    @property
    def tunnel4(self) -> str:
        return f"10.{self.net}.0.{self.index}"

    @property
    def tunnel6(self) -> str:
        return f"fd10:{self.net}::{self.index}"

    def wg(self, *args: str, check: bool = True):
        return self.ns.run("wg", *args, check=check)

    def drops(self) -> dict[str, int]:
        """The named drop counters wgpyd reports over UAPI."""
        return get_drops(self.iface)

    def peer_field(self, field: str) -> str:
        """One column of `wg show IFACE FIELD` for the (single) peer."""
        line = self.wg("show", self.iface, field).stdout.strip().splitlines()[0]
        return line.split("\t", 1)[1]


@dataclass
class Lab:
    a: Host
    b: Host
    router: Namespace | None = None
    # both ends of the link that is narrow (underlay_mtu): A-B, or R-B when routed
    narrow_link: tuple[tuple[Namespace, str], ...] = ()

    def set_path_mtu(self, mtu: int) -> None:
        """Set the narrow link's MTU at both ends: the path narrows (or widens) under
        whatever is running."""
        assert self.narrow_link, "the lab was built without underlay_mtu"
        for ns, link in self.narrow_link:
            ns.run("ip", "link", "set", link, "mtu", str(mtu))

    def ping(self, source: Host, destination: str, count: int = 3, check: bool = True):
        return source.ns.run("ping", "-c", str(count), "-i", "0.2", "-W", "2", destination,
                             check=check, timeout=30)


def _key_file(directory: str, name: str, key: str) -> str:
    path = os.path.join(directory, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        handle.write(key + "\n")
    return path


@contextlib.contextmanager
def tunnel_lab(kind_a: str, kind_b: str, *, endpoint_on_a: str = "4",
               endpoint_on_b: str | None = None, configure: bool = True,
               underlay_mtu: int | None = None, routed: bool = False) -> Iterator[Lab]:
    """Build the lab; `endpoint_on_a` says which underlay family A uses to reach B (4, 6, or
    "mapped": IPv4 given as `[::ffff:a.b.c.d]`);
    B learns A's endpoint by roaming unless `endpoint_on_b` is given. `underlay_mtu`: the
    path is that narrow, on the A-B link or (`routed`) behind a router (module docstring)."""
    n = next(_counter)
    net = 100 + (os.getpid() + n) % 100
    tag = f"{os.getpid() % 10000}{n}"
    starters = {
        "wgpyd": start_wgpyd,
        "wgpyd-no-offload": functools.partial(start_wgpyd, env={"WGPY_OFFLOAD": "0"}),
        "wireguard-go": start_wireguard_go,
    }
    with (
        Namespace(f"wgpyt-a{tag}") as ns_a,
        Namespace(f"wgpyt-b{tag}") as ns_b,
        Namespace(f"wgpyt-r{tag}") if routed else contextlib.nullcontext() as router,
        tempfile.TemporaryDirectory() as keys,
    ):
        address_a = [f"192.168.{net}.1/24", f"fd00:{net}::1/64"]
        address_b = [f"192.168.{net}.2/24", f"fd00:{net}::2/64"]
        if router is None:
            veth_pair(ns_a, f"va{tag}", address_a, ns_b, f"vb{tag}", address_b)
            narrow_link = ((ns_a, f"va{tag}"), (ns_b, f"vb{tag}"))
        else:
            _route_through(router, ns_a, f"va{tag}", address_a, ns_b, f"vb{tag}", address_b,
                           tag, net)
            narrow_link = ((router, f"rb{tag}"), (ns_b, f"vb{tag}"))
        hosts = []
        for index, (ns, kind, letter) in enumerate(((ns_a, kind_a, "a"), (ns_b, kind_b, "b")), 1):
            key = generate_private_key(os.urandom)
            hosts.append(Host(ns, f"wt{letter}{tag}", f"v{letter}{tag}", kind, index, net,
                              key_to_base64(key), key_to_base64(public_key(key)),
                              51820 + index))
        a, b = hosts
        with starters[kind_a](ns_a, a.iface), starters[kind_b](ns_b, b.iface):
            lab = Lab(a, b, router, narrow_link if underlay_mtu is not None else ())
            if underlay_mtu is not None:
                lab.set_path_mtu(underlay_mtu)
            if configure:
                for host, other, family in ((a, b, endpoint_on_a), (b, a, endpoint_on_b)):
                    args = ["set", host.iface,
                            "private-key", _key_file(keys, host.iface, host.private_key),
                            "listen-port", str(host.port),
                            "peer", other.public_key,
                            "allowed-ips", f"{other.tunnel4}/32,{other.tunnel6}/128"]
                    if family == "4":
                        args += ["endpoint", f"{other.underlay4}:{other.port}"]
                    elif family == "mapped":  # IPv4, written as IPv4-mapped IPv6
                        args += ["endpoint", f"[::ffff:{other.underlay4}]:{other.port}"]
                    elif family == "6":
                        args += ["endpoint", f"[{other.underlay6}]:{other.port}"]
                    host.wg(*args)
                    host.ns.run("ip", "addr", "add", f"{host.tunnel4}/24", "dev", host.iface)
                    host.ns.run("ip", "addr", "add", f"{host.tunnel6}/64", "dev", host.iface,
                                "nodad")
                    host.ns.run("ip", "link", "set", host.iface, "up")
                time.sleep(0.2)  # both daemons notice the link is up and bind their ports
            yield lab


def _route_through(router: Namespace, ns_a: Namespace, veth_a: str, address_a: list[str],
                   ns_b: Namespace, veth_b: str, address_b: list[str], tag: str,
                   net: int) -> None:
    """A — R — B: R forwards between its links ra/rb (a /32 and /128 of the hosts' subnets on
    each, host routes to A and B), A and B reach each other by a host route via R."""
    veth_pair(ns_a, veth_a, address_a, router, f"ra{tag}",
              [f"192.168.{net}.254/32", f"fd00:{net}::fe/128"])
    veth_pair(router, f"rb{tag}", [f"192.168.{net}.253/32", f"fd00:{net}::fd/128"],
              ns_b, veth_b, address_b)
    router.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
               "net.ipv6.conf.all.forwarding=1")
    for index, link in ((1, f"ra{tag}"), (2, f"rb{tag}")):
        router.run("ip", "route", "add", f"192.168.{net}.{index}/32", "dev", link)
        router.run("ip", "-6", "route", "add", f"fd00:{net}::{index}/128", "dev", link)
    for ns, other, gateway in ((ns_a, 2, "fe"), (ns_b, 1, "fd")):
        ns.run("ip", "route", "add", f"192.168.{net}.{other}/32",
               "via", f"192.168.{net}.{int(gateway, 16)}")
        ns.run("ip", "-6", "route", "add", f"fd00:{net}::{other}/128",
               "via", f"fd00:{net}::{gateway}")
