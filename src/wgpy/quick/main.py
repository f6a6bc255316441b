"""`wgpy-quick up|down|strip|save CONFIG_FILE|INTERFACE`: wg-quick's Linux semantics in Python.

It follows wireguard-tools' wg-quick/linux.bash step by step (and prints the same `[#]` lines),
but talks netlink through pyroute2 instead of running `ip`. Where no kernel WireGuard exists it
starts the userspace implementation: $WG_QUICK_USERSPACE_IMPLEMENTATION, else `wgpyd`.
`down` undoes what `up` did, recomputed from the config and the device like wg-quick does.
"""

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field

from wgpy.config.model import DeviceConfig
from wgpy.config.names import forget_config_file, remember_config_file
from wgpy.config.parser import ConfigError, bash_words, parse_config, quick_lines
from wgpy.config.values import MAX_MTU, decimal, unsigned
from wgpy.config.writer import format_showconf
from wgpy.quick import netlink, units
from wgpy.uapi.client import UapiClientError, get_device, list_interfaces, set_device

PROG = "wgpy-quick"
_NAME = re.compile(r"[a-zA-Z0-9_=+.-]{1,15}\Z")
_FILE = re.compile(r"(^|/)([a-zA-Z0-9_=+.-]{1,15})\.conf\Z")
_ROUTABLE_HOST = re.compile(r"[a-z0-9:.]+\Z")
_HOOKS = ("preup", "postup", "predown", "postdown")


class QuickError(Exception):
    """Stops the command with one line on stderr and exit status 1."""


@dataclass
class Options:
    config_file: str
    interface: str
    wg_config: str = field(default="", repr=False)  # holds the PrivateKey line
    addresses: list[str] = field(default_factory=list)
    mtu: str | None = None  # as written; `up` refuses one that is not a number
    mtu_line: int = 0  # where MTU was written, so `up` can point at it
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    table: str | None = None
    hooks: dict[str, list[str]] = field(default_factory=lambda: {h: [] for h in _HOOKS})
    save_config: bool = False


def say(command: str) -> None:
    print(f"[#] {command}", file=sys.stderr, flush=True)


def parse_options(argument: str) -> Options:
    """wg-quick's parse_options: locate the file, split wg-quick keys from the wg config."""
    path = f"/etc/wireguard/{argument}.conf" if _NAME.match(argument) else argument
    if not os.path.exists(path):
        raise QuickError(f"`{path}' does not exist")
    match = _FILE.search(path)
    if not match:
        raise QuickError("The config file must be a valid interface name, followed by .conf")
    path = os.path.realpath(path)
    try:
        if (os.stat(path).st_mode & os.stat(os.path.dirname(path)).st_mode & 0o007) != 0:
            print(f"Warning: `{path}' is world accessible", file=sys.stderr)
        with open(path, "rb") as handle:  # bytes that are not UTF-8 pass through, as in bash
            text = handle.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise QuickError(f"`{path}': {exc.strerror}") from None
    options = Options(path, match.group(2))
    wg_lines = []  # joined once at the end: appending to a str would copy it every line
    for line in quick_lines(text):
        if line.key is None:
            wg_lines.append(line.read + "\n")
            continue
        name, value = line.key.lower(), line.value
        if name == "address":
            options.addresses += bash_words(value)
        elif name == "mtu":
            options.mtu = value  # judged by `up` only, as wg-quick's `ip link set mtu`
            options.mtu_line = line.number
        elif name == "dns":
            for item in bash_words(value):
                is_address = re.fullmatch(r"[0-9.]+", item) or ":" in item
                (options.dns if is_address else options.dns_search).append(item)
        elif name == "table":
            options.table = value
        elif name == "saveconfig":  # read_bool, in parse_options: even strip fails here
            if value.lower() not in ("true", "false") or not value.isascii():
                raise QuickError(f"`{value}' is neither true nor false")
            options.save_config = value.lower() == "true"
        else:
            options.hooks[name].append(value)
    options.wg_config = "".join(wg_lines)
    return options


