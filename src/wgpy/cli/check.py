"""`wgpy check FILE...`: what in wg / wg-quick files will not work, before it is applied.

A file `wg` accepts can still be wrong in ways WireGuard reports by silence. Each file alone:

* the same prefix in two peers' AllowedIPs: a prefix has one owner, the later peer takes it
  and the earlier one silently loses it (`wg show` lists it under the later peer only);
* AllowedIPs with host bits set (`10.0.0.1/24` means 10.0.0.0/24);
* a catch-all for IPv4 without one for IPv6 (or the reverse) in a wg-quick file: the other
  family does not go through the tunnel — a leak, not a failure;
* a peer with the interface's own public key (ignored), one public key in two [Peer]
  sections (merged into one peer), no PrivateKey, a peer without AllowedIPs.

Several files describing one network (a mesh, hub and spokes) are checked against each other:
a peer naming another file's interface must be listed back (else its handshakes are dropped
as unknown_peer), with the same preshared key, AllowedIPs covering the other's Address (else
its packets are dropped as src_not_allowed), and an Endpoint port the other listens on.

Findings print as `FILE:LINE: error|warning: message`; exit status 1 if any is an error.
"""

import ipaddress
import logging
import sys
from dataclasses import dataclass, field

from wgpy.config.model import AllowedIP, DeviceConfig, PeerConfig
from wgpy.config.parser import classify, parse_config
from wgpy.config.values import ConfigError
from wgpy.core.constants import ZERO_KEY
from wgpy.core.crypto import public_key
from wgpy.core.keys import key_to_base64

USAGE = "Usage: {prog} check <config file>..."
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Finding:
    file: str
    line: int
    level: str  # "error": will not work; "warning": works, probably not as meant
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.level}: {self.message}"


@dataclass
class PeerSection:
    config: PeerConfig
    line: int  # of its [Peer] header
    allowed: list[tuple[AllowedIP, int]] = field(default_factory=list)  # entry, its line
    endpoint_line: int = 0


@dataclass
class ConfigFile:
    path: str
    device: DeviceConfig
    peers: list[PeerSection]
    interface_line: int
    public_key: bytes | None


def short(key: bytes) -> str:
    return key_to_base64(key)[:10] + "…"


def read(path: str) -> ConfigFile:
    """Parse `path` as wg-quick would (ConfigError if it would refuse it), keeping lines."""
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        text = handle.read()
    config_log = logging.getLogger("wgpy.config")
    level = config_log.level
    config_log.setLevel(logging.ERROR)  # host bits are reported below, with their line
    try:
        device = parse_config(text, filename=path, quick=True)
    finally:
        config_log.setLevel(level)
    sections: list[PeerSection] = []
    interface_line = 0
    for line in classify(text, quick=True):
        if line.kind == "interface" and not interface_line:
            interface_line = line.number
        elif line.kind == "peer":
            sections.append(PeerSection(device.peers[len(sections)], line.number))
        elif line.kind == "wg" and sections:
            name = line.key.lower()
            section = sections[-1]
            if name == "allowedips":
                count = len(line.value.split(",")) if line.value else 0
                done = len(section.allowed)
                section.allowed += [(entry, line.number) for entry in
                                    section.config.allowed_ips[done : done + count]]
            elif name == "endpoint":
                section.endpoint_line = line.number
    private = device.private_key
    own = public_key(private) if private and any(private) else None
    return ConfigFile(path, device, sections, interface_line, own)


def check_file(config: ConfigFile) -> list[Finding]:
    findings: list[Finding] = []

    def add(line: int, level: str, message: str) -> None:
        findings.append(Finding(config.path, line, level, message))

    if config.public_key is None:
        add(config.interface_line, "error", "no PrivateKey: the interface cannot handshake")
    owners: dict[Network, tuple[PeerSection, int]] = {}
    first_section: dict[bytes, PeerSection] = {}
    for section in config.peers:
        key = section.config.public_key
        if key == config.public_key:
            add(section.line, "error", "this peer is the interface itself (its own public "
                "key): it is ignored")
        if key in first_section:
            add(section.line, "warning", f"peer {short(key)} already has a [Peer] section "
                f"at line {first_section[key].line}: the two are merged into one peer")
        elif not any(s.config.allowed_ips for s in config.peers if s.config.public_key == key):
            add(section.line, "warning", f"peer {short(key)} has no AllowedIPs: nothing is "
                "sent to it, and everything it sends is dropped")
        first_section.setdefault(key, section)
        for entry, line in section.allowed:
            prefix = entry.network
            if prefix.network_address != entry.address:
                add(line, "warning", f"AllowedIPs {entry} has host bits set: it means {prefix}")
            previous = owners.get(prefix)
            if previous is not None and previous[0].config.public_key != key:
                add(line, "warning", f"{prefix} is also in the AllowedIPs of peer "
                    f"{short(previous[0].config.public_key)} (line {previous[1]}): one peer "
                    "owns a prefix, so this later peer takes it and that one loses it")
            owners[prefix] = (section, line)
    quick = config.device.quick
    if (quick.addresses or quick.table is not None) and quick.table != "off":
        findings += _leaks(config, owners)  # (with Table = off wg-quick routes nothing)
    return findings


