"""The config corpus through the real tools: `wg setconf` and `wgpy setconf` accept and reject
the same files and leave devices in the same state; `wg-quick strip` and wgpy's quick mode
agree on what wg-quick takes.

Corpus files are named for what wg does with them: ok_* are accepted by `wg setconf`, bad_*
rejected, quick_ok_* rejected by `wg setconf` but accepted by wg-quick, quick_bad_* rejected
by both. The expectation is asserted too, so a file can't silently stop testing what its
name says.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import have_root_netns, require
from wgpy.config.parser import parse_config, read_config, strip_quick
from wgpy.config.values import ConfigError

from clilab import device_pair, run_wg, run_wgpy

pytestmark = pytest.mark.root
CONFIGS = Path(__file__).parent / "configs"
NAMES = sorted(path.name for path in CONFIGS.glob("*.conf"))
RESET = "[Interface]\nListenPort = 40000\n"
# wg stops reading a line at a NUL byte; wg-quick's bash drops NULs and joins the rest
WG_QUICK_REJECTS = {"ok_nul_ends_line.conf"}


@pytest.fixture(scope="module")
def pair():
    ok, reason = have_root_netns()
    require(ok, reason)
    require(shutil.which("wireguard-go") is not None and shutil.which("wg") is not None,
            "needs wireguard-go and wg")
    with tempfile.TemporaryDirectory() as files, device_pair(files) as devices:
        yield devices


def showconf(iface: str, keep_port: bool) -> list[str]:
    """showconf with peers sorted (wireguard-go lists them in Go map order)."""
    text = run_wg("showconf", iface).stdout
    if not keep_port:
        text = "".join(line for line in text.splitlines(True) if not line.startswith("Listen"))
    head, *peers = text.split("[Peer]\n")
    # the blank line between peers belongs to whichever comes first in Go map order
    return [head, *sorted(peer.rstrip("\n") for peer in peers)]


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Warning")]


@pytest.mark.parametrize("name", NAMES)
def test_setconf_matches_wg(pair, name):
    path = str(CONFIGS / name)
    reset = os.path.join(pair.files, "reset.conf")
    Path(reset).write_text(RESET)
    assert run_wg("setconf", pair.a, reset).returncode == 0
    assert run_wg("setconf", pair.b, reset).returncode == 0

    wg = run_wg("setconf", pair.a, path)
    wgpy = run_wgpy("setconf", pair.b, path)
    assert (wg.returncode, wgpy.returncode) == ((0, 0) if name.startswith("ok_") else (1, 1)), \
        (wg.stderr, wgpy.stderr)
    assert warnings(wg.stderr) == warnings(wgpy.stderr)
    if wgpy.returncode:
        assert wgpy.stderr.startswith(f"{path}:") and wgpy.stderr.count("\n") == 1, wgpy.stderr
        keep_port = True
    else:
        keep_port = bool(read_config(path).listen_port)
    assert showconf(pair.a, keep_port) == showconf(pair.b, keep_port)


@pytest.mark.parametrize("name", NAMES)
def test_quick_mode_matches_wg_quick(pair, name):
    """wg-quick accepts a file when its strip runs and `wg setconf` takes the result."""
    text = (CONFIGS / name).read_bytes().decode("utf-8", "surrogateescape")
    path = os.path.join(pair.files, "wcq.conf")
    Path(path).write_bytes((CONFIGS / name).read_bytes())
    os.chmod(path, 0o600)
    strip = subprocess.run(["wg-quick", "strip", path], capture_output=True, timeout=30,
                           env={**os.environ, "WG_ENDPOINT_RESOLUTION_RETRIES": "0"})
    accepted = strip.returncode == 0
    if accepted:
        stripped = strip.stdout.decode("utf-8", "surrogateescape")
        assert strip_quick(text) == stripped
        Path(path).write_bytes(strip.stdout)
        accepted = run_wg("setconf", pair.a, path).returncode == 0
    try:
        parse_config(text, quick=True)
        ours = True
    except ConfigError:
        ours = False
    assert ours == accepted
    assert accepted == (name.startswith(("ok_", "quick_ok_")) and name not in WG_QUICK_REJECTS)