def execute_hooks(options: Options, which: str) -> None:
    for hook in options.hooks[which]:
        hook = hook.replace("%i", options.interface)
        say(hook)
        result = subprocess.run(["bash", "-c", hook])
        if result.returncode != 0:
            raise QuickError(f"hook `{hook}' failed with status {result.returncode}")


def _wg_device(options: Options):
    try:
        return parse_config(options.wg_config, filename=options.config_file)
    except ConfigError as exc:
        raise QuickError(str(exc)) from None


def add_interface(options: Options) -> None:
    name = options.interface
    say(f"ip link add {name} type wireguard")
    try:
        netlink.add_wireguard_link(name)
        return
    except netlink.NetlinkFailure as failure:
        userspace = os.environ.get("WG_QUICK_USERSPACE_IMPLEMENTATION", "wgpyd")
        if os.path.exists("/sys/module/wireguard"):
            raise QuickError(str(failure)) from None
    print("[!] Missing WireGuard kernel module. Falling back to slow userspace implementation.",
          file=sys.stderr)
    say(f"{userspace} {name}")
    command = [userspace, name]
    if userspace == "wgpyd" and shutil.which("wgpyd") is None:
        command = [sys.executable, "-m", "wgpy.daemon", name]
    if subprocess.run(command).returncode != 0:
        raise QuickError(f"`{userspace} {name}' failed")


def set_mtu_up(options: Options, endpoints: list[str]) -> None:
    name = options.interface
    if options.mtu is not None:
        mtu = decimal(options.mtu)  # checked by cmd_up
    else:
        # wg-quick skips endpoints its regex does not take (scoped IPv6 ones)
        best = netlink.largest_route_mtu([h for h in endpoints if _ROUTABLE_HOST.match(h)])
        if best == 0:
            best = netlink.default_route_mtu() or 0
        mtu = (best or 1500) - 80
    say(f"ip link set mtu {mtu} up dev {name}")
    netlink.set_mtu_up(name, mtu)


def set_dns(options: Options) -> None:
    if not options.dns:
        return
    if shutil.which("resolvconf") is None:
        raise QuickError("DNS is set but `resolvconf' is not installed: cannot configure DNS")
    text = "".join(f"nameserver {server}\n" for server in options.dns)
    if options.dns_search:
        text += f"search {' '.join(options.dns_search)}\n"
    say(f"resolvconf -a tun.{options.interface} -m 0 -x")
    subprocess.run(["resolvconf", "-a", f"tun.{options.interface}", "-m", "0", "-x"],
                   input=text, text=True, check=False)


def unset_dns(options: Options) -> None:
    if options.dns and shutil.which("resolvconf"):
        say(f"resolvconf -d tun.{options.interface} -f")
        subprocess.run(["resolvconf", "-d", f"tun.{options.interface}", "-f"], check=False)


def current_fwmark(name: str) -> int:
    return get_device(name).fwmark or 0


def add_default(options: Options, prefix: str) -> None:
    """A default route through the tunnel without routing the tunnel's own packets into it."""
    name = options.interface
    table = current_fwmark(name)
    if not table:
        table = 51820
        while netlink.table_has_routes(table):
            table += 1
        say(f"wg set {name} fwmark {table}")
        set_device(name, DeviceConfig(fwmark=table))
    six = ":" in prefix
    family, proto, pf = ((socket.AF_INET6, "-6", "ip6") if six else (socket.AF_INET, "-4", "ip"))
    netlink.add_routes([(prefix, name, str(table))], say)
    say(f"ip {proto} rule add not fwmark {table} table {table}")
    say(f"ip {proto} rule add table main suppress_prefixlength 0")
    netlink.add_fwmark_rules(family, table)
    nft = [f"add table {pf} wg-quick-{name}",
           f"add chain {pf} wg-quick-{name} preraw "
           "{ type filter hook prerouting priority -300; }",
           f"add chain {pf} wg-quick-{name} premangle "
           "{ type filter hook prerouting priority -150; }",
           f"add chain {pf} wg-quick-{name} postmangle "
           "{ type filter hook postrouting priority -150; }"]
    for address in netlink.interface_addresses(name):
        if (":" in address) == six:
            nft.append(f'add rule {pf} wg-quick-{name} preraw iifname != "{name}" {pf} daddr '
                       f"{address.split('/')[0]} fib saddr type != local drop")
    nft.append(f"add rule {pf} wg-quick-{name} postmangle meta l4proto udp mark {table} "
               "ct mark set mark ")
    nft.append(f"add rule {pf} wg-quick-{name} premangle meta l4proto udp meta mark set ct mark ")
    if not six:
        say("sysctl -q net.ipv4.conf.all.src_valid_mark=1")
        with open("/proc/sys/net/ipv4/conf/all/src_valid_mark", "w") as handle:
            handle.write("1")
    if shutil.which("nft"):
        say("nft -f /dev/fd/63")
        subprocess.run(["nft", "-f", "-"], input="\n".join(nft) + "\n", text=True, check=False)


