"""`wgpy show --json`: the schema (tests/cli/test_show_json.py pins every key and type), peer
names from config comments, and the values against the real `wg show dump` of a live wgpyd and
a live wireguard-go (drops only on wgpyd)."""

import ipaddress
import json
import os
import subprocess
import sys
import tempfile

import pytest

from wgpy.cli.directpaths import DIRECT, RELAYED, Link
from wgpy.cli.jsonview import (
    SCHEMA_VERSION,
    document,
    first_prefixes_of_lines,
    interface_document,
)
from wgpy.config.model import AllowedIP, DeviceConfig, Endpoint, PeerConfig
from wgpy.config.names import peer_names
from wgpy.config.parser import classify
from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64
from wgpy.uapi.records import PeerState
from wgpy.uapi.reply import DeviceState

from netlab import Namespace, start_wgpyd, start_wireguard_go, unique_name

INTERFACE_KEYS = {"name": str, "public_key": str, "has_private_key": bool, "listen_port": int,
                  "fwmark": (int, type(None)), "drops": (dict, type(None)), "peers": list,
                  "punch": list}
PEER_KEYS = {"public_key": str, "name": (str, type(None)), "has_preshared_key": bool,
             "endpoint": (str, type(None)), "allowed_ips": list, "latest_handshake": int,
             "transfer_rx": int, "transfer_tx": int,
             "persistent_keepalive": (int, type(None)), "path": str,
             "via": (str, type(None)), "path_since": (float, type(None))}


def configured_first_prefixes(text: str) -> dict:
    """What show --json routes each peer of a file by (jsonview.first_prefixes_of_lines)."""
    return first_prefixes_of_lines(classify(text, quick=True))


def keypair() -> tuple[str, str]:
    private = generate_private_key(os.urandom)
    return key_to_base64(private), key_to_base64(public_key(private))


def state_of(device: DeviceConfig) -> DeviceState:
    """The `get` reply's reading (uapi.reply) of a device configured as `device` is."""
    state = DeviceState(device.name)
    state.private_key, state.listen_port, state.fwmark = (device.private_key,
                                                          device.listen_port, device.fwmark)
    state.peers = [PeerState(
        peer.public_key, [str(allowed) for allowed in peer.allowed_ips], peer.preshared_key,
        None if peer.endpoint is None else str(peer.endpoint), str(peer.last_handshake_sec),
        str(peer.last_handshake_nsec), str(peer.tx_bytes), str(peer.rx_bytes),
        None if peer.persistent_keepalive is None else str(peer.persistent_keepalive), "1")
        for peer in device.peers]
    return state


def check_schema(doc: dict) -> None:
    assert set(doc) == {"schema", "interfaces"} and doc["schema"] == SCHEMA_VERSION
    for interface in doc["interfaces"]:
        assert set(interface) == set(INTERFACE_KEYS)
        for key, kind in INTERFACE_KEYS.items():
            assert isinstance(interface[key], kind), (key, interface[key])
        for peer in interface["peers"]:
            assert set(peer) == set(PEER_KEYS)
            for key, kind in PEER_KEYS.items():
                assert isinstance(peer[key], kind), (key, peer[key])


def test_peer_names_both_comment_forms_per_section():
    _, first = keypair()
    _, second = keypair()
    _, third = keypair()
    text = (f"[Interface]\n# Name = not-a-peer\nPrivateKey = {keypair()[0]}\n\n"
            f"[Peer]\n# Name = phone.example-vpn.dev\nPublicKey = {first}\n\n"
            f"[Peer]\nPublicKey = {second}\n  #friendly_name=laptop  \n\n"
            f"[Peer]\nPublicKey = {third}\n\n"
            "[Peer]\n# Name = keyless\nPublicKey = not-base64\n")
    names = {key_to_base64(key): name for key, name in peer_names(text).items()}
    assert names == {first: "phone.example-vpn.dev", second: "laptop"}


def test_document_schema_and_no_secrets():
    private = generate_private_key(os.urandom)
    psk = os.urandom(32)
    peer_key = public_key(generate_private_key(os.urandom))
    device = DeviceConfig(name="wg9", private_key=private, public_key=public_key(private),
                          listen_port=51820, fwmark=0, peers=[PeerConfig(
                              public_key=peer_key, preshared_key=psk,
                              endpoint=Endpoint("192.0.2.1", 51820), persistent_keepalive=25,
                              allowed_ips=[AllowedIP(ipaddress.ip_address("10.0.0.2"), 32)],
                              last_handshake_sec=1700000000, rx_bytes=10, tx_bytes=20)])
    doc = document([interface_document(state_of(device), {peer_key: "phone"}, {"replayed": 3})])
    check_schema(doc)
    peer = doc["interfaces"][0]["peers"][0]
    assert peer == {"public_key": key_to_base64(peer_key), "name": "phone",
                    "has_preshared_key": True, "endpoint": "192.0.2.1:51820",
                    "allowed_ips": ["10.0.0.2/32"], "latest_handshake": 1700000000,
                    "transfer_rx": 10, "transfer_tx": 20, "persistent_keepalive": 25,
                    "path": "direct", "via": None, "path_since": None}
    text = json.dumps(doc)
    for secret in (private, psk):
        assert key_to_base64(secret) not in text and secret.hex() not in text


