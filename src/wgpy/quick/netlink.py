"""The `ip` operations wg-quick performs, through netlink (pyroute2) in the current namespace."""

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

FIB_RULE_INVERT = 0x2
RTPROT_BOOT = 3
RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254
_NAMED_TABLES = {"default": 253, "main": 254, "local": 255}


class NetlinkFailure(RuntimeError):
    """A netlink request the kernel refused, with the operation in words."""


@contextmanager
def ipr() -> Iterator[IPRoute]:
    with IPRoute() as route:
        yield route


def _family(prefix: str) -> int:
    return socket.AF_INET6 if ":" in prefix else socket.AF_INET


def link_index(name: str) -> int | None:
    with ipr() as route:
        found = route.link_lookup(ifname=name)
    return found[0] if found else None


def add_wireguard_link(name: str) -> None:
    """`ip link add NAME type wireguard` (fails without the kernel module)."""
    with ipr() as route:
        try:
            route.link("add", ifname=name, kind="wireguard")
        except NetlinkError as exc:
            raise NetlinkFailure(f"ip link add {name} type wireguard: {exc.args[-1]}") from None


def delete_link(name: str) -> None:
    index = link_index(name)
    if index is None:
        return
    with ipr() as route:
        route.link("del", index=index)


def add_address(name: str, address: str) -> None:
    index = link_index(name)
    network = ipaddress.ip_interface(address)
    with ipr() as route:
        try:
            route.addr("add", index=index, address=str(network.ip),
                       prefixlen=network.network.prefixlen, family=_family(address))
        except NetlinkError as exc:
            raise NetlinkFailure(f"ip address add {address} dev {name}: {exc.args[-1]}") \
                from None


def set_mtu_up(name: str, mtu: int) -> None:
    with ipr() as route:
        route.link("set", index=link_index(name), mtu=mtu, state="up")


def link_mtu(index: int) -> int | None:
    with ipr() as route:
        links = route.get_links(index)
    return links[0].get_attr("IFLA_MTU") if links else None


def route_mtu_toward(address: str | None) -> int | None:
    """The MTU `ip route get ADDRESS` (or the default route, for None) would use."""
    with ipr() as route:
        try:
            if address is None:
                found = [r for r in route.get_default_routes(family=socket.AF_INET)
                         if r.get_attr("RTA_OIF")]
            else:
                found = route.route("get", dst=address)
        except NetlinkError:
            return None
    if not found:
        return None
    metrics = found[0].get_attr("RTA_METRICS")
    if metrics is not None and metrics.get_attr("RTAX_MTU"):
        return metrics.get_attr("RTAX_MTU")
    oif = found[0].get_attr("RTA_OIF")
    return link_mtu(oif) if oif else None


def routes_on_link_cover(name: str, prefix: str) -> bool:
    """`ip route show dev NAME match PREFIX` is not empty (main table)."""
    network = ipaddress.ip_network(prefix, strict=False)
    index = link_index(name)
    with ipr() as route:
        for entry in route.get_routes(family=_family(prefix), table=RT_TABLE_MAIN):
            if entry.get_attr("RTA_OIF") != index:
                continue
            destination = entry.get_attr("RTA_DST") or ("::" if network.version == 6
                                                        else "0.0.0.0")
            covering = ipaddress.ip_network(f"{destination}/{entry['dst_len']}", strict=False)
            if covering.version == network.version and network.subnet_of(covering):
                return True
    return False


def add_route(name: str, prefix: str, table: int | None = None) -> None:
    """`ip route add PREFIX dev NAME [table T]`: protocol boot, and for IPv4 without a gateway
    scope link, as iproute2 sets them."""
    network = ipaddress.ip_network(prefix, strict=False)
    with ipr() as route:
        try:
            route.route("add", dst=str(network), oif=link_index(name),
                        table=table or RT_TABLE_MAIN, family=_family(prefix),
                        proto=RTPROT_BOOT, scope=RT_SCOPE_LINK if network.version == 4 else 0)
        except NetlinkError as exc:
            raise NetlinkFailure(f"ip route add {prefix} dev {name}: {exc.args[-1]}") from None


def table_has_routes(table: int) -> bool:
    with ipr() as route:
        return any(route.get_routes(family=family, table=table)
                   for family in (socket.AF_INET, socket.AF_INET6))


def _default_rule_priority(route: IPRoute, family: int) -> int:
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


def resolve_table(name: str) -> int:
    """A routing table number from a number or a name in rt_tables."""
    if name.isdigit():
        return int(name)
    if name in _NAMED_TABLES:
        return _NAMED_TABLES[name]
    for path in ("/etc/iproute2/rt_tables", "/usr/share/iproute2/rt_tables"):
        try:
            with open(path) as handle:
                for line in handle:
                    fields = line.split("#", 1)[0].split()
                    if len(fields) == 2 and fields[1] == name and fields[0].isdigit():
                        return int(fields[0])
        except OSError:
            continue
    raise NetlinkFailure(f"table `{name}' is not a number or a name in rt_tables")


def interface_addresses(name: str) -> list[str]:
    """Addresses on the interface as CIDR text, in kernel order (for `save`)."""
    index = link_index(name)
    with ipr() as route:
        return [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                for a in route.get_addr(index=index)]
