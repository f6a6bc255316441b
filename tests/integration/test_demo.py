"""The README's run command builds a real tunnel, shows it, and cleans up after itself."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


def test_demo_runs_a_real_tunnel_and_cleans_up(wireguard_go):
    result = subprocess.run([sys.executable, "-m", "wgpy.demo"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 received, 0% packet loss" in result.stdout
    assert result.stdout.count("latest handshake:") == 2
    assert "src_not_allowed=0" in result.stdout
    # only the demo's own namespaces: other tests may add and remove theirs meanwhile
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "wgpy-demo-" not in names
    assert not [name for name in os.listdir("/var/run/wireguard") if "wgdemo" in name]
