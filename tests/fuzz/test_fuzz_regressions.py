"""Inputs that `bench/fuzz.py` found crashing, each kept so the crash cannot come back.

Each test names the fuzz target that found it; the input is the one the fuzzer saved (trimmed
to what matters). The contract they check is the targets' (bench/fuzz_targets.py): bad input
gets the documented error type (ConfigError located at file and line, KeyFormatError), never a
bare ValueError.
"""

import pytest

from wgpy.config.parser import ConfigError, parse_config, parse_set_arguments
from wgpy.core.keys import KeyFormatError, key_from_base64

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
