"""`wg` and `wgpy` against the same scripted UAPI socket: byte-identical `show` output for
states a live device can't be put into on demand (handshake ages, byte counters in every
unit, handshake-ordered peers, odd address forms, extension keys), identical handling of
broken replies, and byte-identical `set` requests for the same command line or file.
"""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wgpy.cli.show import FIELDS, wall_clock_seconds

from clilab import BASE_ENV, FakeUapi, Result, run_wg, run_wgpy

pytestmark = pytest.mark.root
CONFIGS = Path(__file__).parent / "configs"

KEYS = [bytes([i]) * 32 for i in range(1, 8)]
PRIVATE = bytes(range(32))


def peer(key: bytes, **fields: object) -> str:
    lines = [f"public_key={key.hex()}"]
    lines += [f"{name}={value}" for name, value in fields.items()]
    return "".join(line + "\n" for line in lines)


def busy_device(now: int) -> str:
    """Seven peers covering show.c's branches; handshakes out of order on purpose."""
    return (
        f"private_key={PRIVATE.hex()}\nlisten_port=51820\nfwmark=3054\n"
        + peer(KEYS[0], preshared_key="00" * 32, protocol_version=1,
               last_handshake_time_sec=0, last_handshake_time_nsec=0, tx_bytes=0, rx_bytes=0,
               persistent_keepalive_interval=0)
        + peer(KEYS[1], preshared_key="ab" * 32, endpoint="192.0.2.1:51820",
               last_handshake_time_sec=now - 3725, last_handshake_time_nsec=5,
               rx_bytes=1023, tx_bytes=1024, persistent_keepalive_interval=25,
               allowed_ip="10.0.0.0/24", some_future_key="x")
        + "allowed_ip=fd00::/64\nallowed_ip=::ffff:10.1.2.3/128\nallowed_ip=::1.2.3.4/128\n"
        + peer(KEYS[2], endpoint="[2001:db8::1]:1", last_handshake_time_sec=now - 5,
               last_handshake_time_nsec=1, rx_bytes=1536, tx_bytes=5 * 2**20 + 12345,
               persistent_keepalive_interval=65535, allowed_ip="0.0.0.0/0")
        + peer(KEYS[3], endpoint="[::ffff:192.0.2.9]:7", last_handshake_time_sec=now - 5,
               last_handshake_time_nsec=900, rx_bytes=3 * 2**30 + 7, tx_bytes=7 * 2**40,
               persistent_keepalive_interval=3600)
        + peer(KEYS[4], endpoint="[fe80::1%lo]:9", last_handshake_time_sec=now - 400 * 86400,
               rx_bytes=2**64 - 1, tx_bytes=1)
        + peer(KEYS[5], last_handshake_time_sec=now + 100)  # clock went backwards
        + peer(KEYS[6], last_handshake_time_sec=now, allowed_ip="10.9.0.0/16")
    )


def same_output(args: list[str], env: dict | None = None) -> tuple[Result, Result]:
    """wgpy run between two runs of wg. Times in the output are relative to the clock, so
    when the two wg runs disagree a second boundary fell inside the bracket and it is run
    again; when they agree, wgpy (reading the same clock in between) must match them."""
    for _ in range(5):
        before = run_wg(*args, env=env)
        wgpy = run_wgpy(*args, env=env)
        after = run_wg(*args, env=env)
        if before == after:
            return before, wgpy
    pytest.fail(f"wg {args} never gave the same output twice in a row")


@pytest.fixture
def busy(root_netns):
    with FakeUapi(busy_device(wall_clock_seconds())) as fake:
        yield fake


@pytest.mark.parametrize("color", ["never", "always"])
def test_show_is_byte_identical(busy, color):
    env = {"WG_COLOR_MODE": color}
    for args in (["show", busy.name], *(["show", busy.name, f] for f in FIELDS),
                 ["showconf", busy.name]):
        wg, wgpy = same_output(args, env)
        assert (wgpy.returncode, wgpy.stdout, wgpy.stderr) == \
            (wg.returncode, wg.stdout, wg.stderr), args
    assert "peer" in wg.stdout or "PublicKey" in wg.stdout  # the device really was read


def test_show_with_keys_unhidden(busy):
    env = {"WG_HIDE_KEYS": "never"}
    wg, wgpy = same_output(["show", busy.name], env)
    assert wgpy.stdout == wg.stdout and "(hidden)" not in wg.stdout


