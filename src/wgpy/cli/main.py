"""`wgpy`: a drop-in `wg` (wireguard-tools v1.0.20210914 grammar, output and exit codes).

    wgpy [show [IFACE|all|interfaces] [FIELD]] | showconf IFACE | set IFACE ... |
         setconf|addconf|syncconf IFACE FILE | genkey | genpsk | pubkey

plus `wgpy show IFACE --drops`: the named drop counters only wgpyd keeps. User errors print
one line on stderr and exit 1, as wg does; never a traceback.
"""

import os
import stat
import sys

from wgpy import __version__
from wgpy.cli.show import pretty, show_field
from wgpy.config.model import DeviceConfig, PeerConfig
from wgpy.config.parser import ConfigError, parse_set_arguments, read_config
from wgpy.config.writer import format_showconf
from wgpy.core.crypto import clamp_private_key, public_key
from wgpy.core.keys import KeyFormatError, key_from_base64, key_to_base64
from wgpy.uapi.client import (
    get_device,
    get_extensions,
    list_interfaces,
    set_device,
)

PROG = "wgpy"
FIELDS = ("public-key", "private-key", "listen-port", "fwmark", "peers", "preshared-keys",
          "endpoints", "allowed-ips", "latest-handshakes", "persistent-keepalive",
          "transfer", "dump")

USAGE = f"""Usage: {PROG} <cmd> [<args>]

Available subcommands:
  show: Shows the current configuration and device information
  showconf: Shows the current configuration of a given WireGuard interface, for use with `setconf'
  set: Change the current configuration, add peers, remove peers, or change peers
  setconf: Applies a configuration file to a WireGuard interface
  addconf: Appends a configuration file to a WireGuard interface
  syncconf: Synchronizes a configuration file to a WireGuard interface
  genkey: Generates a new private key and writes it to stdout
  genpsk: Generates a new preshared key and writes it to stdout
  pubkey: Reads a private key from stdin and writes a public key to stdout
You may pass `--help' to any of these subcommands to view usage.
"""


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def cmd_genkey(args: list[str], clamp: bool) -> int:
    if args:
        return fail(f"Usage: {PROG} {'genkey' if clamp else 'genpsk'}")
    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode
        if stat.S_ISREG(mode) and mode & stat.S_IRWXO:
            sys.stderr.write("Warning: writing to world accessible file.\n"
                             "Consider setting the umask to 077 and trying again.\n")
    except (OSError, ValueError):
        pass
    key = os.urandom(32)
    print(key_to_base64(clamp_private_key(key) if clamp else key))
    return 0


def cmd_pubkey(args: list[str]) -> int:
    if args:
        return fail(f"Usage: {PROG} pubkey")
    data = sys.stdin.buffer.read()
    head, tail = data[:44], data[44:]
    if len(head) != 44:
        return fail(f"{PROG}: Key is not the correct length or format")
    if tail.replace(b"\0", b"").strip():
        return fail(f"{PROG}: Trailing characters found after key")
    try:
        private = key_from_base64(head.decode("ascii"))
    except (KeyFormatError, UnicodeError):
        return fail(f"{PROG}: Key is not the correct length or format")
    print(key_to_base64(public_key(private)))
    return 0


def _access_error(exc: OSError) -> int:
    return fail(f"Unable to access interface: {exc.strerror}")


def cmd_show(args: list[str]) -> int:
    drops = "--drops" in args
    args = [a for a in args if a != "--drops"]
    if len(args) > 2:
        return fail(f"Usage: {PROG} show {{ <interface> | all | interfaces }} "
                    f"[{' | '.join(FIELDS)}]")
    if args and args[0] in ("-h", "--help", "help"):
        print(f"Usage: {PROG} show {{ <interface> | all | interfaces }} [{' | '.join(FIELDS)}]")
        return 0
    if args and args[0] == "interfaces":
        if len(args) > 1:
            return fail(f"Usage: {PROG} show {{ <interface> | all | interfaces }}")
        names = list_interfaces()
        if names:
            print(" ".join(names))
        return 0
    field = args[1] if len(args) == 2 else None
    if field is not None and field not in FIELDS:
        return fail(f"Invalid parameter: `{field}'")
    color = _color_enabled()
    if not args or args[0] == "all":
        names = list_interfaces()
        output = []
        for index, name in enumerate(names):
            try:
                device = get_device(name)
            except OSError as exc:
                print(f"Unable to access interface {name}: {exc.strerror}", file=sys.stderr)
                continue
            if field is None:
                output.append(pretty(device, color) + ("\n" if index != len(names) - 1 else ""))
            else:
                output.append(show_field(device, field, with_interface=True))
        sys.stdout.write("".join(output))
        return 0
    try:
        device = get_device(args[0])
    except OSError as exc:
        return _access_error(exc)
    if drops:
        return _show_drops(args[0])
    sys.stdout.write(pretty(device, color) if field is None
                     else show_field(device, field, with_interface=False))
    return 0