def add_routes(options: Options, prefixes: list[str]) -> None:
    """wg-quick's add_route for each prefix, in its order (most specific first, so the
    default routes come last): into `Table` as given; else a default route through
    add_default and any other prefix unless a route of the link already covers it. The link's
    routes are read once and the new ones installed in one batch, so this stays linear in the
    number of prefixes."""
    name, table = options.interface, options.table
    if table == "off" or not prefixes:
        return
    if table and table != "auto":
        netlink.add_routes([(prefix, name, table) for prefix in prefixes], say)
        return
    link = netlink.LinkRoutes(name)
    batch: list[tuple[str, str, str | None]] = []
    for prefix in prefixes:
        if not prefix.endswith("/0") and not link.cover(prefix):
            batch.append((prefix, name, None))
            link.added(prefix)
    netlink.add_routes(batch, say)
    for prefix in prefixes:
        if prefix.endswith("/0"):
            add_default(options, prefix)


def remove_firewall(name: str) -> None:
    if not shutil.which("nft"):
        return
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    commands = [f"delete {line.strip()}" for line in tables.splitlines()
                if line.strip().endswith(f" wg-quick-{name}")]
    if commands:
        say("nft -f /dev/fd/63")
        subprocess.run(["nft", "-f", "-"], input="\n".join(commands) + "\n", text=True,
                       check=False)


def delete_interface(options: Options) -> None:
    name = options.interface
    if options.table in (None, "auto"):
        device = None
        with contextlib.suppress(OSError):
            device = get_device(name)
        if device and device.fwmark and any(
                a.cidr == 0 for p in device.peers for a in p.allowed_ips):
            netlink.delete_fwmark_rules(device.fwmark)
    say(f"ip link delete dev {name}")
    netlink.delete_link(name)


def cmd_up(options: Options) -> None:
    name = options.interface
    if netlink.link_index(name) is not None:
        raise QuickError(f"`{name}' already exists")
    if options.mtu is not None and unsigned(options.mtu, MAX_MTU) is None:
        # wg-quick finds out from `ip link set mtu` after creating the link, then removes it;
        # ASCII digits that fit IFLA_MTU's 32 bits (int() takes fullwidth digits, chokes on 5,000)
        raise QuickError(f"{options.config_file}:{options.mtu_line}: MTU: "
                         f"`{options.mtu}' is not a number")
    device = _wg_device(options)
    execute_hooks(options, "preup")
    add_interface(options)
    try:
        say(f"wg setconf {name} /dev/fd/63")
        set_device(name, device)
        for address in options.addresses:
            say(f"ip {'-6' if ':' in address else '-4'} address add {address} dev {name}")
            netlink.add_address(name, address)
        set_mtu_up(options, [p.endpoint.host for p in device.peers if p.endpoint])
        set_dns(options)
        prefixes = [str(a) for p in get_device(name).peers for a in p.allowed_ips]
        # wg-quick: `sort -nr -k 2 -t /`, ties broken by the whole line, reversed
        order = sorted(prefixes, key=lambda p: (int(p.split("/")[1]), p.encode()), reverse=True)
        add_routes(options, order)
        execute_hooks(options, "postup")
        remember_config_file(name, options.config_file)  # for peer names in show --json
    except BaseException:
        unset_dns(options)
        remove_firewall(name)
        netlink.delete_link(name)
        raise