def _our_block(text: str, name: str) -> str:
    """Our interface's part of `show all` (other tests' devices may come and go)."""
    blocks = text.split("interface: ")
    return next(b for b in blocks if b.startswith(f"{name}\n"))


def test_show_all_includes_the_device_identically(busy):
    wg, wgpy = same_output(["show", "all"])
    assert _our_block(wgpy.stdout, busy.name) == _our_block(wg.stdout, busy.name)
    for field in FIELDS:
        wg, wgpy = same_output(["show", "all", field])
        ours = [line for line in wgpy.stdout.splitlines() if line.startswith(busy.name)]
        theirs = [line for line in wg.stdout.splitlines() if line.startswith(busy.name)]
        assert ours == theirs and theirs, field
    assert busy.name in run_wgpy("show", "interfaces").stdout.split()


def test_drops_come_from_wgpyds_own_request(root_netns):
    with FakeUapi(peer(KEYS[0]), drops="drop_bad_mac1=7\ndrop_replayed=0\n") as fake:
        result = run_wgpy("show", fake.name, "--drops")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "bad_mac1  7\nreplayed  0\n"


def test_no_drop_counters_is_said_but_not_an_error(root_netns):
    with FakeUapi(peer(KEYS[0])) as fake:
        result = run_wgpy("show", fake.name, "--drops")
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == f"{fake.name}: no drop counters: this device is not wgpyd (only " \
        "wgpyd counts dropped packets by reason)\n"