def _show_drops(iface: str) -> int:
    counters = {k.removeprefix("wgpy_drop_"): v for k, v in get_extensions(iface).items()
                if k.startswith("wgpy_drop_")}
    if not counters:
        return fail(f"{iface}: the device does not report drop reasons (not wgpyd?)")
    width = max(len(name) for name in counters)
    for name, count in counters.items():
        print(f"{name:<{width}}  {count}")
    return 0


def _color_enabled() -> bool:
    mode = os.environ.get("WG_COLOR_MODE")
    if mode == "always":
        return True
    if mode == "never":
        return False
    return sys.stdout.isatty()


def cmd_showconf(args: list[str]) -> int:
    if len(args) != 1:
        return fail(f"Usage: {PROG} showconf <interface>")
    try:
        device = get_device(args[0])
    except OSError as exc:
        return _access_error(exc)
    sys.stdout.write(format_showconf(device))
    return 0


def cmd_set(args: list[str]) -> int:
    if len(args) < 2:
        return fail(f"Usage: {PROG} set <interface> [listen-port <port>] [fwmark <mark>] "
                    "[private-key <file path>] [peer <base64 public key> [remove] "
                    "[preshared-key <file path>] [endpoint <ip>:<port>] "
                    "[persistent-keepalive <interval seconds>] "
                    "[allowed-ips <ip1>/<cidr1>[,<ip2>/<cidr2>]...] ]...")
    try:
        device = parse_set_arguments(args[1:])
    except ConfigError as exc:
        return fail(str(exc))
    return _apply(args[0], device)


def _apply(iface: str, device: DeviceConfig) -> int:
    try:
        set_device(iface, device)
    except OSError as exc:
        return fail(f"Unable to modify interface: {exc.strerror}")
    return 0


def cmd_setconf(command: str, args: list[str]) -> int:
    if len(args) != 2:
        return fail(f"Usage: {PROG} {command} <interface> <configuration filename>")
    iface, path = args
    try:
        device = read_config(path, append=command == "addconf")
    except ConfigError as exc:
        return fail(str(exc))
    if command == "syncconf":
        try:
            _sync(iface, device)
        except OSError as exc:
            return fail(f"Unable to retrieve current interface configuration: {exc.strerror}")
    return _apply(iface, device)


def _sync(iface: str, device: DeviceConfig) -> None:
    """syncconf: remove runtime peers absent from the file, keep the rest's sessions, and
    clear a preshared key or keepalive the file no longer sets (setconf.c sync_conf)."""
    if not device.peers:
        return
    runtime = get_device(iface)
    if not runtime.peers:
        return
    device.replace_peers = False
    in_file = {peer.public_key: peer for peer in device.peers}
    removals = []
    for running in sorted(runtime.peers, key=lambda p: p.public_key):
        wanted = in_file.get(running.public_key)
        if wanted is None:
            removals.append(running.public_key)
            continue
        if running.preshared_key is not None and wanted.preshared_key is None:
            wanted.preshared_key = bytes(32)
        if running.persistent_keepalive and wanted.persistent_keepalive is None:
            wanted.persistent_keepalive = 0
    for key in removals:  # wg prepends each removal, so the last sorted comes first
        device.peers.insert(0, PeerConfig(public_key=key, remove=True))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if not args:
            return cmd_show([])
        command, rest = args[0], args[1:]
        if command in ("-h", "--help", "help"):
            sys.stdout.write(USAGE)
            return 0
        if command in ("-v", "--version", "version"):
            print(f"wgpy v{__version__} (wireguard-tools compatible)")
            return 0
        handlers = {
            "show": lambda: cmd_show(rest),
            "showconf": lambda: cmd_showconf(rest),
            "set": lambda: cmd_set(rest),
            "setconf": lambda: cmd_setconf("setconf", rest),
            "addconf": lambda: cmd_setconf("addconf", rest),
            "syncconf": lambda: cmd_setconf("syncconf", rest),
            "genkey": lambda: cmd_genkey(rest, clamp=True),
            "genpsk": lambda: cmd_genkey(rest, clamp=False),
            "pubkey": lambda: cmd_pubkey(rest),
        }
        handler = handlers.get(command)
        if handler is None:
            sys.stderr.write(f"Invalid subcommand: `{command}'\n{USAGE}")
            return 1
        return handler()
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
