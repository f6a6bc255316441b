"""wg and wg-quick configuration files, and `wg set` arguments, with wg's exact rules.

The rules are those of wireguard-tools' config.c (v1.0.20210914): lines end at `\\n` only, a
`#` starts a comment anywhere on a line, every whitespace character is dropped (so
`Allowed IPs = a, b` reads as `AllowedIPs=a,b`), section and key names are case-insensitive, a
key needs a non-empty value, list keys accumulate, endpoints are resolved when parsed, `off`
is accepted for FwMark and PersistentKeepalive.

wg-quick's extra [Interface] keys (Address, DNS, MTU, Table, hooks, SaveConfig) are accepted
only with `quick=True`, and recognised the way wg-quick's bash does (linux.bash
parse_options, under LC_ALL=C): lines as `read -r` reads them (quick_lines), its own notion
of the [Interface] section, keys trimmed but not squeezed, values trimmed (hooks keep inner
spaces), names compared ASCII-case-insensitively. Lines it does not take go to wg's rules,
so a file is accepted here exactly when `wg-quick up` would accept it.

A file is parsed whole before anything is used: any bad line raises ConfigError naming the
file, the line and the key, e.g. `wg0.conf:7: AllowedIPs: '10.0.0.0/33' is not a valid prefix`.
"""

import re
from collections.abc import Iterator
from typing import NamedTuple

from wgpy.config.model import DeviceConfig, PeerConfig
from wgpy.config.values import (
    MAX_MTU,
    SPACE,
    ConfigError,
    parse_allowed_ips,
    parse_endpoint,
    parse_fwmark,
    parse_key,
    parse_key_file,
    parse_persistent_keepalive,
    parse_port,
    unsigned,
)
from wgpy.core.constants import ZERO_KEY

__all__ = [
    "ConfigError",
    "bash_words",
    "parse_allowed_ips",
    "parse_config",
    "parse_fwmark",
    "parse_persistent_keepalive",
    "parse_set_arguments",
    "quick_lines",
    "read_config",
    "strip_quick",
]

QUICK_KEYS = ("address", "dns", "mtu", "table", "preup", "postup", "predown", "postdown",
              "saveconfig")
_HOOKS = {"preup": "pre_up", "postup": "post_up", "predown": "pre_down", "postdown": "post_down"}
_DNS_SERVER = re.compile(r"[0-9.]+\Z|.*:")
_BASH_SPACE = " \t\n\v\f\r"  # [[:space:]]
_READ_IFS = " \t\n"  # what `read -r line` trims


_DROP_SPACE = str.maketrans("", "", SPACE)


def _wg_line(raw: str) -> str:
    """config_read_line: cut at NUL (C string) and `#`, drop every whitespace character.

    A line with nothing but printable characters once its spaces are gone (no tab, no NUL,
    no other control character: nearly every line) needs only the comment cut; translate()
    looks up every character, which made it most of the time of reading a big file."""
    line = raw.replace(" ", "")
    if not line.isprintable():
        return raw.split("\0", 1)[0].split("#", 1)[0].translate(_DROP_SPACE)
    return line.split("#", 1)[0] if "#" in line else line


def _quick_key_value(line: str) -> tuple[str, str]:
    """wg-quick's split of a line: comment cut, key before the first `=`, both trimmed (a
    line without `=` is its own key and value)."""
    stripped = line.split("#", 1)[0]
    key, _, rest = stripped.partition("=")
    value = rest if "=" in stripped else stripped
    return key.strip(_BASH_SPACE), value.strip(_BASH_SPACE)


def _ascii_lower(text: str) -> str:
    """Bash's nocasematch in the C locale folds ASCII letters only (Python's lower() would
    also turn the Kelvin sign into `k`)."""
    return text.lower() if text.isascii() else text


def bash_words(value: str) -> list[str]:
    """`${value//,/ }` unquoted: commas become spaces, then words split at IFS (space, tab,
    newline; not at other whitespace, as str.split would)."""
    return [word for word in re.split(r"[ \t\n]+", value.replace(",", " ")) if word]


class QuickLine(NamedTuple):
    """A line of wg-quick's parse_options loop."""

    number: int
    raw: str  # the file's line, NUL bytes dropped (bash drops them), spacing kept
    key: str | None  # as written, when wg-quick takes the line itself; None: it goes to wg
    value: str  # trimmed, not judged (`wg-quick strip` does not judge it)

    @property
    def read(self) -> str:
        """The line as `read -r` gives it: leading and trailing spaces and tabs trimmed."""
        return self.raw.strip(_READ_IFS)

    def __repr__(self) -> str:  # raw may be a PrivateKey or PresharedKey line
        return f"QuickLine(number={self.number}, key={self.key!r})"


