"""Write a device's current state back into its existing configuration file, keeping what
people put there: comments, blank lines, key spelling, order, host names in endpoints.

`wg-quick save` regenerates the file from `wg showconf` and loses all of that. Here a line is
rewritten only when the value it sets differs from the device's (compared after parsing, so
`AllowedIPs = 10.0.0.1` and `10.0.0.1/32` agree, and an endpoint name still resolving to the
device's endpoint stays a name). A changed key is written where it first appeared (keeping
that line's trailing comment); new keys go after the last key of their section; peers no
longer on the device are removed with the comment lines directly above them; new peers are
appended in showconf's form.
"""

import contextlib
from dataclasses import dataclass, field

from wgpy.config.model import DeviceConfig, PeerConfig
from wgpy.config.parser import Line, apply_key, apply_quick_key, classify
from wgpy.config.values import ConfigError, parse_endpoint, parse_key
from wgpy.config.writer import interface_items, peer_items, quick_items
from wgpy.core.constants import ZERO_KEY


@dataclass
class _Section:
    kind: str  # "preamble", "interface" or "peer"
    lines: list[Line] = field(default_factory=list)


def _sections(text: str, quick: bool) -> list[_Section]:
    """Split into sections; comment lines right above a header belong to that header."""
    sections = [_Section("preamble")]
    for line in classify(text, quick):
        if line.kind in ("interface", "peer"):
            previous = sections[-1].lines
            attached: list[Line] = []
            while previous and previous[-1].kind == "blank" and previous[-1].raw.strip():
                attached.insert(0, previous.pop())
            sections.append(_Section(line.kind, [*attached, line]))
        else:
            sections[-1].lines.append(line)
    return sections


def _grouped(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in items:
        grouped.setdefault(key.lower(), []).append(value)
    return grouped


def _written_items(sections: list[_Section], kind: str) -> dict[str, list[str]]:
    """What the lines of these sections set, rendered like the device's values."""
    device = DeviceConfig()
    peer = PeerConfig(public_key=ZERO_KEY) if kind == "peer" else None
    for line in (line for section in sections for line in section.lines):
        with contextlib.suppress(ConfigError):  # unparsable: compares as changed
            if line.kind == "quick":
                apply_quick_key(device, line.key.lower(), line.value)
            elif line.kind == "wg" and line.value:
                if peer is not None and line.key.lower() == "endpoint":
                    peer.endpoint = parse_endpoint(line.value, retries=0)
                else:
                    apply_key(device, peer, line.key, line.value)
    if peer is not None:
        return _grouped(peer_items(peer))
    return _grouped(interface_items(device) + quick_items(device.quick))


def _rewrite(sections: list[_Section], wanted_items: list[tuple[str, str]]) -> list[list[str]]:
    """The lines of one logical section (one or more physical ones) holding `wanted`, for
    each physical section in turn."""
    written = _written_items(sections, sections[0].kind)
    wanted = _grouped(wanted_items)
    names = {key.lower(): key for key, _ in wanted_items}
    present = {line.key.lower() for s in sections for line in s.lines
               if line.kind in ("wg", "quick")}
    done: set[str] = set()
    out: list[list[str]] = []
    for section in sections:
        lines: list[str] = []
        for line in section.lines:
            name = line.key.lower()
            unchanged = written.get(name) == wanted.get(name)
            unknown = name not in written and name not in wanted
            if line.kind not in ("wg", "quick") or unchanged or unknown:
                lines.append(line.raw)
                continue
            if name in done:
                continue
            done.add(name)
            comment = " #" + line.raw.split("#", 1)[1] if "#" in line.raw else ""
            lines.extend(f"{names.get(name, line.key)} = {value}{comment}"
                         for value in wanted.get(name, []))
        out.append(lines)
    missing = [f"{key} = {value}" for key, value in wanted_items if key.lower() not in present]
    position = _after_last_content(out[0])
    out[0][position:position] = missing
    return out


def _after_last_content(lines: list[str]) -> int:
    """Index just after the last line that is neither blank nor a comment."""
    for index in range(len(lines) - 1, -1, -1):
        text = lines[index].split("#", 1)[0].strip()
        if text:
            return index + 1
    return len(lines)


def update_config_text(original: str, device: DeviceConfig, *, quick: bool = True) -> str:
    """`original` rewritten to configure `device` (with its `quick` settings if `quick`)."""
    sections = _sections(original, quick)
    groups: list[tuple[list[_Section], list[tuple[str, str]]]] = []
    interface = [s for s in sections if s.kind == "interface"]
    wanted_interface = interface_items(device) + (quick_items(device.quick) if quick else [])
    if interface:
        groups.append((interface, wanted_interface))
    elif wanted_interface:
        new = _Section("interface", [Line(0, "[Interface]", "interface")])
        sections.insert(1, new)
        groups.append(([new], wanted_interface))
    by_key: dict[bytes, list[_Section]] = {}
    for section in sections:
        if section.kind == "peer":
            by_key.setdefault(_public_key(section), []).append(section)
    peers = {peer.public_key: peer for peer in device.peers}
    groups.extend((group, peer_items(peers[key])) for key, group in by_key.items()
                  if key in peers)

    rewritten: dict[int, list[str]] = {
        id(section): [line.raw for line in section.lines]
        for section in sections if section.kind == "preamble"}
    for group, wanted in groups:
        for section, lines in zip(group, _rewrite(group, wanted), strict=True):
            rewritten[id(section)] = lines
    out = [line for section in sections for line in rewritten.get(id(section), [])]
    for peer in device.peers:
        if peer.public_key not in by_key:
            if out and out[-1].strip():
                out.append("")
            out.extend(["[Peer]", *(f"{k} = {v}" for k, v in peer_items(peer))])
    return "".join(line + "\n" for line in out)


def _public_key(section: _Section) -> bytes:
    key = b""
    for line in section.lines:
        if line.kind == "wg" and line.key.lower() == "publickey":
            with contextlib.suppress(ConfigError):
                key = parse_key(line.value)
    return key
