"""The fast paths of `wgpy show --json`, `wgpy serve` and get_device against the slow code they
replaced, kept here as the reference: random devices (overlapping IPv4 and IPv6 prefixes with
host bits, a prefix given to two peers, endpoints, keys, counters), random config files and
`wgpy punch` links, and random JSON documents.

- routing: state_routing_table's owner of random addresses is the brute-force longest match
  (the later peer owning a prefix given twice), and `wgpy route` answers as before;
- get_device's model (device_config) is the one parsing every address with ipaddress made;
- the document (interface_document) is the one the DeviceConfig code made, paths included;
- jsontext.dumps_indented is json.dumps(indent=2), metrics.exposition is prometheus-client's
  generate_latest of the families the module made with it.
"""

import contextlib
import importlib.util
import ipaddress
import json
import math
import random
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require
from wgpy.cli.directpaths import DIRECT, RELAYED, Link
from wgpy.cli.jsontext import dumps_indented
from wgpy.cli.jsonview import (
    LiveInterface,
    PeerFile,
    all_names,
    first_prefixes_of_lines,
    interface_document,
    peer_lines,
)
from wgpy.cli.route import routes, state_routing_table
from wgpy.config.model import AllowedIP, DeviceConfig, Endpoint, PeerConfig
from wgpy.config.names import peer_names
from wgpy.config.parser import classify
from wgpy.config.values import ConfigError, parse_allowed_ips
from wgpy.core.allowedips import AllowedIPs
from wgpy.core.keys import KeyFormatError, key_from_base64, key_to_base64
from wgpy.uapi.client import device_config
from wgpy.uapi.records import PeerState
from wgpy.uapi.reply import DeviceState

SEEDS = range(12)

# ------------------------------------------------------------------------ random devices


def configured_first_prefixes(text: str) -> dict:
    """What show --json routes each peer of a file by (jsonview.first_prefixes_of_lines)."""
    return first_prefixes_of_lines(classify(text, quick=True))


def random_prefix(rng: random.Random) -> str:
    """A prefix as `wg` prints it, from a small space so that prefixes overlap."""
    if rng.random() < 0.6:
        address = socket.inet_ntop(socket.AF_INET, bytes(
            [10, rng.randrange(3), rng.randrange(4), rng.randrange(256)]))
        return f"{address}/{rng.choice([0, 8, 16, 23, 24, 30, 32, 32])}"
    value = (0xfd << 120) | (rng.randrange(3) << 64) | rng.randrange(4)
    if rng.random() < 0.15:  # forms inet_ntop writes with a dotted tail
        value = rng.choice([0xffff << 32, 0]) | rng.randrange(1 << 32)
    address = socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
    return f"{address}/{rng.choice([0, 7, 64, 96, 126, 128, 128])}"


def random_endpoint(rng: random.Random) -> str | None:
    port = rng.randrange(65536)
    return rng.choice([None, f"198.51.100.{rng.randrange(256)}:{port}",
                       f"[2001:db8::{rng.randrange(65536):x}]:{port}",
                       f"[fe80::1%lo]:{port}"])


def random_state(rng: random.Random, peers: int) -> DeviceState:
    state = DeviceState(f"wg{rng.randrange(10)}")
    state.private_key = rng.choice([None, bytes(32), rng.randbytes(32)])
    state.listen_port = rng.choice([None, 0, 51820])
    state.fwmark = rng.choice([None, 0, 7])
    records = []
    for _ in range(peers):
        records.append(PeerState(
            rng.randbytes(32), [random_prefix(rng) for _ in range(rng.choice([0, 1, 1, 2, 4]))],
            rng.choice([None, rng.randbytes(32)]), random_endpoint(rng),
            str(rng.choice([0, rng.randrange(1 << 40)])), str(rng.randrange(10**9)),
            str(rng.randrange(1 << 64)), str(rng.randrange(1 << 64)),
            rng.choice([None, "0", "25", "65535"]), rng.choice([None, "1"])))
    state.peers = records
    return state


def random_config_text(rng: random.Random, state: DeviceState) -> str:
    """A wg-quick file giving some of the peers AllowedIPs (some lines bad, some empty)."""
    lines = ["[Interface]", "PrivateKey = " + key_to_base64(bytes(32))]
    for record in state.peers:
        if rng.random() < 0.4:
            continue
        lines += ["", "[Peer]", f"PublicKey = {key_to_base64(record.public_key)}"]
        for _ in range(rng.randrange(3)):
            lines.append("AllowedIPs = " + rng.choice([
                "", "not-an-address", ", ".join(random_prefix(rng)
                                                 for _ in range(rng.randrange(1, 3)))]))
    return "\n".join(lines) + "\n"