def test_path_says_direct_relayed_or_unrouted():
    """A hub's catch-all carries a spoke's address once the spoke's own entry lost it (the
    file still says the address is the spoke's); a peer with no prefix anywhere is unrouted."""
    hub, spoke, moved, lost = (public_key(generate_private_key(os.urandom)) for _ in range(4))

    def allowed(text: str) -> list[AllowedIP]:
        address, _, cidr = text.partition("/")
        return [AllowedIP(ipaddress.ip_address(address), int(cidr))]

    private = generate_private_key(os.urandom)
    device = DeviceConfig(name="wg9", private_key=private, public_key=public_key(private),
                          listen_port=51820, peers=[
        PeerConfig(public_key=hub, allowed_ips=allowed("10.0.0.0/24")),
        PeerConfig(public_key=spoke, allowed_ips=allowed("10.0.0.4/32")),
        PeerConfig(public_key=moved),
        PeerConfig(public_key=lost)])
    file = (f"[Peer]\nPublicKey = {key_to_base64(hub)}\nAllowedIPs = 10.0.0.0/24\n"
            f"[Peer]\nPublicKey = {key_to_base64(moved)}\nAllowedIPs = 10.0.0.3/32, fd::3/128\n")
    doc = document([interface_document(state_of(device), {}, None,
                                       configured_first_prefixes(file))])
    check_schema(doc)
    paths = [(peer["path"], peer["via"]) for peer in doc["interfaces"][0]["peers"]]
    assert paths == [("direct", None), ("direct", None), ("relayed", key_to_base64(hub)),
                     ("unrouted", None)]


def test_path_since_comes_from_the_punch_agents_links():
    """A spoke's direct entry without prefixes (relayed: they sit on the hub's catch-all) is
    routed by the prefixes its link records; since when is the link's."""
    hub, relayed, direct = (public_key(generate_private_key(os.urandom)) for _ in range(3))
    private = generate_private_key(os.urandom)
    device = DeviceConfig(name="wg9", private_key=private, public_key=public_key(private),
                          listen_port=51820, peers=[
        PeerConfig(public_key=hub, allowed_ips=[AllowedIP(ipaddress.ip_address("10.0.0.0"), 24)]),
        PeerConfig(public_key=relayed),
        PeerConfig(public_key=direct,
                   allowed_ips=[AllowedIP(ipaddress.ip_address("10.0.0.4"), 32)])])
    links = {relayed: Link(relayed, ["10.0.0.3/32"], RELAYED, since=1700000000.5),
             direct: Link(direct, ["10.0.0.4/32"], DIRECT, since=1700000100.0)}
    doc = document([interface_document(state_of(device), {}, None, {}, links)])
    check_schema(doc)
    paths = [(peer["path"], peer["via"], peer["path_since"])
             for peer in doc["interfaces"][0]["peers"]]
    assert paths == [("direct", None, None),
                     ("relayed", key_to_base64(hub), 1700000000.5),
                     ("direct", None, 1700000100.0)]
    # every managed spoke, also one without an entry (relayed between attempts)
    gone = public_key(generate_private_key(os.urandom))
    links[gone] = Link(gone, ["10.0.0.5/32"], RELAYED, since=1700000200.0,
                       retry_at=1700000300.0, name="c")
    doc = document([interface_document(state_of(device), {}, None, {}, links)])
    check_schema(doc)
    punch = {entry["public_key"]: entry for entry in doc["interfaces"][0]["punch"]}
    assert punch[key_to_base64(gone)] == {
        "public_key": key_to_base64(gone), "name": "c", "path": "relayed",
        "via": key_to_base64(hub),
        "path_since": 1700000200.0, "prefixes": ["10.0.0.5/32"], "trying_since": None,
        "next_attempt": 1700000300.0}
    assert (punch[key_to_base64(direct)]["path"], punch[key_to_base64(direct)]["via"]) == (
        "direct", None)


