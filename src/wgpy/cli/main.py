"""`wgpy`: a drop-in `wg` (wireguard-tools v1.0.20210914 grammar, output and exit codes).

    wgpy [show [IFACE|all|interfaces] [FIELD]] | showconf IFACE | set IFACE ... |
         setconf|addconf|syncconf IFACE FILE | genkey | genpsk | pubkey

plus `wgpy show IFACE --drops` (the named drop counters only wgpyd keeps), `wgpy route
IFACE|FILE ADDRESS...` (which peer gets a packet, route.py), `wgpy check FILE...` (what in
config files will not work, check.py) and `wgpy mesh NODE...` (wg-quick files for a whole
network, mesh.py). User errors print
on stderr and exit 1, as wg does; never a traceback. Where wg prints a bare C message
("Line unrecognized") wgpy names the file, line and key instead.
"""

import importlib
import io
import os
import stat
import sys
from collections.abc import Callable

from wgpy import __version__
from wgpy.uapi.client import PendingGet, get_drops, list_interfaces

TYPE_CHECKING = False  # typing's flag without importing typing: part of every command's time
if TYPE_CHECKING:
    import logging
    from typing import TextIO

    from wgpy.config.model import DeviceConfig

# Everything else is imported by the command that needs it (in the command, or by HANDLERS
# on first use): the interpreter's start-up and imports are part of every command's time,
# and `wgpy show` on a big device must stay close to `wg show` (bench/scale.py). The show
# commands send their request first and import the formatting while the device answers.

IFNAMSIZ = 16
SUBCOMMANDS = (
    ("show", "Shows the current configuration and device information"),
    ("showconf", "Shows the current configuration of a given WireGuard interface, for use "
                 "with `setconf'"),
    ("set", "Change the current configuration, add peers, remove peers, or change peers"),
    ("setconf", "Applies a configuration file to a WireGuard interface"),
    ("addconf", "Appends a configuration file to a WireGuard interface"),
    ("syncconf", "Synchronizes a configuration file to a WireGuard interface"),
    ("genkey", "Generates a new private key and writes it to stdout"),
    ("genpsk", "Generates a new preshared key and writes it to stdout"),
    ("pubkey", "Reads a private key from stdin and writes a public key to stdout"),
)
# wgpy's own commands, listed by `wgpy help` after wg's (in a block of their own, so that
# wg's part stays byte-identical for whoever reads it)
EXTRAS = (
    ("show <interface> --drops", "Shows why packets were dropped, by named reason (wgpyd only)"),
    ("show [<interface>] --json", "Shows wg show's fields, peer names and drops as JSON"),
    ("show <interface> --paths", "Shows per peer whether traffic goes direct or through the "
                                 "hub, and since when"),
    ("route", "Shows which peer gets a packet for each address, from an interface or a file"),
    ("check", "Reports what in WireGuard configuration files will not work"),
    ("mesh", "Writes a wg-quick configuration file per node of a whole network"),
    ("qr", "Shows a wg-quick file as a QR code for the WireGuard mobile apps"),
    ("reresolve", "Resolves endpoint hostnames again for peers whose handshakes stalled"),
    ("serve", "Serves a live status page, Prometheus /metrics and /json (read-only)"),
    ("punch", "Finds direct paths to other spokes through the hub's `serve` /json"),
)
SET_USAGE = ("<interface> [listen-port <port>] [fwmark <mark>] [private-key <file path>] "
             "[peer <base64 public key> [remove] [preshared-key <file path>] "
             "[endpoint <ip>:<port>] [persistent-keepalive <interval seconds>] "
             "[allowed-ips <ip1>/<cidr1>[,<ip2>/<cidr2>]...] ]...")