def random_links(rng: random.Random, state: DeviceState) -> dict[bytes, Link]:
    keys = [record.public_key for record in state.peers] + [rng.randbytes(32)]
    links = {}
    for key in rng.sample(keys, min(len(keys), rng.randrange(4))):
        prefixes = [str(ipaddress.ip_network(random_prefix(rng), strict=False))
                    for _ in range(rng.randrange(2))]
        links[key] = Link(key, prefixes, rng.choice([DIRECT, RELAYED]),
                          since=rng.random() * 1e9,
                          probe_started=rng.choice([None, 5.5]), retry_at=rng.random() * 1e9,
                          name=rng.choice([None, "spoke", 'q"uote\\d\nn']))
    return links


# ------------------------------------------------------------------ the code replaced


def reference_device(state: DeviceState) -> DeviceConfig:
    """get_device as it was: every address parsed by ipaddress."""
    device = DeviceConfig(name=state.name, private_key=state.private_key,
                          public_key=state.public_key(), listen_port=state.listen_port,
                          fwmark=state.fwmark)
    for peer in state.peers:
        endpoint = None
        if peer.endpoint is not None:
            host, _, port = peer.endpoint.rpartition(":")
            endpoint = Endpoint(host.removeprefix("[").removesuffix("]"), int(port))
        allowed_ips = []
        for text in peer.allowed_ips:
            address, _, cidr = text.partition("/")
            allowed_ips.append(AllowedIP(ipaddress.ip_address(address), int(cidr)))
        keepalive, version = peer.persistent_keepalive, peer.protocol_version
        device.peers.append(PeerConfig(
            public_key=peer.public_key, preshared_key=peer.preshared_key, endpoint=endpoint,
            persistent_keepalive=None if keepalive is None else int(keepalive),
            allowed_ips=allowed_ips, last_handshake_sec=int(peer.last_handshake_sec),
            last_handshake_nsec=int(peer.last_handshake_nsec), rx_bytes=int(peer.rx_bytes),
            tx_bytes=int(peer.tx_bytes),
            protocol_version=None if version is None else int(version)))
    return device


def reference_configured(text: str) -> dict[bytes, list[AllowedIP]]:
    found: dict[bytes, list[AllowedIP]] = {}
    key: bytes | None = None
    allowed: list[AllowedIP] = []
    for line in [*classify(text, quick=True), None]:
        if line is None or line.kind in ("interface", "peer"):
            if key is not None:
                found[key] = allowed
            key, allowed = None, []
        elif line.kind == "wg" and line.key.lower() == "publickey":
            with contextlib.suppress(KeyFormatError):
                key = key_from_base64(line.value)
        elif line.kind == "wg" and line.key.lower() == "allowedips":
            with contextlib.suppress(ConfigError):
                allowed.extend(parse_allowed_ips(line.value))
    return found


def reference_table(device: DeviceConfig) -> AllowedIPs[tuple[int, str]]:
    table: AllowedIPs[tuple[int, str]] = AllowedIPs()
    for index, peer in enumerate(device.peers):
        for allowed in peer.allowed_ips:
            table.insert(allowed.network, (index, str(allowed.network)))
    return table


def reference_document(device: DeviceConfig, names: dict[bytes, str],
                       drops: dict[str, int] | None, configured: dict[bytes, list[AllowedIP]],
                       links: dict[bytes, Link]) -> dict[str, Any]:
    """interface_document as it was, on the DeviceConfig."""
    table = reference_table(device)
    paths = []
    for index, peer in enumerate(device.peers):
        link = links.get(peer.public_key)
        prefixes = configured.get(peer.public_key) or (
            [AllowedIP(n.network_address, n.prefixlen)
             for n in map(ipaddress.ip_network, link.prefixes)] if link is not None else []
        ) or peer.allowed_ips
        owner = table.lookup(prefixes[0].network.network_address.packed) if prefixes else None
        if owner is None:
            paths.append(("unrouted", None))
        elif owner[0] == index:
            paths.append(("direct", None))
        else:
            paths.append(("relayed", key_to_base64(device.peers[owner[0]].public_key)))
    punch = []
    for key, link in links.items():
        owner = table.lookup(ipaddress.ip_network(link.prefixes[0]).network_address.packed) \
            if link.prefixes else None
        owner_key = device.peers[owner[0]].public_key if owner is not None else None
        path = "unrouted" if owner_key is None else "direct" if owner_key == key else "relayed"
        waiting = link.path == RELAYED and link.probe_started is None
        punch.append({"public_key": key_to_base64(key), "name": link.name, "path": path,
                      "via": key_to_base64(owner_key) if path == "relayed" and owner_key
                      else None,
                      "path_since": link.since, "prefixes": list(link.prefixes),
                      "trying_since": link.probe_started,
                      "next_attempt": link.retry_at if waiting else None})
    names = {**{key: link.name for key, link in links.items() if link.name}, **names}
    return {
        "name": device.name,
        "public_key": key_to_base64(device.public_key) if device.public_key else None,
        "has_private_key": bool(device.private_key and any(device.private_key)),
        "listen_port": device.listen_port,
        "fwmark": device.fwmark or None,
        "drops": drops,
        "peers": [{
            "public_key": key_to_base64(peer.public_key),
            "name": names.get(peer.public_key),
            "has_preshared_key": bool(peer.preshared_key and any(peer.preshared_key)),
            "endpoint": str(peer.endpoint) if peer.endpoint is not None else None,
            "allowed_ips": [str(allowed) for allowed in peer.allowed_ips],
            "latest_handshake": peer.last_handshake_sec,
            "transfer_rx": peer.rx_bytes,
            "transfer_tx": peer.tx_bytes,
            "persistent_keepalive": peer.persistent_keepalive or None,
            "path": path[0],
            "via": path[1],
            "path_since": links[peer.public_key].since if peer.public_key in links else None,
        } for peer, path in zip(device.peers, paths, strict=True)],
        "punch": punch,
    }