def cmd_down(options: Options) -> None:
    name = options.interface
    if name not in list_interfaces():
        raise QuickError(f"`{name}' is not a WireGuard interface")
    execute_hooks(options, "predown")
    if options.save_config:
        save_config(options)
    delete_interface(options)
    forget_config_file(name)
    unset_dns(options)
    remove_firewall(name)
    execute_hooks(options, "postdown")


def save_config(options: Options) -> None:
    name = options.interface
    header = "[Interface]\n" + "".join(f"Address = {a}\n"
                                       for a in netlink.interface_addresses(name))
    if options.mtu is not None:
        index = netlink.link_index(name)
        header += f"MTU = {netlink.link_mtu(index) if index else options.mtu}\n"
    for server in options.dns:
        header += f"DNS = {server}\n"
    if options.table is not None:
        header += f"Table = {options.table}\n"
    if options.save_config:
        header += "SaveConfig = true\n"
    for key, label in (("preup", "PreUp"), ("postup", "PostUp"), ("predown", "PreDown"),
                       ("postdown", "PostDown")):
        header += "".join(f"{label} = {hook}\n" for hook in options.hooks[key])
    current = format_showconf(get_device(name))
    text = current.replace("[Interface]\n", header, 1)
    temporary = options.config_file + ".tmp"
    old = os.umask(0o077)
    try:
        with open(temporary, "w") as handle:
            handle.write(text + "\n")
        os.replace(temporary, options.config_file)
    finally:
        os.umask(old)


USAGE = f"""Usage: {PROG} [ up | down | save | strip ] [ CONFIG_FILE | INTERFACE ]
       {PROG} install-units [ DIRECTORY ]

  CONFIG_FILE is a configuration file, whose filename is the interface name
  followed by `.conf'. Otherwise, INTERFACE is an interface name, with
  configuration found at /etc/wireguard/INTERFACE.conf. It is to be readable
  by wg(8)'s `setconf' sub-command, with the exception of the following additions
  to the [Interface] section, which are handled by {PROG}:

  - Address: may be specified one or more times and contains one or more
    IP addresses (with an optional CIDR mask) to be set for the interface.
  - DNS: an optional DNS server to use while the device is up.
  - MTU: an optional MTU for the interface; if unspecified, auto-calculated.
  - Table: an optional routing table to which routes will be added; if
    unspecified or `auto', the default table is used. If `off', no routes
    are added.
  - PreUp, PostUp, PreDown, PostDown: script snippets which will be executed
    by bash(1) at the corresponding phases of the link, most commonly used
    to configure DNS. The string `%i' is expanded to INTERFACE.
  - SaveConfig: if set to `true', the configuration is saved from the current
    state of the interface upon shutdown.

  install-units writes wgpy-quick@.service and wgpyd@.service (systemd) into
  DIRECTORY, {units.DEFAULT_UNIT_DIR} by default; then for example
  `systemctl enable --now wgpy-quick@wg0'.
"""


def _install_units(directory: str) -> int:
    try:
        for path in units.install_units(directory):
            print(f"[#] wrote {path}", file=sys.stderr)
    except OSError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 1 and args[0] in ("--help", "-h", "help"):
        sys.stdout.write(USAGE)
        return 0
    if args and args[0] == "install-units" and len(args) <= 2:
        return _install_units(args[1] if len(args) == 2 else units.DEFAULT_UNIT_DIR)
    if len(args) != 2 or args[0] not in ("up", "down", "save", "strip"):
        sys.stderr.write(USAGE)
        return 1
    command, target = args
    try:
        if command != "strip" and os.geteuid() != 0:
            raise QuickError(f"{PROG} must be run as root")
        options = parse_options(target)
        if command == "strip":  # byte for byte what the file held (surrogate-escaped)
            sys.stdout.flush()
            sys.stdout.buffer.write((options.wg_config + "\n").encode("utf-8", "surrogateescape"))
            sys.stdout.buffer.flush()
        elif command == "up":
            cmd_up(options)
        elif command == "down":
            cmd_down(options)
        else:
            if options.interface not in list_interfaces():
                raise QuickError(f"`{options.interface}' is not a WireGuard interface")
            save_config(options)
    except (QuickError, netlink.NetlinkFailure, UapiClientError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

