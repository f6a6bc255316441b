"""The same `wg` commands against wireguard-go and wgpyd give the same state and exit codes.

Each daemon runs in a namespace of its own (both bind their ports from the start, as
wireguard-go does) with no routes and the interface down, so nothing they are told
(endpoints, keepalives) ever leaves its namespace.
"""

import os
import socket
import tempfile

import pytest

from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64

from netlab import Namespace, socket_in_namespace, start_wgpyd, start_wireguard_go

pytestmark = pytest.mark.root


def keypair() -> tuple[str, str]:
    key = generate_private_key(os.urandom)
    return key_to_base64(key), key_to_base64(public_key(key))


def normalize_dump(text: str) -> list[str]:
    """wireguard-go lists peers in Go map order: compare the peer lines as a set."""
    lines = text.splitlines()
    return lines[:1] + sorted(lines[1:])


def normalize_showconf(text: str) -> list[str]:
    interface, *peers = text.split("\n[Peer]\n")
    return [interface, *sorted(peers)]


class Spaces:
    """The namespace of each daemon, found from the interface named in a command."""

    def __init__(self, **by_iface: Namespace) -> None:
        self.by_iface = by_iface

    def run(self, *args: str, check: bool = True):
        iface = next(a for a in args if a in self.by_iface)
        return self.by_iface[iface].run(*args, check=check)


@pytest.fixture
def daemons(wireguard_go):
    tag = f"{os.getpid() % 10000}"
    with (Namespace(f"wgpyu-g{tag}") as go_ns, Namespace(f"wgpyu-p{tag}") as py_ns,
          tempfile.TemporaryDirectory() as files):
        go_iface, py_iface = f"wug{tag}", f"wup{tag}"
        with start_wireguard_go(go_ns, go_iface), start_wgpyd(py_ns, py_iface):
            yield Spaces(**{go_iface: go_ns, py_iface: py_ns}), go_iface, py_iface, files


def both(ns, go_iface, py_iface, *args: str):
    """Run `wg ARGS` with IFACE substituted for each daemon; results must agree."""
    results = []
    for iface in (go_iface, py_iface):
        argv = [iface if a == "IFACE" else a for a in args]
        results.append(ns.run("wg", *argv, check=False))
    go, py = results
    assert go.returncode == py.returncode, (args, go.stderr, py.stderr)
    return go, py


def assert_same_state(ns, go_iface, py_iface):
    go, py = both(ns, go_iface, py_iface, "showconf", "IFACE")
    assert normalize_showconf(go.stdout) == normalize_showconf(py.stdout)
    go, py = both(ns, go_iface, py_iface, "show", "IFACE", "dump")
    assert normalize_dump(go.stdout) == normalize_dump(py.stdout)
    for field in ("public-key", "private-key", "listen-port", "fwmark", "peers",
                  "preshared-keys", "endpoints", "allowed-ips", "persistent-keepalive"):
        go, py = both(ns, go_iface, py_iface, "show", "IFACE", field)
        assert sorted(go.stdout.splitlines()) == sorted(py.stdout.splitlines()), field


def write(files: str, name: str, text: str) -> str:
    path = os.path.join(files, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(text)
    return path


def test_wg_set_sequences_match_wireguard_go(daemons):
    ns, go_iface, py_iface, files = daemons
    private, _ = keypair()
    _, peer1 = keypair()
    _, peer2 = keypair()
    psk, _ = keypair()
    key_file = write(files, "key", private + "\n")
    psk_file = write(files, "psk", psk + "\n")
    steps = [
        ("set", "IFACE", "private-key", key_file, "listen-port", "51900", "fwmark", "0x1234"),
        ("set", "IFACE", "peer", peer1, "allowed-ips", "10.0.0.0/24,fd00::1/64,10.9.9.9/8",
         "endpoint", "192.0.2.1:51820", "persistent-keepalive", "25"),
        ("set", "IFACE", "peer", peer2, "allowed-ips", "10.0.0.0/24", "preshared-key", psk_file,
         "endpoint", "[2001:db8::1]:51821"),
        ("set", "IFACE", "peer", peer1, "allowed-ips", "fd00::/64,10.0.0.0/8"),
        ("set", "IFACE", "peer", peer2, "persistent-keepalive", "off", "endpoint",
         "192.0.2.7:1"),
        ("set", "IFACE", "fwmark", "off", "listen-port", "51901"),
        ("set", "IFACE", "peer", peer1, "remove"),
        ("set", "IFACE", "peer", peer1, "allowed-ips", ""),
        ("set", "IFACE", "peer", peer2, "allowed-ips", "0.0.0.0/0,::/0"),
        # an IPv4-mapped endpoint is kept as given (show, showconf and dump)
        ("set", "IFACE", "peer", peer2, "endpoint", "[::ffff:192.0.2.9]:51822"),
        ("set", "IFACE", "peer", peer2, "endpoint", "[::FFFF:c000:20a]:51823"),
    ]
    for step in steps:
        both(ns, go_iface, py_iface, *step)
        assert_same_state(ns, go_iface, py_iface)
    go, py = both(ns, go_iface, py_iface, "show", "IFACE", "endpoints")
    assert go.stdout.count("\n") == py.stdout.count("\n") == 2
    assert "\t[::ffff:192.0.2.10]:51823\n" in py.stdout


def test_port_in_use_fails_the_same_way(daemons):
    ns, go_iface, py_iface, _ = daemons
    holders = []
    try:
        port = 0
        for iface in (go_iface, py_iface):  # the same busy port in each namespace
            holder = socket_in_namespace(ns.by_iface[iface], socket.AF_INET6, socket.SOCK_DGRAM)
            holders.append(holder)
            holder.bind(("::", port))
            port = holder.getsockname()[1]
        go, py = both(ns, go_iface, py_iface, "set", "IFACE", "listen-port", str(port))
        assert go.returncode != 0
        assert "Address already in use" in go.stderr and "Address already in use" in py.stderr
    finally:
        for holder in holders:
            holder.close()


def test_setconf_addconf_syncconf_match(daemons):
    ns, go_iface, py_iface, files = daemons
    private, _ = keypair()
    peers = [keypair()[1] for _ in range(4)]
    base = write(files, "base.conf", f"""[Interface]
PrivateKey = {private}
ListenPort = 51910

[Peer]
PublicKey = {peers[0]}
AllowedIPs = 10.1.0.0/16, fd01::/48
Endpoint = 192.0.2.10:51820

[Peer]
PublicKey = {peers[1]}
AllowedIPs = 10.2.0.0/16
PersistentKeepalive = 15
Endpoint = [::ffff:192.0.2.11]:51820
""")
    extra = write(files, "extra.conf", f"""[Peer]
PublicKey = {peers[2]}
AllowedIPs = 10.1.0.0/16
[Peer]
PublicKey = {peers[1]}
AllowedIPs = 10.3.0.0/16
""")
    sync = write(files, "sync.conf", f"""[Interface]
PrivateKey = {private}
ListenPort = 51911
[Peer]
PublicKey = {peers[3]}
AllowedIPs = 10.4.0.0/16
[Peer]
PublicKey = {peers[1]}
AllowedIPs = 10.2.0.0/16
""")
    for args in (("setconf", "IFACE", base), ("addconf", "IFACE", extra),
                 ("syncconf", "IFACE", sync), ("setconf", "IFACE", base)):
        both(ns, go_iface, py_iface, *args)
        assert_same_state(ns, go_iface, py_iface)
