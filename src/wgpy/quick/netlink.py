"""The `ip` operations wg-quick performs, through netlink (pyroute2) in the current namespace.

pyroute2 is imported on first use: importing it costs ~0.1 s, most of `wgpy-quick down`
(which finds the link by name and deletes it with `ip link delete`, as wg-quick does, and
needs pyroute2 only for the rules of a default route)."""

import ipaddress
import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyroute2 import IPRoute

FIB_RULE_INVERT = 0x2
RT_TABLE_MAIN = 254


class NetlinkFailure(RuntimeError):
    """A netlink request the kernel refused, with the operation in words."""


@contextmanager
def ipr() -> Iterator["IPRoute"]:
    from pyroute2 import IPRoute

    with IPRoute() as route:
        yield route


def _family(prefix: str) -> int:
    return socket.AF_INET6 if ":" in prefix else socket.AF_INET


def link_index(name: str) -> int | None:
    """The link's index in this namespace, None if there is none by that name."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def add_wireguard_link(name: str) -> None:
    """`ip link add NAME type wireguard` (fails without the kernel module)."""
    from pyroute2.netlink.exceptions import NetlinkError

    with ipr() as route:
        try:
            route.link("add", ifname=name, kind="wireguard")
        except NetlinkError as exc:
            raise NetlinkFailure(f"ip link add {name} type wireguard: {exc.args[-1]}") from None


def delete_link(name: str) -> None:
    """`ip link delete dev NAME`, if there is such a link."""
    if link_index(name) is None:
        return
    try:
        result = subprocess.run(["ip", "link", "delete", "dev", name], capture_output=True,
                                text=True, check=False)
    except OSError as exc:
        raise NetlinkFailure(f"cannot run `ip link delete' (iproute2): {exc.strerror}") \
            from None
    if result.returncode != 0 and link_index(name) is not None:
        raise NetlinkFailure(f"ip link delete dev {name}: {result.stderr.strip()}")


def add_address(name: str, address: str) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    index = link_index(name)
    try:
        network = ipaddress.ip_interface(address)
    except ValueError:  # as `ip` refuses it: wg-quick stops there and takes the link down
        raise NetlinkFailure(f"ip address add {address} dev {name}: "
                             "any valid prefix is expected") from None
    with ipr() as route:
        try:
            route.addr("add", index=index, address=str(network.ip),
                       prefixlen=network.network.prefixlen, family=_family(address))
        except NetlinkError as exc:
            raise NetlinkFailure(f"ip address add {address} dev {name}: {exc.args[-1]}") \
                from None


def set_mtu_up(name: str, mtu: int) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    with ipr() as route:
        try:
            route.link("set", index=link_index(name), mtu=mtu, state="up")
        except NetlinkError as exc:  # an MTU the kernel refuses, as `ip link set mtu` reports
            raise NetlinkFailure(f"ip link set mtu {mtu} up dev {name}: {exc.args[-1]}") \
                from None


def link_mtu(index: int) -> int | None:
    with ipr() as route:
        links = route.get_links(index)
    return links[0].get_attr("IFLA_MTU") if links else None


def default_route_mtu() -> int | None:
    """The MTU of IPv4's default route (its `mtu`, else its device's), as `ip route show
    default` gives it to wg-quick when no endpoint is routable."""
    with ipr() as route:
        found = [r for r in route.get_default_routes(family=socket.AF_INET)
                 if r.get_attr("RTA_OIF")]
    if not found:
        return None
    metrics = found[0].get_attr("RTA_METRICS")
    if metrics is not None and metrics.get_attr("RTAX_MTU"):
        return metrics.get_attr("RTAX_MTU")
    return link_mtu(found[0].get_attr("RTA_OIF"))


_ROUTE_MTU = re.compile(r"\bmtu (\d+)")
_ROUTE_DEV = re.compile(r"\bdev (\S+)")


def largest_route_mtu(addresses: list[str]) -> int:
    """The largest MTU `ip route get ADDRESS` gives over all the addresses (0 if none has a
    route), read as wg-quick reads it: the route's `mtu`, else its device's MTU.

    One `ip -o -force -batch -` answers them all: a hub has an endpoint per peer, and a
    netlink round trip decoded by pyroute2 costs about 0.25 ms where a batch line costs about
    0.01 ms. Unroutable addresses print nothing on stdout and are skipped, as in wg-quick.
    """
    unique = list(dict.fromkeys(addresses))
    if not unique:
        return 0
    output = ip_batch([f"route get {address}" for address in unique], force=True).stdout
    best = 0
    link_mtus: dict[str, int | None] = {}
    for line in output.splitlines():
        found = _ROUTE_MTU.search(line)
        if found:
            mtu: int | None = int(found.group(1))
        elif (device := _ROUTE_DEV.search(line)) is not None:
            name = device.group(1)
            if name not in link_mtus:
                index = link_index(name)
                link_mtus[name] = link_mtu(index) if index is not None else None
            mtu = link_mtus[name]
        else:
            continue
        if mtu and mtu > best:
            best = mtu
    return best


class LinkRoutes:
    """Answers `ip route show dev NAME match PREFIX` (is any route of the link in the main
    table equal to or wider than PREFIX?) for many prefixes from one read of the table.

    wg-quick asks the kernel once per AllowedIPs entry; doing that here (a dump decoded by
    pyroute2 per entry) made `up` quadratic in the number of peers. The routes the caller
    adds afterwards are recorded with `added`, so the answers stay what the kernel would give.
    """

    def __init__(self, name: str) -> None:
        index = link_index(name)
        self._networks: set[tuple[int, int, int]] = set()  # (version, prefix length, network)
        self._lengths: dict[int, set[int]] = {4: set(), 6: set()}
        with ipr() as route:
            for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
                for entry in route.get_routes(family=family, table=RT_TABLE_MAIN):
                    if entry.get_attr("RTA_OIF") != index:
                        continue
                    destination = entry.get_attr("RTA_DST") or ("::" if version == 6
                                                                else "0.0.0.0")
                    self.added(f"{destination}/{entry['dst_len']}")

    def added(self, prefix: str) -> None:
        network = ipaddress.ip_network(prefix, strict=False)
        self._networks.add((network.version, network.prefixlen,
                            int(network.network_address)))
        self._lengths[network.version].add(network.prefixlen)

    def cover(self, prefix: str) -> bool:
        network = ipaddress.ip_network(prefix, strict=False)
        address, bits = int(network.network_address), network.max_prefixlen
        for length in self._lengths[network.version]:
            if length <= network.prefixlen:
                mask = ((1 << length) - 1) << (bits - length)
                if (network.version, length, address & mask) in self._networks:
                    return True
        return False


def ip_batch(commands: list[str], force: bool = False) -> subprocess.CompletedProcess:
    """Run `ip [-o] [-force] -batch -` on the commands; without `force` ip stops at the first
    that fails. Raises NetlinkFailure when `ip` cannot be run."""
    argv = ["ip", "-o", *(["-force"] if force else []), "-batch", "-"]
    try:
        return subprocess.run(argv, input="".join(f"{c}\n" for c in commands), text=True,
                              capture_output=True, check=False)
    except OSError as exc:
        raise NetlinkFailure(f"cannot run `ip -batch' (iproute2): {exc.strerror}") from None


_FAILED_LINE = re.compile(r"Command failed -:(\d+)")


def add_routes(routes: list[tuple[str, str, str | None]],
               announce: Callable[[str], None]) -> None:
    """`ip -4|-6 route add PREFIX dev NAME [table T]` for each (prefix, name, table), in
    order, through one `ip -batch -` (about 0.01 ms a route against 0.4 ms through pyroute2,
    whose message encoding dominates). The same routes as the separate commands: protocol
    boot, and scope link for IPv4 without a gateway. `announce` gets each command wg-quick
    would print, up to the one that failed, which raises NetlinkFailure with ip's error."""
    commands = [f"route add {prefix} dev {name}" + (f" table {table}" if table else "")
                for prefix, name, table in routes]
    if not commands:
        return
    result = ip_batch(commands)
    failed = _FAILED_LINE.search(result.stderr) if result.returncode else None
    done = int(failed.group(1)) if failed else len(commands)
    for command in commands[:done]:
        announce(f"ip {'-6' if ':' in command.split()[2] else '-4'} {command}")
    if result.returncode:
        detail = [line for line in result.stderr.splitlines()
                  if not line.startswith("Command failed")]
        raise NetlinkFailure(f"{commands[done - 1] if failed else 'ip -batch'}: "
                             f"{detail[-1] if detail else 'failed'}")


