"""`wgpy-quick strip` against the real `wg-quick strip`, byte for byte: stdout, stderr (with the
program's name swapped) and exit status, for every file of tests/quick/strip (line ends, BOMs,
bytes that are not UTF-8, odd spaces, wg-quick keys with odd values: what `read -r` and
parse_options make of them) and of the wg/wg-quick corpus in tests/cli/configs.

wg-quick strip must run as root (it re-executes itself through sudo otherwise).
"""

import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import require
from wgpy.quick.main import main as wgpy_quick

TESTS = Path(__file__).parent.parent
FILES = sorted((TESTS / "quick" / "strip").glob("*.conf")) + sorted(
    (TESTS / "cli" / "configs").glob("*.conf"))


def wg_quick_strip(wg_quick: str, path: str) -> tuple[int, bytes, bytes]:
    result = subprocess.run([wg_quick, "strip", path], capture_output=True, timeout=30)
    return result.returncode, result.stdout, result.stderr


def wgpy_quick_strip(path: str) -> tuple[int, bytes, bytes]:
    """In this process (the console script's code), its output captured as bytes."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = wgpy_quick(["strip", path])
    out.flush()
    err.flush()
    return code, out.buffer.getvalue(), err.buffer.getvalue()


@pytest.fixture
def wg_quick() -> str:
    require(os.geteuid() == 0, "wg-quick strip needs root")
    path = shutil.which("wg-quick")
    require(path is not None, "needs wg-quick (apt-get install wireguard-tools)")
    assert path is not None
    return path


@pytest.mark.parametrize("source", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_strip_is_wg_quicks_byte_for_byte(wg_quick, tmp_path, source):
    path = tmp_path / "wqs0.conf"
    path.write_bytes(source.read_bytes())
    path.chmod(0o600)
    theirs = wg_quick_strip(wg_quick, str(path))
    ours = wgpy_quick_strip(str(path))
    assert ours[0] == theirs[0], (ours, theirs)
    assert ours[1] == theirs[1]
    assert ours[2] == theirs[2].replace(b"wg-quick: ", b"wgpy-quick: ")


def test_the_corpus_covers_what_wg_quick_strip_refuses(wg_quick, tmp_path):
    """At least one file fails in strip (SaveConfig that is neither true nor false) and the
    file-level failures match too: a world-readable file's warning, a missing file."""
    path = tmp_path / "wqs1.conf"
    path.write_bytes((TESTS / "quick" / "strip" / "saveconfig_not_bool.conf").read_bytes())
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    for target in (str(path), str(tmp_path / "missing0.conf"), str(tmp_path / "bad name.conf")):
        theirs = wg_quick_strip(wg_quick, target)
        ours = wgpy_quick_strip(target)
        assert theirs[0] == 1 and theirs[2]
        assert (ours[0], ours[1]) == (theirs[0], theirs[1])
        assert ours[2] == theirs[2].replace(b"wg-quick: ", b"wgpy-quick: ")
