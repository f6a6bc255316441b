"""wg and wg-quick configuration files, and `wg set` arguments, with wg's exact rules.

The rules are those of wireguard-tools' config.c: a `#` starts a comment anywhere on a line,
every whitespace character is dropped (so `Allowed IPs = a, b` reads as `AllowedIPs=a,b`),
section and key names are case-insensitive, a key needs a non-empty value, list keys
accumulate, endpoints are resolved when parsed, `off` is accepted for FwMark and
PersistentKeepalive. wg-quick's extra [Interface] keys (Address, DNS, MTU, Table, hooks,
SaveConfig) are accepted only when `quick=True`.

A file is parsed whole before anything is used: any bad line raises ConfigError naming the
file, the line and the key, e.g. `wg0.conf:7: AllowedIPs: '10.0.0.0/33' is not a valid prefix`.
"""

import ipaddress
import os
import socket
import time

from wgpy.config.model import AllowedIP, DeviceConfig, Endpoint, PeerConfig
from wgpy.core.keys import KeyFormatError, key_from_base64

_SPACE = " \t\n\v\f\r"


class ConfigError(ValueError):
    """A configuration error, located as precisely as the input allows."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.message, self.file, self.line, self.key = message, file, line, key
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")


# ---------------------------------------------------------------------- values


def parse_key(value: str) -> bytes:
    try:
        return key_from_base64(value)
    except KeyFormatError:
        raise ConfigError(f"'{value}' is not a valid key (32 bytes, base64)") from None


def parse_key_file(path: str) -> bytes:
    """A key from a file (`wg set ... private-key FILE`); empty file or /dev/null = zero."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from None
    if not data:
        return bytes(32)
    head, tail = data[:44], data[44:]
    if len(head) != 44:
        raise ConfigError(f"{path}: invalid length key in key file")
    if tail.strip(_SPACE.encode()):
        raise ConfigError(f"{path}: found trailing characters in key file")
    return parse_key(head.decode("ascii", errors="replace"))


def parse_port(value: str) -> int:
    if not value:
        raise ConfigError("unable to parse empty port")
    try:
        infos = socket.getaddrinfo(None, value, socket.AF_UNSPEC, socket.SOCK_DGRAM,
                                   socket.IPPROTO_UDP, socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        raise ConfigError(f"'{value}' is not a valid port") from None
    return infos[0][4][1]


def _strtoul(value: str, base: int) -> int | None:
    """C strtoul for a value that must be consumed whole (first character a digit)."""
    if not value or not value[0].isdigit() or not value.isascii():
        return None
    try:
        return int(value, base)
    except ValueError:
        return None


def parse_fwmark(value: str) -> int:
    if value.lower() == "off":
        return 0
    base = 16 if len(value) > 2 and value.startswith("0x") else 10
    number = _strtoul(value, base)
    if number is None or number > 0xFFFFFFFF:
        raise ConfigError(f"'{value}' is neither 0/off nor 0-0xffffffff")
    return number


def parse_persistent_keepalive(value: str) -> int:
    if value.lower() == "off":
        return 0
    number = _strtoul(value, 10)
    if number is None or number > 65535:
        raise ConfigError(f"'{value}' is neither 0/off nor 1-65535")
    return number


def parse_allowed_ips(value: str) -> list[AllowedIP]:
    """A comma list of address[/cidr] (no cidr: /32 or /128); "" is the empty list."""
    result: list[AllowedIP] = []
    if not value:
        return result
    for entry in value.split(","):
        address_text, slash, cidr_text = entry.partition("/")
        try:
            if ":" in address_text:
                address: ipaddress.IPv4Address | ipaddress.IPv6Address = (
                    ipaddress.IPv6Address(address_text))
            else:
                address = ipaddress.IPv4Address(address_text)
        except ValueError:
            raise ConfigError(f"'{entry}' is not a valid IP address") from None
        if "%" in address_text:
            raise ConfigError(f"'{entry}' is not a valid prefix")
        bits = address.max_prefixlen
        if slash:
            cidr = _strtoul(cidr_text, 10)
            if cidr is None or cidr > bits:
                raise ConfigError(f"'{entry}' is not a valid prefix")
        else:
            cidr = bits
        result.append(AllowedIP(address, cidr))
    return result


def _resolution_retries() -> int:
    value = os.environ.get("WG_ENDPOINT_RESOLUTION_RETRIES")
    if value is None:
        return 15
    if value == "infinity":
        return -1
    number = _strtoul(value, 10)
    if number is None:
        raise ConfigError(f"unable to parse WG_ENDPOINT_RESOLUTION_RETRIES: '{value}'")
    return number


def parse_endpoint(value: str) -> Endpoint:
    """host:port or [v6]:port; names resolved now, retrying transient failures as wg does."""
    if not value:
        raise ConfigError("unable to parse empty endpoint")
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket:
            raise ConfigError(f"unable to find matching brace of endpoint '{value}'")
        if not rest.startswith(":") or len(rest) < 2:
            raise ConfigError(f"unable to find port of endpoint '{value}'")
        port = rest[1:]
    else:
        host, colon, port = value.rpartition(":")
        if not colon or not port:
            raise ConfigError(f"unable to find port of endpoint '{value}'")
    retries = _resolution_retries()
    delay = 1.0
    while True:
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM,
                                       socket.IPPROTO_UDP)
            break
        except socket.gaierror as exc:
            permanent = exc.errno in (socket.EAI_NONAME, socket.EAI_FAIL,
                                      getattr(socket, "EAI_NODATA", socket.EAI_NONAME),
                                      socket.EAI_SERVICE)
            if permanent or retries == 0:
                raise ConfigError(f"{exc.strerror}: '{value}'") from None
            retries -= 1
            time.sleep(delay)
            delay = min(20.0, delay * 6 / 5)
        except UnicodeError:
            raise ConfigError(f"'{value}' is not a valid endpoint") from None
    family, _, _, _, address = infos[0]
    if family == socket.AF_INET6:
        numeric_host, _ = socket.getnameinfo(address, socket.NI_NUMERICHOST |
                                             socket.NI_NUMERICSERV)
        return Endpoint(numeric_host, address[1])
    return Endpoint(address[0], address[1])


