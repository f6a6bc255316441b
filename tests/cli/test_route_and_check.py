"""`wgpy route` (which peer gets a packet) and `wgpy check` (what in config files will not
work), on files and, for route, on a device's UAPI socket."""

import os
from pathlib import Path

import pytest

from wgpy.cli.check import check_file, check_together, read
from wgpy.cli.route import routes
from wgpy.config.parser import read_config
from wgpy.core.crypto import public_key
from wgpy.core.keys import key_to_base64

from clilab import FakeUapi, run_wg, run_wgpy


def key(n: int) -> bytes:
    return bytes([n]) * 31 + bytes([0x40])


def pub(n: int) -> str:
    return key_to_base64(public_key(key(n)))


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


def interface(n: int, extra: str = "") -> str:
    return f"[Interface]\nPrivateKey = {key_to_base64(key(n))}\n{extra}"


# ---------------------------------------------------------------------- route

ROUTED = interface(1) + (
    f"\n[Peer]\nPublicKey = {pub(2)}\nEndpoint = 192.0.2.2:51820\n"
    "AllowedIPs = 10.0.0.0/24, 0.0.0.0/0\n"
    f"\n[Peer]\nPublicKey = {pub(3)}\nAllowedIPs = 10.0.0.7/32, fd00::/64\n"
    f"\n[Peer]\nPublicKey = {pub(4)}\nAllowedIPs = 10.0.0.0/24\n")  # takes it from peer 2


def test_route_follows_the_longest_prefix_and_the_last_owner(tmp_path):
    device = read_config(write(tmp_path, "wg0.conf", ROUTED))
    answers = {r.address: r for r in routes(device, ["10.0.0.7", "10.0.0.9", "8.8.8.8",
                                                     "fd00::5", "fd01::1"])}
    assert (key_to_base64(answers["10.0.0.7"].peer.public_key), answers["10.0.0.7"].prefix) \
        == (pub(3), "10.0.0.7/32")
    assert (key_to_base64(answers["10.0.0.9"].peer.public_key), answers["10.0.0.9"].prefix) \
        == (pub(4), "10.0.0.0/24")  # given twice: the later peer owns it
    assert answers["8.8.8.8"].prefix == "0.0.0.0/0"
    assert answers["fd00::5"].prefix == "fd00::/64"
    assert answers["fd01::1"].peer is None


def test_route_command_on_a_file(tmp_path):
    path = write(tmp_path, "wg0.conf", ROUTED)
    result = run_wgpy("route", path, "10.0.0.7", "8.8.8.8")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"10.0.0.7: peer {pub(3)} via 10.0.0.7/32, no endpoint (dropped as no_endpoint until "
        "the peer sends to us)",
        f"8.8.8.8: peer {pub(2)} via 0.0.0.0/0, endpoint 192.0.2.2:51820",
    ]
    unrouted = run_wgpy("route", path, "fd01::1")
    assert unrouted.returncode == 2 and "no peer (dropped as no_key" in unrouted.stdout


@pytest.mark.parametrize("args", [[], ["wg0"], ["--help"]])
def test_route_usage(args):
    result = run_wgpy("route", *args)
    assert result.returncode == 1 and "Usage:" in result.stderr and "route" in result.stderr


def test_route_rejects_a_bad_address_and_names_a_bad_file_line(tmp_path):
    path = write(tmp_path, "wg0.conf", ROUTED)
    result = run_wgpy("route", path, "10.0.0.300")
    assert result.returncode == 1 and "10.0.0.300" in result.stderr
    broken = write(tmp_path, "bad.conf", ROUTED + "AllowedIPs = 10.0.0.0/33\n")
    result = run_wgpy("route", broken, "10.0.0.1")
    assert result.returncode == 1 and f"{broken}:16: AllowedIPs:" in result.stderr


