"""Numbers in every external input (wg config files, wg-quick files, `wgpy set` words, UAPI
requests, `wgpy mesh` ports) are ASCII decimal digits, as wg (strtoul) and wireguard-go
(strconv) read them. Python's int() and str.isdigit() are not that: int() reads fullwidth and
Arabic-Indic digits as numbers, and '²'.isdigit() holds while int('²') raises. Each such value
gets the same clear error as any other bad value: a located ConfigError, an errno reply, one
line on stderr; never a traceback, never a silently accepted number. (Digit strings past
int()'s 4,300-digit limit: tests/fuzz/test_fuzz_regressions.py.)"""

import os
import subprocess
import sys

import pytest

from wgpy.cli import mesh
from wgpy.config.parser import ConfigError, parse_config, parse_set_arguments
from wgpy.quick import main as quick_main
from wgpy.quick import netlink
from wgpy.quick.main import QuickError, parse_options
from wgpy.uapi.framing import Reply, RequestStream

# superscript two, fullwidth three, Arabic-Indic three, mixed, fullwidth twelve
NOT_ASCII = ["\u00b2", "\uff13", "\u0663", "1\u0663", "\uff11\uff12"]
HUGE = "9" * 4400
PEER_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PEER = f"[Peer]\nPublicKey = {PEER_KEY}\n"


@pytest.mark.parametrize("digits", NOT_ASCII)
@pytest.mark.parametrize("text, key", [
    ("[Interface]\nFwMark = {}\n", "FwMark"),
    (PEER + "PersistentKeepalive = {}\n", "PersistentKeepalive"),
    (PEER + "AllowedIPs = 10.0.0.0/{}\n", "AllowedIPs"),
    (PEER + "Endpoint = 192.0.2.1:{}\n", "Endpoint"),
])
def test_non_ascii_digits_in_config_files_are_located_errors(digits, text, key, monkeypatch):
    # getaddrinfo's "service not supported" is retried, as wg retries it: not here
    monkeypatch.setenv("WG_ENDPOINT_RESOLUTION_RETRIES", "0")
    text = text.format(digits)
    for quick in (False, True):
        with pytest.raises(ConfigError) as caught:
            parse_config(text, filename="bad.conf", quick=quick)
        assert str(caught.value).startswith(f"bad.conf:{text.count(chr(10))}: {key}: ")


@pytest.mark.parametrize("digits", [*NOT_ASCII, HUGE])
def test_wg_quick_mtu_must_be_ascii_digits(digits, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^bad.conf:2: MTU: "):
        parse_config(f"[Interface]\nMTU = {digits}\n", filename="bad.conf", quick=True)
    # wgpy-quick judges MTU at `up` (strip passes it through, as wg-quick), before any link
    path = tmp_path / "wgbad0.conf"
    path.write_text(f"[Interface]\nMTU = {digits}\n")
    options = parse_options(str(path))
    monkeypatch.setattr(quick_main, "add_interface", pytest.fail)
    with pytest.raises(QuickError) as caught:
        quick_main.cmd_up(options)
    assert str(caught.value) == f"{path}:2: MTU: `{digits}' is not a number"


def test_wg_quick_mtu_in_range_still_reads():
    assert parse_config("[Interface]\nMTU = 01380\n", quick=True).quick.mtu == 1380


@pytest.mark.parametrize("digits", NOT_ASCII)
@pytest.mark.parametrize("words", [
    ["fwmark", "{}"],
    ["peer", PEER_KEY, "persistent-keepalive", "{}"],
    ["peer", PEER_KEY, "allowed-ips", "10.0.0.0/{}"],
])
def test_non_ascii_digits_in_wg_set_words_are_config_errors(digits, words):
    words = [word.format(digits) for word in words]
    with pytest.raises(ConfigError, match=rf"^{words[-2]}: "):
        parse_set_arguments(words)


@pytest.mark.parametrize("digits", NOT_ASCII)
@pytest.mark.parametrize("line", [
    "listen_port={}", "fwmark={}",
    "public_key=" + "b9" * 32 + "\npersistent_keepalive_interval={}",
    "public_key=" + "b9" * 32 + "\nallowed_ip=10.0.0.0/{}",
    "public_key=" + "b9" * 32 + "\nallowed_ip=10.0.0.{}/32",
    "public_key=" + "b9" * 32 + "\nendpoint=192.0.2.1:{}",
    "public_key=" + "b9" * 32 + "\nendpoint=[fe80::1%{}]:51820",
])
def test_non_ascii_digits_in_uapi_set_get_einval(digits, line):
    stream = RequestStream()
    stream.receive(f"set=1\n{line.format(digits)}\n\n".encode())
    reply = stream.next_request()
    assert isinstance(reply, Reply) and reply.data == b"errno=-22\n\n"  # nothing applied


@pytest.mark.parametrize("digits", [*NOT_ASCII, HUGE, "0", "65536"])
def test_mesh_port_must_be_ascii_digits(digits):
    with pytest.raises(ValueError, match="is not a port"):
        mesh._port(digits)
    assert mesh._port("0051820") == 51820


@pytest.mark.parametrize("address",
                         ["10.0.0.1/\u00b2", "10.0.0.1/\uff13", f"10.0.0.1/{HUGE}", "x/24"])
def test_wg_quick_bad_address_is_a_netlink_failure_not_a_traceback(address):
    with pytest.raises(netlink.NetlinkFailure, match="any valid prefix is expected"):
        netlink.add_address("lo", address)


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ))


@pytest.mark.parametrize("digits", ["\uff13", HUGE])
def test_commands_answer_one_line_never_a_traceback(digits, tmp_path):
    path = tmp_path / "wg.conf"
    path.write_text(f"[Interface]\nListenPort = 1\nFwMark = {digits}\n")
    result = run("wgpy.cli.main", "set", "wgnosuch0", "fwmark", digits)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("fwmark: ") and result.stderr.count("\n") == 1
    result = run("wgpy.cli.main", "check", str(path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{path}:3: error: FwMark:" in result.stdout