def table_has_routes(table: int) -> bool:
    with ipr() as route:
        return any(route.get_routes(family=family, table=table)
                   for family in (socket.AF_INET, socket.AF_INET6))


def _default_rule_priority(route: "IPRoute", family: int) -> int:
    """The priority `ip rule add` without `pref` gets: one below the first non-local rule
    (the kernel's fib_default_rule_pref; pyroute2 would otherwise pick 32000)."""
    priorities = sorted(p for rule in route.get_rules(family=family)
                        if (p := rule.get_attr("FRA_PRIORITY")))
    return priorities[0] - 1 if priorities else 0


def add_fwmark_rules(family: int, table: int) -> None:
    """`ip rule add not fwmark T table T` and `ip rule add table main suppress_prefixlength 0`."""
    with ipr() as route:
        route.rule("add", family=family, table=table, fwmark=table, flags=FIB_RULE_INVERT,
                   priority=_default_rule_priority(route, family))
        route.rule("add", family=family, table=RT_TABLE_MAIN, FRA_SUPPRESS_PREFIXLEN=0,
                   priority=_default_rule_priority(route, family))


def delete_fwmark_rules(table: int) -> None:
    """Remove every rule wg-quick added for `table` (both families)."""
    with ipr() as route:
        for family in (socket.AF_INET, socket.AF_INET6):
            for rule in route.get_rules(family=family):
                lookup = rule.get_attr("FRA_TABLE") or rule["table"]
                suppress = rule.get_attr("FRA_SUPPRESS_PREFIXLEN")
                if lookup == table or (lookup == RT_TABLE_MAIN and suppress == 0):
                    route.rule("del", family=family, priority=rule.get_attr("FRA_PRIORITY"),
                               table=lookup)


def interface_addresses(name: str) -> list[str]:
    """Addresses on the interface as CIDR text, in kernel order (for `save`)."""
    index = link_index(name)
    with ipr() as route:
        return [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                for a in route.get_addr(index=index)]
