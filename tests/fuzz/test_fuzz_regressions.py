"""Inputs that `bench/fuzz.py` found crashing, each kept so the crash cannot come back.

Each test names the fuzz target that found it; the input is the one the fuzzer saved (trimmed
to what matters). The contract they check is the targets' (bench/fuzz_targets.py): bad input
gets the documented error type (ConfigError located at file and line, KeyFormatError, an errno
reply), never a bare ValueError.
"""

import pytest

from wgpy.config.parser import ConfigError, parse_config, parse_set_arguments
from wgpy.core.keys import KeyFormatError, key_from_base64
from wgpy.uapi.framing import Reply, RequestStream
from wgpy.uapi.text import UapiFormatError, parse_errno

# config/quick targets: a byte that is not ASCII inside a 44-character key made base64 raise
# "string argument should contain only ASCII characters".
NON_ASCII_KEY = "tJ8/128Y2D\udcb8fcS22p//vSb/5NiEfSVIqD0/qAb040Bg="


@pytest.mark.parametrize("key", [NON_ASCII_KEY, "é" * 43 + "=", "\uff11" * 43 + "="])
def test_non_ascii_key_is_a_key_format_error(key):
    assert len(key) == 44
    with pytest.raises(KeyFormatError):
        key_from_base64(key)


@pytest.mark.parametrize("quick", [False, True])
def test_non_ascii_key_in_a_file_is_a_located_config_error(quick):
    text = f"[Peer]\nPublicKey = {NON_ASCII_KEY}\nEndpoint = 2001:db8::7:51820\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, filename="fuzz.conf", quick=quick)
    assert str(caught.value).startswith("fuzz.conf:2: PublicKey: ")


def test_non_ascii_key_in_wg_set_words_is_a_config_error():
    with pytest.raises(ConfigError, match="peer"):
        parse_set_arguments(["peer", "é" * 43 + "="])


# uapi, config, quick targets (dictionary token of 4,400 digits): Python's int() refuses more
# than 4,300 digits with ValueError, which escaped every number parser.
HUGE = "9" * 4400
PEER = "[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"


@pytest.mark.parametrize("text, key", [
    (f"[Interface]\nFwMark = {HUGE}\n", "FwMark"),
    (f"{PEER}PersistentKeepalive = {HUGE}\n", "PersistentKeepalive"),
    (f"{PEER}AllowedIPs = 10.0.0.0/{HUGE}\n", "AllowedIPs"),
    (f"{PEER}AllowedIPs = 10.0.0.0/{'0' * 4400}33\n", "AllowedIPs"),
])
def test_huge_numbers_in_files_are_located_config_errors(text, key):
    for quick in (False, True):
        with pytest.raises(ConfigError) as caught:
            parse_config(text, filename="fuzz.conf", quick=quick)
        assert str(caught.value).startswith(f"fuzz.conf:{text.count(chr(10))}: {key}: ")


def test_leading_zeros_beyond_the_digit_limit_still_read_as_their_value():
    text = f"{PEER}PersistentKeepalive = {'0' * 4400}25\n"
    assert parse_config(text).peers[0].persistent_keepalive == 25


def test_huge_wg_quick_mtu_is_a_located_config_error():
    # beyond what `ip link set mtu` (IFLA_MTU, 32 bits) can even carry
    with pytest.raises(ConfigError, match=r"^fuzz.conf:2: MTU: "):
        parse_config(f"[Interface]\nMTU = {HUGE}\n", filename="fuzz.conf", quick=True)


@pytest.mark.parametrize("line", [
    f"listen_port={HUGE}", f"fwmark={HUGE}",
    "public_key=" + "b9" * 32 + f"\npersistent_keepalive_interval={HUGE}",
    "public_key=" + "b9" * 32 + f"\nallowed_ip=10.0.0.0/{HUGE}",
    "public_key=" + "b9" * 32 + f"\nendpoint=[fe80::1%{HUGE}]:51820",
    "public_key=" + "b9" * 32 + f"\nendpoint=1.2.3.{HUGE}:51820",
])
def test_huge_numbers_in_uapi_set_get_einval(line):
    stream = RequestStream()
    stream.receive(f"set=1\n{line}\n\n".encode())
    reply = stream.next_request()
    assert isinstance(reply, Reply) and reply.data == b"errno=-22\n\n"


def test_huge_errno_from_a_server_is_a_format_error():
    with pytest.raises(UapiFormatError):
        parse_errno("-" + HUGE)