def reference_metrics(interfaces: list[LiveInterface]) -> bytes:
    """The families metrics.py made with prometheus-client, rendered by it."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        InfoMetricFamily,
    )

    labels = ["interface", "public_key", "allowed_ips", "friendly_name"]
    sent = CounterMetricFamily("wireguard_sent_bytes", "Bytes sent to the peer", labels=labels)
    received = CounterMetricFamily("wireguard_received_bytes", "Bytes received from the peer",
                                   labels=labels)
    handshake = GaugeMetricFamily("wireguard_latest_handshake_seconds",
                                  "UNIX time of the latest handshake with the peer (0: never)",
                                  labels=labels)
    info = InfoMetricFamily("wgpy_peer", "A peer's endpoint and keepalive",
                            labels=["interface", "public_key", "friendly_name"])
    peers = GaugeMetricFamily("wgpy_peers", "Peers configured on the interface",
                              labels=["interface"])
    drops = CounterMetricFamily("wgpy_drops", "Packets wgpyd dropped, by named reason",
                                labels=["interface", "reason"])
    for live in interfaces:
        name = live.state.name
        names = all_names(live.file.names, live.links)
        peers.add_metric([name], len(live.state.peers))
        for peer in live.state.peers:
            encoded = key_to_base64(peer.public_key)
            friendly = names.get(peer.public_key) or ""
            keepalive = int(peer.persistent_keepalive or 0) or None
            row = [name, encoded, ",".join(peer.allowed_ips), friendly]
            sent.add_metric(row, int(peer.tx_bytes))
            received.add_metric(row, int(peer.rx_bytes))
            handshake.add_metric(row, int(peer.last_handshake_sec))
            info.add_metric([name, encoded, friendly], {
                "endpoint": peer.endpoint or "", "persistent_keepalive": str(keepalive or 0)})
        for reason, count in (live.drops or {}).items():
            drops.add_metric([name, reason], count)

    class Families:
        def collect(self):  # prometheus-client asks each collector for its families
            yield from (sent, received, handshake, info, peers, drops)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())  # type: ignore[arg-type]
    return generate_latest(registry)


def brute_force_owner(state: DeviceState, address: bytes) -> int | None:
    """The longest prefix holding `address`; of a prefix given twice, the later peer's."""
    target = ipaddress.ip_address(address)
    best: tuple[int, int] | None = None  # (length, index)
    for index, peer in enumerate(state.peers):
        for text in peer.allowed_ips:
            network = ipaddress.ip_network(text, strict=False)
            if network.version == target.version and target in network and (
                    best is None or network.prefixlen >= best[0]):
                best = (network.prefixlen, index)
    return None if best is None else best[1]


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("seed", SEEDS)
def test_routing_table_is_the_longest_match_with_the_later_owner(seed):
    rng = random.Random(seed)
    state = random_state(rng, 30)
    table = state_routing_table(state.table)
    for _ in range(200):
        prefix = ipaddress.ip_network(random_prefix(rng), strict=False)
        address = (prefix.network_address + rng.randrange(prefix.num_addresses)).packed
        assert table.lookup(address) == brute_force_owner(state, address)


@pytest.mark.parametrize("seed", SEEDS)
def test_route_answers_as_before(seed):
    rng = random.Random(seed)
    device = reference_device(random_state(rng, 30))
    table = reference_table(device)
    addresses = [str(ipaddress.ip_network(random_prefix(rng), strict=False).network_address)
                 for _ in range(100)]
    for answer in routes(device, addresses):
        owner = table.lookup(ipaddress.ip_address(answer.address).packed)
        expected = (None, None) if owner is None else (device.peers[owner[0]], owner[1])
        assert (answer.peer, answer.prefix) == expected