def program_name() -> str:
    """argv[0] as wg prints it in usage lines ("wgpy" when run as a module)."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "wgpy" if not name or name.endswith(".py") else name


def usage_text() -> str:
    lines = [f"Usage: {program_name()} <cmd> [<args>]\n", "Available subcommands:"]
    lines += [f"  {name}: {description}" for name, description in SUBCOMMANDS]
    lines.append("You may pass `--help' to any of these subcommands to view usage.")
    return "\n".join(lines) + "\n"


def help_text() -> str:
    """`wgpy help`: wg's usage text unchanged, then wgpy's extras."""
    extras = [f"  {name}: {description}" for name, description in EXTRAS]
    return usage_text() + "\nAdditional subcommands (wgpy only, not in wg):\n" + "\n".join(
        extras) + "\n"


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


# ---------------------------------------------------------------------- keys


def cmd_genkey(command: str, args: list[str]) -> int:
    from wgpy.core.keys import clamp_private_key, key_to_base64

    if args:
        return fail(f"Usage: {program_name()} {command}")
    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode
        if stat.S_ISREG(mode) and mode & stat.S_IRWXO:
            sys.stderr.write("Warning: writing to world accessible file.\n"
                             "Consider setting the umask to 077 and trying again.\n")
    except (OSError, ValueError):
        pass
    key = os.urandom(32)
    print(key_to_base64(clamp_private_key(key) if command == "genkey" else key))
    return 0


def cmd_pubkey(command: str, args: list[str]) -> int:
    """pubkey.c: exactly 44 characters, then only whitespace or NUL bytes."""
    from wgpy.config.values import ConfigError, parse_key
    from wgpy.core.crypto import public_key
    from wgpy.core.keys import key_to_base64

    if args:
        return fail(f"Usage: {program_name()} {command}")
    data = sys.stdin.buffer.read()
    head, tail = data[:44], data[44:]
    if len(head) != 44:
        return fail(f"{program_name()}: Key is not the correct length or format")
    if tail.replace(b"\0", b"").strip(b" \t\n\v\f\r"):
        return fail(f"{program_name()}: Trailing characters found after key")
    try:
        private = parse_key(head.split(b"\0", 1)[0].decode("latin-1"))
    except ConfigError:
        return fail(f"{program_name()}: Key is not the correct length or format")
    print(key_to_base64(public_key(private)))
    return 0


# ---------------------------------------------------------------------- show


def _show_usage(command: str) -> None:
    from wgpy.cli.show import FIELDS

    print(f"Usage: {program_name()} {command} {{ <interface> | all | interfaces }} "
          f"[{' | '.join(FIELDS)}]", file=sys.stderr)


def _color_enabled() -> bool:
    mode = os.environ.get("WG_COLOR_MODE")
    if mode == "always":
        return True
    if mode == "never":
        return False
    return sys.stdout.isatty()


def _list() -> list[str] | None:
    try:
        return list_interfaces()
    except OSError as exc:
        fail(f"Unable to list interfaces: {_strerror(exc)}")
        return None


def cmd_show(command: str, args: list[str]) -> int:
    if "--json" in args:
        return cmd_show_json(command, [a for a in args if a != "--json"])
    if "--drops" in args:
        return cmd_show_drops([a for a in args if a != "--drops"])
    if "--paths" in args:
        from wgpy.cli.punch import cmd_show_paths

        _route_config_notices()
        return cmd_show_paths(program_name(), [a for a in args if a != "--paths"])
    if len(args) > 2:
        _show_usage(command)
        return 1
    if not args or args[0] == "all":
        return _show_all(command, args[1] if len(args) == 2 else None)
    if args[0] == "interfaces":
        if len(args) > 1:
            _show_usage(command)
            return 1
        names = _list()
        if names is None:
            return 1
        if names:
            print(" ".join(names))
        return 0
    if len(args) == 1 and args[0] in ("-h", "--help", "help"):
        _show_usage(command)
        return 0
    field = args[1] if len(args) == 2 else None
    try:
        pending = PendingGet(args[0])
        from wgpy.cli import show

        show.prepare(field)
        device = pending.result()
    except OSError as exc:
        return fail(f"Unable to access interface: {_strerror(exc)}")
    if field is None:
        sys.stdout.write(show.pretty(device, _color_enabled()))
        return 0
    if field not in show.FIELDS:
        fail(f"Invalid parameter: `{field}'")
        _show_usage(command)
        return 1
    sys.stdout.write(show.show_field(device, field, with_interface=False))
    return 0


def _show_all(command: str, field: str | None) -> int:
    """show.c: errors on one interface are reported and skipped; the status is 1 only when
    there were interfaces and none could be shown (or the field is invalid)."""
    names = _list()
    if names is None:
        return 1
    from wgpy.cli import show

    status = 1 if names else 0
    for index, name in enumerate(names):
        try:
            device = PendingGet(name).result()
        except OSError as exc:
            print(f"Unable to access interface {name}: {_strerror(exc)}", file=sys.stderr)
            continue
        if field is not None:
            if field not in show.FIELDS:
                fail(f"Invalid parameter: `{field}'")
                _show_usage(command)
                return 1
            sys.stdout.write(show.show_field(device, field, with_interface=True))
        else:
            sys.stdout.write(show.pretty(device, _color_enabled()))
            if index != len(names) - 1:
                sys.stdout.write("\n")
        sys.stdout.flush()
        status = 0
    return status


def cmd_show_json(command: str, args: list[str]) -> int:
    """`wgpy show [IFACE|all|interfaces] --json [--config FILE]`: one JSON document
    (cli/jsonview.py has the schema); peer names from FILE or the file wgpy-quick used."""
    from wgpy.cli import jsonview
    from wgpy.cli.jsontext import dumps_indented

    _route_config_notices()
    config_file = None
    if "--config" in args:
        at = args.index("--config")
        if at + 1 >= len(args):
            return fail(f"Usage: {program_name()} show [<interface>] --json [--config FILE]")
        config_file = args[at + 1]
        del args[at : at + 2]
    if len(args) > 1:
        return fail(f"Usage: {program_name()} show [<interface>] --json [--config FILE]")
    if not args or args[0] in ("all", "interfaces"):
        names = _list()
        if names is None:
            return 1
    else:
        names = [args[0]]
    result, errors = jsonview.collect(names, config_file)
    for error in errors:
        print(error, file=sys.stderr)
    if errors and not result["interfaces"] and len(names) == 1:
        return 1
    print(dumps_indented(result))
    return 0


def cmd_show_drops(args: list[str]) -> int:
    """`wgpy show IFACE --drops`: wgpyd's drop counters (`reason count` per line)."""
    from wgpy.uapi.client import NoDropCountersError

    if len(args) != 1 or args[0] in ("all", "interfaces"):
        return fail(f"Usage: {program_name()} show <interface> --drops")
    try:
        counters = get_drops(args[0])
    except NoDropCountersError:
        print(f"{args[0]}: no drop counters: this device is not wgpyd (only wgpyd counts "
              "dropped packets by reason)", file=sys.stderr)
        return 0
    except OSError as exc:
        return fail(f"Unable to access interface: {_strerror(exc)}")
    width = max((len(name) for name in counters), default=0)
    for name, count in counters.items():
        print(f"{name:<{width}}  {count}")
    return 0


