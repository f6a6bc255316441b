"""`wgpy qr` and `wgpy mesh --qr`: the QR code, decoded back by zbar (Debian's zbar-tools, a
reader independent of the encoder), holds exactly the wg-quick file."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from conftest import require
from wgpy.cli.qr import config_text
from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64


@pytest.fixture(autouse=True)
def _segno_installed() -> None:
    """segno is an optional extra: skipped without it, but CI installs it (a failure there)."""
    require(importlib.util.find_spec("segno") is not None,
            "needs segno (pip install 'wgpy[web]')")


def decode(png: str) -> str:
    require(shutil.which("zbarimg") is not None, "needs zbarimg (apt-get install zbar-tools)")
    result = subprocess.run(["zbarimg", "--raw", "-q", png], capture_output=True, check=True)
    return result.stdout.decode("utf-8").removesuffix("\n")


def wgpy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wgpy.cli.main", *args], capture_output=True,
                          text=True)


def phone_config() -> str:
    private = generate_private_key(os.urandom)
    peer = key_to_base64(public_key(generate_private_key(os.urandom)))
    return (f"[Interface]\nPrivateKey = {key_to_base64(private)}\nAddress = 10.0.0.2/32\n"
            "DNS = 10.0.0.1\n\n[Peer]\n# Name = home\n"
            f"PublicKey = {peer}\nAllowedIPs = 0.0.0.0/0, ::/0\n"
            "Endpoint = vpn.example.com:51820\nPersistentKeepalive = 25\n\n")


def test_png_decodes_to_the_file(tmp_path):
    config = tmp_path / "phone.conf"
    config.write_text(phone_config())
    png = tmp_path / "phone.png"
    result = wgpy("qr", str(config), "--png", str(png))
    assert result.returncode == 0, result.stderr
    assert decode(str(png)) == config_text(str(config))
    assert config_text(str(config)) == config.read_text().rstrip() + "\n"


def test_terminal_output_is_a_block_drawing(tmp_path):
    config = tmp_path / "phone.conf"
    config.write_text(phone_config())
    result = wgpy("qr", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) > 10 and any("█" in line or "▀" in line for line in lines)


def test_missing_file_is_a_clear_error(tmp_path):
    result = wgpy("qr", str(tmp_path / "nope.conf"))
    assert result.returncode == 1
    assert "nope.conf" in result.stderr and "Traceback" not in result.stderr


def test_mesh_qr_writes_a_png_per_named_node(tmp_path):
    result = wgpy("mesh", "-o", str(tmp_path), "--hub", "hub", "--qr", "phone",
                  "hub=192.0.2.1", "phone", "laptop")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["hub.conf", "laptop.conf", "phone.conf", "phone.png"]
    assert decode(str(tmp_path / "phone.png")) == \
        config_text(str(tmp_path / "phone.conf"))


def test_mesh_qr_unknown_node_writes_nothing(tmp_path):
    result = wgpy("mesh", "-o", str(tmp_path), "--qr", "tablet", "a=192.0.2.1", "b")
    assert result.returncode == 1 and "tablet" in result.stderr
    assert os.listdir(tmp_path) == []