def quick_lines(text: str) -> Iterator[QuickLine]:
    """The lines of `while read -r line || [[ -n $line ]]` (LC_ALL=C) and what wg-quick makes
    of each: split at `\n` only (a CR stays, a CR-only file is one line), every byte but NUL
    kept; a last line without its newline counts only if something of it is left."""
    pieces = text.replace("\0", "").split("\n")
    if not pieces[-1].strip(_READ_IFS):
        pieces.pop()
    in_interface = False
    for number, raw in enumerate(pieces, 1):
        key, value = _quick_key_value(raw.strip(_READ_IFS))
        name = _ascii_lower(key)
        if key.startswith("["):
            in_interface = name == "[interface]"
        yield QuickLine(number, raw, key if in_interface and name in QUICK_KEYS else None, value)


def _lines(text: str) -> list[str]:
    """getline's lines: split at `\\n` only (`\\r`, form feeds … are whitespace inside one)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class Line(NamedTuple):
    """One line of a file as the parser sees it (a tuple: a big hub file has 50,000).

    kind: "blank" (nothing but whitespace and comment), "interface" / "peer" (a section
    header), "wg" (a wg key: whitespace removed, `key` as written, `value` maybe empty) or
    "quick" (a wg-quick key taken by wg-quick itself: `key` as written, `value` trimmed)."""

    number: int
    raw: str  # may be a PrivateKey or PresharedKey line: never in a repr
    kind: str
    key: str = ""
    value: str = ""  # likewise

    def __repr__(self) -> str:
        return f"Line(number={self.number}, kind={self.kind!r}, key={self.key!r})"


def classify(text: str, quick: bool) -> Iterator[Line]:
    """The lines of a file as wg (and, if `quick`, wg-quick first) would take them."""
    # wg-quick's bash drops NUL bytes before wg sees a line (wg alone stops at one)
    lines = quick_lines(text) if quick else (
        (number, raw, None, "") for number, raw in enumerate(_lines(text), 1))
    for number, raw, quick_key, value in lines:  # (a QuickLine, or as one)
        if quick_key is not None:
            yield Line(number, raw, "quick", quick_key, value)
            continue
        line = _wg_line(raw)
        if not line:
            yield Line(number, raw, "blank")
        elif line.lower() in ("[interface]", "[peer]"):
            yield Line(number, raw, line.lower()[1:-1])
        else:
            key, _, value = line.partition("=")
            yield Line(number, raw, "wg", key if "=" in line else line, value)


def parse_config(text: str, *, filename: str = "<config>", quick: bool = False,
                 append: bool = False) -> DeviceConfig:
    """Parse a whole file; `append` is addconf (no replace of peers/unset fields)."""
    device = DeviceConfig()
    if not append:
        # setconf sends every interface field: missing ones reset to zero (wg's flags)
        device.replace_peers = True
        device.private_key = ZERO_KEY
        device.listen_port = 0
        device.fwmark = 0
    section: str | None = None
    peer: PeerConfig | None = None
    peer_lines: list[tuple[PeerConfig, int]] = []
    for line in classify(text, quick):
        if line.kind == "blank":
            continue
        if line.kind == "interface":
            section, peer = "interface", None
            continue
        if line.kind == "peer":
            section = "peer"
            peer = PeerConfig(public_key=b"", replace_allowed_ips=True)
            device.peers.append(peer)
            peer_lines.append((peer, line.number))
            continue
        if line.kind == "wg" and (not line.value or section is None):
            raise ConfigError(f"line unrecognized: '{_wg_line(line.raw)}'", file=filename,
                              line=line.number)
        try:
            if line.kind == "quick":
                apply_quick_key(device, line.key.lower(), line.value)
            else:
                apply_key(device, peer, line.key, line.value, quick)
        except ConfigError as exc:
            raise exc.located(filename, line.number, line.key) from None
    for peer_config, number in peer_lines:
        if not peer_config.public_key:
            raise ConfigError("a peer is missing a public key", file=filename, line=number)
    return device


def apply_key(device: DeviceConfig, peer: PeerConfig | None, key: str, value: str,
              quick: bool = False) -> None:
    """One wg `Key=value` (whitespace already removed) of [Interface] (peer None) or a peer."""
    name = key.lower()
    if peer is None:
        if name == "listenport":
            device.listen_port = parse_port(value)
        elif name == "fwmark":
            device.fwmark = parse_fwmark(value)
        elif name == "privatekey":
            device.private_key = parse_key(value)
        else:
            raise ConfigError(f"not a key of [Interface]{_quick_hint(key, quick)}")
        return
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
        raise ConfigError("not a key of [Peer]")


def _quick_hint(key: str, quick: bool) -> str:
    if key.lower() not in QUICK_KEYS:
        return ""
    if not quick:
        return f" ({key} is wg-quick's: use wgpy-quick)"
    return (" (wg-quick takes its own keys only when written without inner spaces, under a "
            "plain [Interface] line)")


def apply_quick_key(device: DeviceConfig, name: str, value: str) -> None:
    """One wg-quick [Interface] key (lowercase name, trimmed value)."""
    quick = device.quick
    if name == "address":
        quick.addresses.extend(bash_words(value))
    elif name == "dns":
        for item in bash_words(value):
            (quick.dns if _DNS_SERVER.match(item) else quick.dns_search).append(item)
    elif name == "mtu":
        mtu = unsigned(value, MAX_MTU)
        if mtu is None:
            raise ConfigError(f"'{value}' is not a valid MTU")
        quick.mtu = mtu
    elif name == "table":
        quick.table = value
    elif name == "saveconfig":
        if value.lower() not in ("true", "false"):
            raise ConfigError(f"'{value}' is neither true nor false")
        quick.save_config = value.lower() == "true"
    else:
        getattr(quick, _HOOKS[name]).append(value)


def strip_quick(text: str) -> str:
    """`wg-quick strip`: the file without wg-quick's keys, each line trimmed as bash's
    `read` trims it, and the extra newline `echo` adds."""
    return "".join(line.read + "\n" for line in quick_lines(text) if line.key is None) + "\n"


def read_config(path: str, *, quick: bool = False, append: bool = False) -> DeviceConfig:
    """Read and parse a file; bytes that are not UTF-8 are kept (surrogate-escaped)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError(exc.strerror or "cannot read", file=path) from None
    return parse_config(data.decode("utf-8", "surrogateescape"), filename=path, quick=quick,
                        append=append)


