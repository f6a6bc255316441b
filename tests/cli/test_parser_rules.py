"""The config parser without root: located errors, wg's whitespace/case/comment rules as
properties, round trips through showconf and the comment-keeping save writer, strip.
(Accept/reject against the real wg is in test_corpus_differential.py.)"""

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wgpy.config.model import AllowedIP, DeviceConfig, Endpoint, PeerConfig, QuickConfig
from wgpy.config.parser import (
    ConfigError,
    parse_config,
    parse_set_arguments,
    read_config,
    strip_quick,
)
from wgpy.config.save import update_config_text
from wgpy.config.values import parse_fwmark, parse_key_file, parse_persistent_keepalive
from wgpy.config.writer import format_quick, format_showconf

CONFIGS = Path(__file__).parent / "configs"
KEY = "yJeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSHs="
PEER = "tJ8MEngY2D8fcS22p//vSb/5NiEfSVIqD0/qAb040Bg="


def test_error_names_file_line_and_key():
    text = f"[Interface]\nPrivateKey = {KEY}\n\n[Peer]\nPublicKey = {PEER}\n# x\n" \
           "AllowedIPs = 10.0.0.0/33\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, filename="wg0.conf")
    assert str(info.value) == "wg0.conf:7: AllowedIPs: '10.0.0.0/33' is not a valid prefix"
    assert (info.value.file, info.value.line, info.value.key) == ("wg0.conf", 7, "AllowedIPs")