def _leaks(config: ConfigFile, owners: dict[Network, tuple[PeerSection, int]]) -> list[Finding]:
    """wg-quick routes a catch-all through the tunnel; one family without the other leaks."""
    catch_alls = {prefix.version: line for prefix, (_, line) in owners.items()
                  if prefix.prefixlen == 0}
    if len(catch_alls) != 1:
        return []
    [(version, line)] = catch_alls.items()
    other = 6 if version == 4 else 4
    covered, missing = ("0.0.0.0/0", "::/0") if version == 4 else ("::/0", "0.0.0.0/0")
    return [Finding(config.path, line, "warning",
                    f"AllowedIPs has {covered} but not {missing}: IPv{other} traffic does not "
                    "go through the tunnel (add it to route that family too, or block it)")]


def _addresses(config: ConfigFile) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    result = []
    for text in config.device.quick.addresses:
        try:
            result.append(ipaddress.ip_interface(text))
        except ValueError:
            continue  # `ip` is the judge of Address values; not ours to report
    return result


def check_together(configs: list[ConfigFile]) -> list[Finding]:
    """Each file's peers that are another file's interface, checked against that file."""
    by_key = {c.public_key: c for c in configs if c.public_key is not None}
    findings = []
    for config in configs:
        for section in config.peers:
            other = by_key.get(section.config.public_key)
            if other is None or other is config:
                continue
            findings += _check_pair(config, section, other)
    return findings


def _check_pair(config: ConfigFile, section: PeerSection, other: ConfigFile) -> list[Finding]:
    findings = []

    def add(line: int, level: str, message: str) -> None:
        findings.append(Finding(config.path, line, level, message))

    back = next((s for s in other.peers if s.config.public_key == config.public_key), None)
    if back is None:
        add(section.line, "error", f"{other.path} has no [Peer] for this interface: its "
            "handshakes are dropped there (unknown_peer)")
        return findings
    psk, back_psk = (section.config.preshared_key or ZERO_KEY,
                     back.config.preshared_key or ZERO_KEY)
    if psk != back_psk and config.path < other.path:  # (said once per pair)
        add(section.line, "error", f"PresharedKey differs from {other.path}:{back.line}: "
            "every handshake fails (handshake_failed)")
    for address in _addresses(other):
        if not any(address.ip in entry.network for entry, _ in section.allowed):
            add(section.line, "error", f"AllowedIPs do not hold {address.ip}, the Address of "
                f"{other.path}: its packets are dropped (src_not_allowed) and none go to it")
    endpoint = section.config.endpoint
    port = other.device.listen_port
    if endpoint is not None and port and endpoint.port != port:
        add(section.endpoint_line, "error", f"Endpoint port {endpoint.port}, but "
            f"{other.path} listens on {port}")
    return findings


def cmd_check(prog: str, args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE.format(prog=prog), file=sys.stderr)
        return 1
    configs, findings = [], []
    for path in args:
        try:
            configs.append(read(path))
        except ConfigError as exc:
            message = f"{exc.key}: {exc.message}" if exc.key else exc.message
            findings.append(Finding(exc.file or path, exc.line or 0, "error", message))
        except OSError as exc:
            findings.append(Finding(path, 0, "error", exc.strerror or str(exc)))
    for config in configs:
        findings += check_file(config)
    findings += check_together(configs)
    for finding in findings:
        print(finding)
    errors = sum(finding.level == "error" for finding in findings)
    print(f"{len(args)} file(s): {errors} error(s), {len(findings) - errors} warning(s)",
          file=sys.stderr)
    return 1 if errors else 0
