"""Config parsing without root: wg's rules, located errors, quick extras, round trip."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgpy.config.model import DeviceConfig
from wgpy.config.parser import (
    ConfigError,
    parse_allowed_ips,
    parse_config,
    parse_fwmark,
    parse_persistent_keepalive,
    parse_set_arguments,
)
from wgpy.config.writer import format_showconf
from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64

KEY = key_to_base64(generate_private_key(os.urandom))
PEER = key_to_base64(public_key(generate_private_key(os.urandom)))


def test_error_names_file_line_and_key():
    text = f"[Interface]\nPrivateKey = {KEY}\n\n[Peer]\nPublicKey = {PEER}\n# x\n" \
           "AllowedIPs = 10.0.0.0/33\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, filename="wg0.conf")
    assert str(info.value) == "wg0.conf:7: AllowedIPs: '10.0.0.0/33' is not a valid prefix"
    assert (info.value.file, info.value.line, info.value.key) == ("wg0.conf", 7, "AllowedIPs")


def test_whitespace_case_comments_and_accumulation():
    text = (f"[INTERFACE]\n  private key = {KEY}  # trailing comment\nlistenport=51820\n"
            f"[peer]\nPublicKey={PEER}\nAllowed IPs = 10.0.0.1, fd00::/64\n"
            "allowedips = 10.1.0.0/16\nPersistentKeepalive = off\nEndpoint = [::1]:51820\n")
    device = parse_config(text)
    peer = device.peers[0]
    assert [str(a) for a in peer.allowed_ips] == ["10.0.0.1/32", "fd00::/64", "10.1.0.0/16"]
    assert peer.persistent_keepalive == 0 and str(peer.endpoint) == "[::1]:51820"
    assert device.listen_port == 51820 and device.replace_peers


def test_quick_extras_only_in_quick_mode():
    text = (f"[Interface]\nPrivateKey = {KEY}\nAddress = 10.0.0.1/24, fd00::1/64\n"
            "DNS = 1.1.1.1\nMTU = 1380\nTable = off\nPostUp = echo %i up\nSaveConfig = true\n")
    with pytest.raises(ConfigError, match=":3: Address"):
        parse_config(text)
    device = parse_config(text, quick=True)
    assert device.quick.addresses == ["10.0.0.1/24", "fd00::1/64"]
    assert device.quick.mtu == 1380 and device.quick.table == "off"
    assert device.quick.post_up == ["echo %i up"]  # hooks keep their spaces
    assert device.quick.save_config


@pytest.mark.parametrize("text", [
    "ListenPort = 1\n",
    "[Interface]\nPrivateKey =\n",
    "[Interface]\nBogus = 1\n",
    "[Peer]\nAllowedIPs = 10.0.0.0/8\n",
    f"[Peer]\nPublicKey = {PEER}\nEndpoint = 192.0.2.1\n",
    f"[Peer]\nPublicKey = {PEER}\nAllowedIPs = 10.0.0.256\n",
    f"[Peer]\nPublicKey = {PEER}\nPersistentKeepalive = 65536\n",
])
def test_rejections(text):
    with pytest.raises(ConfigError):
        parse_config(text)


def test_value_parsers():
    assert parse_fwmark("0x10") == 16 and parse_fwmark("off") == 0 and parse_fwmark("7") == 7
    for bad in ("-1", "0x100000000", "x", "1a"):
        with pytest.raises(ConfigError):
            parse_fwmark(bad)
    assert parse_persistent_keepalive("25") == 25
    assert parse_allowed_ips("") == []
    assert [str(a) for a in parse_allowed_ips("10.1.2.3/8,::/0")] == ["10.1.2.3/8", "::/0"]


def test_set_arguments_grammar(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    device = parse_set_arguments(["listen-port", "1", "private-key", str(key_file), "peer",
                                  PEER, "remove", "peer", PEER, "allowed-ips", ""])
    assert device.listen_port == 1 and device.private_key is not None
    assert device.peers[0].remove and device.peers[1].replace_allowed_ips
    with pytest.raises(ConfigError):
        parse_set_arguments(["endpoint", "1.2.3.4:5"])  # needs a peer first
    with pytest.raises(ConfigError):
        parse_set_arguments(["peer", PEER, "listen-port", "1"])  # interface key after peer


keys = st.builds(lambda: key_to_base64(generate_private_key(os.urandom)))
prefixes = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: f"{t[0] >> 24}.{(t[0] >> 16) & 255}.{(t[0] >> 8) & 255}.{t[0] & 255}/{t[1]}")


@given(st.lists(st.tuples(keys, st.lists(prefixes, max_size=4),
                          st.integers(0, 65535)), max_size=4),
       st.integers(1, 65535), st.integers(0, 2**32 - 1))
def test_showconf_text_round_trips(peers, port, mark):
    device = DeviceConfig(private_key=generate_private_key(os.urandom), listen_port=port,
                          fwmark=mark)
    text = f"[Interface]\nPrivateKey = {key_to_base64(device.private_key)}\n" \
           f"ListenPort = {port}\nFwMark = {mark}\n"
    for key, allowed, keepalive in peers:
        text += f"[Peer]\nPublicKey = {key}\nPersistentKeepalive = {keepalive}\n"
        if allowed:
            text += "AllowedIPs = " + ", ".join(allowed) + "\n"
    parsed = parse_config(text)
    again = parse_config(format_showconf(parsed))
    assert format_showconf(again) == format_showconf(parsed)
    assert len(again.peers) == len(peers)