BROKEN_REPLIES = {
    "no_errno": "listen_port=1\n\n",
    "negative_errno": "errno=-22\n\n",
    "errno_set": "errno=22\n\n",
    "no_blank_line": "listen_port=1\nerrno=0\n",
    "empty": "",
    "line_without_equals": "listen_port\nerrno=0\n\n",
    "bad_private_key": "private_key=zz\nerrno=0\n\n",
    "port_too_big": "listen_port=65536\nerrno=0\n\n",
    "signed_port": "listen_port=+1\nerrno=0\n\n",
    "allowed_ip_without_mask": f"public_key={KEYS[0].hex()}\nallowed_ip=10.0.0.1\nerrno=0\n\n",
    "allowed_ip_bad_mask": f"public_key={KEYS[0].hex()}\nallowed_ip=10.0.0.1/33\nerrno=0\n\n",
    "endpoint_without_port": f"public_key={KEYS[0].hex()}\nendpoint=1.2.3.4\nerrno=0\n\n",
    "peer_key_before_peer": "preshared_key=zz\nerrno=0\n\n",
    "device_key_after_peer": f"public_key={KEYS[0].hex()}\nlisten_port=zz\nerrno=0\n\n",
    "only_unknown_keys": "a=b\nfoo=\nerrno=0\n\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN_REPLIES))
def test_broken_replies_are_handled_as_wg_handles_them(root_netns, name):
    with FakeUapi(raw=BROKEN_REPLIES[name]) as fake:
        for args in (["show", fake.name], ["showconf", fake.name], ["show", fake.name, "dump"]):
            wg, wgpy = run_wg(*args), run_wgpy(*args)
            assert (wgpy.returncode, wgpy.stdout, wgpy.stderr) == \
                (wg.returncode, wg.stdout, wg.stderr), args


# ---------------------------------------------------------------------- set requests


@pytest.fixture
def files(tmp_path):
    key = "yJeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSHs="
    paths = {"key": tmp_path / "key", "psk": tmp_path / "psk", "empty": tmp_path / "empty",
             "spaced": tmp_path / "spaced", "short": tmp_path / "short",
             "trailing": tmp_path / "trailing"}
    paths["key"].write_text(key + "\n")
    paths["psk"].write_text("OHm7e0NbBTIWUdrv03TNxoHcBvqmXjdOODN7iMoEbWo=")
    paths["empty"].write_text("")
    paths["spaced"].write_text(key + " \n\t\n")
    paths["short"].write_text(key[:20])
    paths["trailing"].write_text(key + "x")
    return {name: str(path) for name, path in paths.items()}


P1 = "tJ8MEngY2D8fcS22p//vSb/5NiEfSVIqD0/qAb040Bg="
P2 = "MCEmyakwpKpuSpvOwiHZeLoH0nTmz3sO4wc/H1t7klA="

SET_COMMANDS = [
    ["listen-port", "51820"],
    ["listen-port", "ntp", "fwmark", "0x10"],
    ["fwmark", "off", "private-key", "{key}"],
    ["private-key", "{empty}"],
    ["private-key", "/dev/null"],
    ["private-key", "{spaced}"],
    ["peer", P1],
    ["peer", P1, "remove"],
    ["peer", P1, "remove", "peer", P2, "endpoint", "localhost:9"],
    ["peer", P1, "allowed-ips", ""],
    ["peer", P1, "allowed-ips", " 10.0.0.1 , fd00::/64,::ffff:1.2.3.4", "allowed-ips", "::/0"],
    ["peer", P1, "endpoint", "[fe80::1%lo]:51820", "persistent-keepalive", "off"],
    ["peer", P1, "endpoint", "[::ffff:192.0.2.1]:1", "persistent-keepalive", "25"],
    ["peer", P1, "preshared-key", "{psk}", "peer", P2, "preshared-key", "/dev/null"],
    ["listen-port", "1", "peer", P1, "peer", P2, "remove", "allowed-ips", "10.0.0.0/8"],
    # refused before anything is sent
    ["peer", P1, "listen-port", "1"],
    ["endpoint", "1.2.3.4:5"],
    ["peer"],
    ["peer", P1, "allowed-ips"],
    ["peer", "not-a-key"],
    ["peer", P1 + " "],
    ["remove"],
    ["bogus"],
    ["private-key", "{short}"],
    ["private-key", "{trailing}"],
    ["private-key", "/nonexistent/key"],
    ["peer", P1, "allowed-ips", "10.0.0.0/33"],
    ["peer", P1, "persistent-keepalive", "65536"],
    ["peer", P1, "endpoint", "nonexistent.invalid:1"],
    ["fwmark", "0x"],
    ["listen-port", ""],
]


@pytest.mark.parametrize("index", range(len(SET_COMMANDS)))
def test_set_sends_the_same_request_as_wg(root_netns, files, index):
    args = [word.format(**files) for word in SET_COMMANDS[index]]
    with FakeUapi() as fake:
        wg = run_wg("set", fake.name, *args)
        wgpy = run_wgpy("set", fake.name, *args)
        assert wgpy.returncode == wg.returncode, (wg.stderr, wgpy.stderr)
        assert len(fake.requests) == (0 if wg.returncode else 2)
        if fake.requests:
            assert fake.requests[0] == fake.requests[1]


def test_set_usage_and_device_errors_match(root_netns):
    with FakeUapi(set_errno=22) as fake:
        for args in (["set"], ["set", fake.name], ["set", fake.name, "listen-port", "1"],
                     ["setconf", fake.name], ["showconf"], ["show", fake.name, "bogus"],
                     ["show", "a", "b", "c"], ["show", "interfaces", "x"], ["show", "--help"],
                     ["genkey", "x"], ["pubkey", "x"], ["bogus"], ["help", "x"],
                     ["show", "a/b"], ["show", "nosuchdevice0"], ["showconf", "nosuchdevice0"],
                     ["set", "nosuchdevice0", "listen-port", "1"]):
            wg, wgpy = run_wg(*args), run_wgpy(*args)
            assert (wgpy.returncode, wgpy.stdout, wgpy.stderr) == \
                (wg.returncode, wg.stdout, wg.stderr), args


SETCONF_FILES = sorted(p.name for p in CONFIGS.glob("ok_*.conf"))


@pytest.mark.parametrize("name", SETCONF_FILES)
@pytest.mark.parametrize("command", ["setconf", "addconf"])
def test_setconf_sends_the_same_request_as_wg(root_netns, command, name):
    path = str(CONFIGS / name)
    with FakeUapi() as fake:
        assert run_wg(command, fake.name, path).returncode == 0
        assert run_wgpy(command, fake.name, path).returncode == 0
        assert fake.requests[0] == fake.requests[1]


@pytest.mark.parametrize("running", [[], [1, 2, 3], [0, 4, 5, 6], [5]])
def test_syncconf_sends_the_same_request_as_wg(root_netns, tmp_path, running):
    """Peers on the device but not in the file are removed (in wg's order); the rest is
    applied without replacing peers."""
    config = tmp_path / "sync.conf"
    config.write_text("[Interface]\nListenPort = 1\n" + "".join(
        f"[Peer]\nPublicKey = {base64.b64encode(KEYS[i]).decode()}\n"
        f"AllowedIPs = 10.{i}.0.0/16\n" for i in (3, 1, 5)))
    with FakeUapi("".join(peer(KEYS[i]) for i in running)) as fake:
        assert run_wg("syncconf", fake.name, str(config)).returncode == 0
        assert run_wgpy("syncconf", fake.name, str(config)).returncode == 0
        assert fake.requests[0] == fake.requests[1]


def test_pubkey_and_genkey_match_wg(tmp_path):
    private = "yJeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSHs="
    for text in (private, private + "\n", private + "\n\0\0 \n", private[:-1], private + "x",
                 "", private.replace("y", "!"), private[:43] + "\0"):
        wg = _tool(["wg", "pubkey"], text)
        wgpy = _tool(["wgpy", "pubkey"], text)
        assert (wgpy.returncode, wgpy.stdout) == (wg.returncode, wg.stdout), repr(text)
        assert wgpy.stderr.replace("wgpy", "wg") == wg.stderr, repr(text)
    for command in ("genkey", "genpsk"):
        target = tmp_path / command
        with open(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644), "w") as out:
            os.fchmod(out.fileno(), 0o644)
            result = subprocess.run(["wgpy", command], stdout=out, stderr=subprocess.PIPE,
                                    text=True)
        assert result.returncode == 0 and "world accessible" in result.stderr
        key = target.read_text().strip()
        assert _tool(["wg", "pubkey"], key).returncode == 0