def test_route_asks_a_running_device(root_netns):
    reply = (f"private_key={key(1).hex()}\nlisten_port=51820\n"
             f"public_key={public_key(key(2)).hex()}\nendpoint=192.0.2.9:7\n"
             "allowed_ip=10.9.0.0/16\nallowed_ip=10.9.8.0/24\n"
             f"public_key={public_key(key(3)).hex()}\nallowed_ip=10.9.8.7/32\n")
    with FakeUapi(reply) as fake:
        result = run_wgpy("route", fake.name, "10.9.1.1", "10.9.8.7")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"10.9.1.1: peer {pub(2)} via 10.9.0.0/16, endpoint 192.0.2.9:7",
        f"10.9.8.7: peer {pub(3)} via 10.9.8.7/32, no endpoint (dropped as no_endpoint until "
        "the peer sends to us)",
    ]
    assert run_wgpy("route", "nosuchdevice0", "10.0.0.1").returncode == 1


# ---------------------------------------------------------------------- check


def messages(findings) -> list[tuple[int, str, str]]:
    return [(f.line, f.level, f.message) for f in findings]


def test_a_clean_pair_has_nothing_to_say(tmp_path):
    a = write(tmp_path, "a.conf", interface(1, "Address = 10.0.0.1/24\nListenPort = 51820\n")
              + f"\n[Peer]\nPublicKey = {pub(2)}\nAllowedIPs = 10.0.0.2/32\n"
              "Endpoint = 192.0.2.2:51821\n")
    b = write(tmp_path, "b.conf", interface(2, "Address = 10.0.0.2/24\nListenPort = 51821\n")
              + f"\n[Peer]\nPublicKey = {pub(1)}\nAllowedIPs = 10.0.0.0/24\n")
    configs = [read(a), read(b)]
    assert [f for c in configs for f in check_file(c)] + check_together(configs) == []
    result = run_wgpy("check", a, b)
    assert (result.returncode, result.stdout) == (0, "")
    assert "0 error(s), 0 warning(s)" in result.stderr


def test_one_file_findings_with_their_lines(tmp_path):
    path = write(tmp_path, "wg0.conf", interface(1, "Address = 10.0.0.1/24\n") + (
        f"\n[Peer]\nPublicKey = {pub(2)}\nAllowedIPs = 10.0.0.2/32, 0.0.0.0/0\n"   # 5-7
        f"\n[Peer]\nPublicKey = {pub(3)}\nAllowedIPs = 10.0.0.3/24\n"               # 9-11
        "AllowedIPs = 10.0.0.2/32\n"                                                 # 12
        f"\n[Peer]\nPublicKey = {pub(1)}\nAllowedIPs = 10.1.0.0/16\n"               # 14-16
        f"\n[Peer]\nPublicKey = {pub(2)}\n"                                          # 18-19
        f"\n[Peer]\nPublicKey = {pub(5)}\n"))                                        # 21-22
    found = messages(check_file(read(path)))
    lines = {(line, level) for line, level, _ in found}
    assert lines == {(11, "warning"), (12, "warning"), (7, "warning"), (14, "error"),
                     (18, "warning"), (21, "warning")}, found
    assert len(found) == len(lines)  # one finding per line
    text = dict(((line, message) for line, _, message in found))
    assert "host bits set: it means 10.0.0.0/24" in text[11]
    assert "10.0.0.2/32 is also in the AllowedIPs of peer" in text[12] and "line 7" in text[12]
    assert "0.0.0.0/0 but not ::/0" in text[7]
    assert "the interface itself" in text[14]
    assert "already has a [Peer] section at line 5" in text[18]
    assert "no AllowedIPs" in text[21]


def test_no_leak_warning_where_wg_quick_routes_nothing(tmp_path):
    body = f"\n[Peer]\nPublicKey = {pub(2)}\nAllowedIPs = 0.0.0.0/0\n"
    plain = write(tmp_path, "plain.conf", interface(1) + body)  # `wg setconf` file
    off = write(tmp_path, "off.conf", interface(1, "Address = 10.0.0.1/24\nTable = off\n")
                + body)
    routed = write(tmp_path, "routed.conf", interface(1, "Address = 10.0.0.1/24\n") + body)
    assert check_file(read(plain)) == check_file(read(off)) == []
    [leak] = check_file(read(routed))
    assert leak.message.startswith("AllowedIPs has 0.0.0.0/0 but not ::/0")