# ---------------------------------------------------------------------- files

_QUICK_LIST_KEYS = {"address": "addresses", "dns": "dns", "preup": "pre_up",
                    "postup": "post_up", "predown": "pre_down", "postdown": "post_down"}
_QUICK_KEYS = {*_QUICK_LIST_KEYS, "mtu", "table", "saveconfig"}


def _clean(line: str) -> str:
    return "".join(ch for ch in line.split("#", 1)[0] if ch not in _SPACE)


def parse_config(text: str, *, filename: str = "<config>", quick: bool = False,
                 append: bool = False) -> DeviceConfig:
    """Parse a whole file; `append` is addconf (no replace of peers/unset fields)."""
    device = DeviceConfig()
    if not append:
        # setconf sends every interface field: missing ones reset to zero (wg's flags)
        device.replace_peers = True
        device.private_key = bytes(32)
        device.listen_port = 0
        device.fwmark = 0
    section: str | None = None
    peer: PeerConfig | None = None
    peer_lines: list[tuple[PeerConfig, int]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _clean(raw)
        if not line:
            continue
        lowered = line.lower()
        if lowered == "[interface]":
            section, peer = "interface", None
            continue
        if lowered == "[peer]":
            section = "peer"
            peer = PeerConfig(public_key=b"", replace_allowed_ips=True)
            device.peers.append(peer)
            peer_lines.append((peer, number))
            continue
        key, equals, value = line.partition("=")
        if quick and section == "interface" and key.lower() in _QUICK_KEYS:
            # wg-quick reads its own keys itself and only trims the value (hooks keep spaces)
            value = raw.split("#", 1)[0].partition("=")[2].strip(_SPACE)
        if not equals or not value or section is None:
            raise ConfigError(f"line unrecognized: '{line}'", file=filename, line=number)
        try:
            _apply(device, peer, section, key, value, quick)
        except ConfigError as exc:
            raise ConfigError(exc.message, file=filename, line=number,
                              key=exc.key or key) from None
    for peer_config, number in peer_lines:
        if not peer_config.public_key:
            raise ConfigError("a peer is missing a public key", file=filename, line=number)
    return device


def _apply(device: DeviceConfig, peer: PeerConfig | None, section: str, key: str,
           value: str, quick: bool) -> None:
    name = key.lower()
    if section == "interface":
        if name == "listenport":
            device.listen_port = parse_port(value)
        elif name == "fwmark":
            device.fwmark = parse_fwmark(value)
        elif name == "privatekey":
            device.private_key = parse_key(value)
        elif quick and _apply_quick(device, name, value):
            pass
        else:
            raise ConfigError(f"line unrecognized: '{key}={value}'", key=key)
        return
    assert peer is not None
    if name == "endpoint":
        peer.endpoint = parse_endpoint(value)
    elif name == "publickey":
        peer.public_key = parse_key(value)
    elif name == "allowedips":
        peer.allowed_ips.extend(parse_allowed_ips(value))
    elif name == "persistentkeepalive":
        peer.persistent_keepalive = parse_persistent_keepalive(value)
    elif name == "presharedkey":
        peer.preshared_key = parse_key(value)
    else:
        raise ConfigError(f"line unrecognized: '{key}={value}'", key=key)


def _apply_quick(device: DeviceConfig, name: str, value: str) -> bool:
    quick = device.quick
    if name in _QUICK_LIST_KEYS:
        items = [i.strip(_SPACE) for i in value.split(",")] if name in ("address", "dns") \
            else [value]
        getattr(quick, _QUICK_LIST_KEYS[name]).extend(i for i in items if i)
    elif name == "mtu":
        number = _strtoul(value, 10)
        if number is None or not 68 <= number <= 65535:
            raise ConfigError(f"'{value}' is not a valid MTU")
        quick.mtu = number
    elif name == "table":
        quick.table = value
    elif name == "saveconfig":
        if value.lower() not in ("true", "false"):
            raise ConfigError(f"'{value}' is neither true nor false")
        quick.save_config = value.lower() == "true"
    else:
        return False
    return True


def read_config(path: str, *, quick: bool = False, append: bool = False) -> DeviceConfig:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(exc.strerror or "cannot read", file=path) from None
    return parse_config(text, filename=path, quick=quick, append=append)


# ---------------------------------------------------------------------- wg set arguments


def parse_set_arguments(args: list[str]) -> DeviceConfig:
    """`wg set` grammar: [listen-port P] [fwmark M] [private-key FILE] [peer KEY [remove]
    [preshared-key FILE] [endpoint E] [persistent-keepalive N] [allowed-ips LIST]]..."""
    device = DeviceConfig()
    peer: PeerConfig | None = None
    i = 0
    while i < len(args):
        word = args[i]
        has_value = i + 1 < len(args)
        value = args[i + 1] if has_value else ""
        try:
            if word == "listen-port" and has_value and peer is None:
                device.listen_port = parse_port(value)
            elif word == "fwmark" and has_value and peer is None:
                device.fwmark = parse_fwmark(value)
            elif word == "private-key" and has_value and peer is None:
                device.private_key = parse_key_file(value)
            elif word == "peer" and has_value:
                peer = PeerConfig(public_key=parse_key(value))
                device.peers.append(peer)
            elif word == "remove" and peer is not None:
                peer.remove = True
                i += 1
                continue
            elif word == "endpoint" and has_value and peer is not None:
                peer.endpoint = parse_endpoint(value)
            elif word == "allowed-ips" and has_value and peer is not None:
                peer.allowed_ips.extend(parse_allowed_ips(
                    "".join(ch for ch in value if ch not in _SPACE)))
                peer.replace_allowed_ips = True
            elif word == "persistent-keepalive" and has_value and peer is not None:
                peer.persistent_keepalive = parse_persistent_keepalive(value)
            elif word == "preshared-key" and has_value and peer is not None:
                peer.preshared_key = parse_key_file(value)
            else:
                raise ConfigError(f"invalid argument: {word}")
        except ConfigError as exc:
            raise ConfigError(exc.message, key=word if word != exc.message else None) from None
        i += 2
    return device
