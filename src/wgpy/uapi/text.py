"""The UAPI wire text shared by the client and the server: `key=value` lines, a blank line
ending each message, `errno=N` replies (https://www.wireguard.com/xplatform/).

The rules are the strict ones both ends apply: `wg` (ipc-uapi.h) reads numbers with its NUM()
macro (decimal digits only, bounded) and keys as exactly 64 hex digits; wireguard-go answers a
failed request with the *negated* errno (`errno=-22`), which `wg` negates back for strerror.
"""

import errno
import os
import re

from wgpy.config.numbers import decimal

DEFAULT_SOCKET_DIR = "/var/run/wireguard"
# wg has no override (RUNSTATEDIR is fixed at build time), nor has wireguard-go. wgpyd honours
# WG_SOCKET_DIR so tests and unprivileged users can move it; the client follows wgpyd.
SOCKET_DIR_ENV = "WG_SOCKET_DIR"
SOCKET_SUFFIX = ".sock"

GET_REQUEST = b"get=1\n\n"
# wgpyd's own operation (wireguard-go closes the connection on it): the drop counters, as
# `drop_<reason>=<count>` lines, kept out of `get` so that its reply is wireguard-go's.
WGPY_GET_OPERATION = b"wgpy_get=1"
WGPY_GET_REQUEST = WGPY_GET_OPERATION + b"\n\n"
DROP_PREFIX = "drop_"

# The errnos wireguard-go answers with (ipc.IpcError*), positive here; on the wire negated.
EIO = errno.EIO
EPROTO = errno.EPROTO
EINVAL = errno.EINVAL
EADDRINUSE = errno.EADDRINUSE
ENOANO = 55  # wireguard-go's IpcErrorUnknown

_DIGITS = re.compile(r"[0-9]+\Z")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}\Z")
KEY_HEX_LEN = 64


class UapiFormatError(ValueError):
    """Text that breaks the UAPI format (a line without `=`, a bad number or key)."""


def socket_dir() -> str:
    """Where UAPI sockets live, for wgpyd and the client alike: WG_SOCKET_DIR when set and
    not empty, else /var/run/wireguard (so an empty value means the default on both ends)."""
    return os.environ.get(SOCKET_DIR_ENV) or DEFAULT_SOCKET_DIR


def socket_path(iface: str, directory: str | None = None) -> str:
    """The socket of one interface, in `directory` or else in socket_dir()."""
    return os.path.join(directory or socket_dir(), iface + SOCKET_SUFFIX)


def split_line(line: str) -> tuple[str, str]:
    """`key=value` at the first `=`; the value may itself contain `=`."""
    key, sep, value = line.partition("=")
    if not sep:
        raise UapiFormatError(f"line without '=': {line!r}")
    return key, value


def parse_message(text: str) -> list[tuple[str, str]]:
    """The pairs of one message, up to its blank line (which must be there: a reply cut short
    is a protocol error, as `wg` treats it)."""
    pairs: list[tuple[str, str]] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line == "":
            if index == len(lines) - 1:
                break  # text ended without the blank line
            return pairs
        pairs.append(split_line(line))
    raise UapiFormatError("message not terminated by a blank line")


def parse_unsigned(value: str, maximum: int) -> int:
    """wg's NUM(max): decimal digits only (no sign, no spaces), at most `maximum`."""
    if len(value) <= 18 and value.isascii() and value.isdigit():
        number = int(value)  # the common case, without decimal()'s guard against huge text
    else:
        number = decimal(value) if _DIGITS.match(value) else -1
    if not 0 <= number <= maximum:
        raise UapiFormatError(f"not a number in 0..{maximum}: {value!r}")
    return number


def parse_errno(value: str) -> int:
    """The value of an `errno=` line as sent (wireguard-go sends it negated)."""
    digits = value[1:] if value.startswith("-") else value
    if not _DIGITS.match(digits) or not -(2**31) <= decimal(value) < 2**31:
        raise UapiFormatError(f"bad errno: {value!r}")
    return decimal(value)


def parse_hex_key(value: str) -> bytes:
    if not _HEX_KEY.match(value):
        raise UapiFormatError("key is not 64 hex digits")
    return bytes.fromhex(value)


def format_hex_key(key: bytes) -> str:
    return key.hex()