@pytest.mark.parametrize("seed", SEEDS)
def test_device_config_is_what_ipaddress_parsing_made(seed):
    state = random_state(random.Random(seed), 40)
    assert device_config(state) == reference_device(state)


@pytest.mark.parametrize("seed", SEEDS)
def test_document_is_the_one_the_config_model_made(seed):
    rng = random.Random(seed)
    state = random_state(rng, 40)
    text = random_config_text(rng, state)
    links = random_links(rng, state)
    names = {record.public_key: f"peer{i}" for i, record in enumerate(state.peers)
             if rng.random() < 0.3}
    drops = rng.choice([None, {"replayed": 3, "no_key": 0}])
    fast = interface_document(state, names, drops, configured_first_prefixes(text), links)
    slow = reference_document(reference_device(state), names, drops,
                              reference_configured(text), links)
    assert fast == slow
    assert dumps_indented(fast) == json.dumps(slow, indent=2)


@pytest.mark.parametrize("seed", SEEDS)
def test_metrics_text_is_prometheus_clients(seed):
    require(importlib.util.find_spec("prometheus_client") is not None,
            "needs prometheus-client (pip install 'wgpy[test]'): the reference renders with it")
    from wgpy.cli.metrics import exposition

    rng = random.Random(seed)
    interfaces = []
    for _ in range(rng.randrange(1, 3)):
        state = random_state(rng, 20)
        names = {record.public_key: rng.choice(["phone", 'a"b\\c\nd', "é"])
                 for record in state.peers if rng.random() < 0.5}
        drops = rng.choice([None, {"replayed": rng.randrange(1 << 40), "no_key": 0}])
        interfaces.append(LiveInterface(state, drops, random_links(rng, state),
                                        PeerFile(names, {})))
    assert exposition(interfaces) == reference_metrics(interfaces)


JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.text()
                | st.floats(allow_nan=True, allow_infinity=True))
JSON_KEYS = st.text() | st.integers() | st.booleans() | st.none() | st.floats()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(JSON_KEYS, inner, max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_dumps_indented_is_json_dumps(value):
    assert dumps_indented(value) == json.dumps(value, indent=2)


def test_dumps_indented_refuses_what_json_refuses():
    for value in ({(1, 2): 3}, {"a": object()}, [b"bytes"]):
        with pytest.raises(TypeError):
            json.dumps(value, indent=2)
        with pytest.raises(TypeError):
            dumps_indented(value)
    assert dumps_indented([math.inf, -math.inf]) == json.dumps([math.inf, -math.inf], indent=2)


KEYS = [key_to_base64(bytes([n]) * 32) for n in range(3)]
FILE_LINES = st.sampled_from([
    "[Peer]", " [ peer ] ", "[PEER]#x", "[Interface]", "[Inter face]", "[Peer", "",
    "\t", "# comment", "#", "Address = 10.0.0.1/24", "DNS = 1.1.1.1", "MTU = 1420",
    "PostUp = echo publickey name [x]", "Endpoint = 192.0.2.1:51820",
    "PersistentKeepalive = 25", "PresharedKey = " + KEYS[0], "Name = not-a-comment",
    "# Name = phone", "#friendly_name=laptop ", "  #  NAME =  spaced  ", "# name=",
    "# Na me = split", "#\tfriendly_name\t=\ttabs", "# Name = x\r", "# Name\x00 = nul",
    "AllowedIPs = 10.0.0.1/32, fd::1", "Allowed IPs=10.1.0.0/16", "AllowedIPs =",
    "AllowedIPs = bad", "allowedips = 10.2.0.0/8 # comment", "AllowedIPs\t=\t::/0",
    "AllowedIPs = 10.3.0.1/33", "AllowedIPs = 10.4.0.0/16,\x00 fd::/8",
    "All\x00owedIPs = 10.5.0.0/16", "AllowedIPs = 10.6.0.1/32\r",
    *(f"PublicKey = {key}" for key in KEYS), f"Public Key={KEYS[1]}",
    f"PUBLICKEY = {KEYS[2]} # c", f"Public\x00Key = {KEYS[0]}", "PublicKey = bad",
    f"Publi\u212aey = {KEYS[1]}", f"Publ\u0130ckey = {KEYS[2]}", f"PublicKey = {KEYS[0]}\r",
    "\u212a = x", "# \u212ame = kelvin", "\u0130 [Peer]", "\u03a3\u03a3 = sigma",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(FILE_LINES, max_size=40), st.sampled_from(["\n", ""]))
def test_peer_lines_keep_what_names_and_prefixes_read(lines, end):
    text = "\n".join(lines) + end
    picked = peer_lines(text)
    assert peer_names(picked) == peer_names(text)
    assert configured_first_prefixes(picked) == configured_first_prefixes(text)
