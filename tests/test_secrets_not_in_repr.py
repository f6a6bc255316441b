"""No object that holds a private key, a preshared key or handshake secrets shows them in
repr(): a repr ends up in logs, tracebacks and debugger output.

Every class of the package is enumerated: one whose repr is object's (address only) cannot
leak; every other one must either be checked here on an instance holding known secrets, or be
listed as holding none. A new class with a repr therefore fails this test until it is sorted.
"""

import base64
import importlib
import inspect
import pkgutil
from enum import Enum

import wgpy
from wgpy.cli import check, mesh, route
from wgpy.config import save
from wgpy.config.model import DeviceConfig, PeerConfig
from wgpy.config.parser import classify, parse_config, parse_set_arguments, quick_lines
from wgpy.core import noise
from wgpy.core.crypto import clamp_private_key, public_key
from wgpy.inmemory import Pair, ipv4_packet
from wgpy.quick.main import parse_options
from wgpy.uapi import framing
from wgpy.uapi.protocol import parse_set
from wgpy.uapi.reply import read_reply

PRIVATE = clamp_private_key(bytes(range(1, 33)))
PEER_PRIVATE = clamp_private_key(bytes(range(40, 72)))
PSK = bytes(range(100, 132))
PUBLIC, PEER_PUBLIC = public_key(PRIVATE), public_key(PEER_PRIVATE)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def forms(secret: bytes) -> list[str]:
    """How a secret could show in a repr: raw bytes (escaped as repr escapes them), hex,
    base64."""
    return [repr(secret)[2:-1], secret.hex(), b64(secret)]


def assert_hidden(obj: object, secrets: list[bytes]) -> None:
    text = repr(obj)
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"{type(obj).__name__} shows a secret: {text[:200]}"


CONFIG = f"""[Interface]
PrivateKey = {b64(PRIVATE)}
ListenPort = 51820

[Peer]
PublicKey = {b64(PEER_PUBLIC)}
PresharedKey = {b64(PSK)}
AllowedIPs = 10.0.0.2/32
Endpoint = 192.0.2.1:51820
"""


def config_samples(tmp_path) -> list[object]:
    device = parse_config(CONFIG)
    key_file, psk_file = tmp_path / "private", tmp_path / "psk"
    key_file.write_text(b64(PRIVATE) + "\n")
    psk_file.write_text(b64(PSK) + "\n")
    set_device = parse_set_arguments(["private-key", str(key_file), "peer", b64(PEER_PUBLIC),
                                      "preshared-key", str(psk_file)])
    quick_file = tmp_path / "wgsecret0.conf"
    quick_file.write_text(CONFIG.replace("[Interface]\n", "[Interface]\nAddress = 10.0.0.1/24\n"))
    peer = device.peers[0]
    return [
        device, peer, set_device, set_device.peers[0],
        DeviceConfig(private_key=PRIVATE, peers=[PeerConfig(PEER_PUBLIC, preshared_key=PSK)]),
        *classify(CONFIG, False), *save._sections(CONFIG, False), *quick_lines(CONFIG),
        parse_options(str(quick_file)),
        check.ConfigFile(str(quick_file), device, [check.PeerSection(peer, 5)], 1, PUBLIC),
        check.PeerSection(peer, 5),
        route.Route("10.0.0.2", peer, "10.0.0.2/32"),
        mesh.Node("a", None, 51820, mesh.ipaddress.ip_interface("10.0.0.1/24"), PRIVATE),
    ]


def uapi_samples() -> list[object]:
    request = parse_set([f"private_key={PRIVATE.hex()}", f"public_key={PEER_PUBLIC.hex()}",
                         f"preshared_key={PSK.hex()}", "endpoint=192.0.2.1:51820"])
    reply, _ = read_reply("wg0", f"private_key={PRIVATE.hex()}\npublic_key={PEER_PUBLIC.hex()}\n"
                                 f"preshared_key={PSK.hex()}\nerrno=0\n\n")
    return [request, request.peers[0], framing.Set(request), *request.device_operations,
            *request.peers[0].operations, reply, *reply.peers]