# ---------------------------------------------------------------------- wg set arguments


def parse_set_arguments(args: list[str]) -> DeviceConfig:
    """`wg set` grammar: [listen-port P] [fwmark M] [private-key FILE] [peer KEY [remove]
    [preshared-key FILE] [endpoint E] [persistent-keepalive N] [allowed-ips LIST]]...

    Words are read left to right as wg's config_read_cmd reads them: interface words only
    before the first `peer`, peer words only after one, every word but `remove` with a value."""
    device = DeviceConfig()
    peer: PeerConfig | None = None
    i = 0
    while i < len(args):
        word = args[i]
        if word == "remove" and peer is not None:
            peer.remove = True
            i += 1
            continue
        allowed = (word == "peer" or (word in _DEVICE_WORDS and peer is None)
                   or (word in _PEER_WORDS and peer is not None))
        if not allowed or i + 1 == len(args):
            raise ConfigError(f"invalid argument: {word}")
        try:
            peer = _apply_set_word(device, peer, word, args[i + 1])
        except ConfigError as exc:
            raise exc.located(None, None, word) from None
        i += 2
    return device


_DEVICE_WORDS = {"listen-port", "fwmark", "private-key"}
_PEER_WORDS = {"endpoint", "allowed-ips", "persistent-keepalive", "preshared-key"}


def _apply_set_word(device: DeviceConfig, peer: PeerConfig | None, word: str,
                    value: str) -> PeerConfig | None:
    """One `word value` pair; returns the peer that following words apply to."""
    if word == "peer":
        peer = PeerConfig(public_key=parse_key(value))
        device.peers.append(peer)
    elif word == "listen-port":
        device.listen_port = parse_port(value)
    elif word == "fwmark":
        device.fwmark = parse_fwmark(value)
    elif word == "private-key":
        device.private_key = parse_key_file(value)
    else:
        assert peer is not None
        if word == "endpoint":
            peer.endpoint = parse_endpoint(value)
        elif word == "allowed-ips":
            peer.allowed_ips.extend(parse_allowed_ips(value.translate(_DROP_SPACE)))
            peer.replace_allowed_ips = True
        elif word == "persistent-keepalive":
            peer.persistent_keepalive = parse_persistent_keepalive(value)
        else:
            peer.preshared_key = parse_key_file(value)
    return peer