def test_missing_private_key_is_an_error(tmp_path):
    path = write(tmp_path, "wg0.conf", f"[Interface]\nListenPort = 1\n\n[Peer]\n"
                 f"PublicKey = {pub(2)}\nAllowedIPs = 10.0.0.2/32\n")
    assert messages(check_file(read(path))) == [
        (1, "error", "no PrivateKey: the interface cannot handshake")]


def test_mesh_mismatches_between_files(tmp_path):
    a = write(tmp_path, "a.conf", interface(1, "Address = 10.0.0.1/24\nListenPort = 51820\n")
              + f"\n[Peer]\nPublicKey = {pub(2)}\nPresharedKey = {key_to_base64(bytes(32))}\n"
              "AllowedIPs = 10.0.0.5/32\nEndpoint = 192.0.2.2:9999\n"
              f"\n[Peer]\nPublicKey = {pub(3)}\nAllowedIPs = 10.0.0.3/32\n")
    b = write(tmp_path, "b.conf", interface(2, "Address = 10.0.0.2/24\nListenPort = 51821\n")
              + f"\n[Peer]\nPublicKey = {pub(1)}\nAllowedIPs = 10.0.0.1/32\n"
              f"PresharedKey = {key_to_base64(bytes([7]) * 32)}\n")
    c = write(tmp_path, "c.conf", interface(3, "Address = 10.0.0.3/24\n"))  # lists nobody
    found = [(os.path.basename(f.file), f.line, f.level, f.message)
             for f in check_together([read(a), read(b), read(c)])]
    assert [(name, line, level) for name, line, level, _ in found] == [
        ("a.conf", 6, "error"), ("a.conf", 6, "error"), ("a.conf", 10, "error"),
        ("a.conf", 12, "error")], found
    psk, allowed, port, missing = (message for *_, message in found)
    assert "PresharedKey differs from" in psk and "b.conf:6" in psk  # said once, not twice
    assert "do not hold 10.0.0.2, the Address of" in allowed and "src_not_allowed" in allowed
    assert "Endpoint port 9999" in port and "listens on 51821" in port
    assert "has no [Peer] for this interface" in missing and "unknown_peer" in missing
    result = run_wgpy("check", a, b, c)
    assert result.returncode == 1 and result.stdout.count(": error: ") == 4


def test_unreadable_and_invalid_files_are_findings_not_crashes(tmp_path):
    bad = write(tmp_path, "bad.conf", interface(1) + "\n[Peer]\nPublicKey = nope\n")
    result = run_wgpy("check", bad, str(tmp_path / "missing.conf"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{bad}:5: error: PublicKey:")
    assert lines[1].startswith(f"{tmp_path / 'missing.conf'}:0: error: No such file")


@pytest.mark.parametrize("word", ["--help", "help", "-h"])
def test_help_is_wgs_usage_then_the_extra_commands(wireguard_go, word):
    """wg's text byte for byte (scripts may read it), then a block of wgpy's own commands,
    each of which answers its own --help with its usage."""
    wg, wgpy = run_wg(word), run_wgpy(word)
    assert (wgpy.returncode, wgpy.stderr) == (wg.returncode, wg.stderr) == (0, "")
    assert wgpy.stdout.startswith(wg.stdout)
    heading, *extras = wgpy.stdout[len(wg.stdout):].strip("\n").splitlines()
    assert heading == "Additional subcommands (wgpy only, not in wg):"
    names = [line.strip().partition(":")[0] for line in extras]
    assert names == ["show <interface> --drops", "show [<interface>] --json",
                     "show <interface> --paths", "route", "check", "mesh", "qr", "reresolve",
                     "serve", "punch"]
    for name in names[3:]:
        result = run_wgpy(name, "--help")
        assert f"sage: wg {name}" in result.stdout + result.stderr, name


def test_invalid_subcommand_prints_wgs_usage_only(wireguard_go):
    wg, wgpy = run_wg("bogus"), run_wgpy("bogus")
    assert (wgpy.returncode, wgpy.stdout, wgpy.stderr) == (wg.returncode, wg.stdout, wg.stderr)