def core_samples() -> tuple[list[object], list[bytes]]:
    """A live pair mid-handshake (chaining key set) and after it, with a preshared key."""
    pair = Pair(psk=PSK)
    a, b = pair.a, pair.b
    pair.send(a, ipv4_packet(a.address, b.address))
    handshake = a.peer.handshake
    secrets = [a.device.private_key, b.device.private_key, PSK, handshake.chaining_key,
               handshake.precomputed_static_static]
    initiation = pair.wire[0][2]
    received = noise.open_initiation(b.device.identity, initiation)
    assert received is not None
    secrets.append(received.chaining_key)
    samples: list[object] = [a.device.identity, handshake, received, a.peer, a.device, a]
    pair.run()
    samples += [a.peer.keypairs.current, a.peer.keypairs, b.peer.handshake]
    return samples, secrets


def test_config_objects_hide_private_and_preshared_keys(tmp_path):
    for sample in config_samples(tmp_path):
        assert_hidden(sample, [PRIVATE, PSK])


def test_uapi_requests_hide_private_and_preshared_keys():
    for sample in uapi_samples():
        assert_hidden(sample, [PRIVATE, PSK])
    # what the repr still shows: which operations a request carries
    assert "SetPresharedKey" in repr(uapi_samples()[1])


def test_core_objects_hide_keys_and_handshake_secrets():
    samples, secrets = core_samples()
    assert all(len(secret) == 32 for secret in secrets)
    for sample in samples:
        assert_hidden(sample, secrets)


def test_mesh_hides_its_keys():
    node = mesh.Node("a", None, 51820, mesh.ipaddress.ip_interface("10.0.0.1/24"), PRIVATE)
    plan = mesh.Mesh([node], mesh.ipaddress.ip_network("10.0.0.0/24"), None, 25,
                     {frozenset({"a", "b"}): PSK}, [])
    assert_hidden(plan, [PRIVATE, PSK])


# Classes with a repr of their own that hold no key material (and why).
NO_SECRETS = {
    "wgpy.config.model.Endpoint", "wgpy.config.model.AllowedIP",  # addresses
    "wgpy.config.model.QuickConfig",  # wg-quick's extras: addresses, DNS, hooks
    "wgpy.cli.check.Finding",  # a message about a file line
    "wgpy.uapi.framing.Get", "wgpy.uapi.framing.Reply",  # get or wgpy_get / an errno reply
    "wgpy.io.udp._Source",  # a sticky source address: control messages, interface index
    "wgpy.io.lanes._Open",  # an open lane: its socket, endpoint, arrival address, last use
    "wgpy.cli.reresolve.NamedEndpoint",  # a peer's public key and its endpoint hostname
    "wgpy.core.events.PeerEvent",  # what happened, a peer's public key, an endpoint
    # wgpy punch: public keys, endpoints, prefixes, times (PeerConfig's repr hides its psk,
    # and the changes it decides never carry one); the hub poller's repr is Thread's
    *(f"wgpy.cli.directpaths.{name}" for name in ("HubPeer", "HubView", "Link", "Step",
                                                  "Timers")),
    "wgpy.cli.punch.HubPoller",
    # show --json and serve: a device read (its DeviceState's repr is object's: no key),
    # drop counters, punch links, peer names and prefixes; JSON key texts
    "wgpy.cli.jsonview.LiveInterface", "wgpy.cli.jsonview.PeerFile", "wgpy.cli.jsontext._Keys",
    # set operations without a key: flags, an endpoint, an interval, a prefix
    *(f"wgpy.uapi.protocol.{name}" for name in (
        "UpdateOnly", "RemovePeer", "ReplaceAllowedIPs", "ReplacePeers", "SetEndpoint",
        "SetPersistentKeepalive", "AddAllowedIP")),
}


def package_classes() -> list[type]:
    classes = []
    for info in pkgutil.walk_packages(wgpy.__path__, "wgpy."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                classes.append(cls)
    return classes


def test_every_class_with_a_repr_is_checked_or_holds_no_secret(tmp_path):
    samples = config_samples(tmp_path) + uapi_samples() + core_samples()[0]
    checked = {type(sample) for sample in samples} | {mesh.Mesh}
    unsorted = []
    for cls in package_classes():
        if cls.__repr__ is object.__repr__ or issubclass(cls, (Enum, BaseException)):
            continue  # object's repr shows no field; enums and errors carry no keys
        name = f"{cls.__module__}.{cls.__qualname__}"
        if cls not in checked and name not in NO_SECRETS:
            unsorted.append(name)
    assert unsorted == [], "check these classes' repr here, or list them in NO_SECRETS"