def cmd_showconf(command: str, args: list[str]) -> int:
    if len(args) != 1:
        return fail(f"Usage: {program_name()} {command} <interface>")
    try:
        pending = PendingGet(args[0])
        from wgpy.cli.show import showconf

        device = pending.result()
    except OSError as exc:
        return fail(f"Unable to access interface: {_strerror(exc)}")
    sys.stdout.write(showconf(device))
    return 0


# ---------------------------------------------------------------------- set


def _ifname(text: str) -> str:
    """wg copies the name into a 16-byte buffer: longer names are cut to 15 bytes."""
    return text.encode("utf-8", "surrogateescape")[: IFNAMSIZ - 1].decode(
        "utf-8", "surrogateescape")


def _apply(iface: str, device: "DeviceConfig") -> int:
    from wgpy.uapi.client import set_device

    try:
        set_device(iface, device)
    except OSError as exc:
        return fail(f"Unable to modify interface: {_strerror(exc)}")
    return 0


def cmd_set(command: str, args: list[str]) -> int:
    from wgpy.cli.reresolve import is_hostname_endpoint
    from wgpy.config.names import remember_set_endpoints
    from wgpy.config.parser import parse_set_arguments
    from wgpy.config.values import ConfigError

    _route_config_notices()
    if len(args) < 2:
        return fail(f"Usage: {program_name()} {command} {SET_USAGE}")
    try:
        device = parse_set_arguments(args[1:])
    except ConfigError as exc:
        return fail(str(exc))
    status = _apply(_ifname(args[0]), device)
    if status == 0:  # names for `wgpy reresolve` (the device keeps only addresses)
        remember_set_endpoints(_ifname(args[0]), args[1:], is_hostname_endpoint)
    return status


