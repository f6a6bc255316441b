"""`wgpy` against the real `wg`, on wireguard-go devices: same output, same state, same exit codes.

wireguard-go runs in a namespace with no routes and its interfaces down, so endpoints given
here are never contacted.
"""

import os
import tempfile

import pytest

from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64

from netlab import Namespace, start_wireguard_go

pytestmark = pytest.mark.root
FIELDS = ["public-key", "private-key", "listen-port", "fwmark", "peers", "preshared-keys",
          "endpoints", "allowed-ips", "latest-handshakes", "persistent-keepalive",
          "transfer", "dump"]


def keypair() -> tuple[str, str]:
    key = generate_private_key(os.urandom)
    return key_to_base64(key), key_to_base64(public_key(key))


def write(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(text)
    return path


@pytest.fixture
def lab(wireguard_go):
    """Two wireguard-go devices in one namespace (the same port cannot be given to both:
    tests that set ports use `lab2`)."""
    tag = f"{os.getpid() % 10000}"
    with Namespace(f"wgpycli-{tag}") as ns, tempfile.TemporaryDirectory() as files:
        a, b = f"wca{tag}", f"wcb{tag}"
        with start_wireguard_go(ns, a), start_wireguard_go(ns, b):
            yield ns, a, b, files


class _Pair:
    """Two namespaces, one wireguard-go device each; `run` picks the namespace by device."""

    def __init__(self, ns_a, ns_b, a, b):
        self.spaces = {a: ns_a, b: ns_b}

    def run(self, *args, **kwargs):
        iface = next(i for i in self.spaces if i in args)
        return self.spaces[iface].run(*args, **kwargs)


@pytest.fixture
def lab2(wireguard_go):
    tag = f"{os.getpid() % 10000}"
    with (Namespace(f"wgpycli-a{tag}") as ns_a, Namespace(f"wgpycli-b{tag}") as ns_b,
          tempfile.TemporaryDirectory() as files):
        a, b = f"wca{tag}", f"wcb{tag}"
        with start_wireguard_go(ns_a, a), start_wireguard_go(ns_b, b):
            yield _Pair(ns_a, ns_b, a, b), a, b, files


def run(ns, tool: str, *args: str, color: str = "never"):
    env = dict(os.environ, WG_COLOR_MODE=color)
    return ns.run(tool, *args, check=False, env=env)


def configure(ns, iface: str, files: str) -> list[str]:
    private, _ = keypair()
    psk, _ = keypair()
    peers = [keypair()[1] for _ in range(3)]
    path = write(files, f"{iface}.conf", f"""[Interface]
PrivateKey = {private}
ListenPort = 51{len(iface)}7
FwMark = 0x42

[Peer]
PublicKey = {peers[0]}
PresharedKey = {psk}
AllowedIPs = 10.0.0.0/24, fd00::/64
Endpoint = 192.0.2.1:51820
PersistentKeepalive = 25

[Peer]
PublicKey = {peers[1]}
AllowedIPs = 10.1.0.0/16
Endpoint = [2001:db8::5]:1

[Peer]
PublicKey = {peers[2]}
""")
    assert run(ns, "wg", "setconf", iface, path).returncode == 0
    return peers


def peer_order_free(text: str, *ifaces: str) -> list[str]:
    """wireguard-go lists peers in Go map order (random per request), and wg keeps that order
    among peers without a handshake: compare lines as multisets. (`show all endpoints` glues
    the interface name to whichever peer comes first, so names are dropped here.)"""
    for iface in ifaces:
        text = text.replace(f"{iface}\t", "")
    return sorted(block for chunk in text.split("\n\n") for block in chunk.splitlines())


def only_ours(text: str, args: list[str], ours: tuple[str, str]) -> str:
    """Other tests or benchmarks may run WireGuard interfaces on this machine at the same
    time (the socket directory is shared): keep the output about our two interfaces."""
    if "all" not in args and args not in ([], ["show"]):
        return text
    if len(args) < 3:  # pretty: one block per interface
        blocks = text.split("\x1b[0m")  # colour mode starts each interface with a reset
        if len(blocks) == 1:
            blocks = ["interface: " + b for b in text.split("interface: ") if b]
        # separators depend on whether another interface follows: compare blocks alone
        return "\n\n".join(b.rstrip("\n") for b in blocks
                             if any(f"{o}\n" in b or f"{o}\x1b" in b for o in ours))
    return "".join(line + "\n" for line in text.splitlines()
                   if line.split("\t", 1)[0] in ours)


def test_show_output_is_byte_identical(lab):
    ns, a, b, files = lab
    configure(ns, a, files)
    foreign = set(run(ns, "wg", "show", "interfaces").stdout.split()) - {a, b}
    for color in ("never", "always"):
        for args in ([], ["show"], ["show", "all"], ["show", a], ["show", "interfaces"],
                     ["showconf", a], *(["show", a, f] for f in FIELDS),
                     *(["show", "all", f] for f in FIELDS)):
            skip = args == ["show", "interfaces"] or (args[-1:] == ["endpoints"] and "all" in args)
            if foreign and skip:
                continue  # cannot be told apart from the other interfaces' lines
            wg, wgpy = run(ns, "wg", *args, color=color), run(ns, "wgpy", *args, color=color)
            if foreign:
                wg.stdout = only_ours(wg.stdout, args, (a, b))
                wgpy.stdout = only_ours(wgpy.stdout, args, (a, b))
            assert wg.returncode == wgpy.returncode, (args, color)
            assert peer_order_free(wg.stdout, a, b) == peer_order_free(wgpy.stdout, a, b), args
            assert len(wg.stdout) == len(wgpy.stdout), (args, color)


def test_single_peer_output_is_byte_identical(lab):
    ns, a, _, files = lab
    _, peer = keypair()
    psk = write(files, "psk1", keypair()[0])
    assert run(ns, "wg", "set", a, "listen-port", "51999", "peer", peer, "allowed-ips",
               "10.0.0.0/8,fd00::/16", "persistent-keepalive", "3725", "preshared-key",
               psk, "endpoint", "[fe80::1%lo]:7").returncode == 0
    for color in ("never", "always"):
        for args in (["show", a], ["showconf", a], *(["show", a, f] for f in FIELDS)):
            wg, wgpy = run(ns, "wg", *args, color=color), run(ns, "wgpy", *args, color=color)
            assert (wg.returncode, wg.stdout) == (wgpy.returncode, wgpy.stdout), (args, color)
    for args in (["show", a, "bogus"], ["show", "nosuch0"], ["showconf"], ["bogus"]):
        assert run(ns, "wg", *args).returncode == run(ns, "wgpy", *args).returncode, args


def test_set_commands_give_the_same_state(lab2):
    ns, a, b, files = lab2
    private, _ = keypair()
    _, peer1 = keypair()
    _, peer2 = keypair()
    key_file = write(files, "key", private + "\n")
    psk_file = write(files, "psk", keypair()[0] + "\n")
    empty = write(files, "empty", "")
    sequences = [
        ["private-key", key_file, "listen-port", "51820", "fwmark", "0x10"],
        ["peer", peer1, "allowed-ips", "10.0.0.1/32, 10.0.0.0/8,fd00::1", "endpoint",
         "192.0.2.1:1", "persistent-keepalive", "25", "preshared-key", psk_file],
        ["peer", peer2, "allowed-ips", "10.0.0.0/8", "endpoint", "[2001:db8::1]:51820"],
        ["peer", peer1, "persistent-keepalive", "off", "preshared-key", empty],
        ["fwmark", "off", "listen-port", "51821"],
        ["peer", peer2, "remove"],
        ["peer", peer1, "allowed-ips", ""],
        # failures: both tools must refuse and leave the state alone
        ["peer", peer1, "allowed-ips", "10.0.0.0/33"],
        ["peer", "not-a-key"],
        ["listen-port", "70000"],
        ["fwmark", "0xfffffffff"],
        ["peer", peer1, "persistent-keepalive", "65536"],
        ["peer", peer1, "endpoint", "192.0.2.1"],
        ["private-key", "/nonexistent/key"],
        ["bogus"],
    ]
    for args in sequences:
        wg = run(ns, "wg", "set", a, *args)
        wgpy = run(ns, "wgpy", "set", b, *args)
        assert wg.returncode == wgpy.returncode, (args, wg.stderr, wgpy.stderr)
        conf_a = run(ns, "wg", "showconf", a).stdout
        conf_b = run(ns, "wg", "showconf", b).stdout
        assert sorted(conf_a.split("\n[Peer]\n")[1:]) == sorted(conf_b.split("\n[Peer]\n")[1:])
        assert conf_a.split("\n[Peer]\n")[0] == conf_b.split("\n[Peer]\n")[0]


CORPUS = {
    "ok_basic": "[Interface]\nPrivateKey = {k}\n[Peer]\nPublicKey = {p}\nAllowedIPs = 10.0.0.1\n",
    "ok_case_and_spaces": "[interface]\nprivatekey={k}\nListen Port = 51820 # comment\n"
                          "[PEER]\npublickey = {p}\nallowed ips = 10.0.0.0/8 , fd00::/8\n"
                          "AllowedIPs = 10.1.0.0/16\nPersistentKeepalive = off\n",
    "ok_endpoint_v6": "[Peer]\nPublicKey = {p}\nEndpoint = [2001:db8::1]:51820\n",
    "ok_fwmark_hex": "[Interface]\nFwMark = 0x1234\n",
    "ok_host_bits": "[Peer]\nPublicKey = {p}\nAllowedIPs = 10.1.2.3/8\n",
    "ok_comment_only": "# nothing here\n\n",
    "ok_two_interface_sections": "[Interface]\nListenPort=1\n[Interface]\nListenPort=2\n",
    "bad_prefix": "[Peer]\nPublicKey = {p}\nAllowedIPs = 10.0.0.0/33\n",
    "bad_v6_prefix": "[Peer]\nPublicKey = {p}\nAllowedIPs = fd00::/129\n",
    "bad_ip": "[Peer]\nPublicKey = {p}\nAllowedIPs = 10.0.0.256/32\n",
    "bad_key": "[Interface]\nPrivateKey = abc\n",
    "bad_empty_value": "[Interface]\nPrivateKey =\n",
    "bad_unknown_key": "[Interface]\nAddress = 10.0.0.1/24\n",
    "bad_no_section": "ListenPort = 1\n",
    "bad_peer_without_key": "[Peer]\nAllowedIPs = 10.0.0.0/8\n",
    "bad_keepalive": "[Peer]\nPublicKey = {p}\nPersistentKeepalive = 70000\n",
    "bad_endpoint_no_port": "[Peer]\nPublicKey = {p}\nEndpoint = 192.0.2.1\n",
    "ok_port_wraps_like_glibc": "[Interface]\nListenPort = 65536\n",
    "bad_port": "[Interface]\nListenPort = 0x10\n",
    "bad_fwmark": "[Interface]\nFwMark = -1\n",
    "bad_interface_key_in_peer": "[Peer]\nPublicKey = {p}\nListenPort = 1\n",
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_config_corpus_accept_reject_matches_wg_setconf(lab2, name):
    ns, a, b, files = lab2
    private, _ = keypair()
    _, peer = keypair()
    path = write(files, f"{name}.conf", CORPUS[name].format(k=private, p=peer))
    wg = run(ns, "wg", "setconf", a, path)
    wgpy = run(ns, "wgpy", "setconf", b, path)
    assert wg.returncode == wgpy.returncode, (wg.stderr, wgpy.stderr)
    assert (wg.returncode == 0) == name.startswith("ok_")
    if wgpy.returncode:
        assert f"{path}:" in wgpy.stderr and "Traceback" not in wgpy.stderr
    def state(iface: str) -> list[str]:  # random ports (setconf without one) are not compared
        text = run(ns, "wg", "showconf", iface).stdout
        return [line for line in text.splitlines() if not line.startswith("ListenPort")]

    assert state(a) == state(b)


def test_addconf_and_syncconf_match(lab2):
    ns, a, b, files = lab2
    peers = configure(ns, a, files)
    configure(ns, b, files)
    # make both devices identical first
    conf = write(files, "same.conf", run(ns, "wg", "showconf", a).stdout)
    assert run(ns, "wg", "setconf", b, conf).returncode == 0
    _, extra = keypair()
    add = write(files, "add.conf", f"[Peer]\nPublicKey = {extra}\nAllowedIPs = 10.9.0.0/16\n")
    sync = write(files, "sync.conf", f"[Interface]\nListenPort = 1234\n[Peer]\n"
                                     f"PublicKey = {peers[1]}\nAllowedIPs = 10.8.0.0/16\n")
    for command, path in (("addconf", add), ("syncconf", sync)):
        assert run(ns, "wg", command, a, path).returncode == 0
        assert run(ns, "wgpy", command, b, path).returncode == 0
        conf_a = run(ns, "wg", "showconf", a).stdout
        conf_b = run(ns, "wg", "showconf", b).stdout
        assert sorted(conf_a.split("\n[Peer]\n")) == sorted(conf_b.split("\n[Peer]\n"))
