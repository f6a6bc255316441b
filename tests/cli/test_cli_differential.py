"""`wgpy` against the real `wg` on live wireguard-go devices: same output, same resulting state,
same exit codes.

Device `a` is driven by wg, device `b` by wgpy, with identical commands; states are compared
through `wg showconf`. wireguard-go lists peers in Go map order (random per request), so
where several peers are shown their blocks or lines are compared as multisets; single-peer
output is compared byte for byte. The devices' links are down and have no routes, so the
endpoints given here are never contacted.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import have_root_netns, require
from wgpy.cli.show import FIELDS
from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64

from clilab import device_pair, run_wg, run_wgpy

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def pair():
    ok, reason = have_root_netns()
    require(ok, reason)
    require(shutil.which("wireguard-go") is not None and shutil.which("wg") is not None,
            "needs wireguard-go and wg")
    with tempfile.TemporaryDirectory() as files, device_pair(files) as devices:
        yield devices


def keypair() -> tuple[str, str]:
    key = generate_private_key(os.urandom)
    return key_to_base64(key), key_to_base64(public_key(key))


def write(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(text)
    return path


def both_setconf(pair, text: str) -> None:
    path = write(pair.files, "both.conf", text)
    assert run_wg("setconf", pair.a, path).returncode == 0
    assert run_wg("setconf", pair.b, path).returncode == 0


def state(iface: str) -> tuple[str, list[str]]:
    head, *peers = run_wg("showconf", iface).stdout.split("\n[Peer]\n")
    return head, sorted(peers)


def multiset(text: str, iface: str) -> list[str]:
    """Lines of all peer blocks, order-free (`show all endpoints` glues the interface name to
    whichever peer comes first, so names are dropped)."""
    return sorted(text.replace(f"{iface}\t", "").splitlines())


MULTI_PEER = """[Interface]
PrivateKey = {private}
ListenPort = 51827
FwMark = 0x42

[Peer]
PublicKey = {p0}
PresharedKey = {psk}
AllowedIPs = 10.0.0.0/24, fd00::/64
Endpoint = 192.0.2.1:51820
PersistentKeepalive = 25

[Peer]
PublicKey = {p1}
AllowedIPs = 10.1.0.0/16, ::ffff:10.2.0.1/128
Endpoint = [2001:db8::5]:1

