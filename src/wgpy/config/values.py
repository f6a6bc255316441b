"""One value of a wg configuration (file line or `wg set` argument), read by wg's rules.

Each function mirrors the matching one in wireguard-tools' config.c (v1.0.20210914): the same
inputs are accepted and rejected, numbers are read like strtoul (digits only, bounded), and
addresses, ports and host names go through the C library exactly as wg's do (inet_pton,
getaddrinfo, getnameinfo), so corner cases such as `ListenPort = 65536` or `::ffff:1.2.3.4`
come out as wg's do. Failures raise ConfigError; the caller adds file, line and key.
"""

import ipaddress
import logging
import os
import re
import socket
import time

from wgpy.config.model import AllowedIP, Endpoint
from wgpy.config.numbers import decimal
from wgpy.core.constants import ZERO_KEY
from wgpy.core.keys import KeyFormatError, key_from_base64

log = logging.getLogger("wgpy.config")

SPACE = " \t\n\v\f\r"  # wg's char_is_space
MAX_MTU = 0xFFFFFFFF  # what `ip link set mtu` (IFLA_MTU) carries; the kernel bounds it further
KEY_BASE64_LEN = 44
_DECIMAL = re.compile(r"[0-9]+\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_PERMANENT_GAI_ERRORS = {socket.EAI_NONAME, socket.EAI_FAIL,
                         getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class ConfigError(ValueError):
    """A configuration error, located as precisely as the input allows:
    `wg0.conf:7: AllowedIPs: '10.0.0.0/33' is not a valid prefix`."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.message, self.file, self.line, self.key = message, file, line, key
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")

    def located(self, file: str | None, line: int | None, key: str | None) -> "ConfigError":
        """The same error with a location (keeping any more precise one it has)."""
        return ConfigError(self.message, file=self.file or file,
                           line=self.line if self.line is not None else line,
                           key=self.key or key)


def parse_key(value: str) -> bytes:
    """A base64 key: exactly 44 characters ending in `=`, canonical (wg's key_from_base64)."""
    try:
        if value != value.strip(SPACE + "\0"):
            raise KeyFormatError(value)
        return key_from_base64(value)
    except KeyFormatError:
        raise ConfigError(f"'{value}' is not a valid key (32 bytes, base64)") from None


def parse_key_file(path: str) -> bytes:
    """A key read from a file (`wg set … private-key FILE`, `preshared-key FILE`): the key,
    then only whitespace; an empty file (or /dev/null) is the all-zero key, which clears it."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(KEY_BASE64_LEN)
            tail = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read key file '{path}': {exc.strerror}") from None
    if not head:
        return ZERO_KEY
    if len(head) != KEY_BASE64_LEN:
        raise ConfigError(f"'{path}' does not hold a key of the right length")
    stray = tail.lstrip(SPACE.encode())
    if stray:
        raise ConfigError(f"found trailing character in key file '{path}': "
                          f"'{stray[:1].decode('latin-1')}'")
    # wg hands the 44 bytes to a C string function: a NUL ends the key early.
    return parse_key(head.split(b"\0", 1)[0].decode("latin-1"))


def parse_port(value: str) -> int:
    """A port number or service name, resolved as wg does (getaddrinfo, AI_PASSIVE, UDP)."""
    if not value:
        raise ConfigError("unable to parse empty port")
    try:
        infos = socket.getaddrinfo(None, value, socket.AF_UNSPEC, socket.SOCK_DGRAM,
                                   socket.IPPROTO_UDP, socket.AI_PASSIVE)
    except (OSError, UnicodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "invalid"
        raise ConfigError(f"'{value}' is not a valid port: {reason}") from None
    return int(infos[0][4][1])


def unsigned(text: str, maximum: int) -> int | None:
    """`text` as a number if it is ASCII decimal digits (leading zeros allowed, any length)
    worth at most `maximum`, else None. isdigit()/int() alone would also take Unicode digits:
    int() reads a fullwidth 3 as 3, and int('²') raises although '²'.isdigit() holds."""
    if not (text.isascii() and text.isdigit()):
        return None
    number = decimal(text)
    return number if number <= maximum else None


def _strtoul(value: str, hex_allowed: bool = False) -> int | None:
    """strtoul on a whole value whose first character is a digit; None if not all consumed."""
    if hex_allowed and len(value) > 2 and value.startswith("0x"):
        return int(value, 16) if _HEX.match(value) else None
    return decimal(value) if _DECIMAL.match(value) else None


def parse_fwmark(value: str) -> int:
    """`off`, decimal, or `0x` hex up to 0xffffffff."""
    if value.lower() == "off":
        return 0
    number = _strtoul(value, hex_allowed=True)
    if number is None or number > 0xFFFFFFFF:
        raise ConfigError(f"'{value}' is neither 0/off nor 0-0xffffffff")
    return number


def parse_persistent_keepalive(value: str) -> int:
    """`off` or seconds, 0-65535 (0 turns it off)."""
    if value.lower() == "off":
        return 0
    number = _strtoul(value)
    if number is None or number > 65535:
        raise ConfigError(f"'{value}' is neither 0/off nor 1-65535")
    return number


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """inet_pton: IPv6 if there is a colon, else IPv4 (no zones, no leading zeros)."""
    try:
        if ":" in text:  # the class named: ip_address() of 16 bytes first fails as IPv4
            return ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, text))
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError, UnicodeError):
        raise ConfigError(f"'{text}' is not a valid IP address") from None


def parse_allowed_ips(value: str) -> list[AllowedIP]:
    """A comma list of address[/cidr] (no cidr: /32 or /128); "" is the empty list.

    Host bits are kept (wg sends them as written; the device masks them) with a warning."""
    result: list[AllowedIP] = []
    if not value:
        return result
    for entry in value.split(","):
        address_text, slash, cidr_text = entry.partition("/")
        address = parse_ip(address_text)
        bits = address.max_prefixlen
        if not slash:
            cidr: int | None = bits
        elif len(cidr_text) <= 3 and cidr_text.isascii() and cidr_text.isdigit():
            cidr = int(cidr_text)  # the common case, without _strtoul's regex
        else:
            cidr = _strtoul(cidr_text)
        if cidr is None or cidr > bits:
            raise ConfigError(f"'{entry}' is not a valid prefix")
        if int(address) & ((1 << (bits - cidr)) - 1):
            log.warning("Warning: AllowedIP has nonzero host part: %s", entry)
        result.append(AllowedIP(address, cidr))
    return result


def split_endpoint(value: str) -> tuple[str, str]:
    """`host:port` (last colon) or `[host]:port` into host and port text."""
    if not value:
        raise ConfigError("unable to parse empty endpoint")
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket:
            raise ConfigError(f"unable to find matching brace of endpoint '{value}'")
        if not rest.startswith(":") or len(rest) == 1:
            raise ConfigError(f"unable to find port of endpoint '{value}'")
        return host, rest[1:]
    host, colon, port = value.rpartition(":")
    if not colon or not port:
        raise ConfigError(f"unable to find port of endpoint '{value}'")
    return host, port


def resolution_retries() -> int:
    """WG_ENDPOINT_RESOLUTION_RETRIES: a count, or `infinity` (-1); 15 by default."""
    value = os.environ.get("WG_ENDPOINT_RESOLUTION_RETRIES")
    if value is None:
        return 15
    if value == "infinity":
        return -1
    number = _strtoul(value)
    if number is None or number > 2**31 - 1:
        raise ConfigError(f"unable to parse WG_ENDPOINT_RESOLUTION_RETRIES: '{value}'")
    return number


def parse_endpoint(value: str, retries: int | None = None) -> Endpoint:
    """Resolve an endpoint now, as wg does: names through getaddrinfo (first answer wins),
    transient failures retried (WG_ENDPOINT_RESOLUTION_RETRIES times) with pauses from 1 s
    growing by a fifth up to 20 s, permanent ones (no such name) failing at once."""
    host, port = split_endpoint(value)
    numeric = _numeric_address(host, port)
    if numeric is not None:
        return numeric
    if retries is None:
        retries = resolution_retries()
    delay = 1.0
    while True:
        try:
            # bytes, so that Python's IDNA encoding neither rejects nor rewrites the name
            infos = socket.getaddrinfo(host.encode("utf-8", "surrogateescape"), port,
                                       socket.AF_UNSPEC, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            break
        except OSError as exc:
            # gaierror for resolver answers; a plain OSError is EAI_SYSTEM, which wg retries
            permanent = isinstance(exc, socket.gaierror) and exc.errno in _PERMANENT_GAI_ERRORS
            reason = exc.strerror or "resolution failed"
            if permanent or retries == 0:
                raise ConfigError(f"{reason}: '{value}'") from None
            retries -= 1 if retries > 0 else 0
            log.warning("%s: `%s'. Trying again in %.2f seconds...", reason, value, delay)
            time.sleep(delay)
            delay = min(20.0, delay * 6 / 5)
        except ValueError:  # an embedded NUL
            raise ConfigError(f"'{value}' is not a valid endpoint") from None
    return numeric_endpoint(infos[0][4])


def _numeric_address(host: str, port: str) -> Endpoint | None:
    """An endpoint that is a numeric address (no zone) and a decimal port, without the
    resolver: inet_pton/inet_ntop give what getaddrinfo and getnameinfo would (getnameinfo's
    NI_NUMERICHOST is inet_ntop), at a tenth of the cost, which counts in a 10,000-peer file.
    None for anything else (names, zones, service names), which goes to getaddrinfo."""
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 0xFFFF):
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return Endpoint(socket.inet_ntop(family, socket.inet_pton(family, host)), int(port))
    except (OSError, ValueError):
        return None


def numeric_endpoint(sockaddr: tuple) -> Endpoint:
    """getnameinfo(NI_NUMERICHOST | NI_NUMERICSERV): how wg prints and sends an endpoint
    (IPv6 scope ids become interface names, e.g. fe80::1%eth0)."""
    host, port = socket.getnameinfo(
        sockaddr, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV | socket.NI_DGRAM)
    return Endpoint(host, int(port))