@pytest.mark.root
@pytest.mark.parametrize("implementation", ["wgpyd", "wireguard-go"])
def test_show_json_matches_wg_dump(wireguard_go, implementation):
    iface = unique_name("wj", max_len=15)
    private, _ = keypair()
    _, peer_a = keypair()
    _, peer_b = keypair()
    config = (f"[Interface]\nPrivateKey = {private}\nListenPort = 0\n\n"
              f"[Peer]\n# Name = phone\nPublicKey = {peer_a}\n"
              "AllowedIPs = 10.94.0.2/32, fd94::2/128\n"
              "Endpoint = 192.0.2.7:51820\nPersistentKeepalive = 25\n\n"
              f"[Peer]\nPublicKey = {peer_b}\nAllowedIPs = 10.94.1.0/24\n")
    start = start_wgpyd if implementation == "wgpyd" else start_wireguard_go
    with tempfile.TemporaryDirectory() as directory, Namespace(unique_name("wgpyjson-")) as ns, \
            start(ns, iface):
        path = os.path.join(directory, f"{iface}.conf")
        with open(path, "w") as handle:
            handle.write(config)
        ns.run("wg", "setconf", iface, path)
        output = ns.run(sys.executable, "-m", "wgpy.cli.main", "show", iface, "--json",
                        "--config", path).stdout
        dump = ns.run("wg", "show", iface, "dump").stdout.splitlines()
        # the last claim wins: peer B takes A's address, so A's traffic now goes through B
        ns.run("wg", "set", iface, "peer", peer_b, "allowed-ips", "10.94.1.0/24,10.94.0.2/32")
        moved = json.loads(ns.run(sys.executable, "-m", "wgpy.cli.main", "show", iface,
                                  "--json", "--config", path).stdout)
    doc = json.loads(output)
    check_schema(doc)
    (interface,) = doc["interfaces"]
    _, public, port, fwmark = dump[0].split("\t")
    assert (interface["name"], interface["public_key"], interface["listen_port"]) == \
        (iface, public, int(port))
    assert interface["fwmark"] == (None if fwmark == "off" else int(fwmark, 0))
    assert (interface["drops"] is not None) == (implementation == "wgpyd")
    if implementation == "wgpyd":
        assert "replayed" in interface["drops"]
    by_key = {peer["public_key"]: peer for peer in interface["peers"]}
    for line in dump[1:]:
        key, psk, endpoint, allowed, handshake, rx, tx, keepalive = line.split("\t")
        peer = by_key[key]
        assert peer["endpoint"] == (None if endpoint == "(none)" else endpoint)
        assert ",".join(peer["allowed_ips"]) == allowed
        assert (peer["latest_handshake"], peer["transfer_rx"], peer["transfer_tx"]) == \
            (int(handshake), int(rx), int(tx))
        assert peer["persistent_keepalive"] == (None if keepalive == "off" else int(keepalive))
        assert peer["has_preshared_key"] == (psk != "(none)")
    assert by_key[peer_a]["name"] == "phone" and by_key[peer_b]["name"] is None
    assert [(peer["path"], peer["via"]) for peer in interface["peers"]] == [("direct", None)] * 2
    moved_paths = {peer["public_key"]: (peer["path"], peer["via"])
                   for peer in moved["interfaces"][0]["peers"]}
    assert moved_paths == {peer_a: ("relayed", peer_b), peer_b: ("direct", None)}


def test_show_json_unknown_interface_fails():
    result = subprocess.run([sys.executable, "-m", "wgpy.cli.main", "show", "wgpy-no-such",
                             "--json"], capture_output=True, text=True,
                            env={**os.environ, "WG_SOCKET_DIR": tempfile.gettempdir()})
    assert result.returncode == 1 and "Unable to access interface" in result.stderr


def test_remembered_config_file_gives_names(tmp_path, monkeypatch):
    from wgpy.cli.jsonview import read_peer_file
    from wgpy.config import names

    monkeypatch.setenv(names.STATE_DIR_ENV, str(tmp_path / "state"))
    _, peer = keypair()
    config = tmp_path / "wgx.conf"
    config.write_text(f"[Peer]\n# friendly_name = router\nPublicKey = {peer}\n")
    assert names.remembered_config_file("wgx") is None
    names.remember_config_file("wgx", str(config))
    found = read_peer_file(names.remembered_config_file("wgx")).names
    assert {key_to_base64(k): v for k, v in found.items()} == {peer: "router"}
    (tmp_path / "state" / "wgx.paths.json").write_text("{}")  # `wgpy punch`'s, if it ran
    names.forget_config_file("wgx")
    assert names.remembered_config_file("wgx") is None
    assert os.listdir(tmp_path / "state") == []