[Peer]
PublicKey = {p2}
"""


def test_show_on_a_live_device_matches(pair):
    text = MULTI_PEER.format(private=keypair()[0], psk=keypair()[0],
                             **{f"p{i}": keypair()[1] for i in range(3)})
    both_setconf(pair, text)
    for color in ("never", "always"):
        env = {"WG_COLOR_MODE": color}
        for args in (["show", pair.a], ["showconf", pair.a],
                     *(["show", pair.a, f] for f in FIELDS)):
            wg, wgpy = run_wg(*args, env=env), run_wgpy(*args, env=env)
            assert wgpy.returncode == wg.returncode == 0, args
            assert multiset(wgpy.stdout, pair.a) == multiset(wg.stdout, pair.a), (args, color)
            assert len(wgpy.stdout) == len(wg.stdout), (args, color)


def test_single_peer_output_is_byte_identical(pair):
    private, _ = keypair()
    _, peer = keypair()
    psk = write(pair.files, "psk1", keypair()[0])
    key = write(pair.files, "key1", private)
    both_setconf(pair, "[Interface]\n")
    assert run_wg("set", pair.a, "listen-port", "51999", "private-key", key, "peer", peer,
                  "allowed-ips", "10.0.0.0/8,fd00::/16", "persistent-keepalive", "3725",
                  "preshared-key", psk, "endpoint", "[fe80::1%lo]:7").returncode == 0
    for color in ("never", "always"):
        for args in (["show", pair.a], ["showconf", pair.a],
                     *(["show", pair.a, f] for f in FIELDS)):
            env = {"WG_COLOR_MODE": color}
            wg, wgpy = run_wg(*args, env=env), run_wgpy(*args, env=env)
            assert (wgpy.returncode, wgpy.stdout, wgpy.stderr) == \
                (wg.returncode, wg.stdout, wg.stderr), (args, color)


def test_set_sequences_give_the_same_state_and_exit_codes(pair):
    private, _ = keypair()
    _, peer1 = keypair()
    _, peer2 = keypair()
    key_file = write(pair.files, "key", private + "\n")
    psk_file = write(pair.files, "psk", keypair()[0] + "\n")
    empty = write(pair.files, "empty", "")
    both_setconf(pair, "[Interface]\nListenPort = 40001\n")
    sequences = [
        ["private-key", key_file, "listen-port", "51820", "fwmark", "0x10"],
        ["peer", peer1, "allowed-ips", "10.0.0.1/32, 10.0.0.0/8,fd00::1", "endpoint",
         "192.0.2.1:1", "persistent-keepalive", "25", "preshared-key", psk_file],
        ["peer", peer2, "allowed-ips", "10.0.0.0/8", "endpoint", "[2001:db8::1]:51820"],
        ["peer", peer1, "persistent-keepalive", "off", "preshared-key", empty],
        ["fwmark", "off", "listen-port", "51821"],
        ["peer", peer2, "remove"],
        ["peer", peer1, "allowed-ips", ""],
        ["peer", peer2, "remove"],  # removing an absent peer is fine
        ["private-key", "/dev/null"],
        # failures: both tools refuse and leave the state alone
        ["peer", peer1, "allowed-ips", "10.0.0.0/33"],
        ["peer", "not-a-key"],
        ["fwmark", "0xfffffffff"],
        ["peer", peer1, "persistent-keepalive", "65536"],
        ["peer", peer1, "endpoint", "192.0.2.1"],
        ["private-key", "/nonexistent/key"],
        ["peer", peer1, "listen-port", "1"],
        ["bogus"],
        # digits int() reads and strtoul does not; strings past int()'s 4,300-digit limit
        ["fwmark", "\uff15"], ["listen-port", "\u00b2"], ["fwmark", "9" * 4400],
        ["peer", peer1, "persistent-keepalive", "\u0665"],
        ["peer", peer1, "allowed-ips", "10.0.0.0/\uff18"],
        ["peer", peer1, "persistent-keepalive", "0" * 4400 + "5"],  # strtoul reads 5
    ]
    for args in sequences:
        wg = run_wg("set", pair.a, *args)
        wgpy = run_wgpy("set", pair.b, *args)
        assert wg.returncode == wgpy.returncode, (args, wg.stderr, wgpy.stderr)
        assert state(pair.a) == state(pair.b), args


def test_a_port_in_use_fails_alike(pair):
    """The device refuses (EADDRINUSE): the error comes back through UAPI the same way."""
    both_setconf(pair, "[Interface]\nListenPort = 40002\n")
    blocker = pair.namespaces[1].popen("python3", "-c", "import socket,time\n"
                                       "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
                                       "s.bind(('::',40003));print(1,flush=True);time.sleep(30)",
                                       stdout=subprocess.PIPE)
    other = pair.namespaces[0].popen("python3", "-c", "import socket,time\n"
                                     "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
                                     "s.bind(('::',40003));print(1,flush=True);time.sleep(30)",
                                     stdout=subprocess.PIPE)
    try:
        assert blocker.stdout is not None and other.stdout is not None
        blocker.stdout.readline()
        other.stdout.readline()
        wg = run_wg("set", pair.a, "listen-port", "40003")
        wgpy = run_wgpy("set", pair.b, "listen-port", "40003")
        assert (wgpy.returncode, wgpy.stderr) == (wg.returncode, wg.stderr)
        assert wg.returncode == 1 and "Address already in use" in wg.stderr
    finally:
        for process in (blocker, other):
            process.kill()
            process.wait()


def test_addconf_and_syncconf_match(pair):
    text = MULTI_PEER.format(private=keypair()[0], psk=keypair()[0],
                             **{f"p{i}": keypair()[1] for i in range(3)})
    both_setconf(pair, text)
    peer1 = text.split("PublicKey = ")[2].split("\n")[0]
    _, extra = keypair()
    add = write(pair.files, "add.conf", f"[Peer]\nPublicKey = {extra}\nAllowedIPs = 10.9.0.0/16\n")
    sync = write(pair.files, "sync.conf", f"[Interface]\nListenPort = 1234\n[Peer]\n"
                                          f"PublicKey = {peer1}\nAllowedIPs = 10.8.0.0/16\n")
    empty_sync = write(pair.files, "empty.conf", "[Interface]\nListenPort = 1235\n")
    for command, path in (("addconf", add), ("syncconf", sync), ("syncconf", empty_sync)):
        wg, wgpy = run_wg(command, pair.a, path), run_wgpy(command, pair.b, path)
        assert wg.returncode == wgpy.returncode == 0
        assert state(pair.a) == state(pair.b), command


def test_console_script_runs(pair):
    """The installed `wgpy` entry point (not just the in-process main) behaves the same."""
    env = {**os.environ, "WG_COLOR_MODE": "never"}
    for args in (["show", pair.a, "dump"], ["show", "nosuchdevice0"], []):
        wg = subprocess.run(["wg", *args], capture_output=True, text=True, env=env)
        wgpy = subprocess.run(["wgpy", *args], capture_output=True, text=True, env=env)
        assert wgpy.returncode == wg.returncode, args
        if args and args[0] == "show" and args[1] == pair.a:
            assert multiset(wgpy.stdout, pair.a) == multiset(wg.stdout, pair.a)


def test_drops_on_a_wireguard_go_device_says_it_has_none(pair):
    """wireguard-go refuses wgpyd's own request (it closes the connection): `--drops` says so
    plainly, and the device goes on serving `wg` as before."""
    before = run_wg("show", pair.a, "dump").stdout
    result = run_wgpy("show", pair.a, "--drops")
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == f"{pair.a}: no drop counters: this device is not wgpyd (only " \
        "wgpyd counts dropped packets by reason)\n"
    assert run_wg("show", pair.a, "dump").stdout == before