def cmd_setconf(command: str, args: list[str]) -> int:
    if len(args) != 2:
        return fail(f"Usage: {program_name()} {command} <interface> <configuration filename>")
    iface, path = _ifname(args[0]), args[1]
    # syncconf compares with the device's peers: asked for first, so that the device writes
    # them while the file is read (the file's errors still come first, as wg reports them)
    pending = PendingGet(iface) if command == "syncconf" else None
    try:
        device = _read_config_file(path, append=command == "addconf")
        if pending is not None and device is not None and device.peers:
            from wgpy.cli.sync import add_removals

            try:
                add_removals(device, pending.result())
            except OSError as exc:
                return fail(f"Unable to retrieve current interface configuration: "
                            f"{_strerror(exc)}")
    finally:
        if pending is not None:
            pending.close()  # before the set: the device need not serve two requests at once
    return 1 if device is None else _apply(iface, device)


def _read_config_file(path: str, append: bool) -> "DeviceConfig | None":
    """The file, or None when it is refused (the error printed)."""
    from wgpy.config.parser import read_config
    from wgpy.config.values import ConfigError

    _route_config_notices()
    try:
        return read_config(path, append=append)
    except ConfigError as exc:
        fail(str(exc))
        return None


# ---------------------------------------------------------------------- main

HANDLERS: dict[str, Callable[[str, list[str]], int]] = {
    "show": cmd_show, "showconf": cmd_showconf, "set": cmd_set, "setconf": cmd_setconf,
    "addconf": cmd_setconf, "syncconf": cmd_setconf, "genkey": cmd_genkey,
    "genpsk": cmd_genkey, "pubkey": cmd_pubkey,
}
# wgpy's own, beyond wg (EXTRAS: listed by `wgpy help` after wg's usage text): the module
# whose cmd_<name>(program, args) runs it, imported when the command is asked for
EXTRA_MODULES = {name: f"wgpy.cli.{name}" for name in
                 ("route", "check", "mesh", "qr", "reresolve", "serve", "punch")}


def _extra(name: str, args: list[str]) -> int:
    _route_config_notices()
    command = getattr(importlib.import_module(EXTRA_MODULES[name]), f"cmd_{name}")
    return int(command(program_name(), args))


_notices: "logging.StreamHandler[TextIO] | None" = None


def _route_config_notices() -> None:
    """Warnings from the config parser (host bits set, DNS retries) go to stderr bare, as
    wg prints them (to the current sys.stderr, which callers may have redirected). Called by
    the commands that read configuration: the others do not import logging."""
    global _notices
    import logging

    if _notices is None:
        _notices = logging.StreamHandler()
        _notices.setFormatter(logging.Formatter("%(message)s"))
    _notices.setStream(sys.stderr)
    logger = logging.getLogger("wgpy.config")
    if _notices not in logger.handlers:
        logger.addHandler(_notices)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if isinstance(sys.stdout, io.TextIOWrapper):
        # names from the file system (interfaces) need not be valid UTF-8: print them back
        # byte for byte rather than fail, as wg does
        sys.stdout.reconfigure(errors="surrogateescape")
    try:
        if len(args) == 1 and args[0] in ("-v", "--version", "version"):
            print(f"wgpy v{__version__} (wireguard-tools v1.0.20210914 compatible)")
            return 0
        if len(args) == 1 and args[0] in ("-h", "--help", "help"):
            sys.stdout.write(help_text())
            return 0
        if not args:
            return cmd_show("show", [])
        if args[0] in EXTRA_MODULES:
            return _extra(args[0], args[1:])
        handler = HANDLERS.get(args[0])
        if handler is None:
            sys.stderr.write(f"Invalid subcommand: `{args[0]}'\n{usage_text()}")
            return 1
        return handler(args[0], args[1:])
    except BrokenPipeError:
        # stdout closed early (`wgpy show | head`): end quietly, without the interpreter
        # complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


# the commands that only read a device and print: nothing of theirs is left to finish at exit
_READ_ONLY = ("show", "showconf")


def entry() -> None:
    """The `wgpy` command (its console script). After a read-only command the process ends
    without the interpreter's teardown, which frees the reply of a big device object by
    object: 5-7 ms of a 10,000-peer `wgpy show dump`, for nothing (bench/README "Scale"). Its
    output is flushed first; such a command has no thread, file or atexit work left."""
    status = main()
    if sys.argv[1:2] == [] or sys.argv[1] in _READ_ONLY:
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # as main: a reader gone early ends the command quietly
            status = 1
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    entry()