def test_missing_file_and_missing_public_key_are_located(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.conf: No such file"):
        read_config(str(tmp_path / "nope.conf"))
    with pytest.raises(ConfigError, match=r"^x.conf:3: a peer is missing a public key$"):
        parse_config(f"[Peer]\nPublicKey = {PEER}\n[Peer]\nAllowedIPs = 10.0.0.1\n",
                     filename="x.conf")


def _verdicts(name: str) -> tuple[bool, bool]:
    """(wg accepts, wg-quick accepts) as the corpus file's name says."""
    for prefix, verdicts in (("quick_ok_", (False, True)), ("quick_bad_", (False, False)),
                             ("ok_", (True, True)), ("bad_", (False, False))):
        if name.startswith(prefix):
            return verdicts
    raise AssertionError(f"corpus file without a verdict prefix: {name}")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.conf")), ids=lambda p: p.name)
def test_corpus_expectations_without_the_real_tools(path, monkeypatch):
    """The corpus verdicts (checked against wg in the differential test) hold here too; every
    rejection names the file and a line."""
    monkeypatch.setenv("WG_ENDPOINT_RESOLUTION_RETRIES", "0")
    verdicts = []
    for quick in (False, True):
        try:
            read_config(str(path), quick=quick)
            verdicts.append(True)
        except ConfigError as exc:
            assert str(exc).startswith(f"{path}:") and exc.line is not None
            verdicts.append(False)
    expected = _verdicts(path.name)
    if path.name == "ok_nul_ends_line.conf":  # wg-quick drops the NUL and joins the line
        expected = (True, False)
    assert tuple(verdicts) == expected


def test_quick_keys_follow_wg_quick():
    text = ("[Interface]\nPrivateKey = " + KEY + "\nAddress = 10.0.0.1/24, fd00::1/64\n"
            "address = 10.9.0.1/32 10.9.0.2/32\nDNS = 1.1.1.1, example.com,2606:4700::1111\n"
            "MTU = 1380\nTable = off\nPostUp = echo %i up  # gone\nPostUp = a=b\n"
            "SaveConfig = TRUE\n")
    with pytest.raises(ConfigError, match=r":3: Address: .*wg-quick's"):
        parse_config(text)
    quick = parse_config(text, quick=True).quick
    assert quick == QuickConfig(
        addresses=["10.0.0.1/24", "fd00::1/64", "10.9.0.1/32", "10.9.0.2/32"],
        dns=["1.1.1.1", "2606:4700::1111"], dns_search=["example.com"], mtu=1380, table="off",
        post_up=["echo %i up", "a=b"], save_config=True)
    stripped = strip_quick(text)
    assert stripped == f"[Interface]\nPrivateKey = {KEY}\n\n"
    assert parse_config(stripped).private_key == parse_config(text, quick=True).private_key


def test_set_arguments_grammar(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    device = parse_set_arguments(["listen-port", "1", "private-key", str(key_file), "peer",
                                  PEER, "remove", "peer", PEER, "allowed-ips", ""])
    assert device.listen_port == 1 and device.private_key is not None
    assert device.peers[0].remove and device.peers[1].replace_allowed_ips
    assert device.peers[1].allowed_ips == []
    for bad in (["endpoint", "1.2.3.4:5"], ["peer", PEER, "listen-port", "1"], ["remove"],
                ["peer"], ["peer", PEER, "allowed-ips"], ["peer", " " + PEER]):
        with pytest.raises(ConfigError):
            parse_set_arguments(bad)


def test_key_files(tmp_path):
    cases = {"plain": (KEY, True), "newline": (KEY + "\n \t\n", True), "empty": ("", True),
             "short": (KEY[:43], False), "trailing": (KEY + " x", False),
             "nul": (KEY[:20] + "\0" + KEY[21:], False)}
    for name, (text, ok) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        if ok:
            assert len(parse_key_file(str(path))) == 32, name
        else:
            with pytest.raises(ConfigError):
                parse_key_file(str(path))
    assert parse_key_file(str(tmp_path / "empty")) == bytes(32)


def test_number_values():
    assert parse_fwmark("0x10") == 16 and parse_fwmark("OFF") == 0 and parse_fwmark("07") == 7
    assert parse_persistent_keepalive("Off") == 0 and parse_persistent_keepalive("25") == 25
    for bad in ("-1", "0x100000000", "x", "1a", "0X1", "٣", "0x_1", " 1"):
        with pytest.raises(ConfigError):
            parse_fwmark(bad)


# ---------------------------------------------------------------------- properties

keys = st.binary(min_size=32, max_size=32)
ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
allowed = st.one_of(
    st.tuples(ipv4, st.integers(0, 32)), st.tuples(ipv6, st.integers(0, 128))
).map(lambda t: AllowedIP(*t))
endpoints = st.one_of(
    st.tuples(ipv4, st.integers(0, 65535)).map(lambda t: Endpoint(str(t[0]), t[1])),
    st.tuples(st.sampled_from(["2001:db8::1", "fd00::5:1", "::1"]), st.integers(0, 65535))
    .map(lambda t: Endpoint(*t)),
)
peers = st.builds(PeerConfig, public_key=keys, preshared_key=st.none() | keys,
                  endpoint=st.none() | endpoints,
                  persistent_keepalive=st.none() | st.integers(1, 65535),
                  allowed_ips=st.lists(allowed, max_size=4))
devices = st.builds(DeviceConfig, private_key=st.none() | keys,
                    listen_port=st.none() | st.integers(1, 65535),
                    fwmark=st.none() | st.integers(1, 2**32 - 1),
                    peers=st.lists(peers, max_size=4, unique_by=lambda p: p.public_key))


@settings(max_examples=60, deadline=None)
@given(devices)
def test_showconf_round_trips(device):
    parsed = parse_config(format_showconf(device))
    assert format_showconf(parsed) == format_showconf(device)
    assert [p.public_key for p in parsed.peers] == [p.public_key for p in device.peers]
    assert [p.allowed_ips for p in parsed.peers] == [p.allowed_ips for p in device.peers]


@st.composite
def mangled(draw, device: DeviceConfig) -> str:
    """showconf text rewritten the ways wg tolerates: key case, whitespace anywhere inside
    keys and values, comments after values, lists split over repeated lines, CRLF."""
    out = []
    for line in format_showconf(device).splitlines():
        if line.startswith("AllowedIPs = ") and draw(st.booleans()):
            out.extend(f"AllowedIPs = {item}" for item in line[13:].split(", "))
            continue
        if draw(st.booleans()):  # key names and section headers are case-insensitive
            name, sep, value = line.partition("=")
            line = "".join(ch.swapcase() if draw(st.booleans()) else ch for ch in name) \
                + sep + value
        if "=" in line and draw(st.booleans()):
            index = draw(st.integers(0, len(line)))
            line = line[:index] + draw(st.sampled_from([" ", "\t", "\v", "\f", "\r"])) + \
                line[index:]
        if line and draw(st.booleans()):
            line += draw(st.sampled_from([" # note", "#", "\t# AllowedIPs = 1.2.3.4/33"]))
        out.append(line)
    return draw(st.sampled_from(["\n", "\r\n"])).join(out) + "\n"


@settings(max_examples=60, deadline=None)
@given(st.data(), devices)
def test_wg_tolerances_do_not_change_meaning(data, device):
    text = data.draw(mangled(device))
    assert format_showconf(parse_config(text)) == format_showconf(device)


@settings(max_examples=40, deadline=None)
@given(devices, devices, st.lists(st.sampled_from(["# a comment", "", "  # indented"]),
                                  min_size=3, max_size=3))
def test_save_keeps_unchanged_text_and_writes_changes(original, updated, comments):
    original.quick = QuickConfig(addresses=["10.0.0.1/24"], post_up=["echo up"])
    lines = format_quick(original).splitlines()
    text = "\n".join([lines[0], comments[0], *lines[1:3], comments[1], *lines[3:],
                      comments[2]]) + "\n"
    # saving the state a file already describes changes nothing
    assert update_config_text(text, parse_config(text, quick=True)) == text
    # saving another state gives a file that parses to that state
    updated.quick = original.quick
    saved = update_config_text(text, updated)
    # (kept peers stay where they were, new ones are appended: compare peers as a set)
    head, *peers = format_quick(parse_config(saved, quick=True)).split("[Peer]\n")
    expected_head, *expected_peers = format_quick(updated).split("[Peer]\n")
    assert head == expected_head
    assert sorted(p.strip() for p in peers) == sorted(p.strip() for p in expected_peers)
    assert comments[0] in saved.splitlines()


def test_save_keeps_comments_names_and_order():
    text = (f"# office\n[Interface]\nPrivateKey = {KEY}\nAddress = 10.0.0.1/24  # me\n"
            "ListenPort = 51820\n\n# laptop\n[Peer]\n"
            f"PublicKey = {PEER}\nAllowedIPs = 10.0.0.2   # laptop\nEndpoint = localhost:5\n\n"
            "# phone (going away)\n[Peer]\n"
            "PublicKey = MCEmyakwpKpuSpvOwiHZeLoH0nTmz3sO4wc/H1t7klA=\n")
    device = parse_config(text, quick=True)
    device.listen_port = 51821
    device.peers[0].allowed_ips.append(AllowedIP(ipaddress.ip_address("10.9.0.0"), 16))
    device.peers[0].persistent_keepalive = 25
    device.peers.pop()
    saved = update_config_text(text, device)
    assert saved == (
        f"# office\n[Interface]\nPrivateKey = {KEY}\nAddress = 10.0.0.1/24  # me\n"
        "ListenPort = 51821\n\n# laptop\n[Peer]\n"
        f"PublicKey = {PEER}\nAllowedIPs = 10.0.0.2/32, 10.9.0.0/16 # laptop\n"
        "Endpoint = localhost:5\nPersistentKeepalive = 25\n\n")