def _tool(argv: list[str], stdin: str) -> Result:
    result = subprocess.run(argv, input=stdin.encode(), capture_output=True)
    return Result(result.returncode, result.stdout.decode(), result.stderr.decode())


def big_device(peers: int) -> str:
    """A hub in wireguard-go's layout (what the regular reader takes), keys in both cases."""
    lines = [f"private_key={PRIVATE.hex()}", "listen_port=51820"]
    for index in range(peers):
        key = index.to_bytes(4, "big") * 8
        lines += [f"public_key={key.hex() if index % 2 else key.hex().upper()}",
                  f"preshared_key={(key if index % 3 == 0 else bytes(32)).hex()}",
                  "protocol_version=1"]
        if index % 5:
            lines.append(f"endpoint=198.18.{index >> 8 & 255}.{index & 255}:51820"
                         if index % 4 else f"endpoint=[2001:db8::{index:x}]:1")
        lines += [f"last_handshake_time_sec={index * 7 % 13}", "last_handshake_time_nsec=0",
                  f"tx_bytes={index * 1000}", f"rx_bytes={index}",
                  f"persistent_keepalive_interval={25 if index % 4 == 0 else 0}",
                  f"allowed_ip=100.64.{index >> 8 & 255}.{index & 255}/32",
                  f"allowed_ip=fd00:64::{index:x}/128"]
    return "".join(line + "\n" for line in lines)


def test_the_wgpy_command_prints_a_big_device_whole_and_ends_quietly_on_a_closed_pipe(
        root_netns):
    """The console script's entry (not main() in this process): it leaves without the
    interpreter's teardown after `show`, so its output must be flushed first, all of it,
    and a reader that goes away early must not make it complain."""
    command = [sys.executable, "-m", "wgpy.cli.main"]
    # as a shell runs it: with PYTHONUNBUFFERED (set here) a write cut short by the closed
    # pipe is dropped by CPython's unbuffered stdout instead of failing
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    env.update(BASE_ENV, WG_HIDE_KEYS="never")
    with FakeUapi(big_device(3000)) as fake:
        for args in (["show", fake.name, "dump"], ["show", fake.name], ["showconf", fake.name]):
            ours = subprocess.run([*command, *args], capture_output=True, text=True, env=env,
                                  timeout=60)
            theirs = subprocess.run(["wg", *args], capture_output=True, text=True, env=env,
                                    timeout=60)
            assert (ours.returncode, ours.stdout, ours.stderr) == \
                (theirs.returncode, theirs.stdout, theirs.stderr), args
            assert len(ours.stdout) > 100_000
        reader = subprocess.Popen([*command, "show", fake.name, "dump"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert reader.stdout is not None and reader.stderr is not None
        reader.stdout.read(10)
        reader.stdout.close()  # gone before the rest is written
        assert reader.wait(timeout=60) == 1
        assert reader.stderr.read() == b""
